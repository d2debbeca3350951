//! Seed 001, section 1.2.2: four processes called with `args=(1,)` and
//! `kwargs={"b": 2}`, each sleeping 0-2 s at random; the parent collects their
//! sentinels, waits on them, joins all and prints 2222.
//!
//! Rust has no keyword arguments: a struct with named fields plays `kwargs`.
//! Run: `cargo run --example seed001_sentinels`.

use std::time::Duration;

use multiprocess::{Process, Waitable};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Args {
    a: u32,
    b: u32,
}

fn foo(Args { a, b }: Args) {
    // A cheap pseudo-random 0..=2 from the pid and the clock.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let s = (nanos ^ std::process::id().wrapping_mul(2654435761)) % 3;
    std::thread::sleep(Duration::from_secs(s as u64));
    println!("{a} {b} {s}");
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let mut p_list = Vec::new();
    for _ in 0..4 {
        let mut p = Process::new(foo, Args { a: 1, b: 2 });
        p.start()?;
        p_list.push(p);
    }
    let sentinels: Vec<&dyn Waitable> = p_list.iter().map(|p| p as &dyn Waitable).collect();
    // connection.wait(file_nums): returns as soon as one has ended.
    let first = multiprocess::wait(&sentinels, Some(Duration::from_secs(10)))?;
    eprintln!(
        "(first to finish: process #{})",
        first.first().copied().unwrap_or(0)
    );
    for p in &p_list {
        p.join()?;
    }
    println!("2222");
    Ok(())
}
