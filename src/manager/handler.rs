//! What a kind's server-side handler is given: its state in a [`Cell`] (a mutex and
//! a condition variable, for the calls that wait), and a [`Cx`] that says who calls
//! and where the references of stored values are counted.
//!
//! A handler (`kinds/*.rs`, `fn apply`) is plain code over its state: it knows nothing
//! of sockets or of the object table, so the unit tests beside each kind drive it in
//! memory with [`Cx::detached`].

use std::collections::HashSet;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::protocol::{Bytes, Item, Kind, Wait};
use crate::error::{Error, ErrorKind, Result};

/// How often a waiting call checks that its client is still there.
const CHECK: Duration = Duration::from_millis(100);

/// Where the references held by stored values are counted (the server's object
/// table; a no-op in unit tests).
pub(crate) trait Refs {
    /// A stored value holds proxies of `refs`: they stay alive while it is stored.
    fn pin(&self, refs: &[u64]);
    /// A stored value is gone: dropped by the server (replaced, cleared, or its
    /// container freed).
    fn unpin(&self, refs: &[u64]);
    /// A stored value was taken by a client (`get` of a queue, `pop`, `remove`): its
    /// references become a lease, for the client to decode them and own its own.
    fn hand_over(&self, refs: &[u64]);
}

/// No counting at all (unit tests).
#[cfg(test)]
pub(crate) struct NoRefs;

#[cfg(test)]
impl Refs for NoRefs {
    fn pin(&self, _: &[u64]) {}
    fn unpin(&self, _: &[u64]) {}
    fn hand_over(&self, _: &[u64]) {}
}

/// The caller of one operation.
pub(crate) struct Cx<'a> {
    /// The caller's identity: its connection, which owns `RLock`s and conditions.
    pub(crate) me: u64,
    /// The object's id.
    pub(crate) id: u64,
    /// Objects whose lock the caller may hold (released when its connection ends).
    pub(crate) held: &'a mut HashSet<u64>,
    /// Has the caller hung up, or is the server stopping? Checked while a call waits.
    pub(crate) gone: &'a dyn Fn() -> bool,
    pub(crate) refs: &'a dyn Refs,
}

/// A stored value of one byte, for unit tests.
#[cfg(test)]
pub(crate) fn item(x: u8) -> Item {
    Item {
        bytes: vec![x],
        refs: Vec::new(),
    }
}

impl Cx<'_> {
    /// A caller with no connection and no counting, for unit tests.
    #[cfg(test)]
    pub(crate) fn detached<R>(
        me: u64,
        held: &mut HashSet<u64>,
        f: impl FnOnce(&mut Cx<'_>) -> R,
    ) -> R {
        let gone = || false;
        let mut cx = Cx {
            me,
            id: 1,
            held,
            gone: &gone,
            refs: &NoRefs,
        };
        f(&mut cx)
    }

    /// Runs `apply` on `cell` as caller `me` of a detached [`Cx`], for unit tests of a
    /// kind's handler.
    #[cfg(test)]
    pub(crate) fn run_as<S, O>(
        me: u64,
        cell: &Cell<S>,
        op: O,
        apply: fn(&Cell<S>, O, &mut Cx<'_>) -> Result<super::protocol::Reply>,
    ) -> Result<super::protocol::Reply> {
        let mut held = HashSet::new();
        Cx::detached(me, &mut held, |cx| apply(cell, op, cx))
    }

    /// `item` is now stored.
    pub(crate) fn store(&self, item: &Item) {
        self.refs.pin(&item.refs);
    }

    /// `item` was stored and is dropped.
    pub(crate) fn discard(&self, item: Item) {
        self.refs.unpin(&item.refs);
    }

    /// `item` was stored and goes to the client.
    pub(crate) fn take(&self, item: Item) -> Bytes {
        self.refs.hand_over(&item.refs);
        item.bytes
    }
}

/// A kind's state, with the condition variable its waiting calls sleep on.
pub(crate) struct Cell<S> {
    state: Mutex<S>,
    cv: Condvar,
}

impl<S> Cell<S> {
    pub(crate) fn new(state: S) -> Cell<S> {
        Cell {
            state: Mutex::new(state),
            cv: Condvar::new(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes every waiting call, to check its condition again.
    pub(crate) fn notify_all(&self) {
        self.cv.notify_all();
    }

    /// Waits until `ready` or the deadline; `Ok(false)` on timeout; `Disconnected` if
    /// the caller hung up meanwhile (nothing is taken for a caller that is gone).
    pub(crate) fn wait_until<'a>(
        &'a self,
        mut g: MutexGuard<'a, S>,
        cx: &Cx<'_>,
        wait: Wait,
        mut ready: impl FnMut(&mut S) -> bool,
    ) -> Result<(MutexGuard<'a, S>, bool)> {
        let deadline = wait.deadline();
        loop {
            if ready(&mut g) {
                return Ok((g, true));
            }
            let now = Instant::now();
            let slice = match deadline {
                Some(d) if now >= d => return Ok((g, false)),
                Some(d) => (d - now).min(CHECK),
                None => CHECK,
            };
            g = self
                .cv
                .wait_timeout(g, slice)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            if (cx.gone)() {
                return Err(Error::disconnected());
            }
        }
    }
}

/// A kind that has no such operation (a queue asked for `task_done`, an op of one
/// kind sent to an object of another): the request is refused, the connection goes on.
pub(crate) fn no_such_op(kind: Kind, op: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("a {kind:?} has no operation {op}"),
    )
}

/// The name of an operation, from its `Debug` form (`Get([1])` is `Get`).
pub(crate) fn op_name(op: &impl std::fmt::Debug) -> String {
    let name = format!("{op:?}");
    let mut parts = name.split('(');
    let first = parts.next().unwrap_or("?");
    match parts.next() {
        // A table variant around a kind's op: `Dict(Get([1]))` is `Dict::Get`.
        Some(inner)
            if !inner.is_empty() && inner.chars().next().is_some_and(char::is_uppercase) =>
        {
            format!(
                "{first}::{}",
                inner.split([',', ')', ' ']).next().unwrap_or("?")
            )
        }
        _ => first.to_string(),
    }
}

/// Resolves a Python-style index (negative counts from the end).
pub(crate) fn index(i: i64, len: usize) -> Result<usize> {
    let j = if i < 0 { len as i64 + i } else { i };
    if j < 0 || j as usize >= len {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("index {i} out of range for length {len}"),
        ));
    }
    Ok(j as usize)
}

/// Releasing a lock that is not locked (a `Lock`: any caller may release it).
pub(crate) fn not_owner(what: &str) -> Error {
    Error::new(
        ErrorKind::InvalidState,
        format!("cannot release an un-acquired {what}"),
    )
}

/// Releasing (or waiting on, notifying) what has an owner that is not the caller:
/// an `RLock` or a condition. [`ErrorKind::NotPermitted`], as the crate's own
/// [`RLock`](crate::RLock) and [`Condition`](crate::Condition) say.
pub(crate) fn not_the_owner(what: &str) -> Error {
    Error::new(
        ErrorKind::NotPermitted,
        format!("cannot release an un-acquired {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_indices() {
        assert_eq!(index(0, 3).unwrap(), 0);
        assert_eq!(index(-1, 3).unwrap(), 2);
        assert_eq!(index(-3, 3).unwrap(), 0);
        assert_eq!(index(3, 3).unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(index(-4, 3).unwrap_err().kind(), ErrorKind::InvalidInput);
        assert!(index(0, 0).is_err());
    }

    #[derive(Debug)]
    #[allow(dead_code)]
    enum Inner {
        Get(Vec<u8>),
        Len,
    }
    #[derive(Debug)]
    #[allow(dead_code)]
    enum Outer {
        Dict(Inner),
    }

    #[test]
    fn op_names() {
        assert_eq!(op_name(&Inner::Get(vec![1])), "Get");
        assert_eq!(op_name(&Inner::Len), "Len");
        assert_eq!(op_name(&Outer::Dict(Inner::Len)), "Dict::Len");
        assert_eq!(op_name(&Outer::Dict(Inner::Get(vec![]))), "Dict::Get");
    }

    #[test]
    fn a_wait_times_out_and_sees_a_caller_gone() {
        let cell = Cell::new(0u8);
        let mut held = HashSet::new();
        Cx::detached(1, &mut held, |cx| {
            let g = cell.lock();
            let ok = cell
                .wait_until(g, cx, Wait::timeout(Duration::from_millis(5)), |n| *n > 0)
                .unwrap()
                .1;
            assert!(!ok);
            let g = cell.lock();
            let ok = cell.wait_until(g, cx, Wait::Now, |_| true).unwrap().1;
            assert!(ok);
        });
        let gone = || true;
        let cx = Cx {
            me: 1,
            id: 1,
            held: &mut held,
            gone: &gone,
            refs: &NoRefs,
        };
        let g = cell.lock();
        let e = cell
            .wait_until(g, &cx, Wait::Block, |n| *n > 0)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Disconnected);
    }
}
