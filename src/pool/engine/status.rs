//! A worker's status segment: a seqlock over the call it is running, for timeouts.
//!
//! A task with a timeout makes its worker stamp each call (task id, item index and
//! `CLOCK_MONOTONIC` start) into a small shared segment; the pool thread reads it to
//! learn since when the worker's current call runs. One writer (the worker), one
//! reader (the pool thread): the writer makes the sequence odd, writes, makes it even;
//! the reader retries while it is odd or changed under it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Result;
use crate::sync::segment::Segment;

// Status words (64-bit).
const S_SEQ: usize = 0;
const S_TASK: usize = 1;
const S_ITEM: usize = 2;
const S_START: usize = 3;

/// Reads a consistent (task id, item, start) from the four seqlock words; `None` if
/// never stamped, or if the writer kept it busy for 100 tries.
fn read_words(w: [&AtomicU64; 4]) -> Option<(u64, u64, u64)> {
    for _ in 0..100 {
        let a = w[S_SEQ].load(SeqCst);
        if a % 2 == 1 {
            std::hint::spin_loop();
            continue;
        }
        let v = (
            w[S_TASK].load(SeqCst),
            w[S_ITEM].load(SeqCst),
            w[S_START].load(SeqCst),
        );
        if w[S_SEQ].load(SeqCst) == a {
            return (a > 0).then_some(v);
        }
    }
    None
}

/// Writes (task id, item, start) into the four seqlock words (one writer only).
fn write_words(w: [&AtomicU64; 4], id: u64, item: u64, start: u64) {
    let seq = w[S_SEQ].load(SeqCst);
    w[S_SEQ].store(seq + 1, SeqCst);
    w[S_TASK].store(id, SeqCst);
    w[S_ITEM].store(item, SeqCst);
    w[S_START].store(start, SeqCst);
    w[S_SEQ].store(seq + 2, SeqCst);
}

/// The status segment of one worker, shared with it.
#[derive(Debug, Clone)]
pub(crate) struct Status(Arc<Segment>);

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Status(Arc::new(Segment::deserialize(d)?)))
    }
}

impl Status {
    pub(crate) fn new() -> Result<Status> {
        Ok(Status(Arc::new(Segment::new(
            "multiprocess-pool-worker",
            64,
        )?)))
    }

    fn words(&self) -> [&AtomicU64; 4] {
        let s = &self.0;
        [
            s.word64(S_SEQ),
            s.word64(S_TASK),
            s.word64(S_ITEM),
            s.word64(S_START),
        ]
    }

    /// In the worker: "call `item` of task `id` starts now".
    pub(crate) fn stamp(&self, id: u64, item: u64) {
        write_words(self.words(), id, item, now_ns());
    }

    /// In the parent: (task id, item, start) of the call running now, if stamped.
    pub(crate) fn read(&self) -> Option<(u64, u64, u64)> {
        read_words(self.words())
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock in every process.
pub(crate) fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(a: &[AtomicU64; 4]) -> [&AtomicU64; 4] {
        [&a[0], &a[1], &a[2], &a[3]]
    }

    #[test]
    fn unstamped_reads_none_then_the_last_stamp() {
        let a: [AtomicU64; 4] = Default::default();
        assert_eq!(read_words(words(&a)), None);
        write_words(words(&a), 5, 0, 100);
        assert_eq!(read_words(words(&a)), Some((5, 0, 100)));
        write_words(words(&a), 5, 1, 200);
        assert_eq!(read_words(words(&a)), Some((5, 1, 200)));
        assert_eq!(a[S_SEQ].load(SeqCst), 4);
    }

    #[test]
    fn a_write_in_progress_is_not_read() {
        let a: [AtomicU64; 4] = Default::default();
        write_words(words(&a), 1, 2, 3);
        a[S_SEQ].fetch_add(1, SeqCst); // the writer is half-way through
        assert_eq!(read_words(words(&a)), None);
    }

    #[test]
    fn a_reader_never_sees_a_torn_stamp() {
        let a: Arc<[AtomicU64; 4]> = Arc::new(Default::default());
        let w = a.clone();
        let writer = std::thread::spawn(move || {
            for i in 1..=20_000u64 {
                write_words(words(&w), i, 2 * i, 3 * i);
            }
        });
        let mut seen = 0;
        while !writer.is_finished() || seen == 0 {
            if let Some((id, item, start)) = read_words(words(&a)) {
                assert_eq!((item, start), (2 * id, 3 * id), "torn read");
                seen += 1;
            }
        }
        writer.join().unwrap();
        assert_eq!(read_words(words(&a)), Some((20_000, 40_000, 60_000)));
    }

    #[test]
    fn the_segment_stamps_with_the_monotonic_clock() {
        let s = Status::new().unwrap();
        assert_eq!(s.read(), None);
        let before = now_ns();
        s.clone().stamp(9, 4);
        let (id, item, start) = s.read().unwrap();
        assert_eq!((id, item), (9, 4));
        assert!(start >= before && start <= now_ns());
    }
}
