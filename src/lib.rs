//! # multiprocess
//!
//! Python's `multiprocessing` for Rust: child processes with Python's names and
//! behaviour, typed pipes that carry values *and handles*, and three start methods
//! (`fork`, `spawn`, `forkserver`), with the guarantees Python lacks: no zombies, no
//! orphans even when the parent is `SIGKILL`ed, and no hang when a peer dies.
//!
//! ## The one line of ceremony
//!
//! A child started by `spawn` or the fork server is a fresh run of your binary. The
//! first line of `main` must be [`init()`]: in a child it runs the task and exits, in
//! the parent it returns at once. Rust has no `if __name__ == "__main__"` guard to
//! forget: nothing before `init()` runs twice, and nothing after it runs in a child.
//!
//! ```
//! fn main() {
//!     multiprocess::init();
//!     // ... your program
//! }
//! ```
//!
//! In an integration-test file (a test binary, whose `main` libtest owns), write once at
//! the top level: `multiprocess::test_support!();`. It adds a helper test named
//! `__multiprocess_child_entry` through which children re-enter the binary; it passes
//! trivially when run as a test. Works under `cargo test` and `cargo nextest`.
//!
//! ## Processes
//!
//! A [`Process`] runs a plain function with serializable args:
//!
//! ```
//! use multiprocess::Process;
//!
//! fn work(n: u64) {
//!     println!("child {} got {n}", multiprocess::current_process().name());
//! }
//!
//! multiprocess::init();
//! let mut p = Process::new(work, 42);
//! p.start()?;
//! p.join()?;
//! assert_eq!(p.exitcode(), Some(0));
//! # Ok::<(), multiprocess::Error>(())
//! ```
//!
//! [`spawn`] is the Rust-native shortcut: it returns the function's value, or an error
//! that says how the child panicked or died.
//!
//! ```
//! fn fib(n: u32) -> u64 { if n < 2 { n as u64 } else { fib(n - 1) + fib(n - 2) } }
//!
//! multiprocess::init();
//! assert_eq!(multiprocess::spawn(fib, 20)?.join()?, 6765);
//! # Ok::<(), multiprocess::Error>(())
//! ```
//!
//! ## Pipes
//!
//! [`pipe`] returns two [`Connection`]s. A connection is itself serializable: pass it to
//! a child in its args, or send it through another connection.
//!
//! ```
//! use multiprocess::{Connection, Process};
//!
//! fn echo(conn: Connection<String>) {
//!     while let Ok(s) = conn.recv() {
//!         conn.send(&s.to_uppercase()).unwrap();
//!     }
//! }
//!
//! multiprocess::init();
//! let (here, there) = multiprocess::pipe()?;
//! let mut p = Process::new(echo, there);
//! p.start()?;
//! here.send(&"hi".to_string())?;
//! assert_eq!(here.recv()?, "HI");
//! drop(here); // the child's recv now fails with Disconnected, and it returns
//! p.join()?;
//! # Ok::<(), multiprocess::Error>(())
//! ```
//!
//! ## Pools and executors
//!
//! A [`Pool`] runs plain functions over many inputs in worker processes; a worker
//! that dies or runs too long fails only its own task, and the pool goes on (see
//! [`pool`]). [`futures`] has Python's `concurrent.futures`: executors that hand out
//! [`Future`](futures::Future)s, with `wait` and `as_completed`. [`ThreadPool`] and
//! [`ThreadPoolExecutor`] take closures and run them on threads.
//!
//! ```
//! use std::time::Duration;
//! use multiprocess::{ErrorKind, Options, Pool};
//!
//! fn square(x: u64) -> u64 { x * x }
//! fn crash(_: ()) -> u64 { std::process::abort() }
//! fn forever(_: ()) -> u64 { loop { std::thread::sleep(Duration::from_secs(1)) } }
//!
//! multiprocess::init();
//! let pool = Pool::new(2)?;
//! assert_eq!(pool.map(square, 0..4)?, [0, 1, 4, 9]);
//! let e = pool.apply(crash, ()).unwrap_err();
//! assert_eq!(e.kind(), ErrorKind::ProcessDied); // "... was killed by signal 6 (SIGABRT)"
//! let slow = Options::new().timeout(Duration::from_millis(200));
//! let e = pool.apply_async_with(forever, (), slow)?.get().unwrap_err();
//! assert_eq!(e.kind(), ErrorKind::Timeout);
//! assert_eq!(pool.apply(square, 5)?, 25); // still working
//! # Ok::<(), multiprocess::Error>(())
//! ```
//!
//! ## Start methods
//!
//! See [`StartMethod`]: `ForkServer` is the default; [`get_context`] gives a
//! [`Context`] for another.
//!
//! ## Waiting on many things
//!
//! [`wait`] returns whichever connections and processes are ready, as Python's
//! `multiprocessing.connection.wait`.
//!
//! ## Naming
//!
//! Python's names are kept for functions and methods that *do* something
//! (`start`, `join`, `apply_async`, `get_context`, `task_done`). Getters follow Rust's
//! convention and have no `get_` prefix ([`current_process()`]`.name()`,
//! [`Process::pid`], [`Semaphore::value`]); a boolean reads as a question
//! ([`Process::is_daemon`], [`Event::is_set`]). The one exception is the builder-style
//! [`Process`], whose setters have the plain names (`name(..)`, `daemon(..)`): its
//! name getter is [`Process::get_name`], as `std::process::Command` has `arg(..)` and
//! `get_args()`. Python's name of each getter is a search alias in these docs
//! (searching `get_value` finds [`Semaphore::value`]); the former `get_` getters
//! remain, deprecated.
//!
//! ## Async
//!
//! Every blocking wait has an async twin that works under any executor, and under
//! tokio (feature `tokio`) waits on tokio's own reactor: `.await` a [`JoinHandle`], an
//! [`AsyncResult`] or an executor's [`Future`](futures::Future);
//! [`Process::join_async`], [`Connection::recv_async`], [`Queue::get_async`],
//! [`Queue::put_async`] and [`JoinableQueue::join_async`]. No thread per waiter, no busy polling (see [`asyncio`]).
//!
//! ```
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     struct T(std::thread::Thread);
//! #     impl std::task::Wake for T { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
//! #     let w = std::task::Waker::from(std::sync::Arc::new(T(std::thread::current())));
//! #     let mut cx = std::task::Context::from_waker(&w);
//! #     let mut f = std::pin::pin!(f);
//! #     loop {
//! #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
//! #         std::thread::park();
//! #     }
//! # }
//! use multiprocess::{Pool, Queue};
//!
//! fn square(x: u64) -> u64 { x * x }
//! fn produce(q: Queue<u64>) { for i in 0..3 { q.put(i).unwrap() } }
//!
//! multiprocess::init();
//! // `block_on` is any executor's: tokio's `#[tokio::main]`, `futures::executor`, ...
//! block_on(async {
//!     let child = multiprocess::spawn(square, 7)?;
//!     assert_eq!(child.await?, 49);
//!
//!     let pool = Pool::new(2)?;
//!     assert_eq!(pool.apply_async(square, 8)?.await?, 64);
//!
//!     let q = Queue::new()?;
//!     let producer = multiprocess::spawn(produce, q.clone())?;
//!     let mut sum = 0;
//!     for _ in 0..3 {
//!         sum += q.get_async().await?;
//!     }
//!     producer.await?;
//!     assert_eq!(sum, 3);
//!     Ok::<(), multiprocess::Error>(())
//! })?;
//! # Ok::<(), multiprocess::Error>(())
//! ```

// The docs show `fn main` on purpose: where `init()` goes is the point.
#![allow(clippy::needless_doctest_main)]

// The layers, bottom up; each module imports only modules before it in this order
// (the README's "Layout" says what each holds). `mod` lines below are kept in that
// order, one group per layer, so rustfmt keeps it.
mod error;

mod sys;

// How async twins wait (fds, timers), for every layer above.
mod aio;

mod wire;

mod sync;

mod connection;

mod process;

mod queue;

mod memory;

pub mod listener;

// Redis between hosts (feature `redis`), under the pool and the manager that use it.
#[cfg(feature = "redis")]
pub mod broker;

pub mod pool;

pub mod manager;

// Constructors that gather the layers, at the top.
mod context;

pub use connection::{Connection, WaitList, Waitable, pipe, pipe_simplex, wait};
pub use error::{Error, ErrorKind, Result};
pub use memory::{Array, Pod, RawArray, RawValue, SharedGuard, SharedMemory, Value};
#[doc(inline)]
pub use pool::futures;
pub use pool::futures::{ProcessPoolExecutor, ThreadPoolExecutor};
pub use pool::{
    AsyncResult, IMap, Options, Pool, PoolBuilder, ThreadPool, ThreadPoolBuilder, WorkerStats,
};
pub use process::{Builder, Stdio};
pub use process::{
    ChildInfo, Context, CurrentProcess, DEFAULT_START_METHOD, Fork, JoinHandle, ParentProcess,
    Process, StartMethod, active_children, cpu_count, current_process, default_context, fork,
    get_all_start_methods, get_context, get_start_method, parent_process, set_start_method, spawn,
    waitpid,
};
pub use queue::{JoinableQueue, PutError, Queue, SimpleQueue};
pub use sync::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, LockGuard, RLock, RLockGuard, Semaphore,
    SemaphoreGuard,
};
pub use wire::fd::Fd;
#[cfg(any(feature = "json", test))]
pub use wire::json::Json;

// Managers and listeners.
pub use listener::{AuthKey, Client, Limits, Listener};
pub use manager::{
    ArrayProxy, BarrierProxy, BoundedSemaphoreProxy, ConditionProxy, DictProxy, EventProxy,
    JoinableQueueProxy, ListProxy, LockProxy, Manager, ManagerBuilder, ManagerServer,
    NamespaceProxy, ObjectProxy, Proxy, ProxyGuard, QueueProxy, RLockProxy, SemaphoreProxy, Served,
    SharedObject, ValueProxy, encode_args, invoke,
};

/// The futures of the async twins, and how they wait.
///
/// | blocking | async | waits on |
/// |---|---|---|
/// | [`JoinHandle::join`] | `handle.await` ([`JoinFuture`](asyncio::JoinFuture)) | the result pipe, then the child's pidfd |
/// | [`Process::join`] | [`Process::join_async`] ([`ProcessJoin`](asyncio::ProcessJoin)) | the child's pidfd |
/// | [`AsyncResult::get`] | `result.await` ([`AsyncResultFuture`](asyncio::AsyncResultFuture)) | a waker, woken by the pool's thread |
/// | [`futures::Future::result`] | `future.await` ([`FutureAwait`](futures::FutureAwait)) | a waker, woken by the pool's thread |
/// | [`Connection::recv`], [`recv_bytes`](Connection::recv_bytes) | [`recv_async`](Connection::recv_async) ([`Recv`](asyncio::Recv)), [`recv_bytes_async`](Connection::recv_bytes_async) | the socket |
/// | [`Queue::get`], [`Queue::put`] | [`get_async`](Queue::get_async) ([`QueueGet`](asyncio::QueueGet)), [`put_async`](Queue::put_async) ([`QueuePut`](asyncio::QueuePut)) | the queue's async bell (an eventfd) |
/// | [`JoinableQueue::join`] | [`join_async`](JoinableQueue::join_async) ([`QueueJoin`](asyncio::QueueJoin)) | the queue's async bell |
///
/// **How fds are waited on.** With the `tokio` feature, inside a tokio runtime (which
/// must have I/O enabled, as `#[tokio::main]` does), with tokio's `AsyncFd`. Otherwise
/// (any other executor, or without the feature) with one thread per process that the
/// crate starts at the first such wait: an edge-triggered `epoll` set of every fd
/// awaited in the process, which wakes the tasks' wakers. Results that a pool's thread
/// completes wake their task directly, under any executor. A wait never spins and
/// never takes a thread of its own; the one timed re-check is for a lock held by
/// another receiver of the same connection end or another consumer of the same queue
/// while a message or item is there (1 ms, doubling to 25 ms).
///
/// **Cancellation.** Dropping a future before it is ready loses nothing: no message
/// is received, no item taken (a `put_async` dropped early drops its item unput); a
/// dropped [`JoinFuture`](asyncio::JoinFuture) leaves the child to be joined at exit,
/// as a dropped [`JoinHandle`] does.
///
/// # Examples
///
/// Under tokio, with the `tokio` feature (see also `examples/async_tokio.rs`):
///
/// ```
/// # #[cfg(feature = "tokio")]
/// # fn main() -> multiprocess::Result<()> {
/// use multiprocess::{Connection, Process};
///
/// fn child(conn: Connection<String>) {
///     conn.send(&"hello from the child".to_string()).unwrap();
/// }
///
/// multiprocess::init();
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// rt.block_on(async {
///     let (here, there) = multiprocess::pipe()?;
///     let mut p = Process::new(child, there);
///     p.start()?;
///     assert_eq!(here.recv_async().await?, "hello from the child");
///     p.join_async().await?;
///     assert_eq!(p.exitcode(), Some(0));
///     Ok(())
/// })
/// # }
/// # #[cfg(not(feature = "tokio"))]
/// # fn main() {}
/// ```
pub mod asyncio {
    pub use crate::connection::{Recv, RecvBytes};
    pub use crate::pool::AsyncResultFuture;
    pub use crate::process::{JoinFuture, ProcessJoin};
    pub use crate::queue::{QueueGet, QueueJoin, QueuePut};
}

/// Call first in `main`. In a child process started by `spawn` or the fork server,
/// runs the child's task and exits; in any other process, returns at once.
///
/// Calling it more than once is harmless. Code before it runs in every child too, so
/// keep it first.
///
/// With the feature `redis`, when `MULTIPROCESS_WORKER` names a Redis URL, the
/// process becomes a worker host of a cluster pool instead and never returns (see
/// [`pool::cluster::Worker::from_env`]).
///
/// # Examples
///
/// ```
/// fn main() {
///     multiprocess::init();
///     println!("only the parent prints this");
/// }
/// ```
pub fn init() {
    process::init();
    // Worker-host mode (`MULTIPROCESS_WORKER=redis://...`): serve, then exit.
    #[cfg(feature = "redis")]
    pool::cluster::init_from_env();
}

/// Makes an integration-test binary able to start children: write
/// `multiprocess::test_support!();` once at the top level of the test file.
///
/// It defines the test `__multiprocess_child_entry`, which calls [`init`]. A child
/// re-runs the test binary with that test as the filter, so libtest runs nothing else;
/// as an ordinary test it passes at once.
///
/// # Examples
///
/// ```ignore
/// // tests/my_test.rs
/// multiprocess::test_support!();
///
/// fn child(x: u32) { assert_eq!(x, 1); }
///
/// #[test]
/// fn runs_a_child() {
///     let mut p = multiprocess::Process::new(child, 1);
///     p.start().unwrap();
///     p.join().unwrap();
///     assert_eq!(p.exitcode(), Some(0));
/// }
/// ```
#[macro_export]
macro_rules! test_support {
    () => {
        #[test]
        fn __multiprocess_child_entry() {
            $crate::init();
        }
    };
}
