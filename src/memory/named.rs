//! Named shared memory: Python's `multiprocessing.shared_memory.SharedMemory`.
//!
//! # Cleanup when the creator dies
//!
//! A named segment lives in `/dev/shm` until someone unlinks it, even after every
//! process using it is gone. So a process that creates named segments starts, on its
//! first `create`, a small *tracker* process (spawned, detached: not joined at exit
//! and not killed with us). The creator tells it the names it creates and unlinks over
//! a pipe. When the creator dies (even by `SIGKILL`) or exits, the pipe closes and the
//! tracker unlinks every name still registered, then exits. This is what Python's
//! `resource_tracker` does.
//!
//! ## The windows around the tracker (design note)
//!
//! Two windows used to be open, as they are in Python:
//!
//! * *A leak between creation and registration.* `shm_open(O_CREAT | O_EXCL)` makes the
//!   name visible at once, and the tracker only learns it a message later (on a
//!   process's first segment, after the tracker is spawned, a millisecond or more). A
//!   creator killed in between left the name in `/dev/shm` for good.
//! * *Unlinking a name that was reused.* The tracker unlinked by name. If the name was
//!   unlinked by someone else (another process holding the segment, or our `unlink`
//!   with the tracker not yet told) and then created again by another process, the
//!   tracker removed that other process's segment when we died.
//!
//! Both are closed by naming segments by *identity* (device and inode) and making the
//! name appear only once the tracker knows it: `create` makes an unnamed file in
//! `/dev/shm` (`O_TMPFILE`), registers (name, identity) with the tracker, and only then
//! links it under its name (`linkat`, which fails if the name is taken, like
//! `O_EXCL`). A creator killed before the link leaves no name; after it, the tracker
//! knows it. The tracker (and `unlink`) removes a name only if it still names the
//! registered file. What remains: the few microseconds between that check and the
//! unlink (Linux cannot unlink "this inode only"), against a process that re-creates a
//! name it does not own in exactly that moment; and file systems without `O_TMPFILE`
//! (not tmpfs since Linux 3.11), where `create` falls back to `shm_open` and the
//! first window is open again (the second stays closed).

// Raw access to the mapping (`as_slice`, `read`, `write`); every block states its
// `SAFETY` argument.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::tracker::{Tracker, track};
use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use crate::sys::shm::Mapping;
use crate::wire::codec;
use crate::wire::handles::HandleFd;

/// A named block of shared memory that unrelated processes can open by name.
///
/// # Examples
///
/// In process 1 and process 2:
///
/// ```
/// use multiprocess::{Process, SharedMemory};
///
/// fn writer(name: String) {
///     let shm = SharedMemory::open(&name).unwrap();
///     shm.write(0, b"hello").unwrap();
/// }
///
/// multiprocess::init();
/// let shm = SharedMemory::create(None, 4096)?;
/// let mut p = Process::new(writer, shm.name().to_string());
/// p.start()?;
/// p.join()?;
/// let mut buf = [0u8; 5];
/// shm.read(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// shm.unlink()?;
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub struct SharedMemory {
    name: String,
    fd: HandleFd,
    map: Mapping,
    size: usize,
}

impl std::fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.name)
            .field("size", &self.size)
            .finish()
    }
}

/// A fresh default name: `mp-` and 16 hex digits from the OS's random bytes (Python:
/// `psm_` and `secrets.token_hex(4)`; Linux has no 31-byte limit, so 64 bits).
fn random_name() -> Result<String> {
    let bytes: [u8; 8] = sys::random_bytes()
        .map_err(|e| Error::io("reading random bytes for a shared memory name", e))?;
    Ok(format!("mp-{:016x}", u64::from_le_bytes(bytes)))
}

fn shm_path(name: &str) -> Result<String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() || bare.contains('/') || bare.len() > 250 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("invalid shared memory name {name:?}"),
        ));
    }
    Ok(format!("/{bare}"))
}

fn map_err(name: &str, e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::AlreadyExists => Error::new(
            ErrorKind::AlreadyExists,
            format!("shared memory {name:?} already exists"),
        ),
        std::io::ErrorKind::NotFound => Error::new(
            ErrorKind::NotFound,
            format!("shared memory {name:?} does not exist"),
        ),
        _ => Error::io(&format!("shared memory {name:?}"), e),
    }
}

impl SharedMemory {
    fn from_fd(name: String, fd: OwnedFd, size: usize) -> Result<Self> {
        let map = Mapping::new(fd.as_fd(), size).map_err(|e| Error::io("mmap", e))?;
        Ok(SharedMemory {
            name,
            fd: HandleFd::new(fd),
            map,
            size,
        })
    }

    /// Creates a new segment of `size` bytes (zeroed) named `name`, or a fresh random
    /// name when `None` (`mp-` and 16 hex digits from the OS, as Python's `secrets`).
    /// The segment is unlinked automatically if this process dies
    /// without unlinking it (see the module docs).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AlreadyExists`] if the name is taken; [`ErrorKind::InvalidInput`]
    /// for a name with `/` inside or an empty one; [`ErrorKind::Io`] otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{ErrorKind, SharedMemory};
    /// multiprocess::init();
    /// let a = SharedMemory::create(None, 100)?;
    /// assert_eq!(a.size(), 100);
    /// let err = SharedMemory::create(Some(a.name()), 100).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    /// a.unlink()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn create(name: Option<&str>, size: usize) -> Result<Self> {
        let Some(name) = name else {
            // Python's `secrets.token_hex`: a random name, tried again in the unlikely
            // case it is taken (as Python does), so nothing about this process (pid,
            // counter, clock) can be read from or guessed in `/dev/shm`.
            let mut tries = 0;
            loop {
                match Self::create_as(random_name()?, size) {
                    Err(e) if e.kind() == ErrorKind::AlreadyExists && tries < 16 => tries += 1,
                    r => return r,
                }
            }
        };
        Self::create_as(name.strip_prefix('/').unwrap_or(name).to_string(), size)
    }

    fn create_as(name: String, size: usize) -> Result<Self> {
        let path = shm_path(&name)?;
        let io = |what: &str, e: std::io::Error| Error::io(&format!("{what} {name:?}"), e);
        let Some(fd) = sys::shm::create_unnamed(size).map_err(|e| io("shared memory", e))? else {
            return Self::create_named(name, &path, size);
        };
        // Registered before it has a name (see "The windows around the tracker").
        let id = sys::shm::file_id(fd.as_fd()).map_err(|e| io("fstat of", e))?;
        track(Tracker::Register(path.clone(), id))?;
        if let Err(e) = sys::shm::link_name(fd.as_fd(), &path) {
            let _ = track(Tracker::Unregister(path.clone(), id));
            return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
                map_err(&name, e)
            } else {
                io("naming shared memory", e)
            });
        }
        Self::from_fd(name.clone(), fd, size).inspect_err(|_| {
            let _ = sys::shm::unlink_if_same(&path, id);
            let _ = track(Tracker::Unregister(path.clone(), id));
        })
    }

    /// `create` where unnamed files are not supported: `shm_open(O_EXCL)`, then
    /// registration (a creator killed in between leaks the name).
    fn create_named(name: String, path: &str, size: usize) -> Result<Self> {
        let fd = sys::shm::create_named(path, size).map_err(|e| map_err(&name, e))?;
        let made = (|| {
            let id = sys::shm::file_id(fd.as_fd()).map_err(|e| Error::io("fstat", e))?;
            track(Tracker::Register(path.to_string(), id))?;
            Self::from_fd(name.clone(), fd, size)
        })();
        if made.is_err() {
            let _ = sys::shm::unlink_name(path);
        }
        made
    }

    /// Opens an existing segment by name (created here or in any other process).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] if there is no such segment.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{ErrorKind, SharedMemory};
    /// let err = SharedMemory::open("surely-not-there-12345").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::NotFound);
    /// ```
    pub fn open(name: &str) -> Result<Self> {
        let bare = name.strip_prefix('/').unwrap_or(name).to_string();
        let path = shm_path(&bare)?;
        let fd = sys::shm::open_named(&path).map_err(|e| map_err(&bare, e))?;
        let size = sys::shm::size_of(fd.as_fd()).map_err(|e| Error::io("fstat", e))?;
        Self::from_fd(bare, fd, size)
    }

    /// The name (without a leading `/`).
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let shm = multiprocess::SharedMemory::create(None, 1)?;
    /// assert!(shm.name().starts_with("mp-"));
    /// shm.unlink()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The size in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let shm = multiprocess::SharedMemory::create(None, 10)?;
    /// assert_eq!(shm.size(), 10);
    /// shm.unlink()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn size(&self) -> usize {
        self.size
    }

    fn check(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "bytes {offset}..{} are outside a segment of {} bytes",
                    offset.saturating_add(len),
                    self.size
                ),
            )),
        }
    }

    /// Copies bytes at `offset` into `buf`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if the range is outside the segment.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let shm = multiprocess::SharedMemory::create(None, 8)?;
    /// let mut buf = [1u8; 8];
    /// shm.read(0, &mut buf)?;
    /// assert_eq!(buf, [0; 8]);
    /// shm.unlink()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.check(offset, buf.len())?;
        #[allow(unsafe_code)]
        // SAFETY: the range is inside the mapping (checked); `buf` is exclusive.
        unsafe {
            std::ptr::copy(self.map.as_ptr().add(offset), buf.as_mut_ptr(), buf.len())
        };
        Ok(())
    }

    /// Copies `data` into the segment at `offset`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if the range is outside the segment.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let shm = multiprocess::SharedMemory::create(None, 4)?;
    /// shm.write(1, b"ab")?;
    /// assert!(shm.write(3, b"ab").is_err());
    /// shm.unlink()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check(offset, data.len())?;
        #[allow(unsafe_code)]
        // SAFETY: the range is inside the mapping (checked).
        unsafe {
            std::ptr::copy(data.as_ptr(), self.map.as_ptr().add(offset), data.len())
        };
        Ok(())
    }

    /// The start of the mapping, for your own synchronised access.
    ///
    /// # Safety
    ///
    /// Dereferencing it is up to you: other processes may write the bytes at any time,
    /// so coordinate with a [`Lock`](crate::Lock) or atomics; stay within
    /// [`size`](SharedMemory::size) bytes; the pointer dangles once `self` is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let shm = multiprocess::SharedMemory::create(None, 4)?;
    /// // SAFETY: no other process has this segment yet; 4 bytes are in bounds.
    /// unsafe { shm.as_ptr().write_bytes(7, 4) };
    /// let mut b = [0u8; 4];
    /// shm.read(0, &mut b)?;
    /// assert_eq!(b, [7; 4]);
    /// shm.unlink()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_ptr()
    }

    /// The whole segment as bytes, to read in place (no copy, unlike
    /// [`read`](SharedMemory::read)).
    ///
    /// # Safety
    ///
    /// While the slice lives, nobody may write these bytes: not another thread or
    /// process through its own handle or mapping of the segment (by name or received
    /// through a connection), not [`write`](SharedMemory::write),
    /// [`as_mut_slice`](SharedMemory::as_mut_slice) or [`as_ptr`](SharedMemory::as_ptr).
    /// Rust assumes the bytes behind a `&[u8]` do not change: a concurrent write is
    /// undefined behaviour, not merely a torn read. Make sure of it with your own
    /// protocol (a [`Lock`](crate::Lock) held by every writer and by you meanwhile, a
    /// [`Barrier`](crate::Barrier) after the writers are done, a message saying so).
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let shm = multiprocess::SharedMemory::create(None, 4)?;
    /// shm.write(0, b"abcd")?;
    /// // SAFETY: the segment is ours alone: no other process knows its name yet.
    /// let bytes = unsafe { shm.as_slice() };
    /// assert_eq!(bytes, b"abcd");
    /// shm.unlink()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is `size` bytes, initialised (zero-filled by the kernel),
        // and lives as long as `self`; the caller promises no concurrent writer.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), self.size) }
    }

    /// The whole segment as mutable bytes, to write in place.
    ///
    /// # Safety
    ///
    /// While the slice lives, nobody else may read or write these bytes: not another
    /// thread or process through its own handle or mapping of the segment, nor
    /// anything reading through [`as_ptr`](SharedMemory::as_ptr). (`&mut self` rules out
    /// this handle's other methods; the rest is up to your protocol, as for
    /// [`as_slice`](SharedMemory::as_slice).)
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let mut shm = multiprocess::SharedMemory::create(None, 8)?;
    /// // SAFETY: the segment is ours alone: no other process knows its name yet.
    /// let bytes = unsafe { shm.as_mut_slice() };
    /// bytes.copy_from_slice(b"12345678");
    /// let mut buf = [0u8; 8];
    /// shm.read(0, &mut buf)?;
    /// assert_eq!(&buf, b"12345678");
    /// shm.unlink()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; `&mut self` and the caller's promise make this the
        // only access while the slice lives.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_ptr(), self.size) }
    }

    /// Removes the name from the system; processes that have the segment open keep it
    /// until they drop it. Python's `unlink()`.
    ///
    /// Only this segment's name is removed: if the name was unlinked already and then
    /// created again (another segment now), it is left alone.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] if the name was already unlinked (whether or not it
    /// names another segment now).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::ErrorKind;
    /// multiprocess::init();
    /// let shm = multiprocess::SharedMemory::create(None, 4)?;
    /// shm.unlink()?;
    /// assert_eq!(shm.unlink().unwrap_err().kind(), ErrorKind::NotFound);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn unlink(&self) -> Result<()> {
        let path = shm_path(&self.name)?;
        let id = sys::shm::file_id(self.fd.as_fd()).map_err(|e| Error::io("fstat", e))?;
        let removed = sys::shm::unlink_if_same(&path, id)
            .map_err(|e| Error::io(&format!("shared memory {:?}", self.name), e))?;
        let _ = track(Tracker::Unregister(path, id));
        if !removed {
            return Err(map_err(&self.name, std::io::ErrorKind::NotFound.into()));
        }
        Ok(())
    }
}

impl AsFd for SharedMemory {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Serialize for SharedMemory {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        struct Fd<'a>(BorrowedFd<'a>);
        impl Serialize for Fd<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                codec::serialize_fd(self.0, s)
            }
        }
        (&self.name, Fd(self.fd.as_fd())).serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedMemory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Fd(OwnedFd);
        impl<'de> Deserialize<'de> for Fd {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                codec::deserialize_fd(d).map(Fd)
            }
        }
        let (name, Fd(fd)) = <(String, Fd)>::deserialize(d)?;
        let size = sys::shm::size_of(fd.as_fd()).map_err(serde::de::Error::custom)?;
        SharedMemory::from_fd(name, fd, size).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::random_name;

    #[test]
    fn default_names_are_random_hex() {
        let a = random_name().unwrap();
        let b = random_name().unwrap();
        assert_ne!(a, b);
        for n in [&a, &b] {
            let hex = n.strip_prefix("mp-").expect("prefix");
            assert_eq!(hex.len(), 16, "{n}");
            assert!(hex.bytes().all(|c| c.is_ascii_hexdigit()), "{n}");
        }
    }
}
