//! The cluster pool as a [flavor](crate::pool::flavor): chunks are encoded exactly as
//! for local workers (the same trampolines and task bytes), then sent to the stream
//! instead of a local ring. The decoding completion stays here, waiting under the
//! task's id.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::client::Client;
use crate::error::Result;
use crate::pool::chunk::{Chunk, Completion};
use crate::pool::engine::{EncodeTask, Split, encode_chunks, encode_task};

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
        self.client
            .submit(encode_chunks(self.encode, self.f, chunks)?)
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
        let mut batch = Vec::new();
        let mut bytes = 0;
        let split = Split { cs, timeout };
        split.encode(self.encode, self.f, items, done, &mut |task| {
            bytes += task.bytes.len();
            batch.push(task);
            if batch.len() >= 16 || bytes >= 1 << 20 {
                bytes = 0;
                return self.client.submit(std::mem::take(&mut batch));
            }
            Ok(())
        })?;
        if !batch.is_empty() {
            self.client.submit(batch)?;
        }
        Ok(())
    }
}
