//! The unit of work every flavor runs: a [`Chunk`] of consecutive input items, its
//! [`Outcome`], and the [`Completion`] that takes the outcome to its caller.
//!
//! A completion is a plain value, not a closure: each submission path (`apply`, `map`,
//! `imap`, an executor's `map`) is one variant, so a result goes from the flavor to its
//! slot or iterator in one call.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use super::slot::{Phase, Slot};
use crate::error::{Error, ErrorKind, Result};

/// The error for a chunk size of 0, refused before any work is submitted (Python's
/// `ValueError: chunksize must be >= 1`) by `map`, `imap` and the executors' `map`.
pub(crate) fn zero_chunk_size() -> Error {
    Error::new(ErrorKind::InvalidInput, "chunk size must be at least 1")
}

/// The results of one chunk.
pub(crate) enum Outcome<R> {
    /// Every call returned.
    AllOk(Vec<R>),
    /// Some calls panicked.
    Mixed(Vec<Result<R>>),
    /// The chunk as a whole failed (its worker died, it timed out, its arguments or
    /// results would not (de)serialize, the pool was terminated).
    Failed(Error),
}

impl<R> Outcome<R> {
    /// One result per item (`n` items).
    pub(crate) fn into_items(self, n: usize) -> Vec<Result<R>> {
        match self {
            Outcome::AllOk(v) => v.into_iter().map(Ok).collect(),
            Outcome::Mixed(v) => v,
            Outcome::Failed(e) => {
                let mut out = Vec::with_capacity(n);
                for _ in 1..n {
                    out.push(Err(e.duplicate()));
                }
                out.push(Err(e));
                out
            }
        }
    }
}

/// Told how many items each finished chunk of a `map` held (the progress bar).
pub(crate) type Tick = Arc<dyn Fn(u64) + Send + Sync>;

/// A message to an `imap` iterator: chunk `k` of `n` items finished with an outcome.
pub(crate) type Streamed<R> = (usize, usize, Outcome<R>);

/// Where a chunk's outcome goes.
pub(crate) enum Completion<R> {
    /// A single call (`apply_async`, an executor's `submit`): its one result.
    Single(Arc<Slot<R>>),
    /// Chunk `k` of a `map`, items `first..first + len`: into the collector.
    Map {
        collector: Arc<Mutex<MapCollector<R>>>,
        k: usize,
        first: usize,
        len: usize,
        tick: Option<Tick>,
    },
    /// Chunk `k` of an `imap`, of `n` items: sent to the iterator.
    Stream {
        tx: mpsc::Sender<Streamed<R>>,
        k: usize,
        n: usize,
    },
    /// A chunk of `n` items of an executor's `map`: one result per item.
    Items {
        slot: Arc<Slot<Vec<Result<R>>>>,
        n: usize,
    },
}

impl<R> Completion<R> {
    /// Takes `out` to the caller. Runs on the flavor's thread (the pool thread, or the
    /// worker thread of a thread pool).
    pub(crate) fn complete(self, out: Outcome<R>) {
        match self {
            Completion::Single(slot) => {
                let r = out
                    .into_items(1)
                    .pop()
                    .unwrap_or_else(|| Err(Error::new(ErrorKind::Protocol, "no result")));
                slot.complete(r);
            }
            Completion::Map {
                collector,
                k,
                first,
                len,
                tick,
            } => {
                collector
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .record(k, first, len, out);
                if let Some(t) = &tick {
                    t(len as u64);
                }
            }
            Completion::Stream { tx, k, n } => {
                let _ = tx.send((k, n, out));
            }
            Completion::Items { slot, n } => slot.complete(Ok(out.into_items(n))),
        }
    }
}

/// A chunk of consecutive input items.
pub(crate) struct Chunk<A, R> {
    pub(crate) items: Vec<A>,
    /// Index of the first item in the whole input.
    pub(crate) first: usize,
    /// A single `apply`: name it as a task, not as item `first`.
    pub(crate) single: Option<String>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) phase: Option<Arc<Phase>>,
    pub(crate) done: Completion<R>,
}

impl<A, R> Chunk<A, R> {
    /// What the chunk is, for error messages.
    pub(crate) fn what(&self) -> String {
        match &self.single {
            Some(s) => s.clone(),
            None => chunk_name(self.first, self.items.len()),
        }
    }
}

/// "item 3", or "the chunk of items 20..30".
pub(crate) fn chunk_name(first: usize, n: usize) -> String {
    if n == 1 {
        format!("item {first}")
    } else {
        format!("the chunk of items {first}..{}", first + n)
    }
}

/// The error for call `i` of a chunk starting at item `first` that panicked.
pub(crate) fn panicked(single: &Option<String>, first: usize, i: usize, msg: &str) -> Error {
    let who = match single {
        Some(s) => s.clone(),
        None => format!("item {}", first + i),
    };
    Error::new(ErrorKind::Panicked, format!("{who} panicked: {msg}"))
}

/// Collects a map's chunks into one vector, appending chunks as they become
/// contiguous (they mostly arrive in order), so no big copy is left for the end.
pub(crate) struct MapCollector<R> {
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

impl<R> MapCollector<R> {
    /// A collector of `n` items in `chunks` chunks, that completes `slot`.
    pub(crate) fn new(n: usize, chunks: usize, slot: Arc<Slot<Vec<R>>>) -> Self {
        MapCollector {
            out: Vec::with_capacity(n),
            next: 0,
            early: BTreeMap::new(),
            remaining: chunks,
            error: None,
            failed: 0,
            slot,
        }
    }

    /// Records chunk `k` (items `first..first + n`); completes the slot after the last.
    pub(crate) fn record(&mut self, k: usize, first: usize, n: usize, out: Outcome<R>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn err(msg: &str) -> Error {
        Error::new(ErrorKind::Panicked, msg)
    }

    #[test]
    fn a_failed_chunk_fails_each_item() {
        let items = Outcome::<u8>::Failed(err("x")).into_items(3);
        assert_eq!(items.len(), 3);
        assert!(
            items
                .iter()
                .all(|r| r.as_ref().unwrap_err().kind() == ErrorKind::Panicked)
        );
        let ok: Vec<u8> = Outcome::AllOk(vec![1, 2])
            .into_items(2)
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(ok, [1, 2]);
    }

    #[test]
    fn chunks_are_named_for_errors() {
        assert_eq!(chunk_name(3, 1), "item 3");
        assert_eq!(chunk_name(20, 10), "the chunk of items 20..30");
        let e = panicked(&None, 20, 2, "boom");
        assert_eq!(e.to_string(), "item 22 panicked: boom");
        let e = panicked(&Some("task 4".into()), 0, 0, "boom");
        assert!(e.to_string().starts_with("task 4 panicked: boom"), "{e}");
    }

    #[test]
    fn the_collector_puts_chunks_back_in_order() {
        let slot = Slot::new("map".into());
        let mut c = MapCollector::new(6, 3, slot.clone());
        c.record(2, 4, 2, Outcome::AllOk(vec![4, 5]));
        c.record(0, 0, 2, Outcome::AllOk(vec![0, 1]));
        assert!(!slot.is_done());
        c.record(1, 2, 2, Outcome::Mixed(vec![Ok(2), Ok(3)]));
        assert_eq!(slot.take(None).unwrap(), [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn the_collector_reports_the_lowest_failure_and_counts_the_rest() {
        let slot = Slot::<Vec<u8>>::new("map".into());
        let mut c = MapCollector::new(6, 3, slot.clone());
        c.record(2, 4, 2, Outcome::Failed(err("late")));
        c.record(0, 0, 2, Outcome::Mixed(vec![Ok(0), Err(err("early"))]));
        c.record(1, 2, 2, Outcome::AllOk(vec![2, 3]));
        let e = slot.take(None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked);
        assert!(e.to_string().contains("early"), "{e}");
        assert!(e.to_string().contains("(and 2 more item(s) failed)"), "{e}");
    }

    #[test]
    fn completions_reach_their_caller() {
        let slot = Slot::new("task 1".into());
        Completion::Single(slot.clone()).complete(Outcome::AllOk(vec![7u8]));
        assert_eq!(slot.take(None).unwrap(), 7);

        let slot = Slot::<u8>::new("task 2".into());
        Completion::Single(slot.clone()).complete(Outcome::AllOk(vec![]));
        assert_eq!(slot.take(None).unwrap_err().kind(), ErrorKind::Protocol);

        let (tx, rx) = mpsc::channel();
        Completion::Stream { tx, k: 4, n: 1 }.complete(Outcome::AllOk(vec![9u8]));
        let (k, n, out) = rx.recv().unwrap();
        assert_eq!((k, n), (4, 1));
        assert_eq!(out.into_items(1).pop().unwrap().unwrap(), 9);

        let slot = Slot::new("map items 0..2".into());
        Completion::Items {
            slot: slot.clone(),
            n: 2,
        }
        .complete(Outcome::<u8>::Failed(err("died")));
        assert_eq!(slot.take(None).unwrap().len(), 2);

        let slot = Slot::new("map".into());
        let collector = Arc::new(Mutex::new(MapCollector::new(1, 1, slot.clone())));
        let ticks = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let t = ticks.clone();
        Completion::Map {
            collector,
            k: 0,
            first: 0,
            len: 1,
            tick: Some(Arc::new(move |n| {
                t.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
            })),
        }
        .complete(Outcome::AllOk(vec![1u8]));
        assert_eq!(slot.take(None).unwrap(), [1]);
        assert_eq!(ticks.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
