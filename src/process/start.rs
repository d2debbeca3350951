//! Creating a child with each start method; the parent's side of a start.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::bootstrap::{self, Boot, MARKER, TEST_ENTRY};
use super::child::{ChildShared, Reap};
use super::forkserver;
use super::launcher::on_long_lived_thread;
use super::method::StartMethod;
use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use crate::wire::{codec, frame, handles};

/// How long a spawned child may take to pick up its task before we give up on it.
pub(crate) const SPAWN_ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts a child running `boot` with the handles `fds` (raw fds of values the caller
/// keeps alive for the whole call; the result channel last when `boot.result`).
pub(crate) fn start(method: StartMethod, boot: Boot, fds: &[RawFd]) -> Result<ChildShared> {
    guard_against_missing_init()?;
    let name = boot.name.clone();
    let daemon = boot.daemon;
    match method {
        StartMethod::Fork => start_fork(boot, fds.to_vec())
            .map(|(pid, pidfd)| ChildShared::new(pid, pidfd, name, daemon, Reap::Direct)),
        StartMethod::Spawn => {
            let bytes = codec::encode(&boot)?.bytes;
            let (child, _ctrl) = start_spawn(&bytes, &borrow(fds), name, daemon)?;
            Ok(child)
        }
        StartMethod::ForkServer => {
            let bytes = codec::encode(&boot)?.bytes;
            forkserver::start_served(&bytes, &borrow(fds), name, daemon)
        }
    }
}

fn borrow(fds: &[RawFd]) -> Vec<BorrowedFd<'_>> {
    #[allow(unsafe_code)]
    fds.iter()
        // SAFETY: the caller of `start` keeps the values owning these fds alive.
        .map(|&fd| unsafe { BorrowedFd::borrow_raw(fd) })
        .collect()
}

/// A child that was spawned but never called `init()` would run the user's `main`
/// again; if that `main` starts children, refuse instead of recursing.
fn guard_against_missing_init() -> Result<()> {
    if std::env::var_os(MARKER).is_some() {
        return Err(bootstrap::no_init_error(None));
    }
    Ok(())
}

/// Fork: the child is a copy of the launcher (or main) thread and runs the task there.
fn start_fork(boot: Boot, fds: Vec<RawFd>) -> Result<(u32, OwnedFd)> {
    let parent = sys::process::getpid();
    let pid = on_long_lived_thread(move || {
        // Hold the stdout/stderr locks across fork so the child does not inherit
        // them locked by another thread.
        let out = std::io::stdout();
        let err = std::io::stderr();
        let o = out.lock();
        let e = err.lock();
        let mut handles = handles::lock_for_fork();
        #[allow(unsafe_code)]
        // SAFETY: the child only runs `run_child`, which ends with `_exit`.
        match unsafe { sys::process::fork() } {
            Ok(sys::process::Forked::Child) => {
                if boot.die_with_parent {
                    sys::process::die_with_parent(parent);
                }
                let fds = match codec::dup_inherited(&fds) {
                    Ok(f) => f,
                    Err(e) => {
                        report!("multiprocess: forked child cannot take its handles: {e}");
                        sys::process::exit_now(1)
                    }
                };
                handles::close_inherited(&mut handles);
                drop(handles);
                drop(e);
                drop(o);
                bootstrap::run_child(boot, fds, None, None)
            }
            Ok(sys::process::Forked::Parent(pid)) => Ok(pid),
            Err(e) => Err(e),
        }
    })
    .map_err(|e| Error::io("fork", e))?;
    let pidfd = sys::pidfd::open(pid).map_err(|e| Error::io("pidfd_open", e))?;
    Ok((pid, pidfd))
}

/// Spawn: exec the current binary, send it the boot over a control socket, wait for
/// its acknowledgement. Returns the child and our end of the control socket.
pub(crate) fn start_spawn(
    boot: &[u8],
    fds: &[BorrowedFd<'_>],
    name: String,
    daemon: bool,
) -> Result<(ChildShared, OwnedFd)> {
    let (ours, theirs) = sys::socket::pair().map_err(|e| Error::io("socketpair", e))?;
    let out = sys::process::dup_stdout().map_err(|e| Error::io("dup(stdout)", e))?;
    let marker = bootstrap::marker_value(&theirs, &out);
    let args: Vec<std::ffi::OsString> = [TEST_ENTRY, "--nocapture", "--test-threads=1", "-q"]
        .iter()
        .map(Into::into)
        .collect();
    let pid = on_long_lived_thread(move || {
        let r = sys::process::spawn_self(
            &args,
            &[(MARKER.into(), marker.into())],
            theirs.as_fd(),
            out.as_fd(),
        );
        drop(theirs);
        drop(out);
        r
    })
    .map_err(|e| Error::io("spawning a child (exec of /proc/self/exe)", e))?;
    let pidfd = sys::pidfd::open(pid).map_err(|e| Error::io("pidfd_open", e))?;
    let child = ChildShared::new(pid, pidfd, name, daemon, Reap::Direct);
    let fail = |e: Error| -> Error {
        let _ = child.signal(sys::process::SIGKILL);
        let _ = child.poll_exit(Some(Instant::now() + Duration::from_secs(5)));
        e
    };
    if let Err(e) = frame::send_parts(ours.as_fd(), boot, fds) {
        let code = child
            .poll_exit(Some(Instant::now() + Duration::from_secs(5)))
            .ok()
            .flatten();
        return Err(if e.kind() == ErrorKind::Disconnected {
            bootstrap::no_init_error(code)
        } else {
            fail(e)
        });
    }
    match frame::recv(ours.as_fd(), Some(Instant::now() + SPAWN_ACK_TIMEOUT), 16) {
        Ok(Some(f)) if f.body == b"ok" => Ok((child, ours)),
        Ok(Some(_)) => Err(fail(Error::new(
            ErrorKind::Protocol,
            "a spawned child sent a bad acknowledgement",
        ))),
        Ok(None) => Err(fail(bootstrap::no_init_error(None))),
        Err(e) if e.kind() == ErrorKind::Disconnected => {
            let code = child
                .poll_exit(Some(Instant::now() + Duration::from_secs(5)))
                .ok()
                .flatten();
            Err(bootstrap::no_init_error(code))
        }
        Err(e) => Err(fail(e)),
    }
}
