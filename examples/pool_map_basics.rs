//! Seed 001, section 2.1: `Pool(cpu_count())` and the ways to hand it work:
//! `apply_async` + `wait`/`get`, `map`, `map_async`, `imap_unordered`, `imap`.
//!
//! Python (the commented-out lines are alternatives to the live `map_async`):
//! ```python
//! def demo(a):
//!     print("[INFO] get {}".format("www.b***u.com"))
//!     time.sleep(1)
//!     print("[INFO] complete {}".format("www.b***u.com"))
//!     return a
//!
//! if __name__ == '__main__':
//!     pool = Pool(cpu_count())
//!     # task_list = []
//!     # for i in range(20):
//!     # task = pool.apply_async(func=demo, args=[1, 3, 5], callback=None)
//!     # task_list.append(task)
//!     # [task.wait() for task in task_list]
//!     # for complete in [task.get() for task in task_list]:
//!     # print(complete)
//!     params = [i for i in range(10)]
//!     # tasks = pool.map(demo, params)
//!     tasks = pool.map_async(demo, params)
//!     # tasks = pool.imap_unordered(demo, params)
//!     # tasks = pool.imap(demo, params)
//!     print(tasks.wait())
//!     print(tasks.get())
//!     # for task in tasks:
//!     #     print(task)
//!     # pool.close()
//! ```
//!
//! The Rust twin runs every alternative in turn, each under a heading, on one pool:
//!
//! 1. `apply_async` twenty times, `wait()` on each, then `get()` each. Python's
//!    `args=[1, 3, 5]` is unpacked into three arguments, so `demo(1, 3, 5)` raises
//!    `TypeError` in the worker and every `get()` re-raises it; a Rust call with the
//!    wrong arguments does not compile. Here the list is the one argument `a`, which
//!    is what the line seems to mean, and each `get()` returns `[1, 3, 5]`. `demo` is
//!    generic, so the same function serves this call and the integer ones (each
//!    instance is a plain `fn` item the workers can run). `callback=None` is the
//!    default: see `Options::callback` for a callback.
//! 2. `map`: blocks, and returns the list (`Vec`) in input order.
//! 3. `map_async`: `wait()` then `get()`. Python's `wait()` returns `None` and the
//!    seed prints it; Rust's returns `()`, printed as `()`.
//! 4. `imap_unordered`: an iterator of results in the order they finish. Each item
//!    is a `Result` (a failed call does not end the iteration). As every call sleeps
//!    the same time, that order is mostly the input order here too.
//! 5. `imap`: the same, in input order.
//!
//! Then `close()` and `join()`. The seed sleeps 1 s per call; here 100 ms, so with 2
//! CPUs the whole run takes about 3 s. The `[INFO]` lines interleave as the workers
//! run, as in Python; the printed results do not depend on timing, except the order
//! of `imap_unordered`.
//!
//! Run: `cargo run --example pool_map_basics`.

use std::time::Duration;

use multiprocess::{Pool, cpu_count};

const URL: &str = "www.b***u.com";

fn demo<T>(a: T) -> T {
    println!("[INFO] get {URL}");
    std::thread::sleep(Duration::from_millis(100)); // the seed sleeps 1 s
    println!("[INFO] complete {URL}");
    a
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let pool = Pool::new(cpu_count())?;
    println!("Pool({}) started", pool.processes());

    println!("\n== 1. apply_async, then wait() and get() each ==");
    let mut task_list = Vec::new();
    for _ in 0..20 {
        let task = pool.apply_async(demo, vec![1, 3, 5])?;
        task_list.push(task);
    }
    for task in &task_list {
        task.wait();
    }
    for complete in task_list
        .iter()
        .map(|task| task.get())
        .collect::<Result<Vec<Vec<u32>>, _>>()?
    {
        println!("{complete:?}");
    }

    let params: Vec<u32> = (0..10).collect();

    println!("\n== 2. map ==");
    let tasks = pool.map(demo, params.clone())?;
    println!("{tasks:?}");

    println!("\n== 3. map_async, then wait() and get() ==");
    let tasks = pool.map_async(demo, params.clone())?;
    println!("{:?}", tasks.wait()); // Python prints None
    println!("{:?}", tasks.get()?);

    println!("\n== 4. imap_unordered ==");
    for task in pool.imap_unordered(demo, params.clone()) {
        println!("{}", task?);
    }

    println!("\n== 5. imap ==");
    for task in pool.imap(demo, params) {
        println!("{}", task?);
    }

    pool.close();
    pool.join()?;
    println!();
    Ok(())
}
