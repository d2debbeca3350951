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
//! ## Queues
//!
//! A [`Queue`] is Python's `multiprocessing.Queue`: any number of processes put and get
//! serializable items (bounded with [`Queue::bounded`]); [`JoinableQueue`] adds
//! `task_done` and `join`, [`SimpleQueue`] is the unbounded minimum. A queue is a ring
//! in shared memory: no feeder thread, and a killed peer loses nothing already put.
//!
//! ```
//! use multiprocess::{Process, Queue};
//!
//! fn producer(q: Queue<String>) {
//!     for i in 0..3 {
//!         q.put(format!("item {i}")).unwrap();
//!     }
//! }
//!
//! multiprocess::init();
//! let q = Queue::new()?;
//! let mut p = Process::new(producer, q.clone());
//! p.start()?;
//! let got: Vec<String> = (0..3).map(|_| q.get()).collect::<Result<_, _>>()?;
//! assert_eq!(got, ["item 0", "item 1", "item 2"]);
//! p.join()?;
//! # Ok::<(), multiprocess::Error>(())
//! ```
//!
//! ## Locks and other synchronization
//!
//! [`Lock`], [`RLock`], [`Semaphore`], [`BoundedSemaphore`], [`Condition`], [`Event`]
//! and [`Barrier`] work across processes: clone one into a child's args. `acquire()`
//! returns a guard; a lock whose holder died is taken over, not deadlocked
//! ([`LockGuard::owner_died`] says so).
//!
//! ```
//! use multiprocess::{Lock, Process, RawValue};
//!
//! fn add((lock, total): (Lock, RawValue<u64>)) {
//!     for _ in 0..1000 {
//!         let _held = lock.acquire(); // released when dropped
//!         total.set(total.get() + 1);
//!     }
//! }
//!
//! multiprocess::init();
//! let (lock, total) = (Lock::new()?, RawValue::new(0u64)?);
//! let mut ps: Vec<_> = (0..2).map(|_| Process::new(add, (lock.clone(), total.clone()))).collect();
//! for p in &mut ps { p.start()?; }
//! for p in &mut ps { p.join()?; }
//! assert_eq!(total.get(), 2000); // exact: every increment under the lock
//! # Ok::<(), multiprocess::Error>(())
//! ```
//!
//! ## Shared values and arrays
//!
//! [`Value`] and [`Array`] hold plain data ([`Pod`]) in shared memory, each with its
//! own lock ([`Value::lock`]); [`RawValue`] and [`RawArray`] have none. Named
//! [`SharedMemory`] is Python's `shared_memory.SharedMemory`: bytes any process can open
//! by name, unlinked for you if their creator dies.
//!
//! ```
//! use multiprocess::{Array, Process, Value};
//!
//! fn f((n, a): (Value<f64>, Array<i32>)) {
//!     n.set(3.1415927);
//!     for i in 0..a.len() {
//!         a.set(i, -a.get(i).unwrap()).unwrap();
//!     }
//! }
//!
//! multiprocess::init();
//! let n = Value::new(0.0)?;
//! let a = Array::from_slice(&[0, 1, 2, 3])?;
//! let mut p = Process::new(f, (n.clone(), a.clone()));
//! p.start()?;
//! p.join()?;
//! assert_eq!((n.get(), a.to_vec()), (3.1415927, vec![0, -1, -2, -3]));
//! *n.lock() += 1.0; // read-modify-write under the value's own lock
//! # Ok::<(), multiprocess::Error>(())
//! ```
//!
//! ## Managers
//!
//! A [`Manager`] is a server process holding objects of any serializable type (dicts,
//! lists, queues, locks, namespaces, your own [`SharedObject`]s); typed proxies reach
//! them from any process, including unrelated ones on another host by address and
//! authkey (see [`manager`]).
//!
//! ```
//! use multiprocess::{DictProxy, Manager, Process};
//!
//! fn count(d: DictProxy<String, u32>) {
//!     d.insert("from child".into(), 1).unwrap();
//! }
//!
//! multiprocess::init();
//! let manager = Manager::start()?;
//! let d = manager.dict::<String, u32>()?;
//! d.insert("from parent".into(), 0)?;
//! let mut p = Process::new(count, d.clone());
//! p.start()?;
//! p.join()?;
//! assert_eq!(d.len()?, 2);
//! # Ok::<(), multiprocess::Error>(())
//! ```
//!
//! ## Listeners and clients
//!
//! [`Listener`] and [`Client`] are Python's `multiprocessing.connection`: a server
//! address (an abstract name `@name`, a socket path, or `host:port`) that hands out
//! [`Connection`]s, with an optional authkey that both sides prove (HMAC-SHA256) and
//! limits against hostile peers (see [`listener`]).
//!
//! ```
//! use multiprocess::{Client, Listener, Process};
//!
//! fn client(addr: String) {
//!     let conn = Client::connect::<String>(&addr, b"secret").unwrap();
//!     conn.send(&"hello".to_string()).unwrap();
//! }
//!
//! multiprocess::init();
//! let listener = Listener::bind("127.0.0.1:0", b"secret")?;
//! let mut p = Process::new(client, listener.address().to_string());
//! p.start()?;
//! assert_eq!(listener.accept::<String>()?.recv()?, "hello");
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
//!
//! ## Logging and stats
//!
//! [`Pool::stats`] says what each worker has done and which task it runs now, and
//! since when. With the `tracing` feature the crate emits
//! [`tracing`](https://docs.rs/tracing) events (workers started, ended and respawned,
//! tasks timed out, failed logins, manager connections); `log_to_stderr()` prints
//! them, as Python's `multiprocessing.log_to_stderr()`.
//!
//! ## Features and platforms
//!
//! Cargo features: `progress` (progress bars for `map`/`imap`), `json` (`Json<T>`),
//! `redis` (`broker`, the cluster pool, the Redis manager), `tracing` (events,
//! `log_to_stderr`), `tokio` (async waits on tokio's reactor). Linux
//! only, 5.3 or later: the crate relies on pidfds, memfd, futexes and
//! `PR_SET_PDEATHSIG`, and other targets stop at a `compile_error!` that says so (the
//! README has the plan for other platforms).

// The docs show `fn main` on purpose: where `init()` goes is the point.
#![allow(clippy::needless_doctest_main)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Off Linux only the `compile_error!` below remains: no warnings beside it.
#![cfg_attr(not(target_os = "linux"), allow(unused_macros))]

// One clear error instead of hundreds of unresolved names elsewhere (the README's
// "Platform support" has the plan for other systems).
#[cfg(not(target_os = "linux"))]
compile_error!(
    "multiprocess supports Linux only (5.3 or later) for now: it relies on pidfds \
     (pidfd_open, to reap and signal children without races), memfd (anonymous shared \
     memory for locks, queues and values), futexes (cross-process locks) and \
     PR_SET_PDEATHSIG (children die with their parent). Other platforms are planned \
     behind src/sys/ (macOS: kqueue EVFILT_PROC, shm_open, os_sync_wait_on_address); \
     see the README's \"Platform support\"."
);

// Events and spans for `tracing` (feature `tracing`), written once here so that every
// call site is one short line and compiles to nothing without the feature:
// `trace!(warn, worker = %name, "message")` is `tracing::warn!(...)`, and
// `let _span = trace_span!(DEBUG, "name", field = value);` an entered span. Without the
// feature the arguments are not evaluated: pass only values the code has anyway.
#[cfg(feature = "tracing")]
macro_rules! trace {
    ($level:ident, $($arg:tt)+) => {
        ::tracing::$level!($($arg)+)
    };
}
#[cfg(not(feature = "tracing"))]
macro_rules! trace {
    ($level:ident, $($arg:tt)+) => {{}};
}
#[cfg(feature = "tracing")]
macro_rules! trace_span {
    ($level:ident, $($arg:tt)+) => {
        ::tracing::span!(::tracing::Level::$level, $($arg)+).entered()
    };
}
#[cfg(not(feature = "tracing"))]
macro_rules! trace_span {
    ($level:ident, $($arg:tt)+) => {
        ()
    };
}

// The layers, bottom up; each module imports only modules before it in this order
// (the README's "Layout" says what each holds). `mod` lines below are kept in that
// order, one group per layer, so rustfmt keeps it. Each is Linux-only, so that another
// target meets the one `compile_error!` above and nothing else.
#[cfg(target_os = "linux")]
mod error;

#[cfg(target_os = "linux")]
mod sys;

// How async twins wait (fds, timers), for every layer above.
#[cfg(target_os = "linux")]
mod aio;

#[cfg(target_os = "linux")]
mod wire;

#[cfg(target_os = "linux")]
mod sync;

#[cfg(target_os = "linux")]
mod connection;

#[cfg(target_os = "linux")]
mod process;

#[cfg(target_os = "linux")]
mod queue;

#[cfg(target_os = "linux")]
mod memory;

#[cfg(target_os = "linux")]
pub mod listener;

// Redis between hosts (feature `redis`), under the pool and the manager that use it.
#[cfg(all(target_os = "linux", feature = "redis"))]
pub mod broker;

#[cfg(target_os = "linux")]
pub mod pool;

#[cfg(target_os = "linux")]
pub mod manager;

// Constructors that gather the layers, at the top.
#[cfg(target_os = "linux")]
mod context;

#[cfg(target_os = "linux")]
pub use connection::{Connection, WaitList, Waitable, pipe, pipe_simplex, wait};
#[cfg(target_os = "linux")]
pub use error::{Error, ErrorKind, Result};
#[cfg(target_os = "linux")]
pub use memory::{Array, Pod, RawArray, RawValue, SharedGuard, SharedMemory, Value};
#[cfg(target_os = "linux")]
#[doc(inline)]
pub use pool::futures;
#[cfg(target_os = "linux")]
#[doc(inline)]
pub use pool::futures::{ProcessPoolExecutor, ThreadPoolExecutor};
#[cfg(target_os = "linux")]
#[doc(inline)]
pub use pool::{
    AsyncResult, IMap, Options, Pool, PoolBuilder, ThreadPool, ThreadPoolBuilder, WorkerStats,
};
#[cfg(target_os = "linux")]
pub use process::{Builder, Stdio};
#[cfg(target_os = "linux")]
pub use process::{
    ChildInfo, Context, CurrentProcess, DEFAULT_START_METHOD, Fork, JoinHandle, ParentProcess,
    Process, StartMethod, active_children, cpu_count, current_process, default_context, fork,
    get_all_start_methods, get_context, get_start_method, parent_process, set_start_method, spawn,
    waitpid,
};
#[cfg(target_os = "linux")]
pub use queue::{JoinableQueue, PutError, Queue, SimpleQueue};
#[cfg(target_os = "linux")]
pub use sync::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, LockGuard, RLock, RLockGuard, Semaphore,
    SemaphoreGuard,
};
#[cfg(target_os = "linux")]
pub use wire::fd::Fd;
#[cfg(all(target_os = "linux", any(feature = "json", test)))]
pub use wire::json::Json;

// Managers and listeners.
#[cfg(target_os = "linux")]
#[doc(inline)]
pub use listener::{AuthKey, Client, Limits, Listener};
#[cfg(target_os = "linux")]
#[doc(inline)]
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
/// | [`JoinableQueue::join`], [`put`](JoinableQueue::put), [`get`](JoinableQueue::get) | [`join_async`](JoinableQueue::join_async) ([`QueueJoin`](asyncio::QueueJoin)), [`put_async`](JoinableQueue::put_async), [`get_async`](JoinableQueue::get_async) | the queue's async bell |
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
#[cfg(target_os = "linux")]
pub mod asyncio {
    pub use crate::connection::{Recv, RecvBytes};
    pub use crate::pool::AsyncResultFuture;
    pub use crate::process::{JoinFuture, ProcessJoin};
    pub use crate::queue::{QueueGet, QueueJoin, QueuePut};
}

/// The pid of this process's fork server, if one runs (this starts none). For tests
/// and diagnostics: the server's children are this process's own (see
/// [`StartMethod::ForkServer`]), so the process table alone does not tell which child
/// is the server.
///
/// # Examples
///
/// ```
/// use multiprocess::{get_context, StartMethod};
/// fn noop(_: ()) {}
/// multiprocess::init();
/// let ctx = get_context(StartMethod::ForkServer);
/// let mut p = ctx.process(noop, ());
/// p.start()?;
/// p.join()?;
/// let server = multiprocess::__fork_server_pid().expect("started by the first start");
/// assert_ne!(Some(server), p.pid());
/// # Ok::<(), multiprocess::Error>(())
/// ```
#[doc(hidden)]
#[cfg(target_os = "linux")]
pub fn __fork_server_pid() -> Option<u32> {
    process::fork_server_pid()
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
#[cfg(target_os = "linux")]
pub fn init() {
    #[cfg(feature = "tracing")]
    log::from_env();
    process::init();
    // Worker-host mode (`MULTIPROCESS_WORKER=redis://...`): serve, then exit.
    #[cfg(feature = "redis")]
    pool::cluster::init_from_env();
}

/// Shows this crate's [`tracing`](https://docs.rs/tracing) events on stderr, in this
/// process and in the children it starts from now on: Python's
/// `multiprocessing.log_to_stderr(logging.INFO)` (feature `tracing`).
///
/// Installs a global subscriber that prints the events of `multiprocess` at `INFO` and
/// above (workers started, ended and respawned, tasks timed out and redispatched,
/// manager connections, failed logins) and nothing from other crates. Returns `false`
/// if the program already installed a global subscriber: then that one gets the
/// events, as for any library that uses `tracing`. Setting `MULTIPROCESS_LOG=debug`
/// (or `trace`, `info`, `warn`, `error`) in the environment does the same at that
/// level from [`init()`] on, without a code change.
///
/// Children started by `spawn` or the fork server get `MULTIPROCESS_LOG` in their
/// environment and log too (the manager's server process among them); `fork` children
/// inherit the subscriber.
///
/// # Examples
///
/// ```
/// multiprocess::init();
/// multiprocess::log_to_stderr();
/// fn square(x: u64) -> u64 { x * x }
/// let pool = multiprocess::Pool::new(1)?; // DEBUG: pool worker started ...
/// assert_eq!(pool.apply(square, 3)?, 9);
/// # Ok::<(), multiprocess::Error>(())
/// ```
#[cfg(all(target_os = "linux", feature = "tracing"))]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub fn log_to_stderr() -> bool {
    log_to_stderr_at(tracing::Level::INFO)
}

/// [`log_to_stderr`] at another level: `DEBUG` adds every worker start and exit and
/// each manager connection (feature `tracing`).
///
/// # Examples
///
/// ```
/// multiprocess::init();
/// multiprocess::log_to_stderr_at(tracing::Level::DEBUG);
/// # let _ = multiprocess::Pool::new(1)?;
/// # Ok::<(), multiprocess::Error>(())
/// ```
#[cfg(all(target_os = "linux", feature = "tracing"))]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub fn log_to_stderr_at(level: tracing::Level) -> bool {
    process::set_child_env(log::ENV, level.as_str());
    log::install(level)
}

/// The stderr subscriber of [`log_to_stderr`].
#[cfg(all(target_os = "linux", feature = "tracing"))]
mod log {
    use tracing_subscriber::layer::{Layer, SubscriberExt};

    /// The variable that turns logging on in a process and its spawned children.
    pub(crate) const ENV: &str = "MULTIPROCESS_LOG";

    /// Installs the subscriber if `MULTIPROCESS_LOG` names a level.
    pub(crate) fn from_env() {
        let level = std::env::var(ENV).ok().and_then(|v| v.trim().parse().ok());
        if let Some(level) = level {
            install(level);
        }
    }

    /// A global subscriber printing `multiprocess` events at `level` and above to
    /// stderr; false if there is one already.
    pub(crate) fn install(level: tracing::Level) -> bool {
        let only_ours =
            tracing_subscriber::filter::Targets::new().with_target("multiprocess", level);
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(only_ours),
        );
        tracing::subscriber::set_global_default(subscriber).is_ok()
    }
}

/// The README's Rust blocks, run as doctests (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

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
