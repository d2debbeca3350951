//! `multiprocess::futures`: `ProcessPoolExecutor` under every start method and
//! `ThreadPoolExecutor`, with `Future`, `wait`, `as_completed` and `.await`: Python's
//! `concurrent.futures` semantics, plus ours: a killed worker fails only its future and
//! the executor goes on.
//!
//! Every process test checks that the workers it saw (pids returned by tasks) are gone
//! once the executor is dropped; `lifecycle_no_leak` checks, alone in the process, that
//! no process and no fd is left at all.

multiprocess::test_support!();

#[macro_use]
mod common;

use std::collections::HashSet;
use std::future::IntoFuture;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use multiprocess::futures::{
    Future, ProcessPoolExecutor, ReturnWhen, ThreadPoolExecutor, as_completed, wait,
};
use multiprocess::{ErrorKind, Event, Queue, StartMethod, Value, get_context};

use common::{
    BOUND, GRACE, LONG, SOON, assert_gone, assert_quiescent, eventually, fd_count, fd_list,
    fork_server_pid, kill, nap, square, timed,
};

fn executor(method: StartMethod, n: usize) -> ProcessPoolExecutor {
    ProcessPoolExecutor::builder()
        .max_workers(n)
        .context(get_context(method))
        .build()
        .expect("start the executor")
}

/// Drops the executor (bounded) and checks that the processes `pids` are gone.
fn drop_and_check(ex: ProcessPoolExecutor, pids: impl IntoIterator<Item = u32>) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        drop(ex);
        let _ = tx.send(());
    });
    rx.recv_timeout(BOUND)
        .expect("dropping the executor returns");
    for pid in pids {
        assert_gone(pid);
    }
}

/// A waker that unparks the polling thread and counts its wake-ups.
struct ThreadWaker {
    thread: std::thread::Thread,
    wakes: AtomicUsize,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, SeqCst);
        self.thread.unpark();
    }
}

/// Drives `fut` on this thread, parking between polls: it makes progress only when
/// its waker is called (or after `limit`, which fails). Its output, the number of polls
/// and of wake-ups.
fn block_on<F: IntoFuture>(fut: F, limit: Duration) -> (F::Output, usize, usize) {
    let w = Arc::new(ThreadWaker {
        thread: std::thread::current(),
        wakes: AtomicUsize::new(0),
    });
    let waker = Waker::from(w.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut.into_future());
    let deadline = Instant::now() + limit;
    let mut polls = 0;
    loop {
        polls += 1;
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return (v, polls, w.wakes.load(SeqCst));
        }
        let now = Instant::now();
        assert!(
            now < deadline,
            "not ready within {limit:?}: {polls} polls, {} wake-ups",
            w.wakes.load(SeqCst)
        );
        std::thread::park_timeout(deadline - now);
    }
}

// ------------------------------------------------------- functions run in workers

fn fails_on_13(x: u64) -> u64 {
    if x == 13 {
        panic!("unlucky number {x}");
    }
    x
}

fn my_pid(_: u64) -> u64 {
    u64::from(std::process::id())
}

/// Waits for the event (at most `ms`); 1 if it was set, else 0.
fn wait_event((ev, ms): (Event, u64)) -> u64 {
    u64::from(ev.wait_timeout(Duration::from_millis(ms)))
}

/// Waits for the event (at most `ms`); (own pid, whether it was set).
fn pid_after_event((ev, ms): (Event, u64)) -> (u32, bool) {
    let set = ev.wait_timeout(Duration::from_millis(ms));
    (std::process::id(), set)
}

/// Sends its pid, then blocks (for a test to kill it).
fn report_and_block(q: Queue<u32>) -> u64 {
    q.put(std::process::id()).expect("report the pid");
    std::thread::sleep(Duration::from_secs(60));
    0
}

/// Counts its run.
fn bump(v: Value<u32>) -> u64 {
    *v.lock() += 1;
    0
}

fn init_fails(count: Value<u32>) {
    *count.lock() += 1;
    panic!("executor initializer refuses");
}

/// Starts `report_and_block`; its future and the pid of the worker running it.
fn start_blocker(ex: &ProcessPoolExecutor) -> (Future<u64>, u32) {
    let q = Queue::new().unwrap();
    let f = ex.submit(report_and_block, q.clone()).unwrap();
    let pid = q.get_timeout(BOUND).expect("the task reports its pid");
    (f, pid)
}

// =========================================================== ProcessPoolExecutor

for_each_method!(
    watchdog:
    submit_result_exception_map,
    map_with_timeout,
    killed_worker_fails_its_future_only,
    futures_queued_behind_a_killed_worker_complete,
    shutdown_cancel_futures,
    shutdown_cancel_futures_cancels_map,
    shutdown_wait_runs_pending,
    wait_return_when,
    as_completed_finished_cancelled_failed,
    a_future_passed_twice_counts_once,
    fifteen_x_max_workers_start_max_workers,
    initializer_fails_breaks_executor,
    await_through_into_future,
    add_done_callback_before_and_after,
    running_and_cancel,
);

for_each_method!(watchdog, serial: lifecycle_no_leak);

fn submit_result_exception_map(method: StartMethod) {
    let ex = executor(method, 2);
    let f = ex.submit(square, 7).unwrap();
    assert_eq!(f.result_timeout(BOUND).unwrap(), 49);
    assert!(f.done() && !f.cancelled() && !f.running());
    assert!(f.exception().is_none());
    assert_eq!(
        f.result().unwrap_err().kind(),
        ErrorKind::InvalidState,
        "the value was taken"
    );
    let bad = ex.submit(fails_on_13, 13).unwrap();
    let e = bad.exception().expect("it failed");
    assert_eq!(e.kind(), ErrorKind::Panicked);
    assert!(e.to_string().contains("unlucky number 13"), "{e}");
    assert!(bad.done() && !bad.cancelled());
    assert_eq!(bad.result().unwrap_err().kind(), ErrorKind::Panicked);
    // result_timeout gives up waiting; the call goes on.
    let slow = ex.submit(nap, 500).unwrap();
    let (r, took) = timed(|| slow.result_timeout(Duration::from_millis(100)));
    assert_eq!(r.unwrap_err().kind(), ErrorKind::Timeout);
    assert!(
        took >= Duration::from_millis(90) && took < Duration::from_millis(450),
        "{took:?}"
    );
    assert_eq!(slow.result_timeout(BOUND).unwrap(), 500);
    // map, in order.
    let v: Vec<u64> = ex
        .map(square, 0..50u64)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(v, (0..50u64).map(|x| x * x).collect::<Vec<_>>());
    let v: Vec<u64> = ex
        .map_with(square, 0..50u64, None, 7)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(v, (0..50u64).map(|x| x * x).collect::<Vec<_>>());
    // A failing call is one Err item of map.
    let out: Vec<_> = ex.map(fails_on_13, 10..16u64).unwrap().collect();
    assert_eq!(out.len(), 6);
    assert_eq!(out[3].as_ref().unwrap_err().kind(), ErrorKind::Panicked);
    assert_eq!(*out[5].as_ref().unwrap(), 15);
    let pids: Vec<u32> = ex
        .map(my_pid, 0..10u64)
        .unwrap()
        .map(|r| r.unwrap() as u32)
        .collect();
    assert_eq!(
        ProcessPoolExecutor::new(0).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    drop_and_check(ex, pids);
}

fn map_with_timeout(method: StartMethod) {
    let ex = executor(method, 3);
    let t = Instant::now();
    let mut it = ex
        .map_with(nap, [0u64, 0, 3000], Some(Duration::from_secs(1)), 1)
        .unwrap();
    assert_eq!(it.next().unwrap().unwrap(), 0);
    assert_eq!(it.next().unwrap().unwrap(), 0);
    let e = it.next().unwrap().unwrap_err();
    let took = t.elapsed();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2900),
        "the timeout error came after {took:?}"
    );
    assert!(it.next().is_none(), "the iteration ends after the timeout");
    drop(it);
    // Python's `ValueError` for a chunk size below 1, before any work.
    let e = ex.map_with(square, [1u64, 2], None, 0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    // The executor goes on.
    assert_eq!(
        ex.submit(square, 3).unwrap().result_timeout(BOUND).unwrap(),
        9
    );
    drop_and_check(ex, []);
}

fn killed_worker_fails_its_future_only(method: StartMethod) {
    let ex = executor(method, 2);
    let (f, pid) = start_blocker(&ex);
    assert!(f.running());
    kill(pid, libc::SIGKILL);
    let e = f.result_timeout(BOUND).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ProcessDied, "{e}");
    assert!(e.to_string().contains("SIGKILL"), "{e}");
    assert!(f.done() && !f.running() && !f.cancelled());
    assert_gone(pid);
    // Unlike Python's, the executor keeps working.
    let g = ex.submit(square, 5).unwrap();
    assert_eq!(g.result_timeout(BOUND).unwrap(), 25);
    let pids: HashSet<u32> = ex
        .map(my_pid, 0..20u64)
        .unwrap()
        .map(|r| r.unwrap() as u32)
        .collect();
    assert!(!pids.contains(&pid));
    // Twice.
    let (f, pid2) = start_blocker(&ex);
    kill(pid2, libc::SIGKILL);
    assert_eq!(
        f.result_timeout(BOUND).unwrap_err().kind(),
        ErrorKind::ProcessDied
    );
    assert_eq!(
        ex.submit(square, 6).unwrap().result_timeout(BOUND).unwrap(),
        36
    );
    drop_and_check(ex, pids.into_iter().chain([pid, pid2]));
}

/// Futures submitted while a worker is busy, some of which land on that worker, all
/// complete when it is killed (after short tasks a worker takes several at a time).
fn futures_queued_behind_a_killed_worker_complete(method: StartMethod) {
    let ex = executor(method, 2);
    for round in 0..3 {
        let v: Vec<u64> = ex
            .map(square, 0..2000u64)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(v.len(), 2000);
        let (f, pid) = start_blocker(&ex);
        let fs: Vec<_> = (0..20u64).map(|i| ex.submit(square, i).unwrap()).collect();
        kill(pid, libc::SIGKILL);
        assert_eq!(
            f.result_timeout(BOUND).unwrap_err().kind(),
            ErrorKind::ProcessDied
        );
        for (i, g) in (0u64..).zip(&fs) {
            match g.result_timeout(BOUND) {
                Ok(v) => assert_eq!(v, i * i),
                Err(e) => panic!("round {round}: future {i} never completed: {e}"),
            }
        }
    }
    drop_and_check(ex, []);
}

/// An executor of one worker, busy with a call that waits for `ev` (the first future,
/// already running), and a counter that `bump` calls raise.
fn busy_executor(method: StartMethod) -> (ProcessPoolExecutor, Event, Value<u32>, Future<u64>) {
    let ex = executor(method, 1);
    let ev = Event::new().unwrap();
    let ran = Value::new(0u32).unwrap();
    let first = ex.submit(wait_event, (ev.clone(), 10_000)).unwrap();
    assert!(
        eventually(BOUND, || first.running()),
        "the first call starts"
    );
    (ex, ev, ran, first)
}

/// `shutdown(wait = true, cancel_futures)`, which must return within [`BOUND`]; gives
/// the executor back.
fn shutdown_waiting(ex: ProcessPoolExecutor, cancel_futures: bool) -> ProcessPoolExecutor {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        ex.shutdown(true, cancel_futures);
        let _ = tx.send(ex);
    });
    rx.recv_timeout(BOUND).expect("shutdown(wait) returns")
}

fn shutdown_cancel_futures(method: StartMethod) {
    let (ex, ev, ran, first) = busy_executor(method);
    let rest: Vec<_> = (0..5)
        .map(|_| ex.submit(bump, ran.clone()).unwrap())
        .collect();
    // Without waiting: returns at once, with the pending calls cancelled.
    let (_, took) = timed(|| ex.shutdown(false, true));
    assert!(took < SOON, "shutdown(wait=false) took {took:?}");
    for f in &rest {
        assert!(f.cancelled() && f.done(), "{f:?}");
        assert_eq!(
            f.result_timeout(SOON).unwrap_err().kind(),
            ErrorKind::Cancelled
        );
    }
    assert!(
        first.running() && !first.cancelled(),
        "the running call goes on"
    );
    assert_eq!(
        ex.submit(square, 1).unwrap_err().kind(),
        ErrorKind::InvalidState,
        "submit after shutdown"
    );
    assert!(ex.map(square, 0..2u64).is_err(), "map after shutdown");
    ev.set();
    assert_eq!(first.result_timeout(BOUND).unwrap(), 1);
    // shutdown(wait) now returns once the worker exited.
    let ex = shutdown_waiting(ex, true);
    assert_eq!(ran.get(), 0, "no cancelled call ran");
    drop_and_check(ex, []);
}

/// The calls of an executor's `map` are futures too: `shutdown(cancel_futures)`
/// cancels those not started (Python's `map` submits each one), so they neither run
/// nor hold up `shutdown(wait)`.
fn shutdown_cancel_futures_cancels_map(method: StartMethod) {
    let (ex, ev, ran, first) = busy_executor(method);
    let mapped = ex
        .map_with(bump, vec![ran.clone(); 5], Some(BOUND), 1)
        .unwrap();
    ex.shutdown(false, true);
    ev.set();
    assert_eq!(first.result_timeout(BOUND).unwrap(), 1);
    let kinds: Vec<_> = mapped.map(|r| r.map_err(|e| e.kind())).collect();
    assert_eq!(kinds, vec![Err(ErrorKind::Cancelled); 5]);
    let ex = shutdown_waiting(ex, false);
    assert_eq!(ran.get(), 0, "no cancelled map call ran");
    drop_and_check(ex, []);
}

fn shutdown_wait_runs_pending(method: StartMethod) {
    let ex = executor(method, 1);
    let ran = Value::new(0u32).unwrap();
    let fs: Vec<_> = (0..10)
        .map(|_| ex.submit(bump, ran.clone()).unwrap())
        .collect();
    let slow = ex.submit(nap, 200).unwrap();
    let ex = shutdown_waiting(ex, false);
    assert!(fs.iter().all(Future::done) && slow.done(), "every call ran");
    assert_eq!(ran.get(), 10);
    assert_eq!(slow.result().unwrap(), 200);
    drop_and_check(ex, []);
}

/// A finished, a failed and a cancelled future, and one blocked on `ev`: the blocked
/// and the cancelled one come from a fresh 1-worker executor (its only worker busy,
/// so the second call stays pending).
struct Zoo {
    /// Dropped first: a failed test does not wait for the blocked call.
    _release: SetOnDrop,
    quick: ProcessPoolExecutor,
    slow: ProcessPoolExecutor,
    ok: Future<u64>,
    failed: Future<u64>,
    cancelled: Future<u64>,
    blocked: Future<u64>,
    ev: Event,
}

/// Sets the event when dropped.
struct SetOnDrop(Event);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.set();
    }
}

fn zoo(method: StartMethod) -> Zoo {
    let quick = executor(method, 2);
    let slow = executor(method, 1);
    let ev = Event::new().unwrap();
    let blocked = slow.submit(wait_event, (ev.clone(), 20_000)).unwrap();
    let cancelled = slow.submit(square, 2).unwrap();
    assert!(cancelled.cancel(), "a pending call can be cancelled");
    let ok = quick.submit(square, 4).unwrap();
    let failed = quick.submit(fails_on_13, 13).unwrap();
    assert!(eventually(BOUND, || ok.done() && failed.done()));
    assert!(eventually(BOUND, || blocked.running()));
    Zoo {
        _release: SetOnDrop(ev.clone()),
        quick,
        slow,
        ok,
        failed,
        cancelled,
        blocked,
        ev,
    }
}

impl Zoo {
    fn finish(self) {
        self.ev.set();
        assert_eq!(self.blocked.result_timeout(BOUND).unwrap(), 1);
        drop_and_check(self.quick, []);
        drop_and_check(self.slow, []);
    }
}

/// The futures of `v` as sorted pointers, for comparing sets of references.
fn set_of<R>(v: &[&Future<R>]) -> Vec<*const Future<R>> {
    let mut p: Vec<_> = v.iter().map(|f| *f as *const _).collect();
    p.sort();
    p
}

fn wait_return_when(method: StartMethod) {
    let z = zoo(method);
    let short = Some(Duration::from_millis(300));

    // FirstCompleted: one already finished is enough.
    let (r, took) = timed(|| wait([&z.blocked, &z.ok], None, ReturnWhen::FirstCompleted));
    assert_eq!(set_of(&r.done), set_of(&[&z.ok]));
    assert_eq!(set_of(&r.not_done), set_of(&[&z.blocked]));
    assert!(took < SOON, "{took:?}");
    let r = wait([&z.blocked, &z.cancelled], None, ReturnWhen::FirstCompleted);
    assert_eq!(set_of(&r.done), set_of(&[&z.cancelled]));
    // Nothing done: the timeout.
    let (r, took) = timed(|| wait([&z.blocked], short, ReturnWhen::FirstCompleted));
    assert!(r.done.is_empty() && r.not_done.len() == 1);
    assert!(
        took >= Duration::from_millis(250) && took < SOON,
        "{took:?}"
    );

    // FirstException: a failed one ends the wait...
    let (r, took) = timed(|| {
        wait(
            [&z.ok, &z.failed, &z.blocked],
            None,
            ReturnWhen::FirstException,
        )
    });
    assert_eq!(set_of(&r.done), set_of(&[&z.ok, &z.failed]));
    assert_eq!(set_of(&r.not_done), set_of(&[&z.blocked]));
    assert!(took < SOON, "{took:?}");
    // ... a success does not ...
    let (r, took) = timed(|| wait([&z.ok, &z.blocked], short, ReturnWhen::FirstException));
    assert_eq!(set_of(&r.done), set_of(&[&z.ok]));
    assert!(
        took >= Duration::from_millis(250),
        "returned after {took:?}"
    );

    // AllCompleted.
    let (r, took) = timed(|| {
        wait(
            [&z.ok, &z.failed, &z.cancelled],
            None,
            ReturnWhen::AllCompleted,
        )
    });
    assert_eq!(r.done.len(), 3);
    assert!(r.not_done.is_empty());
    assert!(took < SOON, "{took:?}");
    let (r, took) = timed(|| wait([&z.ok, &z.blocked], short, ReturnWhen::AllCompleted));
    assert_eq!(set_of(&r.done), set_of(&[&z.ok]));
    assert_eq!(set_of(&r.not_done), set_of(&[&z.blocked]));
    assert!(
        took >= Duration::from_millis(250) && took < SOON,
        "{took:?}"
    );
    // Nothing to wait for.
    let none: Vec<&Future<u64>> = Vec::new();
    let r = wait(none, None, ReturnWhen::AllCompleted);
    assert!(r.done.is_empty() && r.not_done.is_empty());

    // FirstException is not met by a cancelled future (Python: "not f.cancelled() and
    // f.exception() is not None").
    let (r, took) = timed(|| {
        wait(
            [&z.cancelled, &z.blocked],
            short,
            ReturnWhen::FirstException,
        )
    });
    assert_eq!(set_of(&r.done), set_of(&[&z.cancelled]));
    assert!(
        took >= Duration::from_millis(250),
        "FirstException returned after {took:?}: a cancelled future counted as an exception"
    );

    // A wait that ends when the blocked one finishes.
    let ev = z.ev.clone();
    let setter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        ev.set();
    });
    let all = [&z.ok, &z.failed, &z.cancelled, &z.blocked];
    let r = wait(all, Some(BOUND), ReturnWhen::AllCompleted);
    assert_eq!(r.done.len(), 4, "{r:?}");
    setter.join().unwrap();
    z.finish();
}

/// Python's `as_completed` and `wait` take a set: a future given twice is yielded once
/// and listed once (bpo-20367, `test_duplicate_futures`).
fn a_future_passed_twice_counts_once(method: StartMethod) {
    let ex = executor(method, 2);
    let f = ex.submit(square, 6).unwrap();
    let g = ex.submit(square, 7).unwrap();
    let got: Vec<&Future<u64>> = as_completed([&f, &f, &g, &f], Some(LONG))
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(got.len(), 2, "each distinct future once");
    assert_eq!(set_of(&got), set_of(&[&f, &g]));
    let r = wait([&f, &g, &f, &g], Some(LONG), ReturnWhen::AllCompleted);
    assert_eq!((r.done.len(), r.not_done.len()), (2, 0), "{r:?}");
    assert_eq!(f.result().unwrap() + g.result().unwrap(), 36 + 49);
    drop_and_check(ex, []);
}

fn as_completed_finished_cancelled_failed(method: StartMethod) {
    let z = zoo(method);
    // With a timeout: the finished ones, then the timeout error, then the end.
    let t = Instant::now();
    let mut it = as_completed(
        [&z.blocked, &z.ok, &z.cancelled, &z.failed],
        Some(Duration::from_millis(400)),
    );
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(it.next().unwrap().unwrap());
    }
    assert_eq!(set_of(&got), set_of(&[&z.ok, &z.cancelled, &z.failed]));
    let e = it.next().unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(350) && took < SOON,
        "{took:?}"
    );
    assert!(it.next().is_none());
    drop(it);
    // Without: all of them, the blocked one once it finishes.
    let extra = z.quick.submit(nap, 300).unwrap();
    let ev = z.ev.clone();
    let setter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        ev.set();
    });
    let all = [&z.blocked, &z.ok, &extra, &z.cancelled, &z.failed];
    let order: Vec<&Future<u64>> = as_completed(all, None).map(|r| r.unwrap()).collect();
    assert_eq!(order.len(), 5);
    assert_eq!(set_of(&order), set_of(&all));
    assert_eq!(
        set_of(&order[..3]),
        set_of(&[&z.ok, &z.cancelled, &z.failed]),
        "the ones done already come first"
    );
    assert!(order[3..].iter().all(|f| f.done()));
    setter.join().unwrap();
    assert_eq!(extra.result().unwrap(), 300);
    z.finish();
}

fn fifteen_x_max_workers_start_max_workers(method: StartMethod) {
    let workers = 3;
    let ex = executor(method, workers);
    let ev = Event::new().unwrap();
    let fs: Vec<_> = (0..15 * workers)
        .map(|_| ex.submit(pid_after_event, (ev.clone(), 10_000)).unwrap())
        .collect();
    // Give an eager executor time to start more processes.
    std::thread::sleep(Duration::from_millis(300));
    ev.set();
    let mut pids = HashSet::new();
    for f in &fs {
        let (pid, set) = f.result_timeout(BOUND).unwrap();
        assert!(set, "each call saw the event");
        pids.insert(pid);
    }
    assert_eq!(
        pids.len(),
        workers,
        "exactly max_workers processes ran the calls: {pids:?}"
    );
    drop_and_check(ex, pids);
}

fn initializer_fails_breaks_executor(method: StartMethod) {
    let count = Value::new(0u32).unwrap();
    let ex = ProcessPoolExecutor::builder()
        .max_workers(2)
        .initializer(init_fails, count.clone())
        .context(get_context(method))
        .build()
        .unwrap();
    // Submitted at once: most likely before any initializer has failed.
    let early = ex.submit(square, 3).unwrap();
    // The early call fails once an initializer has failed (the executor is marked
    // broken first): wait for that, not for a fixed time, so load cannot fail the test.
    let e = early.result_timeout(LONG).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BrokenPool, "the early call: {e}");
    assert!(
        e.to_string().contains("executor initializer refuses"),
        "{e}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let n = count.get();
    assert!(
        (1..=3).contains(&n),
        "initializer started {n} times for 2 workers"
    );
    let (r, took) = timed(|| ex.submit(square, 4));
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BrokenPool, "{e}");
    assert!(
        e.to_string().contains("executor initializer refuses"),
        "{e}"
    );
    assert!(took < SOON, "{took:?}");
    drop_and_check(ex, []);
    assert_eq!(
        count.get(),
        n,
        "no initializer ran after the executor broke"
    );
}

fn await_through_into_future(method: StartMethod) {
    let ex = executor(method, 2);
    // Not ready at the first poll: the waker must be called.
    let f = ex.submit(nap, 300).unwrap();
    let (v, polls, wakes) = block_on(f, BOUND);
    assert_eq!(v.unwrap(), 300);
    assert!(polls >= 2 && wakes >= 1, "{polls} polls, {wakes} wake-ups");
    // Inside an async block.
    let a = ex.submit(square, 3).unwrap();
    let b = ex.submit(square, 4).unwrap();
    let (v, _, _) = block_on(async move { a.await.unwrap() + b.await.unwrap() }, BOUND);
    assert_eq!(v, 25);
    // Already done: ready at the first poll.
    let f = ex.submit(square, 5).unwrap();
    assert!(eventually(BOUND, || f.done()));
    let (v, polls, _) = block_on(f, BOUND);
    assert_eq!((v.unwrap(), polls), (25, 1));
    // A failure comes out as the Err.
    let f = ex.submit(fails_on_13, 13).unwrap();
    let (v, _, _) = block_on(f, BOUND);
    assert_eq!(v.unwrap_err().kind(), ErrorKind::Panicked);
    drop_and_check(ex, []);
}

fn add_done_callback_before_and_after(method: StartMethod) {
    let ex = executor(method, 1);
    let me = std::thread::current().id();
    // Before completion: runs once, in another thread, with the value.
    let ev = Event::new().unwrap();
    let f = ex.submit(wait_event, (ev.clone(), 10_000)).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    f.add_done_callback(move |r| {
        l.lock()
            .unwrap()
            .push((*r.as_ref().unwrap(), std::thread::current().id()))
    });
    assert!(log.lock().unwrap().is_empty());
    // A long first call keeps the worker's window at one call (so that a call
    // submitted behind a running one below stays pending).
    std::thread::sleep(Duration::from_millis(50));
    ev.set();
    assert_eq!(f.result_timeout(BOUND).unwrap(), 1);
    let got = log.lock().unwrap().clone();
    assert_eq!(
        got.len(),
        1,
        "the callback ran once, before result() returned"
    );
    assert_eq!(got[0].0, 1);
    assert_ne!(got[0].1, me, "it ran in the executor's thread");
    // After completion: runs at once, in this thread; the value stays.
    let f = ex.submit(square, 6).unwrap();
    assert!(eventually(BOUND, || f.done()));
    let l = log.clone();
    f.add_done_callback(move |r| {
        l.lock()
            .unwrap()
            .push((*r.as_ref().unwrap(), std::thread::current().id()))
    });
    let got = log.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "ran before add_done_callback returned");
    assert_eq!(got[1], (36, me));
    assert_eq!(
        f.result().unwrap(),
        36,
        "the callback only borrowed the value"
    );
    // A failure, and a cancellation, reach the callback as errors.
    let f = ex.submit(fails_on_13, 13).unwrap();
    let kinds = Arc::new(Mutex::new(Vec::new()));
    let k = kinds.clone();
    f.add_done_callback(move |r| k.lock().unwrap().push(r.as_ref().unwrap_err().kind()));
    let _ = f.result_timeout(BOUND);
    let ev = Event::new().unwrap();
    let busy = ex.submit(wait_event, (ev.clone(), 10_000)).unwrap();
    let pending = ex.submit(square, 1).unwrap();
    let k = kinds.clone();
    pending.add_done_callback(move |r| k.lock().unwrap().push(r.as_ref().unwrap_err().kind()));
    assert!(pending.cancel());
    assert_eq!(
        *kinds.lock().unwrap(),
        [ErrorKind::Panicked, ErrorKind::Cancelled]
    );
    ev.set();
    assert_eq!(busy.result_timeout(BOUND).unwrap(), 1);
    drop_and_check(ex, []);
}

fn running_and_cancel(method: StartMethod) {
    let ex = executor(method, 1);
    let ev = Event::new().unwrap();
    let ran = Value::new(0u32).unwrap();
    let busy = ex.submit(wait_event, (ev.clone(), 10_000)).unwrap();
    let waiting = ex.submit(bump, ran.clone()).unwrap();
    assert!(eventually(BOUND, || busy.running()), "{busy:?}");
    assert!(!waiting.running() && !waiting.done(), "{waiting:?}");
    // A running call cannot be cancelled.
    assert!(!busy.cancel());
    assert!(busy.running() && !busy.cancelled() && !busy.done());
    // A pending one can, and stays cancelled.
    assert!(waiting.cancel());
    assert!(waiting.cancelled() && waiting.done() && !waiting.running());
    assert!(waiting.cancel(), "cancel() of a cancelled future is true");
    assert_eq!(
        waiting.result_timeout(SOON).unwrap_err().kind(),
        ErrorKind::Cancelled
    );
    ev.set();
    assert_eq!(busy.result_timeout(BOUND).unwrap(), 1);
    assert!(!busy.running() && busy.done());
    assert!(
        !busy.cancel() && !busy.cancelled(),
        "a finished call cannot be cancelled"
    );
    // The cancelled call never runs.
    assert_eq!(
        ex.submit(square, 2).unwrap().result_timeout(BOUND).unwrap(),
        4
    );
    assert_eq!(ran.get(), 0);
    drop_and_check(ex, []);
}

/// Executors started and ended leave no process and no fd behind.
fn lifecycle_no_leak(method: StartMethod) {
    let server = Some(fork_server_pid());
    let ex = executor(method, 2);
    assert_eq!(
        ex.submit(square, 2).unwrap().result_timeout(BOUND).unwrap(),
        4
    );
    drop_and_check(ex, []);
    assert_quiescent(server);
    let fds = fd_count();
    let before = fd_list();
    for round in 0..2 {
        let ex = executor(method, 2);
        let v: Vec<u64> = ex
            .map(square, 0..100u64)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(v.len(), 100);
        let (f, pid) = start_blocker(&ex);
        kill(pid, libc::SIGKILL);
        assert_eq!(
            f.result_timeout(BOUND).unwrap_err().kind(),
            ErrorKind::ProcessDied
        );
        let pending: Vec<_> = (0..5).map(|_| ex.submit(nap, 20).unwrap()).collect();
        if round == 0 {
            ex.shutdown(true, false);
            assert!(pending.iter().all(Future::done));
        }
        drop_and_check(ex, [pid]);
        assert_quiescent(server);
        assert!(
            eventually(GRACE, || fd_count() == fds),
            "round {round}: {} fds, {fds} before\nbefore: {before:?}\nafter:  {:?}",
            fd_count(),
            fd_list()
        );
    }
}

// ============================================================ ThreadPoolExecutor

mod threads {
    //! `ThreadPoolExecutor`: the same API with closures run by threads.

    use super::*;

    /// Runs `body` under the shared lock and a watchdog.
    fn run(body: fn()) {
        let _g = crate::common::shared();
        common::watchdog(body);
    }

    #[test]
    fn submit_map_with_captures() {
        run(|| {
            assert_eq!(
                ThreadPoolExecutor::new(0).unwrap_err().kind(),
                ErrorKind::InvalidInput
            );
            let ex = ThreadPoolExecutor::new(3).unwrap();
            let name = String::from("world");
            let f = ex
                .submit(move |greeting: &str| format!("{greeting}, {name}"), "hello")
                .unwrap();
            assert_eq!(f.result_timeout(BOUND).unwrap(), "hello, world");
            let base = 100u64;
            let v: Vec<u64> = ex
                .map(move |x: u64| x + base, 0..50, None)
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(v, (100..150).collect::<Vec<_>>());
            let seen = Arc::new(Mutex::new(HashSet::new()));
            let s = seen.clone();
            let n = ex
                .map(move |x: u32| s.lock().unwrap().insert(x), 0..200, None)
                .unwrap()
                .filter(|r| *r.as_ref().unwrap())
                .count();
            assert_eq!((n, seen.lock().unwrap().len()), (200, 200));
            let bad = ex
                .submit(
                    |x: u32| -> u32 {
                        if x > 0 {
                            panic!("thread call refuses");
                        }
                        x
                    },
                    1,
                )
                .unwrap();
            let e = bad.exception().unwrap();
            assert_eq!(e.kind(), ErrorKind::Panicked);
            assert!(e.to_string().contains("thread call refuses"), "{e}");
            ex.shutdown(true, false);
            assert_eq!(
                ex.submit(|x: u8| x, 1).unwrap_err().kind(),
                ErrorKind::InvalidState
            );
        });
    }

    #[test]
    fn map_with_timeout() {
        run(|| {
            let ex = ThreadPoolExecutor::new(3).unwrap();
            let t = Instant::now();
            let mut it = ex
                .map(
                    |ms: u64| {
                        std::thread::sleep(Duration::from_millis(ms));
                        ms
                    },
                    [0u64, 0, 1500],
                    Some(Duration::from_millis(500)),
                )
                .unwrap();
            assert_eq!(it.next().unwrap().unwrap(), 0);
            assert_eq!(it.next().unwrap().unwrap(), 0);
            assert_eq!(it.next().unwrap().unwrap_err().kind(), ErrorKind::Timeout);
            let took = t.elapsed();
            assert!(
                took >= Duration::from_millis(450) && took < Duration::from_millis(1400),
                "{took:?}"
            );
            assert!(it.next().is_none());
        });
    }

    #[test]
    fn shutdown_cancel_futures() {
        run(|| {
            let ex = ThreadPoolExecutor::new(1).unwrap();
            let (release, gate) = mpsc::channel::<()>();
            let (started_tx, started) = mpsc::channel::<()>();
            let first = ex
                .submit(
                    move |_: ()| {
                        started_tx.send(()).unwrap();
                        gate.recv_timeout(BOUND).is_ok()
                    },
                    (),
                )
                .unwrap();
            started.recv_timeout(BOUND).unwrap();
            assert!(first.running());
            let ran = Arc::new(AtomicUsize::new(0));
            let rest: Vec<_> = (0..5)
                .map(|_| {
                    let r = ran.clone();
                    ex.submit(move |_: ()| r.fetch_add(1, SeqCst) == 0, ())
                        .unwrap()
                })
                .collect();
            let (_, took) = timed(|| ex.shutdown(false, true));
            assert!(took < SOON, "{took:?}");
            for f in &rest {
                assert!(f.cancelled(), "{f:?}");
                assert_eq!(f.result().unwrap_err().kind(), ErrorKind::Cancelled);
            }
            assert!(ex.submit(|x: u8| x, 1).is_err());
            release.send(()).unwrap();
            assert!(first.result_timeout(BOUND).unwrap());
            ex.shutdown(true, false);
            assert_eq!(ran.load(SeqCst), 0, "no cancelled call ran");
        });
    }

    /// `as_completed` yields the futures in the order they finished, also those that
    /// finished while the caller was busy (Python's waiter lists them as they do),
    /// not in the order they were passed.
    #[test]
    fn as_completed_in_completion_order() {
        run(|| {
            let ex = ThreadPoolExecutor::new(3).unwrap();
            let gated = |ms: u64| {
                let (tx, rx) = mpsc::channel::<()>();
                let f = ex
                    .submit(
                        move |_: ()| {
                            let _ = rx.recv_timeout(BOUND);
                            ms
                        },
                        (),
                    )
                    .unwrap();
                (f, tx)
            };
            let (a, go_a) = gated(1);
            let (b, go_b) = gated(2);
            let (c, go_c) = gated(3);
            let mut it = as_completed([&a, &b, &c], Some(BOUND));
            go_a.send(()).unwrap();
            assert_eq!(it.next().unwrap().unwrap().result().unwrap(), 1);
            // While nobody asks: c finishes, then b.
            go_c.send(()).unwrap();
            assert!(eventually(BOUND, || c.done()));
            go_b.send(()).unwrap();
            assert!(eventually(BOUND, || b.done()));
            let rest: Vec<u64> = it.map(|f| f.unwrap().result().unwrap()).collect();
            assert_eq!(rest, [3, 2], "in the order they finished");
        });
    }

    /// An initializer that panics breaks the executor, as Python's
    /// (`BrokenThreadPool`): the calls fail with its message instead of waiting for
    /// threads that are gone.
    #[test]
    fn initializer_panic_breaks_executor() {
        run(|| {
            let ex = ThreadPoolExecutor::with_initializer(2, || panic!("executor init refuses"))
                .unwrap();
            let f = ex.submit(|x: u8| x, 1).unwrap();
            let e = f.result_timeout(BOUND).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BrokenPool, "{e}");
            assert!(e.to_string().contains("executor init refuses"), "{e}");
            let e = ex.submit(|x: u8| x, 2).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BrokenPool, "{e}");
            let (_, took) = timed(|| ex.shutdown(true, false));
            assert!(took < SOON, "shutdown took {took:?}");
        });
    }

    #[test]
    fn wait_and_as_completed() {
        run(|| {
            let ex = ThreadPoolExecutor::new(2).unwrap();
            let (release, gate) = mpsc::channel::<()>();
            let gate = Mutex::new(gate);
            let blocked = ex
                .submit(
                    move |_: ()| -> u64 {
                        let _ = gate.lock().unwrap().recv_timeout(BOUND);
                        1
                    },
                    (),
                )
                .unwrap();
            let ok = ex.submit(|x: u64| x, 4).unwrap();
            let failed = ex
                .submit(
                    |x: u64| -> u64 {
                        if x > 0 {
                            panic!("no");
                        }
                        x
                    },
                    1,
                )
                .unwrap();
            assert!(eventually(BOUND, || ok.done() && failed.done()));
            // One worker left: block it, so that the next call stays pending.
            let (release2, gate2) = mpsc::channel::<()>();
            let gate2 = Mutex::new(gate2);
            let blocked2 = ex
                .submit(
                    move |_: ()| -> u64 {
                        let _ = gate2.lock().unwrap().recv_timeout(BOUND);
                        2
                    },
                    (),
                )
                .unwrap();
            assert!(eventually(BOUND, || blocked.running() && blocked2.running()));
            let cancelled = ex.submit(|x: u64| x, 9).unwrap();
            assert!(cancelled.cancel());
            let short = Some(Duration::from_millis(300));

            let r = wait([&blocked, &ok], None, ReturnWhen::FirstCompleted);
            assert_eq!(set_of(&r.done), set_of(&[&ok]));
            let r = wait([&ok, &failed, &blocked], None, ReturnWhen::FirstException);
            assert_eq!(set_of(&r.done), set_of(&[&ok, &failed]));
            assert_eq!(set_of(&r.not_done), set_of(&[&blocked]));
            let r = wait([&ok, &failed, &cancelled], None, ReturnWhen::AllCompleted);
            assert_eq!(r.done.len(), 3);
            let (r, took) = timed(|| wait([&ok, &blocked], short, ReturnWhen::AllCompleted));
            assert_eq!(set_of(&r.not_done), set_of(&[&blocked]));
            assert!(
                took >= Duration::from_millis(250) && took < SOON,
                "{took:?}"
            );

            let mut it = as_completed([&blocked, &ok, &cancelled, &failed], short);
            let got: Vec<_> = (0..3).map(|_| it.next().unwrap().unwrap()).collect();
            assert_eq!(set_of(&got), set_of(&[&ok, &cancelled, &failed]));
            assert_eq!(it.next().unwrap().unwrap_err().kind(), ErrorKind::Timeout);
            assert!(it.next().is_none());
            drop(it);
            // A cancelled future is not an exception for FirstException.
            let (r, took) =
                timed(|| wait([&cancelled, &blocked], short, ReturnWhen::FirstException));
            let ok_cancel =
                set_of(&r.done) == set_of(&[&cancelled]) && took >= Duration::from_millis(250);
            release.send(()).unwrap();
            release2.send(()).unwrap();
            assert!(
                ok_cancel,
                "FirstException returned after {took:?}: a cancelled future counted as an \
                 exception"
            );
            let all = [&blocked, &ok, &cancelled, &failed, &blocked2];
            assert_eq!(
                as_completed(all, Some(BOUND)).filter(|r| r.is_ok()).count(),
                5
            );
            assert_eq!(blocked.result().unwrap(), 1);
            assert_eq!(blocked2.result().unwrap(), 2);
        });
    }

    #[test]
    fn running_cancel_callbacks_await() {
        run(|| {
            let ex = ThreadPoolExecutor::new(1).unwrap();
            let (release, gate) = mpsc::channel::<()>();
            let (started_tx, started) = mpsc::channel::<()>();
            let busy = ex
                .submit(
                    move |_: ()| -> u64 {
                        started_tx.send(()).unwrap();
                        let _ = gate.recv_timeout(BOUND);
                        7
                    },
                    (),
                )
                .unwrap();
            started.recv_timeout(BOUND).unwrap();
            let ran = Arc::new(AtomicUsize::new(0));
            let r = ran.clone();
            let waiting = ex
                .submit(
                    move |_: ()| -> u64 {
                        r.fetch_add(1, SeqCst);
                        0
                    },
                    (),
                )
                .unwrap();
            assert!(busy.running() && !waiting.running());
            assert!(!busy.cancel() && busy.running());
            let log = Arc::new(Mutex::new(Vec::new()));
            let l = log.clone();
            busy.add_done_callback(move |r| {
                l.lock().unwrap().push(format!("{:?}", r.as_ref().ok()))
            });
            let l = log.clone();
            waiting.add_done_callback(move |r| {
                l.lock()
                    .unwrap()
                    .push(format!("{:?}", r.as_ref().err().map(|e| e.kind())))
            });
            assert!(waiting.cancel() && waiting.cancelled() && waiting.done());
            assert_eq!(*log.lock().unwrap(), ["Some(Cancelled)"]);
            release.send(()).unwrap();
            // .await through IntoFuture, with a real wake-up.
            let (v, _, _) = block_on(busy, BOUND);
            assert_eq!(v.unwrap(), 7);
            assert_eq!(log.lock().unwrap().len(), 2, "{:?}", log.lock().unwrap());
            assert_eq!(log.lock().unwrap()[1], "Some(7)");
            let f = ex
                .submit(
                    |ms: u64| {
                        std::thread::sleep(Duration::from_millis(ms));
                        ms
                    },
                    200,
                )
                .unwrap();
            let (v, polls, wakes) = block_on(f, BOUND);
            assert_eq!(v.unwrap(), 200);
            assert!(polls >= 2 && wakes >= 1, "{polls} polls, {wakes} wake-ups");
            // After completion, a callback runs at once here.
            let f = ex.submit(|x: u64| x, 3).unwrap();
            assert!(eventually(BOUND, || f.done()));
            let me = std::thread::current().id();
            let l = log.clone();
            f.add_done_callback(move |r| {
                assert_eq!(std::thread::current().id(), me);
                l.lock().unwrap().push(format!("{:?}", r.as_ref().ok()))
            });
            assert_eq!(log.lock().unwrap()[2], "Some(3)");
            assert_eq!(f.result().unwrap(), 3);
            ex.shutdown(true, false);
            assert_eq!(ran.load(SeqCst), 0, "the cancelled call never ran");
        });
    }
}
