//! Beyond one machine: the same `Pool`, its workers on other hosts behind Redis.
//!
//! One program plays both parts, as a Python program behind Celery does: run it with
//! `MULTIPROCESS_WORKER` set and `multiprocess::init()` makes it a worker host; run
//! it without and it submits. Hosts must run *this very binary* (copy it to them):
//! functions travel as code offsets, and a host of another build refuses the tasks.
//!
//! ```text
//! terminal 1:  redis-server --save '' --appendonly no
//! terminal 2:  MULTIPROCESS_WORKER=redis://127.0.0.1/ MULTIPROCESS_KEY=demo-key \
//!              cargo run --release --features redis --example cluster_submit -- --processes 4
//! terminal 3:  MULTIPROCESS_KEY=demo-key \
//!              cargo run --release --features redis --example cluster_submit
//! ```
//!
//! Start more worker terminals (or hosts) at will; kill one mid-run and its tasks go
//! to the others after its lease (30 s by default).

#[cfg(feature = "redis")]
fn collatz_steps(mut n: u64) -> u32 {
    let mut steps = 0;
    while n > 1 {
        n = if n.is_multiple_of(2) {
            n / 2
        } else {
            3 * n + 1
        };
        steps += 1;
    }
    steps
}

#[cfg(feature = "redis")]
fn main() -> multiprocess::Result<()> {
    multiprocess::init(); // with MULTIPROCESS_WORKER set: a worker host, never returns
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1/".into());
    let key = std::env::var("MULTIPROCESS_KEY").unwrap_or_else(|_| "demo-key".into());
    let pool = multiprocess::Pool::builder()
        .redis(&url)
        .key(key.as_bytes())
        .build()?;
    let t = std::time::Instant::now();
    let steps = pool.map(collatz_steps, 1..1_000_001u64)?;
    let (best, n) = steps
        .iter()
        .zip(1u64..)
        .max()
        .map(|(s, n)| (*s, n))
        .unwrap_or_default();
    println!(
        "longest Collatz chain below 1,000,000: {n} ({best} steps), in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let r = pool.apply_async(collatz_steps, 27)?;
    println!("27 takes {} steps", r.get()?);
    for h in pool.cluster_stats().map(|s| s.hosts).unwrap_or_default() {
        println!(
            "  host {}: {} processes, {} tasks",
            h.name, h.processes, h.tasks
        );
    }
    Ok(())
}

#[cfg(not(feature = "redis"))]
fn main() {
    multiprocess::init();
    println!("this example needs the feature `redis`: add --features redis");
}
