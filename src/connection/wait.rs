//! `multiprocess::wait`: Python's `multiprocessing.connection.wait`.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::sys;

/// Something [`wait`] can watch: it becomes *ready* when a read would not block
/// (a connection with a message or a closed peer, a process that has ended).
///
/// # Examples
///
/// ```
/// use std::os::fd::BorrowedFd;
/// use multiprocess::{Result, Waitable};
/// /// Your own pollable object joins `wait()` by exposing its fd.
/// struct Timerish(std::os::fd::OwnedFd);
/// impl Waitable for Timerish {
///     fn wait_fd(&self) -> Result<BorrowedFd<'_>> {
///         Ok(std::os::fd::AsFd::as_fd(&self.0))
///     }
/// }
/// ```
pub trait Waitable {
    /// The fd whose readability means "ready".
    ///
    /// # Errors
    ///
    /// When the object has nothing to wait on (a process not yet started).
    fn wait_fd(&self) -> Result<BorrowedFd<'_>>;

    /// Called by [`wait`] before it sleeps: register interest, and say whether the
    /// object is ready already. Objects whose fd is not readable by itself when they are
    /// ready (a queue in shared memory) use it; the default does nothing.
    #[doc(hidden)]
    fn wait_begin(&self) -> bool {
        false
    }

    /// Called by [`wait`] after it woke: withdraw the interest of `wait_begin`.
    #[doc(hidden)]
    fn wait_end(&self) {}
}

impl<T> Waitable for crate::Connection<T> {
    fn wait_fd(&self) -> Result<BorrowedFd<'_>> {
        Ok(std::os::fd::AsFd::as_fd(self))
    }
}

/// Waits until at least one of `objects` is ready, or `timeout` passes; returns the
/// indices of the ready ones (empty on timeout).
///
/// # Errors
///
/// If an object cannot be waited on (see [`Waitable::wait_fd`]) or `poll` fails.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use multiprocess::Waitable;
/// multiprocess::init();
/// let (a1, b1) = multiprocess::pipe::<u8>()?;
/// let (_a2, b2) = multiprocess::pipe::<u8>()?;
/// a1.send(&1)?;
/// let ready = multiprocess::wait(&[&b1 as &dyn Waitable, &b2], Some(Duration::from_secs(1)))?;
/// assert_eq!(ready, vec![0]);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub fn wait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> Result<Vec<usize>> {
    let deadline = sys::deadline_after_opt(timeout);
    let fds = objects
        .iter()
        .map(|o| o.wait_fd().map(|f| f.as_raw_fd()))
        .collect::<Result<Vec<_>>>()?;
    let ready_now: Vec<usize> = (0..objects.len())
        .filter(|&i| objects[i].wait_begin())
        .collect();
    let result = if ready_now.is_empty() {
        sys::poll::wait_any(&fds, deadline).map_err(|e| Error::io("poll", e))
    } else {
        Ok(ready_now)
    };
    for o in objects {
        o.wait_end();
    }
    result
}
