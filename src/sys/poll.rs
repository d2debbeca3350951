//! `poll(2)` over fds with an absolute deadline, retrying `EINTR` with the time left.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

/// Milliseconds left until `deadline`, rounded up, for `poll`'s timeout (-1: forever).
fn timeout_ms(deadline: Option<Instant>) -> libc::c_int {
    match deadline {
        None => -1,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            let ms = left.as_micros().div_ceil(1000);
            ms.min(i32::MAX as u128) as libc::c_int
        }
    }
}

/// Waits until at least one of `fds` is readable (or hung up / in error), or the
/// deadline passes. Returns the indices of the ready fds (empty on timeout).
pub(crate) fn wait_any(fds: &[RawFd], deadline: Option<Instant>) -> io::Result<Vec<usize>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        let t = timeout_ms(deadline);
        // SAFETY: `pfds` is a valid, exclusively borrowed array of `pfds.len()` pollfds.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, t) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            // poll's granularity is a millisecond; don't report a timeout early.
            if deadline.is_some_and(|d| Instant::now() < d) {
                continue;
            }
            return Ok(Vec::new());
        }
        return Ok(pfds
            .iter()
            .enumerate()
            .filter(|(_, p)| p.revents != 0)
            .map(|(i, _)| i)
            .collect());
    }
}

/// Waits until `fd` is readable (or hung up), or the deadline passes.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> io::Result<bool> {
    Ok(!wait_any(&[fd.as_raw_fd()], deadline)?.is_empty())
}

/// Is `fd` readable right now?
pub(crate) fn is_readable(fd: BorrowedFd<'_>) -> io::Result<bool> {
    wait_readable(fd, Some(Instant::now()))
}

/// A close-on-exec, non-blocking eventfd (a doorbell that `poll` sees as readable
/// while its counter is non-zero).
pub(crate) fn eventfd() -> io::Result<std::os::fd::OwnedFd> {
    super::retry(|| {
        rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )
    })
}

/// Rings an eventfd (adds 1; never blocks).
pub(crate) fn ring(fd: BorrowedFd<'_>) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

/// Resets an eventfd to silent (reads its counter; never blocks).
pub(crate) fn silence(fd: BorrowedFd<'_>) {
    let mut buf = [0u8; 8];
    let _ = rustix::io::read(fd, &mut buf);
}

/// For a bell (an eventfd) that several waiters may watch, after one woke on it or
/// before it sleeps: says whether what the bell announces is `pending()`, and if not,
/// `silence`s the bell. If it came while the bell was being silenced, it `ring`s it
/// again: the silence may have taken the ring from a waiter already asleep in `poll`,
/// which looks at the eventfd again when woken and would find it quiet.
pub(crate) fn settle(
    pending: impl Fn() -> bool,
    silence: impl FnOnce(),
    ring: impl FnOnce(),
) -> bool {
    if pending() {
        return true;
    }
    silence();
    if pending() {
        ring();
        return true;
    }
    false
}

/// A close-on-exec, non-blocking timerfd that expires every `period` (a watched fd that
/// turns readable again and again, for waits that must look at something by
/// themselves now and then).
pub(crate) fn periodic_timer(period: Duration) -> io::Result<std::os::fd::OwnedFd> {
    use rustix::time::{
        Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
        timerfd_settime,
    };
    let t = super::retry(|| {
        timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK,
        )
    })?;
    let every = Timespec {
        tv_sec: period.as_secs() as _,
        tv_nsec: period.subsec_nanos() as _,
    };
    let spec = Itimerspec {
        it_interval: every,
        it_value: every,
    };
    timerfd_settime(&t, TimerfdTimerFlags::empty(), &spec)?;
    Ok(t)
}

/// A close-on-exec, non-blocking eventfd in semaphore mode: [`ring`] adds one,
/// [`take`] takes one; `poll` sees it readable while its count is non-zero (a count of
/// ready items that any thread can wait on).
pub(crate) fn semaphore() -> io::Result<std::os::fd::OwnedFd> {
    super::retry(|| {
        rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC
                | rustix::event::EventfdFlags::NONBLOCK
                | rustix::event::EventfdFlags::SEMAPHORE,
        )
    })
}

/// Takes one from a [`semaphore`]; `false` if its count was zero (never blocks).
pub(crate) fn take(fd: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 8];
    matches!(super::retry(|| rustix::io::read(fd, &mut buf)), Ok(8))
}

/// Waits for an fd to have something: spins with non-blocking tries for a while, then
/// sleeps in a blocking one (or in `poll`, with a deadline or on a socket in
/// non-blocking mode). The one spin-then-sleep loop of the crate's receivers (stream
/// frames, packet records, Redis replies).
///
/// A receiver that does not spin and has no deadline sleeps in its first try: one
/// system call per message. One `Waiter` serves one message (or one reply): it spins
/// at most once, and every later try of the same message goes straight to sleep.
#[derive(Debug)]
pub(crate) struct Waiter {
    deadline: Option<Instant>,
    spin: Duration,
    /// When the spin ends (set at the first miss).
    spin_until: Option<Instant>,
    /// Whether the next try sleeps in the kernel.
    blocking: bool,
}

impl Waiter {
    pub(crate) fn new(deadline: Option<Instant>, spin: Duration) -> Waiter {
        Waiter {
            deadline,
            spin,
            spin_until: None,
            blocking: spin.is_zero() && deadline.is_none(),
        }
    }

    /// Runs `try_once` (told whether it must not sleep) until it is not `WouldBlock`;
    /// `Ok(None)` once the deadline has passed. A spin never runs past the deadline, so
    /// a caller that only looks (deadline now) does not spin.
    pub(crate) fn wait<T>(
        &mut self,
        fd: BorrowedFd<'_>,
        mut try_once: impl FnMut(bool) -> io::Result<T>,
    ) -> io::Result<Option<T>> {
        loop {
            let blocking = std::mem::take(&mut self.blocking);
            match try_once(!blocking) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => return other.map(Some),
            }
            if !self.spin.is_zero() {
                let now = Instant::now();
                let until = *self.spin_until.get_or_insert_with(|| {
                    let end = now + self.spin;
                    self.deadline.map_or(end, |d| d.min(end))
                });
                if now < until {
                    std::hint::spin_loop();
                    continue;
                }
                self.spin = Duration::ZERO;
            }
            if self.deadline.is_none() && !blocking {
                self.blocking = true;
                continue;
            }
            // A deadline, or a socket in non-blocking mode (where a blocking try
            // answers `WouldBlock` too): `poll` sleeps.
            if !wait_readable(fd, self.deadline)? {
                return Ok(None);
            }
        }
    }
}
