//! Workload sizes and repetition counts, shared by every side of the benchmark.
//!
//! `bench/python/baseline.py` mirrors these numbers (keep the two in sync), so that
//! ours and CPython do the same amount of work in the same mode. Each size is a
//! [`Size`] pair: the full run and the `--quick` run.
//!
//! Units: MB is 10^6 bytes ([`MB`]); message sizes are [`KIB`] and [`MIB`].

/// A workload size in full mode and in `--quick` mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    /// Size of a full run.
    pub full: usize,
    /// Size of a `--quick` run.
    pub quick: usize,
}

impl Size {
    /// The size for the selected mode.
    pub const fn get(self, quick: bool) -> usize {
        if quick { self.quick } else { self.full }
    }
}

const fn size(full: usize, quick: usize) -> Size {
    Size { full, quick }
}

/// One megabyte as used in every MB/s figure: 10^6 bytes.
pub const MB: f64 = 1_000_000.0;
/// 1 KiB, the "1KiB" message size.
pub const KIB: usize = 1024;
/// 1 MiB, the "1MiB" message size.
pub const MIB: usize = 1024 * 1024;

/// Repetitions per figure; the figure is their median.
pub const REPS: Size = size(5, 3);

/// Repetitions of the process-start rows, each followed by one repetition of the
/// row's floors ([`crate::floor::Paired`]); the figures are the medians.
pub const START_ROUNDS: Size = size(15, 3);
/// `process_start_join_fork`: start+join cycles per repetition.
pub const START_FORK: Size = size(50, 20);
/// `process_start_join_spawn`: start+join cycles per repetition.
pub const START_SPAWN: Size = size(10, 5);
/// `process_start_join_forkserver`: start+join cycles per repetition.
pub const START_FORKSERVER: Size = size(20, 10);
/// `pipe_roundtrip_small`: round trips per repetition.
pub const PIPE_ROUNDTRIPS: Size = size(2000, 500);
/// `pipe_throughput_1MiB`: 1 MiB messages per repetition.
pub const PIPE_MESSAGES_1MIB: Size = size(200, 50);
/// `queue_1p1c_small`: messages per repetition.
pub const QUEUE_SMALL_MSGS: Size = size(100_000, 20_000);
/// `queue_1p1c_1KiB`: messages per repetition.
pub const QUEUE_1KIB_MSGS: Size = size(100_000, 20_000);
/// `queue_1p1c_1MiB`: messages per repetition.
pub const QUEUE_1MIB_MSGS: Size = size(200, 50);
/// `queue_4p4c_small`: messages per repetition, in total over the four producers.
pub const QUEUE_4P4C_MSGS: Size = size(100_000, 20_000);
/// `lock_uncontended_pair`: acquire+release pairs per repetition.
pub const LOCK_PAIRS: Size = size(1_000_000, 200_000);
/// `value_locked_incr_2proc`: increments per process per repetition.
pub const VALUE_INCRS_PER_PROC: Size = size(200_000, 50_000);
/// `pool_map_1M_square`: items mapped (fixed by the workload's name).
pub const POOL_MAP_ITEMS: Size = size(1_000_000, 1_000_000);
/// `pool_apply_async_per_task`: tasks per repetition.
pub const APPLY_ASYNC_TASKS: Size = size(20_000, 20_000);
/// `pool_imap_unordered_100k`: items (fixed by the workload's name).
pub const IMAP_ITEMS: Size = size(100_000, 100_000);
/// `executor_submit_per_task`: tasks per repetition.
pub const EXECUTOR_TASKS: Size = size(20_000, 5_000);
/// `manager_dict_op`: keys set then got per repetition.
pub const MANAGER_DICT_KEYS: Size = size(10_000, 2_000);
/// `manager_queue_op`: put+get pairs per repetition.
pub const MANAGER_QUEUE_OPS: Size = size(10_000, 2_000);
/// `shm_array_write_64MiB`: bytes of the shared array.
pub const SHM_BYTES: Size = size(64 * MIB, 64 * MIB);

/// Floor: fork+wait cycles per repetition.
pub const FLOOR_FORKS: Size = size(200, 50);
/// Floor: posix_spawn+wait cycles per repetition.
pub const FLOOR_SPAWNS: Size = size(100, 20);
/// Floor: blocking socket round trips per repetition.
pub const FLOOR_SOCKET_ROUNDTRIPS: Size = size(5000, 1000);
/// Floor: spinning shared-memory round trips per repetition.
pub const FLOOR_SPIN_ROUNDTRIPS: Size = size(200_000, 50_000);
/// Floor: 1 MiB copies per repetition.
pub const FLOOR_MEMCPY_COPIES: Size = size(2000, 500);
/// Floor: CAS lock pairs per repetition.
pub const FLOOR_CAS_PAIRS: Size = size(10_000_000, 2_000_000);

/// `pool_dispatch_capacity`: no-op tasks handed out one by one (chunk size 1)
/// to a Pool(2) per repetition.
pub const DISPATCH_TASKS: Size = size(100_000, 20_000);
/// `queue_1p1c_1MiB_f64`: `f64` items per 1 MiB message.
pub const F64_PER_MIB: usize = MIB / 8;

/// `_loaded` rows: CPU-bound processes running beside the workload.
pub const LOAD_PROCS: usize = 2;
/// `_loaded` rows: rounds, each with load processes of its own (see
/// [`crate::load::with_load`]); the figure is their median.
pub const LOAD_ROUNDS: Size = size(9, 3);
/// `_loaded` rows: a load process exits by itself after this many seconds,
/// even if nobody kills it (it also exits when its parent dies).
pub const LOAD_BOUND_SECS: u64 = 300;

/// Peer: procspawn start+join cycles per repetition.
pub const PEER_STARTS: Size = size(10, 5);
/// Peer: procspawn pool tasks per repetition for the per-task rows
/// (`pool_apply_async_per_task`, `executor_submit_per_task`,
/// `pool_imap_unordered_100k`, `pool_dispatch_capacity`): procspawn's pool
/// costs a process round trip and two fresh channels per task, so fewer
/// tasks are run and the figure is per task (or scaled, see `peers.rs`).
pub const PEER_POOL_TASKS: Size = size(2_000, 300);
