//! The process pool's front: [`Pool`] and [`PoolBuilder`]. The work is done by the
//! [engine](super::engine); submission goes through the [flavor](super::flavor).

use std::fmt;
#[cfg(feature = "progress")]
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::apply::apply_async;
#[cfg(feature = "redis")]
use super::cluster::{Client, ClusterFlavor, ClusterStats, Settings};
use super::engine::{Blob, Config, Engine, Init, ProcessFlavor, WorkerStats, run_init};
use super::flavor::Flavor;
use super::imap::IMap;
use super::map::map_async;
use super::options::Options;
use super::result::AsyncResult;
use crate::error::{Error, ErrorKind, Result};
use crate::process::{Context, default_context};
use crate::wire::code::code_offset;

/// A pool of worker processes: Python's `multiprocessing.Pool`.
///
/// See the [module docs](crate::pool) for a tour and for how it differs from
/// Python's.
///
/// # Examples
///
/// ```
/// fn square(x: u64) -> u64 { x * x }
/// multiprocess::init();
/// let pool = multiprocess::Pool::new(4)?;
/// let squares = pool.map(square, 0..10)?;
/// assert_eq!(squares.iter().sum::<u64>(), 285);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub struct Pool {
    backend: Backend,
    timeout: Option<Duration>,
    tasks: AtomicU64,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.backend.processes())
            .field("closed", &self.backend.is_closed())
            .finish()
    }
}

/// What runs a [`Pool`]'s or an executor's tasks: local worker processes, or worker
/// hosts behind Redis.
pub(crate) enum Backend {
    Local(Engine),
    #[cfg(feature = "redis")]
    Cluster(std::sync::Arc<Client>),
}

impl Backend {
    pub(crate) fn flavor<A, R>(&self, f: fn(A) -> R) -> Flavor<'_, A, R>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        match self {
            Backend::Local(e) => Flavor::Process(ProcessFlavor::new(&e.mailbox, f)),
            #[cfg(feature = "redis")]
            Backend::Cluster(c) => Flavor::Cluster(ClusterFlavor::new(c, f)),
        }
    }

    pub(crate) fn processes(&self) -> usize {
        match self {
            Backend::Local(e) => e.mailbox.processes,
            #[cfg(feature = "redis")]
            Backend::Cluster(c) => c.processes(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Backend::Local(e) => e.mailbox.is_closed(),
            #[cfg(feature = "redis")]
            Backend::Cluster(c) => c.is_closed(),
        }
    }

    pub(crate) fn close(&self) {
        match self {
            Backend::Local(e) => e.mailbox.close(),
            #[cfg(feature = "redis")]
            Backend::Cluster(c) => c.close(),
        }
    }

    /// Stops now: unfinished tasks fail with `Cancelled`.
    pub(crate) fn terminate(&self) {
        match self {
            Backend::Local(e) => {
                e.mailbox.terminate();
                e.join_thread();
            }
            #[cfg(feature = "redis")]
            Backend::Cluster(c) => c.terminate(),
        }
    }

    /// Waits for the tasks sent to finish (after `close`).
    pub(crate) fn join(&self) {
        match self {
            Backend::Local(e) => e.join_thread(),
            #[cfg(feature = "redis")]
            Backend::Cluster(c) => c.join(),
        }
    }

    pub(crate) fn stats(&self) -> Vec<WorkerStats> {
        match self {
            Backend::Local(e) => e.mailbox.stats(),
            #[cfg(feature = "redis")]
            Backend::Cluster(c) => c.stats(),
        }
    }
}

/// Builds a [`Pool`] (or a [`ProcessPoolExecutor`](crate::futures::ProcessPoolExecutor)):
/// Python's `Pool(processes, initializer, initargs, maxtasksperchild, context)`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// fn hello(tag: String) { let _ = tag; }
/// fn id(x: u8) -> u8 { x }
/// multiprocess::init();
/// let pool = multiprocess::Pool::builder()
///     .processes(2)
///     .initializer(hello, "ready".to_string())
///     .max_tasks_per_child(100)
///     .task_timeout(Duration::from_secs(60))
///     .context(multiprocess::get_context(multiprocess::StartMethod::Spawn))
///     .build()?;
/// assert_eq!(pool.apply(id, 5)?, 5);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub struct PoolBuilder {
    pub(crate) processes: Option<usize>,
    pub(crate) init: Option<Result<Init>>,
    pub(crate) max_tasks: Option<usize>,
    pub(crate) ctx: Option<Context>,
    pub(crate) timeout: Option<Duration>,
    #[cfg(feature = "redis")]
    pub(crate) redis: Option<(String, Vec<u8>)>,
}

impl fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("initializer", &self.init.is_some())
            .field("max_tasks_per_child", &self.max_tasks)
            .field("task_timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl PoolBuilder {
    pub(crate) fn new() -> Self {
        PoolBuilder {
            processes: None,
            init: None,
            max_tasks: None,
            ctx: None,
            timeout: None,
            #[cfg(feature = "redis")]
            redis: None,
        }
    }

    /// Runs the pool's tasks on worker hosts behind the Redis at `url`
    /// (`redis://host:port/db`, `redis+unix:///path.sock`) instead of local
    /// processes (feature `redis`). Give the cluster key with [`key`](Self::key); the
    /// pool has the same methods. [`processes`](Self::processes), if set, is the
    /// worker count that default chunk sizes assume (else: what the live hosts say).
    ///
    /// See [`pool::cluster`](crate::pool::cluster) for the worker side and the design.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{broker::RedisServer, pool::cluster::Worker};
    /// fn square(x: u64) -> u64 { x * x }
    /// multiprocess::init();
    /// let Some(server) = RedisServer::start_if_installed()? else { return Ok(()) };
    /// let url = server.url().to_string(); // e.g. "redis://10.0.0.5/"
    /// std::thread::spawn(move || Worker::new(&url, b"cluster secret").processes(1).run());
    /// let pool = multiprocess::Pool::builder()
    ///     .redis(server.url())
    ///     .key(b"cluster secret")
    ///     .build()?;
    /// assert_eq!(pool.map(square, 0..4)?, [0, 1, 4, 9]);
    /// assert_eq!(pool.apply(square, 5)?, 25);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    #[cfg(feature = "redis")]
    pub fn redis(mut self, url: &str) -> Self {
        let key = self.redis.take().map(|(_, k)| k).unwrap_or_default();
        self.redis = Some((url.to_string(), key));
        self
    }

    /// The cluster key of a [`redis`](Self::redis) pool: every task and result is
    /// sealed with it (HMAC-SHA256), and hosts run only what opens. Use 32 random
    /// bytes or more, the same on every submitter and host.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// // A cluster pool without a key is refused before anything connects.
    /// let e = multiprocess::Pool::builder().redis("redis://127.0.0.1:1/").build().unwrap_err();
    /// assert_eq!(e.kind(), multiprocess::ErrorKind::InvalidInput);
    /// ```
    #[cfg(feature = "redis")]
    pub fn key(mut self, key: &[u8]) -> Self {
        let url = self.redis.take().map(|(u, _)| u).unwrap_or_default();
        self.redis = Some((url, key.to_vec()));
        self
    }

    /// Number of worker processes (default: [`cpu_count`](crate::cpu_count)).
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::builder().processes(3).build()?;
    /// assert_eq!(pool.processes(), 3);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// Runs `f(args)` in each worker when it starts. If it panics or exits, the pool
    /// is broken: every task fails with [`ErrorKind::BrokenPool`] and the
    /// initializer's message, and no new workers are started.
    ///
    /// # Examples
    ///
    /// ```
    /// fn check(limit: u32) { assert!(limit > 0, "limit must be positive") }
    /// fn id(x: u8) -> u8 { x }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::builder().processes(1).initializer(check, 0).build()?;
    /// let e = pool.apply(id, 1).unwrap_err();
    /// assert_eq!(e.kind(), multiprocess::ErrorKind::BrokenPool);
    /// assert!(e.to_string().contains("limit must be positive"));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn initializer<A>(mut self, f: fn(A), args: A) -> Self
    where
        A: Serialize + DeserializeOwned + 'static,
    {
        self.init = Some(Blob::encode(&args).map(|args| Init {
            entry: code_offset(run_init::<A> as *const ()),
            func: code_offset(f as *const ()),
            args,
        }));
        self
    }

    /// Replaces each worker after it ran `n` tasks (Python's `maxtasksperchild`), to
    /// return memory that leaky code holds.
    ///
    /// # Examples
    ///
    /// ```
    /// fn pid(_: u32) -> u32 { std::process::id() }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::builder().processes(1).max_tasks_per_child(1).build()?;
    /// let a = pool.apply(pid, 0)?;
    /// let b = pool.apply(pid, 0)?;
    /// assert_ne!(a, b);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn max_tasks_per_child(mut self, n: usize) -> Self {
        self.max_tasks = Some(n.max(1));
        self
    }

    /// Starts workers with this context's start method (default: the default
    /// context).
    ///
    /// # Examples
    ///
    /// See [`PoolBuilder`].
    pub fn context(mut self, ctx: Context) -> Self {
        self.ctx = Some(ctx);
        self
    }

    /// A time limit for every call (see [`Options::timeout`]).
    ///
    /// # Examples
    ///
    /// See [`PoolBuilder`].
    pub fn task_timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Starts the engine, its workers named `name-1`, `name-2`... (or connects to
    /// the cluster).
    pub(crate) fn into_backend(self, name: &'static str) -> Result<Backend> {
        #[cfg(feature = "redis")]
        if let Some((url, key)) = self.redis {
            if url.is_empty() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "a cluster key without a Redis URL: add .redis(url)",
                ));
            }
            if self.init.is_some() || self.max_tasks.is_some() || self.ctx.is_some() {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "a cluster pool's workers are set on the worker hosts: no initializer, \
                     max_tasks_per_child or context on the submitter",
                ));
            }
            return Ok(Backend::Cluster(Client::start(Settings {
                url,
                key,
                io_timeout: crate::broker::IO_TIMEOUT,
                processes: self.processes,
            })?));
        }
        let processes = self.processes.unwrap_or_else(crate::cpu_count);
        let init = self.init.transpose()?;
        Ok(Backend::Local(Engine::start(Config {
            processes,
            ctx: self.ctx.unwrap_or_else(default_context),
            init,
            max_tasks: self.max_tasks,
            name,
        })?))
    }

    /// Starts the pool.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for zero processes; [`ErrorKind::Serialize`] if the
    /// initializer's arguments do not serialize; the error of starting a worker.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let e = multiprocess::Pool::builder().processes(0).build().unwrap_err();
    /// assert_eq!(e.kind(), multiprocess::ErrorKind::InvalidInput);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn build(self) -> Result<Pool> {
        let timeout = self.timeout;
        Ok(Pool {
            backend: self.into_backend("PoolWorker")?,
            timeout,
            tasks: AtomicU64::new(0),
        })
    }
}

impl Pool {
    /// A pool of `processes` workers.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for zero (Python's `ValueError`); the error of
    /// starting a worker.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(2)?;
    /// assert_eq!(pool.processes(), 2);
    /// assert!(multiprocess::Pool::new(0).is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn new(processes: usize) -> Result<Pool> {
        Pool::builder().processes(processes).build()
    }

    /// A builder for the other settings (initializer, `max_tasks_per_child`,
    /// context, task timeout).
    ///
    /// # Examples
    ///
    /// See [`PoolBuilder`].
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }

    /// The number of workers.
    ///
    /// # Examples
    ///
    /// See [`Pool::new`].
    pub fn processes(&self) -> usize {
        self.backend.processes()
    }

    fn flavor<A, R>(&self, f: fn(A) -> R) -> Flavor<'_, A, R>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.backend.flavor(f)
    }

    fn task_name(&self) -> String {
        let n = self.tasks.fetch_add(1, Ordering::Relaxed);
        format!("task {n}")
    }

    /// Runs `f(args)` in a worker and waits for the result (Python's `apply`).
    ///
    /// # Errors
    ///
    /// As [`AsyncResult::get`]; [`ErrorKind::Serialize`] if `args` do not serialize;
    /// [`ErrorKind::InvalidState`] after `close()`.
    ///
    /// # Examples
    ///
    /// ```
    /// fn add((a, b): (i32, i32)) -> i32 { a + b }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(1)?;
    /// assert_eq!(pool.apply(add, (2, 3))?, 5);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn apply<A, R>(&self, f: fn(A) -> R, args: A) -> Result<R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_async(f, args)?.get()
    }

    /// Starts `f(args)` in a worker; collect the result later (Python's
    /// `apply_async`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Serialize`] if `args` do not serialize; [`ErrorKind::InvalidState`]
    /// after `close()`; [`ErrorKind::BrokenPool`] after `terminate()` or a failed
    /// initializer.
    ///
    /// # Examples
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(2)?;
    /// let rs: Vec<_> = (0..10).map(|i| pool.apply_async(square, i)).collect::<Result<_, _>>()?;
    /// let total: u64 = rs.iter().map(|r| r.get()).sum::<Result<u64, _>>()?;
    /// assert_eq!(total, 285);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn apply_async<A, R>(&self, f: fn(A) -> R, args: A) -> Result<AsyncResult<R>>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_async_with(f, args, Options::new())
    }

    /// [`apply_async`](Pool::apply_async) with callbacks and a timeout.
    ///
    /// # Errors
    ///
    /// As [`apply_async`](Pool::apply_async).
    ///
    /// # Examples
    ///
    /// See [`Options::error_callback`].
    pub fn apply_async_with<A, R>(
        &self,
        f: fn(A) -> R,
        args: A,
        opts: Options<R>,
    ) -> Result<AsyncResult<R>>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        apply_async(&self.flavor(f), args, opts, self.timeout, self.task_name())
    }

    /// `f` over every item, in order (Python's `map`): the input is split into
    /// chunks (about four per worker unless [`Options::chunk_size`] says otherwise).
    ///
    /// # Errors
    ///
    /// If any call failed, the failure of the lowest item index (with how many more
    /// failed); every chunk still runs to the end. Use [`imap`](Pool::imap) for one
    /// result per item.
    ///
    /// # A closure that captures
    ///
    /// `f` is a `fn`: a closure that captures a variable does not coerce to one
    /// (E0308, "closures can only be coerced to `fn` types if they do not capture any
    /// variables"), since workers have none of the caller's memory. Put the captured
    /// value into each item (`items.map(|x| (x, factor))`), or use
    /// [`ThreadPool`](crate::ThreadPool), which takes closures.
    ///
    /// ```compile_fail
    /// let factor = 3;
    /// let pool = multiprocess::Pool::new(2)?;
    /// pool.map(|x: u64| x * factor, [1, 2, 3])?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    ///
    /// # Examples
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// fn scale((x, factor): (u64, u64)) -> u64 { x * factor }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(2)?;
    /// assert_eq!(pool.map(square, [1, 2, 3])?, [1, 4, 9]);
    /// let factor = 3; // what a closure would have captured travels with each item
    /// assert_eq!(pool.map(scale, [1, 2, 3].map(|x| (x, factor)))?, [3, 6, 9]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn map<A, R>(&self, f: fn(A) -> R, items: impl IntoIterator<Item = A>) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_async(f, items)?.get()
    }

    /// [`map`](Pool::map) with options (chunk size, timeout, callbacks).
    ///
    /// # Errors
    ///
    /// As [`map`](Pool::map).
    ///
    /// # Examples
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(2)?;
    /// let v = pool.map_with(square, 0..100, multiprocess::Options::new().chunk_size(20))?;
    /// assert_eq!(v[99], 9801);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn map_with<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        opts: Options<Vec<R>>,
    ) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_async_with(f, items, opts)?.get()
    }

    /// Starts a [`map`](Pool::map); collect the results later.
    ///
    /// # Errors
    ///
    /// As [`apply_async`](Pool::apply_async).
    ///
    /// # Examples
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(2)?;
    /// let r = pool.map_async(square, 0..4)?;
    /// assert_eq!(r.get()?, [0, 1, 4, 9]);
    /// assert!(pool.map_async(square, Vec::new())?.ready()); // empty: done at once
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn map_async<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_async_with(f, items, Options::new())
    }

    /// [`map_async`](Pool::map_async) with options.
    ///
    /// # Errors
    ///
    /// As [`apply_async`](Pool::apply_async); [`ErrorKind::InvalidInput`] for a chunk
    /// size of 0.
    ///
    /// # Examples
    ///
    /// See [`Options`].
    pub fn map_async_with<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        opts: Options<Vec<R>>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let items = items.into_iter();
        #[cfg(feature = "progress")]
        let mut opts = opts;
        #[cfg(feature = "progress")]
        let bar = opts.progress.then(|| {
            let label = opts.label.as_deref().unwrap_or("map");
            super::progress::bar(items.size_hint().0 as u64, label)
        });
        #[cfg(feature = "progress")]
        if let Some(bar) = &bar {
            let b = bar.clone();
            opts.tick = Some(Arc::new(move |n| b.inc(n)));
        }
        let r = map_async(&self.flavor(f), items, opts, self.timeout)?;
        #[cfg(feature = "progress")]
        if let Some(bar) = bar {
            r.slot.on_done(Box::new(move |r| {
                // The last chunk's tick may come after the result: count it whole.
                if let Ok(v) = r {
                    bar.set_position(v.len() as u64);
                }
                super::progress::finish(&bar)
            }));
        }
        Ok(r)
    }

    /// Python's `starmap`: `f` over argument tuples. A Rust function takes its
    /// arguments as one tuple it destructures (`fn add((a, b): (u32, u32))`), so this
    /// is [`map`](Pool::map) under the name Python users look for.
    ///
    /// # Errors
    ///
    /// As [`map`](Pool::map).
    ///
    /// # Examples
    ///
    /// ```
    /// fn add((a, b): (u32, u32)) -> u32 { a + b }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(2)?;
    /// assert_eq!(pool.starmap(add, [(1, 2), (3, 4)])?, [3, 7]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn starmap<A, R>(&self, f: fn(A) -> R, items: impl IntoIterator<Item = A>) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map(f, items)
    }

    /// Python's `starmap_async`: [`map_async`](Pool::map_async) over argument tuples.
    ///
    /// # Errors
    ///
    /// As [`map_async`](Pool::map_async).
    ///
    /// # Examples
    ///
    /// ```
    /// fn mul((a, b): (u32, u32)) -> u32 { a * b }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(2)?;
    /// assert_eq!(pool.starmap_async(mul, [(2, 3)])?.get()?, [6]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn starmap_async<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_async(f, items)
    }

    /// Results one by one, in input order, as they are ready (Python's `imap`, chunk
    /// size 1 unless [`imap_with`](Pool::imap_with) says otherwise). The input is
    /// pulled lazily with bounded look-ahead, so it may be endless; each item is a
    /// `Result` (a failed call does not end the iteration).
    ///
    /// # Examples
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(2)?;
    /// let v: Vec<u64> = pool.imap(square, 0..5).collect::<Result<_, _>>()?;
    /// assert_eq!(v, [0, 1, 4, 9, 16]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn imap<'p, A, R>(
        &'p self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> IMap<'p, A, R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.imap_with(f, items, Options::new())
    }

    /// [`imap`](Pool::imap) with options (chunk size, timeout, progress bar).
    ///
    /// # Examples
    ///
    /// See [`Options::chunk_size`].
    pub fn imap_with<'p, A, R>(
        &'p self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
        opts: Options,
    ) -> IMap<'p, A, R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.imap_inner(f, Box::new(items.into_iter().map(Ok)), opts, true)
    }

    /// As [`imap`](Pool::imap), in the order results arrive (Python's
    /// `imap_unordered`).
    ///
    /// # Examples
    ///
    /// See the [module docs](crate::pool).
    pub fn imap_unordered<'p, A, R>(
        &'p self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> IMap<'p, A, R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.imap_unordered_with(f, items, Options::new())
    }

    /// [`imap_unordered`](Pool::imap_unordered) with options.
    ///
    /// # Examples
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(2)?;
    /// let opts = multiprocess::Options::new().chunk_size(10);
    /// let n = pool.imap_unordered_with(square, 0..1000, opts).filter(|r| r.is_ok()).count();
    /// assert_eq!(n, 1000);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn imap_unordered_with<'p, A, R>(
        &'p self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
        opts: Options,
    ) -> IMap<'p, A, R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.imap_inner(f, Box::new(items.into_iter().map(Ok)), opts, false)
    }

    /// [`imap`](Pool::imap) over a fallible input: when the input yields an `Err`,
    /// the results of the items before its chunk come out, then that error, then
    /// the end (Python's `imap` over a generator that raises).
    ///
    /// # Examples
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(2)?;
    /// let input = (0..10u64).map(|i| if i < 5 { Ok(i) } else { Err(format!("bad item {i}")) });
    /// let out: Vec<_> = pool.try_imap(square, input).collect();
    /// assert_eq!(out.len(), 6);
    /// assert_eq!(*out[4].as_ref().unwrap(), 16);
    /// assert!(out[5].as_ref().unwrap_err().to_string().contains("bad item 5"));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn try_imap<'p, A, R, E>(
        &'p self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = std::result::Result<A, E>> + 'p,
    ) -> IMap<'p, A, R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        E: fmt::Display,
    {
        let input = items.into_iter().map(|r| {
            r.map_err(|e| Error::new(ErrorKind::InvalidInput, format!("the input failed: {e}")))
        });
        self.imap_inner(f, Box::new(input), Options::new(), true)
    }

    fn imap_inner<'p, A, R>(
        &'p self,
        f: fn(A) -> R,
        input: Box<dyn Iterator<Item = Result<A>> + 'p>,
        opts: Options,
        ordered: bool,
    ) -> IMap<'p, A, R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        #[cfg(feature = "progress")]
        let (input, bar) = {
            let (lo, hi) = input.size_hint();
            let bar = opts.progress.then(|| {
                let label = opts.label.as_deref().unwrap_or("imap");
                super::progress::bar(hi.filter(|&h| h == lo).unwrap_or(0) as u64, label)
            });
            (input, bar)
        };
        #[allow(unused_mut)]
        let mut it = IMap::new(
            self.flavor(f),
            input,
            opts.chunk_size.unwrap_or(1),
            ordered,
            opts.timeout.or(self.timeout),
        );
        #[cfg(feature = "progress")]
        {
            it.bar = bar;
        }
        it
    }

    /// No more tasks: the workers exit once the queued ones are done (Python's
    /// `close`).
    ///
    /// # Examples
    ///
    /// ```
    /// fn id(x: u8) -> u8 { x }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(1)?;
    /// let r = pool.apply_async(id, 1)?;
    /// pool.close();
    /// assert!(pool.apply_async(id, 2).is_err());
    /// pool.join()?;
    /// assert_eq!(r.get()?, 1);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn close(&self) {
        self.backend.close();
    }

    /// Stops the workers now (SIGTERM, then SIGKILL after 200 ms); tasks not finished
    /// fail with [`ErrorKind::Cancelled`]. Returns promptly however many tasks are
    /// queued.
    ///
    /// # Examples
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(2)?;
    /// let r = pool.map_async(nap, vec![10_000; 100])?;
    /// pool.terminate();
    /// assert_eq!(r.get().unwrap_err().kind(), multiprocess::ErrorKind::Cancelled);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn terminate(&self) {
        self.backend.terminate();
    }

    /// Waits for the workers to exit, after [`close`](Pool::close) or
    /// [`terminate`](Pool::terminate).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidState`] if the pool is still open (Python's `ValueError`).
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(1)?;
    /// assert!(pool.join().is_err());
    /// pool.close();
    /// pool.join()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn join(&self) -> Result<()> {
        if !self.backend.is_closed() {
            return Err(Error::state("join() needs close() or terminate() first"));
        }
        self.backend.join();
        Ok(())
    }

    /// Per-worker counters (tasks done, time busy) and the task each worker runs now,
    /// with since when (see [`WorkerStats`]).
    ///
    /// # Examples
    ///
    /// ```
    /// fn id(x: u8) -> u8 { x }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(2)?;
    /// pool.map(id, 0..100)?;
    /// let stats = pool.stats();
    /// assert_eq!(stats.len(), 2);
    /// assert!(stats.iter().all(|s| s.name.starts_with("PoolWorker-")));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn stats(&self) -> Vec<WorkerStats> {
        self.backend.stats()
    }

    /// A cluster pool's counters (results of retried tasks, duplicates and forged
    /// entries dropped) and its live hosts; `None` for a local pool.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(1)?;
    /// assert!(pool.cluster_stats().is_none());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    #[cfg(feature = "redis")]
    pub fn cluster_stats(&self) -> Option<ClusterStats> {
        match &self.backend {
            Backend::Local(_) => None,
            Backend::Cluster(c) => Some(c.cluster_stats()),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.terminate();
    }
}
