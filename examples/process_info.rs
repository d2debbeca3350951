//! Seed 000, section 2.2.1: a `Process` running `fn('oppo')`; parent and child both
//! print `info()`.
//!
//! Python:
//! ```python
//! def info():
//!     print("=" * 10, "Enter info", "=" * 10)
//!     print("module name:", __name__)
//!     print("parent process id: ", os.getppid())
//!     print("process id: ", os.getpid())
//!     print("=" * 10, "Exit info", "=" * 10)
//!
//! def fn(para):
//!     print("Enter fn : %s" % para)
//!     info()
//!     print("Exit fn")
//!
//! if __name__ == "__main__":
//!     info()
//!     p = Process(target=fn, args=('oppo',))
//!     p.start()
//!     p.join()
//! ```
//!
//! Python prints `module name: __main__` in the parent and `module name: __mp_main__`
//! in the child: a spawned (or fork-server) child is a fresh interpreter that
//! re-imports the main script under the name `__mp_main__`, so that the
//! `if __name__ == "__main__"` block does not run again. Rust has no module names at
//! run time; the matching fact is that the child is a fresh run of this same binary
//! (the default start method, the fork server, is such a run), and it is told which
//! task to run by `multiprocess::init()` on the first line of `main`. So the twin
//! prints the process name from `current_process()` instead: `MainProcess` in the
//! parent (Python's `__main__`), `Process-1` in the child (Python's `__mp_main__`).
//!
//! "parent process id" in the child is `parent_process().pid()`, the process that
//! started it, as in the seed's output. (With the fork server the OS parent, the
//! `getppid()` of the child, is the server; Python with `forkserver` would print
//! that.) The main process has no `parent_process()`, so it prints its OS parent,
//! your shell or cargo, as Python does.
//!
//! Run: `cargo run --example process_info`.

use multiprocess::{Process, current_process, parent_process};

fn info() {
    println!("{} Enter info {}", "=".repeat(10), "=".repeat(10));
    println!("process name: {}", current_process().name());
    println!(
        "parent process id:  {}",
        parent_process().map_or_else(std::os::unix::process::parent_id, |p| p.pid())
    );
    println!("process id:  {}", std::process::id());
    println!("{} Exit info {}", "=".repeat(10), "=".repeat(10));
}

fn f(para: String) {
    println!("Enter fn : {para}");
    info();
    println!("Exit fn");
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    info();
    let mut p = Process::new(f, "oppo".to_string());
    p.start()?;
    p.join()?;
    Ok(())
}
