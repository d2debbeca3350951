//! Seed 002, "进程池" (process pool): a `Pool(3)` given ten `worker` tasks with
//! `apply_async`; at most three run at a time, always in the same three processes.
//!
//! Python (the seed's `for i range(5)` typo fixed, imports added):
//! ```python
//! import os, time
//! from multiprocessing import Pool
//!
//! def worker():
//!     for i in range(5):
//!         print("---pid = %d---" % os.getpid())
//!         time.sleep(1)
//!
//! pool = Pool(3) #指定进程数，最多三个
//! for i in range(10):
//!     pool.apply_async(worker) #向进程池中添加任务，非堵塞方式
//! pool.close() # 关闭进程池，不能再次添加新任务
//! pool.join()
//! ```
//!
//! Rust: a function run by a pool takes one argument, so `worker` takes `()` and
//! `apply_async(worker, ())` is Python's `apply_async(worker)`. The seed's comment on
//! `join()` says that without it the tasks do not run: the main process would finish
//! and tear the pool down. So it is here: dropping a `Pool` terminates it (Python's
//! `with Pool() as p:`), so `close()` then `join()` is how to let the queued tasks
//! finish. The seed sleeps 1 s five times per task (about 20 s in all); here 40 ms, so
//! the run takes under a second.
//!
//! The twin also keeps the `AsyncResult`s, which Python drops, and has each task
//! return its pid, to print at the end how many distinct processes ran the ten tasks:
//! three, the pool's size.
//!
//! Run: `cargo run --example pool_reuses_workers`.

use std::collections::BTreeSet;
use std::time::Duration;

use multiprocess::Pool;

fn worker(_: ()) -> u32 {
    for _ in 0..5 {
        println!("---pid = {}---", std::process::id());
        std::thread::sleep(Duration::from_millis(40)); // the seed sleeps 1 s
    }
    std::process::id()
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let pool = Pool::new(3)?; // 指定进程数，最多三个 (three processes at most)
    let mut results = Vec::new();
    for _ in 0..10 {
        // 向进程池中添加任务，非堵塞方式 (add a task; does not block)
        results.push(pool.apply_async(worker, ())?);
    }
    pool.close(); // 关闭进程池，不能再次添加新任务 (no new tasks from now on)
    pool.join()?; // wait for the queued tasks to finish and the workers to exit
    let pids = results
        .iter()
        .map(|r| r.get())
        .collect::<multiprocess::Result<BTreeSet<u32>>>()?;
    println!(
        "{} tasks ran in {} worker processes: {pids:?}",
        results.len(),
        pids.len()
    );
    Ok(())
}
