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
//! the next one, as from Python's shared queue.
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
//! Results are decoded by a type-erased `done` closure built where the types are
//! known, in place in the ring (no copy), on the pool thread.
//!
//! [`Queue`]: crate::Queue

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::slot::Phase;
use crate::connection::Waitable;
use crate::error::{Error, ErrorKind, Result};
use crate::process::{Context, Process, describe_exit};
use crate::queue::Queue;
use crate::sync::segment::Segment;
use crate::sys;
use crate::wire::code::code_at;
use crate::wire::codec;

/// Ring size of a worker's queues: room for `map` chunks of a million small items
/// in a small pool (inline items up to half the ring are decoded in place, with no
/// copy and no page faults once the ring is warm); less per worker in big pools,
/// since a ring's pages stay resident once touched. Larger items travel as memfds.
fn ring_size(processes: usize) -> usize {
    ((8 << 20) / processes.max(1)).clamp(256 << 10, 2 << 20)
}
/// Spin this long for work before sleeping.
const SPIN: Duration = Duration::from_micros(50);
/// How often a busy pool thread checks its workers' pidfds.
const DEATH_CHECK: Duration = Duration::from_millis(2);
/// Tasks at most in a worker's window.
const MAX_WINDOW: usize = 256;
/// Work kept queued in a worker when tasks are short.
const WINDOW_WORK_NS: u64 = 500_000;
/// Tasks longer than this on average are handed out one at a time.
const SHORT_TASK_NS: u64 = 250_000;
/// A task running longer than this holds no others queued behind it.
const STALL: Duration = Duration::from_millis(1);
/// Results at least this large are decoded after the next dispatch.
const DEFER_BYTES: usize = 64 << 10;

// Parent -> worker: a 32-byte header, then the payload.
const OP_RUN: u8 = 1;
const OP_EXIT: u8 = 2;
const FLAG_STAMP: u8 = 1;
pub(crate) const TASK_HEADER: usize = 32;
// Worker -> parent: a 16-byte header, then the payload.
const MSG_RESULT: u8 = 1;
const MSG_FAILED: u8 = 2;
const MSG_READY: u8 = 3;
const MSG_INIT_FAILED: u8 = 4;
pub(crate) const RESULT_HEADER: usize = 16;

/// The type-erased completion of a task: the worker's encoded output (borrowed in
/// place from the ring, with its fds) or why there is none.
pub(crate) type RawDone = Box<dyn FnOnce(Result<(&[u8], Vec<OwnedFd>)>) + Send>;

/// A task ready to run: a trampoline (`entry`) that decodes the payload and calls
/// `func` on each item.
pub(crate) struct Task {
    pub(crate) entry: usize,
    pub(crate) func: usize,
    pub(crate) bytes: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
    /// What the task is, for error messages ("task 3", "chunk 2 (items 20..30)").
    pub(crate) what: String,
    pub(crate) timeout: Option<Duration>,
    /// Shared with a future that can be cancelled while pending.
    pub(crate) phase: Option<Arc<Phase>>,
    /// One chunk of a `map`: its siblings are alike, so prefetching is safe.
    pub(crate) chunk: bool,
    pub(crate) done: RawDone,
}

/// A function and its encoded argument, run once in each worker before its tasks.
pub(crate) struct Init {
    pub(crate) entry: usize,
    pub(crate) func: usize,
    pub(crate) args: Blob,
}

/// Encoded bytes with the fds they refer to, serializable (for a worker's arguments).
#[derive(Debug)]
pub(crate) struct Blob {
    pub(crate) bytes: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
}

impl Blob {
    /// Encodes `value`, keeping its own copies of the fds it refers to.
    pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Blob> {
        let enc = codec::encode(value)?;
        let fds = dup_all(&enc.borrowed_fds())?;
        Ok(Blob {
            bytes: enc.bytes,
            fds,
        })
    }
}

pub(crate) fn dup_all(fds: &[BorrowedFd<'_>]) -> Result<Vec<OwnedFd>> {
    fds.iter()
        .map(|f| {
            f.try_clone_to_owned()
                .map_err(|e| Error::io("dup of a handle's fd", e))
        })
        .collect()
}

struct FdRef<'a>(BorrowedFd<'a>);
impl Serialize for FdRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        codec::serialize_fd(self.0, s)
    }
}
struct FdOwned(OwnedFd);
impl<'de> Deserialize<'de> for FdOwned {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        codec::deserialize_fd(d).map(FdOwned)
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let fds: Vec<FdRef<'_>> = self.fds.iter().map(|f| FdRef(f.as_fd())).collect();
        (&self.bytes, fds).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (bytes, fds): (Vec<u8>, Vec<FdOwned>) = Deserialize::deserialize(d)?;
        Ok(Blob {
            bytes,
            fds: fds.into_iter().map(|f| f.0).collect(),
        })
    }
}

/// The status segment of one worker, shared with it.
#[derive(Debug, Clone)]
struct Status(Arc<Segment>);

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Status(Arc::new(Segment::deserialize(d)?)))
    }
}

// Status words (64-bit): a seqlock over the current call.
const S_SEQ: usize = 0;
const S_TASK: usize = 1;
const S_ITEM: usize = 2;
const S_START: usize = 3;

impl Status {
    fn new() -> Result<Status> {
        Ok(Status(Arc::new(Segment::new(
            "multiprocess-pool-worker",
            64,
        )?)))
    }

    /// In the worker: "call `item` of task `id` starts now".
    fn stamp(&self, id: u64, item: u64) {
        let s = &self.0;
        let seq = s.word64(S_SEQ).load(SeqCst);
        s.word64(S_SEQ).store(seq + 1, SeqCst);
        s.word64(S_TASK).store(id, SeqCst);
        s.word64(S_ITEM).store(item, SeqCst);
        s.word64(S_START).store(now_ns(), SeqCst);
        s.word64(S_SEQ).store(seq + 2, SeqCst);
    }

    /// In the parent: (task id, item, start) of the call running now, if stamped.
    fn read(&self) -> Option<(u64, u64, u64)> {
        let s = &self.0;
        for _ in 0..100 {
            let a = s.word64(S_SEQ).load(SeqCst);
            if a % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let v = (
                s.word64(S_TASK).load(SeqCst),
                s.word64(S_ITEM).load(SeqCst),
                s.word64(S_START).load(SeqCst),
            );
            if s.word64(S_SEQ).load(SeqCst) == a {
                return (a > 0).then_some(v);
            }
        }
        None
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock in every process.
fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// What a worker is given.
#[derive(Serialize, Deserialize)]
pub(crate) struct WorkerArgs {
    tasks: Queue<()>,
    results: Queue<()>,
    status: Status,
    init: Option<(usize, usize, Blob)>,
}

/// What the pool is built with.
pub(crate) struct Config {
    pub(crate) processes: usize,
    pub(crate) ctx: Context,
    pub(crate) init: Option<Init>,
    pub(crate) max_tasks: Option<usize>,
    pub(crate) name: &'static str,
}

/// Counters of one worker, for [`Pool::stats`](super::Pool::stats).
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
}

#[derive(Default)]
struct Inbox {
    pending: VecDeque<Task>,
    closed: bool,
    terminate: bool,
    /// Set when the pool thread ended (broken, terminated or drained).
    finished: bool,
}

/// The state shared by the pool's handles and its thread.
pub(crate) struct Shared {
    inbox: Mutex<Inbox>,
    submitted: AtomicU64,
    bell: OwnedFd,
    sleeping: AtomicBool,
    broken: Mutex<Option<Error>>,
    stats: Mutex<Vec<WorkerStats>>,
    pub(crate) processes: usize,
}

impl Shared {
    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(&self) {
        if self.sleeping.load(SeqCst) {
            sys::poll::ring(self.bell.as_fd());
        }
    }

    fn refusal(&self, ib: &Inbox) -> Option<Error> {
        if let Some(e) = &*self.broken.lock().unwrap_or_else(|e| e.into_inner()) {
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

    pub(crate) fn stats(&self) -> Vec<WorkerStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A running pool: its shared state and its thread.
pub(crate) struct Core {
    pub(crate) shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Core {
    /// Starts the workers (here, so that failures are reported to the caller) and the
    /// pool thread.
    pub(crate) fn start(cfg: Config) -> Result<Core> {
        if cfg.processes == 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a pool needs at least one process",
            ));
        }
        let bell = sys::poll::eventfd().map_err(|e| Error::io("eventfd", e))?;
        let shared = Arc::new(Shared {
            inbox: Mutex::new(Inbox::default()),
            submitted: AtomicU64::new(0),
            bell,
            sleeping: AtomicBool::new(false),
            broken: Mutex::new(None),
            stats: Mutex::new(Vec::new()),
            processes: cfg.processes,
        });
        let mut runner = Runner {
            shared: shared.clone(),
            cfg,
            workers: Vec::new(),
            pending: VecDeque::new(),
            started: 0,
            last_death_check: Instant::now(),
            deferred: Vec::new(),
            published: 0,
        };
        for _ in 0..runner.cfg.processes {
            let w = runner.start_worker()?;
            runner.workers.push(w);
        }
        runner.publish_stats();
        let thread = std::thread::Builder::new()
            .name("multiprocess-pool".into())
            .spawn(move || runner.run())
            .map_err(|e| Error::io("starting the pool thread", e))?;
        Ok(Core {
            shared,
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

struct InFlight {
    task: Task,
    id: u64,
    sent: Instant,
}

struct Worker {
    proc: Process<WorkerArgs>,
    name: String,
    pid: u32,
    tasks: Queue<()>,
    results: Queue<()>,
    status: Status,
    inflight: VecDeque<InFlight>,
    dispatched: usize,
    retiring: bool,
    ready: bool,
    /// Why we killed it (a timeout), to say so when it is reaped.
    killed_for: Option<Error>,
    last_done: Instant,
    ewma_ns: u64,
    tasks_done: u64,
    busy: Duration,
}

impl Worker {
    /// Whether the task it runs has run for a while: then nothing more is queued
    /// behind it, and what is queued may be taken back for idle workers.
    fn stalled(&self, now: Instant) -> bool {
        self.inflight
            .front()
            .is_some_and(|h| now.saturating_duration_since(h.sent.max(self.last_done)) > STALL)
    }

    fn window(&self) -> usize {
        if self.stalled(Instant::now()) {
            return 1;
        }
        if self.ewma_ns == 0 || self.ewma_ns > SHORT_TASK_NS {
            1
        } else {
            1 + (WINDOW_WORK_NS / self.ewma_ns.max(1)).min(MAX_WINDOW as u64) as usize
        }
    }
}

struct Runner {
    shared: Arc<Shared>,
    cfg: Config,
    workers: Vec<Worker>,
    pending: VecDeque<Task>,
    started: usize,
    last_death_check: Instant,
    /// Large results taken from the rings, to decode once workers have new work.
    deferred: Vec<(RawDone, Vec<u8>, Vec<OwnedFd>)>,
    /// Tasks done, summed over the workers, when `stats()` was last refreshed.
    published: u64,
}

static TASK_IDS: AtomicU64 = AtomicU64::new(1);

impl Runner {
    fn start_worker(&mut self) -> Result<Worker> {
        self.started += 1;
        let name = format!("{}-{}", self.cfg.name, self.started);
        let ring = ring_size(self.cfg.processes);
        let tasks = Queue::from_raw(crate::queue::RawQueue::new(0, ring)?);
        let results = Queue::from_raw(crate::queue::RawQueue::new(0, ring)?);
        let status = Status::new()?;
        let init = match &self.cfg.init {
            Some(i) => Some((
                i.entry,
                i.func,
                Blob {
                    bytes: i.args.bytes.clone(),
                    fds: dup_all(&i.args.fds.iter().map(|f| f.as_fd()).collect::<Vec<_>>())?,
                },
            )),
            None => None,
        };
        let ready = init.is_none();
        let args = WorkerArgs {
            tasks: tasks.clone(),
            results: results.clone(),
            status: status.clone(),
            init,
        };
        let mut proc = Process::new(worker_main, args)
            .name(name.clone())
            .daemon(true)
            .context(self.cfg.ctx);
        proc.start()?;
        let pid = proc.pid().unwrap_or(0);
        Ok(Worker {
            proc,
            name,
            pid,
            tasks,
            results,
            status,
            inflight: VecDeque::new(),
            dispatched: 0,
            retiring: false,
            ready,
            killed_for: None,
            last_done: Instant::now(),
            ewma_ns: 0,
            tasks_done: 0,
            busy: Duration::ZERO,
        })
    }

    fn publish_stats(&mut self) {
        self.published = self.workers.iter().map(|w| w.tasks_done).sum();
        let v = self
            .workers
            .iter()
            .map(|w| WorkerStats {
                name: w.name.clone(),
                pid: w.pid,
                tasks_done: w.tasks_done,
                busy: w.busy,
            })
            .collect();
        *self.shared.stats.lock().unwrap_or_else(|e| e.into_inner()) = v;
    }

    fn run(mut self) {
        let mut seen = self.shared.submitted.load(SeqCst);
        let mut idle_since: Option<Instant> = None;
        loop {
            let mut progress = false;
            let (closed, terminate) = {
                let mut ib = self.shared.inbox();
                if !ib.pending.is_empty() {
                    self.pending.extend(ib.pending.drain(..));
                    progress = true;
                }
                (ib.closed, ib.terminate)
            };
            if terminate {
                self.terminate_all();
                return;
            }
            for i in 0..self.workers.len() {
                progress |= self.drain(i);
            }
            if self.is_broken() {
                self.break_down();
                return;
            }
            // A busy pool thread never sleeps (where deaths and deadlines are
            // noticed), so look now and then.
            if self.last_death_check.elapsed() >= DEATH_CHECK {
                self.check_timeouts();
                progress |= self.reap_dead();
                if self.is_broken() {
                    self.break_down();
                    return;
                }
            }
            progress |= self.dispatch();
            self.run_deferred();
            self.retire();
            if closed
                && self.pending.is_empty()
                && self.workers.iter().all(|w| w.inflight.is_empty())
            {
                self.shutdown_workers();
                return;
            }
            if progress {
                idle_since = None;
                continue;
            }
            // Spin a little before sleeping: new tasks or results usually follow.
            let start = *idle_since.get_or_insert_with(Instant::now);
            if start.elapsed() < SPIN {
                let now = self.shared.submitted.load(SeqCst);
                if now == seen && self.workers.iter().all(|w| w.results.is_empty()) {
                    std::hint::spin_loop();
                }
                seen = now;
                continue;
            }
            idle_since = None;
            self.sleep();
            // Whatever woke us (a death, a deadline), look at the workers next.
            let now = Instant::now();
            self.last_death_check = now.checked_sub(DEATH_CHECK).unwrap_or(now);
            seen = self.shared.submitted.load(SeqCst);
        }
    }

    fn run_deferred(&mut self) {
        for (done, bytes, fds) in self.deferred.drain(..) {
            done(Ok((&bytes, fds)));
        }
    }

    fn is_broken(&self) -> bool {
        self.shared
            .broken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Sleeps until a task is submitted, a result or a death arrives, or the next
    /// timeout deadline.
    fn sleep(&mut self) {
        // Fresh counters for `stats()` while idle, without a copy per wake-up.
        if self.workers.iter().map(|w| w.tasks_done).sum::<u64>() != self.published {
            self.publish_stats();
        }
        let mut deadline = self.check_timeouts();
        // An idle worker while another holds queued tasks: look again when the
        // latter's task has run long enough for them to be taken back.
        if self.workers.iter().any(|w| w.inflight.is_empty()) {
            for w in &self.workers {
                if w.inflight.len() >= 2 {
                    let h = w.inflight.front().expect("len >= 2");
                    let at = h.sent.max(w.last_done) + STALL + Duration::from_micros(100);
                    deadline = Some(deadline.map_or(at, |d| d.min(at)));
                }
            }
        }
        self.shared.sleeping.store(true, SeqCst);
        let ready = {
            let ib = self.shared.inbox();
            !ib.pending.is_empty() || ib.closed || ib.terminate
        };
        let mut begun = Vec::with_capacity(self.workers.len());
        let mut any = ready;
        for w in &self.workers {
            any |= w.results.wait_begin();
            begun.push(());
        }
        if !any {
            let mut fds = Vec::with_capacity(1 + 2 * self.workers.len());
            fds.push(self.shared.bell.as_raw_fd());
            for w in &self.workers {
                if let Ok(f) = w.results.wait_fd() {
                    fds.push(f.as_raw_fd());
                }
                if let Ok(f) = w.proc.sentinel() {
                    fds.push(f.as_raw_fd());
                }
            }
            let _ = sys::poll::wait_any(&fds, deadline);
        }
        for w in &self.workers {
            w.results.wait_end();
        }
        self.shared.sleeping.store(false, SeqCst);
        sys::poll::silence(self.shared.bell.as_fd());
    }

    /// Kills workers whose current call ran past its task's timeout; the next deadline.
    fn check_timeouts(&mut self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let now = now_ns();
        for w in &mut self.workers {
            let Some(head) = w.inflight.front() else {
                continue;
            };
            let Some(t) = head.task.timeout else {
                continue;
            };
            if w.killed_for.is_some() {
                continue;
            }
            let recheck = Instant::now() + Duration::from_millis(1);
            match w.status.read() {
                Some((id, item, start)) if id == head.id => {
                    let end = start.saturating_add(t.as_nanos().min(u64::MAX as u128) as u64);
                    if now >= end {
                        let _ = w.proc.kill();
                        w.killed_for = Some(Error::new(
                            ErrorKind::Timeout,
                            format!(
                                "{}{} timed out after {:?}: its worker {} (pid {}) was killed and replaced",
                                head.task.what,
                                if item > 0 {
                                    format!(" (item {item} of it)")
                                } else {
                                    String::new()
                                },
                                t,
                                w.name,
                                w.pid
                            ),
                        ));
                    } else {
                        let at = Instant::now() + Duration::from_nanos(end - now);
                        next = Some(next.map_or(at, |n| n.min(at)));
                    }
                }
                // Not started yet (the worker is finishing the task before).
                _ => next = Some(next.map_or(recheck, |n| n.min(recheck))),
            }
        }
        next
    }

    /// Takes every result worker `i` has sent. True if there was any.
    fn drain(&mut self, i: usize) -> bool {
        let mut any = false;
        loop {
            let w = &mut self.workers[i];
            if w.results.is_empty() {
                return any;
            }
            let mut msg: Option<(u8, u64)> = None;
            let inflight = &mut w.inflight;
            let mut finished: Option<Instant> = None;
            let mut init_error: Option<String> = None;
            let mut deferred: Option<(RawDone, Vec<u8>, Vec<OwnedFd>)> = None;
            let r = w
                .results
                .raw()
                .get_with(Some(Instant::now()), |bytes, fds| {
                    if bytes.len() < RESULT_HEADER {
                        return Err(Error::new(ErrorKind::Protocol, "short pool result"));
                    }
                    let kind = bytes[0];
                    let id = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
                    msg = Some((kind, id));
                    let body = &bytes[RESULT_HEADER..];
                    match kind {
                        MSG_RESULT | MSG_FAILED => {
                            if inflight.front().map(|f| f.id) != Some(id) {
                                return Err(Error::new(
                                    ErrorKind::Protocol,
                                    "a pool worker answered out of order",
                                ));
                            }
                            let f = inflight.pop_front().expect("checked");
                            finished = Some(f.sent);
                            let what = f.task.what;
                            let done = f.task.done;
                            if kind == MSG_RESULT && body.len() >= DEFER_BYTES {
                                // Copy it out and decode after the next dispatch, so
                                // the worker is not idle while we decode.
                                deferred = Some((done, body.to_vec(), fds));
                            } else if kind == MSG_RESULT {
                                done(Ok((body, fds)));
                            } else {
                                let text = String::from_utf8_lossy(body).into_owned();
                                let kind = if text.starts_with("cannot serialize") {
                                    ErrorKind::Serialize
                                } else {
                                    ErrorKind::Deserialize
                                };
                                done(Err(Error::new(kind, format!("{what}: {text}"))));
                            }
                        }
                        MSG_INIT_FAILED => {
                            init_error = Some(String::from_utf8_lossy(body).into_owned());
                        }
                        _ => {}
                    }
                    Ok(())
                });
            if r.is_err() {
                return any;
            }
            any = true;
            if let Some(d) = deferred {
                self.deferred.push(d);
            }
            let w = &mut self.workers[i];
            match msg {
                Some((MSG_READY, _)) => w.ready = true,
                Some((MSG_INIT_FAILED, _)) => {
                    let e = Error::new(
                        ErrorKind::BrokenPool,
                        format!(
                            "the pool's initializer failed in {} (pid {}): {}",
                            w.name,
                            w.pid,
                            init_error.unwrap_or_default()
                        ),
                    );
                    self.set_broken(e);
                    return true;
                }
                _ => {}
            }
            if let Some(sent) = finished {
                let now = Instant::now();
                let began = sent.max(w.last_done);
                let took = now.saturating_duration_since(began);
                w.last_done = now;
                let ns = took.as_nanos().min(u64::MAX as u128) as u64;
                w.ewma_ns = if w.ewma_ns == 0 {
                    ns.max(1)
                } else {
                    ((w.ewma_ns * 7 + ns) / 8).max(1)
                };
                w.tasks_done += 1;
                w.busy += took;
                if w.tasks_done % 64 == 1 {
                    self.publish_stats();
                }
            }
        }
    }

    fn set_broken(&self, e: Error) {
        let mut b = self.shared.broken.lock().unwrap_or_else(|e| e.into_inner());
        if b.is_none() {
            *b = Some(e);
        }
    }

    /// Hands pending tasks to workers with room in their windows, breadth first.
    /// Takes back the tasks queued behind a long one when another worker is idle
    /// (Python's shared queue gives an idle worker the next task; so do we). The
    /// worker and we both consume its task ring under its consumer lock: each queued
    /// task goes to exactly one of us.
    fn steal(&mut self) {
        let idle = self
            .workers
            .iter()
            .any(|w| w.inflight.is_empty() && !w.retiring && w.killed_for.is_none());
        if !idle {
            return;
        }
        let now = Instant::now();
        for w in &mut self.workers {
            if w.inflight.len() < 2 || !w.stalled(now) {
                continue;
            }
            let mut back: Vec<Task> = Vec::new();
            loop {
                let id = w.tasks.raw().get_with(Some(Instant::now()), |bytes, _fds| {
                    Ok(u64::from_le_bytes(
                        bytes[8..16].try_into().expect("8 bytes"),
                    ))
                });
                let Ok(id) = id else { break };
                if let Some(at) = w.inflight.iter().position(|f| f.id == id) {
                    if let Some(f) = w.inflight.remove(at) {
                        w.dispatched = w.dispatched.saturating_sub(1);
                        back.push(f.task);
                    }
                }
            }
            for t in back.into_iter().rev() {
                self.pending.push_front(t);
            }
        }
    }

    fn dispatch(&mut self) -> bool {
        self.steal();
        let mut any = false;
        loop {
            let mut gave = false;
            for i in 0..self.workers.len() {
                let w = &self.workers[i];
                if self.pending.is_empty() {
                    return any;
                }
                // Chunks of one `map` are alike: a second one waiting in the worker
                // hides the round trip between them.
                let chunk = self.pending.front().is_some_and(|t| t.chunk);
                let window = if chunk { w.window().max(2) } else { w.window() };
                if w.retiring || w.killed_for.is_some() || w.inflight.len() >= window {
                    continue;
                }
                if let Some(max) = self.cfg.max_tasks {
                    if w.dispatched >= max {
                        continue;
                    }
                }
                let Some(task) = self.pending.pop_front() else {
                    return any;
                };
                if let Some(p) = &task.phase {
                    if !p.start() {
                        // Cancelled while pending: its future is already complete.
                        gave = true;
                        continue;
                    }
                }
                let id = TASK_IDS.fetch_add(1, SeqCst);
                let mut task = task;
                let h = &mut task.bytes[..TASK_HEADER];
                h[0] = OP_RUN;
                h[1] = if task.timeout.is_some() {
                    FLAG_STAMP
                } else {
                    0
                };
                h[8..16].copy_from_slice(&id.to_le_bytes());
                h[16..24].copy_from_slice(&(task.entry as u64).to_le_bytes());
                h[24..32].copy_from_slice(&(task.func as u64).to_le_bytes());
                let w = &mut self.workers[i];
                let fds: Vec<BorrowedFd<'_>> = task.fds.iter().map(|f| f.as_fd()).collect();
                let sent = w.tasks.raw().put(&task.bytes, &fds, Some(Instant::now()));
                drop(fds);
                match sent {
                    Ok(()) => {
                        w.dispatched += 1;
                        w.inflight.push_back(InFlight {
                            task,
                            id,
                            sent: Instant::now(),
                        });
                        gave = true;
                        any = true;
                    }
                    Err(_) => {
                        // The ring is full (huge tasks) or the worker is gone: retry later.
                        self.pending.push_front(task);
                    }
                }
            }
            if !gave {
                return any;
            }
        }
    }

    /// Asks workers that reached `max_tasks_per_child` and are idle to exit.
    fn retire(&mut self) {
        let Some(max) = self.cfg.max_tasks else {
            return;
        };
        for w in &mut self.workers {
            if !w.retiring && w.dispatched >= max && w.inflight.is_empty() && send_exit(&w.tasks) {
                w.retiring = true;
            }
        }
    }

    /// Handles workers that ended: reports the task each was running, re-queues the
    /// rest, starts replacements. True if any ended.
    fn reap_dead(&mut self) -> bool {
        self.last_death_check = Instant::now();
        let fds: Vec<_> = self
            .workers
            .iter()
            .filter_map(|w| w.proc.sentinel().ok().map(|f| f.as_raw_fd()))
            .collect();
        if fds.len() != self.workers.len() {
            return false;
        }
        let Ok(ready) = sys::poll::wait_any(&fds, Some(Instant::now())) else {
            return false;
        };
        if ready.is_empty() {
            return false;
        }
        for &i in ready.iter().rev() {
            // Results it sent before it died are still good.
            self.drain(i);
            let mut w = self.workers.remove(i);
            let _ = w.proc.join();
            let code = w.proc.exitcode().unwrap_or(-9);
            let how = describe_exit(code);
            if let Some(head) = w.inflight.pop_front() {
                let err = w.killed_for.take().unwrap_or_else(|| {
                    Error::new(
                        ErrorKind::ProcessDied,
                        format!(
                            "{}: the pool worker {} (pid {}) running it {how}",
                            head.task.what, w.name, w.pid
                        ),
                    )
                    .with_exitcode(code)
                });
                (head.task.done)(Err(err));
            }
            if !w.ready && !self.is_broken() {
                self.set_broken(
                    Error::new(
                        ErrorKind::BrokenPool,
                        format!(
                            "the pool's initializer failed: worker {} (pid {}) {how} before it was ready",
                            w.name, w.pid
                        ),
                    )
                    .with_exitcode(code),
                );
            }
            // Tasks queued behind it go first to the others.
            while let Some(f) = w.inflight.pop_back() {
                self.pending.push_front(f.task);
            }
            if !self.is_broken() {
                match self.start_worker() {
                    Ok(nw) => self.workers.insert(i, nw),
                    Err(e) => {
                        if self.workers.is_empty() {
                            self.set_broken(Error::new(
                                ErrorKind::BrokenPool,
                                format!("no pool worker left: starting a new one failed: {e}"),
                            ));
                        }
                    }
                }
            }
        }
        self.publish_stats();
        true
    }

    fn fail_all(&mut self, e: &Error) {
        self.run_deferred();
        let mut tasks: Vec<Task> = self.pending.drain(..).collect();
        tasks.extend(self.shared.inbox().pending.drain(..));
        for w in &mut self.workers {
            tasks.extend(w.inflight.drain(..).map(|f| f.task));
        }
        for t in tasks {
            let e = Error::new(e.kind(), format!("{}: {}", t.what, e));
            (t.done)(Err(e));
        }
    }

    fn stop_workers(&mut self, grace: Duration) {
        for w in &self.workers {
            let _ = w.proc.terminate();
        }
        self.reap_all(grace);
    }

    /// Waits up to `grace` for every worker to exit, then kills the rest, and forgets
    /// them all.
    fn reap_all(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        for w in &self.workers {
            let left = deadline.saturating_duration_since(Instant::now());
            if !w.proc.join_timeout(left).unwrap_or(true) {
                let _ = w.proc.kill();
                let _ = w.proc.join();
            }
        }
        self.workers.clear();
    }

    fn finish(&mut self) {
        let mut ib = self.shared.inbox();
        ib.finished = true;
        let rest: Vec<Task> = ib.pending.drain(..).collect();
        drop(ib);
        for t in rest {
            let e = Error::new(
                ErrorKind::Cancelled,
                format!("{}: the pool ended before it ran", t.what),
            );
            (t.done)(Err(e));
        }
        self.publish_stats();
    }

    fn terminate_all(&mut self) {
        // Fail the tasks first: stopping the workers drops what they held.
        self.fail_all(&Error::new(
            ErrorKind::Cancelled,
            "the pool was terminated before it finished",
        ));
        self.stop_workers(Duration::from_millis(200));
        self.finish();
    }

    fn break_down(&mut self) {
        let e = self
            .shared
            .broken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(Error::duplicate)
            .expect("broken");
        self.fail_all(&e);
        self.stop_workers(Duration::from_millis(100));
        self.finish();
    }

    fn shutdown_workers(&mut self) {
        self.run_deferred();
        for w in &self.workers {
            if !w.retiring {
                send_exit(&w.tasks);
            }
        }
        self.reap_all(Duration::from_secs(5));
        self.finish();
    }
}

fn send_exit(tasks: &Queue<()>) -> bool {
    let mut header = [0u8; TASK_HEADER];
    header[0] = OP_EXIT;
    tasks.raw().put(&header, &[], Some(Instant::now())).is_ok()
}

// ---------------------------------------------------------------------------------
// The worker side.

/// How one call in a chunk failed, as sent back.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct Failure {
    pub(crate) message: String,
}

/// A chunk's results; all-`Ok` chunks (the usual case) skip the per-item tag.
#[derive(Serialize, Deserialize)]
pub(crate) enum ChunkOut<R> {
    AllOk(Vec<R>),
    Mixed(Vec<std::result::Result<R, Failure>>),
}

/// The stamp callback handed to a trampoline.
pub(crate) struct Stamp<'a> {
    status: Option<(&'a Status, u64)>,
}

impl Stamp<'_> {
    fn begin(&self, item: usize) {
        if let Some((s, id)) = self.status {
            s.stamp(id, item as u64);
        }
    }
}

/// The output of a trampoline: encoded bytes and the fds they refer to.
pub(crate) type Encoded = (Vec<u8>, Vec<OwnedFd>);

/// A trampoline: decode a `Vec<A>`, call `func` on each item, encode a `ChunkOut<R>`.
pub(crate) type Entry =
    fn(usize, &[u8], Vec<OwnedFd>, &Stamp<'_>) -> std::result::Result<Encoded, String>;

/// The trampoline for `fn(A) -> R` over a chunk (made generic where the types are
/// known; its code offset travels in the task).
pub(crate) fn run_chunk<A, R>(
    func: usize,
    bytes: &[u8],
    fds: Vec<OwnedFd>,
    stamp: &Stamp<'_>,
) -> std::result::Result<Encoded, String>
where
    A: DeserializeOwned,
    R: Serialize,
{
    #[allow(unsafe_code)]
    // SAFETY: the pool made `func` with `code_offset` from an `fn(A) -> R` of this
    // binary, together with this entry (same `A`, `R`).
    let f: fn(A) -> R = unsafe { code_at(func) };
    let items: Vec<A> = codec::decode(bytes, fds)
        .map_err(|e| format!("cannot decode the task's arguments: {e}"))?;
    let n = items.len();
    let mut ok: Vec<R> = Vec::with_capacity(n);
    let mut mixed: Option<Vec<std::result::Result<R, Failure>>> = None;
    for (i, a) in items.into_iter().enumerate() {
        stamp.begin(i);
        let r = panic::catch_unwind(AssertUnwindSafe(|| f(a))).map_err(|_| Failure {
            message: crate::process::take_panic().unwrap_or_else(|| "panicked".into()),
        });
        match (&mut mixed, r) {
            (None, Ok(v)) => ok.push(v),
            (None, Err(e)) => {
                let mut m: Vec<std::result::Result<R, Failure>> =
                    std::mem::take(&mut ok).into_iter().map(Ok).collect();
                m.push(Err(e));
                mixed = Some(m);
            }
            (Some(m), r) => m.push(r),
        }
    }
    let out = match mixed {
        None => ChunkOut::AllOk(ok),
        Some(m) => ChunkOut::Mixed(m),
    };
    let expected = (std::mem::size_of::<R>() + 4) * n + 16;
    let enc = codec::encode_sized(&out, RESULT_HEADER, expected)
        .map_err(|e| format!("cannot serialize the result: {e}"))?;
    let fds = if enc.fds.is_empty() {
        Vec::new()
    } else {
        dup_all(&enc.borrowed_fds()).map_err(|e| e.to_string())?
    };
    Ok((enc.bytes, fds))
}

/// The trampoline of an initializer `fn(A)`.
pub(crate) fn run_init<A: DeserializeOwned>(
    func: usize,
    bytes: &[u8],
    fds: Vec<OwnedFd>,
    _stamp: &Stamp<'_>,
) -> std::result::Result<Encoded, String> {
    #[allow(unsafe_code)]
    // SAFETY: the pool made `func` with `code_offset` from the initializer, an `fn(A)`
    // of this binary, together with this entry (same `A`).
    let f: fn(A) = unsafe { code_at(func) };
    let a: A = codec::decode(bytes, fds)
        .map_err(|e| format!("cannot decode the initializer's arguments: {e}"))?;
    panic::catch_unwind(AssertUnwindSafe(|| f(a)))
        .map_err(|_| crate::process::take_panic().unwrap_or_else(|| "panicked".into()))?;
    Ok((Vec::new(), Vec::new()))
}

/// Sends a message whose first [`RESULT_HEADER`] bytes are reserved for the header.
fn send_prefixed(
    results: &Queue<()>,
    kind: u8,
    id: u64,
    mut buf: Vec<u8>,
    fds: &[OwnedFd],
) -> Result<()> {
    buf[0] = kind;
    buf[8..16].copy_from_slice(&id.to_le_bytes());
    let fds: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
    results.raw().put(&buf, &fds, None)
}

fn send(results: &Queue<()>, kind: u8, id: u64, body: &[u8]) -> Result<()> {
    let mut buf = vec![0u8; RESULT_HEADER];
    buf.extend_from_slice(body);
    send_prefixed(results, kind, id, buf, &[])
}

enum Job {
    Run {
        id: u64,
        stamp: bool,
        entry: usize,
        func: usize,
        bytes: Vec<u8>,
        fds: Vec<OwnedFd>,
    },
    Exit,
}

/// A pool worker's life: run the initializer, then tasks until told to exit.
fn worker_main(args: WorkerArgs) {
    crate::process::quiet_panics();
    // Chunks allocate and free the same large buffers over and over.
    crate::sys::process::keep_heap();
    if let Some((entry, func, blob)) = args.init {
        #[allow(unsafe_code)]
        // SAFETY: the pool made `entry` with `code_offset` from an `Entry` of this binary.
        let run: Entry = unsafe { code_at(entry) };
        match run(func, &blob.bytes, blob.fds, &Stamp { status: None }) {
            Ok(_) => {
                if send(&args.results, MSG_READY, 0, &[]).is_err() {
                    return;
                }
            }
            Err(msg) => {
                let _ = send(&args.results, MSG_INIT_FAILED, 0, msg.as_bytes());
                std::process::exit(1);
            }
        }
    }
    loop {
        let job = args.tasks.raw().get_with(None, |bytes, fds| {
            if bytes.len() < TASK_HEADER {
                return Err(Error::new(ErrorKind::Protocol, "short pool task"));
            }
            let word = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8"));
            Ok(match bytes[0] {
                OP_RUN => Job::Run {
                    id: word(8),
                    stamp: bytes[1] & FLAG_STAMP != 0,
                    entry: word(16) as usize,
                    func: word(24) as usize,
                    bytes: bytes[TASK_HEADER..].to_vec(),
                    fds,
                },
                _ => Job::Exit,
            })
        });
        match job {
            Ok(Job::Run {
                id,
                stamp,
                entry,
                func,
                bytes,
                fds,
            }) => {
                #[allow(unsafe_code)]
                // SAFETY: the pool thread of our parent (this binary) made `entry` with
                // `code_offset` from an `Entry`.
                let run: Entry = unsafe { code_at(entry) };
                let st = Stamp {
                    status: stamp.then_some((&args.status, id)),
                };
                let sent = match run(func, &bytes, fds, &st) {
                    Ok((out, ofds)) => send_prefixed(&args.results, MSG_RESULT, id, out, &ofds),
                    Err(msg) => send(&args.results, MSG_FAILED, id, msg.as_bytes()),
                };
                if sent.is_err() {
                    return;
                }
            }
            Ok(Job::Exit) | Err(_) => return,
        }
    }
}
