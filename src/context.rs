//! Constructors that gather many layers, as Python's `ctx.Queue()`, `ctx.Lock()`,
//! `ctx.Value()`, `ctx.Manager()`.
//!
//! [`Context`] itself (a start method) belongs to the process layer; these methods
//! sit here, at the top beside `lib.rs`, because they build queues, locks, shared
//! values and managers, which all live above processes. A context is the one place a
//! program chooses a start method: whatever it builds starts its processes (a
//! manager's server, and the processes that use these objects) the same way.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::futures::{ExecutorBuilder, ProcessPoolExecutor};
use crate::{
    Array, Barrier, BoundedSemaphore, Builder, Condition, Connection, Context, Event,
    JoinableQueue, Lock, Manager, ManagerBuilder, Pod, Pool, PoolBuilder, Queue, RLock, RawArray,
    RawValue, Semaphore, SharedMemory, SimpleQueue, Value,
};

impl Context {
    /// A [`Lock`](crate::Lock), as Python's `ctx.Lock()`. Synchronization primitives
    /// live in anonymous shared memory and work with every start method.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) if shared memory cannot be created.
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
    pub fn lock(&self) -> Result<Lock> {
        Lock::new()
    }

    /// An [`RLock`](crate::RLock) (see [`lock`](Context::lock)).
    ///
    /// # Errors
    ///
    /// As [`lock`](Context::lock).
    pub fn rlock(&self) -> Result<RLock> {
        RLock::new()
    }

    /// A [`Semaphore`](crate::Semaphore) with `value` permits.
    ///
    /// # Errors
    ///
    /// As [`lock`](Context::lock).
    pub fn semaphore(&self, value: u32) -> Result<Semaphore> {
        Semaphore::new(value)
    }

    /// A [`BoundedSemaphore`](crate::BoundedSemaphore) with `value` permits.
    ///
    /// # Errors
    ///
    /// As [`lock`](Context::lock), and `value == 0`.
    pub fn bounded_semaphore(&self, value: u32) -> Result<BoundedSemaphore> {
        BoundedSemaphore::new(value)
    }

    /// A [`Condition`](crate::Condition) with its own `RLock`.
    ///
    /// # Errors
    ///
    /// As [`lock`](Context::lock).
    pub fn condition(&self) -> Result<Condition> {
        Condition::new()
    }

    /// An [`Event`](crate::Event).
    ///
    /// # Errors
    ///
    /// As [`lock`](Context::lock).
    pub fn event(&self) -> Result<Event> {
        Event::new()
    }

    /// A [`Barrier`](crate::Barrier) for `parties`.
    ///
    /// # Errors
    ///
    /// As [`lock`](Context::lock), and `parties == 0`.
    pub fn barrier(&self, parties: u32) -> Result<Barrier> {
        Barrier::new(parties)
    }

    /// An unbounded [`Queue`](crate::Queue), as Python's `ctx.Queue()`.
    ///
    /// # Errors
    ///
    /// As [`Queue::new`](Queue::new).
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
    pub fn queue<T>(&self) -> Result<Queue<T>> {
        Queue::new()
    }

    /// A [`Queue`](crate::Queue) of at most `maxsize` items (`ctx.Queue(maxsize)`).
    ///
    /// # Errors
    ///
    /// As [`Queue::bounded`](Queue::bounded).
    pub fn bounded_queue<T>(&self, maxsize: u32) -> Result<Queue<T>> {
        Queue::bounded(maxsize)
    }

    /// A [`SimpleQueue`](crate::SimpleQueue).
    ///
    /// # Errors
    ///
    /// As [`Queue::new`](Queue::new).
    pub fn simple_queue<T>(&self) -> Result<SimpleQueue<T>> {
        SimpleQueue::new()
    }

    /// A [`JoinableQueue`](crate::JoinableQueue).
    ///
    /// # Errors
    ///
    /// As [`Queue::new`](Queue::new).
    pub fn joinable_queue<T>(&self) -> Result<JoinableQueue<T>> {
        JoinableQueue::new()
    }

    /// A shared [`Value`](crate::Value) with a lock (`ctx.Value(typecode, x)`).
    ///
    /// # Errors
    ///
    /// As [`Value::new`](Value::new).
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
    pub fn value<T: Pod>(&self, x: T) -> Result<Value<T>> {
        Value::new(x)
    }

    /// A shared [`Array`](crate::Array) with a lock, holding a copy of `src`
    /// (`ctx.Array(typecode, [...])`).
    ///
    /// # Errors
    ///
    /// As [`Array::from_slice`](Array::from_slice).
    pub fn array<T: Pod>(&self, src: &[T]) -> Result<Array<T>> {
        Array::from_slice(src)
    }

    /// A [`Manager`](crate::Manager) whose server process is started with this
    /// context's start method (Python's `ctx.Manager()`).
    ///
    /// # Errors
    ///
    /// As [`Manager::start`](Manager::start).
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
    pub fn manager(&self) -> Result<Manager> {
        Manager::with_context(*self)
    }
}

/// The remaining constructors: pools, executors, raw shared values, bounded joinable
/// queues, barriers with an action or a timeout, and the spawn [`Builder`], so that
/// every constructor of the API has its `ctx.*` form.
impl Context {
    /// A [`Pool`] of `processes` workers started with this context's method: Python's
    /// `get_context("spawn").Pool(4)`.
    ///
    /// # Errors
    ///
    /// As [`Pool::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{StartMethod, get_context};
    /// fn square(x: u32) -> u32 { x * x }
    /// multiprocess::init();
    /// let pool = get_context(StartMethod::Spawn).pool(2)?;
    /// assert_eq!(pool.map(square, 1..4)?, [1, 4, 9]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn pool(&self, processes: usize) -> Result<Pool> {
        self.pool_builder().processes(processes).build()
    }

    /// A [`PoolBuilder`] whose workers use this context's method (the other
    /// settings of Python's `ctx.Pool(...)`).
    ///
    /// # Examples
    ///
    /// ```
    /// fn one(_: ()) -> u8 { 1 }
    /// multiprocess::init();
    /// let pool = multiprocess::default_context().pool_builder().processes(1).build()?;
    /// assert_eq!(pool.apply(one, ())?, 1);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn pool_builder(&self) -> PoolBuilder {
        Pool::builder().context(*self)
    }

    /// A [`ProcessPoolExecutor`] with `max_workers` workers started with this context's
    /// method: Python's `ProcessPoolExecutor(n, mp_context=ctx)`.
    ///
    /// # Errors
    ///
    /// As [`ProcessPoolExecutor::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{StartMethod, get_context};
    /// fn double(x: u32) -> u32 { 2 * x }
    /// multiprocess::init();
    /// let ex = get_context(StartMethod::ForkServer).executor(1)?;
    /// assert_eq!(ex.submit(double, 21)?.result()?, 42);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn executor(&self, max_workers: usize) -> Result<ProcessPoolExecutor> {
        self.executor_builder().max_workers(max_workers).build()
    }

    /// An [`ExecutorBuilder`] whose workers use this context's method.
    ///
    /// # Examples
    ///
    /// ```
    /// fn one(_: ()) -> u8 { 1 }
    /// multiprocess::init();
    /// let ex = multiprocess::default_context().executor_builder().max_workers(1).build()?;
    /// assert_eq!(ex.submit(one, ())?.result()?, 1);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn executor_builder(&self) -> ExecutorBuilder {
        ProcessPoolExecutor::builder().context(*self)
    }

    /// A duplex [`pipe`](crate::pipe) (Python's `ctx.Pipe()`). Connections work
    /// with every start method.
    ///
    /// # Errors
    ///
    /// As [`pipe`](crate::pipe).
    ///
    /// # Examples
    ///
    /// ```
    /// let ctx = multiprocess::default_context();
    /// let (a, b) = ctx.pipe::<u8>()?;
    /// a.send(&1)?;
    /// assert_eq!(b.recv()?, 1);
    /// let (r, w) = ctx.pipe_simplex::<u8>()?;
    /// w.send(&2)?;
    /// assert_eq!(r.recv()?, 2);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn pipe<T>(&self) -> Result<(Connection<T>, Connection<T>)> {
        crate::pipe()
    }

    /// A one-way [`pipe_simplex`](crate::pipe_simplex): `(reader, writer)`
    /// (Python's `ctx.Pipe(duplex=False)`).
    ///
    /// # Errors
    ///
    /// As [`pipe_simplex`](crate::pipe_simplex).
    pub fn pipe_simplex<T>(&self) -> Result<(Connection<T>, Connection<T>)> {
        crate::pipe_simplex()
    }

    /// A [`ManagerBuilder`] whose server process uses this context's method.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::default_context().manager_builder().start()?;
    /// m.list::<u8>()?.push(1)?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn manager_builder(&self) -> ManagerBuilder {
        Manager::builder().context(*self)
    }

    /// A new [`SharedMemory`] block (Python's `SharedMemory(name, create=True, size)`;
    /// named blocks do not depend on the start method).
    ///
    /// # Errors
    ///
    /// As [`SharedMemory::create`].
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let shm = multiprocess::default_context().shared_memory(None, 64)?;
    /// assert!(shm.size() >= 64);
    /// shm.unlink()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn shared_memory(&self, name: Option<&str>, size: usize) -> Result<SharedMemory> {
        SharedMemory::create(name, size)
    }

    /// A [`Builder`] for [`spawn`](crate::spawn) with this context's method.
    ///
    /// # Examples
    ///
    /// ```
    /// fn var(_: ()) -> Option<String> { std::env::var("X").ok() }
    /// multiprocess::init();
    /// let h = multiprocess::default_context().builder().env("X", "1").spawn(var, ())?;
    /// assert_eq!(h.join()?.as_deref(), Some("1"));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn builder(&self) -> Builder {
        Builder::new().context(*self)
    }

    /// A [`RawValue`] (Python's `ctx.RawValue`: shared, no lock).
    ///
    /// # Errors
    ///
    /// As [`RawValue::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// let ctx = multiprocess::default_context();
    /// let v = ctx.raw_value(7u32)?;
    /// let a = ctx.raw_array(&[1i64, 2])?;
    /// let z = ctx.array_zeroed::<f64>(4)?;
    /// let rz = ctx.raw_array_zeroed::<u8>(2)?;
    /// assert_eq!((v.get(), a.len(), z.len(), rz.len()), (7, 2, 4, 2));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn raw_value<T: Pod>(&self, x: T) -> Result<RawValue<T>> {
        RawValue::new(x)
    }

    /// A [`RawArray`] holding a copy of `src` (Python's `ctx.RawArray`).
    ///
    /// # Errors
    ///
    /// As [`RawArray::from_slice`].
    pub fn raw_array<T: Pod>(&self, src: &[T]) -> Result<RawArray<T>> {
        RawArray::from_slice(src)
    }

    /// A locked [`Array`] of `n` zeros (Python's `ctx.Array(typecode, n)`).
    ///
    /// # Errors
    ///
    /// As [`Array::zeroed`].
    pub fn array_zeroed<T: Pod>(&self, n: usize) -> Result<Array<T>> {
        Array::zeroed(n)
    }

    /// A [`RawArray`] of `n` zeros (Python's `ctx.RawArray(typecode, n)`).
    ///
    /// # Errors
    ///
    /// As [`RawArray::zeroed`].
    pub fn raw_array_zeroed<T: Pod>(&self, n: usize) -> Result<RawArray<T>> {
        RawArray::zeroed(n)
    }

    /// A [`JoinableQueue`] of at most `maxsize` items (`ctx.JoinableQueue(maxsize)`).
    ///
    /// # Errors
    ///
    /// As [`JoinableQueue::bounded`].
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiprocess::default_context().bounded_joinable_queue::<u8>(1)?;
    /// q.put(1)?;
    /// assert!(q.try_put(2).is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn bounded_joinable_queue<T>(&self, maxsize: u32) -> Result<JoinableQueue<T>> {
        JoinableQueue::bounded(maxsize)
    }

    /// A [`Barrier`] whose `action(args)` runs once per pass (see
    /// [`Barrier::with_action_args`]).
    ///
    /// # Errors
    ///
    /// As [`Barrier::with_action_args`].
    ///
    /// # Examples
    ///
    /// ```
    /// fn note(n: u32) { println!("pass of {n}"); }
    /// let ctx = multiprocess::default_context();
    /// let b = ctx.barrier_with_action(1, note, 1)?;
    /// let t = ctx.barrier_with_timeout(1, std::time::Duration::from_secs(1))?;
    /// assert_eq!((b.wait()?, t.wait()?), (0, 0));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn barrier_with_action<A>(&self, parties: u32, action: fn(A), args: A) -> Result<Barrier>
    where
        A: Serialize + DeserializeOwned + 'static,
    {
        Barrier::with_action_args(parties, action, args)
    }

    /// A [`Barrier`] whose waits give up after `timeout` (see
    /// [`Barrier::with_timeout`]).
    ///
    /// # Errors
    ///
    /// As [`Barrier::with_timeout`].
    pub fn barrier_with_timeout(&self, parties: u32, timeout: Duration) -> Result<Barrier> {
        Barrier::with_timeout(parties, timeout)
    }
}
