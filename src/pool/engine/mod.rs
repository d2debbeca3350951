//! The engine of the process pool: one thread in the parent that owns the workers.
//!
//! # Design
//!
//! CPython's pool puts every task on one shared pipe that idle workers read. That is
//! why it hangs when a worker dies: nobody knows which task the dead worker had taken.
//! Here the parent *dispatches*: each worker has its own pair of shared-memory queues
//! (tasks in, results out; the same robust memfd rings as [`Queue`]), and the pool
//! thread remembers, per worker, the tasks it handed over, in order. A worker runs its
//! tasks in that order, so when it dies the first task without a result is the one it
//! was running: that task fails with how the worker died, the tasks queued behind it
//! go back to the front of the pending list, and a new worker takes the dead one's
//! place. Nothing is lost and nothing hangs.
//!
//! The per-worker *window* (how many tasks it may hold at once) adapts to the task
//! length: a worker always has one task; while tasks are short (an exponential average
//! below 250 us) it gets enough more to cover about half a millisecond, so a stream of
//! tiny tasks never waits on a wake-up (the VM's wake-up latency is ~60 us, longer
//! than the tasks). Long tasks are handed out one at a time, so an idle worker gets
//! the next one, as from Python's shared queue; the tasks queued behind a task that
//! runs long are taken back for an idle worker.
//!
//! Timeouts: a task with a timeout makes its worker stamp each call into a small
//! shared segment (a seqlock of task id, item index and `CLOCK_MONOTONIC` start).
//! The pool thread sleeps until the earliest deadline; a worker past it is SIGKILLed,
//! and its death fails the task with [`ErrorKind::Timeout`].
//!
//! The pool thread sleeps in one `poll` over: its own eventfd (rung by submitters only
//! while it sleeps, a Dekker handshake on `sleeping`), each result queue's doorbell
//! (rung by a worker only while someone waits on that queue) and each worker's pidfd.
//! Before sleeping it spins briefly, so a busy pool makes no system calls per task
//! beyond the queues' own.
//!
//! Results are decoded by the task's [`Finish`], made by the [`ProcessFlavor`] where the
//! types are known, in place in the ring (no copy), on the pool thread. Results of
//! 64 KiB or more are copied out and decoded after the next dispatch, so the worker is
//! not idle meanwhile.
//!
//! # How far one pool thread goes (design note)
//!
//! Every task passes through the one pool thread, which encodes nothing (submitters
//! do) but dispatches each task, reads each result and completes each call. The
//! harness row `pool_dispatch_capacity` measures that ceiling with workers that return
//! at once: about 350,000 tasks per second here (2 cores shared with the two workers;
//! one full run, 2026-12-02). A pool stays fed while `workers / task_length` is below
//! it:
//!
//! ```text
//! task length    workers one pool thread keeps busy
//! 10 us          ~3
//! 100 us         ~35
//! 1 ms           ~350      (a 256-core host is fed)
//! 10 ms          ~3,500
//! ```
//!
//! So on a 64-core host, tasks shorter than about 200 us (64 / 350,000 per second)
//! make the pool thread the bottleneck, and on a 256-core host, tasks shorter than
//! about 0.7 ms. `map` already amortises it: a chunk of many items is one task, so a
//! `map` of tiny items is limited by the workers, not by dispatch; `apply_async` and
//! `imap` with chunk size 1 are the calls that meet the ceiling. Past it, what would
//! change: several dispatch threads, each owning a shard of the workers (the
//! per-worker rings already make shards independent: the runner's state is per
//! worker except the inbox and the stealing pass), and completions handed to the
//! submitting threads instead of run on the pool thread.
//!
//! # Files
//!
//! * `protocol.rs`: the task/result wire format (typed headers, the chunk's output).
//! * `status.rs`: a worker's status segment, the seqlock the timeouts read.
//! * `window.rs`: the per-worker window's arithmetic.
//! * `mailbox.rs`: what submitters and the pool thread share (inbox, bell, stats).
//! * `runner.rs`: the pool thread: dispatch, results, deaths, deadlines, shutdown.
//! * `worker.rs`: the worker's loop and the trampolines that run a task's items.
//! * `flavor.rs`: chunks in, tasks out: the process pool as a [flavor](crate::pool::flavor).
//!
//! Imports go one way: `runner` uses the others; `flavor` uses `mailbox`,
//! `protocol` and `worker`; `worker` uses `protocol` and `status`.
//!
//! [`Queue`]: crate::Queue
//! [`ErrorKind::Timeout`]: crate::ErrorKind::Timeout

mod flavor;
mod mailbox;
mod protocol;
mod runner;
mod status;
mod window;
mod worker;

use std::sync::{Arc, Mutex};

pub(crate) use self::flavor::ProcessFlavor;
#[cfg(feature = "redis")]
pub(crate) use self::flavor::{EncodeTask, Split, encode_chunks, encode_task};
pub(crate) use self::mailbox::Mailbox;
pub use self::mailbox::WorkerStats;
#[cfg(feature = "redis")]
pub(crate) use self::mailbox::{Finish, Task};
pub(crate) use self::protocol::Blob;
#[cfg(feature = "redis")]
pub(crate) use self::protocol::TaskHeader;
pub(crate) use self::runner::{Config, Init};
pub(crate) use self::worker::run_init;

use self::runner::Runner;
use crate::error::{Error, ErrorKind, Result};

/// A running process pool: its mailbox and its thread.
pub(crate) struct Engine {
    pub(crate) mailbox: Arc<Mailbox>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Engine {
    /// Starts the workers (so that failures are reported to the caller) and the pool
    /// thread.
    pub(crate) fn start(cfg: Config) -> Result<Engine> {
        if cfg.processes == 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a pool needs at least one process",
            ));
        }
        let mailbox = Arc::new(Mailbox::new(cfg.processes)?);
        let thread = Runner::spawn(mailbox.clone(), cfg)?;
        Ok(Engine {
            mailbox,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Waits for the pool thread to end.
    pub(crate) fn join_thread(&self) {
        let t = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = t {
            let _ = t.join();
        }
    }
}
