//! A short tour of `multiprocess`, in the order a Python user meets `multiprocessing`.
//!
//! Run it with `cargo run --release --example tour`. Each section prints what it shows;
//! the whole tour takes about a second.

use std::time::{Duration, Instant};

use multiprocess::{
    Connection, ErrorKind, Process, StartMethod, Waitable, current_process, get_context,
    parent_process,
};

fn section(title: &str) {
    println!("\n== {title} ==");
}

// ---- 1. Processes -------------------------------------------------------------------

fn hello(greeting: String) {
    let me = current_process();
    let parent = parent_process().expect("a child has a parent");
    println!(
        "  {greeting} from {} (pid {}), child of {} (pid {})",
        me.name(),
        me.pid(),
        parent.name(),
        parent.pid()
    );
}

fn exit_with(code: i32) {
    std::process::exit(code);
}

fn panics(_: ()) {
    panic!("something went wrong in the child");
}

fn sleeps(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

// ---- 2. spawn: a process as a function call ----------------------------------------

fn fib(n: u32) -> u64 {
    if n < 2 {
        n as u64
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

// ---- 3. Pipes ------------------------------------------------------------------------

fn pipe_child(conn: Connection<(i32, Option<()>, String)>) {
    conn.send(&(50, None, "Hello".into())).expect("send");
}

fn upper(conn: Connection<String>) {
    while let Ok(s) = conn.recv() {
        conn.send(&s.to_uppercase()).expect("send");
    }
}

/// Receives a connection *through* a connection, then answers on it.
fn relay(inbox: Connection<Connection<String>>) {
    let conn = inbox.recv().expect("a connection arrives");
    conn.send(&format!(
        "hello over a pipe that came through a pipe, from pid {}",
        std::process::id()
    ))
    .expect("send");
}

fn report(args: (Connection<String>, u64)) {
    let (conn, ms) = args;
    std::thread::sleep(Duration::from_millis(ms));
    conn.send(&format!("{} done after {ms} ms", current_process().name()))
        .expect("send");
}

// ---- 4. Children never outlive their parent ------------------------------------------

fn middle(conn: Connection<u32>) {
    let mut grandchild = Process::new(sleeps, 60_000);
    grandchild.start().expect("start");
    conn.send(&grandchild.pid().expect("started"))
        .expect("send");
    std::thread::sleep(Duration::from_secs(60));
}

// ---- 5. Synchronization across processes -------------------------------------------

fn hold_and_die(lock: multiprocess::Lock) {
    lock.acquire().keep(); // take it...
    std::process::exit(0); // ...and die holding it
}

fn party((barrier, ev): (multiprocess::Barrier, multiprocess::Event)) {
    let index = barrier.wait().expect("barrier");
    if index == 0 {
        ev.set();
    }
}

// ---- 6. Queues ------------------------------------------------------------------------

fn square_worker(
    (jobs, results): (
        multiprocess::JoinableQueue<u64>,
        multiprocess::Queue<(u64, u64)>,
    ),
) {
    while let Ok(n) = jobs.get() {
        results.put((n, n * n)).expect("put");
        jobs.task_done().expect("task_done");
    }
}

// ---- Pools and executors ---------------------------------------------------------------

fn square(x: u64) -> u64 {
    x * x
}

fn checked_div((a, b): (i64, i64)) -> i64 {
    assert!(b != 0, "division of {a} by zero");
    a / b
}

fn crash(_: ()) -> u64 {
    std::process::abort()
}

fn stuck(_: ()) -> u64 {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

// ---- Managers -------------------------------------------------------------------------

/// Counts words into a manager dict; the manager lock makes get+insert atomic.
fn count_words(
    (words, counts, lock): (
        multiprocess::QueueProxy<String>,
        multiprocess::DictProxy<String, u32>,
        multiprocess::LockProxy,
    ),
) {
    while let Ok(w) = words.try_get() {
        let _g = lock.acquire().unwrap();
        let n = counts.get(&w).unwrap().unwrap_or(0);
        counts.insert(w, n + 1).unwrap();
    }
}

fn pid_alive(pid: u32) -> bool {
    // A zombie has exited; only a live process counts.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

// ---- Beyond one machine (feature `redis`) ---------------------------------------------

/// A worker host: this binary, started as a child process (so it dies with the tour),
/// serving the cluster at `url` with one local worker process.
#[cfg(feature = "redis")]
fn worker_host((url, name): (String, String)) {
    let w = multiprocess::pool::cluster::Worker::new(&url, b"tour key")
        .processes(1)
        .name(&name);
    if let Err(e) = w.run() {
        eprintln!("  worker host {name}: {e}");
    }
}

#[cfg(feature = "redis")]
fn cluster_section() -> multiprocess::Result<()> {
    section("beyond one machine: the same Pool, its workers on hosts behind Redis");
    let Some(server) = multiprocess::broker::RedisServer::start_if_installed()? else {
        println!(
            "  redis-server is not installed: `apt-get install redis-server` (Debian, \
             Ubuntu) or `brew install redis` (macOS), then run the tour again"
        );
        return Ok(());
    };
    // Two "hosts" on this machine: copies of this binary in worker mode.
    let mut hosts: Vec<Process<(String, String)>> = (1..=2)
        .map(|i| Process::new(worker_host, (server.url().to_string(), format!("host-{i}"))))
        .collect();
    for h in &mut hosts {
        h.start()?;
    }
    let pool = multiprocess::Pool::builder()
        .redis(server.url())
        .key(b"tour key")
        .build()?;
    let until = Instant::now() + Duration::from_secs(30);
    while pool.cluster_stats().is_none_or(|s| s.hosts.len() < 2) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = Instant::now();
    let v = pool.map(square, 0..100_000u64)?;
    println!(
        "  map of 100,000 items over 2 hosts: sum of squares {} in {:.0} ms",
        v.iter().sum::<u64>(),
        t.elapsed().as_secs_f64() * 1000.0
    );
    let e = pool.apply(crash, ()).unwrap_err();
    println!("  a task that aborts on a host: {:?}", e.kind());
    println!("  and the hosts go on: fib(20) = {}", pool.apply(fib, 20)?);
    let workers: Vec<String> = pool.stats().into_iter().map(|w| w.name).collect();
    println!("  the hosts' workers: {workers:?}");
    drop(pool);
    for h in &mut hosts {
        h.kill()?;
        h.join()?;
    }
    Ok(())
}

fn main() -> multiprocess::Result<()> {
    // First line of main: in a child, runs its task and exits.
    multiprocess::init();
    let t0 = Instant::now();
    println!(
        "multiprocess tour: {} usable CPUs, default start method {}",
        multiprocess::cpu_count(),
        multiprocess::get_start_method()
    );

    section("Process, under each start method");
    for method in multiprocess::get_all_start_methods() {
        let mut p = get_context(method).process(hello, format!("hello via {method}"));
        p.start()?;
        p.join()?;
        println!("  {method}: exitcode {:?}", p.exitcode());
    }

    section("exit codes follow Python");
    let mut ok = Process::new(sleeps, 0);
    let mut exits = Process::new(exit_with, 3);
    let mut panicking = Process::new(panics, ());
    let mut killed = Process::new(sleeps, 10_000);
    ok.start()?;
    exits.start()?;
    panicking.start()?;
    killed.start()?;
    killed.terminate()?;
    for (what, code) in [
        ("returns", {
            ok.join()?;
            ok.exitcode()
        }),
        ("exit(3)", {
            exits.join()?;
            exits.exitcode()
        }),
        ("panics (message above, on stderr)", {
            panicking.join()?;
            panicking.exitcode()
        }),
        ("terminated (SIGTERM)", {
            killed.join()?;
            killed.exitcode()
        }),
    ] {
        println!("  a child that {what}: exitcode {code:?}");
    }

    section("join with a timeout, then terminate (seed 003's timeout control)");
    let mut slow = Process::new(sleeps, 10_000);
    slow.start()?;
    let ended = slow.join_timeout(Duration::from_millis(100))?;
    println!(
        "  ended within 100 ms? {ended}; alive? {}",
        slow.is_alive()?
    );
    slow.terminate()?;
    slow.join()?;
    println!("  after terminate: exitcode {:?}", slow.exitcode());

    section("spawn: the return value, or how the child failed");
    println!(
        "  fib(25) computed in a child = {}",
        multiprocess::spawn(fib, 25)?.join()?
    );
    let err = multiprocess::spawn(|_: ()| -> u8 { panic!("no value for you") }, ())?
        .join()
        .unwrap_err();
    println!("  a panicking child: {:?}: {err}", err.kind());
    let h = multiprocess::spawn(
        |ms: u64| std::thread::sleep(Duration::from_millis(ms)),
        10_000,
    )?;
    h.kill()?;
    let err = h.join().unwrap_err();
    println!("  a killed child: {:?}: {err}", err.kind());

    section("Pipe: values, and connections sent through connections");
    let (parent_end, child_end) = multiprocess::pipe()?;
    let mut p = Process::new(pipe_child, child_end);
    p.start()?;
    let (a, b, c) = parent_end.recv()?;
    println!(
        "  received [{a}, {}, '{c}']",
        if b.is_none() { "None" } else { "?" }
    );
    p.join()?;

    let (here, there) = multiprocess::pipe::<String>()?;
    let mut p = get_context(StartMethod::Spawn).process(upper, there);
    p.start()?;
    here.send(&"shout this".to_string())?;
    println!("  echoed by a spawned child: {}", here.recv()?);
    drop(here); // the child's recv() sees Disconnected and it returns
    p.join()?;

    let (inbox_here, inbox_there) = multiprocess::pipe::<Connection<String>>()?;
    let mut p = Process::new(relay, inbox_there);
    p.start()?;
    let (mine, theirs) = multiprocess::pipe::<String>()?;
    inbox_here.send(&theirs)?;
    drop(theirs);
    println!("  {}", mine.recv_timeout(Duration::from_secs(10))?);
    p.join()?;

    let (a, b) = multiprocess::pipe::<u8>()?;
    drop(a);
    println!(
        "  recv after the peer closed: {:?}",
        b.recv().unwrap_err().kind()
    );

    section("wait() over connections and process sentinels");
    let mut procs = Vec::new();
    let mut conns = Vec::new();
    for ms in [150u64, 50, 100] {
        let (here, there) = multiprocess::pipe::<String>()?;
        let mut p = Process::new(report, (there, ms));
        p.start()?;
        procs.push(p);
        conns.push(here);
    }
    let mut pending: Vec<usize> = (0..conns.len()).collect();
    while !pending.is_empty() {
        let objs: Vec<&dyn Waitable> = pending
            .iter()
            .map(|&i| &conns[i] as &dyn Waitable)
            .collect();
        let ready = multiprocess::wait(&objs, Some(Duration::from_secs(10)))?;
        for &k in &ready {
            println!("  ready: {}", conns[pending[k]].recv()?);
        }
        let done: Vec<usize> = ready.iter().map(|&k| pending[k]).collect();
        pending.retain(|i| !done.contains(i));
    }
    let sentinels: Vec<&dyn Waitable> = procs.iter().map(|p| p as &dyn Waitable).collect();
    multiprocess::wait(&sentinels, Some(Duration::from_secs(10)))?;
    for p in &procs {
        p.join()?;
    }
    println!("  all {} sentinels ready", procs.len());

    section("no orphans: a SIGKILLed parent takes its children along");
    let (here, there) = multiprocess::pipe::<u32>()?;
    let mut mid = Process::new(middle, there);
    mid.start()?;
    let grandchild = here.recv_timeout(Duration::from_secs(10))?;
    println!(
        "  middle process {} started grandchild {grandchild}; killing the middle one with SIGKILL",
        mid.pid().unwrap_or(0)
    );
    mid.kill()?;
    mid.join()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while pid_alive(grandchild) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("  grandchild still alive? {}", pid_alive(grandchild));

    section("locks, events and barriers across processes");
    let lock = multiprocess::Lock::new()?;
    let mut p = Process::new(hold_and_die, lock.clone());
    p.start()?;
    p.join()?;
    let t = Instant::now();
    let g = lock.acquire();
    println!(
        "  a child died holding the lock: we got it after {:.0} ms, owner_died = {}",
        t.elapsed().as_secs_f64() * 1000.0,
        g.owner_died()
    );
    drop(g);
    let barrier = multiprocess::Barrier::new(4)?;
    let ev = multiprocess::Event::new()?;
    let mut parties: Vec<_> = (0..3)
        .map(|_| Process::new(party, (barrier.clone(), ev.clone())))
        .collect();
    for p in &mut parties {
        p.start()?;
    }
    let mine = barrier.wait()?;
    if mine == 0 {
        ev.set();
    }
    let set = ev.wait_timeout(Duration::from_secs(10));
    for p in &parties {
        p.join()?;
    }
    println!(
        "  4 parties passed a barrier together (our index {mine}); index 0 set the event: {set}"
    );

    section("queues: jobs to two workers, results back");
    let jobs = multiprocess::JoinableQueue::new()?;
    let results = multiprocess::Queue::new()?;
    let mut workers: Vec<_> = (0..2)
        .map(|_| Process::new(square_worker, (jobs.clone(), results.clone())).daemon(true))
        .collect();
    for w in &mut workers {
        w.start()?;
    }
    for n in 1..=10 {
        jobs.put(n)?;
    }
    jobs.join(); // every job acknowledged
    let mut squares: Vec<(u64, u64)> = (0..10).map(|_| results.get()).collect::<Result<_, _>>()?;
    squares.sort();
    println!(
        "  squares computed by two processes: {:?}",
        squares.iter().map(|p| p.1).collect::<Vec<_>>()
    );
    let full = multiprocess::Queue::bounded(1)?;
    full.put(1u8)?;
    println!(
        "  try_put on a full queue gives the item back: {:?}",
        full.try_put(2).map_err(|e| e.into_inner())
    );
    for w in &workers {
        w.terminate()?;
        w.join()?;
    }

    section("Pool: map, imap, apply_async, and workers that crash or hang");
    let pool = multiprocess::Pool::new(2)?;
    println!("  map(square, 0..10) = {:?}", pool.map(square, 0..10)?);
    let firsts: Vec<u64> = pool
        .imap(square, 1..) // an endless input, pulled lazily
        .take(5)
        .collect::<Result<_, _>>()?;
    println!("  imap over 1.. (endless), first five: {firsts:?}");
    let (tx, rx) = std::sync::mpsc::channel();
    let opts = multiprocess::Options::new().callback(move |v: &i64| tx.send(*v).unwrap());
    let r = pool.apply_async_with(checked_div, (84, 2), opts)?;
    println!(
        "  apply_async with a callback: get() = {}, callback saw {}",
        r.get()?,
        rx.recv().unwrap()
    );
    let e = pool.apply(checked_div, (1, 0)).unwrap_err();
    println!(
        "  a panicking task: {:?}: {}",
        e.kind(),
        e.to_string().lines().next().unwrap_or("")
    );
    let e = pool.apply(crash, ()).unwrap_err();
    println!("  a task that aborts its worker: {:?}: {e}", e.kind());
    let quick = multiprocess::Options::new().timeout(Duration::from_millis(100));
    let e = pool.apply_async_with(stuck, (), quick)?.get().unwrap_err();
    println!(
        "  a task stuck forever, 100 ms timeout: {:?}: {e}",
        e.kind()
    );
    println!(
        "  and the pool goes on: apply(square, 12) = {}",
        pool.apply(square, 12)?
    );
    pool.close();
    pool.join()?;

    section("executors and futures");
    let ex = multiprocess::futures::ProcessPoolExecutor::new(2)?;
    let fs: Vec<_> = (1..=4)
        .map(|i| ex.submit(square, i))
        .collect::<Result<_, _>>()?;
    let done =
        multiprocess::futures::wait(&fs, None, multiprocess::futures::ReturnWhen::FirstCompleted);
    println!("  wait(FIRST_COMPLETED): {} done", done.done.len());
    let mut all: Vec<u64> = multiprocess::futures::as_completed(&fs, None)
        .map(|f| f?.result())
        .collect::<Result<_, _>>()?;
    all.sort();
    println!("  as_completed: {all:?}");
    ex.shutdown(true, false);
    let threads = multiprocess::ThreadPool::new(2)?;
    let offset = 100;
    println!(
        "  ThreadPool with a capturing closure: {:?}",
        threads.map(move |x: u64| x + offset, 0..3)?
    );

    section("managers: a shared dict, queue and lock in a server process");
    let manager = multiprocess::Manager::start()?; // Python: with Manager() as manager:
    let (words, counts, lock) = (manager.queue()?, manager.dict()?, manager.lock()?);
    for w in "the cat saw the dog and the bird".split(' ') {
        words.put(w.to_string())?;
    }
    let mut ps: Vec<_> = (0..3)
        .map(|_| Process::new(count_words, (words.clone(), counts.clone(), lock.clone())))
        .collect();
    for p in &mut ps {
        p.start()?;
    }
    for p in &ps {
        p.join()?;
    }
    let mut items = counts.items()?;
    items.sort();
    println!("  word counts from 3 processes: {items:?}");
    // Any program with the address and authkey can connect (see manager_client.rs).
    let other = multiprocess::Manager::connect(manager.address(), manager.authkey())?;
    let same: multiprocess::DictProxy<String, u32> = other.dict()?;
    same.insert("remote".into(), 1)?;
    println!(
        "  manager at {} serves any process that knows its key",
        manager.address()
    );
    drop(other);
    drop(manager); // the last handle: the server process stops

    section("rules that protect you");
    let mut once = Process::new(sleeps, 0);
    once.start()?;
    println!("  start twice: {:?}", once.start().unwrap_err().kind());
    once.join()?;
    once.close()?;
    println!("  join after close: {:?}", once.join().unwrap_err().kind());
    let not_started = Process::new(sleeps, 0);
    println!(
        "  sentinel before start: {:?}",
        not_started.sentinel().unwrap_err().kind()
    );
    assert_eq!(
        not_started.sentinel().unwrap_err().kind(),
        ErrorKind::InvalidState
    );
    println!(
        "  children left running: {}",
        multiprocess::active_children().len()
    );

    #[cfg(feature = "redis")]
    cluster_section()?;
    #[cfg(not(feature = "redis"))]
    println!("\n(to see a Pool over worker hosts behind Redis: --features redis)");

    println!(
        "\ntour finished in {:.0} ms",
        t0.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}
