//! Manager conformance to Python's managers, under every start method: every proxy type
//! mutated in a child and read in the parent; remote managers reached by an unrelated
//! process (this test binary re-executed); wrong authkeys; shutting down and restarting
//! at the same address; bad frames; lifetime (drop, owner killed).

multiprocess::test_support!();

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use multiprocess::{
    BarrierProxy, Client, ConditionProxy, DictProxy, ErrorKind, ListProxy, LockProxy, Manager,
    ManagerServer, Process, QueueProxy, Served, SharedObject, StartMethod, get_context, invoke,
};
use serde::Serialize;

use common::objects::{All, make_all};
use common::{LONG, TempPath, assert_gone};

fn start(method: StartMethod) -> Manager {
    get_context(method).manager().expect("start a manager")
}

/// Shuts `m` down and checks its process is gone.
fn stop(m: Manager) {
    let pid = m.pid().expect("an owned manager has a pid");
    m.shutdown().unwrap();
    assert_gone(pid);
}

fn join(p: &Process<impl Serialize + serde::de::DeserializeOwned + 'static>) {
    assert!(
        p.join_timeout(LONG).unwrap(),
        "child did not finish in time"
    );
    assert_eq!(p.exitcode(), Some(0), "child failed");
}

// ------------------------------------------------------------- every proxy type

fn every_proxy_type_mutated_in_a_child(method: StartMethod) {
    let m = start(method);
    common::objects::every_proxy_type_mutated_in_a_child(&m, method);
    stop(m);
}

// ------------------------------------------------------------- condition, barrier

fn condition_across_processes(method: StartMethod) {
    let m = start(method);
    common::objects::condition_across_processes(&m, method);
    stop(m);
}

fn barrier_of_five(method: StartMethod) {
    let m = start(method);
    common::objects::barrier_of_five(&m, method);
    stop(m);
}

for_each_method!(
    every_proxy_type_mutated_in_a_child,
    condition_across_processes,
    barrier_of_five,
    shutdown_and_restart_at_the_same_address,
    server_dies_with_its_owner,
);

// ------------------------------------------------------------- lifetime

fn shutdown_and_restart_at_the_same_address(method: StartMethod) {
    let path = TempPath::new("mgr");
    let abs = format!("@mp-test-mgr-{}-{method}", std::process::id());
    for addr in [abs, path.as_string(), "127.0.0.1:0".to_string()] {
        let m = Manager::builder()
            .address(&addr)
            .authkey(b"k")
            .context(get_context(method))
            .start()
            .unwrap();
        let addr = m.address().to_string();
        let d = m.dict::<u8, u8>().unwrap();
        d.insert(1, 1).unwrap();
        // Binding the address of a running manager fails.
        let again = Manager::builder().address(&addr).start().unwrap_err();
        assert_eq!(again.kind(), ErrorKind::AlreadyExists);
        stop(m);
        assert!(d.get(&1).is_err(), "the old server is gone");
        let m2 = Manager::builder()
            .address(&addr)
            .authkey(b"k")
            .context(get_context(method))
            .start()
            .unwrap();
        // A proxy of the old server does not reach into the new one.
        assert!(d.get(&1).is_err());
        let d2 = m2.dict::<u8, u8>().unwrap();
        d2.insert(2, 2).unwrap();
        assert_eq!(d2.items().unwrap(), vec![(2, 2)]);
        stop(m2);
    }
}

fn start_manager_and_wait(tx: multiprocess::Connection<u32>) {
    let m = Manager::start().unwrap();
    tx.send(&m.pid().unwrap()).unwrap();
    std::thread::sleep(Duration::from_secs(60));
    drop(m);
}

fn server_dies_with_its_owner(method: StartMethod) {
    // Dropping the last handle stops the server.
    let m = start(method);
    let pid = m.pid().unwrap();
    let m2 = m.clone();
    drop(m);
    assert!(common::is_running(pid), "a clone still holds it");
    drop(m2);
    assert_gone(pid);
    // An owner killed by SIGKILL takes its manager along.
    let (rx, tx) = multiprocess::pipe::<u32>().unwrap();
    let mut p = get_context(method).process(start_manager_and_wait, tx);
    p.start().unwrap();
    let server = rx.recv_timeout(LONG).unwrap();
    assert!(common::is_running(server));
    p.kill().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    assert_gone(server);
}

// ------------------------------------------------------------- remote managers

const CLIENT_ENV: &str = "MP_TEST_MANAGER_CLIENT";

/// Not a test of its own: the body of the unrelated client process. The test binary
/// is re-executed with `--exact remote_client_entry` and the address in the
/// environment; run as an ordinary test it does nothing.
#[test]
fn remote_client_entry() {
    let Ok(spec) = std::env::var(CLIENT_ENV) else {
        return;
    };
    let (addr, key) = spec.split_once('|').expect("address|key");
    match Manager::connect(addr, key) {
        Ok(m) => {
            let q: QueueProxy<(u32, String)> = m.get("get_queue").unwrap();
            for i in 0..10 {
                q.put((i, format!("item {i} from pid {}", std::process::id())))
                    .unwrap();
            }
            // Asking for the queue as a dict is a clear error.
            let wrong = m.get::<DictProxy<u8, u8>>("get_queue").unwrap_err();
            assert_eq!(wrong.kind(), ErrorKind::InvalidInput);
            let missing = m.get::<QueueProxy<u8>>("nope").unwrap_err();
            assert_eq!(missing.kind(), ErrorKind::NotFound);
        }
        Err(e) if e.kind() == ErrorKind::Authentication => std::process::exit(3),
        Err(e) => panic!("connect: {e}"),
    }
}

fn run_unrelated_client(addr: &str, key: &str) -> i32 {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "remote_client_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CLIENT_ENV, format!("{addr}|{key}"))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + LONG;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the client process hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn remote_manager_with_an_unrelated_client() {
    let _g = common::shared();
    for address in [
        "127.0.0.1:0".to_string(),
        format!("@mp-test-remote-{}", std::process::id()),
    ] {
        let server = ManagerServer::bind(&address, "abracadabra").unwrap();
        server.register("get_queue", Served::queue());
        let addr = server.address().to_string();
        let s = server.clone();
        let t = std::thread::spawn(move || s.serve_forever());
        // A wrong key fails in the client (exit code 3) and the server goes on.
        assert_eq!(run_unrelated_client(&addr, "wrong"), 3);
        assert_eq!(run_unrelated_client(&addr, "abracadabra"), 0);
        // The server reads what the other program put.
        let m = Manager::connect(&addr, "abracadabra").unwrap();
        let q: QueueProxy<(u32, String)> = m.get("get_queue").unwrap();
        for i in 0..10 {
            let (n, s) = q.get_timeout(LONG).unwrap();
            assert_eq!(n, i);
            assert!(s.starts_with(&format!("item {i} from pid")));
        }
        assert!(q.is_empty().unwrap());
        assert_eq!(
            Manager::connect(&addr, "wrong").unwrap_err().kind(),
            ErrorKind::Authentication
        );
        // A client may stop the server; serve_forever returns.
        m.shutdown().unwrap();
        t.join().unwrap().unwrap();
    }
}

#[derive(Default)]
struct Counter {
    n: i64,
}

impl SharedObject for Counter {
    fn methods(&self) -> &'static [&'static str] {
        &["add", "get"]
    }
    fn call(&mut self, method: &str, args: &[u8]) -> multiprocess::Result<Vec<u8>> {
        match method {
            "add" => invoke(args, |by: i64| {
                self.n += by;
                self.n
            }),
            "get" => invoke(args, |(): ()| self.n),
            _ => unreachable!("the server checks the name"),
        }
    }
}

fn new_counter() -> Box<dyn SharedObject> {
    Box::new(Counter::default())
}

fn add_ten(c: multiprocess::ObjectProxy) {
    for _ in 0..10 {
        c.call::<_, i64>("add", &1i64).unwrap();
    }
}

fn custom_types(method: StartMethod) {
    let m = Manager::builder()
        .context(get_context(method))
        .register_type("Counter", new_counter)
        .start()
        .unwrap();
    let c = m.create("Counter").unwrap();
    let mut p = get_context(method).process(add_ten, c.clone());
    p.start().unwrap();
    add_ten(c.clone());
    join(&p);
    assert_eq!(c.call::<_, i64>("get", &()).unwrap(), 20);
    let e = c.call::<_, i64>("sub", &1i64).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("add"), "{e}");
    assert_eq!(m.create("Nope").unwrap_err().kind(), ErrorKind::NotFound);
    stop(m);
}

for_each_method!(
    custom_types,
    proxies_travel_through_a_queue,
    a_dead_holder_frees_the_lock
);

#[test]
fn a_registered_custom_object_in_a_server() {
    let _g = common::shared();
    let server = ManagerServer::bind("127.0.0.1:0", "k").unwrap();
    server.register("counter", Served::object(Counter { n: 5 }));
    let s = server.clone();
    let t = std::thread::spawn(move || s.serve_forever());
    let m = Manager::connect(server.address(), "k").unwrap();
    let c: multiprocess::ObjectProxy = m.get("counter").unwrap();
    assert_eq!(c.call::<_, i64>("add", &2i64).unwrap(), 7);
    assert_eq!(m.registered().unwrap(), vec!["counter"]);
    server.shutdown();
    t.join().unwrap().unwrap();
}

// ------------------------------------------------------------- proxies as values

fn receive_proxy(q: multiprocess::Queue<DictProxy<String, u32>>) {
    let d = q.get_timeout(LONG).unwrap();
    d.insert("seen".into(), std::process::id()).unwrap();
}

fn proxies_travel_through_a_queue(method: StartMethod) {
    let m = start(method);
    let q = get_context(method).queue().unwrap();
    let mut p = get_context(method).process(receive_proxy, q.clone());
    p.start().unwrap();
    let d = m.dict::<String, u32>().unwrap();
    q.put(d.clone()).unwrap();
    join(&p);
    assert_eq!(d.get(&"seen".into()).unwrap(), p.pid());
    stop(m);
}

fn hold_and_die(lock: LockProxy) {
    lock.acquire().unwrap().keep();
    std::process::exit(0);
}

fn a_dead_holder_frees_the_lock(method: StartMethod) {
    let m = start(method);
    let lock = m.lock().unwrap();
    let mut p = get_context(method).process(hold_and_die, lock.clone());
    p.start().unwrap();
    join(&p);
    let g = lock.acquire_timeout(LONG).unwrap();
    assert!(g.is_some(), "the server released the dead holder's lock");
    drop(g);
    stop(m);
}

// ------------------------------------------------------------- bad input

#[test]
fn a_bad_frame_closes_only_that_connection() {
    let _g = common::shared();
    let m = Manager::start().unwrap();
    let d = m.dict::<u8, u8>().unwrap();
    d.insert(1, 1).unwrap();
    for bytes in [
        // 1 TiB announced.
        [
            &0x4d50_4652u32.to_le_bytes()[..],
            &0u32.to_le_bytes(),
            &(1u64 << 40).to_le_bytes(),
        ]
        .concat(),
        // Garbage.
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        // A well-formed frame that is not a request.
        [
            &0x4d50_4652u32.to_le_bytes()[..],
            &0u32.to_le_bytes(),
            &3u64.to_le_bytes(),
            b"\xff\xff\xff",
        ]
        .concat(),
    ] {
        let c = Client::connect::<()>(m.address(), m.authkey()).unwrap();
        let mut s = UnixStream::from(c.as_fd().try_clone_to_owned().unwrap());
        drop(c);
        s.write_all(&bytes).unwrap();
        s.set_read_timeout(Some(LONG)).unwrap();
        let mut rest = Vec::new();
        // The server answers at most an error frame, then closes (a reset when it
        // closes with our bytes unread).
        match s.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
        // Everything else still works.
        assert_eq!(d.get(&1).unwrap(), Some(1));
    }
    // A value holding a handle cannot be stored.
    let (a, _b) = multiprocess::pipe::<u8>().unwrap();
    let l = m.list::<multiprocess::Connection<u8>>().unwrap();
    assert_eq!(l.push(a).unwrap_err().kind(), ErrorKind::Serialize);
    stop(m);
}

#[test]
fn wrong_authkey_is_refused() {
    let _g = common::shared();
    let m = Manager::builder().authkey("right").start().unwrap();
    let e = Manager::connect(m.address(), "wrong").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication);
    let e = Manager::connect(m.address(), None).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            ErrorKind::Disconnected | ErrorKind::Authentication
        ),
        "{e}"
    );
    let ok = Manager::connect(m.address(), "right").unwrap();
    ok.list::<u8>().unwrap().push(1).unwrap();
    stop(m);
}

// ------------------------------------------------------------- names, notify counts

struct WhoAmI;

impl SharedObject for WhoAmI {
    fn methods(&self) -> &'static [&'static str] {
        &["name"]
    }
    fn call(&mut self, _: &str, args: &[u8]) -> multiprocess::Result<Vec<u8>> {
        invoke(args, |(): ()| {
            multiprocess::current_process().name().to_string()
        })
    }
}

fn who_am_i() -> Box<dyn SharedObject> {
    Box::new(WhoAmI)
}

#[test]
fn the_server_process_is_named_manager_n() {
    let _g = common::shared();
    let m = Manager::builder()
        .register_type("WhoAmI", who_am_i)
        .start()
        .unwrap();
    let name: String = m.create("WhoAmI").unwrap().call("name", &()).unwrap();
    assert!(name.starts_with("Manager-"), "{name}");
    assert!(name["Manager-".len()..].parse::<u32>().is_ok(), "{name}");
    stop(m);
}

#[test]
fn condition_notify_wakes_the_number_asked() {
    let _g = common::shared();
    let m = Manager::start().unwrap();
    common::objects::condition_notify_wakes_the_number_asked(&m);
    stop(m);
}

#[test]
fn stopping_a_server_ends_blocked_calls() {
    let _g = common::shared();
    let server = ManagerServer::bind("127.0.0.1:0", "k").unwrap();
    server.register("q", Served::bounded_queue(0)); // 0: unbounded, as in Python
    let s = server.clone();
    let t = std::thread::spawn(move || s.serve_forever());
    let addr = server.address().to_string();
    let blocked = std::thread::spawn(move || {
        let m = Manager::connect(&addr, "k").unwrap();
        let q: QueueProxy<u8> = m.get("q").unwrap();
        for i in 0..10 {
            q.put(i).unwrap();
        }
        assert!(!q.is_full().unwrap());
        for _ in 0..10 {
            q.get().unwrap();
        }
        q.get().unwrap_err().kind() // blocks until the server stops
    });
    std::thread::sleep(Duration::from_millis(100));
    server.shutdown();
    t.join().unwrap().unwrap();
    let (kind, took) = common::timed(|| blocked.join().unwrap());
    assert_eq!(kind, ErrorKind::Disconnected);
    assert!(took < LONG);
}

// ------------------------------------------------------------- reference counts

fn eventually_count(m: &Manager, n: usize) {
    let deadline = Instant::now() + LONG;
    while m.object_count().unwrap() != n {
        assert!(
            Instant::now() < deadline,
            "{} objects, expected {n}",
            m.object_count().unwrap()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn use_after_the_sender_dropped((q, tx): (QueueProxy<u8>, multiprocess::Connection<u8>)) {
    std::thread::sleep(Duration::from_millis(50)); // the parent drops its copies now
    q.put(7).unwrap();
    tx.send(&q.get().unwrap()).unwrap();
}

fn objects_live_while_a_proxy_does(method: StartMethod) {
    let m = Manager::builder()
        .context(get_context(method))
        .register("pinned", Served::dict())
        .start()
        .unwrap();
    assert_eq!(m.object_count().unwrap(), 1);
    let d = m.dict::<u8, u8>().unwrap();
    let d2 = d.clone();
    assert_eq!(m.object_count().unwrap(), 2);
    drop(d);
    d2.insert(1, 1).unwrap(); // still there: d2 owns it
    drop(d2);
    eventually_count(&m, 1); // freed; the registered one stays
    // A proxy in transit keeps its object: the parent drops every copy before the
    // child first uses it.
    let (rx, tx) = multiprocess::pipe::<u8>().unwrap();
    let q = m.queue::<u8>().unwrap();
    let mut p = get_context(method).process(use_after_the_sender_dropped, (q, tx));
    p.start().unwrap();
    // `start` dropped the args: the parent holds no proxy of `q` any more.
    assert_eq!(rx.recv_timeout(LONG).unwrap(), 7);
    join(&p);
    let pinned: DictProxy<u8, u8> = m.get("pinned").unwrap();
    drop(pinned);
    assert!(m.object_count().unwrap() >= 1);
    stop(m);
}

for_each_method!(objects_live_while_a_proxy_does);

#[test]
fn handles_are_send_and_sync() {
    fn both<T: Send + Sync>() {}
    both::<Manager>();
    both::<ManagerServer>();
    both::<DictProxy<String, Vec<u8>>>();
    both::<QueueProxy<String>>();
    both::<LockProxy>();
    both::<ConditionProxy>();
    both::<multiprocess::ObjectProxy>();
    both::<multiprocess::Listener>();
}

#[test]
fn a_custom_object_cannot_be_sent_to_a_manager_process() {
    let _g = common::shared();
    let e = Manager::builder()
        .register("c", Served::object(Counter::default()))
        .start()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("register_type"), "{e}");
}

#[test]
fn proxies_nest_inside_manager_objects() {
    let _g = common::shared();
    let m = Manager::start().unwrap();
    // Python's test_list: a = m.list(); b = m.list([a]); a.append(5)
    let a = m.list::<i32>().unwrap();
    let b = m.list::<ListProxy<i32>>().unwrap();
    b.push(a.clone()).unwrap();
    a.push(5).unwrap();
    let inner = b.get(0).unwrap();
    assert_eq!(inner, a);
    assert_eq!(inner.to_vec().unwrap(), vec![5]);
    let d = m.dict::<String, DictProxy<String, u8>>().unwrap();
    let e = m.dict::<String, u8>().unwrap();
    e.insert("x".into(), 1).unwrap();
    d.insert("e".into(), e).unwrap(); // our only proxy of `e` goes into `d`
    assert_eq!(
        d.get(&"e".into())
            .unwrap()
            .unwrap()
            .get(&"x".into())
            .unwrap(),
        Some(1)
    );
    stop(m);
}

#[test]
fn stored_proxies_keep_their_objects_and_freeing_releases_them() {
    let _g = common::shared();
    let lease = Duration::from_millis(30);
    let m = Manager::builder().lease(lease).start().unwrap();
    let after_lease = || {
        std::thread::sleep(lease * 3);
        m.list::<u8>().unwrap() // any creation sweeps expired leases
    };
    let outer = m.dict::<String, DictProxy<String, u8>>().unwrap();
    let inner = m.dict::<String, u8>().unwrap();
    inner.insert("x".into(), 1).unwrap();
    outer.insert("inner".into(), inner).unwrap(); // our only proxy of it goes in
    let l = after_lease();
    drop(l);
    eventually_count(&m, 2); // outer and inner: the stored proxy owns inner
    let got = outer.get(&"inner".into()).unwrap().unwrap();
    assert_eq!(got.get(&"x".into()).unwrap(), Some(1));
    drop(got);
    // Nested lists, two levels deep, freed as a whole with their root.
    let leaf = m.list::<u8>().unwrap();
    leaf.push(7).unwrap();
    let mid = m.list::<ListProxy<u8>>().unwrap();
    mid.push(leaf).unwrap();
    outer.clear().unwrap(); // releases inner (after a lease)
    let root = m.list::<ListProxy<ListProxy<u8>>>().unwrap();
    root.push(mid).unwrap();
    assert_eq!(
        root.get(0).unwrap().get(0).unwrap().to_vec().unwrap(),
        vec![7]
    );
    drop(after_lease());
    eventually_count(&m, 4); // outer, root, mid, leaf (inner freed)
    drop(root);
    drop(outer);
    drop(after_lease());
    eventually_count(&m, 0);
    stop(m);
}

#[test]
fn owners_aborts_and_timeouts() {
    let _g = common::shared();
    let m = Manager::start().unwrap();
    // RLock: a release by a thread that does not own it is refused, with the kind
    // the crate's own RLock gives (Python: RuntimeError); so is a release of a free
    // one, and a notify or a release of a condition this thread does not hold.
    let r = m.rlock().unwrap();
    let g = r.acquire().unwrap();
    let r2 = r.clone();
    let other = std::thread::spawn(move || r2.release().unwrap_err().kind());
    assert_eq!(other.join().unwrap(), ErrorKind::NotPermitted);
    drop(g);
    assert_eq!(r.release().unwrap_err().kind(), ErrorKind::NotPermitted);
    let c = m.condition().unwrap();
    assert_eq!(c.notify().unwrap_err().kind(), ErrorKind::NotPermitted);
    assert_eq!(c.notify_all().unwrap_err().kind(), ErrorKind::NotPermitted);
    assert_eq!(c.release().unwrap_err().kind(), ErrorKind::NotPermitted);
    // A lock that is not locked says so with another kind, as the crate's own Lock.
    let l = m.lock().unwrap();
    assert_eq!(l.release().unwrap_err().kind(), ErrorKind::InvalidState);
    // Barrier: abort breaks the parties already waiting.
    let b = m.barrier(3).unwrap();
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || b.wait_timeout(LONG).unwrap_err().kind())
        })
        .collect();
    let deadline = Instant::now() + LONG;
    while b.n_waiting().unwrap() < 2 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(2));
    }
    b.abort().unwrap();
    for w in waiters {
        assert_eq!(w.join().unwrap(), ErrorKind::BrokenBarrier);
    }
    // Bounded queue: put_timeout gives up after about the timeout, item back.
    let q = m.bounded_queue::<String>(1).unwrap();
    q.put("a".into()).unwrap();
    let (r, took) = common::timed(|| q.put_timeout("b".into(), Duration::from_millis(100)));
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Full);
    assert_eq!(e.into_inner(), "b");
    assert!(took >= Duration::from_millis(90) && took < LONG, "{took:?}");
    assert_eq!(q.len().unwrap(), 1);
    stop(m);
}

/// Python's `Event.wait` returns `True` to a waiter woken by `set()` even if `clear()`
/// came before it ran again (CPython's `test_set_and_clear`).
#[test]
fn a_set_then_clear_wakes_every_waiter() {
    let _g = common::shared();
    let m = Manager::start().unwrap();
    common::objects::a_set_then_clear_wakes_every_waiter(&m, 40);
    stop(m);
}

/// Python: every party waiting at an aborted barrier gets `BrokenBarrierError`, even
/// when a `reset()` follows at once (before they run again).
#[test]
fn waiters_of_an_aborted_barrier_fail_even_after_a_reset() {
    let _g = common::shared();
    let m = Manager::start().unwrap();
    let n = 40;
    let b = m.barrier(n + 1).unwrap();
    // A few rounds: how many waiters run only after the reset varies.
    for _ in 0..3 {
        let waiters: Vec<_> = (0..n)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || b.wait_timeout(LONG).map_err(|e| e.kind()))
            })
            .collect();
        assert!(
            common::eventually(LONG, || b.n_waiting().unwrap() >= n),
            "waiters did not arrive"
        );
        b.abort().unwrap();
        b.reset().unwrap();
        for w in waiters {
            assert_eq!(w.join().unwrap(), Err(ErrorKind::BrokenBarrier));
        }
        assert!(!b.is_broken().unwrap());
    }
    assert_eq!(b.n_waiting().unwrap(), 0);
    stop(m);
}

struct Fragile;

impl SharedObject for Fragile {
    fn methods(&self) -> &'static [&'static str] {
        &["boom", "inc"]
    }
    fn call(&mut self, method: &str, args: &[u8]) -> multiprocess::Result<Vec<u8>> {
        match method {
            "boom" => panic!("fragile broke"),
            _ => invoke(args, |x: u32| x + 1),
        }
    }
}

fn new_fragile() -> Box<dyn SharedObject> {
    Box::new(Fragile)
}

/// A method that panics fails its call with its message (a Python method's exception
/// reaches its caller); the caller's connection lives on, with what it holds.
#[test]
fn a_custom_method_that_panics_fails_only_that_call() {
    let _g = common::shared();
    let m = Manager::builder()
        .register_type("Fragile", new_fragile)
        .start()
        .unwrap();
    let o = m.create("Fragile").unwrap();
    let r = m.rlock().unwrap();
    let g = r.acquire().unwrap();
    let e = o.call::<_, u32>("boom", &()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked, "{e}");
    assert!(e.to_string().contains("fragile broke"), "{e}");
    // Still this thread's connection: the rlock it holds is its own.
    g.release().unwrap();
    assert_eq!(o.call::<_, u32>("inc", &1u32).unwrap(), 2);
    stop(m);
}

// ------------------------------------------------------------- authkeys stay home

/// A key whose bytes are easy to find in an encoding.
const RECOGNIZABLE: &[u8] = b"KEY-recognizable-0xdeadbeef-KEY";

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every proxy kind, serialized with serde_json and with the crate's codec, shows its
/// address and not its manager's key.
#[test]
fn a_serialized_proxy_carries_no_key() {
    let _g = common::shared();
    let m = Manager::builder()
        .authkey(RECOGNIZABLE)
        .register_type("Counter", new_counter)
        .start()
        .unwrap();
    let all = make_all(&m);
    let more = (
        m.condition().unwrap(),
        m.barrier(2).unwrap(),
        m.create("Counter").unwrap(),
    );
    let json = serde_json::to_vec(&(&all, &more)).unwrap();
    let codec = multiprocess::encode_args(&(&all, &more)).unwrap();
    let hex: String = RECOGNIZABLE.iter().map(|b| format!("{b:02x}")).collect();
    for (what, bytes) in [("serde_json", &json), ("codec", &codec)] {
        assert!(!contains(bytes, RECOGNIZABLE), "{what} holds the key");
        assert!(
            !contains(bytes, hex.as_bytes()),
            "{what} holds the key in hex"
        );
        assert!(
            contains(bytes, m.address().as_bytes()),
            "{what} holds the address"
        );
    }
    // serde_json writes a byte string as a list of numbers: not that either.
    let as_numbers: Vec<String> = RECOGNIZABLE.iter().map(u8::to_string).collect();
    assert!(!contains(&json, as_numbers.join(",").as_bytes()));
    // Decoded here (the key is in this process's ring), every proxy works.
    let (back, (c, b, o)): (
        All,
        (ConditionProxy, BarrierProxy, multiprocess::ObjectProxy),
    ) = serde_json::from_slice(&json).unwrap();
    back.dict.insert("k".into(), vec![1]).unwrap();
    assert_eq!(all.dict.len().unwrap(), 1);
    assert_eq!(back, all);
    drop(c.acquire().unwrap());
    assert_eq!(b.parties().unwrap(), 2);
    assert_eq!(o, more.2);
    drop((back, c, b, o, all, more));
    stop(m);
}

const RECEIVER_ENV: &str = "MP_TEST_PROXY_RECEIVER";

type Shelf = DictProxy<String, ListProxy<u32>>;

/// Not a test of its own: the body of an unrelated process that receives proxies
/// over TCP. Run as an ordinary test it does nothing.
#[test]
fn proxy_receiver_entry() {
    let Ok(spec) = std::env::var(RECEIVER_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let [listener, manager, key, how] = parts[..] else {
        panic!("listener|manager|key|how: {spec}");
    };
    let conn = Client::connect::<Shelf>(listener, None).unwrap();
    let shelf = conn.recv().unwrap();
    // No key in this process: a clear error that says what to do.
    let e = shelf.len().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("Manager::connect") && msg.contains("add_authkey") && msg.contains(manager),
        "{msg}"
    );
    assert!(!msg.contains(key), "the error shows no key: {msg}");
    match how {
        "connect" => drop(Manager::connect(manager, key).unwrap()),
        "add" => multiprocess::manager::add_authkey(manager, key),
        _ => panic!("{how}"),
    }
    // The same proxy now works, and so do the proxies nested in its values.
    let list = shelf.get(&"list".into()).unwrap().expect("stored");
    list.push(std::process::id()).unwrap();
    shelf.insert(how.into(), list).unwrap();
    conn.send(&shelf).unwrap(); // back again: keyless bytes both ways
}

fn run_proxy_receiver(listener: &str, manager: &str, key: &str, how: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "proxy_receiver_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(RECEIVER_ENV, format!("{listener}|{manager}|{key}|{how}"))
        .spawn()
        .unwrap()
}

#[test]
fn a_proxy_sent_over_tcp_needs_the_key_in_the_receiver() {
    let _g = common::shared();
    let key = "tcp-secret-4b1d";
    let m = Manager::builder()
        .address("127.0.0.1:0")
        .authkey(key)
        .start()
        .unwrap();
    let shelf: Shelf = m.dict().unwrap();
    shelf
        .insert("list".into(), m.list_from([1u32]).unwrap())
        .unwrap();
    let listener = multiprocess::Listener::bind("127.0.0.1:0", None).unwrap();
    for how in ["add", "connect"] {
        let mut child = run_proxy_receiver(listener.address(), m.address(), key, how);
        let conn = listener.accept_timeout::<Shelf>(LONG).unwrap();
        conn.send(&shelf).unwrap();
        let back = conn.recv_timeout(LONG).unwrap();
        assert_eq!(back, shelf);
        let st = child.wait().unwrap();
        assert!(st.success(), "the receiver failed ({how}): {st:?}");
        let list = shelf
            .get(&how.into())
            .unwrap()
            .expect("stored by the child");
        assert_eq!(list.get(0).unwrap(), 1);
        assert_eq!(list.len().unwrap(), if how == "add" { 2 } else { 3 });
    }
    stop(m);
}

fn use_a_raw_forked_copy(d: &DictProxy<String, u32>) -> i32 {
    let (rx, tx) = multiprocess::pipe::<DictProxy<String, u32>>().unwrap();
    match multiprocess::fork().unwrap() {
        multiprocess::Fork::Child => {
            // Decoded in the child: its key comes from the copy of the ring.
            let ok = rx.recv().and_then(|d| d.insert("forked".into(), 1)).is_ok();
            std::process::exit(if ok { 0 } else { 1 });
        }
        multiprocess::Fork::Parent(pid) => {
            tx.send(d).unwrap();
            multiprocess::waitpid(pid).unwrap()
        }
    }
}

#[test]
fn a_raw_fork_child_decodes_proxies_with_a_copy_of_the_ring() {
    let _g = common::shared();
    let m = Manager::start().unwrap();
    let d = m.dict::<String, u32>().unwrap();
    assert_eq!(use_a_raw_forked_copy(&d), 0);
    assert_eq!(d.get(&"forked".into()).unwrap(), Some(1));
    stop(m);
}

fn use_connected_proxy((d, done): (DictProxy<String, u32>, multiprocess::Connection<()>)) {
    d.insert("child".into(), std::process::id()).unwrap();
    done.send(&()).unwrap();
}

/// A child gets the keys of the managers its parent connected to (not only of those
/// it started), under every start method.
fn a_child_gets_the_keys_its_parent_was_given(method: StartMethod) {
    let server = ManagerServer::bind("127.0.0.1:0", "given-key").unwrap();
    server.register("d", Served::dict());
    let s = server.clone();
    let t = std::thread::spawn(move || s.serve_forever());
    let m = Manager::connect(server.address(), "given-key").unwrap();
    let d: DictProxy<String, u32> = m.get("d").unwrap();
    let (rx, tx) = multiprocess::pipe::<()>().unwrap();
    let mut p = get_context(method).process(use_connected_proxy, (d.clone(), tx));
    p.start().unwrap();
    rx.recv_timeout(LONG).unwrap();
    join(&p);
    assert!(d.get(&"child".into()).unwrap().is_some());
    drop(d);
    server.shutdown();
    t.join().unwrap().unwrap();
}

for_each_method!(a_child_gets_the_keys_its_parent_was_given);
