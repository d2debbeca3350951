//! Seed 002, "多进程": the Unix way (`os.fork()`) and the cross-platform way
//! (`Process`), and the difference the seed draws between them: a forked child can
//! outlive its parent, a `Process` child dies with it.
//!
//! Python, "类UNIX系统" (Unix-like systems):
//! ```python
//! import os
//! pid = os.fork()
//! if pid == 0:
//!     print('----子进程-----')
//! else:
//!     print('---父进程---')
//! ```
//! "跨平台方式" (cross-platform):
//! ```python
//! def test():
//!     while True:
//!         print("---test---")
//!         time.sleep(1)
//!
//! p = Process(target = test)
//! p.start()
//!
//! while True:
//!     print('---main---')
//!     time.sleep(1)
//! ```
//! The seed: `---main---` and `---test---` alternate. "fork的子进程和主进程可以不同时存在，
//! 即父进程死后子进程依旧可以运行。而使用process创建的进程在父进程死掉后，子进程会挂掉" (a
//! forked child can go on after its parent dies; a `Process` child dies with its
//! parent). `join()` waits (with an argument, at most that long); `terminate()` ends
//! the child.
//!
//! Rust, part 1: `multiprocess::fork()` returns `Fork::Child` or `Fork::Parent(pid)`;
//! the two lines come from two processes, in either order. The child leaves with
//! `std::process::exit`, the parent reaps it with `waitpid`.
//!
//! Part 2: the loops alternate (200 ms apart, not 1 s, and the main loop stops after
//! four rounds, as an endless one would never let the rest run). Then
//! `join_timeout(300 ms)` returns `false`, as the child still loops, and
//! `terminate()` + `join()` end it: exit code -15 (`SIGTERM`).
//!
//! Part 3, the difference, shown: a middle process (the "parent" here) forks a raw
//! child and starts a `Process` child; both put a heartbeat on a `Queue` every 100 ms.
//! `main` kills the middle process with `SIGKILL`, then counts the heartbeats of the
//! next 400 ms: the raw fork child beats on (it ends by itself after 15 beats, an
//! orphan adopted and reaped by another process), the `Process` child beats no more.
//! In this crate that holds even when the parent is killed: `Process` children are
//! started with `PR_SET_PDEATHSIG` (Python's children, in fact, outlive a killed
//! parent; only at a normal exit does Python's parent join or terminate them). For
//! more on orphans and zombies, see `zombies_and_orphans.rs`.
//!
//! Run: `cargo run --example fork_vs_process` (about 2 s).

use std::time::Duration;

use multiprocess::{ErrorKind, Fork, Process, Queue};
use serde::{Deserialize, Serialize};

/// Whose heartbeat.
#[derive(Serialize, Deserialize, Clone, Copy, Debug)]
enum Who {
    ForkChild,
    ProcessChild,
}

const BEAT: Duration = Duration::from_millis(100);

fn test(_: ()) {
    loop {
        println!("---test---");
        std::thread::sleep(Duration::from_millis(200)); // the seed sleeps 1 s
    }
}

fn beat(q: &Queue<Who>, who: Who, times: usize) {
    for _ in 0..times {
        if q.put(who).is_err() {
            return;
        }
        std::thread::sleep(BEAT);
    }
}

/// The parent of part 3: a raw fork child and a `Process` child, both beating.
fn middle(q: Queue<Who>) {
    if let Fork::Child = multiprocess::fork().expect("fork") {
        beat(&q, Who::ForkChild, 15);
        std::process::exit(0);
    }
    let mut p = Process::new(process_child, q);
    p.start().expect("start");
    std::thread::sleep(Duration::from_secs(10)); // until main kills us
}

fn process_child(q: Queue<Who>) {
    beat(&q, Who::ProcessChild, usize::MAX);
}

/// Takes what is in the queue now: (fork child beats, Process child beats).
fn drain(q: &Queue<Who>) -> (usize, usize) {
    let (mut forked, mut process) = (0, 0);
    loop {
        match q.try_get() {
            Ok(Who::ForkChild) => forked += 1,
            Ok(Who::ProcessChild) => process += 1,
            Err(e) if e.kind() == ErrorKind::Empty => return (forked, process),
            Err(e) => panic!("try_get: {e}"),
        }
    }
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    println!("-- os.fork() --");
    match multiprocess::fork()? {
        Fork::Child => {
            println!("----子进程-----");
            std::process::exit(0);
        }
        Fork::Parent(pid) => {
            println!("---父进程---");
            multiprocess::waitpid(pid)?;
        }
    }

    println!("-- Process --");
    let mut p = Process::new(test, ());
    p.start()?;
    for _ in 0..4 {
        println!("---main---");
        std::thread::sleep(Duration::from_millis(200));
    }
    let ended = p.join_timeout(Duration::from_millis(300))?;
    println!("join(0.3): did test end? {ended}");
    p.terminate()?;
    p.join()?;
    println!("terminate(): exitcode {:?}", p.exitcode());

    println!("-- the parent dies: who goes on? --");
    let q = Queue::new()?;
    let mut mid = Process::new(middle, q.clone());
    mid.start()?;
    std::thread::sleep(Duration::from_millis(350));
    let (forked, process) = drain(&q);
    println!("while the parent lives: fork child {forked} beats, Process child {process}");
    mid.kill()?;
    mid.join()?;
    std::thread::sleep(Duration::from_millis(150));
    drain(&q);
    std::thread::sleep(Duration::from_millis(400));
    let (forked, process) = drain(&q);
    println!("400 ms after SIGKILL: fork child {forked} beats, Process child {process}");
    Ok(())
}
