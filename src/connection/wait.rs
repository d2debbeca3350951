//! `multiprocess::wait`: Python's `multiprocessing.connection.wait`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
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

    /// A second fd whose readability may mean "ready" (a pipe's lane bell), to confirm
    /// with [`wait_settle`](Waitable::wait_settle); while any object has one, [`wait`]
    /// also looks at [`wait_ready`](Waitable::wait_ready) every `lane::SLICE`.
    #[doc(hidden)]
    fn wait_bell(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// The second fd was readable: is the object ready? (It may silence a stale bell.)
    #[doc(hidden)]
    fn wait_settle(&self) -> bool {
        false
    }

    /// Is the object ready by what its fds do not show? (No registration, unlike
    /// `wait_begin`.)
    #[doc(hidden)]
    fn wait_ready(&self) -> bool {
        false
    }
}

/// A raw fd: ready when it is readable (or hung up), as `poll(2)` says. For sockets,
/// pipes, eventfds, pidfds (a process's [`sentinel`](crate::Process::sentinel), or
/// [`ParentProcess::sentinel`](crate::ParentProcess::sentinel)), timerfds...
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use std::os::fd::AsFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use multiprocess::Waitable;
/// let (mut a, b) = UnixStream::pair()?;
/// let fd = b.as_fd();
/// assert!(multiprocess::wait(&[&fd as &dyn Waitable], Some(Duration::ZERO))?.is_empty());
/// a.write_all(b"x")?;
/// assert_eq!(multiprocess::wait(&[&fd as &dyn Waitable], None)?, vec![0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl Waitable for BorrowedFd<'_> {
    fn wait_fd(&self) -> Result<BorrowedFd<'_>> {
        Ok(*self)
    }
}

/// An owned fd: as for [`BorrowedFd`].
///
/// # Examples
///
/// ```
/// use std::os::fd::OwnedFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use multiprocess::Waitable;
/// let (a, b) = UnixStream::pair()?;
/// let b = OwnedFd::from(b);
/// drop(a); // a closed peer makes `b` readable (end of file)
/// assert_eq!(multiprocess::wait(&[&b as &dyn Waitable], Some(Duration::from_secs(5)))?, vec![0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl Waitable for OwnedFd {
    fn wait_fd(&self) -> Result<BorrowedFd<'_>> {
        Ok(self.as_fd())
    }
}

impl<T> Waitable for crate::Connection<T> {
    fn wait_fd(&self) -> Result<BorrowedFd<'_>> {
        Ok(self.as_fd())
    }
    fn wait_begin(&self) -> bool {
        self.lane_has_message()
    }
    fn wait_bell(&self) -> Option<BorrowedFd<'_>> {
        self.lane_bell()
    }
    fn wait_settle(&self) -> bool {
        self.lane_settle_bell()
    }
    fn wait_ready(&self) -> bool {
        self.lane_has_message()
    }
}

/// A reference to something waitable is waitable: lists of `&Connection`, `&Process`
/// or `&dyn Waitable` work as lists of the objects.
impl<T: Waitable + ?Sized> Waitable for &T {
    fn wait_fd(&self) -> Result<BorrowedFd<'_>> {
        (**self).wait_fd()
    }
    fn wait_begin(&self) -> bool {
        (**self).wait_begin()
    }
    fn wait_end(&self) {
        (**self).wait_end()
    }
    fn wait_bell(&self) -> Option<BorrowedFd<'_>> {
        (**self).wait_bell()
    }
    fn wait_settle(&self) -> bool {
        (**self).wait_settle()
    }
    fn wait_ready(&self) -> bool {
        (**self).wait_ready()
    }
}

/// What [`wait`] takes: a slice, an array or a `Vec` of one [`Waitable`] type, by
/// value or by reference (`&[Connection<T>]`, `Vec<Process<A>>`, `Vec<&JoinHandle<R>>`),
/// or of `&dyn Waitable` to mix types.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// multiprocess::init();
/// let pipes = (0..3).map(|_| multiprocess::pipe::<u8>()).collect::<Result<Vec<_>, _>>()?;
/// pipes[2].0.send(&7)?;
/// let readers: Vec<_> = pipes.iter().map(|(_, b)| b).collect(); // Vec<&Connection<u8>>
/// assert_eq!(multiprocess::wait(&readers, Some(Duration::from_secs(5)))?, [2]);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub trait WaitList {
    /// The objects, in order.
    fn waitables(&self) -> Vec<&dyn Waitable>;
}

impl<T: Waitable> WaitList for [T] {
    fn waitables(&self) -> Vec<&dyn Waitable> {
        self.iter().map(|o| o as &dyn Waitable).collect()
    }
}

impl<T: Waitable, const N: usize> WaitList for [T; N] {
    fn waitables(&self) -> Vec<&dyn Waitable> {
        self.iter().map(|o| o as &dyn Waitable).collect()
    }
}

impl<T: Waitable> WaitList for Vec<T> {
    fn waitables(&self) -> Vec<&dyn Waitable> {
        self.iter().map(|o| o as &dyn Waitable).collect()
    }
}

/// Waits until at least one of `objects` is ready, or `timeout` passes (`None`, or a
/// timeout too long to represent such as `Duration::MAX`: forever); returns the
/// indices of the ready ones (empty on timeout).
///
/// Objects are connections, processes ([`Process`](crate::Process),
/// [`JoinHandle`](crate::JoinHandle)), queues, and raw fds ([`BorrowedFd`],
/// [`OwnedFd`]). A list of one type is taken as it is (`wait(&conns, t)` for a
/// `Vec<Connection<T>>`, `&[Process<A>]`, a `Vec<&T>`: see [`WaitList`]); to mix
/// types, make the first element a `&dyn Waitable` (`&[&a as &dyn Waitable, &p]`).
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
/// let ready = multiprocess::wait(&[&b1, &b2], Some(Duration::from_secs(1)))?;
/// assert_eq!(ready, vec![0]);
/// // Mixed types: a connection and a raw fd.
/// let fd = std::os::fd::AsFd::as_fd(&b2);
/// let ready = multiprocess::wait(&[&b1 as &dyn Waitable, &fd], Some(Duration::from_secs(1)))?;
/// assert_eq!(ready, vec![0]);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub fn wait<L: WaitList + ?Sized>(objects: &L, timeout: Option<Duration>) -> Result<Vec<usize>> {
    let objects = objects.waitables();
    let deadline = sys::deadline_after_opt(timeout);
    // Each object's fd, and a pipe's lane bell beside it: (fd, object, is a bell).
    let mut fds = Vec::with_capacity(objects.len());
    let mut whose = Vec::with_capacity(objects.len());
    for (i, o) in objects.iter().enumerate() {
        fds.push(o.wait_fd()?.as_raw_fd());
        whose.push((i, false));
        if let Some(b) = o.wait_bell() {
            fds.push(b.as_raw_fd());
            whose.push((i, true));
        }
    }
    let sliced = whose.iter().any(|&(_, bell)| bell);
    let mut ready: Vec<usize> = (0..objects.len())
        .filter(|&i| objects[i].wait_begin())
        .collect();
    let result = loop {
        // Some are ready already (a queue holding an item): still report every other
        // one that is ready now, as Python's `wait` returns all the ready objects.
        let now = std::time::Instant::now();
        let until = if !ready.is_empty() {
            Some(now)
        } else if sliced {
            // A message in a pipe's lane may come without a bell (see `lane`).
            let slice = now + super::lane::SLICE;
            Some(deadline.map_or(slice, |d| d.min(slice)))
        } else {
            deadline
        };
        match sys::poll::wait_any(&fds, until) {
            Ok(polled) => {
                for k in polled {
                    let (i, bell) = whose[k];
                    if !bell || objects[i].wait_settle() {
                        ready.push(i);
                    }
                }
            }
            Err(e) => break Err(Error::io("poll", e)),
        }
        if ready.is_empty() && sliced {
            ready.extend((0..objects.len()).filter(|&i| objects[i].wait_ready()));
        }
        if !ready.is_empty() || deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            ready.sort_unstable();
            ready.dedup();
            break Ok(std::mem::take(&mut ready));
        }
    };
    for o in &objects {
        o.wait_end();
    }
    result
}
