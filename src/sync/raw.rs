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
