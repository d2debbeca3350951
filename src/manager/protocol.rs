//! The manager's request/reply messages (postcard, one frame each way per call).
//!
//! Values travel as the bytes of their own postcard encoding: the server stores and
//! compares bytes and never needs the client's types (see the module docs of
//! [`server`](super::server) for why).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};

pub(crate) type Bytes = Vec<u8>;

/// A value to store, and the objects of this manager that proxies inside it refer to:
/// while the server stores the value, those objects stay alive (as Python's server
/// holds the proxies it stores).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Item {
    pub(crate) bytes: Bytes,
    pub(crate) refs: Vec<u64>,
}

/// What a call asks of the server.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    /// Make a new object; replies `Created`.
    Create(Init),
    /// Find a registered object by name; replies `Created`.
    Lookup(String),
    /// Make an object of a registered custom type; replies `Created`.
    CreateCustom(String),
    /// Operate on the object with this id.
    Call(u64, Op),
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

/// How to make an object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Init {
    Dict(Vec<(Bytes, Item)>),
    List(Vec<Item>),
    Queue {
        maxsize: Option<u64>,
        joinable: bool,
    },
    Lock,
    RLock,
    Semaphore {
        value: u64,
        bounded: bool,
    },
    Condition,
    Event,
    Barrier(u32),
    Namespace,
    Value(Item),
    Array(Vec<Item>),
}

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

/// How long a blocking call may wait on the server.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
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

/// An operation on one object.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    Len,
    Clear,
    ToVec,
    // dict
    DictGet(Bytes),
    DictInsert(Bytes, Item),
    DictRemove(Bytes),
    DictContains(Bytes),
    DictKeys,
    DictValues,
    DictItems,
    DictUpdate(Vec<(Bytes, Item)>),
    DictPopItem,
    DictSetDefault(Bytes, Item),
    // list and array
    ListPush(Item),
    ListGet(i64),
    ListSet(i64, Item),
    ListPop,
    ListInsert(i64, Item),
    ListRemove(Bytes),
    ListExtend(Vec<Item>),
    ListReverse,
    // queues
    Put(Item, Wait),
    Get(Wait),
    IsFull,
    TaskDone,
    Join(Wait),
    // locks, semaphores, conditions
    Acquire(Wait),
    Release,
    GetValue,
    CondWait(Wait),
    Notify(u32),
    NotifyAll,
    // event
    EventSet,
    EventClear,
    EventIsSet,
    EventWait(Wait),
    // barrier
    BarrierWait(Wait),
    BarrierAbort,
    BarrierReset,
    BarrierIsBroken,
    BarrierWaiting,
    BarrierParties,
    // namespace
    NsGet(String),
    NsSet(String, Item),
    NsRemove(String),
    NsNames,
    // value
    ValueGet,
    ValueSet(Item),
    // custom objects
    Method(String, Bytes),
}

/// A successful reply.
#[derive(Debug, Serialize, Deserialize)]
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

const KINDS: &[ErrorKind] = &[
    ErrorKind::Io,
    ErrorKind::Disconnected,
    ErrorKind::Timeout,
    ErrorKind::Serialize,
    ErrorKind::Deserialize,
    ErrorKind::Protocol,
    ErrorKind::InvalidState,
    ErrorKind::NotPermitted,
    ErrorKind::Empty,
    ErrorKind::Full,
    ErrorKind::BrokenBarrier,
    ErrorKind::Unsupported,
    ErrorKind::InvalidInput,
    ErrorKind::AlreadyExists,
    ErrorKind::NotFound,
    ErrorKind::Authentication,
];

impl From<&Error> for RemoteError {
    fn from(e: &Error) -> Self {
        let kind = KINDS.iter().position(|k| *k == e.kind()).unwrap_or(0) as u8;
        RemoteError {
            kind,
            msg: e.to_string(),
        }
    }
}

impl From<RemoteError> for Error {
    fn from(r: RemoteError) -> Self {
        let kind = KINDS.get(r.kind as usize).copied().unwrap_or(ErrorKind::Io);
        Error::new(kind, format!("manager: {}", r.msg))
    }
}

pub(crate) type Response = Result<Reply, RemoteError>;
