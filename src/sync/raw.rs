//! The lock algorithm, on one 64-bit word in shared memory.
//!
//! ```text
//! word = 0                               unlocked
//! word = start << 32 | WAITERS? | tid    held by thread `tid` (of any process), which
//!                                        started `start` clock ticks after boot (low 32
//!                                        bits); bit 31 set when someone may be asleep
//! ```
//!
//! The futex is the word's low half (`WAITERS | tid`): every change a sleeper must see
//! (release to 0, `WAITERS` set) changes it. The holder's identity goes into the word
//! with the same CAS that takes the lock, so there is no moment when the lock is held
//! under a stale or missing identity.
//!
//! * acquire: CAS `0 -> me` (the fast path: one atomic op); else spin briefly; else set
//!   `WAITERS` and `FUTEX_WAIT` (shared, not private) in slices of [`CHECK_EVERY`].
//! * release: swap to `0`; `FUTEX_WAKE` one waiter if `WAITERS` was set.
//! * owner death: after each slice a waiter reads `/proc/<tid>/stat` of the owner. The
//!   owner is alive only if a thread `tid` exists, is not a zombie, *and* started at the
//!   tick stored in the word. If not, the waiter takes the lock over with a CAS from
//!   the dead owner's word and reports `owner_died`. So a lock whose holder was killed
//!   costs its next acquirer at most one slice, never a deadlock.
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
//! would take the lock from it); hence one 64-bit word, still one CAS and one swap.
//!
//! Why not glibc's robust mutexes: the kernel's robust list belongs to glibc, and a
//! robust `pthread_mutex` costs several stores per lock/unlock; this keeps the
//! uncontended pair at one CAS and one swap. Why not PI futexes: the same cost in the
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

/// A 32-bit word for the semaphore algorithms: a futex word in shared memory, or, for
/// model checking with loom (`RUSTFLAGS="--cfg loom"`), a loom atomic whose "futex"
/// yields.
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
    /// Sleeps while the word holds `expected`, until woken or `deadline`.
    fn wait(&self, expected: u32, deadline: Option<Instant>) -> futex::Woken;
    fn wake_one(&self);
}

impl Word for AtomicU32 {
    forward_atomic!(AtomicU32, u32; fetch_add, fetch_sub);
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
    /// Sleeps while the word's low half holds `expected`, until woken or `deadline`.
    fn wait(&self, expected: u32, deadline: Option<Instant>) -> futex::Woken;
    fn wake_one(&self);
    /// Does the thread `owner` names (of any process) still run?
    fn owner_alive(owner: Owner) -> bool;
}

impl LockWord for AtomicU64 {
    forward_atomic!(AtomicU64, u64; swap);
    fn wait(&self, expected: u32, deadline: Option<Instant>) -> futex::Woken {
        futex::wait_low(self, expected, deadline)
    }
    fn wake_one(&self) {
        futex::wake_low(self, 1);
    }
    fn owner_alive(owner: Owner) -> bool {
        owner.is(sys::process::thread_life(owner.tid))
    }
}

/// Set in the low half when someone may be asleep. The rest of the low half is the
/// holder's id (ids are below `pid_max`, at most 2^22), the high half its start time.
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

/// Spins before sleeping (each a load, a pause, no syscall). None under loom, whose
/// model of a spin is the yielding wait itself.
const SPINS: u32 = if cfg!(loom) { 0 } else { 200 };

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
pub(crate) fn acquire<W: LockWord>(
    word: &W,
    me: Owner,
    deadline: Option<Instant>,
) -> Option<Acquired> {
    if let Some(a) = try_acquire(word, me) {
        return Some(a);
    }
    acquire_slow(word, me, deadline)
}

#[cold]
#[inline(never)]
fn acquire_slow<W: LockWord>(word: &W, me: Owner, deadline: Option<Instant>) -> Option<Acquired> {
    for i in 0..SPINS {
        // Past the first few rounds, let the holder run: with more processes than cores
        // it may be waiting for our CPU.
        if i % 16 == 15 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
        if word.load(Ordering::Relaxed) == 0
            && let Some(a) = try_acquire(word, me)
        {
            return Some(a);
        }
    }
    let me = me.bits();
    loop {
        let cur = word.load(Ordering::Relaxed);
        if cur == 0 {
            // Others may be asleep: keep WAITERS so our release wakes one.
            if word
                .compare_exchange(0, me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Some(Acquired { owner_died: false });
            }
            continue;
        }
        if cur & WAITERS == 0
            && word
                .compare_exchange(cur, cur | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            continue;
        }
        let held = cur | WAITERS;
        let slice = Instant::now() + CHECK_EVERY;
        let until = deadline.map_or(slice, |d| d.min(slice));
        if word.wait(held as u32, Some(until)) == futex::Woken::TimedOut {
            // The whole word, identity included: a new holder that got the dead
            // owner's id differs in its start time, so this CAS cannot take its lock.
            if word.load(Ordering::Relaxed) == held
                && Owner::of(held).is_some_and(|o| !W::owner_alive(o))
            {
                if word
                    .compare_exchange(held, me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Some(Acquired { owner_died: true });
                }
                continue;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
        }
    }
}

/// Releases; `false` if the lock was not held.
#[inline]
pub(crate) fn release<W: LockWord>(word: &W) -> bool {
    let prev = word.swap(0, Ordering::Release);
    if prev & WAITERS != 0 {
        wake_one(word);
    }
    prev != 0
}

#[cold]
#[inline(never)]
fn wake_one<W: LockWord>(word: &W) {
    word.wake_one();
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
        let t = Instant::now();
        let a = acquire(&word, me, Some(Instant::now() + Duration::from_secs(5)));
        assert_eq!(a, Some(Acquired { owner_died: true }));
        assert!(t.elapsed() < CHECK_EVERY * 8, "took {:?}", t.elapsed());
        assert_eq!(owner(&word), Some(me));
        assert!(release(&word));
        assert_eq!(word.load(Ordering::Relaxed), 0);
    }

    /// A live holder is never taken over: the acquirer times out.
    #[test]
    fn live_owner_is_waited_for() {
        let me = Owner::me();
        let word = AtomicU64::new(me.bits());
        let other = std::thread::spawn(move || {
            acquire(&word, Owner::me(), Some(Instant::now() + CHECK_EVERY * 3))
        });
        assert_eq!(other.join().unwrap(), None);
    }
}

#[cfg(all(test, loom))]
mod loom_model {
    //! Model checks of the lock algorithm: threads stand in for processes, the futex
    //! wait becomes a yield. Run with
    //! `RUSTFLAGS="--cfg loom" cargo test --release --lib loom_model`.

    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicU32 as LoomU32, AtomicU64 as LoomU64, AtomicUsize};

    impl Word for LoomU32 {
        forward_atomic!(LoomU32, u32; fetch_add, fetch_sub);
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
        fn wait(&self, _expected: u32, _deadline: Option<Instant>) -> futex::Woken {
            loom::thread::yield_now();
            futex::Woken::TimedOut
        }
        fn wake_one(&self) {}
        fn owner_alive(owner: Owner) -> bool {
            owner.start != DEAD
        }
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
            let inside = Arc::new(AtomicUsize::new(0));
            let entered = Arc::new(AtomicUsize::new(0));
            let handles: Vec<_> = (1..=threads)
                .map(|tid| {
                    let (word, inside, entered) = (word.clone(), inside.clone(), entered.clone());
                    loom::thread::spawn(move || {
                        let a = acquire(&*word, thread(tid), None).expect("no deadline");
                        assert!(!a.owner_died);
                        assert_eq!(
                            inside.fetch_add(1, Ordering::SeqCst),
                            0,
                            "two holders at once"
                        );
                        entered.fetch_add(1, Ordering::SeqCst);
                        inside.fetch_sub(1, Ordering::SeqCst);
                        assert!(release(&*word));
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
            let w2 = word.clone();
            let t = loom::thread::spawn(move || {
                if try_acquire(&*w2, thread(2)).is_some() {
                    assert_eq!(owner(&*w2), Some(thread(2)));
                    release(&*w2);
                }
            });
            let a = acquire(&*word, thread(1), None).expect("no deadline");
            assert!(!a.owner_died);
            assert_eq!(owner(&*word), Some(thread(1)));
            release(&*word);
            t.join().unwrap();
        });
    }

    /// The lock is held by a dead thread whose id (1) a live contender now has: both
    /// contenders get in, one at a time, and exactly one of them reports the death.
    #[test]
    fn takeover_from_dead_owner_whose_id_was_reused() {
        loom::model(|| {
            let dead = Owner {
                tid: 1,
                start: DEAD,
            };
            let word = Arc::new(LoomU64::new(dead.bits()));
            let inside = Arc::new(AtomicUsize::new(0));
            let died = Arc::new(AtomicUsize::new(0));
            let hs: Vec<_> = [thread(1), thread(2)]
                .into_iter()
                .map(|me| {
                    let (word, inside, died) = (word.clone(), inside.clone(), died.clone());
                    loom::thread::spawn(move || {
                        let a = acquire(&*word, me, None).expect("no deadline");
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
                        assert!(release(&*word));
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
