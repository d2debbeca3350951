//! The async twins with real processes: under tokio's runtime (feature `tokio`: the
//! waits are tokio's `AsyncFd`), and under a hand-written executor that knows nothing
//! of tokio (the crate's own reactor thread), which proves they need no particular
//! executor. Every wait is bounded; every test that starts processes checks that none
//! is left.
#![cfg(feature = "tokio")]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use multiprocess::{Connection, ErrorKind, Pool, Process, Queue, StartMethod, get_context};

multiprocess::test_support!();

#[macro_use]
mod common;

use common::{LONG, assert_quiescent, fork_server_pid, serial, square};

/// Bounds one await: a bug fails the test instead of hanging it.
async fn bounded<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(LONG, f.into_future())
        .await
        .expect("an async wait did not end within LONG: it hangs")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn exit_with(code: i32) {
    std::thread::sleep(Duration::from_millis(30));
    std::process::exit(code)
}

fn nap_then_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(20 * (x % 4)));
    x * x
}

/// A result larger than a socket's buffer: the child blocks writing it until the
/// parent reads, so a join must read before it waits for the exit.
fn big(n: usize) -> Vec<u8> {
    vec![7; n]
}

fn panics(_: ()) -> u64 {
    panic!("on purpose")
}

fn sender((conn, n): (Connection<u64>, u64)) {
    for i in 0..n {
        if i % 10 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        conn.send(&i).unwrap();
    }
}

fn producer((q, from, n): (Queue<u64>, u64, u64)) {
    for i in from..from + n {
        q.put(i).unwrap();
    }
}

fn consumer((q, n): (Queue<u64>, u64)) -> Vec<u64> {
    (0..n).map(|_| q.get_timeout(LONG).unwrap()).collect()
}

/// Processes, spawned children and pool results awaited together on tokio's
/// multi-threaded runtime; a panic and an exit code come back as from the blocking
/// calls.
#[test]
fn tokio_awaits_processes_children_and_pool_results() {
    let _g = serial();
    let server = Some(fork_server_pid());
    runtime().block_on(async {
        let handles: Vec<_> = (0..6u64)
            .map(|i| {
                let ctx = get_context(if i % 2 == 0 {
                    StartMethod::Spawn
                } else {
                    StartMethod::ForkServer
                });
                ctx.spawn(nap_then_square, i).unwrap()
            })
            .collect();
        let tasks: Vec<_> = handles
            .into_iter()
            .map(|h| tokio::spawn(bounded(h)))
            .collect();
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap().unwrap());
        }
        assert_eq!(got, [0, 1, 4, 9, 16, 25]);

        let v = bounded(multiprocess::spawn(big, 4 << 20).unwrap())
            .await
            .unwrap();
        assert!(v.len() == 4 << 20 && v.iter().all(|&b| b == 7));

        let e = bounded(multiprocess::spawn(panics, ()).unwrap())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked);
        assert!(e.to_string().contains("on purpose"), "{e}");

        let mut p = Process::new(exit_with, 7);
        p.start().unwrap();
        let exit = p.join_async();
        bounded(tokio::spawn(exit)).await.unwrap().unwrap();
        assert_eq!(p.exitcode(), Some(7));
        assert!(!p.is_alive().unwrap());

        let pool = Pool::new(2).unwrap();
        let rs: Vec<_> = (0..8)
            .map(|i| pool.apply_async(square, i).unwrap())
            .collect();
        let mut sum = 0;
        for r in rs {
            sum += bounded(r).await.unwrap();
        }
        assert_eq!(sum, (0..8).map(|i| i * i).sum::<u64>());
        let e = bounded(pool.apply_async(panics, ()).unwrap())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked);
        drop(pool);
    });
    assert_quiescent(server);
}

/// Messages from a child, received by a task; a receive that timed out (the future
/// dropped) loses nothing; the child's exit ends the stream with `Disconnected`.
#[test]
fn tokio_receives_from_a_child_and_cancelling_loses_nothing() {
    let _g = serial();
    let server = Some(fork_server_pid());
    runtime().block_on(async {
        let (here, there) = multiprocess::pipe::<u64>().unwrap();
        // Nothing sent yet: a receive that gives up leaves the end as it was.
        let early = tokio::time::timeout(Duration::from_millis(20), here.recv_async()).await;
        assert!(early.is_err(), "nothing was sent: {early:?}");

        let mut p = Process::new(sender, (there, 200));
        p.start().unwrap();
        let here = Arc::new(here);
        let rx = here.clone();
        let got = bounded(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                match rx.recv_async().await {
                    Ok(v) => got.push(v),
                    Err(e) => return (got, e.kind()),
                }
            }
        }))
        .await
        .unwrap();
        assert_eq!(got.0, (0..200).collect::<Vec<_>>());
        assert_eq!(got.1, ErrorKind::Disconnected);
        bounded(p.join_async()).await.unwrap();
        assert_eq!(p.exitcode(), Some(0));
    });
    assert_quiescent(server);
}

/// Raw byte messages, and two tasks receiving on one end: each message once.
#[test]
fn tokio_two_tasks_share_one_end() {
    let _g = serial();
    let server = Some(fork_server_pid());
    runtime().block_on(async {
        let (here, there) = multiprocess::pipe::<u64>().unwrap();
        let here = Arc::new(here);
        let mut p = Process::new(sender, (there, 300));
        p.start().unwrap();
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let rx = here.clone();
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    while let Ok(b) = rx.recv_bytes_async().await {
                        got.push(b);
                    }
                    got
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(bounded(t).await.unwrap());
        }
        let mut values: Vec<u64> = all
            .iter()
            .map(|b| u64::from_le_bytes(b[..8].try_into().unwrap()))
            .collect();
        values.sort();
        assert_eq!(values, (0..300).collect::<Vec<_>>());
        bounded(p.join_async()).await.unwrap();
    });
    assert_quiescent(server);
}

/// A bounded queue between processes: tasks await `get_async` from child producers
/// and `put_async` into a queue that a child drains (the puts wait for room).
#[test]
fn tokio_gets_and_puts_across_processes() {
    let _g = serial();
    let server = Some(fork_server_pid());
    runtime().block_on(async {
        let q = Queue::<u64>::bounded(3).unwrap();
        let producers: Vec<_> = (0..2u64)
            .map(|k| {
                let mut p = Process::new(producer, (q.clone(), k * 1000, 100));
                p.start().unwrap();
                p
            })
            .collect();
        let getters: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    while let Ok(Ok(v)) =
                        tokio::time::timeout(Duration::from_millis(500), q.get_async()).await
                    {
                        got.push(v);
                    }
                    got
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in getters {
            all.extend(bounded(t).await.unwrap());
        }
        all.sort();
        let want: Vec<u64> = (0..100).chain(1000..1100).collect();
        assert_eq!(all, want, "every item exactly once");
        for p in &producers {
            bounded(p.join_async()).await.unwrap();
            assert_eq!(p.exitcode(), Some(0));
        }

        let out = Queue::<u64>::bounded(2).unwrap();
        let drain = get_context(StartMethod::Spawn)
            .spawn(consumer, (out.clone(), 50))
            .unwrap();
        for i in 0..50 {
            bounded(out.put_async(i)).await.unwrap();
        }
        assert_eq!(bounded(drain).await.unwrap(), (0..50).collect::<Vec<_>>());
    });
    assert_quiescent(server);
}

/// Takes jobs until `u64::MAX`, acknowledging each.
fn joinable_worker(q: multiprocess::JoinableQueue<u64>) {
    loop {
        let job = q.get_timeout(LONG).unwrap();
        if job != u64::MAX {
            std::thread::sleep(Duration::from_millis(2));
        }
        q.task_done().unwrap();
        if job == u64::MAX {
            return;
        }
    }
}

/// `join_async` on a joinable queue that worker processes drain: ready once every
/// item is acknowledged, not before. The jobs go in with `put_async` on a small
/// bounded queue (so most puts wait for room), each counted as it lands.
#[test]
fn tokio_joins_a_joinable_queue() {
    let _g = serial();
    let server = Some(fork_server_pid());
    runtime().block_on(async {
        let q = multiprocess::JoinableQueue::<u64>::bounded(4).unwrap();
        // Nothing put: ready at once.
        bounded(q.join_async()).await.unwrap();
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let mut p = Process::new(joinable_worker, q.clone());
                p.start().unwrap();
                p
            })
            .collect();
        for i in 0..40 {
            bounded(q.put_async(i)).await.unwrap();
        }
        bounded(q.join_async()).await.unwrap();
        assert!(q.is_empty());
        for _ in &workers {
            q.put(u64::MAX).unwrap();
        }
        bounded(q.join_async()).await.unwrap();
        for p in &workers {
            bounded(p.join_async()).await.unwrap();
            assert_eq!(p.exitcode(), Some(0));
        }
        // A join that cannot finish stays pending (bounded by the timeout).
        q.put(1).unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), q.join_async())
                .await
                .is_err()
        );
        assert_eq!(q.get_async().await.unwrap(), 1);
        q.task_done().unwrap();
        bounded(q.join_async()).await.unwrap();
    });
    assert_quiescent(server);
}

/// An async getter beside a thread blocked in `get` (which holds the consumer lock
/// while it sleeps): both get an item, and a get that timed out took nothing.
#[test]
fn tokio_get_async_beside_a_blocked_sync_getter() {
    let _g = common::shared();
    runtime().block_on(async {
        let q = Queue::<u64>::new().unwrap();
        let early = tokio::time::timeout(Duration::from_millis(20), q.get_async()).await;
        assert!(early.is_err());
        let q2 = q.clone();
        let blocked = std::thread::spawn(move || q2.get_timeout(LONG).unwrap());
        // Let the thread block inside the lock (either order is correct).
        tokio::time::sleep(Duration::from_millis(50)).await;
        let task = {
            let q = q.clone();
            tokio::spawn(async move { q.get_async().await.unwrap() })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        q.put(1).unwrap();
        q.put(2).unwrap();
        let a = bounded(task).await.unwrap();
        let b = tokio::task::spawn_blocking(move || blocked.join().unwrap())
            .await
            .unwrap();
        let mut both = [a, b];
        both.sort();
        assert_eq!(both, [1, 2]);
        assert!(q.is_empty());
    });
}

/// An async receiver beside a thread blocked in `recv` on a copy of the same end
/// (which holds the receive lock while it sleeps): each message once, whole.
#[test]
fn tokio_recv_async_beside_a_blocked_sync_receiver() {
    let _g = common::shared();
    runtime().block_on(async {
        let (here, there) = multiprocess::pipe::<String>().unwrap();
        let copy = here.try_clone().unwrap();
        let blocked = std::thread::spawn(move || copy.recv_timeout(LONG).unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
        let task = tokio::spawn(async move { here.recv_async().await.unwrap() });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let big = "x".repeat(1 << 20); // larger than the socket's buffer
        there.send(&big).unwrap();
        there.send(&"small".to_string()).unwrap();
        let a = bounded(task).await.unwrap();
        let b = tokio::task::spawn_blocking(move || blocked.join().unwrap())
            .await
            .unwrap();
        let mut lens = [a.len(), b.len()];
        lens.sort();
        assert_eq!(lens, [5, 1 << 20]);
    });
}

/// A minimal executor: polls one future on this thread and parks until woken. It
/// knows nothing of tokio or any reactor.
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread, AtomicBool);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.1.store(true, Ordering::SeqCst);
            self.0.unpark();
        }
    }
    let w = Arc::new(Unpark(std::thread::current(), AtomicBool::new(false)));
    let waker = Waker::from(w.clone());
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    let deadline = Instant::now() + LONG;
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        while !w.1.swap(false, Ordering::SeqCst) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "not woken within LONG: a lost wake-up");
            std::thread::park_timeout(left);
        }
    }
}

/// Every twin under the hand-written executor (no tokio runtime anywhere): the
/// crate's reactor thread wakes the waits on fds, the pool's thread the results.
#[test]
fn every_twin_works_without_tokio() {
    let _g = serial();
    let server = Some(fork_server_pid());
    assert!(tokio::runtime::Handle::try_current().is_err());
    // The reactor's own two fds (its epoll set and doorbell) stay for the process's
    // life: start it first, then count.
    let warm_up = multiprocess::spawn(nap_then_square, 2).unwrap();
    assert_eq!(
        block_on(std::future::IntoFuture::into_future(warm_up)).unwrap(),
        4
    );
    let fds = common::fd_count();
    block_on(async {
        let h = multiprocess::spawn(nap_then_square, 3).unwrap();
        assert_eq!(h.await.unwrap(), 9);

        let mut p = Process::new(exit_with, 3);
        p.start().unwrap();
        p.join_async().await.unwrap();
        assert_eq!(p.exitcode(), Some(3));

        let (here, there) = multiprocess::pipe::<u64>().unwrap();
        let mut p = Process::new(sender, (there, 50));
        p.start().unwrap();
        for i in 0..50 {
            assert_eq!(here.recv_async().await.unwrap(), i);
        }
        assert_eq!(
            here.recv_async().await.unwrap_err().kind(),
            ErrorKind::Disconnected
        );
        p.join_async().await.unwrap();

        let q = Queue::<u64>::bounded(1).unwrap();
        let mut p = Process::new(producer, (q.clone(), 0, 20));
        p.start().unwrap();
        for i in 0..20 {
            assert_eq!(q.get_async().await.unwrap(), i);
        }
        p.join_async().await.unwrap();
        let drain = multiprocess::spawn(consumer, (q.clone(), 5)).unwrap();
        for i in 0..5 {
            q.put_async(i).await.unwrap();
        }
        assert_eq!(drain.await.unwrap(), [0, 1, 2, 3, 4]);

        let pool = Pool::new(1).unwrap();
        assert_eq!(pool.apply_async(square, 9).unwrap().await.unwrap(), 81);
        let ex = multiprocess::ProcessPoolExecutor::new(1).unwrap();
        assert_eq!(ex.submit(square, 5).unwrap().await.unwrap(), 25);
        ex.shutdown(true, false);
    });
    assert!(
        common::eventually(common::SOON, || common::fd_count() == fds),
        "fds left open by async waits: {} before, now {:?}",
        fds,
        common::fd_list()
    );
    assert_quiescent(server);
}

/// CPU time used by this process so far (user + system), children excluded.
#[allow(unsafe_code)]
fn cpu_time() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage writes a whole `rusage` into the pointer it is given, and we
    // read it only after it returned 0.
    let ru = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()), 0);
        ru.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Things to wait for that will not be ready for a while.
struct Idle {
    here: Connection<u64>,
    there: Connection<u64>,
    /// A thread blocked in `recv` on a copy of `here` (it holds the receive lock).
    receiver: std::thread::JoinHandle<multiprocess::Result<u64>>,
    q: Queue<u64>,
    blocked: std::thread::JoinHandle<multiprocess::Result<u64>>,
    p: Process<u64>,
    pool: Pool,
}

const IDLE: Duration = Duration::from_millis(1000);

impl Idle {
    fn new() -> Idle {
        let (here, there) = multiprocess::pipe::<u64>().unwrap();
        let copy = here.try_clone().unwrap();
        let receiver = std::thread::spawn(move || copy.recv_timeout(LONG));
        let q = Queue::<u64>::new().unwrap();
        let q2 = q.clone();
        // Holds the consumer lock while it sleeps on the empty queue.
        let blocked = std::thread::spawn(move || q2.get_timeout(LONG));
        // Daemonic: if the test fails, it is terminated at exit, not joined.
        let mut p = Process::new(sleep_ms, 60_000).daemon(true);
        p.start().unwrap();
        let pool = Pool::new(1).unwrap();
        assert_eq!(pool.apply(square, 2).unwrap(), 4); // started and idle
        Idle {
            here,
            there,
            receiver,
            q,
            blocked,
            p,
            pool,
        }
    }

    /// Polls every wait until `timer` ends, asserting they stay pending; the CPU time
    /// used meanwhile.
    async fn wait(&self, timer: impl Future<Output = ()>) -> Duration {
        let r = self.pool.apply_async(common::nap, 60_000).unwrap();
        let before = cpu_time();
        let mut a = std::pin::pin!(self.here.recv_async());
        let mut b = std::pin::pin!(self.q.get_async());
        let mut c = std::pin::pin!(self.p.join_async());
        let mut d = std::pin::pin!(std::future::IntoFuture::into_future(r));
        let mut timer = std::pin::pin!(timer);
        std::future::poll_fn(|cx| {
            assert!(a.as_mut().poll(cx).is_pending());
            assert!(b.as_mut().poll(cx).is_pending());
            assert!(c.as_mut().poll(cx).is_pending());
            assert!(d.as_mut().poll(cx).is_pending());
            timer.as_mut().poll(cx)
        })
        .await;
        cpu_time() - before
    }

    fn end(self) {
        self.p.kill().unwrap();
        self.p.join_timeout(LONG).unwrap();
        self.q.put(1).unwrap();
        assert_eq!(self.blocked.join().unwrap().unwrap(), 1);
        self.there.send(&2).unwrap();
        assert_eq!(self.receiver.join().unwrap().unwrap(), 2);
        drop(self.pool);
    }
}

/// A timer for the hand-written executor: one helper thread wakes the task.
async fn thread_timer(d: Duration) {
    let until = Instant::now() + d;
    let mut started = false;
    std::future::poll_fn(move |cx| {
        if Instant::now() >= until {
            return Poll::Ready(());
        }
        if !started {
            started = true;
            let w = cx.waker().clone();
            std::thread::spawn(move || {
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
                w.wake();
            });
        }
        Poll::Pending
    })
    .await
}

/// Waits that have nothing to wait for yet cost no CPU: not a spin, not a poll loop
/// (a spinning wait would use about as much CPU as the time waited). Under tokio and
/// under the hand-written executor, with threads blocked inside the queue's consumer
/// lock and the connection's receive lock beside the async getter and receiver.
#[test]
fn idle_waits_use_no_cpu() {
    let _g = serial();
    let server = Some(fork_server_pid());

    let idle = Idle::new();
    let used = runtime().block_on(async { idle.wait(tokio::time::sleep(IDLE)).await });
    idle.end();
    assert!(
        used < IDLE / 5,
        "{used:?} of CPU in {IDLE:?} of idle waits under tokio"
    );

    let idle = Idle::new();
    let used = block_on(idle.wait(thread_timer(IDLE)));
    idle.end();
    assert!(
        used < IDLE / 5,
        "{used:?} of CPU in {IDLE:?} of idle waits, no tokio"
    );
    assert_quiescent(server);
}

/// Every future of the async twins can move to another thread (`tokio::spawn`).
#[test]
fn the_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    use multiprocess::asyncio::*;
    send_sync::<Recv<'static, String>>();
    send_sync::<RecvBytes<'static, String>>();
    send_sync::<JoinFuture<Vec<u8>>>();
    send_sync::<ProcessJoin>();
    send_sync::<AsyncResultFuture<u64>>();
    send_sync::<QueueGet<'static, String>>();
    send_sync::<QueuePut<'static, String>>();
    send_sync::<QueueJoin<'static>>();
}

/// An async receiver on a pipe is present in the pipe's lane only during each try, so
/// small messages reach it over the socket or, when one of its tries is under way,
/// through the lane (and a message published just as a try leaves is announced by a
/// nudge, see `lane.rs`). Many messages, each await bounded: none is missed.
#[test]
fn tokio_recv_async_never_misses_a_message_in_the_lane() {
    let _g = common::shared();
    runtime().block_on(async {
        let (here, there) = multiprocess::pipe::<u32>().unwrap();
        const N: u32 = 20_000;
        let sender = std::thread::spawn(move || {
            for i in 0..N {
                there.send(&i).unwrap();
                if i % 8 == 0 {
                    std::thread::yield_now();
                }
            }
        });
        for i in 0..N {
            let got = tokio::time::timeout(Duration::from_secs(5), here.recv_async())
                .await
                .unwrap_or_else(|_| panic!("message {i} was in the pipe, unannounced"));
            assert_eq!(got.unwrap(), i);
        }
        tokio::task::spawn_blocking(move || sender.join().unwrap())
            .await
            .unwrap();
    });
}
