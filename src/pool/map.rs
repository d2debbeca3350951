//! `map` on any flavor: the input cut into chunks, the results collected in order.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::chunk::{Completion, MapCollector, Outcome};
use super::flavor::Flavor;
use super::options::Options;
use super::result::AsyncResult;
use super::slot::Slot;
use crate::error::Result;

/// Python's default `map` chunk size: about four chunks per worker.
pub(crate) fn default_chunksize(len: usize, workers: usize) -> usize {
    if len == 0 {
        return 1;
    }
    let per = workers.max(1) * 4;
    len.div_ceil(per).max(1)
}

/// `map_async` on any flavor: chunks of `chunk` items (default: Python's heuristic).
pub(crate) fn map_async<A, R>(
    flavor: &Flavor<'_, A, R>,
    items: impl IntoIterator<Item = A>,
    mut opts: Options<Vec<R>>,
    default_timeout: Option<Duration>,
) -> Result<AsyncResult<Vec<R>>>
where
    A: Send + 'static,
    R: Send + 'static,
{
    if opts.chunk_size == Some(0) {
        return Err(super::chunk::zero_chunk_size());
    }
    // The length decides the default chunk size: taken from an exact size hint, or
    // by collecting the input (as Python's `list(iterable)`).
    let mut it = items.into_iter();
    let mut collected: Option<std::vec::IntoIter<A>> = None;
    let n = match it.size_hint() {
        (lo, Some(hi)) if lo == hi => lo,
        _ => {
            let v: Vec<A> = it.by_ref().collect();
            let n = v.len();
            collected = Some(v.into_iter());
            n
        }
    };
    let cs = opts
        .chunk_size
        .unwrap_or_else(|| default_chunksize(n, flavor.processes()));
    let slot = Slot::new(format!("map of {n} items"));
    opts.attach(&slot);
    if n == 0 {
        // Nothing to queue, but a closed or broken pool still refuses (Python's
        // "Pool not running").
        flavor.submit(Vec::new())?;
        slot.complete(Ok(Vec::new()));
        return Ok(AsyncResult { slot });
    }
    let nchunks = n.div_ceil(cs);
    let collector = Arc::new(Mutex::new(MapCollector::new(n, nchunks, slot.clone())));
    let timeout = opts.timeout.or(default_timeout);
    let tick = opts.tick.take();
    let input: &mut dyn Iterator<Item = A> = match &mut collected {
        Some(c) => c,
        None => &mut it,
    };
    // An iterator that lied about its size: count what is really there.
    let mut counted = 0usize;
    let mut counting = input.inspect(|_| counted += 1).take(n);
    flavor.submit_split(&mut counting, n, cs, timeout, &mut |k, first, len| {
        Completion::Map {
            collector: collector.clone(),
            k,
            first,
            len,
            tick: tick.clone(),
        }
    })?;
    drop(counting);
    if counted < n {
        // Fewer items than announced: the chunks that were never made count as done.
        let mut c = collector.lock().unwrap_or_else(|e| e.into_inner());
        let made = counted.div_ceil(cs);
        for k in made..nchunks {
            c.record(k, k * cs, 0, Outcome::AllOk(Vec::new()));
        }
    }
    Ok(AsyncResult { slot })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_four_chunks_per_worker() {
        assert_eq!(default_chunksize(0, 4), 1);
        assert_eq!(default_chunksize(1, 4), 1);
        assert_eq!(default_chunksize(16, 4), 1);
        assert_eq!(default_chunksize(17, 4), 2);
        assert_eq!(default_chunksize(100, 2), 13);
        assert_eq!(default_chunksize(1_000_000, 2), 125_000);
        // Zero workers count as one.
        assert_eq!(default_chunksize(100, 0), 25);
        for (len, w) in [(1, 1), (7, 3), (1000, 8), (12_345, 5)] {
            let cs = default_chunksize(len, w);
            assert!(len.div_ceil(cs) <= 4 * w, "{len} items, {w} workers: {cs}");
        }
    }
}
