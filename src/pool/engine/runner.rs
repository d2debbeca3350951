//! The parent's pool thread: it owns the workers, hands them tasks, collects their
//! results, and notices deaths and deadlines (see the [engine notes](super)).

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{
    AtomicU64,
    Ordering::{Relaxed, SeqCst},
};
use std::time::{Duration, Instant};

use super::mailbox::{Finish, Mailbox, Task, WorkerStats};
use super::protocol::{Blob, ResultHeader, ResultKind, TaskHeader};
use super::status::{Status, now_ns};
use super::window::{self, STALL};
use super::worker::{WorkerArgs, worker_main};
use crate::connection::Waitable;
use crate::error::{Error, ErrorKind, Result};
use crate::process::{Context, Process, describe_exit};
use crate::queue::{Queue, RawQueue};
use crate::sys;

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
/// Results at least this large are decoded after the next dispatch.
const DEFER_BYTES: usize = 64 << 10;

/// A large result copied out of its ring, to decode after the next dispatch.
type Deferred = (Box<dyn Finish>, Vec<u8>, Vec<OwnedFd>);

/// A function and its encoded argument, run once in each worker before its tasks.
pub(crate) struct Init {
    /// The trampoline `run_init::<A>`, as a code offset.
    pub(crate) entry: usize,
    /// The initializer `fn(A)`, as a code offset.
    pub(crate) func: usize,
    pub(crate) args: Blob,
}

/// What the pool is built with.
pub(crate) struct Config {
    pub(crate) processes: usize,
    pub(crate) ctx: Context,
    pub(crate) init: Option<Init>,
    pub(crate) max_tasks: Option<usize>,
    pub(crate) name: &'static str,
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
            .is_some_and(|h| window::stalled(h.sent, self.last_done, now))
    }

    fn window(&self) -> usize {
        window::window(self.ewma_ns, self.stalled(Instant::now()))
    }
}

/// The pool thread's state: the workers and the tasks it holds.
pub(crate) struct Runner {
    mailbox: Arc<Mailbox>,
    cfg: Config,
    workers: Vec<Worker>,
    pending: VecDeque<Task>,
    last_death_check: Instant,
    /// Large results taken from the rings, to decode once workers have new work.
    deferred: Vec<Deferred>,
    /// Tasks done, summed over the workers, when `stats()` was last refreshed.
    published: u64,
}

static TASK_IDS: AtomicU64 = AtomicU64::new(1);

impl Runner {
    /// Starts the workers (here, so that failures are reported to the caller), then
    /// the pool thread.
    pub(crate) fn spawn(mailbox: Arc<Mailbox>, cfg: Config) -> Result<std::thread::JoinHandle<()>> {
        let mut runner = Runner {
            mailbox,
            cfg,
            workers: Vec::new(),
            pending: VecDeque::new(),
            last_death_check: Instant::now(),
            deferred: Vec::new(),
            published: 0,
        };
        for _ in 0..runner.cfg.processes {
            let w = runner.start_worker()?;
            runner.workers.push(w);
        }
        runner.publish_stats();
        std::thread::Builder::new()
            .name("multiprocess-pool".into())
            .spawn(move || runner.run())
            .map_err(|e| Error::io("starting the pool thread", e))
    }

    fn start_worker(&mut self) -> Result<Worker> {
        let ring = ring_size(self.cfg.processes);
        let tasks = Queue::from_raw(RawQueue::new(0, ring)?);
        let results = Queue::from_raw(RawQueue::new(0, ring)?);
        let status = Status::new()?;
        let init = match &self.cfg.init {
            Some(i) => Some((i.entry, i.func, i.args.try_clone()?)),
            None => None,
        };
        let ready = init.is_none();
        let args = WorkerArgs {
            tasks: tasks.clone(),
            results: results.clone(),
            status: status.clone(),
            init,
        };
        let proc = Process::new(worker_main, args);
        // Numbered from this process's count of children, as Python names them
        // (`Process-5` becomes `PoolWorker-5`): unique across pools.
        let name = proc.get_name().replacen("Process", self.cfg.name, 1);
        let mut proc = proc.name(name.clone()).daemon(true).context(self.cfg.ctx);
        proc.start()?;
        let pid = proc.pid().unwrap_or(0);
        trace!(debug, worker = %name, pid, "pool worker started");
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
            .map(|w| {
                let head = w.inflight.front();
                WorkerStats {
                    name: w.name.clone(),
                    pid: w.pid,
                    tasks_done: w.tasks_done,
                    busy: w.busy,
                    task: head.map(|h| h.task.what.clone()),
                    since: head.map(|h| running_since(w, h)),
                }
            })
            .collect();
        self.mailbox.publish_stats(v);
    }

    fn run(mut self) {
        let _span = trace_span!(DEBUG, "pool", name = self.cfg.name);
        let mut seen = self.mailbox.submitted.load(SeqCst);
        let mut idle_since: Option<Instant> = None;
        loop {
            let mut progress = false;
            let (closed, terminate) = {
                let mut ib = self.mailbox.inbox();
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
            // A plain load on the hot path; the swap only when asked.
            let wanted = &self.mailbox.stats_wanted;
            if wanted.load(Relaxed) && wanted.swap(false, SeqCst) {
                self.publish_stats(); // asked for by `stats()`: what runs now
            }
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
                let now = self.mailbox.submitted.load(SeqCst);
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
            seen = self.mailbox.submitted.load(SeqCst);
        }
    }

    fn run_deferred(&mut self) {
        for (done, bytes, fds) in self.deferred.drain(..) {
            done.finish(Ok((&bytes, fds)));
        }
    }

    fn is_broken(&self) -> bool {
        self.mailbox.broken().is_some()
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
        self.mailbox.sleeping.store(true, SeqCst);
        let ready = {
            let ib = self.mailbox.inbox();
            !ib.pending.is_empty() || ib.closed || ib.terminate
        } || self.mailbox.stats_wanted.load(SeqCst);
        let mut begun = Vec::with_capacity(self.workers.len());
        let mut any = ready;
        for w in &self.workers {
            any |= w.results.wait_begin();
            begun.push(());
        }
        if !any {
            let mut fds = Vec::with_capacity(1 + 2 * self.workers.len());
            fds.push(self.mailbox.bell.as_raw_fd());
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
        self.mailbox.sleeping.store(false, SeqCst);
        sys::poll::silence(self.mailbox.bell.as_fd());
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
                        trace!(warn, worker = %w.name, pid = w.pid, task = %head.task.what, timeout = ?t, "task timed out: killing its worker");
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
            let mut msg: Option<ResultKind> = None;
            let inflight = &mut w.inflight;
            let mut finished: Option<Instant> = None;
            let mut init_error: Option<String> = None;
            let mut deferred: Option<Deferred> = None;
            let r = w
                .results
                .raw()
                .get_with(Some(Instant::now()), |bytes, fds| {
                    let ResultHeader { kind, id } = ResultHeader::decode(bytes)?;
                    msg = Some(kind);
                    let body = &bytes[ResultHeader::LEN..];
                    match kind {
                        ResultKind::Result | ResultKind::Failed => {
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
                            if kind == ResultKind::Result && body.len() >= DEFER_BYTES {
                                // Copy it out and decode after the next dispatch, so
                                // the worker is not idle while we decode.
                                deferred = Some((done, body.to_vec(), fds));
                            } else if kind == ResultKind::Result {
                                done.finish(Ok((body, fds)));
                            } else {
                                let text = String::from_utf8_lossy(body).into_owned();
                                let kind = if text.starts_with("cannot serialize") {
                                    ErrorKind::Serialize
                                } else {
                                    ErrorKind::Deserialize
                                };
                                done.finish(Err(Error::new(kind, format!("{what}: {text}"))));
                            }
                        }
                        ResultKind::InitFailed => {
                            init_error = Some(String::from_utf8_lossy(body).into_owned());
                        }
                        ResultKind::Ready => {}
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
                Some(ResultKind::Ready) => w.ready = true,
                Some(ResultKind::InitFailed) => {
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
                w.ewma_ns = window::ewma(w.ewma_ns, ns);
                w.tasks_done += 1;
                w.busy += took;
                if w.tasks_done % 64 == 1 {
                    self.publish_stats();
                }
            }
        }
    }

    fn set_broken(&self, e: Error) {
        self.mailbox.set_broken(e);
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
                    Ok(TaskHeader::decode(bytes).ok().and_then(|h| h.id()))
                });
                let Ok(id) = id else { break };
                if let Some(at) = w.inflight.iter().position(|f| Some(f.id) == id)
                    && let Some(f) = w.inflight.remove(at)
                {
                    w.dispatched = w.dispatched.saturating_sub(1);
                    back.push(f.task);
                }
            }
            if !back.is_empty() {
                trace!(debug, worker = %w.name, tasks = back.len(), "redispatching tasks queued behind a long one");
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
                if let Some(max) = self.cfg.max_tasks
                    && w.dispatched >= max
                {
                    continue;
                }
                let Some(task) = self.pending.pop_front() else {
                    return any;
                };
                if let Some(p) = &task.phase
                    && !p.start()
                {
                    // Cancelled while pending: its future is already complete.
                    gave = true;
                    continue;
                }
                let id = TASK_IDS.fetch_add(1, SeqCst);
                let mut task = task;
                TaskHeader::Run {
                    id,
                    stamp: task.timeout.is_some(),
                    entry: task.entry,
                    func: task.func,
                }
                .write(&mut task.bytes);
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
            trace!(debug, worker = %w.name, pid = w.pid, exit = %how, "pool worker exited");
            if let Some(head) = w.inflight.pop_front() {
                trace!(warn, worker = %w.name, pid = w.pid, task = %head.task.what, exit = %how, "pool worker ended while running a task");
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
                head.task.fail(err);
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
            if !w.inflight.is_empty() {
                trace!(info, worker = %w.name, tasks = w.inflight.len(), "redispatching the tasks queued behind an ended worker");
            }
            while let Some(f) = w.inflight.pop_back() {
                self.pending.push_front(f.task);
            }
            if !self.is_broken() {
                match self.start_worker() {
                    Ok(nw) => {
                        trace!(info, worker = %nw.name, pid = nw.pid, replaces = %w.name, "pool worker respawned");
                        self.workers.insert(i, nw)
                    }
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
        tasks.extend(self.mailbox.inbox().pending.drain(..));
        for w in &mut self.workers {
            tasks.extend(w.inflight.drain(..).map(|f| f.task));
        }
        for t in tasks {
            let e = Error::new(e.kind(), format!("{}: {}", t.what, e));
            t.fail(e);
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
        let mut ib = self.mailbox.inbox();
        ib.finished = true;
        let rest: Vec<Task> = ib.pending.drain(..).collect();
        drop(ib);
        for t in rest {
            let e = Error::new(
                ErrorKind::Cancelled,
                format!("{}: the pool ended before it ran", t.what),
            );
            t.fail(e);
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
            .mailbox
            .broken()
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

/// Since when worker `w` runs its head task `h`: its own stamp if the task has one
/// (tasks with a timeout), else when it finished the task before (or got this one).
fn running_since(w: &Worker, h: &InFlight) -> Instant {
    match w.status.read() {
        Some((id, _, start)) if id == h.id => {
            let ago = now_ns().saturating_sub(start);
            Instant::now()
                .checked_sub(Duration::from_nanos(ago))
                .unwrap_or_else(Instant::now)
        }
        _ => h.sent.max(w.last_done),
    }
}

fn send_exit(tasks: &Queue<()>) -> bool {
    let header = TaskHeader::Exit.encode();
    tasks.raw().put(&header, &[], Some(Instant::now())).is_ok()
}
