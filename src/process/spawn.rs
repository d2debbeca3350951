//! The spawn start method: exec the current binary (`/proc/self/exe`) and hand the
//! new process its task over a control socket. The fork server is started this way.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use super::bootstrap::{self, MARKER};
use super::child::{Child, Reap};
use super::launcher::on_long_lived_thread;
use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use crate::wire::frame;

/// Environment set in every spawned child, beside what it inherits: `MULTIPROCESS_LOG`
/// after `log_to_stderr`, so that children log as their parent does (Python hands its
/// log level to spawned children too).
static CHILD_ENV: std::sync::Mutex<Vec<(std::ffi::OsString, std::ffi::OsString)>> =
    std::sync::Mutex::new(Vec::new());

/// Sets `key=value` in the environment of the children spawned from now on.
#[cfg(feature = "tracing")]
pub(crate) fn set_child_env(key: &str, value: &str) {
    let mut env = CHILD_ENV.lock().unwrap_or_else(|e| e.into_inner());
    env.retain(|(k, _)| k != key);
    env.push((key.into(), value.into()));
}

/// How long a spawned child may take to pick up its task before we give up on it.
pub(crate) const SPAWN_ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// Spawn: exec the current binary, send it the boot over a control socket, wait for
/// its acknowledgement. `env`, when given, is the child's whole environment (else it
/// gets ours). Returns the child and our end of the control socket.
pub(crate) fn start_spawn(
    boot: &[u8],
    fds: &[BorrowedFd<'_>],
    env: Option<&[(std::ffi::OsString, std::ffi::OsString)]>,
    name: String,
    daemon: bool,
) -> Result<(Child, OwnedFd)> {
    let (ours, theirs) = sys::socket::pair().map_err(|e| Error::io("socketpair", e))?;
    let out = sys::process::dup_stdout().map_err(|e| Error::io("dup(stdout)", e))?;
    let marker = bootstrap::marker_value(&theirs, &out);
    let args = bootstrap::child_args();
    let base = env.map(<[_]>::to_vec);
    let mut extra = CHILD_ENV.lock().unwrap_or_else(|e| e.into_inner()).clone();
    extra.push((MARKER.into(), marker.into()));
    let pid = on_long_lived_thread(move || {
        let r =
            sys::process::spawn_self(&args, &extra, base.as_deref(), theirs.as_fd(), out.as_fd());
        drop(theirs);
        drop(out);
        r
    })
    .map_err(|e| Error::io("spawning a child (exec of /proc/self/exe)", e))?;
    let pidfd = sys::pidfd::open(pid).map_err(|e| Error::io("pidfd_open", e))?;
    let child = Child::new(pid, pidfd, name, daemon, Reap::Direct);
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
    // No spin: the answer comes after an exec (a millisecond or more).
    let ack = frame::recv_spin(
        ours.as_fd(),
        Some(Instant::now() + SPAWN_ACK_TIMEOUT),
        16,
        Duration::ZERO,
    );
    match ack {
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
