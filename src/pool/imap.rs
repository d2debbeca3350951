//! The lazy `imap` iterators, on any flavor: input pulled with bounded look-ahead.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::chunk::{Chunk, Completion, Outcome, Streamed};
use super::flavor::Flavor;
use super::slot::Phase;
use crate::error::{Error, ErrorKind, Result};
use crate::sys::deadline_after;

/// Chunks an `imap` keeps in flight: enough items to keep every worker's window full,
/// at least two chunks per worker.
fn in_flight_limit(workers: usize, chunk: usize) -> usize {
    let workers = workers.max(1);
    let chunk = chunk.max(1);
    let items = (workers * 512).max(2 * workers * chunk);
    items.div_ceil(chunk).max(2 * workers)
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
    flavor: Flavor<'p, A, R>,
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
    tx: mpsc::Sender<Streamed<R>>,
    rx: mpsc::Receiver<Streamed<R>>,
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
        flavor: Flavor<'p, A, R>,
        input: Box<dyn Iterator<Item = Result<A>> + 'p>,
        chunk: usize,
        ordered: bool,
        timeout: Option<Duration>,
    ) -> Self {
        // Python's `imap` raises `ValueError` for a chunk size below 1, before any
        // work: here the first item is that error, and nothing is submitted.
        let refused = (chunk == 0).then(super::chunk::zero_chunk_size);
        let chunk = chunk.max(1);
        let limit = in_flight_limit(flavor.processes(), chunk);
        let (tx, rx) = mpsc::channel();
        IMap {
            flavor,
            input,
            chunk,
            ordered,
            timeout,
            limit,
            outstanding: 0,
            next_chunk: 0,
            next_item: 0,
            next_emit: 0,
            exhausted: refused.is_some(),
            input_error: refused,
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
            let phase = Arc::new(Phase::default());
            self.phases.insert(k, phase.clone());
            batch.push(Chunk {
                items,
                first,
                single: None,
                timeout: self.timeout,
                phase: Some(phase),
                done: Completion::Stream {
                    tx: self.tx.clone(),
                    k,
                    n,
                },
            });
        }
        if batch.is_empty() {
            return;
        }
        let count = batch.len();
        if let Err(e) = self.flavor.submit(batch) {
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
            if self.ordered
                && let Some(items) = self.buffer.remove(&self.next_emit)
            {
                self.next_emit += 1;
                self.outstanding -= 1;
                self.ready.extend(items);
                continue;
            }
            self.top_up();
            if self.outstanding == 0 {
                #[cfg(feature = "progress")]
                if let Some(b) = self.bar.take() {
                    super::progress::finish(&b);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_ahead_fills_the_windows_and_is_bounded() {
        // Chunks of 1: 512 items per worker.
        assert_eq!(in_flight_limit(1, 1), 512);
        assert_eq!(in_flight_limit(4, 1), 2048);
        // Big chunks: still two per worker.
        assert_eq!(in_flight_limit(4, 10_000), 8);
        assert_eq!(in_flight_limit(2, 100), 11);
        // Zero counts as one.
        assert_eq!(in_flight_limit(0, 0), 512);
        for w in 1..6 {
            for c in [1, 3, 64, 1000, 100_000] {
                let l = in_flight_limit(w, c);
                assert!(l >= 2 * w);
                assert!(
                    l * c <= (w * 512).max(2 * w * c) + c,
                    "{w} workers, chunk {c}"
                );
            }
        }
    }
}
