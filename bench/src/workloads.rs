//! The workload table of the benchmark contract (BENCH.md), in its order.
//!
//! Each entry names a workload, its unit, and which OS floor (if any) it is
//! compared with.

/// The unit a workload's figure is reported in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Microseconds (a time: lower is better).
    Us,
    /// Milliseconds (a time).
    Ms,
    /// Nanoseconds (a time).
    Ns,
    /// Megabytes (10^6 bytes) per second (a rate: higher is better).
    MBps,
    /// Messages per second (a rate).
    MsgPerS,
    /// Operations per second (a rate).
    OpsPerS,
    /// Tasks per second (a rate).
    TasksPerS,
}

impl Unit {
    /// The unit as written in the table and in the `bench` lines.
    pub const fn as_str(self) -> &'static str {
        match self {
            Unit::Us => "us",
            Unit::Ms => "ms",
            Unit::Ns => "ns",
            Unit::MBps => "MB/s",
            Unit::MsgPerS => "msg/s",
            Unit::OpsPerS => "ops/s",
            Unit::TasksPerS => "tasks/s",
        }
    }

    /// Whether the unit is a time (lower is better) rather than a rate.
    pub const fn is_time(self) -> bool {
        matches!(self, Unit::Us | Unit::Ms | Unit::Ns)
    }

    /// How many times better `a` is than `b` (> 1: `a` wins).
    ///
    /// `b / a` for times, `a / b` for rates.
    pub fn better(self, a: f64, b: f64) -> f64 {
        if self.is_time() { b / a } else { a / b }
    }
}

/// An OS floor a workload is compared with (see [`crate::floor`]).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Floor {
    /// fork of a child that `_exit`s at once, then waitpid (us).
    ForkWait,
    /// posix_spawn of `/bin/true`, then waitpid (us).
    SpawnExec,
    /// posix_spawn of the benchmark binary itself in a mode that exits at
    /// once, then waitpid (us): the second spawn floor, shown beside the first.
    SpawnSelf,
    /// Blocking Unix-socket round trip with a forked child (us).
    SocketRoundTrip,
    /// Spinning shared-memory round trip with a forked child (us).
    SpinRoundTrip,
    /// memcpy bandwidth of 1 MiB into fresh pages, page faults included (MB/s).
    Memcpy,
    /// memcpy bandwidth between reused, cache-hot 1 MiB buffers (MB/s);
    /// reported beside [`Floor::Memcpy`], not compared with.
    MemcpyHot,
    /// Uncontended CAS lock: compare_exchange + store (ns).
    CasLock,
}

impl Floor {
    /// A short description for the human report.
    pub const fn describe(self) -> &'static str {
        match self {
            Floor::ForkWait => "fork + _exit + waitpid",
            Floor::SpawnExec => "posix_spawn(/bin/true) + waitpid",
            Floor::SpawnSelf => "posix_spawn(this binary) + waitpid",
            Floor::SocketRoundTrip => "blocking Unix-socket round trip",
            Floor::SpinRoundTrip => "spinning shared-memory round trip",
            Floor::Memcpy => "memcpy of 1 MiB into fresh pages",
            Floor::MemcpyHot => "memcpy of 1 MiB, cache-hot buffers",
            Floor::CasLock => "uncontended CAS lock pair",
        }
    }

    /// A short name for the per-round lines on stderr.
    pub const fn short(self) -> &'static str {
        match self {
            Floor::ForkWait => "fork",
            Floor::SpawnExec => "spawn(/bin/true)",
            Floor::SpawnSelf => "spawn(self)",
            Floor::SocketRoundTrip => "socket",
            Floor::SpinRoundTrip => "spin",
            Floor::Memcpy => "memcpy",
            Floor::MemcpyHot => "memcpy-hot",
            Floor::CasLock => "cas",
        }
    }

    /// Whether the floor is measured round by round beside its workload, in one
    /// helper that lives as long as the row ([`crate::floor::Paired`]), rather than
    /// once after it: the process-start floors. A start's cost follows the host's
    /// state of the moment (steal, reclaim), and their workloads' repetitions are a
    /// few milliseconds long, so a floor measured after the row can see another host.
    pub const fn pairs(self) -> bool {
        matches!(self, Floor::ForkWait | Floor::SpawnExec | Floor::SpawnSelf)
    }

    /// The unit the floor is measured in.
    pub const fn unit(self) -> Unit {
        match self {
            Floor::ForkWait
            | Floor::SpawnExec
            | Floor::SpawnSelf
            | Floor::SocketRoundTrip
            | Floor::SpinRoundTrip => Unit::Us,
            Floor::Memcpy | Floor::MemcpyHot => Unit::MBps,
            Floor::CasLock => Unit::Ns,
        }
    }
}

/// One workload of the contract.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Name as in BENCH.md and in `--only`.
    pub name: &'static str,
    /// Unit of its figure.
    pub unit: Unit,
    /// The floor it is compared with, if any.
    pub floor: Option<Floor>,
}

impl Workload {
    /// A second floor shown beside the first in the human table: the spawn
    /// start method is bounded both by exec of `/bin/true` and by exec of this
    /// (larger) binary.
    pub fn floor2(&self) -> Option<Floor> {
        (self.floor == Some(Floor::SpawnExec)).then_some(Floor::SpawnSelf)
    }

    /// Whether the row's floors are measured round by round beside it
    /// ([`Floor::pairs`]).
    pub fn paired(&self) -> bool {
        self.floor.is_some_and(Floor::pairs)
    }

    /// For a `_loaded` row, the quiet workload it repeats under load.
    pub fn unloaded(&self) -> Option<&'static str> {
        let base = self.name.strip_suffix(LOADED_SUFFIX)?;
        find(base).map(|w| w.name)
    }
}

/// Suffix of the workloads that repeat a quiet one beside two CPU-bound processes.
pub const LOADED_SUFFIX: &str = "_loaded";

const fn w(name: &'static str, unit: Unit, floor: Option<Floor>) -> Workload {
    Workload { name, unit, floor }
}

/// Every workload, in the order (and with the units) of BENCH.md's table.
pub const WORKLOADS: &[Workload] = &[
    w("process_start_join_fork", Unit::Us, Some(Floor::ForkWait)),
    w("process_start_join_spawn", Unit::Us, Some(Floor::SpawnExec)),
    w(
        "process_start_join_forkserver",
        Unit::Us,
        Some(Floor::ForkWait),
    ),
    w(
        "pipe_roundtrip_small",
        Unit::Us,
        Some(Floor::SocketRoundTrip),
    ),
    w("pipe_throughput_1MiB", Unit::MBps, Some(Floor::Memcpy)),
    w("queue_1p1c_small", Unit::MsgPerS, None),
    w("queue_1p1c_1KiB", Unit::MsgPerS, None),
    w("queue_1p1c_1MiB", Unit::MBps, Some(Floor::Memcpy)),
    w("queue_4p4c_small", Unit::MsgPerS, None),
    w("lock_uncontended_pair", Unit::Ns, Some(Floor::CasLock)),
    w("value_locked_incr_2proc", Unit::OpsPerS, None),
    w("pool_map_1M_square", Unit::Ms, None),
    w("pool_apply_async_per_task", Unit::Us, None),
    w("pool_imap_unordered_100k", Unit::Ms, None),
    w("executor_submit_per_task", Unit::Us, None),
    w("manager_dict_op", Unit::Us, None),
    w("manager_queue_op", Unit::Us, None),
    w("shm_array_write_64MiB", Unit::MBps, Some(Floor::Memcpy)),
    w("queue_1p1c_1MiB_vec", Unit::MBps, Some(Floor::Memcpy)),
    w("pipe_throughput_1MiB_vec", Unit::MBps, Some(Floor::Memcpy)),
    w("queue_1p1c_1MiB_f64", Unit::MBps, Some(Floor::Memcpy)),
    w(
        "pipe_roundtrip_small_loaded",
        Unit::Us,
        Some(Floor::SocketRoundTrip),
    ),
    w("queue_1p1c_small_loaded", Unit::MsgPerS, None),
    w("manager_dict_op_loaded", Unit::Us, None),
    w("pool_dispatch_capacity", Unit::TasksPerS, None),
    w("cluster_map_100k", Unit::Ms, None),
    w("cluster_apply_async_per_task", Unit::Us, None),
    w("redis_dict_op", Unit::Us, None),
    w("redis_lock_pair", Unit::Us, None),
    w("redis_queue_op", Unit::Us, None),
];

/// The workload called `name`, if any.
pub fn find(name: &str) -> Option<&'static Workload> {
    WORKLOADS.iter().find(|w| w.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        for (i, a) in WORKLOADS.iter().enumerate() {
            assert!(WORKLOADS[i + 1..].iter().all(|b| b.name != a.name));
        }
        assert_eq!(WORKLOADS.len(), 30);
    }

    #[test]
    fn loaded_rows_repeat_a_quiet_row() {
        let loaded: Vec<_> = WORKLOADS
            .iter()
            .filter(|w| w.unloaded().is_some())
            .collect();
        assert_eq!(loaded.len(), 3);
        for w in loaded {
            let base = find(w.unloaded().unwrap()).unwrap();
            assert_eq!(base.unit, w.unit);
            assert_eq!(base.floor, w.floor);
        }
        assert_eq!(find("pipe_roundtrip_small").unwrap().unloaded(), None);
    }

    #[test]
    fn second_spawn_floor() {
        let spawn = find("process_start_join_spawn").unwrap();
        assert_eq!(spawn.floor2(), Some(Floor::SpawnSelf));
        assert_eq!(find("process_start_join_fork").unwrap().floor2(), None);
        assert!(!Unit::TasksPerS.is_time());
    }

    #[test]
    fn the_start_rows_and_only_they_are_paired() {
        let paired: Vec<&str> = WORKLOADS
            .iter()
            .filter(|w| w.paired())
            .map(|w| w.name)
            .collect();
        assert_eq!(
            paired,
            [
                "process_start_join_fork",
                "process_start_join_spawn",
                "process_start_join_forkserver"
            ]
        );
        let spawn = find("process_start_join_spawn").unwrap();
        assert!(spawn.floor2().is_some_and(Floor::pairs));
    }

    #[test]
    fn better_direction() {
        assert_eq!(Unit::Us.better(10.0, 20.0), 2.0);
        assert_eq!(Unit::MBps.better(20.0, 10.0), 2.0);
    }
}
