//! The per-worker window: how many tasks a worker may hold at once.
//!
//! A worker always has one task. While tasks are short (an exponential average below
//! [`SHORT_TASK_NS`]) it gets enough more to cover about [`WINDOW_WORK_NS`] of work, so
//! a stream of tiny tasks never waits on a wake-up. Long tasks are handed out one at a
//! time, and a task that has run past [`STALL`] holds nothing queued behind it.

use std::time::{Duration, Instant};

/// Tasks at most in a worker's window.
pub(crate) const MAX_WINDOW: usize = 256;
/// Work kept queued in a worker when tasks are short.
pub(crate) const WINDOW_WORK_NS: u64 = 500_000;
/// Tasks longer than this on average are handed out one at a time.
pub(crate) const SHORT_TASK_NS: u64 = 250_000;
/// A task running longer than this holds no others queued behind it.
pub(crate) const STALL: Duration = Duration::from_millis(1);

/// The window of a worker whose tasks took `ewma_ns` on average (0: none done yet).
pub(crate) fn window(ewma_ns: u64, stalled: bool) -> usize {
    if stalled || ewma_ns == 0 || ewma_ns > SHORT_TASK_NS {
        1
    } else {
        1 + (WINDOW_WORK_NS / ewma_ns.max(1)).min(MAX_WINDOW as u64) as usize
    }
}

/// The average after a task that took `ns` (weight 1/8; never 0 once a task is done).
pub(crate) fn ewma(avg_ns: u64, ns: u64) -> u64 {
    if avg_ns == 0 {
        ns.max(1)
    } else {
        ((avg_ns * 7 + ns) / 8).max(1)
    }
}

/// Whether the head task, sent at `sent` to a worker that finished its previous task
/// at `last_done`, has run past [`STALL`] by `now`.
pub(crate) fn stalled(sent: Instant, last_done: Instant, now: Instant) -> bool {
    now.saturating_duration_since(sent.max(last_done)) > STALL
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_long_or_stalled_tasks_get_one_slot() {
        assert_eq!(window(0, false), 1);
        assert_eq!(window(SHORT_TASK_NS + 1, false), 1);
        assert_eq!(window(10_000_000, false), 1);
        assert_eq!(window(1_000, true), 1);
    }

    #[test]
    fn short_tasks_fill_half_a_millisecond() {
        assert_eq!(window(SHORT_TASK_NS, false), 3);
        assert_eq!(window(100_000, false), 6);
        assert_eq!(window(10_000, false), 51);
        // Tiny tasks are capped.
        assert_eq!(window(1, false), 1 + MAX_WINDOW);
        assert_eq!(window(1_000, false), 1 + MAX_WINDOW);
    }

    #[test]
    fn the_average_follows_with_weight_one_eighth() {
        assert_eq!(ewma(0, 0), 1);
        assert_eq!(ewma(0, 800), 800);
        assert_eq!(ewma(800, 0), 700);
        assert_eq!(ewma(800, 1600), 900);
        assert_eq!(ewma(1, 0), 1);
        let mut a = 0;
        for _ in 0..200 {
            a = ewma(a, 5_000);
        }
        assert_eq!(a, 5_000);
    }

    #[test]
    fn a_task_stalls_after_it_ran_past_the_limit() {
        let t0 = Instant::now();
        assert!(!stalled(t0, t0, t0 + STALL));
        assert!(stalled(t0, t0, t0 + STALL + Duration::from_micros(1)));
        // It began when the task before it ended, not when it was sent.
        let done = t0 + Duration::from_millis(5);
        assert!(!stalled(t0, done, done + STALL / 2));
        // A clock read before the send does not underflow.
        assert!(!stalled(done, t0, t0));
    }
}
