//! The single-call path: `apply_async` (and an executor's `submit`) on any flavor.

use std::time::Duration;

use super::chunk::{Chunk, Completion};
use super::flavor::Flavor;
use super::options::Options;
use super::result::AsyncResult;
use super::slot::Slot;
use crate::error::Result;

/// Runs `f(a)` once on `flavor`: a chunk of one item whose result completes a slot.
/// `what` names the call in errors ("task 3", "future 7").
pub(crate) fn apply_async<A, R>(
    flavor: &Flavor<'_, A, R>,
    a: A,
    mut opts: Options<R>,
    default_timeout: Option<Duration>,
    what: String,
) -> Result<AsyncResult<R>>
where
    A: Send + 'static,
    R: Send + 'static,
{
    let slot = Slot::new(what.clone());
    opts.attach(&slot);
    flavor.submit(vec![Chunk {
        items: vec![a],
        first: 0,
        single: Some(what),
        timeout: opts.timeout.or(default_timeout),
        phase: Some(slot.phase.clone()),
        done: Completion::Single(slot.clone()),
    }])?;
    Ok(AsyncResult { slot })
}
