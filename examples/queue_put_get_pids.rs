//! Seed 004, "进程通信" (communication between processes): a writer process puts A, B,
//! C, D into a `Queue`, one a second; a reader process in an endless loop gets and
//! prints them; each line names the pid that printed it. The parent waits for the
//! writer, then terminates the reader ("将死循环强制终止", force the endless loop to end).
//!
//! Python:
//! ```python
//! def write(q):
//!     print('Process write.....')
//!     for i in ['A','B','C','D']:
//!         print('Process %s put %s into queue.'%(os.getpid(),i))
//!         q.put(i)
//!         time.sleep(1)
//! def read(q):
//!     print('Process read.....')
//!     while True:
//!         value = q.get(True)
//!         print('Process %s get %s from queue.'%(os.getpid(),value))
//!
//! if __name__ == '__main__':
//!     q = Queue()
//!     w = Process(target=write,args=(q,))
//!     r = Process(target=read,args=(q,))
//!     w.start()
//!     r.start()
//!     w.join()
//!     #将死循环强制终止
//!     r.terminate()
//! ```
//! Output in the seed:
//! ```text
//! Process write.....
//! Process 7872 put A into queue.
//! Process read.....
//! Process 11660 get A from queue.
//! Process 7872 put B into queue.
//! Process 11660 get B from queue.
//! ...
//! Process 7872 put D into queue.
//! Process 11660 get D from queue.
//! ```
//!
//! Rust: the same two processes on a `Queue<char>`; `q.get(True)` (block until an item
//! comes) is `q.get()`. Two pids show in the output, the writer's and the reader's.
//! The seed's pause is 1 s; here 200 ms, so the run takes under a second. The writer
//! sleeps after *every* put, the last one too, and that is what lets the reader print
//! D before the parent, done waiting for the writer, terminates it: no item is lost,
//! with no extra wait in the parent (seed 003's version, `queue_terminate_reader.rs`,
//! pauses a random time and needs one). The twin checks this: after `terminate()` it
//! joins the reader (the seed leaves that out; here the library would reap it at exit
//! anyway) and prints its exit code, -15 (killed by `SIGTERM`, as in Python), and
//! that the queue is empty.
//!
//! Run: `cargo run --example queue_put_get_pids`.

use std::time::Duration;

use multiprocess::{Process, Queue};

fn write(q: Queue<char>) {
    println!("Process write.....");
    for i in ['A', 'B', 'C', 'D'] {
        println!("Process {} put {i} into queue.", std::process::id());
        q.put(i).expect("put");
        std::thread::sleep(Duration::from_millis(200)); // the seed sleeps 1 s
    }
}

fn read(q: Queue<char>) {
    println!("Process read.....");
    loop {
        let value = q.get().expect("get");
        println!("Process {} get {value} from queue.", std::process::id());
    }
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let q = Queue::new()?;
    let mut w = Process::new(write, q.clone());
    let mut r = Process::new(read, q.clone());
    w.start()?;
    r.start()?;
    w.join()?;
    // 将死循环强制终止 (force the endless loop to end)
    r.terminate()?;
    r.join()?;
    println!(
        "reader terminated: exitcode {:?}; items left in the queue: {}",
        r.exitcode(),
        q.qsize()
    );
    Ok(())
}
