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
