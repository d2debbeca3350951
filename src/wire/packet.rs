//! Frames over a Unix sequenced-packet socket (`SOCK_SEQPACKET`): the transport of
//! pipes (`pipe()`, `pipe_simplex()`).
//!
//! ```text
//! first record:         | header (16 bytes, as in `frame`)        | body bytes ...   |
//!                         fds (SCM_RIGHTS) ride on this record
//! continuation records: | "MPFC" | 0u32 | offset in the body u64 | more body bytes  |
//! ```
//!
//! The kernel keeps record boundaries: a receive takes one whole record, never part
//! of one and never two. So a frame of up to [`RECORD`] bytes (header included) is
//! one record, sent with one `send` and received with one `recvmsg`. Over a stream
//! socket the same receive is two calls (a peek at the header, which consumes nothing,
//! then the read of exactly that frame, since the next frame may be another
//! receiver's); where both sides of a round trip share one CPU with a busy process,
//! that second call was a fifth of the round trip. Larger frames continue in records
//! of exactly [`RECORD`] bytes but the last, all sent under the end's send lock, so
//! that two senders' records never interleave. Because each record's size is known,
//! the receiver knows where in the body each will land before it arrives: the sender
//! hands the kernel a whole frame's records in one `sendmmsg`, and the receiver takes
//! every record already queued in one `recvmmsg`, straight into the body. A 1 MiB frame
//! costs a few system calls on each side, as over a stream.
//!
//! The continuation mark makes a receive exact without a progress mark: a receiver
//! that died after taking the first record of a large frame leaves continuation
//! records behind, and the next receiver skips them, so only the dead receiver's own
//! message is lost and the direction stays usable. (Over a stream socket the same
//! death cuts the byte stream inside a frame, and the direction must be closed.) A
//! frame refused at its header (over the size limit, a bad magic) is skipped the same
//! way.
//!
//! A sender that dies costs only its own message too. The send lock's progress mark
//! (see `connection`) is `MID_FRAME` for as long as a sender holds the lock, and stays
//! so after a send that failed, so the next sender knows that the previous one may
//! have left part of a frame behind (it cannot know more: a kill can land while the
//! last record is on its way out, or just after). Before its own frame it sends [`BATCH`] *sync records* ([`SYNC`], nothing
//! else). A receiver in the middle of the cut frame takes a sync record where a
//! continuation was due and reports the frame as truncated; one at a frame boundary
//! (the dead sender's frame was whole after all, or nothing of it went out) is
//! skipped. A receiver takes at most [`BATCH`] records per system call and never more
//! than the frame it reads still lacks, so once it meets the first sync record, what
//! else that call took is sync records too: the frames that follow them are intact.
//!
//! ```text
//! sync record:          | "MPFS" | 0u32 | 0u64 |
//! ```
//!
//! A continuation record that is not where it should be (the wrong offset or length,
//! or carrying handles) is a malformed frame, reported as such.
//!
//! Memory follows what arrived, as over a stream: the body grows from [`CHUNK`]
//! doubling up to the announced length as continuation records come (at once up to
//! the capacity of a recycled body buffer, which costs nothing new).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use crate::sys::socket::{BATCH, Record};
use crate::wire::frame::{
    CHUNK, Frame, HEADER, Header, RecvLimits, Reserved, SPIN, first_body, grow_body,
};

/// The size of every record of a frame but its last: a frame's header and its first
/// body bytes, or a continuation prefix and more. 64 KiB: a record must fit in the
/// socket buffer whole, and the kernel copies one of up to about 80 KiB into page
/// fragments, a larger one into one large allocation. (16 and 32 KiB records moved 1
/// MiB frames 10-25% slower.)
pub(crate) const RECORD: usize = 64 << 10;

/// The mark that starts a continuation record.
const CONT: [u8; 4] = 0x4d50_4643u32.to_le_bytes(); // "MPFC"

/// The mark of a sync record: what a sender sends after another died holding the
/// send lock (see the module docs).
pub(crate) const SYNC: [u8; 4] = 0x4d50_4653u32.to_le_bytes(); // "MPFS"

/// A continuation record's prefix: [`CONT`], 4 zero bytes, and the offset in the body
/// of the bytes that follow (`u64`, little-endian). As long as a frame header, so that
/// each record's body bytes sit at the same alignment in the kernel's buffers as in the
/// sender's memory: with a 4-byte prefix, the kernel's copies ran 25% slower
/// (`rep movsb` between differently aligned addresses), measured with bare sockets.
const PREFIX: usize = HEADER;

/// Body bytes in a full continuation record.
const PER: usize = RECORD - PREFIX;

fn prefix(offset: usize) -> [u8; PREFIX] {
    let mut p = [0u8; PREFIX];
    p[..CONT.len()].copy_from_slice(&CONT);
    p[8..].copy_from_slice(&(offset as u64).to_le_bytes());
    p
}

thread_local! {
    /// Where a first record lands, whatever its size, so that nothing of it is cut:
    /// the body's length is known only once its header is read.
    static FIRST: std::cell::RefCell<Box<[u8]>> = std::cell::RefCell::new(vec![0u8; RECORD - HEADER].into_boxed_slice());
}

/// Sends a frame whose header sits in the first [`HEADER`] bytes of `buf` (reserved by
/// the encoder; written here) and whose body is the rest, with `fds`. The caller holds
/// the send lock, its progress mark at `MID_FRAME` (see the module docs).
pub(crate) fn send(fd: BorrowedFd<'_>, buf: &mut [u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
    let (head, body) = buf.split_at_mut(HEADER);
    head.copy_from_slice(&header(fds.len(), body.len()));
    if buf.len() <= RECORD {
        return sys::socket::send_record(fd, &[IoSlice::new(buf)], fds)
            .map_err(|e| Error::io("send", e));
    }
    let (head, body) = buf.split_at(HEADER);
    send_records(fd, head, &[body], fds)
}

/// Sends `body` (its parts gathered, not copied) as one frame with `fds`, under the
/// send lock as for [`send`].
pub(crate) fn send_parts(fd: BorrowedFd<'_>, body: &[&[u8]], fds: &[BorrowedFd<'_>]) -> Result<()> {
    let len = body.iter().map(|p| p.len()).sum();
    send_records(fd, &header(fds.len(), len), body, fds)
}

/// Sends [`BATCH`] sync records: the sender that held the send lock before this one
/// died with it (see the module docs). The caller holds the send lock, its mark still
/// at `MID_FRAME`: if this sender dies too, the next one sends them again.
pub(crate) fn send_sync(fd: BorrowedFd<'_>) -> Result<()> {
    let mut sync = [0u8; PREFIX];
    sync[..SYNC.len()].copy_from_slice(&SYNC);
    let one = [IoSlice::new(&sync)];
    let records = [&one[..]; BATCH];
    sys::socket::send_batch(fd, &records).map_err(|e| Error::io("send", e))
}

/// Is a record that starts with `head` one a receiver skips where a frame should begin:
/// a continuation (what a receiver that died, or a refused frame, left of its frame) or
/// a sync record (sent after a sender that died; see the module docs)?
fn skipped_at_boundary(head: &[u8]) -> bool {
    head.starts_with(&CONT) || head.starts_with(&SYNC)
}

/// What [`peek_first`] found at the head of a socket.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Peeked {
    /// Nothing to read.
    Nothing,
    /// The peer closed (or shut down its sending side), and nothing is left.
    Closed,
    /// The first record of a frame (or something malformed, which [`recv`] reports).
    Frame,
}

/// Looks at the head of `fd` without waiting and without taking a frame: skips (takes)
/// what [`recv`] would skip at a frame boundary (sync records, what a dead receiver
/// left of a frame), and says whether a frame, the peer's close or nothing is next.
/// Call under the receive lock. (A pipe's lane uses it to look at the socket without
/// taking a frame that may be newer than its ring, see `connection::lane`.)
pub(crate) fn peek_first(fd: BorrowedFd<'_>) -> Result<Peeked> {
    let mut head = [0u8; PREFIX];
    loop {
        let n = match sys::socket::peek(fd, &mut head, true) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(Peeked::Nothing),
            Err(e) => return Err(Error::io("recv", e)),
        };
        if n == 0 {
            return Ok(if sys::socket::peer_closed(fd) {
                Peeked::Closed
            } else {
                Peeked::Frame
            });
        }
        if skipped_at_boundary(&head[..n]) {
            // Take that one record (the rest of a longer one is dropped with it, as
            // are any fds on it).
            sys::socket::discard_record(fd).map_err(|e| Error::io("recv", e))?;
            continue;
        }
        return Ok(Peeked::Frame);
    }
}

fn header(nfds: usize, len: usize) -> [u8; HEADER] {
    Header {
        nfds: nfds as u32,
        len: len as u64,
    }
    .to_bytes()
}

/// Sends `head` and then `body` in records of exactly [`RECORD`] bytes but the last:
/// the first starts with `head` and carries the fds, each later one starts with
/// [`CONT`]. They go out in batches (`sendmmsg`): a 1 MiB frame is one or two system
/// calls.
fn send_records(
    fd: BorrowedFd<'_>,
    head: &[u8],
    body: &[&[u8]],
    fds: &[BorrowedFd<'_>],
) -> Result<()> {
    // A record spans at most the prefix and three parts (callers pass at most two).
    debug_assert!(body.len() <= 3);
    let len: usize = body.iter().map(|p| p.len()).sum();
    let first = len.min(RECORD - head.len());
    let prefixes: Vec<[u8; PREFIX]> = (first..len).step_by(PER).map(prefix).collect();
    let mut parts = body.iter().copied().filter(|p| !p.is_empty());
    let mut part: &[u8] = parts.next().unwrap_or(&[]);
    let mut records: Vec<([IoSlice<'_>; 4], usize)> = Vec::with_capacity(1 + prefixes.len());
    for prefix in std::iter::once(head).chain(prefixes.iter().map(|p| &p[..])) {
        let mut iov = [IoSlice::new(&[]); 4];
        iov[0] = IoSlice::new(prefix);
        let mut n = 1;
        let mut room = RECORD - prefix.len();
        while room > 0 && !part.is_empty() && n < iov.len() {
            let take = part.len().min(room);
            iov[n] = IoSlice::new(&part[..take]);
            n += 1;
            room -= take;
            part = &part[take..];
            if part.is_empty() {
                part = parts.next().unwrap_or(&[]);
            }
        }
        records.push((iov, n));
    }
    debug_assert!(part.is_empty());
    let records: Vec<&[IoSlice<'_>]> = records.iter().map(|(iov, n)| &iov[..*n]).collect();
    // The first record on its own: it carries the handles, and `sendmmsg` is used
    // without control messages.
    sys::socket::send_record(fd, records[0], fds).map_err(|e| Error::io("send", e))?;
    if records.len() > 1 {
        sys::socket::send_batch(fd, &records[1..]).map_err(|e| Error::io("send", e))?;
    }
    Ok(())
}

/// Receives one frame, spinning at most `spin` before sleeping and waiting until
/// `deadline` (`None`: forever) for its first record. `Ok(None)` on timeout; a closed
/// peer is [`ErrorKind::Disconnected`].
pub(crate) fn recv(
    fd: BorrowedFd<'_>,
    deadline: Option<Instant>,
    limits: &RecvLimits<'_>,
    spin: Duration,
) -> Result<Option<Frame>> {
    let deadline = match (deadline, limits.until) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut head = [0u8; HEADER];
    let mut fds = Vec::new();
    let mut waiter = sys::poll::Waiter::new(deadline, spin);
    FIRST.with_borrow_mut(|first| {
        let (n, inline) = loop {
            fds.clear();
            let mut bufs = [IoSliceMut::new(&mut head), IoSliceMut::new(first)];
            let Some((n, truncated)) = waiter
                .wait(fd, |nb| {
                    sys::socket::recv_record(fd, &mut bufs, &mut fds, nb)
                })
                .map_err(|e| Error::io("recv", e))?
            else {
                return Ok(None);
            };
            if n == 0 {
                if sys::socket::peer_closed(fd) {
                    return Err(Error::disconnected());
                }
                return Err(malformed("an empty record"));
            }
            if skipped_at_boundary(&head[..n.min(HEADER)]) {
                // What a receiver that died (or a refused frame) left of its frame, or
                // sync records after a sender that died (see the module docs).
                continue;
            }
            if truncated {
                return Err(malformed("a record longer than any this protocol sends"));
            }
            if n < HEADER {
                return Err(malformed("a record shorter than a frame header"));
            }
            break (n, n - HEADER);
        };
        let header = Header::parse(&head, limits.max_len)?;
        let len =
            usize::try_from(header.len).map_err(|_| malformed("larger than the address space"))?;
        if inline > len {
            return Err(malformed("a first record longer than its frame"));
        }
        header.check_fds(fds.len())?;
        debug_assert!(n <= RECORD);
        if inline == len {
            // The whole frame in one record: the common case. (Nothing is partly
            // received, so nothing is reserved in a budget.)
            return Ok(Some(Frame {
                body: first[..len].to_vec(),
                fds: std::mem::take(&mut fds),
            }));
        }
        let body = rest_of_frame(fd, &first[..inline], len, limits)?;
        Ok(Some(Frame {
            body,
            fds: std::mem::take(&mut fds),
        }))
    })
}

/// Reads the continuation records of a frame of `len` body bytes whose first record
/// carried `inline`.
fn rest_of_frame(
    fd: BorrowedFd<'_>,
    inline: &[u8],
    len: usize,
    limits: &RecvLimits<'_>,
) -> Result<Vec<u8>> {
    let mut reserved = Reserved::new(limits.budget);
    let mut body = first_body(len, len.min(CHUNK).max(inline.len()), &mut reserved)?;
    body[..inline.len()].copy_from_slice(inline);
    let mut got = inline.len();
    let mut waiter = sys::poll::Waiter::new(limits.rest_deadline(), SPIN);
    // Every continuation record but the last carries `PER` body bytes, so the place of
    // each in the body is known before it arrives, and a batch of them is received
    // into consecutive slots by one system call.
    let mut marks = [[0u8; PREFIX]; BATCH];
    let mut records = [Record::default(); BATCH];
    while got < len {
        // Room for at least the next record; memory grows by doubling as records
        // arrive, so a batch is at most about what has arrived so far.
        while body.len() - got < PER.min(len - got) {
            grow_body(&mut body, len, &mut reserved)?;
        }
        let room = body.len() - got;
        let k = if room >= len - got {
            (len - got).div_ceil(PER)
        } else {
            room / PER
        }
        .clamp(1, BATCH);
        let end = (got + k * PER).min(len);
        let mut bufs: Vec<[IoSliceMut<'_>; 2]> = marks
            .iter_mut()
            .zip(body[got..end].chunks_mut(PER))
            .map(|(m, b)| [IoSliceMut::new(m), IoSliceMut::new(b)])
            .collect();
        let Some(m) = waiter
            .wait(fd, |nb| {
                sys::socket::recv_batch(fd, &mut bufs, &mut records, nb)
            })
            .map_err(|e| Error::io("recv", e))?
        else {
            return Err(Error::new(
                ErrorKind::Protocol,
                "the rest of a message did not arrive in time (the peer stalled in the \
                 middle of a frame)",
            ));
        };
        drop(bufs);
        for (r, mark) in records[..m].iter().zip(&marks) {
            let slot = PER.min(len - got);
            if r.len == 0 {
                return Err(truncated_frame());
            }
            if r.len >= SYNC.len() && mark[..SYNC.len()] == SYNC {
                // The sender of this frame died in its middle; the sync records that
                // follow are skipped by the next receive.
                return Err(Error::new(
                    ErrorKind::Protocol,
                    "the sender of a message died in its middle (truncated frame); the \
                     messages after it arrive whole",
                ));
            }
            if r.len < PREFIX || mark[..CONT.len()] != CONT {
                // A new frame's first record, or a stray short one: only a peer that
                // does not follow the protocol sends that.
                return Err(truncated_frame());
            }
            if r.cut || r.len - PREFIX != slot || *mark != prefix(got) {
                return Err(malformed(
                    "a continuation record out of place, of the wrong length, or carrying \
                     handles",
                ));
            }
            got += slot;
        }
    }
    body.truncate(len);
    Ok(body)
}

fn malformed(what: &str) -> Error {
    Error::new(ErrorKind::Protocol, format!("malformed frame: {what}"))
}

fn truncated_frame() -> Error {
    Error::new(
        ErrorKind::Protocol,
        "the connection closed in the middle of a message (truncated frame)",
    )
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;
    use crate::wire::frame::RecvLimits;

    /// Body byte `k` of frame `tag`.
    fn byte(tag: u8, k: usize) -> u8 {
        (k as u8).wrapping_mul(31) ^ (k >> 9) as u8 ^ tag
    }

    fn body(tag: u8, len: usize) -> Vec<u8> {
        (0..len).map(|k| byte(tag, k)).collect()
    }

    /// The first record and `cont` continuation records of a frame of `len` body
    /// bytes, as a sender that died after them left it.
    fn send_cut(fd: BorrowedFd<'_>, tag: u8, len: usize, cont: usize) {
        let b = body(tag, len);
        let first = len.min(RECORD - HEADER);
        let head = header(0, len);
        sys::socket::send_record(fd, &[IoSlice::new(&head), IoSlice::new(&b[..first])], &[])
            .unwrap();
        for offset in (first..len).step_by(PER).take(cont) {
            let p = prefix(offset);
            let end = (offset + PER).min(len);
            sys::socket::send_record(fd, &[IoSlice::new(&p), IoSlice::new(&b[offset..end])], &[])
                .unwrap();
        }
    }

    /// A sender dies after any number of its frame's records (none but the first, some,
    /// more than a receive batch, all of them); the next sends sync records, then a
    /// large frame with a handle and a small one. The receiver reports the cut frame
    /// (or receives it whole, if it was), then gets both later frames intact: a batch
    /// that ran into the sync records took nothing of them.
    #[test]
    fn sync_records_after_a_dead_sender_keep_the_next_frames_whole() {
        let len = 40 * PER + 1000; // 40 continuation records: more than a batch
        let all = (len - PER).div_ceil(PER);
        for cont in [0, 1, 5, BATCH - 1, BATCH, BATCH + 1, all - 1, all] {
            let (a, b) = sys::socket::pair_packets().unwrap();
            let (pr, _pw) = rustix::pipe::pipe().unwrap();
            std::thread::scope(|sc| {
                sc.spawn(|| {
                    send_cut(a.as_fd(), 1, len, cont);
                    send_sync(a.as_fd()).unwrap();
                    let mut big = body(2, 3 * RECORD);
                    send_parts(a.as_fd(), &[&big], &[pr.as_fd()]).unwrap();
                    big.truncate(100);
                    send_parts(a.as_fd(), &[&big], &[]).unwrap();
                });
                let limits = RecvLimits::trusted(u64::MAX);
                // Bounded: a receive that lost its place would wait forever.
                let until = Instant::now() + Duration::from_secs(10);
                let recv = || {
                    recv(b.as_fd(), Some(until), &limits, Duration::ZERO)
                        .map(|f| f.expect("a frame within 10 s"))
                };
                if cont < all {
                    let e = recv().map(|_| "a frame").unwrap_err();
                    assert_eq!(e.kind(), ErrorKind::Protocol, "{cont}: {e}");
                    assert!(e.to_string().contains("died in its middle"), "{cont}: {e}");
                } else {
                    assert!(recv().unwrap().body == body(1, len), "the frame differs");
                }
                let f = recv().unwrap();
                assert!(
                    f.body == body(2, 3 * RECORD),
                    "{cont}: the next frame differs"
                );
                assert_eq!(f.fds.len(), 1, "{cont}");
                assert_eq!(recv().unwrap().body, body(2, 100), "{cont}");
            });
        }
    }

    /// Sync records where no frame was cut (the dead sender had sent nothing, or its
    /// frame whole) are skipped.
    #[test]
    fn sync_records_at_a_boundary_are_skipped() {
        let (a, b) = sys::socket::pair_packets().unwrap();
        send_sync(a.as_fd()).unwrap();
        send_parts(a.as_fd(), &[b"one"], &[]).unwrap();
        send_sync(a.as_fd()).unwrap();
        send_sync(a.as_fd()).unwrap();
        send_parts(a.as_fd(), &[b"two"], &[]).unwrap();
        let limits = RecvLimits::trusted(u64::MAX);
        for want in [&b"one"[..], b"two"] {
            let f = recv(b.as_fd(), None, &limits, Duration::ZERO)
                .unwrap()
                .unwrap();
            assert_eq!(f.body, want);
        }
    }
}
