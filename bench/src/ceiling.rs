//! The in-process ceiling: the same workload with threads instead of
//! processes (threads + crossbeam-channel for the queue and pipe rows, rayon
//! for the map row). Shown in the human table only, as what no
//! inter-process design can beat.
//!
//! Items are cloned per message, as a process must copy them; a thread could
//! move them for free. [`run`] returns `None` for workloads without a ceiling.

use std::thread;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, unbounded};

use crate::load::with_load;
use crate::measure::{self, mb_per_s, median_of};
use crate::params::{self, MB, MIB, REPS};

/// The in-process figure for workload `name`, in its unit; `None` if none applies.
pub fn run(name: &str, quick: bool) -> Option<f64> {
    let n_big = params::QUEUE_1MIB_MSGS.get(quick);
    let mbps = |secs: f64| (n_big * MIB) as f64 / MB / secs;
    match name {
        "pipe_roundtrip_small" => Some(roundtrip(quick)),
        "pipe_roundtrip_small_loaded" => with_load("ceiling", quick, || Some(roundtrip(quick))),
        "pipe_throughput_1MiB" | "pipe_throughput_1MiB_vec" => Some(one_way(quick)),
        "queue_1p1c_small" => Some(queue_rate(1, params::QUEUE_SMALL_MSGS, || 7u64, quick)),
        "queue_1p1c_small_loaded" => with_load("ceiling", quick, || {
            Some(queue_rate(1, params::QUEUE_SMALL_MSGS, || 7u64, quick))
        }),
        "queue_4p4c_small" => Some(queue_rate(4, params::QUEUE_4P4C_MSGS, || 7u64, quick)),
        "queue_1p1c_1KiB" => Some(queue_rate(
            1,
            params::QUEUE_1KIB_MSGS,
            || vec![7u8; 1024],
            quick,
        )),
        "queue_1p1c_1MiB" | "queue_1p1c_1MiB_vec" => {
            Some(mbps(queue_secs(1, n_big, || vec![7u8; MIB], quick)))
        }
        "queue_1p1c_1MiB_f64" => Some(mbps(queue_secs(
            1,
            n_big,
            || vec![1.5f64; params::F64_PER_MIB],
            quick,
        ))),
        "pool_map_1M_square" => rayon_map(quick),
        _ => None,
    }
}

/// us per round trip of a `u64` with an echo thread over two channels.
fn roundtrip(quick: bool) -> f64 {
    let (to, rx) = unbounded::<u64>();
    let (tx, from) = unbounded::<u64>();
    let echo = thread::spawn(move || {
        measure::echo_plus_one(|| rx.recv().ok(), |i| tx.send(i).is_ok());
    });
    let r = measure::roundtrip_us(params::PIPE_ROUNDTRIPS.get(quick), quick, |i| {
        to.send(i).expect("send");
        from.recv().expect("recv")
    });
    drop(to);
    echo.join().expect("echo thread");
    r
}

/// MB/s of 1 MiB messages (a copy of one buffer each) to a receiving thread.
fn one_way(quick: bool) -> f64 {
    let n = params::PIPE_MESSAGES_1MIB.get(quick);
    let msg = vec![7u8; MIB];
    median_of(REPS.get(quick), || {
        let (tx, rx) = unbounded::<Vec<u8>>();
        let t = Instant::now();
        let sink = thread::spawn(move || rx.iter().map(|m| m.len()).sum::<usize>());
        for _ in 0..n {
            tx.send(msg.clone()).expect("send");
        }
        drop(tx);
        assert_eq!(sink.join().expect("sink"), n * MIB);
        mb_per_s(n * MIB, t.elapsed())
    })
}

fn consume<T>(rx: Receiver<Option<T>>) -> usize {
    rx.iter().take_while(Option::is_some).count()
}

fn produce<T: Clone>(tx: Sender<Option<T>>, item: T, n: usize) {
    for _ in 0..n {
        tx.send(Some(item.clone())).expect("send");
    }
    tx.send(None).expect("send");
}

/// Seconds for `k` producer threads each putting `n / k` clones of `item()`
/// then a sentinel, and `k` consumer threads each getting until one sentinel.
fn queue_secs<T: Clone + Send + 'static>(
    k: usize,
    n: usize,
    item: impl Fn() -> T,
    quick: bool,
) -> f64 {
    median_of(REPS.get(quick), || {
        let (tx, rx) = unbounded::<Option<T>>();
        let items: Vec<T> = (0..k).map(|_| item()).collect();
        let t = Instant::now();
        let consumers: Vec<_> = (0..k)
            .map(|_| {
                let rx = rx.clone();
                thread::spawn(move || consume(rx))
            })
            .collect();
        for it in items {
            let tx = tx.clone();
            thread::spawn(move || produce(tx, it, n / k));
        }
        let got: usize = consumers
            .into_iter()
            .map(|c| c.join().expect("consumer"))
            .sum();
        assert_eq!(got, (n / k) * k);
        t.elapsed().as_secs_f64()
    })
}

/// msg/s of [`queue_secs`] with `size` messages.
fn queue_rate<T: Clone + Send + 'static>(
    k: usize,
    size: params::Size,
    item: impl Fn() -> T,
    quick: bool,
) -> f64 {
    let n = size.get(quick);
    n as f64 / queue_secs(k, n, item, quick)
}

/// ms for `(0..1_000_000).into_par_iter().map(|x| x * x).collect()` on a
/// rayon pool of two threads.
fn rayon_map(quick: bool) -> Option<f64> {
    use rayon::prelude::*;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .ok()?;
    let n = params::POOL_MAP_ITEMS.get(quick) as u64;
    Some(pool.install(|| {
        median_of(REPS.get(quick), || {
            let t = Instant::now();
            let out: Vec<u64> = (0..n).into_par_iter().map(|x| x * x).collect();
            let dt = t.elapsed();
            assert_eq!(out[out.len() - 1], (n - 1) * (n - 1));
            dt.as_secs_f64() * 1e3
        })
    }))
}
