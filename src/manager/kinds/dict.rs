//! A dict in a manager: [`DictProxy`](crate::DictProxy), its operations, and how the server applies them.

use std::collections::HashMap;
use std::hash::Hash;

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::manager::handler::{Cell, Cx};
use crate::manager::protocol::{Bytes, Family, Item, Ops, Reply, encode_args};
use crate::manager::proxy::{
    boolean, dec, list, maybe, number, pairs, proxy_type, unexpected, unit, value,
};

proxy_type!(
    /// A dict in a manager: Python's `manager.dict()`, keys and values of any
    /// serializable types.
    ///
    /// Keys are compared by their encoded bytes (see the manager's design notes):
    /// use keys whose encoding is canonical (not `HashMap`s, not `-0.0`). Iteration
    /// order is insertion order, as in Python; [`pop_item`](DictProxy::pop_item) takes
    /// the last inserted item.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let d = m.dict::<String, i32>()?;
    /// d.insert("a".into(), 1)?;
    /// assert_eq!(d.get(&"a".into())?, Some(1));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    DictProxy[K, V], "Dict"
);

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> DictProxy<K, V> {
    /// The value for `key`, if any (Python's `d.get(k)`).
    ///
    /// # Errors
    ///
    /// A manager that is gone is [`ErrorKind::Disconnected`](crate::ErrorKind::Disconnected); bytes that do not decode
    /// as `V` (another program stored another type) are [`ErrorKind::Deserialize`](crate::ErrorKind::Deserialize).
    /// Every proxy method fails the same ways.
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let d = m.dict::<u32, String>()?;
    /// assert_eq!(d.get(&1)?, None);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        maybe(self.home.call(&Op::Get(encode_args(key)?))?)
    }

    /// Sets `key` to `value` (Python's `d[k] = v`); returns the old value.
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get); [`ErrorKind::Serialize`](crate::ErrorKind::Serialize) if the key or value does
    /// not encode, or holds a handle.
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let d = m.dict::<u32, u32>()?;
    /// assert_eq!(d.insert(1, 10)?, None);
    /// assert_eq!(d.insert(1, 11)?, Some(10));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>> {
        maybe(
            self.home
                .call(&Op::Insert(encode_args(&key)?, self.home.item(&value)?))?,
        )
    }

    /// Removes `key`; returns its value (Python's `d.pop(k, None)`).
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let d = m.dict::<u32, u32>()?;
    /// d.insert(1, 10)?;
    /// assert_eq!(d.remove(&1)?, Some(10));
    /// assert_eq!(d.remove(&1)?, None);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn remove(&self, key: &K) -> Result<Option<V>> {
        maybe(self.home.call(&Op::Remove(encode_args(key)?))?)
    }

    /// Is `key` present (Python's `k in d`)?
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let d = m.dict::<u32, ()>()?;
    /// d.insert(3, ())?;
    /// assert!(d.contains_key(&3)? && !d.contains_key(&4)?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn contains_key(&self, key: &K) -> Result<bool> {
        boolean(self.home.call(&Op::Contains(encode_args(key)?))?)
    }

    /// The number of items.
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let d = m.dict::<u32, u32>()?;
    /// d.update([(1, 1), (2, 2)])?;
    /// assert_eq!(d.len()?, 2);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn len(&self) -> Result<usize> {
        Ok(number(self.home.call(&Op::Len)?)? as usize)
    }

    /// Is it empty?
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// assert!(m.dict::<u32, u32>()?.is_empty()?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The keys, in insertion order.
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let d = m.dict::<u32, char>()?;
    /// d.update([(2, 'b'), (1, 'a')])?;
    /// assert_eq!(d.keys()?, vec![2, 1]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn keys(&self) -> Result<Vec<K>> {
        list(self.home.call(&Op::Keys)?)
    }

    /// The values, in insertion order of their keys.
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let d = m.dict::<u32, char>()?;
    /// d.update([(2, 'b'), (1, 'a')])?;
    /// assert_eq!(d.values()?, vec!['b', 'a']);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn values(&self) -> Result<Vec<V>> {
        list(self.home.call(&Op::Values)?)
    }

    /// The `(key, value)` pairs, in insertion order.
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let d = m.dict::<u32, char>()?;
    /// d.insert(1, 'a')?;
    /// assert_eq!(d.items()?, vec![(1, 'a')]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn items(&self) -> Result<Vec<(K, V)>> {
        pairs(self.home.call(&Op::Items)?)
    }

    /// Removes every item.
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let d = m.dict::<u32, u32>()?;
    /// d.insert(1, 1)?;
    /// d.clear()?;
    /// assert_eq!(d.len()?, 0);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn clear(&self) -> Result<()> {
        unit(self.home.call(&Op::Clear)?)
    }

    /// Inserts every pair, in one call (Python's `d.update(...)`).
    ///
    /// # Errors
    ///
    /// As [`insert`](DictProxy::insert); nothing is inserted if one pair fails to
    /// encode.
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let d = m.dict::<String, u32>()?;
    /// d.update([("x".into(), 1), ("y".into(), 2)])?;
    /// assert_eq!(d.get(&"y".into())?, Some(2));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn update(&self, items: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        let items: Vec<(Bytes, Item)> = items
            .into_iter()
            .map(|(k, v)| Ok((encode_args(&k)?, self.home.item(&v)?)))
            .collect::<Result<_>>()?;
        unit(self.home.call(&Op::Update(items))?)
    }

    /// Removes and returns the last inserted pair, `None` when empty (Python's
    /// `popitem()`, which raises `KeyError` there).
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let d = m.dict::<u32, u32>()?;
    /// d.update([(1, 10), (2, 20)])?;
    /// assert_eq!(d.pop_item()?, Some((2, 20)));
    /// assert_eq!(d.pop_item()?, Some((1, 10)));
    /// assert_eq!(d.pop_item()?, None);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    #[doc(alias = "popitem")]
    pub fn pop_item(&self) -> Result<Option<(K, V)>> {
        match self.home.call(&Op::PopItem)? {
            Reply::MaybePair(p) => p.map(|(k, v)| Ok((dec(&k)?, dec(&v)?))).transpose(),
            r => Err(unexpected(r)),
        }
    }

    /// The value for `key`, inserting `default` first if it is missing, atomically
    /// (Python's `setdefault`).
    ///
    /// # Errors
    ///
    /// As [`insert`](DictProxy::insert).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let d = m.dict::<u32, u32>()?;
    /// assert_eq!(d.set_default(1, 5)?, 5);
    /// assert_eq!(d.set_default(1, 6)?, 5);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    #[doc(alias = "setdefault")]
    pub fn set_default(&self, key: K, default: V) -> Result<V> {
        value(self.home.call(&Op::SetDefault(
            encode_args(&key)?,
            self.home.item(&default)?,
        ))?)
    }

    /// A copy of the whole dict (Python's `d.copy()`).
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let d = m.dict::<u32, u32>()?;
    /// d.insert(1, 2)?;
    /// assert_eq!(d.to_map()?[&1], 2);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    #[doc(alias = "copy")]
    pub fn to_map(&self) -> Result<HashMap<K, V>>
    where
        K: Eq + Hash,
    {
        Ok(self.items()?.into_iter().collect())
    }
}

/// A dict's operations.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    Get(Bytes),
    Insert(Bytes, Item),
    Remove(Bytes),
    Contains(Bytes),
    Len,
    Keys,
    Values,
    Items,
    Clear,
    Update(Vec<(Bytes, Item)>),
    PopItem,
    SetDefault(Bytes, Item),
}

impl Ops for Op {
    const FAMILY: Family = Family::Dict;
}

/// A dict in the server: key bytes to stored values, in insertion order.
pub(crate) type State = IndexMap<Bytes, Item>;

/// Applies `op` to the dict.
pub(crate) fn apply(cell: &Cell<State>, op: Op, cx: &mut Cx<'_>) -> Result<Reply> {
    let mut g = cell.lock();
    let m = &mut *g;
    Ok(match op {
        Op::Get(k) => Reply::MaybeBytes(m.get(&k).map(|i| i.bytes.clone())),
        Op::Insert(k, v) => {
            cx.store(&v);
            Reply::MaybeBytes(m.insert(k, v).map(|old| cx.take(old)))
        }
        Op::Remove(k) => Reply::MaybeBytes(m.shift_remove(&k).map(|old| cx.take(old))),
        Op::Contains(k) => Reply::Bool(m.contains_key(&k)),
        Op::Len => Reply::U64(m.len() as u64),
        Op::Keys => Reply::List(m.keys().cloned().collect()),
        Op::Values => Reply::List(m.values().map(|i| i.bytes.clone()).collect()),
        Op::Items => Reply::Pairs(
            m.iter()
                .map(|(k, v)| (k.clone(), v.bytes.clone()))
                .collect(),
        ),
        Op::Clear => {
            for (_, old) in m.drain(..) {
                cx.discard(old);
            }
            Reply::Unit
        }
        Op::Update(items) => {
            for (k, v) in items {
                cx.store(&v);
                if let Some(old) = m.insert(k, v) {
                    cx.discard(old);
                }
            }
            Reply::Unit
        }
        Op::PopItem => Reply::MaybePair(m.pop().map(|(k, v)| (k, cx.take(v)))),
        Op::SetDefault(k, v) => {
            let e = m.entry(k).or_insert_with(|| {
                cx.store(&v);
                v
            });
            Reply::Bytes(e.bytes.clone())
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::manager::handler::Refs;

    fn b(x: u32) -> Bytes {
        encode_args(&x).unwrap()
    }

    fn it(x: u32) -> Item {
        Item {
            bytes: b(x),
            refs: Vec::new(),
        }
    }

    fn run(cell: &Cell<State>, op: Op) -> Reply {
        Cx::run_as(1, cell, op, apply).unwrap()
    }

    #[test]
    fn insert_get_remove_in_insertion_order() {
        let d = Cell::new(State::new());
        assert_eq!(run(&d, Op::Insert(b(2), it(20))), Reply::MaybeBytes(None));
        assert_eq!(run(&d, Op::Insert(b(1), it(10))), Reply::MaybeBytes(None));
        assert_eq!(
            run(&d, Op::Insert(b(2), it(21))),
            Reply::MaybeBytes(Some(b(20)))
        );
        assert_eq!(run(&d, Op::Get(b(2))), Reply::MaybeBytes(Some(b(21))));
        assert_eq!(run(&d, Op::Contains(b(3))), Reply::Bool(false));
        assert_eq!(run(&d, Op::Keys), Reply::List(vec![b(2), b(1)]));
        assert_eq!(run(&d, Op::Values), Reply::List(vec![b(21), b(10)]));
        assert_eq!(run(&d, Op::Remove(b(2))), Reply::MaybeBytes(Some(b(21))));
        assert_eq!(run(&d, Op::Remove(b(2))), Reply::MaybeBytes(None));
        assert_eq!(run(&d, Op::Len), Reply::U64(1));
        assert_eq!(run(&d, Op::Clear), Reply::Unit);
        assert_eq!(run(&d, Op::Items), Reply::Pairs(vec![]));
    }

    #[test]
    fn pop_item_and_set_default() {
        let d = Cell::new(State::new());
        run(&d, Op::Update(vec![(b(1), it(10)), (b(2), it(20))]));
        assert_eq!(run(&d, Op::SetDefault(b(1), it(99))), Reply::Bytes(b(10)));
        assert_eq!(run(&d, Op::SetDefault(b(3), it(30))), Reply::Bytes(b(30)));
        assert_eq!(run(&d, Op::PopItem), Reply::MaybePair(Some((b(3), b(30)))));
        assert_eq!(run(&d, Op::PopItem), Reply::MaybePair(Some((b(2), b(20)))));
        assert_eq!(run(&d, Op::PopItem), Reply::MaybePair(Some((b(1), b(10)))));
        assert_eq!(run(&d, Op::PopItem), Reply::MaybePair(None));
    }

    /// Counts what the handler pins, drops and hands over.
    #[derive(Default)]
    struct Count(std::cell::RefCell<(Vec<u64>, Vec<u64>, Vec<u64>)>);
    impl Refs for Count {
        fn pin(&self, r: &[u64]) {
            self.0.borrow_mut().0.extend(r);
        }
        fn unpin(&self, r: &[u64]) {
            self.0.borrow_mut().1.extend(r);
        }
        fn hand_over(&self, r: &[u64]) {
            self.0.borrow_mut().2.extend(r);
        }
    }

    #[test]
    fn stored_proxies_are_counted() {
        let d = Cell::new(State::new());
        let count = Count::default();
        let gone = || false;
        let mut held = HashSet::new();
        let mut cx = Cx {
            me: 1,
            id: 1,
            held: &mut held,
            gone: &gone,
            refs: &count,
        };
        let with = |r: u64| Item {
            bytes: b(0),
            refs: vec![r],
        };
        apply(&d, Op::Insert(b(1), with(7)), &mut cx).unwrap();
        apply(&d, Op::Insert(b(1), with(8)), &mut cx).unwrap(); // 7 goes to the client
        apply(&d, Op::SetDefault(b(1), with(9)), &mut cx).unwrap(); // present: 9 unused
        apply(&d, Op::Update(vec![(b(1), with(10))]), &mut cx).unwrap(); // 8 dropped
        apply(&d, Op::Clear, &mut cx).unwrap(); // 10 dropped
        let (pinned, dropped, handed) = count.0.take();
        assert_eq!(pinned, vec![7, 8, 10]);
        assert_eq!(dropped, vec![8, 10]);
        assert_eq!(handed, vec![7]);
    }
}
