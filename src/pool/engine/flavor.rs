//! The process pool as a flavor: chunks of `fn(A) -> R` calls become tasks for the
//! pool thread, and each task's encoded answer is decoded back into its chunk's
//! [`Outcome`].

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::mailbox::{Finish, Mailbox, Task};
use super::protocol::{ChunkOut, TaskHeader, dup_all};
use super::worker::run_chunk;
use crate::error::{Error, ErrorKind, Result};
use crate::pool::chunk::{Chunk, Completion, Outcome, chunk_name, panicked};
use crate::pool::slot::Phase;
use crate::wire::code::code_offset;
use crate::wire::{codec, probe};

/// What a task is, besides its items and completion.
pub(crate) struct Meta {
    pub(crate) what: String,
    pub(crate) first: usize,
    pub(crate) single: Option<String>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) phase: Option<Arc<Phase>>,
}

/// Encodes a chunk into a task: [`encode_task`] for the flavor's `A` and `R`.
pub(crate) type EncodeTask<A, R> = fn(fn(A) -> R, &[A], Meta, Completion<R>) -> Result<Task>;

/// A process pool running `fn(A) -> R`.
///
/// The serde bounds are met once, in [`new`](ProcessFlavor::new), which picks
/// `encode_task::<A, R>`; the flavor's other methods need none, so that
/// [`Flavor`](crate::pool::flavor::Flavor)'s methods can be generic over any `A`, `R`
/// that a thread pool also takes.
pub(crate) struct ProcessFlavor<'a, A, R> {
    mailbox: &'a Mailbox,
    f: fn(A) -> R,
    encode: EncodeTask<A, R>,
}

impl<'a, A, R> ProcessFlavor<'a, A, R> {
    pub(crate) fn new(mailbox: &'a Mailbox, f: fn(A) -> R) -> Self
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        ProcessFlavor {
            mailbox,
            f,
            encode: encode_task::<A, R>,
        }
    }

    /// Worker count, for the default chunk size.
    pub(crate) fn processes(&self) -> usize {
        self.mailbox.processes
    }

    /// Queues every chunk, or none (and says why).
    pub(crate) fn submit(&self, chunks: Vec<Chunk<A, R>>) -> Result<()> {
        self.mailbox.check_open()?;
        self.mailbox
            .submit(encode_chunks(self.encode, self.f, chunks)?)
    }

    /// Encodes each chunk as it is pulled from the input (one reused buffer) and
    /// queues it at once, so workers start while later chunks are still encoded.
    pub(crate) fn submit_split(
        &self,
        items: &mut dyn Iterator<Item = A>,
        cs: usize,
        timeout: Option<Duration>,
        done: &mut dyn FnMut(usize, usize, usize) -> Completion<R>,
    ) -> Result<()> {
        self.mailbox.check_open()?;
        let split = Split { cs, timeout };
        split.encode(self.encode, self.f, items, done, &mut |task| {
            self.mailbox.submit(vec![task])
        })
    }
}

/// Encodes every chunk into a task: all of them, or an error and none.
pub(crate) fn encode_chunks<A, R>(
    encode: EncodeTask<A, R>,
    f: fn(A) -> R,
    chunks: Vec<Chunk<A, R>>,
) -> Result<Vec<Task>> {
    chunks
        .into_iter()
        .map(|c| {
            let meta = Meta {
                what: c.what(),
                first: c.first,
                single: c.single,
                timeout: c.timeout,
                phase: c.phase,
            };
            encode(f, &c.items, meta, c.done)
        })
        .collect()
}

/// How `submit_split` cuts its input: chunks of `cs` items, each with `timeout`.
pub(crate) struct Split {
    pub(crate) cs: usize,
    pub(crate) timeout: Option<Duration>,
}

impl Split {
    /// Cuts `items` into chunks (one reused buffer), encodes each into a task whose
    /// completion is `done(k, first, len)`, and hands it to `sink` at once.
    pub(crate) fn encode<A, R>(
        &self,
        encode: EncodeTask<A, R>,
        f: fn(A) -> R,
        items: &mut dyn Iterator<Item = A>,
        done: &mut dyn FnMut(usize, usize, usize) -> Completion<R>,
        sink: &mut dyn FnMut(Task) -> Result<()>,
    ) -> Result<()> {
        let cs = self.cs.max(1);
        let mut part: Vec<A> = Vec::with_capacity(cs);
        let mut first = 0;
        for k in 0.. {
            part.clear();
            part.extend((&mut *items).take(cs));
            if part.is_empty() {
                break;
            }
            let n = part.len();
            let meta = Meta {
                what: chunk_name(first, n),
                first,
                single: None,
                timeout: self.timeout,
                phase: None,
            };
            sink(encode(f, &part, meta, done(k, first, n))?)?;
            first += n;
        }
        Ok(())
    }
}

/// Refuses, before any work starts, arguments or results that would encode and then
/// fail to decode on the other side (`serde_json::Value`, untagged enums: see
/// [`probe`]), instead of failing in the worker or after the work was done.
fn travels<A, R>() -> Result<()>
where
    A: DeserializeOwned + 'static,
    R: DeserializeOwned + 'static,
{
    probe::check::<A>("the task's arguments")?;
    probe::check::<R>("the task's result")
}

/// Encodes `items` (after room for the task header) into a task that runs `f` on each.
/// The cluster pool ships such a task's bytes and code offsets to another host and
/// keeps its `done` here.
pub(crate) fn encode_task<A, R>(
    f: fn(A) -> R,
    items: &[A],
    meta: Meta,
    then: Completion<R>,
) -> Result<Task>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    // Before anything is encoded or queued, for local workers and hosts alike.
    travels::<A, R>()?;
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
    let enc = codec::encode_sized(items, TaskHeader::LEN, expected)?;
    let fds: Vec<OwnedFd> = if enc.fds.is_empty() {
        Vec::new()
    } else {
        dup_all(&enc.borrowed_fds())?
    };
    Ok(Task {
        entry: code_offset(run_chunk::<A, R> as *const ()),
        func: code_offset(f as *const ()),
        bytes: enc.bytes,
        fds,
        what: what.clone(),
        timeout,
        phase,
        chunk,
        done: Box::new(Decode {
            n,
            first,
            single,
            what,
            then,
        }),
    })
}

/// Decodes a worker's answer for a chunk of `n` items, then completes it.
struct Decode<R> {
    n: usize,
    first: usize,
    single: Option<String>,
    what: String,
    then: Completion<R>,
}

impl<R: DeserializeOwned + Send> Finish for Decode<R> {
    fn finish(self: Box<Self>, raw: Result<(&[u8], Vec<OwnedFd>)>) {
        let out = self.decode(raw);
        self.then.complete(out);
    }
}

impl<R: DeserializeOwned> Decode<R> {
    fn decode(&self, raw: Result<(&[u8], Vec<OwnedFd>)>) -> Outcome<R> {
        let (bytes, fds) = match raw {
            Err(e) => return Outcome::Failed(e),
            Ok(x) => x,
        };
        let (n, what) = (self.n, &self.what);
        match codec::decode::<ChunkOut<R>>(bytes, fds) {
            Ok(ChunkOut::AllOk(v)) if v.len() == n => Outcome::AllOk(v),
            Ok(ChunkOut::Mixed(v)) if v.len() == n => Outcome::Mixed(
                v.into_iter()
                    .enumerate()
                    .map(|(i, r)| r.map_err(|f| panicked(&self.single, self.first, i, &f.message)))
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
}
