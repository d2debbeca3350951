//! Python's `os.fork()` and `os.waitpid()`, for programs that fork by hand.

use std::sync::Arc;

use super::child::{Child, Reap};
use super::keyring;
use super::start::OutputLocks;
use super::state::{self, state};
use crate::error::{Error, ErrorKind, Result};
use crate::sys;

/// What [`fork`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
///
/// # Examples
///
/// ```
/// # use multiprocess::Fork;
/// # fn f() -> multiprocess::Result<()> {
/// if let Fork::Parent(pid) = multiprocess::fork()? {
///     println!("started {pid}");
///     multiprocess::waitpid(pid)?;
/// } else {
///     std::process::exit(0);
/// }
/// # Ok(()) }
/// ```
pub enum Fork {
    /// In the parent, with the child's pid.
    Parent(u32),
    /// In the child.
    Child,
}

/// `os.fork()`: duplicates this process. Returns [`Fork::Parent`] with the child's pid
/// in the parent and [`Fork::Child`] in the child.
///
/// Reap the child with [`waitpid`] (it is also reaped by [`active_children`](crate::active_children) and at
/// exit, so it never stays a zombie). Unlike [`Process`](crate::Process) children, a raw fork child
/// is not killed when the parent dies.
///
/// # Caveats
///
/// The child has only the calling thread: a lock held by another thread at the moment
/// of the fork stays locked in the child (see [`StartMethod`](crate::StartMethod)).
/// Standard output is flushed first (unlike Python's `os.fork`), so a partial line
/// printed before the fork does not come out twice. The standard output and error
/// locks are taken around the fork, so printing in the child is safe, except with
/// `print!` from a thread whose output a test harness captures: see "Printing under a
/// test harness" in [`StartMethod`](crate::StartMethod) for why and the workaround.
/// End the child with `std::process::exit`.
///
/// As with Python's `os.fork`, the child keeps the start method chosen with
/// [`set_start_method`](crate::set_start_method) and names its own children on from
/// the parent's count.
///
/// # Errors
///
/// [`ErrorKind::Io`] if the OS refuses (out of processes or memory).
///
/// # Examples
///
/// ```
/// use multiprocess::{Fork, Process, StartMethod};
/// fn noop(_: ()) {}
/// multiprocess::init();
/// multiprocess::set_start_method(StartMethod::Spawn)?;
/// assert_eq!(Process::new(noop, ()).get_name(), "Process-1");
/// match multiprocess::fork()? {
///     Fork::Child => {
///         let same = multiprocess::get_start_method() == StartMethod::Spawn
///             && Process::new(noop, ()).get_name() == "Process-2";
///         std::process::exit(if same { 0 } else { 1 });
///     }
///     Fork::Parent(pid) => assert_eq!(multiprocess::waitpid(pid)?, 0),
/// }
/// # Ok::<(), multiprocess::Error>(())
/// ```
///
/// A child that prints:
///
/// ```no_run
/// use multiprocess::Fork;
/// match multiprocess::fork()? {
///     Fork::Child => {
///         println!("I am the child {}", std::process::id());
///         std::process::exit(0);
///     }
///     Fork::Parent(pid) => {
///         println!("I just created {pid}");
///         assert_eq!(multiprocess::waitpid(pid)?, 0);
///     }
/// }
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub fn fork() -> Result<Fork> {
    // Create this process's state now: created lazily in the child, it would take the
    // child's pid for the parent's.
    let _ = state();
    state::ensure_exit_handler();
    // The child's ring: a copy made here, since the child must not lock ours.
    let keys = keyring::snapshot();
    let start_method = state::chosen_start_method();
    let output = OutputLocks::for_fork(sys::process::single_threaded());
    #[allow(unsafe_code)]
    // SAFETY: the hazard is documented for the caller (see Caveats); Rust itself stays
    // sound: the child continues with a copy of this thread's memory.
    let r = unsafe { sys::process::fork() };
    output.release();
    match r.map_err(|e| Error::io("fork", e))? {
        sys::process::Forked::Child => {
            state::become_forked_copy(start_method);
            keyring::install(keys);
            Ok(Fork::Child)
        }
        sys::process::Forked::Parent(pid) => {
            let pidfd = sys::pidfd::open(pid).map_err(|e| Error::io("pidfd_open", e))?;
            let child =
                Child::new(pid, pidfd, format!("fork-{pid}"), false, Reap::Direct).with_raw_fork();
            state()
                .children
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Arc::new(child));
            Ok(Fork::Parent(pid))
        }
    }
}

/// Waits for a child made by [`fork`] and returns its exit code (Python's convention).
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`] if `pid` is not an unreaped child from [`fork`].
///
/// # Examples
///
/// ```
/// use multiprocess::ErrorKind;
/// assert_eq!(multiprocess::waitpid(1).unwrap_err().kind(), ErrorKind::InvalidInput);
/// ```
pub fn waitpid(pid: u32) -> Result<i32> {
    let child = state()
        .children
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|c| c.pid == pid)
        .cloned()
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("{pid} is not a child of this process"),
            )
        })?;
    let code = child
        .poll_exit(None)
        .map_err(|e| Error::io("waitpid", e))?
        .unwrap_or(255);
    state()
        .children
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|c| !Arc::ptr_eq(c, &child));
    Ok(code)
}
