//! Seed 001, section 1.2.1.1: the entry-function guard.
//!
//! Python re-imports the main module in a spawned child, so module-level code runs
//! again ("It will be reload: 111" prints twice) and starting processes outside
//! `if __name__ == "__main__":` would recurse. In Rust nothing runs at module level;
//! the only rule is that `multiprocess::init()` is the first line of `main`: in a child
//! it runs the child's task and exits, so nothing after it runs twice, and there is no
//! guard to forget. Code *before* it would run in spawned children too: keep it first.
//! Run: `cargo run --example seed001_entry_guard`.

use multiprocess::{Process, StartMethod, get_context};

fn foo(_: ()) {
    println!("222");
    std::thread::sleep(std::time::Duration::from_millis(100));
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    println!("It will be reload: 111 (printed once: the child never gets past init())");
    // Spawn is Python's re-import case: a fresh run of this binary.
    let mut p: Process<()> = get_context(StartMethod::Spawn).process(foo, ());
    p.start()?;
    println!("333");
    p.join()?;
    Ok(())
}
