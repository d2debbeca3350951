//! Seed 003, "进程间通信" (communication), Queue: the parent creates a queue and passes it
//! to a writer (puts A, B, C with random pauses) and a reader (an endless loop of
//! `get`), waits for the writer, and terminates the reader, which can never end by
//! itself.
//! Run: `cargo run --example queue_terminate_reader`.

use std::time::Duration;

use multiprocess::{Process, Queue};

fn write(q: Queue<String>) {
    println!("Process to write: {}", std::process::id());
    for value in ["A", "B", "C"] {
        println!("Put {value} to queue...");
        q.put(value.to_string()).expect("put");
        let pause = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_millis());
        std::thread::sleep(Duration::from_millis(u64::from(pause % 300)));
    }
}

fn read(q: Queue<String>) {
    println!("Process to read: {}", std::process::id());
    loop {
        let value = q.get().expect("get");
        println!("Get {value} from queue.");
    }
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let q = Queue::new()?;
    let mut pw = Process::new(write, q.clone());
    let mut pr = Process::new(read, q);
    pw.start()?;
    pr.start()?;
    pw.join()?;
    // Give the reader a moment to print the last item, then stop its endless loop.
    std::thread::sleep(Duration::from_millis(100));
    pr.terminate()?;
    pr.join()?;
    Ok(())
}
