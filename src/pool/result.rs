//! The user's side of one result: [`AsyncResult`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::slot::Slot;
use crate::error::{Error, Result};
use crate::sys::deadline_after;

/// The result of an `*_async` call: Python's `AsyncResult`.
///
/// [`get`](AsyncResult::get) waits for the value and takes it out (a second `get`
/// is an error: Rust values move).
///
/// # Examples
///
/// ```
/// fn slow_double(x: u32) -> u32 {
///     std::thread::sleep(std::time::Duration::from_millis(50));
///     2 * x
/// }
/// multiprocess::init();
/// let pool = multiprocess::Pool::new(1)?;
/// let r = pool.apply_async(slow_double, 21)?;
/// assert!(!r.ready());
/// r.wait();
/// assert!(r.ready() && r.successful()?);
/// assert_eq!(r.get()?, 42);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub struct AsyncResult<R> {
    pub(crate) slot: Arc<Slot<R>>,
}

impl<R> fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("what", &self.slot.what)
            .field("ready", &self.ready())
            .finish()
    }
}

impl<R> AsyncResult<R> {
    /// Waits for the result and returns it.
    ///
    /// # Errors
    ///
    /// The task's failure: [`ErrorKind::Panicked`](crate::ErrorKind::Panicked) (message and location),
    /// [`ErrorKind::ProcessDied`](crate::ErrorKind::ProcessDied) (its worker died: how, and which task),
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) (it ran past its timeout), [`ErrorKind::Cancelled`](crate::ErrorKind::Cancelled) (the
    /// pool was terminated first), [`ErrorKind::BrokenPool`](crate::ErrorKind::BrokenPool); or
    /// [`ErrorKind::InvalidState`](crate::ErrorKind::InvalidState) if the value was already taken (a
    /// failure is kept and returned by every call, as Python raises it again).
    ///
    /// # Examples
    ///
    /// ```
    /// fn fail(_: ()) -> u8 { panic!("no luck") }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(1)?;
    /// let e = pool.apply_async(fail, ())?.get().unwrap_err();
    /// assert_eq!(e.kind(), multiprocess::ErrorKind::Panicked);
    /// assert!(e.to_string().contains("no luck"));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn get(&self) -> Result<R> {
        self.slot.take(None)
    }

    /// As [`get`](AsyncResult::get), giving up after `timeout` with
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) (the task goes on; you can `get` again later).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(1)?;
    /// let r = pool.apply_async(nap, 200)?;
    /// let e = r.get_timeout(Duration::from_millis(20)).unwrap_err();
    /// assert_eq!(e.kind(), multiprocess::ErrorKind::Timeout);
    /// assert_eq!(r.get()?, 200);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<R> {
        self.slot.take(deadline_after(timeout))
    }

    /// Waits until the result is ready.
    ///
    /// # Examples
    ///
    /// ```
    /// fn id(x: u8) -> u8 { x }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(1)?;
    /// let r = pool.apply_async(id, 3)?;
    /// r.wait();
    /// assert!(r.ready());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn wait(&self) {
        self.slot.wait(None);
    }

    /// Waits at most `timeout`; true if the result is ready.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// fn nap(ms: u64) { std::thread::sleep(Duration::from_millis(ms)) }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(1)?;
    /// let r = pool.apply_async(nap, 300)?;
    /// assert!(!r.wait_timeout(Duration::from_millis(10)));
    /// assert!(r.wait_timeout(Duration::from_secs(10)));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.slot.wait(deadline_after(timeout))
    }

    /// Whether the result is ready (Python's `ready()`).
    ///
    /// # Examples
    ///
    /// ```
    /// fn id(x: u8) -> u8 { x }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(1)?;
    /// let r = pool.apply_async(id, 3)?;
    /// let _ = r.get()?;
    /// assert!(r.ready());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn ready(&self) -> bool {
        self.slot.is_done()
    }

    /// Whether the task succeeded.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidState`](crate::ErrorKind::InvalidState) if it is not ready yet (Python raises
    /// `ValueError`).
    ///
    /// # Examples
    ///
    /// ```
    /// fn fail(_: ()) { panic!("boom") }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(1)?;
    /// let r = pool.apply_async(fail, ())?;
    /// r.wait();
    /// assert!(!r.successful()?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn successful(&self) -> Result<bool> {
        self.slot
            .outcome()
            .ok_or_else(|| Error::state(format!("{} is not ready", self.slot.what)))
    }
}

/// The `.await` of an [`AsyncResult`]: the result, as [`get`](AsyncResult::get)
/// returns it.
///
/// The pool's result thread wakes the task directly when it completes the result: no
/// reactor, no thread per waiter, any executor.
pub struct AsyncResultFuture<R> {
    slot: Arc<Slot<R>>,
}

impl<R> fmt::Debug for AsyncResultFuture<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResultFuture")
            .field("what", &self.slot.what)
            .finish()
    }
}

impl<R> std::future::Future for AsyncResultFuture<R> {
    type Output = Result<R>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<R>> {
        if self.slot.poll_ready(cx.waker()) {
            std::task::Poll::Ready(self.slot.take(None))
        } else {
            std::task::Poll::Pending
        }
    }
}

/// `result.await` in async code: the twin of [`AsyncResult::get`].
///
/// # Examples
///
/// ```
/// fn square(x: u64) -> u64 { x * x }
/// multiprocess::init();
/// let pool = multiprocess::Pool::new(2)?;
/// let r = pool.apply_async(square, 12)?;
/// // Any executor drives it: here a minimal one that parks the thread.
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
/// assert_eq!(block_on(async { r.await })?, 144);
/// # Ok::<(), multiprocess::Error>(())
/// ```
impl<R> std::future::IntoFuture for AsyncResult<R> {
    type Output = Result<R>;
    type IntoFuture = AsyncResultFuture<R>;

    fn into_future(self) -> AsyncResultFuture<R> {
        AsyncResultFuture { slot: self.slot }
    }
}
