//! The registry of file descriptors owned by this crate's handles.
//!
//! A child made by the `Fork` start method inherits every fd of its parent. For a pipe
//! that is a trap: the parent drops its end expecting the child to see end of stream,
//! but the child's inherited copy keeps the socket open, and the child waits forever.
//! So every handle fd is registered here, and a fork child closes all of them before
//! its task runs (after duplicating the fds its args were given). Spawn and
//! fork-server children inherit nothing to begin with.

use std::collections::HashSet;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard};

static LIVE: Mutex<Option<HashSet<RawFd>>> = Mutex::new(None);

fn live() -> MutexGuard<'static, Option<HashSet<RawFd>>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// An fd owned by a handle: registered while it lives. (Always `Some` but inside
/// [`into_inner`](HandleFd::into_inner), which takes it out.)
#[derive(Debug)]
pub(crate) struct HandleFd(Option<OwnedFd>);

impl HandleFd {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        live()
            .get_or_insert_with(HashSet::new)
            .insert(fd.as_raw_fd());
        HandleFd(Some(fd))
    }

    fn fd(&self) -> &OwnedFd {
        self.0
            .as_ref()
            .expect("a HandleFd holds its fd until into_inner")
    }
}

impl HandleFd {
    /// The fd, no longer registered (its owner now decides what a fork child gets).
    pub(crate) fn into_inner(mut self) -> OwnedFd {
        let fd = self
            .0
            .take()
            .expect("a HandleFd holds its fd until into_inner");
        if let Some(set) = live().as_mut() {
            set.remove(&fd.as_raw_fd());
        }
        fd
    }
}

impl AsFd for HandleFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd().as_fd()
    }
}

impl AsRawFd for HandleFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd().as_raw_fd()
    }
}

impl Drop for HandleFd {
    fn drop(&mut self) {
        if let Some(fd) = &self.0
            && let Some(set) = live().as_mut()
        {
            set.remove(&fd.as_raw_fd());
        }
    }
}

/// Registers an fd owned by something other than a [`HandleFd`] (a listener's
/// socket), so that fork children close it as they close handles. The owner calls
/// [`unregister`] before the fd closes or changes owner.
pub(crate) fn register(fd: BorrowedFd<'_>) {
    live()
        .get_or_insert_with(HashSet::new)
        .insert(fd.as_raw_fd());
}

/// Ends a [`register`]: before the fd closes, so that a new fd with the same number is
/// not forgotten.
pub(crate) fn unregister(fd: BorrowedFd<'_>) {
    if let Some(set) = live().as_mut() {
        set.remove(&fd.as_raw_fd());
    }
}

/// Held across `fork` so the child's copy of the registry is consistent and unlocked.
pub(crate) fn lock_for_fork() -> MutexGuard<'static, Option<HashSet<RawFd>>> {
    live()
}

/// In a fork child: closes every handle fd inherited from the parent and forgets them.
/// The parent's handle objects exist in the child's memory but are never dropped
/// there (the child runs its task and ends with `_exit`); forgetting the numbers
/// matters because they are free for reuse now, and a later fork from this child must
/// not close whatever reuses them. Inlined: in a fresh fork child every page of code run
/// for the first time is a page fault, and there is usually nothing to close.
#[inline]
pub(crate) fn close_inherited(guard: &mut MutexGuard<'static, Option<HashSet<RawFd>>>) {
    if let Some(set) = guard.as_mut() {
        for fd in set.drain() {
            crate::sys::close_raw(fd);
        }
    }
}
