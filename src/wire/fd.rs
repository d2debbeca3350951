//! [`Fd`]: any file descriptor as a value, Python's `multiprocessing.reduction`
//! `send_handle`/`recv_handle`.
//!
//! An `Fd` serializes as the index of its descriptor in the message's fd table, as the
//! crate's own handles do (see [`codec`](super::codec)): it travels with `SCM_RIGHTS`
//! through connections, queues, pool tasks and a spawned or fork-server child's boot
//! message, and is inherited (and duplicated) by a forked child. The receiver gets its
//! own descriptor for the same open file description (file offset, socket, pidfd),
//! as `dup` would give; the sender keeps its own until it drops it.
//!
//! While an `Fd` lives it is registered with the other handles
//! ([`handles`](super::handles)), so a child forked meanwhile for an unrelated task
//! closes its inherited copy (a socket's peer then sees end of stream when we drop
//! ours, not when that child ends).

use std::fmt;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::codec;
use super::handles::HandleFd;
use crate::error::{Error, Result};

/// An owned file descriptor that can be sent to another process: a file, a socket, a
/// pipe end, a pidfd, an `eventfd`, anything. Put it in a child's args, or send it
/// through a [`Connection`](crate::Connection) or a [`Queue`](crate::Queue).
///
/// Like every handle, it only serializes through the crate's own messages; through
/// another serde format (JSON) it is an error, since an fd number means nothing in
/// another process.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
/// use multiprocess::{Fd, Process};
///
/// fn greet(sock: Fd) {
///     let mut s = UnixStream::from(sock.into_owned());
///     s.write_all(b"hello through a passed socket").unwrap();
/// }
///
/// multiprocess::init();
/// let (mut mine, theirs) = UnixStream::pair()?;
/// let mut p = Process::new(greet, Fd::new(theirs));
/// p.start()?; // the child now owns the other end; our copy went with the args
/// let mut got = String::new();
/// mine.read_to_string(&mut got)?;
/// p.join()?;
/// assert_eq!(got, "hello through a passed socket");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Fd(HandleFd);

impl fmt::Debug for Fd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Fd").field(&self.0.as_raw_fd()).finish()
    }
}

impl Fd {
    /// Wraps any owned descriptor (`File`, `TcpStream`, `UnixStream`, `OwnedFd`, ...).
    ///
    /// # Examples
    ///
    /// ```
    /// let f = multiprocess::Fd::new(std::fs::File::open("/dev/null")?);
    /// # drop(f);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(fd: impl Into<OwnedFd>) -> Self {
        Fd(HandleFd::new(fd.into()))
    }

    /// The descriptor, to make a `File`, a socket, ... of it again (`File::from(..)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// let fd = multiprocess::Fd::new(std::fs::File::create("/dev/null")?);
    /// std::fs::File::from(fd.into_owned()).write_all(b"x")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_owned(self) -> OwnedFd {
        self.0.into_inner()
    }

    /// The descriptor as a `File` (for files, pipes and anything read and written).
    ///
    /// # Examples
    ///
    /// ```
    /// let fd = multiprocess::Fd::new(std::fs::File::open("/dev/null")?);
    /// assert_eq!(std::io::read_to_string(fd.into_file())?, "");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_file(self) -> File {
        File::from(self.into_owned())
    }

    /// A second `Fd` for the same open file description (`dup`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) if the process is out of descriptors.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiprocess::Fd::new(std::fs::File::open("/dev/null")?);
    /// let b = a.try_clone()?;
    /// assert_ne!(
    ///     std::os::fd::AsRawFd::as_raw_fd(&a),
    ///     std::os::fd::AsRawFd::as_raw_fd(&b)
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_clone(&self) -> Result<Fd> {
        let fd = crate::sys::socket::dup(self.as_fd()).map_err(|e| Error::io("dup", e))?;
        Ok(Fd::new(fd))
    }
}

impl From<OwnedFd> for Fd {
    fn from(fd: OwnedFd) -> Self {
        Fd::new(fd)
    }
}

impl From<File> for Fd {
    fn from(f: File) -> Self {
        Fd::new(f)
    }
}

impl From<Fd> for OwnedFd {
    fn from(fd: Fd) -> Self {
        fd.into_owned()
    }
}

impl AsFd for Fd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Serialize for Fd {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        codec::serialize_fd(self.as_fd(), s)
    }
}

impl<'de> Deserialize<'de> for Fd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        codec::deserialize_fd(d).map(Fd::new)
    }
}
