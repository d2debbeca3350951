//! Seed 003, "`multiprocessing.Lock()` vs `Manager().Lock()`", second half: a manager's
//! lock lives in the manager's server process and is reached through a socket, so
//! processes with no common parent, even on other hosts, can share it; a plain
//! [`multiprocess::Lock`] lives in shared memory and is shared only by handing it to
//! children (see `lock_serialized_prints.rs`).
//!
//! Part 1 is the tutorial's program: `with Manager() as manager: lock = manager.Lock()`
//! and four worker processes. Part 2 shows what only the manager's lock can do: the
//! manager serves on TCP (loopback here; any reachable address works), and *unrelated*
//! programs, started with `std::process::Command` and told only the address and the
//! authkey (no handle is inherited), share the lock to increment a shared counter
//! without losing updates.
//!
//! Run: `cargo run --example manager_lock_remote`.

use std::process::Command;
use std::time::Duration;

use multiprocess::{LockProxy, Manager, Process, ValueProxy};

/// Part 1: the tutorial's worker.
fn worker((lock, i): (LockProxy, u32)) {
    let _g = lock.acquire().unwrap(); // `with lock:`
    println!("  worker {i} holds the manager's lock");
    std::thread::sleep(Duration::from_millis(10));
}

/// Part 2: a read-modify-write that loses updates without the lock.
fn increment(lock: &LockProxy, counter: &ValueProxy<u64>, times: u32) -> multiprocess::Result<()> {
    for _ in 0..times {
        let _g = lock.acquire()?;
        let v = counter.get()?;
        std::thread::yield_now();
        counter.set(&(v + 1))?;
    }
    Ok(())
}

/// Part 2, in an unrelated program (this binary re-run with `MANAGER_LOCK_PEER` set).
fn peer(spec: &str) -> multiprocess::Result<()> {
    let (address, authkey) = spec.split_once('|').expect("address|authkey");
    let m = Manager::connect(address, authkey)?;
    let lock: LockProxy = m.get("lock")?;
    let counter: ValueProxy<u64> = m.get("counter")?;
    increment(&lock, &counter, 100)?;
    println!(
        "  peer pid {} (parent knows nothing of it) did 100 increments",
        std::process::id()
    );
    Ok(())
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    if let Ok(spec) = std::env::var("MANAGER_LOCK_PEER") {
        return peer(&spec);
    }

    println!("part 1: Manager().Lock() shared by four worker processes");
    {
        let manager = Manager::start()?; // `with Manager() as manager:`
        let lock = manager.lock()?;
        let mut ps: Vec<_> = (0..4)
            .map(|i| Process::new(worker, (lock.clone(), i)))
            .collect();
        for p in &mut ps {
            p.start()?;
        }
        for p in &ps {
            p.join()?;
        }
    } // leaving the block drops the manager: its server process stops

    println!("part 2: unrelated programs share a lock over TCP, by address and authkey");
    let manager = Manager::builder()
        // A free loopback port. Binding 0.0.0.0 would let anyone who reaches the port
        // try the key, with the traffic unencrypted: see manager_server.rs.
        .address("127.0.0.1:0")
        .authkey("seed-003 secret")
        .register("lock", multiprocess::Served::lock())
        .register("counter", multiprocess::Served::value(&0u64)?)
        .start()?;
    println!("  manager serving at {}", manager.address());
    let spec = format!("{}|seed-003 secret", manager.address());
    let exe = std::env::current_exe().expect("our own path");
    let mut peers: Vec<_> = (0..3)
        .map(|_| {
            Command::new(&exe)
                .env("MANAGER_LOCK_PEER", &spec)
                .spawn()
                .expect("start a peer program")
        })
        .collect();
    let lock: LockProxy = manager.get("lock")?;
    let counter: ValueProxy<u64> = manager.get("counter")?;
    increment(&lock, &counter, 100)?;
    for p in &mut peers {
        assert!(p.wait().expect("wait for a peer").success());
    }
    let total = counter.get()?;
    println!("  counter = {total} (4 programs x 100 increments, none lost)");
    assert_eq!(total, 400);
    Ok(())
}
