//! Futexes shared between processes: no `FUTEX_PRIVATE_FLAG`, so the kernel keys the
//! wait queue on the physical page and a waiter in one process is woken by a waker in
//! another (std's, parking_lot's and atomic-wait's locks are process-private).

use std::sync::atomic::AtomicU32;
use std::time::Instant;

use rustix::thread::futex;

/// What a wait ended with.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Woken {
    /// Woken, or the word no longer held `expected`, or a signal: re-check the word.
    Maybe,
    /// The deadline passed.
    TimedOut,
}

/// Sleeps while `*word == expected`, until woken or `deadline`.
pub(crate) fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> Woken {
    let timeout = match deadline {
        None => None,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Woken::TimedOut;
            }
            Some(rustix::time::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: left.subsec_nanos() as _,
            })
        }
    };
    match futex::wait(word, futex::Flags::empty(), expected, timeout.as_ref()) {
        Err(rustix::io::Errno::TIMEDOUT) => Woken::TimedOut,
        _ => Woken::Maybe,
    }
}

/// Wakes up to `n` waiters on `word` (in any process).
pub(crate) fn wake(word: &AtomicU32, n: u32) {
    let _ = futex::wake(word, futex::Flags::empty(), n);
}
