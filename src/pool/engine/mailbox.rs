//! Where submitters leave tasks for the pool thread, and what it tells them back
//! (broken or not, the workers' counters).
//!
//! Submitters push onto the inbox under its lock and ring the bell only while the pool
//! thread sleeps: it sets `sleeping` before it looks at the inbox one last time, and a
//! submitter reads `sleeping` after it pushed (a Dekker handshake, all `SeqCst`), so
//! one of the two always sees the other.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::pool::slot::Phase;
use crate::sys;

/// How a task's result reaches its caller. The pool thread does not know the result
/// type, so this is type-erased: it is handed the worker's encoded output, borrowed in
/// place from the ring (with its fds), or why there is none.
pub(crate) trait Finish: Send {
    /// Decodes `raw` and completes the caller's side. Called exactly once.
    fn finish(self: Box<Self>, raw: Result<(&[u8], Vec<OwnedFd>)>);
}

/// A task ready to run: a trampoline (`entry`) that decodes the payload and calls
/// `func` on each item.
pub(crate) struct Task {
    pub(crate) entry: usize,
    pub(crate) func: usize,
    /// The header's room, then the encoded items.
    pub(crate) bytes: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
    /// What the task is, for error messages ("task 3", "the chunk of items 20..30").
    pub(crate) what: String,
    pub(crate) timeout: Option<Duration>,
    /// Shared with a future that can be cancelled while pending.
    pub(crate) phase: Option<Arc<Phase>>,
    /// One chunk of a `map`: its siblings are alike, so prefetching is safe.
    pub(crate) chunk: bool,
    pub(crate) done: Box<dyn Finish>,
}

impl Task {
    /// Fails the task with `e`.
    pub(crate) fn fail(self, e: Error) {
        self.done.finish(Err(e));
    }
}

/// Counters of one worker, and what it runs now, for [`Pool::stats`](crate::Pool::stats).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// fn id(x: u8) -> u8 { x }
/// fn stuck(_: ()) { std::thread::sleep(Duration::from_secs(30)) }
///
/// multiprocess::init();
/// let pool = multiprocess::Pool::new(1)?;
/// pool.apply(id, 1)?;
/// let s: multiprocess::WorkerStats = pool.stats().remove(0);
/// assert!(s.name.starts_with("PoolWorker-") && s.pid > 0);
/// assert_eq!((s.tasks_done, s.task), (1, None)); // idle
///
/// let _r = pool.apply_async(stuck, ())?;
/// let s = (0..1000)
///     .map(|_| { std::thread::sleep(Duration::from_millis(10)); pool.stats().remove(0) })
///     .find(|s| s.task.is_some())
///     .expect("the worker runs `stuck`");
/// println!("{} runs {:?} since {:?}", s.name, s.task, s.since.map(|t| t.elapsed()));
/// assert!(s.task.is_some_and(|t| t.starts_with("task ")) && s.since.is_some());
/// pool.terminate();
/// # Ok::<(), multiprocess::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStats {
    /// The worker's process name (`PoolWorker-3`).
    pub name: String,
    /// Its pid.
    pub pid: u32,
    /// Tasks (chunks, for `map`) it finished.
    pub tasks_done: u64,
    /// Time it spent on them, as seen from the parent.
    pub busy: Duration,
    /// The task it runs now, named as its errors name it (`task 4`, a `map` chunk by
    /// its items); `None` when idle. Current as of the call: `stats()` asks the pool
    /// thread for a fresh snapshot (waiting for it at most 100 ms), so a stuck pool
    /// shows what it is stuck on.
    pub task: Option<String>,
    /// Since when it runs [`task`](WorkerStats::task): the worker's own stamp for a
    /// task with a timeout; else when the worker finished its previous task (or was
    /// handed this one, if later).
    pub since: Option<Instant>,
}

/// The submitted tasks and the requests to the pool thread.
#[derive(Default)]
pub(crate) struct Inbox {
    pub(crate) pending: VecDeque<Task>,
    pub(crate) closed: bool,
    pub(crate) terminate: bool,
    /// Set when the pool thread ended (broken, terminated or drained).
    pub(crate) finished: bool,
}

/// How long `stats()` waits for the pool thread's fresh snapshot.
const STATS_WAIT: Duration = Duration::from_millis(100);

/// What the pool's handles and its thread share: the inbox, its bell, the error that
/// broke the pool, and the workers' counters.
pub(crate) struct Mailbox {
    inbox: Mutex<Inbox>,
    /// Tasks ever submitted: the spinning pool thread watches it change.
    pub(crate) submitted: AtomicU64,
    /// An eventfd the pool thread sleeps on.
    pub(crate) bell: OwnedFd,
    pub(crate) sleeping: AtomicBool,
    broken: Mutex<Option<Error>>,
    /// The last snapshot for `stats()`, with how many were published before it.
    stats: Mutex<(u64, Vec<WorkerStats>)>,
    stats_published: Condvar,
    /// Set by `stats()`: the pool thread publishes a fresh snapshot.
    pub(crate) stats_wanted: AtomicBool,
    pub(crate) processes: usize,
}

impl Mailbox {
    pub(crate) fn new(processes: usize) -> Result<Mailbox> {
        let bell = sys::poll::eventfd().map_err(|e| Error::io("eventfd", e))?;
        Ok(Mailbox {
            inbox: Mutex::new(Inbox::default()),
            submitted: AtomicU64::new(0),
            bell,
            sleeping: AtomicBool::new(false),
            broken: Mutex::new(None),
            stats: Mutex::new((0, Vec::new())),
            stats_published: Condvar::new(),
            stats_wanted: AtomicBool::new(false),
            processes,
        })
    }

    pub(crate) fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(&self) {
        if self.sleeping.load(SeqCst) {
            sys::poll::ring(self.bell.as_fd());
        }
    }

    fn refusal(&self, ib: &Inbox) -> Option<Error> {
        if let Some(e) = &*self.broken() {
            return Some(e.duplicate());
        }
        if ib.terminate || ib.finished {
            return Some(Error::new(
                ErrorKind::BrokenPool,
                "the pool was terminated; it takes no new tasks",
            ));
        }
        if ib.closed {
            return Some(Error::state("the pool is closed; it takes no new tasks"));
        }
        None
    }

    /// Queues tasks (all or none).
    pub(crate) fn submit(&self, tasks: Vec<Task>) -> Result<()> {
        {
            let mut ib = self.inbox();
            if let Some(e) = self.refusal(&ib) {
                return Err(e);
            }
            let n = tasks.len() as u64;
            ib.pending.extend(tasks);
            self.submitted.fetch_add(n, SeqCst);
        }
        self.wake();
        Ok(())
    }

    /// Whether new tasks would be refused, and why.
    pub(crate) fn check_open(&self) -> Result<()> {
        match self.refusal(&self.inbox()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub(crate) fn close(&self) {
        self.inbox().closed = true;
        sys::poll::ring(self.bell.as_fd());
    }

    pub(crate) fn is_closed(&self) -> bool {
        let ib = self.inbox();
        ib.closed || ib.terminate
    }

    pub(crate) fn terminate(&self) {
        self.inbox().terminate = true;
        sys::poll::ring(self.bell.as_fd());
    }

    /// The error that broke the pool, if any.
    pub(crate) fn broken(&self) -> MutexGuard<'_, Option<Error>> {
        self.broken.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Breaks the pool with `e`, unless it is broken already.
    pub(crate) fn set_broken(&self, e: Error) {
        let mut b = self.broken();
        if b.is_none() {
            *b = Some(e);
        }
    }

    /// A fresh snapshot: asks the pool thread for one (it answers within one turn of
    /// its loop, or at once if asleep) and waits for it at most [`STATS_WAIT`]; the
    /// last one published if the pool thread ended or does not answer in time.
    pub(crate) fn stats(&self) -> Vec<WorkerStats> {
        let lock = || self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let asked = lock().0;
        if !self.inbox().finished {
            self.stats_wanted.store(true, SeqCst);
            sys::poll::ring(self.bell.as_fd());
        }
        let deadline = std::time::Instant::now() + STATS_WAIT;
        loop {
            // The inbox and the snapshot are never locked together.
            let finished = self.inbox().finished;
            let s = lock();
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if s.0 != asked || finished || left.is_zero() {
                return s.1.clone();
            }
            // Short waits: the pool thread may end without publishing again.
            let wait = left.min(Duration::from_millis(5));
            drop(self.stats_published.wait_timeout(s, wait));
        }
    }

    pub(crate) fn publish_stats(&self, v: Vec<WorkerStats>) {
        let mut s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        *s = (s.0 + 1, v);
        self.stats_published.notify_all();
    }
}
