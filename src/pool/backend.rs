//! What `map`, `imap` and `apply` need from a pool, whether its workers are processes
//! or threads: run chunks of items, report each chunk's results once.

use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::core::{ChunkOut, Shared, TASK_HEADER, Task, dup_all, run_chunk};
use super::slot::Phase;
use crate::error::{Error, ErrorKind, Result};
use crate::wire::code::code_offset;
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
}

/// A place to run chunks.
pub(crate) trait Backend<A, R>: Sync {
    /// Worker count, for the default chunk size.
    fn processes(&self) -> usize;

    /// Queues every chunk, or none (and says why).
    fn submit(&self, chunks: Vec<Chunk<A, R>>) -> Result<()>;

    /// Queues the `n` items of `items` in chunks of `cs`; `done(k, first, len)` makes
    /// the completion of chunk `k`. By default by moving the items into owned chunks.
    fn submit_split(
        &self,
        items: &mut dyn Iterator<Item = A>,
        n: usize,
        cs: usize,
        timeout: Option<Duration>,
        done: &mut dyn FnMut(usize, usize, usize) -> ChunkDone<R>,
    ) -> Result<()> {
        let cs = cs.max(1);
        let mut chunks = Vec::with_capacity(n.div_ceil(cs));
        let mut first = 0;
        loop {
            let part: Vec<A> = (&mut *items).take(cs).collect();
            if part.is_empty() {
                break;
            }
            let len = part.len();
            let k = chunks.len();
            chunks.push(Chunk {
                items: part,
                first,
                single: None,
                timeout,
                phase: None,
                done: done(k, first, len),
            });
            first += len;
        }
        self.submit(chunks)
    }
}

/// What a task is, besides its items and completion.
struct Meta {
    what: String,
    first: usize,
    single: Option<String>,
    timeout: Option<Duration>,
    phase: Option<Arc<Phase>>,
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

impl<A, R> ProcBackend<'_, A, R>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    /// Encodes `items` (after room for the task header) into a task.
    fn task(&self, items: &[A], meta: Meta, done: ChunkDone<R>) -> Result<Task> {
        let Meta {
            what,
            first,
            single,
            timeout,
            phase,
        } = meta;
        let chunk = single.is_none() && items.len() > 1;
        let n = items.len();
        let expected = std::mem::size_of_val(items) + 16;
        let enc = codec::encode_sized(items, TASK_HEADER, expected)?;
        let fds: Vec<OwnedFd> = if enc.fds.is_empty() {
            Vec::new()
        } else {
            dup_all(&enc.borrowed_fds())?
        };
        let what2 = what.clone();
        Ok(Task {
            entry: code_offset(run_chunk::<A, R> as *const ()),
            func: code_offset(self.f as *const ()),
            bytes: enc.bytes,
            fds,
            what,
            timeout,
            phase,
            chunk,
            done: Box::new(move |raw| done(decode_chunk::<R>(raw, n, first, &single, &what2))),
        })
    }
}

/// Decodes a worker's answer for a chunk of `n` items.
fn decode_chunk<R: DeserializeOwned>(
    raw: Result<(&[u8], Vec<OwnedFd>)>,
    n: usize,
    first: usize,
    single: &Option<String>,
    what: &str,
) -> Outcome<R> {
    let (bytes, fds) = match raw {
        Err(e) => return Outcome::Failed(e),
        Ok(x) => x,
    };
    match codec::decode::<ChunkOut<R>>(bytes, fds) {
        Ok(ChunkOut::AllOk(v)) if v.len() == n => Outcome::AllOk(v),
        Ok(ChunkOut::Mixed(v)) if v.len() == n => Outcome::Mixed(
            v.into_iter()
                .enumerate()
                .map(|(i, r)| r.map_err(|f| panicked(single, first, i, &f.message)))
                .collect(),
        ),
        Ok(_) => Outcome::Failed(Error::new(
            ErrorKind::Protocol,
            format!("{what}: a worker sent the wrong number of results"),
        )),
        Err(e) => Outcome::Failed(Error::new(
            e.kind(),
            format!("{what}: cannot decode its result: {e}"),
        )),
    }
}

/// The error for call `i` of a chunk starting at item `first` that panicked.
pub(crate) fn panicked(single: &Option<String>, first: usize, i: usize, msg: &str) -> Error {
    let who = match single {
        Some(s) => s.clone(),
        None => format!("item {}", first + i),
    };
    Error::new(ErrorKind::Panicked, format!("{who} panicked: {msg}"))
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
        let mut tasks = Vec::with_capacity(chunks.len());
        for c in chunks {
            let what = c.what();
            let meta = Meta {
                what,
                first: c.first,
                single: c.single,
                timeout: c.timeout,
                phase: c.phase,
            };
            tasks.push(self.task(&c.items, meta, c.done)?);
        }
        self.shared.submit(tasks)
    }

    /// Encodes each chunk as it is pulled from the input (one reused buffer) and
    /// queues it at once, so workers start while later chunks are still encoded.
    fn submit_split(
        &self,
        items: &mut dyn Iterator<Item = A>,
        _n: usize,
        cs: usize,
        timeout: Option<Duration>,
        done: &mut dyn FnMut(usize, usize, usize) -> ChunkDone<R>,
    ) -> Result<()> {
        self.shared.check_open()?;
        let cs = cs.max(1);
        let mut part: Vec<A> = Vec::with_capacity(cs);
        let mut first = 0;
        for k in 0.. {
            part.clear();
            part.extend((&mut *items).take(cs));
            if part.is_empty() {
                break;
            }
            let n = part.len();
            let what = if n == 1 {
                format!("item {first}")
            } else {
                format!("the chunk of items {first}..{}", first + n)
            };
            let meta = Meta {
                what,
                first,
                single: None,
                timeout,
                phase: None,
            };
            let task = self.task(&part, meta, done(k, first, n))?;
            self.shared.submit(vec![task])?;
            first += n;
        }
        Ok(())
    }
}
