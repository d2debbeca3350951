//! Creating a child with each start method; the parent's side of a start.

use std::ffi::OsString;
use std::io::{StderrLock, StdoutLock, Write};
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;

use super::bootstrap::{self, Boot};
use super::child::{Child, Reap};
use super::forkserver;
use super::launcher::on_long_lived_thread;
use super::method::StartMethod;
use super::options;
use super::spawn::start_spawn;
use crate::error::{Error, Result};
use crate::sys;
use crate::wire::{codec, handles};

/// Starts a child running `boot` with the handles `fds` (raw fds of values the caller
/// keeps alive for the whole call; the result channel last when `boot.result`).
pub(crate) fn start(method: StartMethod, boot: Boot, fds: &[RawFd]) -> Result<Child> {
    guard_against_missing_init()?;
    let name = boot.name.clone();
    let daemon = boot.daemon;
    match method {
        StartMethod::Fork => start_fork(boot, fds.to_vec())
            .map(|(pid, pidfd)| Child::new(pid, pidfd, name, daemon, Reap::Direct)),
        StartMethod::Spawn => {
            flush_standard_output();
            let bytes = codec::encode(&boot)?.bytes;
            let env: Option<Vec<(OsString, OsString)>> = boot.env.map(|e| {
                e.into_iter()
                    .map(|(k, v)| (OsString::from_vec(k), OsString::from_vec(v)))
                    .collect()
            });
            let (child, _ctrl) = start_spawn(&bytes, &borrow(fds), env.as_deref(), name, daemon)?;
            Ok(child)
        }
        StartMethod::ForkServer => {
            flush_standard_output();
            // The server's children start in the directory the server started in; a
            // spawned or forked child starts in ours, so only they need no `cwd`.
            let boot = Boot {
                cwd: std::env::current_dir()
                    .ok()
                    .map(|d| d.into_os_string().into_vec()),
                ..boot
            };
            let bytes = codec::encode(&boot)?.bytes;
            forkserver::start_served(&bytes, &borrow(fds), name, daemon)
        }
    }
}

/// Python's `Popen` flushes `sys.stdout` and `sys.stderr` before it starts a child, so
/// that what the parent printed before `start()` comes out before the child's output
/// (Rust's standard error has no buffer). A fork does it under the output lock (see
/// [`OutputLocks::for_fork`]).
fn flush_standard_output() {
    let _ = std::io::stdout().flush();
}

fn borrow(fds: &[RawFd]) -> Vec<BorrowedFd<'_>> {
    #[allow(unsafe_code)]
    fds.iter()
        // SAFETY: the caller of `start` keeps the values owning these fds alive.
        .map(|&fd| unsafe { BorrowedFd::borrow_raw(fd) })
        .collect()
}

/// A child that was spawned but never called `init()` would run the user's `main`
/// again; if that `main` starts children, end it instead of recursing. It ends
/// silently: its parent, still waiting for it to take its task, says once what to do
/// (a message from here too would print the advice twice).
fn guard_against_missing_init() -> Result<()> {
    if bootstrap::task_unclaimed() {
        sys::process::exit_now(1);
    }
    Ok(())
}

/// The standard output and error locks, held across a fork so that the child does not
/// inherit them locked by another thread; not taken in a process with no other thread
/// (`alone`, see `sys::process::single_threaded`): taking and releasing them writes to
/// their pages, each then a copy-on-write fault on both sides of the fork.
pub(super) struct OutputLocks {
    out: Option<StdoutLock<'static>>,
    err: Option<StderrLock<'static>>,
}

impl OutputLocks {
    ///
    /// Flushes standard output first (under its lock when taken), as Python does before
    /// every start: the child gets a copy of the buffer, so a partial line printed with
    /// `print!` would otherwise come out twice, once from each process.
    pub(super) fn for_fork(alone: bool) -> OutputLocks {
        // Made here even when not locked: a child whose parent never printed would
        // otherwise make standard output itself when it flushes it at its end (an
        // allocation and some six page faults in every child).
        let out = std::io::stdout();
        let mut locks = OutputLocks {
            out: (!alone).then(|| out.lock()),
            err: (!alone).then(|| std::io::stderr().lock()),
        };
        let _ = match &mut locks.out {
            Some(locked) => locked.flush(),
            None => out.lock().flush(),
        };
        locks
    }

    /// Releases the locks taken. Inlined, and a drop only where one was taken: in a
    /// fresh fork child even dropping a `None` calls code it must fault in.
    #[inline(always)]
    pub(super) fn release(self) {
        if let Some(e) = self.err {
            drop(e);
        }
        if let Some(o) = self.out {
            drop(o);
        }
    }
}

/// Fork: the child is a copy of the launcher (or main) thread and runs the task there.
fn start_fork(mut boot: Boot, fds: Vec<RawFd>) -> Result<(u32, OwnedFd)> {
    let parent = sys::process::getpid();
    let pid = on_long_lived_thread(move || fork_to_run(&mut boot, &fds, parent))
        .map_err(|e| Error::io("fork", e))?;
    let pidfd = sys::pidfd::open(pid).map_err(|e| Error::io("pidfd_open", e))?;
    Ok((pid, pidfd))
}

/// Forks; the child runs `boot` and never returns, the parent gets the child's pid.
///
/// `boot` is borrowed, not moved: moving the start message would call `memmove` in the
/// child, one more page of libc's code to fault in. The function lives beside the rest
/// of the child's path ("Child text" in `bootstrap`), since the child returns from
/// the fork into it.
#[inline(never)]
#[allow(unsafe_code)] // the section only groups code: "Child text" in process::bootstrap
#[unsafe(link_section = "multiprocess_child_text")]
fn fork_to_run(boot: &mut Boot, fds: &[RawFd], parent: u32) -> std::io::Result<u32> {
    let alone = sys::process::single_threaded();
    let output = OutputLocks::for_fork(alone);
    let handles = handles::hold_for_fork(alone);
    codec::prepare_thread_for_fork();
    #[allow(unsafe_code)]
    // SAFETY: the child only runs `run_child`, which ends with `_exit`.
    match unsafe { sys::process::fork() }? {
        sys::process::Forked::Parent(pid) => return Ok(pid),
        sys::process::Forked::Child => {}
    }
    if boot.die_with_parent {
        sys::process::die_with_parent(parent);
    }
    let fds = match codec::dup_inherited(fds) {
        Ok(f) => f,
        Err(e) => {
            report!("multiprocess: forked child cannot take its handles: {e}");
            sys::process::exit_now(1)
        }
    };
    handles.close_inherited();
    output.release();
    if alone && boot.stdio[0] {
        options::forget_buffered_stdin();
    }
    bootstrap::run_child(boot, fds, None, None)
}
