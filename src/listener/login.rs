//! The login stage: one thread per listener that accepts connections and runs their
//! handshakes concurrently, with non-blocking sockets and `poll`, and hands the
//! authenticated ones to `accept` (or to a manager server) through a ready queue.
//! See the design notes in the [module docs](super).

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Limits;
use super::auth::{ServerLogin, Step};
use crate::error::{Error, Result};
use crate::sys;
use crate::wire::frame::{HEADER, Header};

/// Authenticated connections waiting for `accept`; past this the stage stops
/// accepting (the kernel's backlog holds the rest), as Python's listener does.
const READY_CAP: usize = 128;

/// Connections taken from the kernel in one round, so that logins in progress are
/// served between bursts.
const ACCEPT_BURST: usize = 64;

/// The first and the longest pause in accepting when the process is out of fds.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What the stage shares with its listener.
#[derive(Debug)]
struct Shared {
    ready: Mutex<VecDeque<OwnedFd>>,
    /// A semaphore eventfd: its count is the length of `ready`.
    bell: OwnedFd,
    /// Wakes the stage: to stop, or because `ready` has room again.
    wake: OwnedFd,
    stop: AtomicBool,
    /// Set when the stage's thread has ended.
    dead: AtomicBool,
}

/// A running login stage; dropping it stops its thread and closes every connection
/// it holds (logging in or waiting in the ready queue).
#[derive(Debug)]
pub(crate) struct Stage {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Stage {
    /// Starts the stage on (a duplicate of) the listening socket `listen`.
    pub(crate) fn start(
        listen: BorrowedFd<'_>,
        key: Option<Vec<u8>>,
        limits: Arc<Mutex<Limits>>,
    ) -> Result<Stage> {
        let listen = sys::socket::dup(listen).map_err(|e| Error::io("dup", e))?;
        sys::socket::set_nonblocking(listen.as_fd(), true)
            .map_err(|e| Error::io("making the listening socket non-blocking", e))?;
        let shared = Arc::new(Shared {
            ready: Mutex::new(VecDeque::new()),
            bell: sys::poll::semaphore().map_err(|e| Error::io("eventfd", e))?,
            wake: sys::poll::eventfd().map_err(|e| Error::io("eventfd", e))?,
            stop: AtomicBool::new(false),
            dead: AtomicBool::new(false),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("listener-login".into())
            .spawn(move || {
                let _dead = Dead(&s);
                run(&s, listen, key.as_deref(), &limits);
            })
            .map_err(|e| Error::io("starting the login thread", e))?;
        Ok(Stage {
            shared,
            thread: Some(thread),
        })
    }

    /// Readable while an authenticated connection waits.
    pub(crate) fn bell(&self) -> BorrowedFd<'_> {
        self.shared.bell.as_fd()
    }

    /// The next authenticated connection, waiting until `deadline` (`None`: forever);
    /// `Ok(None)` on timeout.
    pub(crate) fn next(&self, deadline: Option<Instant>) -> Result<Option<OwnedFd>> {
        loop {
            if let Some(fd) = self.try_next() {
                return Ok(Some(fd));
            }
            if self.shared.dead.load(Ordering::Acquire) {
                return Err(Error::io(
                    "accept",
                    io::Error::other("the listener's login thread has ended"),
                ));
            }
            if !sys::poll::wait_readable(self.bell(), deadline).map_err(|e| Error::io("poll", e))? {
                return Ok(None);
            }
        }
    }

    /// The next authenticated connection, if one waits.
    pub(crate) fn try_next(&self) -> Option<OwnedFd> {
        if !sys::poll::take(self.bell()) {
            return None;
        }
        let mut ready = self.shared.ready.lock().unwrap_or_else(|e| e.into_inner());
        let was_full = ready.len() >= READY_CAP;
        let fd = ready.pop_front();
        drop(ready);
        if was_full {
            sys::poll::ring(self.shared.wake.as_fd());
        }
        fd
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        sys::poll::ring(self.shared.wake.as_fd());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Marks the stage dead when its thread ends (even by a panic), and wakes waiters.
struct Dead<'a>(&'a Shared);

impl Drop for Dead<'_> {
    fn drop(&mut self) {
        self.0.dead.store(true, Ordering::Release);
        sys::poll::ring(self.0.bell.as_fd());
    }
}

/// A connection that is logging in.
struct Pending {
    fd: OwnedFd,
    deadline: Instant,
    login: ServerLogin,
    /// The frame being read: its header, then its body.
    buf: Vec<u8>,
    have: usize,
    in_body: bool,
}

enum Progress {
    Wait,
    Done,
    Fail,
}

impl Pending {
    fn new(fd: OwnedFd, deadline: Instant) -> Pending {
        Pending {
            fd,
            deadline,
            login: ServerLogin::new(),
            buf: vec![0; HEADER],
            have: 0,
            in_body: false,
        }
    }

    /// Reads what has arrived (never past the end of the current frame: after a
    /// keyless hello the client's first message may follow at once) and answers
    /// whole frames. Bounded: each turn consumes bytes, and a login is at most four
    /// frames of at most 256 bytes.
    fn advance(&mut self, key: Option<&[u8]>) -> Progress {
        loop {
            let mut fds = Vec::new();
            let got =
                sys::socket::recv_some(self.fd.as_fd(), &mut self.buf[self.have..], &mut fds, true);
            if !fds.is_empty() {
                return Progress::Fail; // handles during a login: not our protocol
            }
            match got {
                Ok(0) => return Progress::Fail,
                Ok(n) => self.have += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Wait,
                Err(_) => return Progress::Fail,
            }
            if self.have < self.buf.len() {
                continue;
            }
            if !self.in_body {
                let header: &[u8; HEADER] = self.buf[..].try_into().expect("a header");
                let Ok(h) = Header::parse(header, self.login.max_frame()) else {
                    return Progress::Fail;
                };
                if h.nfds != 0 {
                    return Progress::Fail;
                }
                self.buf = vec![0; h.len as usize];
                self.have = 0;
                self.in_body = true;
                if !self.buf.is_empty() {
                    continue;
                }
            }
            let body = std::mem::replace(&mut self.buf, vec![0; HEADER]);
            self.have = 0;
            self.in_body = false;
            match self.login.on_frame(key, &body) {
                Step::Done => return Progress::Done,
                Step::Reply(r) => {
                    // A few dozen bytes into an empty socket buffer: an honest peer
                    // never makes this wait, so a full buffer ends the login.
                    if crate::wire::frame::send_parts(self.fd.as_fd(), &r, &[]).is_err() {
                        return Progress::Fail;
                    }
                }
                Step::Fail { say, error: _error } => {
                    trace!(warn, error = %_error, "a client failed to log in");
                    if let Some(say) = say {
                        let _ = crate::wire::frame::send_parts(self.fd.as_fd(), say, &[]);
                    }
                    return Progress::Fail;
                }
            }
        }
    }
}

/// The stage's loop: until told to stop.
fn run(shared: &Shared, listen: OwnedFd, key: Option<&[u8]>, limits: &Mutex<Limits>) {
    // Oldest first: when the cap is hit, the front goes.
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut backoff = Duration::ZERO;
    let mut paused_until: Option<Instant> = None;
    while !shared.stop.load(Ordering::SeqCst) {
        let lim = *limits.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        // Every login has one deadline for all its bytes.
        pending.retain(|p| p.deadline > now);
        if paused_until.is_some_and(|t| t <= now) {
            paused_until = None;
        }
        let full = shared.ready.lock().unwrap_or_else(|e| e.into_inner()).len() >= READY_CAP;
        let listening = !full && paused_until.is_none();
        let mut fds = vec![shared.wake.as_raw_fd()];
        if listening {
            fds.push(listen.as_raw_fd());
        }
        let first_login = fds.len();
        fds.extend(pending.iter().map(|p| p.fd.as_raw_fd()));
        let wake_at = pending.iter().map(|p| p.deadline).chain(paused_until).min();
        let ready = match sys::poll::wait_any(&fds, wake_at) {
            Ok(r) => r,
            Err(_) => {
                // Cannot happen with valid fds; do not spin if it does.
                std::thread::sleep(BACKOFF_MIN);
                continue;
            }
        };
        if ready.first() == Some(&0) {
            sys::poll::silence(shared.wake.as_fd());
        }
        // Logins in progress (indices shift as finished ones leave: go backwards).
        for &i in ready.iter().rev().filter(|&&i| i >= first_login) {
            let k = i - first_login;
            match pending[k].advance(key) {
                Progress::Wait => {}
                Progress::Fail => {
                    pending.remove(k);
                }
                Progress::Done => {
                    let p = pending.remove(k).expect("index in range");
                    if sys::socket::set_nonblocking(p.fd.as_fd(), false).is_ok() {
                        shared
                            .ready
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push_back(p.fd);
                        sys::poll::ring(shared.bell.as_fd());
                    }
                }
            }
        }
        if listening && ready.contains(&1) {
            let now = Instant::now();
            let deadline = now
                .checked_add(lim.login_timeout)
                .unwrap_or(now + Duration::from_secs(1 << 30));
            for _ in 0..ACCEPT_BURST {
                match sys::socket::accept_nonblocking(listen.as_fd()) {
                    Ok(fd) => {
                        backoff = Duration::ZERO;
                        while pending.len() >= lim.max_pending_logins.max(1) {
                            pending.pop_front();
                        }
                        pending.push_back(Pending::new(fd, deadline));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if sys::socket::is_resource_shortage(&e) => {
                        // Out of fds: the oldest login gives its fd to the newcomer.
                        // With none to give, pause accepting (not a busy loop: the
                        // kernel keeps the listener readable) and try again later.
                        if pending.pop_front().is_some() {
                            continue;
                        }
                        backoff = (backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                        paused_until = Some(Instant::now() + backoff);
                        break;
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
                        ) => {}
                    Err(_) => {
                        backoff = (backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                        paused_until = Some(Instant::now() + backoff);
                        break;
                    }
                }
            }
        }
    }
}
