//! The submitter's side: tasks out to the stream, results in from this submitter's
//! list, each result matched to its waiting caller by task id exactly once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::wire::{
    self, D_RESULT, D_STATS, D_TASK, GROUP, HB, HOSTS, HostReport, ResultBatch, TASKS, TaskEntry,
};
use crate::broker::{self, Seal};
use crate::error::{Error, ErrorKind, Result};
use crate::pool::engine::{Finish, Task, TaskHeader, WorkerStats};
use crate::wire::codec;

/// How long the results thread blocks in one `BLPOP`, in seconds.
const BLOCK_SECS: u64 = 1;

/// What a cluster pool needs to start.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) url: String,
    pub(crate) key: Vec<u8>,
    /// Bound on each Redis step, and on how long a lost Redis is waited for before
    /// every pending call fails with `Disconnected`.
    pub(crate) io_timeout: Duration,
    /// Worker count for default chunk sizes (else: what the live hosts say).
    pub(crate) processes: Option<usize>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.url)
            .field("processes", &self.processes)
            .finish_non_exhaustive()
    }
}

/// A task sent and not yet answered.
struct Waiting {
    /// Its stream entry id, once `XADD` answered.
    entry: Option<String>,
    /// The `run_id` of the Redis it was sent to: if that Redis restarts, the task is
    /// lost with it.
    run: Arc<str>,
    done: Box<dyn Finish>,
}

/// A task encoded and sealed, waiting for the sender thread.
struct Outgoing {
    id: u64,
    entry: Vec<u8>,
    done: Box<dyn Finish>,
}

/// Counters of a cluster pool's submitter.
#[derive(Default)]
struct Counters {
    retried: AtomicU64,
    duplicates: AtomicU64,
    forged: AtomicU64,
}

/// What the pool's handles and the results thread share.
pub(crate) struct Client {
    settings: Settings,
    seal: Seal,
    origin: String,
    results: String,
    conn: Mutex<Option<broker::RedisConn>>,
    /// Redis's `run_id` when we connected: a restart lost every queued task.
    run_id: Mutex<Arc<str>>,
    pending: Mutex<HashMap<u64, Waiting>>,
    drained: Condvar,
    outbox: Mutex<Vec<Outgoing>>,
    outbox_cv: Condvar,
    next: AtomicU64,
    /// Tasks accepted and not yet completed (queued, being sent, or waiting).
    unanswered: AtomicU64,
    closed: AtomicBool,
    terminated: AtomicBool,
    counters: Counters,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    procs: Mutex<Option<(Instant, usize)>>,
}

/// A submitter's counters: see [`Pool::cluster_stats`](crate::Pool::cluster_stats).
///
/// # Examples
///
/// ```no_run
/// # fn f(pool: &multiprocess::Pool) {
/// if let Some(s) = pool.cluster_stats() {
///     println!("{} retried, {} duplicates dropped", s.retried, s.duplicates);
/// }
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Results of tasks that ran more than once because their host vanished.
    pub retried: u64,
    /// Results dropped because their task was answered already.
    pub duplicates: u64,
    /// Results dropped because their seal did not open.
    pub forged_results: u64,
    /// Entries any host dropped because their seal did not open.
    pub forged_tasks: u64,
    /// The live hosts.
    pub hosts: Vec<HostStats>,
}

/// One live worker host, as it reports itself.
///
/// # Examples
///
/// ```no_run
/// # fn f(pool: &multiprocess::Pool) {
/// for h in pool.cluster_stats().map(|s| s.hosts).unwrap_or_default() {
///     println!("{}: {} processes, {} tasks", h.name, h.processes, h.tasks);
/// }
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostStats {
    /// The host's name (its consumer name: `hostname-pid` unless set).
    pub name: String,
    /// Its local pool's size.
    pub processes: u32,
    /// Its build fingerprint.
    pub build: String,
    /// Tasks it answered.
    pub tasks: u64,
    /// Entries it dropped: seal did not open.
    pub forged: u64,
    /// Tasks it refused: another build, or delivered too often.
    pub refused: u64,
}

impl Client {
    /// Connects (an unreachable Redis is an error now), makes sure the stream and
    /// group exist, and starts the results thread.
    pub(crate) fn start(settings: Settings) -> Result<Arc<Client>> {
        if settings.key.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a cluster pool needs the cluster key: .redis(url).key(secret)",
            ));
        }
        let mut conn = broker::connect(&settings.url, settings.io_timeout)?;
        prepare(&mut conn)?;
        let run_id = run_id(&mut conn)?;
        let origin = format!(
            "{}-{}-{:016x}",
            hostname(),
            std::process::id(),
            random_u64()
        );
        let client = Arc::new(Client {
            seal: Seal::new(&settings.key),
            results: wire::results_key(&origin),
            origin,
            settings,
            conn: Mutex::new(Some(conn)),
            run_id: Mutex::new(run_id.into()),
            pending: Mutex::new(HashMap::new()),
            drained: Condvar::new(),
            outbox: Mutex::new(Vec::new()),
            outbox_cv: Condvar::new(),
            next: AtomicU64::new(1),
            unanswered: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            terminated: AtomicBool::new(false),
            counters: Counters::default(),
            threads: Mutex::new(Vec::new()),
            procs: Mutex::new(None),
        });
        // The results thread holds only a weak handle, so dropping the pool ends it.
        let weak = Arc::downgrade(&client);
        let rconn = broker::connect(&client.settings.url, client.io_timeout_for_block())?;
        let t = std::thread::Builder::new()
            .name("cluster-results".into())
            .spawn(move || results_loop(weak, rconn))
            .map_err(|e| Error::io("starting the cluster results thread", e))?;
        client
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(t);
        let weak = Arc::downgrade(&client);
        let t = std::thread::Builder::new()
            .name("cluster-sender".into())
            .spawn(move || Client::send_loop(weak))
            .map_err(|e| Error::io("starting the cluster sender thread", e))?;
        client
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(t);
        Ok(client)
    }

    fn io_timeout_for_block(&self) -> Duration {
        self.settings.io_timeout + Duration::from_secs(BLOCK_SECS)
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<u64, Waiting>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses new tasks after `close` or `terminate`.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.terminated.load(SeqCst) {
            return Err(Error::new(
                ErrorKind::BrokenPool,
                "the pool was terminated; it takes no new tasks",
            ));
        }
        if self.closed.load(SeqCst) {
            return Err(Error::state("the pool is closed; it takes no new tasks"));
        }
        Ok(())
    }

    /// Queues `tasks` for the sender thread (one stream entry each), or none and says
    /// why. A failure to send later fails the tasks' own results.
    pub(crate) fn submit(&self, tasks: Vec<Task>) -> Result<()> {
        self.check_open()?;
        let mut entries = Vec::with_capacity(tasks.len());
        let mut ids = Vec::with_capacity(tasks.len());
        let mut waiting = Vec::with_capacity(tasks.len());
        for t in tasks {
            if !t.fds.is_empty() {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "{}: its arguments hold handles (pipes, queues, shared memory), \
                         which cannot cross to another host",
                        t.what
                    ),
                ));
            }
            if let Some(p) = &t.phase
                && !p.start()
            {
                continue; // cancelled while pending: its future is complete already
            }
            let id = self.next.fetch_add(1, SeqCst);
            let entry = TaskEntry {
                build: wire::fingerprint().to_string(),
                origin: self.origin.clone(),
                id,
                entry: t.entry as u64,
                func: t.func as u64,
                timeout_ms: t
                    .timeout
                    .map(|d| d.as_millis().min(u64::MAX as u128) as u64),
                what: t.what.clone(),
                chunk: t.chunk,
                items: t.bytes.get(TaskHeader::LEN..).unwrap_or_default().to_vec(),
            };
            let enc = codec::encode(&entry)?;
            entries.push(self.seal.seal(D_TASK, &enc.bytes));
            ids.push(id);
            waiting.push(t.done);
        }
        if ids.is_empty() {
            return Ok(());
        }
        let mut out = self.outbox.lock().unwrap_or_else(|e| e.into_inner());
        self.unanswered.fetch_add(ids.len() as u64, SeqCst);
        for ((id, entry), done) in ids.into_iter().zip(entries).zip(waiting) {
            out.push(Outgoing { id, entry, done });
        }
        drop(out);
        self.outbox_cv.notify_all();
        Ok(())
    }

    /// The sender thread: whatever accumulated in the outbox while the last
    /// pipeline was in flight goes in the next one, so a burst of `apply_async` is a
    /// few round trips, not one per call.
    fn send_loop(weak: std::sync::Weak<Client>) {
        loop {
            let Some(client) = weak.upgrade() else { return };
            let batch: Vec<Outgoing> = {
                let mut out = client.outbox.lock().unwrap_or_else(|e| e.into_inner());
                if out.is_empty() {
                    if client.terminated.load(SeqCst) {
                        return;
                    }
                    out = client
                        .outbox_cv
                        .wait_timeout(out, Duration::from_millis(100))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                let n = out.len().min(1024);
                out.drain(..n).collect()
            };
            if batch.is_empty() {
                continue;
            }
            if let Err((e, back)) = client.send_now(batch) {
                for done in back {
                    client.answer(done, Err(e.duplicate()));
                }
            }
            client.drained.notify_all();
        }
    }

    /// `XADD`s a batch in one pipeline, registering each task as waiting first (a
    /// fast host may answer before `XADD` returns). On a lost connection, one new
    /// connection is tried (Redis may be back). On failure, the completions come
    /// back with the error.
    #[allow(clippy::type_complexity)]
    fn send_now(
        &self,
        batch: Vec<Outgoing>,
    ) -> std::result::Result<(), (Error, Vec<Box<dyn Finish>>)> {
        let mut pipe = ::redis::pipe();
        let mut ids = Vec::with_capacity(batch.len());
        let mut waiting = Vec::with_capacity(batch.len());
        for o in batch {
            pipe.cmd("XADD")
                .arg(TASKS)
                .arg("*")
                .arg("t")
                .arg(&o.entry[..]);
            ids.push(o.id);
            waiting.push(o.done);
        }
        let mut g = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        for attempt in 0..2 {
            if g.is_none() {
                // Redis may be back: a new connection (and maybe a new server).
                let fresh = broker::connect(&self.settings.url, self.settings.io_timeout).and_then(
                    |mut c| {
                        prepare(&mut c)?;
                        let id = run_id(&mut c)?;
                        Ok((c, id))
                    },
                );
                match fresh {
                    Ok((c, id)) => {
                        self.note_run_id(id);
                        *g = Some(c);
                    }
                    Err(e) => return Err((e, waiting)),
                }
            }
            let run = self
                .run_id
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            {
                let mut p = self.pending();
                for (id, w) in ids.iter().zip(waiting.drain(..)) {
                    p.insert(
                        *id,
                        Waiting {
                            entry: None,
                            run: run.clone(),
                            done: w,
                        },
                    );
                }
            }
            let conn = g.as_mut().expect("connected above");
            match pipe.query::<Vec<String>>(conn) {
                Ok(sids) => {
                    let mut p = self.pending();
                    for (id, sid) in ids.iter().zip(sids) {
                        if let Some(w) = p.get_mut(id) {
                            w.entry = Some(sid);
                        }
                    }
                    return Ok(());
                }
                Err(e) => {
                    *g = None;
                    waiting = {
                        let mut p = self.pending();
                        ids.iter()
                            .filter_map(|id| p.remove(id))
                            .map(|w| w.done)
                            .collect()
                    };
                    let err = broker::redis_error("sending tasks to Redis", e);
                    if attempt == 1 || err.kind() != ErrorKind::Disconnected {
                        return Err((err, waiting));
                    }
                }
            }
        }
        unreachable!("the loop returns")
    }

    /// Records the `run_id` of the Redis we reach now; if it changed, Redis restarted
    /// and lost every task sent before: those fail with `Disconnected`.
    fn note_run_id(&self, id: String) {
        let mut known = self.run_id.lock().unwrap_or_else(|e| e.into_inner());
        if **known == *id {
            return;
        }
        *known = id.into();
        let now = known.clone();
        drop(known);
        let lost: Vec<Waiting> = {
            let mut p = self.pending();
            let ids: Vec<u64> = p
                .iter()
                .filter(|(_, w)| w.run != now)
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| p.remove(id)).collect()
        };
        self.drained.notify_all();
        for w in lost {
            self.answer(
                w.done,
                Err(Error::new(
                    ErrorKind::Disconnected,
                    "Redis restarted and lost the tasks it held",
                )),
            );
        }
    }

    /// Worker processes of the live hosts (cached for a second), or the setting.
    pub(crate) fn processes(&self) -> usize {
        if let Some(n) = self.settings.processes {
            return n;
        }
        let mut cache = self.procs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, n)) = *cache
            && at.elapsed() < Duration::from_secs(1)
        {
            return n;
        }
        let n = self
            .hosts()
            .map(|h| h.iter().map(|h| h.0.processes as usize).sum::<usize>())
            .unwrap_or(0)
            .max(1);
        *cache = Some((Instant::now(), n));
        n
    }

    /// The live hosts' reports.
    fn hosts(&self) -> Result<Vec<(HostStats, Vec<WorkerStats>)>> {
        let mut c = broker::connect(&self.settings.url, self.settings.io_timeout)?;
        let all: Vec<(Vec<u8>, Vec<u8>)> = ::redis::cmd("HGETALL")
            .arg(HOSTS)
            .query(&mut c)
            .map_err(|e| broker::redis_error("reading the hosts", e))?;
        let mut out = Vec::new();
        for (name, sealed) in all {
            let name = String::from_utf8_lossy(&name).into_owned();
            let alive: bool = ::redis::cmd("EXISTS")
                .arg(format!("{HB}{name}"))
                .query(&mut c)
                .map_err(|e| broker::redis_error("reading a heartbeat", e))?;
            if !alive {
                continue;
            }
            let Some(body) = self.seal.open(D_STATS, &sealed) else {
                continue;
            };
            let Ok(r) = codec::decode::<HostReport>(body, Vec::new()) else {
                continue;
            };
            let workers = r
                .workers
                .iter()
                .map(|(n, pid, done, ns, task, age)| WorkerStats {
                    name: format!("{name}/{n}"),
                    pid: *pid,
                    tasks_done: *done,
                    busy: Duration::from_nanos(*ns),
                    // As of the host's last report (each heartbeat).
                    task: task.clone(),
                    since: age.and_then(|a| Instant::now().checked_sub(Duration::from_nanos(a))),
                })
                .collect();
            out.push((
                HostStats {
                    name,
                    processes: r.processes,
                    build: r.build,
                    tasks: r.tasks,
                    forged: r.forged,
                    refused: r.refused,
                },
                workers,
            ));
        }
        out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        Ok(out)
    }

    /// Per-worker counters of every live host (`host/ClusterWorker-1`, ...).
    pub(crate) fn stats(&self) -> Vec<WorkerStats> {
        self.hosts()
            .map(|v| v.into_iter().flat_map(|(_, w)| w).collect())
            .unwrap_or_default()
    }

    /// The submitter's counters and the live hosts.
    pub(crate) fn cluster_stats(&self) -> ClusterStats {
        let forged_tasks = broker::connect(&self.settings.url, self.settings.io_timeout)
            .ok()
            .and_then(|mut c| {
                ::redis::cmd("GET")
                    .arg(wire::FORGED)
                    .query::<Option<u64>>(&mut c)
                    .ok()
            })
            .flatten()
            .unwrap_or(0);
        ClusterStats {
            retried: self.counters.retried.load(SeqCst),
            duplicates: self.counters.duplicates.load(SeqCst),
            forged_results: self.counters.forged.load(SeqCst),
            forged_tasks,
            hosts: self
                .hosts()
                .map(|v| v.into_iter().map(|(h, _)| h).collect())
                .unwrap_or_default(),
        }
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, SeqCst);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(SeqCst) || self.terminated.load(SeqCst)
    }

    /// Waits until every task sent was answered (or failed), then ends the results
    /// thread.
    pub(crate) fn join(&self) {
        let mut p = self.pending();
        while self.unanswered.load(SeqCst) > 0 {
            p = self
                .drained
                .wait_timeout(p, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(p);
        self.stop_thread();
    }

    /// Fails every pending task with `Cancelled`, deletes their entries (best effort:
    /// a host that took one already still answers, into a list that expires), and
    /// ends the results thread.
    pub(crate) fn terminate(&self) {
        self.closed.store(true, SeqCst);
        if self.terminated.swap(true, SeqCst) {
            self.stop_thread();
            return;
        }
        // Threads first: the sender may hold a batch it took from the outbox.
        self.stop_thread();
        let queued: Vec<Outgoing> =
            std::mem::take(&mut *self.outbox.lock().unwrap_or_else(|e| e.into_inner()));
        for o in queued {
            self.answer(
                o.done,
                Err(Error::new(
                    ErrorKind::Cancelled,
                    "the pool was terminated before it finished",
                )),
            );
        }
        let waiting: Vec<Waiting> = self.pending().drain().map(|(_, w)| w).collect();
        let sids: Vec<&str> = waiting.iter().filter_map(|w| w.entry.as_deref()).collect();
        if !sids.is_empty() {
            let mut g = self.conn.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = g.as_mut() {
                let _ = ::redis::cmd("XDEL").arg(TASKS).arg(&sids).query::<i64>(c);
            }
        }
        for w in waiting {
            self.answer(
                w.done,
                Err(Error::new(
                    ErrorKind::Cancelled,
                    "the pool was terminated before it finished",
                )),
            );
        }
    }

    fn stop_thread(&self) {
        self.terminated.store(true, SeqCst);
        self.outbox_cv.notify_all();
        // Wake the results thread from its BLPOP at once: an empty batch, sealed like
        // any result (so it is not counted as forged).
        if let Ok(enc) = codec::encode(&ResultBatch {
            host: String::new(),
            results: Vec::new(),
        }) {
            let wake = self.seal.seal(D_RESULT, &enc.bytes);
            let mut g = self.conn.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = g.as_mut() {
                let _ = ::redis::pipe()
                    .cmd("RPUSH")
                    .arg(&self.results)
                    .arg(&wake[..])
                    .ignore()
                    .cmd("EXPIRE")
                    .arg(&self.results)
                    .arg(wire::RESULTS_TTL)
                    .ignore()
                    .query::<()>(c);
            }
        }
        let ts: Vec<_> =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        let mut joined = false;
        for t in ts {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
                joined = true;
            }
        }
        // Nobody reads our list any more: remove it (and the wake-up, if unread).
        if joined {
            let mut g = self.conn.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = g.as_mut() {
                let _ = ::redis::cmd("DEL").arg(&self.results).query::<i64>(c);
            }
        }
    }

    /// Completes one task (exactly once per accepted task).
    fn answer(&self, done: Box<dyn Finish>, r: Result<(&[u8], Vec<std::os::fd::OwnedFd>)>) {
        done.finish(r);
        self.unanswered.fetch_sub(1, SeqCst);
        self.drained.notify_all();
    }

    /// Fails every pending task with `e` (Redis lost).
    fn fail_all(&self, e: &Error) {
        let waiting: Vec<Waiting> = self.pending().drain().map(|(_, w)| w).collect();
        self.drained.notify_all();
        for w in waiting {
            self.answer(w.done, Err(e.duplicate()));
        }
    }

    /// One element of our results list: opened, decoded, each result handed to its
    /// caller unless answered already.
    fn deliver(&self, sealed: &[u8]) {
        let Some(body) = self.seal.open(D_RESULT, sealed) else {
            self.counters.forged.fetch_add(1, SeqCst);
            return;
        };
        let Ok(batch) = codec::decode::<ResultBatch>(body, Vec::new()) else {
            self.counters.forged.fetch_add(1, SeqCst);
            return;
        };
        for r in batch.results {
            let Some(w) = self.pending().remove(&r.id) else {
                self.counters.duplicates.fetch_add(1, SeqCst);
                continue;
            };
            if r.deliveries > 1 {
                self.counters.retried.fetch_add(1, SeqCst);
            }
            match r.out {
                Ok(bytes) => self.answer(w.done, Ok((&bytes, Vec::new()))),
                Err((kind, msg)) => self.answer(
                    w.done,
                    Err(Error::new(
                        wire::kind_of(kind),
                        format!("{msg} (on host {})", batch.host),
                    )),
                ),
            }
        }
        self.drained.notify_all();
    }
}

/// Creates the stream and the hosts' group if missing (`BUSYGROUP` is fine).
pub(crate) fn prepare(c: &mut broker::RedisConn) -> Result<()> {
    let r = ::redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(TASKS)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query::<()>(c);
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(broker::redis_error("creating the task stream", e)),
    }
}

/// The server's `run_id` (changes when it restarts).
fn run_id(c: &mut broker::RedisConn) -> Result<String> {
    let info: String = ::redis::cmd("INFO")
        .arg("server")
        .query(c)
        .map_err(|e| broker::redis_error("asking Redis for its run id", e))?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .unwrap_or("")
        .trim()
        .to_string())
}

/// The machine's name, for names of submitters and hosts.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

pub(crate) fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

/// The results thread: `BLPOP` on our list, then drain it; on a lost connection,
/// reconnect for up to the I/O bound, else fail every pending call (`Disconnected`).
fn results_loop(weak: std::sync::Weak<Client>, mut conn: broker::RedisConn) {
    loop {
        let Some(client) = weak.upgrade() else { return };
        if client.terminated.load(SeqCst) {
            return;
        }
        let got = ::redis::cmd("BLPOP")
            .arg(&client.results)
            .arg(BLOCK_SECS)
            .query::<Option<(Vec<u8>, Vec<u8>)>>(&mut conn);
        match got {
            Ok(None) => {}
            Ok(Some((_, first))) => {
                client.deliver(&first);
                loop {
                    let more: Result<Option<Vec<Vec<u8>>>> = ::redis::cmd("LPOP")
                        .arg(&client.results)
                        .arg(256)
                        .query(&mut conn)
                        .map_err(|e| broker::redis_error("reading results", e));
                    match more {
                        Ok(Some(v)) if !v.is_empty() => {
                            for e in &v {
                                client.deliver(e);
                            }
                        }
                        _ => break,
                    }
                }
            }
            Err(e) => {
                let err = broker::redis_error(
                    &format!("the connection to Redis at {}", client.settings.url),
                    e,
                );
                match reconnect(&client) {
                    Some(c) => conn = c,
                    None => {
                        client.fail_all(&Error::new(
                            ErrorKind::Disconnected,
                            format!(
                                "lost Redis, and with it the tasks it held ({err}); \
                                 new tasks reconnect"
                            ),
                        ));
                        // New work may come once Redis is back: keep trying, slowly.
                        loop {
                            if client.terminated.load(SeqCst) {
                                return;
                            }
                            if let Some(c) = reconnect(&client) {
                                conn = c;
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(200));
                            if weak.strong_count() <= 1 {
                                return;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A new connection, tried for the I/O bound; `None` if Redis stayed away. A Redis
/// that came back with another `run_id` lost the tasks sent to it: they fail.
fn reconnect(client: &Client) -> Option<broker::RedisConn> {
    let until = Instant::now() + client.settings.io_timeout;
    loop {
        if let Ok(mut c) = broker::connect(&client.settings.url, client.io_timeout_for_block())
            && let Ok(id) = run_id(&mut c)
        {
            client.note_run_id(id);
            return Some(c);
        }
        if Instant::now() >= until || client.terminated.load(SeqCst) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
