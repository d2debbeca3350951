//! Seed 003, "Process", and seed 004, "multiprocessing模块": the plainest `Process`. The
//! parent prints its pid, starts a child that prints its name argument and pid, and
//! `join()`s it before printing the last line. The two seeds give the same program
//! with other words, so this twin runs both, one after the other.
//!
//! Python, seed 003:
//! ```python
//! def run_proc(name):
//!     print('Run child process %s (%s)...' % (name, os.getpid()))
//!
//! if __name__=='__main__':
//!     print('Parent process %s.' % os.getpid())
//!     p = Process(target=run_proc, args=('test',))
//!     print('Child process will start.')
//!     p.start()
//!     p.join()
//!     print('Child process end.')
//! ```
//! Seed 004:
//! ```python
//! def run(name):
//!     print('子进程%s'%name,os.getpid())
//! if __name__ == '__main__':
//!     print('主进程 %s'%os.getpid())
//!     p = Process(target=run,args=('run',))
//!     p.start()
//!     p.join()
//!     print('子进程结束')
//! ```
//!
//! Rust: `Process::new(run_proc, "test".to_string())` is
//! `Process(target=run_proc, args=('test',))`: one argument, here a `String` (several
//! would be a tuple). Expected output, with other pids:
//! ```text
//! Parent process 928.
//! Child process will start.
//! Run child process test (929)...
//! Child process end.
//! 主进程 928
//! 子进程run 930
//! 子进程结束
//! ```
//! Seed 003's printed output ends with `Process end.`, which its own code does not
//! print; the twin prints what the code says. Because of `join()` the last line of each
//! part always comes after the child's line ("等待子进程结束后再继续往下运行", wait for
//! the child to end, then go on).
//!
//! Run: `cargo run --example process_start_join`.

use multiprocess::Process;

/// Seed 003's child.
fn run_proc(name: String) {
    println!("Run child process {name} ({})...", std::process::id());
}

/// Seed 004's child (`print(a, b)` puts a space between its arguments).
fn run(name: String) {
    println!("子进程{name} {}", std::process::id());
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    println!("Parent process {}.", std::process::id());
    let mut p = Process::new(run_proc, "test".to_string());
    println!("Child process will start.");
    p.start()?;
    p.join()?;
    println!("Child process end.");

    println!("主进程 {}", std::process::id());
    let mut p = Process::new(run, "run".to_string());
    p.start()?;
    p.join()?;
    println!("子进程结束");
    Ok(())
}
