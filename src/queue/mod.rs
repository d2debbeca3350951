//! Queues across processes: Python's `Queue`, `SimpleQueue` and `JoinableQueue`.
//!
//! # Design
//!
//! A queue is a byte ring in an anonymous shared segment (memfd), plus one Unix
//! socket pair for file descriptors. There is no feeder thread: `put` writes the item
//! into the ring itself, so an item is either in the queue when `put` returns or the
//! call failed and gave it back.
//!
//! ```text
//! segment: | producer side: lock, tail, fd seq, space futex | consumer side: lock,
//!          | head, items futex | count, capacity, maxsize, unfinished | ring ...  |
//! record:  | len u32 | flags u32 | seq u64 | payload, padded to 8 |   (len = MAX: wrap)
//! ```
//!
//! * Producers serialize on the producer lock, consumers on the consumer lock; both
//!   are the robust futex locks of [`crate::Lock`], so a process killed inside `put`
//!   or `get` does not wedge the queue: the next one takes the lock over.
//! * A producer writes the record, then publishes it by advancing `tail` (release).
//!   A producer killed before that leaves no trace. A consumer copies the record out,
//!   then frees it by advancing `head`. A consumer killed before that leaves the item
//!   in the queue for the next consumer: **no item is lost or duplicated by a kill**,
//!   except an item carrying handles whose consumer died after taking its fds (the
//!   next consumer gets an error for that item).
//! * The counts of items published and freed are updated at publish and at free:
//!   `len()` is exact (except after a producer killed between advancing `tail` and
//!   counting, which leaves it one short, as the single shared count did before).
//! * Items larger than half the ring travel in their own memfd. Items that
//!   contain handles, and those memfds, travel as fds over the socket pair: producers
//!   send them (tagged with a sequence number) under the producer lock before
//!   publishing, consumers receive them under the consumer lock in the same order.
//! * Waiting: a short spin, then a futex (shared) on a sequence word, with waiter
//!   counts so that an uncontended `put`/`get` makes no system call.
//! * Cache lines: a `put` writes only the producer side's control line, a `get` only
//!   the consumer side's (`len()` is items published minus items freed, one counter
//!   per side; the futex words are bumped only while someone sleeps, see
//!   `wake_sleepers`). A line written by both sides moves between CPUs at every
//!   message: with a shared count and unconditional bumps, one producer and one
//!   consumer moved 2.9-3.5 M small items/s here; now 4.8-5.0 M.
//! * Reading the other side's line: a producer checks for room against the head it
//!   (or another producer) saw last, kept in its own line, and reads the consumers'
//!   line only when the ring looks full from there; a consumer likewise reads the
//!   producers' line only once it has taken every item up to the tail it saw last.
//!   One producer and one consumer of small items, before and after (2026-12-03,
//!   alternating runs): 6.6-6.8 M/s and 8.5 M/s where the host keeps this VM's two
//!   CPUs close (a spinning round trip of 0.06 us), 2.5-2.7 M/s and 4.5-5.2 M/s where
//!   it puts them far apart (0.35 us); four of each, 2.5-6.4 M/s and 4.8-7.6 M/s.
//! * Async waiting (`get_async`, `put_async`, `join_async`; see `async_ops.rs`): a
//!   futex cannot be watched by a reactor, so the queue has a second eventfd, the
//!   *async bell*, that a successful `put` or `get` (and the last `task_done`) rings
//!   while async waiters are registered (a counter in the segment, so that without
//!   them it costs nothing).

mod async_ops;
mod joinable;
mod ring;

pub use async_ops::{QueueGet, QueueJoin, QueuePut};
pub use joinable::JoinableQueue;

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use self::ring::{F_BIG, F_FDS, HEADER, RING, Record, align8, room};
use crate::error::{Error, ErrorKind, Result};
use crate::sync::raw;
use crate::sync::segment::Segment;
use crate::sys::{self, futex};
use crate::wire::handles::HandleFd;
use crate::wire::{codec, frame};

// The control words, by cache line, so that a put and a get each write only their
// own side's line (a line written by both sides moves between CPUs at every message):
//
//   line 0 (bytes 0..64):    producer side: lock and its sleeper words, tail, fd seq,
//                            items published, the head producers saw last
//   line 1 (bytes 64..128):  consumer side: lock and its sleeper words, head, items
//                            freed, the tail consumers saw last
//   line 2 (bytes 128..192): written at creation or rarely: capacity, maxsize,
//                            joinable's unfinished count and the waiter counts
//   line 3 (bytes 192..256): the futex words, bumped only while someone sleeps
//
// u64 word indices.
const Q_PLOCK: usize = 0;
const Q_TAIL: usize = 2;
const Q_NEXT_SEQ: usize = 3;
/// Items published, ever (written under the producer lock).
const Q_PUBLISHED: usize = 4;
/// `Q_HEAD` as a producer last read it (under the producer lock): a producer checks
/// for room against it first and reads the consumers' line only when the ring looks
/// full from there. (Heads only grow, so a stale one only hides room; the producer
/// lock carries the consumers' release of it from one producer to the next.)
const Q_HEAD_SEEN: usize = 5;
const Q_CLOCK: usize = 8;
const Q_HEAD: usize = 10;
/// Items freed, ever (written under the consumer lock).
const Q_FREED: usize = 11;
/// `Q_TAIL` as a consumer last read it (under the consumer lock), as `Q_HEAD_SEEN`:
/// while it is ahead of the head, a consumer reads no producer line.
const Q_TAIL_SEEN: usize = 12;
// u32 word indices.
const W_CAPACITY: usize = 33;
const W_MAXSIZE: usize = 34;
pub(crate) const W_UNFINISHED: usize = 35;
pub(crate) const W_JOIN_WAITERS: usize = 36;
/// 1 in a `JoinableQueue`'s segment (set when it is made, before it is shared): every
/// put counts an unfinished task, whichever handle it comes through (the
/// `JoinableQueue`, its `queue()`, or a clone of that sent to another process).
pub(crate) const W_JOINABLE: usize = 41;
/// Callers of `multiprocess::wait` watching this queue.
const W_POLL_WAITERS: usize = 37;
/// Async getters and putters waiting on this queue (they watch the async bell).
const W_ASYNC_WAITERS: usize = 38;
/// Producers asleep waiting for room.
const W_SPACE_WAITERS: usize = 39;
/// Consumers asleep waiting for an item.
const W_ITEM_WAITERS: usize = 40;
/// The producer lock's sleeper count, then its sleepers' futex word, on the producers'
/// line; the consumer lock's likewise on the consumers'. (On line 2, which a sleeping
/// getter or putter writes, every release read a line the other side had just written:
/// one producer and one consumer of 1 KiB items fell from 3.2-4.0 to 1.5-3.3 M/s.)
const W_PLOCK_SLEEPERS: usize = 2;
const W_CLOCK_SLEEPERS: usize = 18;
/// The futex word of producers waiting for room.
const W_SPACE_SEQ: usize = 48;
/// The futex word of consumers waiting for an item.
const W_ITEMS_SEQ: usize = 49;

/// The default ring size: 4 MiB of shared memory (its pages are touched as the ring
/// goes round). Items up to half of it travel inline.
pub(crate) const DEFAULT_CAPACITY: usize = 4 << 20;

/// How long a waiter spins before it sleeps.
const SPIN: Duration = Duration::from_micros(20);

/// How long a `put` past its deadline still waits for a producer lock whose holder is
/// copying an item into a ring with room (see `RawQueue::put`): a copy takes
/// microseconds, a holder preempted on a busy machine some milliseconds.
const LOCK_GRACE: Duration = Duration::from_millis(50);

/// An item that could not be put, given back with the reason.
pub struct PutError<T> {
    error: Error,
    item: T,
}

impl<T> PutError<T> {
    pub(crate) fn new(error: Error, item: T) -> Self {
        PutError { error, item }
    }

    /// Why the put failed.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The broad category ([`ErrorKind::Full`] for a full queue).
    pub fn kind(&self) -> ErrorKind {
        self.error.kind()
    }

    /// The item, back in your hands.
    pub fn into_inner(self) -> T {
        self.item
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<T> std::error::Error for PutError<T> {}

impl<T> From<PutError<T>> for Error {
    fn from(e: PutError<T>) -> Error {
        e.error
    }
}

/// The untyped queue shared by every flavour.
pub(crate) struct RawQueue {
    pub(crate) seg: Segment,
    tx: HandleFd,
    rx: HandleFd,
    /// An eventfd rung after a put while someone is in `multiprocess::wait` on us.
    bell: HandleFd,
    /// An eventfd rung after a put or a get while async waiters are registered; never
    /// reset (see `async_ops.rs`).
    abell: HandleFd,
}

impl fmt::Debug for RawQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawQueue")
            .field("len", &self.len())
            .finish()
    }
}

/// Which limit a full queue hit.
enum Wait {
    Ok { waste: usize },
    TimedOut,
}

impl RawQueue {
    pub(crate) fn new(maxsize: u32, capacity: usize) -> Result<RawQueue> {
        let capacity = capacity.max(4096).next_power_of_two();
        if capacity > u32::MAX as usize / 2 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "queue capacity too large",
            ));
        }
        let seg = Segment::new("multiprocess-queue", RING + capacity)?;
        seg.word(W_CAPACITY).store(capacity as u32, Relaxed);
        seg.word(W_MAXSIZE).store(maxsize, Relaxed);
        let (tx, rx) = sys::socket::pair().map_err(|e| Error::io("socketpair", e))?;
        let bell = sys::poll::eventfd().map_err(|e| Error::io("eventfd", e))?;
        let abell = sys::poll::eventfd().map_err(|e| Error::io("eventfd", e))?;
        Ok(RawQueue {
            seg,
            tx: HandleFd::new(tx),
            rx: HandleFd::new(rx),
            bell: HandleFd::new(bell),
            abell: HandleFd::new(abell),
        })
    }

    fn capacity(&self) -> u64 {
        self.seg.word(W_CAPACITY).load(Relaxed) as u64
    }

    pub(crate) fn len(&self) -> usize {
        // Freed first: what is published later can only be more.
        let freed = self.seg.word64(Q_FREED).load(SeqCst);
        let published = self.seg.word64(Q_PUBLISHED).load(SeqCst);
        published.saturating_sub(freed) as usize
    }

    pub(crate) fn maxsize(&self) -> u32 {
        self.seg.word(W_MAXSIZE).load(Relaxed)
    }

    fn lock(&self, word: usize, deadline: Option<Instant>) -> Option<Held<'_>> {
        let sleepers = if word == Q_PLOCK {
            W_PLOCK_SLEEPERS
        } else {
            W_CLOCK_SLEEPERS
        };
        let l = self.seg.raw_lock(word, sleepers);
        raw::acquire(l, raw::Owner::me(), deadline).map(|_| Held(l))
    }

    /// Waits (holding the producer lock) until a record of `need` bytes fits.
    fn wait_for_room(&self, need: usize, deadline: Option<Instant>) -> Wait {
        let cap = self.capacity();
        let maxsize = self.maxsize();
        let spin_until = Instant::now() + SPIN;
        let seen = self.seg.word64(Q_HEAD_SEEN);
        loop {
            let tail = self.seg.word64(Q_TAIL).load(Relaxed);
            if maxsize == 0
                && let Some(waste) = room(seen.load(Relaxed), tail, cap, need as u64)
            {
                return Wait::Ok {
                    waste: waste as usize,
                };
            }
            let head = self.seg.word64(Q_HEAD).load(Acquire);
            seen.store(head, Relaxed);
            let placed = room(head, tail, cap, need as u64);
            let fits = placed.is_some();
            let below_max = maxsize == 0 || self.len() < maxsize as usize;
            if let Some(waste) = placed
                && below_max
            {
                return Wait::Ok {
                    waste: waste as usize,
                };
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Wait::TimedOut;
            }
            if Instant::now() < spin_until {
                std::hint::spin_loop();
                continue;
            }
            let seq = self.seg.word(W_SPACE_SEQ);
            let waiters = self.seg.word(W_SPACE_WAITERS);
            // Counted, then a full fence, then `seq` and the state: the sleeper's half
            // of `wake_sleepers`' pattern.
            waiters.fetch_add(1, SeqCst);
            std::sync::atomic::fence(SeqCst);
            let s = seq.load(SeqCst);
            let head_now = self.seg.word64(Q_HEAD).load(SeqCst);
            let count_now = self.len();
            if head_now == head && (maxsize == 0 || count_now >= maxsize as usize || !fits) {
                futex::wait(seq, s, deadline);
            }
            waiters.fetch_sub(1, SeqCst);
        }
    }

    /// Puts encoded `bytes` with the handles `fds`.
    pub(crate) fn put(
        &self,
        bytes: &[u8],
        fds: &[BorrowedFd<'_>],
        deadline: Option<Instant>,
    ) -> Result<()> {
        let cap = self.capacity() as usize;
        let big = HEADER + bytes.len() > cap / 2;
        let memfd = if big { Some(big_item(bytes)?) } else { None };
        let held = match self.lock(Q_PLOCK, deadline) {
            Some(h) => h,
            None => {
                // The producer lock is busy past the deadline (at once, for `try_put`).
                // A holder that waits for room means the queue is full; one that copies
                // its item lets go within microseconds, and the queue is not full for
                // that: wait for it a little, so `Full` means full (as in Python).
                let need = align8(HEADER + if big { 8 } else { bytes.len() });
                if !self.has_room(need) {
                    return Err(full());
                }
                match self.lock(Q_PLOCK, Some(Instant::now() + LOCK_GRACE)) {
                    Some(h) => h,
                    None => return Err(full()),
                }
            }
        };
        self.put_held(held, bytes, fds, memfd, deadline)
    }

    /// Whether a record of `need` bytes would fit now (a hint: the consumers may take
    /// more meanwhile, never less).
    fn has_room(&self, need: usize) -> bool {
        let head = self.seg.word64(Q_HEAD).load(Acquire);
        let tail = self.seg.word64(Q_TAIL).load(Acquire);
        let maxsize = self.maxsize();
        room(head, tail, self.capacity(), need as u64).is_some()
            && (maxsize == 0 || self.len() < maxsize as usize)
    }

    /// [`put`](RawQueue::put) under the producer lock `_held`, with the large item's
    /// memfd made.
    ///
    /// In a `JoinableQueue` (see [`W_JOINABLE`]), the unfinished-task count goes up
    /// once the item has room and just before it becomes visible, as in Python (whose
    /// `JoinableQueue.put` counts after its semaphore gives room): a `join` meanwhile
    /// does not wait for a put still blocked on a full queue, a consumer's quick
    /// `task_done` never finds the count at 0, and a put that fails was never counted.
    /// (A producer killed between the count and the tail's store leaves one task
    /// unfinished for ever: a window of two instructions, which no lock takeover can
    /// tell from a death just before the count.)
    fn put_held(
        &self,
        _held: Held<'_>,
        bytes: &[u8],
        fds: &[BorrowedFd<'_>],
        memfd: Option<OwnedFd>,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let cap = self.capacity() as usize;
        let big = memfd.is_some();
        let payload_len = if big { 8 } else { bytes.len() };
        let need = align8(HEADER + payload_len);
        let waste = match self.wait_for_room(need, deadline) {
            Wait::Ok { waste } => waste,
            Wait::TimedOut => return Err(full()),
        };
        let mut flags = 0;
        let mut seq = 0u64;
        if big || !fds.is_empty() {
            flags = if big { F_BIG } else { 0 } | if fds.is_empty() { 0 } else { F_FDS };
            seq = self.seg.word64(Q_NEXT_SEQ).fetch_add(1, SeqCst);
            let mut all: Vec<BorrowedFd<'_>> = Vec::with_capacity(fds.len() + 1);
            if let Some(m) = &memfd {
                all.push(m.as_fd());
            }
            all.extend_from_slice(fds);
            sys::socket::send_all(self.tx.as_fd(), &[&seq.to_le_bytes()], &all)
                .map_err(|e| Error::io("queue: passing handles", e))?;
        }
        let mut tail = self.seg.word64(Q_TAIL).load(Relaxed);
        #[allow(unsafe_code)]
        // SAFETY: we hold the producer lock, and the bytes from `tail` to `tail + waste +
        // need` are free (`wait_for_room`): no consumer reads them before we publish by
        // advancing `tail` below, and no other producer writes while we hold the lock.
        unsafe {
            if waste > 0 {
                self.seg
                    .write_at(RING + (tail % cap as u64) as usize, &Record::WRAP_MARK);
                tail += waste as u64;
            }
            let at = RING + (tail % cap as u64) as usize;
            let record = Record {
                len: payload_len as u32,
                flags,
                seq,
            };
            self.seg.write_at(at, &record.to_bytes());
            if big {
                self.seg
                    .write_at(at + HEADER, &(bytes.len() as u64).to_le_bytes());
            } else {
                self.seg.write_at(at + HEADER, bytes);
            }
        }
        if self.seg.word(W_JOINABLE).load(Relaxed) != 0 {
            self.seg.word(W_UNFINISHED).fetch_add(1, SeqCst);
        }
        self.seg.word64(Q_TAIL).store(tail + need as u64, Release);
        let published = self.seg.word64(Q_PUBLISHED);
        published.store(published.load(Relaxed) + 1, Release);
        // The tail is out before the waiter count is read (a sleeper counts itself
        // before it reads the tail): either it sees the item or we see it (see
        // `wake_sleepers`).
        wake_sleepers(&self.seg, W_ITEM_WAITERS, W_ITEMS_SEQ);
        if self.seg.word(W_POLL_WAITERS).load(SeqCst) > 0 {
            sys::poll::ring(self.bell.as_fd());
        }
        drop(_held);
        self.ring_async();
        Ok(())
    }

    /// After a put or a get: wakes the async waiters, if any (after the lock is
    /// released, so that one blocked by it finds it free).
    fn ring_async(&self) {
        if self.seg.word(W_ASYNC_WAITERS).load(SeqCst) > 0 {
            sys::poll::ring(self.abell.as_fd());
        }
    }

    /// For `multiprocess::wait`: register, clear a stale bell, and say if an item is
    /// there already (checked after registering, so a put cannot slip between).
    ///
    /// The bell is shared by every waiter on the queue, in any thread or process: a
    /// stale ring is silenced without eating a fresh one (`sys::poll::settle`).
    pub(crate) fn wait_begin(&self) -> bool {
        self.seg.word(W_POLL_WAITERS).fetch_add(1, SeqCst);
        let bell = self.bell.as_fd();
        sys::poll::settle(
            || self.len() > 0,
            || sys::poll::silence(bell),
            || sys::poll::ring(bell),
        )
    }

    pub(crate) fn wait_end(&self) {
        self.seg.word(W_POLL_WAITERS).fetch_sub(1, SeqCst);
    }

    /// Takes the next item and hands its bytes and fds to `decode`: in place in the
    /// ring for an inline item (under the consumer lock, saving a copy), from its
    /// memfd for a large one.
    pub(crate) fn get_with<R>(
        &self,
        deadline: Option<Instant>,
        decode: impl FnOnce(&[u8], Vec<OwnedFd>) -> Result<R>,
    ) -> Result<R> {
        let Some(held) = self.lock(Q_CLOCK, deadline) else {
            return Err(empty());
        };
        self.get_held(held, deadline, decode)
    }

    /// [`get_with`](RawQueue::get_with) under the consumer lock `_held`.
    fn get_held<R>(
        &self,
        _held: Held<'_>,
        deadline: Option<Instant>,
        decode: impl FnOnce(&[u8], Vec<OwnedFd>) -> Result<R>,
    ) -> Result<R> {
        let mut decode = Some(decode);
        let mut decode_once =
            |b: &[u8], f: Vec<OwnedFd>| (decode.take().expect("decoded once"))(b, f);
        let cap = self.capacity();
        let spin_until = Instant::now() + SPIN;
        let mut head = self.seg.word64(Q_HEAD).load(Relaxed);
        let seen = self.seg.word64(Q_TAIL_SEEN);
        loop {
            if seen.load(Relaxed) > head {
                break;
            }
            let tail = self.seg.word64(Q_TAIL).load(Acquire);
            if tail != head {
                seen.store(tail, Relaxed);
                break;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(empty());
            }
            if Instant::now() < spin_until {
                std::hint::spin_loop();
                continue;
            }
            let seq = self.seg.word(W_ITEMS_SEQ);
            let waiters = self.seg.word(W_ITEM_WAITERS);
            // Counted, then a full fence, then `seq` and the state: the sleeper's half
            // of `wake_sleepers`' pattern.
            waiters.fetch_add(1, SeqCst);
            std::sync::atomic::fence(SeqCst);
            let s = seq.load(SeqCst);
            if self.seg.word64(Q_TAIL).load(SeqCst) == head {
                futex::wait(seq, s, deadline);
            }
            waiters.fetch_sub(1, SeqCst);
        }
        let mut header = [0u8; HEADER];
        #[allow(unsafe_code)]
        // SAFETY: we hold the consumer lock and `tail != head`: the record at `head` is
        // published (its bytes were written before the release store of `tail` we
        // acquired) and no producer writes it again until we free it.
        unsafe {
            self.seg
                .read_at(RING + (head % cap) as usize, &mut header[..4]);
        }
        if Record::is_wrap(&header) {
            head += cap - head % cap;
        }
        let at = RING + (head % cap) as usize;
        #[allow(unsafe_code)]
        // SAFETY: as above, for the record after the wrap mark.
        unsafe {
            self.seg.read_at(at, &mut header);
        }
        let Record { len, flags, seq } = Record::from_bytes(&header);
        let len = len as usize;
        if len > cap as usize {
            return Err(Error::new(
                ErrorKind::Protocol,
                "queue ring is corrupt (record longer than the ring)",
            ));
        }
        let mut result = Ok(());
        let mut fds = Vec::new();
        if flags & (F_BIG | F_FDS) != 0 {
            match self.recv_fds(seq) {
                Ok(f) => fds = f,
                Err(e) => result = Err(e),
            }
        }
        // Inline items are decoded in place, before the record is freed.
        let mut big_len = None;
        let mut decoded = None;
        if result.is_ok() {
            if flags & F_BIG != 0 {
                let mut b = [0u8; 8];
                #[allow(unsafe_code)]
                // SAFETY: the published record's payload, as above.
                unsafe {
                    self.seg.read_at(at + HEADER, &mut b);
                }
                big_len = Some(u64::from_le_bytes(b) as usize);
            } else {
                #[allow(unsafe_code)]
                // SAFETY: the published record's payload, as above; the view ends before
                // we free the record below, and no producer writes it until then.
                let payload = unsafe { self.seg.view(at + HEADER, len) };
                decoded = Some(decode_once(payload, std::mem::take(&mut fds)));
            }
        }
        // Free the record (even if its fds were lost: the item cannot be delivered).
        self.seg
            .word64(Q_HEAD)
            .store(head + align8(HEADER + len) as u64, Release);
        let freed = self.seg.word64(Q_FREED);
        freed.store(freed.load(Relaxed) + 1, Release);
        wake_sleepers(&self.seg, W_SPACE_WAITERS, W_SPACE_SEQ);
        drop(_held);
        self.ring_async();
        result?;
        if let Some(r) = decoded {
            return r;
        }
        let total = big_len.expect("a large item");
        if fds.is_empty() {
            return Err(Error::new(
                ErrorKind::Protocol,
                "a large queue item arrived without its memory",
            ));
        }
        let memfd = fds.remove(0);
        let payload = read_big_item(memfd, total)?;
        let value = decode_once(&payload, fds);
        frame::recycle_body(payload);
        value
    }

    /// Receives the fd message tagged `seq` (dropping orphans of killed producers).
    fn recv_fds(&self, seq: u64) -> Result<Vec<OwnedFd>> {
        let deadline = Some(Instant::now() + Duration::from_secs(10));
        loop {
            let mut buf = [0u8; 8];
            let mut got = 0;
            let mut fds = Vec::new();
            while got < 8 {
                if !sys::poll::wait_readable(self.rx.as_fd(), deadline)
                    .map_err(|e| Error::io("poll", e))?
                {
                    return Err(Error::new(
                        ErrorKind::ProcessDied,
                        "the handles of a queue item never arrived",
                    ));
                }
                match sys::socket::recv_some(self.rx.as_fd(), &mut buf[got..], &mut fds, true) {
                    Ok(0) => return Err(Error::disconnected()),
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(Error::io("queue: receiving handles", e)),
                }
            }
            let got_seq = u64::from_le_bytes(buf);
            if got_seq == seq {
                return Ok(fds);
            }
            if got_seq > seq {
                return Err(Error::new(
                    ErrorKind::ProcessDied,
                    "the handles of this queue item were lost with a consumer that was killed while taking it",
                ));
            }
            // An orphan from a producer killed before publishing: drop its fds.
        }
    }
}

/// After a put (or a get) has published its change: wakes one sleeper counted in
/// `waiters`, by bumping the futex word `seq` it sleeps on.
///
/// The word is bumped only while someone sleeps, so that a put and a get write no line
/// of the other side. This is the Dekker pattern: the change, then a full fence, then
/// the waiter count here; on the sleeper's side, its count (a read-modify-write, a full
/// fence), then `seq`, then the change. Either the sleeper sees the change and does not
/// sleep, or we see its count and bump `seq` after it read it, so its `futex::wait` on
/// the old value returns at once or is woken.
fn wake_sleepers(seg: &Segment, waiters: usize, seq: usize) {
    std::sync::atomic::fence(SeqCst);
    if seg.word(waiters).load(Relaxed) > 0 {
        let seq = seg.word(seq);
        seq.fetch_add(1, SeqCst);
        futex::wake(seq, 1);
    }
}

struct Held<'a>(raw::RawLock<'a>);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        raw::release(self.0);
    }
}

fn full() -> Error {
    Error::new(ErrorKind::Full, "the queue is full")
}

fn empty() -> Error {
    Error::new(ErrorKind::Empty, "the queue is empty")
}

fn big_item(bytes: &[u8]) -> Result<OwnedFd> {
    let fd =
        sys::shm::memfd("multiprocess-queue-item", 0).map_err(|e| Error::io("memfd_create", e))?;
    sys::shm::write_all(fd.as_fd(), bytes)
        .map_err(|e| Error::io("queue: writing a large item", e))?;
    Ok(fd)
}

/// Reads a large item from its memfd, into this thread's spare buffer when it has one
/// (see `wire::spare`: fresh pages per item cost 5x here).
fn read_big_item(fd: OwnedFd, total: usize) -> Result<Vec<u8>> {
    let mut buf = frame::large_body(total)
        .ok_or_else(|| Error::new(ErrorKind::Io, "out of memory for a queue item"))?;
    match sys::shm::read_exact_at_start(fd.as_fd(), &mut buf) {
        Ok(()) => Ok(buf),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Error::new(
            ErrorKind::Protocol,
            "a large queue item is truncated",
        )),
        Err(e) => Err(Error::io("queue: reading a large item", e)),
    }
}

impl Serialize for RawQueue {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        struct Fd<'a>(BorrowedFd<'a>);
        impl Serialize for Fd<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                codec::serialize_fd(self.0, s)
            }
        }
        (
            &self.seg,
            Fd(self.tx.as_fd()),
            Fd(self.rx.as_fd()),
            Fd(self.bell.as_fd()),
            Fd(self.abell.as_fd()),
        )
            .serialize(s)
    }
}

impl<'de> Deserialize<'de> for RawQueue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Fd(OwnedFd);
        impl<'de> Deserialize<'de> for Fd {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                codec::deserialize_fd(d).map(Fd)
            }
        }
        let (seg, Fd(tx), Fd(rx), Fd(bell), Fd(abell)) =
            <(Segment, Fd, Fd, Fd, Fd)>::deserialize(d)?;
        Ok(RawQueue {
            seg,
            tx: HandleFd::new(tx),
            rx: HandleFd::new(rx),
            bell: HandleFd::new(bell),
            abell: HandleFd::new(abell),
        })
    }
}

/// A multi-producer, multi-consumer queue between processes: Python's
/// `multiprocessing.Queue`.
///
/// Clone it to share it between threads; pass it in a child's args or send it through
/// a [`Connection`](crate::Connection) to share it between processes. Items are any
/// serializable `T`, including handles (connections, locks, other queues).
///
/// # Guarantees
///
/// No background thread: when `put` returns `Ok`, the item is in the queue; when it
/// fails, you get the item back. A process killed in the middle of `put` or `get`
/// neither corrupts nor wedges the queue (see the module's design notes): an
/// interrupted `put` leaves no trace, an interrupted `get` leaves the item for the
/// next consumer. `len()` is exact.
///
/// # Examples
///
/// In process 1 and process 2:
///
/// ```
/// use multiprocess::{Process, Queue};
///
/// fn producer(q: Queue<u32>) {
///     for i in 0..5 {
///         q.put(i).unwrap();
///     }
/// }
///
/// multiprocess::init();
/// let q = Queue::new()?;
/// let mut p = Process::new(producer, q.clone());
/// p.start()?;
/// let got: Vec<u32> = (0..5).map(|_| q.get()).collect::<Result<_, _>>()?;
/// assert_eq!(got, vec![0, 1, 2, 3, 4]);
/// p.join()?;
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub struct Queue<T> {
    inner: Arc<RawQueue>,
    closed: Arc<AtomicBool>,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            inner: self.inner.clone(),
            closed: self.closed.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("len", &self.len())
            .field("maxsize", &self.inner.maxsize())
            .finish()
    }
}

fn closed_error() -> Error {
    Error::state("the queue is closed (in this process)")
}

impl<T> Queue<T> {
    pub(crate) fn from_raw(inner: RawQueue) -> Self {
        Queue {
            inner: Arc::new(inner),
            closed: Arc::new(AtomicBool::new(false)),
            _t: PhantomData,
        }
    }

    pub(crate) fn raw(&self) -> &RawQueue {
        &self.inner
    }

    /// A queue with no limit on the number of items (Python's `Queue()`).
    ///
    /// What it holds at once is bounded by its ring: 4 MiB of encoded items (an item
    /// over 2 MiB travels in memory of its own and takes a few bytes of the ring).
    /// When the ring is full, [`put`](Queue::put) waits for room and
    /// [`try_put`](Queue::try_put) reports `Full`, where Python's feeder thread keeps
    /// any number of items in the putting process. To put more before anyone gets,
    /// give it a larger ring with [`with_capacity`](Queue::with_capacity).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if shared memory or the socket cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiprocess::Queue::<String>::new()?;
    /// assert!(q.is_empty());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        Ok(Self::from_raw(RawQueue::new(0, DEFAULT_CAPACITY)?))
    }

    /// An unbounded queue whose ring holds `bytes` of encoded items at once (rounded
    /// up to a power of two, from 4 KiB to 1 GiB; [`new`](Queue::new) gives 4 MiB).
    /// The ring is shared memory whose pages are touched as it goes round, so a ring
    /// that fills once keeps that much memory until the queue is dropped everywhere.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] past 1 GiB; otherwise as [`new`](Queue::new).
    ///
    /// # Examples
    ///
    /// ```
    /// // 10,000 items of 1 KiB before any get: more than `new()`'s 4 MiB ring holds.
    /// let q = multiprocess::Queue::with_capacity(32 << 20)?;
    /// for _ in 0..10_000 {
    ///     q.try_put(vec![0u8; 1024]).unwrap();
    /// }
    /// assert_eq!(q.len(), 10_000);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn with_capacity(bytes: usize) -> Result<Self> {
        if bytes > 1 << 30 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("a queue's ring holds at most 1 GiB, not {bytes} bytes"),
            ));
        }
        Ok(Self::from_raw(RawQueue::new(0, bytes)?))
    }

    /// A queue that holds at most `maxsize` items (Python's `Queue(maxsize)`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for 0; otherwise as [`new`](Queue::new).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiprocess::Queue::bounded(1)?;
    /// q.put(1u8)?;
    /// assert!(q.is_full());
    /// assert_eq!(q.try_put(2).unwrap_err().into_inner(), 2);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn bounded(maxsize: u32) -> Result<Self> {
        if maxsize == 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a bounded queue needs room for at least one item",
            ));
        }
        Ok(Self::from_raw(RawQueue::new(maxsize, DEFAULT_CAPACITY)?))
    }

    /// The number of items in the queue now (exact; Python's `qsize()`).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiprocess::Queue::new()?;
    /// q.put(1u8)?;
    /// assert_eq!(q.len(), 1);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    #[doc(alias = "qsize")]
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Python's name for [`len`](Queue::len).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiprocess::Queue::<u8>::new()?.qsize(), 0);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn qsize(&self) -> usize {
        self.len()
    }

    /// Is the queue empty now?
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(multiprocess::Queue::<u8>::new()?.is_empty());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    #[doc(alias = "empty")]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Is a bounded queue at its `maxsize` now? (Always `false` when unbounded.)
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!multiprocess::Queue::<u8>::bounded(2)?.is_full());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    #[doc(alias = "full")]
    pub fn is_full(&self) -> bool {
        let max = self.inner.maxsize();
        max != 0 && self.len() >= max as usize
    }

    /// Closes this handle: further `put`/`get` through it (and its clones in this
    /// process) fail with [`ErrorKind::InvalidState`]. Other processes are unaffected,
    /// as in Python.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::ErrorKind;
    /// let q = multiprocess::Queue::<u8>::new()?;
    /// q.close();
    /// assert_eq!(q.put(1).unwrap_err().kind(), ErrorKind::InvalidState);
    /// assert_eq!(q.get().unwrap_err().kind(), ErrorKind::InvalidState);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn close(&self) {
        self.closed.store(true, SeqCst);
    }
}

impl<T: Serialize> Queue<T> {
    fn put_until(
        &self,
        item: T,
        deadline: Option<Instant>,
    ) -> std::result::Result<(), PutError<T>> {
        if self.closed.load(Relaxed) {
            return Err(PutError {
                error: closed_error(),
                item,
            });
        }
        let mut enc = match codec::encode_reusing(&item, 0) {
            Ok(e) => e,
            Err(error) => return Err(PutError { error, item }),
        };
        let bytes = std::mem::take(&mut enc.bytes);
        let fds = enc.borrowed_fds();
        let r = self.inner.put(&bytes, &fds, deadline);
        drop(fds);
        codec::recycle(bytes);
        r.map_err(|error| PutError { error, item })
    }

    /// Puts `item`, waiting for room in a bounded queue.
    ///
    /// # Errors
    ///
    /// The item comes back in the [`PutError`]: [`ErrorKind::Serialize`] if it cannot
    /// be serialized (the queue is unchanged), [`ErrorKind::InvalidState`] after
    /// [`close`](Queue::close).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiprocess::Queue::new()?;
    /// q.put(vec![1, 2, 3])?;
    /// assert_eq!(q.get()?, vec![1, 2, 3]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn put(&self, item: T) -> std::result::Result<(), PutError<T>> {
        self.put_until(item, None)
    }

    /// Puts `item` if there is room now (Python's `put_nowait`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Full`] at once when full; otherwise as [`put`](Queue::put).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::ErrorKind;
    /// let q = multiprocess::Queue::bounded(1)?;
    /// q.try_put('a')?;
    /// assert_eq!(q.try_put('b').unwrap_err().kind(), ErrorKind::Full);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    #[doc(alias = "put_nowait")]
    pub fn try_put(&self, item: T) -> std::result::Result<(), PutError<T>> {
        self.put_until(item, Some(Instant::now()))
    }

    /// Puts `item`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Full`] after the timeout; otherwise as [`put`](Queue::put).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = multiprocess::Queue::bounded(1)?;
    /// q.put(1u8)?;
    /// assert!(q.put_timeout(2, Duration::from_millis(10)).is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn put_timeout(&self, item: T, timeout: Duration) -> std::result::Result<(), PutError<T>> {
        self.put_until(item, sys::deadline_after(timeout))
    }
}

impl<T: DeserializeOwned> Queue<T> {
    fn get_until(&self, deadline: Option<Instant>) -> Result<T> {
        if self.closed.load(Relaxed) {
            return Err(closed_error());
        }
        self.inner
            .get_with(deadline, |bytes, fds| codec::decode(bytes, fds))
    }

    /// Takes the next item, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Deserialize`] if the bytes are not a `T` (the item is consumed);
    /// [`ErrorKind::InvalidState`] after [`close`](Queue::close).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiprocess::Queue::new()?;
    /// q.put("x".to_string())?;
    /// assert_eq!(q.get()?, "x");
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn get(&self) -> Result<T> {
        self.get_until(None)
    }

    /// Takes an item if one is there (Python's `get_nowait`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Empty`] at once when empty; otherwise as [`get`](Queue::get).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::ErrorKind;
    /// let q = multiprocess::Queue::<u8>::new()?;
    /// assert_eq!(q.try_get().unwrap_err().kind(), ErrorKind::Empty);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    #[doc(alias = "get_nowait")]
    pub fn try_get(&self) -> Result<T> {
        self.get_until(Some(Instant::now()))
    }

    /// Takes an item, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Empty`] after the timeout; otherwise as [`get`](Queue::get).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = multiprocess::Queue::<u8>::new()?;
    /// assert!(q.get_timeout(Duration::from_millis(10)).is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_until(sys::deadline_after(timeout))
    }
}

impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.inner.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Queue::from_raw(RawQueue::deserialize(d)?))
    }
}

/// Python's `multiprocessing.SimpleQueue`: an unbounded [`Queue`] with the short API
/// (`put`, `get`, `is_empty`, `close`).
///
/// # Examples
///
/// ```
/// let q = multiprocess::SimpleQueue::new()?;
/// q.put(7u16)?;
/// assert!(!q.is_empty());
/// assert_eq!(q.get()?, 7);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub struct SimpleQueue<T>(Queue<T>);

impl<T> Clone for SimpleQueue<T> {
    fn clone(&self) -> Self {
        SimpleQueue(self.0.clone())
    }
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SimpleQueue").field(&self.0).finish()
    }
}

impl<T> SimpleQueue<T> {
    /// A new simple queue.
    ///
    /// # Errors
    ///
    /// As [`Queue::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiprocess::SimpleQueue::<u8>::new()?;
    /// # drop(q);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        Ok(SimpleQueue(Queue::new()?))
    }

    /// Is it empty now?
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(multiprocess::SimpleQueue::<u8>::new()?.is_empty());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Closes this handle (see [`Queue::close`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiprocess::SimpleQueue::<u8>::new()?;
    /// q.close();
    /// assert!(q.get().is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn close(&self) {
        self.0.close();
    }
}

impl<T: Serialize> SimpleQueue<T> {
    /// Puts an item (see [`Queue::put`]).
    ///
    /// # Errors
    ///
    /// As [`Queue::put`].
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiprocess::SimpleQueue::new()?;
    /// q.put(1u8)?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn put(&self, item: T) -> std::result::Result<(), PutError<T>> {
        self.0.put(item)
    }
}

impl<T: DeserializeOwned> SimpleQueue<T> {
    /// Takes an item, waiting as long as it takes (see [`Queue::get`]).
    ///
    /// # Errors
    ///
    /// As [`Queue::get`].
    ///
    /// # Examples
    ///
    /// ```
    /// let q = multiprocess::SimpleQueue::new()?;
    /// q.put(1u8)?;
    /// assert_eq!(q.get()?, 1);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn get(&self) -> Result<T> {
        self.0.get()
    }
}

impl<T> Serialize for SimpleQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for SimpleQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Queue::deserialize(d).map(SimpleQueue)
    }
}

/// A queue is ready for [`multiprocess::wait`](crate::wait) when it holds an item.
/// With other consumers, another may take that item first (as in Python): take it with
/// [`try_get`](Queue::try_get) or [`get_timeout`](Queue::get_timeout), not a `get`
/// that could then block.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use multiprocess::{Queue, Waitable};
/// let empty = Queue::<u8>::new()?;
/// let full = Queue::<u8>::new()?;
/// full.put(1)?;
/// let ready = multiprocess::wait(&[&empty as &dyn Waitable, &full], Some(Duration::from_secs(1)))?;
/// assert_eq!(ready, vec![1]);
/// # Ok::<(), multiprocess::Error>(())
/// ```
impl<T> crate::connection::Waitable for Queue<T> {
    fn wait_fd(&self) -> Result<BorrowedFd<'_>> {
        Ok(self.inner.bell.as_fd())
    }

    fn wait_begin(&self) -> bool {
        self.inner.wait_begin()
    }

    fn wait_end(&self) {
        self.inner.wait_end()
    }
}

#[cfg(all(test, loom))]
mod loom_model {
    //! Model check of the wake protocol of `wake_sleepers` and its sleepers: a put
    //! that sees no sleeper must never leave a getter asleep on an item it published.
    //! The futex becomes its two halves: the sleeper sleeps only if `seq` still holds
    //! what it read, and a bump after that wakes it. Run with
    //! `RUSTFLAGS="--cfg loom" cargo test --release --lib loom_model`.

    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicU32, AtomicU64, fence};
    use std::sync::atomic::Ordering::{Relaxed, Release, SeqCst};

    struct Words {
        tail: AtomicU64,
        waiters: AtomicU32,
        seq: AtomicU32,
    }

    #[test]
    fn loom_model_a_put_never_leaves_a_getter_asleep() {
        loom::model(|| {
            let w = Arc::new(Words {
                tail: AtomicU64::new(0),
                waiters: AtomicU32::new(0),
                seq: AtomicU32::new(0),
            });
            let p = w.clone();
            let producer = loom::thread::spawn(move || {
                // put: publish, then `wake_sleepers`.
                p.tail.store(8, Release);
                fence(SeqCst);
                if p.waiters.load(Relaxed) > 0 {
                    p.seq.fetch_add(1, SeqCst);
                    return true; // futex::wake
                }
                false
            });
            // get, finding the ring empty: count itself, fence, read `seq`, look again.
            w.waiters.fetch_add(1, SeqCst);
            fence(SeqCst);
            let s = w.seq.load(SeqCst);
            let sleeps = w.tail.load(SeqCst) == 0 && w.seq.load(SeqCst) == s;
            let woken = producer.join().unwrap();
            // Asleep with nobody to wake it: the lost wake-up this pattern rules out.
            assert!(
                !sleeps || woken,
                "a getter sleeps on an item that was published"
            );
        });
    }
}
