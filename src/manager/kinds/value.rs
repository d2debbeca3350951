//! A value in a manager: [`ValueProxy`](crate::ValueProxy), its operations, and how the server applies
//! them.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::manager::handler::{Cell, Cx};
use crate::manager::protocol::{Family, Item, Ops, Reply};
use crate::manager::proxy::{proxy_type, unit, value};

proxy_type!(
    /// A value in a manager: Python's `manager.Value(typecode, x)`, of any
    /// serializable type.
    ///
    /// `get` then `set` is two calls, not atomic: guard a read-modify-write with a
    /// [`LockProxy`](crate::LockProxy), as in Python.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let v = m.value(1.5f64)?;
    /// v.set(&2.5)?;
    /// assert_eq!(v.get()?, 2.5);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    ValueProxy[T], "Value"
);

impl<T: Serialize + DeserializeOwned> ValueProxy<T> {
    /// The value (Python's `v.value`).
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`](crate::DictProxy::get).
    ///
    /// # Examples
    ///
    /// See [`ValueProxy`](crate::ValueProxy).
    pub fn get(&self) -> Result<T> {
        value(self.home.call(&Op::Get)?)
    }

    /// Replaces the value (Python's `v.value = x`).
    ///
    /// # Errors
    ///
    /// As [`DictProxy::insert`](crate::DictProxy::insert).
    ///
    /// # Examples
    ///
    /// See [`ValueProxy`](crate::ValueProxy).
    pub fn set(&self, x: &T) -> Result<()> {
        unit(self.home.call(&Op::Set(self.home.item(x)?))?)
    }
}

/// A value's operations.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    Get,
    Set(Item),
}

impl Ops for Op {
    const FAMILY: Family = Family::Value;
}

/// A value in the server.
pub(crate) type State = Item;

/// Applies `op` to the value.
pub(crate) fn apply(cell: &Cell<State>, op: Op, cx: &mut Cx<'_>) -> Result<Reply> {
    let mut v = cell.lock();
    Ok(match op {
        Op::Get => Reply::Bytes(v.bytes.clone()),
        Op::Set(x) => {
            cx.store(&x);
            let old = std::mem::replace(&mut *v, x);
            cx.discard(old);
            Reply::Unit
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn get_what_was_set() {
        let v = Cell::new(Item::default());
        let mut held = HashSet::new();
        Cx::detached(1, &mut held, |cx| {
            assert_eq!(apply(&v, Op::Get, cx).unwrap(), Reply::Bytes(vec![]));
            let x = Item {
                bytes: vec![4, 2],
                refs: vec![],
            };
            assert_eq!(apply(&v, Op::Set(x), cx).unwrap(), Reply::Unit);
            assert_eq!(apply(&v, Op::Get, cx).unwrap(), Reply::Bytes(vec![4, 2]));
        });
    }
}
