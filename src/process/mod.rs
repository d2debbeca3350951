//! Processes: Python's `Process`, start methods, and a `spawn` that returns a value.
//!
//! # Caveats
//!
//! * **Zombies.** Every child is reaped: by [`Process::join`], by
//!   [`Process::is_alive`]/[`Process::exitcode`] once it ended, by [`active_children`],
//!   by the next [`Process::start`], or at exit. Reaping uses pidfds, never `SIGCHLD`.
//! * **Orphans.** A child never outlives a parent that dies, even by `SIGKILL`: it is
//!   created from a long-lived thread with `PR_SET_PDEATHSIG(SIGKILL)`, or, started by
//!   the fork server (whose child it is), it watches the parent's pidfd from a small
//!   thread of its own and dies once the parent is gone, even if the fork server was
//!   killed first (opt out per process with [`Process::die_with_parent`]). At a normal exit (return from `main`
//!   or `std::process::exit`), daemonic children are terminated and the others joined,
//!   as in Python.
//! * **Drop.** Dropping a running [`Process`] neither kills nor waits: the child runs on
//!   and is joined at exit (terminated if daemonic), as Python does.
//! * **Fork safety.** See [`StartMethod`].

/// Writes a line to the real standard error (fd 2). `eprintln!` would go into
/// libtest's output capture, which a thread spawned by a test inherits, and a child
/// forked from such a thread would lose its report when it exits.
macro_rules! report {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod bootstrap;
mod child;
mod context;
mod forkserver;
mod launcher;
mod method;
mod start;
mod state;

pub use context::{Context, default_context, get_context, get_start_method, set_start_method};
pub use method::{DEFAULT_START_METHOD, StartMethod, get_all_start_methods};

pub(crate) use bootstrap::{init, quiet_panics, take_panic, user_frames};

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use self::bootstrap::{Boot, Outcome, entry_process, entry_spawn};
use self::child::{ChildShared, Reap};
use self::state::state;
use crate::connection::{Connection, Waitable};
use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use crate::wire::code::code_offset;
use crate::wire::codec;

/// A child process running `target(args)`: Python's `multiprocessing.Process`.
///
/// Build it with [`new`](Process::new) (and optionally [`name`](Process::name),
/// [`daemon`](Process::daemon), [`context`](Process::context)), then
/// [`start`](Process::start) and [`join`](Process::join).
///
/// Exit codes follow Python: `0` when `target` returns, `1` when it panics (the message
/// and location go to stderr), `n` for `std::process::exit(n)`, `-N` when killed by
/// signal `N`.
///
/// # Examples
///
/// ```
/// use multiprocess::Process;
///
/// fn greet((name, times): (String, u32)) {
///     for _ in 0..times {
///         println!("hello, {name}");
///     }
/// }
///
/// multiprocess::init();
/// let mut p = Process::new(greet, ("bob".to_string(), 2)).name("greeter");
/// p.start()?;
/// p.join()?;
/// assert_eq!(p.exitcode(), Some(0));
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub struct Process<A> {
    target: fn(A),
    args: Option<A>,
    name: String,
    identity: Vec<u32>,
    daemon: bool,
    die_with_parent: bool,
    ctx: Context,
    child: Option<Arc<ChildShared>>,
    closed: bool,
}

impl<A> fmt::Debug for Process<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = if self.closed {
            "closed".to_string()
        } else {
            match &self.child {
                None => "initial".to_string(),
                Some(c) => match c.exitcode() {
                    None => "started".to_string(),
                    Some(code) => format!("stopped exitcode={code}"),
                },
            }
        };
        f.debug_struct("Process")
            .field("name", &self.name)
            .field("pid", &self.child.as_ref().map(|c| c.pid))
            .field("daemon", &self.daemon)
            .field("status", &status)
            .finish()
    }
}

fn closed_error() -> Error {
    Error::state("process object is closed")
}

fn not_started() -> Error {
    Error::state("process has not been started")
}

impl<A> Process<A>
where
    A: Serialize + DeserializeOwned + 'static,
{
    /// A process that will run `target(args)`; named `Process-N` (`Process-1:2` in a
    /// child), not daemonic (a daemonic process's children are daemonic by default).
    ///
    /// `target` is a plain function (or a closure that captures nothing): a child
    /// started by `spawn` or the fork server has none of the parent's memory, so
    /// everything it needs travels in `args`, which must be serializable. Handles
    /// ([`Connection`] and friends) in `args` are passed to the child.
    pub fn new(target: fn(A), args: A) -> Self {
        let me = state();
        let n = me.counter.fetch_add(1, Ordering::Relaxed);
        let mut identity = me.identity.clone();
        identity.push(n);
        let name = format!(
            "Process-{}",
            identity
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(":")
        );
        Process {
            target,
            args: Some(args),
            name,
            identity,
            daemon: me.daemon,
            die_with_parent: true,
            ctx: default_context(),
            child: None,
            closed: false,
        }
    }

    /// Sets the name (Python's `name=`).
    ///
    /// # Examples
    ///
    /// ```
    /// fn noop(_: ()) {}
    /// let p = multiprocess::Process::new(noop, ()).name("worker");
    /// assert_eq!(p.get_name(), "worker");
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the daemon flag (Python's `daemon=`): a daemonic child is terminated when
    /// its parent exits, and may not start children of its own.
    ///
    /// # Examples
    ///
    /// ```
    /// fn noop(_: ()) {}
    /// let p = multiprocess::Process::new(noop, ()).daemon(true);
    /// assert!(p.is_daemon());
    /// ```
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.daemon = daemon;
        self
    }

    /// Whether the child is killed if this process dies without joining it (default
    /// `true`: children never outlive their parent). With `false` the child may live on
    /// as an orphan, as in Python, for example to watch its parent end.
    ///
    /// # Examples
    ///
    /// ```
    /// fn watcher(_: ()) { /* may outlive this process */ }
    /// let p = multiprocess::Process::new(watcher, ()).die_with_parent(false);
    /// # drop(p);
    /// ```
    pub fn die_with_parent(mut self, yes: bool) -> Self {
        self.die_with_parent = yes;
        self
    }

    /// Uses `ctx`'s start method instead of the default.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{Process, StartMethod, get_context};
    /// fn noop(_: ()) {}
    /// multiprocess::init();
    /// let mut p = Process::new(noop, ()).context(get_context(StartMethod::Spawn));
    /// p.start()?;
    /// p.join()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn context(mut self, ctx: Context) -> Self {
        self.ctx = ctx;
        self
    }

    /// Starts the child.
    ///
    /// # Errors
    ///
    /// * [`ErrorKind::InvalidState`]: already started, or closed;
    /// * [`ErrorKind::NotPermitted`]: this process is daemonic;
    /// * [`ErrorKind::Serialize`]: the args cannot be serialized (nothing is started,
    ///   the args are kept);
    /// * [`ErrorKind::Io`]: the OS refused (out of processes, ...).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{ErrorKind, Process};
    /// fn noop(_: ()) {}
    /// multiprocess::init();
    /// let mut p = Process::new(noop, ());
    /// p.start()?;
    /// assert_eq!(p.start().unwrap_err().kind(), ErrorKind::InvalidState);
    /// p.join()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn start(&mut self) -> Result<()> {
        if self.closed {
            return Err(closed_error());
        }
        if self.child.is_some() {
            return Err(Error::state("processes can only be started once"));
        }
        let me = state();
        if me.daemon {
            return Err(Error::new(
                ErrorKind::NotPermitted,
                "daemonic processes are not allowed to have children",
            ));
        }
        state::reap_finished();
        state::ensure_exit_handler();
        let args = self
            .args
            .as_ref()
            .ok_or_else(|| Error::state("process has no args"))?;
        let enc = codec::encode(args)?;
        let boot = Boot {
            entry: code_offset(entry_process::<A> as *const ()),
            func: code_offset(self.target as *const ()),
            nfds: enc.fds.len() as u32,
            args: enc.bytes,
            result: false,
            name: self.name.clone(),
            identity: self.identity.clone(),
            daemon: self.daemon,
            parent_pid: me.pid,
            parent_name: me.name.clone(),
            die_with_parent: self.die_with_parent,
            start_method: Some(self.ctx.start_method()),
        };
        let child = Arc::new(start::start(self.ctx.start_method(), boot, &enc.fds)?);
        me.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child.clone());
        self.child = Some(child);
        // The handles now live in the child; our copies would keep pipes open.
        self.args = None;
        Ok(())
    }

    fn started(&self) -> Result<&Arc<ChildShared>> {
        if self.closed {
            return Err(closed_error());
        }
        self.child.as_ref().ok_or_else(not_started)
    }

    fn forget(&self, child: &Arc<ChildShared>) {
        state()
            .children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|c| !Arc::ptr_eq(c, child));
    }

    /// Waits for the child to end (and reaps it).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidState`] if not started or closed.
    ///
    /// # Examples
    ///
    /// ```
    /// fn exit_7(_: ()) { std::process::exit(7) }
    /// multiprocess::init();
    /// let mut p = multiprocess::Process::new(exit_7, ());
    /// p.start()?;
    /// p.join()?;
    /// assert_eq!(p.exitcode(), Some(7));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn join(&self) -> Result<()> {
        let c = self.started()?;
        c.poll_exit(None).map_err(|e| Error::io("join", e))?;
        self.forget(c);
        Ok(())
    }

    /// Waits at most `timeout` for the child to end; `true` if it ended.
    /// `join_timeout(Duration::ZERO)` answers at once.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidState`] if not started or closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// fn nap(ms: u64) { std::thread::sleep(Duration::from_millis(ms)) }
    /// multiprocess::init();
    /// let mut p = multiprocess::Process::new(nap, 5_000);
    /// p.start()?;
    /// assert!(!p.join_timeout(Duration::ZERO)?);
    /// p.kill()?;
    /// assert!(p.join_timeout(Duration::from_secs(10))?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        let c = self.started()?;
        let done = c
            .poll_exit(sys::deadline_after(timeout))
            .map_err(|e| Error::io("join", e))?
            .is_some();
        if done {
            self.forget(c);
        }
        Ok(done)
    }

    /// Is the child running? `false` before start and after it ended.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidState`] after [`close`](Process::close).
    ///
    /// # Examples
    ///
    /// ```
    /// fn noop(_: ()) {}
    /// multiprocess::init();
    /// let mut p = multiprocess::Process::new(noop, ());
    /// assert!(!p.is_alive()?);
    /// p.start()?;
    /// p.join()?;
    /// assert!(!p.is_alive()?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn is_alive(&self) -> Result<bool> {
        if self.closed {
            return Err(closed_error());
        }
        match &self.child {
            None => Ok(false),
            Some(c) => Ok(c
                .poll_exit(Some(Instant::now()))
                .map_err(|e| Error::io("poll", e))?
                .is_none()),
        }
    }

    /// The exit code once the child ended (`None` before start or while it runs):
    /// `0`, `1` after a panic, `n` after `exit(n)`, `-N` after signal `N`.
    ///
    /// # Examples
    ///
    /// ```
    /// fn boom(_: ()) { panic!("boom") }
    /// multiprocess::init();
    /// let mut p = multiprocess::Process::new(boom, ());
    /// assert_eq!(p.exitcode(), None);
    /// p.start()?;
    /// p.join()?;
    /// assert_eq!(p.exitcode(), Some(1));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn exitcode(&self) -> Option<i32> {
        let c = self.child.as_ref()?;
        c.poll_exit(Some(Instant::now())).ok().flatten()
    }

    /// The child's pid once started.
    ///
    /// # Examples
    ///
    /// ```
    /// fn noop(_: ()) {}
    /// multiprocess::init();
    /// let mut p = multiprocess::Process::new(noop, ());
    /// assert_eq!(p.pid(), None);
    /// p.start()?;
    /// assert!(p.pid().is_some());
    /// p.join()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.pid)
    }

    /// Python's `ident`: the same as [`pid`](Process::pid).
    ///
    /// # Examples
    ///
    /// ```
    /// fn noop(_: ()) {}
    /// let p = multiprocess::Process::new(noop, ());
    /// assert_eq!(p.ident(), p.pid());
    /// ```
    pub fn ident(&self) -> Option<u32> {
        self.pid()
    }

    /// The name (`Process-1`, or what [`name`](Process::name) set).
    ///
    /// # Examples
    ///
    /// ```
    /// fn noop(_: ()) {}
    /// let p = multiprocess::Process::new(noop, ());
    /// assert!(p.get_name().starts_with("Process-"));
    /// ```
    pub fn get_name(&self) -> &str {
        &self.name
    }

    /// Is the process daemonic?
    ///
    /// # Examples
    ///
    /// ```
    /// fn noop(_: ()) {}
    /// assert!(!multiprocess::Process::new(noop, ()).is_daemon());
    /// ```
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }

    /// A pollable fd that becomes readable when the child ends (a pidfd): Python's
    /// `sentinel`, for [`crate::wait`] or your own event loop.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidState`] before start or after close.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocess::Waitable;
    /// fn noop(_: ()) {}
    /// multiprocess::init();
    /// let mut p = multiprocess::Process::new(noop, ());
    /// assert!(p.sentinel().is_err());
    /// p.start()?;
    /// // Ready once the child has ended:
    /// let ready = multiprocess::wait(&[&p as &dyn Waitable], Some(Duration::from_secs(10)))?;
    /// assert_eq!(ready, vec![0]);
    /// p.join()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn sentinel(&self) -> Result<BorrowedFd<'_>> {
        Ok(self.started()?.pidfd.as_fd())
    }

    /// Sends `SIGTERM` (exit code `-15` unless the child handles it). No effect once the
    /// child ended.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidState`] before start or after close.
    ///
    /// # Examples
    ///
    /// ```
    /// fn forever(_: ()) { loop { std::thread::sleep(std::time::Duration::from_secs(1)) } }
    /// multiprocess::init();
    /// let mut p = multiprocess::Process::new(forever, ());
    /// p.start()?;
    /// p.terminate()?;
    /// p.join()?;
    /// assert_eq!(p.exitcode(), Some(-15));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn terminate(&self) -> Result<()> {
        self.started()?
            .signal(sys::process::SIGTERM)
            .map_err(|e| Error::io("terminate", e))
    }

    /// Sends `SIGKILL` (exit code `-9`). No effect once the child ended.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidState`] before start or after close.
    ///
    /// # Examples
    ///
    /// ```
    /// fn forever(_: ()) { loop { std::thread::sleep(std::time::Duration::from_secs(1)) } }
    /// multiprocess::init();
    /// let mut p = multiprocess::Process::new(forever, ());
    /// p.start()?;
    /// p.kill()?;
    /// p.join()?;
    /// assert_eq!(p.exitcode(), Some(-9));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn kill(&self) -> Result<()> {
        self.started()?
            .signal(sys::process::SIGKILL)
            .map_err(|e| Error::io("kill", e))
    }

    /// Releases the process's resources; afterwards every method but the getters is an
    /// error. Closing twice is fine.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidState`] while the child still runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::ErrorKind;
    /// fn noop(_: ()) {}
    /// multiprocess::init();
    /// let mut p = multiprocess::Process::new(noop, ());
    /// p.start()?;
    /// p.join()?;
    /// p.close()?;
    /// assert_eq!(p.is_alive().unwrap_err().kind(), ErrorKind::InvalidState);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn close(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        if let Some(c) = &self.child {
            if c.poll_exit(Some(Instant::now()))
                .map_err(|e| Error::io("close", e))?
                .is_none()
            {
                return Err(Error::state(
                    "cannot close a process while it is still running; join or terminate it first",
                ));
            }
            self.forget(c);
        }
        self.child = None;
        self.args = None;
        self.closed = true;
        Ok(())
    }
}

impl<A> Drop for Process<A> {
    fn drop(&mut self) {
        if let Some(c) = &self.child
            && let Ok(Some(_)) = c.poll_exit(Some(Instant::now()))
        {
            state()
                .children
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|x| !Arc::ptr_eq(x, c));
        }
    }
}

impl<A> Waitable for Process<A>
where
    A: Serialize + DeserializeOwned + 'static,
{
    fn wait_fd(&self) -> Result<BorrowedFd<'_>> {
        self.sentinel()
    }
}

/// Runs `f(args)` in a child process and returns a handle to its result: the Rust
/// way to use a process as a function call.
///
/// # Errors
///
/// As [`Process::start`].
///
/// # Examples
///
/// ```
/// fn square(x: u64) -> u64 { x * x }
///
/// multiprocess::init();
/// let h = multiprocess::spawn(square, 12)?;
/// assert_eq!(h.join()?, 144);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub fn spawn<A, R>(f: fn(A) -> R, args: A) -> Result<JoinHandle<R>>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    spawn_with(default_context(), f, args)
}

/// Starts `f(args)` in a process that is not this process's child in the registry:
/// never joined or terminated at exit, never killed when we die. For helpers that must
/// outlive us (the shared-memory tracker). Returns its pid.
pub(crate) fn start_detached<A>(method: StartMethod, name: &str, f: fn(A), args: A) -> Result<u32>
where
    A: Serialize + DeserializeOwned + 'static,
{
    let me = state();
    let enc = codec::encode(&args)?;
    let boot = Boot {
        entry: code_offset(entry_process::<A> as *const ()),
        func: code_offset(f as *const ()),
        nfds: enc.fds.len() as u32,
        args: enc.bytes,
        result: false,
        name: name.to_string(),
        identity: me.identity.clone(),
        daemon: false,
        parent_pid: me.pid,
        parent_name: me.name.clone(),
        die_with_parent: false,
        start_method: Some(method),
    };
    let child = start::start(method, boot, &enc.fds)?;
    drop(args);
    Ok(child.pid)
}

pub(crate) fn spawn_with<A, R>(ctx: Context, f: fn(A) -> R, args: A) -> Result<JoinHandle<R>>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    let me = state();
    if me.daemon {
        return Err(Error::new(
            ErrorKind::NotPermitted,
            "daemonic processes are not allowed to have children",
        ));
    }
    state::reap_finished();
    state::ensure_exit_handler();
    let (rx, tx) = crate::connection::pipe_simplex::<Outcome<R>>()?;
    let enc = codec::encode(&args)?;
    let n = me.counter.fetch_add(1, Ordering::Relaxed);
    let mut identity = me.identity.clone();
    identity.push(n);
    let name = format!(
        "Process-{}",
        identity
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(":")
    );
    let boot = Boot {
        entry: code_offset(entry_spawn::<A, R> as *const ()),
        func: code_offset(f as *const ()),
        nfds: enc.fds.len() as u32,
        args: enc.bytes,
        result: true,
        name,
        identity,
        daemon: false,
        parent_pid: me.pid,
        parent_name: me.name.clone(),
        die_with_parent: true,
        start_method: Some(ctx.start_method()),
    };
    let mut fds = enc.fds.clone();
    fds.push(tx.as_fd().as_raw_fd_compat());
    let child = Arc::new(start::start(ctx.start_method(), boot, &fds)?);
    drop(tx);
    drop(args);
    me.children
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(child.clone());
    Ok(JoinHandle {
        child,
        rx,
        joined: false,
        _r: PhantomData,
    })
}

trait AsRawFdCompat {
    fn as_raw_fd_compat(&self) -> i32;
}
impl AsRawFdCompat for BorrowedFd<'_> {
    fn as_raw_fd_compat(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(self)
    }
}

/// The handle of a [`spawn`]ed child: join it for its return value.
pub struct JoinHandle<R> {
    child: Arc<ChildShared>,
    rx: Connection<Outcome<R>>,
    /// The child's result was taken (by `join_timeout`).
    joined: bool,
    _r: PhantomData<fn() -> R>,
}

impl<R> fmt::Debug for JoinHandle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("pid", &self.child.pid)
            .finish()
    }
}

/// Describes how a process ended, for error messages.
pub(crate) fn describe_exit(code: i32) -> String {
    if code >= 0 {
        format!("exited with code {code}")
    } else {
        let sig = -code;
        let name = match sig {
            1 => "SIGHUP",
            2 => "SIGINT",
            3 => "SIGQUIT",
            4 => "SIGILL",
            6 => "SIGABRT",
            7 => "SIGBUS",
            8 => "SIGFPE",
            9 => "SIGKILL",
            11 => "SIGSEGV",
            13 => "SIGPIPE",
            14 => "SIGALRM",
            15 => "SIGTERM",
            _ => "",
        };
        if name.is_empty() {
            format!("was killed by signal {sig}")
        } else {
            format!("was killed by signal {sig} ({name})")
        }
    }
}

impl<R: DeserializeOwned> JoinHandle<R> {
    /// The child's pid.
    ///
    /// # Examples
    ///
    /// ```
    /// fn id(x: u8) -> u8 { x }
    /// multiprocess::init();
    /// let h = multiprocess::spawn(id, 1)?;
    /// assert_ne!(h.pid(), std::process::id());
    /// h.join()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn pid(&self) -> u32 {
        self.child.pid
    }

    /// Has the child ended?
    ///
    /// # Examples
    ///
    /// ```
    /// fn id(x: u8) -> u8 { x }
    /// multiprocess::init();
    /// let h = multiprocess::spawn(id, 1)?;
    /// while !h.is_finished() { std::thread::yield_now(); }
    /// assert_eq!(h.join()?, 1);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn is_finished(&self) -> bool {
        matches!(self.child.poll_exit(Some(Instant::now())), Ok(Some(_)))
    }

    /// Kills the child (`SIGKILL`); [`join`](JoinHandle::join) then reports it.
    ///
    /// # Errors
    ///
    /// If the signal cannot be sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::ErrorKind;
    /// fn nap(ms: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(ms)); ms }
    /// multiprocess::init();
    /// let h = multiprocess::spawn(nap, 60_000)?;
    /// h.kill()?;
    /// let err = h.join().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::ProcessDied);
    /// assert_eq!(err.exitcode(), Some(-9));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn kill(&self) -> Result<()> {
        self.child
            .signal(sys::process::SIGKILL)
            .map_err(|e| Error::io("kill", e))
    }

    /// Waits for the child and returns what `f` returned.
    ///
    /// # Errors
    ///
    /// * [`ErrorKind::Panicked`]: `f` panicked; the message has its text and location;
    /// * [`ErrorKind::ProcessDied`]: the child was killed or exited without returning
    ///   ([`Error::exitcode`] says how).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::ErrorKind;
    /// fn div((a, b): (i32, i32)) -> i32 { a / b }
    /// multiprocess::init();
    /// assert_eq!(multiprocess::spawn(div, (7, 2))?.join()?, 3);
    /// let err = multiprocess::spawn(div, (1, 0))?.join().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Panicked);
    /// assert!(err.to_string().contains("divide by zero"));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn join(mut self) -> Result<R> {
        self.finish(None)
    }

    /// As [`join`](JoinHandle::join), waiting at most `timeout` (a timeout too long to
    /// represent, such as `Duration::MAX`, waits forever).
    ///
    /// It borrows the handle rather than consuming it, so that a join that timed out
    /// can be retried: the [`ErrorKind::Timeout`] case leaves the handle as it was. Any
    /// other outcome (the value, a panic, a death) is the child's one result: the
    /// handle is spent, and joining it again is an [`ErrorKind::InvalidState`] error.
    /// As with `recv_timeout` on a channel, a timeout is an `Err`, so `?` works.
    ///
    /// # Errors
    ///
    /// As `join`, plus [`ErrorKind::Timeout`] (the child keeps running; join again, or
    /// drop the handle: it is then joined at exit), and [`ErrorKind::InvalidState`] if
    /// the handle was already joined.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocess::ErrorKind;
    /// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    /// multiprocess::init();
    /// let mut h = multiprocess::spawn(nap, 500)?;
    /// let err = h.join_timeout(Duration::from_millis(1)).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Timeout); // "joining Process-1 (pid ..) timed out after 1ms"
    /// assert_eq!(h.join_timeout(Duration::from_secs(10))?, 500); // the same handle
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<R> {
        match self.finish(sys::deadline_after(timeout)) {
            Err(e) if e.kind() == ErrorKind::Timeout => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "joining {} (pid {}) timed out after {timeout:?}",
                    self.child.name, self.child.pid
                ),
            )),
            other => other,
        }
    }

    fn finish(&mut self, deadline: Option<Instant>) -> Result<R> {
        if self.joined {
            return Err(Error::state(format!(
                "{} (pid {}) was already joined",
                self.child.name, self.child.pid
            )));
        }
        let outcome = match deadline {
            None => self.rx.recv(),
            Some(d) => self
                .rx
                .recv_timeout(d.saturating_duration_since(Instant::now())),
        };
        let outcome = match outcome {
            // Nothing was read (a frame is read whole once it starts): the handle stays
            // as it was, and the child in the registry.
            Err(e) if e.kind() == ErrorKind::Timeout => return Err(e),
            other => other,
        };
        self.joined = true;
        let wait_end = |c: &ChildShared| c.poll_exit(None).ok().flatten().unwrap_or(255);
        let result = match outcome {
            Ok(Outcome::Returned(r)) => {
                wait_end(&self.child);
                Ok(r)
            }
            Ok(Outcome::Panicked(msg)) => {
                let code = wait_end(&self.child);
                Err(Error::new(
                    ErrorKind::Panicked,
                    format!("child process {} panicked: {msg}", self.child.pid),
                )
                .with_exitcode(code))
            }
            Ok(Outcome::Failed(msg)) => {
                let code = wait_end(&self.child);
                Err(Error::new(
                    ErrorKind::ProcessDied,
                    format!("child process {} failed: {msg}", self.child.pid),
                )
                .with_exitcode(code))
            }
            Err(e) if e.kind() == ErrorKind::Disconnected => {
                let code = wait_end(&self.child);
                Err(Error::new(
                    ErrorKind::ProcessDied,
                    format!(
                        "child process {} {} without returning a value",
                        self.child.pid,
                        describe_exit(code)
                    ),
                )
                .with_exitcode(code))
            }
            Err(e) => Err(e),
        };
        state()
            .children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|x| !Arc::ptr_eq(x, &self.child));
        result
    }
}

impl<R: DeserializeOwned> Waitable for JoinHandle<R> {
    fn wait_fd(&self) -> Result<BorrowedFd<'_>> {
        Ok(self.child.pidfd.as_fd())
    }
}

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
/// Reap the child with [`waitpid`] (it is also reaped by [`active_children`] and at
/// exit, so it never stays a zombie). Unlike [`Process`] children, a raw fork child
/// is not killed when the parent dies.
///
/// # Caveats
///
/// The child has only the calling thread: a lock held by another thread at the moment
/// of the fork stays locked in the child (see [`StartMethod`]). The standard output and
/// error locks are taken around the fork, so printing in the child is safe. End the
/// child with `std::process::exit`.
///
/// # Errors
///
/// [`ErrorKind::Io`] if the OS refuses (out of processes or memory).
///
/// # Examples
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
    let out = std::io::stdout();
    let err = std::io::stderr();
    let o = out.lock();
    let e = err.lock();
    #[allow(unsafe_code)]
    // SAFETY: the hazard is documented for the caller (see Caveats); Rust itself stays
    // sound: the child continues with a copy of this thread's memory.
    let r = unsafe { sys::process::fork() };
    drop(e);
    drop(o);
    match r.map_err(|e| Error::io("fork", e))? {
        sys::process::Forked::Child => {
            state::become_forked_copy();
            Ok(Fork::Child)
        }
        sys::process::Forked::Parent(pid) => {
            let pidfd = sys::pidfd::open(pid).map_err(|e| Error::io("pidfd_open", e))?;
            let child = ChildShared::new(pid, pidfd, format!("fork-{pid}"), false, Reap::Direct)
                .with_raw_fork();
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

/// This process, as Python's `current_process()` sees it.
#[derive(Debug, Clone)]
pub struct CurrentProcess {
    name: String,
    pid: u32,
    daemon: bool,
    identity: Vec<u32>,
}

impl CurrentProcess {
    /// `MainProcess` in the root, `Process-1`, `Process-1:2`, ... in children.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }
    /// Is this process daemonic?
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }
    /// The position in the process tree (`[]` for the root, `[1, 2]` for `Process-1:2`).
    ///
    /// # Examples
    ///
    /// ```
    /// fn show(_: ()) { assert_eq!(multiprocess::current_process().identity().len(), 1); }
    /// multiprocess::init();
    /// assert!(multiprocess::current_process().identity().is_empty());
    /// let mut p = multiprocess::Process::new(show, ());
    /// p.start()?;
    /// p.join()?;
    /// assert_eq!(p.exitcode(), Some(0));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn identity(&self) -> &[u32] {
        &self.identity
    }
}

/// The current process.
///
/// # Examples
///
/// ```
/// assert_eq!(multiprocess::current_process().name(), "MainProcess");
/// assert_eq!(multiprocess::current_process().pid(), std::process::id());
/// ```
pub fn current_process() -> CurrentProcess {
    let s = state();
    CurrentProcess {
        name: s.name.clone(),
        pid: s.pid,
        daemon: s.daemon,
        identity: s.identity.clone(),
    }
}

/// The parent of a child process, as Python's `parent_process()` sees it.
#[derive(Debug, Clone)]
pub struct ParentProcess {
    info: state::ParentInfo,
}

impl ParentProcess {
    /// The parent's name.
    pub fn name(&self) -> &str {
        &self.info.name
    }
    /// The parent's pid.
    pub fn pid(&self) -> u32 {
        self.info.pid
    }
    /// Is the parent still running?
    pub fn is_alive(&self) -> bool {
        match &self.info.pidfd {
            Some(fd) => !sys::poll::is_readable(fd.as_fd()).unwrap_or(true),
            None => false,
        }
    }
    /// Waits at most `timeout` for the parent to end; `true` if it did.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocess::Connection;
    /// fn child(c: Connection<bool>) {
    ///     let parent = multiprocess::parent_process().unwrap();
    ///     // The parent is alive while it waits for our answer.
    ///     c.send(&(parent.is_alive() && !parent.join_timeout(Duration::ZERO))).unwrap();
    /// }
    /// multiprocess::init();
    /// let (here, there) = multiprocess::pipe()?;
    /// let mut p = multiprocess::Process::new(child, there);
    /// p.start()?;
    /// assert!(here.recv()?);
    /// p.join()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        match &self.info.pidfd {
            Some(fd) => {
                sys::pidfd::wait_exit(fd.as_fd(), sys::deadline_after(timeout)).unwrap_or(true)
            }
            None => true,
        }
    }
    /// A pollable fd that becomes readable when the parent ends.
    pub fn sentinel(&self) -> Option<BorrowedFd<'_>> {
        self.info.pidfd.as_ref().map(|f| f.as_fd())
    }
}

/// The parent process (`None` in the root process).
///
/// # Examples
///
/// ```
/// use multiprocess::Connection;
/// fn child(c: Connection<(String, u32)>) {
///     let p = multiprocess::parent_process().unwrap();
///     c.send(&(p.name().to_string(), p.pid())).unwrap();
/// }
/// multiprocess::init();
/// assert!(multiprocess::parent_process().is_none());
/// let (here, there) = multiprocess::pipe()?;
/// let mut p = multiprocess::Process::new(child, there);
/// p.start()?;
/// assert_eq!(here.recv()?, ("MainProcess".to_string(), std::process::id()));
/// p.join()?;
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub fn parent_process() -> Option<ParentProcess> {
    state().parent.clone().map(|info| ParentProcess { info })
}

/// A running child, as listed by [`active_children`].
#[derive(Debug, Clone)]
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// fn nap(ms: u64) { std::thread::sleep(Duration::from_millis(ms)) }
/// multiprocess::init();
/// let mut p = multiprocess::Process::new(nap, 10_000).name("napper");
/// p.start()?;
/// let kids = multiprocess::active_children();
/// assert_eq!((kids[0].name(), kids[0].pid(), kids[0].is_daemon()), ("napper", p.pid().unwrap(), false));
/// p.kill()?;
/// p.join()?;
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub struct ChildInfo {
    name: String,
    pid: u32,
    daemon: bool,
}

impl ChildInfo {
    /// The child's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }
    /// Is it daemonic?
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }
}

/// The children of this process that are still running; reaps those that ended.
///
/// # Examples
///
/// ```
/// assert!(multiprocess::active_children().is_empty());
/// ```
pub fn active_children() -> Vec<ChildInfo> {
    state::reap_finished();
    state()
        .children
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|c| !c.raw_fork)
        .map(|c| ChildInfo {
            name: c.name.clone(),
            pid: c.pid,
            daemon: c.daemon,
        })
        .collect()
}

/// The number of CPUs this process may use: its affinity mask, capped by a cgroup CPU
/// quota. Python's `os.process_cpu_count()`, which is what `cpu_count()` should be.
///
/// # Examples
///
/// ```
/// assert!(multiprocess::cpu_count() >= 1);
/// ```
pub fn cpu_count() -> usize {
    sys::process::usable_cpus()
}
