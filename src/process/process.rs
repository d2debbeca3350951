//! [`Process`]: Python's `multiprocessing.Process`.

use std::ffi::OsStr;
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd};
use std::process::{ChildStderr, ChildStdin, ChildStdout};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::bootstrap::{Boot, entry_process};
use super::child::Child;
use super::keyring;
use super::options::{ChildOptions, ParentStdio, Stdio};
use super::start;
use super::state::{self, state};
use super::{Context, default_context};
use crate::connection::Waitable;
use crate::error::{Error, Result};
use crate::sys;
use crate::wire::code::code_offset;
use crate::wire::codec;

/// A child process running `target(args)`: Python's `multiprocessing.Process`.
///
/// Build it with [`new`](Process::new) (and optionally [`name`](Process::name),
/// [`daemon`](Process::daemon), [`context`](Process::context), and, as
/// `std::process::Command` has them, [`env`](Process::env),
/// [`env_remove`](Process::env_remove), [`env_clear`](Process::env_clear),
/// [`stdin`](Process::stdin), [`stdout`](Process::stdout),
/// [`stderr`](Process::stderr)), then [`start`](Process::start) and
/// [`join`](Process::join). The child's environment is this process's at `start`
/// under every start method.
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
    child: Option<Arc<Child>>,
    closed: bool,
    /// Environment and standard-stream settings, used up by `start`.
    opts: ChildOptions,
    /// The pipe ends we keep for piped standard streams, once started.
    stdio: ParentStdio,
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
    /// ([`Connection`](crate::Connection) and friends) in `args` are passed to the child.
    ///
    /// # A closure that captures
    ///
    /// A closure that captures a variable is not a `fn` (error E0308, "expected fn
    /// pointer, found closure", "closures can only be coerced to `fn` types if they do
    /// not capture any variables"): the captured value lives in the parent's memory,
    /// which a spawned child does not have. Pass the value in `args` instead (a tuple
    /// or a struct for several), or use [`std::thread`] or
    /// [`ThreadPool`](crate::ThreadPool) when the work may share the parent's memory.
    ///
    /// ```compile_fail
    /// let greeting = String::from("hello");
    /// let p = multiprocess::Process::new(move |n: u32| println!("{greeting} {n}"), 1);
    /// ```
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::Process;
    ///
    /// fn greet((greeting, n): (String, u32)) {
    ///     println!("{greeting} {n}");
    /// }
    ///
    /// multiprocess::init();
    /// let mut p = Process::new(greet, ("hello".to_string(), 1)); // the data in args
    /// p.start()?;
    /// p.join()?;
    /// assert_eq!(p.exitcode(), Some(0));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn new(target: fn(A), args: A) -> Self {
        let me = state();
        let (identity, name) = me.next_child();
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
            opts: ChildOptions::default(),
            stdio: ParentStdio::default(),
        }
    }

    /// Sets the name (Python's `name=`). After [`start`](Process::start) it renames the
    /// child as this process knows it ([`active_children`](crate::active_children)), as
    /// setting `p.name` does in Python; the child keeps the name it started with.
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
        if let Some(c) = &self.child {
            c.rename(self.name.clone());
        }
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
    ///
    /// # Panics
    ///
    /// After [`start`](Process::start): the child was started with the flag it had
    /// then (Python's `AssertionError: process has already started`).
    pub fn daemon(mut self, daemon: bool) -> Self {
        assert!(
            self.child.is_none(),
            "Process::daemon: process has already started"
        );
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
    /// * [`ErrorKind::InvalidState`](crate::ErrorKind::InvalidState): already started, or closed;
    /// * [`ErrorKind::NotPermitted`](crate::ErrorKind::NotPermitted): this process is daemonic;
    /// * [`ErrorKind::Serialize`](crate::ErrorKind::Serialize): the args cannot be serialized (nothing is started,
    ///   the args are kept);
    /// * [`ErrorKind::Io`](crate::ErrorKind::Io): the OS refused (out of processes, ...).
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
        let me = state::before_start()?;
        let args = self
            .args
            .as_ref()
            .ok_or_else(|| Error::state("process has no args"))?;
        let enc = codec::encode(args)?;
        let env = self.opts.child_env(self.ctx.start_method())?;
        let stdio = self.opts.prepare_stdio()?;
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
            keys: keyring::snapshot(),
            env,
            stdio: stdio.which,
            cwd: None,
        };
        let mut fds = enc.fds.clone();
        fds.extend(stdio.raw_fds());
        let child = Arc::new(start::start(self.ctx.start_method(), boot, &fds)?);
        self.stdio = stdio.into_parent();
        me.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child.clone());
        self.child = Some(child);
        // The handles now live in the child; our copies would keep pipes open.
        self.args = None;
        Ok(())
    }

    fn started(&self) -> Result<&Arc<Child>> {
        if self.closed {
            return Err(closed_error());
        }
        self.child.as_ref().ok_or_else(not_started)
    }

    fn forget(&self, child: &Arc<Child>) {
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
    /// [`ErrorKind::InvalidState`](crate::ErrorKind::InvalidState) if not started or closed.
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
    /// [`ErrorKind::InvalidState`](crate::ErrorKind::InvalidState) if not started or closed.
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
    /// [`ErrorKind::InvalidState`](crate::ErrorKind::InvalidState) after [`close`](Process::close).
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

    /// The name (`Process-1`, or what [`name`](Process::name) set): Python's
    /// `p.name`. A `Process` is a builder, whose setter has the plain name
    /// (`name(..)`), so its getter is `get_name`, as `std::process::Command` has
    /// `arg(..)` and `get_args()` (see the crate's "Naming" section).
    ///
    /// # Examples
    ///
    /// ```
    /// fn noop(_: ()) {}
    /// let p = multiprocess::Process::new(noop, ());
    /// assert!(p.get_name().starts_with("Process-"));
    /// ```
    #[doc(alias = "name")]
    pub fn get_name(&self) -> &str {
        &self.name
    }

    /// Is the process daemonic? (Python's `p.daemon`.)
    ///
    /// # Examples
    ///
    /// ```
    /// fn noop(_: ()) {}
    /// assert!(!multiprocess::Process::new(noop, ()).is_daemon());
    /// ```
    #[doc(alias = "daemon")]
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }

    /// A pollable fd that becomes readable when the child ends (a pidfd): Python's
    /// `sentinel`, for [`crate::wait`] or your own event loop.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidState`](crate::ErrorKind::InvalidState) before start or after close.
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
    /// [`ErrorKind::InvalidState`](crate::ErrorKind::InvalidState) before start or after close.
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
    /// [`ErrorKind::InvalidState`](crate::ErrorKind::InvalidState) before start or after close.
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
    /// [`ErrorKind::InvalidState`](crate::ErrorKind::InvalidState) while the child still runs.
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

/// The child's environment and standard streams, as `std::process::Command` sets them
/// (see [`Stdio`] and the module `options` notes: the same under every start method).
impl<A> Process<A>
where
    A: Serialize + DeserializeOwned + 'static,
{
    /// Sets the environment variable `key` to `val` in the child (on top of this
    /// process's environment at [`start`](Process::start)).
    ///
    /// Under every start method the child sees this process's environment as it is
    /// when `start` is called, with these settings applied in order; a variable set
    /// after the fork server started reaches its later children too.
    ///
    /// # Errors
    ///
    /// [`start`](Process::start) fails with
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for an empty name,
    /// or a name with `=` or a NUL byte, or a value with a NUL byte.
    ///
    /// # Examples
    ///
    /// ```
    /// fn show(_: ()) { assert_eq!(std::env::var("GREETING").as_deref(), Ok("hi")); }
    /// multiprocess::init();
    /// let mut p = multiprocess::Process::new(show, ()).env("GREETING", "hi");
    /// p.start()?;
    /// p.join()?;
    /// assert_eq!(p.exitcode(), Some(0));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn env(mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> Self {
        self.opts.env(key.as_ref(), val.as_ref());
        self
    }

    /// Sets several variables (see [`env`](Process::env)).
    ///
    /// # Examples
    ///
    /// ```
    /// fn noop(_: ()) {}
    /// let p = multiprocess::Process::new(noop, ()).envs([("A", "1"), ("B", "2")]);
    /// # drop(p);
    /// ```
    pub fn envs<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self.opts.env(k.as_ref(), v.as_ref());
        }
        self
    }

    /// Removes the variable `key` from the child's environment.
    ///
    /// # Examples
    ///
    /// ```
    /// fn no_home(_: ()) { assert!(std::env::var_os("HOME").is_none()); }
    /// multiprocess::init();
    /// let mut p = multiprocess::Process::new(no_home, ()).env_remove("HOME");
    /// p.start()?;
    /// p.join()?;
    /// assert_eq!(p.exitcode(), Some(0));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.opts.env_remove(key.as_ref());
        self
    }

    /// Starts the child with an empty environment (then the later
    /// [`env`](Process::env) settings).
    ///
    /// # Examples
    ///
    /// ```
    /// fn only_one(_: ()) { assert_eq!(std::env::vars_os().count(), 1); }
    /// multiprocess::init();
    /// let mut p = multiprocess::Process::new(only_one, ()).env_clear().env("X", "1");
    /// p.start()?;
    /// p.join()?;
    /// assert_eq!(p.exitcode(), Some(0));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn env_clear(mut self) -> Self {
        self.opts.env_clear();
        self
    }

    /// The child's standard input (default: [`Stdio::inherit`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// use multiprocess::{Process, Stdio};
    /// fn shout(_: ()) {
    ///     let mut s = String::new();
    ///     std::io::stdin().read_line(&mut s).unwrap();
    ///     assert_eq!(s, "hey\n");
    /// }
    /// multiprocess::init();
    /// let mut p = Process::new(shout, ()).stdin(Stdio::piped());
    /// p.start()?;
    /// p.take_stdin().unwrap().write_all(b"hey\n")?;
    /// p.join()?;
    /// assert_eq!(p.exitcode(), Some(0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// A fork child given a stdin of its own reads only that, not what the parent's
    /// standard input had buffered (where the parent has no other thread: see
    /// [`StartMethod`](crate::StartMethod)):
    ///
    /// ```
    /// use std::io::Write;
    /// use multiprocess::{Builder, StartMethod, Stdio, get_context};
    /// fn line(_: ()) -> String {
    ///     let mut s = String::new();
    ///     std::io::stdin().read_line(&mut s).unwrap();
    ///     s
    /// }
    /// fn read_then_fork(_: ()) -> (String, String) {
    ///     let first = line(()); // "one\n"; "two\n" waits in the buffer
    ///     let fork = get_context(StartMethod::Fork);
    ///     let mut h = Builder::new().context(fork).stdin(Stdio::piped()).spawn(line, ()).unwrap();
    ///     h.take_stdin().unwrap().write_all(b"piped\n").unwrap();
    ///     (first, h.join().unwrap())
    /// }
    /// multiprocess::init();
    /// let spawn = get_context(StartMethod::Spawn);
    /// let mut h = Builder::new().context(spawn).stdin(Stdio::piped()).spawn(read_then_fork, ())?;
    /// h.take_stdin().unwrap().write_all(b"one\ntwo\n")?;
    /// assert_eq!(h.join()?, ("one\n".to_string(), "piped\n".to_string()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stdin(mut self, s: impl Into<Stdio>) -> Self {
        self.opts.set_stdio(0, s.into());
        self
    }

    /// The child's standard output (default: [`Stdio::inherit`]). See [`Stdio`].
    ///
    /// # Examples
    ///
    /// See [`Stdio`].
    pub fn stdout(mut self, s: impl Into<Stdio>) -> Self {
        self.opts.set_stdio(1, s.into());
        self
    }

    /// The child's standard error (default: [`Stdio::inherit`]); a panic's report goes
    /// there.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// use multiprocess::{Process, Stdio};
    /// fn boom(_: ()) { panic!("boom") }
    /// multiprocess::init();
    /// let mut p = Process::new(boom, ()).stderr(Stdio::piped());
    /// p.start()?;
    /// let mut err = String::new();
    /// p.take_stderr().unwrap().read_to_string(&mut err)?;
    /// p.join()?;
    /// assert!(err.contains("boom"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stderr(mut self, s: impl Into<Stdio>) -> Self {
        self.opts.set_stdio(2, s.into());
        self
    }

    /// Takes our end of the child's piped standard input (once, after `start`).
    ///
    /// # Examples
    ///
    /// See [`stdin`](Process::stdin).
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdio.stdin.take()
    }

    /// Takes our end of the child's piped standard output (once, after `start`).
    /// Read it to its end before [`join`](Process::join) if the child may write more
    /// than a pipe holds (64 KiB), or it blocks.
    ///
    /// # Examples
    ///
    /// See [`Stdio`].
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.stdio.stdout.take()
    }

    /// Takes our end of the child's piped standard error (once, after `start`).
    ///
    /// # Examples
    ///
    /// See [`stderr`](Process::stderr).
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.stdio.stderr.take()
    }
}

/// The async wait for a process's end.
impl<A> Process<A>
where
    A: Serialize + DeserializeOwned + 'static,
{
    /// Waits for the child to end (and reaps it): the async twin of
    /// [`join`](Process::join). Under any executor; with the `tokio` feature inside a
    /// tokio runtime, the wait is tokio's own (on the child's pidfd).
    ///
    /// The future does not borrow the process (it can be spawned as a task); after it
    /// is ready, [`exitcode`](Process::exitcode) tells how the child ended.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidState`](crate::ErrorKind::InvalidState) if not started or
    /// closed (when awaited).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     struct T(std::thread::Thread);
    /// #     impl std::task::Wake for T { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let w = std::task::Waker::from(std::sync::Arc::new(T(std::thread::current())));
    /// #     let mut cx = std::task::Context::from_waker(&w);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// fn exit_3(_: ()) { std::thread::sleep(std::time::Duration::from_millis(50)); std::process::exit(3) }
    /// multiprocess::init();
    /// let mut p = multiprocess::Process::new(exit_3, ());
    /// p.start()?;
    /// block_on(p.join_async())?;
    /// assert_eq!(p.exitcode(), Some(3));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn join_async(&self) -> ProcessJoin {
        ProcessJoin {
            child: Some(self.started().cloned()),
            exit: super::exit_async::ExitState::default(),
        }
    }
}

/// The future of [`Process::join_async`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct ProcessJoin {
    child: Option<Result<Arc<Child>>>,
    exit: super::exit_async::ExitState,
}

impl std::future::Future for ProcessJoin {
    type Output = Result<()>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<()>> {
        let this = self.get_mut();
        let child = match this.child.as_ref() {
            None => return std::task::Poll::Ready(Ok(())),
            Some(Err(e)) => {
                let e = e.duplicate();
                this.child = None;
                return std::task::Poll::Ready(Err(e));
            }
            Some(Ok(c)) => c,
        };
        if let std::task::Poll::Ready(r) = super::exit_async::poll_exit(child, cx, &mut this.exit) {
            r?;
            state()
                .children
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|c| !Arc::ptr_eq(c, child));
            this.child = None;
            return std::task::Poll::Ready(Ok(()));
        }
        std::task::Poll::Pending
    }
}
