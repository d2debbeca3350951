//! The lock algorithm, on one 32-bit word in shared memory.
//!
//! ```text
//! word = 0                      unlocked
//! word = tid | WAITERS?         held by thread `tid` (of any process); bit 31 set when
//!                               someone may be sleeping on the futex
//! ```
//!
//! * acquire: CAS `0 -> tid` (the fast path: one atomic op); else spin briefly; else set
//!   `WAITERS` and `FUTEX_WAIT` (shared, not private) in slices of [`CHECK_EVERY`].
//! * release: swap to `0`; `FUTEX_WAKE` one waiter if `WAITERS` was set.
//! * owner death: after each slice a waiter checks whether the owner thread still
//!   runs (`/proc/<tid>/stat`, a zombie counts as dead). If not, it takes the lock over
//!   with a CAS from the dead owner's word and reports `owner_died`. So a lock whose
//!   holder was killed costs its next acquirer at most one slice, never a deadlock.
//!
//! Why not glibc's robust mutexes: the kernel's robust list belongs to glibc, and a
//! robust `pthread_mutex` costs several stores per lock/unlock; this keeps the
//! uncontended pair at one CAS and one swap. Why not PI futexes: the same cost in the
//! kernel on every contended operation, and they also need the robust list to see a
//! dead owner without waiters.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::sys::{self, futex};

/// The word the algorithm runs on: a futex word in shared memory, or, for model
/// checking with loom (`RUSTFLAGS="--cfg loom"`), a loom atomic whose "futex" yields.
pub(crate) trait Word {
    fn load(&self, order: Ordering) -> u32;
    fn compare_exchange(
        &self,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32>;
    fn swap(&self, value: u32, order: Ordering) -> u32;
    fn fetch_add(&self, value: u32, order: Ordering) -> u32;
    fn fetch_sub(&self, value: u32, order: Ordering) -> u32;
    /// Sleeps while the word holds `expected`, until woken or `deadline`.
    fn wait(&self, expected: u32, deadline: Option<Instant>) -> futex::Woken;
    fn wake_one(&self);
    /// Is the thread `tid` (of any process) still alive?
    fn owner_alive(tid: u32) -> bool;
}

impl Word for AtomicU32 {
    #[inline]
    fn load(&self, order: Ordering) -> u32 {
        AtomicU32::load(self, order)
    }
    #[inline]
    fn compare_exchange(
        &self,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32> {
        AtomicU32::compare_exchange(self, current, new, success, failure)
    }
    #[inline]
    fn swap(&self, value: u32, order: Ordering) -> u32 {
        AtomicU32::swap(self, value, order)
    }
    #[inline]
    fn fetch_add(&self, value: u32, order: Ordering) -> u32 {
        AtomicU32::fetch_add(self, value, order)
    }
    #[inline]
    fn fetch_sub(&self, value: u32, order: Ordering) -> u32 {
        AtomicU32::fetch_sub(self, value, order)
    }
    fn wait(&self, expected: u32, deadline: Option<Instant>) -> futex::Woken {
        futex::wait(self, expected, deadline)
    }
    fn wake_one(&self) {
        futex::wake(self, 1);
    }
    fn owner_alive(tid: u32) -> bool {
        sys::process::thread_alive(tid)
    }
}

const WAITERS: u32 = 1 << 31;
const TID_MASK: u32 = !WAITERS;

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
pub(crate) fn try_acquire<W: Word>(word: &W, me: u32) -> Option<Acquired> {
    word.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        .ok()
        .map(|_| Acquired { owner_died: false })
}

/// Acquires, waiting until `deadline` (`None`: forever). `None` on timeout.
#[inline]
pub(crate) fn acquire<W: Word>(word: &W, me: u32, deadline: Option<Instant>) -> Option<Acquired> {
    if let Some(a) = try_acquire(word, me) {
        return Some(a);
    }
    acquire_slow(word, me, deadline)
}

#[cold]
#[inline(never)]
fn acquire_slow<W: Word>(word: &W, me: u32, deadline: Option<Instant>) -> Option<Acquired> {
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
        let slice = Instant::now() + CHECK_EVERY;
        let until = deadline.map_or(slice, |d| d.min(slice));
        if word.wait(cur | WAITERS, Some(until)) == futex::Woken::TimedOut {
            let owner = cur & TID_MASK;
            if word.load(Ordering::Relaxed) == cur | WAITERS && !W::owner_alive(owner) {
                if word
                    .compare_exchange(
                        cur | WAITERS,
                        me | WAITERS,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
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
pub(crate) fn release<W: Word>(word: &W) -> bool {
    let prev = word.swap(0, Ordering::Release);
    if prev & WAITERS != 0 {
        wake_one(word);
    }
    prev != 0
}

#[cold]
#[inline(never)]
fn wake_one<W: Word>(word: &W) {
    word.wake_one();
}

/// The current owner's thread id, if held.
pub(crate) fn owner<W: Word>(word: &W) -> Option<u32> {
    match word.load(Ordering::Relaxed) & TID_MASK {
        0 => None,
        t => Some(t),
    }
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

#[cfg(all(test, loom))]
mod loom_model {
    //! Model checks of the lock algorithm: threads stand in for processes, the futex
    //! wait becomes a yield. Run with
    //! `RUSTFLAGS="--cfg loom" cargo test --release --lib loom_model`.

    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicU32 as LoomU32, AtomicUsize};

    impl Word for LoomU32 {
        fn load(&self, order: Ordering) -> u32 {
            LoomU32::load(self, order)
        }
        fn compare_exchange(
            &self,
            current: u32,
            new: u32,
            success: Ordering,
            failure: Ordering,
        ) -> Result<u32, u32> {
            LoomU32::compare_exchange(self, current, new, success, failure)
        }
        fn swap(&self, value: u32, order: Ordering) -> u32 {
            LoomU32::swap(self, value, order)
        }
        fn fetch_add(&self, value: u32, order: Ordering) -> u32 {
            LoomU32::fetch_add(self, value, order)
        }
        fn fetch_sub(&self, value: u32, order: Ordering) -> u32 {
            LoomU32::fetch_sub(self, value, order)
        }
        fn wait(&self, _expected: u32, _deadline: Option<Instant>) -> futex::Woken {
            loom::thread::yield_now();
            futex::Woken::Maybe
        }
        fn wake_one(&self) {}
        fn owner_alive(_tid: u32) -> bool {
            true
        }
    }

    /// Two or three contenders: never two inside at once, and everyone gets in.
    /// (Three contenders explode: with the futex modelled as a yield, waiting is a spin
    /// to loom. Two contenders are checked exhaustively.)
    fn exclusion(threads: u32) {
        loom::model(move || {
            let word = Arc::new(LoomU32::new(0));
            let inside = Arc::new(AtomicUsize::new(0));
            let entered = Arc::new(AtomicUsize::new(0));
            let handles: Vec<_> = (1..=threads)
                .map(|tid| {
                    let (word, inside, entered) = (word.clone(), inside.clone(), entered.clone());
                    loom::thread::spawn(move || {
                        let a = acquire(&*word, tid, None).expect("no deadline");
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
            let word = Arc::new(LoomU32::new(0));
            let w2 = word.clone();
            let t = loom::thread::spawn(move || {
                if try_acquire(&*w2, 2).is_some() {
                    assert_eq!(owner(&*w2), Some(2));
                    release(&*w2);
                }
            });
            let a = acquire(&*word, 1, None).expect("no deadline");
            assert!(!a.owner_died);
            assert_eq!(owner(&*word), Some(1));
            release(&*word);
            t.join().unwrap();
        });
    }
}
