//! Seed 003, the `Lock` example: several processes print under one lock so their lines
//! never interleave; and the first half of "Lock vs manager lock": a `Lock` is shared
//! by handing it to the children (the manager's lock, for unrelated processes, comes
//! with the Manager).
//! Run: `cargo run --example seed003_lock`.

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
