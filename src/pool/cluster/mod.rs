//! Beyond one machine: the same [`Pool`](crate::Pool) and
//! [`ProcessPoolExecutor`](crate::ProcessPoolExecutor) with workers on many hosts,
//! through Redis (feature `redis`).
//!
//! ```
//! use multiprocess::{broker::RedisServer, pool::cluster::Worker};
//!
//! fn square(x: u64) -> u64 { x * x }
//!
//! multiprocess::init(); // with MULTIPROCESS_WORKER set, this process is a worker host
//! let Some(server) = RedisServer::start_if_installed()? else { return Ok(()) };
//! // A worker host: another machine running this binary; here a thread of ours.
//! let url = server.url().to_string();
//! std::thread::spawn(move || Worker::new(&url, b"cluster secret").processes(1).run());
//! let pool = multiprocess::Pool::builder()
//!     .redis(server.url()) // e.g. "redis://10.0.0.5/"
//!     .key(b"cluster secret")
//!     .build()?;
//! assert_eq!(pool.map(square, 0..100_000u64)?.len(), 100_000);
//! let s = pool.cluster_stats().unwrap();
//! assert_eq!((s.retried, s.duplicates, s.forged_results), (0, 0, 0));
//! # Ok::<(), multiprocess::Error>(())
//! ```
//!
//! Worker hosts run the same binary: `MULTIPROCESS_WORKER=redis://10.0.0.5/
//! MULTIPROCESS_KEY=... ./app --processes 16` (see [`Worker::from_env`]), or call
//! [`Worker::run`].
//!
//! # Design
//!
//! * **Queue**: a Redis stream with one consumer group of hosts (`XREADGROUP`), so an
//!   entry taken by a host stays *pending* under its name until acknowledged: a host
//!   that vanishes leaves its tasks visible for another to claim. Lists (`BRPOPLPUSH`,
//!   RQ's and Celery's pattern) need a processing list per host and a sweeper to do
//!   the same; the stream keeps delivery counts for free.
//! * **Leases** are heartbeat keys, not idle times (see `host.rs`): a long task is
//!   never run twice while its host lives; a host silent past its lease (killed or
//!   frozen) loses its tasks to the next claim, up to `max_deliveries` runs.
//! * **Exactly once to the caller**: each submitter numbers its tasks and keeps their
//!   completions; a result for a task answered already is dropped (and counted).
//! * **No growth**: a host pushes a task's result, acknowledges and deletes its entry
//!   in one `MULTI` (`XACKDEL` is Redis 8.2+); the submitter pops its results list
//!   (which expires an hour after its last push, should the submitter vanish). A
//!   terminated pool deletes the entries it still had queued.
//! * **Same build only**: functions travel as code offsets (`wire::code`), which mean
//!   something only in the very same binary. Every task carries its sender's build
//!   fingerprint (a hash of the executable); a host of another build answers with
//!   [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported), naming itself and both
//!   builds, and never calls anything.
//! * **Only key holders run code**: tasks, results and host reports are sealed with
//!   the cluster key ([`Seal`](crate::broker::Seal), HMAC-SHA256, one domain per
//!   kind). A host drops an entry whose seal does not open, counts it (`mp:forged`)
//!   and runs nothing; a submitter drops such results.
//! * **Containment**: a host runs its tasks in a local process pool, so a task that
//!   panics, aborts or overruns its timeout fails with `Panicked`, `ProcessDied` or
//!   `Timeout` exactly as locally, and the host goes on.
//! * **Redis lost**: every step has an I/O bound; the submitter's results thread
//!   reconnects for that bound, then fails every pending call with
//!   [`Disconnected`](crate::ErrorKind::Disconnected) (a Redis that comes back with
//!   another `run_id` lost its queue, so its pending calls fail too). New calls
//!   reconnect. Hosts reconnect forever.
//! * **Batching**: a chunk of a `map` is one entry; a submit of many chunks is one
//!   pipeline; a host answers many tasks per `MULTI`, one list element per submitter.
//!
//! Files: `wire.rs` (keys, entries, fingerprint), `client.rs` (the submitter),
//! `flavor.rs` (chunks to tasks), `host.rs` (the worker host).

mod client;
mod flavor;
mod host;
mod wire;

pub use self::client::{ClusterStats, HostStats};
pub use self::host::Worker;

pub(crate) use self::client::{Client, Settings};
pub(crate) use self::flavor::ClusterFlavor;
pub(crate) use self::host::init_from_env;
