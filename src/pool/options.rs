//! Per-call [`Options`]: chunk size, timeout, callbacks, progress bar.

use std::fmt;
use std::time::Duration;

use super::chunk::Tick;
use super::slot::Slot;
use crate::error::Error;

type Callback<T> = Box<dyn FnOnce(&T) + Send>;
type ErrorCallback = Box<dyn FnOnce(&Error) + Send>;

/// Per-call options: chunk size, timeout, and the callbacks of Python's
/// `apply_async(..., callback, error_callback)`.
///
/// Callbacks run in the pool's own thread when the result arrives, before
/// [`AsyncResult::get`](super::AsyncResult::get) returns it; exactly one of them runs. They must be quick and
/// must not wait on the same pool.
///
/// # Examples
///
/// ```
/// use std::sync::mpsc;
/// use multiprocess::{Options, Pool};
/// fn square(x: u64) -> u64 { x * x }
/// multiprocess::init();
/// let pool = Pool::new(2)?;
/// let (tx, rx) = mpsc::channel();
/// let opts = Options::new()
///     .chunk_size(20)
///     .callback(move |v: &Vec<u64>| tx.send(v.len()).unwrap())
///     .error_callback(|e| eprintln!("failed: {e}"));
/// let r = pool.map_async_with(square, 0..100, opts)?;
/// assert_eq!(r.get()?.len(), 100);
/// assert_eq!(rx.recv().unwrap(), 100);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub struct Options<T = ()> {
    pub(crate) chunk_size: Option<usize>,
    pub(crate) timeout: Option<Duration>,
    callback: Option<Callback<T>>,
    error_callback: Option<ErrorCallback>,
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    pub(crate) progress: bool,
    /// The progress bar's label (`map`, `imap` when `None`).
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    pub(crate) label: Option<String>,
    /// Told how many items each finished chunk of a `map` held (the progress bar).
    pub(crate) tick: Option<Tick>,
}

impl<T> fmt::Debug for Options<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("chunk_size", &self.chunk_size)
            .field("timeout", &self.timeout)
            .field("callback", &self.callback.is_some())
            .field("error_callback", &self.error_callback.is_some())
            .finish()
    }
}

impl<T> Default for Options<T> {
    fn default() -> Self {
        Options {
            chunk_size: None,
            timeout: None,
            callback: None,
            error_callback: None,
            progress: false,
            label: None,
            tick: None,
        }
    }
}

impl<T> Options<T> {
    /// No options: the pool's defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// let o: multiprocess::Options = multiprocess::Options::new();
    /// # let _ = o;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Items per task for `map`/`imap` (Python's `chunksize`). `map` defaults to
    /// about four chunks per worker, `imap` to 1. Zero is refused before any work, as
    /// Python's `ValueError`: `map` returns [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput), and
    /// `imap`'s first and only item is that error.
    ///
    /// # Examples
    ///
    /// ```
    /// fn inc(x: u32) -> u32 { x + 1 }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(2)?;
    /// let v: Vec<u32> = pool
    ///     .imap_with(inc, 0..1000, multiprocess::Options::new().chunk_size(100))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(v[999], 1000);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn chunk_size(mut self, n: usize) -> Self {
        self.chunk_size = Some(n);
        self
    }

    /// A time limit for each call (overrides [`PoolBuilder::task_timeout`](super::PoolBuilder::task_timeout)): a call
    /// that runs longer has its worker killed and replaced, and fails with
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout). With `map` chunks, the chunk that holds it fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(1)?;
    /// let opts = multiprocess::Options::new().timeout(Duration::from_millis(100));
    /// let e = pool.apply_async_with(nap, 60_000, opts)?.get().unwrap_err();
    /// assert_eq!(e.kind(), multiprocess::ErrorKind::Timeout);
    /// assert_eq!(pool.apply(nap, 1)?, 1); // the pool goes on
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Runs `f` with the value when the call succeeds.
    ///
    /// # Examples
    ///
    /// See [`Options`].
    pub fn callback(mut self, f: impl FnOnce(&T) + Send + 'static) -> Self {
        self.callback = Some(Box::new(f));
        self
    }

    /// Runs `f` with the error when the call fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// fn fail(_: ()) -> u8 { panic!("nope") }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(1)?;
    /// let (tx, rx) = mpsc::channel();
    /// let opts = multiprocess::Options::new().error_callback(move |e| tx.send(e.kind()).unwrap());
    /// let _ = pool.apply_async_with(fail, (), opts)?.get();
    /// assert_eq!(rx.recv().unwrap(), multiprocess::ErrorKind::Panicked);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn error_callback(mut self, f: impl FnOnce(&Error) + Send + 'static) -> Self {
        self.error_callback = Some(Box::new(f));
        self
    }

    /// Draws a progress bar on stderr while `map`/`imap` runs (only when stderr is a
    /// terminal; needs the `progress` feature, else does nothing).
    ///
    /// # Examples
    ///
    /// ```
    /// let o: multiprocess::Options<Vec<u8>> = multiprocess::Options::new().progress(true);
    /// # let _ = o;
    /// ```
    pub fn progress(mut self, yes: bool) -> Self {
        self.progress = yes;
        self
    }

    /// Draws a progress bar (as [`progress`](Options::progress)) labelled `label`
    /// instead of `map` or `imap`: `squares ████░░░░ 800/2000 4.8k/s 0.17s (eta 0s)`,
    /// and at the end `squares: 2000 items in 0.42s (4.8k/s)`.
    ///
    /// # Examples
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(2)?;
    /// let opts = multiprocess::Options::new().progress_label("squares");
    /// assert_eq!(pool.map_with(square, 0..2000, opts)?.len(), 2000);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn progress_label(mut self, label: impl Into<String>) -> Self {
        self.progress = true;
        self.label = Some(label.into());
        self
    }

    /// Registers the callbacks on `slot`.
    pub(crate) fn attach(&mut self, slot: &Slot<T>)
    where
        T: 'static,
    {
        let cb = self.callback.take();
        let ecb = self.error_callback.take();
        if cb.is_none() && ecb.is_none() {
            return;
        }
        slot.on_done(Box::new(move |r| match r {
            Ok(v) => {
                if let Some(cb) = cb {
                    cb(v)
                }
            }
            Err(e) => {
                if let Some(ecb) = ecb {
                    ecb(e)
                }
            }
        }));
    }
}
