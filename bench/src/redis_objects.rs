//! The Redis object rows (`redis_dict_op`, `redis_lock_pair`, `redis_queue_op`):
//! manager objects of [`Manager::redis`] beside redis-py doing the same commands on
//! the same `redis-server`.
//!
//! Both sides run against a private `redis-server` this harness starts
//! ([`RedisServer`], a Unix socket in a temporary folder). The Python side is
//! `bench/python/redis_py_bench.py`, run with the interpreter of a venv made here on
//! first use (`python3 -m venv target/redis-py-venv` and `pip install redis`; set
//! `MP_BENCH_REDIS_PYTHON` to an interpreter that has redis-py to skip that). If
//! anything of that fails, the Python figures are missing (`-`), never the run.
//!
//! One op is what the Python side does per op: a dict set plus a get (as
//! `manager_dict_op`), a lock acquire plus release, a queue put plus get.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use multiprocess::Manager;
use multiprocess::broker::RedisServer;

use crate::measure::{median_of, us_per};
use crate::params::{self, REPS};

/// The rows of this file, in BENCH.md's order.
pub const ROWS: &[&str] = &["redis_dict_op", "redis_lock_pair", "redis_queue_op"];

/// Path of the redis-py script, fixed at compile time.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python/redis_py_bench.py");

/// Environment variable naming a Python that already has redis-py.
pub const PYTHON_ENV: &str = "MP_BENCH_REDIS_PYTHON";

/// Is `name` one of these rows?
pub fn is_row(name: &str) -> bool {
    ROWS.contains(&name)
}

/// Runs row `name` with this crate; `None` if it is not ours or Redis is missing.
pub fn run(name: &str, quick: bool) -> Option<f64> {
    let server = RedisServer::start().ok()?;
    let m = Manager::redis(server.url(), b"bench key").ok()?;
    match name {
        "redis_dict_op" => {
            let d = m.dict::<u64, u64>().ok()?;
            d.insert(0, 0).ok()?; // warm-up: connects this thread, loads the scripts
            let n = params::MANAGER_DICT_KEYS.get(quick);
            Some(median_of(REPS.get(quick), || {
                let t = Instant::now();
                for k in 0..n as u64 {
                    d.insert(k, k).expect("insert");
                }
                for k in 0..n as u64 {
                    assert_eq!(d.get(&k).expect("get"), Some(k), "bad value");
                }
                us_per(t.elapsed(), n)
            }))
        }
        "redis_lock_pair" => {
            let lock = m.lock().ok()?;
            lock.acquire().ok()?.release().ok()?;
            let n = params::MANAGER_QUEUE_OPS.get(quick);
            Some(median_of(REPS.get(quick), || {
                let t = Instant::now();
                for _ in 0..n {
                    lock.acquire().expect("acquire").release().expect("release");
                }
                us_per(t.elapsed(), n)
            }))
        }
        "redis_queue_op" => {
            let q = m.queue::<u64>().ok()?;
            q.put(0).ok()?;
            q.get().ok()?;
            let n = params::MANAGER_QUEUE_OPS.get(quick);
            Some(median_of(REPS.get(quick), || {
                let t = Instant::now();
                for i in 0..n as u64 {
                    q.put(i).expect("put");
                    assert_eq!(q.get().expect("get"), i, "bad value");
                }
                us_per(t.elapsed(), n)
            }))
        }
        _ => None,
    }
}

/// A Python with redis-py: `MP_BENCH_REDIS_PYTHON`, or a venv made on first use.
fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var(PYTHON_ENV) {
        return Some(p.into());
    }
    let venv = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/redis-py-venv"
    ));
    let py = venv.join("bin/python");
    let ready = |py: &PathBuf| {
        Command::new(py)
            .args(["-c", "import redis"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready(&py) {
        return Some(py);
    }
    eprintln!(
        "[python] making {} with redis-py (once) ...",
        venv.display()
    );
    let made = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(&py)
            .args(["-m", "pip", "install", "--quiet", "redis"])
            .status()
            .is_ok_and(|s| s.success());
    if made && ready(&py) {
        Some(py)
    } else {
        eprintln!("warning: no Python with redis-py; the redis rows' python figures are missing");
        None
    }
}

/// The redis-py figures of `names` (those of these rows), on a fresh redis-server.
pub fn python_side(names: &[&str], quick: bool) -> HashMap<String, f64> {
    let names: Vec<&str> = names.iter().copied().filter(|n| is_row(n)).collect();
    if names.is_empty() {
        return HashMap::new();
    }
    let Some(py) = python() else {
        return HashMap::new();
    };
    let server = match RedisServer::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("warning: no redis-server for the python side: {e}");
            return HashMap::new();
        }
    };
    let socket = server.url().trim_start_matches("redis+unix://").to_string();
    let mut cmd = Command::new(&py);
    cmd.arg(SCRIPT)
        .arg("--socket")
        .arg(&socket)
        .arg("--only")
        .arg(names.join(","));
    if quick {
        cmd.arg("--quick");
    }
    cmd.stdin(Stdio::null()).stderr(Stdio::inherit());
    match cmd.output() {
        Ok(out) => crate::python::parse(&String::from_utf8_lossy(&out.stdout)),
        Err(e) => {
            eprintln!("warning: cannot run {} {SCRIPT}: {e}", py.display());
            HashMap::new()
        }
    }
}
