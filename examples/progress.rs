//! A progress bar over a pool's `map` and `imap` (feature `progress`).
//!
//! Run: `cargo run --release --example progress --features progress` in a terminal.
//! Without the feature, or with stderr not a terminal, nothing is drawn.

use std::time::Duration;

use multiprocess::{Options, Pool};

fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(2));
    x * x
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let pool = Pool::new(4)?;
    let opts = Options::new().chunk_size(10).progress(true);
    let v = pool.map_with(slow_square, 0..2000, opts)?;
    println!("map: {} results, last {}", v.len(), v[v.len() - 1]);
    let n = pool
        .imap_with(slow_square, 0..1000, Options::new().progress(true))
        .filter(|r| r.is_ok())
        .count();
    println!("imap: {n} results");
    Ok(())
}
