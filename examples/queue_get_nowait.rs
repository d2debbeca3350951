//! Seed 002, "进程间通讯": `Queue(3)`, `qsize()`, `put`, `get`, and `get_nowait()` on an
//! empty queue, which raises `queue.Empty` in Python and is an `ErrorKind::Empty`
//! error here.
//! Run: `cargo run --example queue_get_nowait`.

use multiprocess::{ErrorKind, Queue};

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let q = Queue::bounded(3)?;
    println!("q.qsize() ---> {}", q.qsize());
    q.put("num1".to_string())?;
    println!("q.qsize() ---> {}", q.qsize());
    println!("q.get() ---> {}", q.get()?);
    match q.try_get() {
        Err(e) if e.kind() == ErrorKind::Empty => println!("q.get_nowait() ---> error: {e}"),
        other => println!("unexpected: {other:?}"),
    }
    Ok(())
}
