//! A worker host: takes tasks from the stream, runs them in a local process pool,
//! sends each result to its submitter and deletes the entry.
//!
//! Three threads, each with its own connection:
//!
//! * the reader (the caller's thread): `XREADGROUP` while the host has room (two
//!   tasks per local process), opens each entry's seal, checks the build, and hands
//!   the task to the local pool, whose completion goes to the reporter;
//! * the reporter: batches finished tasks and, per batch, in one `MULTI`: `RPUSH` the
//!   sealed results to each submitter's list (with a TTL), `XACK` and `XDEL` the
//!   entries. A result is therefore pushed exactly when its entry leaves the stream;
//! * the heartbeat: every quarter lease (at most a second), `SET mp:hb:<host> PX lease`, the host's
//!   report for `stats()`, and the claim script (below).
//!
//! # Leases, and why not `XAUTOCLAIM` on idle time
//!
//! Redis does not reset an entry's idle time while a consumer works on it, so a
//! reclaim on "idle for longer than N" runs every task longer than N twice (Celery's
//! visibility-timeout pitfall). Here a host's *heartbeat* is its lease: the claim
//! script (one Lua call, so two hosts never claim the same entry) lists the consumers
//! with pending entries (`XPENDING` summary), and only for those whose heartbeat key
//! has expired it `XCLAIM`s their entries to the caller, which bumps each entry's
//! delivery count. A task is run at most `max_deliveries` times (default 3): past
//! that the host answers with an error saying its hosts kept vanishing, instead of
//! handing a host-killing task around forever. A dead consumer whose entries are all
//! claimed is removed from the group (`XGROUP DELCONSUMER`). `XCLAIM` on 7.0 drops
//! pending ids whose entries were deleted, so a task answered meanwhile is not run
//! again.
//!
//! A frozen host (`SIGSTOP`) loses its tasks the same way; when it resumes, it sends
//! their results too, and the submitter drops them as duplicates by task id.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use ::redis::Value;

use super::client::{hostname, prepare};
use super::wire::{
    self, D_RESULT, D_STATS, D_TASK, FORGED, GROUP, HB, HOSTS, HostReport, RESULTS_TTL,
    ResultBatch, TASKS, TaskEntry, WireResult,
};
use crate::broker::{self, Seal};
use crate::error::{Error, ErrorKind, Result};
use crate::pool::engine::{Config, Engine, Finish, Mailbox, Task, TaskHeader};
use crate::process::default_context;
use crate::wire::codec;

/// Claims the pending entries of consumers whose heartbeat expired (see the module
/// docs). KEYS: stream, hosts hash. ARGV: group, me, heartbeat prefix, max per
/// consumer, `1` at the host's start. Returns `{id, deliveries, fields}` per claimed
/// entry. Hosts without a heartbeat and without pending entries are forgotten (report
/// and consumer). At its start a host also takes back its *own* pending entries: a
/// host restarted under the same name (`MULTIPROCESS_HOST`) within its lease would
/// otherwise leave them pending for ever, its heartbeat keeping others away.
const CLAIM: &str = r"
local s = redis.call('XPENDING', KEYS[1], ARGV[1])
local out = {}
local busy = {}
if type(s[4]) == 'table' then
  for _, c in ipairs(s[4]) do busy[c[1]] = true end
end
for _, name in ipairs(redis.call('HKEYS', KEYS[2])) do
  if not busy[name] and redis.call('EXISTS', ARGV[3] .. name) == 0 then
    redis.call('HDEL', KEYS[2], name)
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
  end
end
if type(s[4]) ~= 'table' then return out end
for _, c in ipairs(s[4]) do
  local name = c[1]
  local me = name == ARGV[2]
  if (me and ARGV[5] == '1') or (not me and redis.call('EXISTS', ARGV[3] .. name) == 0) then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', tonumber(ARGV[4]), name)
    for _, e in ipairs(p) do
      local got = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, e[1])
      if got[1] then
        table.insert(out, {got[1][1], e[4] + 1, got[1][2]})
      end
    end
    if not me and #p < tonumber(ARGV[4]) then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
      redis.call('HDEL', KEYS[2], name)
    end
  end
end
return out
";

/// A worker host of a cluster pool: the other end of
/// [`PoolBuilder::redis`](crate::PoolBuilder::redis).
///
/// It runs the tasks it takes in a local [`Pool`](crate::Pool) of its own, so a task
/// that panics, aborts, segfaults or runs past its timeout fails as it would locally
/// and the host goes on. Run the *same binary* as the submitters (tasks name their
/// build; another build refuses them) with the same cluster key.
///
/// Most programs need no code for it: [`init`](crate::init) turns any binary into a
/// worker host when `MULTIPROCESS_WORKER` is set (see [`Worker::from_env`]).
///
/// # Examples
///
/// ```no_run
/// use multiprocess::pool::cluster::Worker;
/// multiprocess::init();
/// Worker::new("redis://10.0.0.5/", b"cluster secret")
///     .processes(16)
///     .run()?; // until the process is killed
/// # Ok::<(), multiprocess::Error>(())
/// ```
#[derive(Clone)]
pub struct Worker {
    url: String,
    key: Vec<u8>,
    processes: Option<usize>,
    name: Option<String>,
    lease: Duration,
    max_deliveries: u32,
    io_timeout: Duration,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("url", &self.url)
            .field("processes", &self.processes)
            .field("name", &self.name)
            .field("lease", &self.lease)
            .field("max_deliveries", &self.max_deliveries)
            .finish_non_exhaustive()
    }
}

/// A finished task (or a dropped entry), on its way to the reporter.
struct Report {
    /// The stream entry to acknowledge and delete.
    entry: String,
    /// When the host took it.
    taken: Instant,
    /// The submitter and its answer; `None` for an entry dropped unanswered.
    answer: Option<(String, WireResult)>,
    /// The entry's seal did not open.
    forged: bool,
}

/// What the host's threads share.
struct Shared {
    name: String,
    seal: Seal,
    processes: usize,
    /// Average time a task spends on this host (ns; exponential average, 0 before
    /// the first): short tasks get a deeper prefetch.
    service_ns: AtomicU64,
    inflight: Mutex<usize>,
    room: Condvar,
    claimed: Mutex<Vec<(String, u32, Vec<Value>)>>,
    tasks: AtomicU64,
    forged: AtomicU64,
    refused: AtomicU64,
}

impl Shared {
    /// How many entries the host may hold: two per local process, so that an idle
    /// host finds tasks left in the stream (a `map`'s chunks spread over the hosts);
    /// while tasks are short (under 2 ms on average), 32 more, so that a stream of tiny
    /// calls is not one Redis round trip per task.
    fn cap(&self) -> usize {
        let base = 2 * self.processes;
        match self.service_ns.load(SeqCst) {
            0 => base,
            ns if ns < 2_000_000 => base + 32,
            _ => base,
        }
    }

    /// Records one task's time on this host.
    fn served(&self, d: Duration) {
        let ns = d.as_nanos().clamp(1, u64::MAX as u128) as u64;
        let old = self.service_ns.load(SeqCst);
        let new = if old == 0 { ns } else { (old * 7 + ns) / 8 };
        self.service_ns.store(new.max(1), SeqCst);
    }
}

/// A local task's completion: its answer goes to the reporter.
struct HostDone {
    origin: String,
    entry: String,
    id: u64,
    deliveries: u32,
    taken: Instant,
    tx: mpsc::Sender<Report>,
}

impl Finish for HostDone {
    fn finish(self: Box<Self>, raw: Result<(&[u8], Vec<std::os::fd::OwnedFd>)>) {
        let out = match raw {
            Ok((b, fds)) if fds.is_empty() => Ok(b.to_vec()),
            Ok(_) => Err((
                wire::kind_code(ErrorKind::Unsupported),
                "its result holds handles (pipes, queues, shared memory), which cannot \
                 cross to another host"
                    .to_string(),
            )),
            Err(e) => Err(wire::wire_error(&e)),
        };
        let _ = self.tx.send(Report {
            entry: self.entry,
            taken: self.taken,
            answer: Some((
                self.origin,
                WireResult {
                    id: self.id,
                    deliveries: self.deliveries,
                    out,
                },
            )),
            forged: false,
        });
    }
}

impl Worker {
    /// A host for the cluster at `url` (`redis://host:port/db`,
    /// `redis+unix:///path.sock`) with the cluster key `key`.
    ///
    /// # Examples
    ///
    /// See [`Worker`].
    pub fn new(url: &str, key: &[u8]) -> Worker {
        Worker {
            url: url.to_string(),
            key: key.to_vec(),
            processes: None,
            name: None,
            lease: Duration::from_secs(30),
            max_deliveries: 3,
            io_timeout: broker::IO_TIMEOUT,
        }
    }

    /// Local worker processes (default: [`cpu_count`](crate::cpu_count)).
    ///
    /// # Examples
    ///
    /// See [`Worker`].
    pub fn processes(mut self, n: usize) -> Worker {
        self.processes = Some(n);
        self
    }

    /// The host's name in the group and in `stats()` (default: `hostname-pid`).
    ///
    /// # Examples
    ///
    /// ```
    /// let w = multiprocess::pool::cluster::Worker::new("redis://127.0.0.1/", b"k").name("gpu-1");
    /// assert!(format!("{w:?}").contains("gpu-1"));
    /// ```
    pub fn name(mut self, name: &str) -> Worker {
        self.name = Some(name.to_string());
        self
    }

    /// How long the host's heartbeat lives (default 30 s): a host silent for that long
    /// loses its unfinished tasks to the other hosts. It is refreshed every quarter
    /// lease (at most every second).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let w = multiprocess::pool::cluster::Worker::new("redis://127.0.0.1/", b"k")
    ///     .lease(Duration::from_secs(10));
    /// assert!(format!("{w:?}").contains("10s"));
    /// ```
    pub fn lease(mut self, d: Duration) -> Worker {
        self.lease = d.max(Duration::from_millis(200));
        self
    }

    /// How many times a task may be delivered (default 3): a task whose hosts kept
    /// vanishing while running it fails after that many with
    /// [`ErrorKind::ProcessDied`].
    ///
    /// # Examples
    ///
    /// ```
    /// let w = multiprocess::pool::cluster::Worker::new("redis://127.0.0.1/", b"k").max_deliveries(5);
    /// assert!(format!("{w:?}").contains("max_deliveries: 5"));
    /// ```
    pub fn max_deliveries(mut self, n: u32) -> Worker {
        self.max_deliveries = n.max(1);
        self
    }

    /// The host that the environment asks for, if any: `MULTIPROCESS_WORKER` (the
    /// Redis URL), the key in `MULTIPROCESS_KEY` or in the file named by
    /// `MULTIPROCESS_KEY_FILE` (one trailing newline ignored), and optionally
    /// `MULTIPROCESS_PROCESSES` (or a `--processes N` argument),
    /// `MULTIPROCESS_HOST` (the name), `MULTIPROCESS_LEASE_MS` and
    /// `MULTIPROCESS_MAX_DELIVERIES`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] when the URL is set but the key is missing or a
    /// number does not parse.
    ///
    /// # Examples
    ///
    /// ```
    /// // Without MULTIPROCESS_WORKER in the environment, no host is asked for.
    /// assert!(multiprocess::pool::cluster::Worker::from_env()?.is_none());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn from_env() -> Result<Option<Worker>> {
        let Ok(url) = std::env::var("MULTIPROCESS_WORKER") else {
            return Ok(None);
        };
        let bad = |what: &str| Error::new(ErrorKind::InvalidInput, what.to_string());
        let key = if let Some(k) = std::env::var_os("MULTIPROCESS_KEY") {
            k.into_encoded_bytes()
        } else if let Some(path) = std::env::var_os("MULTIPROCESS_KEY_FILE") {
            let mut k =
                std::fs::read(&path).map_err(|e| Error::io("reading MULTIPROCESS_KEY_FILE", e))?;
            if k.last() == Some(&b'\n') {
                k.pop();
            }
            k
        } else {
            return Err(bad(
                "MULTIPROCESS_WORKER is set but the cluster key is not: set MULTIPROCESS_KEY \
                 or MULTIPROCESS_KEY_FILE",
            ));
        };
        let mut w = Worker::new(&url, &key);
        let args: Vec<String> = std::env::args().collect();
        let from_args = args
            .iter()
            .position(|a| a == "--processes")
            .and_then(|i| args.get(i + 1).cloned());
        if let Some(n) = std::env::var("MULTIPROCESS_PROCESSES").ok().or(from_args) {
            w = w.processes(
                n.parse()
                    .map_err(|_| bad(&format!("not a process count: {n:?}")))?,
            );
        }
        if let Ok(name) = std::env::var("MULTIPROCESS_HOST") {
            w = w.name(&name);
        }
        if let Ok(ms) = std::env::var("MULTIPROCESS_LEASE_MS") {
            let ms: u64 = ms
                .parse()
                .map_err(|_| bad(&format!("not a lease in ms: {ms:?}")))?;
            w = w.lease(Duration::from_millis(ms));
        }
        if let Ok(n) = std::env::var("MULTIPROCESS_MAX_DELIVERIES") {
            w = w.max_deliveries(
                n.parse()
                    .map_err(|_| bad(&format!("not a delivery count: {n:?}")))?,
            );
        }
        Ok(Some(w))
    }

    /// Runs the host until the process is killed.
    ///
    /// # Errors
    ///
    /// Only at the start: an empty key ([`ErrorKind::InvalidInput`]), Redis
    /// unreachable ([`ErrorKind::Disconnected`]), the local pool failing to start. A
    /// Redis lost later is waited for (the host reconnects and goes on).
    ///
    /// # Examples
    ///
    /// See [`Worker`].
    pub fn run(self) -> Result<()> {
        if self.key.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a worker host needs the cluster key",
            ));
        }
        let processes = self.processes.unwrap_or_else(crate::cpu_count).max(1);
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
        let mut conn = broker::connect(&self.url, self.io_timeout)?;
        prepare(&mut conn)?;
        let engine = Engine::start(Config {
            processes,
            ctx: default_context(),
            init: None,
            max_tasks: None,
            name: "ClusterWorker",
        })?;
        let shared = Arc::new(Shared {
            name,
            seal: Seal::new(&self.key),
            processes,
            service_ns: AtomicU64::new(0),
            inflight: Mutex::new(0),
            room: Condvar::new(),
            claimed: Mutex::new(Vec::new()),
            tasks: AtomicU64::new(0),
            forged: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel::<Report>();
        // The first heartbeat before the first read: a host is never seen without one.
        let mut hb = broker::connect(&self.url, self.io_timeout)?;
        heartbeat(&self, &shared, &engine.mailbox, processes, &mut hb, true)?;
        {
            let (me, sh) = (self.clone(), shared.clone());
            std::thread::Builder::new()
                .name("cluster-reporter".into())
                .spawn(move || reporter(&me, &sh, rx))
                .map_err(|e| Error::io("starting the reporter thread", e))?;
        }
        {
            let (me, sh, mb) = (self.clone(), shared.clone(), engine.mailbox.clone());
            std::thread::Builder::new()
                .name("cluster-heartbeat".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep((me.lease / 4).min(Duration::from_secs(1)));
                        if heartbeat(&me, &sh, &mb, processes, &mut hb, false).is_err()
                            && let Ok(c) = broker::connect(&me.url, me.io_timeout)
                        {
                            hb = c;
                        }
                    }
                })
                .map_err(|e| Error::io("starting the heartbeat thread", e))?;
        }
        self.read_loop(&shared, &engine.mailbox, conn, &tx);
        Ok(())
    }

    /// Takes entries while there is room, forever.
    fn read_loop(
        &self,
        sh: &Shared,
        mailbox: &Mailbox,
        mut conn: broker::RedisConn,
        tx: &mpsc::Sender<Report>,
    ) {
        loop {
            let claimed =
                std::mem::take(&mut *sh.claimed.lock().unwrap_or_else(|e| e.into_inner()));
            for (id, deliveries, fields) in claimed {
                self.handle(sh, mailbox, tx, id, deliveries, &fields);
            }
            let room = {
                let mut n = sh.inflight.lock().unwrap_or_else(|e| e.into_inner());
                if *n >= sh.cap() {
                    n = sh
                        .room
                        .wait_timeout(n, Duration::from_millis(200))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                sh.cap().saturating_sub(*n)
            };
            if room == 0 {
                continue;
            }
            let got = ::redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(&sh.name)
                .arg("COUNT")
                .arg(room)
                .arg("BLOCK")
                .arg(200)
                .arg("STREAMS")
                .arg(TASKS)
                .arg(">")
                .query::<Value>(&mut conn);
            match got {
                Ok(v) => {
                    for (id, fields) in stream_entries(&v) {
                        self.handle(sh, mailbox, tx, id, 1, fields);
                    }
                }
                Err(e) if e.code() == Some("NOGROUP") => {
                    // Redis restarted empty: make the stream and group again.
                    let _ = prepare(&mut conn);
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(200));
                    if let Ok(mut c) = broker::connect(&self.url, self.io_timeout) {
                        let _ = prepare(&mut c);
                        conn = c;
                    }
                }
            }
        }
    }

    /// One entry: open, check, run (or answer why not).
    fn handle(
        &self,
        sh: &Shared,
        mailbox: &Mailbox,
        tx: &mpsc::Sender<Report>,
        entry: String,
        deliveries: u32,
        fields: &[Value],
    ) {
        *sh.inflight.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        let taken = Instant::now();
        let sealed = field(fields, b"t");
        let Some(body) = sealed.and_then(|t| sh.seal.open(D_TASK, t)) else {
            sh.forged.fetch_add(1, SeqCst);
            let _ = tx.send(Report {
                entry,
                taken,
                answer: None,
                forged: true,
            });
            return;
        };
        let Ok(t) = codec::decode::<TaskEntry>(body, Vec::new()) else {
            // Sealed by a key holder but not a task of this version: drop it.
            sh.refused.fetch_add(1, SeqCst);
            let _ = tx.send(Report {
                entry,
                taken,
                answer: None,
                forged: false,
            });
            return;
        };
        let answer = |out: std::result::Result<Vec<u8>, (u8, String)>| Report {
            entry: entry.clone(),
            taken,
            answer: Some((
                t.origin.clone(),
                WireResult {
                    id: t.id,
                    deliveries,
                    out,
                },
            )),
            forged: false,
        };
        let mine = wire::fingerprint();
        if t.build != mine {
            sh.refused.fetch_add(1, SeqCst);
            let msg = format!(
                "{}: this host runs build {mine} but the task comes from build {}: \
                 refused (run the same binary on every host)",
                t.what, t.build
            );
            let _ = tx.send(answer(Err((wire::kind_code(ErrorKind::Unsupported), msg))));
            return;
        }
        if deliveries > self.max_deliveries {
            sh.refused.fetch_add(1, SeqCst);
            let msg = format!(
                "{}: the hosts running it vanished {} times; not retried again \
                 (max_deliveries = {})",
                t.what,
                deliveries - 1,
                self.max_deliveries
            );
            let _ = tx.send(answer(Err((wire::kind_code(ErrorKind::ProcessDied), msg))));
            return;
        }
        let mut bytes = vec![0u8; TaskHeader::LEN];
        bytes.extend_from_slice(&t.items);
        // The code offsets are run by the local pool's workers. They are sound only in
        // this very build: the entry's seal shows a holder of the cluster key made it,
        // and its build fingerprint equals ours (checked above), so the offsets were
        // made by `code_offset` in this binary, from `run_chunk::<A, R>` and an
        // `fn(A) -> R` (see `wire::code`).
        let task = Task {
            entry: t.entry as usize,
            func: t.func as usize,
            bytes,
            fds: Vec::new(),
            what: t.what.clone(),
            timeout: t.timeout_ms.map(Duration::from_millis),
            phase: None,
            chunk: t.chunk,
            done: Box::new(HostDone {
                origin: t.origin.clone(),
                entry: entry.clone(),
                id: t.id,
                deliveries,
                taken,
                tx: tx.clone(),
            }),
        };
        // A refused submit hands the task back to us only through `Err`: the task's
        // `done` was dropped unrun, so answer here.
        if let Err(e) = mailbox.submit(vec![task]) {
            let _ = tx.send(answer(Err(wire::wire_error(&e))));
        }
    }
}

/// One heartbeat: the lease key, the report, and the claim of dead hosts' tasks.
fn heartbeat(
    w: &Worker,
    sh: &Shared,
    mailbox: &Mailbox,
    processes: usize,
    c: &mut broker::RedisConn,
    start: bool,
) -> Result<()> {
    let report = HostReport {
        processes: processes as u32,
        build: wire::fingerprint().to_string(),
        tasks: sh.tasks.load(SeqCst),
        forged: sh.forged.load(SeqCst),
        refused: sh.refused.load(SeqCst),
        workers: mailbox
            .stats()
            .into_iter()
            .map(|s| {
                let nanos = |d: Duration| d.as_nanos().min(u64::MAX as u128) as u64;
                (
                    s.name,
                    s.pid,
                    s.tasks_done,
                    nanos(s.busy),
                    s.task,
                    s.since.map(|t| nanos(t.elapsed())),
                )
            })
            .collect(),
    };
    let enc = codec::encode(&report)?;
    ::redis::pipe()
        .cmd("SET")
        .arg(format!("{HB}{}", sh.name))
        .arg(processes)
        .arg("PX")
        .arg(w.lease.as_millis() as u64)
        .ignore()
        .cmd("HSET")
        .arg(HOSTS)
        .arg(&sh.name)
        .arg(sh.seal.seal(D_STATS, &enc.bytes))
        .ignore()
        .query::<()>(c)
        .map_err(|e| broker::redis_error("heartbeat", e))?;
    let claimed: Value = ::redis::Script::new(CLAIM)
        .key(TASKS)
        .key(HOSTS)
        .arg(GROUP)
        .arg(&sh.name)
        .arg(HB)
        .arg(100)
        .arg(if start { "1" } else { "0" })
        .invoke(c)
        .map_err(|e| broker::redis_error("claiming a vanished host's tasks", e))?;
    if let Value::Array(items) = claimed {
        let mut out = Vec::new();
        for it in items {
            if let Value::Array(parts) = it
                && let [id, n, Value::Array(fields)] = &parts[..]
                && let (Some(id), Value::Int(n)) = (text(id), n)
            {
                out.push((id, (*n).clamp(1, u32::MAX as i64) as u32, fields.clone()));
            }
        }
        if !out.is_empty() {
            sh.claimed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(out);
        }
    }
    Ok(())
}

/// Sends finished tasks in batches: results, acknowledgement and deletion together.
fn reporter(w: &Worker, sh: &Shared, rx: mpsc::Receiver<Report>) {
    let mut conn: Option<broker::RedisConn> = None;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let mut by_origin: Vec<(String, Vec<WireResult>)> = Vec::new();
        let mut entries = Vec::with_capacity(batch.len());
        let mut forged = 0u64;
        let mut answered = 0u64;
        let now = Instant::now();
        for r in batch.drain(..) {
            if r.answer.is_some() {
                sh.served(now.saturating_duration_since(r.taken));
            }
            entries.push(r.entry);
            forged += r.forged as u64;
            if let Some((origin, res)) = r.answer {
                answered += 1;
                match by_origin.iter_mut().find(|(o, _)| *o == origin) {
                    Some((_, v)) => v.push(res),
                    None => by_origin.push((origin, vec![res])),
                }
            }
        }
        let mut sealed = Vec::new();
        for (origin, results) in by_origin {
            let rb = ResultBatch {
                host: sh.name.clone(),
                results,
            };
            if let Ok(enc) = codec::encode(&rb) {
                sealed.push((
                    wire::results_key(&origin),
                    sh.seal.seal(D_RESULT, &enc.bytes),
                ));
            }
        }
        let build = |ack: bool| {
            let mut p = ::redis::pipe();
            p.atomic();
            for (key, s) in &sealed {
                p.cmd("RPUSH").arg(key).arg(&s[..]).ignore();
                p.cmd("EXPIRE").arg(key).arg(RESULTS_TTL).ignore();
            }
            if forged > 0 {
                p.cmd("INCRBY").arg(FORGED).arg(forged).ignore();
            }
            if ack {
                p.cmd("XACK").arg(TASKS).arg(GROUP).arg(&entries).ignore();
            }
            p.cmd("XDEL").arg(TASKS).arg(&entries).ignore();
            p
        };
        let mut ack = true;
        let mut tries = 0u32;
        loop {
            if conn.is_none() {
                conn = broker::connect(&w.url, w.io_timeout).ok();
            }
            let Some(c) = conn.as_mut() else {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            };
            match build(ack).query::<()>(c) {
                Ok(()) => break,
                Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
                    conn = None;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(_) => {
                    // A server error (the group is gone: Redis restarted empty): the
                    // results still go; without the acknowledgement, then give up.
                    tries += 1;
                    if !ack || tries > 2 {
                        break;
                    }
                    ack = false;
                }
            }
        }
        sh.tasks.fetch_add(answered, SeqCst);
        let mut n = sh.inflight.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(entries.len());
        sh.room.notify_all();
    }
}

/// The entries of an `XREADGROUP` reply: `[[stream, [[id, [f, v, ...]], ...]]]`.
fn stream_entries(v: &Value) -> Vec<(String, &[Value])> {
    let mut out = Vec::new();
    let Value::Array(streams) = v else {
        return out;
    };
    for s in streams {
        let Value::Array(pair) = s else { continue };
        let Some(Value::Array(entries)) = pair.get(1) else {
            continue;
        };
        for e in entries {
            if let Value::Array(ef) = e
                && let Some(id) = ef.first().and_then(text)
            {
                let fields: &[Value] = match ef.get(1) {
                    Some(Value::Array(f)) => f,
                    _ => &[],
                };
                out.push((id, fields));
            }
        }
    }
    out
}

/// The value of field `name` in a flat `[f, v, f, v, ...]` list.
fn field<'v>(fields: &'v [Value], name: &[u8]) -> Option<&'v [u8]> {
    fields
        .chunks_exact(2)
        .find_map(|kv| match (&kv[0], &kv[1]) {
            (Value::BulkString(k), Value::BulkString(v)) if k == name => Some(&v[..]),
            _ => None,
        })
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// Worker-host mode of [`init`](crate::init): when `MULTIPROCESS_WORKER` is set, run
/// the host and exit (it returns only if the host could not start: the error goes to
/// stderr and the exit code is 1).
pub(crate) fn init_from_env() {
    match Worker::from_env() {
        Ok(None) => {}
        Ok(Some(w)) => {
            let e = w.run().err();
            if let Some(e) = e {
                eprintln!("multiprocess worker host: {e}");
                std::process::exit(1);
            }
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("multiprocess worker host: {e}");
            std::process::exit(1);
        }
    }
}
