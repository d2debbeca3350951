//! The best Rust crate a user would pick instead, per workload (BENCH.md's
//! `peer=` column): procspawn for process starts and pools, ipc-channel for
//! round trips and bytes.
//!
//! * **procspawn** (1.0): `procspawn::spawn` re-executes this binary, whose
//!   `main` calls `procspawn::init()` first (after the harness's own helper
//!   modes), so start+join is measured under its one (default) method;
//!   `procspawn::Pool` serves the pool rows.
//! * **ipc-channel** (0.22, the version procspawn itself uses): the child is
//!   started with `procspawn::spawn`, which passes ipc-channel senders and
//!   receivers to it (its documented way of handing channels to a child);
//!   only the channel traffic is timed.
//!
//! procspawn's pool costs a process round trip and two fresh channels per
//! task, so its per-task rows run [`crate::params::PEER_POOL_TASKS`] tasks;
//! `pool_imap_unordered_100k` is that per-task time times 100,000 and
//! `pool_dispatch_capacity` its inverse (said in the README). `pool_map_1M_square`
//! runs the full million as 8 chunks of 125,000 items, CPython's default chunk
//! size for Pool(2).
//!
//! [`run`] returns `None` for workloads without a peer.

use std::time::Instant;

use ipc_channel::ipc::{self, IpcBytesReceiver, IpcReceiver, IpcSender};

use crate::load::with_load;
use crate::measure::{self, median_of, us_per};
use crate::params::{self, MIB, REPS};

/// The peer's figure for workload `name`, in its unit; `None` if it has no peer.
pub fn run(name: &str, quick: bool) -> Option<f64> {
    match name {
        "process_start_join_fork"
        | "process_start_join_spawn"
        | "process_start_join_forkserver" => procspawn_start_join(quick),
        "pipe_roundtrip_small" => ipc_roundtrip(quick),
        "pipe_roundtrip_small_loaded" => with_load("peer", quick, || ipc_roundtrip(quick)),
        "pipe_throughput_1MiB" => ipc_bytes(quick),
        "pipe_throughput_1MiB_vec" => ipc_vec(quick),
        "pool_map_1M_square" => procspawn_pool_map(quick),
        "pool_apply_async_per_task" | "executor_submit_per_task" => procspawn_pool_task_us(quick),
        "pool_imap_unordered_100k" => {
            procspawn_pool_task_us(quick).map(|us| us * params::IMAP_ITEMS.get(quick) as f64 / 1e3)
        }
        "pool_dispatch_capacity" => procspawn_pool_task_us(quick).map(|us| 1e6 / us),
        _ => None,
    }
}

/// The name of the crate measured for workload `name`, if it has a peer.
pub fn crate_of(name: &str) -> Option<&'static str> {
    match name {
        n if n.starts_with("process_start_join_") || n.starts_with("pool_") => Some("procspawn"),
        "executor_submit_per_task" => Some("procspawn"),
        n if n.starts_with("pipe_") => Some("ipc-channel"),
        _ => None,
    }
}

fn empty(_: ()) {}

/// us per `procspawn::spawn` of an empty function plus `join`.
fn procspawn_start_join(quick: bool) -> Option<f64> {
    procspawn::spawn((), empty).join().ok()?; // warm-up (page cache)
    let n = params::PEER_STARTS.get(quick);
    Some(median_of(REPS.get(quick), || {
        let t = Instant::now();
        for _ in 0..n {
            procspawn::spawn((), empty).join().expect("procspawn join");
        }
        us_per(t.elapsed(), n)
    }))
}

fn echo_plus_one((rx, tx): (IpcReceiver<u64>, IpcSender<u64>)) {
    measure::echo_plus_one(|| rx.recv().ok(), |i| tx.send(i).is_ok());
}

/// us per round trip of a `u64` over two ipc-channel channels with a child
/// that answers `i + 1`; answered once before timing.
fn ipc_roundtrip(quick: bool) -> Option<f64> {
    let (to_child, child_rx) = ipc::channel::<u64>().ok()?;
    let (child_tx, from_child) = ipc::channel::<u64>().ok()?;
    let handle = procspawn::spawn((child_rx, child_tx), echo_plus_one);
    to_child.send(0).ok()?;
    assert_eq!(from_child.recv().ok()?, 1);
    let r = measure::roundtrip_us(params::PIPE_ROUNDTRIPS.get(quick), quick, |i| {
        to_child.send(i).expect("send");
        from_child.recv().expect("recv")
    });
    drop(to_child);
    handle.join().ok()?;
    Some(r)
}

/// What a sink child gets: the round announcements, the data receiver, the
/// sender of its byte counts.
type SinkArgs<D> = (IpcReceiver<u64>, D, IpcSender<u64>);

fn bytes_sink((ctl, data, reply): SinkArgs<IpcBytesReceiver>) {
    measure::sink_rounds(
        || ctl.recv().ok(),
        || data.recv().expect("recv").len(),
        |bytes| reply.send(bytes).expect("reply"),
    );
}

fn vec_sink((ctl, data, reply): SinkArgs<IpcReceiver<Vec<u8>>>) {
    measure::sink_rounds(
        || ctl.recv().ok(),
        || data.recv().expect("recv").len(),
        |bytes| reply.send(bytes).expect("reply"),
    );
}

/// Starts `sink` in a procspawn child with a fresh control channel, reply
/// channel and `data` receiver, then measures [`measure::one_way_mbps`] with `send`.
fn one_way<D, S>(sink: fn(SinkArgs<D>), data: (S, D), send: impl Fn(&S), quick: bool) -> Option<f64>
where
    D: serde::Serialize + serde::de::DeserializeOwned,
{
    let (ctl, ctl_rx) = ipc::channel::<u64>().ok()?;
    let (reply_tx, reply) = ipc::channel::<u64>().ok()?;
    let (tx, rx) = data;
    let handle = procspawn::spawn((ctl_rx, rx, reply_tx), sink);
    let r = measure::one_way_mbps(
        params::PIPE_MESSAGES_1MIB.get(quick),
        quick,
        |k| ctl.send(k).expect("send"),
        || send(&tx),
        || reply.recv().expect("reply"),
    );
    drop(ctl);
    handle.join().ok()?;
    Some(r)
}

/// MB/s of 1 MiB byte messages through an `IpcBytesSender`.
fn ipc_bytes(quick: bool) -> Option<f64> {
    let msg = vec![7u8; MIB];
    let data = ipc::bytes_channel().ok()?;
    one_way(bytes_sink, data, |tx| tx.send(&msg).expect("send"), quick)
}

/// MB/s of typed `Vec<u8>` messages of 1 MiB through an `IpcSender<Vec<u8>>`.
fn ipc_vec(quick: bool) -> Option<f64> {
    let msg = vec![7u8; MIB];
    let data = ipc::channel::<Vec<u8>>().ok()?;
    one_way(
        vec_sink,
        data,
        |tx| tx.send(msg.clone()).expect("send"),
        quick,
    )
}

fn identity(x: u64) -> u64 {
    x
}

fn square_chunk(xs: Vec<u64>) -> Vec<u64> {
    xs.into_iter().map(|x| x * x).collect()
}

/// A `procspawn::Pool` of two processes, warmed up by one task each.
fn warm_pool() -> Option<procspawn::Pool> {
    let pool = procspawn::Pool::new(2).ok()?;
    let hs: Vec<_> = (0..2).map(|i| pool.spawn(i, identity)).collect();
    for h in hs {
        h.join().ok()?;
    }
    Some(pool)
}

/// us per task: [`crate::params::PEER_POOL_TASKS`] `Pool::spawn` of identity
/// on a warmed-up `procspawn::Pool` of 2, then `join` of every handle.
fn procspawn_pool_task_us(quick: bool) -> Option<f64> {
    let pool = warm_pool()?;
    let n = params::PEER_POOL_TASKS.get(quick);
    let r = median_of(REPS.get(quick), || {
        let t = Instant::now();
        let hs: Vec<_> = (0..n as u64).map(|i| pool.spawn(i, identity)).collect();
        let sum: u64 = hs.into_iter().map(|h| h.join().expect("join")).sum();
        assert_eq!(sum, (n as u64) * (n as u64 - 1) / 2);
        us_per(t.elapsed(), n)
    });
    pool.shutdown();
    Some(r)
}

/// ms to square 0..1,000,000 on a `procspawn::Pool` of 2 as 8 chunks of
/// 125,000 (CPython's default chunk size for Pool(2)), results in order.
fn procspawn_pool_map(quick: bool) -> Option<f64> {
    let pool = warm_pool()?;
    let n = params::POOL_MAP_ITEMS.get(quick) as u64;
    let chunk = n.div_ceil(8);
    let r = median_of(REPS.get(quick), || {
        let t = Instant::now();
        let hs: Vec<_> = (0..n)
            .step_by(chunk as usize)
            .map(|lo| pool.spawn((lo..n.min(lo + chunk)).collect(), square_chunk))
            .collect();
        let out: Vec<u64> = hs
            .into_iter()
            .flat_map(|h| h.join().expect("join"))
            .collect();
        let dt = t.elapsed();
        assert_eq!(out[out.len() - 1], (n - 1) * (n - 1));
        dt.as_secs_f64() * 1e3
    });
    pool.shutdown();
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::crate_of;
    use crate::workloads::WORKLOADS;

    #[test]
    fn peer_crates() {
        assert_eq!(crate_of("process_start_join_spawn"), Some("procspawn"));
        assert_eq!(crate_of("pool_dispatch_capacity"), Some("procspawn"));
        assert_eq!(crate_of("executor_submit_per_task"), Some("procspawn"));
        assert_eq!(crate_of("pipe_roundtrip_small_loaded"), Some("ipc-channel"));
        assert_eq!(crate_of("pipe_throughput_1MiB_vec"), Some("ipc-channel"));
        assert_eq!(crate_of("queue_1p1c_small"), None);
        assert_eq!(crate_of("manager_dict_op_loaded"), None);
        let with_peer = WORKLOADS.iter().filter(|w| crate_of(w.name).is_some());
        assert_eq!(with_peer.count(), 12);
    }
}
