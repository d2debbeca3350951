//! The Redis manager (`Manager::redis`) against a real `redis-server` per test: the
//! server manager's conformance body for every proxy type (one body, two managers);
//! exact locked increments from 8 processes; lock holders killed or stopped past their
//! lease (owner told, fencing tokens); a consumer killed mid-get (its item delivered
//! once to another); cleanup of objects without a name; named objects shared by
//! unrelated managers; sealed values; Redis unreachable.

#![cfg(feature = "redis")]

multiprocess::test_support!();

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use multiprocess::broker::RedisServer;
use multiprocess::{
    Connection, DictProxy, ErrorKind, LockProxy, Manager, QueueProxy, StartMethod, get_context,
    pipe,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use common::{LONG, eventually, kill};

const KEY: &[u8] = b"redis manager test key";

/// A lease short enough for the tests that wait one out, long enough for a loaded
/// machine's keeper threads to renew in time.
const SHORT: Duration = Duration::from_secs(3);

fn redis() -> RedisServer {
    RedisServer::start().expect("start redis-server")
}

fn manager(r: &RedisServer) -> Manager {
    Manager::redis(r.url(), KEY).expect("a Redis manager")
}

/// Every key in the server.
fn dbsize(r: &RedisServer) -> usize {
    let client = ::redis::Client::open(r.url()).unwrap();
    let mut c = client.get_connection().unwrap();
    ::redis::cmd("DBSIZE").query(&mut c).unwrap()
}

// ------------------------------------------------------------- conformance

fn every_proxy_type_mutated_in_a_child(method: StartMethod) {
    let r = redis();
    let m = manager(&r);
    common::objects::every_proxy_type_mutated_in_a_child(&m, method);
}

fn condition_across_processes(method: StartMethod) {
    let r = redis();
    common::objects::condition_across_processes(&manager(&r), method);
}

fn barrier_of_five(method: StartMethod) {
    let r = redis();
    common::objects::barrier_of_five(&manager(&r), method);
}

for_each_method!(
    every_proxy_type_mutated_in_a_child,
    condition_across_processes,
    barrier_of_five,
);

/// A `set()` then `clear()` wakes every waiter, as a server manager's event. Many
/// waiters (a set pushes 64 wake tokens), so that most look only after the `clear`:
/// with 60, a wait that looked at the flag alone woke 0-57 of them.
#[test]
fn a_set_then_clear_wakes_every_waiter() {
    let _g = common::shared();
    let r = redis();
    common::objects::a_set_then_clear_wakes_every_waiter(&manager(&r), 60);
}

#[test]
fn condition_notify_wakes_the_number_asked() {
    let _g = common::shared();
    let r = redis();
    common::objects::condition_notify_wakes_the_number_asked(&manager(&r));
}

fn barrier_party((b, out): (multiprocess::BarrierProxy, multiprocess::ListProxy<u32>)) {
    let i = b.wait_timeout(LONG).unwrap();
    out.push(i).unwrap();
}

#[test]
fn condition_and_barrier_across_processes() {
    let _g = common::shared();
    let r = redis();
    let m = manager(&r);
    // Barrier of three: two children and us; every index once.
    let b = m.barrier(3).unwrap();
    let out = m.list::<u32>().unwrap();
    let ctx = get_context(StartMethod::Spawn);
    let mut kids: Vec<_> = (0..2)
        .map(|_| ctx.process(barrier_party, (b.clone(), out.clone())))
        .collect();
    for k in &mut kids {
        k.start().unwrap();
    }
    out.push(b.wait_timeout(LONG).unwrap()).unwrap();
    for k in &kids {
        assert!(k.join_timeout(LONG).unwrap());
        assert_eq!(k.exitcode(), Some(0));
    }
    let mut v = out.to_vec().unwrap();
    v.sort();
    assert_eq!(v, vec![0, 1, 2]);
    // A party that times out breaks it.
    let b2 = m.barrier(2).unwrap();
    assert_eq!(
        b2.wait_timeout(Duration::from_millis(50))
            .unwrap_err()
            .kind(),
        ErrorKind::BrokenBarrier
    );
    assert!(b2.is_broken().unwrap());
    b2.reset().unwrap();
    assert!(!b2.is_broken().unwrap());
    // Condition: a waiter in a thread is woken by notify, with the lock back.
    let c = m.condition().unwrap();
    let flag = m.value(false).unwrap();
    let (c2, f2) = (c.clone(), flag.clone());
    let waiter = std::thread::spawn(move || {
        let mut g = c2.acquire().unwrap();
        let deadline = Instant::now() + LONG;
        while !f2.get().unwrap() {
            assert!(Instant::now() < deadline, "never notified");
            c2.wait_timeout(&mut g, Duration::from_millis(500)).unwrap();
        }
        drop(g);
    });
    std::thread::sleep(Duration::from_millis(100));
    {
        let _g = c.acquire().unwrap();
        flag.set(&true).unwrap();
        c.notify_all().unwrap();
    }
    waiter.join().unwrap();
    // Without the lock: refused.
    assert_eq!(c.notify().unwrap_err().kind(), ErrorKind::NotPermitted);
}

// ------------------------------------------------------------- locked increments

/// Adds 1 to `d["n"]` `times` times, each under `lock`.
fn locked_increments<V>(lock: &LockProxy, d: &DictProxy<String, V>, times: usize)
where
    V: Serialize + DeserializeOwned + Copy + Default + std::ops::Add<Output = V> + From<u8>,
{
    for _ in 0..times {
        let _g = lock.acquire().unwrap();
        let n = d.get(&"n".into()).unwrap().unwrap_or_default();
        d.insert("n".into(), n + V::from(1)).unwrap();
    }
}

fn add_thousand((lock, d): (LockProxy, DictProxy<String, u64>)) {
    locked_increments(&lock, &d, 1000);
}

#[test]
fn eight_processes_thousand_locked_increments_each_are_exact() {
    let _g = common::shared();
    let r = redis();
    let m = manager(&r);
    let lock = m.lock().unwrap();
    let d = m.dict::<String, u64>().unwrap();
    let ctx = get_context(StartMethod::Spawn);
    let mut kids: Vec<_> = (0..8)
        .map(|_| ctx.process(add_thousand, (lock.clone(), d.clone())))
        .collect();
    for k in &mut kids {
        k.start().unwrap();
    }
    for k in &kids {
        assert!(k.join_timeout(Duration::from_secs(240)).unwrap());
        assert_eq!(k.exitcode(), Some(0));
    }
    assert_eq!(d.get(&"n".into()).unwrap(), Some(8000));
    // Every acquire took a new fencing token; nobody died holding it.
    let g = lock.acquire().unwrap();
    assert_eq!(lock.fencing_token(), Some(8001));
    assert!(!lock.owner_died());
    drop(g);
}

// ------------------------------------------------------------- dead and stopped holders

/// Takes the lock, tells its fencing token, keeps the lock, and waits for a word
/// (that never comes if it is killed); then releases and reports how that went.
fn hold_and_report((lock, tx): (LockProxy, Connection<u64>)) {
    let g = lock.acquire().unwrap();
    g.keep();
    tx.send(&lock.fencing_token().unwrap()).unwrap();
    let _ = tx.recv_timeout(LONG);
    // Stopped past its lease: the release is refused and frees nothing.
    let e = lock.release().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidState, "{e}");
    tx.send(&0).unwrap();
}

#[test]
fn a_killed_holder_frees_the_lock_after_its_lease_and_the_next_is_told() {
    let _g = common::shared();
    let r = redis();
    let m = Manager::redis_with_lease(r.url(), KEY, SHORT).unwrap();
    let lock = m.lock().unwrap();
    let (mine, theirs) = pipe::<u64>().unwrap();
    let mut p = get_context(StartMethod::Spawn).process(hold_and_report, (lock.clone(), theirs));
    p.start().unwrap();
    let token = mine.recv_timeout(LONG).unwrap();
    assert!(lock.try_acquire().unwrap().is_none(), "held by the child");
    assert!(!lock.owner_died());
    p.kill().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    let g = lock
        .acquire_timeout(LONG)
        .unwrap()
        .expect("free after the lease");
    assert!(lock.owner_died(), "the next holder is told");
    assert!(lock.fencing_token().unwrap() > token);
    g.release().unwrap();
    // A release-acquire pair afterwards: nobody died.
    lock.acquire().unwrap().release().unwrap();
    assert!(!lock.owner_died());
}

#[test]
fn a_holder_stopped_past_its_lease_loses_to_a_larger_fencing_token() {
    let _g = common::shared();
    let r = redis();
    let m = Manager::redis_with_lease(r.url(), KEY, SHORT).unwrap();
    let lock = m.lock().unwrap();
    let (mine, theirs) = pipe::<u64>().unwrap();
    let mut p = get_context(StartMethod::Spawn).process(hold_and_report, (lock.clone(), theirs));
    p.start().unwrap();
    let token = mine.recv_timeout(LONG).unwrap();
    let pid = p.pid().unwrap();
    kill(pid, libc::SIGSTOP);
    let g = lock
        .acquire_timeout(LONG)
        .unwrap()
        .expect("free after the lease");
    let newer = lock.fencing_token().unwrap();
    assert!(newer > token, "{newer} > {token}");
    assert!(lock.owner_died());
    kill(pid, libc::SIGCONT);
    mine.send(&1).unwrap(); // the child releases: refused, and ours stays held
    assert_eq!(mine.recv_timeout(LONG).unwrap(), 0);
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0), "the stale release was refused");
    assert_eq!(lock.fencing_token(), Some(newer));
    assert!(lock.try_acquire().unwrap().is_none(), "still ours");
    g.release().unwrap();
}

// ------------------------------------------------------------- reliable queue

/// Takes one item, says which, and "works" on it until killed.
fn take_and_hang((q, tx): (QueueProxy<String>, Connection<String>)) {
    let item = q.get_timeout(LONG).unwrap();
    tx.send(&item).unwrap();
    std::thread::sleep(LONG * 2);
}

#[test]
fn a_consumer_killed_mid_get_has_its_item_delivered_once_to_another() {
    let _g = common::shared();
    let r = redis();
    let m = Manager::redis_with_lease(r.url(), KEY, SHORT).unwrap();
    let q = m.queue::<String>().unwrap();
    q.put("a".into()).unwrap();
    q.put("b".into()).unwrap();
    let (mine, theirs) = pipe::<String>().unwrap();
    let mut p = get_context(StartMethod::Spawn).process(take_and_hang, (q.clone(), theirs));
    p.start().unwrap();
    let taken = mine.recv_timeout(LONG).unwrap();
    assert_eq!(taken, "a");
    assert_eq!(q.len().unwrap(), 1);
    p.kill().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    let mut got = vec![q.get_timeout(LONG).unwrap(), q.get_timeout(LONG).unwrap()];
    got.sort();
    assert_eq!(got, vec!["a", "b"], "the killed consumer's item came back");
    assert_eq!(
        q.get_timeout(SHORT * 2).unwrap_err().kind(),
        ErrorKind::Empty,
        "and only once"
    );
}

fn produce((q, n): (multiprocess::JoinableQueueProxy<u32>, u32)) {
    for i in 0..n {
        q.put(i).unwrap();
    }
}

#[test]
fn bounded_queues_block_producers_and_joinable_counts_cross_processes() {
    let _g = common::shared();
    let r = redis();
    let m = manager(&r);
    let q = m.bounded_joinable_queue::<u32>(2).unwrap();
    let mut p = get_context(StartMethod::Spawn).process(produce, (q.clone(), 10));
    p.start().unwrap();
    let mut seen = Vec::new();
    while seen.len() < 10 {
        assert!(q.len().unwrap() <= 2, "the bound holds");
        seen.push(q.get_timeout(LONG).unwrap());
        q.task_done().unwrap();
    }
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    assert!(q.join_timeout(LONG).unwrap());
    assert_eq!(q.task_done().unwrap_err().kind(), ErrorKind::InvalidState);
}

// ------------------------------------------------------------- semaphore leases

fn take_two(s: multiprocess::SemaphoreProxy) {
    s.acquire().unwrap().keep();
    s.acquire().unwrap().keep();
    std::thread::sleep(LONG * 2);
}

#[test]
fn a_dead_holders_permits_come_back() {
    let _g = common::shared();
    let r = redis();
    let m = Manager::redis_with_lease(r.url(), KEY, SHORT).unwrap();
    let s = m.semaphore(2).unwrap();
    let mut p = get_context(StartMethod::Spawn).process(take_two, s.clone());
    p.start().unwrap();
    assert!(eventually(LONG, || s.get_value().unwrap() == 0));
    p.kill().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    let a = s
        .acquire_timeout(LONG)
        .unwrap()
        .expect("a permit came back");
    let b = s.acquire_timeout(LONG).unwrap().expect("both came back");
    drop((a, b));
    assert_eq!(s.get_value().unwrap(), 2);
}

// ------------------------------------------------------------- cleanup

fn make_and_die((url, tx): (String, Connection<()>)) {
    let m = Manager::redis_with_lease(&url, KEY, SHORT).unwrap();
    let keep: Vec<_> = (0..20)
        .map(|i| {
            let d = m.dict::<u32, u32>().unwrap();
            d.insert(i, i).unwrap();
            d
        })
        .collect();
    let q = m.queue::<u32>().unwrap();
    q.put(1).unwrap();
    // A joinable queue with an item taken and not done: a consumer list, a
    // heartbeat and an unfinished count, all of which must expire too.
    let jq = m.joinable_queue::<u32>().unwrap();
    jq.put(1).unwrap();
    jq.put(2).unwrap();
    assert_eq!(jq.get().unwrap(), 1);
    tx.send(&()).unwrap();
    std::thread::sleep(LONG * 2);
    drop((keep, q, jq));
}

/// Every key of `r`'s database, with its TTL in ms (-1: none).
fn ttls(r: &RedisServer) -> Vec<(String, i64)> {
    let client = ::redis::Client::open(r.url()).unwrap();
    let mut c = client.get_connection().unwrap();
    let keys: Vec<String> = ::redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    keys.into_iter()
        .map(|k| {
            let ttl: i64 = ::redis::cmd("PTTL").arg(&k).query(&mut c).unwrap();
            (k, ttl)
        })
        .collect()
}

#[test]
fn every_key_of_a_nameless_queue_carries_a_ttl_from_its_first_command() {
    let _g = common::shared();
    let r = redis();
    // The default lease: its keeper renews every third of it (seconds), so what is
    // checked below is what the commands themselves wrote.
    let m = manager(&r);
    let q = m.queue::<u32>().unwrap();
    let jq = m.joinable_queue::<u32>().unwrap();
    let bounded = m.bounded_queue::<u32>(1).unwrap();
    let check = |when: &str| {
        let all = ttls(&r);
        assert!(!all.is_empty());
        for (k, ttl) in all {
            assert!(ttl > 0, "{when}: {k} has no TTL ({ttl})");
        }
    };
    for round in 0..3u32 {
        // Puts into empty queues create their lists; gets create the consumers'
        // lists (replacing the previous round's), heartbeats and registrations.
        q.put(round).unwrap();
        jq.put(round).unwrap();
        bounded.put(round).unwrap();
        check(&format!("round {round}, after the puts"));
        assert_eq!(q.get().unwrap(), round);
        assert_eq!(jq.get().unwrap(), round);
        jq.task_done().unwrap();
        assert_eq!(bounded.get().unwrap(), round);
        check(&format!("round {round}, after the gets"));
    }
    drop((q, jq, bounded));
    assert!(
        eventually(LONG, || dbsize(&r) == 0),
        "{} keys left",
        dbsize(&r)
    );
}

#[test]
fn objects_without_a_name_go_with_their_last_proxy_or_their_lease() {
    let _g = common::shared();
    let r = redis();
    let m = Manager::redis_with_lease(r.url(), KEY, SHORT).unwrap();
    assert_eq!(dbsize(&r), 0);
    // Temporaries dropped: nothing grows.
    for i in 0..200u32 {
        let d = m.dict::<u32, u32>().unwrap();
        d.insert(i, i).unwrap();
        let l = m.list::<u32>().unwrap();
        l.extend(0..3).unwrap();
        let lock = m.lock().unwrap();
        drop(lock.acquire().unwrap());
        let q = m.queue::<u32>().unwrap();
        q.put(i).unwrap();
        q.get().unwrap();
        let d2 = d.clone();
        drop((d, l, lock, q));
        assert_eq!(d2.len().unwrap(), 1, "a clone keeps it");
    }
    assert!(
        eventually(LONG, || dbsize(&r) == 0),
        "{} keys left",
        dbsize(&r)
    );
    // A process killed while holding objects: they expire one lease after.
    let (mine, theirs) = pipe::<()>().unwrap();
    let mut p =
        get_context(StartMethod::Spawn).process(make_and_die, (r.url().to_string(), theirs));
    p.start().unwrap();
    mine.recv_timeout(LONG).unwrap();
    assert_eq!(m.object_count().unwrap(), 22);
    p.kill().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    assert!(
        eventually(LONG, || dbsize(&r) == 0),
        "{} keys left",
        dbsize(&r)
    );
    // Named objects stay until deleted.
    m.dict_named::<u32, u32>("stays")
        .unwrap()
        .insert(1, 1)
        .unwrap();
    let all = ttls(&r);
    assert!(!all.is_empty());
    for (k, ttl) in all {
        assert_eq!(ttl, -1, "{k} of a named object expires");
    }
    assert_eq!(m.object_count().unwrap(), 1);
    assert!(m.delete("stays").unwrap());
    assert_eq!(dbsize(&r), 0);
}

// ------------------------------------------------------------- names, keys, hosts

fn add_by_name(url: String) {
    let m = Manager::redis(&url, KEY).unwrap();
    let d = m.dict_named::<String, u32>("counts").unwrap();
    let lock = m.lock_named("counts-lock").unwrap();
    locked_increments(&lock, &d, 50);
}

#[test]
fn named_objects_are_shared_by_unrelated_managers() {
    let _g = common::shared();
    let r = redis();
    let ctx = get_context(StartMethod::Spawn);
    // Children that only know the URL, the key and the names (as other hosts would).
    let mut kids: Vec<_> = (0..3)
        .map(|_| ctx.process(add_by_name, r.url().to_string()))
        .collect();
    for k in &mut kids {
        k.start().unwrap();
    }
    for k in &kids {
        assert!(k.join_timeout(LONG).unwrap());
        assert_eq!(k.exitcode(), Some(0));
    }
    let m = manager(&r);
    let d = m.dict_named::<String, u32>("counts").unwrap();
    assert_eq!(d.get(&"n".into()).unwrap(), Some(150));
    // The same name as another kind is refused.
    assert_eq!(
        m.queue_named::<u32>("counts").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        m.dict_named::<u8, u8>("bad{name}").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    // A server manager has no names.
    let server = Manager::start().unwrap();
    assert_eq!(
        server.dict_named::<u8, u8>("x").unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    server.shutdown().unwrap();
}

#[test]
fn values_are_sealed_and_proxies_carry_no_key() {
    let _g = common::shared();
    let r = redis();
    let m = manager(&r);
    let d = m.dict_named::<String, u32>("sealed").unwrap();
    d.insert("a".into(), 1).unwrap();
    // A serialized proxy holds the URL, not the key; decoded here, it works.
    let bytes = multiprocess::encode_args(&d).unwrap();
    assert!(!bytes.windows(KEY.len()).any(|w| w == KEY));
    assert!(
        bytes
            .windows(r.url().len())
            .any(|w| w == r.url().as_bytes())
    );
    // Another key (another manager on the same Redis) cannot read or plant values.
    let other = Manager::redis(r.url(), b"another key").unwrap();
    let theirs = other.dict_named::<String, u32>("sealed").unwrap();
    assert_eq!(
        theirs.get(&"a".into()).unwrap_err().kind(),
        ErrorKind::Authentication
    );
    theirs.insert("b".into(), 2).unwrap();
    // (The ring now holds the other key for this URL: put ours back.)
    multiprocess::manager::add_authkey(r.url(), KEY);
    assert_eq!(
        d.get(&"b".into()).unwrap_err().kind(),
        ErrorKind::Authentication
    );
    assert_eq!(d.get(&"a".into()).unwrap(), Some(1));
}

#[test]
fn redis_unreachable_is_a_clear_error_within_a_bound() {
    let _g = common::shared();
    let t = Instant::now();
    let e = Manager::redis("redis+unix:///nonexistent/redis.sock", KEY).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
    assert!(t.elapsed() < LONG);
    assert_eq!(
        Manager::redis("http://x/", KEY).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    // Killed under a proxy that is blocked in a get: an error, not a hang.
    let mut r = redis();
    let m = manager(&r);
    let q = m.queue::<u32>().unwrap();
    let d = m.dict::<u32, u32>().unwrap();
    let q2 = q.clone();
    let blocked = std::thread::spawn(move || q2.get_timeout(LONG).unwrap_err().kind());
    std::thread::sleep(Duration::from_millis(300));
    r.kill();
    let t = Instant::now();
    let kind = blocked.join().unwrap();
    assert!(
        matches!(kind, ErrorKind::Disconnected | ErrorKind::Timeout),
        "{kind:?}"
    );
    let e = d.len().unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Disconnected | ErrorKind::Timeout),
        "{e}"
    );
    assert!(t.elapsed() < LONG);
}

// ------------------------------------------------------------- same answers as a server

/// Every edge of the data kinds' methods, recorded as text: a server manager and a
/// Redis manager must give the same record.
fn record(m: &Manager) -> Vec<String> {
    let mut out = Vec::new();
    let mut note = |what: &str, r: String| out.push(format!("{what}: {r}"));
    let kind = |e: multiprocess::Error| format!("{:?}", e.kind());
    let l = m.list_from([1, 2, 3]).unwrap();
    note("get -1", format!("{:?}", l.get(-1).map_err(kind)));
    note("get 3", format!("{:?}", l.get(3).map_err(kind)));
    note("get -4", format!("{:?}", l.get(-4).map_err(kind)));
    note("set -1", format!("{:?}", l.set(-1, 30).map_err(kind)));
    note("set 9", format!("{:?}", l.set(9, 0).map_err(kind)));
    l.insert(-100, 0).unwrap();
    l.insert(100, 4).unwrap();
    l.insert(2, 15).unwrap();
    l.insert(-1, 25).unwrap();
    note("after inserts", format!("{:?}", l.to_vec()));
    note("remove 15", format!("{:?}", l.remove(&15).map_err(kind)));
    note("remove 99", format!("{:?}", l.remove(&99).map_err(kind)));
    note("pop", format!("{:?}", l.pop()));
    l.reverse().unwrap();
    note("reversed", format!("{:?} {:?}", l.to_vec(), l.len()));
    l.clear().unwrap();
    note("cleared", format!("{:?} {:?}", l.pop(), l.is_empty()));
    let d = m.dict::<(u8, String), Vec<u8>>().unwrap();
    d.update([((2, "b".into()), vec![2]), ((1, "a".into()), vec![1])])
        .unwrap();
    note(
        "insert old",
        format!("{:?}", d.insert((2, "b".into()), vec![22])),
    );
    note(
        "set_default",
        format!("{:?}", d.set_default((3, "c".into()), vec![3])),
    );
    note(
        "set_default again",
        format!("{:?}", d.set_default((3, "c".into()), vec![9])),
    );
    note("items", format!("{:?}", d.items()));
    note("keys values", format!("{:?} {:?}", d.keys(), d.values()));
    note(
        "remove",
        format!(
            "{:?} {:?}",
            d.remove(&(1, "a".into())),
            d.remove(&(1, "a".into()))
        ),
    );
    note("pop_item", format!("{:?}", d.pop_item()));
    note(
        "contains",
        format!("{:?}", d.contains_key(&(2, "b".into()))),
    );
    d.clear().unwrap();
    note("cleared", format!("{:?} {:?}", d.len(), d.pop_item()));
    let ns = m.namespace().unwrap();
    ns.set("b", &1u8).unwrap();
    ns.set("a", "x").unwrap();
    note("names", format!("{:?}", ns.names()));
    note(
        "ns get",
        format!("{:?} {:?}", ns.get::<u8>("b"), ns.get::<u8>("zz")),
    );
    let a = m.array(&[1.5f64, 2.5]).unwrap();
    note(
        "array",
        format!(
            "{:?} {:?} {:?}",
            a.len(),
            a.get(-1),
            a.set(2, 0.0).map_err(kind)
        ),
    );
    let v = m.value(String::from("v")).unwrap();
    v.set(&"w".to_string()).unwrap();
    note("value", format!("{:?}", v.get()));
    let e = m.event().unwrap();
    note(
        "event",
        format!("{:?}", e.wait_timeout(Duration::from_millis(20))),
    );
    e.set().unwrap();
    note(
        "event set",
        format!("{:?} {:?}", e.is_set(), e.wait_timeout(LONG)),
    );
    e.clear().unwrap();
    note("event clear", format!("{:?}", e.is_set()));
    let s = m.bounded_semaphore(1).unwrap();
    note("bsem", format!("{:?}", s.release().map_err(kind)));
    let g = s.acquire().unwrap();
    note(
        "bsem taken",
        format!(
            "{:?} {:?}",
            s.get_value(),
            s.try_acquire().map(|g| g.is_some())
        ),
    );
    drop(g);
    let r = m.rlock().unwrap();
    note("rlock unowned", format!("{:?}", r.release().map_err(kind)));
    let q = m.queue::<u8>().unwrap();
    note("queue empty", format!("{:?}", q.try_get().map_err(kind)));
    note("queue full", format!("{:?}", q.is_full()));
    out
}

#[test]
fn the_data_kinds_answer_as_a_server_managers_do() {
    let _g = common::shared();
    let r = redis();
    let server = Manager::start().unwrap();
    let expected = record(&server);
    let got = record(&manager(&r));
    for (e, g) in expected.iter().zip(&got) {
        assert_eq!(e, g);
    }
    assert_eq!(expected.len(), got.len());
    server.shutdown().unwrap();
}

// ------------------------------------------------------------- hostile entries

#[test]
fn planted_entries_are_errors_not_panics() {
    let _g = common::shared();
    let r = redis();
    let m = manager(&r);
    let client = ::redis::Client::open(r.url()).unwrap();
    let mut c = client.get_connection().unwrap();
    let mut plant = |args: &[&str]| {
        let mut cmd = ::redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query::<()>(&mut c).unwrap();
    };
    // An object of no known kind, and one with a nonsense lease.
    plant(&["HSET", "mp:{n:odd}:m", "kind", "Bogus", "lease", "10"]);
    let e = m.dict_named::<u8, u8>("odd").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    plant(&["HSET", "mp:{n:lease}:m", "kind", "Dict", "lease", "soon"]);
    assert!(m.dict_named::<u8, u8>("lease").is_err());
    // A key of the wrong type under a named queue, and an unsealed value in a dict.
    let q = m.queue_named::<u8>("q").unwrap();
    plant(&["SET", "mp:{n:q}:q", "not a list"]);
    assert!(q.try_get().is_err());
    assert!(q.put(1).is_err());
    let d = m.dict_named::<u8, u8>("d").unwrap();
    d.insert(1, 1).unwrap();
    let field = String::from_utf8(multiprocess::encode_args(&2u8).unwrap()).unwrap();
    plant(&["HSET", "mp:{n:d}:h", &field, "forged"]);
    plant(&["ZADD", "mp:{n:d}:o", "99", &field]);
    assert_eq!(d.get(&2).unwrap_err().kind(), ErrorKind::Authentication);
    assert_eq!(d.items().unwrap_err().kind(), ErrorKind::Authentication);
    assert_eq!(d.get(&1).unwrap(), Some(1), "the rest still reads");
    // A forged proxy cannot reach keys that are not a manager object's.
    let json = serde_json::to_string(&d).unwrap();
    assert!(json.contains("mp:{n:d}"), "{json}");
    let forged: DictProxy<u8, u8> =
        serde_json::from_str(&json.replace("mp:{n:d}", "session:42")).unwrap();
    assert_eq!(forged.len().unwrap_err().kind(), ErrorKind::InvalidInput);
    drop(forged);
    // Garbage in a lock's keys: acquire and release still answer.
    let lock = m.lock_named("l").unwrap();
    plant(&["SET", "mp:{n:l}:fence", "not a number"]);
    assert!(lock.try_acquire().is_err());
}
