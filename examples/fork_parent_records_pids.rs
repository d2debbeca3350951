//! Seed 004, "fork()": `fork()` returns twice, the child's pid in the parent and 0 in the
//! child; and the reason the seed gives for that design: a parent may fork many
//! children, so it must keep each one's pid, while a child finds its one parent with
//! `getppid()`.
//!
//! Python:
//! ```python
//! import os
//! print('Process (%s) start...' % os.getpid())
//! # Only works on Unix/Linux/Mac:
//! pid = os.fork()
//! if pid == 0:
//!     print('I am child process (%s) and my parent is %s.' % (os.getpid(), os.getppid()))
//! else:
//!     print('I (%s) just created a child process (%s).' % (os.getpid(), pid))
//! ```
//! Output in the seed:
//! ```text
//! Process (876) start...
//! I (876) just created a child process (877).
//! I am child process (877) and my parent is 876.
//! ```
//!
//! Rust, part 1, the seed: `multiprocess::fork()` returns `Fork::Parent(pid)` or
//! `Fork::Child`; `getppid()` is `std::os::unix::process::parent_id()`. The first line
//! prints once, as it runs before the fork. The parent and child lines come from two
//! processes, so their order may vary (here the child's often comes first). Unlike the
//! seed, the child leaves with `std::process::exit` and the parent reaps it with
//! `waitpid`, which returns its exit code.
//!
//! Part 2, "一个父进程可以fork出很多子进程" (one parent, many children): the parent forks
//! three times and keeps the pids `fork()` gave it in a `Vec`; each child prints its
//! `getppid()`, the same number in all three, and exits with its index as exit code;
//! then the parent waits for each recorded pid and prints its code: the three
//! `child <pid> exited with <code>` lines come in fork order, codes 0, 1, 2 (the
//! children's own lines may fall in between).
//!
//! (Seed 000's fork example, `fork_returns_twice.rs`, is part 1 without the first line.)
//!
//! Run: `cargo run --example fork_parent_records_pids`.

use std::os::unix::process::parent_id;

use multiprocess::Fork;

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    println!("Process ({}) start...", std::process::id());
    // Only works on Unix/Linux/Mac (as this crate).
    match multiprocess::fork()? {
        Fork::Child => {
            println!(
                "I am child process ({}) and my parent is {}.",
                std::process::id(),
                parent_id()
            );
            std::process::exit(0);
        }
        Fork::Parent(pid) => {
            println!(
                "I ({}) just created a child process ({pid}).",
                std::process::id()
            );
            multiprocess::waitpid(pid)?;
        }
    }

    println!("-- one parent, three children --");
    let mut children = Vec::new();
    for i in 0..3 {
        match multiprocess::fork()? {
            Fork::Child => {
                println!(
                    "child {i} ({}): my parent is {}",
                    std::process::id(),
                    parent_id()
                );
                std::process::exit(i);
            }
            Fork::Parent(pid) => children.push(pid),
        }
    }
    println!(
        "parent {} recorded its children: {children:?}",
        std::process::id()
    );
    for pid in children {
        println!("child {pid} exited with {}", multiprocess::waitpid(pid)?);
    }
    Ok(())
}
