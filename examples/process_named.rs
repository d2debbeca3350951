//! Seed 004, "线程创建" (creating a thread), done with a process: the seed starts a
//! thread named 'child thread', which prints its name, waits two seconds and ends,
//! and the main thread, named `MainThread`, joins it. Python's `multiprocessing` has
//! the same shape for processes (`Process(name=...)`, `current_process().name`,
//! `MainProcess`), and so has this crate; this twin is that process version.
//!
//! Python (threads):
//! ```python
//! def run():
//!     print('子线程 %s 开始。' % threading.current_thread().name)
//!     print('等两秒.....')
//!     time.sleep(2)
//!     print('子线程结束。')
//!
//! print('主线程 %s'% threading.current_thread().name)
//! t = threading.Thread(target=run,name='child thread')
//! t.start()
//! t.join()
//! print('主线程结束。')
//! ```
//!
//! Rust (processes): `Process::new(run, ()).name("child process")` is
//! `Process(target=run, name='child process')`; in the child,
//! `current_process().name()` gives that name, and in the parent `MainProcess`
//! (Python's `MainThread` for threads). Expected output, the child's lines in the
//! middle because of `join()` (线程 "thread" becomes 进程 "process"):
//! ```text
//! 主进程 MainProcess
//! 子进程 child process 开始。
//! 等两秒.....
//! 子进程结束。
//! 主进程结束。
//! ```
//! The wait is 500 ms instead of two seconds. Threads themselves need no crate in
//! Rust (`std::thread::Builder::new().name(..)`); for a pool of threads with this
//! crate's `Pool` API, see `ThreadPool` (in `tour.rs`).
//!
//! Run: `cargo run --example process_named`.

use std::time::Duration;

use multiprocess::{Process, current_process};

fn run(_: ()) {
    println!("子进程 {} 开始。", current_process().name());
    println!("等两秒.....");
    std::thread::sleep(Duration::from_millis(500)); // the seed waits 2 s
    println!("子进程结束。");
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    println!("主进程 {}", current_process().name());
    let mut t = Process::new(run, ()).name("child process");
    t.start()?;
    t.join()?;
    println!("主进程结束。");
    Ok(())
}
