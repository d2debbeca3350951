//! The process `Pool` under every start method, and the `ThreadPool`: Python's
//! semantics, and what ours promises beyond them: a worker that dies (killed, abort,
//! segfault, `exit`) or runs past its timeout fails only its task and is replaced; a
//! failing initializer breaks the pool at once; a panicking task reports its message
//! and location; no worker outlives its pool or its parent.
//!
//! Every process test ends its pool and checks that each worker it saw (from
//! `pool.stats()` and from pids the tasks returned) is gone: not in `/proc`, or a zombie
//! that is not ours to reap.

multiprocess::test_support!();

#[macro_use]
mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use multiprocess::{
    Array, Error, ErrorKind, Event, Options, Pool, Queue, StartMethod, ThreadPool, Value,
    get_context,
};

use common::{
    BOUND, GRACE, LONG, SOON, assert_gone, assert_quiescent, children_of, eventually, fd_count,
    fd_list, fork_server_pid, is_gone, kill, nap, square, timed,
};

// ------------------------------------------------------------------ helpers

fn pool(method: StartMethod, n: usize) -> Pool {
    Pool::builder()
        .processes(n)
        .context(get_context(method))
        .build()
        .expect("start the pool")
}

fn worker_pids(p: &Pool) -> Vec<u32> {
    p.stats().iter().map(|s| s.pid).collect()
}

/// Runs `f` on another thread; its value, or a panic if it takes longer than `limit`
/// (so that a hang fails the test instead of stalling it).
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} did not return within {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

/// Drops (terminates) the pool and checks that its workers, and the processes `more`,
/// are gone.
fn drop_and_check(p: Pool, more: impl IntoIterator<Item = u32>) {
    let mut pids = worker_pids(&p);
    pids.extend(more);
    let (_, took) = timed(|| drop(p));
    assert!(took < BOUND, "dropping the pool took {took:?}");
    for pid in pids {
        assert_gone(pid);
    }
}

/// Closes and joins the pool (bounded), then checks that its workers and `more` are
/// gone.
fn close_join_and_check(p: Pool, more: impl IntoIterator<Item = u32>) {
    let mut pids = worker_pids(&p);
    pids.extend(more);
    let p = Arc::new(p);
    p.close();
    let q = p.clone();
    within(BOUND, "pool.join() after close()", move || q.join()).expect("join");
    for pid in &pids {
        assert_gone(*pid);
    }
    drop(p);
}

// ------------------------------------------------------- functions run in workers

fn add((a, b): (u32, u32)) -> u32 {
    a + b
}

fn my_pid(_: u32) -> u32 {
    std::process::id()
}

/// The worker's pid after a short nap (so that every worker takes some of the tasks).
fn my_pid_after_nap(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// Fails for 13 and 77, returning its input otherwise.
fn fails_on_13(x: u64) -> u64 {
    if x == 13 || x == 77 {
        panic!("unlucky number {x}");
    }
    x
}

/// Marks item `i` of the shared array as run; item 13 panics instead.
fn mark((arr, i): (Array<u8>, usize)) -> usize {
    if i == 13 {
        panic!("item thirteen refuses");
    }
    arr.set(i, 1).expect("in bounds");
    i
}

/// The line of the `panic!` in `kaboom`, for the location check.
const KABOOM_LINE: u32 = line!() + 4;

fn kaboom(x: u32) -> u32 {
    if x == 7 {
        panic!("kaboom on seven");
    }
    x
}

/// Sends its pid, then blocks (for a test to kill it).
fn report_and_block(q: Queue<u32>) -> u32 {
    q.put(std::process::id()).expect("report the pid");
    std::thread::sleep(Duration::from_secs(60));
    0
}

fn abort_task(_: u32) -> u32 {
    std::process::abort()
}

#[allow(unsafe_code)]
fn segfault_task(_: u32) -> u32 {
    // A write to an unmapped, non-null address: a real segmentation fault.
    let p = std::ptr::null_mut::<u8>().wrapping_add(16);
    // SAFETY: not safe at all: this is the point; the worker dies of SIGSEGV.
    unsafe { std::ptr::write_volatile(p, 1) };
    0
}

fn exit_3_task(_: u32) -> u32 {
    std::process::exit(3)
}

fn forever(_: u32) -> u32 {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Item 7 runs forever; the others return at once.
fn seven_runs_forever(x: u32) -> u32 {
    if x == 7 {
        forever(x);
    }
    x
}

/// Counts its start in `count`, then fails.
fn init_fails(count: Value<u32>) {
    *count.lock() += 1;
    panic!("initializer refuses: bad config");
}

/// Counts its start in `count`.
fn init_counts(count: Value<u32>) {
    *count.lock() += 1;
}

/// `2 x`; item 500,000 kills its own worker (SIGKILL) first.
fn double_or_die(x: u64) -> u64 {
    if x == 500_000 {
        kill(std::process::id(), libc::SIGKILL);
        std::thread::sleep(Duration::from_secs(60));
    }
    2 * x
}

fn wait_for_event((ev, ms): (Event, u64)) -> bool {
    ev.wait_timeout(Duration::from_millis(ms))
}

fn set_event(ev: Event) -> bool {
    ev.set();
    true
}

// ================================================================ process pool

for_each_method!(
    watchdog:
    apply_map_starmap,
    map_async_callbacks,
    map_async_empty_completes_at_once,
    try_imap_input_error,
    get_timeout_then_terminate,
    imap_ordered_unordered_endless,
    usage_errors,
    terminate_with_10000_queued,
    failing_task_does_not_stop_other_chunks,
    max_tasks_per_child_10,
    max_tasks_per_child_1_early_close,
    worker_sigkill,
    worker_abort,
    worker_segfault,
    worker_exit_3,
    timeout_per_call,
    timeout_from_builder,
    initializer_runs_in_each_worker,
    initializer_fails,
    million_items_worker_killed,
    panic_message_and_location,
    idle_worker_takes_queued_task,
    tasks_queued_behind_a_killed_worker_run,
);

for_each_method!(watchdog, serial: sigint_to_parent_leaves_no_worker, lifecycle_no_leak);

mod pool_200 {
    // Spawn is left out: 200 exec()s of this (debug) test binary take most of a
    // minute on two cores.
    #[test]
    fn fork() {
        crate::common::guarded(
            false,
            true,
            multiprocess::StartMethod::Fork,
            super::pool_200,
        )
    }
    #[test]
    fn forkserver() {
        crate::common::guarded(
            false,
            true,
            multiprocess::StartMethod::ForkServer,
            super::pool_200,
        )
    }
}

fn apply_map_starmap(method: StartMethod) {
    let p = pool(method, 2);
    assert_eq!(p.processes(), 2);
    assert_eq!(p.apply(square, 7).unwrap(), 49);
    assert_eq!(p.apply(add, (2, 3)).unwrap(), 5);
    let want: Vec<u64> = (0..10).map(|x| x * x).collect();
    assert_eq!(p.map(square, 0..10).unwrap(), want);
    let want: Vec<u64> = (0..100).map(|x| x * x).collect();
    let got = p
        .map_with(square, 0..100, Options::new().chunk_size(20))
        .unwrap();
    assert_eq!(got, want);
    let pairs: Vec<(u32, u32)> = (0..50).map(|i| (i, 2 * i)).collect();
    let want: Vec<u32> = (0..50).map(|i| 3 * i).collect();
    assert_eq!(p.starmap(add, pairs.clone()).unwrap(), want);
    assert_eq!(p.starmap_async(add, pairs).unwrap().get().unwrap(), want);
    let rs: Vec<_> = (0..20u64)
        .map(|i| p.apply_async(square, i).unwrap())
        .collect();
    let total: u64 = rs.iter().map(|r| r.get_timeout(BOUND).unwrap()).sum();
    assert_eq!(total, (0..20u64).map(|x| x * x).sum::<u64>());
    // An AsyncResult gives its value once.
    let r = p.apply_async(square, 3).unwrap();
    assert!(r.wait_timeout(BOUND));
    assert!(r.ready());
    assert!(r.successful().unwrap());
    assert_eq!(r.get().unwrap(), 9);
    assert_eq!(r.get().unwrap_err().kind(), ErrorKind::InvalidState);
    // Every worker is a PoolWorker, numbered from this process's count of children as
    // in Python: a second pool's workers have names of their own.
    let stats = p.stats();
    assert_eq!(stats.len(), 2);
    assert!(
        stats.iter().all(|s| s.name.starts_with("PoolWorker-")),
        "{stats:?}"
    );
    let other = pool(method, 2);
    let names = |p: &Pool| p.stats().into_iter().map(|s| s.name).collect::<Vec<_>>();
    let (ours, theirs) = (names(&p), names(&other));
    assert!(
        ours.iter().all(|n| !theirs.contains(n)),
        "{ours:?} {theirs:?}"
    );
    close_join_and_check(other, []);
    close_join_and_check(p, []);
}

fn map_async_callbacks(method: StartMethod) {
    let p = pool(method, 2);
    // Success: only the callback runs, with the value, before get() returns.
    let ok = Arc::new(Mutex::new(Vec::<usize>::new()));
    let errs = Arc::new(AtomicUsize::new(0));
    let (o, e) = (ok.clone(), errs.clone());
    let opts = Options::new()
        .chunk_size(7)
        .callback(move |v: &Vec<u64>| o.lock().unwrap().push(v.len()))
        .error_callback(move |_| {
            e.fetch_add(1, SeqCst);
        });
    let r = p.map_async_with(square, 0..100, opts).unwrap();
    let v = r.get_timeout(BOUND).unwrap();
    assert_eq!(v.len(), 100);
    assert_eq!(
        *ok.lock().unwrap(),
        [100],
        "the callback ran once, before get()"
    );
    assert_eq!(errs.load(SeqCst), 0, "no error callback on success");

    // Failure: only the error callback runs, with the error.
    let oks = Arc::new(AtomicUsize::new(0));
    let err_kinds = Arc::new(Mutex::new(Vec::new()));
    let (o, e) = (oks.clone(), err_kinds.clone());
    let opts = Options::new()
        .chunk_size(10)
        .callback(move |_: &Vec<u64>| {
            o.fetch_add(1, SeqCst);
        })
        .error_callback(move |err: &Error| e.lock().unwrap().push((err.kind(), err.to_string())));
    let r = p.map_async_with(fails_on_13, 0..100, opts).unwrap();
    let err = r.get_timeout(BOUND).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panicked);
    assert_eq!(oks.load(SeqCst), 0, "no callback on failure");
    let seen = err_kinds.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "the error callback ran once: {seen:?}");
    assert_eq!(seen[0].0, ErrorKind::Panicked);
    assert!(seen[0].1.contains("unlucky number 13"), "{seen:?}");

    // The same for apply_async_with.
    let hits = Arc::new(Mutex::new(Vec::new()));
    let (h1, h2) = (hits.clone(), hits.clone());
    let r = p
        .apply_async_with(
            square,
            5,
            Options::new()
                .callback(move |v: &u64| h1.lock().unwrap().push(format!("ok {v}")))
                .error_callback(move |e| h2.lock().unwrap().push(format!("err {e}"))),
        )
        .unwrap();
    assert_eq!(r.get_timeout(BOUND).unwrap(), 25);
    let (h1, h2) = (hits.clone(), hits.clone());
    let r = p
        .apply_async_with(
            fails_on_13,
            13,
            Options::new()
                .callback(move |v: &u64| h1.lock().unwrap().push(format!("ok {v}")))
                .error_callback(move |e| h2.lock().unwrap().push(format!("err {e}"))),
        )
        .unwrap();
    assert_eq!(
        r.get_timeout(BOUND).unwrap_err().kind(),
        ErrorKind::Panicked
    );
    let hits = hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert_eq!(hits[0], "ok 25");
    assert!(
        hits[1].starts_with("err ") && hits[1].contains("unlucky number 13"),
        "{hits:?}"
    );
    close_join_and_check(p, []);
}

fn map_async_empty_completes_at_once(method: StartMethod) {
    let p = pool(method, 2);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let opts = Options::new().chunk_size(1).callback(move |v: &Vec<u64>| {
        assert!(v.is_empty());
        c.fetch_add(1, SeqCst);
    });
    let r = p.map_async_with(square, Vec::new(), opts).unwrap();
    assert!(r.ready(), "an empty map is done at once");
    assert!(r.successful().unwrap());
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(r.get().unwrap(), Vec::<u64>::new());
    assert_eq!(p.map(square, Vec::new()).unwrap(), Vec::<u64>::new());
    assert_eq!(p.imap(square, Vec::new()).count(), 0);
    close_join_and_check(p, []);
}

fn try_imap_input_error(method: StartMethod) {
    let p = pool(method, 2);
    let pulled = std::cell::Cell::new(0u64);
    let input = (0..100u64).map(|i| {
        pulled.set(pulled.get() + 1);
        if i == 25 {
            Err(format!("the input broke at {i}"))
        } else {
            Ok(i)
        }
    });
    let out: Vec<_> = p.try_imap(square, input).collect();
    assert_eq!(out.len(), 26, "25 results, then the error, then the end");
    for (i, r) in out[..25].iter().enumerate() {
        assert_eq!(*r.as_ref().unwrap(), (i * i) as u64);
    }
    let e = out[25].as_ref().unwrap_err();
    assert!(e.to_string().contains("the input broke at 25"), "{e}");
    assert_eq!(pulled.get(), 26, "nothing is pulled after the failing item");
    // The pool is fine afterwards.
    assert_eq!(p.apply(square, 4).unwrap(), 16);
    close_join_and_check(p, []);
}

fn get_timeout_then_terminate(method: StartMethod) {
    let p = pool(method, 1);
    let r = p.apply_async(nap, 5_000).unwrap();
    let (res, took) = timed(|| r.get_timeout(Duration::from_millis(500)));
    assert_eq!(res.unwrap_err().kind(), ErrorKind::Timeout);
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(4_000),
        "get_timeout(500 ms) took {took:?}"
    );
    assert!(!r.ready());
    let pids = worker_pids(&p);
    let (_, took) = timed(|| p.terminate());
    assert!(took < Duration::from_secs(5), "terminate took {took:?}");
    assert_eq!(
        r.get_timeout(SOON).unwrap_err().kind(),
        ErrorKind::Cancelled,
        "the running task fails with Cancelled once terminate() returned"
    );
    within(BOUND, "join after terminate", move || {
        p.join().unwrap();
        p
    });
    for pid in pids {
        assert_gone(pid);
    }
}

fn imap_ordered_unordered_endless(method: StartMethod) {
    let p = pool(method, 2);
    let v: Vec<u64> = p
        .imap_with(square, 0..1000u64, Options::new().chunk_size(100))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(v, (0..1000u64).map(|x| x * x).collect::<Vec<_>>());
    let v: Vec<u64> = p.imap(square, 0..300u64).collect::<Result<_, _>>().unwrap();
    assert_eq!(v, (0..300u64).map(|x| x * x).collect::<Vec<_>>());
    let mut v: Vec<u64> = p
        .imap_unordered(square, 0..1000u64)
        .collect::<Result<_, _>>()
        .unwrap();
    v.sort_unstable();
    assert_eq!(v, (0..1000u64).map(|x| x * x).collect::<Vec<_>>());
    let mut v: Vec<u64> = p
        .imap_unordered_with(square, 0..1000u64, Options::new().chunk_size(33))
        .collect::<Result<_, _>>()
        .unwrap();
    v.sort_unstable();
    assert_eq!(v, (0..1000u64).map(|x| x * x).collect::<Vec<_>>());
    // An endless input.
    let firsts: Vec<u64> = p
        .imap(square, 0u64..)
        .take(10)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(firsts, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
    let n = p
        .imap_with(square, 0u64.., Options::new().chunk_size(50))
        .take(1234)
        .filter(|r| r.is_ok())
        .count();
    assert_eq!(n, 1234);
    // A failed call is one Err item; the rest arrive.
    let out: Vec<_> = p.imap(fails_on_13, 0..20u64).collect();
    assert_eq!(out.len(), 20);
    for (i, r) in out.iter().enumerate() {
        if i == 13 {
            assert_eq!(r.as_ref().unwrap_err().kind(), ErrorKind::Panicked);
        } else {
            assert_eq!(*r.as_ref().unwrap(), i as u64);
        }
    }
    // next_timeout: a Timeout item, then the value.
    let mut it = p.imap(nap, [600u64]);
    let e = it
        .next_timeout(Duration::from_millis(50))
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(it.next().unwrap().unwrap(), 600);
    assert!(it.next().is_none());
    drop(it);
    close_join_and_check(p, []);
}

fn usage_errors(method: StartMethod) {
    assert_eq!(
        Pool::new(0).unwrap_err().kind(),
        ErrorKind::InvalidInput,
        "Pool::new(0)"
    );
    assert_eq!(
        Pool::builder()
            .processes(0)
            .context(get_context(method))
            .build()
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    let p = pool(method, 1);
    assert_eq!(
        p.join().unwrap_err().kind(),
        ErrorKind::InvalidState,
        "join before close"
    );
    assert_eq!(
        p.map_with(square, 0..10, Options::new().chunk_size(0))
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput,
        "chunk size 0"
    );
    for ordered in [true, false] {
        let opts = Options::new().chunk_size(0);
        let got: Vec<_> = if ordered {
            p.imap_with(square, 0..10, opts).collect()
        } else {
            p.imap_unordered_with(square, 0..10, opts).collect()
        };
        assert_eq!(
            got.len(),
            1,
            "imap with chunk size 0 (ordered {ordered}): one error"
        );
        assert_eq!(got[0].as_ref().unwrap_err().kind(), ErrorKind::InvalidInput);
    }
    let r = p.apply_async(nap, 300).unwrap();
    assert_eq!(
        r.successful().unwrap_err().kind(),
        ErrorKind::InvalidState,
        "successful() before ready"
    );
    p.close();
    assert_eq!(
        p.apply(square, 1).unwrap_err().kind(),
        ErrorKind::InvalidState,
        "apply after close"
    );
    assert_eq!(
        p.map_async(square, 0..3).unwrap_err().kind(),
        ErrorKind::InvalidState,
        "map_async after close"
    );
    // Even with nothing to run: Python's "Pool not running", not an empty result.
    assert_eq!(
        p.map(square, Vec::<u64>::new()).unwrap_err().kind(),
        ErrorKind::InvalidState,
        "an empty map after close"
    );
    assert_eq!(
        p.starmap_async(add, Vec::new()).unwrap_err().kind(),
        ErrorKind::InvalidState,
        "an empty starmap_async after close"
    );
    let imapped: Vec<_> = p.imap(square, 0..3).collect();
    assert!(
        imapped.len() == 1 && imapped[0].as_ref().unwrap_err().kind() == ErrorKind::InvalidState,
        "imap after close: {imapped:?}"
    );
    // The task queued before close still runs.
    assert_eq!(r.get_timeout(BOUND).unwrap(), 300);
    close_join_and_check(p, []);

    let p = pool(method, 1);
    p.terminate();
    assert_eq!(
        p.apply(square, 1).unwrap_err().kind(),
        ErrorKind::BrokenPool,
        "apply after terminate"
    );
    assert_eq!(
        p.map(square, 0..0).unwrap_err().kind(),
        ErrorKind::BrokenPool,
        "an empty map after terminate"
    );
    p.join().unwrap();
    drop_and_check(p, []);
}

fn terminate_with_10000_queued(method: StartMethod) {
    let p = pool(method, 2);
    let r = p
        .map_async_with(nap, vec![10_000u64; 10_000], Options::new().chunk_size(1))
        .unwrap();
    let singles: Vec<_> = (0..100)
        .map(|_| p.apply_async(nap, 10_000).unwrap())
        .collect();
    // Let the workers take their first tasks.
    std::thread::sleep(Duration::from_millis(200));
    let pids = worker_pids(&p);
    let (_, took) = timed(|| p.terminate());
    assert!(
        took < Duration::from_secs(5),
        "terminate() with 10,000 long tasks queued took {took:?}"
    );
    let e = r.get_timeout(SOON).unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Cancelled,
        "the map fails with Cancelled: {e}"
    );
    for s in &singles {
        assert_eq!(
            s.get_timeout(SOON).unwrap_err().kind(),
            ErrorKind::Cancelled
        );
    }
    drop_and_check(p, pids);
}

fn failing_task_does_not_stop_other_chunks(method: StartMethod) {
    let p = pool(method, 2);
    let n = 60;
    let arr = Array::<u8>::zeroed(n).unwrap();
    let items: Vec<(Array<u8>, usize)> = (0..n).map(|i| (arr.clone(), i)).collect();
    let e = p
        .map_with(mark, items, Options::new().chunk_size(4))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    let msg = e.to_string();
    assert!(msg.contains("item 13"), "the error names the item: {msg}");
    assert!(msg.contains("panicked"), "{msg}");
    assert!(msg.contains("item thirteen refuses"), "{msg}");
    let marks = arr.to_vec();
    for (i, &m) in marks.iter().enumerate() {
        let want = u8::from(i != 13);
        assert_eq!(m, want, "item {i} ran: {marks:?}");
    }
    // Two failures: the lowest index is reported, with a count of the rest.
    let e = p
        .map_with(fails_on_13, 0..100u64, Options::new().chunk_size(10))
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("item 13") && msg.contains("unlucky number 13"),
        "{msg}"
    );
    assert!(
        msg.contains("1 more"),
        "the other failure is counted: {msg}"
    );
    close_join_and_check(p, []);
}

fn max_tasks_per_child_10(method: StartMethod) {
    let p = Pool::builder()
        .processes(2)
        .max_tasks_per_child(10)
        .context(get_context(method))
        .build()
        .unwrap();
    let first = worker_pids(&p);
    assert_eq!(first.len(), 2);
    let pids = p
        .map_with(
            my_pid_after_nap,
            vec![5u64; 100],
            Options::new().chunk_size(1),
        )
        .unwrap();
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for &pid in &pids {
        *counts.entry(pid).or_default() += 1;
    }
    assert!(
        counts.len() > 2,
        "workers were replaced: distinct pids {counts:?}"
    );
    assert!(
        counts.len() >= 10,
        "100 tasks at 10 per worker need at least 10 workers: {counts:?}"
    );
    assert!(
        counts.values().all(|&c| c <= 10),
        "no worker ran more than 10 tasks: {counts:?}"
    );
    // The first workers were all replaced.
    assert!(
        eventually(GRACE, || {
            let now: HashSet<u32> = worker_pids(&p).into_iter().collect();
            first.iter().all(|pid| !now.contains(pid) && is_gone(*pid))
        }),
        "the first workers {first:?} are still there: {:?}",
        p.stats()
    );
    close_join_and_check(p, counts.keys().copied());
}

fn max_tasks_per_child_1_early_close(method: StartMethod) {
    let p = Pool::builder()
        .processes(1)
        .max_tasks_per_child(1)
        .context(get_context(method))
        .build()
        .unwrap();
    let rs: Vec<_> = (0..6)
        .map(|_| p.apply_async(my_pid_after_nap, 50).unwrap())
        .collect();
    let p = Arc::new(p);
    p.close();
    let q = p.clone();
    within(BOUND, "join of a max_tasks_per_child(1) pool", move || {
        q.join()
    })
    .unwrap();
    let pids: Vec<u32> = rs.iter().map(|r| r.get_timeout(BOUND).unwrap()).collect();
    let distinct: HashSet<u32> = pids.iter().copied().collect();
    assert_eq!(distinct.len(), 6, "one worker per task: {pids:?}");
    for pid in pids {
        assert_gone(pid);
    }
    drop(p);
}

fn pool_200(method: StartMethod) {
    let p = pool(method, 200);
    assert_eq!(p.stats().len(), 200);
    let v = p.map(square, 0..1000u64).unwrap();
    assert_eq!(v.iter().sum::<u64>(), 332_833_500);
    close_join_and_check(p, []);
}

/// Starts `report_and_block` in the pool; the pid of the worker running it.
fn start_blocker(p: &Pool) -> (multiprocess::AsyncResult<u32>, u32) {
    let q = Queue::new().unwrap();
    let r = p.apply_async(report_and_block, q.clone()).unwrap();
    let pid = q.get_timeout(BOUND).expect("the task reports its pid");
    (r, pid)
}

fn worker_sigkill(method: StartMethod) {
    let p = pool(method, 2);
    let (r, pid) = start_blocker(&p);
    assert!(worker_pids(&p).contains(&pid));
    kill(pid, libc::SIGKILL);
    let e = r.get_timeout(BOUND).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ProcessDied, "{e}");
    let msg = e.to_string();
    assert!(msg.contains("SIGKILL"), "{msg}");
    assert!(
        msg.contains(&pid.to_string()),
        "names the worker's pid: {msg}"
    );
    assert_eq!(e.exitcode(), Some(-libc::SIGKILL));
    assert_gone(pid);
    // The pool still works, with a replacement.
    assert_eq!(p.map(square, 0..50u64).unwrap()[49], 49 * 49);
    assert!(
        eventually(GRACE, || {
            let w = worker_pids(&p);
            w.len() == 2 && !w.contains(&pid)
        }),
        "{:?}",
        p.stats()
    );
    drop_and_check(p, [pid]);
}

/// Runs `f` in a 2-worker pool, expects it to kill its worker, and checks the error
/// and that the pool goes on; the error's message.
fn task_kills_worker(method: StartMethod, f: fn(u32) -> u32, how: &str, code: i32) -> String {
    let p = pool(method, 2);
    let before = worker_pids(&p);
    let e = p.apply_async(f, 0).unwrap().get_timeout(BOUND).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ProcessDied, "{e}");
    let msg = e.to_string();
    assert!(msg.contains(how), "the error says {how:?}: {msg}");
    assert_eq!(e.exitcode(), Some(code), "{e:?}");
    // The pool goes on, with as many workers as before.
    let v = p.map(square, 0..20u64).unwrap();
    assert_eq!(v[19], 361);
    assert_eq!(p.apply(square, 9).unwrap(), 81);
    assert!(
        eventually(GRACE, || worker_pids(&p).len() == 2),
        "{:?}",
        p.stats()
    );
    drop_and_check(p, before);
    msg
}

fn worker_abort(method: StartMethod) {
    task_kills_worker(method, abort_task, "SIGABRT", -libc::SIGABRT);
}

fn worker_segfault(method: StartMethod) {
    task_kills_worker(method, segfault_task, "SIGSEGV", -libc::SIGSEGV);
}

fn worker_exit_3(method: StartMethod) {
    let msg = task_kills_worker(method, exit_3_task, "exit", 3);
    assert!(msg.contains("code 3"), "{msg}");
}

fn timeout_per_call(method: StartMethod) {
    let p = pool(method, 2);
    let before = worker_pids(&p);
    let opts = Options::new().timeout(Duration::from_millis(300));
    let (res, took) = timed(|| {
        p.apply_async_with(forever, 0, opts)
            .unwrap()
            .get_timeout(BOUND)
    });
    let e = res.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(
        took >= Duration::from_millis(250),
        "timed out early: {took:?}"
    );
    // The pool goes on.
    assert_eq!(p.apply(square, 12).unwrap(), 144);
    // A map chunk with a timeout: the chunk holding the endless call fails, the
    // others succeed.
    let out: Vec<_> = p
        .imap_with(
            seven_runs_forever,
            0..20u32,
            Options::new()
                .chunk_size(5)
                .timeout(Duration::from_millis(300)),
        )
        .collect();
    assert_eq!(out.len(), 20);
    for (i, r) in out.iter().enumerate() {
        if (5..10).contains(&i) {
            let e = r.as_ref().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Timeout, "item {i}: {e}");
        } else {
            assert_eq!(*r.as_ref().unwrap(), i as u32);
        }
    }
    // A timeout long enough does not fire.
    let opts = Options::new().timeout(Duration::from_secs(10));
    assert_eq!(
        p.apply_async_with(nap, 50, opts)
            .unwrap()
            .get_timeout(BOUND)
            .unwrap(),
        50
    );
    drop_and_check(p, before);
}

fn timeout_from_builder(method: StartMethod) {
    let p = Pool::builder()
        .processes(2)
        .task_timeout(Duration::from_millis(300))
        .context(get_context(method))
        .build()
        .unwrap();
    let before = worker_pids(&p);
    let e = p
        .apply_async(forever, 0)
        .unwrap()
        .get_timeout(BOUND)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    // Twice: the replacement worker is timed too.
    let e = p
        .apply_async(forever, 1)
        .unwrap()
        .get_timeout(BOUND)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    // map: the pool default applies to chunks too.
    let e = p
        .map_with(seven_runs_forever, 0..20u32, Options::new().chunk_size(2))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    // Quick tasks are not affected, and the pool goes on.
    assert_eq!(p.map(square, 0..100u64).unwrap()[10], 100);
    drop_and_check(p, before);
}

fn initializer_runs_in_each_worker(method: StartMethod) {
    let count = Value::new(0u32).unwrap();
    let p = Pool::builder()
        .processes(3)
        .initializer(init_counts, count.clone())
        .context(get_context(method))
        .build()
        .unwrap();
    assert_eq!(p.map(square, 0..30u64).unwrap().len(), 30);
    assert!(
        eventually(GRACE, || count.get() == 3),
        "3 workers, 3 initializer runs: {}",
        count.get()
    );
    close_join_and_check(p, []);
    assert_eq!(count.get(), 3);
}

fn initializer_fails(method: StartMethod) {
    let count = Value::new(0u32).unwrap();
    let p = Pool::builder()
        .processes(2)
        .initializer(init_fails, count.clone())
        .context(get_context(method))
        .build()
        .unwrap();
    let before = worker_pids(&p);
    // Submitted at once: most likely before any initializer has failed.
    let early = p.apply_async(square, 3).unwrap();
    // The task submitted before the pool broke fails once an initializer has failed
    // (the pool is marked broken before its tasks are failed). Waiting for that, not
    // for a fixed time, keeps the test right on a loaded machine.
    let e = early.get_timeout(LONG).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BrokenPool, "the early task: {e}");
    assert!(
        e.to_string().contains("initializer refuses: bad config"),
        "{e}"
    );
    // No respawn loop.
    std::thread::sleep(Duration::from_millis(300));
    let n = count.get();
    assert!(
        (1..=3).contains(&n),
        "initializer started {n} times for 2 workers"
    );
    // The pool refuses new work, at once, with the initializer's message.
    let (res, took) = timed(|| p.apply(square, 1));
    let e = res.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BrokenPool, "{e}");
    assert!(
        e.to_string().contains("initializer refuses: bad config"),
        "the initializer's message: {e}"
    );
    assert!(took < SOON, "apply on a broken pool took {took:?}");
    let e = p.map_async(square, 0..10u64).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BrokenPool);
    drop_and_check(p, before);
    assert_eq!(count.get(), n, "no initializer ran after the pool broke");
}

fn million_items_worker_killed(method: StartMethod) {
    let p = pool(method, 2);
    let before = worker_pids(&p);
    let lost = 500_000u64..510_000;
    let mut n = 0u64;
    let mut errors = 0u64;
    let it = p.imap_with(
        double_or_die,
        0..1_000_000u64,
        Options::new().chunk_size(10_000),
    );
    for (i, r) in (0u64..).zip(it) {
        n += 1;
        if lost.contains(&i) {
            let e = r.expect_err("an item of the lost chunk");
            errors += 1;
            if errors == 1 {
                assert_eq!(e.kind(), ErrorKind::ProcessDied, "{e}");
                let msg = e.to_string();
                assert!(
                    msg.contains("items 500000..510000"),
                    "names the chunk: {msg}"
                );
                assert!(msg.contains("SIGKILL"), "{msg}");
            } else {
                assert_eq!(e.kind(), ErrorKind::ProcessDied, "{e}");
            }
        } else {
            match r {
                Ok(v) => assert_eq!(v, 2 * i, "item {i}"),
                Err(e) => panic!("item {i} failed: {e}"),
            }
        }
    }
    assert_eq!(n, 1_000_000);
    assert_eq!(errors, 10_000);
    // The pool goes on.
    assert_eq!(p.apply(square, 3).unwrap(), 9);
    drop_and_check(p, before);
}

fn panic_message_and_location(method: StartMethod) {
    let p = pool(method, 2);
    let e = p.apply(kaboom, 7).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Panicked);
    let msg = e.to_string();
    assert!(msg.contains("kaboom on seven"), "{msg}");
    let here = format!("{}:{KABOOM_LINE}", file!());
    assert!(msg.contains(&here), "the location {here} is in: {msg}");
    // In map: the item is named, the others are fine.
    let e = p.map(kaboom, 0..10).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("item 7") && msg.contains("kaboom on seven"),
        "{msg}"
    );
    assert!(msg.contains(&here), "{msg}");
    // A panic does not cost the worker.
    let before: HashSet<u32> = worker_pids(&p).into_iter().collect();
    let pids: HashSet<u32> = p
        .map_with(my_pid, 0..40, Options::new().chunk_size(1))
        .unwrap()
        .into_iter()
        .collect();
    assert!(pids.is_subset(&before), "{pids:?} vs {before:?}");
    close_join_and_check(p, []);
}

/// Python's pool hands each task to whichever worker is idle: a task queued behind a
/// long one goes to another worker once it is free. Here `a` blocks until `c` runs;
/// `b` is short. With two workers, `c` must run once `b` is done, even after many
/// short tasks (which widen the per-worker windows).
fn idle_worker_takes_queued_task(method: StartMethod) {
    let p = pool(method, 2);
    for (round, warm) in [false, true, true, true, true].into_iter().enumerate() {
        if warm {
            // Many short tasks: the pool now believes tasks are short.
            let v = p
                .map_with(square, 0..3000u64, Options::new().chunk_size(1))
                .unwrap();
            assert_eq!(v.len(), 3000);
        }
        let ev = Event::new().unwrap();
        let a = p.apply_async(wait_for_event, (ev.clone(), 3_000)).unwrap();
        let b = p.apply_async(square, 2).unwrap();
        let c = p.apply_async(set_event, ev.clone()).unwrap();
        assert_eq!(b.get_timeout(BOUND).unwrap(), 4);
        assert!(c.get_timeout(BOUND).unwrap());
        assert!(
            a.get_timeout(BOUND).unwrap(),
            "round {round} (after short tasks: {warm}): the task that sets the event \
             stayed queued behind the one waiting for it, while the other worker was idle"
        );
    }
    close_join_and_check(p, []);
}

/// Every submitted task runs, even one that was queued on a worker that died before
/// reaching it (after short tasks, a worker takes several tasks at a time).
fn tasks_queued_behind_a_killed_worker_run(method: StartMethod) {
    let p = pool(method, 2);
    for round in 0..3 {
        // Short tasks: the workers now take several tasks at a time.
        let v = p
            .map_with(square, 0..2000u64, Options::new().chunk_size(1))
            .unwrap();
        assert_eq!(v.len(), 2000);
        let (r, pid) = start_blocker(&p);
        let rs: Vec<_> = (0..20u64)
            .map(|i| p.apply_async(square, i).unwrap())
            .collect();
        kill(pid, libc::SIGKILL);
        let e = r.get_timeout(BOUND).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ProcessDied, "{e}");
        for (i, r) in (0u64..).zip(&rs) {
            match r.get_timeout(BOUND) {
                Ok(v) => assert_eq!(v, i * i),
                Err(e) => panic!(
                    "round {round}: task {i}, submitted while another worker was busy and \
                     then killed, never ran: {e}"
                ),
            }
        }
        assert_gone(pid);
    }
    drop_and_check(p, []);
}

// ----------------------------------------------------------- SIGINT to the parent

const SIGINT_CHILD_ENV: &str = "MULTIPROCESS_POOL_TEST_SIGINT_CHILD";

/// Not a test on its own: the body of the child process of
/// `sigint_to_parent_leaves_no_worker` (this binary, run with this test as the filter
/// and the start method in [`SIGINT_CHILD_ENV`]). As an ordinary test it returns at
/// once.
#[test]
fn sigint_child_helper() {
    let Ok(m) = std::env::var(SIGINT_CHILD_ENV) else {
        return;
    };
    let method = match m.as_str() {
        "fork" => StartMethod::Fork,
        "spawn" => StartMethod::Spawn,
        _ => StartMethod::ForkServer,
    };
    let p = pool(method, 3);
    // Every worker is up and answering.
    assert_eq!(p.map(square, 0..30u64).unwrap().len(), 30);
    let pids: Vec<String> = worker_pids(&p).iter().map(u32::to_string).collect();
    println!("WORKERS {}", pids.join(" "));
    use std::io::Write as _;
    std::io::stdout().flush().unwrap();
    // A long map; SIGINT ends us in the middle of it.
    let _ = p.map_with(nap, vec![200u64; 3000], Options::new().chunk_size(1));
    println!("MAP ENDED");
    std::process::exit(7);
}

/// Kills the child on drop (a failed test leaves nothing behind).
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// SIGKILLs, when dropped, those of its processes that still run this test binary.
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let exe = std::env::current_exe().unwrap_or_default();
        for &pid in &self.0 {
            let ours = std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == exe);
            if ours && common::is_running(pid) {
                #[allow(unsafe_code)]
                // SAFETY: kill(2) has no memory effects.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL)
                };
            }
        }
    }
}

/// Every process below `pid` (children, grandchildren, ...).
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in children_of(p) {
            out.push(c.pid);
            todo.push(c.pid);
        }
    }
    out
}

fn sigint_to_parent_leaves_no_worker(method: StartMethod) {
    use std::os::unix::process::ExitStatusExt;
    let exe = std::env::current_exe().unwrap();
    let child = std::process::Command::new(exe)
        .args([
            "sigint_child_helper",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SIGINT_CHILD_ENV, method.as_str())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(child);
    let child_pid = guard.0.id();
    let out = guard.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let workers: Vec<u32> = loop {
        let line = rx
            .recv_timeout(LONG)
            .expect("the child reports its workers");
        // libtest writes "test sigint_child_helper ... " first, on the same line.
        if let Some(at) = line.find("WORKERS ") {
            break line[at + 8..]
                .split_whitespace()
                .map(|s| s.parse().unwrap())
                .collect();
        }
    };
    assert_eq!(workers.len(), 3);
    // Let the map get going, then interrupt the parent.
    std::thread::sleep(Duration::from_millis(300));
    let family = descendants(child_pid);
    for w in &workers {
        assert!(
            family.contains(w),
            "worker {w} is below the child: {family:?}"
        );
    }
    // If the test fails, nothing of the child's is left behind.
    let _cleanup = KillOnDrop(family.clone());
    kill(child_pid, libc::SIGINT);
    let deadline = Instant::now() + BOUND;
    let status = loop {
        if let Some(st) = guard.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the child did not end after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
    // Every process it had (workers, a fork server) is gone within a few seconds.
    for pid in family {
        assert_gone(pid);
    }
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        !rest.iter().any(|l| l.contains("MAP ENDED")),
        "the map was interrupted: {rest:?}"
    );
}

/// Pools started and ended leave no fd and no process behind (close/join, terminate,
/// drop with tasks running, a replaced worker).
fn lifecycle_no_leak(method: StartMethod) {
    // The fork server may run (started by another test of this process, or here): it
    // is the one child allowed.
    let server = Some(fork_server_pid());
    // Warm up whatever is started once per process.
    let p = pool(method, 2);
    assert_eq!(p.map(square, 0..10u64).unwrap().len(), 10);
    drop(p);
    assert_quiescent(server);
    let fds = fd_count();
    let before = fd_list();
    for round in 0..2 {
        let p = pool(method, 2);
        assert_eq!(p.map(square, 0..100u64).unwrap().len(), 100);
        let (_, pid) = start_blocker(&p);
        kill(pid, libc::SIGKILL);
        let v = p
            .map_async(square, 0..5u64)
            .unwrap()
            .get_timeout(BOUND)
            .unwrap();
        assert_eq!(v, [0, 1, 4, 9, 16]);
        match round {
            0 => close_join_and_check(p, [pid]),
            _ => {
                let _running = p.apply_async(nap, 10_000).unwrap();
                drop_and_check(p, [pid]);
            }
        }
        assert_quiescent(server);
        let ok = eventually(GRACE, || fd_count() == fds);
        assert!(
            ok,
            "round {round}: {} fds, {fds} before\nbefore: {before:?}\nafter:  {:?}",
            fd_count(),
            fd_list()
        );
    }
}

// ================================================================== ThreadPool

mod thread_pool {
    //! `ThreadPool`: the same API with closures run by threads.

    use super::*;

    fn tp(n: usize) -> ThreadPool {
        ThreadPool::new(n).expect("start the thread pool")
    }

    #[test]
    fn apply_map_starmap_with_captures() {
        let _g = crate::common::shared();
        common::watchdog(apply_map_starmap_with_captures_body);
    }

    fn apply_map_starmap_with_captures_body() {
        let p = tp(3);
        assert_eq!(p.processes(), 3);
        let offset = 10u64;
        assert_eq!(p.apply(move |x: u64| x + offset, 5).unwrap(), 15);
        let v = p.map(move |x: u64| x * x + offset, 0..10).unwrap();
        assert_eq!(v, (0..10).map(|x| x * x + 10).collect::<Vec<u64>>());
        let v = p
            .map_with(|x: u64| x * 2, 0..100, Options::new().chunk_size(20))
            .unwrap();
        assert_eq!(v, (0..100).map(|x| x * 2).collect::<Vec<u64>>());
        let v = p
            .starmap(|(a, b): (u32, u32)| a * b, [(2, 3), (4, 5)])
            .unwrap();
        assert_eq!(v, [6, 20]);
        assert_eq!(
            p.starmap_async(|(a, b): (u8, u8)| a + b, [(1, 2)])
                .unwrap()
                .get()
                .unwrap(),
            [3]
        );
        // Closures share state with the caller.
        let seen = Arc::new(Mutex::new(HashSet::new()));
        let s = seen.clone();
        p.map(
            move |x: u32| {
                s.lock().unwrap().insert(x);
            },
            0..500,
        )
        .unwrap();
        assert_eq!(seen.lock().unwrap().len(), 500);
        // A non-Clone, non-serializable capture moves into apply.
        let owned = String::from("moved in");
        let r = p.apply_async(move |n: usize| owned.len() + n, 1).unwrap();
        assert_eq!(r.get_timeout(BOUND).unwrap(), 9);
        assert_eq!(r.get().unwrap_err().kind(), ErrorKind::InvalidState);
        // The work really ran on the pool's threads.
        let names = p
            .map(
                |_: u32| std::thread::current().name().unwrap_or("").to_string(),
                0..30,
            )
            .unwrap();
        let me = std::thread::current().name().map(str::to_string);
        assert!(names.iter().all(|n| Some(n) != me.as_ref()), "{names:?}");
        p.close();
        p.join().unwrap();
    }

    #[test]
    fn callbacks() {
        let _g = crate::common::shared();
        common::watchdog(callbacks_body);
    }

    fn callbacks_body() {
        let p = tp(2);
        let log = Arc::new(Mutex::new(Vec::new()));
        let (a, b) = (log.clone(), log.clone());
        let opts = Options::new()
            .callback(move |v: &Vec<u32>| a.lock().unwrap().push(format!("ok {}", v.len())))
            .error_callback(move |e| b.lock().unwrap().push(format!("err {e}")));
        assert_eq!(
            p.map_async_with(|x: u32| x, 0..50, opts)
                .unwrap()
                .get()
                .unwrap()
                .len(),
            50
        );
        let (a, b) = (log.clone(), log.clone());
        let opts = Options::new()
            .chunk_size(5)
            .callback(move |v: &Vec<u32>| a.lock().unwrap().push(format!("ok {}", v.len())))
            .error_callback(move |e| b.lock().unwrap().push(format!("err {e}")));
        let e = p
            .map_async_with(
                |x: u32| {
                    if x == 21 {
                        panic!("thread item refuses");
                    }
                    x
                },
                0..50,
                opts,
            )
            .unwrap()
            .get_timeout(BOUND)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked);
        let (a, b) = (log.clone(), log.clone());
        let opts = Options::new()
            .callback(move |v: &u32| a.lock().unwrap().push(format!("ok {v}")))
            .error_callback(move |e| b.lock().unwrap().push(format!("err {e}")));
        assert_eq!(
            p.apply_async_with(|x: u32| x + 1, 1, opts)
                .unwrap()
                .get()
                .unwrap(),
            2
        );
        let log = log.lock().unwrap().clone();
        assert_eq!(log.len(), 3, "{log:?}");
        assert_eq!(log[0], "ok 50");
        assert!(
            log[1].starts_with("err ") && log[1].contains("thread item refuses"),
            "{log:?}"
        );
        assert!(log[1].contains("item 21"), "{log:?}");
        assert_eq!(log[2], "ok 2");
        // An empty map is done at once.
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let r = p
            .map_async_with(
                |x: u32| x,
                Vec::new(),
                Options::new().chunk_size(1).callback(move |_: &Vec<u32>| {
                    c.fetch_add(1, SeqCst);
                }),
            )
            .unwrap();
        assert!(r.ready());
        assert_eq!(calls.load(SeqCst), 1);
        assert!(r.get().unwrap().is_empty());
    }

    #[test]
    fn imap_ordered_unordered_endless() {
        let _g = crate::common::shared();
        common::watchdog(imap_ordered_unordered_endless_body);
    }

    fn imap_ordered_unordered_endless_body() {
        let p = tp(3);
        let v: Vec<u64> = p
            .imap_with(|x: u64| x * x, 0..1000, Options::new().chunk_size(100))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(v, (0..1000u64).map(|x| x * x).collect::<Vec<_>>());
        let mut v: Vec<u64> = p
            .imap_unordered(
                |x: u64| {
                    // Make the order vary.
                    std::thread::sleep(Duration::from_micros((x * 7919) % 300));
                    x
                },
                0..1000,
            )
            .collect::<Result<_, _>>()
            .unwrap();
        v.sort_unstable();
        assert_eq!(v, (0..1000u64).collect::<Vec<_>>());
        let firsts: Vec<u64> = p
            .imap(|x: u64| x + 1, 0..)
            .take(5)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(firsts, [1, 2, 3, 4, 5]);
        // A panicking call is one Err item.
        let out: Vec<_> = p
            .imap(
                |x: u32| {
                    if x == 3 {
                        panic!("three");
                    }
                    x
                },
                0..6,
            )
            .collect();
        assert_eq!(out.len(), 6);
        assert_eq!(out[3].as_ref().unwrap_err().kind(), ErrorKind::Panicked);
        assert_eq!(*out[5].as_ref().unwrap(), 5);
    }

    #[test]
    fn failing_task_does_not_stop_the_others() {
        let _g = crate::common::shared();
        common::watchdog(failing_task_does_not_stop_the_others_body);
    }

    fn failing_task_does_not_stop_the_others_body() {
        let p = tp(2);
        let ran = Arc::new(Mutex::new(vec![false; 60]));
        let r = ran.clone();
        let e = p
            .map_with(
                move |i: usize| {
                    if i == 13 {
                        panic!("thread thirteen refuses");
                    }
                    r.lock().unwrap()[i] = true;
                    i
                },
                0..60,
                Options::new().chunk_size(4),
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked);
        let msg = e.to_string();
        assert!(msg.contains("item 13") && msg.contains("panicked"), "{msg}");
        assert!(msg.contains("thread thirteen refuses"), "{msg}");
        let ran = ran.lock().unwrap();
        for (i, &r) in ran.iter().enumerate() {
            assert_eq!(r, i != 13, "item {i}");
        }
    }

    #[test]
    fn usage_errors() {
        let _g = crate::common::shared();
        common::watchdog(usage_errors_body);
    }

    fn usage_errors_body() {
        assert_eq!(
            ThreadPool::new(0).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        let p = tp(1);
        assert_eq!(p.join().unwrap_err().kind(), ErrorKind::InvalidState);
        // Threads cannot be killed: no timeouts.
        let e = p
            .apply_async_with(|x: u8| x, 1, Options::new().timeout(Duration::from_secs(1)))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        let e = p
            .map_with(
                |x: u8| x,
                [1],
                Options::new().timeout(Duration::from_secs(1)),
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        // get_timeout gives up waiting; the task goes on.
        let r = p
            .apply_async(|ms: u64| std::thread::sleep(Duration::from_millis(ms)), 600)
            .unwrap();
        let (res, took) = timed(|| r.get_timeout(Duration::from_millis(100)));
        assert_eq!(res.unwrap_err().kind(), ErrorKind::Timeout);
        assert!(
            took >= Duration::from_millis(90) && took < Duration::from_millis(550),
            "{took:?}"
        );
        p.close();
        assert_eq!(
            p.apply(|x: u8| x, 1).unwrap_err().kind(),
            ErrorKind::InvalidState
        );
        assert_eq!(
            p.map(|x: u8| x, [1]).unwrap_err().kind(),
            ErrorKind::InvalidState
        );
        p.join().unwrap();
        assert!(r.ready(), "join waits for the queued tasks");
        r.get().unwrap();
    }

    #[test]
    fn initializer_panic_breaks_the_pool() {
        let _g = crate::common::shared();
        common::watchdog(initializer_panic_breaks_the_pool_body);
    }

    /// A panicking initializer breaks the pool, as a process pool's does: the tasks
    /// fail with its message instead of waiting for threads that are gone.
    fn initializer_panic_breaks_the_pool_body() {
        let p = ThreadPool::builder()
            .threads(2)
            .initializer(|| panic!("thread init refuses"))
            .build()
            .unwrap();
        let r = p.apply_async(|x: u8| x, 1).unwrap();
        let m = p.map_async(|x: u8| x, 0..10);
        let e = r.get_timeout(BOUND).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenPool, "{e}");
        assert!(e.to_string().contains("thread init refuses"), "{e}");
        // A map queued before the pool broke fails; one submitted after is refused.
        let e = match m {
            Ok(m) => m.get_timeout(BOUND).unwrap_err(),
            Err(e) => e,
        };
        assert_eq!(e.kind(), ErrorKind::BrokenPool, "{e}");
        let e = p.apply(|x: u8| x, 2).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenPool, "{e}");
        assert!(e.to_string().contains("thread init refuses"), "{e}");
        p.close();
        p.join().unwrap();
    }

    #[test]
    fn close_join_runs_queued_work_and_initializer() {
        let _g = crate::common::shared();
        common::watchdog(close_join_runs_queued_work_and_initializer_body);
    }

    fn close_join_runs_queued_work_and_initializer_body() {
        let started = Arc::new(AtomicUsize::new(0));
        let s = started.clone();
        let p = ThreadPool::builder()
            .threads(3)
            .initializer(move || {
                s.fetch_add(1, SeqCst);
            })
            .build()
            .unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        let rs: Vec<_> = (0..30)
            .map(|_| {
                let d = done.clone();
                p.apply_async(
                    move |ms: u64| {
                        std::thread::sleep(Duration::from_millis(ms));
                        d.fetch_add(1, SeqCst);
                    },
                    10,
                )
                .unwrap()
            })
            .collect();
        p.close();
        let p = Arc::new(p);
        let q = p.clone();
        within(BOUND, "ThreadPool::join", move || q.join()).unwrap();
        assert_eq!(
            done.load(SeqCst),
            30,
            "every queued task ran before join returned"
        );
        assert!(rs.iter().all(|r| r.ready()));
        assert_eq!(started.load(SeqCst), 3);
    }

    #[test]
    fn terminate_with_10000_queued() {
        let _g = crate::common::shared();
        common::watchdog(terminate_with_10000_queued_body);
    }

    fn terminate_with_10000_queued_body() {
        let p = tp(2);
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let started_tx = Mutex::new(started_tx);
        // Two running tasks, blocked until released.
        let running: Vec<_> = (0..2)
            .map(|_| {
                let rx = release_rx.clone();
                let tx = started_tx.lock().unwrap().clone();
                p.apply_async(
                    move |_: ()| {
                        tx.send(()).unwrap();
                        rx.lock().unwrap().recv_timeout(LONG).is_ok()
                    },
                    (),
                )
                .unwrap()
            })
            .collect();
        for _ in 0..2 {
            started_rx.recv_timeout(BOUND).expect("a task started");
        }
        let queued = p
            .map_async_with(
                |ms: u64| std::thread::sleep(Duration::from_millis(ms)),
                vec![10_000u64; 10_000],
                Options::new().chunk_size(1),
            )
            .unwrap();
        let singles: Vec<_> = (0..100)
            .map(|_| p.apply_async(|x: u8| x, 1).unwrap())
            .collect();
        let (_, took) = timed(|| p.terminate());
        assert!(took < Duration::from_secs(5), "terminate took {took:?}");
        assert_eq!(
            queued.get_timeout(BOUND).unwrap_err().kind(),
            ErrorKind::Cancelled
        );
        for s in &singles {
            assert_eq!(
                s.get_timeout(BOUND).unwrap_err().kind(),
                ErrorKind::Cancelled
            );
        }
        assert_eq!(
            p.apply(|x: u8| x, 1).unwrap_err().kind(),
            ErrorKind::BrokenPool,
            "apply after terminate"
        );
        // The running ones finish in the background once released.
        drop(release_tx);
        for r in &running {
            assert!(
                !r.get_timeout(BOUND).unwrap(),
                "released by the channel closing"
            );
        }
        let p = Arc::new(p);
        let q = p.clone();
        within(BOUND, "ThreadPool::join after terminate", move || q.join()).unwrap();
    }
}
