//! Pools of threads: Python's `multiprocessing.pool.ThreadPool` (and
//! `multiprocessing.dummy.Pool`). Same API as [`Pool`](super::Pool), but tasks are
//! closures run by threads of this process: nothing is serialized, and nothing is
//! isolated.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::backend::{Backend, Chunk, Outcome, panicked};
use super::imap::{apply_async, map_async};
use super::slot::Phase;
use super::{AsyncResult, IMap, Options};
use crate::error::{Error, ErrorKind, Result};

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
}

struct Shared {
    jobs: Mutex<Jobs>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Jobs> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The threads of a thread pool and their job queue.
pub(crate) struct ThreadCore {
    shared: Arc<Shared>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    pub(crate) workers: usize,
}

type InitFn = Arc<dyn Fn() + Send + Sync>;

impl ThreadCore {
    pub(crate) fn start(workers: usize, init: Option<InitFn>, name: &str) -> Result<ThreadCore> {
        install_task_hook();
        if workers == 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a pool needs at least one thread",
            ));
        }
        let shared = Arc::new(Shared {
            jobs: Mutex::new(Jobs::default()),
            cv: Condvar::new(),
        });
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let sh = shared.clone();
            let init = init.clone();
            let t = std::thread::Builder::new()
                .name(format!("{name}-{}", i + 1))
                .spawn(move || {
                    if let Some(init) = init {
                        init();
                    }
                    thread_main(&sh)
                })
                .map_err(|e| Error::io("starting a pool thread", e))?;
            threads.push(t);
        }
        Ok(ThreadCore {
            shared,
            threads: Mutex::new(threads),
            workers,
        })
    }

    pub(crate) fn submit(&self, jobs: Vec<Job>) -> Result<()> {
        {
            let mut q = self.shared.lock();
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
        self.shared.cv.notify_all();
        Ok(())
    }

    pub(crate) fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.cv.notify_all();
    }

    pub(crate) fn is_closed(&self) -> bool {
        let q = self.shared.lock();
        q.closed || q.terminated
    }

    /// Fails the queued jobs; running ones finish in the background.
    pub(crate) fn terminate(&self) {
        let rest: Vec<Job> = {
            let mut q = self.shared.lock();
            q.terminated = true;
            q.queue.drain(..).collect()
        };
        self.shared.cv.notify_all();
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
            let mut q = self.shared.lock();
            let (cancel, keep): (Vec<Job>, Vec<Job>) =
                q.queue.drain(..).partition(|j| j.phase.is_some());
            q.queue.extend(keep);
            cancel
        };
        for j in rest {
            if let Some(p) = &j.phase {
                if p.start() {
                    (j.run)(Some(Error::new(
                        ErrorKind::Cancelled,
                        "cancelled at shutdown",
                    )));
                }
            }
        }
    }
}

fn thread_main(sh: &Shared) {
    loop {
        let job = {
            let mut q = sh.lock();
            loop {
                if let Some(j) = q.queue.pop_front() {
                    break j;
                }
                if q.closed || q.terminated {
                    return;
                }
                q = sh.cv.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        if let Some(p) = &job.phase {
            if !p.start() {
                continue; // cancelled while queued
            }
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
            let msg = panic_message(info.payload());
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
            .unwrap_or_else(|| panic_message(&*p))
    })
}

pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_string()
    }
}

/// A thread pool as a backend for a closure.
pub(crate) struct ThreadBackend<'a, F> {
    pub(crate) core: &'a ThreadCore,
    pub(crate) f: Arc<F>,
}

impl<A, R, F> Backend<A, R> for ThreadBackend<'_, F>
where
    A: Send + 'static,
    R: Send + 'static,
    F: Fn(A) -> R + Send + Sync + 'static,
{
    fn processes(&self) -> usize {
        self.core.workers
    }

    fn submit(&self, chunks: Vec<Chunk<A, R>>) -> Result<()> {
        let jobs = chunks
            .into_iter()
            .map(|c| {
                let f = self.f.clone();
                let phase = c.phase.clone();
                Job {
                    phase,
                    run: Box::new(move |fail| {
                        if let Some(e) = fail {
                            return (c.done)(Outcome::Failed(e));
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
                        (c.done)(o)
                    }),
                }
            })
            .collect();
        self.core.submit(jobs)
    }
}

/// A pool of threads with [`Pool`](super::Pool)'s API: Python's `ThreadPool`
/// (`multiprocessing.dummy.Pool`). Tasks are closures (they may capture), run by
/// threads of this process. Use it for I/O-bound work or to try code before moving
/// it to processes.
///
/// A task that panics fails with [`ErrorKind::Panicked`], its message and location
/// (the panic is not printed: the caller reports it, as with a process pool).
///
/// Threads cannot be killed: there is no task timeout (use
/// [`AsyncResult::get_timeout`] to stop waiting), and [`terminate`](ThreadPool::terminate)
/// fails the queued tasks while running ones finish in the background.
///
/// # Examples
///
/// ```
/// use multiprocess::ThreadPool;
/// let offset = 10;
/// let pool = ThreadPool::new(4)?;
/// assert_eq!(pool.map(move |x: u32| x + offset, 0..3)?, [10, 11, 12]);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub struct ThreadPool {
    core: ThreadCore,
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("threads", &self.core.workers)
            .finish()
    }
}

/// Builds a [`ThreadPool`]: thread count and an initializer run by each thread.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// let started = Arc::new(AtomicUsize::new(0));
/// let s = started.clone();
/// let pool = multiprocess::ThreadPool::builder()
///     .threads(3)
///     .initializer(move || { s.fetch_add(1, Ordering::SeqCst); })
///     .build()?;
/// pool.close();
/// pool.join()?;
/// assert_eq!(started.load(Ordering::SeqCst), 3);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub struct ThreadPoolBuilder {
    threads: Option<usize>,
    init: Option<InitFn>,
}

impl fmt::Debug for ThreadPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPoolBuilder")
            .field("threads", &self.threads)
            .finish()
    }
}

impl ThreadPoolBuilder {
    /// Number of threads (default: [`cpu_count`](crate::cpu_count)).
    ///
    /// # Examples
    ///
    /// See [`ThreadPoolBuilder`].
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n);
        self
    }

    /// Python's `processes` argument: the same as [`threads`](ThreadPoolBuilder::threads).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiprocess::ThreadPool::builder().processes(2).build()?;
    /// assert_eq!(pool.processes(), 2);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn processes(self, n: usize) -> Self {
        self.threads(n)
    }

    /// Runs `f` in each thread when it starts.
    ///
    /// # Examples
    ///
    /// See [`ThreadPoolBuilder`].
    pub fn initializer(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.init = Some(Arc::new(f));
        self
    }

    /// Starts the threads.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for zero threads; [`ErrorKind::Io`] if a thread
    /// cannot start.
    ///
    /// # Examples
    ///
    /// See [`ThreadPoolBuilder`].
    pub fn build(self) -> Result<ThreadPool> {
        let n = self.threads.unwrap_or_else(crate::cpu_count);
        Ok(ThreadPool {
            core: ThreadCore::start(n, self.init, "ThreadPoolWorker")?,
        })
    }
}

impl ThreadPool {
    /// A pool of `threads` threads.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for zero.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiprocess::ThreadPool::new(2)?;
    /// assert_eq!(pool.apply(|x: u8| x * 2, 21)?, 42);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn new(threads: usize) -> Result<ThreadPool> {
        ThreadPool::builder().threads(threads).build()
    }

    /// A builder (thread count, initializer).
    ///
    /// # Examples
    ///
    /// See [`ThreadPoolBuilder`].
    pub fn builder() -> ThreadPoolBuilder {
        ThreadPoolBuilder {
            threads: None,
            init: None,
        }
    }

    /// The number of threads.
    ///
    /// # Examples
    ///
    /// See [`ThreadPoolBuilder::processes`].
    pub fn processes(&self) -> usize {
        self.core.workers
    }

    fn backend<A, R, F>(&self, f: F) -> ThreadBackend<'_, F>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
    {
        ThreadBackend {
            core: &self.core,
            f: Arc::new(f),
        }
    }

    /// Runs `f(args)` on a thread and waits for it.
    ///
    /// # Errors
    ///
    /// As [`AsyncResult::get`]; [`ErrorKind::InvalidState`] after `close()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiprocess::ThreadPool::new(1)?;
    /// assert_eq!(pool.apply(|s: String| s.len(), "four".to_string())?, 4);
    /// let e = pool.apply(|_: ()| -> u8 { panic!("bad input") }, ()).unwrap_err();
    /// assert_eq!(e.kind(), multiprocess::ErrorKind::Panicked);
    /// assert!(e.to_string().contains("bad input (at "), "{e}"); // and file:line:column
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn apply<A, R>(&self, f: impl FnOnce(A) -> R + Send + 'static, args: A) -> Result<R>
    where
        A: Send + 'static,
        R: Send + 'static,
    {
        self.apply_async(f, args)?.get()
    }

    /// Starts `f(args)` on a thread.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidState`] after `close()`; [`ErrorKind::BrokenPool`] after
    /// `terminate()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiprocess::ThreadPool::new(2)?;
    /// let r = pool.apply_async(|s: &str| s.len(), "four")?;
    /// assert_eq!(r.get()?, 4);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn apply_async<A, R>(
        &self,
        f: impl FnOnce(A) -> R + Send + 'static,
        args: A,
    ) -> Result<AsyncResult<R>>
    where
        A: Send + 'static,
        R: Send + 'static,
    {
        self.apply_async_with(f, args, Options::new())
    }

    /// [`apply_async`](ThreadPool::apply_async) with callbacks.
    ///
    /// # Errors
    ///
    /// As [`apply_async`](ThreadPool::apply_async); [`ErrorKind::Unsupported`] with
    /// a timeout (threads cannot be killed).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// let pool = multiprocess::ThreadPool::new(1)?;
    /// let (tx, rx) = mpsc::channel();
    /// let opts = multiprocess::Options::new().callback(move |v: &u32| tx.send(*v).unwrap());
    /// pool.apply_async_with(|x: u32| x + 1, 1, opts)?.wait();
    /// assert_eq!(rx.recv().unwrap(), 2);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn apply_async_with<A, R>(
        &self,
        f: impl FnOnce(A) -> R + Send + 'static,
        args: A,
        opts: Options<R>,
    ) -> Result<AsyncResult<R>>
    where
        A: Send + 'static,
        R: Send + 'static,
    {
        no_timeout(opts.timeout)?;
        apply_async(&self.backend(once(f)), args, opts, None, "task".into())
    }

    /// `f` over every item, in order.
    ///
    /// # Errors
    ///
    /// As [`Pool::map`](super::Pool::map).
    ///
    /// # Examples
    ///
    /// See [`ThreadPool`].
    pub fn map<A, R>(
        &self,
        f: impl Fn(A) -> R + Send + Sync + 'static,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>>
    where
        A: Send + 'static,
        R: Send + 'static,
    {
        self.map_async(f, items)?.get()
    }

    /// [`map`](ThreadPool::map) with options.
    ///
    /// # Errors
    ///
    /// As [`map`](ThreadPool::map); [`ErrorKind::Unsupported`] with a timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiprocess::ThreadPool::new(2)?;
    /// let v = pool.map_with(|x: u32| x * 2, 0..100, multiprocess::Options::new().chunk_size(20))?;
    /// assert_eq!(v[50], 100);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn map_with<A, R>(
        &self,
        f: impl Fn(A) -> R + Send + Sync + 'static,
        items: impl IntoIterator<Item = A>,
        opts: Options<Vec<R>>,
    ) -> Result<Vec<R>>
    where
        A: Send + 'static,
        R: Send + 'static,
    {
        self.map_async_with(f, items, opts)?.get()
    }

    /// Starts a [`map`](ThreadPool::map).
    ///
    /// # Errors
    ///
    /// As [`apply_async`](ThreadPool::apply_async).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiprocess::ThreadPool::new(2)?;
    /// let r = pool.map_async(|x: i32| -x, [1, 2])?;
    /// assert_eq!(r.get()?, [-1, -2]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn map_async<A, R>(
        &self,
        f: impl Fn(A) -> R + Send + Sync + 'static,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        A: Send + 'static,
        R: Send + 'static,
    {
        self.map_async_with(f, items, Options::new())
    }

    /// [`map_async`](ThreadPool::map_async) with options.
    ///
    /// # Errors
    ///
    /// As [`map_with`](ThreadPool::map_with).
    ///
    /// # Examples
    ///
    /// See [`ThreadPool::map_with`].
    pub fn map_async_with<A, R>(
        &self,
        f: impl Fn(A) -> R + Send + Sync + 'static,
        items: impl IntoIterator<Item = A>,
        opts: Options<Vec<R>>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        A: Send + 'static,
        R: Send + 'static,
    {
        no_timeout(opts.timeout)?;
        map_async(&self.backend(f), items, opts, None)
    }

    /// Python's `starmap`: [`map`](ThreadPool::map) over argument tuples.
    ///
    /// # Errors
    ///
    /// As [`map`](ThreadPool::map).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiprocess::ThreadPool::new(2)?;
    /// assert_eq!(pool.starmap(|(a, b): (u8, u8)| a + b, [(1, 2)])?, [3]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn starmap<A, R>(
        &self,
        f: impl Fn(A) -> R + Send + Sync + 'static,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>>
    where
        A: Send + 'static,
        R: Send + 'static,
    {
        self.map(f, items)
    }

    /// Python's `starmap_async`.
    ///
    /// # Errors
    ///
    /// As [`map_async`](ThreadPool::map_async).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiprocess::ThreadPool::new(2)?;
    /// assert_eq!(pool.starmap_async(|(a, b): (u8, u8)| a * b, [(2, 3)])?.get()?, [6]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn starmap_async<A, R>(
        &self,
        f: impl Fn(A) -> R + Send + Sync + 'static,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        A: Send + 'static,
        R: Send + 'static,
    {
        self.map_async(f, items)
    }

    /// Results in input order as they are ready; lazy input (see
    /// [`Pool::imap`](super::Pool::imap)).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiprocess::ThreadPool::new(2)?;
    /// let v: Vec<u64> = pool.imap(|x: u64| x + 1, 0..).take(3).collect::<Result<_, _>>()?;
    /// assert_eq!(v, [1, 2, 3]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn imap<'p, A, R>(
        &'p self,
        f: impl Fn(A) -> R + Send + Sync + 'static,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> IMap<'p, A, R>
    where
        A: Send + 'static,
        R: Send + 'static,
    {
        self.imap_with(f, items, Options::new())
    }

    /// [`imap`](ThreadPool::imap) with options (chunk size; a timeout is ignored).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiprocess::ThreadPool::new(2)?;
    /// let n = pool.imap_with(|x: u64| x, 0..1000, multiprocess::Options::new().chunk_size(100)).count();
    /// assert_eq!(n, 1000);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn imap_with<'p, A, R>(
        &'p self,
        f: impl Fn(A) -> R + Send + Sync + 'static,
        items: impl IntoIterator<Item = A> + 'p,
        opts: Options,
    ) -> IMap<'p, A, R>
    where
        A: Send + 'static,
        R: Send + 'static,
    {
        IMap::new(
            Box::new(self.backend(f)),
            Box::new(items.into_iter().map(Ok)),
            opts.chunk_size.unwrap_or(1),
            true,
            None,
        )
    }

    /// Results in the order they arrive.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiprocess::ThreadPool::new(2)?;
    /// let mut v: Vec<u64> = pool.imap_unordered(|x: u64| x * x, 0..4).collect::<Result<_, _>>()?;
    /// v.sort();
    /// assert_eq!(v, [0, 1, 4, 9]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn imap_unordered<'p, A, R>(
        &'p self,
        f: impl Fn(A) -> R + Send + Sync + 'static,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> IMap<'p, A, R>
    where
        A: Send + 'static,
        R: Send + 'static,
    {
        IMap::new(
            Box::new(self.backend(f)),
            Box::new(items.into_iter().map(Ok)),
            1,
            false,
            None,
        )
    }

    /// No more tasks; threads exit once the queued ones are done.
    ///
    /// # Examples
    ///
    /// See [`ThreadPoolBuilder`].
    pub fn close(&self) {
        self.core.close();
    }

    /// Fails the queued tasks with [`ErrorKind::Cancelled`]; running ones finish in
    /// the background (threads cannot be killed).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiprocess::ThreadPool::new(1)?;
    /// let slow = pool.apply_async(|_: ()| std::thread::sleep(std::time::Duration::from_millis(100)), ())?;
    /// let queued = pool.apply_async(|x: u8| x, 1)?;
    /// pool.terminate();
    /// assert!(slow.get().is_ok() || queued.get().is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn terminate(&self) {
        self.core.terminate();
    }

    /// Waits for the threads to exit, after [`close`](ThreadPool::close) or
    /// [`terminate`](ThreadPool::terminate).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidState`] if the pool is still open.
    ///
    /// # Examples
    ///
    /// See [`ThreadPoolBuilder`].
    pub fn join(&self) -> Result<()> {
        if !self.core.is_closed() {
            return Err(Error::state("join() needs close() or terminate() first"));
        }
        self.core.join();
        Ok(())
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.core.terminate();
    }
}

/// A `FnOnce` as the `Fn` a backend wants (it is called once).
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

fn no_timeout(t: Option<Duration>) -> Result<()> {
    match t {
        Some(_) => Err(Error::new(
            ErrorKind::Unsupported,
            "a thread pool cannot time tasks out (threads cannot be killed); use a process Pool",
        )),
        None => Ok(()),
    }
}
