//! What a child sees around its task: its environment and its standard streams, as
//! `std::process::Command` sets them (`env`, `env_remove`, `env_clear`, `stdin`,
//! `stdout`, `stderr`).
//!
//! # The environment under every start method
//!
//! A start method must not change what a child sees: the child's environment is the
//! parent's *at `start()`*, plus the settings of its [`Process`](crate::Process) or
//! [`Builder`](crate::Builder). A forked child has it by construction, and a spawned
//! one gets it at `exec`; but the fork server was started once, earlier, and its
//! children are copies of *it*, so a variable set since would be missing. So the boot
//! message of a fork-server child carries the whole environment (a few KiB, next to a
//! fork), and the child installs it before its task runs (`run_child`). Fork and
//! spawn children carry it only when settings change it.
//!
//! # Standard streams
//!
//! A replaced stream travels as one more fd of the boot message (after the args'
//! handles, before `spawn`'s result channel), so it reaches the child the way handles
//! do under every method: inherited and duplicated under fork, passed with
//! `SCM_RIGHTS` to a spawned child or the fork server. The child `dup2`s it onto 0, 1
//! or 2 before its task runs. For a pipe, the parent keeps the other end, which
//! [`Process::take_stdout`](crate::Process::take_stdout) (and friends) hands out as
//! `std::process::ChildStdout`, the type `Command` gives. The stream settings are
//! used up by a start (a `File` given is moved into the child), so a start that
//! failed has none left; the environment settings stay.
//!
//! A piped end the parent holds is an ordinary fd, not a registered handle: a child
//! forked meanwhile for another task inherits it (a `Fork`-method child closes only
//! handles). The child's ends *are* registered while the parent holds them, so such a
//! child never keeps a pipe's write end open and the reader sees end of file.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::process::{ChildStderr, ChildStdin, ChildStdout};

use super::method::StartMethod;
use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use crate::wire::handles::HandleFd;

/// What a child's standard input, output or error is: [`inherit`](Stdio::inherit)ed
/// from the parent (the default), [`null`](Stdio::null) (`/dev/null`), a
/// [`piped`](Stdio::piped) end the parent reads or writes, or any file or fd
/// (`From<File>`, `From<OwnedFd>`). `std::process::Stdio`'s twin.
///
/// # Examples
///
/// ```
/// use std::io::Read;
/// use multiprocess::{Process, Stdio};
/// fn hello(_: ()) { println!("hello from the child"); }
/// multiprocess::init();
/// let mut p = Process::new(hello, ()).stdout(Stdio::piped());
/// p.start()?;
/// let mut out = String::new();
/// p.take_stdout().unwrap().read_to_string(&mut out)?;
/// p.join()?;
/// assert_eq!(out, "hello from the child\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Stdio(Kind);

enum Kind {
    Inherit,
    Null,
    Piped,
    Fd(OwnedFd),
}

impl fmt::Debug for Stdio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Inherit => f.write_str("Stdio::inherit()"),
            Kind::Null => f.write_str("Stdio::null()"),
            Kind::Piped => f.write_str("Stdio::piped()"),
            Kind::Fd(fd) => write!(f, "Stdio::from(fd {})", fd.as_raw_fd()),
        }
    }
}

impl Stdio {
    /// The parent's stream (the default).
    ///
    /// # Examples
    ///
    /// ```
    /// fn noop(_: ()) {}
    /// let p = multiprocess::Process::new(noop, ()).stderr(multiprocess::Stdio::inherit());
    /// # drop(p);
    /// ```
    pub fn inherit() -> Self {
        Stdio(Kind::Inherit)
    }

    /// `/dev/null`: reads see end of file, writes vanish.
    ///
    /// # Examples
    ///
    /// ```
    /// fn noisy(_: ()) { println!("nobody reads this"); }
    /// multiprocess::init();
    /// let mut p = multiprocess::Process::new(noisy, ()).stdout(multiprocess::Stdio::null());
    /// p.start()?;
    /// p.join()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn null() -> Self {
        Stdio(Kind::Null)
    }

    /// A new pipe: the child gets one end, the parent takes the other with
    /// `take_stdin`, `take_stdout` or `take_stderr` after `start`.
    ///
    /// # Examples
    ///
    /// See [`Stdio`].
    pub fn piped() -> Self {
        Stdio(Kind::Piped)
    }
}

impl From<OwnedFd> for Stdio {
    fn from(fd: OwnedFd) -> Self {
        Stdio(Kind::Fd(fd))
    }
}

impl From<File> for Stdio {
    fn from(f: File) -> Self {
        Stdio(Kind::Fd(f.into()))
    }
}

/// One change to the environment, in the order given.
#[derive(Debug, Clone)]
enum EnvOp {
    Set(OsString, OsString),
    Remove(OsString),
    Clear,
}

/// The environment and standard-stream settings of one child.
#[derive(Debug, Default)]
pub(crate) struct ChildOptions {
    env: Vec<EnvOp>,
    stdio: [Option<Stdio>; 3],
}

/// The pipe ends a parent keeps: `stdin` (write end), `stdout`, `stderr` (read ends).
#[derive(Debug, Default)]
pub(crate) struct ParentStdio {
    pub(crate) stdin: Option<ChildStdin>,
    pub(crate) stdout: Option<ChildStdout>,
    pub(crate) stderr: Option<ChildStderr>,
}

/// The standard streams prepared for one start: the child's ends (registered as
/// handles while we hold them, so a concurrent fork child closes its copies), which
/// streams they replace, and the ends we keep.
#[derive(Debug, Default)]
pub(crate) struct PreparedStdio {
    child: Vec<HandleFd>,
    pub(crate) which: [bool; 3],
    parent: [Option<OwnedFd>; 3],
}

impl PreparedStdio {
    /// The raw fds of the child's ends, in stream order (valid while `self` lives).
    pub(crate) fn raw_fds(&self) -> Vec<RawFd> {
        self.child.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// The ends the parent keeps, typed as `std::process::Command` types them.
    pub(crate) fn into_parent(self) -> ParentStdio {
        let [i, o, e] = self.parent;
        ParentStdio {
            stdin: i.map(ChildStdin::from),
            stdout: o.map(ChildStdout::from),
            stderr: e.map(ChildStderr::from),
        }
    }
}

/// An environment as the boot message carries it.
pub(crate) type Env = Vec<(Vec<u8>, Vec<u8>)>;

impl ChildOptions {
    pub(crate) fn env(&mut self, key: &OsStr, val: &OsStr) {
        self.env.push(EnvOp::Set(key.into(), val.into()));
    }

    pub(crate) fn env_remove(&mut self, key: &OsStr) {
        self.env.push(EnvOp::Remove(key.into()));
    }

    pub(crate) fn env_clear(&mut self) {
        self.env.push(EnvOp::Clear);
    }

    pub(crate) fn set_stdio(&mut self, which: usize, s: Stdio) {
        self.stdio[which] = Some(s);
    }

    /// The whole environment the child must install, if it cannot simply keep the one
    /// it starts with: always under the fork server (whose environment is from its own
    /// start), otherwise only when settings change ours.
    pub(crate) fn child_env(&self, method: StartMethod) -> Result<Option<Env>> {
        if self.env.is_empty() && method != StartMethod::ForkServer {
            return Ok(None);
        }
        let mut vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        for op in &self.env {
            match op {
                EnvOp::Set(k, v) => {
                    check_name(k)?;
                    if v.as_bytes().contains(&0) {
                        return Err(Error::new(
                            ErrorKind::InvalidInput,
                            format!("the value of environment variable {k:?} holds a NUL byte"),
                        ));
                    }
                    vars.retain(|(n, _)| n != k);
                    vars.push((k.clone(), v.clone()));
                }
                EnvOp::Remove(k) => {
                    check_name(k)?;
                    vars.retain(|(n, _)| n != k);
                }
                EnvOp::Clear => vars.clear(),
            }
        }
        Ok(Some(
            vars.into_iter()
                .map(|(k, v)| (k.into_vec(), v.into_vec()))
                .collect(),
        ))
    }

    /// Opens what the settings ask for (pipes, `/dev/null`); the settings are used up.
    pub(crate) fn prepare_stdio(&mut self) -> Result<PreparedStdio> {
        let mut out = PreparedStdio::default();
        for (i, slot) in self.stdio.iter_mut().enumerate() {
            let Some(s) = slot.take() else { continue };
            let child_end = match s.0 {
                Kind::Inherit => continue,
                Kind::Null => std::fs::OpenOptions::new()
                    .read(i == 0)
                    .write(i != 0)
                    .open("/dev/null")
                    .map_err(|e| Error::io("opening /dev/null", e))?
                    .into(),
                Kind::Fd(fd) => fd,
                Kind::Piped => {
                    let (r, w) = sys::process::pipe().map_err(|e| Error::io("pipe", e))?;
                    let (child, parent) = if i == 0 { (r, w) } else { (w, r) };
                    out.parent[i] = Some(parent);
                    child
                }
            };
            out.child.push(HandleFd::new(child_end));
            out.which[i] = true;
        }
        Ok(out)
    }
}

fn check_name(k: &OsStr) -> Result<()> {
    if k.is_empty() || k.as_bytes().iter().any(|&b| b == b'=' || b == 0) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{k:?} is not a valid environment variable name"),
        ));
    }
    Ok(())
}

/// In a new child, before its task: installs `env` and puts `fds` on the standard
/// streams `which` marks (in order). A failure is reported and ends the child with 1:
/// a task must not run with streams or variables other than asked.
///
/// It lives with the child's path ("Child text" in `bootstrap`): in a fresh fork child
/// every page of code run for the first time is a page fault.
#[allow(unsafe_code)] // the section only groups code: "Child text" in process::bootstrap
#[unsafe(link_section = "multiprocess_child_text")]
pub(crate) fn apply_in_child(env: Option<Env>, which: [bool; 3], fds: Vec<OwnedFd>) {
    if env.is_some() || which.contains(&true) {
        apply_in_child_now(env, which, fds);
    }
}

/// In a fork child whose standard input is replaced: forgets what the parent's
/// standard input had buffered, which the child would otherwise read before its own
/// stream (Python's fork child gets a new `sys.stdin`). It puts `/dev/null` on fd 0
/// and reads the buffer out, which then ends at once; the child's own stream replaces
/// `/dev/null` next. Only where the parent had no other thread: one could have held
/// the lock of standard input at the fork (blocked in a read), and the child would
/// then wait for it for ever.
pub(crate) fn forget_buffered_stdin() {
    use std::io::BufRead;
    let Ok(null) = std::fs::File::open("/dev/null") else {
        return;
    };
    if sys::process::redirect_std(std::os::fd::AsFd::as_fd(&null), 0).is_err() {
        return;
    }
    let mut stdin = std::io::stdin().lock();
    while let Ok(n) = stdin.fill_buf().map(<[u8]>::len) {
        if n == 0 {
            break;
        }
        stdin.consume(n);
    }
}

#[inline(never)]
fn apply_in_child_now(env: Option<Env>, which: [bool; 3], fds: Vec<OwnedFd>) {
    if let Some(env) = env {
        let vars: Vec<(OsString, OsString)> = env
            .into_iter()
            .map(|(k, v)| (OsString::from_vec(k), OsString::from_vec(v)))
            .collect();
        #[allow(unsafe_code)]
        // SAFETY: we are a new child before its task runs: no thread of ours touches
        // the environment meanwhile (see `sys::process::replace_env`).
        unsafe {
            sys::process::replace_env(&vars)
        };
    }
    let mut fds = fds.into_iter();
    for (target, _) in which.iter().enumerate().filter(|(_, w)| **w) {
        let Some(fd) = fds.next() else {
            report!("multiprocess: a child's standard stream {target} did not arrive");
            sys::process::exit_now(1);
        };
        if let Err(e) = sys::process::redirect_std(std::os::fd::AsFd::as_fd(&fd), target as i32) {
            report!("multiprocess: a child cannot set its standard stream {target}: {e}");
            sys::process::exit_now(1);
        }
        if fd.as_raw_fd() == target as RawFd {
            // It arrived as the stream itself: it stays open as the stream.
            let _ = std::os::fd::IntoRawFd::into_raw_fd(fd);
        }
    }
}
