//! Seed 000, section 2.2.2, the pipe: the child sends `[50, None, "Hello"]`, the parent
//! receives it after `join()`.
//!
//! A Python list may mix types; in Rust the message is a tuple
//! `(i32, Option<()>, String)`, printed in Python's shape.
//! Run: `cargo run --example seed000_pipe`.

use multiprocess::{Connection, Process};

type Msg = (i32, Option<()>, String);

fn f(conn: Connection<Msg>) {
    conn.send(&(50, None, "Hello".to_string())).expect("send");
    conn.close();
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let (parent_conn, child_conn) = multiprocess::pipe::<Msg>()?;
    let mut p = Process::new(f, child_conn);
    p.start()?;
    p.join()?;
    let (a, b, c) = parent_conn.recv()?;
    println!("[{a}, {}, '{c}']", if b.is_none() { "None" } else { "()" });
    Ok(())
}
