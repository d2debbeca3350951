//! The async twins' machinery: how a future waits for an fd or a moment without
//! blocking its executor, under any executor.
//!
//! # What waits on what
//!
//! Every blocking wait of the crate is one of three kinds, and each gets the cheapest
//! async wait that needs neither a spinning loop nor a thread per waiter:
//!
//! * **Completed by a thread of ours** (a pool's [`AsyncResult`](crate::AsyncResult),
//!   an executor's [`Future`](crate::futures::Future)): the pool's result thread
//!   completes a slot, and the slot wakes the [`Waker`](std::task::Waker)s registered
//!   by `poll` directly. No fd, no reactor: executor-agnostic by construction.
//! * **An fd that becomes readable**: a child's pidfd (its exit), a connection's socket
//!   (a message, or the peer's close), a queue's async bell (an eventfd its producers
//!   and consumers ring, below). A [`Readable`] waits for it: under a tokio runtime
//!   (feature `tokio`) with tokio's own reactor (`AsyncFd`), otherwise with the crate's
//!   one shared reactor thread (`reactor.rs`): a single edge-triggered `epoll` set for
//!   every waiter of the process, started at the first wait that needs it.
//! * **A robust lock held by someone else** (another receiver on the same connection
//!   end, another consumer of the same queue): the lock is a futex word in shared
//!   memory, which no reactor can watch. The waiter re-tries after a [`Sleep`] that
//!   backs off from 1 ms to 25 ms, the same 25 ms at which a blocked synchronous waiter
//!   of these locks checks that the holder is alive. This is the one timed re-check,
//!   and it happens only while another process or thread is inside the lock.
//!
//! # Readiness, edges and ticks
//!
//! Both reactors are edge-triggered: an fd is reported when it *becomes* readable
//! (every write to a socket or an eventfd makes an edge, even if unread bytes were
//! there), and once when it is added if it is readable already. A [`Readable`] keeps
//! "an edge came since I last looked" with a tick: a waiter tries its operation, and
//! only if that finds nothing does it clear the readiness *it saw*; an edge that came
//! meanwhile has a newer tick and is kept, so no wake-up is lost between "nothing
//! there" and "sleep". (This is tokio's `clear_ready` contract, which the shared
//! reactor copies.) Registration comes after the first try and before the second,
//! and adding a readable fd reports it: no wake-up is lost there either.
//!
//! Why not one `poll(2)` thread (level-triggered)? A queue's bell is an eventfd that
//! nobody resets (resetting it would race with the waiters in other processes): it
//! stays readable once rung, and a level-triggered reactor would report it forever.
//! Edges are what the waiters need: "something changed, look again".
//!
//! # Why a shared thread and not tokio everywhere
//!
//! The crate must not pick an executor for its users (`futures::executor`, smol,
//! async-std, a hand-written `block_on` all work), and tokio's `AsyncFd` panics or
//! fails outside a tokio runtime. So the fallback is executor-agnostic: one thread
//! per process, named `multiprocess-aio`, that wakes wakers. Under tokio with the
//! feature, fd waits never touch it; only the rare timed re-check above does.
//!
//! # Caveats
//!
//! * After `fork`, a child has no reactor thread: the first async wait in the child
//!   starts its own (the reactor remembers the pid that started it).
//! * Once a connection's frame has started to arrive, its rest is read in place, as a
//!   synchronous `recv` would (the sender is writing it under its send lock); only
//!   the wait for the *start* of a message is asynchronous. A very large message
//!   from a slow sender therefore holds the executor's thread for as long as it takes
//!   to arrive.

mod reactor;

use std::future::Future;
use std::io;
use std::os::fd::BorrowedFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

pub(crate) use reactor::Sleep;

/// One try of an operation that an async twin repeats until it is done.
#[derive(Debug)]
pub(crate) enum Attempt<T> {
    /// Done (with its value, or its error).
    Done(T),
    /// Nothing yet: wait for the fd's next edge.
    WouldBlock,
    /// Someone else holds the lock: try again after a short sleep.
    Contended,
}

/// Waits for an fd to become readable, under tokio's reactor (feature `tokio`, inside
/// a tokio runtime, which must have I/O enabled as `#[tokio::main]` does) or the
/// crate's shared one.
#[derive(Debug)]
pub(crate) struct Readable {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    #[cfg(feature = "tokio")]
    Tokio(tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>),
    Shared(reactor::Registration),
}

/// The readiness seen by [`Readable::poll_ready`], to clear if the try found nothing.
pub(crate) enum Ready<'a> {
    #[cfg(feature = "tokio")]
    Tokio(tokio::io::unix::AsyncFdReadyGuard<'a, std::os::fd::OwnedFd>),
    Shared(&'a reactor::Registration, u64),
}

impl Ready<'_> {
    /// The try found nothing: forget this edge (not a newer one).
    pub(crate) fn clear(self) {
        match self {
            #[cfg(feature = "tokio")]
            Ready::Tokio(mut g) => g.clear_ready(),
            Ready::Shared(r, tick) => r.clear(tick),
        }
    }
}

impl Readable {
    /// Watches (a duplicate of) `fd`: each watcher has its own registration, so any
    /// number of tasks may wait on one connection or queue.
    pub(crate) fn new(fd: BorrowedFd<'_>) -> io::Result<Readable> {
        let fd = crate::sys::socket::dup(fd)?;
        #[cfg(feature = "tokio")]
        let fd = {
            use tokio::io::{Interest, unix::AsyncFd};
            if tokio::runtime::Handle::try_current().is_ok() {
                #[allow(unsafe_code)]
                // SAFETY: the `OwnedFd` is moved into the `AsyncFd`, which owns it until
                // it is dropped: the fd stays open and names the same file meanwhile.
                match unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
                    Ok(a) => {
                        return Ok(Readable {
                            inner: Inner::Tokio(a),
                        });
                    }
                    Err(e) => e.into_parts().0,
                }
            } else {
                fd
            }
        };
        Ok(Readable {
            inner: Inner::Shared(reactor::Registration::new(fd)?),
        })
    }

    /// Ready if an edge came since the readiness was last cleared; otherwise
    /// registers `cx`'s waker and is pending.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready<'_>>> {
        match &self.inner {
            #[cfg(feature = "tokio")]
            Inner::Tokio(a) => a.poll_read_ready(cx).map_ok(Ready::Tokio),
            Inner::Shared(r) => r.poll_ready(cx).map(|t| Ok(Ready::Shared(r, t))),
        }
    }
}

/// Drives `attempt` to completion: tries it, and while it would block, waits for the
/// next edge of the fd that `fd` names (registered at the first miss, in `readable`);
/// while it is contended, waits on `backoff`.
///
/// `fd` is asked for only when a registration is needed.
pub(crate) fn poll_attempts<T>(
    cx: &mut Context<'_>,
    readable: &mut Option<Readable>,
    backoff: &mut Backoff,
    fd: impl FnOnce() -> io::Result<Readable>,
    mut attempt: impl FnMut() -> Attempt<T>,
    io_error: impl FnOnce(io::Error) -> T,
) -> Poll<T> {
    if readable.is_none() {
        if backoff.poll_sleep(cx).is_pending() {
            return Poll::Pending;
        }
        match attempt() {
            Attempt::Done(v) => return Poll::Ready(v),
            Attempt::Contended => {
                backoff.arm();
                if backoff.poll_sleep(cx).is_pending() {
                    return Poll::Pending;
                }
            }
            Attempt::WouldBlock => {}
        }
        match fd() {
            Ok(r) => *readable = Some(r),
            Err(e) => return Poll::Ready(io_error(e)),
        }
    }
    let r = readable.as_ref().expect("registered above");
    loop {
        if backoff.poll_sleep(cx).is_pending() {
            return Poll::Pending;
        }
        let ready = match r.poll_ready(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(io_error(e)),
            Poll::Ready(Ok(ready)) => ready,
        };
        match attempt() {
            Attempt::Done(v) => return Poll::Ready(v),
            Attempt::WouldBlock => {
                backoff.reset();
                ready.clear();
            }
            // Keep the readiness (`ready` is not cleared): after the sleep, try
            // again at once.
            Attempt::Contended => backoff.arm(),
        }
    }
}

/// The timed re-check of a contended lock: 1 ms, doubling to 25 ms (the robust
/// locks' own liveness-check period).
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    next: Duration,
    sleep: Option<Sleep>,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(1);
    const MAX: Duration = Duration::from_millis(25);

    fn arm(&mut self) {
        self.next = (self.next * 2).clamp(Self::FIRST, Self::MAX);
        self.sleep = Some(Sleep::until(Instant::now() + self.next));
    }

    fn reset(&mut self) {
        self.next = Duration::ZERO;
        self.sleep = None;
    }

    /// Ready when no sleep is armed or it has passed.
    fn poll_sleep(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.sleep {
            None => Poll::Ready(()),
            Some(s) => {
                if Pin::new(s).poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleep = None;
                Poll::Ready(())
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Wake, Waker};

    /// A minimal executor: parks the thread until woken. Not tokio: the crate's own
    /// reactor drives what it waits for.
    pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
        struct Unpark(std::thread::Thread, AtomicBool);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.1.store(true, Ordering::SeqCst);
                self.0.unpark();
            }
        }
        let w = Arc::new(Unpark(std::thread::current(), AtomicBool::new(false)));
        let waker = Waker::from(w.clone());
        let mut cx = Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            while !w.1.swap(false, Ordering::SeqCst) {
                std::thread::park();
            }
        }
    }

    #[test]
    fn a_sleep_ends_and_a_socket_edge_wakes_its_waiter() {
        let start = Instant::now();
        block_on(Sleep::until(start + Duration::from_millis(20)));
        assert!(start.elapsed() >= Duration::from_millis(20));

        use std::io::{Read, Write};
        use std::os::fd::AsFd;
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            a.write_all(b"x").unwrap();
            a
        });
        let mut readable = None;
        let mut backoff = Backoff::default();
        let fd = b.try_clone().unwrap();
        let got = block_on(std::future::poll_fn(|cx| {
            poll_attempts(
                cx,
                &mut readable,
                &mut backoff,
                || Readable::new(fd.as_fd()),
                || {
                    let mut buf = [0u8; 1];
                    match (&b).read(&mut buf) {
                        Ok(n) => Attempt::Done(Ok(buf[..n].to_vec())),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Attempt::WouldBlock,
                        Err(e) => Attempt::Done(Err(e)),
                    }
                },
                Err,
            )
        }))
        .unwrap();
        assert_eq!(got, b"x");
        drop(writer.join().unwrap());
    }
}

#[cfg(all(test, feature = "tokio"))]
mod tokio_tests {
    use super::*;

    #[test]
    fn inside_a_tokio_runtime_the_wait_is_tokios_and_outside_it_ours() {
        let (_a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        use std::os::fd::AsFd;
        let outside = Readable::new(b.as_fd()).unwrap();
        assert!(matches!(outside.inner, Inner::Shared(_)));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let inside = rt.block_on(async { Readable::new(b.as_fd()).unwrap() });
        assert!(matches!(inside.inner, Inner::Tokio(_)));
    }
}
