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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

static LIVE: Mutex<Option<HashSet<RawFd>>> = Mutex::new(None);
/// How many fds [`LIVE`] holds (changed under its lock): a fork from a process with no
/// other thread skips the lock when there is nothing to close (see [`hold_for_fork`]).
static COUNT: AtomicUsize = AtomicUsize::new(0);

fn live() -> MutexGuard<'static, Option<HashSet<RawFd>>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

fn add(fd: RawFd) {
    if live().get_or_insert_with(HashSet::new).insert(fd) {
        COUNT.fetch_add(1, Ordering::Relaxed);
    }
}

fn remove(fd: RawFd) {
    if let Some(set) = live().as_mut()
        && set.remove(&fd)
    {
        COUNT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An fd owned by a handle: registered while it lives. (Always `Some` but inside
/// [`into_inner`](HandleFd::into_inner), which takes it out.)
#[derive(Debug)]
pub(crate) struct HandleFd(Option<OwnedFd>);

impl HandleFd {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        add(fd.as_raw_fd());
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
        remove(fd.as_raw_fd());
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
        if let Some(fd) = &self.0 {
            remove(fd.as_raw_fd());
        }
    }
}

/// Registers an fd owned by something other than a [`HandleFd`] (a listener's
/// socket), so that fork children close it as they close handles. The owner calls
/// [`unregister`] before the fd closes or changes owner.
pub(crate) fn register(fd: BorrowedFd<'_>) {
    add(fd.as_raw_fd());
}

/// Ends a [`register`]: before the fd closes, so that a new fd with the same number is
/// not forgotten.
pub(crate) fn unregister(fd: BorrowedFd<'_>) {
    remove(fd.as_raw_fd());
}

/// What a fork holds of the registry, so that the child's copy is consistent and
/// unlocked: its lock, or nothing when this process has no other thread (`alone`, none
/// can be changing it at the fork) and the registry is empty. Taking and releasing the
/// lock writes to its page, which then costs a copy-on-write fault on each side.
pub(crate) struct ForkHold(Option<MutexGuard<'static, Option<HashSet<RawFd>>>>);

/// Holds the registry across a `fork` (see [`ForkHold`]).
pub(crate) fn hold_for_fork(alone: bool) -> ForkHold {
    // Alone, nothing can add to the registry between this look and the fork.
    if alone && COUNT.load(Ordering::Relaxed) == 0 {
        ForkHold(None)
    } else {
        ForkHold(Some(live()))
    }
}

impl ForkHold {
    /// In a fork child: closes every handle fd inherited from the parent and forgets
    /// them. The parent's handle objects exist in the child's memory but are never
    /// dropped there (the child runs its task and ends with `_exit`); forgetting the
    /// numbers matters because they are free for reuse now, and a later fork from this
    /// child must not close whatever reuses them. Inlined: in a fresh fork child every
    /// page of code run for the first time is a page fault, and there is usually
    /// nothing to close.
    #[allow(unsafe_code)] // the section only groups code: "Child text" in process::bootstrap
    #[unsafe(link_section = "multiprocess_child_text")]
    pub(crate) fn close_inherited(self) {
        if let Some(mut guard) = self.0
            && let Some(set) = guard.as_mut()
        {
            for fd in set.drain() {
                crate::sys::close_raw(fd);
            }
            COUNT.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The count and the registry agree (both change under the lock).
    fn count_matches() -> bool {
        let live = live();
        COUNT.load(Ordering::Relaxed) == live.as_ref().map_or(0, HashSet::len)
    }

    #[test]
    fn a_fork_skips_the_lock_only_alone_with_nothing_to_close() {
        // With other threads, the lock is always held across the fork.
        assert!(hold_for_fork(false).0.is_some());
        let (a, b) = crate::sys::socket::pair().unwrap();
        let a = HandleFd::new(a);
        register(b.as_fd());
        register(b.as_fd()); // twice: counted once
        assert!(count_matches());
        // Alone but with handles to close in the child: held too.
        assert!(hold_for_fork(true).0.is_some());
        unregister(b.as_fd());
        unregister(b.as_fd());
        let a = a.into_inner();
        assert!(count_matches());
        drop(HandleFd::new(a));
        assert!(count_matches());
    }
}
