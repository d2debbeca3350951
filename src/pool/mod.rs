//! Pools of worker processes (Python's `multiprocessing.Pool`) and of threads
//! (`multiprocessing.pool.ThreadPool`).
//!
//! # A tour
//!
//! ```
//! use multiprocess::Pool;
//!
//! fn square(x: u64) -> u64 { x * x }
//!
//! multiprocess::init();
//! let pool = Pool::new(2)?;                         // two worker processes
//! assert_eq!(pool.apply(square, 7)?, 49);           // one call, wait for it
//! let r = pool.apply_async(square, 8)?;             // one call, collect later
//! assert_eq!(pool.map(square, 0..5)?, [0, 1, 4, 9, 16]);
//! let mut any: Vec<u64> = pool.imap_unordered(square, 0..5).collect::<Result<_, _>>()?;
//! any.sort();
//! assert_eq!(any, [0, 1, 4, 9, 16]);
//! assert_eq!(r.get()?, 64);
//! pool.close();                                     // no more tasks
//! pool.join()?;                                     // wait for the workers to exit
//! # Ok::<(), multiprocess::Error>(())
//! ```
//!
//! Functions are plain `fn(A) -> R` items (a non-capturing closure coerces), with
//! serializable arguments and results: they run in another process. A
//! [`ThreadPool`] takes any closure instead.
//!
//! # Where it is better than Python's
//!
//! * A worker that dies (killed, segfault, abort, `exit`) fails only the task it was
//!   running, with an error of kind [`ProcessDied`](crate::ErrorKind::ProcessDied)
//!   that says how it died and which task it ran; the worker is replaced and the
//!   pool goes on. Python's pool hangs forever.
//! * [`PoolBuilder::task_timeout`] (or [`Options::timeout`] per call) kills and
//!   replaces a worker whose call runs too long; the call fails with
//!   [`Timeout`](crate::ErrorKind::Timeout).
//! * An initializer that fails breaks the pool at once with its error
//!   ([`BrokenPool`](crate::ErrorKind::BrokenPool)); Python respawns workers forever.
//! * A panicking task returns its message and location (and a backtrace under
//!   `RUST_BACKTRACE=1`); in `map` the other items still run to the end.
//! * Dropping the pool terminates it (like leaving Python's `with Pool() as p:`);
//!   workers never outlive the parent, even if it is killed.

//!
//! # Layout
//!
//! The front (what users call) sits apart from the engines (what runs the work):
//!
//! * Fronts: `process_pool.rs` ([`Pool`], [`PoolBuilder`]), `thread_pool.rs`
//!   ([`ThreadPool`]), `futures.rs` (the executors, re-exported as
//!   [`crate::futures`]).
//! * Per call: `options.rs` ([`Options`]), `result.rs` ([`AsyncResult`]), `slot.rs`
//!   (where one result lands).
//! * Submission, on any flavor: `apply.rs` (one call), `map.rs`, `imap.rs` ([`IMap`]).
//! * The seam: `chunk.rs` (a chunk of items, its outcome, where the outcome goes) and
//!   `flavor.rs` (the private enum that picks an engine; a third flavor goes there).
//! * Engines: `engine/` (worker processes; its `mod.rs` has the design notes),
//!   `threads.rs` (threads of this process) and `cluster/` (worker hosts behind Redis,
//!   feature `redis`; they run their tasks with `engine/`).
//!
//! Imports go down that list: the fronts use submission, submission uses the seam, the
//! seam uses the engines, and the engines use only `chunk.rs` and `slot.rs`.

mod apply;
mod chunk;
#[cfg(feature = "redis")]
pub mod cluster;
mod engine;
mod flavor;
pub mod futures;
mod imap;
mod map;
mod options;
mod process_pool;
#[cfg(feature = "progress")]
mod progress;
mod result;
mod slot;
mod thread_pool;
mod threads;

pub use self::engine::WorkerStats;
pub use self::imap::IMap;
pub use self::options::Options;
pub use self::process_pool::{Pool, PoolBuilder};
pub use self::result::{AsyncResult, AsyncResultFuture};
pub use self::thread_pool::{ThreadPool, ThreadPoolBuilder};
