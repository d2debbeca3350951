//! Seed 004, "线程锁" (thread lock), the MONEY example, across processes: two workers each
//! run `MONEY += n; MONEY -= n` a million times on a shared `Value`. Without a lock the
//! read-modify-writes of the two processes interleave and MONEY drifts from 0; with the
//! value's lock it stays 0 (and costs more time), as the seed shows for threads.
//! Run: `cargo run --release --example value_lock_race`.

use std::time::Instant;

use multiprocess::{Process, RawValue, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn run_unlocked((money, n): (RawValue<i64>, i64)) {
    for _ in 0..1_000_000 {
        money.set(money.get() + n); // two steps: another process can slip in between
        money.set(money.get() - n);
    }
}

fn run_locked((money, n): (Value<i64>, i64)) {
    for _ in 0..1_000_000 {
        let mut g = money.lock();
        *g += n;
        *g -= n;
    }
}

/// Two workers on `money` (a `RawValue` or a `Value`); `get` reads it at the end.
fn race<M>(worker: fn((M, i64)), money: M, get: fn(&M) -> i64) -> multiprocess::Result<()>
where
    M: Clone + Serialize + DeserializeOwned + 'static,
{
    let start = Instant::now();
    let mut t1 = Process::new(worker, (money.clone(), 6));
    let mut t2 = Process::new(worker, (money.clone(), 7));
    t1.start()?;
    t2.start()?;
    t1.join()?;
    t2.join()?;
    println!("MONEY:{}   运行时间：{:?}", get(&money), start.elapsed());
    Ok(())
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    println!("without a lock (expected 0; processes race):");
    for _ in 0..3 {
        race(run_unlocked, RawValue::new(0)?, RawValue::get)?;
    }
    println!("with the value's lock:");
    race(run_locked, Value::new(0)?, Value::get)?;
    Ok(())
}
