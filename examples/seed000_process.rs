//! Seed 000, section 2.2.1: a `Process` running `fn('oppo')`, both sides printing
//! `info()`.
//!
//! Python prints `module name: __main__` in the parent and `__mp_main__` in the child
//! (the child re-imports the main module). The Rust twin prints the process name
//! instead: `MainProcess` in the parent, `Process-1` in the child, which re-enters this
//! binary through `multiprocess::init()`.
//! Run: `cargo run --example seed000_process`.

use multiprocess::{Process, current_process, parent_process};

fn info() {
    println!("{} Enter info {}", "=".repeat(10), "=".repeat(10));
    println!("process name: {}", current_process().name());
    println!(
        "parent process id:  {}",
        parent_process().map_or(std::os::unix::process::parent_id(), |p| p.pid())
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
