//! Helpers shared by the integration tests: one test body per start method, process
//! table inspection through `/proc`, fd counting, and the fork server's pid.
//!
//! # Finding the fork server
//!
//! The fork server is a legitimate long-lived child of the test process. Its children
//! are ours too (sibling forks), so the process table does not tell which child is the
//! server: [`fork_server_pid`] starts one fork-server child (which starts the server if
//! none runs yet, so call it before taking an fd snapshot) and asks the crate.
//!
//! # Fork children and concurrent tests
//!
//! Under `cargo test`, tests run on threads of one process. A child made with the
//! `Fork` method inherits every fd of the parent at that moment, including the pipe
//! ends another test holds; the other test's "peer closed" would then wait for this
//! unrelated child to end. So every test takes [`method_lock`]: exclusively when it
//! forks (or inspects the whole process), shared otherwise. Under `cargo nextest`
//! (one process per test) the lock is uncontended.

#![allow(dead_code)]

pub(crate) mod objects;

use std::os::unix::process::parent_id;
use std::sync::mpsc;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use multiprocess::{Connection, StartMethod, get_context};

#[cfg(feature = "redis")]
pub(crate) mod cluster;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A generous bound for every wait that should end: a bug fails the test, not hangs it.
pub(crate) const LONG: Duration = Duration::from_secs(30);

/// How long a process that should be gone may take to disappear.
pub(crate) const GRACE: Duration = Duration::from_secs(10);

/// Writes one test body (`fn name(method: StartMethod)`) as three tests,
/// `name::fork`, `name::spawn` and `name::forkserver`, each holding [`method_lock`]
/// (or [`serial`] with `serial:` first). With `watchdog` first (`watchdog: a, b` or
/// `watchdog, serial: a`), each body also runs under a [`watchdog`].
#[allow(unused_macros)]
macro_rules! for_each_method {
    (watchdog, serial: $($name:ident),+ $(,)?) => {
        for_each_method!(@ true, true; $($name),+);
    };
    (watchdog: $($name:ident),+ $(,)?) => {
        for_each_method!(@ false, true; $($name),+);
    };
    (serial: $($name:ident),+ $(,)?) => {
        for_each_method!(@ true, false; $($name),+);
    };
    ($($name:ident),+ $(,)?) => {
        for_each_method!(@ false, false; $($name),+);
    };
    (@test $serial:literal, $watchdog:literal, $name:ident, $test:ident, $m:ident) => {
        #[test]
        fn $test() {
            crate::common::guarded($serial, $watchdog, multiprocess::StartMethod::$m, super::$name)
        }
    };
    (@ $serial:literal, $watchdog:literal; $($name:ident),+) => {$(
        mod $name {
            for_each_method!(@test $serial, $watchdog, $name, fork, Fork);
            for_each_method!(@test $serial, $watchdog, $name, spawn, Spawn);
            for_each_method!(@test $serial, $watchdog, $name, forkserver, ForkServer);
        }
    )+};
}

static LOCK: RwLock<()> = RwLock::new(());

/// A guard from [`method_lock`], [`serial`] or [`shared`].
#[derive(Debug)]
pub(crate) enum Guard {
    /// Alone in this test process.
    Exclusive(RwLockWriteGuard<'static, ()>),
    /// Alongside other shared tests.
    Shared(RwLockReadGuard<'static, ()>),
}

/// For tests that fork, or look at the whole process (fd counts, every child): no
/// other test of this binary runs meanwhile.
pub(crate) fn serial() -> Guard {
    Guard::Exclusive(LOCK.write().unwrap_or_else(|e| e.into_inner()))
}

/// For tests that neither fork nor inspect the whole process.
pub(crate) fn shared() -> Guard {
    Guard::Shared(LOCK.read().unwrap_or_else(|e| e.into_inner()))
}

/// [`serial`] for `Fork`, [`shared`] for the others (see the module docs).
pub(crate) fn method_lock(method: StartMethod) -> Guard {
    match method {
        StartMethod::Fork => serial(),
        _ => shared(),
    }
}

/// A value whose serialization always fails (and which deserializes from `()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Poison;

impl Serialize for Poison {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("Poison refuses to be serialized"))
    }
}

impl<'de> Deserialize<'de> for Poison {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d).map(|()| Poison)
    }
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) pid: u32,
    /// `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
    pub(crate) state: char,
    pub(crate) ppid: u32,
}

/// Reads `/proc/<pid>/stat`; `None` if there is no such process.
pub(crate) fn stat(pid: u32) -> Option<Stat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses; cut at the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let mut it = rest.split_whitespace();
    let state = it.next()?.chars().next()?;
    let ppid = it.next()?.parse().ok()?;
    Some(Stat { pid, state, ppid })
}

/// Every process whose parent is `ppid` (zombies included).
pub(crate) fn children_of(ppid: u32) -> Vec<Stat> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(st) = stat(pid)
            && st.ppid == ppid
        {
            out.push(st);
        }
    }
    out
}

/// Our own children (zombies included).
pub(crate) fn my_children() -> Vec<Stat> {
    children_of(std::process::id())
}

/// The pid of our fork server, starting it if needed: a `ForkServer` child reports
/// its parent, which is the server.
pub(crate) fn fork_server_pid() -> u32 {
    fn report_ppid(_: ()) -> u32 {
        parent_id()
    }
    let ppid = get_context(StartMethod::ForkServer)
        .spawn(report_ppid, ())
        .expect("start a fork-server child")
        .join_timeout(LONG)
        .expect("join the fork-server child");
    assert_eq!(ppid, std::process::id(), "a fork-server child is our own");
    let server = multiprocess::__fork_server_pid().expect("the fork server runs");
    let st = stat(server).expect("the fork server runs");
    assert_eq!(st.ppid, std::process::id(), "the fork server is our child");
    server
}

/// Is `pid` finished as far as we are concerned: no such process, or a dead process
/// (zombie) that is neither ours nor our fork server's to reap (for example an orphan
/// reparented to an init that reaps lazily)?
pub(crate) fn is_gone(pid: u32) -> bool {
    match stat(pid) {
        None => true,
        Some(st) if matches!(st.state, 'Z' | 'X') => {
            let me = std::process::id();
            let parent_is_ours =
                st.ppid == me || stat(st.ppid).is_some_and(|p| p.ppid == me && p.state != 'Z');
            !parent_is_ours
        }
        Some(_) => false,
    }
}

/// Waits until `pid` [`is_gone`]; panics with its state after [`GRACE`].
pub(crate) fn assert_gone(pid: u32) {
    let deadline = Instant::now() + GRACE;
    while !is_gone(pid) {
        if Instant::now() > deadline {
            panic!(
                "process {pid} is still there after {GRACE:?}: {:?} (we are {})",
                stat(pid),
                std::process::id()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Is `pid` running (present and not a zombie)?
pub(crate) fn is_running(pid: u32) -> bool {
    stat(pid).is_some_and(|s| !matches!(s.state, 'Z' | 'X'))
}

/// Waits until we have no child but the fork server `server` (none running, no
/// zombie) and the fork server has no child either. Only meaningful in a test that
/// holds [`serial`].
pub(crate) fn assert_quiescent(server: Option<u32>) {
    let deadline = Instant::now() + GRACE;
    loop {
        let mine: Vec<Stat> = my_children()
            .into_iter()
            .filter(|c| Some(c.pid) != server)
            .collect();
        let served = server.map(children_of).unwrap_or_default();
        if mine.is_empty() && served.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "processes left behind after {GRACE:?}: our children {mine:?}, the fork \
                 server's children {served:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The number of open fds of this process.
pub(crate) fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

/// The fds of this process, with what they point at, for failure messages.
pub(crate) fn fd_list() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .flatten()
        .map(|e| {
            let target = std::fs::read_link(e.path())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            format!("{}->{target}", e.file_name().to_string_lossy())
        })
        .collect();
    v.sort();
    v
}

/// Asserts that `e` is what a receiver may report for hostile bytes: a refused frame
/// (`Deserialize`, `Protocol`) or the writer's close (`Disconnected`), never anything
/// else (an `Io` error, a wrong kind that hides a misread).
pub(crate) fn assert_hostile_refusal(e: &multiprocess::Error) {
    use multiprocess::ErrorKind;
    assert!(
        matches!(
            e.kind(),
            ErrorKind::Deserialize | ErrorKind::Protocol | ErrorKind::Disconnected
        ),
        "{e}"
    );
}

/// Sends `sig` to `pid` with `kill(2)`.
#[allow(unsafe_code)]
pub(crate) fn kill(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory effects.
    let r = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(
        r,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// A path in the temp dir, unique to this test process and call, removed on drop.
#[derive(Debug)]
pub(crate) struct TempPath(pub(crate) std::path::PathBuf);

impl TempPath {
    pub(crate) fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        TempPath(std::env::temp_dir().join(format!(
            "multiprocess-test-{}-{tag}-{n}",
            std::process::id()
        )))
    }

    pub(crate) fn as_string(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `f`; returns its value and how long it took.
pub(crate) fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

/// Points this process's stderr at the file `path` (created or truncated), so that a
/// child's panic report can be read back by the parent.
#[allow(unsafe_code)]
pub(crate) fn redirect_stderr(path: &str) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::create(path).expect("create the stderr file");
    // SAFETY: dup2 onto fd 2 of an fd we own; no memory effects.
    let r = unsafe { libc::dup2(f.as_raw_fd(), 2) };
    assert_eq!(r, 2, "dup2: {}", std::io::Error::last_os_error());
}

/// A test body that runs longer than this fails (instead of hanging).
pub(crate) const WATCHDOG: Duration = Duration::from_secs(60);

/// Runs `body(method)` under [`serial`] (`alone`) or [`method_lock`], and under a
/// [`watchdog`] if `watched`: what the tests written by `for_each_method!` do.
pub(crate) fn guarded(alone: bool, watched: bool, method: StartMethod, body: fn(StartMethod)) {
    let _g = if alone { serial() } else { method_lock(method) };
    if watched {
        watchdog(move || body(method));
    } else {
        body(method);
    }
}

/// Runs `f` on another thread and fails if it does not end within [`WATCHDOG`]; a
/// panic in `f` is this test's panic.
pub(crate) fn watchdog(f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::Builder::new()
        .name("test-body".into())
        .spawn(move || {
            f();
            let _ = tx.send(());
        })
        .expect("start the test body's thread");
    match rx.recv_timeout(WATCHDOG) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(p) = h.join() {
                std::panic::resume_unwind(p)
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("the test body did not finish within {WATCHDOG:?}: it hangs")
        }
    }
}

/// A bound for a result that should come soon (well under the nextest limit).
pub(crate) const BOUND: Duration = Duration::from_secs(15);

/// A bound for a result that should be there already (after `terminate`, ...).
pub(crate) const SOON: Duration = Duration::from_secs(5);

/// Polls `cond` every 5 ms for at most `limit`; whether it became true.
pub(crate) fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Calls `attempt` every 5 ms until it gives a value, and returns it; fails the test
/// with `what` if `limit` passes first.
pub(crate) fn within<T>(limit: Duration, what: &str, mut attempt: impl FnMut() -> Option<T>) -> T {
    let mut got = None;
    assert!(
        eventually(limit, || {
            got = attempt();
            got.is_some()
        }),
        "{what}"
    );
    got.expect("eventually saw it")
}

// ------------------------------------------- small functions run in children

/// How long a blocked child waits for its parent before giving up on its own.
pub(crate) const CHILD_PATIENCE: Duration = Duration::from_secs(60);

/// Waits (at most [`CHILD_PATIENCE`]) until the parent sends or drops its end.
pub(crate) fn wait_for_parent(conn: Connection<()>) {
    let _ = conn.recv_timeout(CHILD_PATIENCE);
}

/// Does nothing.
pub(crate) fn noop(_: ()) {}

pub(crate) fn double(x: u32) -> u32 {
    2 * x
}

pub(crate) fn square(x: u64) -> u64 {
    x * x
}

/// Sleeps `ms` milliseconds and returns `ms`.
pub(crate) fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}
