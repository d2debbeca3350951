//! Worker hosts for the cluster tests: the test binary re-executed in worker mode
//! (`MULTIPROCESS_WORKER`), each in a process group of its own, so that a whole host
//! (the host process and its local pool) can be killed, frozen or resumed at once,
//! and checked gone afterwards. Redis is inspected with `redis-cli` (it comes with
//! `redis-server`).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use multiprocess::broker::RedisServer;

use super::{GRACE, eventually};

/// The cluster key of the tests.
pub(crate) const KEY: &str = "cluster tests key";

/// A worker host: a process group led by the re-executed test binary.
#[derive(Debug)]
pub(crate) struct Host {
    child: Option<Child>,
    pub(crate) name: String,
    pub(crate) pid: u32,
}

/// Options of a host beyond its name.
#[derive(Debug, Clone)]
pub(crate) struct HostOpts {
    pub(crate) processes: usize,
    pub(crate) lease_ms: u64,
    pub(crate) key: String,
    /// Simulates another build (`__MULTIPROCESS_BUILD_SALT`).
    pub(crate) salt: Option<String>,
    pub(crate) max_deliveries: u32,
}

impl Default for HostOpts {
    fn default() -> Self {
        HostOpts {
            processes: 1,
            lease_ms: 2500,
            key: KEY.into(),
            salt: None,
            max_deliveries: 3,
        }
    }
}

impl Host {
    pub(crate) fn start(server: &RedisServer, name: &str, o: HostOpts) -> Host {
        let exe = std::env::current_exe().expect("the test binary");
        let mut cmd = Command::new(exe);
        cmd.args([
            "__multiprocess_child_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env("MULTIPROCESS_WORKER", server.url())
        .env("MULTIPROCESS_KEY", &o.key)
        .env("MULTIPROCESS_HOST", name)
        .env("MULTIPROCESS_PROCESSES", o.processes.to_string())
        .env("MULTIPROCESS_LEASE_MS", o.lease_ms.to_string())
        .env("MULTIPROCESS_MAX_DELIVERIES", o.max_deliveries.to_string())
        .env_remove("__MULTIPROCESS_BUILD_SALT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .process_group(0);
        if let Some(s) = &o.salt {
            cmd.env("__MULTIPROCESS_BUILD_SALT", s);
        }
        let child = cmd.spawn().expect("start a worker host");
        Host {
            pid: child.id(),
            child: Some(child),
            name: name.to_string(),
        }
    }

    #[allow(unsafe_code)]
    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) has no memory effects; the group is the one we started (its
        // leader is our child, not reaped yet, so the id is not reused).
        unsafe {
            libc::kill(-(self.pid as libc::pid_t), sig);
        }
    }

    /// SIGKILL to the whole host (host process and local pool), reaped, and checked:
    /// no process of its group is left.
    pub(crate) fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        self.signal(libc::SIGKILL);
        let _ = child.wait();
        let pgid = self.pid;
        assert!(
            eventually(GRACE, || group_members(pgid).is_empty()),
            "host {} left processes: {:?}",
            self.name,
            group_members(pgid)
        );
    }

    /// SIGSTOP to the host process only: a frozen host (its local workers go on).
    pub(crate) fn freeze(&self) {
        super::kill(self.pid, libc::SIGSTOP);
    }

    pub(crate) fn thaw(&self) {
        super::kill(self.pid, libc::SIGCONT);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.signal(libc::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// Processes whose process group is `pgid` (zombies included).
pub(crate) fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(at) = s.rfind(')') else { continue };
        // after "pid (comm)": state ppid pgrp ...
        let pgrp = s[at + 1..]
            .split_whitespace()
            .nth(2)
            .and_then(|x| x.parse().ok());
        if pgrp == Some(pgid) {
            out.push(pid);
        }
    }
    out
}

/// `redis-cli` against the test's server; its output, trimmed.
pub(crate) fn cli(server: &RedisServer, args: &[&str]) -> String {
    let sock = server.dir().join("redis.sock");
    let out = Command::new("redis-cli")
        .arg("-s")
        .arg(&sock)
        .args(args)
        .output()
        .expect("redis-cli (it comes with redis-server)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Waits until `n` hosts report themselves.
pub(crate) fn wait_hosts(pool: &multiprocess::Pool, n: usize) {
    assert!(
        eventually(Duration::from_secs(30), || pool
            .cluster_stats()
            .is_some_and(|s| s.hosts.len() >= n)),
        "{n} worker hosts did not come up: {:?}",
        pool.cluster_stats()
    );
}

/// A cluster pool on `server` with the tests' key.
pub(crate) fn pool(server: &RedisServer) -> multiprocess::Pool {
    multiprocess::Pool::builder()
        .redis(server.url())
        .key(KEY.as_bytes())
        .build()
        .expect("a cluster pool")
}
