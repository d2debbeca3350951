//! The launcher: a long-lived thread that creates children.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that created a child exits, not the
//! process. A child forked from a short-lived thread (a test, a worker thread) would be
//! killed when that thread ends. So children are created from a thread that lives as
//! long as the process: the main thread when the caller is the main thread (no hand-off
//! cost), otherwise this launcher thread, started on first use. The hand-off costs one
//! thread wake-up, small beside a fork or an exec.
//!
//! The launcher is a bare thread (`sys::process::spawn_bare_thread`), not a
//! `std::thread`, so it does not inherit the output capture of the test that happened
//! to start it: a forked child, a copy of the launcher, prints to the real standard
//! output instead of into a copy of libtest's buffer (lost at its exit), and cannot
//! deadlock on that buffer's lock held by another thread of the test at the fork.

use std::sync::mpsc;

use super::state::PerProcess;
use crate::sys;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A handle on this process's launcher thread.
#[derive(Debug)]
struct Launcher {
    tx: mpsc::Sender<Job>,
}

/// This process's launcher (a forked child starts its own).
static LAUNCHER: PerProcess<Option<Launcher>> = PerProcess::new();

/// Runs `f` on a thread that lives as long as the process and returns its result.
pub(crate) fn on_long_lived_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    if sys::process::is_main_thread() {
        return f();
    }
    let tx = {
        let mut l = LAUNCHER.get().lock().unwrap_or_else(|e| e.into_inner());
        match &*l {
            Some(l) => l.tx.clone(),
            None => {
                let (tx, rx) = mpsc::channel::<Job>();
                // Not `std::thread`: see `spawn_bare_thread` (libtest's capture).
                sys::process::spawn_bare_thread(
                    "mp-launcher",
                    Box::new(move || {
                        for job in rx {
                            job();
                        }
                    }),
                )
                .expect("cannot start the multiprocess launcher thread");
                *l = Some(Launcher { tx: tx.clone() });
                tx
            }
        }
    };
    let (rtx, rrx) = mpsc::sync_channel(1);
    tx.send(Box::new(move || {
        let _ = rtx.send(f());
    }))
    .expect("the multiprocess launcher thread is gone");
    rrx.recv()
        .expect("the multiprocess launcher thread dropped a job")
}
