//! The child's side of a start: what a new process is told ([`Boot`]), how it finds
//! its task, runs it, and exits with Python's exit-code rules.
//!
//! # Function identity
//!
//! A task is a plain `fn(A)` (or `fn(A) -> R`). The parent sends two code addresses as
//! offsets (see `wire::code`): the user's function and a
//! monomorphized *entry* that knows `A` (and `R`) and so can decode the args. A child
//! is always the same binary (fork, the fork server, or an exec of `/proc/self/exe`),
//! so an offset is the same code in the child even with ASLR.
//!
//! # Interception
//!
//! A spawned child is a fresh run of the binary with the environment variable
//! [`MARKER`] set to `<fd>:<parent pid>`. [`crate::init`], the first line of `main`,
//! sees it, reads the [`Boot`] from the fd, runs the task and exits; `main` never goes
//! on. In test binaries the child runs `<binary> __multiprocess_child_entry` so
//! libtest runs only the helper test of [`crate::test_support!`], which calls `init`.
//!
//! # Child text
//!
//! A forked child has none of its parent's page-table entries for code (the kernel
//! copies only those of anonymous memory), so each 64 KiB window of the binary that it
//! runs code from is a page fault of 3-4 us on this project's VMs; an empty task's
//! child ran code from six such windows of ours, wherever the compiler and linker had
//! put the functions. The functions that every forked child runs (`run_child` and what
//! it calls, the fork's child side, `exit_now`) carry
//! `#[link_section = "multiprocess_child_text"]`: the linker gathers sections of one
//! name into one output section, so they share one window, or two when the section
//! straddles a window's edge. It starts at a random 4 KiB offset (address layout
//! randomization), so the smaller it is, the likelier one window: the generic entries,
//! one per task type, stay out of it. A name without a leading `.text.` keeps it out of
//! `.text`, where lld would leave the functions in the order of their object files.
//! Measured with `perf record -e page-faults -c 1` over
//! 2,000 fork starts of an empty task: see the README's process-start notes.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::keyring::{self, Keys};
use super::method::StartMethod;
use super::options::{self, Env};
use super::panic::{install_panic_hook, take_panic};
use super::state::{self, ParentInfo};
use crate::connection::Connection;
use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use crate::wire::code::code_at;
use crate::wire::{codec, frame};

/// The environment variable that marks a spawned child.
pub(crate) const MARKER: &str = "__MULTIPROCESS_CHILD";

/// The name of the helper test that [`crate::test_support!`] defines.
pub(crate) const TEST_ENTRY: &str = "__multiprocess_child_entry";

/// Everything a new child is told.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Boot {
    /// Offset of the monomorphized entry (an [`EntryFn`]).
    pub(crate) entry: usize,
    /// Offset of the user's function, interpreted by the entry.
    pub(crate) func: usize,
    /// The encoded args; their handles are the first `nfds` fds.
    pub(crate) args: Vec<u8>,
    pub(crate) nfds: u32,
    /// One more fd after the args' fds: the result connection of `spawn`.
    pub(crate) result: bool,
    pub(crate) name: String,
    pub(crate) identity: Vec<u32>,
    pub(crate) daemon: bool,
    pub(crate) parent_pid: u32,
    pub(crate) parent_name: String,
    pub(crate) die_with_parent: bool,
    pub(crate) start_method: Option<StartMethod>,
    /// The parent's key ring (see [`keyring`](super::keyring)): the authkeys of the
    /// managers whose proxies the child may receive. Sent only over the private
    /// channel of the start (never a network); its `Debug` hides the keys.
    pub(crate) keys: Keys,
    /// The whole environment to install before the task, when the child cannot keep
    /// the one it starts with (see `options`).
    pub(crate) env: Option<Env>,
    /// Which standard streams (0, 1, 2) the fds after the args' replace, in order.
    pub(crate) stdio: [bool; 3],
    /// The directory to run the task in, when the child does not start in the parent's
    /// current one: a fork server's child starts where the server did (see `start`).
    pub(crate) cwd: Option<Vec<u8>>,
}

/// What an entry gets.
#[derive(Debug)]
pub(crate) struct EntryCtx {
    pub(crate) func: usize,
    pub(crate) args: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) result: Option<OwnedFd>,
    /// The spawn control socket (the fork server's request channel).
    pub(crate) ctrl: Option<OwnedFd>,
}

/// A monomorphized entry: runs the task, returns the exit code.
pub(crate) type EntryFn = fn(EntryCtx) -> i32;

/// The entry of `Process::<A>`: decodes `A`, calls `fn(A)`.
pub(crate) fn entry_process<A: DeserializeOwned>(cx: EntryCtx) -> i32 {
    #[allow(unsafe_code)]
    // SAFETY: `func` was made by `code_offset(f as *const ())` for an `f: fn(A)` of this
    // binary, together with this very entry (same `A`).
    let f: fn(A) = unsafe { code_at(cx.func) };
    match codec::decode::<A>(&cx.args, cx.fds) {
        Ok(a) => {
            f(a);
            0
        }
        Err(e) => {
            report!(
                "Process {}: cannot decode its arguments: {e}",
                state::state().name
            );
            1
        }
    }
}

/// What a `spawn`ed child sends back.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Outcome<R> {
    Returned(R),
    Panicked(String),
    Failed(String),
}

/// The entry of `spawn::<A, R>`: like [`entry_process`], and sends the outcome back.
pub(crate) fn entry_spawn<A: DeserializeOwned, R: Serialize>(cx: EntryCtx) -> i32 {
    #[allow(unsafe_code)]
    // SAFETY: as in `entry_process`, for `f: fn(A) -> R`.
    let f: fn(A) -> R = unsafe { code_at(cx.func) };
    let Some(fd) = cx.result else {
        report!("multiprocess: internal error: spawn without a result channel");
        return 1;
    };
    let back: Connection<Outcome<R>> = match Connection::from_fd(fd, false, true) {
        Ok(c) => c,
        Err(e) => {
            report!("multiprocess: cannot set up the result channel: {e}");
            return 1;
        }
    };
    let a = match codec::decode::<A>(&cx.args, cx.fds) {
        Ok(a) => a,
        Err(e) => {
            let _ = back.send(&Outcome::Failed(format!(
                "cannot decode the arguments: {e}"
            )));
            return 1;
        }
    };
    match panic::catch_unwind(AssertUnwindSafe(|| f(a))) {
        Ok(r) => {
            let out = Outcome::Returned(r);
            if let Err(e) = back.send(&out) {
                let _ = back.send(&Outcome::Failed(format!(
                    "cannot send the result back: {e}"
                )));
                return 1;
            }
            0
        }
        Err(_) => {
            let msg = take_panic().unwrap_or_else(|| "panicked".into());
            let _ = back.send(&Outcome::Panicked(msg));
            1
        }
    }
}

/// Runs a child's task and ends the process. Never returns.
///
/// `status`: a fork-server child's status socket, where it reports its own exit code
/// just before `_exit`.
///
/// `boot` is borrowed and its parts taken out of it, not moved: in a fork child, moving
/// it would call `memmove`, a page of libc's code the child would fault in.
#[allow(unsafe_code)]
// SAFETY: the section only groups code (see "Child text" above).
#[unsafe(link_section = "multiprocess_child_text")]
pub(crate) fn run_child(
    boot: &mut Boot,
    mut fds: Vec<OwnedFd>,
    ctrl: Option<OwnedFd>,
    status: Option<OwnedFd>,
) -> ! {
    let parent = ParentInfo::new(boot.parent_pid, std::mem::take(&mut boot.parent_name));
    state::become_child(
        std::mem::take(&mut boot.name),
        std::mem::take(&mut boot.identity),
        boot.daemon,
        Some(parent),
        boot.start_method,
    );
    keyring::install(std::mem::take(&mut boot.keys));
    // Two comparisons, not a `match` of the four values: LLVM makes a jump table of
    // those, a page of read-only data that a fork child would fault in for nothing.
    let forked = boot.start_method.is_some() && boot.start_method != Some(StartMethod::Spawn);
    if forked {
        // Forked (by us or by the fork server): the exit handlers are the parent's.
        sys::process::end_at_exit(end_of_task);
    }
    install_panic_hook();
    let nfds = boot.nfds as usize;
    let nstdio = boot.stdio.iter().filter(|&&w| w).count();
    let result = if boot.result && fds.len() > nfds + nstdio {
        fds.pop()
    } else {
        None
    };
    // Not `split_off` when there are none: it would copy zero of them with `memmove`,
    // a page of libc's code that a fork child would fault in for nothing.
    let stdio = if fds.len() > nfds {
        fds.split_off(nfds)
    } else {
        Vec::new()
    };
    if let Some(dir) = boot.cwd.take() {
        let dir = std::path::PathBuf::from(
            <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(dir),
        );
        if let Err(e) = std::env::set_current_dir(&dir) {
            report!(
                "Process {}: cannot change to the parent's directory {}: {e}",
                state::state().name,
                dir.display()
            );
            finish(1, status);
        }
    }
    options::apply_in_child(boot.env.take(), boot.stdio, stdio);
    #[allow(unsafe_code)]
    // SAFETY: `entry` was made by `code_offset` from an `EntryFn` of this binary (the
    // boot message comes from our parent, which is this binary).
    let entry: EntryFn = unsafe { code_at(boot.entry) };
    let cx = EntryCtx {
        func: boot.func,
        args: std::mem::take(&mut boot.args),
        fds,
        result,
        ctrl,
    };
    let code = panic::catch_unwind(AssertUnwindSafe(|| entry(cx))).unwrap_or(1);
    finish(code, status)
}

/// Python's end of a process: join our own children, flush, report, `_exit`.
#[allow(unsafe_code)] // the section only groups code: "Child text" in process::bootstrap
#[unsafe(link_section = "multiprocess_child_text")]
pub(crate) fn finish(code: i32, status: Option<OwnedFd>) -> ! {
    end_of_task();
    if let Some(s) = status {
        let _ = sys::socket::send_all(s.as_fd(), &[&code.to_le_bytes()], &[]);
    }
    sys::process::exit_now(code)
}

/// What a child does after its task, however it ends: join its own children (daemonic
/// ones terminated first), flush the standard streams.
#[allow(unsafe_code)] // the section only groups code: "Child text" in process::bootstrap
#[unsafe(link_section = "multiprocess_child_text")]
fn end_of_task() {
    state::exit_cleanup();
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}

static CONSUMED: AtomicBool = AtomicBool::new(false);

/// Whether [`init`] ran on the main thread: a program with its own `main` (or a test
/// binary with `harness = false`), not libtest, which calls it from a test thread (the
/// entry of `test_support!`).
static INIT_IN_MAIN: AtomicBool = AtomicBool::new(false);

/// The arguments a spawned child (and the fork server) gets after its `argv[0]`: this
/// program's own, as Python's spawn hands `sys.argv` on, so that a task that reads its
/// command line sees the parent's. Under libtest the child must instead run the one test
/// that calls `init()` (`test_support!`), alone and without capture.
pub(crate) fn child_args() -> Vec<std::ffi::OsString> {
    if INIT_IN_MAIN.load(Ordering::Acquire) {
        std::env::args_os().skip(1).collect()
    } else {
        [TEST_ENTRY, "--nocapture", "--test-threads=1", "-q"]
            .iter()
            .map(Into::into)
            .collect()
    }
}

/// [`crate::init`]: if this process is a spawned child, run its task and exit.
pub(crate) fn init() {
    if sys::process::is_main_thread() {
        INIT_IN_MAIN.store(true, Ordering::Release);
    }
    if CONSUMED.swap(true, Ordering::AcqRel) {
        return;
    }
    let Some(val) = std::env::var_os(MARKER) else {
        return;
    };
    let Some((fd, out, ppid)) = parse_marker(&val.to_string_lossy()) else {
        return;
    };
    if ppid != sys::process::getppid() {
        // Inherited from an ancestor through a program that did not clear it: not ours.
        return;
    }
    // Before anything else: never outlive the parent (see `sys::process::spawn_self`).
    sys::process::die_with_parent(ppid);
    #[allow(unsafe_code)]
    // SAFETY: `init` runs first in `main`, before this process starts threads of its
    // own (under libtest, its threads are idle while the helper test runs); no other
    // thread reads the environment concurrently.
    unsafe {
        std::env::remove_var(MARKER)
    };
    #[allow(unsafe_code)]
    // SAFETY: the parent left exactly these fds open for us and nothing else owns them.
    let (ctrl, out) = unsafe { (OwnedFd::from_raw_fd(fd), OwnedFd::from_raw_fd(out)) };
    sys::process::restore_stdout(out);
    let _ = sys::socket::set_cloexec(ctrl.as_fd());
    let boot = match recv_boot(&ctrl) {
        Ok(b) => b,
        Err(e) => {
            report!("multiprocess: a spawned child could not read its task: {e}");
            sys::process::exit_now(1);
        }
    };
    let (mut boot, fds) = boot;
    if !boot.die_with_parent {
        sys::process::outlive_parent();
    }
    if let Err(e) = frame::send_parts(ctrl.as_fd(), b"ok", &[]) {
        report!("multiprocess: a spawned child could not acknowledge its task: {e}");
        sys::process::exit_now(1);
    }
    run_child(&mut boot, fds, Some(ctrl), None)
}

fn parse_marker(s: &str) -> Option<(RawFd, RawFd, u32)> {
    let mut it = s.split(':');
    let r = (
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    );
    it.next().is_none().then_some(r)
}

fn recv_boot(ctrl: &OwnedFd) -> Result<(Boot, Vec<OwnedFd>)> {
    let f = frame::recv(
        ctrl.as_fd(),
        Some(Instant::now() + Duration::from_secs(60)),
        1 << 40,
    )?
    .ok_or_else(|| Error::timeout("waiting for the task from the parent"))?;
    let boot: Boot = codec::decode(&f.body, Vec::new())?;
    Ok((boot, f.fds))
}

/// The marker value for a child of ours that inherits `ctrl` and `stdout`.
pub(crate) fn marker_value(ctrl: &OwnedFd, stdout: &OwnedFd) -> String {
    format!(
        "{}:{}:{}",
        ctrl.as_raw_fd(),
        stdout.as_raw_fd(),
        sys::process::getpid()
    )
}

/// Whether this process is a spawned child of ours that has not called `init()`:
/// its parent is still waiting to hand it a task.
///
/// After [`init`] the task, if any, was claimed: only a program that never called it
/// reads the environment here. (Reading it takes the standard library's environment
/// lock, a write to a page that the last fork made copy-on-write: a page fault per
/// start.)
pub(crate) fn task_unclaimed() -> bool {
    !CONSUMED.load(Ordering::Acquire)
        && std::env::var_os(MARKER)
            .and_then(|v| parse_marker(&v.to_string_lossy()))
            .is_some_and(|(_, _, ppid)| ppid == sys::process::getppid())
}

/// Checks whether an error means the child never got to run its task.
pub(crate) fn no_init_error(code: Option<i32>) -> Error {
    let how = match code {
        Some(c) => format!(" (it exited with {c})"),
        None => String::new(),
    };
    Error::new(
        ErrorKind::InvalidState,
        format!(
            "a spawned child did not pick up its task{how}: call `multiprocess::init()` as the \
             first line of `main`, and put `multiprocess::test_support!();` in each test binary"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::parse_marker;

    #[test]
    fn the_marker_is_three_numbers_and_nothing_else() {
        assert_eq!(parse_marker("5:6:1234"), Some((5, 6, 1234)));
        for bad in ["", "5:6", "5:6:7:8", "a:6:7", "5::7", "5:6:-1"] {
            assert_eq!(parse_marker(bad), None, "{bad:?}");
        }
    }
}
