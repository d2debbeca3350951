//! Start methods: how a child process is created (Python's `"fork"`, `"spawn"`,
//! `"forkserver"`). A leaf: nothing here knows how a process is started.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// How a child process is created.
///
/// | method | how | cost here | safe with threads |
/// |---|---|---|---|
/// | [`Fork`](StartMethod::Fork) | `fork()`; the child runs the task in a copy of the parent | ~fork | no: see below |
/// | [`Spawn`](StartMethod::Spawn) | a fresh run of the current binary (`/proc/self/exe`) | ~exec | yes |
/// | [`ForkServer`](StartMethod::ForkServer) | a single-threaded server process (spawned once) forks children on request | ~fork + 2 messages | yes |
///
/// `ForkServer` is the default on Linux, as in Python 3.14.
///
/// One difference from Python: a child of the fork server is *your* child, not the
/// server's (its `getppid()` is your pid; the server forks it with `CLONE_PARENT`). You
/// reap it, it dies with you exactly as a `Fork` or `Spawn` child does, and it runs on
/// if the server alone is killed. (Where the server cannot do that, a server with
/// threads of your program's own or a kernel without `clone3`, it forks the child as
/// its own, and the child watches you with a small thread instead; setting
/// `MULTIPROCESS_FORKSERVER_WATCH` before the server starts asks for that too.)
///
/// Under every method a child starts as Python's would: with the parent's command line
/// in [`std::env::args`] (spawn and the fork server hand it on, as Python hands on
/// `sys.argv`), the parent's environment and the parent's current directory, both as
/// they are at `start()`, and with what the parent printed flushed first. (One
/// exception: in a test binary, where [`test_support!`](crate::test_support) runs the
/// child, a spawned child gets the arguments that make libtest run that entry.)
///
/// ```
/// use multiprocess::{StartMethod, get_context};
/// fn args(_: ()) -> Vec<String> { std::env::args().skip(1).collect() }
/// fn cwd(_: ()) -> std::path::PathBuf { std::env::current_dir().unwrap() }
/// multiprocess::init();
/// let ours: Vec<String> = std::env::args().skip(1).collect();
/// let here = std::env::current_dir()?;
/// // The fork server starts here; its children follow us elsewhere.
/// assert_eq!(get_context(StartMethod::ForkServer).spawn(cwd, ())?.join()?, here);
/// std::env::set_current_dir("/")?;
/// for method in [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer] {
///     let ctx = get_context(method);
///     assert_eq!(ctx.spawn(args, ())?.join()?, ours);
///     assert_eq!(ctx.spawn(cwd, ())?.join()?, std::path::Path::new("/"));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Caveats
///
/// `Fork` copies only the calling thread. If another thread held a lock at that moment
/// (a logger, a connection pool, a `Mutex` of yours), it stays locked in the child. We
/// take the standard output and error locks around `fork`, so printing is safe, and
/// glibc's allocator is fork-safe; anything else your task touches must not depend on
/// other threads. `Spawn` and `ForkServer` have no such hazard. Two consequences of
/// those locks: a thread other than the main one must not hold a `StdoutLock` (or
/// `StderrLock`) while it starts a `Fork` child, since the fork is made on the crate's
/// launcher thread, which waits for that lock; and a `Fork` child given a standard
/// input of its own drops what the parent's had buffered only where the parent has no
/// other thread (one could hold that lock in a blocking read).
///
/// **Printing under a test harness.** libtest (plain `cargo test`, not nextest)
/// captures a test's `print!` output in a buffer behind a lock of its own, which every
/// `std::thread` spawned by the test inherits, and which stable Rust gives no way to
/// take or reset. A [`Process`](crate::Process) (or [`spawn`](crate::spawn), a pool
/// worker) started with `Fork` is forked from the crate's launcher thread, a bare
/// thread that has no capture: its child prints to the real standard output, and
/// cannot deadlock on the buffer's lock however busy the test's other threads are
/// printing. A child of the raw [`fork`](crate::fork) is a copy of *your* thread: if
/// that thread captures (a test's thread, or a thread it spawned) and another thread
/// of the test is in the middle of a `print!`, the child's first `print!` blocks for
/// ever, and the test then hangs at exit, where children are joined. Workarounds: in
/// a raw fork child write with `writeln!(std::io::stdout(), ..)` (or `stderr`),
/// which bypass the capture; or run such tests under `cargo nextest` or with
/// `cargo test -- --nocapture`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StartMethod {
    /// Python's `"fork"`.
    Fork,
    /// Python's `"spawn"`.
    Spawn,
    /// Python's `"forkserver"`.
    ForkServer,
}

impl StartMethod {
    /// Python's name for it: `"fork"`, `"spawn"` or `"forkserver"`.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::StartMethod;
    /// assert_eq!(StartMethod::ForkServer.as_str(), "forkserver");
    /// assert_eq!("spawn".parse::<StartMethod>()?, StartMethod::Spawn);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            StartMethod::Fork => "fork",
            StartMethod::Spawn => "spawn",
            StartMethod::ForkServer => "forkserver",
        }
    }
}

impl fmt::Display for StartMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StartMethod {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fork" => Ok(StartMethod::Fork),
            "spawn" => Ok(StartMethod::Spawn),
            "forkserver" => Ok(StartMethod::ForkServer),
            _ => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("cannot find start method {s:?} (expected fork, spawn or forkserver)"),
            )),
        }
    }
}

/// The platform's default start method.
pub const DEFAULT_START_METHOD: StartMethod = StartMethod::ForkServer;

/// Every start method this platform offers, the default first.
///
/// # Examples
///
/// ```
/// use multiprocess::StartMethod;
/// assert_eq!(multiprocess::get_all_start_methods()[0], StartMethod::ForkServer);
/// ```
pub fn get_all_start_methods() -> Vec<StartMethod> {
    vec![
        StartMethod::ForkServer,
        StartMethod::Spawn,
        StartMethod::Fork,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for m in get_all_start_methods() {
            assert_eq!(m.as_str().parse::<StartMethod>().unwrap(), m);
            assert_eq!(m.to_string(), m.as_str());
        }
        let e = "vfork".parse::<StartMethod>().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(get_all_start_methods()[0], DEFAULT_START_METHOD);
    }
}
