//! The workloads run with this crate (`multiprocess`).
//!
//! [`run`] dispatches on the workload name; each workload returns its figure in
//! the unit of BENCH.md's table, or `None` while it is not written yet (the
//! report then shows `-`). Every workload must do what
//! `bench/python/baseline.py` does, with the sizes of [`crate::params`] and the
//! median of [`crate::params::REPS`] repetitions via
//! [`crate::measure::median_of`] (the process-start rows: of
//! [`crate::params::START_ROUNDS`], each followed by a repetition of their floors,
//! see [`run_paired`]). Start-up of the processes, pools, executors and
//! managers (and a first-use warm-up) is excluded from timings unless the
//! workload is process start itself; everything except the explicit
//! start-method workloads uses the fork start method, like the baseline.

/// Runs the workload `name` with this crate; `None` if it is not implemented.
pub fn run(name: &str, quick: bool) -> Option<f64> {
    run_paired(name, quick, &mut |_| {})
}

/// As [`run`]; a row whose floors are paired ([`crate::workloads::Workload::paired`])
/// calls `between` after each repetition with that repetition's figure, outside
/// its timing, and runs [`crate::params::START_ROUNDS`] of them. Other rows never call it.
pub fn run_paired(name: &str, quick: bool, between: &mut dyn FnMut(f64)) -> Option<f64> {
    match name {
        "process_start_join_fork" => start_join(
            StartMethod::Fork,
            params::START_FORK.get(quick),
            quick,
            between,
        ),
        "process_start_join_spawn" => start_join(
            StartMethod::Spawn,
            params::START_SPAWN.get(quick),
            quick,
            between,
        ),
        "process_start_join_forkserver" => start_join(
            StartMethod::ForkServer,
            params::START_FORKSERVER.get(quick),
            quick,
            between,
        ),
        "pipe_roundtrip_small" => pipe_roundtrip_small(quick),
        "pipe_throughput_1MiB" => pipe_throughput_1mib(quick),
        "queue_1p1c_small" => queue_1p1c_small(quick),
        "queue_1p1c_1KiB" => queue_1p1c_1kib(quick),
        "queue_1p1c_1MiB" => queue_1p1c_1mib(quick),
        "queue_4p4c_small" => queue_4p4c_small(quick),
        "lock_uncontended_pair" => lock_uncontended_pair(quick),
        "value_locked_incr_2proc" => value_locked_incr_2proc(quick),
        "pool_map_1M_square" => pool_map_1m_square(quick),
        "pool_apply_async_per_task" => pool_apply_async_per_task(quick),
        "pool_imap_unordered_100k" => pool_imap_unordered_100k(quick),
        "executor_submit_per_task" => executor_submit_per_task(quick),
        "manager_dict_op" => manager_dict_op(quick),
        "manager_queue_op" => manager_queue_op(quick),
        "shm_array_write_64MiB" => shm_array_write_64mib(quick),
        "queue_1p1c_1MiB_vec" => queue_1p1c_1mib_vec(quick),
        "pipe_throughput_1MiB_vec" => pipe_throughput_1mib_vec(quick),
        "queue_1p1c_1MiB_f64" => queue_1p1c_1mib_f64(quick),
        "pipe_roundtrip_small_loaded" => with_load("ours", quick, || pipe_roundtrip_small(quick)),
        "queue_1p1c_small_loaded" => with_load("ours", quick, || queue_1p1c_small(quick)),
        "manager_dict_op_loaded" => with_load("ours", quick, || manager_dict_op(quick)),
        "pool_dispatch_capacity" => pool_dispatch_capacity(quick),
        "cluster_map_100k" => crate::cluster::map_100k(quick),
        "cluster_apply_async_per_task" => crate::cluster::apply_async_per_task(quick),
        name if crate::redis_objects::is_row(name) => crate::redis_objects::run(name, quick),
        _ => None,
    }
}

use std::time::Instant;

use multiprocess::{Connection, StartMethod, get_context};

use crate::load::with_load;
use crate::measure::{self, median_of, us_per};
use crate::params::{self, MIB, REPS};

fn empty(_: ()) {}

/// us per start+join of a process running an empty function with `method`: one
/// warm-up start first (it also starts the fork server for that method), then
/// [`crate::params::START_ROUNDS`] repetitions of `cycles` start+join cycles, each
/// followed by `between` (outside the timing). The cycles per repetition are
/// [`crate::params::START_FORK`], [`crate::params::START_SPAWN`] and
/// [`crate::params::START_FORKSERVER`].
fn start_join(
    method: StartMethod,
    cycles: usize,
    quick: bool,
    between: &mut dyn FnMut(f64),
) -> Option<f64> {
    let ctx = get_context(method);
    let once = || {
        let mut p = ctx.process(empty, ());
        p.start().expect("start");
        p.join().expect("join");
        assert_eq!(p.exitcode(), Some(0));
    };
    once();
    Some(median_of(params::START_ROUNDS.get(quick), || {
        let t = Instant::now();
        for _ in 0..cycles {
            once();
        }
        let us = us_per(t.elapsed(), cycles);
        between(us);
        us
    }))
}

fn echo_plus_one(c: Connection<u64>) {
    measure::echo_plus_one(|| c.recv().ok(), |i| c.send(&i).is_ok());
}

/// us per round trip over a `Pipe()`: the parent sends `i`, the child answers
/// `i + 1`; the child is started and answered once before timing;
/// [`crate::params::PIPE_ROUNDTRIPS`] round trips per repetition.
fn pipe_roundtrip_small(quick: bool) -> Option<f64> {
    let (here, there) = multiprocess::pipe::<u64>().ok()?;
    let mut p = get_context(StartMethod::Fork).process(echo_plus_one, there);
    p.start().ok()?;
    here.send(&0).ok()?;
    assert_eq!(here.recv().ok()?, 1);
    let r = measure::roundtrip_us(params::PIPE_ROUNDTRIPS.get(quick), quick, |i| {
        here.send(&i).expect("send");
        here.recv().expect("recv")
    });
    drop(here);
    p.join().ok()?;
    Some(r)
}

/// What a sink child gets: the connection of round announcements and byte
/// counts, and the data connection.
type SinkArgs<T> = (Connection<u64>, Connection<T>);

fn bytes_sink((ctl, data): SinkArgs<()>) {
    measure::sink_rounds(
        || ctl.recv().ok(),
        || data.recv_bytes().expect("recv_bytes").len(),
        |bytes| ctl.send(&bytes).expect("reply"),
    );
}

fn vec_sink((ctl, data): SinkArgs<Vec<u8>>) {
    measure::sink_rounds(
        || ctl.recv().ok(),
        || data.recv().expect("recv").len(),
        |bytes| ctl.send(&bytes).expect("reply"),
    );
}

/// MB/s of [`crate::params::PIPE_MESSAGES_1MIB`] messages of 1 MiB sent by
/// `send` over a data pipe to a fork-started `sink` child, which answers each
/// round's byte count on a control pipe ([`measure::one_way_mbps`]).
fn pipe_one_way<T>(sink: fn(SinkArgs<T>), send: impl Fn(&Connection<T>), quick: bool) -> Option<f64>
where
    T: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let (ctl, ctl_there) = multiprocess::pipe::<u64>().ok()?;
    let (data, data_there) = multiprocess::pipe::<T>().ok()?;
    let mut p = get_context(StartMethod::Fork).process(sink, (ctl_there, data_there));
    p.start().ok()?;
    let r = measure::one_way_mbps(
        params::PIPE_MESSAGES_1MIB.get(quick),
        quick,
        |k| ctl.send(&k).expect("send"),
        || send(&data),
        || ctl.recv().expect("reply"),
    );
    drop((ctl, data));
    p.join().ok()?;
    Some(r)
}

/// MB/s: the parent `send_bytes` [`crate::params::PIPE_MESSAGES_1MIB`] messages
/// of 1 MiB, the child `recv_bytes` them and replies with the byte count (on a
/// second pipe); timed from the first send to that reply (one warm-up round first).
fn pipe_throughput_1mib(quick: bool) -> Option<f64> {
    let msg = vec![7u8; MIB];
    pipe_one_way(
        bytes_sink,
        |d| d.send_bytes(&msg).expect("send_bytes"),
        quick,
    )
}

/// MB/s: as [`pipe_throughput_1mib`], but the parent `send`s a typed `Vec<u8>`
/// of 1 MiB per message over a `Connection<Vec<u8>>` and the child `recv`s it.
fn pipe_throughput_1mib_vec(quick: bool) -> Option<f64> {
    let msg = vec![7u8; MIB];
    pipe_one_way(vec_sink, |d| d.send(&msg).expect("send"), quick)
}

/// msg/s: one producer process puts the integers `0..n`, then a sentinel; one
/// consumer process gets until the sentinel and reports its count on a side
/// channel. Both wait on a barrier with the parent; timed from the parent's
/// release to the consumer's report. n = [`crate::params::QUEUE_SMALL_MSGS`].
fn queue_1p1c_small(quick: bool) -> Option<f64> {
    let n = params::QUEUE_SMALL_MSGS.get(quick);
    let t = queue_run(1, 1, n, || 7u64, quick)?;
    Some(n as f64 / t)
}

/// msg/s: as [`queue_1p1c_small`] with a 1 KiB byte string as every message;
/// n = [`crate::params::QUEUE_1KIB_MSGS`].
fn queue_1p1c_1kib(quick: bool) -> Option<f64> {
    let n = params::QUEUE_1KIB_MSGS.get(quick);
    let t = queue_run(
        1,
        1,
        n,
        || Bytes(std::sync::Arc::new(vec![7u8; 1024])),
        quick,
    )?;
    Some(n as f64 / t)
}

/// MB/s: as [`queue_1p1c_small`] with a 1 MiB byte string as every message;
/// n = [`crate::params::QUEUE_1MIB_MSGS`].
fn queue_1p1c_1mib(quick: bool) -> Option<f64> {
    queue_1p1c_mib(|| Bytes(std::sync::Arc::new(vec![7u8; MIB])), quick)
}

/// MB/s: as [`queue_1p1c_1mib`] with a typed `Vec<u8>` of 1 MiB as every
/// message (serialized through serde as a sequence, not as one block).
fn queue_1p1c_1mib_vec(quick: bool) -> Option<f64> {
    queue_1p1c_mib(|| vec![7u8; MIB], quick)
}

/// MB/s: as [`queue_1p1c_1mib`] with a `Vec<f64>` of 1 MiB
/// ([`crate::params::F64_PER_MIB`] items) as every message.
fn queue_1p1c_1mib_f64(quick: bool) -> Option<f64> {
    queue_1p1c_mib(|| vec![1.5f64; params::F64_PER_MIB], quick)
}

/// MB/s of one producer and one consumer passing
/// [`crate::params::QUEUE_1MIB_MSGS`] messages of 1 MiB made by `item`.
fn queue_1p1c_mib<T>(item: impl Fn() -> T, quick: bool) -> Option<f64>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Clone + 'static,
{
    let n = params::QUEUE_1MIB_MSGS.get(quick);
    let t = queue_run(1, 1, n, item, quick)?;
    Some((n * MIB) as f64 / crate::params::MB / t)
}

/// msg/s in total: four producer processes each put `n / 4` integers then a
/// sentinel; four consumer processes each get until one sentinel and report;
/// timed from the release to the fourth report. n = [`crate::params::QUEUE_4P4C_MSGS`].
fn queue_4p4c_small(quick: bool) -> Option<f64> {
    let n = params::QUEUE_4P4C_MSGS.get(quick);
    let t = queue_run(4, 4, n, || 7u64, quick)?;
    Some(n as f64 / t)
}

/// A byte string that serializes as one block (as Python's `bytes` pickles), not
/// byte by byte as `Vec<u8>` does through serde. Cloning shares the buffer, as
/// Python's `q.put(payload)` puts the same object every time.
#[derive(Clone)]
struct Bytes(std::sync::Arc<Vec<u8>>);

impl serde::Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(std::sync::Arc::new(v.to_vec())))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(std::sync::Arc::new(v)))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

type QueueArgs<T> = (multiprocess::Queue<Option<T>>, multiprocess::Event, u64, T);

fn queue_producer<T: serde::Serialize + serde::de::DeserializeOwned + Clone>(
    (q, go, n, item): QueueArgs<T>,
) {
    go.wait();
    for _ in 0..n {
        q.put(Some(item.clone()))
            .map_err(|e| e.to_string())
            .expect("put");
    }
    q.put(None)
        .map_err(|e| e.to_string())
        .expect("put sentinel");
}

fn queue_consumer<T: serde::Serialize + serde::de::DeserializeOwned>(
    (q, done): (multiprocess::Queue<Option<T>>, Connection<u64>),
) {
    let mut count = 0u64;
    while let Some(_item) = q.get().expect("get") {
        count += 1;
    }
    done.send(&count).expect("report");
}

/// Seconds from releasing `producers` producer processes (each putting `n /
/// producers` items) to the reports of `consumers` consumer processes (median of
/// repetitions). Processes are started with the fork method before timing.
fn queue_run<T>(
    producers: usize,
    consumers: usize,
    n: usize,
    item: impl Fn() -> T,
    quick: bool,
) -> Option<f64>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Clone + 'static,
{
    let ctx = get_context(StartMethod::Fork);
    let mut failed = false;
    let r = median_of(REPS.get(quick), || {
        let run = || -> multiprocess::Result<f64> {
            let q = multiprocess::Queue::<Option<T>>::new()?;
            let go = multiprocess::Event::new()?;
            let mut reports = Vec::new();
            let mut procs_c = Vec::new();
            for _ in 0..consumers {
                let (here, there) = multiprocess::pipe::<u64>()?;
                let mut p = ctx.process(queue_consumer::<T>, (q.clone(), there));
                p.start()?;
                procs_c.push(p);
                reports.push(here);
            }
            let mut procs_p = Vec::new();
            for _ in 0..producers {
                let mut p = ctx.process(
                    queue_producer::<T>,
                    (q.clone(), go.clone(), (n / producers) as u64, item()),
                );
                p.start()?;
                procs_p.push(p);
            }
            let t = Instant::now();
            go.set();
            let mut total = 0;
            for r in &reports {
                total += r.recv()?;
            }
            let secs = t.elapsed().as_secs_f64();
            assert_eq!(total as usize, (n / producers) * producers);
            for p in &procs_p {
                p.join()?;
            }
            for p in &procs_c {
                p.join()?;
            }
            Ok(secs)
        };
        match run() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("[ours] queue workload failed: {e}");
                failed = true;
                f64::NAN
            }
        }
    });
    (!failed).then_some(r)
}

/// ns per acquire + release of a process-shared `Lock`, in one process;
/// [`crate::params::LOCK_PAIRS`] pairs per repetition.
fn lock_uncontended_pair(quick: bool) -> Option<f64> {
    let lock = multiprocess::Lock::new().ok()?;
    let n = params::LOCK_PAIRS.get(quick);
    drop(lock.acquire()); // warm-up: fault the segment in
    Some(median_of(REPS.get(quick), || {
        let t = Instant::now();
        for _ in 0..n {
            drop(std::hint::black_box(lock.acquire()));
        }
        crate::measure::ns_per(t.elapsed(), n)
    }))
}

/// ops/s in total: two processes each increment a shared `Value` of i32
/// [`crate::params::VALUE_INCRS_PER_PROC`] times, each increment under the
/// value's lock; barrier start, timed to both reports; the final value is checked.
fn value_locked_incr_2proc(quick: bool) -> Option<f64> {
    let n = params::VALUE_INCRS_PER_PROC.get(quick);
    let ctx = get_context(StartMethod::Fork);
    Some(median_of(REPS.get(quick), || {
        let v = multiprocess::Value::new(0i32).expect("value");
        let go = multiprocess::Event::new().expect("event");
        let mut reports = Vec::new();
        let mut procs = Vec::new();
        for _ in 0..2 {
            let (here, there) = multiprocess::pipe::<()>().expect("pipe");
            let mut p = ctx.process(incr_worker, (v.clone(), go.clone(), n as u32, there));
            p.start().expect("start");
            procs.push(p);
            reports.push(here);
        }
        let t = Instant::now();
        go.set();
        for r in &reports {
            r.recv().expect("report");
        }
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(v.get() as usize, 2 * n);
        for p in &procs {
            p.join().expect("join");
        }
        (2 * n) as f64 / secs
    }))
}

fn incr_worker(
    (v, go, n, done): (
        multiprocess::Value<i32>,
        multiprocess::Event,
        u32,
        Connection<()>,
    ),
) {
    go.wait();
    for _ in 0..n {
        *v.lock() += 1;
    }
    done.send(&()).expect("report");
}

fn square(x: u64) -> u64 {
    x * x
}

fn identity(x: u64) -> u64 {
    x
}

/// A warmed-up `Pool(2)` with the fork start method, like the baseline's.
fn warm_pool() -> multiprocess::Pool {
    let pool = multiprocess::Pool::builder()
        .processes(2)
        .context(get_context(StartMethod::Fork))
        .build()
        .expect("pool");
    pool.map(identity, 0..8).expect("warm-up");
    pool
}

/// ms for `Pool(2).map(|x| x * x, 0..1_000_000)` with the default chunk size;
/// the pool is created and warmed up (a tiny map) before timing.
fn pool_map_1m_square(quick: bool) -> Option<f64> {
    let n = params::POOL_MAP_ITEMS.get(quick) as u64;
    let pool = warm_pool();
    Some(median_of(REPS.get(quick), || {
        let t = Instant::now();
        let out = pool.map(square, 0..n).expect("map");
        let dt = t.elapsed();
        assert_eq!(out[out.len() - 1], (n - 1) * (n - 1));
        dt.as_secs_f64() * 1e3
    }))
}

/// us per task: [`crate::params::APPLY_ASYNC_TASKS`] `apply_async` of identity
/// on a warmed-up Pool(2), then `get` of every result.
fn pool_apply_async_per_task(quick: bool) -> Option<f64> {
    let n = params::APPLY_ASYNC_TASKS.get(quick);
    let pool = warm_pool();
    Some(median_of(REPS.get(quick), || {
        let t = Instant::now();
        let rs: Vec<_> = (0..n as u64)
            .map(|i| pool.apply_async(identity, i).expect("apply_async"))
            .collect();
        let out: Vec<u64> = rs.iter().map(|r| r.get().expect("get")).collect();
        let dt = t.elapsed();
        assert_eq!(out[n - 1], n as u64 - 1);
        us_per(dt, n)
    }))
}

/// ms to drain `imap_unordered(square, 0..100_000)` on a warmed-up Pool(2)
/// with the default chunk size (CPython's default is 1).
fn pool_imap_unordered_100k(quick: bool) -> Option<f64> {
    let n = params::IMAP_ITEMS.get(quick) as u64;
    let pool = warm_pool();
    Some(median_of(REPS.get(quick), || {
        let t = Instant::now();
        let mut count = 0u64;
        for r in pool.imap_unordered(square, 0..n) {
            r.expect("imap item");
            count += 1;
        }
        let dt = t.elapsed();
        assert_eq!(count, n, "lost results");
        dt.as_secs_f64() * 1e3
    }))
}

/// us per task: a process-pool executor with 2 workers (warmed up),
/// [`crate::params::EXECUTOR_TASKS`] `submit` of identity, then every result.
fn executor_submit_per_task(quick: bool) -> Option<f64> {
    let n = params::EXECUTOR_TASKS.get(quick);
    let ex = multiprocess::futures::ProcessPoolExecutor::builder()
        .max_workers(2)
        .context(get_context(StartMethod::Fork))
        .build()
        .expect("executor");
    for r in ex.map(identity, 0..8).expect("warm-up") {
        r.expect("warm-up");
    }
    Some(median_of(REPS.get(quick), || {
        let t = Instant::now();
        let fs: Vec<_> = (0..n as u64)
            .map(|i| ex.submit(identity, i).expect("submit"))
            .collect();
        let out: Vec<u64> = fs.iter().map(|f| f.result().expect("result")).collect();
        let dt = t.elapsed();
        assert_eq!(out[n - 1], n as u64 - 1);
        us_per(dt, n)
    }))
}

fn noop(_: u64) {}

/// tasks/s that one pool thread hands to two workers whose task returns at
/// once: `imap_unordered` of a no-op over [`crate::params::DISPATCH_TASKS`]
/// items with chunk size 1 on a warmed-up Pool(2), drained.
fn pool_dispatch_capacity(quick: bool) -> Option<f64> {
    let n = params::DISPATCH_TASKS.get(quick);
    let pool = warm_pool();
    Some(median_of(REPS.get(quick), || {
        let t = Instant::now();
        let opts = multiprocess::Options::new().chunk_size(1);
        let count = pool
            .imap_unordered_with(noop, 0..n as u64, opts)
            .inspect(|r| assert!(r.is_ok(), "task failed"))
            .count();
        let dt = t.elapsed();
        assert_eq!(count, n, "lost results");
        crate::measure::per_s(n, dt)
    }))
}

/// us per op, one op being one set plus one get: set
/// [`crate::params::MANAGER_DICT_KEYS`] keys (`d[k] = k`) through a manager
/// dict proxy, then get them all back; time / number of keys.
fn manager_dict_op(quick: bool) -> Option<f64> {
    let m = get_context(StartMethod::Fork).manager().ok()?;
    let d = m.dict::<u64, u64>().ok()?;
    d.insert(0, 0).ok()?; // warm-up: connects this thread to the server
    let n = params::MANAGER_DICT_KEYS.get(quick);
    let r = median_of(REPS.get(quick), || {
        let t = Instant::now();
        for k in 0..n as u64 {
            d.insert(k, k).expect("insert");
        }
        for k in 0..n as u64 {
            assert_eq!(d.get(&k).expect("get"), Some(k), "bad value");
        }
        us_per(t.elapsed(), n)
    });
    m.shutdown().ok()?;
    Some(r)
}

/// us per op, one op being one put plus one get on a manager queue proxy,
/// interleaved; [`crate::params::MANAGER_QUEUE_OPS`] ops per repetition.
fn manager_queue_op(quick: bool) -> Option<f64> {
    let m = get_context(StartMethod::Fork).manager().ok()?;
    let q = m.queue::<u64>().ok()?;
    q.put(0).ok()?; // warm-up: connects this thread to the server
    assert_eq!(q.get().ok()?, 0);
    let n = params::MANAGER_QUEUE_OPS.get(quick);
    let r = median_of(REPS.get(quick), || {
        let t = Instant::now();
        for i in 0..n as u64 {
            q.put(i).expect("put");
            assert_eq!(q.get().expect("get"), i, "bad value");
        }
        us_per(t.elapsed(), n)
    });
    m.shutdown().ok()?;
    Some(r)
}

/// MB/s: a child started beforehand fills a 64 MiB shared byte array
/// ([`crate::params::SHM_BYTES`]) with a byte value on command (memset), answers,
/// and the parent sums the array as native 64-bit words and checks the sum;
/// timed from the command to the end of the sum; bytes / time.
fn shm_array_write_64mib(quick: bool) -> Option<f64> {
    let bytes = params::SHM_BYTES.get(quick);
    let a = multiprocess::Array::<u64>::zeroed(bytes / 8).ok()?;
    let (here, there) = multiprocess::pipe::<u8>().ok()?;
    let mut p = get_context(StartMethod::Fork).process(fill_worker, (a.clone(), there));
    p.start().ok()?;
    let mut round = 0u8;
    let r = median_of(REPS.get(quick), || {
        round = round.wrapping_add(1).max(1);
        let t = Instant::now();
        here.send(&round).expect("command");
        here.recv().expect("answer");
        let sum: u64 = sum_words(&a);
        let secs = t.elapsed().as_secs_f64();
        let word = u64::from_ne_bytes([round; 8]);
        assert_eq!(sum, word.wrapping_mul((bytes / 8) as u64));
        bytes as f64 / crate::params::MB / secs
    });
    drop(here);
    p.join().ok()?;
    Some(r)
}

/// Fills the array with the byte it is sent (a memset under the array's lock),
/// answers, until the connection closes.
fn fill_worker((a, conn): (multiprocess::Array<u64>, Connection<u8>)) {
    while let Ok(b) = conn.recv() {
        let mut g = a.lock(); // one lock for the whole fill, as a memset would run
        g.fill(u64::from_ne_bytes([b; 8]));
        drop(g);
        conn.send(&b).expect("answer");
    }
}

fn sum_words(a: &multiprocess::Array<u64>) -> u64 {
    a.lock().iter().fold(0u64, |s, &w| s.wrapping_add(w))
}
