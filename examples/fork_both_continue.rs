//! Seed 001, section 1.2.1.2 (fork进程): `os.fork()`, `demo()` in the child, and
//! "main process X is over" printed by both processes.
//!
//! Python:
//! ```python
//! def demo():
//!     print("[INFO] do something by process {}".format(os.getpid()))
//!     print("[INFO] this process parent pid is {}".format(os.getppid()))
//!
//! if __name__ == "__main__":
//!     process = os.fork()
//!     print(process)             # the child's pid in the parent, 0 in the child
//!     if process == 0:
//!         demo()
//!     print("main process {} is over".format(os.getpid()))
//!     time.sleep(1)
//! ```
//!
//! Rust: `multiprocess::fork()` returns `Fork::Parent(pid)` or `Fork::Child` instead
//! of an int (printed as the pid or `0` to keep the seed's output). Both processes run
//! the rest of `main`, as in Python. Python's closing `time.sleep(1)` only keeps the
//! parent alive while the child prints its parent's pid; here the parent waits for the
//! child with `waitpid` (which also reaps it) and the child leaves with
//! `std::process::exit`.
//!
//! Run: `cargo run --example fork_both_continue`.

use multiprocess::Fork;

fn demo() {
    println!("[INFO] do something by process {}", std::process::id());
    println!(
        "[INFO] this process parent pid is {}",
        multiprocess::parent_process().map_or(0, |p| p.pid())
    );
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let process = multiprocess::fork()?;
    match process {
        Fork::Parent(pid) => println!("{pid}"),
        Fork::Child => println!("0"),
    }
    if process == Fork::Child {
        demo();
    }
    println!("main process {} is over", std::process::id());
    match process {
        Fork::Child => std::process::exit(0),
        Fork::Parent(pid) => {
            multiprocess::waitpid(pid)?;
        }
    }
    Ok(())
}
