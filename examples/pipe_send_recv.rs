//! Seed 000, section 2.2.2, "多进程中的管道": the child sends `[50, None, "Hello"]`
//! through a `Pipe()`, the parent receives it after `join()`.
//!
//! Python:
//! ```python
//! def fn(conn):
//!     conn.send([50, None, "Hello"])
//!     conn.close()
//!
//! if __name__ == "__main__":
//!     parent_conn, child_conn = Pipe()
//!     p = Process(target=fn, args=(child_conn,))
//!     p.start()
//!     p.join()
//!     print(parent_conn.recv())   # [50, None, 'Hello']
//! ```
//!
//! Rust: `multiprocess::pipe()` returns two duplex `Connection<T>`s; a connection is
//! itself serializable, so the child's end travels in the `Process` args like
//! `args=(child_conn,)`. A Python list may mix types, a Rust message has one type:
//! here the tuple `(i32, Option<()>, String)`, printed in Python's `repr` shape. (A
//! `Vec` of a serde enum would do for lists of any length.) The child's `send` can
//! only fail if the parent is gone; a failure panics, which ends the child with exit
//! code 1 and the message on stderr, like an uncaught Python exception. As in the seed,
//! the parent joins before receiving: fine for a small message, which fits in the
//! socket buffer.
//!
//! Run: `cargo run --example pipe_send_recv`.

use multiprocess::{Connection, Process};

type Msg = (i32, Option<()>, String);

fn f(conn: Connection<Msg>) {
    conn.send(&(50, None, "Hello".to_string()))
        .expect("the parent holds the other end");
    conn.close();
}

/// Python's `repr` of the list `[a, b, c]`.
fn repr((a, b, c): &Msg) -> String {
    let b = match b {
        None => "None",
        Some(()) => "()",
    };
    format!("[{a}, {b}, '{c}']")
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let (parent_conn, child_conn) = multiprocess::pipe::<Msg>()?;
    let mut p = Process::new(f, child_conn);
    p.start()?;
    p.join()?;
    println!("{}", repr(&parent_conn.recv()?));
    Ok(())
}
