//! Who we are and who our relatives are: `current_process`, `parent_process`,
//! `active_children`, `cpu_count`.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use super::state::{self, state};
use crate::sys;

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
    /// Is this process daemonic? (Python's `daemon`.)
    #[doc(alias = "daemon")]
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
    info: &'static state::ParentInfo,
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
        match self.sentinel() {
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
        match self.sentinel() {
            Some(fd) => {
                sys::pidfd::wait_exit(fd.as_fd(), sys::deadline_after(timeout)).unwrap_or(true)
            }
            None => true,
        }
    }
    /// A pollable fd that becomes readable when the parent ends (it is opened on the
    /// first call; `None` only if no fd was left to open).
    pub fn sentinel(&self) -> Option<BorrowedFd<'_>> {
        self.info.pidfd()
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
    state().parent.as_ref().map(|info| ParentProcess { info })
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
            name: c.name(),
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
