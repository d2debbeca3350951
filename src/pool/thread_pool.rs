//! Pools of threads: Python's `multiprocessing.pool.ThreadPool` (and
//! `multiprocessing.dummy.Pool`). Same API as [`Pool`](super::Pool), but tasks are
//! closures run by threads of this process: nothing is serialized, and nothing is
//! isolated.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::apply::apply_async;
use super::flavor::Flavor;
use super::imap::IMap;
use super::map::map_async;
use super::options::Options;
use super::result::AsyncResult;
use super::threads::{InitFn, ThreadEngine, ThreadFlavor, once};
use crate::error::{Error, ErrorKind, Result};

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
    engine: ThreadEngine,
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("threads", &self.engine.workers)
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

    /// Runs `f` in each thread when it starts. If it panics, the pool is broken (as
    /// a process [`Pool`](super::Pool)'s): queued and later tasks fail with
    /// [`ErrorKind::BrokenPool`] and the panic's message.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = multiprocess::ThreadPool::builder()
    ///     .threads(1)
    ///     .initializer(|| panic!("no config"))
    ///     .build()?;
    /// let e = pool.apply(|x: u8| x, 1).unwrap_err();
    /// assert_eq!(e.kind(), multiprocess::ErrorKind::BrokenPool);
    /// assert!(e.to_string().contains("no config"));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
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
            engine: ThreadEngine::start(n, self.init, "ThreadPoolWorker")?,
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
        self.engine.workers
    }

    fn flavor<A, R>(&self, f: impl Fn(A) -> R + Send + Sync + 'static) -> Flavor<'_, A, R>
    where
        A: Send + 'static,
        R: Send + 'static,
    {
        Flavor::Thread(ThreadFlavor::new(&self.engine, f))
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
        apply_async(&self.flavor(once(f)), args, opts, None, "task".into())
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
        map_async(&self.flavor(f), items, opts, None)
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
            self.flavor(f),
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
            self.flavor(f),
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
        self.engine.close();
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
        self.engine.terminate();
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
        if !self.engine.is_closed() {
            return Err(Error::state("join() needs close() or terminate() first"));
        }
        self.engine.join();
        Ok(())
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.engine.terminate();
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
