//! Timeouts too long to represent as an instant (`Duration::MAX`, or anything that
//! overflows `Instant::now() + timeout`) mean "wait forever": no panic, no early
//! timeout. One test per family of blocking calls; each waits on something that is
//! already satisfied (or soon is), so the test ends.

multiprocess::test_support!();

#[macro_use]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use multiprocess::{
    Barrier, BoundedSemaphore, Condition, Connection, Event, JoinableQueue, Lock, Process, Queue,
    RLock, Semaphore, StartMethod, Waitable, get_context, parent_process, pipe, wait,
};

use common::{CHILD_PATIENCE, LONG, double, noop};

const FOREVER: Duration = Duration::MAX;

/// Also overflows `Instant::now() + t`, without being `Duration::MAX` itself.
const HUGE: Duration = Duration::from_secs(u64::MAX / 2);

/// Starts a grandchild that may outlive us and waits for us forever, then waits to be
/// terminated.
fn middle((to_g, hold): (Connection<bool>, Connection<()>)) {
    let mut g = Process::new(waits_for_parent_forever, to_g).die_with_parent(false);
    g.start().unwrap();
    let _ = hold.recv_timeout(CHILD_PATIENCE);
}

/// Says "started", then `parent_process().join_timeout(Duration::MAX)`'s answer.
fn waits_for_parent_forever(conn: Connection<bool>) {
    conn.send(&false).unwrap();
    let parent = parent_process().unwrap();
    conn.send(&parent.join_timeout(FOREVER)).unwrap();
}

for_each_method!(processes);

/// `Process::join_timeout`, `JoinHandle::join_timeout` and
/// `ParentProcess::join_timeout` with `Duration::MAX` wait for the end.
fn processes(m: StartMethod) {
    let ctx = get_context(m);
    let mut p = ctx.process(noop, ());
    p.start().unwrap();
    assert!(p.join_timeout(FOREVER).unwrap());
    assert_eq!(p.exitcode(), Some(0));

    let mut h = ctx.spawn(double, 21).unwrap();
    assert_eq!(h.join_timeout(FOREVER).unwrap(), 42);
    let mut h = ctx.spawn(double, 2).unwrap();
    assert_eq!(h.join_timeout(HUGE).unwrap(), 4);

    let (g_here, g_there) = pipe::<bool>().unwrap();
    let (hold, held) = pipe::<()>().unwrap();
    let mut mid = ctx.process(middle, (g_there, held));
    mid.start().unwrap();
    assert!(
        !g_here.recv_timeout(LONG).unwrap(),
        "the grandchild started"
    );
    // Terminated: at a normal exit it would join the grandchild, which waits for it.
    mid.terminate().unwrap();
    assert!(mid.join_timeout(LONG).unwrap());
    assert!(
        g_here.recv_timeout(LONG).unwrap(),
        "the grandchild saw its parent end"
    );
    assert!(!mid.is_alive().unwrap());
    drop(hold);
}

#[test]
fn connections_and_wait() {
    let _g = common::shared();
    let (a, b) = pipe::<u32>().unwrap();
    a.send(&7).unwrap();
    assert!(b.poll(Some(FOREVER)).unwrap());
    assert_eq!(
        wait(&[&b as &dyn Waitable], Some(FOREVER)).unwrap(),
        vec![0]
    );
    assert_eq!(b.recv_timeout(FOREVER).unwrap(), 7);
    a.send(&8).unwrap();
    assert_eq!(b.recv_timeout(HUGE).unwrap(), 8);
}

#[test]
fn queues() {
    let _g = common::shared();
    let q = Queue::<u32>::bounded(1).unwrap();
    assert!(q.put_timeout(1, FOREVER).is_ok());
    assert_eq!(q.get_timeout(FOREVER).unwrap(), 1);

    let jq = JoinableQueue::<u32>::new().unwrap();
    assert!(jq.put_timeout(2, FOREVER).is_ok());
    assert_eq!(jq.get_timeout(FOREVER).unwrap(), 2);
    jq.task_done().unwrap();
    assert!(jq.join_timeout(FOREVER));
}

#[test]
fn locks_and_semaphores() {
    let _g = common::shared();
    let lock = Lock::new().unwrap();
    assert!(lock.acquire_timeout(FOREVER).is_some());
    let rlock = RLock::new().unwrap();
    let outer = rlock.acquire_timeout(FOREVER).expect("free");
    assert!(rlock.acquire_timeout(FOREVER).is_some(), "re-entry");
    drop(outer);
    let sem = Semaphore::new(1).unwrap();
    assert!(sem.acquire_timeout(FOREVER).is_some());
    let bsem = BoundedSemaphore::new(1).unwrap();
    assert!(bsem.acquire_timeout(HUGE).is_some());
}

#[test]
fn events_conditions_and_barriers() {
    let _g = common::shared();
    let ev = Event::new().unwrap();
    ev.set();
    assert!(ev.wait_timeout(FOREVER));

    let cond = Condition::new().unwrap();
    let mut g = cond.acquire();
    assert!(cond.wait_for(&mut g, || true, Some(FOREVER)));
    // A notifier thread: `wait_timeout` returns `true` once notified.
    let done = Arc::new(AtomicBool::new(false));
    let (c2, d2) = (cond.clone(), done.clone());
    let notifier = std::thread::spawn(move || {
        for _ in 0..6000 {
            if d2.load(Ordering::SeqCst) {
                return;
            }
            let g = c2.acquire();
            c2.notify_all().unwrap();
            drop(g);
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    assert!(cond.wait_timeout(&mut g, FOREVER));
    drop(g);
    done.store(true, Ordering::SeqCst);
    notifier.join().unwrap();

    let b = Barrier::new(1).unwrap();
    assert_eq!(b.wait_timeout(FOREVER).unwrap(), 0);
    let b = Barrier::with_timeout(1, FOREVER).unwrap();
    assert_eq!(b.wait().unwrap(), 0);
}
