//! Seed 001, section 1.2.1.1 (入口函数): the entry-function guard.
//!
//! Python:
//! ```python
//! def foo():
//!     print(222)
//!     time.sleep(1)
//!
//! print("It will be reload: ", 111)
//! if __name__ == '__main__':
//!     p = Process(target=foo)
//!     p.start()
//!     print(333)
//! ```
//! Where a child is started by re-loading the main module (`spawn`, always on
//! Windows), module-level code runs again in the child (the `print(... 111)` above runs
//! there too), and process creation must sit under `if __name__ == '__main__':`, or
//! each child would start children again, without end (Python stops that with a
//! `RuntimeError`).
//!
//! Rust: a `spawn` child is likewise a fresh run of this binary, which starts in
//! `main`. The guard is `multiprocess::init()`, and it must be the first line of
//! `main`: in a child it runs the child's task (`foo`) and exits, so code *after* it
//! never runs in a child: "It will be reload: 111" and 333 print once, in the parent.
//! Code *before* it would run in every child, like Python's module-level code, which
//! is why nothing goes there. Unlike Python's guard it cannot wrap the wrong lines;
//! and if `init()` is missing altogether, the child's `main` reaching `start()` gets an
//! error instead of recursing.
//!
//! This twin uses the `spawn` start method, Python's re-load case; the default (fork
//! server) and `fork` behave the same here. As in Python, 333 and 222 come from two
//! processes, so their order may vary.
//!
//! Run: `cargo run --example entry_guard`.

use std::time::Duration;

use multiprocess::{Process, StartMethod, get_context};

fn foo(_: ()) {
    println!("222");
    let exe = std::env::current_exe().map_or_else(|e| e.to_string(), |p| p.display().to_string());
    println!(
        "    (child {}: a fresh run of {exe}; its main() went into init(), which runs foo and exits)",
        std::process::id()
    );
    std::thread::sleep(Duration::from_millis(100));
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init(); // the guard: Python's `if __name__ == '__main__':`
    println!("It will be reload: 111");
    let mut p: Process<()> = get_context(StartMethod::Spawn).process(foo, ());
    p.start()?;
    println!("333");
    p.join()?;
    println!(
        "(111 and 333 printed once, by the parent {}: in the child, nothing after init() ran)",
        std::process::id()
    );
    Ok(())
}
