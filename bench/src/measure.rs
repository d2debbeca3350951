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

/// us per round trip, median over [`crate::params::REPS`]: `rt(i)` sends `i`
/// and returns the answer, which must be `i + 1`; `n` round trips per repetition.
pub fn roundtrip_us(n: usize, quick: bool, mut rt: impl FnMut(u64) -> u64) -> f64 {
    let mut i = 0u64;
    median_of(crate::params::REPS.get(quick), || {
        let t = Instant::now();
        for _ in 0..n {
            assert_eq!(rt(i), i + 1, "bad echo");
            i += 1;
        }
        us_per(t.elapsed(), n)
    })
}

/// The echo side of [`roundtrip_us`]: answers every number received with it
/// plus one, until `recv` yields `None` or `send` fails.
pub fn echo_plus_one(mut recv: impl FnMut() -> Option<u64>, mut send: impl FnMut(u64) -> bool) {
    while let Some(i) = recv() {
        if !send(i + 1) {
            break;
        }
    }
}

/// The receiving side of [`one_way_mbps`]: for each round announced by
/// `announce` (`None`: stop), receives that many messages with `recv` (which
/// returns a message's length) and answers the round's byte count with `reply`.
pub fn sink_rounds(
    mut announce: impl FnMut() -> Option<u64>,
    mut recv: impl FnMut() -> usize,
    mut reply: impl FnMut(u64),
) {
    while let Some(count) = announce() {
        let bytes: usize = (0..count).map(|_| recv()).sum();
        reply(bytes as u64);
    }
}

/// MB/s of messages of 1 MiB sent one way, median over
/// [`crate::params::REPS`]: `announce(k)` tells the receiver a round of `k`
/// messages follows, `send()` sends one, `reply()` waits for the receiver's
/// byte count of the round. One warm-up round of one message, then `n`
/// messages per repetition, timed from the announcement to the reply.
pub fn one_way_mbps(
    n: usize,
    quick: bool,
    mut announce: impl FnMut(u64),
    mut send: impl FnMut(),
    mut reply: impl FnMut() -> u64,
) -> f64 {
    use crate::params::MIB;
    announce(1);
    send();
    assert_eq!(reply() as usize, MIB, "short warm-up round");
    median_of(crate::params::REPS.get(quick), || {
        let t = Instant::now();
        announce(n as u64);
        for _ in 0..n {
            send();
        }
        assert_eq!(reply() as usize, n * MIB, "short round");
        mb_per_s(n * MIB, t.elapsed())
    })
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
