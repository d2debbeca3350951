//! The messages between a proxy and its server (bincode, one frame each way per
//! call), and the pieces every kind shares: stored items, waits, replies.
//!
//! Values travel as the bytes of their own bincode encoding: the server stores and
//! compares bytes and never needs the client's types (see the design notes of
//! [`server`](super::server) for why).
//!
//! # How an operation travels
//!
//! Each kind's file (`kinds/dict.rs`, ...) defines its own operation enum and marks it
//! with [`Ops`]: which [`Family`] it belongs to. A proxy sends
//! `Request::Call(id, Tagged(&op))`; [`Tagged`] encodes the op exactly as the variant
//! `Family` of the server's table of operations (`kinds::Op`, an enum with one variant
//! per family, in `Family` order) encodes, so the server decodes one derived enum and
//! dispatches on `(object, op)` per kind. The kind files therefore never name that
//! table (it names them): the files of this folder import each other in one direction.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize, Serializer};

use crate::error::{Error, ErrorKind, Result};
use crate::wire::codec;

pub(crate) type Bytes = Vec<u8>;

/// A value to store, and the objects of this manager that proxies inside it refer to:
/// while the server stores the value, those objects stay alive (as Python's server
/// holds the proxies it stores).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Item {
    pub(crate) bytes: Bytes,
    pub(crate) refs: Vec<u64>,
}

/// What a client asks of the server. `I` is how to make an object (`kinds::Init`),
/// `O` an operation on one (`kinds::Op` on the server, a [`Tagged`] kind's op in a
/// proxy): generic so that this file needs no kind.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request<I, O> {
    /// Make a new object; replies `Created`.
    Create(I),
    /// Find a registered object by name; replies `Created`.
    Lookup(String),
    /// Make an object of a registered custom type; replies `Created`.
    CreateCustom(String),
    /// Operate on the object with this id.
    Call(u64, O),
    /// Stop the server (after replying).
    Shutdown,
    /// Names registered with the server (objects, then types).
    Registered,
    /// A new proxy owns the object (a clone, or a decoded proxy).
    IncRef(u64),
    /// A proxy is being serialized: keep the object alive for a lease.
    Lease(u64),
    /// A proxy that owned the object was dropped. The server does not reply.
    DecRef(u64),
    /// The number of live objects.
    Count,
}

/// A request that makes and calls nothing (for the parts of the client that only
/// count references or ask about the server).
pub(crate) type Plain = Request<(), ()>;

/// The type of an object, checked when a proxy is made from a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Kind {
    Dict,
    List,
    Queue,
    JoinableQueue,
    Lock,
    RLock,
    Semaphore,
    BoundedSemaphore,
    Condition,
    Event,
    Barrier,
    Namespace,
    Value,
    Array,
    Custom,
}

/// The families of operations: one op enum each, shared by the kinds of one file
/// (a lock's and an rlock's ops are the same). The order is the order of the variants
/// of the server's table (`kinds::Op`), checked by its tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Dict,
    List,
    Queue,
    Lock,
    Semaphore,
    Condition,
    Event,
    Barrier,
    Namespace,
    Value,
    Array,
    Custom,
}

impl Family {
    /// The variant's name in `kinds::Op`.
    const fn name(self) -> &'static str {
        match self {
            Family::Dict => "Dict",
            Family::List => "List",
            Family::Queue => "Queue",
            Family::Lock => "Lock",
            Family::Semaphore => "Semaphore",
            Family::Condition => "Condition",
            Family::Event => "Event",
            Family::Barrier => "Barrier",
            Family::Namespace => "Namespace",
            Family::Value => "Value",
            Family::Array => "Array",
            Family::Custom => "Custom",
        }
    }
}

/// The operation enum of one family of kinds (implemented in each kind's file).
pub(crate) trait Ops: Serialize {
    /// Which variant of the server's table this enum is.
    const FAMILY: Family;
}

/// A kind's operation, encoded as the server's table of operations encodes it.
pub(crate) struct Tagged<'a, O>(pub(crate) &'a O);

impl<O: Ops> Serialize for Tagged<'_, O> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_newtype_variant("Op", O::FAMILY as u32, O::FAMILY.name(), self.0)
    }
}

/// How long a blocking call may wait on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Wait {
    Block,
    Now,
    /// Microseconds.
    Timeout(u64),
}

impl Wait {
    pub(crate) fn timeout(d: Duration) -> Wait {
        Wait::Timeout(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deadline(self) -> Option<Instant> {
        match self {
            Wait::Block => None,
            Wait::Now => Some(Instant::now()),
            Wait::Timeout(us) => Instant::now().checked_add(Duration::from_micros(us)),
        }
    }
}

/// A successful reply.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Reply {
    Unit,
    Bool(bool),
    U64(u64),
    Bytes(Bytes),
    MaybeBytes(Option<Bytes>),
    List(Vec<Bytes>),
    Pairs(Vec<(Bytes, Bytes)>),
    MaybePair(Option<(Bytes, Bytes)>),
    Strings(Vec<String>),
    Created(u64, Kind),
}

/// An error that happened on the server, sent back to the caller.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RemoteError {
    kind: u8,
    msg: String,
}

impl From<&Error> for RemoteError {
    fn from(e: &Error) -> Self {
        RemoteError {
            kind: e.kind().code(),
            msg: e.to_string(),
        }
    }
}

impl From<RemoteError> for Error {
    fn from(r: RemoteError) -> Self {
        let kind = ErrorKind::from_code(r.kind).unwrap_or(ErrorKind::Io);
        Error::new(kind, format!("manager: {}", r.msg))
    }
}

pub(crate) type Response = std::result::Result<Reply, RemoteError>;

/// Encodes a value as the manager does (bincode); for calling
/// [`SharedObject::call`](crate::SharedObject::call) directly, as in tests.
///
/// # Errors
///
/// [`ErrorKind::Serialize`](crate::ErrorKind::Serialize) if it cannot be encoded, or if it holds a handle (a
/// connection, queue, lock, ...): handles cannot be stored in a manager; pass proxies.
///
/// # Examples
///
/// ```
/// assert_eq!(multiprocess::encode_args(&1u8)?, vec![1]);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub fn encode_args<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let enc = codec::encode(value)?;
    if !enc.fds.is_empty() {
        return Err(Error::new(
            ErrorKind::Serialize,
            "a value stored in a manager cannot hold handles (connections, queues, \
             locks, shared memory): store plain data, or a manager proxy",
        ));
    }
    Ok(enc.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Serialize + ?Sized, U: serde::de::DeserializeOwned>(x: &T) -> U {
        let enc = codec::encode(x).unwrap();
        codec::decode(&enc.bytes, Vec::new()).unwrap()
    }

    #[test]
    fn replies_round_trip() {
        let replies = [
            Reply::Unit,
            Reply::Bool(true),
            Reply::U64(u64::MAX),
            Reply::Bytes(vec![1, 2, 3]),
            Reply::MaybeBytes(None),
            Reply::MaybeBytes(Some(vec![])),
            Reply::List(vec![vec![1], vec![]]),
            Reply::Pairs(vec![(vec![1], vec![2])]),
            Reply::MaybePair(Some((vec![3], vec![4]))),
            Reply::Strings(vec!["a".into()]),
            Reply::Created(7, Kind::JoinableQueue),
        ];
        for r in replies {
            let back: Response = round_trip(&Ok::<&Reply, RemoteError>(&r));
            assert_eq!(back.unwrap(), r);
        }
        let err: Response = round_trip(&Err::<Reply, _>(RemoteError::from(&Error::state("x"))));
        assert!(err.is_err());
    }

    #[test]
    fn requests_round_trip() {
        let item = Item {
            bytes: vec![9, 9],
            refs: vec![4, 5],
        };
        let r: Request<Item, u8> = round_trip(&Request::<Item, u8>::Create(item.clone()));
        assert!(matches!(r, Request::Create(i) if i == item));
        let r: Request<(), u8> = round_trip(&Request::<(), u8>::Call(u64::MAX, 3));
        assert!(matches!(r, Request::Call(u64::MAX, 3)));
        let r: Plain = round_trip(&Plain::DecRef(12));
        assert!(matches!(r, Request::DecRef(12)));
        let r: Plain = round_trip(&Plain::Lookup("q".into()));
        assert!(matches!(r, Request::Lookup(n) if n == "q"));
    }

    #[test]
    fn remote_errors_keep_their_kind() {
        for &k in ErrorKind::all() {
            let e = Error::new(k, "boom");
            let back: RemoteError = round_trip(&RemoteError::from(&e));
            let e2 = Error::from(back);
            assert_eq!(e2.kind(), k);
            assert!(e2.to_string().contains("boom"), "{e2}");
        }
        // A kind this build does not know becomes `Io`, not a panic.
        let odd = RemoteError {
            kind: 250,
            msg: "x".into(),
        };
        assert_eq!(Error::from(odd).kind(), ErrorKind::Io);
    }

    #[test]
    fn malformed_requests_are_rejected() {
        // An unknown variant, a truncated body, and a length that claims more bytes
        // than arrived all fail to decode instead of panicking.
        let mut bad = codec::encode(&Plain::Lease(1)).unwrap().bytes;
        bad[0] = 0xff;
        assert!(codec::decode::<Plain>(&bad, Vec::new()).is_err());
        let full = codec::encode(&Plain::Lookup("name".into())).unwrap().bytes;
        assert!(codec::decode::<Plain>(&full[..full.len() - 1], Vec::new()).is_err());
        let mut huge = codec::encode(&Plain::Lookup(String::new())).unwrap().bytes;
        let tag = huge.len() - codec::encode(&String::new()).unwrap().bytes.len();
        huge.truncate(tag);
        huge.extend_from_slice(&codec::encode(&1000u64).unwrap().bytes);
        huge.extend_from_slice(b"short");
        assert!(codec::decode::<Plain>(&huge, Vec::new()).is_err());
        assert!(codec::decode::<Plain>(&[], Vec::new()).is_err());
    }

    #[test]
    fn waits_have_deadlines() {
        assert!(Wait::Block.deadline().is_none());
        assert!(Wait::Now.deadline().unwrap() <= Instant::now());
        assert_eq!(Wait::timeout(Duration::from_millis(3)), Wait::Timeout(3000));
        assert_eq!(Wait::timeout(Duration::MAX), Wait::Timeout(u64::MAX));
    }

    #[test]
    fn encode_args_refuses_handles() {
        assert_eq!(encode_args(&(1u8, 2u8)).unwrap(), vec![1, 2]);
        let (a, _b) = crate::pipe::<u8>().unwrap();
        let e = encode_args(&a).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Serialize);
    }
}
