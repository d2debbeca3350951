//! The locks every copy of a connection end shares: whole messages across processes.
//!
//! Each end has a slot of four words in a small shared segment (memfd), created with
//! the end and serialized with it (the segment's fd rides in the side table as the
//! socket's does), so every process and thread holding a copy of the end uses the same
//! words:
//!
//! ```text
//! slot (one cache line per end):
//!   bytes 0..8    send lock      the crate's robust lock (`sync::raw`, a 64-bit word)
//!   bytes 8..16   receive lock   idem
//!   bytes 16..20  send mark      AT_BOUNDARY | MID_FRAME | BROKEN
//!   bytes 20..24  receive mark   idem
//! ```
//!
//! A sender holds the send lock for a whole frame and keeps the send mark at
//! `MID_FRAME` meanwhile; a receiver holds the receive lock for a whole frame, and the
//! frame reader keeps the receive mark (see `wire::frame`). Whoever acquires a lock
//! whose holder died (`owner_died`) reads the mark: at a boundary, nothing was lost
//! but the dead holder's own message. Mid-frame, over a sequenced-packet socket (a
//! pipe), the next sender sends sync records before its own frame (`wire::packet`):
//! the receivers report the cut frame, if there is one, and the direction goes on.
//! (Over packets a send that failed leaves the mark `MID_FRAME` too: its records may
//! have been cut by the error.)
//! Mid-frame over a stream, the byte stream is cut inside a frame and no later frame
//! can be found again, so the direction is marked `BROKEN`, shut down (the peer's
//! receiver reads a truncated frame, a `Protocol` error, then end of file; or the
//! peer's senders get `Disconnected`), and every later operation in that direction on
//! this end is a `Protocol` error that says why. A receive that fails after it
//! consumed part of a frame (bad magic, over the size limit) leaves the stream
//! mid-frame too and breaks the direction the same way. (Over a pipe the receive mark
//! is never set: records are whole.)

use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, ErrorKind, Result};
use crate::sync::raw;
use crate::sync::segment::Segment;
use crate::sys;
use crate::wire::frame::{AT_BOUNDARY, MID_FRAME};
use crate::wire::packet;

/// A mark: this direction of the end is unusable (see the module docs).
const BROKEN: u32 = 2;

/// Bytes per end: one cache line, so that two ends never share one.
const SLOT: usize = 64;
const WORDS_PER_SLOT: usize = SLOT / 4;
const LOCKS_PER_SLOT: usize = SLOT / 8;

/// 64-bit word indices in a slot.
const SEND_LOCK: usize = 0;
const RECV_LOCK: usize = 1;
/// 32-bit word indices in a slot (after the two locks).
const SEND_MARK: usize = 4;
const RECV_MARK: usize = 5;
/// The locks' sleeper counts, each followed by its sleepers' futex word.
const SEND_SLEEPERS: usize = 6;
const RECV_SLEEPERS: usize = 8;

/// Where a pipe's lanes start in its segment: after its two ends' slots.
pub(super) const PIPE_LANES_AT: usize = 2 * SLOT;

/// A direction of an end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    Send,
    Recv,
}

impl Dir {
    fn lock(self) -> usize {
        match self {
            Dir::Send => SEND_LOCK,
            Dir::Recv => RECV_LOCK,
        }
    }
    fn mark(self) -> usize {
        match self {
            Dir::Send => SEND_MARK,
            Dir::Recv => RECV_MARK,
        }
    }
    fn sleepers(self) -> usize {
        match self {
            Dir::Send => SEND_SLEEPERS,
            Dir::Recv => RECV_SLEEPERS,
        }
    }
}

/// One end's locks: a slot in a shared segment.
#[derive(Debug, Clone)]
pub(super) struct EndLocks {
    seg: Arc<Segment>,
    slot: usize,
}

impl EndLocks {
    /// Locks for `n` new ends in one segment (a pipe's two ends share one).
    pub(super) fn new_ends<const N: usize>() -> Result<[EndLocks; N]> {
        let seg = Arc::new(Segment::new("multiprocess-connection", N * SLOT)?);
        Ok(std::array::from_fn(|slot| EndLocks {
            seg: seg.clone(),
            slot,
        }))
    }

    /// Locks for the two ends of a pipe, in a segment of `len` bytes: room for the
    /// pipe's two lanes after them (see `lane`), from byte [`PIPE_LANES_AT`].
    pub(super) fn new_pipe(len: usize) -> Result<[EndLocks; 2]> {
        let seg = Arc::new(Segment::new("multiprocess-pipe", len)?);
        Ok(std::array::from_fn(|slot| EndLocks {
            seg: seg.clone(),
            slot,
        }))
    }

    /// The shared segment and this end's slot in it.
    pub(super) fn segment(&self) -> (&Arc<Segment>, usize) {
        (&self.seg, self.slot)
    }

    fn word(&self, w: usize) -> &AtomicU32 {
        self.seg.word(self.slot * WORDS_PER_SLOT + w)
    }

    fn lock(&self, dir: Dir) -> raw::RawLock<'_> {
        self.seg.raw_lock(
            self.slot * LOCKS_PER_SLOT + dir.lock(),
            self.slot * WORDS_PER_SLOT + dir.sleepers(),
        )
    }

    /// Takes the lock of `dir` for one whole frame. With a send guard, the mark stays
    /// `MID_FRAME` until the guard drops; a receiver hands [`Held::mark`] to the frame
    /// reader. `None` if `deadline` passed first.
    ///
    /// `packets`: `fd` is a sequenced-packet socket, where a sender that died
    /// mid-frame is followed by sync records instead of breaking the direction.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Protocol`] if the direction is broken, or breaks now because the
    /// previous holder died in the middle of a frame over a stream; `fd` is then shut
    /// down in that direction. Over packets, the error of sending the sync records.
    #[inline]
    pub(super) fn hold<'a>(
        &'a self,
        dir: Dir,
        fd: BorrowedFd<'a>,
        packets: bool,
        deadline: Option<Instant>,
    ) -> Result<Option<Held<'a>>> {
        let lock = self.lock(dir);
        let Some(a) = raw::acquire(lock, raw::Owner::me(), deadline) else {
            return Ok(None);
        };
        let mark = self.word(dir.mark());
        let m = mark.load(Ordering::Acquire);
        if m == MID_FRAME && packets && dir == Dir::Send {
            // The previous sender died, or its send failed, holding the lock (see
            // `Held::sent`). The mark stays `MID_FRAME` until the sync records are
            // out: if this sender dies too, the next one sends them again.
            if let Err(e) = packet::send_sync(fd) {
                raw::release(lock);
                return Err(e);
            }
        } else if m == BROKEN || (a.owner_died && m == MID_FRAME) {
            break_direction(mark, dir, fd);
            raw::release(lock);
            return Err(broken(dir));
        }
        if dir == Dir::Send {
            mark.store(MID_FRAME, Ordering::Relaxed);
        }
        Ok(Some(Held {
            lock,
            mark,
            dir,
            fd,
            packets,
            cut: false,
        }))
    }
}

/// Is the send lock of end `slot` in `seg` free right now? (For `lane`'s repair of its
/// counts: every sender holds it from counting a frame until the frame is sent.)
pub(super) fn send_lock_free(seg: &Segment, slot: usize) -> bool {
    seg.word64(slot * LOCKS_PER_SLOT + SEND_LOCK)
        .load(Ordering::SeqCst)
        == 0
}

/// Marks `dir` broken and shuts it down.
#[cold]
fn break_direction(mark: &AtomicU32, dir: Dir, fd: BorrowedFd<'_>) {
    mark.store(BROKEN, Ordering::Release);
    // Best effort: if this fails, the peer still gets a Protocol error (a truncated
    // frame) or `Disconnected` once the last copy of this end closes.
    let _ = sys::socket::shutdown(fd, dir == Dir::Send);
}

fn broken(dir: Dir) -> Error {
    let what = match dir {
        Dir::Send => {
            "a process or thread sending on this end of the connection died \
                      in the middle of a message"
        }
        Dir::Recv => {
            "a receive on this end of the connection stopped in the middle of a \
                      message (its process or thread died, or the frame was malformed)"
        }
    };
    Error::new(
        ErrorKind::Protocol,
        format!(
            "{what}; the byte stream has lost its message boundaries, so this direction of the connection is closed"
        ),
    )
}

/// A held lock of one direction; releases on drop.
#[derive(Debug)]
pub(super) struct Held<'a> {
    lock: raw::RawLock<'a>,
    mark: &'a AtomicU32,
    dir: Dir,
    fd: BorrowedFd<'a>,
    packets: bool,
    /// A send under this guard failed over packets (see [`Held::sent`]).
    cut: bool,
}

impl Held<'_> {
    /// The progress mark, for the frame reader.
    pub(super) fn mark(&self) -> &AtomicU32 {
        self.mark
    }

    /// Ends a send under this guard with its result `r`. Over packets, a send that
    /// failed may have left part of its frame behind (its records cut by an error);
    /// the mark then stays `MID_FRAME`, and the next sender sends sync records first
    /// (harmless if nothing was cut). Over a stream a send fails part-way only when
    /// the peer is gone, and nothing more can be misread.
    pub(super) fn sent<T>(mut self, r: Result<T>) -> Result<T> {
        self.cut = self.packets && r.is_err();
        r
    }
}

impl Drop for Held<'_> {
    #[inline]
    fn drop(&mut self) {
        match self.dir {
            Dir::Send if self.cut => {}
            Dir::Send => self.mark.store(AT_BOUNDARY, Ordering::Release),
            Dir::Recv => {
                if self.mark.load(Ordering::Relaxed) == MID_FRAME {
                    break_direction(self.mark, Dir::Recv, self.fd);
                }
            }
        }
        raw::release(self.lock);
    }
}

/// The locks serialize as their segment (an fd in the side table) and the slot.
impl Serialize for EndLocks {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (&*self.seg, self.slot as u8).serialize(s)
    }
}

impl<'de> Deserialize<'de> for EndLocks {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (seg, slot) = <(Segment, u8)>::deserialize(d)?;
        let slot = usize::from(slot);
        if seg.len() < (slot + 1) * SLOT {
            return Err(serde::de::Error::custom(
                "a connection's lock segment is smaller than its slot",
            ));
        }
        Ok(EndLocks {
            seg: Arc::new(seg),
            slot,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    /// The records waiting on `fd`, by length and first four bytes.
    fn waiting(fd: BorrowedFd<'_>) -> Vec<(usize, [u8; 4])> {
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while let Ok((n, _)) = rustix::net::recv(fd, &mut buf, rustix::net::RecvFlags::DONTWAIT) {
            got.push((n, buf[..4].try_into().unwrap()));
        }
        got
    }

    /// Over packets, a send that failed under the lock makes the next sender send sync
    /// records first (once); one that succeeded does not. Over a stream, neither does,
    /// and the direction stays usable.
    #[test]
    fn a_failed_send_makes_the_next_sender_sync_over_packets_only() {
        for packets in [true, false] {
            let (a, b) = if packets {
                sys::socket::pair_packets().unwrap()
            } else {
                let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
                (a.into(), b.into())
            };
            let [l] = EndLocks::new_ends::<1>().unwrap();
            let send = |ok: bool| {
                let g = l
                    .hold(Dir::Send, a.as_fd(), packets, None)
                    .unwrap()
                    .unwrap();
                let r = if ok {
                    Ok(())
                } else {
                    Err(Error::new(ErrorKind::Protocol, "cut"))
                };
                let _ = g.sent(r);
            };
            send(true);
            assert_eq!(waiting(b.as_fd()), []);
            send(false);
            assert_eq!(waiting(b.as_fd()), []);
            send(true);
            let got = waiting(b.as_fd());
            if packets {
                assert_eq!(got, vec![(16, packet::SYNC); crate::sys::socket::BATCH]);
            } else {
                assert_eq!(got, []);
            }
            send(true);
            assert_eq!(waiting(b.as_fd()), [], "sync records once");
        }
    }
}
