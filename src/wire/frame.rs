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
//! # Limits for peers from outside
//!
//! A frame from another process of this program may take as long as it takes and be
//! as large as memory (today's default, [`RecvLimits::trusted`]). Connections accepted
//! from outside (a `Listener`'s, a manager server's) receive with [`RecvLimits`]: a
//! largest frame (refused at its header, before anything is allocated), a deadline
//! for the rest of a frame once its first byte has arrived (`rest`; a peer that
//! starts a frame and goes quiet loses its connection instead of pinning memory), an
//! optional absolute deadline for every byte (`until`, for logins), and a [`Budget`]
//! shared by all the connections of one server for the bytes of frames still being
//! received.
//!
//! Whatever the limits, memory follows what arrived, not what the header claims: the
//! body grows as its bytes come, from [`CHUNK`] doubling up to the announced length
//! (or at once up to the capacity of this thread's recycled buffer: memory it already
//! holds), so a header that claims 1 GiB and sends nothing costs 64 KiB.
//!
//! A receiver waits for a frame by *peeking* at its header (`MSG_PEEK`, which consumes
//! nothing): first spinning for a short while with non-blocking peeks (a wake-up costs
//! tens of microseconds on a VM, more than a whole round trip between two processes
//! that are both running; a receiver that has learned spinning does not pay skips it,
//! see `AdaptiveSpin`), then asleep in one blocking peek (or `poll`, when there is a
//! deadline). Once the whole header is there, one read takes it and whatever has come
//! of the body: a small frame costs two system calls, the peek and the read.
//!
//! A receiver may keep a *progress mark* (a word in shared memory, see
//! `connection::locks`): [`MID_FRAME`] from just before the read that takes the
//! frame's first byte until its last byte is read, [`AT_BOUNDARY`] otherwise. Whoever
//! takes over the receive lock from a receiver that died then knows whether the
//! stream is still at a frame boundary. Since waiting only peeks, the mark says
//! [`MID_FRAME`] only once bytes of the frame are there to take.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use crate::wire::spare;

/// Bytes of a frame header.
pub(crate) const HEADER: usize = 16;
const MAGIC: u32 = 0x4d50_4652; // "MPFR"

/// A progress mark: the stream is at a frame boundary.
pub(crate) const AT_BOUNDARY: u32 = 0;
/// A progress mark: part of a frame may have been read or written.
pub(crate) const MID_FRAME: u32 = 1;

thread_local! {
    /// This thread's spare buffer for the body of its next frame larger than [`CHUNK`].
    static SPARE_BODY: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `len` zeroed bytes for a large body, in this thread's spare buffer if it has one
/// (give it back with [`recycle_body`] once its contents are decoded); `None` if
/// memory runs out.
pub(crate) fn large_body(len: usize) -> Option<Vec<u8>> {
    let mut b = spare::take(&SPARE_BODY);
    if b.capacity() == 0 {
        return sys::zeroed_bytes(len);
    }
    b.try_reserve_exact(len).ok()?;
    b.resize(len, 0);
    Some(b)
}

/// Hands a frame's body back once decoded, for this thread's next frame larger than
/// [`CHUNK`], so that a receiver of large messages reads each into the same pages (see
/// `wire::spare`). A hostile peer's budget is charged as before: the spare buffer only
/// saves allocations, it does not let a frame grow faster than its bytes arrive.
pub(crate) fn recycle_body(body: Vec<u8>) {
    spare::keep(&SPARE_BODY, body, CHUNK);
}

/// How long a receiver spins before it sleeps.
pub(crate) const SPIN: Duration = Duration::from_micros(50);

/// The first allocation for a frame's body; it doubles as bytes arrive.
pub(crate) const CHUNK: usize = 64 << 10;

/// A total of bytes that the partly received frames of one server may hold (see the
/// module docs). Shared by its connections; each frame reserves its buffer's growth
/// here before it grows and gives it all back when the frame is complete or fails.
#[derive(Debug)]
pub(crate) struct Budget {
    cap: AtomicU64,
    used: AtomicU64,
}

impl Budget {
    pub(crate) fn new(cap: u64) -> Budget {
        Budget {
            cap: AtomicU64::new(cap),
            used: AtomicU64::new(0),
        }
    }

    pub(crate) fn set_cap(&self, cap: u64) {
        self.cap.store(cap, Ordering::Relaxed);
    }

    pub(crate) fn cap(&self) -> u64 {
        self.cap.load(Ordering::Relaxed)
    }

    /// Bytes reserved right now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Reserves `n` bytes; `false` (and nothing reserved) if that would pass the cap.
    fn reserve(&self, n: u64) -> bool {
        let cap = self.cap();
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|&t| t <= cap)
            })
            .is_ok()
    }

    fn release(&self, n: u64) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Bytes reserved in a [`Budget`] by one frame, given back on drop.
pub(crate) struct Reserved<'a> {
    budget: Option<&'a Budget>,
    n: u64,
}

impl<'a> Reserved<'a> {
    /// Nothing reserved yet, in `budget` (`None`: no budget to keep).
    pub(crate) fn new(budget: Option<&'a Budget>) -> Reserved<'a> {
        Reserved { budget, n: 0 }
    }

    pub(crate) fn grow(&mut self, n: u64) -> Result<()> {
        let Some(b) = self.budget else {
            return Ok(());
        };
        if !b.reserve(n) {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "the server's budget of {} bytes for partly received messages is \
                     used up; this connection is closed",
                    b.cap()
                ),
            ));
        }
        self.n += n;
        Ok(())
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        if let Some(b) = self.budget {
            b.release(self.n);
        }
    }
}

/// How a frame may arrive (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecvLimits<'a> {
    /// The largest body accepted; a larger header is a `Protocol` error.
    pub(crate) max_len: u64,
    /// How long the rest of a frame may take once its first byte has arrived.
    pub(crate) rest: Option<Duration>,
    /// A deadline for every byte of the frame (for logins).
    pub(crate) until: Option<Instant>,
    /// Where the growing body reserves its bytes.
    pub(crate) budget: Option<&'a Budget>,
}

impl RecvLimits<'static> {
    /// Between our own processes: frames as large as `max_len`, no time limit.
    pub(crate) fn trusted(max_len: u64) -> Self {
        RecvLimits {
            max_len,
            rest: None,
            until: None,
            budget: None,
        }
    }
}

impl RecvLimits<'_> {
    /// The deadline for the rest of a frame whose first byte arrives now.
    pub(crate) fn rest_deadline(&self) -> Option<Instant> {
        let rest = self.rest.and_then(crate::sys::deadline_after);
        match (rest, self.until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

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

/// Sends one frame whose body is `word` and then `rest`, without copying `rest` (a
/// typed `Vec` of numbers: its length word, then its elements' memory).
pub(crate) fn send_word_and(fd: BorrowedFd<'_>, word: [u8; 8], rest: &[u8]) -> Result<()> {
    let mut head = [0u8; HEADER + 8];
    put_header(&mut head[..HEADER], 0, (8 + rest.len()) as u64);
    head[HEADER..].copy_from_slice(&word);
    sys::socket::send_all(fd, &[&head, rest], &[]).map_err(|e| Error::io("send", e))
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

    /// Checks that the handles announced are the `arrived` ones.
    pub(crate) fn check_fds(&self, arrived: usize) -> Result<()> {
        if arrived == self.nfds as usize {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Protocol,
            format!(
                "malformed frame: header announces {} handles, {arrived} arrived",
                self.nfds
            ),
        ))
    }
}

/// A received frame.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) body: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
}

impl Frame {
    /// Decodes the frame as one `T` (`codec::decode`), then keeps a large body for
    /// this thread's next large frame ([`recycle_body`]).
    pub(crate) fn decode<T: serde::de::DeserializeOwned>(self) -> Result<T> {
        let value = crate::wire::codec::decode(&self.body, self.fds);
        recycle_body(self.body);
        value
    }
}

/// Reads into `buf` completely. `deadline` applies only while nothing of the frame has
/// arrived yet (`first`); once a frame has started, `rest` is the deadline for the
/// rest of it (set by the first byte, from `limits`; `None`: no deadline). With a
/// `mark` (see the module docs), `first` reads set it to [`MID_FRAME`] before they may
/// consume and back to [`AT_BOUNDARY`] when they found nothing.
#[allow(clippy::too_many_arguments)]
fn read_full(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    deadline: Option<Instant>,
    first: bool,
    spin: Duration,
    mark: Option<&AtomicU32>,
    limits: &RecvLimits<'_>,
    rest: &mut Option<Instant>,
) -> Result<ReadOutcome> {
    let mut got = 0;
    let spin_until = Instant::now() + spin;
    // Whether the next receive sleeps inside `recvmsg` itself (see below).
    let mut block = false;
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
        let blocking = std::mem::take(&mut block);
        match sys::socket::recv_some(fd, &mut buf[got..], fds, !blocking) {
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
            Ok(n) => {
                if fresh {
                    *rest = limits.rest_deadline();
                }
                got += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if fresh {
                    unmark();
                }
                // A first read comes after `wait_for_bytes` found bytes: only the rest
                // of a frame is worth spinning for (its sender is still writing it).
                if !fresh && Instant::now() < spin_until {
                    std::hint::spin_loop();
                    continue;
                }
                let dl = if fresh { deadline } else { *rest };
                if dl.is_none() && fresh_mark.is_none() && !blocking {
                    // Nothing to time and no progress mark to keep: sleep inside
                    // `recvmsg`, one system call per wake-up as a blocking socket makes,
                    // instead of `poll` and then `recvmsg` (on a loaded machine every
                    // call is a chance to lose the CPU). A socket in non-blocking mode
                    // answers `WouldBlock` again, and then `poll` sleeps.
                    block = true;
                    continue;
                }
                if !sys::poll::wait_readable(fd, dl).map_err(|e| Error::io("poll", e))? {
                    if fresh {
                        return Ok(ReadOutcome::TimedOut);
                    }
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        "the rest of a message did not arrive in time (the peer stalled in \
                         the middle of a frame); the connection is closed",
                    ));
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

/// Waits until bytes of a frame wait on `fd`, spinning at most `spin` first, and
/// copies the first of them into `header` without consuming anything (see the
/// module docs: a progress mark stays [`AT_BOUNDARY`] while nothing is taken).
/// Returns how many bytes were copied, 0 at end of stream, `None` if `deadline`
/// passed.
///
/// Without a deadline the wait is one `recv(MSG_PEEK)` that sleeps in the kernel:
/// one system call per wake-up, as a plain blocking socket makes (`poll` and then a
/// read would be two, and on a loaded machine every return from the kernel is a
/// chance to lose the CPU). A side that does not spin (`spin` zero, see
/// [`AdaptiveSpin`]) goes straight to it: where both sides of a round trip share a
/// CPU with a busy process, each system call is a share of that CPU. (With its empty
/// non-blocking peek first, its clock reads and `recvmsg`/`sendmsg` message headers,
/// the sleeping round trip on one CPU took 14.7 us; without them 12.5 us, against 9.3
/// us for a bare `send`/`recv` pair of the same 8 bytes.)
fn wait_for_bytes(
    fd: BorrowedFd<'_>,
    header: &mut [u8; HEADER],
    deadline: Option<Instant>,
    spin: Duration,
) -> Result<Option<usize>> {
    // A peek takes nothing: the frame stays whole in the socket while we wait.
    sys::poll::Waiter::new(deadline, spin)
        .wait(fd, |nonblocking| sys::socket::peek(fd, header, nonblocking))
        .map_err(|e| Error::io("recv", e))
}

/// Takes the frame's header (already peeked whole) and as much of its first body
/// chunk as has arrived, in one call; marks the frame started. Returns the body
/// bytes taken.
fn take_header_and_more(
    fd: BorrowedFd<'_>,
    header: &mut [u8; HEADER],
    body: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    mark: Option<&AtomicU32>,
    limits: &RecvLimits<'_>,
    rest: &mut Option<Instant>,
) -> Result<usize> {
    let peeked = *header;
    if let Some(m) = mark {
        m.store(MID_FRAME, Ordering::Release);
    }
    let mut bufs = [io::IoSliceMut::new(header), io::IoSliceMut::new(body)];
    // (`recv_vectored` retries `EINTR` itself.) The peeked bytes wait for us alone (we
    // hold the receive lock), so neither an empty answer nor `WouldBlock` can happen;
    // if either does, the stream is not what it was a moment ago.
    let n =
        sys::socket::recv_vectored(fd, &mut bufs, fds, true).map_err(|e| Error::io("recv", e))?;
    if n == 0 {
        return Err(Error::new(
            ErrorKind::Protocol,
            "the connection closed in the middle of a message (truncated frame)",
        ));
    }
    *rest = limits.rest_deadline();
    if n < HEADER || *header != peeked {
        return Err(Error::new(
            ErrorKind::Protocol,
            "the frame header changed between a peek and its read (another reader took it)",
        ));
    }
    Ok(n - HEADER)
}

/// The first buffer for a body of `len` bytes: `first` zeroed bytes, reserved in
/// `reserved` (in this thread's spare buffer for a large body, see [`large_body`]).
pub(crate) fn first_body(len: usize, first: usize, reserved: &mut Reserved<'_>) -> Result<Vec<u8>> {
    reserved.grow(first as u64)?;
    let body = if len > CHUNK {
        large_body(first)
    } else {
        sys::zeroed_bytes(first)
    };
    body.ok_or_else(|| no_memory(first))
}

/// Grows `body` toward `len` bytes as they arrive: to at least double, and at once to
/// what its buffer already holds (a recycled one costs nothing new), the growth
/// reserved in `reserved` first.
pub(crate) fn grow_body(body: &mut Vec<u8>, len: usize, reserved: &mut Reserved<'_>) -> Result<()> {
    let more = (body.len() * 2).max(body.capacity()).min(len) - body.len();
    reserved.grow(more as u64)?;
    body.try_reserve_exact(more)
        .map_err(|_| no_memory(body.len() + more))?;
    body.resize(body.len() + more, 0);
    Ok(())
}

fn no_memory(len: usize) -> Error {
    Error::new(
        ErrorKind::Protocol,
        format!("cannot allocate {len} bytes for a received frame"),
    )
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
/// after [`PROBE`] sleeping receives, as an adaptive mutex does.
///
/// A try that misses at once (a *probe*) doubles the wait before the next one, up to
/// `PROBE << MAX_BACKOFF` receives; a probe that hits resets it. Where spinning cannot
/// work (both sides share a CPU with a busy process, so the peer cannot answer while
/// this side spins), every probe costs a spin of [`SPIN`] and leaves this side behind
/// in the scheduler's fairness accounting: measured with the four processes pinned on
/// 2 CPUs, probing every 64 receives cost 1.0-1.2 us per round trip. Where spinning
/// does work (each side beside a busy process on its own CPU: 26 us spinning against
/// 80 us sleeping), probes hit and the wait stays at [`PROBE`]. Used by `Connection`,
/// the manager's client and server, and the Redis connections (`broker::conn`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdaptiveSpin {
    spin: Duration,
    /// The spin tried when spinning is on ([`SPIN`] unless made
    /// [`with_spin`](AdaptiveSpin::with_spin)).
    full: Duration,
    /// Receives left before spinning is tried again.
    until_probe: u32,
    /// Probes that missed in a row (the wait before the next is `PROBE << backoff`).
    backoff: u8,
    /// The current spin is a probe: the first after sleeping receives.
    probing: bool,
}

/// Sleeping receives between two tries at spinning.
const PROBE: u32 = 64;
/// The longest spin of an [`AdaptiveSpin`] (a probe spins twice as long as the last
/// sleeping receive took, between its `full` spin and this): more than twice the
/// slowest wake-up measured here (95 us), well under a scheduler slice.
const MAX_SPIN: Duration = Duration::from_micros(500);
/// Doublings of [`PROBE`] after probes that missed: at most 2048 sleeping receives
/// (about 130 ms of round trips on a quiet VM) before spinning is tried again.
const MAX_BACKOFF: u8 = 5;

impl Default for AdaptiveSpin {
    fn default() -> Self {
        Self::new()
    }
}

impl AdaptiveSpin {
    pub(crate) fn new() -> AdaptiveSpin {
        AdaptiveSpin::with_spin(SPIN)
    }

    /// Spins of `full` instead of [`SPIN`], for a peer whose answers take longer (a
    /// Redis server running a script).
    pub(crate) fn with_spin(full: Duration) -> AdaptiveSpin {
        AdaptiveSpin {
            spin: full,
            full,
            until_probe: 0,
            backoff: 0,
            probing: false,
        }
    }

    /// Receives a frame as [`recv`] does, spinning as the last answers suggest.
    pub(crate) fn recv(
        &mut self,
        fd: BorrowedFd<'_>,
        deadline: Option<Instant>,
        max_len: u64,
    ) -> Result<Option<Frame>> {
        self.recv_marked(fd, deadline, &RecvLimits::trusted(max_len), None)
    }

    /// As [`recv`](AdaptiveSpin::recv), with `limits` for a peer from outside.
    pub(crate) fn recv_limited(
        &mut self,
        fd: BorrowedFd<'_>,
        deadline: Option<Instant>,
        limits: &RecvLimits<'_>,
    ) -> Result<Option<Frame>> {
        self.recv_marked(fd, deadline, limits, None)
    }

    /// As [`recv`](AdaptiveSpin::recv), keeping a progress `mark` (see the module
    /// docs). An error can leave it at [`MID_FRAME`]: the stream is then past a
    /// frame boundary.
    pub(crate) fn recv_marked(
        &mut self,
        fd: BorrowedFd<'_>,
        deadline: Option<Instant>,
        limits: &RecvLimits<'_>,
        mark: Option<&AtomicU32>,
    ) -> Result<Option<Frame>> {
        self.timed(|spin| recv_inner(fd, deadline, limits, spin, mark))
    }

    /// Runs one receive with the current spin, and adapts to how long it took (a
    /// receive over a sequenced-packet socket, `wire::packet`, and a Redis reply,
    /// `broker::conn`, are run this way). A receive that fails teaches nothing.
    #[inline]
    pub(crate) fn timed<T, E>(
        &mut self,
        recv: impl FnOnce(Duration) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        // A sleeping side times only its last receive before a probe (see
        // `after_receive`): two clock reads less on the path that a loaded machine takes.
        let t = (self.spin > Duration::ZERO || self.until_probe == 1).then(Instant::now);
        let f = recv(self.spin)?;
        self.after_receive(t.map_or(Duration::ZERO, |t| t.elapsed()));
        Ok(f)
    }

    /// Adapts to a receive that took `took` (measured while spinning, and for the last
    /// sleeping receive before a probe; otherwise zero).
    ///
    /// A probe spins twice as long as that last sleeping receive took (at least `full`,
    /// at most [`MAX_SPIN`]), and each receive that hits sets the next spin the same way
    /// from its own time (so once both sides spin, the spin is back to `full`). The
    /// probe must outlast the peer's wake-up: when both sides sleep, one side's probe
    /// waits for an answer that comes only after the other side wakes, and where a
    /// wake-up takes longer than the spin every probe on both sides misses and spinning
    /// is never taken up again. A sleeping receive spans the peer's wake-up (and this
    /// side's), so twice it is long enough.
    ///
    /// Measured in this 2-vCPU VM, alternating builds, in an hour when a wake-up took
    /// 50-95 us (the blocking socket round trip 100-187 us): the quiet `u64` round trip
    /// was 133, 115 and 19.1 us with a fixed 50 us spin (at or near the sleeping floor),
    /// 10.8, 9.0 and 12.2 us with a probe of twice the last sleeping receive. The same
    /// holds for a peer that works before it answers: against an echo that works 100 us
    /// (300 us) per request, 171 us (396 us) per round trip with the fixed spin, 115 us
    /// (318 us) with this one; at 1 ms of work both sleep (1117 against 1086 us).
    ///
    /// Where spinning cannot work (the peer shares this CPU) a sleeping receive is
    /// short, and the probe costs what it did. The price: a receiver whose messages
    /// come on the sender's own schedule, less than `MAX_SPIN / 2` apart, spins through
    /// the gaps (with a fixed 50 us spin it did so only for gaps under 50 us) until a
    /// miss, such as being preempted, sends it back to sleep.
    ///
    /// (Tried and left out: also sleeping while `/proc/loadavg` counts more runnable
    /// tasks than CPUs. On 2 CPUs a spinning pair already counts two, so any passing
    /// task stopped the spin of a quiet round trip (12-17 us became 16-25 us), and the
    /// loaded rows showed no gain beyond their noise.)
    fn after_receive(&mut self, took: Duration) {
        if self.spin > Duration::ZERO {
            if took > self.spin {
                // Missed: the peer was not running. Sleep for a while, longer after
                // each probe that missed at once.
                self.backoff = if self.probing {
                    (self.backoff + 1).min(MAX_BACKOFF)
                } else {
                    0
                };
                self.spin = Duration::ZERO;
                self.until_probe = PROBE << self.backoff;
            } else {
                if self.probing {
                    self.backoff = 0;
                }
                self.spin = self.spin_for(took);
            }
            self.probing = false;
        } else {
            self.until_probe = self.until_probe.saturating_sub(1);
            if self.until_probe == 0 {
                self.spin = self.spin_for(took);
                self.probing = true;
            }
        }
    }

    /// The spin for an answer expected to take about `took`: twice that, between
    /// `full` and [`MAX_SPIN`].
    fn spin_for(&self, took: Duration) -> Duration {
        (took * 2).clamp(self.full, MAX_SPIN.max(self.full))
    }

    /// The state as one word, to keep it in an atomic (of a spin made with
    /// [`new`](AdaptiveSpin::new) only: the word has no room for `full`).
    pub(crate) fn to_bits(self) -> u64 {
        let nanos = u32::try_from(self.spin.as_nanos()).unwrap_or(u32::MAX);
        (u64::from(nanos) << 32)
            | (u64::from(self.probing) << 31)
            | (u64::from(self.backoff) << 24)
            | u64::from(self.until_probe & 0x00ff_ffff)
    }

    /// The state kept by [`to_bits`](AdaptiveSpin::to_bits).
    pub(crate) fn from_bits(bits: u64) -> AdaptiveSpin {
        AdaptiveSpin {
            spin: Duration::from_nanos(bits >> 32),
            full: SPIN,
            until_probe: (bits & 0x00ff_ffff) as u32,
            backoff: ((bits >> 24) & 0x7f) as u8,
            probing: bits & (1 << 31) != 0,
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

/// As [`recv`], with `limits` for a peer from outside (see the module docs).
pub(crate) fn recv_limited(
    fd: BorrowedFd<'_>,
    deadline: Option<Instant>,
    limits: &RecvLimits<'_>,
) -> Result<Option<Frame>> {
    recv_inner(fd, deadline, limits, SPIN, None)
}

/// As [`recv`], spinning at most `spin` (instead of [`SPIN`]) before sleeping, for
/// callers that adapt it to how long their peer takes to answer.
pub(crate) fn recv_spin(
    fd: BorrowedFd<'_>,
    deadline: Option<Instant>,
    max_len: u64,
    spin: Duration,
) -> Result<Option<Frame>> {
    recv_inner(fd, deadline, &RecvLimits::trusted(max_len), spin, None)
}

fn recv_inner(
    fd: BorrowedFd<'_>,
    deadline: Option<Instant>,
    limits: &RecvLimits<'_>,
    spin: Duration,
    mark: Option<&AtomicU32>,
) -> Result<Option<Frame>> {
    let mut header = [0u8; HEADER];
    let mut fds = Vec::new();
    let mut rest = None;
    let deadline = match (deadline, limits.until) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let peeked = match wait_for_bytes(fd, &mut header, deadline, spin)? {
        None => return Ok(None),
        Some(0) => return Err(Error::disconnected()),
        Some(n) => n,
    };
    let whole_header = peeked == HEADER;
    if !whole_header {
        // A header arriving in pieces (a peer from outside, or a stalled one): read it
        // with the rest deadline of its first byte.
        let outcome = read_full(
            fd,
            &mut header,
            &mut fds,
            deadline,
            true,
            Duration::ZERO,
            mark,
            limits,
            &mut rest,
        )?;
        match outcome {
            ReadOutcome::Done => {}
            ReadOutcome::Eof => return Err(Error::disconnected()),
            ReadOutcome::TimedOut => return Ok(None),
        }
    }
    let head = Header::parse(&header, limits.max_len)?;
    let len = usize::try_from(head.len)
        .map_err(|_| Error::new(ErrorKind::Protocol, "frame larger than the address space"))?;
    // The body grows as its bytes arrive (see the module docs), so what a header
    // claims costs nothing until it is sent.
    let mut reserved = Reserved::new(limits.budget);
    let mut body = first_body(len, len.min(CHUNK), &mut reserved)?;
    let mut got = 0;
    if whole_header {
        // The header was only peeked: take it and what has come of the body in one
        // call (a small frame is then whole).
        got = take_header_and_more(
            fd,
            &mut header,
            &mut body,
            &mut fds,
            mark,
            limits,
            &mut rest,
        )?;
    }
    while got < len {
        if got == body.len() {
            grow_body(&mut body, len, &mut reserved)?;
        }
        let outcome = read_full(
            fd,
            &mut body[got..],
            &mut fds,
            None,
            false,
            SPIN,
            mark,
            limits,
            &mut rest,
        )?;
        debug_assert!(
            matches!(outcome, ReadOutcome::Done),
            "only a first read times out"
        );
        got = body.len();
    }
    drop(reserved);
    // The whole frame is read: the stream is at a boundary, whatever is checked next.
    if let Some(m) = mark {
        m.store(AT_BOUNDARY, Ordering::Release);
    }
    head.check_fds(fds.len())?;
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

    /// Drives `after_receive` with made-up timings: `hit` is an answer within the spin.
    fn sleeping_receives_before_next_spin(spin: &mut AdaptiveSpin) -> u32 {
        let mut n = 0;
        while spin.spin == Duration::ZERO {
            spin.after_receive(Duration::ZERO);
            n += 1;
            assert!(n <= PROBE << MAX_BACKOFF, "spinning is always tried again");
        }
        n
    }

    #[test]
    fn adaptive_spin_backs_off_after_probes_that_miss_and_resets_on_a_hit() {
        let miss = SPIN * 2;
        let hit = Duration::from_micros(1);
        let mut spin = AdaptiveSpin::new();
        // Spinning worked for a while, then missed: the plain wait.
        spin.after_receive(hit);
        spin.after_receive(miss);
        assert_eq!(sleeping_receives_before_next_spin(&mut spin), PROBE);
        // Every probe that misses at once doubles the wait, up to the cap.
        for k in 1..=MAX_BACKOFF + 2 {
            spin.after_receive(miss);
            let expected = PROBE << k.min(MAX_BACKOFF);
            assert_eq!(sleeping_receives_before_next_spin(&mut spin), expected);
        }
        // A probe that hits resets the wait; the state survives its word.
        spin.after_receive(hit);
        spin = AdaptiveSpin::from_bits(spin.to_bits());
        spin.after_receive(hit);
        spin.after_receive(miss);
        assert_eq!(sleeping_receives_before_next_spin(&mut spin), PROBE);
        // Mid-wait state, probing flag and backoff all survive the word.
        spin.after_receive(miss);
        for _ in 0..10 {
            spin.after_receive(Duration::ZERO);
        }
        let back = AdaptiveSpin::from_bits(spin.to_bits());
        assert_eq!(
            (back.spin, back.until_probe, back.backoff, back.probing),
            (spin.spin, spin.until_probe, spin.backoff, spin.probing)
        );
    }

    /// The last sleeping receive before a probe is timed for real: one that waited
    /// 20 ms makes the probe spin the most (a quarter of a millisecond would).
    #[test]
    fn the_receive_before_a_probe_is_timed() {
        let (a, b) = pair();
        let mut spin = AdaptiveSpin::new();
        spin.after_receive(MAX_SPIN * 4);
        let (ready, wait_ready) = std::sync::mpsc::channel();
        let writer = std::thread::spawn(move || {
            for _ in 0..PROBE - 1 {
                send_parts(a.as_fd(), b"x", &[]).unwrap();
            }
            wait_ready.recv().unwrap();
            std::thread::sleep(Duration::from_millis(20));
            send_parts(a.as_fd(), b"x", &[]).unwrap();
            a
        });
        for _ in 0..PROBE - 1 {
            spin.recv(b.as_fd(), soon(), 8).unwrap().unwrap();
        }
        ready.send(()).unwrap();
        spin.recv(b.as_fd(), soon(), 8).unwrap().unwrap();
        assert!(spin.probing);
        assert_eq!(spin.spin, MAX_SPIN);
        drop(writer.join().unwrap());
    }

    /// A probe spins twice as long as the last sleeping receive took, between the
    /// plain spin and `MAX_SPIN`; each hit sets the next spin from its own time.
    #[test]
    fn a_probe_outlasts_the_last_sleeping_receive() {
        let miss = MAX_SPIN * 4;
        let hit = Duration::from_micros(1);
        for (last, spin) in [
            (Duration::from_micros(1), SPIN),
            (Duration::from_micros(150), Duration::from_micros(300)),
            (Duration::from_millis(30), MAX_SPIN),
        ] {
            let mut s = AdaptiveSpin::new();
            s.after_receive(miss);
            for _ in 0..PROBE - 1 {
                assert_eq!(s.until_probe > 1, s.spin == Duration::ZERO);
                s.after_receive(Duration::ZERO);
            }
            assert_eq!(s.until_probe, 1, "the next receive is timed");
            s.after_receive(last);
            assert!(s.probing);
            assert_eq!(s.spin, spin, "after a sleeping receive of {last:?}");
            let back = AdaptiveSpin::from_bits(s.to_bits());
            assert_eq!(back.spin, spin, "kept in the state's word");
            // Each hit sets the next spin from its own time.
            s.after_receive(spin / 2);
            assert_eq!(s.spin, spin, "a hit in half the spin");
            s.after_receive(hit);
            assert_eq!(s.spin, SPIN, "answers at once: the plain spin");
        }
    }

    #[test]
    fn a_recycled_body_carries_nothing_into_the_next_frame() {
        let (a, b) = pair();
        let sizes = [3 * CHUNK, 2 * CHUNK + 7, 5 * CHUNK, CHUNK / 2, 4 * CHUNK];
        let writer = std::thread::spawn(move || {
            for (i, n) in sizes.iter().enumerate() {
                send_parts(a.as_fd(), &vec![i as u8 + 1; *n], &[]).unwrap();
            }
            a
        });
        for (i, n) in sizes.iter().enumerate() {
            let f = recv(b.as_fd(), soon(), 1 << 30).unwrap().unwrap();
            assert_eq!(f.body.len(), *n, "frame {i}");
            assert!(f.body.iter().all(|&x| x == i as u8 + 1), "frame {i}");
            recycle_body(f.body);
        }
        // The spare buffer is the largest body seen, up to its bound.
        assert!(spare::take(&SPARE_BODY).capacity() >= 5 * CHUNK);
        drop(writer.join().unwrap());
    }

    #[test]
    fn a_claimed_length_costs_nothing_until_its_bytes_arrive() {
        let (a, b) = pair();
        let budget = Budget::new(1 << 20);
        let limits = RecvLimits {
            max_len: 1 << 30,
            rest: Some(Duration::from_millis(100)),
            until: None,
            budget: Some(&budget),
        };
        // 1 GiB announced, 100 KiB sent, then silence: the rest deadline ends it, and
        // nothing more than the chunks that filled was ever reserved.
        let h = Header {
            nfds: 0,
            len: 1 << 30,
        }
        .to_bytes();
        sys::socket::send_all(a.as_fd(), &[&h, &vec![1u8; 100 << 10]], &[]).unwrap();
        let t = Instant::now();
        let e = recv_limited(b.as_fd(), None, &limits).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(e.to_string().contains("in time"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(budget.used(), 0, "given back when the frame failed");
    }

    #[test]
    fn a_frame_past_the_budget_is_refused_and_a_frame_within_it_arrives() {
        let (a, b) = pair();
        let budget = Budget::new(CHUNK as u64 * 3);
        let limits = RecvLimits {
            max_len: u64::MAX,
            rest: None,
            until: None,
            budget: Some(&budget),
        };
        let writer = std::thread::spawn(move || {
            send_parts(a.as_fd(), &vec![3u8; CHUNK * 2], &[]).unwrap();
            let _ = send_parts(a.as_fd(), &vec![4u8; CHUNK * 4], &[]);
            a
        });
        let f = recv_limited(b.as_fd(), soon(), &limits).unwrap().unwrap();
        assert_eq!(f.body, vec![3u8; CHUNK * 2]);
        let e = recv_limited(b.as_fd(), soon(), &limits).unwrap_err();
        assert!(e.to_string().contains("budget"), "{e}");
        assert_eq!(budget.used(), 0);
        drop(b);
        drop(writer.join().unwrap());
    }

    #[test]
    fn one_byte_then_silence_meets_the_deadline_for_every_byte() {
        let (a, b) = pair();
        sys::socket::send_all(a.as_fd(), &[&[0x52]], &[]).unwrap();
        let until = Instant::now() + Duration::from_millis(50);
        let limits = RecvLimits {
            until: Some(until),
            ..RecvLimits::trusted(64)
        };
        let e = recv_limited(b.as_fd(), Some(until), &limits).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(Instant::now() >= until);
    }

    proptest::proptest! {
        /// Any 16 bytes are a header or a `Protocol` error.
        #[test]
        fn any_header_bytes_parse_or_fail(b in proptest::prelude::any::<[u8; HEADER]>(), max in proptest::prelude::any::<u64>()) {
            match Header::parse(&b, max) {
                Ok(h) => proptest::prop_assert!(h.len <= max),
                Err(e) => proptest::prop_assert_eq!(e.kind(), ErrorKind::Protocol),
            }
        }
    }
}
