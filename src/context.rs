//! Constructors that gather many layers, as Python's `ctx.Queue()`, `ctx.Lock()`,
//! `ctx.Value()`, `ctx.Manager()`.
//!
//! [`Context`] itself (a start method) belongs to the process layer; these methods
//! sit here, at the top beside `lib.rs`, because they build queues, locks, shared
//! values and managers, which all live above processes. A context is the one place a
//! program chooses a start method: whatever it builds starts its processes (a
//! manager's server, and the processes that use these objects) the same way.

use crate::error::Result;
use crate::{
    Array, Barrier, BoundedSemaphore, Condition, Context, Event, JoinableQueue, Lock, Manager, Pod,
    Queue, RLock, Semaphore, SimpleQueue, Value,
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
