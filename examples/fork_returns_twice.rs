//! Seed 000, section 2.1: `fork()` is called once and returns twice.
//!
//! Python:
//! ```python
//! import os
//! pid = os.fork()
//! if pid < 0:
//!     print("Fail to create process")
//! elif pid == 0:
//!     print("I am child process (%s) and my parent is (%s)" % (os.getpid(), os.getppid()))
//! else:
//!     print("I (%s) just create a child process (%s)" % (os.getpid(), pid))
//! ```
//!
//! Rust: `multiprocess::fork()` returns `Fork::Parent(pid)` in the parent and
//! `Fork::Child` in the child; a failed fork is an `Err` (Python's `pid < 0`). The
//! child ends with `std::process::exit`, and the parent reaps it with
//! `multiprocess::waitpid`, which returns its exit code. (Python's example never
//! waits; here an unwaited fork child would still be reaped at exit, so no zombie is
//! left either way.) `parent_process()` in the child is the process that forked it,
//! the same pid as `os.getppid()`.
//!
//! Run: `cargo run --example fork_returns_twice`.

use multiprocess::Fork;

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let pid = match multiprocess::fork() {
        Ok(pid) => pid,
        Err(e) => {
            println!("Fail to create process: {e}");
            return Err(e);
        }
    };
    match pid {
        Fork::Child => {
            println!(
                "I am child process ({}) and my parent is ({})",
                std::process::id(),
                multiprocess::parent_process().map_or(0, |p| p.pid())
            );
            std::process::exit(0);
        }
        Fork::Parent(pid) => {
            println!(
                "I ({}) just create a child process ({pid})",
                std::process::id()
            );
            let code = multiprocess::waitpid(pid)?;
            assert_eq!(code, 0, "the child exits with 0");
        }
    }
    Ok(())
}
