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

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::sys;

/// Bytes of a frame header.
pub(crate) const HEADER: usize = 16;
const MAGIC: u32 = 0x4d50_4652; // "MPFR"

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
    h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[4..8].copy_from_slice(&(nfds as u32).to_le_bytes());
    h[8..16].copy_from_slice(&len.to_le_bytes());
}

/// A received frame.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) body: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
}

/// Reads into `buf` completely. `deadline` applies only while nothing of the frame has
/// arrived yet (`first`); once a frame has started, it is read to its end.
fn read_full(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    deadline: Option<Instant>,
    first: bool,
    spin: Duration,
) -> Result<ReadOutcome> {
    let mut got = 0;
    let spin_until = Instant::now() + spin;
    while got < buf.len() {
        match sys::socket::recv_some(fd, &mut buf[got..], fds, true) {
            Ok(0) => {
                return if first && got == 0 {
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
                if Instant::now() < spin_until {
                    std::hint::spin_loop();
                    continue;
                }
                let dl = if first && got == 0 { deadline } else { None };
                if !sys::poll::wait_readable(fd, dl).map_err(|e| Error::io("poll", e))? {
                    return Ok(ReadOutcome::TimedOut);
                }
            }
            Err(e) => return Err(Error::io("recv", e)),
        }
    }
    Ok(ReadOutcome::Done)
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
        let t = Instant::now();
        let f = recv_spin(fd, deadline, max_len, self.spin)?;
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
    let mut header = [0u8; HEADER];
    let mut fds = Vec::new();
    match read_full(fd, &mut header, &mut fds, deadline, true, spin)? {
        ReadOutcome::Done => {}
        ReadOutcome::Eof => return Err(Error::disconnected()),
        ReadOutcome::TimedOut => return Ok(None),
    }
    let magic = u32::from_le_bytes(header[0..4].try_into().unwrap());
    let nfds = u32::from_le_bytes(header[4..8].try_into().unwrap()) as usize;
    let len = u64::from_le_bytes(header[8..16].try_into().unwrap());
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
        match read_full(fd, &mut body, &mut fds, None, false, SPIN)? {
            ReadOutcome::Done => {}
            _ => unreachable!("read_full without deadline or first-ness returns Done or Err"),
        }
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
