//! Seed 002, "互斥锁": two workers each add 1 to a shared number 999,999 times while
//! holding a lock; the total is exactly 1,999,998. The seed uses threads and a global;
//! across processes the number lives in a shared `Value` and the lock is a `Lock`.
//! Run: `cargo run --release --example lock_shared_counter`.

use multiprocess::{Lock, Process, RawValue};

fn inc_num((mutex, num, label): (Lock, RawValue<u64>, String)) {
    let g = mutex.acquire(); // while locked, the other worker blocks
    for _ in 0..999_999 {
        num.set(num.get() + 1);
    }
    drop(g);
    println!("{label} is {}", num.get());
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let mutex = Lock::new()?;
    let py_num = RawValue::new(0u64)?; // no lock of its own: the mutex protects it
    let mut p1 = Process::new(inc_num, (mutex.clone(), py_num.clone(), "py_num".into()));
    let mut p2 = Process::new(inc_num, (mutex, py_num.clone(), "py_num2".into()));
    p1.start()?;
    p2.start()?;
    p1.join()?;
    p2.join()?;
    assert_eq!(py_num.get(), 2 * 999_999);
    println!("total: {}", py_num.get());
    Ok(())
}
