//! A small anonymous shared-memory segment holding a primitive's atomic words, passed
//! to other processes as an fd (see `wire::codec`).

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU32, AtomicU64};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::raw::RawLock;
use crate::error::{Error, ErrorKind, Result};
use crate::sys::shm::{self, Mapping};
use crate::wire::codec;
use crate::wire::handles::HandleFd;

/// A shared segment of `words` 32-bit atomics (and room for more data after them).
#[derive(Debug)]
pub(crate) struct Segment {
    fd: HandleFd,
    map: Mapping,
}

impl Segment {
    /// A new zeroed segment of `len` bytes.
    pub(crate) fn new(name: &str, len: usize) -> Result<Segment> {
        let fd = shm::memfd(name, len).map_err(|e| Error::io("memfd_create", e))?;
        let map = Mapping::new(fd.as_fd(), len).map_err(|e| Error::io("mmap", e))?;
        Ok(Segment {
            fd: HandleFd::new(fd),
            map,
        })
    }

    /// The `i`-th 32-bit word.
    #[inline]
    pub(crate) fn word(&self, i: usize) -> &AtomicU32 {
        assert!(
            (i + 1) * 4 <= self.map.len(),
            "word {i} is outside the segment"
        );
        #[allow(unsafe_code)]
        // SAFETY: in bounds (checked), page-aligned base so 4-aligned, and the memory is
        // only ever accessed atomically as u32 at this offset, by every process.
        unsafe {
            &*(self.map.as_ptr().add(i * 4) as *const AtomicU32)
        }
    }

    /// The lock whose word is `word64(word)`, whose sleeper count is `word(sleepers)`
    /// and whose sleepers' futex is the word after that.
    #[inline]
    pub(crate) fn raw_lock(&self, word: usize, sleepers: usize) -> RawLock<'_> {
        // One check for the three words: the compiler drops each accessor's own check,
        // three compares and branches less on every acquire and release.
        let len = self.map.len();
        assert!(
            (word + 1) * 8 <= len && (sleepers + 2) * 4 <= len,
            "a lock's words are outside the segment"
        );
        RawLock {
            word: self.word64(word),
            sleepers: self.word(sleepers),
            seq: self.word(sleepers + 1),
        }
    }

    /// The 64-bit atomic at byte offset `8 * i`.
    #[inline]
    pub(crate) fn word64(&self, i: usize) -> &AtomicU64 {
        assert!(
            (i + 1) * 8 <= self.map.len(),
            "word64 {i} is outside the segment"
        );
        #[allow(unsafe_code)]
        // SAFETY: in bounds (checked), 8-aligned (page-aligned base), and only ever
        // accessed atomically as u64 at this offset, by every process.
        unsafe {
            &*(self.map.as_ptr().add(i * 8) as *const AtomicU64)
        }
    }

    /// Copies `src` into the segment at byte `offset`.
    ///
    /// # Safety
    ///
    /// No other thread or process may read or write these bytes at the same time (the
    /// caller's protocol of locks and acquire/release counters must ensure it): a
    /// concurrent access is a data race.
    ///
    /// # Panics
    ///
    /// If the range is outside the segment.
    #[inline]
    #[allow(unsafe_code)]
    pub(crate) unsafe fn write_at(&self, offset: usize, src: &[u8]) {
        assert!(
            offset
                .checked_add(src.len())
                .is_some_and(|end| end <= self.map.len()),
            "write outside the segment"
        );
        #[allow(unsafe_code)]
        // SAFETY: in bounds (checked); no concurrent access (the caller's promise);
        // `copy` (memmove) allows `src` to overlap the mapping.
        unsafe {
            std::ptr::copy(src.as_ptr(), self.map.as_ptr().add(offset), src.len())
        }
    }

    /// Copies bytes at `offset` out of the segment into `dst`.
    ///
    /// # Safety
    ///
    /// No other thread or process may write these bytes at the same time.
    ///
    /// # Panics
    ///
    /// If the range is outside the segment.
    #[inline]
    #[allow(unsafe_code)]
    pub(crate) unsafe fn read_at(&self, offset: usize, dst: &mut [u8]) {
        assert!(
            offset
                .checked_add(dst.len())
                .is_some_and(|end| end <= self.map.len()),
            "read outside the segment"
        );
        #[allow(unsafe_code)]
        // SAFETY: in bounds (checked); `dst` is exclusively borrowed; no concurrent
        // writer (the caller's promise).
        unsafe {
            std::ptr::copy(self.map.as_ptr().add(offset), dst.as_mut_ptr(), dst.len())
        }
    }

    /// A view of `len` bytes at `offset`, for reading in place.
    ///
    /// # Safety
    ///
    /// No thread or process may write these bytes while the view lives (for the queue:
    /// the record is published and not yet freed, and the caller holds the consumer
    /// lock).
    ///
    /// # Panics
    ///
    /// If the range is outside the segment.
    #[allow(unsafe_code)]
    pub(crate) unsafe fn view(&self, offset: usize, len: usize) -> &[u8] {
        assert!(
            offset
                .checked_add(len)
                .is_some_and(|end| end <= self.map.len()),
            "view outside the segment"
        );
        #[allow(unsafe_code)]
        // SAFETY: in bounds (checked) and initialised (shared memory is zero-filled);
        // by the caller's protocol no writer touches it while the view lives.
        unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().add(offset), len)
        }
    }

    /// The start of the segment (used by `Value`/`Array`).
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.map.as_ptr()
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

impl AsFd for Segment {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Serialize for Segment {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        codec::serialize_fd(self.fd.as_fd(), s)
    }
}

impl<'de> Deserialize<'de> for Segment {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let fd = codec::deserialize_fd(d)?;
        let len = shm::size_of(fd.as_fd()).map_err(serde::de::Error::custom)?;
        let map = Mapping::new(fd.as_fd(), len).map_err(|e| {
            serde::de::Error::custom(Error::new(ErrorKind::Io, format!("mmap: {e}")))
        })?;
        Ok(Segment {
            fd: HandleFd::new(fd),
            map,
        })
    }
}

/// Implements `Serialize`/`Deserialize` for a primitive that is a handle on one
/// `seg: Arc<Segment>`: it travels as the segment's fd.
macro_rules! serde_by_segment {
    ($t:ident) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                serde::Serialize::serialize(&*self.seg, s)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let seg = std::sync::Arc::new(
                    <$crate::sync::segment::Segment as serde::Deserialize>::deserialize(d)?,
                );
                Ok($t { seg })
            }
        }
    };
}
pub(crate) use serde_by_segment;
