//! Length-prefixed frames over a Unix stream socket.
//!
//! ```text
//! +-----------+-----------+----------------+------------------+
//! | magic u32 | nfds u32  | length u64     | length bytes ... |   (little endian)
//! +-----------+-----------+----------------+------------------+
//!   fds (SCM_RIGHTS) ride on the first byte of the header
//! ```
//!
//! The 64-bit length has no 2 GiB cliff; a zero length is a legal, empty message. The
//! magic catches a peer that writes garbage: a bad magic, a length over the
//! connection's limit, or a count of fds that differs from what arrived is a
//! [`Protocol`](crate::ErrorKind::Protocol) error. The receiver never reads past the
//! end of the current frame, so the next frame's fds cannot arrive early.
//!
//! Receiving first spins for a short while with non-blocking reads before it sleeps in
//! `poll`: a wake-up from `poll` costs tens of microseconds on a VM, more than a whole
//! round trip between two processes that are both running.
//!
//! A receiver may keep a *progress mark* (a word in shared memory, see
//! `connection::locks`): [`MID_FRAME`] from just before the read that may take the
//! frame's first byte until its last byte is read, [`AT_BOUNDARY`] otherwise. Whoever
//! takes over the receive lock from a receiver that died then knows whether the
//! stream is still at a frame boundary. While waiting for a frame to start, a marked
//! receiver spins with `poll` (which consumes nothing), not with reads, so that the
//! mark says [`MID_FRAME`] only around reads that find bytes, plus the instant of one
//! read per frame that finds none.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::sys;

/// Bytes of a frame header.
pub(crate) const HEADER: usize = 16;
const MAGIC: u32 = 0x4d50_4652; // "MPFR"

/// A progress mark: the stream is at a frame boundary.
pub(crate) const AT_BOUNDARY: u32 = 0;
/// A progress mark: part of a frame may have been read or written.
pub(crate) const MID_FRAME: u32 = 1;

/// How long a receiver spins before it sleeps.
pub(crate) const SPIN: Duration = Duration::from_micros(50);

/// Writes the header into the first [`HEADER`] bytes of `buf` (reserved by the
/// encoder) and sends the whole buffer with `fds`.
pub(crate) fn send(fd: BorrowedFd<'_>, buf: &mut [u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
    let len = (buf.len() - HEADER) as u64;
    put_header(&mut buf[..HEADER], fds.len(), len);
    sys::socket::send_all(fd, &[buf], fds).map_err(|e| Error::io("send", e))
}

/// Sends `body` as one frame without copying it (a header, then the body).
pub(crate) fn send_parts(fd: BorrowedFd<'_>, body: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
    let mut header = [0u8; HEADER];
    put_header(&mut header, fds.len(), body.len() as u64);
    sys::socket::send_all(fd, &[&header, body], fds).map_err(|e| Error::io("send", e))
}

fn put_header(h: &mut [u8], nfds: usize, len: u64) {
    let header = Header {
        nfds: nfds as u32,
        len,
    };
    h.copy_from_slice(&header.to_bytes());
}

/// A frame's header, as it travels (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// How many fds ride on the frame.
    pub(crate) nfds: u32,
    /// The body's length in bytes.
    pub(crate) len: u64,
}

impl Header {
    pub(crate) fn to_bytes(self) -> [u8; HEADER] {
        let mut b = [0u8; HEADER];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&self.nfds.to_le_bytes());
        b[8..16].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    /// Checks a received header: the magic, and the length against `max_len`.
    pub(crate) fn parse(b: &[u8; HEADER], max_len: u64) -> Result<Header> {
        let word = |r: std::ops::Range<usize>| -> [u8; 4] { b[r].try_into().expect("4 bytes") };
        let magic = u32::from_le_bytes(word(0..4));
        let nfds = u32::from_le_bytes(word(4..8));
        let len = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
        if magic != MAGIC {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "malformed frame: bad magic {magic:#010x} (the peer does not speak this protocol)"
                ),
            ));
        }
        if len > max_len {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!("frame of {len} bytes exceeds this connection's limit of {max_len} bytes"),
            ));
        }
        Ok(Header { nfds, len })
    }
}

/// A received frame.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) body: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
}

/// Reads into `buf` completely. `deadline` applies only while nothing of the frame has
/// arrived yet (`first`); once a frame has started, it is read to its end. With a
/// `mark` (see the module docs), `first` reads set it to [`MID_FRAME`] before they may
/// consume and back to [`AT_BOUNDARY`] when they found nothing.
fn read_full(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    deadline: Option<Instant>,
    first: bool,
    spin: Duration,
    mark: Option<&AtomicU32>,
) -> Result<ReadOutcome> {
    let mut got = 0;
    let spin_until = Instant::now() + spin;
    while got < buf.len() {
        let fresh = first && got == 0;
        let unmark = || {
            if let Some(m) = mark {
                m.store(AT_BOUNDARY, Ordering::Release);
            }
        };
        let fresh_mark = mark.filter(|_| fresh);
        if let Some(m) = fresh_mark {
            m.store(MID_FRAME, Ordering::Release);
        }
        match sys::socket::recv_some(fd, &mut buf[got..], fds, true) {
            Ok(0) => {
                // At the end of the stream nothing more can be misread: the next
                // receive is `Disconnected`.
                unmark();
                return if fresh {
                    Ok(ReadOutcome::Eof)
                } else {
                    Err(Error::new(
                        ErrorKind::Protocol,
                        "the connection closed in the middle of a message (truncated frame)",
                    ))
                };
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if fresh {
                    unmark();
                }
                if Instant::now() < spin_until {
                    if fresh_mark.is_none() {
                        std::hint::spin_loop();
                        continue;
                    }
                    if spin_on_poll(fd, spin_until)? {
                        continue;
                    }
                }
                let dl = if fresh { deadline } else { None };
                if !sys::poll::wait_readable(fd, dl).map_err(|e| Error::io("poll", e))? {
                    return Ok(ReadOutcome::TimedOut);
                }
            }
            Err(e) => {
                if fresh {
                    unmark();
                }
                return Err(Error::io("recv", e));
            }
        }
    }
    Ok(ReadOutcome::Done)
}

/// Spins until `fd` is readable or `until` passes, without consuming anything;
/// `true` if it became readable.
fn spin_on_poll(fd: BorrowedFd<'_>, until: Instant) -> Result<bool> {
    while Instant::now() < until {
        if sys::poll::wait_readable(fd, Some(Instant::now())).map_err(|e| Error::io("poll", e))? {
            return Ok(true);
        }
        std::hint::spin_loop();
    }
    Ok(false)
}

enum ReadOutcome {
    Done,
    Eof,
    TimedOut,
}

/// How long to spin for the next frame before sleeping, adapted to the peer.
///
/// Spinning turns a round trip into a few microseconds when both sides have a core of
/// their own, but on a loaded machine a spinning waiter only delays the peer it waits
/// for (and loses the scheduler's wake-up preference): there, sleeping at once is
/// several times faster (measured on a 2-core VM with two busy processes: about 60 us
/// per manager dict operation sleeping, 400 us and more spinning). So a side spins
/// while its answers arrive within the spin, stops at the first miss, and tries again
/// after [`PROBE`] sleeping receives, as an adaptive mutex does. Used by
/// `Connection` and the manager's client and server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdaptiveSpin {
    spin: Duration,
    /// Receives left before spinning is tried again.
    until_probe: u32,
}

/// Sleeping receives between two tries at spinning.
const PROBE: u32 = 64;

impl Default for AdaptiveSpin {
    fn default() -> Self {
        Self::new()
    }
}

impl AdaptiveSpin {
    pub(crate) fn new() -> AdaptiveSpin {
        AdaptiveSpin {
            spin: SPIN,
            until_probe: 0,
        }
    }

    /// Receives a frame as [`recv`] does, spinning as the last answers suggest.
    pub(crate) fn recv(
        &mut self,
        fd: BorrowedFd<'_>,
        deadline: Option<Instant>,
        max_len: u64,
    ) -> Result<Option<Frame>> {
        self.recv_marked(fd, deadline, max_len, None)
    }

    /// As [`recv`](AdaptiveSpin::recv), keeping a progress `mark` (see the module
    /// docs). An error can leave it at [`MID_FRAME`]: the stream is then past a
    /// frame boundary.
    pub(crate) fn recv_marked(
        &mut self,
        fd: BorrowedFd<'_>,
        deadline: Option<Instant>,
        max_len: u64,
        mark: Option<&AtomicU32>,
    ) -> Result<Option<Frame>> {
        let t = Instant::now();
        let f = recv_inner(fd, deadline, max_len, self.spin, mark)?;
        if self.spin > Duration::ZERO {
            if t.elapsed() > self.spin {
                // Missed: the peer was not running. Sleep for a while.
                self.spin = Duration::ZERO;
                self.until_probe = PROBE;
            }
        } else {
            self.until_probe = self.until_probe.saturating_sub(1);
            if self.until_probe == 0 {
                self.spin = SPIN;
            }
        }
        Ok(f)
    }

    /// The state as one word, to keep it in an atomic.
    pub(crate) fn to_bits(self) -> u64 {
        let nanos = u32::try_from(self.spin.as_nanos()).unwrap_or(u32::MAX);
        (u64::from(nanos) << 32) | u64::from(self.until_probe)
    }

    /// The state kept by [`to_bits`](AdaptiveSpin::to_bits).
    pub(crate) fn from_bits(bits: u64) -> AdaptiveSpin {
        AdaptiveSpin {
            spin: Duration::from_nanos(bits >> 32),
            until_probe: bits as u32,
        }
    }
}

/// Receives one frame, waiting until `deadline` (`None`: forever) for it to start.
///
/// Returns `Ok(None)` on timeout; a closed peer is [`ErrorKind::Disconnected`].
pub(crate) fn recv(
    fd: BorrowedFd<'_>,
    deadline: Option<Instant>,
    max_len: u64,
) -> Result<Option<Frame>> {
    recv_spin(fd, deadline, max_len, SPIN)
}

/// As [`recv`], spinning at most `spin` (instead of [`SPIN`]) before sleeping, for
/// callers that adapt it to how long their peer takes to answer.
pub(crate) fn recv_spin(
    fd: BorrowedFd<'_>,
    deadline: Option<Instant>,
    max_len: u64,
    spin: Duration,
) -> Result<Option<Frame>> {
    recv_inner(fd, deadline, max_len, spin, None)
}

fn recv_inner(
    fd: BorrowedFd<'_>,
    deadline: Option<Instant>,
    max_len: u64,
    spin: Duration,
    mark: Option<&AtomicU32>,
) -> Result<Option<Frame>> {
    let mut header = [0u8; HEADER];
    let mut fds = Vec::new();
    match read_full(fd, &mut header, &mut fds, deadline, true, spin, mark)? {
        ReadOutcome::Done => {}
        ReadOutcome::Eof => return Err(Error::disconnected()),
        ReadOutcome::TimedOut => return Ok(None),
    }
    let Header { nfds, len } = Header::parse(&header, max_len)?;
    let nfds = nfds as usize;
    let len = usize::try_from(len)
        .map_err(|_| Error::new(ErrorKind::Protocol, "frame larger than the address space"))?;
    // calloc: a large buffer comes from fresh zero pages, at no cost until written.
    let mut body = sys::zeroed_bytes(len).ok_or_else(|| {
        Error::new(
            ErrorKind::Protocol,
            format!("cannot allocate {len} bytes for a received frame"),
        )
    })?;
    if len > 0 {
        match read_full(fd, &mut body, &mut fds, None, false, SPIN, mark)? {
            ReadOutcome::Done => {}
            _ => unreachable!("read_full without deadline or first-ness returns Done or Err"),
        }
    }
    // The whole frame is read: the stream is at a boundary, whatever is checked next.
    if let Some(m) = mark {
        m.store(AT_BOUNDARY, Ordering::Release);
    }
    if fds.len() != nfds {
        return Err(Error::new(
            ErrorKind::Protocol,
            format!(
                "malformed frame: header announces {nfds} handles, {} arrived",
                fds.len()
            ),
        ));
    }
    Ok(Some(Frame { body, fds }))
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    fn pair() -> (OwnedFd, OwnedFd) {
        sys::socket::pair().expect("socketpair")
    }

    fn soon() -> Option<Instant> {
        Some(Instant::now() + Duration::from_secs(5))
    }

    #[test]
    fn header_round_trips() {
        let h = Header {
            nfds: 3,
            len: (1 << 40) + 7,
        };
        assert_eq!(Header::parse(&h.to_bytes(), u64::MAX).unwrap(), h);
    }

    #[test]
    fn header_with_a_bad_magic_or_over_the_limit_is_a_protocol_error() {
        let mut b = Header { nfds: 0, len: 10 }.to_bytes();
        assert_eq!(
            Header::parse(&b, 9).unwrap_err().kind(),
            ErrorKind::Protocol
        );
        assert!(Header::parse(&b, 10).is_ok());
        b[0] ^= 1;
        let e = Header::parse(&b, 100).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(e.to_string().contains("bad magic"), "{e}");
    }

    #[test]
    fn frames_of_any_size_arrive_whole_and_in_order() {
        let (a, b) = pair();
        let big = vec![7u8; 300_000];
        let writer = std::thread::spawn(move || {
            send_parts(a.as_fd(), b"", &[]).unwrap();
            send_parts(a.as_fd(), b"hello", &[]).unwrap();
            send_parts(a.as_fd(), &big, &[]).unwrap();
            a
        });
        assert_eq!(recv(b.as_fd(), soon(), 1 << 20).unwrap().unwrap().body, b"");
        assert_eq!(
            recv(b.as_fd(), soon(), 1 << 20).unwrap().unwrap().body,
            b"hello"
        );
        let f = recv(b.as_fd(), soon(), 1 << 20).unwrap().unwrap();
        assert_eq!(f.body.len(), 300_000);
        assert!(f.body.iter().all(|&x| x == 7));
        drop(writer.join().unwrap());
        let e = recv(b.as_fd(), soon(), 1 << 20).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Disconnected);
    }

    #[test]
    fn fds_ride_with_their_frame() {
        let (a, b) = pair();
        let (x, _y) = pair();
        send_parts(a.as_fd(), b"with one", &[x.as_fd()]).unwrap();
        let f = recv(b.as_fd(), soon(), 64).unwrap().unwrap();
        assert_eq!(f.body, b"with one");
        assert_eq!(f.fds.len(), 1);
    }

    #[test]
    fn a_truncated_frame_is_a_protocol_error() {
        let (a, b) = pair();
        let h = Header { nfds: 0, len: 10 }.to_bytes();
        sys::socket::send_all(a.as_fd(), &[&h, b"abc"], &[]).unwrap();
        drop(a);
        let e = recv(b.as_fd(), soon(), 64).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
    }

    #[test]
    fn a_count_of_fds_that_did_not_arrive_is_a_protocol_error() {
        let (a, b) = pair();
        let h = Header { nfds: 2, len: 1 }.to_bytes();
        sys::socket::send_all(a.as_fd(), &[&h, b"x"], &[]).unwrap();
        let e = recv(b.as_fd(), soon(), 64).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(e.to_string().contains("announces 2 handles"), "{e}");
    }

    #[test]
    fn nothing_before_the_deadline_is_a_timeout() {
        let (_a, b) = pair();
        let t = Instant::now();
        let got = recv(
            b.as_fd(),
            Some(Instant::now() + Duration::from_millis(20)),
            64,
        );
        assert!(got.unwrap().is_none());
        assert!(t.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn adaptive_spin_stops_spinning_after_a_miss_and_probes_again() {
        let (a, b) = pair();
        let mut spin = AdaptiveSpin::new();
        // A slow answer: the receiver misses its spin.
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            for _ in 0..=PROBE {
                send_parts(a.as_fd(), b"x", &[]).unwrap();
            }
            a
        });
        spin.recv(b.as_fd(), soon(), 8).unwrap().unwrap();
        assert_eq!(spin.spin, Duration::ZERO);
        for _ in 0..PROBE - 1 {
            spin.recv(b.as_fd(), soon(), 8).unwrap().unwrap();
            assert_eq!(spin.spin, Duration::ZERO);
        }
        spin.recv(b.as_fd(), soon(), 8).unwrap().unwrap();
        assert_eq!(
            spin.spin, SPIN,
            "spinning is tried again after PROBE receives"
        );
        drop(writer.join().unwrap());
    }
}
