//! The engine of the thread pool: threads of this process over one job queue, and the
//! thread pool as a [flavor](super::flavor). Used by [`ThreadPool`](super::ThreadPool)
//! and [`ThreadPoolExecutor`](crate::futures::ThreadPoolExecutor).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::chunk::{Chunk, Completion, Outcome, panicked};
use super::slot::Phase;
use crate::error::{Error, ErrorKind, Result};
use crate::process::payload_text;

/// A job: run it (`None`) or fail it (`Some(error)`), exactly once.
pub(crate) struct Job {
    pub(crate) run: Box<dyn FnOnce(Option<Error>) + Send>,
    pub(crate) phase: Option<Arc<Phase>>,
}

#[derive(Default)]
struct Jobs {
    queue: VecDeque<Job>,
    closed: bool,
    terminated: bool,
    /// Why the pool broke: an initializer panicked.
    broken: Option<String>,
}

/// The jobs waiting for a thread, shared by the pool's handles and its threads.
struct JobQueue {
    jobs: Mutex<Jobs>,
    cv: Condvar,
}

impl JobQueue {
    fn lock(&self) -> MutexGuard<'_, Jobs> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Breaks the pool (once): the queued jobs fail with `why`, and so does every
    /// later submission; the threads exit once their running job is done.
    fn break_down(&self, why: String) {
        let rest: Vec<Job> = {
            let mut q = self.lock();
            if q.broken.is_some() {
                return;
            }
            q.broken = Some(why.clone());
            q.queue.drain(..).collect()
        };
        self.cv.notify_all();
        for j in rest {
            (j.run)(Some(Error::new(ErrorKind::BrokenPool, why.clone())));
        }
    }
}

/// The threads of a thread pool and their job queue.
pub(crate) struct ThreadEngine {
    queue: Arc<JobQueue>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    pub(crate) workers: usize,
}

pub(crate) type InitFn = Arc<dyn Fn() + Send + Sync>;

impl ThreadEngine {
    pub(crate) fn start(workers: usize, init: Option<InitFn>, name: &str) -> Result<ThreadEngine> {
        install_task_hook();
        if workers == 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a pool needs at least one thread",
            ));
        }
        let queue = Arc::new(JobQueue {
            jobs: Mutex::new(Jobs::default()),
            cv: Condvar::new(),
        });
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let q = queue.clone();
            let init = init.clone();
            let thread = format!("{name}-{}", i + 1);
            let t = std::thread::Builder::new()
                .name(thread.clone())
                .spawn(move || {
                    if let Some(init) = init
                        && let Err(msg) = catch_task(|| init())
                    {
                        // As Python's executor: the pool is broken, not left with
                        // fewer (or no) threads and its tasks waiting for ever.
                        return q.break_down(format!(
                            "the pool's initializer failed in {thread}: {msg}"
                        ));
                    }
                    thread_main(&q)
                })
                .map_err(|e| Error::io("starting a pool thread", e))?;
            threads.push(t);
        }
        Ok(ThreadEngine {
            queue,
            threads: Mutex::new(threads),
            workers,
        })
    }

    pub(crate) fn submit(&self, jobs: Vec<Job>) -> Result<()> {
        {
            let mut q = self.queue.lock();
            if let Some(why) = &q.broken {
                return Err(Error::new(ErrorKind::BrokenPool, why.clone()));
            }
            if q.terminated {
                return Err(Error::new(
                    ErrorKind::BrokenPool,
                    "the pool was terminated; it takes no new tasks",
                ));
            }
            if q.closed {
                return Err(Error::state("the pool is closed; it takes no new tasks"));
            }
            q.queue.extend(jobs);
        }
        self.queue.cv.notify_all();
        Ok(())
    }

    pub(crate) fn close(&self) {
        self.queue.lock().closed = true;
        self.queue.cv.notify_all();
    }

    pub(crate) fn is_closed(&self) -> bool {
        let q = self.queue.lock();
        q.closed || q.terminated
    }

    /// Fails the queued jobs; running ones finish in the background.
    pub(crate) fn terminate(&self) {
        let rest: Vec<Job> = {
            let mut q = self.queue.lock();
            q.terminated = true;
            q.queue.drain(..).collect()
        };
        self.queue.cv.notify_all();
        for j in rest {
            (j.run)(Some(Error::new(
                ErrorKind::Cancelled,
                "the pool was terminated before it ran",
            )));
        }
    }

    pub(crate) fn join(&self) {
        let threads: Vec<_> =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }

    /// Cancels every queued job whose phase is still pending.
    pub(crate) fn cancel_pending(&self) {
        let rest: Vec<Job> = {
            let mut q = self.queue.lock();
            let (cancel, keep): (Vec<Job>, Vec<Job>) =
                q.queue.drain(..).partition(|j| j.phase.is_some());
            q.queue.extend(keep);
            cancel
        };
        for j in rest {
            if let Some(p) = &j.phase
                && p.start()
            {
                (j.run)(Some(Error::new(
                    ErrorKind::Cancelled,
                    "cancelled at shutdown",
                )));
            }
        }
    }
}

fn thread_main(q: &JobQueue) {
    loop {
        let job = {
            let mut jobs = q.lock();
            loop {
                if let Some(j) = jobs.queue.pop_front() {
                    break j;
                }
                if jobs.closed || jobs.terminated || jobs.broken.is_some() {
                    return;
                }
                jobs = q.cv.wait(jobs).unwrap_or_else(|e| e.into_inner());
            }
        };
        if let Some(p) = &job.phase
            && !p.start()
        {
            continue; // cancelled while queued
        }
        (job.run)(None);
    }
}

thread_local! {
    /// Set while this thread runs a pool task: its panics are recorded, not printed.
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
    /// The last task panic on this thread: "message (at file:line:col)" and frames.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Wraps the process's panic hook once: a panic in a pool task is recorded for its
/// caller (message, location, and the task's own backtrace frames under
/// `RUST_BACKTRACE`), as a process pool reports it; every other panic goes to the
/// hook that was there before, unchanged.
fn install_task_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !IN_TASK.with(Cell::get) {
                return previous(info);
            }
            let msg = payload_text(info.payload()).to_string();
            let mut text = match info.location() {
                Some(l) => format!("{msg} (at {}:{}:{})", l.file(), l.line(), l.column()),
                None => msg,
            };
            let bt = std::backtrace::Backtrace::capture();
            if bt.status() == std::backtrace::BacktraceStatus::Captured {
                text.push_str("\nstack backtrace:\n");
                text.push_str(&crate::process::user_frames(&bt.to_string()));
            }
            LAST_PANIC.with(|l| *l.borrow_mut() = Some(text));
        }));
    });
}

/// Runs one call of a task, catching a panic as its message with location.
fn catch_task<R>(f: impl FnOnce() -> R) -> std::result::Result<R, String> {
    IN_TASK.with(|t| t.set(true));
    let r = panic::catch_unwind(AssertUnwindSafe(f));
    IN_TASK.with(|t| t.set(false));
    r.map_err(|p| {
        LAST_PANIC
            .with(|l| l.borrow_mut().take())
            .unwrap_or_else(|| payload_text(&*p).to_string())
    })
}

/// The thread pool as a flavor, for a closure.
pub(crate) struct ThreadFlavor<'a, A, R> {
    engine: &'a ThreadEngine,
    f: Arc<dyn Fn(A) -> R + Send + Sync>,
}

impl<'a, A, R> ThreadFlavor<'a, A, R>
where
    A: Send + 'static,
    R: Send + 'static,
{
    pub(crate) fn new(
        engine: &'a ThreadEngine,
        f: impl Fn(A) -> R + Send + Sync + 'static,
    ) -> Self {
        ThreadFlavor {
            engine,
            f: Arc::new(f),
        }
    }

    /// Thread count, for the default chunk size.
    pub(crate) fn processes(&self) -> usize {
        self.engine.workers
    }

    /// Queues every chunk, or none (and says why).
    pub(crate) fn submit(&self, chunks: Vec<Chunk<A, R>>) -> Result<()> {
        let jobs = chunks
            .into_iter()
            .map(|c| {
                let f = self.f.clone();
                let phase = c.phase.clone();
                Job {
                    phase,
                    run: Box::new(move |fail| {
                        if let Some(e) = fail {
                            return c.done.complete(Outcome::Failed(e));
                        }
                        let mut out = Vec::with_capacity(c.items.len());
                        let mut all_ok = true;
                        for (i, a) in c.items.into_iter().enumerate() {
                            let r = catch_task(|| f(a))
                                .map_err(|m| panicked(&c.single, c.first, i, &m));
                            all_ok &= r.is_ok();
                            out.push(r);
                        }
                        let o = if all_ok {
                            Outcome::AllOk(out.into_iter().filter_map(Result::ok).collect())
                        } else {
                            Outcome::Mixed(out)
                        };
                        c.done.complete(o)
                    }),
                }
            })
            .collect();
        self.engine.submit(jobs)
    }

    /// Queues the `n` items of `items` in chunks of `cs`, all or none; `done(k, first,
    /// len)` makes the completion of chunk `k`.
    pub(crate) fn submit_split(
        &self,
        items: &mut dyn Iterator<Item = A>,
        n: usize,
        cs: usize,
        timeout: Option<Duration>,
        done: &mut dyn FnMut(usize, usize, usize) -> Completion<R>,
    ) -> Result<()> {
        let cs = cs.max(1);
        let mut chunks = Vec::with_capacity(n.div_ceil(cs));
        let mut first = 0;
        loop {
            let part: Vec<A> = (&mut *items).take(cs).collect();
            if part.is_empty() {
                break;
            }
            let len = part.len();
            let k = chunks.len();
            chunks.push(Chunk {
                items: part,
                first,
                single: None,
                timeout,
                phase: None,
                done: done(k, first, len),
            });
            first += len;
        }
        self.submit(chunks)
    }
}

/// A `FnOnce` as the `Fn` a flavor wants (it is called once).
pub(crate) fn once<A, R>(
    f: impl FnOnce(A) -> R + Send + 'static,
) -> impl Fn(A) -> R + Send + Sync + 'static {
    let f = Mutex::new(Some(f));
    move |a: A| {
        let f = f
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("a single call runs once");
        f(a)
    }
}
