//! A lock whose holder died is taken over even when the holder's thread id has been
//! given to a new, live thread: the owner check compares the id *and* the thread's
//! start time, so the newcomer is not mistaken for the dead holder.
//!
//! The reuse is forced exactly: we write `id - 1` to `/proc/sys/kernel/ns_last_pid`
//! (needs `CAP_SYS_ADMIN` in our pid namespace; skipped with a message without it) and
//! start a thread, which gets `id` unless another process took it first (retried).
//! Writing `ns_last_pid` only moves where the kernel's cyclic search for a free id
//! starts; ids in use are skipped, so other processes are not disturbed.

multiprocess::test_support!();

#[macro_use]
mod common;

use std::fs::File;
use std::io::Write;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use multiprocess::{Connection, Lock, StartMethod, get_context};

use common::LONG;

/// The calling thread's id, from `/proc/thread-self` (a link to `<pid>/task/<tid>`).
fn my_tid() -> u32 {
    let link = std::fs::read_link("/proc/thread-self").expect("read /proc/thread-self");
    link.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected /proc/thread-self: {link:?}"))
}

/// Takes the lock, reports the id of the thread that holds it, waits to be killed.
fn hold_and_report((lock, conn): (Lock, Connection<u32>)) {
    let g = lock.acquire();
    conn.send(&my_tid()).unwrap();
    std::thread::sleep(Duration::from_secs(600));
    drop(g);
}

/// A thread of this process that has the id we asked for. It runs until `stop` is
/// dropped (so also when a failing test unwinds).
struct Squatter {
    tid: u32,
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Squatter {
    fn stop(self) {
        drop(self.stop);
        self.thread.join().unwrap();
    }
}

/// Why the reuse could not be forced.
#[derive(Debug)]
enum NoReuse {
    /// `ns_last_pid` cannot be written: no `CAP_SYS_ADMIN`, or a kernel without it.
    NotPermitted(std::io::Error),
    /// Other processes kept taking the id first.
    Raced,
}

/// Starts a thread whose id is `tid`, by setting the namespace's last id to `tid - 1`
/// just before `clone`. Another process may take the id between the two; retried.
fn squat(tid: u32) -> Result<Squatter, NoReuse> {
    for _ in 0..200 {
        let mut f = File::options()
            .write(true)
            .open("/proc/sys/kernel/ns_last_pid")
            .map_err(NoReuse::NotPermitted)?;
        f.write_all(format!("{}", tid - 1).as_bytes())
            .map_err(NoReuse::NotPermitted)?;
        drop(f);
        let (stop, stopped) = mpsc::channel::<()>();
        let (said, hear) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            said.send(my_tid()).unwrap();
            let _ = stopped.recv(); // Err once the sender is dropped
        });
        let got = hear
            .recv_timeout(LONG)
            .expect("the squatter reports its id");
        let s = Squatter {
            tid: got,
            stop,
            thread,
        };
        if got == tid {
            return Ok(s);
        }
        s.stop();
    }
    Err(NoReuse::Raced)
}

/// Field 22 of `/proc/<tid>/stat`: when the thread started, in clock ticks.
fn start_time(tid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{tid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn owner_id_reused(method: StartMethod) {
    let lock = Lock::new().unwrap();
    let (here, there) = multiprocess::pipe().unwrap();
    let mut p = get_context(method).process(hold_and_report, (lock.clone(), there));
    p.start().unwrap();
    let owner = here.recv_timeout(LONG).unwrap();
    let owner_start = start_time(owner).expect("the holder runs");
    assert!(lock.try_acquire().is_none(), "held by the child");
    p.kill().unwrap();
    // Joined, so reaped: its id is free for anyone.
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(-9));
    // Start times count 10 ms ticks: a thread that gets the id in the very tick the
    // holder started would look like it (see `sync::raw`). Only an id handed out on
    // purpose, as here, can come back that fast; let two ticks pass.
    std::thread::sleep(Duration::from_millis(25));

    let squatter = match squat(owner) {
        Ok(s) => s,
        Err(NoReuse::NotPermitted(e)) => {
            eprintln!(
                "SKIPPED: cannot force id reuse (writing /proc/sys/kernel/ns_last_pid: {e}; \
                 needs CAP_SYS_ADMIN)"
            );
            return;
        }
        Err(NoReuse::Raced) => {
            eprintln!("SKIPPED: other processes kept taking id {owner} first");
            return;
        }
    };
    assert_eq!(squatter.tid, owner);
    let squatter_start = start_time(owner).expect("the squatter runs");
    assert_ne!(squatter_start, owner_start, "two ticks passed");

    // The id names a live thread now, but not the holder: taken over after one check.
    let t = Instant::now();
    let g = lock
        .acquire_timeout(Duration::from_secs(5))
        .expect("the dead holder's lock is taken over despite its id being in use");
    let took = t.elapsed();
    assert!(g.owner_died(), "the new holder must be told");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(
        start_time(owner).is_some(),
        "the squatter still runs under the dead holder's id"
    );
    drop(g);
    assert!(!lock.acquire().owner_died(), "told only once");
    squatter.stop();
}

for_each_method!(serial: owner_id_reused);
