//! What `map`, `imap` and `apply` need from a pool, whether its workers are processes
//! or threads: run chunks of items, report each chunk's results once.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::core::{ChunkOut, Shared, Task, dup_all, run_chunk};
use super::slot::Phase;
use crate::error::{Error, ErrorKind, Result};
use crate::process::code_offset;
use crate::wire::codec;

/// The results of one chunk.
pub(crate) enum Outcome<R> {
    /// Every call returned.
    AllOk(Vec<R>),
    /// Some calls panicked.
    Mixed(Vec<Result<R>>),
    /// The chunk as a whole failed (its worker died, it timed out, its arguments or
    /// results would not (de)serialize, the pool was terminated).
    Failed(Error),
}

impl<R> Outcome<R> {
    /// One result per item (`n` items).
    pub(crate) fn into_items(self, n: usize) -> Vec<Result<R>> {
        match self {
            Outcome::AllOk(v) => v.into_iter().map(Ok).collect(),
            Outcome::Mixed(v) => v,
            Outcome::Failed(e) => {
                let mut out = Vec::with_capacity(n);
                for _ in 1..n {
                    out.push(Err(e.duplicate()));
                }
                out.push(Err(e));
                out
            }
        }
    }
}

/// Called once with a chunk's results.
pub(crate) type ChunkDone<R> = Box<dyn FnOnce(Outcome<R>) + Send>;

/// A chunk of consecutive input items.
pub(crate) struct Chunk<A, R> {
    pub(crate) items: Vec<A>,
    /// Index of the first item in the whole input.
    pub(crate) first: usize,
    /// A single `apply`: name it as a task, not as item `first`.
    pub(crate) single: Option<String>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) phase: Option<Arc<Phase>>,
    pub(crate) done: ChunkDone<R>,
}

impl<A, R> Chunk<A, R> {
    pub(crate) fn what(&self) -> String {
        match &self.single {
            Some(s) => s.clone(),
            None if self.items.len() == 1 => format!("item {}", self.first),
            None => format!(
                "the chunk of items {}..{}",
                self.first,
                self.first + self.items.len()
            ),
        }
    }

    /// The error for call `i` of this chunk that panicked with `msg`.
    pub(crate) fn panicked(single: &Option<String>, first: usize, i: usize, msg: &str) -> Error {
        let who = match single {
            Some(s) => s.clone(),
            None => format!("item {}", first + i),
        };
        Error::new(ErrorKind::Panicked, format!("{who} panicked: {msg}"))
    }
}

/// A place to run chunks.
pub(crate) trait Backend<A, R>: Sync {
    /// Worker count, for the default chunk size.
    fn processes(&self) -> usize;
    /// Queues every chunk, or none (and says why).
    fn submit(&self, chunks: Vec<Chunk<A, R>>) -> Result<()>;
}

/// The process pool as a backend for `fn(A) -> R`.
pub(crate) struct ProcBackend<'a, A, R> {
    pub(crate) shared: &'a Shared,
    pub(crate) f: fn(A) -> R,
}

impl<A, R> fmt::Debug for ProcBackend<'_, A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcBackend").finish()
    }
}

impl<A, R> Backend<A, R> for ProcBackend<'_, A, R>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    fn processes(&self) -> usize {
        self.shared.processes
    }

    fn submit(&self, chunks: Vec<Chunk<A, R>>) -> Result<()> {
        self.shared.check_open()?;
        let entry = code_offset(run_chunk::<A, R> as *const ());
        let func = code_offset(self.f as *const ());
        let mut tasks = Vec::with_capacity(chunks.len());
        for c in chunks {
            let enc = codec::encode(&c.items)?;
            let fds: Vec<OwnedFd> = if enc.fds.is_empty() {
                Vec::new()
            } else {
                dup_all(&enc.borrowed_fds())?
            };
            let what = c.what();
            let n = c.items.len();
            let (first, single, done) = (c.first, c.single, c.done);
            let what2 = what.clone();
            tasks.push(Task {
                entry,
                func,
                bytes: enc.bytes,
                fds,
                what,
                timeout: c.timeout,
                phase: c.phase,
                done: Box::new(move |raw| {
                    let out = match raw {
                        Err(e) => Outcome::Failed(e),
                        Ok((bytes, fds)) => match codec::decode::<ChunkOut<R>>(bytes, fds) {
                            Ok(ChunkOut::AllOk(v)) if v.len() == n => Outcome::AllOk(v),
                            Ok(ChunkOut::Mixed(v)) if v.len() == n => Outcome::Mixed(
                                v.into_iter()
                                    .enumerate()
                                    .map(|(i, r)| {
                                        r.map_err(|f| {
                                            Chunk::<A, R>::panicked(&single, first, i, &f.message)
                                        })
                                    })
                                    .collect(),
                            ),
                            Ok(_) => Outcome::Failed(Error::new(
                                ErrorKind::Protocol,
                                format!("{what2}: a worker sent the wrong number of results"),
                            )),
                            Err(e) => Outcome::Failed(Error::new(
                                e.kind(),
                                format!("{what2}: cannot decode its result: {e}"),
                            )),
                        },
                    };
                    done(out)
                }),
            });
        }
        self.shared.submit(tasks)
    }
}

/// Borrowed fds of owned ones.
#[allow(dead_code)]
pub(crate) fn borrow_all(fds: &[OwnedFd]) -> Vec<BorrowedFd<'_>> {
    fds.iter().map(|f| f.as_fd()).collect()
}
