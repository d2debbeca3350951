//! The cluster pool (feature `redis`): a real `redis-server` per test (a Unix socket
//! in a temporary folder) and worker hosts that are this test binary re-executed in
//! worker mode, each a process group of its own, killed and checked gone at the end.
//! Every wait is bounded.

#![cfg(feature = "redis")]

multiprocess::test_support!();

#[macro_use]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use common::cluster::{Host, HostOpts, KEY, cli, pool, wait_hosts};
use common::{BOUND, LONG, eventually, shared, watchdog};
use multiprocess::broker::RedisServer;
use multiprocess::futures::{ProcessPoolExecutor, ReturnWhen, as_completed, wait};
use multiprocess::{AsyncResult, ErrorKind, Options, Pool};

fn square(x: u64) -> u64 {
    x * x
}

/// Takes about 20 ms.
fn slow_double(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(20));
    2 * x
}

fn panics(_: u32) -> u32 {
    panic!("task panics on purpose")
}

fn aborts(_: u32) -> u32 {
    std::process::abort()
}

fn stuck(_: u32) -> u32 {
    std::thread::sleep(Duration::from_secs(600));
    0
}

/// Kills the whole worker host it runs on (its process group: the tests start each
/// host as a group of its own), as a host lost to a power cut.
#[allow(unsafe_code)]
fn kills_its_host(_: u32) -> u32 {
    assert!(
        std::env::var_os("MULTIPROCESS_WORKER").is_some(),
        "only on a host"
    );
    // SAFETY: kill(2) has no memory effects; group 0 is this host's own group.
    unsafe {
        libc::kill(0, libc::SIGKILL);
    }
    0
}

/// Creates the file at `path` (it must never run from a forged entry).
fn touch(path: String) -> bool {
    std::fs::write(path, b"ran").is_ok()
}

fn server() -> RedisServer {
    RedisServer::start().expect("redis-server (Debian: apt-get install redis-server)")
}

/// `used_memory` from `INFO memory`.
fn used_memory(server: &RedisServer) -> u64 {
    let info = cli(server, &["INFO", "memory"]);
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no used_memory in {info}"))
}

fn opts() -> HostOpts {
    HostOpts::default()
}

#[test]
fn map_of_100k_over_two_hosts_equals_local_and_leaves_redis_empty() {
    let _g = shared();
    // No watchdog: 100,000 single tasks take longer than it allows in a debug build
    // on a loaded machine; every wait below is bounded instead.
    {
        let server = server();
        let mut a = Host::start(&server, "a", opts());
        let mut b = Host::start(&server, "b", opts());
        let pool = pool(&server);
        wait_hosts(&pool, 2);
        let local: Vec<u64> = (0..100_000u64).map(square).collect();
        let r = pool.map_async(square, 0..100_000u64).unwrap();
        assert_eq!(r.get_timeout(LONG).unwrap(), local);
        // 100,000 tasks (one item each): every entry and result is deleted once
        // delivered.
        let before = used_memory(&server);
        let v = pool
            .map_async_with(square, 0..100_000u64, Options::new().chunk_size(1))
            .unwrap()
            .get_timeout(Duration::from_secs(100))
            .unwrap();
        assert_eq!(v[99_999], 99_999 * 99_999);
        let st = pool.stats();
        assert_eq!(st.len(), 2, "{st:?}");
        assert!(st.iter().any(|s| s.name.starts_with("a/")), "{st:?}");
        let done: u64 = st.iter().map(|s| s.tasks_done).sum();
        assert!(done > 0, "{st:?}");
        assert!(eventually(BOUND, || cli(&server, &["XLEN", "mp:tasks"]) == "0"));
        let pending = cli(&server, &["XPENDING", "mp:tasks", "hosts"]);
        assert!(pending.starts_with('0'), "{pending}");
        assert_eq!(cli(&server, &["KEYS", "mp:r:*"]), "");
        // The stream, the hosts hash and two heartbeats: nothing that grows.
        let keys: usize = cli(&server, &["DBSIZE"]).parse().unwrap();
        assert!(keys <= 4, "{}", cli(&server, &["KEYS", "*"]));
        // 100,000 entries kept would be megabytes (each over 100 bytes).
        let after = used_memory(&server);
        assert!(
            after < before + 4_000_000,
            "Redis grew from {before} to {after} bytes"
        );
        pool.close();
        pool.join().unwrap();
        a.kill();
        b.kill();
    }
}

/// Starts a `map` of `slow_double` over `0..n` in chunks of 5 and waits (bounded) until
/// host `host` (any host with `None`) has answered two tasks, so it holds more.
fn slow_map_answered_by(pool: &Pool, n: u64, host: Option<&str>) -> AsyncResult<Vec<u64>> {
    let r = pool
        .map_async_with(slow_double, 0..n, Options::new().chunk_size(5))
        .unwrap();
    assert!(eventually(LONG, || {
        pool.cluster_stats().is_some_and(|s| {
            s.hosts
                .iter()
                .any(|h| host.is_none_or(|name| h.name == name) && h.tasks >= 2)
        })
    }));
    r
}

#[test]
fn a_host_killed_mid_map_loses_its_tasks_to_the_other() {
    let _g = shared();
    watchdog(|| {
        let server = server();
        let mut a = Host::start(&server, "a", opts());
        let mut b = Host::start(&server, "b", opts());
        let pool = pool(&server);
        wait_hosts(&pool, 2);
        // Once host a has answered something (so it holds more), kill it whole.
        let r = slow_map_answered_by(&pool, 300, Some("a"));
        a.kill();
        let v = r.get_timeout(LONG).unwrap();
        assert_eq!(v, (0..300u64).map(|x| 2 * x).collect::<Vec<_>>());
        let s = pool.cluster_stats().unwrap();
        assert!(s.retried >= 1, "{s:?}");
        assert_eq!(s.hosts.len(), 1, "{s:?}");
        b.kill();
    });
}

#[test]
fn a_host_restarted_under_its_name_within_its_lease_takes_its_tasks_back() {
    let _g = shared();
    watchdog(|| {
        let server = server();
        // A lease far longer than the test: nobody else could claim the tasks.
        let o = HostOpts {
            lease_ms: 600_000,
            ..opts()
        };
        let mut a = Host::start(&server, "a", o.clone());
        let pool = pool(&server);
        wait_hosts(&pool, 1);
        let r = slow_map_answered_by(&pool, 100, None);
        a.kill();
        let mut again = Host::start(&server, "a", o);
        let v = r.get_timeout(LONG).unwrap();
        assert_eq!(v, (0..100u64).map(|x| 2 * x).collect::<Vec<_>>());
        assert!(pool.cluster_stats().unwrap().retried >= 1);
        again.kill();
    });
}

#[test]
fn a_frozen_host_loses_its_tasks_and_its_late_results_are_dropped() {
    let _g = shared();
    watchdog(|| {
        let server = server();
        let mut a = Host::start(&server, "a", opts());
        let mut b = Host::start(&server, "b", opts());
        let pool = pool(&server);
        wait_hosts(&pool, 2);
        let r = slow_map_answered_by(&pool, 300, Some("a"));
        a.freeze();
        let v = r.get_timeout(LONG).unwrap();
        assert_eq!(v, (0..300u64).map(|x| 2 * x).collect::<Vec<_>>());
        assert!(pool.cluster_stats().unwrap().retried >= 1);
        a.thaw();
        // Its local workers finished what they held; those answers come late.
        assert!(
            eventually(LONG, || pool.cluster_stats().unwrap().duplicates >= 1),
            "{:?}",
            pool.cluster_stats()
        );
        a.kill();
        b.kill();
    });
}

#[test]
fn a_task_that_keeps_killing_its_hosts_fails_after_the_delivery_limit() {
    let _g = shared();
    watchdog(|| {
        let server = server();
        let o = HostOpts {
            max_deliveries: 2,
            ..opts()
        };
        let mut hosts: Vec<Host> = ["a", "b", "c"]
            .iter()
            .map(|n| Host::start(&server, n, o.clone()))
            .collect();
        let pool = pool(&server);
        wait_hosts(&pool, 3);
        let e = pool
            .apply_async(kills_its_host, 0)
            .unwrap()
            .get_timeout(LONG)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ProcessDied, "{e}");
        assert!(e.to_string().contains("vanished 2 times"), "{e}");
        // Two hosts died running it; the third refused it and goes on.
        assert_eq!(pool.apply(square, 7).unwrap(), 49);
        for h in &mut hosts {
            h.kill();
        }
    });
}

#[test]
fn panicking_aborting_and_stuck_tasks_fail_with_their_kinds_and_hosts_go_on() {
    let _g = shared();
    watchdog(|| {
        let server = server();
        let mut a = Host::start(&server, "a", opts());
        let pool = pool(&server);
        wait_hosts(&pool, 1);
        let e = pool.apply(panics, 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked, "{e}");
        assert!(e.to_string().contains("on purpose"), "{e}");
        let e = pool.apply(aborts, 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ProcessDied, "{e}");
        assert!(e.to_string().contains("on host a"), "{e}");
        let r = pool
            .apply_async_with(stuck, 1, Options::new().timeout(Duration::from_secs(1)))
            .unwrap();
        let e = r.get_timeout(LONG).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert_eq!(pool.apply(square, 12).unwrap(), 144);
        a.kill();
    });
}

#[test]
fn a_host_of_another_build_refuses_and_says_so() {
    let _g = shared();
    watchdog(|| {
        let server = server();
        let mut o = opts();
        o.salt = Some("another build".into());
        let mut a = Host::start(&server, "other-build", o);
        let pool = pool(&server);
        wait_hosts(&pool, 1);
        let e = pool.apply(square, 3).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        let msg = e.to_string();
        assert!(msg.contains("this host runs build"), "{msg}");
        assert!(msg.contains("(on host other-build)"), "{msg}");
        let builds = pool.cluster_stats().unwrap().hosts[0].build.clone();
        assert!(msg.contains(&builds), "{msg}");
        assert!(msg.contains("the task comes from build"), "{msg}");
        a.kill();
    });
}

#[test]
fn forged_entries_run_nothing_and_are_counted() {
    let _g = shared();
    watchdog(|| {
        let server = server();
        let mut a = Host::start(&server, "a", opts());
        let good = pool(&server);
        wait_hosts(&good, 1);
        let dir = std::env::temp_dir().join(format!("mp-forged-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        // A real task, sealed with the wrong key...
        let bad = Pool::builder()
            .redis(server.url())
            .key(b"not the cluster key")
            .build()
            .unwrap();
        let r = bad.apply_async(touch, dir.display().to_string()).unwrap();
        // ... and garbage written straight into the stream.
        cli(&server, &["XADD", "mp:tasks", "*", "t", "garbage"]);
        cli(&server, &["XADD", "mp:tasks", "*", "x", "y"]);
        assert!(
            eventually(BOUND, || good.cluster_stats().unwrap().forged_tasks >= 3),
            "{:?}",
            good.cluster_stats()
        );
        assert_eq!(good.apply(square, 5).unwrap(), 25);
        assert!(!dir.exists(), "a forged task ran");
        assert!(!r.ready());
        bad.terminate();
        assert_eq!(r.get().unwrap_err().kind(), ErrorKind::Cancelled);
        // The host's own report (refreshed with its heartbeat) counts them too.
        assert!(
            eventually(BOUND, || good.cluster_stats().unwrap().hosts[0].forged == 3),
            "{:?}",
            good.cluster_stats()
        );
        a.kill();
    });
}

#[test]
fn redis_killed_mid_map_fails_every_waiter_within_the_bound_then_reconnects() {
    let _g = shared();
    watchdog(|| {
        let mut server = server();
        let mut a = Host::start(&server, "a", opts());
        let pool = pool(&server);
        wait_hosts(&pool, 1);
        let m = pool
            .map_async_with(slow_double, 0..2_000u64, Options::new().chunk_size(5))
            .unwrap();
        let singles: Vec<_> = (0..5)
            .map(|i| pool.apply_async(slow_double, i).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        server.kill();
        let t = Instant::now();
        let e = m.get_timeout(LONG).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
        for s in &singles {
            let e = s.get_timeout(LONG).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
        }
        assert!(t.elapsed() < BOUND, "waiters took {:?}", t.elapsed());
        // Redis back (empty): the host and the pool reconnect for new work.
        server.restart().unwrap();
        let r = pool.apply_async(square, 4);
        let r = match r {
            Ok(r) => r,
            Err(_) => pool.apply_async(square, 4).unwrap(),
        };
        assert_eq!(r.get_timeout(LONG).unwrap(), 16);
        a.kill();
    });
}

#[test]
fn an_unreachable_redis_is_a_clear_error_at_build() {
    let _g = shared();
    let dir = std::env::temp_dir().join(format!("mp-noredis-{}", std::process::id()));
    let url = format!("redis+unix://{}", dir.join("none.sock").display());
    let e = Pool::builder()
        .redis(&url)
        .key(KEY.as_bytes())
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
    let e = Pool::builder().redis(&url).build().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

#[test]
fn imap_over_an_endless_input_pulls_with_bounded_look_ahead() {
    let _g = shared();
    watchdog(|| {
        let server = server();
        let mut a = Host::start(&server, "a", opts());
        let pool = pool(&server);
        wait_hosts(&pool, 1);
        let pulled = Arc::new(AtomicUsize::new(0));
        let p = pulled.clone();
        let endless = (0u64..).inspect(move |_| {
            p.fetch_add(1, SeqCst);
        });
        let v: Vec<u64> = pool
            .imap(square, endless)
            .take(50)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(v, (0..50u64).map(square).collect::<Vec<_>>());
        let n = pulled.load(SeqCst);
        assert!((50..10_000).contains(&n), "pulled {n} items for 50");
        let mut u: Vec<u64> = pool
            .imap_unordered(square, 0..20u64)
            .collect::<Result<_, _>>()
            .unwrap();
        u.sort();
        assert_eq!(u, (0..20u64).map(square).collect::<Vec<_>>());
        assert_eq!(pool.starmap(square, [2u64, 3]).unwrap(), [4, 9]);
        a.kill();
    });
}

#[test]
fn two_submitters_share_the_hosts() {
    let _g = shared();
    watchdog(|| {
        let server = server();
        let mut a = Host::start(&server, "a", opts());
        let mut b = Host::start(&server, "b", opts());
        let url = server.url().to_string();
        let first = pool(&server);
        wait_hosts(&first, 2);
        let t = std::thread::spawn(move || {
            let second = Pool::builder()
                .redis(&url)
                .key(KEY.as_bytes())
                .build()
                .unwrap();
            second
                .map_with(square, 0..5_000u64, Options::new().chunk_size(100))
                .unwrap()
        });
        let mine = first
            .map_with(slow_double, 0..100u64, Options::new().chunk_size(2))
            .unwrap();
        let theirs = t.join().unwrap();
        assert_eq!(mine, (0..100u64).map(|x| 2 * x).collect::<Vec<_>>());
        assert_eq!(theirs, (0..5_000u64).map(square).collect::<Vec<_>>());
        a.kill();
        b.kill();
    });
}

#[test]
fn the_executor_runs_futures_on_the_hosts() {
    let _g = shared();
    watchdog(|| {
        let server = server();
        let mut a = Host::start(&server, "a", opts());
        let ex = ProcessPoolExecutor::builder()
            .redis(server.url())
            .key(KEY.as_bytes())
            .build()
            .unwrap();
        let probe = pool(&server);
        wait_hosts(&probe, 1);
        let fs: Vec<_> = (0..10u64).map(|i| ex.submit(square, i).unwrap()).collect();
        let done = wait(&fs, Some(LONG), ReturnWhen::AllCompleted);
        assert_eq!(done.done.len(), 10);
        let mut all: Vec<u64> = as_completed(&fs, Some(LONG))
            .map(|f| f.unwrap().result().unwrap())
            .collect();
        all.sort();
        assert_eq!(all, (0..10u64).map(square).collect::<Vec<_>>());
        let v: Vec<u64> = ex
            .map(square, 0..100u64)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(v[99], 99 * 99);
        ex.shutdown(true, false);
        a.kill();
    });
}
