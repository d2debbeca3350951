//! Seed 004, "进程池": a `Pool(5)` running five `run` tasks with `apply_async`; all
//! five run at once, each in its own worker process.
//!
//! Python:
//! ```python
//! def run(name):
//!     print('子进程%s'%name,os.getpid())
//!     time.sleep(1)
//!
//! if __name__ == '__main__':
//!     print('主进程 %s'%os.getpid())
//!     p = Pool(5)
//!     for i in range(5):
//!         p.apply_async(run,args=(i,))
//!     print('Waiting for all subprocesses done...')
//!     p.close()
//!     p.join()
//!     print('结束')
//! ```
//!
//! Rust: the same calls (`apply_async` returns a `Result`, hence the `?`; the
//! `AsyncResult` is dropped, as in Python, and `join()` still waits for the task).
//! `print(a, b)` separates its arguments with a space, so the child's line is
//! `子进程0 12345`. Each task sleeps 300 ms instead of 1 s; as the five run at the same
//! time, the twin also prints how long the pool took in all: about 0.3 s, not 1.5 s.
//! The five `子进程` lines may come in any order, as in Python.
//!
//! Run: `cargo run --example pool_all_at_once`.

use std::time::{Duration, Instant};

use multiprocess::Pool;

fn run(name: u32) {
    println!("子进程{name} {}", std::process::id());
    std::thread::sleep(Duration::from_millis(300)); // the seed sleeps 1 s
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    println!("主进程 {}", std::process::id());
    let p = Pool::new(5)?;
    let start = Instant::now();
    for i in 0..5 {
        p.apply_async(run, i)?;
    }
    println!("Waiting for all subprocesses done...");
    p.close();
    p.join()?;
    println!("结束 ({:.1} s)", start.elapsed().as_secs_f64());
    Ok(())
}
