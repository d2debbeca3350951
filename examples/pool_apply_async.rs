//! Seed 000, section 2.2.3: a `Pool(4)` running five `long_time_task`s with
//! `apply_async`; tasks 0-3 start at once, task 4 only when one of them is done.
//!
//! Python:
//! ```python
//! def long_time_task(name):
//!     print("Run task %s (%s)" % (name, os.getpid()))
//!     start = time.time()
//!     time.sleep(random.random() * 3)
//!     end = time.time()
//!     print('Task %s runs %0.2f seconds.' % (name, (end - start)))
//!
//! if __name__=='__main__':
//!     print('Parent process %s.' % os.getpid())
//!     p = Pool(4)  # 线程池的大小是4
//!     for i in range(5):
//!         p.apply_async(long_time_task, args=(i,))
//!     print('Waiting for all subprocesses done...')
//!     p.close()
//!     p.join()
//!     print('All subprocesses done.')
//! ```
//!
//! Rust: the same calls. `apply_async` returns a `Result<AsyncResult>` (the call
//! could fail to serialize its argument, or the pool could be closed), hence the `?`;
//! the `AsyncResult` itself is dropped, as Python drops it: the task still runs and
//! `join()` waits for it. The sleep is `random.random() * 3` seconds in Python; here
//! each task sleeps a fixed, random-looking time below a second (task 1 is the short
//! one, as in the seed's output), so the run takes about 1 s and always shows the
//! point of the example: task 4 starts in the worker that finished task 1 (same pid),
//! while tasks 0, 2 and 3 still run. The four `Run task` lines of the first wave may
//! come in any order, as in Python.
//!
//! Run: `cargo run --example pool_apply_async`.

use std::time::{Duration, Instant};

use multiprocess::Pool;

/// How long each task "works", in ms (Python: `random.random() * 3` seconds).
const WORK_MS: [u64; 5] = [730, 50, 960, 880, 420];

fn long_time_task(name: usize) {
    println!("Run task {name} ({})", std::process::id());
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(WORK_MS[name]));
    println!(
        "Task {name} runs {:.2} seconds.",
        start.elapsed().as_secs_f64()
    );
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    println!("Parent process {}.", std::process::id());
    let p = Pool::new(4)?; // 线程池的大小是4 (a pool of 4 worker processes)
    for i in 0..5 {
        p.apply_async(long_time_task, i)?;
    }
    println!("Waiting for all subprocesses done...");
    p.close();
    p.join()?;
    println!("All subprocesses done.");
    Ok(())
}
