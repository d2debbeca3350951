//! Start methods and contexts: Python's `get_context`, `set_start_method`,
//! `get_start_method`, `get_all_start_methods`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::state::state;
use super::{JoinHandle, Process};
use crate::error::{Error, ErrorKind, Result};

/// How a child process is created.
///
/// | method | how | cost here | safe with threads |
/// |---|---|---|---|
/// | [`Fork`](StartMethod::Fork) | `fork()`; the child runs the task in a copy of the parent | ~fork | no: see below |
/// | [`Spawn`](StartMethod::Spawn) | a fresh run of the current binary (`/proc/self/exe`) | ~exec | yes |
/// | [`ForkServer`](StartMethod::ForkServer) | a single-threaded server process (spawned once) forks children on request | ~fork + 2 messages | yes |
///
/// `ForkServer` is the default on Linux, as in Python 3.14.
///
/// # Caveats
///
/// `Fork` copies only the calling thread. If another thread held a lock at that moment
/// (a logger, a connection pool, a `Mutex` of yours), it stays locked in the child. We
/// take the standard output and error locks around `fork`, so printing is safe, and
/// glibc's allocator is fork-safe; anything else your task touches must not depend on
/// other threads. `Spawn` and `ForkServer` have no such hazard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StartMethod {
    /// Python's `"fork"`.
    Fork,
    /// Python's `"spawn"`.
    Spawn,
    /// Python's `"forkserver"`.
    ForkServer,
}

impl StartMethod {
    /// Python's name for it: `"fork"`, `"spawn"` or `"forkserver"`.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::StartMethod;
    /// assert_eq!(StartMethod::ForkServer.as_str(), "forkserver");
    /// assert_eq!("spawn".parse::<StartMethod>()?, StartMethod::Spawn);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            StartMethod::Fork => "fork",
            StartMethod::Spawn => "spawn",
            StartMethod::ForkServer => "forkserver",
        }
    }
}

impl fmt::Display for StartMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StartMethod {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fork" => Ok(StartMethod::Fork),
            "spawn" => Ok(StartMethod::Spawn),
            "forkserver" => Ok(StartMethod::ForkServer),
            _ => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("cannot find start method {s:?} (expected fork, spawn or forkserver)"),
            )),
        }
    }
}

/// The platform's default start method.
pub const DEFAULT_START_METHOD: StartMethod = StartMethod::ForkServer;

/// Every start method this platform offers, the default first.
///
/// # Examples
///
/// ```
/// use multiprocess::StartMethod;
/// assert_eq!(multiprocess::get_all_start_methods()[0], StartMethod::ForkServer);
/// ```
pub fn get_all_start_methods() -> Vec<StartMethod> {
    vec![
        StartMethod::ForkServer,
        StartMethod::Spawn,
        StartMethod::Fork,
    ]
}

/// Sets the start method of the default context, once.
///
/// # Errors
///
/// [`ErrorKind::InvalidState`] if another method was already set (or fixed by
/// [`get_start_method`]), as Python's `set_start_method` without `force`.
///
/// # Examples
///
/// ```
/// use multiprocess::StartMethod;
/// multiprocess::set_start_method(StartMethod::Spawn)?;
/// assert_eq!(multiprocess::get_start_method(), StartMethod::Spawn);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub fn set_start_method(method: StartMethod) -> Result<()> {
    let mut m = state()
        .start_method
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    match *m {
        Some(old) if old != method => Err(Error::state(format!(
            "the start method is already set to {old}; use get_context({method}) for another"
        ))),
        _ => {
            *m = Some(method);
            Ok(())
        }
    }
}

/// The default context's start method (fixing it to the default if none was set).
///
/// # Examples
///
/// ```
/// // Unless `set_start_method` chose another, the default:
/// assert_eq!(multiprocess::get_start_method(), multiprocess::DEFAULT_START_METHOD);
/// ```
pub fn get_start_method() -> StartMethod {
    *state()
        .start_method
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert(DEFAULT_START_METHOD)
}

/// A context: the start method every process made from it uses.
///
/// # Examples
///
/// ```
/// use multiprocess::{StartMethod, get_context};
///
/// fn hello(n: u32) { println!("hello {n}"); }
///
/// multiprocess::init();
/// let ctx = get_context(StartMethod::Spawn);
/// let mut p = ctx.process(hello, 1);
/// p.start()?;
/// p.join()?;
/// assert_eq!(p.exitcode(), Some(0));
/// # Ok::<(), multiprocess::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    method: Option<StartMethod>,
}

/// A context for `method`, as Python's `get_context("spawn")`.
///
/// # Examples
///
/// ```
/// use multiprocess::{StartMethod, get_context};
/// assert_eq!(get_context(StartMethod::Fork).start_method(), StartMethod::Fork);
/// ```
pub fn get_context(method: StartMethod) -> Context {
    Context {
        method: Some(method),
    }
}

/// The default context (whose start method is [`get_start_method`]'s).
///
/// # Examples
///
/// ```
/// let ctx = multiprocess::default_context();
/// assert_eq!(ctx.start_method(), multiprocess::get_start_method());
/// ```
pub fn default_context() -> Context {
    Context { method: None }
}

impl Default for Context {
    fn default() -> Self {
        default_context()
    }
}

impl Context {
    /// The start method of this context.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{StartMethod, get_context};
    /// assert_eq!(get_context(StartMethod::Spawn).start_method(), StartMethod::Spawn);
    /// ```
    pub fn start_method(&self) -> StartMethod {
        self.method.unwrap_or_else(get_start_method)
    }

    /// A [`Process`] started with this context's method.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{StartMethod, get_context};
    /// fn hello(n: u8) { println!("hello {n}"); }
    /// multiprocess::init();
    /// let mut p = get_context(StartMethod::ForkServer).process(hello, 7);
    /// p.start()?;
    /// p.join()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn process<A>(&self, target: fn(A), args: A) -> Process<A>
    where
        A: Serialize + DeserializeOwned + 'static,
    {
        Process::new(target, args).context(*self)
    }

    /// [`crate::spawn`] with this context's method.
    ///
    /// # Errors
    ///
    /// As [`crate::spawn`].
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{StartMethod, get_context};
    /// fn double(x: i64) -> i64 { 2 * x }
    /// multiprocess::init();
    /// for m in multiprocess::get_all_start_methods() {
    ///     assert_eq!(get_context(m).spawn(double, 21)?.join()?, 42);
    /// }
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn spawn<A, R>(&self, f: fn(A) -> R, args: A) -> Result<JoinHandle<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        super::spawn_with(*self, f, args)
    }

    /// A [`Lock`](crate::Lock), as Python's `ctx.Lock()`. Synchronization primitives
    /// live in anonymous shared memory and work with every start method.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{StartMethod, get_context};
    /// let ctx = get_context(StartMethod::Spawn);
    /// let lock = ctx.lock()?;
    /// let sem = ctx.semaphore(2)?;
    /// let b = ctx.barrier(1)?;
    /// # drop((lock, sem, b, ctx.rlock()?, ctx.bounded_semaphore(1)?, ctx.condition()?, ctx.event()?));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn lock(&self) -> Result<crate::Lock> {
        crate::Lock::new()
    }

    /// An [`RLock`](crate::RLock) (see [`lock`](Context::lock)).
    ///
    /// # Errors
    ///
    /// As [`lock`](Context::lock).
    pub fn rlock(&self) -> Result<crate::RLock> {
        crate::RLock::new()
    }

    /// A [`Semaphore`](crate::Semaphore) with `value` permits.
    ///
    /// # Errors
    ///
    /// As [`lock`](Context::lock).
    pub fn semaphore(&self, value: u32) -> Result<crate::Semaphore> {
        crate::Semaphore::new(value)
    }

    /// A [`BoundedSemaphore`](crate::BoundedSemaphore) with `value` permits.
    ///
    /// # Errors
    ///
    /// As [`lock`](Context::lock), and `value == 0`.
    pub fn bounded_semaphore(&self, value: u32) -> Result<crate::BoundedSemaphore> {
        crate::BoundedSemaphore::new(value)
    }

    /// A [`Condition`](crate::Condition) with its own `RLock`.
    ///
    /// # Errors
    ///
    /// As [`lock`](Context::lock).
    pub fn condition(&self) -> Result<crate::Condition> {
        crate::Condition::new()
    }

    /// An [`Event`](crate::Event).
    ///
    /// # Errors
    ///
    /// As [`lock`](Context::lock).
    pub fn event(&self) -> Result<crate::Event> {
        crate::Event::new()
    }

    /// A [`Barrier`](crate::Barrier) for `parties`.
    ///
    /// # Errors
    ///
    /// As [`lock`](Context::lock), and `parties == 0`.
    pub fn barrier(&self, parties: u32) -> Result<crate::Barrier> {
        crate::Barrier::new(parties)
    }

    /// An unbounded [`Queue`](crate::Queue), as Python's `ctx.Queue()`.
    ///
    /// # Errors
    ///
    /// As [`Queue::new`](crate::Queue::new).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{StartMethod, get_context};
    /// let ctx = get_context(StartMethod::ForkServer);
    /// let q = ctx.queue::<u8>()?;
    /// let b = ctx.bounded_queue::<u8>(3)?;
    /// # drop((q, b, ctx.simple_queue::<u8>()?, ctx.joinable_queue::<u8>()?));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn queue<T>(&self) -> Result<crate::Queue<T>> {
        crate::Queue::new()
    }

    /// A [`Queue`](crate::Queue) of at most `maxsize` items (`ctx.Queue(maxsize)`).
    ///
    /// # Errors
    ///
    /// As [`Queue::bounded`](crate::Queue::bounded).
    pub fn bounded_queue<T>(&self, maxsize: u32) -> Result<crate::Queue<T>> {
        crate::Queue::bounded(maxsize)
    }

    /// A [`SimpleQueue`](crate::SimpleQueue).
    ///
    /// # Errors
    ///
    /// As [`Queue::new`](crate::Queue::new).
    pub fn simple_queue<T>(&self) -> Result<crate::SimpleQueue<T>> {
        crate::SimpleQueue::new()
    }

    /// A [`JoinableQueue`](crate::JoinableQueue).
    ///
    /// # Errors
    ///
    /// As [`Queue::new`](crate::Queue::new).
    pub fn joinable_queue<T>(&self) -> Result<crate::JoinableQueue<T>> {
        crate::JoinableQueue::new()
    }

    /// A shared [`Value`](crate::Value) with a lock (`ctx.Value(typecode, x)`).
    ///
    /// # Errors
    ///
    /// As [`Value::new`](crate::Value::new).
    ///
    /// # Examples
    ///
    /// ```
    /// let ctx = multiprocess::default_context();
    /// let v = ctx.value(1.5f64)?;
    /// let a = ctx.array(&[1u8, 2, 3])?;
    /// assert_eq!((v.get(), a.len()), (1.5, 3));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn value<T: crate::Pod>(&self, x: T) -> Result<crate::Value<T>> {
        crate::Value::new(x)
    }

    /// A shared [`Array`](crate::Array) with a lock, holding a copy of `src`
    /// (`ctx.Array(typecode, [...])`).
    ///
    /// # Errors
    ///
    /// As [`Array::from_slice`](crate::Array::from_slice).
    pub fn array<T: crate::Pod>(&self, src: &[T]) -> Result<crate::Array<T>> {
        crate::Array::from_slice(src)
    }

    /// A [`Manager`](crate::Manager) whose server process is started with this
    /// context's start method (Python's `ctx.Manager()`).
    ///
    /// # Errors
    ///
    /// As [`Manager::start`](crate::Manager::start).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{StartMethod, get_context};
    /// multiprocess::init();
    /// let m = get_context(StartMethod::Spawn).manager()?;
    /// m.list::<u8>()?.push(1)?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn manager(&self) -> Result<crate::Manager> {
        crate::Manager::with_context(*self)
    }
}
