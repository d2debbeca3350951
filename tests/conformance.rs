//! Issue 14, "Conformance": what `std::process::Command`, procspawn and Python offer
//! and the crate now does too, each under every start method: the environment at
//! `start()` (and per-child settings), a child's own standard streams, printing in a
//! forked child of a test that captures output, file descriptors as values, the
//! `ctx.*` constructors, a barrier action with data, `wait` over one type, and the
//! naming convention.

multiprocess::test_support!();

#[macro_use]
mod common;

use std::io::{Read, Write};

type TestResult = Result<(), Box<dyn std::error::Error>>;

use std::os::fd::AsRawFd;

use multiprocess::{Builder, Connection, Fd, Process, Queue, StartMethod, Stdio, get_context};

use common::{CHILD_PATIENCE, LONG, TempPath, assert_quiescent, fork_server_pid};

/// Ends a serial test: no child of ours or of the fork server is left.
fn quiescent() {
    assert_quiescent(Some(fork_server_pid()));
}

/// The fds open before a serial test's body (after one start with `method`, so that
/// the fork server and the launcher exist already).
struct FdSnapshot(usize, Vec<String>);

fn no_fd_leaked(method: StartMethod) -> FdSnapshot {
    fork_server_pid();
    get_context(method)
        .spawn(common::noop, ())
        .unwrap()
        .join()
        .unwrap();
    FdSnapshot(common::fd_count(), common::fd_list())
}

impl FdSnapshot {
    /// Every fd the body opened is closed again (pipes, /dev/null, passed fds).
    fn check(self) {
        let ok = common::eventually(common::SOON, || common::fd_count() == self.0);
        assert!(
            ok,
            "fds leaked: before {:?}, after {:?}",
            self.1,
            common::fd_list()
        );
    }
}

// ------------------------------------------------------------- environment

fn read_env(names: Vec<String>) -> Vec<Option<String>> {
    names.into_iter().map(|n| std::env::var(n).ok()).collect()
}

fn exit_unless_env((name, want): (String, Option<String>)) {
    if std::env::var(&name).ok() != want {
        std::process::exit(3);
    }
}

#[allow(unsafe_code)]
fn set_env(k: &str, v: Option<&str>) {
    // SAFETY: the test holds `serial`: no other test of this binary runs, and libtest's
    // own threads do not read the environment while tests run.
    unsafe {
        match v {
            Some(v) => std::env::set_var(k, v),
            None => std::env::remove_var(k),
        }
    }
}

/// A variable the parent sets after the fork server started reaches later children
/// (it did not: the server's children had the server's environment), and per-child
/// settings (`env`, `env_remove`, `env_clear`) apply on top, for `spawn` and `Process`.
fn environment_at_start(method: StartMethod) -> TestResult {
    let ctx = get_context(method);
    // The fork server (and the launcher) run before the variable is set.
    assert_eq!(
        ctx.spawn(read_env, vec![])?.join()?,
        Vec::<Option<String>>::new()
    );
    let late = format!("late-{}", std::process::id());
    set_env("MP_CONFORM_LATE", Some(&late));
    set_env("MP_CONFORM_GONE", Some("here"));
    let names = ["MP_CONFORM_LATE", "MP_CONFORM_GONE", "MP_CONFORM_SET"].map(String::from);
    let plain = ctx.spawn(read_env, names.to_vec())?.join()?;
    assert_eq!(plain, [Some(late.clone()), Some("here".into()), None]);
    // The same environment again (the fork server reuses the changes it worked out).
    let again = ctx.spawn(read_env, names.to_vec())?.join()?;
    assert_eq!(again, plain);
    let set = Builder::new()
        .context(ctx)
        .env("MP_CONFORM_SET", "1")
        .env_remove("MP_CONFORM_GONE")
        .spawn(read_env, names.to_vec())?
        .join()?;
    assert_eq!(set, [Some(late.clone()), None, Some("1".into())]);
    let cleared = Builder::new()
        .context(ctx)
        .env_clear()
        .env("MP_CONFORM_SET", "2")
        .spawn(read_env, names.to_vec())?
        .join()?;
    assert_eq!(cleared, [None, None, Some("2".into())]);
    let mut p = Process::new(exit_unless_env, ("MP_CONFORM_SET".into(), Some("3".into())))
        .context(ctx)
        .env("MP_CONFORM_SET", "3");
    p.start()?;
    assert!(p.join_timeout(LONG)?);
    assert_eq!(p.exitcode(), Some(0));
    let mut p = Process::new(exit_unless_env, ("MP_CONFORM_LATE".into(), Some(late)))
        .context(ctx)
        .env_remove("MP_CONFORM_GONE");
    p.start()?;
    assert!(p.join_timeout(LONG)?);
    assert_eq!(p.exitcode(), Some(0));
    // A name no environment can hold is refused before anything starts.
    let e = Builder::new()
        .context(ctx)
        .env("A=B", "1")
        .spawn(read_env, vec![])
        .unwrap_err();
    assert_eq!(e.kind(), multiprocess::ErrorKind::InvalidInput);
    set_env("MP_CONFORM_LATE", None);
    set_env("MP_CONFORM_GONE", None);
    // Back to the environment the fork server started with: nothing left over.
    let back = ctx.spawn(read_env, names.to_vec())?.join()?;
    assert_eq!(back, [None, None, None]);
    Ok(())
}

fn environment_at_start_test(method: StartMethod) {
    environment_at_start(method).unwrap();
    quiescent();
}

// -------------------------------------------------------- standard streams

/// Reads one line from stdin, prints it back on stdout and a note on stderr.
fn talk(_: ()) {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    println!("got {}", line.trim_end());
    eprintln!("note");
}

fn print_lines(n: usize) -> usize {
    for i in 0..n {
        println!("line {i}");
    }
    n
}

/// A child's stdin, stdout and stderr as pipes the parent writes and reads, as
/// `/dev/null`, and as a file, for `Process` and `Builder::spawn`.
fn standard_streams(method: StartMethod) -> TestResult {
    let ctx = get_context(method);
    let mut p = Process::new(talk, ())
        .context(ctx)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    assert!(p.take_stdout().is_none(), "nothing before start");
    p.start()?;
    let mut input = p.take_stdin().expect("a piped stdin");
    input.write_all(b"hello\n")?;
    drop(input);
    let (mut out, mut err) = (String::new(), String::new());
    p.take_stdout()
        .expect("a piped stdout")
        .read_to_string(&mut out)?;
    p.take_stderr()
        .expect("a piped stderr")
        .read_to_string(&mut err)?;
    assert!(p.join_timeout(LONG)?);
    assert_eq!(p.exitcode(), Some(0));
    assert_eq!((out.as_str(), err.as_str()), ("got hello\n", "note\n"));
    assert!(p.take_stdout().is_none(), "taken once");

    // stdin from /dev/null: the child's read_line sees end of file and prints "got ".
    let mut h = Builder::new()
        .context(ctx)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn(talk, ())?;
    let mut out = String::new();
    h.take_stdout().unwrap().read_to_string(&mut out)?;
    h.join()?;
    assert_eq!(out, "got \n");

    // A file as stdout; more than a pipe holds goes through a pipe read concurrently.
    let path = TempPath::new("stdout");
    let file = std::fs::File::create(&path.0)?;
    let n = Builder::new()
        .context(ctx)
        .stdout(file)
        .spawn(print_lines, 3)?
        .join()?;
    assert_eq!(n, 3);
    assert_eq!(
        std::fs::read_to_string(&path.0)?,
        "line 0\nline 1\nline 2\n"
    );
    let mut h = Builder::new()
        .context(ctx)
        .stdout(Stdio::piped())
        .spawn(print_lines, 20_000)?;
    let mut out = String::new();
    h.take_stdout().unwrap().read_to_string(&mut out)?;
    assert_eq!(h.join()?, 20_000);
    assert_eq!(out.lines().count(), 20_000);
    Ok(())
}

/// Reads a line and exits 0 if it is "x".
fn expect_x(_: ()) {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    std::process::exit(if line == "x\n" { 0 } else { 4 });
}

/// A child whose own stdin is closed (fd 0 is free, so new fds may take it) still
/// gives its child a working piped stdin.
#[allow(unsafe_code)]
fn piped_stdin_without_a_stdin(method: StartMethod) -> i32 {
    // SAFETY: close(2) of our own fd 0; nothing else in this child uses it.
    unsafe { libc::close(0) };
    let mut p = Process::new(expect_x, ())
        .context(get_context(method))
        .stdin(Stdio::piped());
    p.start().unwrap();
    p.take_stdin().unwrap().write_all(b"x\n").unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    p.exitcode().unwrap()
}

fn standard_streams_test(method: StartMethod) {
    let code = get_context(method)
        .spawn(piped_stdin_without_a_stdin, method)
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(code, 0);
    let fds = no_fd_leaked(method);
    standard_streams(method).unwrap();
    fds.check();
    quiescent();
}

// ----------------------------------------------- printing in a forked child

/// Prints a few lines with `println!` and returns.
fn chatty(n: u32) -> u32 {
    for i in 0..n {
        println!("child line {i}");
    }
    n
}

/// Point 3: a child prints with `println!` while another thread of the test prints
/// too. Under plain `cargo test` (libtest captures output) a fork child used to be a
/// copy of a thread with the test's capture buffer: its lines went into a copy of the
/// buffer (lost at its exit), and if the other thread held the buffer's lock at the
/// fork the child deadlocked on its first `println!`. Now its lines reach the real
/// standard output (here a pipe) and it never hangs.
fn printing_child_while_parent_prints(method: StartMethod) -> TestResult {
    let ctx = get_context(method);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let printer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // At most 32 MiB in all: libtest keeps captured output in memory.
            let big = "x".repeat(16 * 1024);
            for _ in 0..2048 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                println!("{big}");
                std::thread::yield_now();
            }
        })
    };
    let mut result = Ok(());
    for _ in 0..20 {
        let mut h = Builder::new()
            .context(ctx)
            .stdout(Stdio::piped())
            .spawn(chatty, 3)?;
        let mut out = String::new();
        h.take_stdout().unwrap().read_to_string(&mut out)?;
        let r = h.join_timeout(LONG);
        if out != "child line 0\nchild line 1\nchild line 2\n" || !matches!(r, Ok(3)) {
            result = Err(format!("the child printed {out:?} and ended with {r:?}"));
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    printer.join().unwrap();
    Ok(result?)
}

fn printing_child_while_parent_prints_test(method: StartMethod) {
    printing_child_while_parent_prints(method).unwrap();
    quiescent();
}

/// Prints `inner ` with `print!` (no newline: it stays in the buffer until the end).
fn print_inner(_: ()) {
    print!("inner ");
}

/// Prints a partial line, starts a child with `method` that prints, then forks by hand
/// (`os.fork`) a child that prints, and ends the line.
fn partial_line_then_children(method: StartMethod) -> i32 {
    print!("before ");
    let mut p = Process::new(print_inner, ()).context(get_context(method));
    p.start().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    match multiprocess::fork().unwrap() {
        multiprocess::Fork::Child => {
            print!("forked ");
            std::process::exit(0)
        }
        multiprocess::Fork::Parent(pid) => assert_eq!(multiprocess::waitpid(pid).unwrap(), 0),
    }
    println!("after");
    p.exitcode().unwrap_or(-1)
}

/// Python flushes standard output before it starts a child. A partial line in the
/// parent's buffer at a fork used to come out twice (the child, a copy, flushed it at
/// its end too: `before inner before forked before after`), and with spawn it came out
/// after the child's output (`inner before after`).
fn partial_line_printed_once_in_order_test(method: StartMethod) {
    let mut h = Builder::new()
        .context(get_context(method))
        .stdout(Stdio::piped())
        .spawn(partial_line_then_children, method)
        .unwrap();
    let mut out = String::new();
    h.take_stdout().unwrap().read_to_string(&mut out).unwrap();
    assert_eq!(h.join_timeout(LONG).unwrap(), 0);
    assert_eq!(out, "before inner forked after\n");
    quiescent();
}

for_each_method!(watchdog, serial: environment_at_start_test, standard_streams_test,
    printing_child_while_parent_prints_test, partial_line_printed_once_in_order_test);

// ------------------------------------------------------- any fd as a value

/// Writes into the file it was given, then receives a socket and a pidfd (through
/// the connection and the queue) and answers on the socket with the pidfd's pid.
fn use_passed_fds((file, conn, q): (Fd, Connection<Fd>, Queue<Fd>)) {
    file.into_file().write_all(b"written by the child").unwrap();
    let sock = conn.recv_timeout(CHILD_PATIENCE).unwrap();
    let pidfd = q.get_timeout(CHILD_PATIENCE).unwrap();
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd()))
        .unwrap_or_default();
    let pid = info
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .map(|p| p.trim().to_string())
        .unwrap_or_default();
    let mut s = std::os::unix::net::UnixStream::from(sock.into_owned());
    s.write_all(pid.as_bytes()).unwrap();
}

#[allow(unsafe_code)]
fn pidfd_of_self() -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open(2) on our own pid; the new fd is ours alone.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, std::process::id(), 0) };
    assert!(fd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    // SAFETY: as above: a fresh fd nobody else owns.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) }
}

/// A file in the args, a socket through a connection and a pidfd through a queue
/// reach the child as working descriptors (Python's `reduction.send_handle`).
fn fds_as_values(method: StartMethod) -> TestResult {
    let ctx = get_context(method);
    let path = TempPath::new("fd");
    let file = std::fs::File::create(&path.0)?;
    let (here, there) = multiprocess::pipe::<Fd>()?;
    let q = ctx.queue::<Fd>()?;
    let mut p = Process::new(use_passed_fds, (Fd::new(file), there, q.clone())).context(ctx);
    p.start()?;
    let (mut mine, theirs) = std::os::unix::net::UnixStream::pair()?;
    here.send(&Fd::new(theirs))?; // our copy of `theirs` is dropped with the Fd
    q.put(Fd::new(pidfd_of_self()))?;
    mine.set_read_timeout(Some(LONG))?;
    let mut got = String::new();
    mine.read_to_string(&mut got)?;
    assert!(p.join_timeout(LONG)?);
    assert_eq!(p.exitcode(), Some(0));
    assert_eq!(got, std::process::id().to_string());
    assert_eq!(std::fs::read_to_string(&path.0)?, "written by the child");
    // Outside the crate's messages an Fd does not serialize: a number means nothing.
    let f = Fd::new(std::fs::File::open("/dev/null")?);
    assert!(serde_json::to_string(&f).is_err());
    Ok(())
}

fn fds_as_values_test(method: StartMethod) {
    let fds = no_fd_leaked(method);
    fds_as_values(method).unwrap();
    fds.check();
    quiescent();
}

for_each_method!(watchdog, serial: fds_as_values_test);

// ------------------------------------------------------------ ctx.* forms

/// The start method a child was made with (a child's default is its parent's).
fn my_method(_: u32) -> StartMethod {
    multiprocess::get_start_method()
}

/// `ctx.pool(n)`, `ctx.executor(n)` and their builders start workers with the
/// context's method; the other `ctx.*` constructors give working objects.
fn context_constructors(method: StartMethod) -> TestResult {
    let ctx = get_context(method);
    let pool = ctx.pool(2)?;
    assert_eq!(pool.map(my_method, 0..4)?, [method; 4]);
    drop(pool);
    let pool = ctx.pool_builder().processes(1).build()?;
    assert_eq!(pool.apply(my_method, 0)?, method);
    drop(pool);
    let ex = ctx.executor(1)?;
    assert_eq!(ex.submit(my_method, 0)?.result()?, method);
    drop(ex);
    let ex = ctx.executor_builder().max_workers(1).build()?;
    assert_eq!(ex.submit(my_method, 0)?.result()?, method);
    drop(ex);
    assert_eq!(ctx.builder().spawn(my_method, 0)?.join()?, method);
    let (v, a) = (ctx.raw_value(5u64)?, ctx.raw_array(&[1u8, 2, 3])?);
    let (z, rz) = (ctx.array_zeroed::<u32>(3)?, ctx.raw_array_zeroed::<u16>(2)?);
    assert_eq!(
        (v.get(), a.to_vec(), z.to_vec(), rz.to_vec()),
        (5, vec![1, 2, 3], vec![0; 3], vec![0; 2])
    );
    let q = ctx.bounded_joinable_queue::<u8>(1)?;
    q.put(1)?;
    assert!(q.try_put(2).is_err());
    assert_eq!(q.get()?, 1);
    q.task_done()?;
    q.join();
    let t = ctx.barrier_with_timeout(2, std::time::Duration::from_millis(10))?;
    assert!(t.wait().is_err() && t.is_broken());
    let (a, b) = ctx.pipe::<u8>()?;
    let (r, w) = ctx.pipe_simplex::<u8>()?;
    a.send(&1)?;
    w.send(&2)?;
    assert_eq!((b.recv()?, r.recv()?), (1, 2));
    let m = ctx.manager_builder().start()?;
    let l = m.list::<u8>()?;
    l.push(3)?;
    assert_eq!(l.to_vec()?, [3]);
    m.shutdown()?;
    // (ctx.shared_memory starts the long-lived tracker helper: see its doctest.)
    Ok(())
}

fn context_constructors_test(method: StartMethod) {
    context_constructors(method).unwrap();
    quiescent();
}

// --------------------------------------------------- barrier action with data

/// The action: appends `tag` and the pid of the process that runs it to `path`.
fn record_pass((path, tag): (String, String)) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    writeln!(f, "{tag} {}", std::process::id()).unwrap();
}

/// A party: passes the barrier twice, then reports its pid.
fn barrier_party((b, conn): (multiprocess::Barrier, Connection<u32>)) {
    for _ in 0..2 {
        b.wait_timeout(CHILD_PATIENCE).unwrap();
    }
    conn.send(&std::process::id()).unwrap();
}

/// Python's `Barrier(n, action=partial(f, data))`: the action gets its data and runs
/// once per pass, in one of the parties (whichever completes the pass).
fn barrier_action_with_args(method: StartMethod) -> TestResult {
    let ctx = get_context(method);
    let path = TempPath::new("barrier");
    let b = ctx.barrier_with_action(3, record_pass, (path.as_string(), "pass".to_string()))?;
    let mut pids = vec![std::process::id()];
    let mut procs = Vec::new();
    let mut conns = Vec::new();
    for _ in 0..2 {
        let (here, there) = multiprocess::pipe::<u32>()?;
        let mut p = Process::new(barrier_party, (b.clone(), there)).context(ctx);
        p.start()?;
        procs.push(p);
        conns.push(here);
    }
    for _ in 0..2 {
        b.wait_timeout(LONG)?;
    }
    for c in &conns {
        pids.push(c.recv_timeout(LONG)?);
    }
    for p in &procs {
        assert!(p.join_timeout(LONG)?);
        assert_eq!(p.exitcode(), Some(0));
    }
    let log = std::fs::read_to_string(&path.0)?;
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "one action per pass: {log:?}");
    for l in lines {
        let (tag, pid) = l.split_once(' ').unwrap();
        assert_eq!(tag, "pass");
        assert!(
            pids.contains(&pid.parse()?),
            "{pid} is not a party: {pids:?}"
        );
    }
    // Handles cannot live in the barrier's shared memory.
    fn with_conn(_: Connection<u8>) {}
    let (c, _d) = multiprocess::pipe::<u8>()?;
    let e = multiprocess::Barrier::with_action_args(2, with_conn, c).unwrap_err();
    assert_eq!(e.kind(), multiprocess::ErrorKind::InvalidInput);
    Ok(())
}

fn barrier_action_with_args_test(method: StartMethod) {
    barrier_action_with_args(method).unwrap();
    quiescent();
}

for_each_method!(watchdog, serial: context_constructors_test, barrier_action_with_args_test);

// ------------------------------------------------------- wait over one type

/// Sends `n` back once the parent says go (or gives up with the parent).
fn answer_when_told((conn, n): (Connection<u32>, u32)) {
    if conn.recv_timeout(CHILD_PATIENCE).is_ok() {
        let _ = conn.send(&n);
    }
}

/// `wait` takes a `Vec<Connection<T>>`, a `&[Process<A>]`, a `Vec<&JoinHandle<R>>` and
/// an array as they are, without `as &dyn Waitable`; a mixed list still works.
fn wait_over_one_type(method: StartMethod) -> TestResult {
    use multiprocess::{Waitable, wait};
    let ctx = get_context(method);
    let mut conns: Vec<Connection<u32>> = Vec::new();
    let mut procs = Vec::new();
    for n in 0..3 {
        let (here, there) = multiprocess::pipe::<u32>()?;
        let mut p = Process::new(answer_when_told, (there, n)).context(ctx);
        p.start()?;
        conns.push(here);
        procs.push(p);
    }
    assert!(wait(&conns, Some(std::time::Duration::ZERO))?.is_empty());
    conns[1].send(&0)?;
    assert_eq!(wait(&conns, Some(LONG))?, [1]);
    assert_eq!(conns[1].recv()?, 1);
    for c in [&conns[0], &conns[2]] {
        c.send(&0)?;
    }
    for p in &procs {
        assert!(p.join_timeout(LONG)?);
    }
    assert_eq!(wait(&procs[..], Some(LONG))?, [0, 1, 2]);
    let refs: Vec<&Connection<u32>> = conns.iter().collect();
    assert_eq!(wait(&refs, Some(LONG))?, [0, 1, 2]); // answers, or ends of stream
    let handles = [ctx.spawn(common::double, 1)?, ctx.spawn(common::double, 2)?];
    let hrefs: Vec<_> = handles.iter().collect();
    let mut ready = Vec::new();
    assert!(common::eventually(LONG, || {
        ready = wait(&hrefs, Some(LONG)).unwrap();
        ready.len() == 2
    }));
    assert_eq!(
        wait(&[&conns[0] as &dyn Waitable, &procs[1]], Some(LONG))?,
        [0, 1]
    );
    for h in handles {
        h.join()?;
    }
    Ok(())
}

fn wait_over_one_type_test(method: StartMethod) {
    wait_over_one_type(method).unwrap();
    quiescent();
}

for_each_method!(watchdog, serial: wait_over_one_type_test);

// ---------------------------------------------------------------- naming

/// Reports its own name and the semaphore's value, through the convention's getters.
fn names_and_values(sem: multiprocess::Semaphore) -> (String, u32, bool) {
    let me = multiprocess::current_process();
    (me.name().to_string(), sem.value(), me.is_daemon())
}

/// One convention: getters without `get_` (`value()`, `name()` of the current
/// process), the builder's `name(..)` set and `get_name()` read; the deprecated
/// Python spelling gives the same answer.
fn naming_convention(method: StartMethod) -> TestResult {
    let ctx = get_context(method);
    let sem = ctx.semaphore(2)?;
    let _held = sem.acquire();
    let h = ctx
        .builder()
        .name("named")
        .spawn(names_and_values, sem.clone())?;
    assert_eq!(h.join()?, ("named".to_string(), 1, false));
    #[allow(deprecated)]
    let python = sem.get_value();
    assert_eq!((sem.value(), python), (1, 1));
    let p = ctx.process(common::noop, ()).name("n2");
    assert_eq!((p.get_name(), p.is_daemon()), ("n2", false));
    Ok(())
}

fn naming_convention_test(method: StartMethod) {
    naming_convention(method).unwrap();
}

for_each_method!(watchdog: naming_convention_test);
