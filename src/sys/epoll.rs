//! `epoll` sets: the edge-triggered one of the crate's shared reactor thread (`aio`), and
//! level-triggered ones that are themselves watched (a pipe's async receive).

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Instant;

use rustix::event::epoll::{self, CreateFlags, Event, EventData, EventFlags};

use super::retry;

/// A new close-on-exec epoll instance.
pub(crate) fn create() -> io::Result<OwnedFd> {
    retry(|| epoll::create(CreateFlags::CLOEXEC))
}

/// Watches `fd` for readability (and hang-up), edge-triggered: an event each time it
/// *becomes* readable again (each write to a socket or an eventfd, a process's exit),
/// and once at once if it is readable when added. `key` comes back with its events.
pub(crate) fn add(ep: BorrowedFd<'_>, fd: BorrowedFd<'_>, key: u64) -> io::Result<()> {
    let flags = EventFlags::IN | EventFlags::RDHUP | EventFlags::ET;
    retry(|| epoll::add(ep, fd, EventData::new_u64(key), flags))
}

/// Watches `fd` for readability (and hang-up), level-triggered: for a set that is itself
/// watched (an epoll fd is readable while one of its fds is), as a pipe's async receive
/// watches its socket and its lane's bell together.
pub(crate) fn add_level(ep: BorrowedFd<'_>, fd: BorrowedFd<'_>, key: u64) -> io::Result<()> {
    let flags = EventFlags::IN | EventFlags::RDHUP;
    retry(|| epoll::add(ep, fd, EventData::new_u64(key), flags))
}

/// Stops watching `fd` (closing it does too, once no other copy of it is open).
pub(crate) fn delete(ep: BorrowedFd<'_>, fd: BorrowedFd<'_>) {
    let _ = retry(|| epoll::delete(ep, fd));
}

/// Waits for events until `deadline` (`None`: forever); the keys of those that fired
/// (empty on timeout or interruption: the caller loops).
pub(crate) fn wait(ep: BorrowedFd<'_>, deadline: Option<Instant>, keys: &mut Vec<u64>) {
    keys.clear();
    let timeout = deadline.map(|d| {
        let left = d.saturating_duration_since(Instant::now());
        rustix::event::Timespec {
            tv_sec: left.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        }
    });
    let mut events: Vec<Event> = Vec::with_capacity(64);
    // On EINTR, the caller's loop computes the time left and waits again.
    if epoll::wait(
        ep,
        rustix::buffer::spare_capacity(&mut events),
        timeout.as_ref(),
    )
    .is_ok()
    {
        keys.extend(events.iter().map(|e| e.data.u64()));
    }
}
