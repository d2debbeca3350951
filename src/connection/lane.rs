//! A pipe's fast lane: small messages through shared memory while a receiver waits.
//!
//! Why. A round trip over a `SOCK_SEQPACKET` socket costs an allocated, charged socket
//! buffer and the socket's locks on every message. On a quiet machine a spinning
//! receiver hides that (it never sleeps), but beside busy processes both sides sleep,
//! and there the socket is the slow part. Measured here (2 vCPUs, beside two spinning
//! processes, a `u64`-sized round trip, five rounds each): a blocking socket pair
//! 14-51 us, the same socket with a futex as doorbell 12-58 us, the socket's data with
//! an eventfd doorbell 11-42 us; data in shared memory with an eventfd doorbell,
//! sleeping in `poll` on the doorbell *and* the socket (what this does) 8-11 us, and a
//! bare futex 6-13 us.
//!
//! What. Each direction of a pipe has a *lane* in the pipe's shared segment, beside
//! the ends' locks: a ring of [`SLOTS`] slots of up to [`MAX_BODY`] bytes, and one
//! eventfd, the lane's *bell*.
//!
//! ```text
//! lane:  | sender line: head u64, sock_sent u32 |
//!        | receiver line: tail u64, sock_taken u32, state u32 |
//!        | slot 0: len u32, 0u32, body ... | slot 1 ... | slot SLOTS-1 |
//! state: PRESENT (a receiver is in a receive) | SLEEPING (and asleep in poll)
//! ```
//!
//! Senders write the lane under the sending end's send lock and receivers read it under
//! the receiving end's receive lock, so each lane has one writer and one reader at a
//! time: a single-producer, single-consumer ring.
//!
//! * **Only while a receiver is present.** A sender uses the lane only when the lane's
//!   state says a receiver is inside a receive (`recv`, `try_recv`, `recv_timeout`, an
//!   async receive's try). Otherwise the message goes over the socket as before, so a
//!   message sent while nobody receives still makes the socket readable, for `poll`,
//!   [`wait`](crate::wait), `recv_async` and outside event loops on the raw fd. A
//!   receiver that leaves clears `PRESENT`, then looks at the ring once more; a sender
//!   publishes, then looks at the state again (both sequentially consistent: one of the
//!   two sees the other). If the receiver has left, the sender also sends one *nudge*
//!   over the socket (a sync record, which every receiver skips, see `wire::packet`):
//!   the socket turns readable, and whoever wakes takes the message from the ring.
//! * **Order.** A sender writes to the ring only when every frame it sent over the
//!   socket has been taken (`sock_sent == sock_taken`, counted under the locks), and a
//!   receiver always empties the ring before it reads the socket. So whatever is in the
//!   ring is older than whatever is in the socket, and every message is received in
//!   the order sent. Frames too large for a slot, frames with handles, and frames sent
//!   while the ring is full go over the socket.
//! * **Waiting.** A receiver spins on the ring (no system call) for as long as its
//!   `AdaptiveSpin` says, then sets `SLEEPING` and sleeps in `poll` on the bell and the
//!   socket: the socket brings large frames and the peer's close (`Disconnected`), and
//!   a sender rings the bell only when it sees `SLEEPING`, so a receiver that is awake
//!   costs its senders no system call.
//! * **Deaths.** A sender killed before it publishes leaves nothing; after, its message
//!   is whole. If it was killed between publishing and ringing the bell, a sleeping
//!   receiver finds the message when it next looks at the ring by itself: it sleeps
//!   in slices of [`SLICE`]; if the receiver had left, `poll`, `wait` and every
//!   receive look at the ring first, and only an async receiver already waiting for
//!   the socket learns of it late, with the next message. A receiver killed after it
//!   copied a slot but before it freed it leaves the message to the next receiver: it
//!   was never returned to anyone, so it is delivered once. A receiver killed while
//!   present leaves `PRESENT` set: the next receiver takes the receive lock over (see
//!   `sync::raw`) and reads the ring first; an async receiver that finds the lock
//!   held and a receiver present retries with a short backoff instead of waiting for
//!   the socket, so it takes the lock over too. A sender killed between counting a
//!   socket frame and sending it, or a receiver killed between taking a socket frame
//!   and counting it, leaves the counts unequal: senders then use the socket (slower,
//!   never wrong) until a receiver finds the socket empty and no sender busy, and
//!   sets the counts equal again (`Lanes::repair`).
//!
//! Cost: two eventfds more per pipe (each end holds both), and a segment of 33 KiB
//! instead of one page, of which a round trip of small messages touches the control
//! lines and one page of slots per direction.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

use super::locks;
use crate::error::{Error, ErrorKind, Result};
use crate::sync::segment::Segment;
use crate::sys;
use crate::wire::frame::{Frame, RecvLimits};
use crate::wire::packet;

/// Slots per lane.
pub(super) const SLOTS: usize = 64;
/// Bytes per slot: a length word, a spare word, the body.
const SLOT_BYTES: usize = 256;
const SLOT_HEAD: usize = 8;
/// The largest body a slot holds.
pub(super) const MAX_BODY: usize = SLOT_BYTES - SLOT_HEAD;
/// The two control lines before the slots.
const CONTROL: usize = 128;
/// Bytes per lane.
pub(super) const LANE_BYTES: usize = CONTROL + SLOTS * SLOT_BYTES;

/// The longest sleep of a receiver before it looks at the ring again by itself.
const SLICE: Duration = Duration::from_millis(250);

/// Lane state: a receiver is inside a receive.
const PRESENT: u32 = 1;
/// Lane state: and asleep in `poll` (a sender rings the bell).
const SLEEPING: u32 = 2;

/// One end's view of its pipe's two lanes: it receives on lane `slot` and sends on the
/// other.
#[derive(Debug, Clone)]
pub(super) struct Lanes {
    seg: Arc<Segment>,
    /// Byte offset of lane 0 in the segment.
    base: usize,
    /// This end's slot (0 or 1): its inbound lane.
    slot: usize,
    /// The bells of lanes 0 and 1.
    bells: Arc<[OwnedFd; 2]>,
}

/// Where a frame goes.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// It was sent through the lane.
    Lane,
    /// The caller sends it over the socket (it is counted as such).
    Socket,
}

/// One lane's words.
struct Lane<'a> {
    seg: &'a Segment,
    off: usize,
}

impl<'a> Lane<'a> {
    fn head(&self) -> &'a AtomicU64 {
        self.seg.word64(self.off / 8)
    }
    fn sock_sent(&self) -> &'a AtomicU32 {
        self.seg.word((self.off + 8) / 4)
    }
    fn tail(&self) -> &'a AtomicU64 {
        self.seg.word64((self.off + 64) / 8)
    }
    fn sock_taken(&self) -> &'a AtomicU32 {
        self.seg.word((self.off + 72) / 4)
    }
    fn state(&self) -> &'a AtomicU32 {
        self.seg.word((self.off + 76) / 4)
    }
    fn slot_off(&self, n: u64) -> usize {
        self.off + CONTROL + (n % SLOTS as u64) as usize * SLOT_BYTES
    }
    fn slot_len(&self, n: u64) -> &'a AtomicU32 {
        self.seg.word(self.slot_off(n) / 4)
    }
    /// Messages waiting in the ring.
    fn waiting(&self) -> bool {
        self.head().load(Acquire) != self.tail().load(Relaxed)
    }
    /// Socket frames sent and not yet taken (or a sender or receiver that died
    /// between counting and acting, see the module docs).
    fn socket_busy(&self) -> bool {
        self.sock_sent().load(Acquire) != self.sock_taken().load(Relaxed)
    }
}

impl Lanes {
    /// The segment bytes a pipe needs for its lanes, after `base` bytes of locks.
    pub(super) fn segment_len(base: usize) -> usize {
        base + 2 * LANE_BYTES
    }

    /// New bells for a pipe: one eventfd per direction.
    pub(super) fn new_bells() -> Result<Arc<[OwnedFd; 2]>> {
        let one = || sys::poll::eventfd().map_err(|e| Error::io("eventfd", e));
        Ok(Arc::new([one()?, one()?]))
    }

    /// The lanes of end `slot` of a pipe whose segment holds them from byte `base`;
    /// `None` if the segment is too small or the slot is not 0 or 1 (a hostile or
    /// mismatched handle).
    pub(super) fn new(
        seg: Arc<Segment>,
        base: usize,
        slot: usize,
        bells: Arc<[OwnedFd; 2]>,
    ) -> Option<Lanes> {
        (slot < 2 && seg.len() >= Lanes::segment_len(base)).then_some(Lanes {
            seg,
            base,
            slot,
            bells,
        })
    }

    /// The bells, for serializing an end.
    pub(super) fn bells(&self) -> &[OwnedFd; 2] {
        &self.bells
    }

    fn lane(&self, n: usize) -> Lane<'_> {
        Lane {
            seg: &self.seg,
            off: self.base + n * LANE_BYTES,
        }
    }

    fn inbound(&self) -> Lane<'_> {
        self.lane(self.slot)
    }

    /// Is a message waiting in this end's inbound lane? (For `poll` and `wait`.)
    pub(super) fn has_message(&self) -> bool {
        self.inbound().waiting()
    }

    /// Is a receiver inside a receive on this end (alive or not)?
    pub(super) fn receiver_present(&self) -> bool {
        self.inbound().state().load(Relaxed) & PRESENT != 0
    }

    /// Sends a frame of `parts` (the body, in pieces) through the lane if it can (see
    /// the module docs); otherwise counts it as a socket frame, for the caller to send.
    /// Call under the sending end's send lock.
    pub(super) fn route(&self, fd: BorrowedFd<'_>, parts: &[&[u8]], has_fds: bool) -> Route {
        let l = self.lane(1 - self.slot);
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if !has_fds && len <= MAX_BODY && l.state().load(SeqCst) & PRESENT != 0 && !l.socket_busy()
        {
            let head = l.head().load(Relaxed);
            if head.wrapping_sub(l.tail().load(Acquire)) < SLOTS as u64 {
                let mut at = l.slot_off(head) + SLOT_HEAD;
                for p in parts {
                    #[allow(unsafe_code)]
                    // SAFETY: the slot is free (`head - tail < SLOTS`: the receiver has
                    // freed it and reads it again only after `head` moves past it), and
                    // we hold the send lock, so no other sender writes it.
                    unsafe {
                        self.seg.write_at(at, p)
                    };
                    at += p.len();
                }
                l.slot_len(head).store(len as u32, Relaxed);
                l.head().store(head.wrapping_add(1), SeqCst);
                self.announce(&l, fd);
                return Route::Lane;
            }
        }
        // Counted before it is sent: a receiver that sees the count may look at the
        // socket a little early, but a later sender never puts a message in the ring
        // while this one may still be in the socket.
        l.sock_sent()
            .store(l.sock_sent().load(Relaxed).wrapping_add(1), Release);
        Route::Socket
    }

    /// After publishing a message in lane `l`, looks at its state again (pairs with the
    /// receiver's store of the state and its load of `head`, all SeqCst): rings the
    /// bell of a receiver that sleeps, and nudges the socket if the receiver left.
    fn announce(&self, l: &Lane<'_>, fd: BorrowedFd<'_>) {
        let state = l.state().load(SeqCst);
        if state & SLEEPING != 0 {
            sys::poll::ring(self.bells[1 - self.slot].as_fd());
        }
        if state & PRESENT == 0 {
            // If the socket is full, it is readable anyway.
            let _ = packet::send_nudge(fd);
        }
    }

    /// Receives one frame on this end (under its receive lock): from the ring, or
    /// from the socket `fd`, spinning at most `spin` and waiting until `deadline`.
    /// `Ok(None)` on timeout.
    pub(super) fn recv(
        &self,
        fd: BorrowedFd<'_>,
        deadline: Option<Instant>,
        limits: &RecvLimits<'_>,
        spin: Duration,
    ) -> Result<Option<Frame>> {
        let l = self.inbound();
        l.state().store(PRESENT, SeqCst);
        let r = self.wait(&l, fd, deadline, limits, spin);
        l.state().store(0, SeqCst);
        match r {
            Ok(Some(f)) => Ok(Some(f)),
            // A sender may have published just before we left (see the module docs);
            // and a peer that sent, then closed, has its last messages in the ring.
            Ok(None) => self.take(&l, limits),
            Err(e) if e.kind() == ErrorKind::Disconnected => {
                self.take(&l, limits)?.map_or(Err(e), |f| Ok(Some(f)))
            }
            Err(e) => Err(e),
        }
    }

    fn wait(
        &self,
        l: &Lane<'_>,
        fd: BorrowedFd<'_>,
        deadline: Option<Instant>,
        limits: &RecvLimits<'_>,
        spin: Duration,
    ) -> Result<Option<Frame>> {
        let bell = self.bells[self.slot].as_fd();
        let mut spin_until = None;
        let mut look_at_socket = false;
        loop {
            if let Some(f) = self.take(l, limits)? {
                return Ok(Some(f));
            }
            if look_at_socket || l.socket_busy() {
                look_at_socket = false;
                if let Some(f) = self.take_from_socket(l, fd, limits)? {
                    return Ok(Some(f));
                }
                if l.socket_busy() {
                    self.repair(l, fd);
                }
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                // A last look: a closed peer, or a frame that has just come.
                return self.take_from_socket(l, fd, limits);
            }
            if now < *spin_until.get_or_insert(now + spin) {
                for _ in 0..16 {
                    std::hint::spin_loop();
                }
                continue;
            }
            l.state().store(PRESENT | SLEEPING, SeqCst);
            if l.head().load(SeqCst) != l.tail().load(Relaxed) || l.socket_busy() {
                l.state().store(PRESENT, SeqCst);
                continue;
            }
            // In slices: a sender killed between publishing and ringing leaves a
            // message that no bell announces (see the module docs).
            let slice = Instant::now() + SLICE;
            let until = deadline.map_or(slice, |d| d.min(slice));
            let ready = sys::poll::wait_any(&[raw(fd), raw(bell)], Some(until))
                .map_err(|e| Error::io("poll", e));
            l.state().store(PRESENT, SeqCst);
            for i in ready? {
                if i == 1 {
                    sys::poll::silence(bell);
                } else {
                    look_at_socket = true;
                }
            }
        }
    }

    /// One frame from the socket if one is there (without waiting for its first
    /// record), counted as taken.
    fn take_from_socket(
        &self,
        l: &Lane<'_>,
        fd: BorrowedFd<'_>,
        limits: &RecvLimits<'_>,
    ) -> Result<Option<Frame>> {
        let r = packet::recv(fd, Some(Instant::now()), limits, Duration::ZERO);
        // A frame refused at its header, or cut by a sender that died, was counted
        // when it was sent, and is taken now too.
        if matches!(&r, Ok(Some(_))) || r.as_ref().is_err_and(|e| e.kind() == ErrorKind::Protocol) {
            let taken = l.sock_taken();
            taken.store(taken.load(Relaxed).wrapping_add(1), Release);
        }
        r
    }

    /// Sets the count of socket frames taken to the count sent when the two differ but
    /// no frame can be in flight: a sender or receiver died between counting and
    /// acting (see the module docs). Called by the receiver (under its receive lock)
    /// after it found nothing in the socket.
    ///
    /// Every sender holds the send lock from counting a frame until the frame is in
    /// the socket. So with `sent` read first: if the send lock is then free, every
    /// frame counted in `sent` is in the socket or was taken by us (we hold the
    /// receive lock); if the socket is then empty, all were taken, and a count that
    /// differs was lost. A sender that takes the lock after our look and counts before
    /// our second read of `sent` makes us give up; one that counts after it leaves the
    /// counts unequal, as its frame is in flight. A dead sender still holds its lock,
    /// so nothing is repaired until another sender has taken it over (and sent its
    /// sync records, which a receive skips).
    fn repair(&self, l: &Lane<'_>, fd: BorrowedFd<'_>) {
        let sent = l.sock_sent().load(SeqCst);
        if locks::send_lock_free(&self.seg, 1 - self.slot)
            && !sys::poll::is_readable(fd).unwrap_or(true)
            && l.sock_sent().load(SeqCst) == sent
        {
            l.sock_taken().store(sent, Release);
        }
    }

    /// The oldest message in the ring, if any, freed.
    fn take(&self, l: &Lane<'_>, limits: &RecvLimits<'_>) -> Result<Option<Frame>> {
        let tail = l.tail().load(Relaxed);
        if l.head().load(Acquire) == tail {
            return Ok(None);
        }
        let len = l.slot_len(tail).load(Relaxed) as usize;
        let body = if len <= MAX_BODY {
            let mut body = vec![0u8; len];
            #[allow(unsafe_code)]
            // SAFETY: the slot is published (`tail < head`, read with Acquire) and we
            // hold the receive lock: no sender writes it until we free it below.
            unsafe {
                self.seg.read_at(l.slot_off(tail) + SLOT_HEAD, &mut body)
            };
            Some(body)
        } else {
            None
        };
        l.tail().store(tail.wrapping_add(1), Release);
        match body {
            None => Err(Error::new(
                ErrorKind::Protocol,
                "a message in the pipe's shared ring has an impossible length",
            )),
            Some(b) if b.len() as u64 > limits.max_len => Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "a message of {} bytes is over this end's limit of {} bytes",
                    b.len(),
                    limits.max_len
                ),
            )),
            Some(body) => Ok(Some(Frame {
                body,
                fds: Vec::new(),
            })),
        }
    }
}

fn raw(fd: BorrowedFd<'_>) -> std::os::fd::RawFd {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;
    use crate::connection::locks::{EndLocks, PIPE_LANES_AT};

    fn lanes() -> [Lanes; 2] {
        let ends = EndLocks::new_pipe(Lanes::segment_len(PIPE_LANES_AT)).unwrap();
        let bells = Lanes::new_bells().unwrap();
        ends.map(|e| {
            let (seg, slot) = e.segment();
            Lanes::new(seg.clone(), PIPE_LANES_AT, slot, bells.clone()).unwrap()
        })
    }

    /// Where each frame goes: the lane only while a receiver is present, nothing is
    /// ahead in the socket, it fits a slot, it has no handles and the ring has room.
    #[test]
    fn frames_take_the_lane_only_when_they_may() {
        let [a, b] = lanes();
        let (fa, _fb) = sys::socket::pair_packets().unwrap();
        let fd = fa.as_fd();
        let small: &[&[u8]] = &[b"hi"];
        assert_eq!(a.route(fd, small, false), Route::Socket, "nobody present");
        let inb = b.inbound();
        inb.state().store(PRESENT, SeqCst);
        assert_eq!(
            a.route(fd, small, false),
            Route::Socket,
            "a socket frame ahead"
        );
        inb.sock_taken().store(inb.sock_sent().load(SeqCst), SeqCst);
        assert_eq!(a.route(fd, small, false), Route::Lane);
        assert_eq!(a.route(fd, small, true), Route::Socket, "handles");
        inb.sock_taken().store(inb.sock_sent().load(SeqCst), SeqCst);
        let big = [0u8; MAX_BODY + 1];
        assert_eq!(a.route(fd, &[&big], false), Route::Socket, "too large");
        inb.sock_taken().store(inb.sock_sent().load(SeqCst), SeqCst);
        let fits = [7u8; MAX_BODY];
        assert_eq!(
            a.route(fd, &[&fits[..100], &fits[100..]], false),
            Route::Lane
        );
        for _ in 2..SLOTS {
            assert_eq!(a.route(fd, small, false), Route::Lane);
        }
        assert_eq!(a.route(fd, small, false), Route::Socket, "the ring is full");
        assert!(b.has_message());
        assert!(!a.has_message(), "the other direction is empty");
        // The receiver takes them in order, and frees their slots.
        let limits = RecvLimits::trusted(u64::MAX);
        assert_eq!(b.take(&inb, &limits).unwrap().unwrap().body, b"hi");
        assert_eq!(b.take(&inb, &limits).unwrap().unwrap().body, fits);
        inb.sock_taken().store(inb.sock_sent().load(SeqCst), SeqCst);
        assert_eq!(a.route(fd, small, false), Route::Lane, "room again");
    }

    /// Counts left unequal by a sender that died between counting a socket frame and
    /// sending it are set right by the next receive that finds the socket empty, so
    /// the lane is used again; a frame really in flight is never counted away.
    #[test]
    fn counts_left_unequal_by_a_death_are_repaired() {
        let [a, b] = lanes();
        let (fa, fb) = sys::socket::pair_packets().unwrap();
        let inb = b.inbound();
        // A sender died after counting: nothing went out.
        assert_eq!(a.route(fa.as_fd(), &[b"lost"], false), Route::Socket);
        assert!(inb.socket_busy());
        // A real frame in flight is not counted away.
        assert_eq!(a.route(fa.as_fd(), &[b"real"], false), Route::Socket);
        let limits = RecvLimits::trusted(u64::MAX);
        packet::send_parts(fa.as_fd(), &[b"real"], &[]).unwrap();
        let now = || Some(Instant::now());
        let f = b.recv(fb.as_fd(), now(), &limits, Duration::ZERO).unwrap();
        assert_eq!(f.unwrap().body, b"real");
        assert!(
            b.recv(fb.as_fd(), now(), &limits, Duration::ZERO)
                .unwrap()
                .is_none()
        );
        assert!(!inb.socket_busy(), "repaired");
        inb.state().store(PRESENT, SeqCst);
        assert_eq!(a.route(fa.as_fd(), &[b"fast"], false), Route::Lane);
    }

    /// A message over the receiver's size limit is consumed and refused; the next one
    /// arrives.
    #[test]
    fn the_size_limit_holds_in_the_lane() {
        let [a, b] = lanes();
        let (fa, fb) = sys::socket::pair_packets().unwrap();
        b.inbound().state().store(PRESENT, SeqCst);
        assert_eq!(a.route(fa.as_fd(), &[b"too long"], false), Route::Lane);
        assert_eq!(a.route(fa.as_fd(), &[b"ok"], false), Route::Lane);
        let limits = RecvLimits::trusted(4);
        let e = b
            .recv(fb.as_fd(), None, &limits, Duration::ZERO)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
        let f = b
            .recv(fb.as_fd(), None, &limits, Duration::ZERO)
            .unwrap()
            .unwrap();
        assert_eq!(f.body, b"ok");
    }

    /// A message published as its receiver left is announced by a nudge (`route`'s
    /// second look finds nobody): the socket turns readable, and the receive that takes
    /// the message skips the nudge. A sleeping receiver's bell is rung.
    #[test]
    fn a_nudge_makes_the_socket_readable_and_is_skipped() {
        let [a, b] = lanes();
        let (fa, fb) = sys::socket::pair_packets().unwrap();
        let inb = b.inbound();
        inb.state().store(PRESENT, SeqCst);
        assert_eq!(a.route(fa.as_fd(), &[b"x"], false), Route::Lane);
        assert!(
            !sys::poll::is_readable(fb.as_fd()).unwrap(),
            "no nudge while present"
        );
        // The receiver leaves between the sender's first look and its publishing;
        // the sender's second look sees that.
        inb.state().store(0, SeqCst);
        a.announce(&a.lane(1 - a.slot), fa.as_fd());
        assert!(sys::poll::is_readable(fb.as_fd()).unwrap());
        let limits = RecvLimits::trusted(u64::MAX);
        let now = || Some(Instant::now());
        let f = b.recv(fb.as_fd(), now(), &limits, Duration::ZERO);
        assert_eq!(f.unwrap().unwrap().body, b"x");
        let none = b.recv(fb.as_fd(), now(), &limits, Duration::ZERO);
        assert!(none.unwrap().is_none());
        assert!(
            !sys::poll::is_readable(fb.as_fd()).unwrap(),
            "the nudge is gone"
        );
        let bell = b.bells[b.slot].as_fd();
        assert!(!sys::poll::is_readable(bell).unwrap());
        inb.state().store(PRESENT | SLEEPING, SeqCst);
        a.announce(&a.lane(1 - a.slot), fa.as_fd());
        assert!(sys::poll::is_readable(bell).unwrap(), "the bell rang");
        assert!(!sys::poll::is_readable(fb.as_fd()).unwrap(), "and no nudge");
    }
}
