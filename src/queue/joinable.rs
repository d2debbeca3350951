//! `JoinableQueue`: a [`Queue`] whose consumers acknowledge items with `task_done`, so
//! that a producer can `join` until every item put has been processed.

use std::fmt;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{PutError, Queue, W_JOIN_WAITERS, W_JOINABLE, W_UNFINISHED};
use crate::error::{Error, Result};
use crate::sys::{self, futex};

/// Python's `multiprocessing.JoinableQueue`.
///
/// Every [`put`](JoinableQueue::put) adds an unfinished task (once its item has room
/// in the queue, as in Python: a put still waiting on a full queue is not waited for
/// by `join`); every [`task_done`](JoinableQueue::task_done) finishes one;
/// [`join`](JoinableQueue::join) waits until none is unfinished. The counter lives in shared memory, so producers,
/// consumers and joiners can be in any processes.
///
/// # Examples
///
/// ```
/// use multiprocess::{JoinableQueue, Process};
///
/// fn worker(q: JoinableQueue<u32>) {
///     while let Ok(n) = q.get() {
///         let _ = n * 2; // ... process it ...
///         q.task_done().unwrap();
///     }
/// }
///
/// multiprocess::init();
/// let q = JoinableQueue::new()?;
/// let mut w = Process::new(worker, q.clone()).daemon(true);
/// w.start()?;
/// for i in 0..10 {
///     q.put(i)?;
/// }
/// q.join(); // returns once the worker acknowledged all ten
/// w.terminate()?;
/// w.join()?;
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub struct JoinableQueue<T>(Queue<T>);

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue(self.0.clone())
    }
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("len", &self.len())
            .field("unfinished", &self.unfinished())
            .finish()
    }
}

impl<T> JoinableQueue<T> {
    /// An unbounded joinable queue.
    ///
    /// # Errors
    ///
    /// As [`Queue::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiprocess::JoinableQueue::<u8>::new()?;
    /// q.join(); // nothing unfinished: returns at once
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        Ok(Self::joinable(Queue::new()?))
    }

    /// A joinable queue of at most `maxsize` items.
    ///
    /// # Errors
    ///
    /// As [`Queue::bounded`].
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiprocess::JoinableQueue::bounded(2)?;
    /// q.put(1u8)?;
    /// q.put(2u8)?;
    /// assert!(q.is_full());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn bounded(maxsize: u32) -> Result<Self> {
        Ok(Self::joinable(Queue::bounded(maxsize)?))
    }

    /// Marks a queue just made, before anyone else has it, as joinable: its puts
    /// count, through any handle (see `W_JOINABLE`).
    fn joinable(q: Queue<T>) -> Self {
        q.raw().seg.word(W_JOINABLE).store(1, SeqCst);
        JoinableQueue(q)
    }

    /// The underlying [`Queue`] (sharing the same items; a put through it counts an
    /// unfinished task too, as every put on a joinable queue does).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiprocess::JoinableQueue::<u8>::new()?;
    /// assert!(q.queue().is_empty());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn queue(&self) -> &Queue<T> {
        &self.0
    }

    /// Items in the queue now.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiprocess::JoinableQueue::<u8>::new()?.len(), 0);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Is the queue empty now?
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(multiprocess::JoinableQueue::<u8>::new()?.is_empty());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Is a bounded queue full now?
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!multiprocess::JoinableQueue::<u8>::bounded(1)?.is_full());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn is_full(&self) -> bool {
        self.0.is_full()
    }

    /// Tasks put and not yet acknowledged.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiprocess::JoinableQueue::new()?;
    /// q.put(1u8)?;
    /// assert_eq!(q.unfinished(), 1);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn unfinished(&self) -> usize {
        self.0.raw().seg.word(W_UNFINISHED).load(SeqCst) as usize
    }

    /// Acknowledges one item taken with `get`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidState`](crate::ErrorKind::InvalidState) if called more times
    /// than items were put (Python's `ValueError`).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiprocess::JoinableQueue::new()?;
    /// q.put(1u8)?;
    /// q.get()?;
    /// q.task_done()?;
    /// assert!(q.task_done().is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn task_done(&self) -> Result<()> {
        let w = self.0.raw().seg.word(W_UNFINISHED);
        let mut cur = w.load(SeqCst);
        loop {
            if cur == 0 {
                return Err(Error::state("task_done() called too many times"));
            }
            match w.compare_exchange(cur, cur - 1, SeqCst, SeqCst) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        if cur == 1 && self.0.raw().seg.word(W_JOIN_WAITERS).load(SeqCst) > 0 {
            futex::wake(w, i32::MAX as u32);
        }
        if cur == 1 {
            self.0.raw().ring_async();
        }
        Ok(())
    }

    fn join_until(&self, deadline: Option<Instant>) -> bool {
        let w = self.0.raw().seg.word(W_UNFINISHED);
        let waiters = self.0.raw().seg.word(W_JOIN_WAITERS);
        loop {
            let cur = w.load(SeqCst);
            if cur == 0 {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            waiters.fetch_add(1, SeqCst);
            if w.load(SeqCst) == cur {
                futex::wait(w, cur, deadline);
            }
            waiters.fetch_sub(1, SeqCst);
        }
    }

    /// Waits until every item put has been acknowledged with `task_done`.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiprocess::JoinableQueue::<u8>::new()?;
    /// q.join();
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn join(&self) {
        self.join_until(None);
    }

    /// As [`join`](JoinableQueue::join), waiting at most `timeout`; `true` if done.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = multiprocess::JoinableQueue::new()?;
    /// q.put(1u8)?;
    /// assert!(!q.join_timeout(Duration::from_millis(10)));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.join_until(sys::deadline_after(timeout))
    }

    /// Closes this handle (see [`Queue::close`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiprocess::JoinableQueue::<u8>::new()?;
    /// q.close();
    /// assert!(q.put(1).is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn close(&self) {
        self.0.close();
    }
}

impl<T: Serialize> JoinableQueue<T> {
    /// Puts an item and counts it as an unfinished task.
    ///
    /// # Errors
    ///
    /// As [`Queue::put`] (a failed put is not counted).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiprocess::JoinableQueue::new()?;
    /// q.put("job")?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn put(&self, item: T) -> std::result::Result<(), PutError<T>> {
        self.0.put(item)
    }

    /// As [`Queue::try_put`], counted.
    ///
    /// # Errors
    ///
    /// As [`Queue::try_put`].
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiprocess::JoinableQueue::bounded(1)?;
    /// q.try_put(1u8)?;
    /// assert!(q.try_put(2u8).is_err());
    /// assert_eq!(q.unfinished(), 1);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn try_put(&self, item: T) -> std::result::Result<(), PutError<T>> {
        self.0.try_put(item)
    }

    /// As [`Queue::put_timeout`], counted.
    ///
    /// # Errors
    ///
    /// As [`Queue::put_timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = multiprocess::JoinableQueue::new()?;
    /// q.put_timeout(1u8, Duration::from_secs(1))?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn put_timeout(&self, item: T, timeout: Duration) -> std::result::Result<(), PutError<T>> {
        self.0.put_timeout(item, timeout)
    }
}

impl<T: DeserializeOwned> JoinableQueue<T> {
    /// As [`Queue::get`].
    ///
    /// # Errors
    ///
    /// As [`Queue::get`].
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiprocess::JoinableQueue::new()?;
    /// q.put(3u8)?;
    /// assert_eq!(q.get()?, 3);
    /// q.task_done()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn get(&self) -> Result<T> {
        self.0.get()
    }

    /// As [`Queue::try_get`].
    ///
    /// # Errors
    ///
    /// As [`Queue::try_get`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(multiprocess::JoinableQueue::<u8>::new()?.try_get().is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn try_get(&self) -> Result<T> {
        self.0.try_get()
    }

    /// As [`Queue::get_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Queue::get_timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// assert!(multiprocess::JoinableQueue::<u8>::new()?.get_timeout(Duration::from_millis(1)).is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.0.get_timeout(timeout)
    }
}

impl<T> Serialize for JoinableQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for JoinableQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Queue::deserialize(d).map(JoinableQueue)
    }
}

/// The async twin of `join` (the producer's side).
impl<T> JoinableQueue<T> {
    /// Waits until every item put has been acknowledged with `task_done`: the async
    /// twin of [`join`](JoinableQueue::join).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) only if the wait cannot be registered
    /// with a reactor (no fd or thread left).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct T(std::thread::Thread);
    /// #     impl std::task::Wake for T { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let w = std::task::Waker::from(std::sync::Arc::new(T(std::thread::current())));
    /// #     let mut cx = std::task::Context::from_waker(&w);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// use multiprocess::{JoinableQueue, Process};
    /// fn worker(q: JoinableQueue<u32>) {
    ///     while let Ok(_job) = q.get() {
    ///         q.task_done().unwrap();
    ///     }
    /// }
    /// multiprocess::init();
    /// let q = JoinableQueue::new()?;
    /// let mut p = Process::new(worker, q.clone()).daemon(true);
    /// p.start()?;
    /// for i in 0..10 {
    ///     q.put(i)?;
    /// }
    /// block_on(q.join_async())?; // every job done
    /// p.terminate()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn join_async(&self) -> super::QueueJoin<'_> {
        super::QueueJoin::new(self.0.raw())
    }
}

/// The async twin of `put` (the producer's side).
impl<T: Serialize> JoinableQueue<T> {
    /// Puts `item`, waiting for room in a bounded queue, and counts it as an
    /// unfinished task once it lands: the async twin of [`put`](JoinableQueue::put).
    ///
    /// Dropping the future before it is ready drops the item unput (and uncounted).
    ///
    /// # Errors
    ///
    /// As [`Queue::put`]: the item comes back in the [`PutError`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct T(std::thread::Thread);
    /// #     impl std::task::Wake for T { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let w = std::task::Waker::from(std::sync::Arc::new(T(std::thread::current())));
    /// #     let mut cx = std::task::Context::from_waker(&w);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// let q = multiprocess::JoinableQueue::new()?;
    /// block_on(q.put_async(7u32))?;
    /// assert_eq!(q.unfinished(), 1);
    /// assert_eq!(q.get()?, 7);
    /// q.task_done()?;
    /// block_on(q.join_async())?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn put_async(&self, item: T) -> super::QueuePut<'_, T> {
        self.0.put_async(item)
    }
}

/// The async twin of `get` (a worker's side).
impl<T: DeserializeOwned> JoinableQueue<T> {
    /// As [`Queue::get_async`]; call [`task_done`](JoinableQueue::task_done) when the
    /// item is processed, as after [`get`](JoinableQueue::get).
    ///
    /// # Errors
    ///
    /// As [`Queue::get`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct T(std::thread::Thread);
    /// #     impl std::task::Wake for T { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let w = std::task::Waker::from(std::sync::Arc::new(T(std::thread::current())));
    /// #     let mut cx = std::task::Context::from_waker(&w);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// let q = multiprocess::JoinableQueue::new()?;
    /// q.put(5u8)?;
    /// assert_eq!(block_on(q.get_async())?, 5);
    /// q.task_done()?;
    /// q.join();
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn get_async(&self) -> super::QueueGet<'_, T> {
        self.0.get_async()
    }
}
