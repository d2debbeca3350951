//! Seed 003, "共享内存" (shared memory, under "进程间共享状态"): `Value('d', 0.0)` and
//! `Array('i', range(10))` in shared memory; a child sets the value to 3.1415927 and
//! negates the array; the parent prints both.
//! Run: `cargo run --example value_and_array`.

use multiprocess::{Array, Process, Value};

// The seed's literal, printed back as the seed shows it (not meant as PI).
#[allow(clippy::approx_constant)]
fn f((n, a): (Value<f64>, Array<i32>)) {
    n.set(3.1415927);
    for x in a.lock().iter_mut() {
        *x = -*x;
    }
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let num = Value::new(0.0f64)?;
    let arr = Array::from_slice(&(0..10).collect::<Vec<i32>>())?;
    let mut p = Process::new(f, (num.clone(), arr.clone()));
    p.start()?;
    p.join()?;
    println!("{}", num.get());
    println!("{:?}", arr.to_vec());
    Ok(())
}
