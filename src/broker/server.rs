//! A private `redis-server` for tests, examples, the tour and the benchmark harness.
//!
//! It listens only on a Unix socket in a fresh temporary folder (no TCP port: nothing
//! else on the machine can reach it, and two test runs never collide), keeps no data
//! on disk (`--save '' --appendonly no`), and is killed, reaped and its folder removed
//! when the value is dropped. It is started with `PR_SET_PDEATHSIG` so that it does not
//! outlive its owner, even after a SIGKILL: the signal fires when the *thread* that
//! started it exits, so start it on a thread that lives as long as the server is
//! needed (the main thread, or the test's own thread).

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};

/// How long a fresh server may take to answer.
const READY: Duration = Duration::from_secs(10);

/// A `redis-server` of this process's own, on a Unix socket in a temporary folder.
///
/// # Examples
///
/// ```no_run
/// use multiprocess::broker::RedisServer;
/// let server = RedisServer::start()?; // needs `redis-server` on PATH
/// println!("{}", server.url()); // redis+unix:///tmp/multiprocess-redis-.../redis.sock
/// # Ok::<(), multiprocess::Error>(())
/// ```
#[derive(Debug)]
pub struct RedisServer {
    dir: PathBuf,
    url: String,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server and waits until it answers.
    ///
    /// Fails with [`ErrorKind::NotFound`] when `redis-server` is not installed (the
    /// message says how to install it).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let server = multiprocess::broker::RedisServer::start()?;
    /// assert!(server.url().starts_with("redis+unix://"));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn start() -> Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "multiprocess-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(|e| Error::io("creating the Redis folder", e))?;
        let url = format!("redis+unix://{}", dir.join("redis.sock").display());
        let mut server = RedisServer {
            dir,
            url,
            child: None,
        };
        server.restart()?;
        Ok(server)
    }

    /// As [`start`](Self::start), but `Ok(None)` when `redis-server` is not installed.
    ///
    /// # Examples
    ///
    /// ```
    /// match multiprocess::broker::RedisServer::start_if_installed()? {
    ///     Some(server) => println!("Redis at {}", server.url()),
    ///     None => println!("install redis-server to run this part"),
    /// }
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn start_if_installed() -> Result<Option<Self>> {
        match Self::start() {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The URL clients connect to: `redis+unix:///…/redis.sock`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let server = multiprocess::broker::RedisServer::start()?;
    /// assert!(server.url().ends_with("/redis.sock"));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's folder (its socket and log).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let server = multiprocess::broker::RedisServer::start()?;
    /// assert!(server.dir().join("redis.sock").exists());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's process id, while it runs.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let server = multiprocess::broker::RedisServer::start()?;
    /// assert!(server.pid().is_some());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL) and reaps it: what a crashed broker looks like to its
    /// clients. Its folder stays, so [`restart`](Self::restart) serves the same URL.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let mut server = multiprocess::broker::RedisServer::start()?;
    /// server.kill();
    /// assert!(server.pid().is_none());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.dir.join("redis.sock"));
    }

    /// Starts the server again on the same URL (empty: it keeps nothing on disk), and
    /// waits until it answers.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let mut server = multiprocess::broker::RedisServer::start()?;
    /// server.kill();
    /// server.restart()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        let sock = self.dir.join("redis.sock");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", "0", "--unixsocket"])
            .arg(&sock)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--daemonize", "no", "--dir"])
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        crate::sys::process::kill_with_this_thread(&mut cmd);
        let child = cmd.spawn().map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::new(
                    ErrorKind::NotFound,
                    "redis-server is not installed (Debian/Ubuntu: `apt-get install \
                     redis-server`; macOS: `brew install redis`)",
                )
            } else {
                Error::io("starting redis-server", e)
            }
        })?;
        self.child = Some(child);
        let until = Instant::now() + READY;
        loop {
            if sock.exists()
                && let Ok(mut c) = super::connect(&self.url, Duration::from_secs(1))
                && ::redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("redis-server exited at start ({status}): {log}"),
                ));
            }
            if Instant::now() >= until {
                self.kill();
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("redis-server did not answer within {READY:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
