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

const WAITERS: u32 = 1 << 31;
const TID_MASK: u32 = !WAITERS;

/// How often a sleeping acquirer checks that the owner is still alive.
pub(crate) const CHECK_EVERY: Duration = Duration::from_millis(25);

/// Spins before sleeping (each a load, a pause, no syscall).
const SPINS: u32 = 200;

/// A successful acquisition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Acquired {
    /// The previous holder died while holding the lock.
    pub(crate) owner_died: bool,
}

/// Tries once, without waiting.
#[inline]
pub(crate) fn try_acquire(word: &AtomicU32, me: u32) -> Option<Acquired> {
    word.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        .ok()
        .map(|_| Acquired { owner_died: false })
}

/// Acquires, waiting until `deadline` (`None`: forever). `None` on timeout.
#[inline]
pub(crate) fn acquire(word: &AtomicU32, me: u32, deadline: Option<Instant>) -> Option<Acquired> {
    if let Some(a) = try_acquire(word, me) {
        return Some(a);
    }
    acquire_slow(word, me, deadline)
}

#[cold]
#[inline(never)]
fn acquire_slow(word: &AtomicU32, me: u32, deadline: Option<Instant>) -> Option<Acquired> {
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
        if futex::wait(word, cur | WAITERS, Some(until)) == futex::Woken::TimedOut {
            let owner = cur & TID_MASK;
            if word.load(Ordering::Relaxed) == cur | WAITERS && !sys::process::thread_alive(owner) {
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
pub(crate) fn release(word: &AtomicU32) -> bool {
    let prev = word.swap(0, Ordering::Release);
    if prev & WAITERS != 0 {
        wake_one(word);
    }
    prev != 0
}

#[cold]
#[inline(never)]
fn wake_one(word: &AtomicU32) {
    futex::wake(word, 1);
}

/// The current owner's thread id, if held.
pub(crate) fn owner(word: &AtomicU32) -> Option<u32> {
    match word.load(Ordering::Relaxed) & TID_MASK {
        0 => None,
        t => Some(t),
    }
}
