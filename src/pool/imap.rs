//! `map` over chunks, and the lazy `imap` iterators, for any [`Backend`].

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::backend::{Backend, Chunk, Outcome};
use super::slot::{Phase, Slot};
use super::{AsyncResult, Options};
use crate::error::{Error, ErrorKind, Result};

/// Python's default `map` chunk size: about four chunks per worker.
pub(crate) fn default_chunksize(len: usize, workers: usize) -> usize {
    if len == 0 {
        return 1;
    }
    let per = workers.max(1) * 4;
    len.div_ceil(per).max(1)
}

pub(crate) use crate::sys::deadline_after;

/// Collects a map's chunks into one vector, appending chunks as they become
/// contiguous (they mostly arrive in order), so no big copy is left for the end.
struct MapState<R> {
    out: Vec<R>,
    /// The next chunk to append, and chunks that arrived before their turn.
    next: usize,
    early: BTreeMap<usize, Vec<R>>,
    remaining: usize,
    /// The failure of the lowest item index, and how many items failed.
    error: Option<(usize, Error)>,
    failed: usize,
    slot: Arc<Slot<Vec<R>>>,
}

impl<R> MapState<R> {
    fn record(&mut self, k: usize, first: usize, n: usize, out: Outcome<R>) {
        let part = match out {
            Outcome::AllOk(v) => v,
            Outcome::Mixed(v) => {
                let mut ok = Vec::with_capacity(v.len());
                for (i, r) in v.into_iter().enumerate() {
                    match r {
                        Ok(x) => ok.push(x),
                        Err(e) => self.fail(first + i, 1, e),
                    }
                }
                ok
            }
            Outcome::Failed(e) => {
                self.fail(first, n, e);
                Vec::new()
            }
        };
        if self.error.is_none() {
            if k == self.next {
                self.out.extend(part);
                self.next += 1;
                while let Some(p) = self.early.remove(&self.next) {
                    self.out.extend(p);
                    self.next += 1;
                }
            } else {
                self.early.insert(k, part);
            }
        } else {
            self.early.clear();
            self.out = Vec::new();
        }
        self.remaining -= 1;
        if self.remaining == 0 {
            let r = match self.error.take() {
                Some((_, e)) if self.failed > 1 => {
                    let more = self.failed - 1;
                    Err(Error::new(
                        e.kind(),
                        format!("{e} (and {more} more item(s) failed)"),
                    ))
                }
                Some((_, e)) => Err(e),
                None => Ok(std::mem::take(&mut self.out)),
            };
            self.slot.complete(r);
        }
    }

    fn fail(&mut self, index: usize, n: usize, e: Error) {
        self.failed += n;
        if self.error.as_ref().is_none_or(|(i, _)| index < *i) {
            self.error = Some((index, e));
        }
    }
}

/// `map_async` on any backend: chunks of `chunk` items (default: Python's heuristic).
pub(crate) fn map_async<A, R>(
    b: &dyn Backend<A, R>,
    items: impl IntoIterator<Item = A>,
    mut opts: Options<Vec<R>>,
    default_timeout: Option<Duration>,
) -> Result<AsyncResult<Vec<R>>>
where
    A: Send + 'static,
    R: Send + 'static,
{
    if opts.chunk_size == Some(0) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "chunk size must be at least 1",
        ));
    }
    // The length decides the default chunk size: taken from an exact size hint, or
    // by collecting the input (as Python's `list(iterable)`).
    let mut it = items.into_iter();
    let mut collected: Option<std::vec::IntoIter<A>> = None;
    let n = match it.size_hint() {
        (lo, Some(hi)) if lo == hi => lo,
        _ => {
            let v: Vec<A> = it.by_ref().collect();
            let n = v.len();
            collected = Some(v.into_iter());
            n
        }
    };
    let cs = opts
        .chunk_size
        .unwrap_or_else(|| default_chunksize(n, b.processes()));
    let slot = Slot::new(format!("map of {n} items"));
    opts.attach(&slot);
    if n == 0 {
        slot.complete(Ok(Vec::new()));
        return Ok(AsyncResult { slot });
    }
    let nchunks = n.div_ceil(cs);
    let state = Arc::new(Mutex::new(MapState {
        out: Vec::with_capacity(n),
        next: 0,
        early: BTreeMap::new(),
        remaining: nchunks,
        error: None,
        failed: 0,
        slot: slot.clone(),
    }));
    let timeout = opts.timeout.or(default_timeout);
    let tick = opts.tick.take();
    let input: &mut dyn Iterator<Item = A> = match &mut collected {
        Some(c) => c,
        None => &mut it,
    };
    // An iterator that lied about its size: count what is really there.
    let mut counted = 0usize;
    let mut counting = input.inspect(|_| counted += 1).take(n);
    b.submit_split(&mut counting, n, cs, timeout, &mut |k, first, len| {
        let st = state.clone();
        let tick = tick.clone();
        Box::new(move |out| {
            st.lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(k, first, len, out);
            if let Some(t) = &tick {
                t(len as u64);
            }
        })
    })?;
    drop(counting);
    if counted < n {
        // Fewer items than announced: the chunks that were never made count as done.
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        let made = counted.div_ceil(cs);
        for k in made..nchunks {
            st.record(k, k * cs, 0, Outcome::AllOk(Vec::new()));
        }
    }
    Ok(AsyncResult { slot })
}

/// `apply_async` on any backend.
pub(crate) fn apply_async<A, R>(
    b: &dyn Backend<A, R>,
    a: A,
    mut opts: Options<R>,
    default_timeout: Option<Duration>,
    what: String,
) -> Result<AsyncResult<R>>
where
    A: Send + 'static,
    R: Send + 'static,
{
    let slot = Slot::new(what.clone());
    opts.attach(&slot);
    let s = slot.clone();
    b.submit(vec![Chunk {
        items: vec![a],
        first: 0,
        single: Some(what),
        timeout: opts.timeout.or(default_timeout),
        phase: Some(slot.phase.clone()),
        done: Box::new(move |out| {
            let r = out
                .into_items(1)
                .pop()
                .unwrap_or_else(|| Err(Error::new(ErrorKind::Protocol, "no result")));
            s.complete(r)
        }),
    }])?;
    Ok(AsyncResult { slot })
}

/// The iterator of [`Pool::imap`](super::Pool::imap) and
/// [`Pool::imap_unordered`](super::Pool::imap_unordered): results as they come (in
/// input order for `imap`), one `Result` per input item.
///
/// It pulls its input lazily, in the thread that iterates, keeping at most a bounded
/// number of chunks in flight (so an endless input works). A call that panicked, or
/// whose worker died or timed out, is an `Err` item; the other items still arrive.
///
/// # Examples
///
/// ```
/// fn square(x: u64) -> u64 { x * x }
/// multiprocess::init();
/// let pool = multiprocess::Pool::new(2)?;
/// let firsts: Vec<u64> = pool
///     .imap(square, 0..)          // an endless input
///     .take(5)
///     .collect::<Result<_, _>>()?;
/// assert_eq!(firsts, [0, 1, 4, 9, 16]);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub struct IMap<'p, A, R> {
    backend: Box<dyn Backend<A, R> + 'p>,
    input: Box<dyn Iterator<Item = Result<A>> + 'p>,
    chunk: usize,
    ordered: bool,
    timeout: Option<Duration>,
    limit: usize,
    /// Chunks submitted and not yet moved to `ready`.
    outstanding: usize,
    next_chunk: usize,
    next_item: usize,
    next_emit: usize,
    exhausted: bool,
    input_error: Option<Error>,
    tx: mpsc::Sender<(usize, usize, Outcome<R>)>,
    rx: mpsc::Receiver<(usize, usize, Outcome<R>)>,
    buffer: BTreeMap<usize, Vec<Result<R>>>,
    ready: VecDeque<Result<R>>,
    /// Chunks submitted and not yet answered: cancelled if the iterator is dropped.
    phases: BTreeMap<usize, Arc<Phase>>,
    #[cfg(feature = "progress")]
    pub(crate) bar: Option<indicatif::ProgressBar>,
}

impl<A, R> fmt::Debug for IMap<'_, A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IMap")
            .field("ordered", &self.ordered)
            .field("chunk", &self.chunk)
            .field("outstanding", &self.outstanding)
            .finish()
    }
}

impl<'p, A, R> IMap<'p, A, R>
where
    A: Send + 'static,
    R: Send + 'static,
{
    pub(crate) fn new(
        backend: Box<dyn Backend<A, R> + 'p>,
        input: Box<dyn Iterator<Item = Result<A>> + 'p>,
        chunk: usize,
        ordered: bool,
        timeout: Option<Duration>,
    ) -> Self {
        let chunk = chunk.max(1);
        let workers = backend.processes().max(1);
        // Enough items in flight to keep every worker's window full, at least two
        // chunks per worker.
        let items = (workers * 512).max(2 * workers * chunk);
        let limit = items.div_ceil(chunk).max(2 * workers);
        let (tx, rx) = mpsc::channel();
        IMap {
            backend,
            input,
            chunk,
            ordered,
            timeout,
            limit,
            outstanding: 0,
            next_chunk: 0,
            next_item: 0,
            next_emit: 0,
            exhausted: false,
            input_error: None,
            tx,
            rx,
            buffer: BTreeMap::new(),
            ready: VecDeque::new(),
            phases: BTreeMap::new(),
            #[cfg(feature = "progress")]
            bar: None,
        }
    }

    /// Submits chunks until `limit` are outstanding or the input ends.
    fn top_up(&mut self) {
        let mut batch = Vec::new();
        while !self.exhausted && self.outstanding + batch.len() < self.limit {
            let mut items = Vec::with_capacity(self.chunk);
            for _ in 0..self.chunk {
                match self.input.next() {
                    Some(Ok(a)) => items.push(a),
                    Some(Err(e)) => {
                        // The failing chunk is not submitted: ordered results stop
                        // just before it, then the error.
                        self.input_error = Some(e);
                        self.exhausted = true;
                        items.clear();
                        break;
                    }
                    None => {
                        self.exhausted = true;
                        break;
                    }
                }
            }
            if items.is_empty() {
                break;
            }
            let k = self.next_chunk;
            let first = self.next_item;
            let n = items.len();
            self.next_chunk += 1;
            self.next_item += n;
            let tx = self.tx.clone();
            let phase = Arc::new(Phase::default());
            self.phases.insert(k, phase.clone());
            batch.push(Chunk {
                items,
                first,
                single: None,
                timeout: self.timeout,
                phase: Some(phase),
                done: Box::new(move |out| {
                    let _ = tx.send((k, n, out));
                }),
            });
        }
        if batch.is_empty() {
            return;
        }
        let count = batch.len();
        if let Err(e) = self.backend.submit(batch) {
            self.exhausted = true;
            self.input_error.get_or_insert(e);
            // Renumber: the chunks were never sent.
            self.next_chunk -= count;
            return;
        }
        self.outstanding += count;
    }

    fn accept(&mut self, k: usize, n: usize, out: Outcome<R>) {
        self.phases.remove(&k);
        let items = out.into_items(n);
        if self.ordered {
            self.buffer.insert(k, items);
        } else {
            self.outstanding -= 1;
            self.ready.extend(items);
        }
    }

    /// The next result, waiting at most until `deadline`: `Some(Err(Timeout))` when it
    /// passes (iteration can go on), `None` at the end.
    fn next_until(&mut self, deadline: Option<Instant>) -> Option<Result<R>> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                #[cfg(feature = "progress")]
                if let Some(b) = &self.bar {
                    b.inc(1);
                }
                return Some(r);
            }
            if self.ordered {
                if let Some(items) = self.buffer.remove(&self.next_emit) {
                    self.next_emit += 1;
                    self.outstanding -= 1;
                    self.ready.extend(items);
                    continue;
                }
            }
            self.top_up();
            if self.outstanding == 0 {
                #[cfg(feature = "progress")]
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
                return self.input_error.take().map(Err);
            }
            let got = match deadline {
                None => self.rx.recv().map_err(|_| ()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    match self.rx.recv_timeout(left) {
                        Ok(m) => Ok(m),
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            return Some(Err(Error::new(
                                ErrorKind::Timeout,
                                "waiting for the next imap result timed out",
                            )));
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => Err(()),
                    }
                }
            };
            match got {
                Ok((k, n, out)) => self.accept(k, n, out),
                // Unreachable while we hold `tx`; end rather than spin.
                Err(()) => return None,
            }
        }
    }

    /// Python's `it.next(timeout)`: the next result, or `Some(Err)` of kind
    /// [`ErrorKind::Timeout`] if none arrives in time (the iterator stays usable).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    /// multiprocess::init();
    /// let pool = multiprocess::Pool::new(1)?;
    /// let mut it = pool.imap(nap, [300]);
    /// let e = it.next_timeout(Duration::from_millis(50)).unwrap().unwrap_err();
    /// assert_eq!(e.kind(), multiprocess::ErrorKind::Timeout);
    /// assert_eq!(it.next().unwrap()?, 300);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<R>> {
        self.next_until(deadline_after(timeout))
    }
}

impl<A, R> Drop for IMap<'_, A, R> {
    /// Chunks not yet started are dropped by the pool: abandoning an `imap` over an
    /// endless input leaves no work behind.
    fn drop(&mut self) {
        for p in self.phases.values() {
            p.cancel();
        }
    }
}

impl<A, R> Iterator for IMap<'_, A, R>
where
    A: Send + 'static,
    R: Send + 'static,
{
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        self.next_until(None)
    }
}
