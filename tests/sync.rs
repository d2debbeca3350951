//! Cross-process `Lock` and `RLock`: Python's semantics, mutual exclusion between
//! processes under every start method, and a holder killed while holding the lock.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::{Duration, Instant};

use multiprocess::{Connection, ErrorKind, Lock, Process, RLock, StartMethod, get_context};

multiprocess::test_support!();

mod common;

const LONG: Duration = Duration::from_secs(30);

#[test]
fn lock_basics() {
    let lock = Lock::new().unwrap();
    let g = lock.acquire();
    assert!(!g.owner_died());
    assert!(lock.is_locked());
    assert!(lock.try_acquire().is_none());
    let t = Instant::now();
    assert!(lock.acquire_timeout(Duration::from_millis(100)).is_none());
    assert!(
        t.elapsed() >= Duration::from_millis(90),
        "gave up early: {:?}",
        t.elapsed()
    );
    drop(g);
    assert!(!lock.is_locked());
    assert_eq!(lock.release().unwrap_err().kind(), ErrorKind::InvalidState);
    let g = lock.try_acquire().expect("free again");
    g.keep();
    lock.release().expect("anyone may release a Lock");
}

#[test]
fn rlock_basics() {
    let lock = RLock::new().unwrap();
    let a = lock.acquire();
    let b = lock.acquire();
    let c = lock.try_acquire().expect("re-entrant");
    assert_eq!(lock.count(), 3);
    drop(c);
    drop(b);
    assert_eq!(lock.count(), 1);
    // Another thread cannot take it or release it.
    let other = lock.clone();
    std::thread::spawn(move || {
        assert!(other.try_acquire().is_none());
        assert_eq!(other.release().unwrap_err().kind(), ErrorKind::NotPermitted);
    })
    .join()
    .unwrap();
    drop(a);
    assert_eq!(lock.count(), 0);
    assert_eq!(lock.release().unwrap_err().kind(), ErrorKind::NotPermitted);
}

/// Whether `T` is `Send`, at run time: an inherent constant (bounded by `Send`) wins
/// over the trait's default when the bound holds.
struct SendProbe<T: ?Sized>(std::marker::PhantomData<T>);
trait NotSendFallback {
    const IS_SEND: bool = false;
}
impl<T: ?Sized> NotSendFallback for SendProbe<T> {}
impl<T: ?Sized + Send> SendProbe<T> {
    const IS_SEND: bool = true;
}

/// An `RLockGuard` cannot leave its thread: dropped in another thread it could not
/// release its level (the release is refused there), and the lock stayed held for ever
/// with no error. A `LockGuard` may move (any thread may release a `Lock`).
#[test]
fn rlock_guard_stays_in_its_thread() {
    let is_send = |probed: bool| std::hint::black_box(probed);
    assert!(!is_send(
        SendProbe::<multiprocess::RLockGuard<'static>>::IS_SEND
    ));
    assert!(is_send(
        SendProbe::<multiprocess::LockGuard<'static>>::IS_SEND
    ));
    assert!(
        is_send(SendProbe::<Lock>::IS_SEND),
        "the probe sees Send types"
    );
}

#[test]
fn lock_excludes_threads() {
    let lock = Lock::new().unwrap();
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let lock = lock.clone();
            let counter = counter.clone();
            std::thread::spawn(move || {
                for _ in 0..20_000 {
                    let _g = lock.acquire();
                    // A non-atomic read-modify-write, made safe only by the lock.
                    let v = counter.load(std::sync::atomic::Ordering::Relaxed);
                    counter.store(v + 1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(counter.load(std::sync::atomic::Ordering::Relaxed), 80_000);
}

/// Appends `[` and `]` around a short sleep, under the lock, `rounds` times.
fn bracket_writer((lock, path, rounds): (Lock, String, u32)) {
    let mut f = OpenOptions::new().append(true).open(path).unwrap();
    for _ in 0..rounds {
        let _g = lock.acquire();
        f.write_all(b"[").unwrap();
        std::thread::sleep(Duration::from_micros(200));
        f.write_all(b"]").unwrap();
    }
}

fn mutual_exclusion(method: StartMethod) {
    let path = std::env::temp_dir().join(format!("mp-sync-{}-{method}", std::process::id()));
    std::fs::write(&path, b"").unwrap();
    let lock = Lock::new().unwrap();
    let ctx = get_context(method);
    let mut procs: Vec<_> = (0..3)
        .map(|_| {
            ctx.process(
                bracket_writer,
                (lock.clone(), path.display().to_string(), 50),
            )
        })
        .collect();
    for p in &mut procs {
        p.start().unwrap();
    }
    for p in &procs {
        assert!(p.join_timeout(LONG).unwrap(), "a writer hung");
        assert_eq!(p.exitcode(), Some(0));
    }
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(text.len(), 3 * 50 * 2);
    assert_eq!(text, "[]".repeat(150), "critical sections interleaved");
}

#[test]
fn mutual_exclusion_fork() {
    mutual_exclusion(StartMethod::Fork);
}
#[test]
fn mutual_exclusion_spawn() {
    mutual_exclusion(StartMethod::Spawn);
}
#[test]
fn mutual_exclusion_forkserver() {
    mutual_exclusion(StartMethod::ForkServer);
}

/// Takes the lock, says so, then waits to be killed.
fn hold_forever((lock, conn): (Lock, Connection<()>)) {
    let g = lock.acquire();
    conn.send(&()).unwrap();
    std::thread::sleep(Duration::from_secs(600));
    drop(g);
}

fn holder_killed(method: StartMethod) {
    let lock = Lock::new().unwrap();
    // This thread's identity is now cached: a child that inherited the cache would
    // hold the lock under our name, alive, and the takeover below would never come.
    drop(lock.acquire());
    let (here, there) = multiprocess::pipe().unwrap();
    let mut p = get_context(method).process(hold_forever, (lock.clone(), there));
    p.start().unwrap();
    here.recv_timeout(LONG).unwrap();
    assert!(lock.is_locked());
    assert!(lock.try_acquire().is_none());
    p.kill().unwrap();
    // Not joined yet: the dead holder is a zombie, which still counts as dead.
    let t = Instant::now();
    let g = lock
        .acquire_timeout(LONG)
        .expect("the lock of a dead holder is taken over");
    assert!(g.owner_died(), "the new holder must be told");
    assert!(t.elapsed() < Duration::from_secs(5));
    drop(g);
    assert!(
        !lock.acquire().owner_died(),
        "only the first acquirer after the death is told"
    );
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(-9));
}

#[test]
fn holder_killed_fork() {
    holder_killed(StartMethod::Fork);
}
#[test]
fn holder_killed_spawn() {
    holder_killed(StartMethod::Spawn);
}
#[test]
fn holder_killed_forkserver() {
    holder_killed(StartMethod::ForkServer);
}

/// Takes the lock and the re-entrant lock, and exits holding both.
fn take_both_and_exit((lock, rlock): (Lock, RLock)) {
    lock.acquire().keep();
    rlock.acquire().keep();
}

/// A holder that died is taken over by tries alone (each thread looks at most every
/// 25 ms), and the taker is told. Before, only a wait of 25 ms or more did: tries (and
/// shorter timeouts) failed for ever.
#[test]
fn try_acquire_takes_over_from_a_dead_holder() {
    let (lock, rlock) = (Lock::new().unwrap(), RLock::new().unwrap());
    let mut p = Process::new(take_both_and_exit, (lock.clone(), rlock.clone()));
    p.start().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));
    assert!(lock.is_locked() && rlock.count() == 1);
    let bound = Duration::from_secs(5);
    let g = common::within(bound, "try_acquire never took the lock over", || {
        lock.try_acquire()
    });
    assert!(g.owner_died());
    let r = common::within(bound, "a short timeout never took the lock over", || {
        rlock.acquire_timeout(Duration::from_millis(1))
    });
    assert!(r.owner_died());
    assert_eq!(rlock.count(), 1);
    // A live holder's lock is never taken.
    let other = lock.clone();
    std::thread::spawn(move || {
        for _ in 0..10 {
            assert!(other.try_acquire().is_none());
            std::thread::sleep(Duration::from_millis(10));
        }
    })
    .join()
    .unwrap();
    drop((g, r));
    assert!(!lock.is_locked() && rlock.count() == 0);
}

/// Acquires the RLock three times and reports the count seen in this process.
fn rlock_child((lock, conn): (RLock, Connection<u32>)) {
    let _a = lock.acquire();
    let _b = lock.acquire();
    let _c = lock.acquire();
    conn.send(&lock.count()).unwrap();
}

#[test]
fn rlock_across_processes() {
    for method in multiprocess::get_all_start_methods() {
        let lock = RLock::new().unwrap();
        let (here, there) = multiprocess::pipe().unwrap();
        let mut p = get_context(method).process(rlock_child, (lock.clone(), there));
        p.start().unwrap();
        assert_eq!(here.recv_timeout(LONG).unwrap(), 3, "{method}");
        assert!(p.join_timeout(LONG).unwrap());
        assert_eq!(p.exitcode(), Some(0));
        // Released three times by its holder: free here.
        assert!(lock.try_acquire().is_some(), "{method}");
    }
}

/// Sent through a connection, a lock still locks the same thing.
fn lock_via_connection(conn: Connection<Lock>) {
    let lock = conn.recv().unwrap();
    lock.release().unwrap();
}

#[test]
fn lock_sent_through_a_connection() {
    let lock = Lock::new().unwrap();
    lock.acquire().keep();
    let (here, there) = multiprocess::pipe::<Lock>().unwrap();
    let mut p = Process::new(lock_via_connection, there);
    p.start().unwrap();
    here.send(&lock).unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));
    assert!(!lock.is_locked(), "the child released our lock");
}

#[test]
fn semaphore_counts() {
    use multiprocess::{BoundedSemaphore, Semaphore};
    let sem = Semaphore::new(2).unwrap();
    assert_eq!(sem.value(), 2);
    let a = sem.acquire();
    assert_eq!(sem.value(), 1);
    let b = sem.try_acquire().expect("one left");
    assert_eq!(sem.value(), 0);
    assert!(sem.try_acquire().is_none());
    assert_eq!(sem.value(), 0, "a failed try_acquire takes nothing");
    let t = Instant::now();
    assert!(sem.acquire_timeout(Duration::from_millis(100)).is_none());
    assert!(t.elapsed() >= Duration::from_millis(90));
    drop((a, b));
    assert_eq!(sem.value(), 2);
    sem.release().unwrap();
    assert_eq!(sem.value(), 3, "release above the initial value is allowed");

    let bounded = BoundedSemaphore::new(2).unwrap();
    assert_eq!(
        bounded.release().unwrap_err().kind(),
        ErrorKind::InvalidState
    );
    bounded.acquire().keep();
    bounded.release().unwrap();
    assert_eq!(bounded.value(), 2);
}

/// Waits for a permit, then reports.
fn take_permit((sem, conn): (multiprocess::Semaphore, Connection<u32>)) {
    let g = sem.acquire_timeout(LONG).expect("a permit arrives");
    g.keep();
    conn.send(&std::process::id()).unwrap();
}

fn sets_after_delay(ev: multiprocess::Event) {
    std::thread::sleep(Duration::from_millis(100));
    ev.set();
}

/// How long the waiters of `event_pulse_wakes_the_waiters` wait at most.
const PULSE_PATIENCE: Duration = Duration::from_secs(10);

/// Says it is about to wait on the event, waits (at most `PULSE_PATIENCE`), and
/// reports the flag.
fn pulse_waiter((ev, conn): (multiprocess::Event, Connection<bool>)) {
    conn.send(&false).unwrap();
    conn.send(&ev.wait_timeout(PULSE_PATIENCE)).unwrap();
}

/// A `set()` followed at once by `clear()` (a pulse) wakes the processes and threads
/// waiting then, as in Python (whose waiters return the flag they find: `False` once
/// cleared). Before, a woken waiter that looked after the clear slept on until its
/// timeout, and `wait()` without one hung for ever. The waiting child is stopped
/// (`SIGSTOP`) during the pulse, so that it always looks after the clear.
#[test]
fn event_pulse_wakes_the_waiters() {
    let ev = multiprocess::Event::new().unwrap();
    let (here, there) = multiprocess::pipe::<bool>().unwrap();
    let mut p = Process::new(pulse_waiter, (ev.clone(), there));
    p.start().unwrap();
    let ev2 = ev.clone();
    let thread = std::thread::spawn(move || ev2.wait_timeout(PULSE_PATIENCE));
    assert!(!here.recv_timeout(LONG).unwrap());
    // Until both are asleep (the child after its message, the thread after its start).
    std::thread::sleep(Duration::from_millis(300));
    let pid = p.pid().unwrap();
    common::kill(pid, libc::SIGSTOP);
    let t = Instant::now();
    ev.set();
    ev.clear();
    common::kill(pid, libc::SIGCONT);
    assert!(
        !here.recv_timeout(LONG).unwrap(),
        "the child found the flag clear"
    );
    // The thread finds the flag set if it looked before the clear.
    thread.join().unwrap();
    assert!(
        t.elapsed() < PULSE_PATIENCE / 2,
        "woken by the pulse, not the timeout"
    );
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));
    // A waiter that starts after the pulse waits for the next set.
    assert!(!ev.wait_timeout(Duration::from_millis(50)));
    ev.set();
    assert!(ev.wait_timeout(Duration::ZERO) && ev.is_set());
    ev.set(); // already set: no change
    ev.clear();
    ev.clear();
    assert!(!ev.is_set() && !ev.wait_timeout(Duration::ZERO));
}

fn semaphore_and_event(method: StartMethod) {
    let ctx = get_context(method);
    // Three children wait on an empty semaphore; each release lets exactly one through.
    let sem = multiprocess::Semaphore::new(0).unwrap();
    let mut procs = Vec::new();
    let mut conns = Vec::new();
    for _ in 0..3 {
        let (here, there) = multiprocess::pipe::<u32>().unwrap();
        let mut p = ctx.process(take_permit, (sem.clone(), there));
        p.start().unwrap();
        procs.push(p);
        conns.push(here);
    }
    for released in 1..=3 {
        sem.release().unwrap();
        let objs: Vec<&dyn multiprocess::Waitable> = conns
            .iter()
            .map(|c| c as &dyn multiprocess::Waitable)
            .collect();
        let ready = multiprocess::wait(&objs, Some(LONG)).unwrap();
        assert_eq!(
            ready.len(),
            1,
            "{method}: release {released} let {} through",
            ready.len()
        );
        conns[ready[0]].recv().unwrap();
        conns.remove(ready[0]);
        // Nobody else gets through without another release.
        let objs: Vec<&dyn multiprocess::Waitable> = conns
            .iter()
            .map(|c| c as &dyn multiprocess::Waitable)
            .collect();
        assert!(
            multiprocess::wait(&objs, Some(Duration::from_millis(50)))
                .unwrap()
                .is_empty()
                || conns.is_empty()
        );
    }
    for p in &procs {
        assert!(p.join_timeout(LONG).unwrap());
        assert_eq!(p.exitcode(), Some(0));
    }
    assert_eq!(sem.value(), 0);

    // An event set in a child after a delay wakes a waiter here.
    let ev = multiprocess::Event::new().unwrap();
    assert!(!ev.wait_timeout(Duration::ZERO));
    let mut p = ctx.process(sets_after_delay, ev.clone());
    let t = Instant::now();
    p.start().unwrap();
    assert!(ev.wait_timeout(LONG), "{method}: the child's set() woke us");
    assert!(t.elapsed() >= Duration::from_millis(90));
    assert!(ev.is_set());
    ev.clear();
    assert!(!ev.is_set());
    assert!(p.join_timeout(LONG).unwrap());
}

#[test]
fn semaphore_and_event_fork() {
    semaphore_and_event(StartMethod::Fork);
}
#[test]
fn semaphore_and_event_spawn() {
    semaphore_and_event(StartMethod::Spawn);
}
#[test]
fn semaphore_and_event_forkserver() {
    semaphore_and_event(StartMethod::ForkServer);
}

type CondArgs = (
    multiprocess::Condition,
    multiprocess::Semaphore,
    multiprocess::Semaphore,
);

/// Waits on the condition; `sleeping` is released (under the lock) just before, and
/// `woken` right after being notified.
fn cond_waiter((cond, sleeping, woken): CondArgs) {
    let mut g = cond.acquire();
    sleeping.release().unwrap();
    if cond.wait_timeout(&mut g, LONG) {
        woken.release().unwrap();
    }
}

fn count_woken(woken: &multiprocess::Semaphore, expect: u32, method: StartMethod) {
    for i in 0..expect {
        // Keep the permit taken (a dropped guard would return it).
        assert!(
            woken.acquire_timeout(LONG).map(|g| g.keep()).is_some(),
            "{method}: only {i} of {expect} woke"
        );
    }
    assert!(
        woken.acquire_timeout(Duration::from_millis(200)).is_none(),
        "{method}: more than {expect} woke"
    );
}

/// Starts six waiters and returns once all six are inside `wait()` (each signals
/// `sleeping` while holding the lock, which `wait` releases).
fn start_waiters(ctx: &multiprocess::Context, args: CondArgs) -> Vec<Process<CondArgs>> {
    let mut procs: Vec<_> = (0..6)
        .map(|_| ctx.process(cond_waiter, args.clone()))
        .collect();
    for p in &mut procs {
        p.start().unwrap();
    }
    for _ in 0..6 {
        args.1.acquire_timeout(LONG).expect("waiter started").keep();
    }
    procs
}

fn condition_notify(method: StartMethod) {
    use multiprocess::{Condition, Semaphore};
    let ctx = get_context(method);
    let cond = Condition::new().unwrap();
    let sleeping = Semaphore::new(0).unwrap();
    let woken = Semaphore::new(0).unwrap();
    let procs = start_waiters(&ctx, (cond.clone(), sleeping.clone(), woken.clone()));
    {
        // Holding the lock proves every waiter is inside wait().
        let _g = cond.acquire();
        cond.notify().unwrap();
    }
    count_woken(&woken, 1, method);
    {
        let _g = cond.acquire();
        assert_eq!(cond.notify_n(2).unwrap(), 2);
    }
    count_woken(&woken, 2, method);
    {
        let _g = cond.acquire();
        assert_eq!(cond.notify_n(4).unwrap(), 3, "only three were left");
    }
    count_woken(&woken, 3, method);
    for p in &procs {
        assert!(p.join_timeout(LONG).unwrap());
        assert_eq!(p.exitcode(), Some(0));
    }
    // notify_all wakes every one of a new batch.
    let procs = start_waiters(&ctx, (cond.clone(), sleeping.clone(), woken.clone()));
    {
        let _g = cond.acquire();
        cond.notify_all().unwrap();
    }
    count_woken(&woken, 6, method);
    for p in &procs {
        assert!(p.join_timeout(LONG).unwrap());
    }
    // wait_timeout returns false when nobody notifies.
    let mut g = cond.acquire();
    let t = Instant::now();
    assert!(!cond.wait_timeout(&mut g, Duration::from_millis(100)));
    assert!(t.elapsed() >= Duration::from_millis(90));
}

#[test]
fn condition_notify_fork() {
    condition_notify(StartMethod::Fork);
}
#[test]
fn condition_notify_spawn() {
    condition_notify(StartMethod::Spawn);
}
#[test]
fn condition_notify_forkserver() {
    condition_notify(StartMethod::ForkServer);
}

/// In a child: notify without the lock is refused (as Python raises), with it allowed.
fn notify_needs_the_lock(cond: multiprocess::Condition) {
    let refused =
        |r: multiprocess::Result<()>| r.is_err_and(|e| e.kind() == ErrorKind::NotPermitted);
    assert!(refused(cond.notify()), "notify without the lock");
    assert!(refused(cond.notify_all()), "notify_all without the lock");
    assert!(cond.notify_n(1).is_err(), "notify_n without the lock");
    let _g = cond.acquire();
    cond.notify().unwrap();
    cond.notify_all().unwrap();
}

fn condition_notify_without_the_lock(method: StartMethod) {
    let cond = multiprocess::Condition::new().unwrap();
    // Held by the parent: the child does not hold it either.
    let g = cond.acquire();
    assert_eq!(cond.notify().map_err(|e| e.kind()), Ok(()));
    let mut p = get_context(method).process(notify_needs_the_lock, cond.clone());
    p.start().unwrap();
    // The child blocks on acquire until we release.
    std::thread::sleep(Duration::from_millis(50));
    drop(g);
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0), "the child's checks failed");
    assert_eq!(cond.notify().unwrap_err().kind(), ErrorKind::NotPermitted);
}

#[test]
fn condition_notify_without_the_lock_fork() {
    condition_notify_without_the_lock(StartMethod::Fork);
}
#[test]
fn condition_notify_without_the_lock_spawn() {
    condition_notify_without_the_lock(StartMethod::Spawn);
}
#[test]
fn condition_notify_without_the_lock_forkserver() {
    condition_notify_without_the_lock(StartMethod::ForkServer);
}

/// Makes the predicate true (the event) under the lock, then notifies.
fn make_true((cond, ev): (multiprocess::Condition, multiprocess::Event)) {
    std::thread::sleep(Duration::from_millis(50));
    let _g = cond.acquire();
    ev.set();
    cond.notify_all().unwrap();
}

#[test]
fn condition_wait_for() {
    for method in multiprocess::get_all_start_methods() {
        let cond = multiprocess::Condition::new().unwrap();
        let ev = multiprocess::Event::new().unwrap();
        let mut p = get_context(method).process(make_true, (cond.clone(), ev.clone()));
        let mut g = cond.acquire();
        p.start().unwrap();
        assert!(
            cond.wait_for(&mut g, || ev.is_set(), Some(LONG)),
            "{method}"
        );
        drop(g);
        assert!(p.join_timeout(LONG).unwrap());
    }
}

/// Waiting with the guard of another lock than the condition's is refused (Python
/// raises, std's `Condvar` panics); before, the wait returned at once, so a waiting
/// loop spun. With the condition's own lock held, such a wait still works.
#[test]
fn condition_wait_with_a_foreign_guard_panics() {
    let cond = multiprocess::Condition::new().unwrap();
    let other = RLock::new().unwrap();
    let mut g = other.acquire();
    let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cond.wait_timeout(&mut g, LONG)
    }));
    assert!(waited.is_err(), "waited without the condition's lock");
    let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cond.wait_for(&mut g, || false, Some(LONG))
    }));
    assert!(waited.is_err(), "waited without the condition's lock");
    // A predicate already true needs no wait, as in Python.
    assert!(cond.wait_for(&mut g, || true, Some(LONG)));
    drop(g);
    let mut g = cond.acquire();
    assert!(!cond.wait_timeout(&mut g, Duration::from_millis(10)));
}

fn action_log() -> std::path::PathBuf {
    // The action runs in whichever party arrives last: the test process or a child.
    let root = multiprocess::parent_process().map_or(std::process::id(), |p| p.pid());
    std::env::temp_dir().join(format!("mp-barrier-action-{root}"))
}

fn log_pass() {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(action_log())
        .unwrap();
    f.write_all(b"pass\n").unwrap();
}

/// Waits `passes` times; returns the index it got each time.
fn barrier_party((b, passes): (multiprocess::Barrier, u32)) -> Vec<u32> {
    (0..passes)
        .map(|_| b.wait_timeout(LONG).expect("barrier pass"))
        .collect()
}

fn check_passes(all: &[Vec<u32>], passes: usize, parties: u32) {
    for pass in 0..passes {
        let mut idx: Vec<u32> = all.iter().map(|v| v[pass]).collect();
        idx.sort();
        assert_eq!(
            idx,
            (0..parties).collect::<Vec<_>>(),
            "pass {pass}: each index exactly once"
        );
    }
}

/// The barrier action takes no arguments, so the lockstep tests share one log file
/// per test process: under `cargo test` (threads) they take turns.
static ACTION_LOG_USERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn barrier_lockstep(method: StartMethod) {
    let _turn = ACTION_LOG_USERS.lock().unwrap_or_else(|e| e.into_inner());
    let _ = std::fs::remove_file(action_log());
    let b = multiprocess::Barrier::with_action(5, log_pass).unwrap();
    let ctx = get_context(method);
    for passes in [1u32, 10] {
        let handles: Vec<_> = (0..4)
            .map(|_| ctx.spawn(barrier_party, (b.clone(), passes)).unwrap())
            .collect();
        let mine = barrier_party((b.clone(), passes));
        let mut all: Vec<Vec<u32>> = handles
            .into_iter()
            .map(|mut h| h.join_timeout(LONG).unwrap())
            .collect();
        all.push(mine);
        check_passes(&all, passes as usize, 5);
    }
    let log = std::fs::read_to_string(action_log()).unwrap();
    std::fs::remove_file(action_log()).unwrap();
    assert_eq!(
        log.lines().count(),
        11,
        "{method}: the action ran once per pass"
    );
}

#[test]
fn barrier_lockstep_fork() {
    barrier_lockstep(StartMethod::Fork);
}
#[test]
fn barrier_lockstep_spawn() {
    barrier_lockstep(StartMethod::Spawn);
}
#[test]
fn barrier_lockstep_forkserver() {
    barrier_lockstep(StartMethod::ForkServer);
}

#[test]
fn barrier_five_processes_thousand_passes() {
    let b = multiprocess::Barrier::new(5).unwrap();
    let handles: Vec<_> = (0..5)
        .map(|_| multiprocess::spawn(barrier_party, (b.clone(), 1000)).unwrap())
        .collect();
    let all: Vec<Vec<u32>> = handles
        .into_iter()
        .map(|mut h| h.join_timeout(Duration::from_secs(120)).unwrap())
        .collect();
    check_passes(&all, 1000, 5);
}

/// Waits once; reports whether the barrier was broken.
fn barrier_broken_party(b: multiprocess::Barrier) -> bool {
    matches!(b.wait_timeout(LONG), Err(e) if e.kind() == ErrorKind::BrokenBarrier)
}

fn wait_for_waiters(b: &multiprocess::Barrier, n: u32) {
    let deadline = Instant::now() + LONG;
    while b.n_waiting() < n {
        assert!(Instant::now() < deadline, "parties never arrived");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn barrier_abort_reset_and_timeout() {
    for method in multiprocess::get_all_start_methods() {
        let ctx = get_context(method);
        // abort() breaks the waiters.
        let b = multiprocess::Barrier::new(3).unwrap();
        let hs: Vec<_> = (0..2)
            .map(|_| ctx.spawn(barrier_broken_party, b.clone()).unwrap())
            .collect();
        wait_for_waiters(&b, 2);
        b.abort();
        for mut h in hs {
            assert!(
                h.join_timeout(LONG).unwrap(),
                "{method}: abort must break the waiters"
            );
        }
        assert!(b.is_broken());
        assert_eq!(b.wait().unwrap_err().kind(), ErrorKind::BrokenBarrier);
        // reset() breaks the current waiters and makes the barrier usable again.
        b.reset();
        assert!(!b.is_broken());
        let hs: Vec<_> = (0..2)
            .map(|_| ctx.spawn(barrier_broken_party, b.clone()).unwrap())
            .collect();
        wait_for_waiters(&b, 2);
        b.reset();
        for mut h in hs {
            assert!(
                h.join_timeout(LONG).unwrap(),
                "{method}: reset must break the waiters"
            );
        }
        let hs: Vec<_> = (0..2)
            .map(|_| ctx.spawn(barrier_party, (b.clone(), 1)).unwrap())
            .collect();
        b.wait_timeout(LONG).unwrap();
        for mut h in hs {
            h.join_timeout(LONG).unwrap();
        }
        // A late party makes the others time out, which breaks the barrier.
        let late = multiprocess::Barrier::with_timeout(3, Duration::from_millis(200)).unwrap();
        let hs: Vec<_> = (0..2)
            .map(|_| {
                ctx.spawn(barrier_broken_party_default, late.clone())
                    .unwrap()
            })
            .collect();
        for mut h in hs {
            assert!(
                h.join_timeout(LONG).unwrap(),
                "{method}: timed-out parties see a broken barrier"
            );
        }
        assert!(late.is_broken());
    }
}

fn barrier_broken_party_default(b: multiprocess::Barrier) -> bool {
    matches!(b.wait(), Err(e) if e.kind() == ErrorKind::BrokenBarrier)
}

/// The other side of `condition_turns`: waits for each odd value, answers with the next.
fn condition_turn_taker(
    (cond, value, rounds): (multiprocess::Condition, multiprocess::Value<i64>, i64),
) -> i64 {
    for i in 0..rounds {
        let mut g = cond.acquire();
        if !cond.wait_for(&mut g, || value.get() == 2 * i + 1, Some(LONG)) {
            return i;
        }
        value.set(2 * i + 2);
        cond.notify().unwrap();
    }
    rounds
}

/// Two processes take turns on one condition: set the value, notify, wait for the
/// answer. A notifier that waited at once used to take back its own notification, so
/// the waiter it had woken slept on and the turns stopped at the first round or two.
#[test]
fn condition_turns() {
    let rounds = 300;
    for method in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        let cond = multiprocess::Condition::new().unwrap();
        let value = multiprocess::Value::new(0i64).unwrap();
        let mut h = get_context(method)
            .spawn(condition_turn_taker, (cond.clone(), value.clone(), rounds))
            .unwrap();
        for i in 0..rounds {
            let mut g = cond.acquire();
            value.set(2 * i + 1);
            cond.notify().unwrap();
            let answered = cond.wait_for(&mut g, || value.get() == 2 * i + 2, Some(LONG));
            assert!(answered, "{method}: no answer in round {i}");
        }
        assert_eq!(h.join_timeout(LONG).unwrap(), rounds, "{method}");
    }
}

/// Python's `n_waiting` is 0 once the barrier is broken: the parties that waited are
/// leaving with an error, not waiting.
#[test]
fn barrier_n_waiting_after_a_break() {
    let b = multiprocess::Barrier::new(3).unwrap();
    let waiter = {
        let b = b.clone();
        std::thread::spawn(move || b.wait_timeout(LONG))
    };
    let until = Instant::now() + LONG;
    while b.n_waiting() != 1 {
        assert!(Instant::now() < until, "the party never waited");
        std::thread::sleep(Duration::from_millis(1));
    }
    b.abort();
    assert_eq!(b.n_waiting(), 0);
    let r = waiter.join().unwrap();
    assert_eq!(r.unwrap_err().kind(), ErrorKind::BrokenBarrier);
    assert_eq!(b.n_waiting(), 0);
    b.reset();
    assert_eq!(b.n_waiting(), 0);
}
