//! Seed 001, section 1.1.2 (进程回收): zombies and orphans, and why this crate leaves
//! neither.
//!
//! Zombie (1.1.2.1). Python:
//! ```python
//! def foo():
//!     print(222)
//! if __name__ == '__main__':
//!     p = Process(target=foo)
//!     p.start()
//!     while True:            # never joins: `ps` shows the ended child in state Z
//!         print(111)
//!         time.sleep(1)
//! ```
//! Rust, part 1: the parent also loops (three rounds) without joining, and reads the
//! child's state from `/proc/<pid>/stat` each round. With the default start method, the
//! fork server, the child's OS parent is the server, which reaps it the moment it
//! ends: no zombie even though we never join. With `fork` (and `spawn`) the child is
//! our own: it is a zombie (`Z`) until we call into the library; `active_children()`
//! (as Python's would), `join()`, `is_alive()`, the next `start()`, or the exit of
//! `main` reap it.
//!
//! Orphan (1.1.2.2). Python:
//! ```python
//! def foo():
//!     for i in range(20):
//!         print(222)
//!         time.sleep(1)
//! if __name__ == '__main__':
//!     p = Process(target=foo)
//!     p.start()
//!     print(111)
//!     os._exit(0)            # the parent dies; the child loops on, adopted by init
//! ```
//! Rust, part 2: a two-level setup. `main` starts a middle process (Python's
//! parent), which starts the looping child (Python's `foo`), prints 111 and dies
//! abruptly: by `_exit(0)` (Python's `os._exit`, no exit handlers), then by `SIGKILL`
//! from `main`. `main` watches the looping child in `/proc`: it dies with the middle
//! process (`PR_SET_PDEATHSIG`, set up by the library), so no orphan remains. A third,
//! control run opts out with `Process::die_with_parent(false)`: that child does become
//! an orphan, adopted by another process, as in Python; `main` then kills it.
//!
//! A looping child still running 500 ms after its parent ended is reported as
//! `ORPHANED`, and `main` then fails. (A fork-server child is not its parent's child:
//! it watches the parent's pidfd from a small thread of its own and dies once the
//! parent is gone, even if the fork server was killed first.)
//!
//! Run: `cargo run --example zombies_and_orphans` (about 2 s).

use std::time::{Duration, Instant};

use multiprocess::{Connection, Error, ErrorKind, Process, StartMethod, get_context};
use serde::{Deserialize, Serialize};

/// The state letter and parent pid of `pid`, from `/proc/<pid>/stat`; `None` once the
/// pid is gone (reaped).
fn stat(pid: u32) -> Option<(char, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ...": the name may hold spaces, so split after the last ')'.
    let (_, rest) = s.rsplit_once(") ")?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

fn describe(pid: u32) -> String {
    match stat(pid) {
        None => "no /proc entry: gone, reaped".to_string(),
        Some(('Z', ppid)) => format!("state Z: a ZOMBIE, waiting for its parent {ppid}"),
        Some((s, ppid)) => format!("state {s}: alive, its parent is {ppid}"),
    }
}

/// Waits up to `timeout` for `pid` to stop running; says how it looks then, and
/// whether it died within `grace` (else it ran on without its parent: an orphan).
///
/// A process whose parent is gone is adopted (by init, pid 1, or a subreaper), and
/// when it dies it is the adopter that reaps it, in its own time: until then it shows
/// as a zombie of the adopter. Dead is what counts: an orphan is a process that runs
/// on.
fn watch_end(pid: u32, grace: Duration, timeout: Duration) -> (bool, String) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        let t = start.elapsed();
        let ms = t.as_millis();
        let end = match stat(pid) {
            None => format!("dead {ms} ms later, and reaped: no /proc entry"),
            Some(('Z', ppid)) => {
                format!("dead {ms} ms later: state Z, held by its adopter {ppid}, which reaps it")
            }
            Some(_) => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
        };
        return if t <= grace {
            (true, end)
        } else {
            (
                false,
                format!("ORPHANED: it ran on without its parent; {end}"),
            )
        };
    }
    (
        false,
        format!(
            "ORPHANED: still running after {timeout:?}: {}",
            describe(pid)
        ),
    )
}

fn started_pid<A>(p: &Process<A>) -> multiprocess::Result<u32>
where
    A: Serialize + serde::de::DeserializeOwned + 'static,
{
    p.pid()
        .ok_or_else(|| Error::new(ErrorKind::InvalidState, "not started"))
}

// ---- part 1: zombie ----------------------------------------------------------------

fn foo(_: ()) {
    println!("222");
}

fn zombie(method: StartMethod) -> multiprocess::Result<()> {
    println!("-- zombie? start method {method} --");
    let mut p = get_context(method).process(foo, ());
    p.start()?;
    let pid = started_pid(&p)?;
    // Python's `while True: print(111)`: no join, no library call at all.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(150));
        println!("111   child {pid}: {}", describe(pid));
    }
    let n = multiprocess::active_children().len();
    println!(
        "after active_children() ({n} running): child {pid}: {}",
        describe(pid)
    );
    p.join()?;
    println!("exitcode {:?}", p.exitcode());
    Ok(())
}

// ---- part 2: orphan ----------------------------------------------------------------

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
enum End {
    /// The middle process calls `_exit(0)` (Python's `os._exit(0)`).
    Exit,
    /// `main` sends the middle process `SIGKILL`.
    Killed,
    /// Control: the looping child was started with `die_with_parent(false)`, then the
    /// middle process calls `_exit(0)`.
    ExitOptedOut,
}

/// Python's `foo`: 20 rounds (100 ms apart here, 1 s in the seed).
fn looping(_: ()) {
    for _ in 0..20 {
        println!("222   (looping child {})", std::process::id());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Python's `__main__` block: start the looping child, print 111, die.
fn middle((conn, end): (Connection<u32>, End)) {
    if let Err(e) = run_middle(&conn, end) {
        eprintln!("middle process: {e}");
        std::process::exit(1);
    }
}

fn run_middle(conn: &Connection<u32>, end: End) -> multiprocess::Result<()> {
    let mut p = Process::new(looping, ()).die_with_parent(end != End::ExitOptedOut);
    p.start()?;
    std::thread::sleep(Duration::from_millis(250));
    conn.send(&started_pid(&p)?)?;
    // Wait until `main` has looked at the looping child, then die.
    conn.recv_timeout(Duration::from_secs(10))?;
    println!("111   (middle process {})", std::process::id());
    if end == End::Killed {
        // `main` kills us now; the bound only keeps a broken run from hanging.
        std::thread::sleep(Duration::from_secs(10));
    }
    #[allow(unsafe_code)]
    // SAFETY: `_exit` ends the process at once (Python's `os._exit`); nothing runs
    // afterwards, no exit handler, no join of the child.
    unsafe {
        libc::_exit(0)
    }
}

/// Runs one orphan scenario; `true` if the looping child died with its parent.
fn orphan(end: End) -> multiprocess::Result<bool> {
    let how = match end {
        End::Exit => "the middle process calls _exit(0)",
        End::Killed => "main SIGKILLs the middle process",
        End::ExitOptedOut => "control: die_with_parent(false), then _exit(0)",
    };
    println!("-- orphan? {how} --");
    let (here, there) = multiprocess::pipe::<u32>()?;
    let mut mid = Process::new(middle, (there, end));
    mid.start()?;
    let mid_pid = started_pid(&mid)?;
    let child = here.recv_timeout(Duration::from_secs(5))?;
    let parent = stat(child).map(|(_, ppid)| ppid);
    let via = if parent == Some(mid_pid) {
        " (the middle process)"
    } else if parent.and_then(stat).map(|(_, ppid)| ppid) == Some(mid_pid) {
        " (the middle process's fork server)"
    } else {
        ""
    };
    println!("looping child {child}: {}{via}", describe(child));
    here.send(&0)?; // go ahead and die
    if end == End::Killed {
        std::thread::sleep(Duration::from_millis(50));
        mid.kill()?;
    }
    mid.join()?;
    println!(
        "middle process {mid_pid} ended, exitcode {:?}",
        mid.exitcode()
    );
    if end == End::ExitOptedOut {
        std::thread::sleep(Duration::from_millis(250));
        println!(
            "looping child {child}: {}  <- an orphan, adopted",
            describe(child)
        );
        let pid = libc::pid_t::try_from(child)
            .map_err(|_| Error::new(ErrorKind::InvalidInput, "pid out of range"))?;
        #[allow(unsafe_code)]
        // SAFETY: kill(2) has no memory effects; `pid` is the orphan we just saw.
        let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::new(ErrorKind::Io, format!("kill {pid}: {e}")));
        }
        println!("(main sent it SIGKILL)");
    }
    let (died, how) = watch_end(child, Duration::from_millis(500), Duration::from_secs(3));
    println!("looping child {child}: {how}");
    Ok(died)
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    zombie(StartMethod::ForkServer)?;
    zombie(StartMethod::Fork)?;
    let mut orphaned = 0;
    for end in [End::Exit, End::Killed, End::ExitOptedOut] {
        if !orphan(end)? {
            orphaned += 1;
        }
    }
    if orphaned > 0 {
        return Err(Error::new(
            ErrorKind::ProcessDied,
            format!("{orphaned} looping child(ren) outlived their parent"),
        ));
    }
    Ok(())
}
