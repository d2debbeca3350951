//! Seed 003, "timeout control": join with a timeout, check `is_alive()`, and
//! `terminate()` a process that overran its budget. Rust adds a typed timeout error
//! for calls that return a value.
//! Run: `cargo run --example seed003_timeout`.

use std::time::Duration;

use multiprocess::{ErrorKind, Process};

fn slow(secs: u64) {
    println!("working for {secs} s ...");
    std::thread::sleep(Duration::from_secs(secs));
    println!("done");
}

fn slow_value(secs: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(secs));
    secs
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let mut process = Process::new(slow, 10);
    process.start()?;
    let budget = Duration::from_secs(1); // the seed uses 5 s; 1 s keeps the example short
    process.join_timeout(budget)?;
    if process.is_alive()? {
        println!(
            "timeout after {budget:?}: terminating {}",
            process.get_name()
        );
        process.terminate()?;
        process.join()?;
    }
    println!("exitcode: {:?}", process.exitcode());

    let h = multiprocess::spawn(slow_value, 10)?;
    let pid = h.pid();
    match h.join_timeout(Duration::from_millis(300)) {
        Err(e) if e.kind() == ErrorKind::Timeout => println!("spawn join_timeout: {e}"),
        other => println!("unexpected: {other:?}"),
    }
    // The child still runs and would be joined at exit; end it now.
    let _ = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status();
    Ok(())
}
