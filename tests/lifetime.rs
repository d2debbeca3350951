//! Child lifetime: no zombie, no orphan, no leaked fd, under every start method.
//!
//! Every test here holds [`common::serial`], so it may look at the whole process:
//! every child of ours (zombies included) and every open fd. Each test ends with
//! [`common::assert_quiescent`]: no child of ours is left but the fork server, and the
//! fork server has no child left.
//!
//! The fork server is found by asking a `ForkServer` child for its parent pid (see
//! `common::fork_server_pid`); it is started before any fd snapshot, so its socket and
//! pidfd are part of the baseline.

multiprocess::test_support!();

#[macro_use]
mod common;

use std::os::unix::process::parent_id;
use std::time::Duration;

use multiprocess::{
    Connection, ErrorKind, Process, StartMethod, Waitable, get_context, parent_process, pipe, wait,
};
use serde::{Deserialize, Serialize};

use common::{
    CHILD_PATIENCE, GRACE, LONG, Poison, assert_gone, assert_quiescent, children_of, fd_count,
    fd_list, fork_server_pid, is_running, noop, stat, timed, wait_for_parent,
};

// ---------------------------------------------------------------- children

fn identity(x: u32) -> u32 {
    x
}

fn blocks(conn: Connection<()>) -> u32 {
    let _ = conn.recv_timeout(CHILD_PATIENCE);
    1
}

/// Starts a grandchild (dying with us, the default) and waits.
fn middle_with_sleeper((to_g, hold): (Connection<(u32, u32)>, Connection<()>)) {
    let mut g = Process::new(grandchild_sleeps, to_g);
    g.start().unwrap();
    let _ = hold.recv_timeout(CHILD_PATIENCE);
}

/// Reports (own pid, OS parent pid), then waits for the test to close the pipe.
fn grandchild_sleeps(conn: Connection<(u32, u32)>) {
    conn.send(&(std::process::id(), parent_id())).unwrap();
    let _ = conn.recv_timeout(CHILD_PATIENCE);
}

#[derive(Debug, Serialize, Deserialize)]
enum Watch {
    /// (own pid, parent pid as `parent_process` says, parent alive)
    Started(u32, u32, bool),
    /// (parent ended within the wait, parent alive)
    ParentEnded(bool, bool),
}

/// Starts a grandchild that may outlive us, and waits.
fn middle_with_watcher((to_g, hold): (Connection<Watch>, Connection<()>)) {
    let mut g = Process::new(grandchild_watches, to_g).die_with_parent(false);
    g.start().unwrap();
    let _ = hold.recv_timeout(CHILD_PATIENCE);
}

/// Watches its parent end, and says so.
fn grandchild_watches(conn: Connection<Watch>) {
    let parent = parent_process().unwrap();
    conn.send(&Watch::Started(
        std::process::id(),
        parent.pid(),
        parent.is_alive(),
    ))
    .unwrap();
    let ended = parent.join_timeout(LONG);
    conn.send(&Watch::ParentEnded(ended, parent.is_alive()))
        .unwrap();
}

#[derive(Debug, Serialize, Deserialize)]
enum Look {
    /// The grandchild's pid (it has not looked at its parent yet).
    Started(u32),
    /// Look now.
    Go,
    /// (parent pid as `parent_process` says, alive, ended within no wait, sentinel
    /// readable)
    Saw(u32, bool, bool, bool),
}

/// Starts a grandchild that looks at its parent only when told to, and waits.
fn middle_with_looker((to_g, hold): (Connection<Look>, Connection<()>)) {
    let mut g = Process::new(grandchild_looks_late, to_g).die_with_parent(false);
    g.start().unwrap();
    let _ = hold.recv_timeout(CHILD_PATIENCE);
}

/// Says it started, and first looks at its parent when told to.
fn grandchild_looks_late(conn: Connection<Look>) {
    conn.send(&Look::Started(std::process::id())).unwrap();
    assert!(matches!(conn.recv_timeout(LONG).unwrap(), Look::Go));
    let parent = parent_process().unwrap();
    let alive = parent.is_alive();
    let ended = parent.join_timeout(Duration::ZERO);
    let sentinel = parent.sentinel().unwrap();
    let readable = wait(&[&sentinel as &dyn Waitable], Some(Duration::ZERO)).unwrap() == [0];
    conn.send(&Look::Saw(parent.pid(), alive, ended, readable))
        .unwrap();
}

/// Says "ready" with its OS parent, then "done" once told "go".
fn finish_on_request(conn: Connection<String>) {
    conn.send(&format!("ready {}", parent_id())).unwrap();
    assert_eq!(conn.recv_timeout(LONG).unwrap(), "go");
    conn.send(&"done".to_string()).unwrap();
}

/// Gets a connection through `ctrl` and sends 5 on it.
fn relay(ctrl: Connection<Connection<u32>>) {
    let c = ctrl.recv_timeout(LONG).unwrap();
    c.send(&5).unwrap();
}

fn takes_poison(_: Poison) {}

fn poison_len(_: Poison) -> u32 {
    0
}

// ---------------------------------------------------------------- helpers

/// Starts the fork server and runs one child with `m` (starting whatever long-lived
/// helpers `m` needs), so that an fd snapshot taken next is a fair baseline. Returns
/// the fork server's pid.
fn warm_up(m: StartMethod) -> u32 {
    let server = fork_server_pid();
    let mut p = get_context(m).process(noop, ());
    p.start().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));
    assert_gone(p.pid().unwrap());
    server
}

fn assert_same_fds(before: usize, before_list: &[String]) {
    let after = fd_count();
    assert_eq!(
        after,
        before,
        "fd count changed: before {before_list:?}, after {:?}",
        fd_list()
    );
}

// ---------------------------------------------------------------- tests

for_each_method!(
    serial: hundred_in_a_row,
    child_killed_while_parent_waits,
    parent_killed_leaves_no_child,
    grandchild_sees_parent_end,
    grandchild_looks_after_parent_end,
    handles_leave_no_fd_behind,
);

/// 100 processes (spawn: 25) started and joined in a row, then as many `spawn`
/// handles: all exit 0, none is left running or a zombie, and no fd is left open.
fn hundred_in_a_row(m: StartMethod) {
    let server = warm_up(m);
    let before = fd_count();
    let before_list = fd_list();
    let ctx = get_context(m);
    let n = if m == StartMethod::Spawn { 25 } else { 100 };
    let mut pids = Vec::new();
    for _ in 0..n {
        let mut p = ctx.process(noop, ());
        p.start().unwrap();
        assert!(p.join_timeout(LONG).unwrap());
        assert_eq!(p.exitcode(), Some(0), "{p:?}");
        pids.push(p.pid().unwrap());
    }
    for i in 0..n {
        let mut h = ctx.spawn(identity, i).unwrap();
        pids.push(h.pid());
        assert_eq!(h.join_timeout(LONG).unwrap(), i);
    }
    for pid in pids {
        assert_gone(pid);
    }
    assert_quiescent(Some(server));
    assert_same_fds(before, &before_list);
}

/// A child killed by `SIGKILL` (from outside) while the parent waits in `join`:
/// the join returns with `-SIGKILL`, for a `Process` and a `spawn` handle.
fn child_killed_while_parent_waits(m: StartMethod) {
    let server = fork_server_pid();
    let ctx = get_context(m);

    let (here, there) = pipe::<()>().unwrap();
    let mut p = ctx.process(wait_for_parent, there);
    p.start().unwrap();
    let pid = p.pid().unwrap();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        common::kill(pid, libc::SIGKILL);
    });
    let (done, took) = timed(|| p.join_timeout(LONG).unwrap());
    killer.join().unwrap();
    assert!(done, "join did not return after the kill");
    assert!(took < LONG);
    assert_eq!(p.exitcode(), Some(-libc::SIGKILL));
    assert_gone(pid);
    drop(here);

    let (here, there) = pipe::<()>().unwrap();
    let mut h = ctx.spawn(blocks, there).unwrap();
    let pid = h.pid();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        common::kill(pid, libc::SIGKILL);
    });
    let e = h.join_timeout(LONG).unwrap_err();
    killer.join().unwrap();
    assert_eq!(e.kind(), ErrorKind::ProcessDied, "{e:?}");
    assert_eq!(e.exitcode(), Some(-libc::SIGKILL), "{e:?}");
    assert_gone(pid);
    drop(here);

    assert_quiescent(Some(server));
}

/// A parent killed by `SIGKILL` leaves no child behind: its child (started with the
/// default `die_with_parent(true)`) is gone within seconds, and so is any helper it
/// had (its own fork server).
fn parent_killed_leaves_no_child(m: StartMethod) {
    let server = fork_server_pid();
    let ctx = get_context(m);
    let (g_here, g_there) = pipe().unwrap();
    let (hold, held) = pipe::<()>().unwrap();
    let mut p = ctx.process(middle_with_sleeper, (g_there, held));
    p.start().unwrap();
    let (gpid, g_os_parent) = g_here.recv_timeout(LONG).unwrap();
    assert!(is_running(gpid));
    // Every method, the fork server's included, makes the grandchild the middle's own.
    assert_eq!(Some(g_os_parent), p.pid());
    let helper =
        (m == StartMethod::ForkServer).then(|| middle_server(g_os_parent, gpid, g_os_parent));

    p.kill().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(-libc::SIGKILL));
    // `g_here` stays open: the grandchild can only end by being killed.
    assert_gone(gpid);
    assert_gone(g_os_parent);
    if let Some(server) = helper {
        assert_gone(server);
    }
    assert_eq!(
        g_here.recv_timeout(LONG).unwrap_err().kind(),
        ErrorKind::Disconnected
    );
    drop(hold);
    assert_quiescent(Some(server));
}

/// A middle process and a connection to the grandchild it starts, and the connection
/// whose end the middle holds while it waits.
type Middle<T> = (
    Process<(Connection<T>, Connection<()>)>,
    Connection<T>,
    Connection<()>,
);

/// Starts `middle` with `m`, given its grandchild's connection and one to wait on.
fn start_watching_middle<T>(
    m: StartMethod,
    middle: fn((Connection<T>, Connection<()>)),
) -> Middle<T>
where
    T: Serialize + serde::de::DeserializeOwned + 'static,
{
    let (g_here, g_there) = pipe().unwrap();
    let (hold, held) = pipe::<()>().unwrap();
    let mut p = get_context(m).process(middle, (g_there, held));
    p.start().unwrap();
    (p, g_here, hold)
}

/// A grandchild started with `die_with_parent(false)` sees its parent end when the
/// parent is terminated (`parent_process().join_timeout`, `is_alive`), and then ends.
fn grandchild_sees_parent_end(m: StartMethod) {
    let server = fork_server_pid();
    let (p, g_here, hold) = start_watching_middle(m, middle_with_watcher);
    let gpid = match g_here.recv_timeout(LONG).unwrap() {
        Watch::Started(gpid, ppid, alive) => {
            assert_eq!(Some(ppid), p.pid());
            assert!(alive);
            gpid
        }
        w => panic!("unexpected {w:?}"),
    };
    p.terminate().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(-libc::SIGTERM));
    match g_here.recv_timeout(LONG).unwrap() {
        Watch::ParentEnded(ended, alive) => {
            assert!(ended, "the grandchild did not see its parent end");
            assert!(!alive);
        }
        w => panic!("unexpected {w:?}"),
    }
    assert_gone(gpid);
    drop(hold);
    assert_quiescent(Some(server));
}

/// A grandchild that first asks about its parent after the parent ended (its pidfd is
/// opened on first use) sees it ended: not alive, joined at once, a readable sentinel.
fn grandchild_looks_after_parent_end(m: StartMethod) {
    let server = fork_server_pid();
    let (p, g_here, hold) = start_watching_middle(m, middle_with_looker);
    let gpid = match g_here.recv_timeout(LONG).unwrap() {
        Look::Started(gpid) => gpid,
        w => panic!("unexpected {w:?}"),
    };
    let middle = p.pid().unwrap();
    p.terminate().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    g_here.send(&Look::Go).unwrap();
    match g_here.recv_timeout(LONG).unwrap() {
        Look::Saw(ppid, alive, ended, readable) => {
            assert_eq!(ppid, middle);
            assert!(!alive, "the parent looked alive after its end");
            assert!(ended, "joining the ended parent waited");
            assert!(readable, "the ended parent's sentinel is not readable");
        }
        w => panic!("unexpected {w:?}"),
    }
    assert_gone(gpid);
    drop(hold);
    assert_quiescent(Some(server));
}

/// Handles passed in args and through connections, `spawn` handles, and starts and
/// sends that fail to serialize leave no fd behind.
fn handles_leave_no_fd_behind(m: StartMethod) {
    let server = warm_up(m);
    let before = fd_count();
    let before_list = fd_list();
    let ctx = get_context(m);
    for _ in 0..3 {
        let (ctrl, there) = pipe::<Connection<u32>>().unwrap();
        let mut p = ctx.process(relay, there);
        p.start().unwrap();
        let (a, b) = pipe::<u32>().unwrap();
        ctrl.send(&b).unwrap();
        drop(b);
        assert_eq!(a.recv_timeout(LONG).unwrap(), 5);
        assert!(p.join_timeout(LONG).unwrap());
        assert_eq!(p.exitcode(), Some(0));

        assert_eq!(
            ctx.spawn(identity, 4).unwrap().join_timeout(LONG).unwrap(),
            4
        );

        let mut q = ctx.process(takes_poison, Poison);
        assert_eq!(q.start().unwrap_err().kind(), ErrorKind::Serialize);
        assert_eq!(
            ctx.spawn(poison_len, Poison).unwrap_err().kind(),
            ErrorKind::Serialize
        );
        let (x, _y) = pipe::<Poison>().unwrap();
        assert_eq!(x.send(&Poison).unwrap_err().kind(), ErrorKind::Serialize);
    }
    assert_quiescent(Some(server));
    assert_same_fds(before, &before_list);
}

/// Killing the fork server: a child it had started runs on and finishes; the next
/// start restarts the server (and the dead one is reaped).
#[test]
fn fork_server_killed_restarts() {
    let _g = common::serial();
    let server1 = fork_server_pid();
    let ctx = get_context(StartMethod::ForkServer);
    let (here, there) = pipe::<String>().unwrap();
    let mut c = ctx.process(finish_on_request, there);
    c.start().unwrap();
    let cpid = c.pid().unwrap();
    // The server forked it as our own child (a sibling fork).
    assert_eq!(
        here.recv_timeout(LONG).unwrap(),
        format!("ready {}", std::process::id())
    );

    common::kill(server1, libc::SIGKILL);
    let deadline = std::time::Instant::now() + GRACE;
    while is_running(server1) {
        assert!(std::time::Instant::now() < deadline, "the server survives");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(c.is_alive().unwrap(), "the server's child died with it");
    here.send(&"go".to_string()).unwrap();
    assert_eq!(here.recv_timeout(LONG).unwrap(), "done");
    assert!(c.join_timeout(LONG).unwrap());
    assert_eq!(c.exitcode(), Some(0));

    let server2 = fork_server_pid();
    assert_ne!(server2, server1, "a new fork server");
    assert!(
        stat(server1).is_none(),
        "the killed fork server was not reaped: {:?}",
        stat(server1)
    );
    let mut p = ctx.process(noop, ());
    p.start().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));
    assert_gone(cpid);
    assert_quiescent(Some(server2));
}

/// The fork server is reachable only through a private socket pair: none of its
/// sockets has an address or listens.
#[test]
fn fork_server_has_no_address() {
    let _g = common::serial();
    let server = fork_server_pid();
    let mut inodes = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{server}/fd"))
        .unwrap()
        .flatten()
    {
        if let Ok(t) = std::fs::read_link(e.path()) {
            let t = t.display().to_string();
            if let Some(n) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                inodes.push(n.to_string());
            }
        }
    }
    assert!(!inodes.is_empty(), "the fork server has no socket at all");
    let table = std::fs::read_to_string("/proc/net/unix").unwrap();
    let mut seen = 0;
    for line in table.lines().skip(1) {
        // Num RefCount Protocol Flags Type St Inode [Path]
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 7 || !inodes.iter().any(|i| i == cols[6]) {
            continue;
        }
        seen += 1;
        let flags = u32::from_str_radix(cols[3], 16).unwrap();
        assert_eq!(flags & 0x10000, 0, "a listening socket: {line}");
        assert_eq!(cols[5], "03", "not a connected socket: {line}");
        assert!(cols.len() == 7, "a socket with an address: {line}");
    }
    assert_eq!(
        seen,
        inodes.len(),
        "sockets of the server not in /proc/net/unix"
    );
}

// ------------------------------------------- fork-server children and parent death

/// The fork server of `middle`, whose fork-server child `gpid` named `gppid` as its OS
/// parent: that parent when the server forked the child as its own (the watcher mode),
/// else the middle's one other child (a sibling fork makes the child the middle's).
fn middle_server(middle: u32, gpid: u32, gppid: u32) -> u32 {
    if gppid != middle {
        // (Its own parent is the middle, but a test may already be killing it.)
        return gppid;
    }
    let others: Vec<u32> = children_of(middle)
        .into_iter()
        .map(|s| s.pid)
        .filter(|&c| c != gpid)
        .collect();
    assert_eq!(
        others.len(),
        1,
        "the middle's children other than {gpid}: {others:?}"
    );
    others[0]
}

/// Waits until `pid` is gone; if it is not within [`GRACE`], kills it (a test must not
/// leave it behind) and fails with `what`.
fn assert_gone_or_kill(pid: u32, what: &str) {
    let deadline = std::time::Instant::now() + GRACE;
    while !common::is_gone(pid) {
        if std::time::Instant::now() > deadline {
            let st = stat(pid);
            if is_running(pid) {
                common::kill(pid, libc::SIGKILL);
            }
            panic!("{what}: process {pid} is still there after {GRACE:?}: {st:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts a grandchild through its own fork server, reports (grandchild pid, fork
/// server pid), keeps `threads` threads spinning (a process that takes a while to
/// die), and waits.
fn middle_served((to_g, hold, threads): (Connection<(u32, u32)>, Connection<()>, u32)) {
    let mut g = get_context(StartMethod::ForkServer).process(grandchild_sleeps, to_g);
    g.start().unwrap();
    for _ in 0..threads {
        std::thread::spawn(|| {
            let t = std::time::Instant::now();
            while t.elapsed() < CHILD_PATIENCE {
                std::hint::spin_loop();
            }
        });
    }
    let _ = hold.recv_timeout(CHILD_PATIENCE);
}

/// As [`middle_served`] without spinners; then its *main thread* exits alone (the
/// `exit` system call, not `exit_group`), which is what fires the fork server's
/// parent-death signal, while another thread keeps the process alive until told to
/// `_exit`. This holds open the window of the race in which a fork-server child is
/// told its server died while its parent still looks alive.
fn middle_main_thread_exits_first((to_g, hold): (Connection<(u32, u32)>, Connection<()>)) {
    assert_eq!(std::process::id(), gettid(), "runs on the main thread");
    let mut g = get_context(StartMethod::ForkServer).process(grandchild_sleeps, to_g);
    g.start().unwrap();
    std::thread::spawn(move || {
        let _ = hold.recv_timeout(CHILD_PATIENCE);
        // SAFETY: `_exit` ends the process at once; always safe to call.
        #[allow(unsafe_code)]
        unsafe {
            libc::_exit(0)
        }
    });
    std::mem::forget(g);
    // SAFETY: ends only this thread, without unwinding; nothing else borrows its stack
    // (the other thread owns what it uses).
    #[allow(unsafe_code)]
    unsafe {
        libc::syscall(libc::SYS_exit, 0);
    }
    unreachable!("SYS_exit returned");
}

fn gettid() -> u32 {
    // SAFETY: gettid has no memory effects.
    #[allow(unsafe_code)]
    unsafe {
        libc::syscall(libc::SYS_gettid) as u32
    }
}

/// Starts the middle process of the tests below with `Fork`: its task then runs on
/// its main thread, which is the thread that starts its fork server. `watch`: that
/// server forks its children as its own, each watching its parent with a thread (the
/// mode of servers that cannot make sibling forks), instead of the middle's own.
fn start_middle<A>(watch: bool, f: fn(A), args: A) -> Process<A>
where
    A: Serialize + for<'de> Deserialize<'de> + 'static,
{
    let mut p = get_context(StartMethod::Fork).process(f, args);
    if watch {
        p = p.env("MULTIPROCESS_FORKSERVER_WATCH", "1");
    }
    p.start().unwrap();
    p
}

/// Starts a middle that starts a grandchild through its fork server; returns the
/// middle, the grandchild's pid and the middle's fork server's pid, having checked whose
/// child the grandchild is.
fn middle_and_grandchild<A>(
    watch: bool,
    f: fn(A),
    args: A,
    g_here: &Connection<(u32, u32)>,
) -> (Process<A>, u32, u32)
where
    A: Serialize + for<'de> Deserialize<'de> + 'static,
{
    let p = start_middle(watch, f, args);
    let middle = p.pid().unwrap();
    let (gpid, gppid) = g_here.recv_timeout(LONG).unwrap();
    assert_eq!(gppid == middle, !watch, "the grandchild's parent: {gppid}");
    let server = middle_server(middle, gpid, gppid);
    (p, gpid, server)
}

/// 20 times (10 watching), a parent (with spinning threads, so it takes a while to
/// die) starts a child through its fork server and is killed by `SIGKILL`: the child
/// never survives it. (When a signal from the dying server told children to check
/// their parent, the server could die, and tell them, before the parent's pidfd said it
/// was gone: about one run in eight under load left an orphan.)
fn children_never_survive_parent(watch: bool) {
    let _g = common::serial();
    let ours = fork_server_pid();
    for i in 0..if watch { 10 } else { 20 } {
        let (g_here, g_there) = pipe().unwrap();
        let (hold, held) = pipe::<()>().unwrap();
        let threads = 1 + i % 4;
        let (p, gpid, server) =
            middle_and_grandchild(watch, middle_served, (g_there, held, threads), &g_here);
        p.kill().unwrap();
        assert!(p.join_timeout(LONG).unwrap());
        assert_gone_or_kill(gpid, &format!("iteration {i}: the grandchild"));
        assert_gone(server);
        drop(hold);
    }
    assert_quiescent(Some(ours));
}

#[test]
fn forkserver_children_never_survive_parent_stress() {
    children_never_survive_parent(false);
}

#[test]
fn forkserver_watching_children_never_survive_parent_stress() {
    children_never_survive_parent(true);
}

/// The race held open: the middle's main thread (which started its fork server)
/// exits first, so the fork server dies (parent-death signal) while the middle still
/// runs; the grandchild must die once the middle is gone.
///
/// In the watcher mode it must also run on while the middle lives. A sibling fork is
/// the middle's own child and follows, as a forked child does, the thread that started
/// the server (`PR_SET_PDEATHSIG`): it dies with that thread if it had armed the signal
/// by then, else it is handed to another thread of the middle and dies with the last
/// one; both are allowed, and neither outlives the middle.
fn child_follows_parent_not_server(watch: bool) {
    let _g = common::serial();
    let ours = fork_server_pid();
    let (g_here, g_there) = pipe().unwrap();
    let (hold, held) = pipe::<()>().unwrap();
    let p = start_middle(watch, middle_main_thread_exits_first, (g_there, held));
    let middle = p.pid().unwrap();
    let (gpid, server) = match g_here.recv_timeout(LONG) {
        Ok((gpid, gppid)) => {
            assert_eq!(gppid == middle, !watch, "the grandchild's parent: {gppid}");
            (gpid, middle_server(middle, gpid, gppid))
        }
        // Only its end of `g_here` was open: it ended (with the middle's main thread,
        // before it could report), which only a sibling fork may do.
        Err(e) if !watch && e.kind() == ErrorKind::Disconnected => {
            hold.send(&()).unwrap();
            assert!(p.join_timeout(LONG).unwrap());
            assert_quiescent(Some(ours));
            return;
        }
        Err(e) => panic!("no word from the grandchild: {e}"),
    };
    // Usually the fork server dies with the thread that started it (its parent-death
    // signal follows that thread). It can miss that when the thread exits before the
    // server has armed the signal (about one run in four here); the grandchild must
    // follow its parent either way, which is what is checked below.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while is_running(server) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(p.is_alive().unwrap(), "the middle process died early");
    if watch {
        assert!(
            is_running(gpid),
            "the grandchild died while its parent lives"
        );
    }
    hold.send(&()).unwrap(); // the middle `_exit`s
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));
    assert_gone_or_kill(gpid, "the grandchild outlived its parent");
    assert_quiescent(Some(ours));
}

#[test]
fn forkserver_child_follows_parent_not_server() {
    child_follows_parent_not_server(false);
}

#[test]
fn forkserver_watching_child_follows_parent_not_server() {
    child_follows_parent_not_server(true);
}

/// The fork server alone is killed: its child runs on (its parent lives); when the
/// parent is killed later, the child dies too, though no server is left to tell it.
fn child_follows_parent_after_server_killed(watch: bool) {
    let _g = common::serial();
    let ours = fork_server_pid();
    let (g_here, g_there) = pipe().unwrap();
    let (hold, held) = pipe::<()>().unwrap();
    let (p, gpid, server) =
        middle_and_grandchild(watch, middle_served, (g_there, held, 0), &g_here);
    common::kill(server, libc::SIGKILL);
    let deadline = std::time::Instant::now() + GRACE;
    while is_running(server) {
        assert!(std::time::Instant::now() < deadline, "the server survives");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(is_running(gpid), "the server's child died with it");
    p.kill().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    assert_gone_or_kill(gpid, "the grandchild outlived its parent");
    drop(hold);
    assert_quiescent(Some(ours));
}

#[test]
fn forkserver_child_follows_parent_after_server_killed() {
    child_follows_parent_after_server_killed(false);
}

#[test]
fn forkserver_watching_child_follows_parent_after_server_killed() {
    child_follows_parent_after_server_killed(true);
}

/// Waits until the other end closes, then exits with `code`.
fn exits_with((hold, code): (Connection<()>, i32)) {
    let _ = hold.recv_timeout(CHILD_PATIENCE);
    std::process::exit(code)
}

fn panics(_: ()) {
    panic!("on purpose")
}

/// In a middle process: starts fork-server children that end in every way and sends
/// back (what the child's OS parent was, exit code) for each, then the codes again after
/// a second join (the code is kept, not read twice).
fn middle_reports_codes(report: Connection<Vec<(bool, Option<i32>)>>) {
    let ctx = get_context(StartMethod::ForkServer);
    let me = std::process::id();
    let mut out = Vec::new();
    for code in [0, 3, 255] {
        let (keep, held) = pipe::<()>().unwrap();
        let mut p = ctx.process(exits_with, (held, code));
        p.start().unwrap();
        let ours = stat(p.pid().unwrap()).map(|s| s.ppid) == Some(me);
        drop(keep);
        assert!(p.join_timeout(LONG).unwrap());
        out.push((ours, p.exitcode()));
    }
    let mut p = ctx.process(panics, ());
    p.start().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    out.push((true, p.exitcode()));
    let (_keep, held) = pipe::<()>().unwrap();
    let mut p = ctx.process(exits_with, (held, 0));
    p.start().unwrap();
    p.kill().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    out.push((true, p.exitcode()));
    out.push((true, p.exitcode()));
    report.send(&out).unwrap();
}

/// Exit codes reach the caller in both modes of the fork server: from `waitid` on
/// the caller's own child (sibling), from the status socket that the server made and
/// handed over with its answer (watcher).
fn fork_server_reports_exit_codes(watch: bool) {
    let _g = common::serial();
    let ours = fork_server_pid();
    let (here, there) = pipe().unwrap();
    let p = start_middle(watch, middle_reports_codes, there);
    let got = here.recv_timeout(LONG).expect("the middle reports");
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));
    let codes: Vec<Option<i32>> = got.iter().map(|&(_, c)| c).collect();
    assert_eq!(
        codes,
        [
            Some(0),
            Some(3),
            Some(255),
            Some(1),
            Some(-libc::SIGKILL),
            Some(-libc::SIGKILL)
        ]
    );
    for (own, _) in &got[..3] {
        assert_eq!(*own, !watch, "whose child a fork-server child is: {got:?}");
    }
    assert_quiescent(Some(ours));
}

#[test]
fn forkserver_sibling_children_report_exit_codes() {
    fork_server_reports_exit_codes(false);
}

#[test]
fn forkserver_watching_children_report_exit_codes() {
    fork_server_reports_exit_codes(true);
}
