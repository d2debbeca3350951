//! The operating-system layer: every system call lives under this module (errno to
//! `io::Error`, `EINTR` retried), so the layers above make none of their own.
//!
//! `unsafe` above this module is of a few kinds only, each in the file that owns the
//! invariant it relies on, each block with its `// SAFETY:` argument, and each
//! function whose soundness rests on its caller an `unsafe fn` with `# Safety`:
//!
//! * shared memory read and written by several processes: atomics and byte ranges of
//!   a segment (`sync/segment.rs`, `queue/`), plain data (`memory/`);
//! * functions as offsets in this binary (`wire/code.rs` and the entries that call
//!   what it returns: `process/bootstrap.rs`, the pool's workers, the barrier action);
//! * fds changing owner between processes (`wire/codec.rs`, `process/bootstrap.rs`,
//!   `process/start.rs`);
//! * the calls of [`process::fork`], an `unsafe fn` (what a child may do after it);
//! * per-process cells that outlive a `fork` (`process/state.rs`).
//!
//! What a platform must provide (Linux is the only tier-1 target today; the code that
//! would differ on macOS is exactly this module):
//!
//! * `fork` and `_exit`, and an exec of the current binary with one inherited fd
//!   ([`process`]);
//! * a process handle that is pollable and race-free to signal and reap: Linux pidfds
//!   ([`pidfd`]), which macOS would replace with kqueue `EVFILT_PROC`;
//! * parent-death notification (`PR_SET_PDEATHSIG`);
//! * stream and sequenced-packet sockets that carry file descriptors (`SCM_RIGHTS`),
//!   and batched sends and receives of records (`sendmmsg`/`recvmmsg`) ([`socket`]);
//! * `poll` over a set of fds with a deadline ([`poll`]);
//! * futexes shared between processes ([`futex`]), and a barrier on every CPU that runs
//!   a registered process, for the locks' asymmetric fences: `membarrier` ([`fence`];
//!   without it, releases fence in full);
//! * edge-triggered readiness for the async twins' shared reactor: `epoll` ([`epoll`]),
//!   which macOS would replace with kqueue `EV_CLEAR`.
//!
//! Conventions: errno becomes [`std::io::Error`] here, once; `EINTR` is retried here.
#![allow(unsafe_code)]

pub(crate) mod epoll;
pub(crate) mod fence;
pub(crate) mod futex;
pub(crate) mod pidfd;
pub(crate) mod poll;
pub(crate) mod process;
pub(crate) mod shm;
pub(crate) mod socket;

use std::io;
use std::time::{Duration, Instant};

/// The instant `timeout` from now, or `None` (no deadline: wait forever) when that
/// instant cannot be represented, as for `Duration::MAX`. Every public `*_timeout`
/// method turns its duration into a deadline here: `Instant::now() + timeout` panics on
/// overflow, and a timeout too long to represent is, for any caller, "forever".
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// [`deadline_after`] for an optional timeout (`None`: forever).
pub(crate) fn deadline_after_opt(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(deadline_after)
}

/// Keeps `fd` open until the process ends, as a plain borrowed fd (for a handle that
/// lives as long as the process, without a reference count on the heap).
pub(crate) fn keep_open(fd: std::os::fd::OwnedFd) -> std::os::fd::BorrowedFd<'static> {
    use std::os::fd::IntoRawFd;
    let raw = fd.into_raw_fd();
    // SAFETY: `raw` came from an `OwnedFd` whose ownership `into_raw_fd` gave up, and
    // nothing closes it afterwards: it stays open until the process ends.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) }
}

/// Runs `f` until it does not fail with `EINTR`.
pub(crate) fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(rustix::io::Errno::INTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// Converts a libc return value (`-1` plus errno) into an [`io::Result`].
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Closes a raw fd that the caller knows is open and unowned by live Rust objects
/// (used in a fork child for fds inherited from the parent).
pub(crate) fn close_raw(fd: std::os::fd::RawFd) {
    // SAFETY: closing an fd number has no memory effects; the caller guarantees no live
    // owner in this process will use or close it again.
    unsafe { libc::close(fd) };
}

/// A zeroed byte vector of `len` bytes, or `None` if memory is short (instead of
/// aborting, as `vec![0; len]` would): `calloc`, so large buffers are fresh zero pages.
pub(crate) fn zeroed_bytes(len: usize) -> Option<Vec<u8>> {
    if len == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<u8>(len).ok()?;
    // SAFETY: `layout` has a non-zero size; a non-null result is a zeroed allocation of
    // exactly `len` bytes with u8 alignment, which `Vec::from_raw_parts` may own.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout);
        if p.is_null() {
            return None;
        }
        Some(Vec::from_raw_parts(p, len, len))
    }
}

/// `N` random bytes from the OS (`getrandom(2)`): authkey nonces and keys, and the
/// default names of shared memory (as Python's `secrets`).
pub(crate) fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(b)
}
