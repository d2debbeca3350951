//! The lock algorithm, on one 64-bit word in shared memory and two 32-bit words for
//! its sleepers.
//!
//! ```text
//! word = 0                               unlocked
//! word = start << 32 | tid               held by thread `tid` (of any process), which
//!                                        started `start` clock ticks after boot (low 32
//!                                        bits)
//! sleepers = PENDING? | n                n acquirers may be asleep; PENDING: a wake-up
//!                                        is on its way to one of them
//! seq                                    the futex the sleepers sleep on, bumped by
//!                                        each wake-up
//! ```
//!
//! The holder's identity goes into the word with the same CAS that takes the lock, so
//! there is no moment when the lock is held under a stale or missing identity.
//!
//! * acquire: CAS `0 -> me` (the fast path: one atomic op); else spin briefly; else
//!   count itself in `sleepers`, pass a heavy fence (`sys::fence::heavy`), and, in a
//!   loop: read `seq`, clear `PENDING`, fence, take the lock if the word reads 0, else
//!   `FUTEX_WAIT` (shared, not private) on `seq` in slices of [`CHECK_EVERY`].
//! * release: a plain store of `0`, a light fence (`sys::fence::light`: a compiler
//!   fence), and a load of `sleepers`; only if that is not 0, a full fence and, unless
//!   `PENDING` is set, set it, bump `seq` and `FUTEX_WAKE` one sleeper. So an
//!   uncontended pair is one CAS and one plain store, as cheap as a spin lock (2.9-4.5
//!   ns here, against 5.0-5.7 ns with the atomic swap it replaced; a CAS and a store on
//!   an ordinary word take 2.5-2.9 ns).
//! * why no wake-up is lost, uncontended: the releaser stores the word then loads
//!   `sleepers`; the sleeper stores `sleepers` then loads the word; and the fences pair
//!   up (`membarrier` puts a full fence into the releaser's program wherever it is).
//!   Either the releaser sees the sleeper, or the sleeper sees the lock free. Where
//!   `membarrier` is refused, the light fence is a full fence, and the sleeper, which
//!   cannot trust others' light fences, sleeps in slices of [`SHORT_SLICE`].
//! * contended: the count stays up while its sleepers sleep, so every release goes on
//!   to the full fence, which pairs with the fence after each sleeper's clearing of
//!   `PENDING`: either the release sees `PENDING` clear and wakes one, or the sleeper
//!   sees the word free. A sleeper reads `seq` before it looks at the word, so a
//!   wake-up sent after that cannot be slept through; and with `seq`, not the lock word,
//!   as the futex, a holder that releases and takes the lock again between a sleeper's
//!   look and its sleep cannot fool the futex (same id, same word). `PENDING` keeps a
//!   holder that releases and re-acquires in a loop from making a system call per
//!   release while its woken peer is still getting up (that halved a contended
//!   counter's throughput, 80 M to 40-48 M increments/s).
//! * owner death: after each slice a waiter reads `/proc/<tid>/stat` of the owner. The
//!   owner is alive only if a thread `tid` exists, is not a zombie, *and* started at the
//!   tick stored in the word. If not, the waiter takes the lock over with a CAS from
//!   the dead owner's word and reports `owner_died`. So a lock whose holder was killed
//!   costs its next acquirer at most one slice, never a deadlock. An acquirer that
//!   runs out of time before a slice ends (a try, a short timeout) checks too, at most
//!   once per [`CHECK_EVERY`] per thread (`late_check_due`), so that tries alone also
//!   take a dead holder's lock over.
//! * a sleeper killed while asleep leaves `sleepers` one too high: the next release
//!   sends one wake-up that finds nobody, sets `PENDING`, and nothing more happens
//!   until a live sleeper clears it. A releaser killed between setting `PENDING` and
//!   its wake-up costs the sleepers at most one slice.
//!
//! # Why the start time
//!
//! A thread id alone does not name a thread for long: once the holder is dead and
//! reaped, the kernel may give its id to any new thread or process, and a check by id
//! would then find that unrelated thread alive and wait for as long as it lives. The id
//! plus the thread's start time (field 22 of `/proc/<tid>/stat`, in `USER_HZ` = 100
//! ticks per second; `/proc` has no finer per-thread start time) names one thread: a
//! later thread with the same id started later.
//!
//! Unless it started in the *same* tick. For that, within 10 ms, the owner must start,
//! take the lock, die and be reaped, and a new thread must get its id. Linux hands out
//! ids cyclically (`idr_alloc_cyclic` from the last id given), so an id comes round
//! again only after every other free id of the namespace (up to `pid_max`, 32768 or
//! 4194304) has been given out, or out of turn when a privileged process steers the
//! allocator (`/proc/sys/kernel/ns_last_pid`, `clone3`'s `set_tid`: `CAP_SYS_ADMIN`,
//! used by checkpoint/restore). So same-tick reuse is impossible unless the namespace
//! is so full that fewer ids are free than threads can be created in one tick, or a
//! privileged process hands out that id on purpose. We accept both (the test that
//! forces reuse with `ns_last_pid` waits for a tick to pass). The word keeps the start
//! time's low 32 bits: the same id coming back exactly 2^32 ticks (497 days) later is
//! the other, harmless, blind spot. Start times are shifted by the reader's time
//! namespace; processes sharing a lock must share it (as they share the pid namespace
//! whose ids the word holds).
//!
//! Alternatives. A pidfd names a process exactly, but it is a file descriptor: it cannot
//! be stored in shared memory for other processes to use, and opening one by id in the
//! checker has the same reuse race. The identity of a pidfd (its pidfs inode number,
//! unique per boot) could be stored instead, but needs Linux 6.9 (`PIDFD_THREAD`,
//! pidfs), where `/proc` works everywhere. A second word beside the lock word, written
//! after the CAS, would leave a window where a live owner's stamp is stale (a waiter
//! would take the lock from it); hence one 64-bit word, still one CAS and one store.
//!
//! Why not glibc's robust mutexes: the kernel's robust list belongs to glibc, and a
//! robust `pthread_mutex` costs several stores per lock/unlock; this keeps the
//! uncontended pair at one CAS and one store. Why not PI futexes: the same cost in the
//! kernel on every contended operation, and they also need the robust list to see a
//! dead owner without waiters.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::sys::process::ThreadLife;
use crate::sys::{self, futex};

/// The body of a [`Word`] or [`LockWord`] impl that forwards to the atomic type's own
/// methods: `load` and `compare_exchange`, then the listed read-modify-writes.
macro_rules! forward_atomic {
    ($atomic:ident, $v:ty; $($rmw:ident),*) => {
        #[inline]
        fn load(&self, order: Ordering) -> $v {
            $atomic::load(self, order)
        }
        #[inline]
        fn compare_exchange(
            &self,
            current: $v,
            new: $v,
            success: Ordering,
            failure: Ordering,
        ) -> Result<$v, $v> {
            $atomic::compare_exchange(self, current, new, success, failure)
        }
        $(
            #[inline]
            fn $rmw(&self, value: $v, order: Ordering) -> $v {
                $atomic::$rmw(self, value, order)
            }
        )*
    };
}

/// A 32-bit word for the semaphore algorithms and a lock's sleeper words: a futex word
/// in shared memory, or, for model checking with loom (`RUSTFLAGS="--cfg loom"`), a
/// loom atomic whose "futex" yields or really sleeps.
pub(crate) trait Word {
    fn load(&self, order: Ordering) -> u32;
    fn compare_exchange(
        &self,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32>;
    fn fetch_add(&self, value: u32, order: Ordering) -> u32;
    fn fetch_sub(&self, value: u32, order: Ordering) -> u32;
    fn fetch_and(&self, value: u32, order: Ordering) -> u32;
    fn fetch_or(&self, value: u32, order: Ordering) -> u32;
    /// Sleeps while the word holds `expected`, until woken or `deadline`.
    fn wait(&self, expected: u32, deadline: Option<Instant>) -> futex::Woken;
    fn wake_one(&self);
}

impl Word for AtomicU32 {
    forward_atomic!(AtomicU32, u32; fetch_add, fetch_sub, fetch_and, fetch_or);
    fn wait(&self, expected: u32, deadline: Option<Instant>) -> futex::Woken {
        futex::wait(self, expected, deadline)
    }
    fn wake_one(&self) {
        futex::wake(self, 1);
    }
}

/// The lock word: a 64-bit word in shared memory whose low half is the futex, or, for
/// model checking with loom, a loom atomic whose "futex" yields.
pub(crate) trait LockWord {
    fn load(&self, order: Ordering) -> u64;
    fn compare_exchange(
        &self,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64>;
    fn swap(&self, value: u64, order: Ordering) -> u64;
    fn store(&self, value: u64, order: Ordering);
    /// Does the thread `owner` names (of any process) still run?
    fn owner_alive(owner: Owner) -> bool;
    /// The releaser's side of the release/sleep handshake (`sys::fence::light`).
    fn light_fence();
    /// The sleeper's side (`sys::fence::heavy`); `false` if only this CPU fenced.
    fn heavy_fence() -> bool;
    /// A full fence (`std::sync::atomic::fence(SeqCst)`, or loom's).
    fn full_fence();
}

impl LockWord for AtomicU64 {
    forward_atomic!(AtomicU64, u64; swap);
    #[inline]
    fn store(&self, value: u64, order: Ordering) {
        AtomicU64::store(self, value, order);
    }
    fn owner_alive(owner: Owner) -> bool {
        owner.is(sys::process::thread_life(owner.tid))
    }
    #[inline]
    fn light_fence() {
        sys::fence::light();
    }
    fn heavy_fence() -> bool {
        sys::fence::heavy()
    }
    fn full_fence() {
        std::sync::atomic::fence(Ordering::SeqCst);
    }
}

/// A lock in shared memory: its word, the count of acquirers that may be asleep (with
/// [`PENDING`]), and the futex word they sleep on. Two 32-bit words of the same segment,
/// best on the lock word's cache line.
#[derive(Debug)]
pub(crate) struct RawLock<'a, W = AtomicU64, C = AtomicU32> {
    pub(crate) word: &'a W,
    pub(crate) sleepers: &'a C,
    pub(crate) seq: &'a C,
}

/// In `sleepers`: a wake-up was sent and no sleeper has looked at the lock since. A
/// holder that releases again meanwhile sends none (a system call per release while a
/// woken sleeper gets going would halve a contended lock's throughput).
const PENDING: u32 = 1 << 31;

impl<W, C> Clone for RawLock<'_, W, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<W, C> Copy for RawLock<'_, W, C> {}

/// Bit 31 of the low half is never part of an id (ids are below `pid_max`, at most
/// 2^22); it is masked out of the id a word names.
const WAITERS: u64 = 1 << 31;

/// Who holds a lock: a thread id and the low 32 bits of the thread's start time, which
/// together name one thread even after its id is reused (see the module's notes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    /// The thread id (in the pid namespace of the processes sharing the lock).
    pub(crate) tid: u32,
    /// Its start time, in clock ticks since boot, truncated to 32 bits.
    pub(crate) start: u32,
}

impl Owner {
    /// The calling thread (cached per thread: as cheap as `gettid`).
    #[inline]
    pub(crate) fn me() -> Owner {
        let (tid, start) = sys::process::thread_identity();
        Owner { tid, start }
    }

    #[inline]
    const fn bits(self) -> u64 {
        ((self.start as u64) << 32) | (self.tid as u64 & !WAITERS)
    }

    /// The holder a word names, if held.
    #[inline]
    fn of(word: u64) -> Option<Owner> {
        let tid = word as u32 & !(WAITERS as u32);
        (tid != 0).then_some(Owner {
            tid,
            start: (word >> 32) as u32,
        })
    }

    /// Is this owner the thread that `/proc` describes as `now` (read for our id)? A
    /// thread that is gone, or one that started at another time (a later thread that
    /// got the id), is not. When `/proc` cannot be read we cannot tell, and say yes:
    /// waiting on is safe, taking a live holder's lock is not.
    pub(crate) fn is(self, now: ThreadLife) -> bool {
        match now {
            ThreadLife::Running { start } => start as u32 == self.start,
            ThreadLife::Gone => false,
            ThreadLife::Unknown => true,
        }
    }
}

/// How often a sleeping acquirer checks that the owner is still alive.
pub(crate) const CHECK_EVERY: Duration = Duration::from_millis(25);

/// How long a sleeper sleeps at most when `membarrier` was refused to it (see the
/// module's notes): a release that trusted a light fence may have missed it.
pub(crate) const SHORT_SLICE: Duration = Duration::from_millis(1);

/// Looks at the word before sleeping (each after [`PAUSES`] pauses, or a yield; no other
/// system call). None under loom, whose model of a spin is the yielding wait itself.
const SPINS: u32 = if cfg!(loom) { 0 } else { 64 };

/// Pauses between two looks at the word while spinning.
const PAUSES: u32 = 4;

/// A successful acquisition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Acquired {
    /// The previous holder died while holding the lock.
    pub(crate) owner_died: bool,
}

/// Tries once, without waiting.
#[inline]
pub(crate) fn try_acquire<W: LockWord>(word: &W, me: Owner) -> Option<Acquired> {
    word.compare_exchange(0, me.bits(), Ordering::Acquire, Ordering::Relaxed)
        .ok()
        .map(|_| Acquired { owner_died: false })
}

/// Acquires, waiting until `deadline` (`None`: forever). `None` on timeout.
#[inline]
pub(crate) fn acquire<W: LockWord, C: Word>(
    lock: RawLock<'_, W, C>,
    me: Owner,
    deadline: Option<Instant>,
) -> Option<Acquired> {
    if let Some(a) = try_acquire(lock.word, me) {
        return Some(a);
    }
    acquire_slow(lock.word, lock.sleepers, lock.seq, me, deadline)
}

/// The waiting part of [`acquire`]. The lock comes as its three words: in registers,
/// where a `RawLock` argument would be written to the stack before every fast-path
/// compare-and-swap (which then waits for those stores to drain).
#[cold]
#[inline(never)]
fn acquire_slow<'a, W: LockWord, C: Word>(
    word: &'a W,
    sleepers: &'a C,
    seq: &'a C,
    me: Owner,
    deadline: Option<Instant>,
) -> Option<Acquired> {
    let lock = RawLock {
        word,
        sleepers,
        seq,
    };
    for i in 0..SPINS {
        // Past the first few rounds, let the holder run: with more processes than cores
        // it may be waiting for our CPU.
        if i % 8 == 7 {
            std::thread::yield_now();
        } else {
            // A few pauses between looks: a spinner that looks at every pause catches
            // the word at 0 in the instant between a holder's release (a plain store)
            // and its next acquire, and takes the lock, its line and the data's lines
            // to its CPU. Two processes incrementing one `Value`: 47-53 M/s with one
            // pause per look, 72-80 M/s with four (70-108 M/s when a release was an
            // atomic swap).
            for _ in 0..PAUSES {
                std::hint::spin_loop();
            }
        }
        if word.load(Ordering::Relaxed) == 0
            && let Some(a) = try_acquire(word, me)
        {
            return Some(a);
        }
    }
    // Count ourselves, then the heavy fence: from here on every release sees us, or
    // we see the lock free (see the module's notes).
    lock.sleepers.fetch_add(1, Ordering::SeqCst);
    let slice_len = if W::heavy_fence() {
        CHECK_EVERY
    } else {
        SHORT_SLICE
    };
    let got = sleep_until_acquired(lock, me, deadline, slice_len);
    lock.sleepers.fetch_sub(1, Ordering::Relaxed);
    got
}

/// The sleeping part of [`acquire_slow`], between counting in and out.
fn sleep_until_acquired<W: LockWord, C: Word>(
    lock: RawLock<'_, W, C>,
    me: Owner,
    deadline: Option<Instant>,
    slice_len: Duration,
) -> Option<Acquired> {
    let word = lock.word;
    let me = me.bits();
    let mut next_check = Instant::now() + CHECK_EVERY;
    let mut timed_out = false;
    loop {
        // The sequence first: a wake-up sent after this read changes it, so the wait
        // below does not sleep through it. Then take back `PENDING` (we are looking),
        // and fence against a contended release (`release_contended`): either it sees
        // `PENDING` clear and wakes a sleeper, or we see its store of 0 below.
        let seq = lock.seq.load(Ordering::Acquire);
        lock.sleepers.fetch_and(!PENDING, Ordering::SeqCst);
        W::full_fence();
        let held = word.load(Ordering::Relaxed);
        if held == 0 {
            if word
                .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Some(Acquired { owner_died: false });
            }
            continue;
        }
        let now = Instant::now();
        if timed_out {
            let late = deadline.is_some_and(|d| now >= d);
            // A whole slice under one holder (short slices: every `CHECK_EVERY`); or
            // out of time (a try, a short timeout) and due a check (`late_check_due`).
            let check = if late {
                late_check_due(now)
            } else {
                slice_len >= CHECK_EVERY || now >= next_check
            };
            if check {
                next_check = now + CHECK_EVERY;
                // The whole word, identity included: a new holder that got the dead
                // owner's id differs in its start time, so this CAS cannot take its lock.
                if Owner::of(held).is_some_and(|o| !W::owner_alive(o)) {
                    if word
                        .compare_exchange(held, me, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        return Some(Acquired { owner_died: true });
                    }
                    timed_out = false;
                    continue;
                }
            }
            if late {
                return None;
            }
        }
        let until = now + slice_len;
        let until = deadline.map_or(until, |d| d.min(until));
        timed_out = lock.seq.wait(seq, Some(until)) == futex::Woken::TimedOut;
    }
}

thread_local! {
    /// When this thread may next look for a dead holder at the end of a try or a short
    /// timeout (see [`late_check_due`]).
    static NEXT_LATE_CHECK: std::cell::Cell<Option<Instant>> =
        const { std::cell::Cell::new(None) };
}

/// Whether an acquirer out of time (a try, or a timeout shorter than a slice, which
/// ends before any check of the holder) looks for a dead holder now: at most once per
/// [`CHECK_EVERY`] per thread. Without it, tries alone never took over a dead holder's
/// lock (a consumer killed while blocked in a queue's `get` left `try_get` reporting
/// `Empty` for ever); with no limit, each failed try on a live holder's lock would read
/// `/proc`.
fn late_check_due(now: Instant) -> bool {
    NEXT_LATE_CHECK.with(|next| {
        if next.get().is_some_and(|n| now < n) {
            return false;
        }
        next.set(Some(now + CHECK_EVERY));
        true
    })
}

/// After a try (`try_acquire`) found the lock held: takes it over if its holder is dead
/// and this thread is due such a check ([`late_check_due`]). The cold path of a failed
/// try.
#[cold]
#[inline(never)]
pub(crate) fn try_take_over<W: LockWord>(word: &W, me: Owner) -> Option<Acquired> {
    let held = word.load(Ordering::Relaxed);
    let dead =
        Owner::of(held).is_some_and(|o| late_check_due(Instant::now()) && !W::owner_alive(o));
    (dead
        && word
            .compare_exchange(held, me.bits(), Ordering::Acquire, Ordering::Relaxed)
            .is_ok())
    .then_some(Acquired { owner_died: true })
}

/// Releases a lock the caller holds: a plain store, a light fence, and, only if someone
/// may be asleep, [`release_contended`].
#[inline]
pub(crate) fn release<W: LockWord, C: Word>(lock: RawLock<'_, W, C>) {
    lock.word.store(0, Ordering::Release);
    W::light_fence();
    if lock.sleepers.load(Ordering::Relaxed) != 0 {
        release_contended(lock);
    }
}

/// Releases a lock that may not be held (an explicit `release()`, which may come from
/// another process than the holder's); `false` if it was not held.
pub(crate) fn release_held<W: LockWord, C: Word>(lock: RawLock<'_, W, C>) -> bool {
    let prev = lock.word.swap(0, Ordering::Release);
    W::light_fence();
    if prev != 0 && lock.sleepers.load(Ordering::Relaxed) != 0 {
        release_contended(lock);
    }
    prev != 0
}

/// The rest of a release that found sleepers counted: with a full fence now (this is
/// the slow path), wake one unless a wake-up is already on its way (`PENDING`).
#[cold]
#[inline(never)]
fn release_contended<W: LockWord, C: Word>(lock: RawLock<'_, W, C>) {
    W::full_fence();
    let s = lock.sleepers.load(Ordering::Relaxed);
    if s & !PENDING == 0 {
        // Nobody counted, but a `PENDING` left by a wake-up whose sleeper got the lock
        // without needing it: clear it, or every release would come here. (Clearing
        // `PENDING` is always safe: it only ever holds wake-ups back.)
        if s != 0 {
            lock.sleepers.fetch_and(!PENDING, Ordering::Relaxed);
        }
    } else if s & PENDING == 0 {
        lock.sleepers.fetch_or(PENDING, Ordering::Relaxed);
        lock.seq.fetch_add(1, Ordering::Release);
        lock.seq.wake_one();
    }
}

/// The current holder, if held.
pub(crate) fn owner<W: LockWord>(word: &W) -> Option<Owner> {
    Owner::of(word.load(Ordering::Relaxed))
}

/// Sleeps on `word` while it equals `expected`, registered in `waiters` (so that a
/// waker knows to make the system call); `false` once `deadline` passed.
pub(crate) fn sleep_while<W: Word>(
    word: &W,
    waiters: &W,
    expected: u32,
    deadline: Option<Instant>,
) -> bool {
    waiters.fetch_add(1, Ordering::SeqCst);
    let mut in_time = true;
    if word.load(Ordering::SeqCst) == expected {
        in_time = word.wait(expected, deadline) != futex::Woken::TimedOut;
    }
    waiters.fetch_sub(1, Ordering::SeqCst);
    in_time
}

/// The semaphore's acquire: take one from `count`, sleeping while it is 0; `false` if
/// `deadline` passed first.
pub(crate) fn sem_take<W: Word>(count: &W, waiters: &W, deadline: Option<Instant>) -> bool {
    loop {
        let c = count.load(Ordering::Relaxed);
        if c > 0 {
            if count
                .compare_exchange(c, c - 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return true;
            }
            continue;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        if !sleep_while(count, waiters, 0, deadline) && count.load(Ordering::Relaxed) == 0 {
            return false;
        }
    }
}

/// Why a semaphore release was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReleaseRefused {
    /// A bounded semaphore is at its maximum.
    AtMax,
    /// The count would overflow.
    Overflow,
}

/// The semaphore's release: add one to `count` (refusing past `max`, 0 = unbounded)
/// and wake one sleeper if `waiters` says there may be one.
pub(crate) fn sem_release<W: Word>(count: &W, waiters: &W, max: u32) -> Result<(), ReleaseRefused> {
    let mut c = count.load(Ordering::Relaxed);
    loop {
        if max != 0 && c >= max {
            return Err(ReleaseRefused::AtMax);
        }
        if c == u32::MAX {
            return Err(ReleaseRefused::Overflow);
        }
        match count.compare_exchange(c, c + 1, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => break,
            Err(now) => c = now,
        }
    }
    if waiters.load(Ordering::SeqCst) > 0 {
        count.wake_one();
    }
    Ok(())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn owner_bits_round_trip() {
        let o = Owner {
            tid: 4_194_303,
            start: u32::MAX,
        };
        assert_eq!(Owner::of(o.bits()), Some(o));
        assert_eq!(
            Owner::of(o.bits() | WAITERS),
            Some(o),
            "WAITERS is not identity"
        );
        assert_eq!(Owner::of(0), None);
        // The start time alone does not make a word held: only a tid does.
        assert_eq!(Owner::of(5 << 32), None);
    }

    #[test]
    fn owner_is_the_thread_with_its_start_time() {
        let o = Owner { tid: 7, start: 100 };
        assert!(o.is(ThreadLife::Running { start: 100 }));
        // The same id, started later: a new thread that got the dead owner's id.
        assert!(!o.is(ThreadLife::Running { start: 101 }));
        // Only the low 32 bits are kept.
        assert!(o.is(ThreadLife::Running {
            start: (1 << 32) + 100
        }));
        assert!(!o.is(ThreadLife::Gone));
        assert!(o.is(ThreadLife::Unknown), "cannot tell: never steal");
    }

    #[test]
    fn me_is_cached_and_alive() {
        let me = Owner::me();
        assert_eq!(me, Owner::me());
        assert!(AtomicU64::owner_alive(me));
        assert!(!AtomicU64::owner_alive(Owner {
            start: me.start.wrapping_sub(1),
            ..me
        }));
    }

    /// A lock held under our own id but another start time (a dead thread whose id we
    /// got) is taken over after one slice, and reported.
    #[test]
    fn takes_over_from_a_dead_owner_with_our_id() {
        let me = Owner::me();
        let ghost = Owner {
            start: me.start.wrapping_sub(3),
            ..me
        };
        let word = AtomicU64::new(ghost.bits());
        let (sleepers, seq) = (AtomicU32::new(0), AtomicU32::new(0));
        let lock = RawLock {
            word: &word,
            sleepers: &sleepers,
            seq: &seq,
        };
        let t = Instant::now();
        let a = acquire(lock, me, Some(Instant::now() + Duration::from_secs(5)));
        assert_eq!(a, Some(Acquired { owner_died: true }));
        assert!(t.elapsed() < CHECK_EVERY * 8, "took {:?}", t.elapsed());
        assert_eq!(owner(&word), Some(me));
        assert_eq!(sleepers.load(Ordering::Relaxed), 0, "counted out");
        assert!(release_held(lock));
        assert!(!release_held(lock), "not held any more");
        assert_eq!(word.load(Ordering::Relaxed), 0);
    }

    /// A live holder is never taken over: the acquirer times out.
    #[test]
    fn live_owner_is_waited_for() {
        let me = Owner::me();
        let word = AtomicU64::new(me.bits());
        let (sleepers, seq) = (AtomicU32::new(0), AtomicU32::new(0));
        let lock = RawLock {
            word: &word,
            sleepers: &sleepers,
            seq: &seq,
        };
        let other = std::thread::scope(|s| {
            s.spawn(|| acquire(lock, Owner::me(), Some(Instant::now() + CHECK_EVERY * 3)))
                .join()
                .unwrap()
        });
        assert_eq!(other, None);
        assert_eq!(
            sleepers.load(Ordering::Relaxed),
            0,
            "counted out on timeout"
        );
    }

    /// A sleeper is woken by the release, not by its slice running out: the hand-over
    /// takes far less than a slice, every time.
    #[test]
    fn a_release_wakes_a_sleeper() {
        let word = AtomicU64::new(0);
        let (sleepers, seq) = (AtomicU32::new(0), AtomicU32::new(0));
        let lock = RawLock {
            word: &word,
            sleepers: &sleepers,
            seq: &seq,
        };
        let mut took = Vec::new();
        for _ in 0..20 {
            acquire(lock, Owner::me(), None).unwrap();
            std::thread::scope(|s| {
                let waiter = s.spawn(|| {
                    acquire(lock, Owner::me(), None).unwrap();
                    let t = Instant::now();
                    release(lock);
                    t
                });
                // Until the waiter is asleep (counted), then hand over.
                let until = Instant::now() + Duration::from_secs(10);
                while sleepers.load(Ordering::SeqCst) & !PENDING == 0 {
                    assert!(Instant::now() < until, "the waiter never slept");
                    std::thread::sleep(Duration::from_micros(200));
                }
                let t = Instant::now();
                release(lock);
                took.push(waiter.join().unwrap().duration_since(t));
            });
            assert_eq!(word.load(Ordering::Relaxed), 0);
        }
        // A release that does not wake its sleeper leaves it to its slice's end (25
        // ms); the median says whether releases wake, whatever the scheduler does to
        // a few rounds.
        took.sort();
        assert!(took[10] < CHECK_EVERY / 2, "hand-overs took {took:?}");
    }
}

#[cfg(all(test, loom))]
mod loom_model {
    //! Model checks of the lock algorithm: threads stand in for processes, the futex
    //! wait becomes a yield. Run with
    //! `RUSTFLAGS="--cfg loom" cargo test --release --lib loom_model`.

    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicU32 as LoomU32, AtomicU64 as LoomU64, AtomicUsize, fence};
    use loom::sync::{Condvar, Mutex};

    impl Word for LoomU32 {
        forward_atomic!(LoomU32, u32; fetch_add, fetch_sub, fetch_and, fetch_or);
        fn wait(&self, _expected: u32, _deadline: Option<Instant>) -> futex::Woken {
            loom::thread::yield_now();
            futex::Woken::Maybe
        }
        fn wake_one(&self) {}
    }

    /// The start time that marks a dead owner in these models.
    const DEAD: u32 = u32::MAX;

    impl LockWord for LoomU64 {
        forward_atomic!(LoomU64, u64; swap);
        fn store(&self, value: u64, order: Ordering) {
            LoomU64::store(self, value, order);
        }
        fn owner_alive(owner: Owner) -> bool {
            owner.start != DEAD
        }
        // `membarrier` gives the releaser's program a full fence wherever it runs: to
        // loom, both sides fence.
        fn light_fence() {
            fence(Ordering::SeqCst);
        }
        fn heavy_fence() -> bool {
            fence(Ordering::SeqCst);
            true
        }
        fn full_fence() {
            fence(Ordering::SeqCst);
        }
    }

    /// A 32-bit word with a futex of one of two kinds. One that really sleeps: `wait`
    /// checks the value and blocks under the bucket's mutex, as the kernel does, until
    /// a `wake_one`; a wake-up that is lost leaves a thread blocked for ever, which
    /// loom reports as a deadlock. Or one that yields and reports a timeout, so that a
    /// waiter checks the owner as after a slice (and waiting is a spin to loom).
    struct Futex {
        value: LoomU32,
        sleeps: bool,
        bucket: Mutex<()>,
        queue: Condvar,
    }

    impl Futex {
        fn new(sleeps: bool) -> Futex {
            Futex {
                value: LoomU32::new(0),
                sleeps,
                bucket: Mutex::new(()),
                queue: Condvar::new(),
            }
        }
    }

    impl Word for Futex {
        fn load(&self, order: Ordering) -> u32 {
            self.value.load(order)
        }
        fn compare_exchange(
            &self,
            current: u32,
            new: u32,
            success: Ordering,
            failure: Ordering,
        ) -> Result<u32, u32> {
            self.value.compare_exchange(current, new, success, failure)
        }
        fn fetch_add(&self, value: u32, order: Ordering) -> u32 {
            self.value.fetch_add(value, order)
        }
        fn fetch_sub(&self, value: u32, order: Ordering) -> u32 {
            self.value.fetch_sub(value, order)
        }
        fn fetch_and(&self, value: u32, order: Ordering) -> u32 {
            self.value.fetch_and(value, order)
        }
        fn fetch_or(&self, value: u32, order: Ordering) -> u32 {
            self.value.fetch_or(value, order)
        }
        fn wait(&self, expected: u32, _deadline: Option<Instant>) -> futex::Woken {
            if !self.sleeps {
                loom::thread::yield_now();
                return futex::Woken::TimedOut;
            }
            let guard = self.bucket.lock().unwrap();
            if self.value.load(Ordering::SeqCst) != expected {
                return futex::Woken::Maybe;
            }
            drop(self.queue.wait(guard).unwrap());
            futex::Woken::Maybe
        }
        fn wake_one(&self) {
            if self.sleeps {
                let _guard = self.bucket.lock().unwrap();
                self.queue.notify_one();
            }
        }
    }

    /// A lock's two 32-bit words.
    struct Words {
        sleepers: Futex,
        seq: Futex,
    }

    impl Words {
        /// With a futex that sleeps (`true`) or yields.
        fn new(sleeps: bool) -> Arc<Self> {
            Arc::new(Words {
                sleepers: Futex::new(sleeps),
                seq: Futex::new(sleeps),
            })
        }
    }

    fn raw<'a, W>(word: &'a W, words: &'a Words) -> RawLock<'a, W, Futex> {
        RawLock {
            word,
            sleepers: &words.sleepers,
            seq: &words.seq,
        }
    }

    /// Two contenders on a futex that sleeps for real, the first taking the lock twice:
    /// exclusion, and no release ever leaves the other asleep (the handshake of
    /// `sleepers` and the fences; `PENDING` and its clearing, which the second round
    /// needs: a holder that takes the lock again before its woken peer is up).
    #[test]
    fn no_lost_wake_up() {
        // Unbounded, three rounds do not finish in ten minutes. Five preemptions take 2
        // s (seven, checked once, 27 s); three already find the lost wake-up of a
        // sleeper that never clears `PENDING`.
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(5);
        model.check(|| {
            let word = Arc::new(LoomU64::new(0));
            let words = Words::new(true);
            let inside = Arc::new(AtomicUsize::new(0));
            let hs: Vec<_> = (1..=2)
                .map(|tid| {
                    let (word, words, inside) = (word.clone(), words.clone(), inside.clone());
                    loom::thread::spawn(move || {
                        let lock = raw(&*word, &*words);
                        for _ in 0..(3 - tid) {
                            acquire(lock, thread(tid), None).expect("no deadline");
                            assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                            inside.fetch_sub(1, Ordering::SeqCst);
                            release(lock);
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(word.load(Ordering::SeqCst), 0);
            assert_eq!(words.sleepers.load(Ordering::SeqCst) & !PENDING, 0);
        });
    }

    fn thread(tid: u32) -> Owner {
        Owner { tid, start: tid }
    }

    /// Two or three contenders: never two inside at once, and everyone gets in.
    /// (Three contenders explode: with the futex modelled as a yield, waiting is a spin
    /// to loom. Two contenders are checked exhaustively.)
    fn exclusion(threads: u32) {
        loom::model(move || {
            let word = Arc::new(LoomU64::new(0));
            let words = Words::new(false);
            let inside = Arc::new(AtomicUsize::new(0));
            let entered = Arc::new(AtomicUsize::new(0));
            let handles: Vec<_> = (1..=threads)
                .map(|tid| {
                    let (word, words) = (word.clone(), words.clone());
                    let (inside, entered) = (inside.clone(), entered.clone());
                    loom::thread::spawn(move || {
                        let lock = raw(&*word, &*words);
                        let a = acquire(lock, thread(tid), None).expect("no deadline");
                        assert!(!a.owner_died);
                        assert_eq!(
                            inside.fetch_add(1, Ordering::SeqCst),
                            0,
                            "two holders at once"
                        );
                        entered.fetch_add(1, Ordering::SeqCst);
                        inside.fetch_sub(1, Ordering::SeqCst);
                        release(lock);
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            assert_eq!(entered.load(Ordering::SeqCst), threads as usize);
            assert_eq!(owner(&*word), None, "released at the end");
        });
    }

    #[test]
    fn two_contenders() {
        exclusion(2);
    }

    /// A semaphore of one permit between two threads: exclusion, and nobody is left
    /// waiting (the release wakes or is seen by the waiter).
    #[test]
    fn semaphore_one_permit() {
        loom::model(|| {
            let count = Arc::new(LoomU32::new(1));
            let waiters = Arc::new(LoomU32::new(0));
            let inside = Arc::new(AtomicUsize::new(0));
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let (count, waiters, inside) = (count.clone(), waiters.clone(), inside.clone());
                    loom::thread::spawn(move || {
                        assert!(sem_take(&*count, &*waiters, None));
                        assert_eq!(
                            inside.fetch_add(1, Ordering::SeqCst),
                            0,
                            "two holders of one permit"
                        );
                        inside.fetch_sub(1, Ordering::SeqCst);
                        sem_release(&*count, &*waiters, 0).unwrap();
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(count.load(Ordering::SeqCst), 1);
        });
    }

    /// A waiter on an empty semaphore gets the permit released by another thread; a
    /// bounded semaphore refuses a release past its maximum.
    #[test]
    fn semaphore_handoff_and_bound() {
        loom::model(|| {
            let count = Arc::new(LoomU32::new(0));
            let waiters = Arc::new(LoomU32::new(0));
            let (c2, w2) = (count.clone(), waiters.clone());
            let t = loom::thread::spawn(move || sem_release(&*c2, &*w2, 1).unwrap());
            assert!(sem_take(&*count, &*waiters, None));
            t.join().unwrap();
            assert_eq!(count.load(Ordering::SeqCst), 0);
            sem_release(&*count, &*waiters, 1).unwrap();
            assert_eq!(
                sem_release(&*count, &*waiters, 1),
                Err(ReleaseRefused::AtMax)
            );
        });
    }

    #[test]
    fn try_acquire_never_steals() {
        loom::model(|| {
            let word = Arc::new(LoomU64::new(0));
            let words = Words::new(false);
            let (w2, s2) = (word.clone(), words.clone());
            let t = loom::thread::spawn(move || {
                if try_acquire(&*w2, thread(2)).is_some() {
                    assert_eq!(owner(&*w2), Some(thread(2)));
                    release(raw(&*w2, &*s2));
                }
            });
            let lock = raw(&*word, &*words);
            let a = acquire(lock, thread(1), None).expect("no deadline");
            assert!(!a.owner_died);
            assert_eq!(owner(&*word), Some(thread(1)));
            release(lock);
            t.join().unwrap();
        });
    }

    /// The lock is held by a dead thread whose id (1) a live contender now has: both
    /// contenders get in, one at a time, and exactly one of them reports the death.
    #[test]
    fn takeover_from_dead_owner_whose_id_was_reused() {
        // Both contenders loop through whole sleep rounds while the dead owner's word
        // stands: unbounded, loom's search does not end in minutes. Five preemptions
        // cover each contender being interrupted at any point of a round.
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(7);
        model.check(|| {
            let dead = Owner {
                tid: 1,
                start: DEAD,
            };
            let word = Arc::new(LoomU64::new(dead.bits()));
            let words = Words::new(false);
            let inside = Arc::new(AtomicUsize::new(0));
            let died = Arc::new(AtomicUsize::new(0));
            let hs: Vec<_> = [thread(1), thread(2)]
                .into_iter()
                .map(|me| {
                    let (word, words) = (word.clone(), words.clone());
                    let (inside, died) = (inside.clone(), died.clone());
                    loom::thread::spawn(move || {
                        let lock = raw(&*word, &*words);
                        let a = acquire(lock, me, None).expect("no deadline");
                        if a.owner_died {
                            died.fetch_add(1, Ordering::SeqCst);
                        }
                        assert_eq!(owner(&*word), Some(me));
                        assert_eq!(
                            inside.fetch_add(1, Ordering::SeqCst),
                            0,
                            "two holders at once"
                        );
                        inside.fetch_sub(1, Ordering::SeqCst);
                        assert!(release_held(lock));
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(
                died.load(Ordering::SeqCst),
                1,
                "one takeover, reported once"
            );
            assert_eq!(owner(&*word), None);
        });
    }
}
