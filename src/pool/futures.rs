//! Executors and futures: Python's `concurrent.futures` with processes
//! ([`ProcessPoolExecutor`]) or threads ([`ThreadPoolExecutor`]).
//!
//! ```
//! use multiprocess::futures::{ProcessPoolExecutor, ReturnWhen, as_completed, wait};
//!
//! fn square(x: u64) -> u64 { x * x }
//!
//! multiprocess::init();
//! let ex = ProcessPoolExecutor::new(2)?;
//! let fs: Vec<_> = (0..4).map(|i| ex.submit(square, i)).collect::<Result<_, _>>()?;
//! let first = wait(&fs, None, ReturnWhen::FirstCompleted);
//! assert!(!first.done.is_empty());
//! let mut all: Vec<u64> = as_completed(&fs, None).map(|f| f?.result()).collect::<Result<_, _>>()?;
//! all.sort();
//! assert_eq!(all, [0, 1, 4, 9]);
//! ex.shutdown(true, false);
//! # Ok::<(), multiprocess::Error>(())
//! ```
//!
//! Unlike Python's, a process executor survives its workers: a worker that dies fails
//! only the future it was running ([`ErrorKind::ProcessDied`], saying how it died) and
//! is replaced; Python breaks the whole executor (`BrokenProcessPool`). Only an
//! initializer that fails breaks it ([`ErrorKind::BrokenPool`]).

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::apply::apply_async;
use super::chunk::{Chunk, Completion};
use super::flavor::Flavor;
use super::options::Options;
use super::process_pool::{Backend, PoolBuilder};
use super::slot::{CANCELLED, RUNNING, Slot, Watch};
use super::threads::{ThreadEngine, ThreadFlavor, once};
use crate::error::{Error, ErrorKind, Result};
use crate::process::Context;
use crate::sys::deadline_after;

/// The pending result of a submitted call: Python's `concurrent.futures.Future`.
///
/// [`result`](Future::result) waits and takes the value out (a second call is an
/// error: Rust values move). `.await` works too: it implements [`IntoFuture`].
///
/// # Examples
///
/// ```
/// fn double(x: i32) -> i32 { 2 * x }
/// multiprocess::init();
/// let ex = multiprocess::futures::ProcessPoolExecutor::new(1)?;
/// let f = ex.submit(double, 21)?;
/// assert_eq!(f.result()?, 42);
/// assert!(f.done() && !f.cancelled());
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub struct Future<R> {
    slot: Arc<Slot<R>>,
}

impl<R> fmt::Debug for Future<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.cancelled() {
            "cancelled"
        } else if self.done() {
            "finished"
        } else if self.running() {
            "running"
        } else {
            "pending"
        };
        f.debug_struct("Future")
            .field("what", &self.slot.what)
            .field("state", &state)
            .finish()
    }
}

impl<R> Future<R> {
    /// Waits for the call and returns its value.
    ///
    /// # Errors
    ///
    /// The call's failure (as [`AsyncResult::get`](crate::AsyncResult::get)),
    /// [`ErrorKind::Cancelled`] if it was cancelled, [`ErrorKind::InvalidState`] if
    /// the value was already taken. A failure is kept: every call returns it again, and
    /// [`exception`](Future::exception) still sees it, as in Python.
    ///
    /// # Examples
    ///
    /// See [`Future`].
    pub fn result(&self) -> Result<R> {
        self.slot.take(None)
    }

    /// As [`result`](Future::result), giving up after `timeout` with
    /// [`ErrorKind::Timeout`] (the future stays usable).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    /// multiprocess::init();
    /// let ex = multiprocess::futures::ProcessPoolExecutor::new(1)?;
    /// let f = ex.submit(nap, 300)?;
    /// assert_eq!(f.result_timeout(Duration::from_millis(10)).unwrap_err().kind(),
    ///            multiprocess::ErrorKind::Timeout);
    /// assert_eq!(f.result()?, 300);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn result_timeout(&self, timeout: Duration) -> Result<R> {
        self.slot.take(deadline_after(timeout))
    }

    /// The call's error once it is done (waits for it): `None` if it succeeded
    /// (Python's `exception()`).
    ///
    /// # Examples
    ///
    /// ```
    /// fn fail(_: ()) -> u8 { panic!("bad") }
    /// multiprocess::init();
    /// let ex = multiprocess::futures::ProcessPoolExecutor::new(1)?;
    /// let f = ex.submit(fail, ())?;
    /// assert_eq!(f.exception().unwrap().kind(), multiprocess::ErrorKind::Panicked);
    /// // A failure stays: result() returns it each time, and exception() still sees it.
    /// assert_eq!(f.result().unwrap_err().kind(), multiprocess::ErrorKind::Panicked);
    /// assert_eq!(f.result().unwrap_err().kind(), multiprocess::ErrorKind::Panicked);
    /// assert!(f.exception().is_some());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn exception(&self) -> Option<Error> {
        self.slot.wait(None);
        self.slot
            .peek(|r| r.as_ref().err().map(Error::duplicate))
            .flatten()
    }

    /// Whether the call finished (or was cancelled).
    ///
    /// # Examples
    ///
    /// See [`Future`].
    pub fn done(&self) -> bool {
        self.slot.is_done()
    }

    /// Whether a worker has taken the call and it is not done.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// fn nap(ms: u64) { std::thread::sleep(Duration::from_millis(ms)) }
    /// multiprocess::init();
    /// let ex = multiprocess::futures::ProcessPoolExecutor::new(1)?;
    /// let f = ex.submit(nap, 300)?;
    /// std::thread::sleep(Duration::from_millis(100));
    /// assert!(f.running());
    /// f.result()?;
    /// assert!(!f.running());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn running(&self) -> bool {
        self.slot.phase.get() == RUNNING && !self.slot.is_done()
    }

    /// Cancels the call if no worker has taken it yet; true if it is (now)
    /// cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// fn nap(ms: u64) { std::thread::sleep(Duration::from_millis(ms)) }
    /// multiprocess::init();
    /// let ex = multiprocess::futures::ProcessPoolExecutor::new(1)?;
    /// let busy = ex.submit(nap, 300)?;
    /// let waiting = ex.submit(nap, 300)?;
    /// std::thread::sleep(Duration::from_millis(100));
    /// assert!(!busy.cancel());
    /// assert!(waiting.cancel() && waiting.cancelled());
    /// assert_eq!(waiting.result().unwrap_err().kind(), multiprocess::ErrorKind::Cancelled);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn cancel(&self) -> bool {
        self.slot.cancel()
    }

    /// Whether it was cancelled.
    ///
    /// # Examples
    ///
    /// See [`Future::cancel`].
    pub fn cancelled(&self) -> bool {
        self.slot.phase.get() == CANCELLED
    }

    /// Runs `f` with the result when the call is done (at once, in this thread, if
    /// it is done already; else in the executor's thread).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// fn inc(x: u8) -> u8 { x + 1 }
    /// multiprocess::init();
    /// let ex = multiprocess::futures::ProcessPoolExecutor::new(1)?;
    /// let (tx, rx) = mpsc::channel();
    /// ex.submit(inc, 1)?.add_done_callback(move |r| tx.send(*r.as_ref().unwrap()).unwrap());
    /// assert_eq!(rx.recv().unwrap(), 2);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn add_done_callback(&self, f: impl FnOnce(&Result<R>) + Send + 'static) {
        self.slot.on_done(Box::new(f));
    }

    fn outcome(&self) -> Option<bool> {
        self.slot.outcome()
    }
}

/// The `.await` of a [`Future`].
pub struct FutureAwait<R> {
    slot: Arc<Slot<R>>,
}

impl<R> fmt::Debug for FutureAwait<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FutureAwait")
            .field("what", &self.slot.what)
            .finish()
    }
}

impl<R> std::future::Future for FutureAwait<R> {
    type Output = Result<R>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Result<R>> {
        if self.slot.poll_ready(cx.waker()) {
            Poll::Ready(self.slot.take(None))
        } else {
            Poll::Pending
        }
    }
}

/// `fut.await` in async code.
///
/// # Examples
///
/// ```
/// use std::future::IntoFuture;
/// fn triple(x: u32) -> u32 { 3 * x }
/// multiprocess::init();
/// let ex = multiprocess::futures::ProcessPoolExecutor::new(1)?;
/// let fut = ex.submit(triple, 5)?.into_future();
/// // Any executor drives it; here a minimal one.
/// let waker = std::task::Waker::noop();
/// let mut cx = std::task::Context::from_waker(&waker);
/// let mut fut = Box::pin(fut);
/// let v = loop {
///     if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) { break v; }
///     std::thread::sleep(std::time::Duration::from_millis(1));
/// };
/// assert_eq!(v?, 15);
/// # Ok::<(), multiprocess::Error>(())
/// ```
impl<R> std::future::IntoFuture for Future<R> {
    type Output = Result<R>;
    type IntoFuture = FutureAwait<R>;

    fn into_future(self) -> FutureAwait<R> {
        FutureAwait { slot: self.slot }
    }
}

/// When [`wait`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnWhen {
    /// As soon as any future is done (`FIRST_COMPLETED`).
    FirstCompleted,
    /// As soon as any future fails, or all are done (`FIRST_EXCEPTION`).
    FirstException,
    /// When all are done (`ALL_COMPLETED`).
    AllCompleted,
}

/// What [`wait`] found: the futures done and those not done, in input order.
pub struct DoneAndNotDone<'a, R> {
    /// Finished or cancelled.
    pub done: Vec<&'a Future<R>>,
    /// Still pending or running.
    pub not_done: Vec<&'a Future<R>>,
}

impl<R> fmt::Debug for DoneAndNotDone<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DoneAndNotDone")
            .field("done", &self.done.len())
            .field("not_done", &self.not_done.len())
            .finish()
    }
}

/// Waits until `return_when` holds for `fs`, or `timeout` passes (Python's
/// `concurrent.futures.wait`). As Python takes a set, a future passed twice is
/// listed once.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use multiprocess::futures::{ProcessPoolExecutor, ReturnWhen, wait};
/// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
/// multiprocess::init();
/// let ex = ProcessPoolExecutor::new(2)?;
/// let fs = vec![ex.submit(nap, 10)?, ex.submit(nap, 2000)?];
/// let r = wait(&fs, Some(Duration::from_secs(10)), ReturnWhen::FirstCompleted);
/// assert_eq!((r.done.len(), r.not_done.len()), (1, 1));
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub fn wait<'a, R>(
    fs: impl IntoIterator<Item = &'a Future<R>>,
    timeout: Option<Duration>,
    return_when: ReturnWhen,
) -> DoneAndNotDone<'a, R>
where
    R: 'a,
{
    let fs = distinct(fs);
    let deadline = timeout.and_then(deadline_after);
    let watch = Arc::new(Watch::default());
    for f in &fs {
        f.slot.watch(&watch);
    }
    loop {
        let seen = watch.count();
        let outcomes: Vec<Option<bool>> = fs.iter().map(|f| f.outcome()).collect();
        let done = outcomes.iter().filter(|o| o.is_some()).count();
        // Python: a cancelled future is done but raised nothing.
        let failed = fs
            .iter()
            .zip(&outcomes)
            .any(|(f, o)| *o == Some(false) && !f.cancelled());
        let met = match return_when {
            ReturnWhen::FirstCompleted => done > 0,
            ReturnWhen::FirstException => failed || done == fs.len(),
            ReturnWhen::AllCompleted => done == fs.len(),
        } || fs.is_empty();
        if met || deadline.is_some_and(|d| Instant::now() >= d) {
            for f in &fs {
                f.slot.unwatch(&watch);
            }
            let (done, not_done) = fs
                .into_iter()
                .zip(outcomes)
                .partition::<Vec<_>, _>(|(_, o)| o.is_some());
            return DoneAndNotDone {
                done: done.into_iter().map(|(f, _)| f).collect(),
                not_done: not_done.into_iter().map(|(f, _)| f).collect(),
            };
        }
        watch.wait_past(seen, deadline);
    }
}

/// The iterator of [`as_completed`].
pub struct AsCompleted<'a, R> {
    left: Vec<&'a Future<R>>,
    watch: Arc<Watch>,
    deadline: Option<Instant>,
    timed_out: bool,
}

impl<R> fmt::Debug for AsCompleted<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("left", &self.left.len())
            .finish()
    }
}

impl<'a, R> Iterator for AsCompleted<'a, R> {
    type Item = Result<&'a Future<R>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.timed_out {
            return None;
        }
        loop {
            if self.left.is_empty() {
                return None;
            }
            let seen = self.watch.count();
            // The one that finished first, as Python's waiter lists them.
            let first = self
                .left
                .iter()
                .enumerate()
                .filter_map(|(i, f)| f.slot.completed_at().map(|at| (at, i)))
                .min();
            if let Some((_, i)) = first {
                let f = self.left.remove(i);
                f.slot.unwatch(&self.watch);
                return Some(Ok(f));
            }
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                self.timed_out = true;
                return Some(Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "{} future(s) unfinished when as_completed timed out",
                        self.left.len()
                    ),
                )));
            }
            self.watch.wait_past(seen, self.deadline);
        }
    }
}

impl<R> Drop for AsCompleted<'_, R> {
    fn drop(&mut self) {
        for f in &self.left {
            f.slot.unwatch(&self.watch);
        }
    }
}

/// Yields the futures as they complete (finished or cancelled), in the order they
/// did, the ones already done first (Python's `concurrent.futures.as_completed`),
/// however late the caller asks for the next one. With a timeout, an
/// `Err` of kind [`ErrorKind::Timeout`] ends the iteration when it passes. A future
/// passed more than once is yielded once, as from Python's set.
///
/// # Examples
///
/// ```
/// use multiprocess::futures::{ProcessPoolExecutor, as_completed};
/// fn id(x: u8) -> u8 { x }
/// multiprocess::init();
/// let ex = ProcessPoolExecutor::new(2)?;
/// let fs = vec![ex.submit(id, 1)?, ex.submit(id, 2)?];
/// let n = as_completed(&fs, None).count();
/// assert_eq!(n, 2);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub fn as_completed<'a, R>(
    fs: impl IntoIterator<Item = &'a Future<R>>,
    timeout: Option<Duration>,
) -> AsCompleted<'a, R>
where
    R: 'a,
{
    let left = distinct(fs);
    let watch = Arc::new(Watch::default());
    for f in &left {
        f.slot.watch(&watch);
    }
    AsCompleted {
        left,
        watch,
        deadline: timeout.and_then(deadline_after),
        timed_out: false,
    }
}

/// Each future once, in the order first given: Python's `wait` and `as_completed`
/// take a set (bpo-20367), so a future passed twice is waited for and yielded once.
fn distinct<'a, R>(fs: impl IntoIterator<Item = &'a Future<R>>) -> Vec<&'a Future<R>>
where
    R: 'a,
{
    let mut seen = std::collections::HashSet::new();
    fs.into_iter()
        .filter(|f| seen.insert(Arc::as_ptr(&f.slot) as usize))
        .collect()
}

/// What an executor needs of the futures it handed out, whatever their type.
trait Cancel: Send + Sync {
    fn cancel(&self) -> bool;
    fn is_done(&self) -> bool;
}

impl<R: Send> Cancel for Slot<R> {
    fn cancel(&self) -> bool {
        Slot::cancel(self)
    }
    fn is_done(&self) -> bool {
        Slot::is_done(self)
    }
}

/// The futures an executor handed out (weakly; pruned as they finish), for
/// `shutdown(cancel_futures)`.
#[derive(Default)]
struct Issued(Mutex<Vec<Weak<dyn Cancel>>>, std::sync::atomic::AtomicU64);

impl Issued {
    /// Numbers futures for error messages ("future 3").
    fn next_number(&self) -> u64 {
        self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn add<R: Send + 'static>(&self, slot: &Arc<Slot<R>>) {
        let dynamic: Arc<dyn Cancel> = slot.clone();
        let weak = Arc::downgrade(&dynamic);
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() >= 1024 && v.len().is_power_of_two() {
            v.retain(|w| w.upgrade().is_some_and(|s| !s.is_done()));
        }
        v.push(weak);
    }

    /// The chunks of an executor's `map`, each a future of its own.
    fn add_map<R: Send + 'static>(&self, it: &MapIter<R>) {
        for slot in &it.chunks {
            self.add(slot);
        }
    }

    fn cancel_all(&self) {
        let all = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        for w in all {
            if let Some(s) = w.upgrade() {
                s.cancel();
            }
        }
    }
}

/// The iterator of an executor's `map`: results in input order; with a timeout, an
/// `Err` of kind [`ErrorKind::Timeout`] when a result is not ready by the deadline
/// (counted from the `map` call), after which the rest are cancelled and the
/// iteration ends.
///
/// A call that failed (panicked, or its worker died) is an `Err` item, and the
/// iteration goes on with the next results. Python's `map` generator ends at the first
/// exception instead, cancelling the calls not yet started: here that is what
/// dropping the iterator does, so `for r in it { r?; }` and `collect::<Result<_>>()`
/// behave as in Python.
pub struct MapIter<R> {
    chunks: std::collections::VecDeque<Arc<Slot<Vec<Result<R>>>>>,
    ready: std::collections::VecDeque<Result<R>>,
    deadline: Option<Instant>,
    ended: bool,
}

impl<R> fmt::Debug for MapIter<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapIter")
            .field("chunks_left", &self.chunks.len())
            .finish()
    }
}

impl<R> Iterator for MapIter<R> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Some(r);
            }
            if self.ended {
                return None;
            }
            let slot = self.chunks.pop_front()?;
            match slot.take(self.deadline) {
                Ok(v) => self.ready.extend(v),
                Err(e) if e.kind() == ErrorKind::Timeout => {
                    slot.cancel();
                    for s in self.chunks.drain(..) {
                        s.cancel();
                    }
                    self.ended = true;
                    return Some(Err(Error::new(
                        ErrorKind::Timeout,
                        "executor map: a result was not ready before the timeout",
                    )));
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl<R> Drop for MapIter<R> {
    fn drop(&mut self) {
        // Python cancels the rest when the iterator is dropped early.
        for s in self.chunks.drain(..) {
            s.cancel();
        }
    }
}

fn submit_map<A, R>(
    flavor: &Flavor<'_, A, R>,
    items: Vec<A>,
    timeout: Option<Duration>,
    chunk_size: usize,
) -> Result<MapIter<R>>
where
    A: Send + 'static,
    R: Send + 'static,
{
    if chunk_size == 0 {
        return Err(super::chunk::zero_chunk_size());
    }
    let deadline = timeout.and_then(deadline_after);
    let mut slots = std::collections::VecDeque::new();
    let mut chunks = Vec::new();
    let mut it = items.into_iter().peekable();
    let mut first = 0;
    while it.peek().is_some() {
        let part: Vec<A> = it.by_ref().take(chunk_size).collect();
        let n = part.len();
        let slot: Arc<Slot<Vec<Result<R>>>> =
            Slot::new(format!("map items {first}..{}", first + n));
        chunks.push(Chunk {
            items: part,
            first,
            single: None,
            timeout: None,
            phase: Some(slot.phase.clone()),
            done: Completion::Items {
                slot: slot.clone(),
                n,
            },
        });
        slots.push_back(slot);
        first += n;
    }
    flavor.submit(chunks)?;
    Ok(MapIter {
        chunks: slots,
        ready: Default::default(),
        deadline,
        ended: false,
    })
}

/// Builds a [`ProcessPoolExecutor`]: Python's `ProcessPoolExecutor(max_workers,
/// mp_context, initializer, initargs, max_tasks_per_child)`.
///
/// # Examples
///
/// ```
/// fn setup(_: ()) {}
/// fn id(x: u8) -> u8 { x }
/// multiprocess::init();
/// let ex = multiprocess::futures::ProcessPoolExecutor::builder()
///     .max_workers(2)
///     .initializer(setup, ())
///     .max_tasks_per_child(50)
///     .build()?;
/// assert_eq!(ex.submit(id, 9)?.result()?, 9);
/// # Ok::<(), multiprocess::Error>(())
/// ```
#[derive(Debug)]
pub struct ExecutorBuilder(PoolBuilder);

impl ExecutorBuilder {
    /// Worker processes (default: [`cpu_count`](crate::cpu_count)).
    ///
    /// # Examples
    ///
    /// See [`ExecutorBuilder`].
    pub fn max_workers(self, n: usize) -> Self {
        ExecutorBuilder(self.0.processes(n))
    }

    /// Runs `f(args)` in each worker first; if it fails the executor is broken.
    ///
    /// # Examples
    ///
    /// See [`ExecutorBuilder`].
    pub fn initializer<A>(self, f: fn(A), args: A) -> Self
    where
        A: Serialize + DeserializeOwned + 'static,
    {
        ExecutorBuilder(self.0.initializer(f, args))
    }

    /// Replaces a worker after `n` tasks.
    ///
    /// # Examples
    ///
    /// See [`ExecutorBuilder`].
    pub fn max_tasks_per_child(self, n: usize) -> Self {
        ExecutorBuilder(self.0.max_tasks_per_child(n))
    }

    /// The start method (Python's `mp_context`).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{StartMethod, get_context};
    /// multiprocess::init();
    /// let ex = multiprocess::futures::ProcessPoolExecutor::builder()
    ///     .max_workers(1)
    ///     .context(get_context(StartMethod::Fork))
    ///     .build()?;
    /// # drop(ex);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn context(self, ctx: Context) -> Self {
        ExecutorBuilder(self.0.context(ctx))
    }

    /// Runs the futures on worker hosts behind Redis (feature `redis`): see
    /// [`PoolBuilder::redis`].
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{broker::RedisServer, pool::cluster::Worker};
    /// fn square(x: u64) -> u64 { x * x }
    /// multiprocess::init();
    /// let Some(server) = RedisServer::start_if_installed()? else { return Ok(()) };
    /// let url = server.url().to_string();
    /// std::thread::spawn(move || Worker::new(&url, b"cluster secret").processes(1).run());
    /// let ex = multiprocess::futures::ProcessPoolExecutor::builder()
    ///     .redis(server.url())
    ///     .key(b"cluster secret")
    ///     .build()?;
    /// assert_eq!(ex.submit(square, 3)?.result()?, 9);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    #[cfg(feature = "redis")]
    pub fn redis(self, url: &str) -> Self {
        ExecutorBuilder(self.0.redis(url))
    }

    /// The cluster key of a [`redis`](Self::redis) executor: see [`PoolBuilder::key`].
    ///
    /// # Examples
    ///
    /// See [`redis`](Self::redis).
    #[cfg(feature = "redis")]
    pub fn key(self, key: &[u8]) -> Self {
        ExecutorBuilder(self.0.key(key))
    }

    /// Starts the executor.
    ///
    /// # Errors
    ///
    /// As [`PoolBuilder::build`].
    ///
    /// # Examples
    ///
    /// See [`ExecutorBuilder`].
    pub fn build(self) -> Result<ProcessPoolExecutor> {
        Ok(ProcessPoolExecutor {
            backend: self.0.into_backend("ExecutorWorker")?,
            issued: Issued::default(),
        })
    }
}

/// Runs calls in worker processes and hands out [`Future`]s: Python's
/// `concurrent.futures.ProcessPoolExecutor`. Dropping it shuts it down and waits
/// (as leaving Python's `with` block does).
///
/// # Examples
///
/// ```
/// fn square(x: u64) -> u64 { x * x }
/// multiprocess::init();
/// let ex = multiprocess::futures::ProcessPoolExecutor::new(2)?;
/// let v: Vec<u64> = ex.map(square, 0..5)?.collect::<Result<_, _>>()?;
/// assert_eq!(v, [0, 1, 4, 9, 16]);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub struct ProcessPoolExecutor {
    backend: Backend,
    issued: Issued,
}

impl fmt::Debug for ProcessPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPoolExecutor")
            .field("max_workers", &self.backend.processes())
            .finish()
    }
}

impl ProcessPoolExecutor {
    /// An executor with `max_workers` worker processes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for zero; the error of starting a worker.
    ///
    /// # Examples
    ///
    /// See [`ProcessPoolExecutor`].
    pub fn new(max_workers: usize) -> Result<Self> {
        Self::builder().max_workers(max_workers).build()
    }

    /// A builder for the other settings.
    ///
    /// # Examples
    ///
    /// See [`ExecutorBuilder`].
    pub fn builder() -> ExecutorBuilder {
        ExecutorBuilder(PoolBuilder::new())
    }

    /// Schedules `f(args)`; its [`Future`] gives the result.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Serialize`] if `args` do not serialize;
    /// [`ErrorKind::InvalidState`] after `shutdown`; [`ErrorKind::BrokenPool`] if the
    /// initializer failed.
    ///
    /// # Examples
    ///
    /// See [`Future`].
    pub fn submit<A, R>(&self, f: fn(A) -> R, args: A) -> Result<Future<R>>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let flavor = self.backend.flavor(f);
        let what = format!("future {}", self.issued.next_number());
        let r = apply_async(&flavor, args, Options::new(), None, what)?;
        self.issued.add(&r.slot);
        Ok(Future { slot: r.slot })
    }

    /// `f` over `items`, results in order (Python's `Executor.map`, chunk size 1).
    ///
    /// # Errors
    ///
    /// As [`submit`](ProcessPoolExecutor::submit).
    ///
    /// # Examples
    ///
    /// See [`ProcessPoolExecutor`].
    pub fn map<A, R>(&self, f: fn(A) -> R, items: impl IntoIterator<Item = A>) -> Result<MapIter<R>>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_with(f, items, None, 1)
    }

    /// [`map`](ProcessPoolExecutor::map) with a timeout (from now, for the whole
    /// iteration) and a chunk size.
    ///
    /// # Errors
    ///
    /// As [`submit`](ProcessPoolExecutor::submit); [`ErrorKind::InvalidInput`] for a
    /// chunk size of 0 (Python's `ValueError`), before any work starts.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// fn nap(s: u64) -> u64 { std::thread::sleep(Duration::from_millis(s)); s }
    /// multiprocess::init();
    /// let ex = multiprocess::futures::ProcessPoolExecutor::new(2)?;
    /// let mut it = ex.map_with(nap, [0, 0, 3000], Some(Duration::from_millis(500)), 1)?;
    /// assert_eq!(it.next().unwrap()?, 0);
    /// assert_eq!(it.next().unwrap()?, 0);
    /// assert_eq!(it.next().unwrap().unwrap_err().kind(), multiprocess::ErrorKind::Timeout);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn map_with<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        timeout: Option<Duration>,
        chunk_size: usize,
    ) -> Result<MapIter<R>>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let flavor = self.backend.flavor(f);
        let it = submit_map(&flavor, items.into_iter().collect(), timeout, chunk_size)?;
        // Its chunks are futures too: `shutdown(cancel_futures)` cancels those pending.
        self.issued.add_map(&it);
        Ok(it)
    }

    /// Stops taking calls. With `cancel_futures`, calls not yet started are
    /// cancelled; with `wait`, returns when the rest are done and the workers have
    /// exited.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// fn nap(ms: u64) { std::thread::sleep(Duration::from_millis(ms)) }
    /// multiprocess::init();
    /// let ex = multiprocess::futures::ProcessPoolExecutor::new(1)?;
    /// let fs: Vec<_> = (0..5).map(|_| ex.submit(nap, 200)).collect::<Result<_, _>>()?;
    /// std::thread::sleep(Duration::from_millis(50));
    /// ex.shutdown(true, true);
    /// assert!(fs[0].result().is_ok());
    /// assert!(fs[4].cancelled());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        if cancel_futures {
            self.issued.cancel_all();
        }
        self.backend.close();
        if wait {
            self.backend.join();
        }
    }
}

impl Drop for ProcessPoolExecutor {
    fn drop(&mut self) {
        self.shutdown(true, false);
        self.backend.terminate();
    }
}

/// Python's `concurrent.futures.ThreadPoolExecutor`: the same API as
/// [`ProcessPoolExecutor`], with closures run by threads of this process.
///
/// # Examples
///
/// ```
/// let ex = multiprocess::futures::ThreadPoolExecutor::new(4)?;
/// let name = String::from("world");
/// let f = ex.submit(move |greeting: &str| format!("{greeting}, {name}"), "hello")?;
/// assert_eq!(f.result()?, "hello, world");
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub struct ThreadPoolExecutor {
    engine: ThreadEngine,
    issued: Issued,
}

impl fmt::Debug for ThreadPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPoolExecutor")
            .field("max_workers", &self.engine.workers)
            .finish()
    }
}

impl ThreadPoolExecutor {
    /// An executor with `max_workers` threads.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for zero.
    ///
    /// # Examples
    ///
    /// See [`ThreadPoolExecutor`].
    pub fn new(max_workers: usize) -> Result<Self> {
        Ok(ThreadPoolExecutor {
            engine: ThreadEngine::start(max_workers, None, "ThreadPoolExecutor")?,
            issued: Issued::default(),
        })
    }

    /// An executor whose threads each run `init` first (Python's `initializer`). If
    /// it panics, the executor is broken, as Python's (`BrokenThreadPool`): pending
    /// and later calls fail with [`ErrorKind::BrokenPool`] and the panic's message.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for zero workers.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    /// thread_local!(static READY: Cell<bool> = const { Cell::new(false) });
    /// let ex = multiprocess::futures::ThreadPoolExecutor::with_initializer(2, || READY.set(true))?;
    /// assert!(ex.submit(|_: ()| READY.get(), ())?.result()?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn with_initializer(
        max_workers: usize,
        init: impl Fn() + Send + Sync + 'static,
    ) -> Result<Self> {
        Ok(ThreadPoolExecutor {
            engine: ThreadEngine::start(max_workers, Some(Arc::new(init)), "ThreadPoolExecutor")?,
            issued: Issued::default(),
        })
    }

    /// Schedules `f(args)` on a thread.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidState`] after `shutdown`.
    ///
    /// # Examples
    ///
    /// See [`ThreadPoolExecutor`].
    pub fn submit<A, R>(
        &self,
        f: impl FnOnce(A) -> R + Send + 'static,
        args: A,
    ) -> Result<Future<R>>
    where
        A: Send + 'static,
        R: Send + 'static,
    {
        let flavor = Flavor::Thread(ThreadFlavor::new(&self.engine, once(f)));
        let what = format!("future {}", self.issued.next_number());
        let r = apply_async(&flavor, args, Options::new(), None, what)?;
        self.issued.add(&r.slot);
        Ok(Future { slot: r.slot })
    }

    /// `f` over `items`, results in order.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidState`] after `shutdown`.
    ///
    /// # Examples
    ///
    /// ```
    /// let ex = multiprocess::futures::ThreadPoolExecutor::new(2)?;
    /// let v: Vec<u32> = ex.map(|x: u32| x + 1, 0..3, None)?.collect::<Result<_, _>>()?;
    /// assert_eq!(v, [1, 2, 3]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn map<A, R>(
        &self,
        f: impl Fn(A) -> R + Send + Sync + 'static,
        items: impl IntoIterator<Item = A>,
        timeout: Option<Duration>,
    ) -> Result<MapIter<R>>
    where
        A: Send + 'static,
        R: Send + 'static,
    {
        let flavor = Flavor::Thread(ThreadFlavor::new(&self.engine, f));
        let it = submit_map(&flavor, items.into_iter().collect(), timeout, 1)?;
        self.issued.add_map(&it);
        Ok(it)
    }

    /// As [`ProcessPoolExecutor::shutdown`] (running calls cannot be stopped).
    ///
    /// # Examples
    ///
    /// ```
    /// let ex = multiprocess::futures::ThreadPoolExecutor::new(1)?;
    /// let f = ex.submit(|x: u8| x, 1)?;
    /// ex.shutdown(true, false);
    /// assert_eq!(f.result()?, 1);
    /// assert!(ex.submit(|x: u8| x, 2).is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        if cancel_futures {
            self.issued.cancel_all();
            self.engine.cancel_pending();
        }
        self.engine.close();
        if wait {
            self.engine.join();
        }
    }
}

impl Drop for ThreadPoolExecutor {
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}
