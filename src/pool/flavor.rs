//! Where a pool's chunks run: the [`Flavor`] enum, the one seam between what users
//! submit (`apply`, `map`, `imap`, executors) and the engines that run it.
//!
//! As crossbeam-channel chooses among its channel flavors, a private enum chooses
//! among the pool engines, with no trait object: each method is one `match`, and the
//! code of each flavor lives in its own place (`engine/` for processes, `threads.rs`
//! for threads). Every flavor takes [`Chunk`]s and calls each chunk's
//! [`Completion`] exactly once, with its [`Outcome`](super::chunk::Outcome), from
//! whatever thread it likes.
//!
//! # Adding a flavor
//!
//! The pool of workers on other hosts (feature `redis`) is the third variant,
//! `Cluster(ClusterFlavor<'a, A, R>)`, in a folder of its own beside `engine/`
//! ([`cluster`](super::cluster)). A flavor needs the three methods below: `processes`
//! (workers, for the default chunk size), `submit` (all chunks or none, with the
//! reason) and `submit_split` (chunks cut from an iterator, each completed by
//! `done(k, first, len)`), and a front that makes it (as [`Pool`](super::Pool) makes
//! a process or cluster flavor). Like [`ProcessFlavor`], it meets its own bounds
//! (serde) in its constructor, so that the methods here stay generic over any `A`
//! and `R`.

use std::time::Duration;

use super::chunk::{Chunk, Completion};
#[cfg(feature = "redis")]
use super::cluster::ClusterFlavor;
use super::engine::ProcessFlavor;
use super::threads::ThreadFlavor;
use crate::error::Result;

/// A place to run chunks of calls `A -> R`.
pub(crate) enum Flavor<'a, A, R> {
    /// Worker processes of this machine (the [engine](super::engine)).
    Process(ProcessFlavor<'a, A, R>),
    /// Threads of this process.
    Thread(ThreadFlavor<'a, A, R>),
    /// Worker hosts behind Redis.
    #[cfg(feature = "redis")]
    Cluster(ClusterFlavor<'a, A, R>),
}

impl<A, R> Flavor<'_, A, R>
where
    A: Send + 'static,
    R: Send + 'static,
{
    /// Worker count, for the default chunk size.
    pub(crate) fn processes(&self) -> usize {
        match self {
            Flavor::Process(p) => p.processes(),
            Flavor::Thread(t) => t.processes(),
            #[cfg(feature = "redis")]
            Flavor::Cluster(c) => c.processes(),
        }
    }

    /// Queues every chunk, or none (and says why).
    pub(crate) fn submit(&self, chunks: Vec<Chunk<A, R>>) -> Result<()> {
        match self {
            Flavor::Process(p) => p.submit(chunks),
            Flavor::Thread(t) => t.submit(chunks),
            #[cfg(feature = "redis")]
            Flavor::Cluster(c) => c.submit(chunks),
        }
    }

    /// Queues the `n` items of `items` in chunks of `cs`; `done(k, first, len)` makes
    /// the completion of chunk `k`. A process pool queues each chunk as soon as it is
    /// encoded; a thread pool queues them all at once.
    pub(crate) fn submit_split(
        &self,
        items: &mut dyn Iterator<Item = A>,
        n: usize,
        cs: usize,
        timeout: Option<Duration>,
        done: &mut dyn FnMut(usize, usize, usize) -> Completion<R>,
    ) -> Result<()> {
        match self {
            Flavor::Process(p) => p.submit_split(items, cs, timeout, done),
            Flavor::Thread(t) => t.submit_split(items, n, cs, timeout, done),
            #[cfg(feature = "redis")]
            Flavor::Cluster(c) => c.submit_split(items, cs, timeout, done),
        }
    }
}
