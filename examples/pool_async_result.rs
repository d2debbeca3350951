//! Seed 003, "Pool": "使用" (usage) and "AsyncResult": a `Pool(4)` running five
//! `long_time_task`s; then `get()` called before `join()` (it blocks, so the tasks run
//! one at a time) and after it (they run in parallel); last, the `AsyncResult` methods
//! the seed lists (`apply`, `get(timeout)`, `wait(timeout)`, `ready()`,
//! `successful()`).
//!
//! Python, part 1:
//! ```python
//! def long_time_task(name):
//!     print('Run task %s (%s)...' % (name, os.getpid()))
//!     start = time.time()
//!     time.sleep(random.random() * 3)
//!     end = time.time()
//!     print('Task %s runs %0.2f seconds.' % (name, (end - start)))
//!
//! if __name__=='__main__':
//!     print('Parent process %s.' % os.getpid())
//!     p = Pool(4) # 最多跑 4 个进程
//!     for i in range(5):
//!         p.apply_async(long_time_task, args=(i,))
//!     print('Waiting for all subprocesses done...')
//!     p.close()
//!     p.join()
//!     print('All subprocesses done.')
//! ```
//!
//! Part 2, 在 `pool.join()` 前调用 `get()`，会造成阻塞 (`get()` before `join()` blocks):
//! ```python
//! def f(x):
//!     time.sleep(random.random() * 3)
//!     return x * x
//!
//! def main():
//!     pool = Pool(processes=4)
//!     t_start = time.time()
//!     for i in range(5):
//!         result = pool.apply_async(f, (i,))
//!         print(result.get())
//!     pool.close()
//!     pool.join()
//!     print(time.time() - t_start)
//! ```
//!
//! Part 3, 在 `pool.join()` 后调用 `get()`，不会造成阻塞 (`get()` after `join()` does not
//! block):
//! ```python
//! def main():
//!     pool = Pool(processes=4)
//!     t_start = time.time()
//!     res_list = []
//!     for i in range(5):
//!         result = pool.apply_async(f, (i,))
//!         res_list.append(result)
//!     pool.close()
//!     pool.join()
//!     for res in res_list:
//!         print(res.get())
//!     print(time.time() - t_start)
//! ```
//!
//! Rust: the same calls; `apply_async` returns a `Result<AsyncResult>`, and
//! `get()` a `Result` with the value or how the task failed. The random sleeps become
//! fixed ones, shorter (the run takes about 4 s): in part 1 they follow the seed's
//! printed run at half the time (task 2 is the shortest, so task 4 starts in its
//! worker, same pid); in parts 2 and 3, `f(x)` sleeps 300, 500, 200, 400, 250 ms. So
//! part 2 takes their sum, about 1.65 s, as each `get()` waits for its task before
//! the next is submitted, and part 3 about 0.5 s, the longest chain on four workers.
//! The seed prints part 3's results as `9 0 16 1 4`; that cannot come from its code,
//! which reads `res_list` in submission order: the twin prints `0 1 4 9 16` both times.
//!
//! Part 4 shows the other methods of the seed's reference list. `get_timeout` fails
//! with `ErrorKind::Timeout` (Python's `multiprocessing.TimeoutError`) and the task
//! goes on; `successful()` before the result is ready is an `ErrorKind::InvalidState`
//! error (Python's `ValueError`). `get()` moves the value out, so it can be called
//! once (Python returns it again). A task that panics fails with
//! `ErrorKind::Panicked`, its message and where it panicked; under `RUST_BACKTRACE=1`
//! the error also carries the worker's backtrace, which the twin leaves out by
//! printing the first line only.
//!
//! Run: `cargo run --example pool_async_result`.

use std::time::{Duration, Instant};

use multiprocess::{ErrorKind, Pool};

/// Part 1: how long each task works, in ms (the seed's printed run, halved).
const TASK_MS: [u64; 5] = [700, 140, 70, 430, 950];
/// Parts 2 and 3: how long `f(x)` sleeps, in ms.
const F_MS: [u64; 5] = [300, 500, 200, 400, 250];

fn long_time_task(name: usize) {
    println!("Run task {name} ({})...", std::process::id());
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(TASK_MS[name]));
    println!(
        "Task {name} runs {:.2} seconds.",
        start.elapsed().as_secs_f64()
    );
}

fn f(x: usize) -> usize {
    std::thread::sleep(Duration::from_millis(F_MS[x]));
    x * x
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn fails(_: ()) -> u64 {
    panic!("this task fails");
}

fn part1() -> multiprocess::Result<()> {
    println!("Parent process {}.", std::process::id());
    let p = Pool::new(4)?; // 最多跑 4 个进程 (four processes at most)
    for i in 0..5 {
        p.apply_async(long_time_task, i)?;
    }
    println!("Waiting for all subprocesses done...");
    p.close();
    p.join()?;
    println!("All subprocesses done.");
    Ok(())
}

/// `get()` right after each `apply_async`: blocks, so one task runs at a time.
fn get_before_join() -> multiprocess::Result<()> {
    let pool = Pool::new(4)?;
    let t_start = Instant::now();
    for i in 0..5 {
        let result = pool.apply_async(f, i)?;
        println!("{}", result.get()?);
    }
    pool.close();
    pool.join()?;
    println!("{:.3}", t_start.elapsed().as_secs_f64());
    Ok(())
}

/// Submit all, `close`/`join`, then `get()`: the results are already there.
fn get_after_join() -> multiprocess::Result<()> {
    let pool = Pool::new(4)?;
    let t_start = Instant::now();
    let mut res_list = Vec::new();
    for i in 0..5 {
        let result = pool.apply_async(f, i)?;
        res_list.push(result);
    }
    pool.close();
    pool.join()?;
    for res in &res_list {
        println!("{}", res.get()?);
    }
    println!("{:.3}", t_start.elapsed().as_secs_f64());
    Ok(())
}

fn async_result_methods() -> multiprocess::Result<()> {
    let pool = Pool::new(2)?;
    println!("apply(f, 3) -> {} (blocks until done)", pool.apply(f, 3)?);

    let r = pool.apply_async(nap, 300)?;
    println!("ready() -> {}", r.ready());
    match r.successful() {
        Ok(ok) => println!("successful() -> {ok}"),
        Err(e) => println!("successful() before ready -> {:?}: {e}", e.kind()),
    }
    match r.get_timeout(Duration::from_millis(50)) {
        Err(e) if e.kind() == ErrorKind::Timeout => println!("get(timeout=0.05) -> {e}"),
        other => println!("get(timeout=0.05) -> unexpected {other:?}"),
    }
    println!(
        "wait(timeout=0.05) -> ready: {}",
        r.wait_timeout(Duration::from_millis(50))
    );
    r.wait();
    println!(
        "wait() -> ready() {}, successful() {}",
        r.ready(),
        r.successful()?
    );
    println!("get() -> {}", r.get()?);
    let again = r.get().unwrap_err();
    println!("get() again -> {:?}: {again}", again.kind());

    let bad = pool.apply_async(fails, ())?;
    bad.wait();
    println!("a task that panics: successful() -> {}", bad.successful()?);
    let e = bad.get().unwrap_err();
    let first_line = e.to_string().lines().next().unwrap_or_default().to_string();
    println!("  get() -> {:?}: {first_line}", e.kind());
    Ok(())
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    println!("== 1. Pool(4), five long_time_tasks ==");
    part1()?;
    println!("\n== 2. get() before join(): blocks ==");
    get_before_join()?;
    println!("\n== 3. get() after join(): does not block ==");
    get_after_join()?;
    println!("\n== 4. AsyncResult's methods ==");
    async_result_methods()
}
