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
//! lane:  | sender line: sock_sent u32 |
//!        | receiver line: ctl u64 = head u32 | PRESENT | SLEEPING | RUNG, tail u32,
//!        |                sock_taken u32 |
//!        | slot 0: len u32, 0u32, body ... | slot 1 ... | slot SLOTS-1 |
//! PRESENT: a receiver is inside a receive; SLEEPING: and asleep in `poll`;
//! RUNG: the bell may be rung (so that silencing it costs no system call when not)
//! ```
//!
//! Senders write the lane under the sending end's send lock and receivers read it under
//! the receiving end's receive lock, so each lane has one writer and one reader at a
//! time: a single-producer, single-consumer ring.
//!
//! * **Only while a receiver is present.** A sender publishes a message (advances
//!   `head`) with one compare-and-swap of `ctl` that succeeds only while `PRESENT` is
//!   set; otherwise the message goes over the socket as before. A receiver leaves with
//!   one read-modify-write of the same word, so it knows exactly what was published
//!   while it was there, and nothing is published after. A message sent while nobody
//!   receives therefore makes the socket readable, as before the lane, for `poll`,
//!   [`wait`](crate::wait), `recv_async` and outside event loops on the raw fd.
//! * **Leftovers.** A receive returns one message; a receiver that leaves with more in
//!   the ring rings the bell, and `poll`, `wait` and `recv_async` watch the bell beside
//!   the socket, so those messages are seen. (An outside event loop that watches only
//!   the raw fd must keep calling `try_recv` until it says `Timeout`, the usual way to
//!   drain a readiness.) A receiver that leaves with nothing left silences the bell,
//!   so a bell that rings means a message waits; whoever rings it sets `RUNG` first,
//!   so a receive that finds `RUNG` clear makes no system call for the bell.
//! * **Order.** A sender writes to the ring only when every frame it sent over the
//!   socket has been taken (`sock_sent == sock_taken`, counted under the locks, a frame
//!   counted before it is sent). So once a receiver has seen a socket frame counted and
//!   not taken, no sender publishes in the ring until that receiver counts it taken,
//!   and whatever the ring holds then is older: the receiver takes the ring first.
//!   To look at the socket when nothing is counted (for the peer's close), it peeks and
//!   takes no frame. Frames too large for a slot, frames with handles, and frames sent
//!   while the ring is full go over the socket.
//! * **Waiting.** A receiver spins on the ring (no system call) for as long as its
//!   `AdaptiveSpin` says, then sets `SLEEPING` and sleeps in `poll` on the bell and the
//!   socket: the socket brings large frames and the peer's close (`Disconnected`), and
//!   a sender rings the bell only when its compare-and-swap saw `SLEEPING`, so a
//!   receiver that is awake costs its senders no system call.
//! * **Deaths.** A sender killed before it publishes leaves nothing; after, its message
//!   is whole. If it was killed between publishing and ringing the bell, a sleeping
//!   receiver finds the message when it next looks at the ring by itself: it sleeps
//!   in slices of [`SLICE`]. A receiver killed after it copied a slot but before it
//!   freed it leaves the message to the next receiver: it was never returned to
//!   anyone, so it is delivered once. A receiver killed while present leaves `PRESENT`
//!   set, and senders keep publishing: the next receiver takes the receive lock over
//!   (see `sync::raw`) and reads the ring first; `poll` and `wait` look at the ring
//!   again every [`SLICE`], and so does an async receiver (a timer in what it
//!   watches); one that finds the lock held and a receiver present retries with a
//!   short backoff, so it takes the lock over too. A sender
//!   killed between counting a socket frame and sending it, or a receiver killed
//!   between taking a socket frame and counting it, leaves the counts unequal: senders
//!   then use the socket (slower, never wrong) until a receiver finds the socket empty
//!   and no sender busy, and sets the counts equal again (`Lanes::repair`); meanwhile
//!   a receiver looks at the socket as it spins.
//!
//! Cost: two eventfds more per pipe (each end holds both), and a segment of 33 KiB
//! instead of one page, of which a round trip of small messages touches the control
//! lines and one page of slots per direction.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

use super::locks;
use crate::error::{Error, ErrorKind, Result};
use crate::sync::segment::Segment;
use crate::sys;
use crate::wire::frame::{Frame, RecvLimits};
use crate::wire::packet::{self, Peeked};

/// Slots per lane.
pub(super) const SLOTS: u32 = 64;
/// Bytes per slot: a length word, a spare word, the body.
const SLOT_BYTES: usize = 256;
const SLOT_HEAD: usize = 8;
/// The largest body a slot holds.
pub(super) const MAX_BODY: usize = SLOT_BYTES - SLOT_HEAD;
/// The two control lines before the slots.
const CONTROL: usize = 128;
/// Bytes per lane.
pub(super) const LANE_BYTES: usize = CONTROL + SLOTS as usize * SLOT_BYTES;

/// `ctl`: a receiver is inside a receive.
const PRESENT: u64 = 1 << 32;
/// `ctl`: and asleep in `poll` (a sender rings the bell).
const SLEEPING: u64 = 1 << 33;
/// `ctl`: the bell may be rung (set before ringing it, cleared before silencing it).
const RUNG: u64 = 1 << 34;
/// `ctl`: the bits of `head`.
const HEAD: u64 = u32::MAX as u64;

/// The longest sleep of a receiver (or of `poll` and `wait`) before it looks at the
/// ring again by itself.
pub(super) const SLICE: Duration = Duration::from_millis(250);

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
    fn sock_sent(&self) -> &'a AtomicU32 {
        self.seg.word(self.off / 4)
    }
    fn ctl(&self) -> &'a AtomicU64 {
        self.seg.word64((self.off + 64) / 8)
    }
    fn tail(&self) -> &'a AtomicU32 {
        self.seg.word((self.off + 72) / 4)
    }
    fn sock_taken(&self) -> &'a AtomicU32 {
        self.seg.word((self.off + 76) / 4)
    }
    fn slot_off(&self, n: u32) -> usize {
        self.off + CONTROL + (n % SLOTS) as usize * SLOT_BYTES
    }
    fn slot_len(&self, n: u32) -> &'a AtomicU32 {
        self.seg.word(self.slot_off(n) / 4)
    }
    /// Messages waiting in the ring.
    fn waiting(&self) -> bool {
        self.ctl().load(Acquire) as u32 != self.tail().load(Relaxed)
    }
    /// Socket frames counted and not yet taken (or a sender or receiver that died
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

    /// The bell of this end's inbound lane: readable while a message may wait in the
    /// ring with no receiver present (see the module docs). Pollers watch it beside
    /// the socket.
    pub(super) fn bell(&self) -> BorrowedFd<'_> {
        self.bells[self.slot].as_fd()
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
        self.inbound().ctl().load(Relaxed) & PRESENT != 0
    }

    /// After a poller woke on the bell: if no message waits, the ring was a stale one;
    /// silence it (see `sys::poll::settle`). Whether one waits.
    pub(super) fn settle_bell(&self) -> bool {
        sys::poll::settle(
            || self.has_message(),
            || self.silence_bell(),
            || self.ring_bell(),
        )
    }

    /// Rings this end's inbound bell, with `RUNG` set first.
    fn ring_bell(&self) {
        self.inbound().ctl().fetch_or(RUNG, SeqCst);
        sys::poll::ring(self.bell());
    }

    /// Silences this end's inbound bell, with `RUNG` cleared first (a ring that comes
    /// between the two is left with `RUNG` clear: one spurious wake-up of a poller,
    /// which silences it then).
    fn silence_bell(&self) {
        self.inbound().ctl().fetch_and(!RUNG, SeqCst);
        sys::poll::silence(self.bell());
    }

    /// Sends a frame of `parts` (the body, in pieces) through the lane if it can (see
    /// the module docs); otherwise counts it as a socket frame, for the caller to send.
    /// Call under the sending end's send lock.
    pub(super) fn route(&self, parts: &[&[u8]], has_fds: bool) -> Route {
        let l = self.lane(1 - self.slot);
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut ctl = l.ctl().load(Acquire);
        if !has_fds && len <= MAX_BODY && ctl & PRESENT != 0 && !l.socket_busy() {
            let head = ctl as u32;
            if head.wrapping_sub(l.tail().load(Acquire)) < SLOTS {
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
                // Publish while the receiver is present; only senders move `head`, and
                // we hold the send lock, so only the receiver's bits can change here.
                let next = u64::from(head.wrapping_add(1));
                while ctl & PRESENT != 0 {
                    // A sleeping receiver's bell is rung below: mark it so in the CAS.
                    let rung = if ctl & SLEEPING != 0 { RUNG } else { 0 };
                    match l.ctl().compare_exchange_weak(
                        ctl,
                        (ctl & !HEAD) | next | rung,
                        SeqCst,
                        Acquire,
                    ) {
                        Ok(_) => {
                            if ctl & SLEEPING != 0 {
                                sys::poll::ring(self.bells[1 - self.slot].as_fd());
                            }
                            return Route::Lane;
                        }
                        Err(now) => ctl = now,
                    }
                }
                // The receiver left: the slot stays unpublished, the socket takes it.
            }
        }
        // Counted before it is sent: a receiver that sees the count may look at the
        // socket a little early, but no sender puts a message in the ring while this
        // one may still be in the socket.
        l.sock_sent()
            .store(l.sock_sent().load(Relaxed).wrapping_add(1), Release);
        Route::Socket
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
        // Present, and not asleep (a receiver killed asleep left `SLEEPING` set, which
        // would make every sender ring the bell).
        let mut ctl = l.ctl().load(Relaxed);
        while let Err(now) =
            l.ctl()
                .compare_exchange_weak(ctl, (ctl | PRESENT) & !SLEEPING, SeqCst, Relaxed)
        {
            ctl = now;
        }
        let r = self.wait(&l, fd, deadline, limits, spin);
        // Leave: after this, nothing more is published in the ring.
        l.ctl().fetch_and(!(PRESENT | SLEEPING), SeqCst);
        let r = match r {
            // A peer that sent, then closed, may have its last messages in the ring
            // (published before the receive looked at the socket).
            Ok(None) => self.take(&l, limits),
            Err(e) if e.kind() == ErrorKind::Disconnected => {
                self.take(&l, limits)?.map_or(Err(e), |f| Ok(Some(f)))
            }
            r => r,
        };
        // A message left in the ring with nobody present: announce it to pollers. (No
        // sender publishes now, and no other receiver is here: we hold the lock.)
        if l.waiting() {
            self.ring_bell();
        } else if l.ctl().load(SeqCst) & RUNG != 0 {
            self.silence_bell();
        }
        r
    }

    fn wait(
        &self,
        l: &Lane<'_>,
        fd: BorrowedFd<'_>,
        deadline: Option<Instant>,
        limits: &RecvLimits<'_>,
        spin: Duration,
    ) -> Result<Option<Frame>> {
        let bell = self.bell();
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
            // Sleep, unless a message came. (A socket frame counted but not yet sent
            // wakes the `poll` when it is sent.)
            let ctl = l.ctl().fetch_or(SLEEPING, SeqCst);
            if ctl as u32 != l.tail().load(Relaxed) {
                l.ctl().fetch_and(!SLEEPING, SeqCst);
                continue;
            }
            // In slices: a sender killed between publishing and ringing leaves a
            // message that no bell announces (see the module docs).
            let slice = Instant::now() + SLICE;
            let until = deadline.map_or(slice, |d| d.min(slice));
            let ready = sys::poll::wait_any(&[raw(fd), raw(bell)], Some(until))
                .map_err(|e| Error::io("poll", e));
            l.ctl().fetch_and(!SLEEPING, SeqCst);
            for i in ready? {
                if i == 1 {
                    self.silence_bell();
                } else {
                    look_at_socket = true;
                }
            }
        }
    }

    /// One frame from the socket if one is there (without waiting for its first
    /// record), counted as taken; or a message from the ring, if the frame is newer.
    fn take_from_socket(
        &self,
        l: &Lane<'_>,
        fd: BorrowedFd<'_>,
        limits: &RecvLimits<'_>,
    ) -> Result<Option<Frame>> {
        let mut counted = l.socket_busy();
        if !counted {
            // Nothing counted: the socket holds at most the peer's close, records the
            // dead left (skipped here), or a frame counted since we looked, which may
            // be newer than a message published in the ring meanwhile. Take no frame.
            match packet::peek_first(fd)? {
                Peeked::Nothing => return Ok(None),
                Peeked::Closed => return Err(Error::disconnected()),
                Peeked::Frame => {}
            }
            // A frame is counted before it is sent, so its count is visible now (the
            // kernel's socket orders the sender's count before our peek; this load
            // then acquires it, and every message published before it). Still equal:
            // a sender without a lane sent it (a spawned child's bootstrap end, made
            // from a bare fd), which never uses the ring; it is not counted taken.
            counted = l.socket_busy();
        }
        // A frame is counted and not taken: no sender publishes in the ring until we
        // count it taken, so what the ring holds now is older than the frame.
        if let Some(m) = self.take(l, limits)? {
            return Ok(Some(m));
        }
        let r = packet::recv(fd, Some(Instant::now()), limits, Duration::ZERO);
        // A frame refused at its header, or cut by a sender that died, was counted
        // when it was sent, and is taken now too.
        if counted
            && (matches!(&r, Ok(Some(_)))
                || r.as_ref().is_err_and(|e| e.kind() == ErrorKind::Protocol))
        {
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
        if l.ctl().load(Acquire) as u32 == tail {
            return Ok(None);
        }
        let len = l.slot_len(tail).load(Relaxed) as usize;
        let body = if len <= MAX_BODY {
            let mut body = vec![0u8; len];
            #[allow(unsafe_code)]
            // SAFETY: the slot is published (`tail != head`, read with Acquire) and we
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

fn raw(fd: BorrowedFd<'_>) -> RawFd {
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

    fn present(l: &Lanes, on: bool) {
        if on {
            l.inbound().ctl().fetch_or(PRESENT, SeqCst);
        } else {
            l.inbound().ctl().fetch_and(!PRESENT, SeqCst);
        }
    }

    fn settle_counts(l: &Lanes) {
        let inb = l.inbound();
        inb.sock_taken().store(inb.sock_sent().load(SeqCst), SeqCst);
    }

    /// Where each frame goes: the lane only while a receiver is present, nothing is
    /// ahead in the socket, it fits a slot, it has no handles and the ring has room.
    #[test]
    fn frames_take_the_lane_only_when_they_may() {
        let [a, b] = lanes();
        let small: &[&[u8]] = &[b"hi"];
        assert_eq!(a.route(small, false), Route::Socket, "nobody present");
        present(&b, true);
        assert_eq!(a.route(small, false), Route::Socket, "a socket frame ahead");
        settle_counts(&b);
        assert_eq!(a.route(small, false), Route::Lane);
        assert_eq!(a.route(small, true), Route::Socket, "handles");
        settle_counts(&b);
        let big = [0u8; MAX_BODY + 1];
        assert_eq!(a.route(&[&big], false), Route::Socket, "too large");
        settle_counts(&b);
        let fits = [7u8; MAX_BODY];
        assert_eq!(a.route(&[&fits[..100], &fits[100..]], false), Route::Lane);
        for _ in 2..SLOTS {
            assert_eq!(a.route(small, false), Route::Lane);
        }
        assert_eq!(a.route(small, false), Route::Socket, "the ring is full");
        assert!(b.has_message());
        assert!(!a.has_message(), "the other direction is empty");
        // The receiver takes them in order, and frees their slots.
        let limits = RecvLimits::trusted(u64::MAX);
        let inb = b.inbound();
        assert_eq!(b.take(&inb, &limits).unwrap().unwrap().body, b"hi");
        assert_eq!(b.take(&inb, &limits).unwrap().unwrap().body, fits);
        settle_counts(&b);
        assert_eq!(a.route(small, false), Route::Lane, "room again");
        present(&b, false);
        assert_eq!(a.route(small, false), Route::Socket, "the receiver left");
    }

    /// A message over the receiver's size limit is consumed and refused; the next one
    /// arrives.
    #[test]
    fn the_size_limit_holds_in_the_lane() {
        let [a, b] = lanes();
        let (_fa, fb) = sys::socket::pair_packets().unwrap();
        present(&b, true);
        assert_eq!(a.route(&[b"too long"], false), Route::Lane);
        assert_eq!(a.route(&[b"ok"], false), Route::Lane);
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

    /// A receiver that leaves with messages still in the ring rings the bell (pollers
    /// watch it), and the receive that takes the last of them silences it; a sender
    /// that sees the receiver asleep rings it too.
    #[test]
    fn the_bell_rings_for_leftovers_and_sleepers_only() {
        let [a, b] = lanes();
        let (_fa, fb) = sys::socket::pair_packets().unwrap();
        let rung = || sys::poll::is_readable(b.bell()).unwrap();
        present(&b, true);
        assert_eq!(a.route(&[b"1"], false), Route::Lane);
        assert_eq!(a.route(&[b"2"], false), Route::Lane);
        assert!(
            !rung(),
            "an awake receiver costs its senders no system call"
        );
        let limits = RecvLimits::trusted(u64::MAX);
        let now = || Some(Instant::now());
        let f = b.recv(fb.as_fd(), now(), &limits, Duration::ZERO);
        assert_eq!(f.unwrap().unwrap().body, b"1");
        assert!(!b.receiver_present());
        assert!(rung(), "a leftover is announced");
        assert!(b.settle_bell());
        let f = b.recv(fb.as_fd(), now(), &limits, Duration::ZERO);
        assert_eq!(f.unwrap().unwrap().body, b"2");
        assert!(!rung(), "nothing left: silent");
        assert!(
            b.recv(fb.as_fd(), now(), &limits, Duration::ZERO)
                .unwrap()
                .is_none()
        );
        b.inbound().ctl().fetch_or(PRESENT | SLEEPING, SeqCst);
        assert_eq!(a.route(&[b"3"], false), Route::Lane);
        assert!(rung(), "a sleeper is woken");
    }

    /// A frame in the socket is taken only after the ring's older messages, even when
    /// the receiver had looked at the ring before the two were sent.
    #[test]
    fn the_ring_goes_before_a_newer_socket_frame() {
        let [a, b] = lanes();
        let (fa, fb) = sys::socket::pair_packets().unwrap();
        present(&b, true);
        assert_eq!(a.route(&[b"older"], false), Route::Lane);
        assert_eq!(a.route(&[&[9u8; 4096]], false), Route::Socket);
        packet::send_parts(fa.as_fd(), &[&[9u8; 4096]], &[]).unwrap();
        let limits = RecvLimits::trusted(u64::MAX);
        let inb = b.inbound();
        // As a receiver that saw an empty ring and then the socket readable would.
        let f = b
            .take_from_socket(&inb, fb.as_fd(), &limits)
            .unwrap()
            .unwrap();
        assert_eq!(f.body, b"older");
        let f = b
            .take_from_socket(&inb, fb.as_fd(), &limits)
            .unwrap()
            .unwrap();
        assert_eq!(f.body.len(), 4096);
        assert!(!inb.socket_busy());
        // With nothing counted it takes no frame, but skips sync records and sees the
        // close.
        packet::send_sync(fa.as_fd()).unwrap();
        assert!(
            b.take_from_socket(&inb, fb.as_fd(), &limits)
                .unwrap()
                .is_none()
        );
        assert!(
            !sys::poll::is_readable(fb.as_fd()).unwrap(),
            "sync records skipped"
        );
        drop(fa);
        let e = b.take_from_socket(&inb, fb.as_fd(), &limits).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Disconnected);
    }

    /// Polls `f` to completion on this thread, parking between wake-ups.
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        use std::task::{Context, Poll, Wake, Waker};
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }

    /// A message that comes into the lane with no bell (a receiver killed while present
    /// and awake left `PRESENT` set, so senders publish and ring nothing) still reaches
    /// an async receive that was already waiting: it looks again every slice.
    #[test]
    fn an_async_receive_finds_an_unannounced_message() {
        crate::init();
        let (a, b) = crate::pipe::<u32>().unwrap();
        let lanes = b.lanes.clone().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _ = tx.send(block_on(b.recv_async()));
        });
        std::thread::sleep(Duration::from_millis(50)); // its first try found nothing
        // What a receiver killed while present and awake leaves behind.
        present(&lanes, true);
        a.send(&7).unwrap();
        assert!(lanes.has_message(), "published in the lane, with no bell");
        let got = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the async receive hangs");
        assert_eq!(got.unwrap(), 7);
        waiter.join().unwrap();
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
        assert_eq!(a.route(&[b"lost"], false), Route::Socket);
        assert!(inb.socket_busy());
        // A real frame in flight is not counted away.
        assert_eq!(a.route(&[b"real"], false), Route::Socket);
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
        present(&b, true);
        assert_eq!(a.route(&[b"fast"], false), Route::Lane);
    }
}
