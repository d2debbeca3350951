//! Seed 001, section 1.1.2: zombies and orphans, and why this crate leaves neither.
//!
//! * Zombie: in the Python original a child exits while the parent loops forever
//!   without reaping it, so it stays in state `Z`. Here the parent keeps running too,
//!   but every child is reaped (by `join`, `is_alive`, `active_children()`, the next
//!   start, or at exit) through its pidfd: we show its `/proc` state before and after.
//! * Orphan: in the original the parent calls `os._exit(0)` while its child loops for
//!   20 s, and the child lives on under init. Here a middle process starts a looping
//!   child and then dies abruptly (`_exit` and, second case, `SIGKILL`); the looping
//!   child is killed with it (`PR_SET_PDEATHSIG`), so no orphan remains.
//!
//! Run: `cargo run --example seed001_zombie_orphan`.

use std::time::{Duration, Instant};

use multiprocess::{Connection, Process};

fn state_of(pid: u32) -> String {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(") ")
            .map_or("?", |(_, r)| &r[..1])
            .to_string(),
        Err(_) => "gone".to_string(),
    }
}

fn foo(_: ()) {
    println!("222");
}

fn looping(_: ()) {
    for _ in 0..20 {
        println!("  looping child {} still here", std::process::id());
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn middle((conn, kill_self): (Connection<u32>, bool)) {
    let mut child = Process::new(looping, ());
    child.start().expect("start");
    conn.send(&child.pid().expect("pid")).expect("send");
    std::thread::sleep(Duration::from_millis(300));
    if kill_self {
        // SIGKILL ourselves: no atexit, no join, nothing.
        let _ = std::process::Command::new("kill")
            .args(["-9", &std::process::id().to_string()])
            .status();
    }
    // `os._exit(0)`: leave at once, without joining the child.
    #[allow(unsafe_code)]
    // SAFETY: `_exit` ends the process at once; no Rust state is touched afterwards.
    unsafe {
        libc::_exit(0)
    };
}

fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let s = state_of(pid);
        if s == "gone" || s == "Z" {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    println!("-- zombie --");
    // Fork: the child is ours to reap (a fork-server child is reaped by the server).
    let mut p = multiprocess::get_context(multiprocess::StartMethod::Fork).process(foo, ());
    p.start()?;
    let pid = p.pid().unwrap_or(0);
    std::thread::sleep(Duration::from_millis(200));
    println!(
        "111 (child {pid} has exited; the parent keeps running; /proc state: {})",
        state_of(pid)
    );
    let _ = multiprocess::active_children(); // reaps what has ended, as Python's does
    println!("after active_children(): child {pid} is {}", state_of(pid));

    for (label, kill_self) in [("_exit(0)", false), ("SIGKILL", true)] {
        println!("-- orphan: the middle process ends with {label} --");
        let (here, there) = multiprocess::pipe::<u32>()?;
        let mut mid = Process::new(middle, (there, kill_self));
        mid.start()?;
        let child = here.recv_timeout(Duration::from_secs(10))?;
        mid.join()?;
        println!(
            "middle process exited with {:?}; its looping child {child} ...",
            mid.exitcode()
        );
        println!("... is gone: {}", wait_gone(child));
    }
    Ok(())
}
