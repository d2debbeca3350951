//! Seed 003, "超时控制" (timeout control): `join(timeout)`, then `is_alive()`, and
//! `terminate()` a process that overran its budget.
//!
//! Python (abridged from the seed):
//! ```python
//! TIMEOUT_SECONDS = 5
//!
//! def timeout_control():
//!     ctx = get_context("spawn")
//!     result_queue = ctx.Queue()
//!     process = ctx.Process(target=test_func, args=(task_name,), name=f"test_process")
//!     process.start()
//!     process.join(TIMEOUT_SECONDS)
//!     if process.is_alive():
//!         process.terminate()
//!         process.join()
//!         raise CustomTimeoutError(f"task exceeded {TIMEOUT_SECONDS} seconds")
//! ```
//!
//! Rust: the same calls on a `Process` from the `spawn` context. `join_timeout`
//! returns whether the child ended (Python's `join(timeout)` returns `None` and you ask
//! `is_alive()`; both are shown). A terminated child's exit code is `-15` (`SIGTERM`),
//! as in Python. The seed's `CustomTimeoutError` becomes an `Error` of kind
//! `ErrorKind::Timeout` returned by `timeout_control`, and `main` matches on the kind.
//! Two tasks run: a quick one that returns its result through `result_queue`, and a
//! slow one that is terminated. The budget is 1 s instead of 5 s to keep this short.
//!
//! Last, the library's own typed timeout: `spawn(f, x)` returns a `JoinHandle`, and
//! `join_timeout` gives `Err` with `ErrorKind::Timeout` if `f` has not returned in
//! time. The handle stays usable after a timeout: here the second `join_timeout`, with
//! a budget long enough, gets the value (the task takes 1 s).
//!
//! Run: `cargo run --example join_timeout_terminate` (about 2.5 s).

use std::time::Duration;

use multiprocess::{Error, ErrorKind, Queue, StartMethod, get_context};

const TIMEOUT: Duration = Duration::from_secs(1);

fn test_func((task_name, work_ms, result_queue): (String, u64, Queue<String>)) {
    println!("  {task_name}: working for {work_ms} ms ...");
    std::thread::sleep(Duration::from_millis(work_ms));
    result_queue
        .put(format!("{task_name} done"))
        .expect("the queue is open");
}

fn timeout_control(task_name: &str, work_ms: u64) -> multiprocess::Result<String> {
    let ctx = get_context(StartMethod::Spawn);
    let result_queue = ctx.queue()?;
    let mut process = ctx
        .process(
            test_func,
            (task_name.to_string(), work_ms, result_queue.clone()),
        )
        .name("test_process");
    process.start()?;
    let ended = process.join_timeout(TIMEOUT)?;
    let alive = process.is_alive()?;
    println!(
        "  join_timeout({TIMEOUT:?}) -> {ended}; is_alive() -> {alive}; exitcode {:?}",
        process.exitcode()
    );
    if alive {
        process.terminate()?;
        process.join()?;
        println!(
            "  terminate(); join(); {} exitcode {:?}",
            process.get_name(),
            process.exitcode()
        );
        return Err(Error::new(
            ErrorKind::Timeout,
            format!("task exceeded {} seconds", TIMEOUT.as_secs()),
        ));
    }
    result_queue.get_timeout(Duration::from_secs(1))
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    for (task_name, work_ms) in [("quick task", 200), ("slow task", 10_000)] {
        println!("timeout_control({task_name:?}):");
        match timeout_control(task_name, work_ms) {
            Ok(result) => println!("  result: {result:?}"),
            Err(e) if e.kind() == ErrorKind::Timeout => println!("  CustomTimeoutError: {e}"),
            Err(e) => return Err(e),
        }
    }

    println!("spawn(nap, 1000).join_timeout(300 ms):");
    let mut h = multiprocess::spawn(nap, 1000)?;
    match h.join_timeout(Duration::from_millis(300)) {
        Ok(ms) => println!("  returned {ms} (unexpected: too early)"),
        Err(e) if e.kind() == ErrorKind::Timeout => {
            println!("  Err(kind {:?}): {e}", e.kind());
        }
        Err(e) => return Err(e),
    }
    println!("the same handle, join_timeout(5 s):");
    println!("  returned {}", h.join_timeout(Duration::from_secs(5))?);
    Ok(())
}
