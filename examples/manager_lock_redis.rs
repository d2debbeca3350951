//! Seed 003, "`multiprocessing.Lock()` vs `Manager().Lock()`" and "服务进程（Manager）",
//! with the manager's state in Redis instead of a server process: the same program,
//! with **one line changed** (`Manager::start()` becomes `Manager::redis(url, key)`).
//! The lock, the dict and the proxies passed to the workers are the same types
//! (`LockProxy`, `DictProxy`), so `worker` does not change either.
//!
//! Part 1 is the tutorial's program: four worker processes take the manager's lock
//! (`with lock:`) and update a shared dict. Part 2 shows what Redis adds: objects *by
//! name*, shared by unrelated programs (here this binary re-run with
//! `MANAGER_LOCK_REDIS_PEER` set; on other hosts it would be the same, given the URL
//! and the key), and a lock that survives its holder's death (a lease) and hands out
//! fencing tokens.
//!
//! The example starts a private `redis-server` (installed on this machine); set
//! `REDIS_URL` to use another one (`redis://host:6379/0`).
//!
//! Run: `cargo run --features redis --example manager_lock_redis`.

#[cfg(not(feature = "redis"))]
fn main() {
    eprintln!(
        "this example needs the `redis` feature: cargo run --features redis --example manager_lock_redis"
    );
}

#[cfg(feature = "redis")]
fn main() -> multiprocess::Result<()> {
    with_redis::main()
}

#[cfg(feature = "redis")]
mod with_redis {
    use std::process::Command;

    use multiprocess::broker::RedisServer;
    use multiprocess::{DictProxy, LockProxy, Manager, Process};

    const KEY: &str = "seed-003 secret";

    /// The tutorial's worker: `with lock:` and then touch the shared resource.
    fn worker((lock, d, i): (LockProxy, DictProxy<String, u32>, u32)) {
        let _g = lock.acquire().unwrap(); // `with lock:`
        let n = d.get(&"count".into()).unwrap().unwrap_or(0);
        d.insert("count".into(), n + 1).unwrap();
        d.insert(format!("worker {i}"), std::process::id()).unwrap();
    }

    /// Part 2, in an unrelated program: it knows the URL, the key and the names only.
    fn peer(url: &str) -> multiprocess::Result<()> {
        let m = Manager::redis(url, KEY)?;
        let lock = m.lock_named("lock")?;
        let counts = m.dict_named::<String, u32>("counts")?;
        for _ in 0..100 {
            let _g = lock.acquire()?;
            let n = counts.get(&"n".into())?.unwrap_or(0);
            counts.insert("n".into(), n + 1)?;
        }
        println!(
            "  peer pid {} did 100 increments (last fencing token seen: {:?})",
            std::process::id(),
            lock.acquire().map(|_g| lock.fencing_token())?
        );
        Ok(())
    }

    pub(crate) fn main() -> multiprocess::Result<()> {
        multiprocess::init();
        if let Ok(url) = std::env::var("MANAGER_LOCK_REDIS_PEER") {
            return peer(&url);
        }
        let private = match std::env::var("REDIS_URL") {
            Ok(_) => None,
            Err(_) => Some(RedisServer::start()?),
        };
        let url = match &private {
            Some(s) => s.url().to_string(),
            None => std::env::var("REDIS_URL").unwrap_or_default(),
        };

        println!("part 1: Manager().Lock() and a dict, shared by four worker processes");
        {
            // let manager = Manager::start()?; // the server manager: the only line changed
            let manager = Manager::redis(&url, KEY)?;
            let lock = manager.lock()?;
            let d = manager.dict::<String, u32>()?;
            let mut ps: Vec<_> = (0..4)
                .map(|i| Process::new(worker, (lock.clone(), d.clone(), i)))
                .collect();
            for p in &mut ps {
                p.start()?;
            }
            for p in &ps {
                p.join()?;
            }
            println!("  {:?}", d.items()?);
            assert_eq!(d.get(&"count".into())?, Some(4));
        } // the last proxies dropped: the dict and the lock are deleted from Redis

        println!("part 2: unrelated programs share a lock and a dict by name");
        let manager = Manager::redis(&url, KEY)?;
        let exe = std::env::current_exe().expect("our own path");
        let mut peers: Vec<_> = (0..3)
            .map(|_| {
                Command::new(&exe)
                    .env("MANAGER_LOCK_REDIS_PEER", &url)
                    .spawn()
                    .expect("start a peer program")
            })
            .collect();
        for p in &mut peers {
            assert!(p.wait().expect("wait for a peer").success());
        }
        let counts = manager.dict_named::<String, u32>("counts")?;
        let total = counts.get(&"n".into())?.unwrap_or(0);
        println!("  counts[\"n\"] = {total} (3 programs x 100 increments, none lost)");
        assert_eq!(total, 300);
        // Named objects stay until deleted.
        manager.delete("counts")?;
        manager.delete("lock")?;
        Ok(())
    }
}
