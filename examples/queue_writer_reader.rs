//! Seed 000, section 2.2.2, the queue: a writer process puts 1..4 with a second between
//! puts, a reader process gets and prints them, the parent joins both and prints DONE.
//! Run: `cargo run --example queue_writer_reader`.

use std::time::Duration;

use multiprocess::{Process, Queue};

fn write_task(q: Queue<u32>) {
    for n in 1..5 {
        println!("write, {n}");
        if q.put(n).is_err() {
            println!("write_task error");
            break;
        }
        std::thread::sleep(Duration::from_millis(200)); // the seed sleeps 1 s
    }
    println!("write_task end");
}

fn read_task(q: Queue<u32>) {
    for _ in 1..5 {
        match q.get() {
            Ok(n) => println!("read, {n}"),
            Err(_) => {
                println!("read_task error");
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("read_task end");
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    // The parent creates the queue and hands it to both children.
    let q = Queue::new()?;
    let mut pw = Process::new(write_task, q.clone());
    let mut pr = Process::new(read_task, q);
    pr.start()?;
    pw.start()?;
    pw.join()?;
    pr.join()?;
    println!("DONE");
    Ok(())
}
