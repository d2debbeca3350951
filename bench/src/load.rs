//! CPU-bound load for the `_loaded` rows: two forked processes that spin while
//! a latency workload runs, so that a strategy that spins is judged where it
//! hurts (BENCH.md).
//!
//! [`with_load`] starts them, runs the workload, then kills (SIGKILL) and reaps
//! them, also when the workload panics. Each load process is bounded on its
//! own: it exits after [`crate::params::LOAD_BOUND_SECS`] seconds or as soon as
//! its parent is gone, so a crashed harness leaves nothing spinning.

use std::hint::black_box;

use crate::floor::fork_child;
use crate::params::{LOAD_BOUND_SECS, LOAD_PROCS, LOAD_ROUNDS};

/// Monotonic seconds. Async-signal-safe (`clock_gettime`).
fn now_secs() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64
}

/// The running load processes; killed and reaped on drop.
struct Load(Vec<libc::pid_t>);

impl Load {
    fn start(n: usize) -> Load {
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        let deadline = now_secs() + LOAD_BOUND_SECS;
        let pids = (0..n)
            .map(|_| {
                // Runs in the child: arithmetic, clock_gettime and getppid
                // only; no allocation, lock or panic.
                let spin = move || {
                    let mut x = 1u64;
                    loop {
                        for _ in 0..1_000_000 {
                            x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                        }
                        // SAFETY: getppid has no preconditions.
                        if now_secs() > deadline || unsafe { libc::getppid() } != parent {
                            return 0;
                        }
                    }
                };
                // SAFETY: `spin` is async-signal-safe (see above).
                unsafe { fork_child(spin) }
            })
            .collect();
        Load(pids)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for &pid in &self.0 {
            // SAFETY: `pid` is our own unreaped child, so the id is not reused.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for &pid in &self.0 {
            let mut status = 0;
            // SAFETY: `status` is a valid out-pointer; `pid` is our own child.
            while unsafe { libc::waitpid(pid, &mut status, 0) } == -1
                && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {
            }
        }
    }
}

/// Runs `f` while [`crate::params::LOAD_PROCS`] CPU-bound processes spin,
/// [`crate::params::LOAD_ROUNDS`] times, each time with load processes of its
/// own, and returns the median figure (`None` if any round has none). Prints
/// every round's figure to stderr, labelled `who` (ours, peer, ceiling).
///
/// Why rounds: on a small machine where the processes end up (a measured
/// pair on one CPU, or split with a spinner beside each) decides a loaded
/// figure more than the strategy measured, and it changes when the load
/// starts, seldom during a round: one round gave 9-70 us per round trip for
/// the same blocking pair. Fresh load processes draw a new placement, and the
/// median over the rounds is the strategy's typical figure.
pub fn with_load(who: &str, quick: bool, mut f: impl FnMut() -> Option<f64>) -> Option<f64> {
    let mut figures = Vec::new();
    for _ in 0..LOAD_ROUNDS.get(quick) {
        let load = Load::start(LOAD_PROCS);
        let r = f();
        drop(load);
        figures.push(r?);
    }
    // Each round's figure on stderr beside the floors: the spread is the placement's,
    // and a reader comparing two sides' medians should see it.
    let shown: Vec<String> = figures.iter().map(|f| format!("{f:.3}")).collect();
    eprintln!("  [rounds] {who:<8} {}", shown.join(" "));
    Some(crate::measure::median(&mut figures))
}
