//! The parent's handle on one started child: its pidfd, how to learn its exit code,
//! and the reaping that guarantees no zombie is left behind.
//!
//! Children made by `fork` and `spawn`, and by the fork server's sibling forks, are our
//! own: `waitid(P_PIDFD)` reaps them and yields the status. Children made by a fork
//! server in its watcher mode are the server's: we hold a pidfd the server sent us
//! (pollable, signalable, race-free) and learn the exit code from a *status socket*: the child writes its own code there just before a normal
//! `_exit`, and the server, which reaps it, writes the code it saw (signals, `exit(n)`).
//! If the server died and the child did not report, the code is 255, as in Python.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sys;

/// How a child's exit code is learnt.
#[derive(Debug)]
pub(crate) enum Reap {
    /// Our own child: reap with `waitid(P_PIDFD)`.
    Direct,
    /// A fork-server child: read the code from the status socket.
    Served(Mutex<Option<OwnedFd>>),
}

/// A started child process, shared between its `Process` and the registry.
#[derive(Debug)]
pub(crate) struct Child {
    pub(crate) pid: u32,
    pub(crate) pidfd: OwnedFd,
    /// The name, which the parent may change after the start (`Process::name`).
    name: Mutex<String>,
    pub(crate) daemon: bool,
    /// Started by [`crate::fork`]: not joined at exit, only reaped.
    pub(crate) raw_fork: bool,
    pub(crate) reap: Reap,
    code: Mutex<Option<i32>>,
}

/// How long to wait for the fork server to report the code of a child that has exited.
const STATUS_GRACE: Duration = Duration::from_secs(10);

impl Child {
    /// The child's name as its parent knows it.
    pub(crate) fn name(&self) -> String {
        self.name.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Renames it (Python's `p.name = ...` after `start()`).
    pub(crate) fn rename(&self, name: String) {
        *self.name.lock().unwrap_or_else(|e| e.into_inner()) = name;
    }

    pub(crate) fn new(pid: u32, pidfd: OwnedFd, name: String, daemon: bool, reap: Reap) -> Self {
        Child {
            pid,
            pidfd,
            name: Mutex::new(name),
            daemon,
            raw_fork: false,
            reap,
            code: Mutex::new(None),
        }
    }

    pub(crate) fn with_raw_fork(mut self) -> Self {
        self.raw_fork = true;
        self
    }

    /// The exit code if the child was already reaped.
    pub(crate) fn exitcode(&self) -> Option<i32> {
        *self.code.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a signal (ignored if the child already exited).
    pub(crate) fn signal(&self, sig: i32) -> std::io::Result<()> {
        if self.exitcode().is_some() {
            return Ok(());
        }
        sys::pidfd::send_signal(self.pidfd.as_fd(), sig)
    }

    /// Waits until the child exits or `deadline` passes; reaps it and returns its exit
    /// code, or `None` if it is still running.
    pub(crate) fn poll_exit(&self, deadline: Option<Instant>) -> std::io::Result<Option<i32>> {
        if let Some(c) = self.exitcode() {
            return Ok(Some(c));
        }
        if !sys::pidfd::wait_exit(self.pidfd.as_fd(), deadline)? {
            return Ok(None);
        }
        let mut code = self.code.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = *code {
            return Ok(Some(c));
        }
        let c = match &self.reap {
            Reap::Direct => match sys::pidfd::try_reap(self.pidfd.as_fd()) {
                Ok(Some(c)) => c,
                // Exited (the pidfd is readable) but not reapable: someone else's
                // waitpid(-1) took it. We cannot know the code.
                Ok(None) | Err(_) => 255,
            },
            Reap::Served(status) => {
                let fd = status.lock().unwrap_or_else(|e| e.into_inner()).take();
                fd.map_or(255, read_status)
            }
        };
        *code = Some(c);
        Ok(Some(c))
    }
}

/// Reads the 4-byte code from a status socket; 255 if it closes first.
fn read_status(fd: OwnedFd) -> i32 {
    let deadline = Instant::now() + STATUS_GRACE;
    let mut file = std::fs::File::from(fd);
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match sys::poll::wait_readable(file.as_fd(), Some(deadline)) {
            Ok(true) => {}
            _ => return 255,
        }
        match file.read(&mut buf[got..]) {
            Ok(0) => return 255,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return 255,
        }
    }
    i32::from_le_bytes(buf)
}
