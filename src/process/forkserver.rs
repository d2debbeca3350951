//! The fork server: a single-threaded process, spawned once per process that uses the
//! `ForkServer` method, that forks children on request.
//!
//! # Protocol
//!
//! The server is a spawned child of ours; its spawn control socket stays open as the
//! request channel. Only we hold the other end (a private `socketpair`, close-on-exec),
//! so the channel is authenticated by construction: no address to connect to, no key
//! to leak. Requests are serialized by a mutex on our side.
//!
//! ```text
//! client                                         server
//!   | frame: Boot bytes; fds = the child's handles        |
//!   |---------------------------------------------------->|  fork (sibling or own)
//!   | frame: Ok((pid, sibling)) | Err(msg); fds = ...     |  child: runs the task
//!   |<----------------------------------------------------|
//!   sibling, fds = []: the child is ours; we open its pidfd and reap it with
//!     waitid(P_PIDFD), as a forked child's
//!   own (watcher mode), fds = [pidfd, status]:           |  child's pidfd readable -> waitid
//!   |  status socket: 4-byte exit code                    |---> (child's own, or the server's)
//! ```
//!
//! A request costs the client no socket of its own: in the sibling mode there is no
//! status to report, and in the watcher mode the server makes the status socket pair
//! and hands us our end with the answer.
//!
//! # Environment
//!
//! Each request's boot message carries the client's whole environment as it is at
//! `start()` (and the child's standard streams, as fds), and the child has it before
//! its task: the server's own environment is from its start, and a variable the client
//! set since must reach the child all the same (see `options`). The server works out
//! the changes from its own environment to the one asked for, once per distinct
//! environment (`EnvChanges`), and the child applies only those: usually none.
//! Replacing the whole environment in every child (a map, a copy of every variable, a
//! lookup of each) cost 130 of a 530 us start+join here: the child's first writes to
//! heap pages it shares with the server are page faults.
//!
//! # Lifetime
//!
//! The server dies with us (`PR_SET_PDEATHSIG` from a long-lived thread, and end of
//! stream on its channel). If it dies while we live (killed), the next start notices
//! (the request fails or its pidfd is readable) and starts a new one.
//!
//! Its children are *our* children: the server forks them with `CLONE_PARENT`
//! ([`sys::process::fork_sibling`]), so their parent is the server's parent, the
//! long-lived thread of ours that started the server. A child then arms
//! `PR_SET_PDEATHSIG` and checks `getppid()` exactly as a forked child does, we reap it
//! with `waitid(P_PIDFD)` (no status socket), and a killed server changes nothing for
//! it. This is the *sibling* mode.
//!
//! Where the server cannot make sibling forks (it has threads of the program's own, so
//! only glibc's `fork`, which takes the C library's locks around the fork, is safe;
//! `clone3` is missing or filtered; [`WATCH_ENV`] is set), it forks its children as its
//! own: the *watcher* mode. Each child (unless started with `die_with_parent(false)`)
//! then watches us itself: a thread of the child polls a pidfd of ours (opened by the
//! server at its start, while we were its parent: it cannot name a recycled pid) and
//! `SIGKILL`s the child once it is readable (`sys::process::die_with_client`). The
//! server reaps it and sends its exit code on the request's status socket.
//!
//! ## Why sibling forks (design note)
//!
//! Measured here (2 cores, a VM whose fork+wait floor is 150-300 us), the watcher thread
//! cost 150-250 us of a 600-750 us start+join: a thread, its stack and, at its first
//! allocation, a malloc arena of its own. A sibling fork costs nothing beyond the fork,
//! and gives the fork server's children the lifetime of every other child: they follow
//! the thread that started the server, as forked children follow the thread that
//! forked them. If that thread exits before the process does (only a raw
//! `pthread_exit` of the main thread does that), a child that had armed its signal dies
//! with it, and one that had not is handed to another of our threads and dies with
//! the last: never later than us.
//!
//! ## Why not the server's death (design note)
//!
//! The children used to learn of our death from the server's: a parent-death signal
//! from the server (`SIGRTMIN+7`) whose handler polled our pidfd once, without waiting,
//! and died only if we were gone. Two holes:
//!
//! * *A race.* The server's own parent-death signal fires when the *thread* of ours
//!   that started it exits. When we die, that thread can exit (and the server die, and
//!   the children be told) before our pidfd is readable, which happens only once the
//!   last of our threads is gone. The child saw us alive and survived, for good:
//!   observed in 4 of 32 runs under load, and nearly always when the dying process has
//!   busy threads (`tests/lifetime.rs`, `forkserver_children_never_survive_parent_stress`).
//!   Waiting in the handler (bounded) would have narrowed it, not closed it, and would
//!   stall the task whenever the server alone is killed.
//! * *A killed server.* If the server alone was killed, its children saw us alive and
//!   ran on, but nobody was left to tell them when we died later.
//!
//! Both modes close both: a sibling child's parent-death signal follows our thread,
//! not the server, and a watcher child's pidfd is readable exactly when the whole
//! process is gone, whatever the server does. Alternatives weighed for the watcher
//! mode: the server waiting for our pidfd and then killing its children (closes the
//! race, but not the killed-server case, and a server stuck in a request would delay
//! it); a guardian process forked from the signal handler when the server dies (no
//! thread, but it inherits every fd of the child, which would have to be closed, and it
//! becomes the child's child); making us a child subreaper (changes our semantics for
//! unrelated orphans). If the watcher thread cannot be created, the child reports it
//! and exits with 1 rather than run a task that might outlive us.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::bootstrap::{self, Boot, EntryCtx};
use super::child::{Child, Reap};
use super::keyring::Keys;
use super::options::Env;
use super::spawn::{SPAWN_ACK_TIMEOUT, start_spawn};
use super::state::{PerProcess, state};
use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use crate::wire::code::code_offset;
use crate::wire::{codec, frame};

/// Our connection to our fork server.
#[derive(Debug)]
struct ServerClient {
    conn: OwnedFd,
    server: Child,
}

impl ServerClient {
    fn alive(&self) -> bool {
        matches!(self.server.poll_exit(Some(Instant::now())), Ok(None))
    }
}

/// This process's fork server, once started (a forked child starts its own).
static SERVER: PerProcess<Option<ServerClient>> = PerProcess::new();

fn start_server() -> Result<ServerClient> {
    let me = state();
    let boot = Boot {
        entry: code_offset(entry_server as *const ()),
        func: 0,
        args: Vec::new(),
        nfds: 0,
        result: false,
        name: format!("ForkServer-{}", me.pid),
        identity: me.identity.clone(),
        daemon: true,
        parent_pid: me.pid,
        parent_name: me.name.clone(),
        die_with_parent: true,
        start_method: None,
        keys: Keys::default(), // each request carries its child's own
        env: None,
        stdio: [false; 3],
        cwd: None,
    };
    let bytes = codec::encode(&boot)?.bytes;
    let (server, conn) = start_spawn(&bytes, &[], None, boot.name.clone(), true)?;
    Ok(ServerClient { conn, server })
}

/// The pid of this process's fork server, if one is running (none is started).
pub(crate) fn server_pid() -> Option<u32> {
    let guard = SERVER.get().lock().unwrap_or_else(|e| e.into_inner());
    guard.as_ref().filter(|c| c.alive()).map(|c| c.server.pid)
}

/// Asks our fork server (started or restarted as needed) for a child.
pub(crate) fn start_served(
    boot: &[u8],
    fds: &[BorrowedFd<'_>],
    name: String,
    daemon: bool,
) -> Result<Child> {
    let mut guard = SERVER.get().lock().unwrap_or_else(|e| e.into_inner());
    let mut last_err = None;
    for _attempt in 0..2 {
        if !guard.as_ref().is_some_and(ServerClient::alive) {
            *guard = None; // drops (and so reaps) a dead server
            *guard = Some(start_server()?);
        }
        let client = guard.as_ref().expect("just set");
        // No spin for the answer: it comes after a fork (100-300 us here), and on a
        // small machine a spinning client takes the CPU the server forks on.
        let reply = frame::send_parts(client.conn.as_fd(), boot, fds).and_then(|()| {
            frame::recv_spin(
                client.conn.as_fd(),
                Some(Instant::now() + SPAWN_ACK_TIMEOUT),
                1 << 20,
                Duration::ZERO,
            )
        });
        match reply {
            Ok(Some(f)) => {
                let mut fds = f.fds.into_iter();
                let answer: Answer = codec::decode(&f.body, Vec::new())?;
                return match (answer, fds.next(), fds.next()) {
                    // Our own child (see "Lifetime"): an unreaped child's pid cannot
                    // be reused, so opening its pidfd here is race-free.
                    (Ok((pid, true)), None, None) => {
                        let pidfd =
                            sys::pidfd::open(pid).map_err(|e| Error::io("pidfd_open", e))?;
                        Ok(Child::new(pid, pidfd, name, daemon, Reap::Direct))
                    }
                    (Ok((pid, false)), Some(pidfd), Some(status)) => {
                        let reap = Reap::Served(Mutex::new(Some(status)));
                        Ok(Child::new(pid, pidfd, name, daemon, reap))
                    }
                    (Err(msg), _, _) => Err(Error::new(
                        ErrorKind::Io,
                        format!("the fork server could not fork: {msg}"),
                    )),
                    (Ok(_), _, _) => Err(Error::new(
                        ErrorKind::Protocol,
                        "the fork server's answer carried the wrong handles",
                    )),
                };
            }
            Ok(None) => {
                // A hung server: replace it.
                let _ = client.server.signal(sys::process::SIGKILL);
                last_err = Some(Error::timeout("waiting for the fork server"));
                *guard = None;
            }
            Err(e) if matches!(e.kind(), ErrorKind::Disconnected | ErrorKind::Io) => {
                // It died under us: restart it and try once more.
                let _ = client
                    .server
                    .poll_exit(Some(Instant::now() + Duration::from_secs(5)));
                last_err = Some(e);
                *guard = None;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| Error::new(ErrorKind::Io, "the fork server failed")))
}

/// The fork server's main loop (an entry, run in the spawned server process).
fn entry_server(cx: EntryCtx) -> i32 {
    let Some(ctrl) = cx.ctrl else { return 1 };
    let client_pid = sys::process::getppid();
    let client_pidfd = match sys::pidfd::open(client_pid) {
        Ok(fd) if sys::process::getppid() == client_pid => fd,
        _ => return 0, // the client is already gone
    };
    // Each child's pidfd and status socket. No SIGCHLD: in a test binary this loop runs
    // on one of libtest's threads, and a process-directed signal may be delivered to
    // another thread that does not block it. A pidfd per child is exact and needs no
    // signal at all.
    let mut children: HashMap<u32, (OwnedFd, OwnedFd)> = HashMap::new();
    let mut sibling = sibling_forks();
    let mut env_changes = EnvChanges::default();
    loop {
        let mut fds = vec![ctrl.as_raw_fd()];
        let pids: Vec<u32> = children.keys().copied().collect();
        fds.extend(pids.iter().map(|p| children[p].0.as_raw_fd()));
        let ready = match sys::poll::wait_any(&fds, None) {
            Ok(r) => r,
            Err(_) => return 1,
        };
        for &i in ready.iter().filter(|&&i| i > 0) {
            let pid = pids[i - 1];
            if let Some((pidfd, status)) = children.remove(&pid) {
                let code = sys::pidfd::try_reap(pidfd.as_fd())
                    .ok()
                    .flatten()
                    .unwrap_or(255);
                let _ = sys::socket::send_all(status.as_fd(), &[&code.to_le_bytes()], &[]);
            }
        }
        if ready.contains(&0) {
            let f = match frame::recv(ctrl.as_fd(), None, 1 << 40) {
                Ok(Some(f)) => f,
                // The client closed its end (it exited): so do we.
                Ok(None) | Err(_) => return 0,
            };
            let mut boot: Boot = match codec::decode(&f.body, Vec::new()) {
                Ok(b) => b,
                Err(e) => {
                    let _ = reply(&ctrl, Err(e.to_string()), &[]);
                    continue;
                }
            };
            let fds = f.fds;
            // The child's environment, as changes to ours (see "Environment").
            let env = boot
                .env
                .take()
                .map(|wanted| env_changes.for_request(wanted));
            if let Some(how) = sibling {
                #[allow(unsafe_code)]
                // SAFETY: `how` was probed on this thread of this process, which had
                // no other thread then (but libtest's idle main thread, see
                // `sibling_forks`) and starts none; the child only runs `run_child`,
                // which ends with `_exit`.
                match unsafe { sys::process::fork_sibling(&how) } {
                    Ok(sys::process::Forked::Child) => {
                        drop((ctrl, children, client_pidfd));
                        apply_env(env);
                        if boot.die_with_parent {
                            // Our parent is now the client (the thread that started
                            // the server, a long-lived one), as for a forked child.
                            sys::process::die_with_parent(boot.parent_pid);
                        }
                        bootstrap::run_child(&mut boot, fds, None, None)
                    }
                    Ok(sys::process::Forked::Parent(pid)) => {
                        drop(fds);
                        let _ = reply(&ctrl, Ok((pid, true)), &[]);
                        continue;
                    }
                    // Refused (no clone3 or filtered, a container's init): plain
                    // forks from now on, this request included.
                    Err(e) if e.kind() == std::io::ErrorKind::Unsupported => sibling = None,
                    Err(e) => {
                        let _ = reply(&ctrl, Err(format!("fork: {e}")), &[]);
                        continue;
                    }
                }
            }
            // The client's end goes back with the answer; the child and we write.
            let (theirs, status) = match sys::socket::pair() {
                Ok(p) => p,
                Err(e) => {
                    let _ = reply(&ctrl, Err(format!("socketpair: {e}")), &[]);
                    continue;
                }
            };
            #[allow(unsafe_code)]
            // SAFETY: this process is single-threaded in normal binaries (and only
            // libtest's idle threads exist in test binaries); the child only runs
            // `run_child`, which ends with `_exit`.
            match unsafe { sys::process::fork() } {
                Ok(sys::process::Forked::Child) => {
                    drop((ctrl, children, theirs));
                    // Before the watcher thread starts: no other thread yet.
                    apply_env(env);
                    if boot.die_with_parent {
                        if let Err(e) = sys::process::die_with_client(client_pidfd) {
                            // Never run a task that could outlive its parent.
                            report!(
                                "multiprocess: a fork-server child cannot watch its parent: {e}"
                            );
                            sys::process::exit_now(1);
                        }
                    } else {
                        drop(client_pidfd);
                    }
                    bootstrap::run_child(&mut boot, fds, None, Some(status))
                }
                Ok(sys::process::Forked::Parent(pid)) => {
                    drop(fds);
                    match sys::pidfd::open(pid) {
                        Ok(pidfd) => {
                            let _ =
                                reply(&ctrl, Ok((pid, false)), &[pidfd.as_fd(), theirs.as_fd()]);
                            children.insert(pid, (pidfd, status));
                        }
                        Err(e) => {
                            let _ = reply(&ctrl, Err(format!("pidfd_open: {e}")), &[]);
                        }
                    }
                }
                Err(e) => {
                    let _ = reply(&ctrl, Err(format!("fork: {e}")), &[]);
                }
            }
        }
    }
}

/// Set (to anything) in the environment of the process that starts a fork server, to
/// make the server fork its children itself, each watching its client with a thread, as
/// it does where sibling forks are not possible (see "Lifetime"). For tests of that
/// path, and a way out should a system refuse sibling forks in a way we do not detect.
pub(crate) const WATCH_ENV: &str = "MULTIPROCESS_FORKSERVER_WATCH";

/// Whether this server makes sibling forks (see "Lifetime"): `None` in a server with
/// threads of the program's own, where only glibc's `fork` is safe, or when told so by
/// [`WATCH_ENV`]. Under libtest (a test binary's child entry) the server runs on the
/// test's thread and libtest's main thread only waits for it, so two threads are fine.
fn sibling_forks() -> Option<sys::process::SiblingFork> {
    if std::env::var_os(WATCH_ENV).is_some() {
        return None;
    }
    let libtest = std::thread::current().name() == Some(bootstrap::TEST_ENTRY);
    sys::process::SiblingFork::probe(if libtest { 2 } else { 1 })
}

/// The changes that make the server's environment a request's, for the last
/// environment asked for: consecutive requests nearly always ask for the same one,
/// and the server's own never changes, so it is worked out once (in the server, whose
/// memory is warm) and the children, copies of the server, find it ready.
#[derive(Default)]
struct EnvChanges {
    last: Option<(Env, sys::process::EnvDiff)>,
}

impl EnvChanges {
    fn for_request(&mut self, wanted: Env) -> &sys::process::EnvDiff {
        if self.last.as_ref().is_none_or(|(env, _)| *env != wanted) {
            let vars: Vec<(OsString, OsString)> = wanted
                .iter()
                .map(|(k, v)| (OsString::from_vec(k.clone()), OsString::from_vec(v.clone())))
                .collect();
            self.last = Some((wanted, sys::process::env_diff(&vars)));
        }
        &self.last.as_ref().expect("just set").1
    }
}

/// In a new child of the server, before anything else runs: its environment becomes
/// the one its request asked for.
fn apply_env(changes: Option<&sys::process::EnvDiff>) {
    if let Some(d) = changes.filter(|d| !d.is_empty()) {
        #[allow(unsafe_code)]
        // SAFETY: a new child, single-threaded until its watcher or task starts.
        unsafe {
            d.apply()
        };
    }
}

/// The server's answer to a request: the child's pid and whether it is the client's
/// own child (a sibling fork: the answer carries no handle, the client opens the
/// child's pidfd and reaps it), or else the server's (the answer carries the child's
/// pidfd and the client's end of its status socket); or why there is no child.
type Answer = std::result::Result<(u32, bool), String>;

fn reply(ctrl: &OwnedFd, answer: Answer, fds: &[BorrowedFd<'_>]) -> Result<()> {
    let bytes = codec::encode(&answer)?.bytes;
    frame::send_parts(ctrl.as_fd(), &bytes, fds)
}
