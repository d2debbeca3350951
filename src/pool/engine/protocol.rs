//! The task/result wire format between the pool thread and a worker.
//!
//! Every message on a worker's rings is a fixed header followed by a payload that the
//! codec (bincode) wrote just after it: the sender reserves the header's bytes when it
//! encodes, so a message is one buffer and the payload is never copied to prepend it.
//!
//! ```text
//! task   (parent -> worker), TaskHeader::LEN = 32 bytes, little-endian:
//!   [0] op (1 run, 2 exit)  [1] flags (bit 0: stamp each call)  [2..8] zero
//!   [8..16] task id  [16..24] trampoline (code offset)  [24..32] function (code offset)
//!   then the encoded `Vec<A>` of the chunk (run only)
//! result (worker -> parent), ResultHeader::LEN = 16 bytes:
//!   [0] kind (1 result, 2 failed, 3 ready, 4 initializer failed)  [1..8] zero
//!   [8..16] task id (0 for ready / initializer failed)
//!   then the encoded `ChunkOut<R>` (result) or a UTF-8 message (failed, init failed)
//! ```
//!
//! The code offsets are only meaningful in a process of the same binary: see
//! [`code_at`](crate::wire::code::code_at).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, ErrorKind, Result};
use crate::wire::codec;

const OP_RUN: u8 = 1;
const OP_EXIT: u8 = 2;
const FLAG_STAMP: u8 = 1;

/// The header of a message to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskHeader {
    /// Run the payload's items through `func` with the trampoline `entry`.
    Run {
        /// The pool-wide task id, echoed in the result.
        id: u64,
        /// Stamp each call into the status segment (the task has a timeout).
        stamp: bool,
        /// The trampoline, as a code offset.
        entry: usize,
        /// The user's function, as a code offset.
        func: usize,
    },
    /// Exit once the tasks before this one are done.
    Exit,
}

impl TaskHeader {
    /// Bytes the header takes at the front of a task.
    pub(crate) const LEN: usize = 32;

    /// Writes the header into the first [`LEN`](Self::LEN) bytes of `buf`.
    ///
    /// # Panics
    ///
    /// If `buf` is shorter than [`LEN`](Self::LEN).
    pub(crate) fn write(&self, buf: &mut [u8]) {
        let h = &mut buf[..Self::LEN];
        h.fill(0);
        match *self {
            TaskHeader::Run {
                id,
                stamp,
                entry,
                func,
            } => {
                h[0] = OP_RUN;
                h[1] = if stamp { FLAG_STAMP } else { 0 };
                h[8..16].copy_from_slice(&id.to_le_bytes());
                h[16..24].copy_from_slice(&(entry as u64).to_le_bytes());
                h[24..32].copy_from_slice(&(func as u64).to_le_bytes());
            }
            TaskHeader::Exit => h[0] = OP_EXIT,
        }
    }

    /// The header alone, as a message (`Exit` has no payload).
    pub(crate) fn encode(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        self.write(&mut b);
        b
    }

    /// Reads the header at the front of `bytes`; the payload follows at
    /// [`LEN`](Self::LEN).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Protocol`] if `bytes` is shorter than a header or the op is unknown.
    pub(crate) fn decode(bytes: &[u8]) -> Result<TaskHeader> {
        if bytes.len() < Self::LEN {
            return Err(Error::new(ErrorKind::Protocol, "short pool task"));
        }
        match bytes[0] {
            OP_RUN => Ok(TaskHeader::Run {
                id: word(bytes, 8),
                stamp: bytes[1] & FLAG_STAMP != 0,
                entry: word(bytes, 16) as usize,
                func: word(bytes, 24) as usize,
            }),
            OP_EXIT => Ok(TaskHeader::Exit),
            op => Err(Error::new(
                ErrorKind::Protocol,
                format!("unknown pool task op {op}"),
            )),
        }
    }

    /// The task id, for a task to run.
    pub(crate) fn id(&self) -> Option<u64> {
        match *self {
            TaskHeader::Run { id, .. } => Some(id),
            TaskHeader::Exit => None,
        }
    }
}

/// What a worker's message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResultKind {
    /// The task's encoded `ChunkOut`.
    Result = 1,
    /// The task as a whole failed; the payload says why.
    Failed = 2,
    /// The initializer ran: the worker is ready.
    Ready = 3,
    /// The initializer failed; the payload says why, and the worker exits.
    InitFailed = 4,
}

/// The header of a message from a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResultHeader {
    pub(crate) kind: ResultKind,
    /// The task it answers (0 when it answers none).
    pub(crate) id: u64,
}

impl ResultHeader {
    /// Bytes the header takes at the front of a result.
    pub(crate) const LEN: usize = 16;

    /// Writes the header into the first [`LEN`](Self::LEN) bytes of `buf`.
    ///
    /// # Panics
    ///
    /// If `buf` is shorter than [`LEN`](Self::LEN).
    pub(crate) fn write(&self, buf: &mut [u8]) {
        let h = &mut buf[..Self::LEN];
        h.fill(0);
        h[0] = self.kind as u8;
        h[8..16].copy_from_slice(&self.id.to_le_bytes());
    }

    /// Reads the header at the front of `bytes`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Protocol`] if `bytes` is shorter than a header or the kind is
    /// unknown.
    pub(crate) fn decode(bytes: &[u8]) -> Result<ResultHeader> {
        if bytes.len() < Self::LEN {
            return Err(Error::new(ErrorKind::Protocol, "short pool result"));
        }
        let kind = match bytes[0] {
            1 => ResultKind::Result,
            2 => ResultKind::Failed,
            3 => ResultKind::Ready,
            4 => ResultKind::InitFailed,
            k => {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!("unknown pool result kind {k}"),
                ));
            }
        };
        Ok(ResultHeader {
            kind,
            id: word(bytes, 8),
        })
    }
}

/// The little-endian `u64` at `bytes[at..at + 8]` (the caller checked the length).
fn word(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// How one call in a chunk failed, as sent back.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct Failure {
    pub(crate) message: String,
}

/// A chunk's results; all-`Ok` chunks (the usual case) skip the per-item tag.
#[derive(Serialize, Deserialize)]
pub(crate) enum ChunkOut<R> {
    AllOk(Vec<R>),
    Mixed(Vec<std::result::Result<R, Failure>>),
}

/// Encoded bytes and the fds they refer to.
pub(crate) type Encoded = (Vec<u8>, Vec<OwnedFd>);

/// Encoded bytes with the fds they refer to, serializable (for a worker's arguments).
#[derive(Debug)]
pub(crate) struct Blob {
    pub(crate) bytes: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
}

impl Blob {
    /// Encodes `value`, keeping its own copies of the fds it refers to.
    pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Blob> {
        let enc = codec::encode(value)?;
        let fds = dup_all(&enc.borrowed_fds())?;
        Ok(Blob {
            bytes: enc.bytes,
            fds,
        })
    }

    /// A copy with its own fds.
    pub(crate) fn try_clone(&self) -> Result<Blob> {
        Ok(Blob {
            bytes: self.bytes.clone(),
            fds: dup_all(&self.fds.iter().map(|f| f.as_fd()).collect::<Vec<_>>())?,
        })
    }
}

/// Owned copies of `fds`.
pub(crate) fn dup_all(fds: &[BorrowedFd<'_>]) -> Result<Vec<OwnedFd>> {
    fds.iter()
        .map(|f| {
            f.try_clone_to_owned()
                .map_err(|e| Error::io("dup of a handle's fd", e))
        })
        .collect()
}

struct FdRef<'a>(BorrowedFd<'a>);
impl Serialize for FdRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        codec::serialize_fd(self.0, s)
    }
}
struct FdOwned(OwnedFd);
impl<'de> Deserialize<'de> for FdOwned {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        codec::deserialize_fd(d).map(FdOwned)
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let fds: Vec<FdRef<'_>> = self.fds.iter().map(|f| FdRef(f.as_fd())).collect();
        (&self.bytes, fds).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (bytes, fds): (Vec<u8>, Vec<FdOwned>) = Deserialize::deserialize(d)?;
        Ok(Blob {
            bytes,
            fds: fds.into_iter().map(|f| f.0).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_header_round_trips() {
        for h in [
            TaskHeader::Run {
                id: 7,
                stamp: true,
                entry: 0x1234_5678,
                func: usize::MAX >> 1,
            },
            TaskHeader::Run {
                id: u64::MAX,
                stamp: false,
                entry: 0,
                func: 1,
            },
            TaskHeader::Exit,
        ] {
            assert_eq!(TaskHeader::decode(&h.encode()).unwrap(), h);
        }
    }

    #[test]
    fn task_header_is_written_in_front_of_the_payload() {
        let mut buf = vec![0xAA; TaskHeader::LEN + 3];
        let h = TaskHeader::Run {
            id: 1,
            stamp: false,
            entry: 2,
            func: 3,
        };
        h.write(&mut buf);
        assert_eq!(&buf[TaskHeader::LEN..], [0xAA; 3]);
        assert_eq!(buf[0], OP_RUN);
        assert_eq!(&buf[2..8], [0; 6]);
        assert_eq!(TaskHeader::decode(&buf).unwrap(), h);
        assert_eq!(h.id(), Some(1));
        assert_eq!(TaskHeader::Exit.id(), None);
    }

    #[test]
    fn task_header_rejects_short_and_garbled() {
        let good = TaskHeader::Exit.encode();
        for n in 0..TaskHeader::LEN {
            let e = TaskHeader::decode(&good[..n]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Protocol);
        }
        for op in [0u8, 3, 0xFF] {
            let mut b = good;
            b[0] = op;
            assert_eq!(
                TaskHeader::decode(&b).unwrap_err().kind(),
                ErrorKind::Protocol
            );
        }
    }

    #[test]
    fn result_header_round_trips_and_rejects() {
        for kind in [
            ResultKind::Result,
            ResultKind::Failed,
            ResultKind::Ready,
            ResultKind::InitFailed,
        ] {
            let h = ResultHeader { kind, id: 99 };
            let mut buf = vec![0u8; ResultHeader::LEN + 5];
            h.write(&mut buf);
            assert_eq!(ResultHeader::decode(&buf).unwrap(), h);
            assert_eq!(
                ResultHeader::decode(&buf[..ResultHeader::LEN - 1])
                    .unwrap_err()
                    .kind(),
                ErrorKind::Protocol
            );
        }
        let mut buf = [0u8; ResultHeader::LEN];
        for k in [0u8, 5, 0xFF] {
            buf[0] = k;
            assert_eq!(
                ResultHeader::decode(&buf).unwrap_err().kind(),
                ErrorKind::Protocol
            );
        }
    }

    #[test]
    fn blob_round_trips_through_the_codec() {
        let b = Blob::encode(&(1u32, "two".to_string())).unwrap();
        let copy = b.try_clone().unwrap();
        assert_eq!(copy.bytes, b.bytes);
        let v: (u32, String) = codec::decode(&copy.bytes, copy.fds).unwrap();
        assert_eq!(v, (1, "two".to_string()));
    }

    proptest::proptest! {
        /// A worker's or the pool's reader never panics on a record's header, whatever
        /// its bytes.
        #[test]
        fn any_bytes_as_headers_decode_or_fail(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let _ = TaskHeader::decode(&bytes);
            let _ = ResultHeader::decode(&bytes);
        }
    }
}
