//! Process handles as Linux pidfds: pollable (readable once the process has exited),
//! race-free to signal (`pidfd_send_signal`) and, for our own children, to reap
//! (`waitid(P_PIDFD)`), so we never touch `SIGCHLD` and never steal another library's
//! child statuses with `waitpid(-1)`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use rustix::process::{Pid, PidfdFlags, Signal, WaitIdOptions, WaitIdStatus};

use super::retry;

/// How a process ended, in Python's convention: `>= 0` exit code, `< 0` killed by signal.
pub(crate) type ExitCode = i32;

/// Opens a pidfd for `pid`. For a child of ours this is race-free as long as we have
/// not reaped it.
pub(crate) fn open(pid: u32) -> io::Result<OwnedFd> {
    let pid = Pid::from_raw(pid as i32)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid 0"))?;
    retry(|| rustix::process::pidfd_open(pid, PidfdFlags::empty()))
}

/// Sends `sig` (a raw signal number) through the pidfd. A process that already exited
/// (but is not reaped) accepts the signal silently; `ESRCH` is mapped to `Ok`.
pub(crate) fn send_signal(fd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: any signal number is accepted by the kernel; an invalid one gives EINVAL.
    let sig = unsafe { Signal::from_raw_unchecked(sig) };
    match rustix::process::pidfd_send_signal(fd, sig) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Is the process behind `fd` finished (readable pidfd), waiting at most until
/// `deadline` (`None`: forever)?
pub(crate) fn wait_exit(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> io::Result<bool> {
    super::poll::wait_readable(fd, deadline)
}

/// Reaps our child behind `fd` if it has exited; `None` while it runs.
pub(crate) fn try_reap(fd: BorrowedFd<'_>) -> io::Result<Option<ExitCode>> {
    let status = retry(|| {
        rustix::process::waitid(
            rustix::process::WaitId::PidFd(fd.as_fd()),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
        )
    })?;
    Ok(status.map(|s| code_of(&s)))
}

fn code_of(s: &WaitIdStatus) -> ExitCode {
    if let Some(code) = s.exit_status() {
        code
    } else if let Some(sig) = s.terminating_signal() {
        -sig
    } else {
        // Stopped/continued are not requested; treat anything else as "unknown".
        255
    }
}
