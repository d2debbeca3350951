//! The shared reactor: one thread per process, an edge-triggered `epoll` set of every
//! fd an async waiter of this process watches, and the timers of [`Sleep`].
//!
//! The thread sleeps in `epoll_wait` until an fd's edge, the earliest timer, or its
//! own doorbell (an eventfd rung when a timer earlier than all others is added). For
//! an edge it marks the registration ready, bumps its tick and wakes its waker; for a
//! timer that passed it wakes the timer's waker. It holds its lock only to move
//! wakers out, and wakes them after releasing it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::sys;

/// The key of the doorbell in the epoll set.
const BELL: u64 = 0;

struct Reactor {
    /// The process that started the thread (a forked child starts its own).
    pid: u32,
    ep: OwnedFd,
    bell: OwnedFd,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_key: u64,
    ios: HashMap<u64, Arc<Mutex<Io>>>,
    timers: BTreeMap<(Instant, u64), Option<Waker>>,
}

#[derive(Default)]
struct Io {
    /// Edges seen so far.
    tick: u64,
    /// An edge came that no try has cleared yet.
    ready: bool,
    waker: Option<Waker>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

static REACTOR: Mutex<Option<Arc<Reactor>>> = Mutex::new(None);

/// This process's reactor, its thread started on first use.
fn reactor() -> io::Result<Arc<Reactor>> {
    let mut g = lock(&REACTOR);
    let pid = std::process::id();
    if let Some(r) = &*g
        && r.pid == pid
    {
        return Ok(r.clone());
    }
    let ep = sys::epoll::create()?;
    let bell = sys::poll::eventfd()?;
    sys::epoll::add(ep.as_fd(), bell.as_fd(), BELL)?;
    let r = Arc::new(Reactor {
        pid,
        ep,
        bell,
        state: Mutex::new(State {
            next_key: BELL + 1,
            ..State::default()
        }),
    });
    let run = r.clone();
    std::thread::Builder::new()
        .name("multiprocess-aio".into())
        .spawn(move || run.run())?;
    *g = Some(r.clone());
    Ok(r)
}

impl Reactor {
    fn run(&self) {
        let mut keys = Vec::new();
        let mut wake = Vec::new();
        loop {
            let deadline = lock(&self.state).timers.keys().next().map(|k| k.0);
            sys::epoll::wait(self.ep.as_fd(), deadline, &mut keys);
            let mut s = lock(&self.state);
            for &k in &keys {
                if k == BELL {
                    sys::poll::silence(self.bell.as_fd());
                } else if let Some(io) = s.ios.get(&k) {
                    let mut io = lock(io);
                    io.tick += 1;
                    io.ready = true;
                    wake.extend(io.waker.take());
                }
            }
            let now = Instant::now();
            while let Some(entry) = s.timers.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                wake.extend(entry.remove());
            }
            drop(s);
            for w in wake.drain(..) {
                w.wake();
            }
        }
    }
}

/// One watched fd (a duplicate, owned here; closing it removes it from the set).
pub(crate) struct Registration {
    reactor: Arc<Reactor>,
    key: u64,
    io: Arc<Mutex<Io>>,
    fd: OwnedFd,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("key", &self.key)
            .finish()
    }
}

impl Registration {
    pub(crate) fn new(fd: OwnedFd) -> io::Result<Registration> {
        let reactor = reactor()?;
        let io = Arc::new(Mutex::new(Io::default()));
        let key = {
            let mut s = lock(&reactor.state);
            let key = s.next_key;
            s.next_key += 1;
            s.ios.insert(key, io.clone());
            key
        };
        // Added after the entry exists: an fd readable already reports at once.
        if let Err(e) = sys::epoll::add(reactor.ep.as_fd(), fd.as_fd(), key) {
            lock(&reactor.state).ios.remove(&key);
            return Err(e);
        }
        Ok(Registration {
            reactor,
            key,
            io,
            fd,
        })
    }

    /// The tick of an uncleared edge, or pending with the waker stored.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<u64> {
        let mut io = lock(&self.io);
        if io.ready {
            return Poll::Ready(io.tick);
        }
        match &io.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => io.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Clears the readiness seen at `tick`, unless a newer edge came.
    pub(crate) fn clear(&self, tick: u64) {
        let mut io = lock(&self.io);
        if io.tick == tick {
            io.ready = false;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        sys::epoll::delete(self.reactor.ep.as_fd(), self.fd.as_fd());
        lock(&self.reactor.state).ios.remove(&self.key);
    }
}

/// A future that is ready at a given instant (a timer of the shared reactor).
pub(crate) struct Sleep {
    deadline: Instant,
    /// The reactor and the timer's key once registered.
    entry: Option<(Arc<Reactor>, u64)>,
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl Sleep {
    pub(crate) fn until(deadline: Instant) -> Sleep {
        Sleep {
            deadline,
            entry: None,
        }
    }
}

impl std::future::Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        if let Some((r, key)) = &self.entry {
            let mut s = lock(&r.state);
            if let Some(w) = s.timers.get_mut(&(deadline, *key)) {
                *w = Some(cx.waker().clone());
                return Poll::Pending;
            }
            // Fired between the check above and now.
            return Poll::Ready(());
        }
        let r = match reactor() {
            Ok(r) => r,
            // No thread can be started: waiting is impossible, so give up waiting (the
            // caller re-tries its operation, which is correct, only less patient).
            Err(_) => return Poll::Ready(()),
        };
        let first = {
            let mut s = lock(&r.state);
            let key = s.next_key;
            s.next_key += 1;
            let first = s.timers.keys().next().is_none_or(|k| deadline < k.0);
            s.timers.insert((deadline, key), Some(cx.waker().clone()));
            drop(s);
            self.entry = Some((r.clone(), key));
            first
        };
        if first {
            sys::poll::ring(r.bell.as_fd());
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((r, key)) = &self.entry {
            lock(&r.state).timers.remove(&(self.deadline, *key));
        }
    }
}
