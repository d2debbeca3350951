//! Seed 003, "进程间同步" (synchronization between processes): several processes
//! print under one lock so their lines never interleave; and the first half of
//! "multiprocessing.Lock() 与 Manager().Lock() 的区别": a `Lock` is shared by handing
//! it to the children (the manager's lock, for unrelated processes, is the second half:
//! `manager_lock_remote.rs`).
//! Run: `cargo run --example lock_serialized_prints`.

use multiprocess::{Lock, Process};

fn f((lock, i): (Lock, u32)) {
    let _g = lock.acquire();
    println!("hello world {i}");
    println!("  ... still process {i}, holding the lock");
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let lock = Lock::new()?;
    let mut ps: Vec<_> = (0..10)
        .map(|i| Process::new(f, (lock.clone(), i)))
        .collect();
    for p in &mut ps {
        p.start()?;
    }
    for p in &ps {
        p.join()?;
    }
    Ok(())
}
