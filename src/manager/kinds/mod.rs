//! The kinds of manager objects, one file each: its proxy type and methods, its op
//! enum, its server-side state and how it applies an op. This file is the table that
//! lists them: how to make one ([`Init`]), the ops of every family ([`Op`]), an
//! object's state ([`Object`]), and the dispatch of an op to its kind's handler.
//!
//! # Adding a kind
//!
//! Write `kinds/<kind>.rs` (a `proxy_type!`, its methods calling `self.home.call(&Op)`,
//! an `Op` enum marked with its [`Family`](super::protocol::Family), a state and an
//! `apply`), then add one variant to [`Init`], [`Op`] (in `Family` order), `Body`, and
//! one arm to each match below; a constructor on [`Manager`](crate::Manager) and, if
//! it can be registered by name, on [`Served`](crate::Served).
//!
//! An op of one kind sent to an object of another (a hostile or confused client) is
//! refused with [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput); inside a
//! kind every op has an arm, so there is no impossible pair to guard.

pub(crate) mod array;
pub(crate) mod barrier;
pub(crate) mod condition;
pub(crate) mod custom;
pub(crate) mod dict;
pub(crate) mod event;
pub(crate) mod list;
pub(crate) mod lock;
pub(crate) mod namespace;
pub(crate) mod queue;
pub(crate) mod semaphore;
pub(crate) mod value;

use serde::{Deserialize, Serialize};

use super::handler::{Cell, Cx, no_such_op, op_name};
use super::protocol::{Bytes, Item, Kind, Reply};
use crate::error::Result;

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

/// An operation on one object, as the server decodes it: one variant per
/// [`Family`](super::protocol::Family), in the same order (a proxy encodes its kind's
/// op as this enum's variant, see `protocol::Tagged`).
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(crate) enum Op {
    Dict(dict::Op),
    List(list::Op),
    Queue(queue::Op),
    Lock(lock::Op),
    Semaphore(semaphore::Op),
    Condition(condition::Op),
    Event(event::Op),
    Barrier(barrier::Op),
    Namespace(namespace::Op),
    Value(value::Op),
    Array(array::Op),
    Custom(custom::Op),
}

/// An object's state, by kind.
enum Body {
    Dict(Cell<dict::State>),
    List(Cell<list::State>),
    Queue(Cell<queue::State>),
    Lock(Cell<lock::State>),
    RLock(Cell<lock::Owner>),
    Semaphore(Cell<semaphore::State>),
    Condition(Cell<condition::State>),
    Event(Cell<event::State>),
    Barrier(Cell<barrier::State>),
    Namespace(Cell<namespace::State>),
    Value(Cell<value::State>),
    Array(Cell<array::State>),
    Custom(Cell<custom::State>),
}

/// An object in a server.
pub(crate) struct Object {
    kind: Kind,
    body: Body,
}

impl Object {
    pub(crate) fn new(init: Init) -> Object {
        let (kind, body) = match init {
            Init::Dict(items) => (
                Kind::Dict,
                Body::Dict(Cell::new(items.into_iter().collect())),
            ),
            Init::List(v) => (Kind::List, Body::List(Cell::new(v))),
            Init::Queue { maxsize, joinable } => {
                let q = queue::State::new(maxsize, joinable);
                (q.kind(), Body::Queue(Cell::new(q)))
            }
            Init::Lock => (Kind::Lock, Body::Lock(Cell::new(None))),
            Init::RLock => (Kind::RLock, Body::RLock(Cell::new(lock::Owner::default()))),
            Init::Semaphore { value, bounded } => {
                let s = semaphore::State::new(value, bounded);
                (s.kind(), Body::Semaphore(Cell::new(s)))
            }
            Init::Condition => (
                Kind::Condition,
                Body::Condition(Cell::new(condition::State::new())),
            ),
            Init::Event => (Kind::Event, Body::Event(Cell::new(event::State::default()))),
            Init::Barrier(parties) => (
                Kind::Barrier,
                Body::Barrier(Cell::new(barrier::State::new(parties))),
            ),
            Init::Namespace => (
                Kind::Namespace,
                Body::Namespace(Cell::new(namespace::State::new())),
            ),
            Init::Value(b) => (Kind::Value, Body::Value(Cell::new(b))),
            Init::Array(v) => (Kind::Array, Body::Array(Cell::new(v))),
        };
        Object { kind, body }
    }

    pub(crate) fn custom(obj: Box<dyn custom::SharedObject>) -> Object {
        Object {
            kind: Kind::Custom,
            body: Body::Custom(Cell::new(obj)),
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// The objects that proxies stored in this object refer to.
    pub(crate) fn refs(&self) -> Vec<u64> {
        fn of<'a>(items: impl Iterator<Item = &'a Item>) -> Vec<u64> {
            items.flat_map(|i| i.refs.iter().copied()).collect()
        }
        match &self.body {
            Body::Dict(c) => of(c.lock().values()),
            Body::List(c) | Body::Array(c) => of(c.lock().iter()),
            Body::Queue(c) => of(c.lock().items()),
            Body::Namespace(c) => of(c.lock().values()),
            Body::Value(c) => of(std::iter::once(&*c.lock())),
            Body::Lock(_)
            | Body::RLock(_)
            | Body::Semaphore(_)
            | Body::Condition(_)
            | Body::Event(_)
            | Body::Barrier(_)
            | Body::Custom(_) => Vec::new(),
        }
    }

    /// Runs one operation.
    pub(crate) fn apply(&self, op: Op, cx: &mut Cx<'_>) -> Result<Reply> {
        match (&self.body, op) {
            (Body::Dict(c), Op::Dict(op)) => dict::apply(c, op, cx),
            (Body::List(c), Op::List(op)) => list::apply(c, op, cx),
            (Body::Queue(c), Op::Queue(op)) => queue::apply(c, op, cx),
            (Body::Lock(c), Op::Lock(op)) => lock::apply(c, op, cx),
            (Body::RLock(c), Op::Lock(op)) => lock::apply_rlock(c, op, cx),
            (Body::Semaphore(c), Op::Semaphore(op)) => semaphore::apply(c, op, cx),
            (Body::Condition(c), Op::Condition(op)) => condition::apply(c, op, cx),
            (Body::Event(c), Op::Event(op)) => event::apply(c, op, cx),
            (Body::Barrier(c), Op::Barrier(op)) => barrier::apply(c, op, cx),
            (Body::Namespace(c), Op::Namespace(op)) => namespace::apply(c, op, cx),
            (Body::Value(c), Op::Value(op)) => value::apply(c, op, cx),
            (Body::Array(c), Op::Array(op)) => array::apply(c, op, cx),
            (Body::Custom(c), Op::Custom(op)) => custom::apply(c, op, cx),
            // The client sent an op of another kind: refuse it, the connection goes on.
            (_, op) => Err(no_such_op(self.kind, &op_name(&op))),
        }
    }

    /// Frees what connection `conn`, which ended, held of this object.
    pub(crate) fn abandon(&self, conn: u64) {
        match &self.body {
            Body::Lock(c) => lock::abandon(c, conn),
            Body::RLock(c) => lock::abandon_rlock(c, conn),
            Body::Condition(c) => condition::abandon(c, conn),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::error::ErrorKind;
    use crate::manager::protocol::{Ops, Request, Tagged, Wait};
    use crate::wire::codec;

    /// Encodes `op` as a proxy does, decodes it as the server does.
    fn travel<O: Ops>(op: &O) -> Op {
        let req = Request::<(), _>::Call(5, Tagged(op));
        let enc = codec::encode(&req).unwrap();
        match codec::decode::<Request<Init, Op>>(&enc.bytes, Vec::new()).unwrap() {
            Request::Call(5, op) => op,
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn every_family_lands_on_its_own_variant() {
        let item = Item {
            bytes: vec![1],
            refs: vec![2],
        };
        let dict_op = dict::Op::Insert(vec![1], item.clone());
        assert!(
            matches!(travel(&dict_op), Op::Dict(dict::Op::Insert(k, i)) if k == [1] && i == item)
        );
        assert!(matches!(
            travel(&list::Op::Get(-1)),
            Op::List(list::Op::Get(-1))
        ));
        assert!(matches!(
            travel(&queue::Op::Get(Wait::Now)),
            Op::Queue(queue::Op::Get(Wait::Now))
        ));
        assert!(matches!(
            travel(&lock::Op::Release),
            Op::Lock(lock::Op::Release)
        ));
        assert!(matches!(
            travel(&semaphore::Op::GetValue),
            Op::Semaphore(semaphore::Op::GetValue)
        ));
        assert!(matches!(
            travel(&condition::Op::Notify(3)),
            Op::Condition(condition::Op::Notify(3))
        ));
        assert!(matches!(
            travel(&event::Op::IsSet),
            Op::Event(event::Op::IsSet)
        ));
        assert!(matches!(
            travel(&barrier::Op::Parties),
            Op::Barrier(barrier::Op::Parties)
        ));
        assert!(matches!(
            travel(&namespace::Op::Names),
            Op::Namespace(namespace::Op::Names)
        ));
        assert!(matches!(travel(&value::Op::Get), Op::Value(value::Op::Get)));
        assert!(matches!(
            travel(&array::Op::ToVec),
            Op::Array(array::Op::ToVec)
        ));
        assert!(matches!(
            travel(&custom::Op::Method("m".into(), vec![])),
            Op::Custom(custom::Op::Method(m, _)) if m == "m"
        ));
        // And the table encodes the same bytes as a tagged op.
        let direct = codec::encode(&Op::Value(value::Op::Get)).unwrap().bytes;
        let tagged = codec::encode(&Tagged(&value::Op::Get)).unwrap().bytes;
        assert_eq!(direct, tagged);
    }

    fn run(obj: &Object, op: Op) -> Result<Reply> {
        let mut held = HashSet::new();
        Cx::detached(1, &mut held, |cx| obj.apply(op, cx))
    }

    #[test]
    fn an_op_of_another_kind_is_refused() {
        let q = Object::new(Init::Queue {
            maxsize: None,
            joinable: false,
        });
        assert_eq!(q.kind(), Kind::Queue);
        let e = run(&q, Op::Dict(dict::Op::Len)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(
            e.to_string().contains("a Queue has no operation Dict::Len"),
            "{e}"
        );
        // A lock's ops drive an rlock, not a semaphore.
        let r = Object::new(Init::RLock);
        assert_eq!(
            run(&r, Op::Lock(lock::Op::Acquire(Wait::Now))).unwrap(),
            Reply::Bool(true)
        );
        let s = Object::new(Init::Semaphore {
            value: 1,
            bounded: true,
        });
        assert_eq!(s.kind(), Kind::BoundedSemaphore);
        assert!(run(&s, Op::Lock(lock::Op::Release)).is_err());
    }

    #[test]
    fn stored_references_are_listed() {
        let with = |r: u64| Item {
            bytes: vec![],
            refs: vec![r],
        };
        let d = Object::new(Init::Dict(vec![(vec![1], with(3)), (vec![2], with(4))]));
        assert_eq!(d.refs(), vec![3, 4]);
        let v = Object::new(Init::Value(with(9)));
        assert_eq!(v.refs(), vec![9]);
        assert!(Object::new(Init::Event).refs().is_empty());
    }

    #[test]
    fn a_connection_that_ends_frees_its_locks() {
        let l = Object::new(Init::Lock);
        let mut held = HashSet::new();
        Cx::detached(7, &mut held, |cx| {
            l.apply(Op::Lock(lock::Op::Acquire(Wait::Now)), cx).unwrap();
        });
        l.abandon(7);
        assert_eq!(
            run(&l, Op::Lock(lock::Op::Acquire(Wait::Now))).unwrap(),
            Reply::Bool(true)
        );
    }

    proptest::proptest! {
        /// Whatever bytes a logged-in client sends as a request, the server's decoder
        /// answers with a value or an error; it never panics or allocates wildly.
        #[test]
        fn any_bytes_as_a_request_decode_or_fail(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = codec::decode::<Request<Init, Op>>(&bytes, Vec::new());
        }

        /// A valid request with bytes flipped, cut or grown decodes or fails cleanly.
        #[test]
        fn mutated_requests_decode_or_fail(
            at in proptest::prelude::any::<proptest::sample::Index>(),
            with in proptest::prelude::any::<u8>(),
            cut in 0usize..64,
            huge in proptest::prelude::any::<bool>(),
        ) {
            let op = dict::Op::Insert(vec![1, 2, 3], Item { bytes: vec![9; 40], refs: vec![4] });
            let req = Request::<(), _>::Call(5, Tagged(&op));
            let mut bytes = codec::encode(&req).unwrap().bytes;
            let i = at.index(bytes.len());
            bytes[i] = with;
            if huge && bytes.len() >= i + 8 {
                bytes[i..i + 8].copy_from_slice(&(1u64 << 62).to_le_bytes());
            }
            bytes.truncate(bytes.len().saturating_sub(cut));
            let _ = codec::decode::<Request<Init, Op>>(&bytes, Vec::new());
        }
    }
}
