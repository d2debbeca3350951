//! A progress bar over a pool's `map` and `imap` (feature `progress`).
//!
//! Run: `cargo run --release --example progress --features progress` in a terminal.
//! Without the feature, or with stderr not a terminal, nothing is drawn. Each bar shows
//! its label, done/total, the rate (items/s) and the elapsed time, and ends with a
//! summary line such as `squares: 2000 items in 1.12s (1.8k/s)`.

use std::time::Duration;

use multiprocess::{Options, Pool};

fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(2));
    x * x
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let pool = Pool::new(4)?;
    let opts = Options::new().chunk_size(10).progress_label("squares");
    let v = pool.map_with(slow_square, 0..2000, opts)?;
    println!("map: {} results, last {}", v.len(), v[v.len() - 1]);
    let n = pool
        .imap_with(slow_square, 0..1000, Options::new().progress(true))
        .filter(|r| r.is_ok())
        .count();
    println!("imap: {n} results");
    // A sub-second job: it still ends with its time and rate.
    let v = pool.map_with(slow_square, 0..40, Options::new().progress_label("quick"))?;
    println!("quick: {} results", v.len());
    Ok(())
}
