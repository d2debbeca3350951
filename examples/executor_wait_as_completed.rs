//! Seed 001, section 2.2: `ProcessPoolExecutor(3)`, `submit`, `wait(FIRST_COMPLETED)`
//! and `as_completed`; then the commented-out alternatives (`map`, `done`, `result`,
//! `cancel`).
//!
//! Python:
//! ```python
//! def func(t):
//!     time.sleep(t)
//!     print("This time is {}".format(t))
//!     return t
//!
//! if __name__ == "__main__":
//!     cor = ProcessPoolExecutor(3)
//!     # task1 = cor.submit(func, *[1])
//!     task_list = [cor.submit(func, random.randint(1, 4)) for i in range(5)]
//!     wait(task_list, return_when=FIRST_COMPLETED)   # 主进程等待, 直到一个任务执行完成
//!     print("__Main__")
//!     for task in as_completed(task_list):
//!         data = task.result()
//!         print(data)
//!
//!     # 此方法获取到的结果不是实时的
//!     # submit_list = [random.randint(1, 4) for _ in range(20)]
//!     # for data in cor.map(func, submit_list):
//!     #     print(data)
//!     # print(task1.done())
//!     # print(task1.result())
//!     # # 任务取消必须是放入队列中, 但是未执行的任务
//!     # print(task1.cancel())
//! ```
//!
//! Rust: `multiprocess::futures` has the same names. `submit` returns a
//! `Result<Future>`; `wait(&fs, timeout, ReturnWhen::FirstCompleted)` returns the
//! `done` and `not_done` futures (Python's named tuple, which the seed ignores; the
//! twin prints how many are done); `as_completed(&fs, timeout)` yields each future as
//! it completes, already-done ones first, as a `Result` (an `Err` only if the
//! timeout passes). `result()` moves the value out.
//!
//! The seed draws `random.randint(1, 4)` seconds; the twin submits the values of the
//! seed's printed run, 2, 4, 4, 1, 4, and a "second" is 200 ms here. With three
//! workers, 2 finishes first (so `wait` returns and `__Main__` is printed), the 1
//! started in its place finishes next, then the three 4s: the seed's output. The whole
//! run takes about 3 s.
//!
//! The commented-out part runs too: `map` yields results in input order, each one
//! only when it and those before it are done ("not real time", says the seed), and
//! each item is a `Result`; then `done()`, `result()` and `cancel()` on `task1`
//! (submitted first, and waited for so that it does not disturb the run above). A
//! second `result()` is an error in Rust (the value was moved out), where Python
//! returns it again.
//! `cancel()` on it is `false` because it already ran: as the seed's comment says,
//! only a task still waiting in the queue can be cancelled, so the twin also cancels
//! one that waits behind three busy workers, and gets `true`.
//!
//! Run: `cargo run --example executor_wait_as_completed`.

use std::time::Duration;

use multiprocess::futures::{ProcessPoolExecutor, ReturnWhen, as_completed, wait};

/// One "second" of the seed.
const SECOND: Duration = Duration::from_millis(200);

fn func(t: u32) -> u32 {
    std::thread::sleep(SECOND * t);
    println!("This time is {t}");
    t
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    // 设置线程启用个数 (the number of workers)
    let cor = ProcessPoolExecutor::new(3)?;
    let task1 = cor.submit(func, 1)?;
    wait([&task1], None, ReturnWhen::AllCompleted); // so the run below starts on idle workers

    // 实时获取每个任务的返回值 (each task's value as soon as it is ready)
    let task_list = [2, 4, 4, 1, 4]
        .into_iter()
        .map(|t| cor.submit(func, t))
        .collect::<multiprocess::Result<Vec<_>>>()?;
    // 主进程等待, 直到一个任务执行完成 (wait until one task is done)
    let first = wait(&task_list, None, ReturnWhen::FirstCompleted);
    println!(
        "__Main__ ({} done, {} not done)",
        first.done.len(),
        first.not_done.len()
    );
    for task in as_completed(&task_list, None) {
        let data = task?.result()?;
        println!("{data}");
    }

    println!("\n-- cor.map(func, submit_list): results in input order --");
    // 此方法获取到的结果不是实时的 (not real time: in input order, not as they finish)
    let submit_list = [3, 1, 2, 1, 1, 2];
    for data in cor.map(func, submit_list)? {
        println!("{}", data?);
    }

    println!("\n-- task1 --");
    println!("task1.done() -> {}", task1.done());
    // 获取任务结果 (its result)
    println!("task1.result() -> {}", task1.result()?);
    // Rust values move: the result can be taken once.
    let again = task1.result().unwrap_err();
    println!("task1.result() again -> {:?}: {again}", again.kind());
    // 任务取消必须是放入队列中, 但是未执行的任务 (only a queued task can be cancelled)
    println!("task1.cancel() -> {}", task1.cancel());
    let busy: Vec<_> = (0..3)
        .map(|_| cor.submit(func, 1))
        .collect::<multiprocess::Result<_>>()?;
    let queued = cor.submit(func, 1)?;
    std::thread::sleep(SECOND / 4); // the three workers take the first three
    println!(
        "cancel() on a task still in the queue -> {} (cancelled() -> {})",
        queued.cancel(),
        queued.cancelled()
    );
    for b in &busy {
        b.result()?;
    }
    cor.shutdown(true, false);
    Ok(())
}
