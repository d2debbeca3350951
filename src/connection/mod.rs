//! Pipes and connections: Python's `Pipe()` and `Connection`.
//!
//! A [`Connection<T>`] is one end of a socket that carries typed messages (encoded
//! `T`) and raw byte messages in length-prefixed frames: a Unix sequenced-packet
//! socket for [`pipe`]s, a Unix or TCP stream for [`Listener`](crate::Listener) and
//! [`Client`](crate::Client) connections. Both ends can live in any processes: pass
//! an end in a child's args, or send it through another connection.
//!
//! # Sharing an end: whole messages, whatever the number of senders and receivers
//!
//! Any number of processes and threads may send on copies of the same end (and
//! receive on copies of the same end): each message is delivered whole, to one
//! receiver, or not at all. A stream socket does not keep message boundaries and
//! large writes from two processes interleave, so each end carries two locks, shared
//! by every copy of it (`locks.rs`: the crate's robust futex lock, in a small memfd
//! segment that travels with the end through the fd side table, as every handle's
//! segment does). A sender holds the send lock for a whole frame, a receiver the
//! receive lock. Uncontended, that is one CAS and one swap per message.
//!
//! Design notes, and the alternatives weighed:
//!
//! * *`SOCK_SEQPACKET`* keeps boundaries in the kernel, but caps a message at the
//!   socket buffer: large messages need several records, and the records of two
//!   senders interleave again, so it does not remove the locks. It is still what
//!   pipes use (see `wire::packet`), for two other reasons: a small message is
//!   received in one system call (over a stream, a receiver must peek at the header
//!   before it reads exactly one frame, and on a loaded CPU that second call was a
//!   fifth of a round trip), and a process that dies in the middle of a message, as
//!   sender or receiver, costs only that message (the next receiver skips what is
//!   left of it, see below) instead of closing the direction. Large frames move at
//!   the stream's speed because their records are sent and received in batches
//!   (`sendmmsg`/`recvmmsg`).
//! * *A memfd per message* (the frame carries only the fd) makes each frame one small
//!   `sendmsg`; that its bytes are never split relies on how Linux queues stream
//!   socket data (one buffer per write up to a size), which nothing documents; it
//!   costs a memfd, a copy and several system calls per message; it cannot work over
//!   TCP; and receivers still need a lock (a frame is read in several reads). No.
//! * *A lock per end in shared memory* (chosen): any size, TCP too, cheap, robust.
//!   Its costs: one more fd and one mapping per pipe (both ends share one segment,
//!   one cache line each) or per accepted/connected end.
//! * *A fast lane per direction of a pipe* (`lane.rs`): while a receiver waits in a
//!   receive, small messages (up to 248 bytes, no handles) go through a ring in the
//!   pipe's shared segment instead of the socket, and a receiver that sleeps is woken
//!   by an eventfd it polls beside the socket. The socket is kept for everything else
//!   (large frames, handles, messages sent while nobody receives) and for the peer's
//!   close, and the order of messages holds across both. A round trip of small
//!   messages costs no system call while both sides spin, and beside busy processes
//!   it is a third of a socket's (see `lane.rs` for the figures).
//!
//! A holder that dies does not wedge the others: the lock detects its dead owner and
//! hands it on, and a *progress mark* next to each lock says whether the dead holder
//! was in the middle of a frame.
//!
//! * Over a pipe, a dead holder costs only its own message. Records are whole, and
//!   each says whether it starts a frame or continues one, so the next receiver skips
//!   what a dead receiver left of its frame; after a dead sender, the next sender first
//!   sends a few *sync records*, which make a receiver in the middle of the cut frame
//!   report it (one [`ErrorKind::Protocol`] error: a truncated frame) and are skipped
//!   anywhere else (see `wire::packet`). Every message sent before and after arrives
//!   whole.
//! * Over a stream (a [`Listener`](crate::Listener)'s or [`Client`](crate::Client)'s
//!   connection), a holder that died at a frame boundary cost nothing but its own
//!   message. One that died in the middle of a frame cut the byte stream where no later
//!   frame boundary can be found again, so that direction of the end is closed: the
//!   next sender (or receiver) marks it broken and shuts the socket down in that
//!   direction; every later operation in that direction on any copy is an
//!   [`ErrorKind::Protocol`] error that says a sender (receiver) died in a message. The
//!   peer's receiver reads all the whole messages sent before, then one `Protocol`
//!   error (the truncated frame), then [`ErrorKind::Disconnected`]; after a receiver
//!   died mid-frame, the peer's senders get `Disconnected`. A sender killed inside
//!   `send` counts as mid-frame even if its last byte had just gone out, and a
//!   receiver killed in the instant of one read that finds nothing may be taken for
//!   one killed mid-frame: false alarms that close the direction, never a misread.
//!
//! Never garbage.
//!
//! # Examples
//!
//! ```
//! multiprocess::init();
//! let (a, b) = multiprocess::pipe::<String>()?;
//! a.send(&"hello".to_string())?;
//! assert_eq!(b.recv()?, "hello");
//! # Ok::<(), multiprocess::Error>(())
//! ```

mod lane;
mod locks;
mod recv_async;
mod wait;

pub(crate) use recv_async::RecvState;
pub use recv_async::{Recv, RecvBytes};
pub use wait::{WaitList, Waitable, wait};

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use crate::wire::handles::HandleFd;
use crate::wire::{codec, format, frame, packet};
use lane::{Lanes, Route};
use locks::{Dir, EndLocks};

/// Bytes of a `Vec` of numbers from which [`Connection::send`] sends it from its own
/// memory instead of encoding it into a buffer first.
const ZERO_COPY_MIN: usize = 64 << 10;

/// One end of a pipe: sends and receives messages of type `T`.
///
/// `T` only fixes what [`send`](Connection::send) and [`recv`](Connection::recv)
/// accept; raw byte messages ([`send_bytes`](Connection::send_bytes)) work on any
/// connection.
///
/// **Sharing an end is safe.** Any number of threads and processes may send on the
/// same end (through `&Connection`, [`try_clone`](Connection::try_clone), or copies
/// passed to children or sent through connections), and any number may receive on
/// the same end: each message is delivered whole, exactly once, or not at all. Sends
/// are serialized with sends and receives with receives, across processes, by locks
/// that every copy of the end shares. This holds for ends from [`pipe`], from
/// [`Listener::accept`](crate::Listener::accept) and from
/// [`Client::connect`](crate::Client::connect) alike. A process that dies in the
/// middle of sending (or receiving) a message never blocks the others nor makes anyone
/// read garbage. On a pipe it costs only that message: a receiver in the middle of it
/// gets one [`ErrorKind::Protocol`] error (a truncated frame), and every message before
/// and after arrives whole. On a stream connection (a listener's or client's) no later
/// message boundary can be found, so that direction of the end is closed with a clear
/// `Protocol` error for every later send (or receive) on it, and the peer reads what
/// was sent whole, one `Protocol` error, then [`ErrorKind::Disconnected`].
///
/// # Errors
///
/// Every call returns [`ErrorKind::Disconnected`] once the other end is closed (the peer
/// dropped it, exited or was killed) and nothing is left to read.
///
/// # Examples
///
/// In process 1 (the parent) and process 2 (a child):
///
/// ```
/// use multiprocess::{Connection, Process};
///
/// fn child(conn: Connection<Vec<Option<i32>>>) {
///     conn.send(&vec![Some(50), None]).unwrap();
/// }
///
/// multiprocess::init();
/// let (parent_end, child_end) = multiprocess::pipe()?;
/// let mut p = Process::new(child, child_end);
/// p.start()?;
/// assert_eq!(parent_end.recv()?, vec![Some(50), None]);
/// p.join()?;
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub struct Connection<T> {
    fd: HandleFd,
    readable: bool,
    writable: bool,
    max_len: u64,
    /// For ends accepted from outside: how long the rest of a frame may take once it
    /// started, and the server's budget for partly received frames (see
    /// `wire::frame`). Not carried to other processes.
    rest: Option<Duration>,
    budget: Option<Arc<frame::Budget>>,
    /// The send and receive locks shared by every copy of this end.
    locks: EndLocks,
    /// How long to spin for this connection's peer (an `AdaptiveSpin`, read and
    /// written under the receive lock).
    spin: AtomicU64,
    /// The socket is a sequenced-packet one (a pipe's): frames travel as records (see
    /// `wire::packet`), not as a byte stream.
    packets: bool,
    /// A pipe's fast lanes for small messages (see `lane`); `None` for a listener's or
    /// client's connection.
    lanes: Option<Lanes>,
    _t: PhantomData<fn(T) -> T>,
}

/// Creates a duplex pipe: both ends can send and receive.
///
/// Python's `multiprocessing.Pipe()`.
///
/// # Examples
///
/// ```
/// multiprocess::init();
/// let (a, b) = multiprocess::pipe::<u64>()?;
/// a.send(&1)?;
/// b.send(&2)?;
/// assert_eq!((b.recv()?, a.recv()?), (1, 2));
/// # Ok::<(), multiprocess::Error>(())
/// ```
#[doc(alias = "Pipe")]
pub fn pipe<T>() -> Result<(Connection<T>, Connection<T>)> {
    new_pipe(true)
}

/// The two ends of a pipe: end 0 reads, end 1 writes, and both do if `duplex`.
fn new_pipe<T>(duplex: bool) -> Result<(Connection<T>, Connection<T>)> {
    let (a, b) = sys::socket::pair_packets().map_err(|e| Error::io("socketpair", e))?;
    let [la, lb] = EndLocks::new_pipe(Lanes::segment_len(locks::PIPE_LANES_AT))?;
    let bells = Lanes::new_bells()?;
    let lanes = |l: &EndLocks| {
        let (seg, slot) = l.segment();
        Lanes::new(seg.clone(), locks::PIPE_LANES_AT, slot, bells.clone())
    };
    let (na, nb) = (lanes(&la), lanes(&lb));
    Ok((
        Connection::with_locks(a, true, duplex, la, true, na),
        Connection::with_locks(b, duplex, true, lb, true, nb),
    ))
}

/// Creates a one-way pipe: `(reader, writer)`, as Python's `Pipe(duplex=False)`.
///
/// # Examples
///
/// ```
/// use multiprocess::ErrorKind;
/// multiprocess::init();
/// let (reader, writer) = multiprocess::pipe_simplex::<u8>()?;
/// writer.send(&7)?;
/// assert_eq!(reader.recv()?, 7);
/// assert_eq!(reader.send(&1).unwrap_err().kind(), ErrorKind::NotPermitted);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub fn pipe_simplex<T>() -> Result<(Connection<T>, Connection<T>)> {
    new_pipe(false)
}

impl<T> Connection<T> {
    /// A connection on a socket made elsewhere (accepted, connected, inherited), with
    /// new locks of its own.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if the shared segment of its locks cannot be created.
    pub(crate) fn from_fd(fd: OwnedFd, readable: bool, writable: bool) -> Result<Self> {
        let [locks] = EndLocks::new_ends()?;
        let packets = sys::socket::is_packets(fd.as_fd());
        Ok(Connection::with_locks(
            fd, readable, writable, locks, packets, None,
        ))
    }

    fn with_locks(
        fd: OwnedFd,
        readable: bool,
        writable: bool,
        locks: EndLocks,
        packets: bool,
        lanes: Option<Lanes>,
    ) -> Self {
        Connection {
            fd: HandleFd::new(fd),
            readable,
            writable,
            max_len: u64::MAX,
            rest: None,
            budget: None,
            locks,
            spin: AtomicU64::new(frame::AdaptiveSpin::new().to_bits()),
            packets,
            lanes,
            _t: PhantomData,
        }
    }

    /// Takes this end's lock of `dir` for one frame (see `locks`); `None` on timeout.
    #[inline]
    fn hold(&self, dir: Dir, deadline: Option<Instant>) -> Result<Option<locks::Held<'_>>> {
        self.locks
            .hold(dir, self.fd.as_fd(), self.packets, deadline)
    }

    /// Sets the largest message this end accepts; a larger incoming frame is a
    /// [`ErrorKind::Protocol`] error. The default is no limit beyond memory.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::ErrorKind;
    /// multiprocess::init();
    /// let (a, mut b) = multiprocess::pipe::<()>()?;
    /// b.set_max_message_size(4);
    /// a.send_bytes(b"too big")?;
    /// assert_eq!(b.recv_bytes().unwrap_err().kind(), ErrorKind::Protocol);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn set_max_message_size(&mut self, bytes: u64) {
        self.max_len = bytes;
    }

    /// Limits a peer from outside (a listener's or manager's connection): the rest of
    /// a frame must arrive within `rest` once it started, and partly received frames
    /// reserve their bytes in `budget`.
    pub(crate) fn limit_inbound(&mut self, rest: Option<Duration>, budget: Arc<frame::Budget>) {
        self.rest = rest;
        self.budget = Some(budget);
    }

    fn check_writable(&self) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::NotPermitted,
                "this end of a one-way pipe is read-only",
            ))
        }
    }

    fn check_readable(&self) -> Result<()> {
        if self.readable {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::NotPermitted,
                "this end of a one-way pipe is write-only",
            ))
        }
    }

    /// Sends a raw byte message (any length, including zero).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if the peer is gone; [`ErrorKind::NotPermitted`] on
    /// the reading end of a one-way pipe; [`ErrorKind::Protocol`] on a stream
    /// connection whose sending direction another sender broke by dying in the middle
    /// of a message (over a pipe, a sender that dies costs only its own message).
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let (a, b) = multiprocess::pipe::<()>()?;
    /// a.send_bytes(b"")?;
    /// a.send_bytes(b"abc")?;
    /// assert_eq!(b.recv_bytes()?, b"");
    /// assert_eq!(b.recv_bytes()?, b"abc");
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.check_writable()?;
        let g = self.hold(Dir::Send, None)?.expect("no deadline");
        if self.lane_route(&[bytes], false) == Route::Lane {
            return g.sent(Ok(()));
        }
        g.sent(if self.packets {
            packet::send_parts(self.fd.as_fd(), &[bytes], &[])
        } else {
            frame::send_parts(self.fd.as_fd(), bytes, &[])
        })
    }

    /// Under the send lock: sends a frame through the pipe's lane if it can, or counts
    /// it as one the caller sends over the socket (see `lane`).
    #[inline]
    fn lane_route(&self, parts: &[&[u8]], has_fds: bool) -> Route {
        match &self.lanes {
            Some(l) => l.route(parts, has_fds),
            None => Route::Socket,
        }
    }

    fn recv_frame(&self, deadline: Option<Instant>) -> Result<Option<frame::Frame>> {
        self.check_readable()?;
        let Some(g) = self.hold(Dir::Recv, deadline)? else {
            return Ok(None);
        };
        self.read_frame(&g, deadline)
    }

    /// Reads one frame under the held receive lock `g`.
    fn read_frame(
        &self,
        g: &locks::Held<'_>,
        deadline: Option<Instant>,
    ) -> Result<Option<frame::Frame>> {
        let mut spin = frame::AdaptiveSpin::from_bits(self.spin.load(Ordering::Relaxed));
        let limits = frame::RecvLimits {
            max_len: self.max_len,
            rest: self.rest,
            until: None,
            budget: self.budget.as_deref(),
        };
        let f = if let Some(lanes) = &self.lanes {
            spin.timed(|s| lanes.recv(self.fd.as_fd(), deadline, &limits, s))
        } else if self.packets {
            // Records are whole: no progress mark to keep (see `wire::packet`).
            spin.timed(|s| packet::recv(self.fd.as_fd(), deadline, &limits, s))
        } else {
            spin.recv_marked(self.fd.as_fd(), deadline, &limits, Some(g.mark()))
        };
        self.spin.store(spin.to_bits(), Ordering::Relaxed);
        f
    }

    /// Receives a raw byte message, blocking until one arrives.
    ///
    /// A message sent with [`send`](Connection::send) arrives as its encoded bytes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] if the peer is gone and nothing is left;
    /// [`ErrorKind::Protocol`] for a malformed frame, or one cut short because its
    /// sender died in its middle (over a pipe, the next message arrives whole).
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let (a, b) = multiprocess::pipe::<()>()?;
    /// a.send_bytes(&[1, 2, 3])?;
    /// assert_eq!(b.recv_bytes()?, vec![1, 2, 3]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        Ok(self.recv_frame(None)?.expect("no deadline").body)
    }

    /// Receives a raw byte message into `buf` at `offset`, returning its length.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BufferTooShort`] if it does not fit: the message is consumed and
    /// [`Error::message`] holds all of it. [`ErrorKind::InvalidInput`] if `offset` is
    /// past the end of `buf`.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::ErrorKind;
    /// multiprocess::init();
    /// let (a, b) = multiprocess::pipe::<()>()?;
    /// a.send_bytes(b"xyz")?;
    /// let mut buf = [0u8; 8];
    /// assert_eq!(b.recv_bytes_into(&mut buf, 2)?, 3);
    /// assert_eq!(&buf[2..5], b"xyz");
    /// a.send_bytes(b"too long for it")?;
    /// let err = b.recv_bytes_into(&mut buf, 0).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::BufferTooShort);
    /// assert_eq!(err.message(), Some(&b"too long for it"[..]));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn recv_bytes_into(&self, buf: &mut [u8], offset: usize) -> Result<usize> {
        if offset > buf.len() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "offset is past the end of the buffer",
            ));
        }
        let msg = self.recv_bytes()?;
        let room = buf.len() - offset;
        if msg.len() > room {
            return Err(Error::new(
                ErrorKind::BufferTooShort,
                format!(
                    "message of {} bytes does not fit in {room} bytes",
                    msg.len()
                ),
            )
            .with_message(msg));
        }
        buf[offset..offset + msg.len()].copy_from_slice(&msg);
        Ok(msg.len())
    }

    /// Is a message waiting? `poll(None)` blocks until one is; `poll(Some(d))` waits
    /// at most `d`; `Some(Duration::ZERO)` answers at once.
    ///
    /// A closed peer also makes `poll` return `true`: the next `recv` then reports
    /// [`ErrorKind::Disconnected`] (as Python's `poll` does).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// multiprocess::init();
    /// let (a, b) = multiprocess::pipe::<u8>()?;
    /// assert!(!b.poll(Some(Duration::ZERO))?);
    /// a.send(&1)?;
    /// assert!(b.poll(Some(Duration::from_secs(5)))?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool> {
        self.check_readable()?;
        let deadline = sys::deadline_after_opt(timeout);
        let Some(lanes) = &self.lanes else {
            return sys::poll::wait_readable(self.fd.as_fd(), deadline)
                .map_err(|e| Error::io("poll", e));
        };
        // The socket, and the lane's bell beside it; in slices, since a message in the
        // lane may come without a bell (see `lane`).
        let fds = [self.fd.as_raw_fd(), lanes.bell().as_raw_fd()];
        loop {
            if lanes.has_message() {
                return Ok(true);
            }
            let slice = Instant::now() + lane::SLICE;
            let until = deadline.map_or(slice, |d| d.min(slice));
            let ready = sys::poll::wait_any(&fds, Some(until)).map_err(|e| Error::io("poll", e))?;
            if ready.contains(&0) || (ready.contains(&1) && lanes.settle_bell()) {
                return Ok(true);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(lanes.has_message());
            }
        }
    }

    /// Is a message waiting in this pipe end's lane (which `poll(2)` on the socket does
    /// not show)? For [`wait`].
    pub(crate) fn lane_has_message(&self) -> bool {
        self.readable && self.lanes.as_ref().is_some_and(Lanes::has_message)
    }

    /// The bell of this pipe end's lane, which pollers watch beside the socket.
    pub(crate) fn lane_bell(&self) -> Option<BorrowedFd<'_>> {
        self.lanes
            .as_ref()
            .filter(|_| self.readable)
            .map(Lanes::bell)
    }

    /// The lane's bell was readable: does a message wait? (Silences a stale bell.)
    pub(crate) fn lane_settle_bell(&self) -> bool {
        self.readable && self.lanes.as_ref().is_some_and(Lanes::settle_bell)
    }

    /// Closes this end. The peer's next receive, once it has read what was sent, is
    /// [`ErrorKind::Disconnected`]. Dropping the connection does the same.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::ErrorKind;
    /// multiprocess::init();
    /// let (a, b) = multiprocess::pipe::<u8>()?;
    /// a.send(&1)?;
    /// a.close();
    /// assert_eq!(b.recv()?, 1); // what was sent still arrives
    /// assert_eq!(b.recv().unwrap_err().kind(), ErrorKind::Disconnected);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn close(self) {}

    /// Another handle on this end: the same socket (a duplicated fd) and the same
    /// locks, as a copy sent to another process gets. Senders on all the copies of an
    /// end send whole messages, and so do receivers (see the type's docs).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if the fd cannot be duplicated.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let (a, b) = multiprocess::pipe::<u8>()?;
    /// let a2 = a.try_clone()?;
    /// std::thread::spawn(move || a2.send(&2).unwrap()).join().unwrap();
    /// a.send(&1)?;
    /// assert_eq!((b.recv()?, b.recv()?), (2, 1));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn try_clone(&self) -> Result<Connection<T>> {
        let fd = sys::socket::dup(self.fd.as_fd()).map_err(|e| Error::io("dup", e))?;
        let mut c = Connection::with_locks(
            fd,
            self.readable,
            self.writable,
            self.locks.clone(),
            self.packets,
            self.lanes.clone(),
        );
        c.max_len = self.max_len;
        c.rest = self.rest;
        c.budget = self.budget.clone();
        Ok(c)
    }

    /// Re-types this connection (both ends must agree on the type).
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let (a, b) = multiprocess::pipe::<u32>()?;
    /// let a = a.cast::<String>();
    /// let b = b.cast::<String>();
    /// a.send(&"now strings".to_string())?;
    /// assert_eq!(b.recv()?, "now strings");
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn cast<U>(self) -> Connection<U> {
        Connection {
            fd: self.fd,
            readable: self.readable,
            writable: self.writable,
            max_len: self.max_len,
            rest: self.rest,
            budget: self.budget,
            locks: self.locks,
            spin: self.spin,
            packets: self.packets,
            lanes: self.lanes,
            _t: PhantomData,
        }
    }
}

impl<T: Serialize> Connection<T> {
    /// Sends `value` (with any handles inside it) to the other end.
    ///
    /// A `Vec` of numbers (`Vec<u8>`, `Vec<f64>`, ...) of 64 KiB or more is sent from
    /// its own memory, with no copy into an encoding buffer (the receiver still copies
    /// it once out of the frame, which [`recv_bytes`](Connection::recv_bytes) does not).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Serialize`] if `value` cannot be serialized: nothing is sent and the
    /// connection stays usable. [`ErrorKind::Disconnected`] if the peer is gone;
    /// [`ErrorKind::Protocol`] as for [`send_bytes`](Connection::send_bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let (a, b) = multiprocess::pipe::<(u8, String)>()?;
    /// a.send(&(1, "one".into()))?;
    /// assert_eq!(b.recv()?, (1, "one".to_string()));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn send(&self, value: &T) -> Result<()> {
        self.check_writable()?;
        // A large `Vec` of numbers goes from its own memory: the copy into an encoding
        // buffer costs about as much as the kernel's own copy (a 1 MiB `Vec<u8>` one
        // way between two processes: 1.6-4.3 GB/s encoded first, 4.3-5.5 GB/s from
        // its memory, over 21 alternating rounds). A small one is cheaper as one block.
        if let Some((word, elems)) = format::plain_vec_parts(value)
            && elems.len() >= ZERO_COPY_MIN
        {
            let g = self.hold(Dir::Send, None)?.expect("no deadline");
            // (Counted as a socket frame: far larger than a lane's slot.)
            let _ = self.lane_route(&[&word, elems], false);
            return g.sent(if self.packets {
                packet::send_parts(self.fd.as_fd(), &[&word, elems], &[])
            } else {
                frame::send_word_and(self.fd.as_fd(), word, elems)
            });
        }
        let mut enc = codec::encode_reusing(value, frame::HEADER)?;
        let mut bytes = std::mem::take(&mut enc.bytes);
        let fds = enc.borrowed_fds();
        if !fds.is_empty() && !sys::socket::is_unix(self.fd.as_fd()) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "this value holds handles (connections, queues, locks, ...), whose file \
                 descriptors can only travel over a Unix socket, not over TCP; send a \
                 manager proxy instead",
            ));
        }
        let g = self.hold(Dir::Send, None)?.expect("no deadline");
        if self.lane_route(&[&bytes[frame::HEADER..]], !fds.is_empty()) == Route::Lane {
            codec::recycle(bytes);
            return g.sent(Ok(()));
        }
        let sent = g.sent(if self.packets {
            packet::send(self.fd.as_fd(), &mut bytes, &fds)
        } else {
            frame::send(self.fd.as_fd(), &mut bytes, &fds)
        });
        codec::recycle(bytes);
        sent
    }
}

impl<T: DeserializeOwned> Connection<T> {
    /// Receives a value, blocking until one arrives.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] once the peer is gone and everything sent was read;
    /// [`ErrorKind::Deserialize`] if the bytes are not a `T` (the message is consumed,
    /// the connection stays usable); [`ErrorKind::Protocol`] for a malformed frame, or
    /// one cut short because its sender died in its middle.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let (a, b) = multiprocess::pipe::<Vec<u32>>()?;
    /// a.send(&vec![1, 2])?;
    /// assert_eq!(b.recv()?, vec![1, 2]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn recv(&self) -> Result<T> {
        self.recv_frame(None)?.expect("no deadline").decode()
    }

    /// Receives a value, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] if nothing started to arrive in time; otherwise as
    /// [`recv`](Connection::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocess::ErrorKind;
    /// multiprocess::init();
    /// let (_a, b) = multiprocess::pipe::<u8>()?;
    /// let err = b.recv_timeout(Duration::from_millis(10)).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Timeout);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T> {
        match self.recv_frame(sys::deadline_after(timeout))? {
            Some(f) => f.decode(),
            None => Err(Error::timeout("recv")),
        }
    }

    /// Receives a value if one is waiting, without blocking.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Timeout`] when nothing waits; otherwise as [`recv`](Connection::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::ErrorKind;
    /// multiprocess::init();
    /// let (a, b) = multiprocess::pipe::<u8>()?;
    /// assert_eq!(b.try_recv().unwrap_err().kind(), ErrorKind::Timeout);
    /// a.send(&9)?;
    /// assert_eq!(b.try_recv()?, 9);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn try_recv(&self) -> Result<T> {
        self.recv_timeout(Duration::ZERO)
    }
}

impl<T> AsFd for Connection<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The socket's fd, for event loops that take raw fds (tokio's `AsyncFd`, mio).
/// Readable when a message (or the peer's close) waits; read it with
/// [`try_recv`](Connection::try_recv). [`recv_async`](Connection::recv_async) does this
/// for you.
///
/// On a pipe, a small message sent while a receive is under way on this end (on any
/// copy) may wait in the pipe's shared lane instead (see the module docs), which the
/// socket does not show: after a readiness, call `try_recv` until it says `Timeout`,
/// the usual way to drain one. [`poll`](Connection::poll), [`wait`] and `recv_async`
/// watch the lane too.
///
/// # Examples
///
/// ```
/// use std::os::fd::AsRawFd;
/// multiprocess::init();
/// let (a, _b) = multiprocess::pipe::<u8>()?;
/// assert!(a.as_raw_fd() >= 0);
/// # Ok::<(), multiprocess::Error>(())
/// ```
impl<T> AsRawFd for Connection<T> {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

impl<T> fmt::Debug for Connection<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("fd", &self.fd.as_raw_fd())
            .field("readable", &self.readable)
            .field("writable", &self.writable)
            .finish()
    }
}

/// A connection serializes as its fd (through the side table), its direction and its
/// locks (their segment's fd, also through the side table); the receiving process gets
/// its own descriptor for the same socket and shares the same locks.
impl<T> Serialize for Connection<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        struct Fd<'a>(BorrowedFd<'a>);
        impl Serialize for Fd<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                codec::serialize_fd(self.0, s)
            }
        }
        let mut t = s.serialize_tuple(5)?;
        t.serialize_element(&Fd(self.fd.as_fd()))?;
        t.serialize_element(&self.readable)?;
        t.serialize_element(&self.writable)?;
        t.serialize_element(&self.locks)?;
        let bells = self
            .lanes
            .as_ref()
            .map(|l| l.bells().each_ref().map(|b| Fd(b.as_fd())));
        t.serialize_element(&bells)?;
        t.end()
    }
}

impl<'de, T> Deserialize<'de> for Connection<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Fd(OwnedFd);
        impl<'de> Deserialize<'de> for Fd {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                codec::deserialize_fd(d).map(Fd)
            }
        }
        let (Fd(fd), readable, writable, locks, bells) =
            <(Fd, bool, bool, EndLocks, Option<[Fd; 2]>)>::deserialize(d)?;
        // The socket says which transport it is (a pipe's, or a listener's stream).
        let packets = sys::socket::is_packets(fd.as_fd());
        let lanes = match bells {
            Some(_) if !packets => {
                return Err(serde::de::Error::custom(
                    "a pipe end arrived with a socket that is not a pipe's",
                ));
            }
            Some([Fd(b0), Fd(b1)]) => {
                let (seg, slot) = locks.segment();
                let lanes = Lanes::new(seg.clone(), locks::PIPE_LANES_AT, slot, Arc::new([b0, b1]));
                if lanes.is_none() {
                    return Err(serde::de::Error::custom(
                        "a pipe end's shared segment is too small for its lanes",
                    ));
                }
                lanes
            }
            None => None,
        };
        Ok(Connection::with_locks(
            fd, readable, writable, locks, packets, lanes,
        ))
    }
}
