//! `get_async`, `put_async` and `JoinableQueue::join_async`: a queue's async twins.
//!
//! # How an async waiter learns that something changed
//!
//! A blocked `get` sleeps on a futex word in the shared segment (`W_ITEMS_SEQ`), which
//! a `put` wakes. No reactor can watch a futex (and `futex_waitv` cannot be mixed with
//! `epoll`), and the queue's first eventfd, the bell of `multiprocess::wait`, is reset
//! by its waiters, which would race with waiters in other processes that were about to
//! see it. So a queue has a second eventfd, the **async bell**, with one rule: *nobody
//! ever resets it*. Async waiters watch it edge-triggered (every ring is an edge, even
//! while its counter is non-zero) with the tick discipline of `aio` (a try that finds
//! nothing clears only the edge it saw), so a ring is never lost, and a ring that came
//! before a waiter registered is reported when it registers (the fd is readable).
//!
//! * Async waiters count themselves in the segment (`W_ASYNC_WAITERS`, for as long as
//!   their future lives); a successful `put` or `get`, and the `task_done` that
//!   brings a joinable queue's count of unfinished tasks to zero, ring the bell only
//!   while the count is non-zero, after releasing the lock. Without async waiters a queue costs
//!   what it did: one load per operation.
//! * A ring means "look again": getters and putters share it (a `put` wakes the
//!   putters too, a `get` the getters too), and each retries once and goes back to
//!   sleep if its condition does not hold. A try that fails rings nothing, so waiters
//!   cannot wake each other in a loop.
//! * A try takes the queue's lock without waiting. If another process or thread holds
//!   it, what it does decides: when the queue is empty (for a getter) or full (for a
//!   putter), the holder is waiting itself and whatever changes that will ring the bell,
//!   so the task sleeps on the bell; otherwise the holder is taking or adding an item
//!   now, and the task retries after a short sleep (1 ms doubling to 25 ms: `aio`'s
//!   back-off, the period at which the locks check that a holder is alive; a holder
//!   killed inside the lock is taken over by that retry, as by a synchronous waiter).
//!
//! Cost: one more fd per queue handle; a ring (an eventfd write) per operation while
//! async waiters exist. A process killed while awaiting leaves the count raised, which
//! costs later operations that write, never correctness.

use std::future::Future;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::task::{Context, Poll};
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ring::HEADER;
use super::{
    PutError, Q_CLOCK, Q_PLOCK, Queue, RawQueue, W_ASYNC_WAITERS, W_UNFINISHED, big_item,
    closed_error,
};
use crate::aio::{self, Attempt, Backoff, Readable};
use crate::error::{Error, ErrorKind, Result};
use crate::wire::codec;

impl RawQueue {
    /// One try of a get without waiting for anything.
    fn try_get_async<R>(
        &self,
        decode: impl FnOnce(&[u8], Vec<OwnedFd>) -> Result<R>,
    ) -> Attempt<Result<R>> {
        let now = Some(Instant::now());
        let Some(held) = self.lock(Q_CLOCK, now) else {
            return if self.len() > 0 {
                Attempt::Contended
            } else {
                Attempt::WouldBlock
            };
        };
        match self.get_held(held, now, decode) {
            Err(e) if e.kind() == ErrorKind::Empty => Attempt::WouldBlock,
            r => Attempt::Done(r),
        }
    }

    /// One try of a put without waiting for anything.
    fn try_put_async(&self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> Attempt<Result<()>> {
        let big = HEADER + bytes.len() > self.capacity() as usize / 2;
        let memfd = if big {
            match big_item(bytes) {
                Ok(m) => Some(m),
                Err(e) => return Attempt::Done(Err(e)),
            }
        } else {
            None
        };
        let now = Some(Instant::now());
        let Some(held) = self.lock(Q_PLOCK, now) else {
            let max = self.maxsize();
            return if max > 0 && self.len() >= max as usize {
                Attempt::WouldBlock
            } else {
                Attempt::Contended
            };
        };
        match self.put_held(held, bytes, fds, memfd, now) {
            Err(e) if e.kind() == ErrorKind::Full => Attempt::WouldBlock,
            r => Attempt::Done(r),
        }
    }
}

/// An async waiter's place in the queue's count (see the module docs); withdrawn
/// when the future is dropped or done.
#[derive(Debug, Default)]
struct Waiting {
    registered: bool,
    readable: Option<Readable>,
    backoff: Backoff,
}

impl Waiting {
    fn register(&mut self, q: &RawQueue) {
        if !self.registered {
            q.seg.word(W_ASYNC_WAITERS).fetch_add(1, SeqCst);
            self.registered = true;
        }
    }

    fn withdraw(&mut self, q: &RawQueue) {
        if self.registered {
            q.seg.word(W_ASYNC_WAITERS).fetch_sub(1, SeqCst);
            self.registered = false;
        }
        self.readable = None;
    }

    fn poll<T>(
        &mut self,
        q: &RawQueue,
        cx: &mut Context<'_>,
        attempt: impl FnMut() -> Attempt<Result<T>>,
    ) -> Poll<Result<T>> {
        // Counted before the first try: a put or get after it rings.
        self.register(q);
        let r = aio::poll_attempts(
            cx,
            &mut self.readable,
            &mut self.backoff,
            || Readable::new(q.abell.as_fd()),
            attempt,
            |e| Err(Error::io("waiting on a queue", e)),
        );
        if r.is_ready() {
            self.withdraw(q);
        }
        r
    }
}

impl<T: DeserializeOwned> Queue<T> {
    /// Takes the next item: the async twin of [`get`](Queue::get). Under any executor;
    /// with the `tokio` feature inside a tokio runtime, the wait is tokio's own.
    ///
    /// Dropping the future before it is ready takes nothing: no item is lost.
    ///
    /// # Errors
    ///
    /// As [`get`](Queue::get).
    ///
    /// # Examples
    ///
    /// A child puts; the parent awaits (here with a minimal executor):
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
    /// use multiprocess::{Process, Queue};
    /// fn producer(q: Queue<u32>) {
    ///     for i in 0..3 {
    ///         std::thread::sleep(std::time::Duration::from_millis(20));
    ///         q.put(i).unwrap();
    ///     }
    /// }
    /// multiprocess::init();
    /// let q = Queue::new()?;
    /// let mut p = Process::new(producer, q.clone());
    /// p.start()?;
    /// let got = block_on(async {
    ///     let mut got = Vec::new();
    ///     for _ in 0..3 {
    ///         got.push(q.get_async().await?);
    ///     }
    ///     Ok::<_, multiprocess::Error>(got)
    /// })?;
    /// assert_eq!(got, [0, 1, 2]);
    /// p.join()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn get_async(&self) -> QueueGet<'_, T> {
        QueueGet {
            q: self,
            waiting: Waiting::default(),
        }
    }
}

impl<T: Serialize> Queue<T> {
    /// Puts `item`, waiting for room in a bounded queue: the async twin of
    /// [`put`](Queue::put).
    ///
    /// Dropping the future before it is ready drops the item unput.
    ///
    /// # Errors
    ///
    /// As [`put`](Queue::put): the item comes back in the [`PutError`].
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
    /// let q = multiprocess::Queue::bounded(1)?;
    /// q.put(1u8)?;
    /// let q2 = q.clone();
    /// let t = std::thread::spawn(move || {
    ///     std::thread::sleep(std::time::Duration::from_millis(50));
    ///     q2.get().unwrap()
    /// });
    /// block_on(q.put_async(2))?; // waits until the thread made room
    /// assert_eq!(t.join().unwrap(), 1);
    /// assert_eq!(q.get()?, 2);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn put_async(&self, item: T) -> QueuePut<'_, T> {
        QueuePut {
            q: self,
            item: Some(item),
            waiting: Waiting::default(),
        }
    }
}

/// The future of [`Queue::get_async`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct QueueGet<'a, T> {
    q: &'a Queue<T>,
    waiting: Waiting,
}

impl<T: DeserializeOwned> Future for QueueGet<'_, T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.get_mut();
        let q = this.q;
        if q.closed.load(Relaxed) {
            this.waiting.withdraw(&q.inner);
            return Poll::Ready(Err(closed_error()));
        }
        this.waiting.poll(&q.inner, cx, || {
            q.inner
                .try_get_async(|bytes, fds| codec::decode(bytes, fds))
        })
    }
}

impl<T> Drop for QueueGet<'_, T> {
    fn drop(&mut self) {
        self.waiting.withdraw(&self.q.inner);
    }
}

/// The future of [`Queue::put_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct QueuePut<'a, T> {
    q: &'a Queue<T>,
    item: Option<T>,
    waiting: Waiting,
}

impl<T> std::fmt::Debug for QueuePut<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuePut")
            .field("queue", &self.q)
            .field("done", &self.item.is_none())
            .finish()
    }
}

// Nothing in it is pinned: the item is moved out by value.
impl<T> Unpin for QueuePut<'_, T> {}

impl<T: Serialize> Future for QueuePut<'_, T> {
    type Output = std::result::Result<(), PutError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let q = this.q;
        let Some(item) = this.item.as_ref() else {
            return Poll::Ready(Ok(()));
        };
        let r = if q.closed.load(Relaxed) {
            this.waiting.withdraw(&q.inner);
            Err(closed_error())
        } else {
            // Encoded at each try (a try happens at a wake-up, not in a loop): the
            // encoding borrows the item's handles, and the item must stay ours to give
            // back.
            match this
                .waiting
                .poll(&q.inner, cx, || match codec::encode(item) {
                    Ok(enc) => {
                        let fds = enc.borrowed_fds();
                        q.inner.try_put_async(&enc.bytes, &fds)
                    }
                    Err(e) => Attempt::Done(Err(e)),
                }) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r,
            }
        };
        let item = this.item.take().expect("checked above");
        Poll::Ready(match r {
            Ok(()) => {
                drop(item);
                Ok(())
            }
            Err(error) => Err(PutError::new(error, item)),
        })
    }
}

impl<T> Drop for QueuePut<'_, T> {
    fn drop(&mut self) {
        self.waiting.withdraw(&self.q.inner);
    }
}

impl<T: DeserializeOwned> super::SimpleQueue<T> {
    /// As [`Queue::get_async`].
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
    /// let q = multiprocess::SimpleQueue::new()?;
    /// block_on(q.put_async('x'))?;
    /// assert_eq!(block_on(q.get_async())?, 'x');
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn get_async(&self) -> QueueGet<'_, T> {
        self.0.get_async()
    }
}

impl<T: Serialize> super::SimpleQueue<T> {
    /// As [`Queue::put_async`].
    ///
    /// # Errors
    ///
    /// As [`Queue::put`].
    ///
    /// # Examples
    ///
    /// See [`SimpleQueue::get_async`](super::SimpleQueue::get_async).
    pub fn put_async(&self, item: T) -> QueuePut<'_, T> {
        self.0.put_async(item)
    }
}

/// The future of [`JoinableQueue::join_async`](super::JoinableQueue::join_async).
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct QueueJoin<'a> {
    q: &'a RawQueue,
    waiting: Waiting,
}

impl<'a> QueueJoin<'a> {
    pub(super) fn new(q: &'a RawQueue) -> Self {
        QueueJoin {
            q,
            waiting: Waiting::default(),
        }
    }
}

impl Future for QueueJoin<'_> {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        let q = this.q;
        // `task_done` rings the bell when the count reaches zero.
        let unfinished = q.seg.word(W_UNFINISHED);
        this.waiting.poll(q, cx, || {
            if unfinished.load(SeqCst) == 0 {
                Attempt::Done(Ok(()))
            } else {
                Attempt::WouldBlock
            }
        })
    }
}

impl Drop for QueueJoin<'_> {
    fn drop(&mut self) {
        self.waiting.withdraw(self.q);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aio::tests::block_on;

    fn waiters(q: &Queue<u32>) -> u32 {
        q.inner.seg.word(W_ASYNC_WAITERS).load(SeqCst)
    }

    #[test]
    fn a_waiter_counts_itself_while_its_future_lives_and_no_longer() {
        let q = Queue::<u32>::bounded(1).unwrap();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        {
            let mut get = Box::pin(q.get_async());
            assert!(get.as_mut().poll(&mut cx).is_pending());
            assert_eq!(waiters(&q), 1);
        }
        assert_eq!(waiters(&q), 0, "a dropped get withdraws");
        q.put(1).unwrap();
        {
            let mut put = Box::pin(q.put_async(2));
            assert!(put.as_mut().poll(&mut cx).is_pending(), "the queue is full");
            assert_eq!(waiters(&q), 1);
            assert_eq!(q.get().unwrap(), 1); // rings the bell: a waiter is counted
            // The ring reaches the reactor thread, which wakes the task.
            assert!(block_on(put.as_mut()).is_ok());
            assert_eq!(waiters(&q), 0, "a finished put withdraws");
        }
        assert_eq!(block_on(q.get_async()).unwrap(), 2);
        assert_eq!(waiters(&q), 0);
        // A failed put gives the item back; a closed queue refuses.
        q.close();
        let e = block_on(q.put_async(3)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidState);
        assert_eq!(e.into_inner(), 3);
        assert_eq!(
            block_on(q.get_async()).unwrap_err().kind(),
            ErrorKind::InvalidState
        );
        assert_eq!(waiters(&q), 0);
    }

    #[test]
    fn a_getter_blocked_by_the_lock_holder_gets_the_next_item() {
        // A thread holds the consumer lock while it sleeps on an empty queue; the
        // async getter must neither spin nor miss the second item.
        let q = Queue::<u32>::new().unwrap();
        let q2 = q.clone();
        let sync = std::thread::spawn(move || q2.get_timeout(std::time::Duration::from_secs(30)));
        std::thread::sleep(std::time::Duration::from_millis(20));
        let q3 = q.clone();
        let putter = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            q3.put(1).unwrap();
            q3.put(2).unwrap();
        });
        let a = block_on(q.get_async()).unwrap();
        let b = sync.join().unwrap().unwrap();
        putter.join().unwrap();
        let mut both = [a, b];
        both.sort();
        assert_eq!(both, [1, 2]);
        assert_eq!(waiters(&q), 0);
    }
}
