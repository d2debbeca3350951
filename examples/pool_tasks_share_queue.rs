//! Seed 001, section 3.1.1 (Queue, under "3.2 Manager"): a `Pool(10)` running one
//! writer and two readers that share a bounded queue, passed to each task as its
//! argument.
//!
//! Python:
//! ```python
//! # 进程池只能用这个方法
//! def demo1(q):
//!     i = 0
//!     while True:
//!         q.put(i)
//!         if i == 20:
//!             break
//!         i += 1
//!
//! def demo2(q):
//!     while True:
//!         print(q.get())
//!         time.sleep(1)
//!         if q.empty() is True:
//!             break
//!     print("over")
//!
//! if __name__ == "__main__":
//!     pool = Pool(10)
//!     q = Manager().Queue(2)
//!     pool.apply_async(demo1, args=(q,))
//!     pool.apply_async(demo2, args=(q,))
//!     pool.apply_async(demo2, args=(q,))
//!     pool.close()
//!     pool.join()
//! ```
//!
//! "进程池只能用这个方法" (a pool can only use this): in Python a
//! `multiprocessing.Queue` cannot be an argument of a pool task (pickling it raises
//! `RuntimeError: Queue objects should only be shared between processes through
//! inheritance`), so the seed needs a `Manager().Queue(2)`: a proxy to a queue living
//! in an extra server process, every `put`/`get` a round trip to it. In Rust a plain
//! `multiprocess::Queue` can be passed to a pool task: it travels as its file
//! descriptors and shared memory, so the worker uses the very same queue, with no
//! manager process. `Queue::bounded(2)` is `Queue(2)`: the writer blocks while two
//! items wait.
//!
//! One difference in the readers. "get, then stop when `empty()`" is racy: when both
//! readers see the last item (20) still there, both call `get()`, and one of them
//! blocks forever, and with it `pool.join()`. Readers that sleep the same time run in
//! step, taking two items per round, and 21 is odd, so this is the usual outcome: the
//! Python code, with 50 ms sleeps, hung in two runs out of three (one "over" printed).
//! The twin's readers use `get_timeout`, so a reader left without an item gives up
//! after half a second and prints "over" too. The seed sleeps 1 s per item; here
//! 50 ms, so the run takes about 0.6 s (half a second more when a reader has to wait
//! out its timeout). The numbers 0 to 20 are each printed once, by one reader or the
//! other, then "over" twice.
//!
//! Run: `cargo run --example pool_tasks_share_queue`.

use std::time::Duration;

use multiprocess::{Pool, Queue};

fn demo1(q: Queue<u32>) {
    let mut i = 0;
    loop {
        q.put(i).expect("the queue is open");
        if i == 20 {
            break;
        }
        i += 1;
    }
}

fn demo2(q: Queue<u32>) {
    // Python: `q.get()`, which may block forever here (see above).
    while let Ok(v) = q.get_timeout(Duration::from_millis(500)) {
        println!("{v}");
        std::thread::sleep(Duration::from_millis(50)); // the seed sleeps 1 s
        if q.is_empty() {
            break;
        }
    }
    println!("over");
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let pool = Pool::new(10)?;
    let q = Queue::bounded(2)?;
    pool.apply_async(demo1, q.clone())?;
    pool.apply_async(demo2, q.clone())?;
    pool.apply_async(demo2, q)?;
    pool.close();
    pool.join()?;
    Ok(())
}
