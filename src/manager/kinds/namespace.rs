//! A namespace in a manager: [`NamespaceProxy`](crate::NamespaceProxy), its operations, and how the server
//! applies them.

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::manager::handler::{Cell, Cx};
use crate::manager::protocol::{Family, Item, Ops, Reply};
use crate::manager::proxy::{maybe, proxy_type, strings, unexpected, unit};

proxy_type!(
    /// A namespace in a manager: Python's `manager.Namespace()`, named attributes of
    /// any serializable type.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let ns = m.namespace()?;
    /// ns.set("x", &1)?;
    /// ns.set("name", &"bob")?;
    /// assert_eq!(ns.get::<i32>("x")?, Some(1));
    /// assert_eq!(ns.names()?, vec!["x", "name"]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    NamespaceProxy[], "Namespace"
);

impl NamespaceProxy {
    /// The attribute `name` as a `T`, `None` if it is not set.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Deserialize`](crate::ErrorKind::Deserialize) if it holds another type; otherwise as
    /// [`DictProxy::get`](crate::DictProxy::get).
    ///
    /// # Examples
    ///
    /// See [`NamespaceProxy`](crate::NamespaceProxy).
    #[doc(alias = "getattr")]
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        maybe(self.home.call(&Op::Get(name.to_string()))?)
    }

    /// Sets the attribute `name`.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::insert`](crate::DictProxy::insert).
    ///
    /// # Examples
    ///
    /// See [`NamespaceProxy`](crate::NamespaceProxy).
    #[doc(alias = "setattr")]
    pub fn set<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<()> {
        unit(
            self.home
                .call(&Op::Set(name.to_string(), self.home.item(value)?))?,
        )
    }

    /// Removes the attribute `name`; `true` if it was set.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`](crate::DictProxy::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let ns = m.namespace()?;
    /// ns.set("x", &1)?;
    /// assert!(ns.remove("x")?);
    /// assert!(!ns.remove("x")?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    #[doc(alias = "delattr")]
    pub fn remove(&self, name: &str) -> Result<bool> {
        match self.home.call(&Op::Remove(name.to_string()))? {
            Reply::MaybeBytes(b) => Ok(b.is_some()),
            r => Err(unexpected(r)),
        }
    }

    /// The names set, in the order they were first set.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`](crate::DictProxy::get).
    ///
    /// # Examples
    ///
    /// See [`NamespaceProxy`](crate::NamespaceProxy).
    pub fn names(&self) -> Result<Vec<String>> {
        strings(self.home.call(&Op::Names)?)
    }
}

/// A namespace's operations.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    Get(String),
    Set(String, Item),
    Remove(String),
    Names,
}

impl Ops for Op {
    const FAMILY: Family = Family::Namespace;
}

/// A namespace in the server: names to values, in the order first set.
pub(crate) type State = IndexMap<String, Item>;

/// Applies `op` to the namespace.
pub(crate) fn apply(cell: &Cell<State>, op: Op, cx: &mut Cx<'_>) -> Result<Reply> {
    let mut g = cell.lock();
    let m = &mut *g;
    Ok(match op {
        Op::Get(k) => Reply::MaybeBytes(m.get(&k).map(|i| i.bytes.clone())),
        Op::Set(k, v) => {
            cx.store(&v);
            if let Some(old) = m.insert(k, v) {
                cx.discard(old);
            }
            Reply::Unit
        }
        Op::Remove(k) => Reply::MaybeBytes(m.shift_remove(&k).map(|old| cx.take(old))),
        Op::Names => Reply::Strings(m.keys().cloned().collect()),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn attributes_in_the_order_first_set() {
        let ns = Cell::new(State::new());
        let it = |x: u8| Item {
            bytes: vec![x],
            refs: Vec::new(),
        };
        let mut held = HashSet::new();
        Cx::detached(1, &mut held, |cx| {
            apply(&ns, Op::Set("x".into(), it(1)), cx).unwrap();
            apply(&ns, Op::Set("y".into(), it(2)), cx).unwrap();
            apply(&ns, Op::Set("x".into(), it(3)), cx).unwrap();
            assert_eq!(
                apply(&ns, Op::Names, cx).unwrap(),
                Reply::Strings(vec!["x".into(), "y".into()])
            );
            assert_eq!(
                apply(&ns, Op::Get("x".into()), cx).unwrap(),
                Reply::MaybeBytes(Some(vec![3]))
            );
            assert_eq!(
                apply(&ns, Op::Remove("x".into()), cx).unwrap(),
                Reply::MaybeBytes(Some(vec![3]))
            );
            assert_eq!(
                apply(&ns, Op::Get("x".into()), cx).unwrap(),
                Reply::MaybeBytes(None)
            );
        });
    }
}
