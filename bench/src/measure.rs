//! Measurement helpers: medians of repetitions and unit conversions.
//!
//! A workload function runs its act `n` times per repetition, converts the
//! elapsed time into the unit of the table with one of the `*_per` / rate
//! helpers, and [`median_of`] takes the median over the repetitions.

use std::time::{Duration, Instant};

/// Runs `f` `reps` times (at least once) and returns the median of its results.
///
/// With an even count the median is the mean of the two middle values.
pub fn median_of(reps: usize, mut f: impl FnMut() -> f64) -> f64 {
    let mut values: Vec<f64> = (0..reps.max(1)).map(|_| f()).collect();
    median(&mut values)
}

/// Median of `values` (sorted in place); NaN for an empty slice.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Times one call of `f`.
pub fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// Microseconds per item: `elapsed / n` in us.
pub fn us_per(elapsed: Duration, n: usize) -> f64 {
    elapsed.as_secs_f64() * 1e6 / n.max(1) as f64
}

/// Nanoseconds per item: `elapsed / n` in ns.
pub fn ns_per(elapsed: Duration, n: usize) -> f64 {
    elapsed.as_secs_f64() * 1e9 / n.max(1) as f64
}

/// Milliseconds of `elapsed`.
pub fn ms(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1e3
}

/// Items per second (msg/s, ops/s).
pub fn per_s(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// Bandwidth in MB/s, MB being 10^6 bytes ([`crate::params::MB`]).
pub fn mb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / crate::params::MB / elapsed.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
        let mut i = 0.0;
        assert_eq!(
            median_of(5, || {
                i += 1.0;
                i
            }),
            3.0
        );
    }
}
