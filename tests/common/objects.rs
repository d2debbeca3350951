//! Test bodies shared by the server manager's tests (`tests/manager.rs`) and the Redis
//! manager's (`tests/redis_manager.rs`): one body, two managers.

use std::time::{Duration, Instant};

use multiprocess::{
    ArrayProxy, BarrierProxy, BoundedSemaphoreProxy, ConditionProxy, DictProxy, ErrorKind,
    EventProxy, JoinableQueueProxy, ListProxy, LockProxy, Manager, NamespaceProxy, Process,
    QueueProxy, RLockProxy, SemaphoreProxy, StartMethod, ValueProxy, get_context,
};
use serde::{Deserialize, Serialize};

use super::LONG;

fn join(p: &Process<impl Serialize + serde::de::DeserializeOwned + 'static>) {
    assert!(
        p.join_timeout(LONG).unwrap(),
        "child did not finish in time"
    );
    assert_eq!(p.exitcode(), Some(0), "child failed");
}

/// One object of each kind, as a child receives them.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub(crate) struct All {
    pub(crate) event: EventProxy,
    pub(crate) lock: LockProxy,
    pub(crate) rlock: RLockProxy,
    pub(crate) sem: SemaphoreProxy,
    pub(crate) bsem: BoundedSemaphoreProxy,
    pub(crate) queue: QueueProxy<String>,
    pub(crate) jqueue: JoinableQueueProxy<u32>,
    pub(crate) list: ListProxy<i32>,
    pub(crate) dict: DictProxy<String, Vec<u8>>,
    pub(crate) value: ValueProxy<f64>,
    pub(crate) array: ArrayProxy<i64>,
    pub(crate) ns: NamespaceProxy,
}

/// The child's half: every method of every proxy type.
pub(crate) fn mutate_all(a: All) {
    // Lock: acquire/release, then a second release is an error.
    a.lock.acquire().unwrap().release().unwrap();
    assert_eq!(
        a.lock.release().unwrap_err().kind(),
        ErrorKind::InvalidState
    );
    // RLock: three acquires need three releases; a fourth is an error.
    let g1 = a.rlock.acquire().unwrap();
    let g2 = a.rlock.acquire().unwrap();
    let g3 = a.rlock.try_acquire().unwrap().expect("re-entrant");
    drop((g3, g2, g1));
    // Both managers say `NotPermitted`, as the crate's own RLock does.
    assert_eq!(
        a.rlock.release().unwrap_err().kind(),
        ErrorKind::NotPermitted
    );
    // Semaphore(2): take both and keep them past this process.
    a.sem.acquire().unwrap().keep();
    a.sem.acquire().unwrap().keep();
    assert!(a.sem.try_acquire().unwrap().is_none());
    // BoundedSemaphore(2): a release above the initial value is refused.
    a.bsem.acquire().unwrap().release().unwrap();
    assert_eq!(
        a.bsem.release().unwrap_err().kind(),
        ErrorKind::InvalidState
    );
    // Queue(2): fill it.
    a.queue.put("one".into()).unwrap();
    a.queue.put("two".into()).unwrap();
    assert!(a.queue.is_full().unwrap());
    assert_eq!(
        a.queue.try_put("three".into()).unwrap_err().kind(),
        ErrorKind::Full
    );
    // JoinableQueue(2): consume what the parent put, marking each done.
    for _ in 0..2 {
        a.jqueue.get_timeout(LONG).unwrap();
        a.jqueue.task_done().unwrap();
    }
    a.list.extend(0..5).unwrap();
    a.list.reverse().unwrap();
    a.list.insert(0, 100).unwrap();
    a.dict.insert("a".into(), vec![1]).unwrap();
    a.dict
        .update([("b".into(), vec![2]), ("c".into(), vec![3, 3])])
        .unwrap();
    a.value.set(&2.5).unwrap();
    a.array.set(1, -7).unwrap();
    a.ns.set("x", &42u32).unwrap();
    a.ns.set("name", "child").unwrap();
    a.event.set().unwrap();
}

/// One object of each kind that `All` holds.
pub(crate) fn make_all(m: &Manager) -> All {
    All {
        event: m.event().unwrap(),
        lock: m.lock().unwrap(),
        rlock: m.rlock().unwrap(),
        sem: m.semaphore(2).unwrap(),
        bsem: m.bounded_semaphore(2).unwrap(),
        queue: m.bounded_queue(2).unwrap(),
        jqueue: m.bounded_joinable_queue(2).unwrap(),
        list: m.list().unwrap(),
        dict: m.dict().unwrap(),
        value: m.value(0.5).unwrap(),
        array: m.array(&[1, 2, 3]).unwrap(),
        ns: m.namespace().unwrap(),
    }
}

/// Every proxy type mutated in a child (started with `method`) and read in the
/// parent, against the objects of `m`: one body for a server manager and a Redis one.
pub(crate) fn every_proxy_type_mutated_in_a_child(m: &Manager, method: StartMethod) {
    let all = make_all(m);
    assert!(all.queue.is_empty().unwrap());
    assert!(!all.queue.is_full().unwrap());
    all.jqueue.put(1).unwrap();
    all.jqueue.put(2).unwrap();
    assert!(all.jqueue.is_full().unwrap());
    assert!(!all.jqueue.join_timeout(Duration::ZERO).unwrap());
    let mine = all.clone();
    let mut p = get_context(method).process(mutate_all, all);
    p.start().unwrap();
    assert!(
        mine.event.wait_timeout(LONG).unwrap(),
        "the child set the event"
    );
    join(&p);
    let a = mine;
    assert!(a.event.is_set().unwrap());
    // Lock and RLock: free again.
    a.lock
        .try_acquire()
        .unwrap()
        .expect("free")
        .release()
        .unwrap();
    assert_eq!(
        a.lock.release().unwrap_err().kind(),
        ErrorKind::InvalidState
    );
    assert!(a.rlock.try_acquire().unwrap().is_some());
    // Semaphore: the child's two permits stay taken; a release above 2 is allowed.
    assert_eq!(a.sem.get_value().unwrap(), 0);
    a.sem.release().unwrap();
    a.sem.release().unwrap();
    a.sem.release().unwrap();
    assert_eq!(a.sem.get_value().unwrap(), 3);
    assert_eq!(a.bsem.get_value().unwrap(), 2);
    // Queue(2): len, full, empty.
    assert_eq!(a.queue.len().unwrap(), 2);
    assert!(a.queue.is_full().unwrap());
    assert_eq!(a.queue.get().unwrap(), "one");
    assert_eq!(a.queue.len().unwrap(), 1);
    assert_eq!(a.queue.get().unwrap(), "two");
    assert!(a.queue.is_empty().unwrap());
    assert_eq!(a.queue.try_get().unwrap_err().kind(), ErrorKind::Empty);
    let t = Instant::now();
    assert_eq!(
        a.queue
            .get_timeout(Duration::from_millis(100))
            .unwrap_err()
            .kind(),
        ErrorKind::Empty
    );
    assert!(t.elapsed() >= Duration::from_millis(90));
    // JoinableQueue: the child marked both done.
    assert!(a.jqueue.join_timeout(LONG).unwrap());
    assert!(a.jqueue.is_empty().unwrap());
    assert_eq!(
        a.jqueue.task_done().unwrap_err().kind(),
        ErrorKind::InvalidState
    );
    assert_eq!(a.list.to_vec().unwrap(), vec![100, 4, 3, 2, 1, 0]);
    assert_eq!(a.list.get(-1).unwrap(), 0);
    assert_eq!(a.dict.len().unwrap(), 3);
    assert_eq!(a.dict.keys().unwrap(), vec!["a", "b", "c"]);
    assert_eq!(a.dict.pop_item().unwrap(), Some(("c".into(), vec![3, 3])));
    assert_eq!(a.dict.get(&"b".into()).unwrap(), Some(vec![2]));
    assert!(!a.dict.contains_key(&"c".into()).unwrap());
    assert_eq!(a.value.get().unwrap(), 2.5);
    assert_eq!(a.array.to_vec().unwrap(), vec![1, -7, 3]);
    assert_eq!(a.ns.get::<u32>("x").unwrap(), Some(42));
    assert_eq!(
        a.ns.get::<String>("name").unwrap().as_deref(),
        Some("child")
    );
    assert_eq!(a.ns.get::<u32>("missing").unwrap(), None);
}

pub(crate) fn notify_when_ready((c, ns): (ConditionProxy, NamespaceProxy)) {
    std::thread::sleep(Duration::from_millis(50));
    let _g = c.acquire().unwrap();
    ns.set("ready", &true).unwrap();
    c.notify_all().unwrap();
}

/// A condition waited on here and notified by a child.
pub(crate) fn condition_across_processes(m: &Manager, method: StartMethod) {
    let (c, ns) = (m.condition().unwrap(), m.namespace().unwrap());
    let mut g = c.acquire().unwrap();
    assert!(!c.wait_timeout(&mut g, Duration::from_millis(20)).unwrap());
    let mut p = get_context(method).process(notify_when_ready, (c.clone(), ns.clone()));
    p.start().unwrap();
    let ready = || ns.get::<bool>("ready").unwrap().unwrap_or(false);
    assert!(c.wait_for(&mut g, ready, Some(LONG)).unwrap());
    drop(g);
    join(&p);
}

pub(crate) fn barrier_party((b, out): (BarrierProxy, ListProxy<u32>)) {
    for _ in 0..3 {
        let i = b.wait_timeout(LONG).unwrap();
        out.push(i).unwrap();
    }
}

/// Five parties (four children and us) through three generations; abort, reset.
pub(crate) fn barrier_of_five(m: &Manager, method: StartMethod) {
    let b = m.barrier(5).unwrap();
    let out = m.list().unwrap();
    assert_eq!(b.parties().unwrap(), 5);
    let mut ps: Vec<_> = (0..4)
        .map(|_| get_context(method).process(barrier_party, (b.clone(), out.clone())))
        .collect();
    for p in &mut ps {
        p.start().unwrap();
    }
    barrier_party((b.clone(), out.clone()));
    for p in &ps {
        join(p);
    }
    let mut idx = out.to_vec().unwrap();
    idx.sort();
    assert_eq!(idx, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]);
    // abort breaks, reset repairs.
    b.abort().unwrap();
    assert!(b.is_broken().unwrap());
    assert_eq!(b.wait().unwrap_err().kind(), ErrorKind::BrokenBarrier);
    b.reset().unwrap();
    assert!(!b.is_broken().unwrap());
    assert_eq!(b.n_waiting().unwrap(), 0);
}

/// Six waiting threads: `notify_n(1)` wakes one, `notify_n(2)` two, `notify_all` the rest.
pub(crate) fn condition_notify_wakes_the_number_asked(m: &Manager) {
    let c = m.condition().unwrap();
    let (ready, woken) = (m.list::<u32>().unwrap(), m.list::<u32>().unwrap());
    // Each thread has its own connection: six waiters, as six processes would be.
    let waiters: Vec<_> = (0..6)
        .map(|i| {
            let (c, ready, woken) = (c.clone(), ready.clone(), woken.clone());
            std::thread::spawn(move || {
                let mut g = c.acquire().unwrap();
                // Still holding the lock: whoever sees this entry while holding the
                // lock knows this thread is already waiting.
                ready.push(i).unwrap();
                if c.wait_timeout(&mut g, LONG).unwrap() {
                    woken.push(i).unwrap();
                }
            })
        })
        .collect();
    let deadline = Instant::now() + LONG;
    loop {
        let g = c.acquire().unwrap();
        if ready.len().unwrap() == 6 {
            assert_eq!(c.notify_n(1).unwrap(), 1);
            break;
        }
        drop(g);
        assert!(Instant::now() < deadline, "the waiters did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    let woken_reach = |n: usize| {
        let deadline = Instant::now() + LONG;
        while woken.len().unwrap() < n {
            assert!(Instant::now() < deadline, "fewer than {n} woke");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        woken.len().unwrap()
    };
    assert_eq!(woken_reach(1), 1);
    {
        let _g = c.acquire().unwrap();
        assert_eq!(c.notify_n(2).unwrap(), 2);
    }
    assert_eq!(woken_reach(3), 3);
    {
        let _g = c.acquire().unwrap();
        c.notify_all().unwrap();
    }
    for t in waiters {
        t.join().unwrap();
    }
    let mut all = woken.to_vec().unwrap();
    all.sort();
    assert_eq!(all, vec![0, 1, 2, 3, 4, 5]);
}

/// `n` threads wait on an event; `set()` then `clear()` at once must wake them all
/// (Python's `Event.wait` returns `True` to a waiter woken by the set, CPython's
/// `test_set_and_clear`). The waiters are many, so most run only after the `clear`.
pub(crate) fn a_set_then_clear_wakes_every_waiter(m: &Manager, n: usize) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let ev = m.event().unwrap();
    let ready = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..n)
        .map(|_| {
            let (ev, ready) = (ev.clone(), ready.clone());
            std::thread::spawn(move || {
                assert!(!ev.is_set().unwrap()); // connected
                ready.fetch_add(1, Ordering::SeqCst);
                ev.wait_timeout(Duration::from_secs(5)).unwrap()
            })
        })
        .collect();
    assert!(
        super::eventually(LONG, || ready.load(Ordering::SeqCst) >= n),
        "waiters did not start"
    );
    std::thread::sleep(Duration::from_millis(300)); // into their waits
    ev.set().unwrap();
    ev.clear().unwrap();
    let woken = waiters
        .into_iter()
        .map(|w| w.join().unwrap())
        .filter(|&w| w)
        .count();
    assert_eq!(woken, n, "every waiter is woken by the set");
    assert!(!ev.is_set().unwrap());
}
