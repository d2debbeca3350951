//! Seed 003, "进程间通信" (communication), Pipe: the child sends `[42, None, 'hello']`
//! and the parent, which receives *before* `join()`, prints it. Then the two things the
//! seed says about the pipe: it is duplex by default (both ends send and receive), and
//! each end has `send()` and `recv()`.
//!
//! Python:
//! ```python
//! def f(conn):
//!     conn.send([42, None, 'hello'])
//!     conn.close()
//!
//! if __name__ == '__main__':
//!     parent_conn, child_conn = Pipe()
//!     p = Process(target=f, args=(child_conn,))
//!     p.start()
//!     print(parent_conn.recv())   # 打印 "[42, None, 'hello']"
//!     p.join()
//! ```
//!
//! Rust, part 1, the seed: the message is a `Vec` of `Obj`, a serde enum of the Python
//! values used (`None`, int, str), so a list of any length and mix goes through, and
//! prints in Python's `repr` shape: `[42, None, 'hello']`. (Seed 000's pipe example,
//! `pipe_send_recv.rs`, sends a fixed-shape tuple instead.)
//!
//! Part 2, duplex: the parent sends a list *to* the child on `parent_conn`, and the
//! child answers on the same connection with the list reversed. `pipe_simplex()` is
//! `Pipe(duplex=False)`: its first end only receives, and sending on it fails with
//! `NotPermitted` (Python raises `OSError`).
//!
//! Part 3, why the seed receives before it joins (seed 000 joins first, which works
//! only for small messages): a child's `send` of a message larger than the socket
//! buffer waits until the parent reads it, so `join()` first would wait for ever. The
//! twin sends 1 MiB, shows that `join_timeout(200 ms)` finds the child still in its
//! `send`, then receives and joins.
//!
//! Run: `cargo run --example pipe_duplex`.

use std::time::Duration;

use multiprocess::{Connection, ErrorKind, Process};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
enum Obj {
    None,
    Int(i64),
    Str(String),
}

/// Python's `repr` of a list.
fn repr(list: &[Obj]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|o| match o {
            Obj::None => "None".to_string(),
            Obj::Int(i) => i.to_string(),
            Obj::Str(s) => format!("'{s}'"),
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn f(conn: Connection<Vec<Obj>>) {
    let msg = vec![Obj::Int(42), Obj::None, Obj::Str("hello".into())];
    conn.send(&msg).expect("the parent holds the other end");
    conn.close();
}

/// Receives a list and sends it back reversed, on the same connection.
fn reverser(conn: Connection<Vec<Obj>>) {
    let mut list = conn.recv().expect("recv");
    list.reverse();
    conn.send(&list).expect("send");
}

fn big(conn: Connection<Vec<u8>>) {
    conn.send(&vec![7u8; 1 << 20]).expect("send");
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    println!("-- the seed --");
    let (parent_conn, child_conn) = multiprocess::pipe()?;
    let mut p = Process::new(f, child_conn);
    p.start()?;
    println!("{}", repr(&parent_conn.recv()?));
    p.join()?;

    println!("-- duplex: both ends send and receive --");
    let (parent_conn, child_conn) = multiprocess::pipe()?;
    let mut p = Process::new(reverser, child_conn);
    p.start()?;
    let out = vec![Obj::Str("a".into()), Obj::Int(1), Obj::None];
    parent_conn.send(&out)?;
    println!("parent sent    {}", repr(&out));
    println!("child answered {}", repr(&parent_conn.recv()?));
    p.join()?;
    let (reader, writer) = multiprocess::pipe_simplex::<Vec<Obj>>()?;
    writer.send(&vec![Obj::Int(1)])?;
    println!(
        "Pipe(duplex=False): the reader got {}",
        repr(&reader.recv()?)
    );
    let e = reader.send(&vec![]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotPermitted);
    println!("and may not send: {:?}: {e}", e.kind());

    println!("-- receive before join: a 1 MiB message --");
    let (parent_conn, child_conn) = multiprocess::pipe()?;
    let mut p = Process::new(big, child_conn);
    p.start()?;
    let ended = p.join_timeout(Duration::from_millis(200))?;
    println!("join first: did the child end within 200 ms? {ended} (it waits in send)");
    let msg = parent_conn.recv()?;
    p.join()?;
    println!(
        "recv got {} bytes; then join: exitcode {:?}",
        msg.len(),
        p.exitcode()
    );
    Ok(())
}
