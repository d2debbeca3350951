//! The cluster rows: the pool through a private `redis-server` with two worker hosts
//! of one process each, beside Celery (its Redis broker and result backend,
//! `--pool prefork -c 2`) on a `redis-server` of its own.
//!
//! Worker hosts are this binary started as child processes in worker mode
//! ([`multiprocess::pool::cluster::Worker`]), so they die with the harness. Celery
//! runs in a virtual environment the harness makes once with `pip` under
//! `target/celery-venv` (`python3 -m venv`, then `pip install celery redis packaging`); if
//! that fails (no network), the Python figures are missing. Without `redis-server`
//! every figure of these rows is missing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use multiprocess::broker::RedisServer;
use multiprocess::pool::cluster::Worker;
use multiprocess::{Pool, Process};

use crate::measure::{median_of, ms, us_per};
use crate::params::{REPS, Size};

/// The rows of this module.
pub const NAMES: &[&str] = &["cluster_map_100k", "cluster_apply_async_per_task"];

/// `cluster_map_100k`: items per `map`.
pub const MAP_ITEMS: Size = Size {
    full: 100_000,
    quick: 100_000,
};
/// `cluster_apply_async_per_task`: tasks per repetition.
pub const TASKS: Size = Size {
    full: 2_000,
    quick: 500,
};

const KEY: &[u8] = b"bench cluster key";

/// Whether `name` is a cluster row (its Python side is Celery, not baseline.py).
pub fn is_cluster(name: &str) -> bool {
    NAMES.contains(&name)
}

fn square(x: u64) -> u64 {
    x.wrapping_mul(x)
}

fn identity(x: u64) -> u64 {
    x
}

fn host((url, name): (String, String)) {
    if let Err(e) = Worker::new(&url, KEY).processes(1).name(&name).run() {
        eprintln!("[ours]   worker host {name}: {e}");
    }
}

/// A private Redis, two worker hosts and a pool on them.
struct Cluster {
    pool: Pool,
    hosts: Vec<Process<(String, String)>>,
    _server: RedisServer,
}

impl Cluster {
    fn start() -> Option<Cluster> {
        let server = match RedisServer::start_if_installed() {
            Ok(Some(s)) => s,
            Ok(None) => {
                eprintln!("[ours]   redis-server is not installed: cluster rows missing");
                return None;
            }
            Err(e) => {
                eprintln!("[ours]   redis-server: {e}");
                return None;
            }
        };
        let mut hosts: Vec<_> = (1..=2)
            .map(|i| Process::new(host, (server.url().to_string(), format!("bench-{i}"))))
            .collect();
        for h in &mut hosts {
            h.start().ok()?;
        }
        let pool = Pool::builder().redis(server.url()).key(KEY).build().ok()?;
        let until = Instant::now() + Duration::from_secs(60);
        while pool.cluster_stats().is_none_or(|s| s.hosts.len() < 2) {
            if Instant::now() > until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Warm-up: both hosts' local workers started and used.
        pool.map(square, 0..10_000u64).ok()?;
        Some(Cluster {
            pool,
            hosts,
            _server: server,
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.pool.terminate();
        for h in &mut self.hosts {
            let _ = h.kill();
            let _ = h.join();
        }
    }
}

/// ms per `map(square, 0..100_000)` over the two hosts (default chunk size).
pub fn map_100k(quick: bool) -> Option<f64> {
    let c = Cluster::start()?;
    let n = MAP_ITEMS.get(quick) as u64;
    let v = median_of(REPS.get(quick), || {
        let t = Instant::now();
        let v = c.pool.map(square, 0..n).expect("cluster map");
        let dt = t.elapsed();
        assert_eq!(v.len() as u64, n);
        ms(dt)
    });
    eprintln!("[ours]   cluster map: {:.0} items/s", n as f64 / (v / 1e3));
    Some(v)
}

/// us per task: `apply_async` of identity N times, then every `get`.
pub fn apply_async_per_task(quick: bool) -> Option<f64> {
    let c = Cluster::start()?;
    let n = TASKS.get(quick);
    Some(median_of(REPS.get(quick), || {
        let t = Instant::now();
        let rs: Vec<_> = (0..n as u64)
            .map(|i| c.pool.apply_async(identity, i).expect("apply_async"))
            .collect();
        let out: Vec<u64> = rs.iter().map(|r| r.get().expect("get")).collect();
        let dt = t.elapsed();
        assert_eq!(out[n - 1], n as u64 - 1);
        us_per(dt, n)
    }))
}

/// The virtual environment with Celery, made on first use; `None` if that failed.
fn celery_python() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/celery-venv"
    ));
    let py = dir.join("bin/python");
    let ok = |py: &PathBuf| {
        Command::new(py)
            .args(["-c", "import celery, redis, kombu.transport.redis"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ok(&py) {
        return Some(py);
    }
    eprintln!("[python] making {} with Celery (pip) ...", dir.display());
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(dir.join("bin/pip"))
            .args(["install", "-q", "celery", "redis", "packaging"])
            .status()
            .is_ok_and(|s| s.success());
    if made && ok(&py) {
        Some(py)
    } else {
        eprintln!("[python] no Celery (pip failed?): cluster python figures missing");
        None
    }
}

/// Celery's figures for the cluster rows among `names`, on a `redis-server` of its
/// own (`bench/python/celery_bench.py`).
pub fn celery(names: &[&str], quick: bool) -> HashMap<String, f64> {
    let names: Vec<&str> = names.iter().copied().filter(|n| is_cluster(n)).collect();
    if names.is_empty() {
        return HashMap::new();
    }
    let Some(py) = celery_python() else {
        return HashMap::new();
    };
    let Ok(Some(server)) = RedisServer::start_if_installed() else {
        return HashMap::new();
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/celery_bench.py");
    let mut cmd = Command::new(py);
    cmd.arg(script)
        .arg("--socket")
        .arg(server.dir().join("redis.sock"))
        .arg("--only")
        .arg(names.join(","))
        .arg("--map-items")
        .arg(MAP_ITEMS.get(quick).to_string())
        .arg("--tasks")
        .arg(TASKS.get(quick).to_string())
        .arg("--reps")
        .arg(REPS.get(quick).to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    match cmd.output() {
        Ok(out) => crate::python::parse(&String::from_utf8_lossy(&out.stdout)),
        Err(e) => {
            eprintln!("[python] celery_bench.py: {e}");
            HashMap::new()
        }
    }
}
