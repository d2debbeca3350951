//! Seed 001, section 3.2 (Pipe): one process sends `range(20)` through a `Pipe()`,
//! another receives and prints until `poll()` says nothing more is waiting.
//!
//! Python:
//! ```python
//! def send(pipe, datas):
//!     for data in datas:
//!         pipe.send(data)
//!
//! def rev(pipe):
//!     while True:
//!         data = pipe.recv()
//!         print(data)
//!         if not pipe.poll():
//!             break
//!
//! if __name__ == "__main__":
//!     pipe_rec, pipe_send = Pipe()
//!     p1 = Process(target=send, args=[pipe_send, range(20)])
//!     p2 = Process(target=rev, args=[pipe_rec])
//!     p1.start()
//!     p2.start()
//!     p1.join()
//!     p2.join()
//! ```
//!
//! Rust: the same two processes. `range(20)` travels as a Rust `Range<u32>` in the
//! args, next to the connection. Python's `poll()` with no timeout answers at once:
//! here `poll(Some(Duration::ZERO))`. The seed shows no output; it prints 0 to 19,
//! one a line, when the sender stays ahead of the receiver, which is the usual case
//! (the twin's receiver adds one line saying how many it got and why it stopped).
//!
//! One difference: Python's parent keeps its own copy of `pipe_send` open, so after
//! the last value `poll()` is false and the loop breaks. Here the parent's copy went
//! into the child at `start()`; once the sender has exited its end is closed, a closed
//! peer makes `poll()` true, and the next `recv()` fails with `Disconnected` (Python's
//! `EOFError`). The twin's receiver takes that as the end too; in practice this is how
//! the first round ends, after all twenty values.
//!
//! But `poll()` only says whether a message is waiting *now*: a receiver that
//! catches up with the sender stops early, and the values sent after that are never
//! read. So the twin runs a second round, the race-free way: the receiver calls
//! `recv()` until it fails with `Disconnected`, which happens once the sender has
//! exited. That round always gets all twenty, on one line.
//!
//! Run: `cargo run --example pipe_poll_drain`.

use std::ops::Range;
use std::time::Duration;

use multiprocess::{Connection, ErrorKind, Process};

fn send((pipe, datas): (Connection<u32>, Range<u32>)) {
    for data in datas {
        pipe.send(&data).expect("the receiver holds the other end");
    }
}

/// The seed's receiver: stops as soon as nothing is waiting (or the sender is gone).
fn rev(pipe: Connection<u32>) {
    let mut n = 0;
    let why = loop {
        match pipe.recv() {
            Ok(data) => println!("{data}"),
            Err(e) if e.kind() == ErrorKind::Disconnected => break "the sender has closed",
            Err(e) => panic!("recv: {e}"),
        }
        n += 1;
        if !pipe.poll(Some(Duration::ZERO)).expect("poll") {
            break "poll() is false";
        }
    };
    println!("rev: stop after {n} values: {why}");
}

/// Race-free: receives until the sender's end is closed.
fn rev_until_closed(pipe: Connection<u32>) {
    let mut got = Vec::new();
    let end = loop {
        match pipe.recv() {
            Ok(data) => got.push(data),
            Err(e) => break e,
        }
    };
    assert_eq!(end.kind(), ErrorKind::Disconnected);
    println!(
        "rev_until_closed: {} values, then Disconnected: {got:?}",
        got.len()
    );
}

fn run(receiver: fn(Connection<u32>)) -> multiprocess::Result<()> {
    let (pipe_rec, pipe_send) = multiprocess::pipe()?;
    let mut p1 = Process::new(send, (pipe_send, 0..20));
    let mut p2 = Process::new(receiver, pipe_rec);
    p1.start()?;
    p2.start()?;
    p1.join()?;
    p2.join()?;
    Ok(())
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    println!("-- the seed: recv, print, stop when poll() is false --");
    run(rev)?;
    println!("-- recv until the sender has closed its end --");
    run(rev_until_closed)?;
    Ok(())
}
