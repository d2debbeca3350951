//! [`spawn`]: a process as a function call, and its [`JoinHandle`].

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::bootstrap::{Boot, Outcome, entry_process, entry_spawn};
use super::child::Child;
use super::exit_async::{self, ExitState};
use super::keyring::{self, Keys};
use super::options::{ChildOptions, ParentStdio};
use super::start;
use super::state::{self, state};
use super::{Context, StartMethod, default_context};
use crate::connection::{Connection, RecvState, Waitable};
use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use crate::wire::code::code_offset;
use crate::wire::codec;

/// Runs `f(args)` in a child process and returns a handle to its result: the Rust
/// way to use a process as a function call.
///
/// # Errors
///
/// As [`Process::start`](crate::Process::start).
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
        keys: Keys::default(), // a helper of ours, not the user's: no managers
        env: None,
        stdio: [false; 3],
        cwd: None,
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
    spawn_configured(ctx, f, args, None, ChildOptions::default())
}

/// [`spawn_with`] with a name and the environment and standard-stream settings of a
/// [`Builder`](super::Builder).
pub(crate) fn spawn_configured<A, R>(
    ctx: Context,
    f: fn(A) -> R,
    args: A,
    given_name: Option<String>,
    mut opts: ChildOptions,
) -> Result<JoinHandle<R>>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    let me = state::before_start()?;
    let (rx, tx) = crate::connection::pipe_simplex::<Outcome<R>>()?;
    let enc = codec::encode(&args)?;
    let (identity, name) = me.next_child();
    let name = given_name.unwrap_or(name);
    let env = opts.child_env(ctx.start_method())?;
    let stdio = opts.prepare_stdio()?;
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
        keys: keyring::snapshot(),
        env,
        stdio: stdio.which,
        cwd: None,
    };
    let mut fds = enc.fds.clone();
    fds.extend(stdio.raw_fds());
    fds.push(std::os::fd::AsRawFd::as_raw_fd(&tx.as_fd()));
    let child = Arc::new(start::start(ctx.start_method(), boot, &fds)?);
    drop(tx);
    let stdio = stdio.into_parent();
    drop(args);
    me.children
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(child.clone());
    Ok(JoinHandle {
        child,
        rx,
        joined: false,
        stdio,
        _r: PhantomData,
    })
}

/// The handle of a [`spawn`]ed child: join it for its return value.
pub struct JoinHandle<R> {
    child: Arc<Child>,
    rx: Connection<Outcome<R>>,
    /// The child's result was taken (by `join_timeout`).
    joined: bool,
    /// The pipe ends of its piped standard streams (see `Builder`).
    pub(super) stdio: ParentStdio,
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
                    self.child.name(),
                    self.child.pid
                ),
            )),
            other => other,
        }
    }

    fn finish(&mut self, deadline: Option<Instant>) -> Result<R> {
        if self.joined {
            return Err(Error::state(format!(
                "{} (pid {}) was already joined",
                self.child.name(),
                self.child.pid
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
        self.conclude(outcome)
    }

    /// Turns the child's outcome (or the failure to read it) into the join's result,
    /// once the child has exited or is about to (it has sent its outcome or closed the
    /// pipe): reaps it and forgets it.
    fn conclude(&mut self, outcome: Result<Outcome<R>>) -> Result<R> {
        self.joined = true;
        let wait_end = |c: &Child| c.poll_exit(None).ok().flatten().unwrap_or(255);
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

/// The `.await` of a [`JoinHandle`]: what the child's function returned, as
/// [`join`](JoinHandle::join) gives it.
///
/// It waits for the child's result on the handle's pipe, then for the child's exit on
/// its pidfd (never in a blocking call: a child that still runs exit handlers, or joins
/// its own children, keeps only this task waiting).
#[must_use = "futures do nothing unless awaited"]
pub struct JoinFuture<R> {
    handle: JoinHandle<R>,
    /// The result read from the pipe (or why none came), kept until the child exits.
    outcome: Option<Result<Outcome<R>>>,
    recv: RecvState,
    exit: ExitState,
}

impl<R> fmt::Debug for JoinFuture<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinFuture")
            .field("pid", &self.handle.child.pid)
            .field("returned", &self.outcome.is_some())
            .finish()
    }
}

// Nothing in it is pinned: the outcome is moved out by value.
impl<R> Unpin for JoinFuture<R> {}

impl<R: DeserializeOwned> std::future::Future for JoinFuture<R> {
    type Output = Result<R>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Result<R>> {
        let this = self.get_mut();
        if this.handle.joined {
            return Poll::Ready(this.handle.finish(Some(Instant::now())));
        }
        if this.outcome.is_none() {
            let f = match this.handle.rx.poll_frame(cx, &mut this.recv) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(f) => f,
            };
            this.outcome = Some(f.and_then(|f| f.decode()));
        }
        if exit_async::poll_exit(&this.handle.child, cx, &mut this.exit).is_pending() {
            return Poll::Pending;
        }
        let outcome = this.outcome.take().expect("read above");
        Poll::Ready(this.handle.conclude(outcome))
    }
}

/// `handle.await` in async code: the twin of [`JoinHandle::join`]. Under any executor;
/// with the `tokio` feature inside a tokio runtime, the waits are tokio's own.
///
/// # Errors
///
/// As [`join`](JoinHandle::join).
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
/// use multiprocess::ErrorKind;
/// fn div((a, b): (i32, i32)) -> i32 { a / b }
/// multiprocess::init();
/// let ok = multiprocess::spawn(div, (7, 2))?;
/// let bad = multiprocess::spawn(div, (1, 0))?;
/// assert_eq!(block_on(async { ok.await })?, 3);
/// assert_eq!(block_on(async { bad.await }).unwrap_err().kind(), ErrorKind::Panicked);
/// # Ok::<(), multiprocess::Error>(())
/// ```
impl<R: DeserializeOwned> std::future::IntoFuture for JoinHandle<R> {
    type Output = Result<R>;
    type IntoFuture = JoinFuture<R>;

    fn into_future(self) -> JoinFuture<R> {
        JoinFuture {
            handle: self,
            outcome: None,
            recv: RecvState::default(),
            exit: ExitState::default(),
        }
    }
}

impl<R: DeserializeOwned> Waitable for JoinHandle<R> {
    fn wait_fd(&self) -> Result<BorrowedFd<'_>> {
        Ok(self.child.pidfd.as_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::describe_exit;

    #[test]
    fn exits_and_signals_are_described_as_python_reports_them() {
        assert_eq!(describe_exit(0), "exited with code 0");
        assert_eq!(describe_exit(3), "exited with code 3");
        assert_eq!(describe_exit(-9), "was killed by signal 9 (SIGKILL)");
        assert_eq!(describe_exit(-11), "was killed by signal 11 (SIGSEGV)");
        assert_eq!(describe_exit(-40), "was killed by signal 40");
    }
}
