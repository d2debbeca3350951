//! The async twins of `recv` and `recv_bytes`: wait for the socket to become readable
//! (tokio's reactor or the crate's shared one, see `aio`), then take a whole frame
//! under the receive lock without waiting for the lock.
//!
//! A try that finds the receive lock held by another receiver (a thread or process
//! receiving on a copy of this end) cannot wait for that lock's release on any
//! reactor: if a message is waiting, the holder is taking it now, and the task tries
//! again after a short sleep (`aio::Backoff`); if none is, the task waits for the
//! socket's next edge like any other.

use std::future::Future;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use serde::de::DeserializeOwned;

use super::Connection;
use super::lane;
use super::locks::Dir;
use crate::aio::{self, Attempt, Backoff, Readable};
use crate::error::{Error, Result};
use crate::sys;
use crate::wire::frame;

/// The state of one async receive: its registration with a reactor, made at the
/// first miss, and its back-off while another receiver holds the lock.
#[derive(Debug, Default)]
pub(crate) struct RecvState {
    readable: Option<Readable>,
    backoff: Backoff,
    /// A pipe's slice timer, watched with the socket (see `readable_watch`).
    timer: Option<OwnedFd>,
}

impl<T> Connection<T> {
    /// One try: a whole frame, nothing yet, or the lock held by another receiver.
    fn try_frame(&self) -> Attempt<Result<frame::Frame>> {
        if let Err(e) = self.check_readable() {
            return Attempt::Done(Err(e));
        }
        let now = Some(Instant::now());
        let g = match self.hold(Dir::Recv, now) {
            Ok(Some(g)) => g,
            Err(e) => return Attempt::Done(Err(e)),
            Ok(None) => {
                // A receiver present on a pipe takes what comes through its lane,
                // which the socket does not show; if that receiver died, only a
                // retry takes its lock over (see `lane`).
                // And a message left in the lane as its receiver was leaving is
                // announced by a bell that may ring before the lock is free.
                if self
                    .lanes
                    .as_ref()
                    .is_some_and(|l| l.receiver_present() || l.has_message())
                {
                    return Attempt::Contended;
                }
                return match sys::poll::is_readable(self.fd.as_fd()) {
                    Ok(true) => Attempt::Contended,
                    Ok(false) => Attempt::WouldBlock,
                    Err(e) => Attempt::Done(Err(Error::io("poll", e))),
                };
            }
        };
        match self.read_frame(&g, now) {
            Ok(Some(f)) => Attempt::Done(Ok(f)),
            Ok(None) => Attempt::WouldBlock,
            Err(e) => Attempt::Done(Err(e)),
        }
    }

    /// What an async receive waits on: the socket; for a pipe, an epoll set of the
    /// socket, the lane's bell and a timer that fires every `lane::SLICE` (kept in
    /// `timer`), which is readable when any of them is. The timer covers what comes
    /// into the lane with no bell: a receiver killed while present, or between its
    /// leaving and its ring (see `lane`), as `poll` and `wait` sleep in slices.
    fn readable_watch(&self, timer: &mut Option<OwnedFd>) -> std::io::Result<Readable> {
        let Some(bell) = self.lane_bell() else {
            return Readable::new(self.fd.as_fd());
        };
        let set = sys::epoll::create()?;
        let t = sys::poll::periodic_timer(lane::SLICE)?;
        sys::epoll::add_level(set.as_fd(), self.fd.as_fd(), 0)?;
        sys::epoll::add_level(set.as_fd(), bell, 1)?;
        // Never read: each expiry is a new event for the outer, edge-triggered watch.
        sys::epoll::add_level(set.as_fd(), t.as_fd(), 2)?;
        *timer = Some(t);
        // (`Readable` keeps its own duplicate of the set's fd.)
        Readable::new(set.as_fd())
    }

    /// Polls for one whole frame (for the crate's other async waits, such as a
    /// `JoinHandle`'s result).
    pub(crate) fn poll_frame(
        &self,
        cx: &mut Context<'_>,
        st: &mut RecvState,
    ) -> Poll<Result<frame::Frame>> {
        let timer = &mut st.timer;
        aio::poll_attempts(
            cx,
            &mut st.readable,
            &mut st.backoff,
            || self.readable_watch(timer),
            || self.try_frame(),
            |e| Err(Error::io("waiting for a message", e)),
        )
    }

    /// Receives a raw byte message: the async twin of
    /// [`recv_bytes`](Connection::recv_bytes).
    ///
    /// # Errors
    ///
    /// As [`recv_bytes`](Connection::recv_bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct T(std::thread::Thread);
    /// #     impl std::task::Wake for T { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let w = std::task::Waker::from(std::sync::Arc::new(T(std::thread::current())));
    /// #     let mut cx = std::task::Context::from_waker(&w);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// multiprocess::init();
    /// let (a, b) = multiprocess::pipe::<()>()?;
    /// std::thread::spawn(move || a.send_bytes(b"late").unwrap());
    /// assert_eq!(block_on(b.recv_bytes_async())?, b"late");
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn recv_bytes_async(&self) -> RecvBytes<'_, T> {
        RecvBytes {
            conn: self,
            st: RecvState::default(),
        }
    }
}

impl<T: DeserializeOwned> Connection<T> {
    /// Receives a value: the async twin of [`recv`](Connection::recv). Under any
    /// executor; with the `tokio` feature inside a tokio runtime, the wait is tokio's
    /// own (`AsyncFd`).
    ///
    /// Dropping the future before it is ready receives nothing: no message is lost.
    /// Any number of tasks, threads and processes may receive on one end at once;
    /// each message goes to one of them, whole.
    ///
    /// # Errors
    ///
    /// As [`recv`](Connection::recv).
    ///
    /// # Examples
    ///
    /// A child sends; the parent awaits (here with a minimal executor; tokio's works
    /// the same, see `examples/async_tokio.rs`):
    ///
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct T(std::thread::Thread);
    /// #     impl std::task::Wake for T { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let w = std::task::Waker::from(std::sync::Arc::new(T(std::thread::current())));
    /// #     let mut cx = std::task::Context::from_waker(&w);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// use multiprocess::{Connection, Process};
    /// fn child(conn: Connection<String>) {
    ///     std::thread::sleep(std::time::Duration::from_millis(50));
    ///     conn.send(&"from the child".to_string()).unwrap();
    /// }
    /// multiprocess::init();
    /// let (here, there) = multiprocess::pipe()?;
    /// let mut p = Process::new(child, there);
    /// p.start()?;
    /// let msg = block_on(async { here.recv_async().await })?;
    /// assert_eq!(msg, "from the child");
    /// block_on(p.join_async())?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn recv_async(&self) -> Recv<'_, T> {
        Recv {
            conn: self,
            st: RecvState::default(),
        }
    }
}

/// The future of [`Connection::recv_async`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Recv<'a, T> {
    conn: &'a Connection<T>,
    st: RecvState,
}

impl<T: DeserializeOwned> Future for Recv<'_, T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.get_mut();
        this.conn
            .poll_frame(cx, &mut this.st)
            .map(|f| f.and_then(|f| f.decode()))
    }
}

/// The future of [`Connection::recv_bytes_async`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct RecvBytes<'a, T> {
    conn: &'a Connection<T>,
    st: RecvState,
}

impl<T> Future for RecvBytes<'_, T> {
    type Output = Result<Vec<u8>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Vec<u8>>> {
        let this = self.get_mut();
        this.conn
            .poll_frame(cx, &mut this.st)
            .map(|f| f.map(|f| f.body))
    }
}
