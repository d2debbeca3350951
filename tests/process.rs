//! `Process` and `spawn` conformance to Python's `Process`, under every start method:
//! lifecycle, exit codes, names and process trees, daemons, `close()`, `JoinHandle`
//! outcomes, values that fail to serialize, and children's fd tables.
//!
//! Children block on a pipe to the test rather than sleeping: if a test fails and drops
//! its end, its children see `Disconnected` and end, so nothing lingers.

multiprocess::test_support!();

#[macro_use]
mod common;

use std::time::Duration;

use multiprocess::{
    Connection, DEFAULT_START_METHOD, ErrorKind, Process, StartMethod, active_children, cpu_count,
    current_process, get_all_start_methods, get_context, get_start_method, parent_process, pipe,
};
use serde::{Deserialize, Serialize};

use common::{
    CHILD_PATIENCE, LONG, Poison, TempPath, assert_gone, fd_count, noop, redirect_stderr, square,
    timed, wait_for_parent,
};

// ---------------------------------------------------------------- children

type Echoed = (u32, String, Vec<u8>);

/// Sends its args back, then waits until the parent drops its end.
fn echo_args_then_wait((conn, n, s, v): (Connection<Echoed>, u32, String, Vec<u8>)) {
    conn.send(&(n, s, v)).unwrap();
    let _ = conn.recv_timeout(CHILD_PATIENCE);
}

/// Waits until the parent drops its end (or sends something).
fn noop_ret(_: ()) -> u32 {
    7
}

fn exit_with(n: i32) {
    std::process::exit(n)
}

fn panic_into((stderr_path, msg): (String, String)) {
    redirect_stderr(&stderr_path);
    panic!("{msg}")
}

#[allow(unsafe_code)]
fn raise_signal(sig: i32) {
    // SAFETY: raise(3) has no memory effects; the default action ends the process.
    unsafe { libc::raise(sig) };
    std::thread::sleep(CHILD_PATIENCE);
}

#[derive(Debug, Serialize, Deserialize)]
struct Identity {
    name: String,
    pid: u32,
    os_pid: u32,
    os_ppid: u32,
    identity: Vec<u32>,
    daemon: bool,
    parent: Option<(u32, String, bool)>,
}

fn report_identity(conn: Connection<Identity>) {
    let me = current_process();
    let parent = parent_process().map(|p| (p.pid(), p.name().to_string(), p.is_alive()));
    conn.send(&Identity {
        name: me.name().to_string(),
        pid: me.pid(),
        os_pid: std::process::id(),
        os_ppid: std::os::unix::process::parent_id(),
        identity: me.identity().to_vec(),
        daemon: me.is_daemon(),
        parent,
    })
    .unwrap();
}

#[derive(Debug, Serialize, Deserialize)]
struct TreeReport {
    middle_name: String,
    middle_pid: u32,
    middle_method: StartMethod,
    planned_leaf_name: String,
    second_leaf_name: String,
    leaf_name: String,
    leaf_identity: Vec<u32>,
    leaf_parent_name: String,
    leaf_parent_pid: u32,
    leaf_exitcode: Option<i32>,
}

/// Starts a grandchild with the default context (inherited from the test's context).
fn tree_middle(conn: Connection<TreeReport>) {
    let (here, there) = pipe::<(String, Vec<u32>, String, u32)>().unwrap();
    let mut leaf = Process::new(tree_leaf, there);
    let planned = leaf.get_name().to_string();
    leaf.start().unwrap();
    let second = Process::new(noop, ());
    let (leaf_name, leaf_identity, leaf_parent_name, leaf_parent_pid) =
        here.recv_timeout(LONG).unwrap();
    assert!(leaf.join_timeout(LONG).unwrap());
    conn.send(&TreeReport {
        middle_name: current_process().name().to_string(),
        middle_pid: std::process::id(),
        middle_method: get_start_method(),
        planned_leaf_name: planned,
        second_leaf_name: second.get_name().to_string(),
        leaf_name,
        leaf_identity,
        leaf_parent_name,
        leaf_parent_pid,
        leaf_exitcode: leaf.exitcode(),
    })
    .unwrap();
}

fn tree_leaf(conn: Connection<(String, Vec<u32>, String, u32)>) {
    let me = current_process();
    let parent = parent_process().unwrap();
    conn.send(&(
        me.name().to_string(),
        me.identity().to_vec(),
        parent.name().to_string(),
        parent.pid(),
    ))
    .unwrap();
}

/// (am I daemonic, error of Process::start, error of spawn)
type DaemonReport = (bool, String, String);

fn daemon_tries(conn: Connection<DaemonReport>) {
    let daemonic = current_process().is_daemon();
    let e1 = match Process::new(noop, ()).start() {
        Ok(()) => "started".to_string(),
        Err(e) => format!("{:?}", e.kind()),
    };
    let e2 = match multiprocess::spawn(noop_ret, ()) {
        Ok(_) => "started".to_string(),
        Err(e) => format!("{:?}", e.kind()),
    };
    conn.send(&(daemonic, e1, e2)).unwrap();
}

fn panics_with((stderr_path, msg): (String, String)) -> u64 {
    redirect_stderr(&stderr_path);
    panic!("{msg}")
}

fn exits_with(n: i32) -> u64 {
    std::process::exit(n)
}

fn blocks(conn: Connection<()>) -> u64 {
    let _ = conn.recv_timeout(CHILD_PATIENCE);
    5
}

fn returns_poison(_: ()) -> Poison {
    Poison
}

fn takes_poison(_: (Connection<()>, Poison)) {}

fn poison_to_u64(_: Poison) -> u64 {
    0
}

/// Reports how many fds this child has, then waits for the parent.
fn report_fd_count((conn, hold): (Connection<usize>, Connection<()>)) {
    conn.send(&fd_count()).unwrap();
    let _ = hold.recv_timeout(CHILD_PATIENCE);
}

// ---------------------------------------------------------------- tests

for_each_method!(
    lifecycle,
    terminate_and_kill,
    exit_codes,
    names_and_parent,
    process_tree_names,
    daemon_cannot_start_children,
    close_rules,
    spawn_handle_outcomes,
    unserializable_args,
    hundred_terminated,
    settings_after_start,
);

/// After start, a new name is what `active_children` lists (Python's `p.name = ...`),
/// and the daemon flag can no longer change (Python asserts): the child was started
/// with the one it had.
fn settings_after_start(m: StartMethod) {
    let (hold, held) = pipe::<()>().unwrap();
    let mut p = get_context(m).process(wait_for_parent, held);
    p.start().unwrap();
    let p = p.name("renamed");
    let listed: Vec<String> = active_children()
        .iter()
        .filter(|c| Some(c.pid()) == p.pid())
        .map(|c| c.name().to_string())
        .collect();
    assert_eq!(listed, ["renamed"]);
    drop(hold);
    assert!(p.join_timeout(LONG).unwrap());
    let late = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.daemon(true)));
    let msg = late.expect_err("daemon after start must panic");
    assert!(
        msg.downcast_ref::<&str>()
            .is_some_and(|m| m.contains("already started")),
        "{:?}",
        msg.downcast_ref::<&str>()
    );
}

/// Before start: not alive, not listed, no exit code, no sentinel. After start:
/// alive, listed, args delivered. After join: exit code 0, not listed, reaped.
fn lifecycle(m: StartMethod) {
    let ctx = get_context(m);
    let (here, there) = pipe::<Echoed>().unwrap();
    let mut p = ctx.process(
        echo_args_then_wait,
        (there, 42, "hello".to_string(), vec![1u8, 2, 3]),
    );
    let name = p.get_name().to_string();
    assert!(name.starts_with("Process-"), "{name}");
    assert!(!p.is_daemon());
    assert!(!p.is_alive().unwrap());
    assert_eq!(p.exitcode(), None);
    assert_eq!(p.pid(), None);
    assert_eq!(p.sentinel().unwrap_err().kind(), ErrorKind::InvalidState);
    assert_eq!(p.join().unwrap_err().kind(), ErrorKind::InvalidState);
    assert_eq!(
        p.join_timeout(Duration::ZERO).unwrap_err().kind(),
        ErrorKind::InvalidState
    );
    assert_eq!(p.terminate().unwrap_err().kind(), ErrorKind::InvalidState);
    assert_eq!(p.kill().unwrap_err().kind(), ErrorKind::InvalidState);
    assert!(!active_children().iter().any(|c| c.name() == name));

    p.start().unwrap();
    let pid = p.pid().unwrap();
    assert_eq!(p.ident(), Some(pid));
    assert!(p.is_alive().unwrap());
    assert_eq!(p.exitcode(), None);
    assert!(p.sentinel().is_ok());
    let listed = active_children();
    let me = listed
        .iter()
        .find(|c| c.pid() == pid)
        .unwrap_or_else(|| panic!("{pid} not in active_children: {listed:?}"));
    assert_eq!(me.name(), name);
    assert!(!me.is_daemon());
    assert_eq!(
        here.recv_timeout(LONG).unwrap(),
        (42, "hello".to_string(), vec![1, 2, 3])
    );
    assert!(p.is_alive().unwrap());
    assert_eq!(p.start().unwrap_err().kind(), ErrorKind::InvalidState);

    drop(here); // the child's recv fails: it returns
    assert!(p.join_timeout(LONG).unwrap(), "the child did not end");
    assert_eq!(p.exitcode(), Some(0));
    assert!(!p.is_alive().unwrap());
    p.join().unwrap(); // joining an ended process again is fine
    assert!(!active_children().iter().any(|c| c.pid() == pid));
    assert_gone(pid);
}

/// `terminate()` gives `-SIGTERM`, `kill()` gives `-SIGKILL`; `join_timeout(0)`
/// answers at once while the child runs.
fn terminate_and_kill(m: StartMethod) {
    let ctx = get_context(m);

    let (here, there) = pipe::<()>().unwrap();
    let mut p = ctx.process(wait_for_parent, there);
    p.start().unwrap();
    let pid = p.pid().unwrap();
    let (done, took) = timed(|| p.join_timeout(Duration::ZERO).unwrap());
    assert!(!done);
    assert!(
        took < Duration::from_secs(1),
        "join_timeout(0) took {took:?}"
    );
    let (done, took) = timed(|| p.join_timeout(Duration::from_millis(200)).unwrap());
    assert!(!done);
    assert!(
        took >= Duration::from_millis(190),
        "join_timeout(200ms) took {took:?}"
    );
    p.terminate().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(-libc::SIGTERM));
    // Signalling an ended process changes nothing.
    p.terminate().unwrap();
    p.kill().unwrap();
    assert_eq!(p.exitcode(), Some(-libc::SIGTERM));
    assert_gone(pid);
    drop(here);

    let (here, there) = pipe::<()>().unwrap();
    let mut p = ctx.process(wait_for_parent, there);
    p.start().unwrap();
    let pid = p.pid().unwrap();
    p.kill().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(-libc::SIGKILL));
    assert_gone(pid);
    drop(here);
}

/// 0 on return (see `lifecycle`), `n` for `exit(n)`, 1 for a panic with the message
/// and location on stderr, `-N` for a signal `N` (sent by us or raised by the child).
fn exit_codes(m: StartMethod) {
    let ctx = get_context(m);

    for n in [0, 3, 7, 255] {
        let mut p = ctx.process(exit_with, n);
        p.start().unwrap();
        assert!(p.join_timeout(LONG).unwrap());
        assert_eq!(p.exitcode(), Some(n), "exit({n})");
        assert_gone(p.pid().unwrap());
    }

    let err = TempPath::new("stderr");
    let mut p = ctx.process(
        panic_into,
        (err.as_string(), "boom from the child".to_string()),
    );
    p.start().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(1));
    let text = std::fs::read_to_string(&err.0).unwrap();
    assert!(text.contains("boom from the child"), "stderr: {text:?}");
    assert!(
        text.contains("process.rs"),
        "no location in stderr: {text:?}"
    );
    assert!(text.contains(p.get_name()), "no name in stderr: {text:?}");
    assert_gone(p.pid().unwrap());

    let mut p = ctx.process(raise_signal, libc::SIGUSR2);
    p.start().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(-libc::SIGUSR2));
    assert_gone(p.pid().unwrap());

    let (here, there) = pipe::<()>().unwrap();
    let mut p = ctx.process(wait_for_parent, there);
    p.start().unwrap();
    common::kill(p.pid().unwrap(), libc::SIGUSR1);
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(-libc::SIGUSR1));
    assert_gone(p.pid().unwrap());
    drop(here);
}

/// A child sees its name, pid, daemon flag and parent; names are `Process-N` unless
/// set; a child of a fork server still has the test process as its parent.
fn names_and_parent(m: StartMethod) {
    let ctx = get_context(m);
    let me = std::process::id();

    let (here, there) = pipe().unwrap();
    let mut p = ctx.process(report_identity, there);
    let name = p.get_name().to_string();
    p.start().unwrap();
    let id = here.recv_timeout(LONG).unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));
    assert_eq!(id.name, name);
    assert_eq!(Some(id.pid), p.pid());
    assert_eq!(id.os_pid, id.pid);
    assert!(!id.daemon);
    assert_eq!(id.identity.len(), 1, "{id:?}");
    assert_eq!(name, format!("Process-{}", id.identity[0]));
    assert_eq!(id.parent, Some((me, "MainProcess".to_string(), true)));
    // Fork-server children too: the server forks them as our own (sibling forks).
    assert_eq!(id.os_ppid, me);

    let (here, there) = pipe().unwrap();
    let mut q = ctx
        .process(report_identity, there)
        .name("worker-7")
        .daemon(true);
    assert!(q.is_daemon());
    assert_eq!(q.get_name(), "worker-7");
    q.start().unwrap();
    let id = here.recv_timeout(LONG).unwrap();
    assert!(q.join_timeout(LONG).unwrap());
    assert_eq!(q.exitcode(), Some(0));
    assert_eq!(id.name, "worker-7");
    assert!(id.daemon);
    assert_eq!(id.parent.as_ref().map(|p| p.0), Some(me));
}

/// A child's children are named `Process-N:1`, `Process-N:2`; the first sees its
/// parent by name and pid, and is started with the start method the child inherited.
fn process_tree_names(m: StartMethod) {
    let ctx = get_context(m);
    let (here, there) = pipe().unwrap();
    let mut p = ctx.process(tree_middle, there);
    let name = p.get_name().to_string();
    p.start().unwrap();
    let r = here.recv_timeout(LONG).unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));
    assert_eq!(r.middle_name, name);
    assert_eq!(Some(r.middle_pid), p.pid());
    assert_eq!(r.middle_method, m);
    assert_eq!(r.leaf_name, format!("{name}:1"));
    assert_eq!(r.planned_leaf_name, r.leaf_name);
    assert_eq!(r.second_leaf_name, format!("{name}:2"));
    assert_eq!(r.leaf_identity.len(), 2, "{r:?}");
    assert_eq!(r.leaf_identity[1], 1);
    assert_eq!(r.leaf_parent_name, name);
    assert_eq!(r.leaf_parent_pid, r.middle_pid);
    assert_eq!(r.leaf_exitcode, Some(0));
}

/// A daemonic process may not start children, with `Process` or `spawn`.
fn daemon_cannot_start_children(m: StartMethod) {
    let ctx = get_context(m);
    let (here, there) = pipe().unwrap();
    let mut p = ctx.process(daemon_tries, there).daemon(true);
    p.start().unwrap();
    let (daemonic, e1, e2) = here.recv_timeout(LONG).unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));
    assert!(daemonic);
    assert_eq!(e1, "NotPermitted");
    assert_eq!(e2, "NotPermitted");
    assert_gone(p.pid().unwrap());
}

/// `close()` on a running process is an error (and changes nothing); after close,
/// `is_alive`, `join` and friends are errors; closing twice is fine.
fn close_rules(m: StartMethod) {
    let ctx = get_context(m);
    let (here, there) = pipe::<()>().unwrap();
    let mut p = ctx.process(wait_for_parent, there);
    p.start().unwrap();
    let pid = p.pid().unwrap();
    assert_eq!(p.close().unwrap_err().kind(), ErrorKind::InvalidState);
    assert!(
        p.is_alive().unwrap(),
        "a refused close must leave the process alone"
    );
    drop(here);
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));
    p.close().unwrap();
    p.close().unwrap();
    assert_eq!(p.is_alive().unwrap_err().kind(), ErrorKind::InvalidState);
    assert_eq!(p.join().unwrap_err().kind(), ErrorKind::InvalidState);
    assert_eq!(
        p.join_timeout(Duration::ZERO).unwrap_err().kind(),
        ErrorKind::InvalidState
    );
    assert_eq!(p.sentinel().unwrap_err().kind(), ErrorKind::InvalidState);
    assert_eq!(p.terminate().unwrap_err().kind(), ErrorKind::InvalidState);
    assert_eq!(p.kill().unwrap_err().kind(), ErrorKind::InvalidState);
    assert_eq!(p.start().unwrap_err().kind(), ErrorKind::InvalidState);
    assert!(p.get_name().starts_with("Process-"));
    assert_gone(pid);

    // Closing a process that never started is allowed; it cannot start afterwards.
    let mut q = ctx.process(noop, ());
    q.close().unwrap();
    assert_eq!(q.start().unwrap_err().kind(), ErrorKind::InvalidState);
}

/// `spawn` returns the value; a panic comes back with its message and location; an
/// `exit(n)`, a kill or an unsendable result say how the child ended.
fn spawn_handle_outcomes(m: StartMethod) {
    let ctx = get_context(m);

    let mut h = ctx.spawn(square, 12).unwrap();
    let pid = h.pid();
    assert_eq!(h.join_timeout(LONG).unwrap(), 144);
    assert_gone(pid);

    let err_file = TempPath::new("stderr");
    let mut h = ctx
        .spawn(panics_with, (err_file.as_string(), "spawned boom".into()))
        .unwrap();
    let pid = h.pid();
    let e = h.join_timeout(LONG).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked, "{e:?}");
    assert_eq!(e.exitcode(), Some(1));
    let text = e.to_string();
    assert!(text.contains("spawned boom"), "{text}");
    assert!(text.contains("process.rs"), "no location: {text}");
    assert_gone(pid);

    let mut h = ctx.spawn(exits_with, 3).unwrap();
    let e = h.join_timeout(LONG).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ProcessDied, "{e:?}");
    assert_eq!(e.exitcode(), Some(3));
    assert!(e.to_string().contains("exited with code 3"), "{e}");

    let (here, there) = pipe::<()>().unwrap();
    let mut h = ctx.spawn(blocks, there).unwrap();
    let pid = h.pid();
    assert!(!h.is_finished());
    h.kill().unwrap();
    let e = h.join_timeout(LONG).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ProcessDied, "{e:?}");
    assert_eq!(e.exitcode(), Some(-libc::SIGKILL));
    assert!(e.to_string().contains("SIGKILL"), "{e}");
    assert_gone(pid);
    drop(here);

    let mut h = ctx.spawn(returns_poison, ()).unwrap();
    let e = h.join_timeout(LONG).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ProcessDied, "{e:?}");
    assert_eq!(e.exitcode(), Some(1));

    // A join that times out says what timed out, and keeps the handle: joining again
    // gets the value once the child returns; after that the handle is spent.
    let (here, there) = pipe::<()>().unwrap();
    let mut h = ctx.spawn(blocks, there).unwrap();
    let pid = h.pid();
    let (e, took) = timed(|| h.join_timeout(Duration::from_millis(100)).unwrap_err());
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e:?}");
    assert!(took < LONG);
    let msg = e.to_string();
    assert!(
        msg.starts_with("joining Process-")
            && msg.contains(&format!("(pid {pid}) timed out after 100ms")),
        "{msg}"
    );
    assert!(h.join_timeout(Duration::ZERO).is_err(), "still running");
    drop(here);
    assert_eq!(h.join_timeout(LONG).unwrap(), 5);
    assert_eq!(
        h.join_timeout(LONG).unwrap_err().kind(),
        ErrorKind::InvalidState
    );
    assert_gone(pid);

    // A join that times out leaves the child running; once it ends, it is reaped
    // (here by `active_children`), not left a zombie, even if the handle is dropped.
    let (here, there) = pipe::<()>().unwrap();
    let mut h = ctx.spawn(blocks, there).unwrap();
    let pid = h.pid();
    let e = h.join_timeout(Duration::from_millis(10)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e:?}");
    drop(h);
    drop(here);
    let deadline = std::time::Instant::now() + LONG;
    while common::is_running(pid) {
        assert!(std::time::Instant::now() < deadline, "{pid} does not end");
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = active_children();
    assert_gone(pid);
}

/// Args that fail to serialize are an error at `start()` (or `spawn`), nothing is
/// started, and the machinery keeps working.
fn unserializable_args(m: StartMethod) {
    let ctx = get_context(m);
    let (here, there) = pipe::<()>().unwrap();
    let mut p = ctx.process(takes_poison, (there, Poison));
    let name = p.get_name().to_string();
    let e = p.start().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Serialize, "{e:?}");
    assert_eq!(p.pid(), None);
    assert!(!p.is_alive().unwrap());
    assert_eq!(p.exitcode(), None);
    assert!(!active_children().iter().any(|c| c.name() == name));
    // No child got the pipe end that was in the args: dropping ours closes the pipe.
    drop(p);
    assert_eq!(
        here.recv_timeout(LONG).unwrap_err().kind(),
        ErrorKind::Disconnected
    );

    let e = ctx.spawn(poison_to_u64, Poison).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Serialize, "{e:?}");

    assert_eq!(ctx.spawn(square, 3).unwrap().join_timeout(LONG).unwrap(), 9);
}

/// Many processes started at once and terminated after 1 ms all report `-SIGTERM`.
fn hundred_terminated(m: StartMethod) {
    let ctx = get_context(m);
    let n = if m == StartMethod::Spawn { 20 } else { 100 };
    let mut procs = Vec::new();
    let mut ends = Vec::new();
    for _ in 0..n {
        let (here, there) = pipe::<()>().unwrap();
        let mut p = ctx.process(wait_for_parent, there);
        p.start().unwrap();
        procs.push(p);
        ends.push(here);
    }
    std::thread::sleep(Duration::from_millis(1));
    for p in &procs {
        p.terminate().unwrap();
    }
    for p in &procs {
        assert!(p.join_timeout(LONG).unwrap());
        assert_eq!(p.exitcode(), Some(-libc::SIGTERM), "{p:?}");
    }
    for p in &procs {
        assert_gone(p.pid().unwrap());
    }
}

/// A child's fd table does not grow with the number of running siblings.
fn fd_table_independent_of_siblings(m: StartMethod) {
    let ctx = get_context(m);
    let mut procs = Vec::new();
    let mut holds = Vec::new();
    let mut counts = Vec::new();
    for _ in 0..12 {
        let (here, there) = pipe::<usize>().unwrap();
        let (hold, held) = pipe::<()>().unwrap();
        let mut p = ctx.process(report_fd_count, (there, held));
        p.start().unwrap();
        counts.push(here.recv_timeout(LONG).unwrap());
        procs.push(p);
        holds.push((here, hold));
    }
    assert!(
        counts.iter().all(|&c| c == counts[0]),
        "fd counts of children started with 0..11 running siblings: {counts:?}"
    );
    drop(holds);
    for p in &procs {
        assert!(p.join_timeout(LONG).unwrap());
        assert_eq!(p.exitcode(), Some(0));
    }
}

#[test]
fn fd_table_independent_of_siblings_spawn() {
    let _g = common::shared();
    fd_table_independent_of_siblings(StartMethod::Spawn);
}

#[test]
fn fd_table_independent_of_siblings_forkserver() {
    let _g = common::shared();
    fd_table_independent_of_siblings(StartMethod::ForkServer);
}

/// The root process: `MainProcess`, no parent, its own pid; `cpu_count` is sane;
/// every start method is offered and named as in Python.
#[test]
#[allow(unsafe_code)]
fn main_process_and_helpers() {
    let _g = common::shared();
    let me = current_process();
    assert_eq!(me.name(), "MainProcess");
    assert_eq!(me.pid(), std::process::id());
    assert!(me.identity().is_empty());
    assert!(!me.is_daemon());
    assert!(parent_process().is_none());

    let n = cpu_count();
    // SAFETY: sysconf has no memory effects.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    assert!(
        n >= 1 && n as i64 <= online,
        "cpu_count {n}, online {online}"
    );

    let all = get_all_start_methods();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0], DEFAULT_START_METHOD);
    for (m, s) in [
        (StartMethod::Fork, "fork"),
        (StartMethod::Spawn, "spawn"),
        (StartMethod::ForkServer, "forkserver"),
    ] {
        assert!(all.contains(&m));
        assert_eq!(m.as_str(), s);
        assert_eq!(s.parse::<StartMethod>().unwrap(), m);
        assert_eq!(get_context(m).start_method(), m);
    }
    assert_eq!(
        "threads".parse::<StartMethod>().unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(get_start_method(), DEFAULT_START_METHOD);
}

/// `multiprocess::fork()`: the child sees the caller as its parent (even when the
/// caller's state was never used before), and `waitpid` returns its exit code.
#[test]
fn raw_fork_parent_and_waitpid() {
    let me = std::process::id();
    match multiprocess::fork().unwrap() {
        multiprocess::Fork::Child => {
            let ok = multiprocess::parent_process().map(|p| p.pid()) == Some(me)
                && multiprocess::current_process().pid() == std::process::id();
            std::process::exit(if ok { 7 } else { 1 });
        }
        multiprocess::Fork::Parent(pid) => {
            assert_eq!(multiprocess::waitpid(pid).unwrap(), 7);
            assert!(multiprocess::waitpid(pid).is_err(), "reaped once");
        }
    }
}
