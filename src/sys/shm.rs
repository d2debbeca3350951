//! Shared memory: anonymous segments (`memfd_create`), passed between processes as
//! fds, and their mappings. An anonymous segment has no name, so nothing can be left
//! behind in `/dev/shm`: it is freed when the last fd and mapping are gone, whoever
//! dies first.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use super::retry;

/// Creates an anonymous, close-on-exec shared memory file of `len` bytes (zeroed).
pub(crate) fn memfd(name: &str, len: usize) -> io::Result<OwnedFd> {
    let fd = retry(|| rustix::fs::memfd_create(name, rustix::fs::MemfdFlags::CLOEXEC))?;
    retry(|| rustix::fs::ftruncate(&fd, len as u64))?;
    Ok(fd)
}

/// The size of the file behind `fd`.
pub(crate) fn size_of(fd: BorrowedFd<'_>) -> io::Result<usize> {
    Ok(rustix::fs::fstat(fd)?.st_size as usize)
}

/// Where POSIX shared memory names live on Linux (glibc's and rustix's `shm_open`).
const SHM_DIR: &str = "/dev/shm";

/// The identity of a file: its device and inode numbers. A name that was unlinked and
/// created again names a file with another identity.
pub(crate) type FileId = (u64, u64);

/// The identity of the file behind `fd`.
pub(crate) fn file_id(fd: BorrowedFd<'_>) -> io::Result<FileId> {
    let st = rustix::fs::fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

/// A new shared memory file of `len` bytes (zeroed, mode 0600) with no name yet
/// (`O_TMPFILE` in `/dev/shm`); give it one with [`link_name`]. `Ok(None)` where the
/// file system cannot make unnamed files.
pub(crate) fn create_unnamed(len: usize) -> io::Result<Option<OwnedFd>> {
    use rustix::fs::{Mode, OFlags};
    let fd = match retry(|| {
        rustix::fs::open(
            SHM_DIR,
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
    }) {
        Ok(fd) => fd,
        Err(e)
            if [libc::EOPNOTSUPP, libc::EISDIR, libc::EINVAL]
                .contains(&e.raw_os_error().unwrap_or(0)) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    retry(|| rustix::fs::ftruncate(&fd, len as u64))?;
    Ok(Some(fd))
}

/// Gives the unnamed file `fd` (from [`create_unnamed`]) the shared memory name
/// `path` (`/name`), atomically; `AlreadyExists` if the name is taken.
pub(crate) fn link_name(fd: BorrowedFd<'_>, path: &str) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // `linkat(fd, "", ..., AT_EMPTY_PATH)` needs CAP_DAC_READ_SEARCH; the /proc link of
    // the fd does the same unprivileged.
    let from = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let to = format!("{SHM_DIR}{path}");
    retry(|| {
        rustix::fs::linkat(
            rustix::fs::CWD,
            from.as_str(),
            rustix::fs::CWD,
            to.as_str(),
            rustix::fs::AtFlags::SYMLINK_FOLLOW,
        )
    })
}

/// Unlinks the shared memory name `path` (`/name`) if it still names the file `id`;
/// `Ok(false)` if it names another file (or nothing).
///
/// Between the check and the unlink, someone could unlink the name and create it
/// again; Linux has no "unlink if it is this inode", so that window stays (a few
/// microseconds, and only against a process that re-creates a name it does not own).
pub(crate) fn unlink_if_same(path: &str, id: FileId) -> io::Result<bool> {
    let fd = match rustix::shm::open(path, rustix::shm::OFlags::RDONLY, rustix::fs::Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if file_id(fd.as_fd())? != id {
        return Ok(false);
    }
    match rustix::shm::unlink(path) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A shared, read-write mapping of a whole file; unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory; synchronisation of its contents is the job of
// the types built on it (atomics, locks).
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` shared and read-write.
    pub(crate) fn new(fd: BorrowedFd<'_>, len: usize) -> io::Result<Mapping> {
        let map_len = len.max(1);
        // SAFETY: a fresh mapping chosen by the kernel (null hint) overlaps nothing.
        let p = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                map_len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                fd.as_fd(),
                0,
            )?
        };
        let ptr =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mapping { ptr, len })
    }

    /// The start of the mapping (page aligned).
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we own this mapping; nothing borrows it past the owner's lifetime.
        unsafe {
            let _ = rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len.max(1));
        }
    }
}

/// Creates the shared memory name `path` (`/name`) exclusively, read-write for the
/// owner only, `len` bytes long; `AlreadyExists` if the name is taken. (Only where
/// unnamed files cannot be linked: see [`create_unnamed`].)
pub(crate) fn create_named(path: &str, len: usize) -> io::Result<OwnedFd> {
    use rustix::shm::OFlags;
    let fd = retry(|| {
        rustix::shm::open(
            path,
            OFlags::CREATE | OFlags::EXCL | OFlags::RDWR,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
    })?;
    if let Err(e) = retry(|| rustix::fs::ftruncate(&fd, len as u64)) {
        let _ = rustix::shm::unlink(path);
        return Err(e);
    }
    Ok(fd)
}

/// Opens the existing shared memory name `path` (`/name`) read-write; `NotFound` if
/// there is none.
pub(crate) fn open_named(path: &str) -> io::Result<OwnedFd> {
    retry(|| rustix::shm::open(path, rustix::shm::OFlags::RDWR, rustix::fs::Mode::empty()))
}

/// Removes the shared memory name `path` (`/name`), whatever file it names.
pub(crate) fn unlink_name(path: &str) -> io::Result<()> {
    retry(|| rustix::shm::unlink(path))
}

/// Writes all of `bytes` to the (fresh) file `fd`.
pub(crate) fn write_all(fd: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<()> {
    let mut written = 0;
    while written < bytes.len() {
        written += retry(|| rustix::io::write(fd, &bytes[written..]))?;
    }
    Ok(())
}

/// Fills `buf` from the start of the file `fd`; `UnexpectedEof` if the file is shorter.
pub(crate) fn read_exact_at_start(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        let n = retry(|| rustix::io::pread(fd, &mut buf[got..], got as u64))?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
    }
    Ok(())
}
