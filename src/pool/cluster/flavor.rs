//! The cluster pool as a [flavor](crate::pool::flavor): chunks are encoded exactly as
//! for local workers (the same trampolines and task bytes), then sent to the stream
//! instead of a local ring. The decoding completion stays here, waiting under the
//! task's id.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::client::Client;
use crate::error::Result;
use crate::pool::chunk::{Chunk, Completion, chunk_name};
use crate::pool::engine::{EncodeTask, Meta, encode_task};

/// A cluster pool running `fn(A) -> R`.
pub(crate) struct ClusterFlavor<'a, A, R> {
    client: &'a Client,
    f: fn(A) -> R,
    encode: EncodeTask<A, R>,
}

impl<'a, A, R> ClusterFlavor<'a, A, R> {
    pub(crate) fn new(client: &'a Client, f: fn(A) -> R) -> Self
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        ClusterFlavor {
            client,
            f,
            encode: encode_task::<A, R>,
        }
    }

    /// Worker processes of the live hosts, for the default chunk size.
    pub(crate) fn processes(&self) -> usize {
        self.client.processes()
    }

    /// Sends every chunk (one pipeline), or none and says why.
    pub(crate) fn submit(&self, chunks: Vec<Chunk<A, R>>) -> Result<()> {
        self.client.check_open()?;
        let mut tasks = Vec::with_capacity(chunks.len());
        for c in chunks {
            let meta = Meta {
                what: c.what(),
                first: c.first,
                single: c.single,
                timeout: c.timeout,
                phase: c.phase,
            };
            tasks.push((self.encode)(self.f, &c.items, meta, c.done)?);
        }
        self.client.submit(tasks)
    }

    /// Sends chunks as they are cut from the input, a few per pipeline.
    pub(crate) fn submit_split(
        &self,
        items: &mut dyn Iterator<Item = A>,
        cs: usize,
        timeout: Option<Duration>,
        done: &mut dyn FnMut(usize, usize, usize) -> Completion<R>,
    ) -> Result<()> {
        self.client.check_open()?;
        let cs = cs.max(1);
        let mut part: Vec<A> = Vec::with_capacity(cs);
        let mut first = 0;
        let mut batch = Vec::new();
        let mut bytes = 0;
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
                timeout,
                phase: None,
            };
            let task = (self.encode)(self.f, &part, meta, done(k, first, n))?;
            bytes += task.bytes.len();
            batch.push(task);
            if batch.len() >= 16 || bytes >= 1 << 20 {
                self.client.submit(std::mem::take(&mut batch))?;
                bytes = 0;
            }
            first += n;
        }
        if !batch.is_empty() {
            self.client.submit(batch)?;
        }
        Ok(())
    }
}
