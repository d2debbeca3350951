//! Seed 000, section 2.1: `os.fork()` returns twice.
//!
//! Python:
//! ```python
//! pid = os.fork()
//! if pid == 0: print("I am child process (%s) and my parent is (%s)" % (os.getpid(), os.getppid()))
//! else:        print("I (%s) just create a child process (%s)" % (os.getpid(), pid))
//! ```
//!
//! Rust: `multiprocess::fork()` returns `Fork::Parent(pid)` in the parent and
//! `Fork::Child` in the child; the parent reaps the child with `waitpid` (no zombie).
//! Run: `cargo run --example seed000_fork`.

use multiprocess::Fork;

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    match multiprocess::fork()? {
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
            multiprocess::waitpid(pid)?;
        }
    }
    Ok(())
}
