//! A tokio program that drives processes, a pool and a queue without blocking its
//! runtime: every wait below is an `.await` (feature `tokio`: tokio's own reactor
//! watches the pidfds, sockets and the queue's bell).
//!
//! Run: `cargo run --example async_tokio --features tokio`
//!
//! Python's `multiprocessing` has no async API: an asyncio program hands each
//! blocking call to a thread (`await loop.run_in_executor(None, q.get)`), one thread
//! per wait in flight.
//!
//! Here the waits are futures: no thread per wait, and the runtime's threads stay free.

use std::time::Duration;

use multiprocess::{Connection, Pool, Process, Queue};

fn square(x: u64) -> u64 {
    x * x
}

/// What a worker reports: its id, the job and the job's cube.
type Report = (u32, u64, u64);

/// A worker process: takes jobs from a queue until it gets `None`, and reports each
/// result through its pipe.
fn worker((jobs, results, id): (Queue<Option<u64>>, Connection<Report>, u32)) {
    while let Ok(Some(n)) = jobs.get() {
        std::thread::sleep(Duration::from_millis(10));
        results.send(&(id, n, n * n * n)).unwrap();
    }
}

fn slow_sum(n: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100));
    (1..=n).sum()
}

#[tokio::main]
async fn main() -> multiprocess::Result<()> {
    multiprocess::init();

    // A pool: await its results as they come, while the runtime stays free.
    let pool = Pool::new(2)?;
    let pending: Vec<_> = (0..5)
        .map(|i| pool.apply_async(square, i))
        .collect::<Result<_, _>>()?;
    let mut squares = Vec::new();
    for r in pending {
        squares.push(r.await?);
    }
    println!("squares from the pool: {squares:?}");

    // A process as an async function call, raced against a timer.
    let sum = multiprocess::spawn(slow_sum, 100)?;
    tokio::select! {
        r = sum => println!("spawned child returned {}", r?),
        _ = tokio::time::sleep(Duration::from_secs(30)) => println!("the child took too long"),
    }

    // Two worker processes fed through a bounded queue; results come back on pipes
    // that tasks await concurrently.
    let jobs = Queue::<Option<u64>>::bounded(4)?;
    let mut workers = Vec::new();
    let mut readers = Vec::new();
    for id in 0..2 {
        let (here, there) = multiprocess::pipe()?;
        let mut p = Process::new(worker, (jobs.clone(), there, id));
        p.start()?;
        workers.push(p);
        readers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            // Ends when the worker exits and its end of the pipe closes.
            while let Ok(r) = here.recv_async().await {
                got.push(r);
            }
            got
        }));
    }
    for n in 1..=10 {
        jobs.put_async(Some(n)).await?; // waits for room: the queue holds 4
    }
    for _ in &workers {
        jobs.put_async(None).await?;
    }
    let mut cubes = Vec::new();
    for r in readers {
        cubes.extend(r.await.expect("the reader task"));
    }
    cubes.sort_by_key(|&(_, n, _)| n);
    for (id, n, cube) in &cubes {
        println!("worker {id}: {n}^3 = {cube}");
    }
    for p in &workers {
        p.join_async().await?;
        println!("{} exited with {:?}", p.get_name(), p.exitcode());
    }

    // A queue the other way: a child produces, a task consumes.
    fn produce(q: Queue<String>) {
        for word in ["async", "twins", "of", "every", "wait"] {
            q.put(word.to_string()).unwrap();
        }
    }
    let words = Queue::new()?;
    let producer = multiprocess::spawn(produce, words.clone())?;
    let mut sentence = Vec::new();
    for _ in 0..5 {
        sentence.push(words.get_async().await?);
    }
    producer.await?;
    println!("{}", sentence.join(" "));
    Ok(())
}
