//! Seed 001, section 3.1: `Queue(cpu_count())`, one producer putting 0..=20, two
//! consumers printing what they get (sleeping a little) until the queue is empty.
//!
//! As in Python, "until empty" is racy for the consumers: one may find the queue empty
//! while the producer is still ahead. The Rust twin adds a short `get_timeout` so a
//! consumer stops only when nothing arrives for a while.
//! Run: `cargo run --example queue_until_empty`.

use std::time::Duration;

use multiprocess::{Process, Queue};

fn demo1(q: Queue<u32>) {
    for i in 0..=20 {
        q.put(i).expect("put");
    }
}

fn demo2(q: Queue<u32>) {
    while let Ok(v) = q.get_timeout(Duration::from_millis(500)) {
        println!("{v}");
        std::thread::sleep(Duration::from_millis(50)); // the seed sleeps 1 s
        if q.is_empty() {
            break;
        }
    }
    println!("over");
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let q = Queue::bounded(multiprocess::cpu_count() as u32)?;
    let mut p1 = Process::new(demo1, q.clone());
    let mut p2 = Process::new(demo2, q.clone());
    let mut p3 = Process::new(demo2, q.clone());
    p1.start()?;
    p2.start()?;
    p3.start()?;
    p1.join()?;
    p2.join()?;
    p3.join()?;
    // Whatever the racy "until empty" left behind:
    while let Ok(v) = q.try_get() {
        println!("left over: {v}");
    }
    Ok(())
}
