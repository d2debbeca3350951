//! Futexes shared between processes: no `FUTEX_PRIVATE_FLAG`, so the kernel keys the
//! wait queue on the physical page and a waiter in one process is woken by a waker in
//! another (std's, parking_lot's and atomic-wait's locks are process-private).

use std::sync::atomic::{AtomicU32, AtomicU64};
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

/// The 32-bit half of `word` that holds its low bits: the futex word of a 64-bit lock
/// word (futexes are 32 bits wide).
fn low_half(word: &AtomicU64) -> &AtomicU32 {
    let offset = if cfg!(target_endian = "little") { 0 } else { 4 };
    #[allow(unsafe_code)]
    // SAFETY: in bounds (4 of the 8 bytes) and 4-aligned (the u64 is 8-aligned). The
    // reference only ever reaches the kernel, which reads the 4 bytes atomically for
    // FUTEX_WAIT; Rust code never accesses the word through it, so there is no
    // mixed-size access in the program.
    unsafe {
        &*(word.as_ptr().cast::<u8>().add(offset) as *const AtomicU32)
    }
}

/// Sleeps while the low 32 bits of `*word` equal `expected`, until woken or `deadline`.
pub(crate) fn wait_low(word: &AtomicU64, expected: u32, deadline: Option<Instant>) -> Woken {
    wait(low_half(word), expected, deadline)
}

/// Wakes up to `n` waiters of [`wait_low`] on `word` (in any process).
pub(crate) fn wake_low(word: &AtomicU64, n: u32) {
    wake(low_half(word), n);
}
