//! A list in a manager: [`ListProxy`](crate::ListProxy), its operations, and how the server applies them.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::manager::handler::{Cell, Cx, index};
use crate::manager::protocol::{Bytes, Family, Item, Ops, Reply, encode_args};
use crate::manager::proxy::{list, maybe, number, proxy_type, unit, value};

proxy_type!(
    /// A list in a manager: Python's `manager.list()`.
    ///
    /// Indices may be negative, counting from the end, as in Python.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let l = m.list::<i32>()?;
    /// l.extend(0..10)?;
    /// l.reverse()?;
    /// assert_eq!(l.to_vec()?, vec![9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    ListProxy[T], "List"
);

impl<T: Serialize + DeserializeOwned> ListProxy<T> {
    /// Appends `item` (Python's `append`).
    ///
    /// # Errors
    ///
    /// As [`DictProxy::insert`](crate::DictProxy::insert).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let l = m.list::<String>()?;
    /// l.push("a".into())?;
    /// assert_eq!(l.len()?, 1);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    #[doc(alias = "append")]
    pub fn push(&self, x: T) -> Result<()> {
        unit(self.home.call(&Op::Push(self.home.item(&x)?))?)
    }

    /// The item at `index`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when out of range (Python's `IndexError`);
    /// otherwise as [`DictProxy::get`](crate::DictProxy::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let l = m.list::<u8>()?;
    /// l.extend([1, 2, 3])?;
    /// assert_eq!((l.get(0)?, l.get(-1)?), (1, 3));
    /// assert!(l.get(3).is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn get(&self, index: i64) -> Result<T> {
        value(self.home.call(&Op::Get(index))?)
    }

    /// Replaces the item at `index`.
    ///
    /// # Errors
    ///
    /// As [`get`](ListProxy::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let l = m.list::<u8>()?;
    /// l.extend([1, 2])?;
    /// l.set(-1, 5)?;
    /// assert_eq!(l.to_vec()?, vec![1, 5]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn set(&self, index: i64, x: T) -> Result<()> {
        unit(self.home.call(&Op::Set(index, self.home.item(&x)?))?)
    }

    /// The number of items.
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
    /// assert_eq!(m.list::<u8>()?.len()?, 0);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn len(&self) -> Result<usize> {
        Ok(number(self.home.call(&Op::Len)?)? as usize)
    }

    /// Is it empty?
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
    /// assert!(m.list::<u8>()?.is_empty()?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Removes and returns the last item, `None` when empty.
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
    /// let l = m.list::<u8>()?;
    /// l.push(4)?;
    /// assert_eq!(l.pop()?, Some(4));
    /// assert_eq!(l.pop()?, None);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn pop(&self) -> Result<Option<T>> {
        maybe(self.home.call(&Op::Pop)?)
    }

    /// Inserts `item` before `index` (clamped to the list, as Python's `insert`).
    ///
    /// # Errors
    ///
    /// As [`push`](ListProxy::push).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let l = m.list::<u8>()?;
    /// l.extend([1, 3])?;
    /// l.insert(1, 2)?;
    /// l.insert(100, 4)?;
    /// assert_eq!(l.to_vec()?, vec![1, 2, 3, 4]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn insert(&self, index: i64, x: T) -> Result<()> {
        unit(self.home.call(&Op::Insert(index, self.home.item(&x)?))?)
    }

    /// Removes the first item equal to `item` (compared as encoded bytes).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) if there is none (Python's `ValueError`).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let l = m.list::<u8>()?;
    /// l.extend([1, 2, 1])?;
    /// l.remove(&1)?;
    /// assert_eq!(l.to_vec()?, vec![2, 1]);
    /// assert!(l.remove(&7).is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn remove(&self, item: &T) -> Result<()> {
        unit(self.home.call(&Op::Remove(encode_args(item)?))?)
    }

    /// Appends every item, in one call.
    ///
    /// # Errors
    ///
    /// As [`push`](ListProxy::push); nothing is appended if one item fails to encode.
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let l = m.list::<u8>()?;
    /// l.extend([1, 2])?;
    /// assert_eq!(l.len()?, 2);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn extend(&self, items: impl IntoIterator<Item = T>) -> Result<()> {
        let items = items
            .into_iter()
            .map(|x| self.home.item(&x))
            .collect::<Result<Vec<_>>>()?;
        unit(self.home.call(&Op::Extend(items))?)
    }

    /// Reverses the list in place.
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
    /// let l = m.list::<u8>()?;
    /// l.extend([1, 2])?;
    /// l.reverse()?;
    /// assert_eq!(l.to_vec()?, vec![2, 1]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn reverse(&self) -> Result<()> {
        unit(self.home.call(&Op::Reverse)?)
    }

    /// Removes every item.
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
    /// let l = m.list::<u8>()?;
    /// l.push(1)?;
    /// l.clear()?;
    /// assert!(l.is_empty()?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn clear(&self) -> Result<()> {
        unit(self.home.call(&Op::Clear)?)
    }

    /// A copy of the whole list (Python's `l[:]`).
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
    /// let l = m.list::<u8>()?;
    /// l.push(1)?;
    /// assert_eq!(l.to_vec()?, vec![1]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn to_vec(&self) -> Result<Vec<T>> {
        list(self.home.call(&Op::ToVec)?)
    }
}

/// A list's operations.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    Push(Item),
    Get(i64),
    Set(i64, Item),
    Len,
    Pop,
    Insert(i64, Item),
    Remove(Bytes),
    Extend(Vec<Item>),
    Reverse,
    Clear,
    ToVec,
}

impl Ops for Op {
    const FAMILY: Family = Family::List;
}

/// A list in the server.
pub(crate) type State = Vec<Item>;

/// Applies `op` to the list.
pub(crate) fn apply(cell: &Cell<State>, op: Op, cx: &mut Cx<'_>) -> Result<Reply> {
    let mut g = cell.lock();
    let v = &mut *g;
    Ok(match op {
        Op::Len => Reply::U64(v.len() as u64),
        Op::Get(i) => Reply::Bytes(v[index(i, v.len())?].bytes.clone()),
        Op::Set(i, x) => {
            let i = index(i, v.len())?;
            cx.store(&x);
            let old = std::mem::replace(&mut v[i], x);
            cx.discard(old);
            Reply::Unit
        }
        Op::ToVec => Reply::List(v.iter().map(|i| i.bytes.clone()).collect()),
        Op::Push(x) => {
            cx.store(&x);
            v.push(x);
            Reply::Unit
        }
        Op::Pop => Reply::MaybeBytes(v.pop().map(|old| cx.take(old))),
        Op::Insert(i, x) => {
            // Python's list.insert clamps the index.
            let len = v.len() as i64;
            let j = if i < 0 { (len + i).max(0) } else { i.min(len) };
            cx.store(&x);
            v.insert(j as usize, x);
            Reply::Unit
        }
        Op::Remove(x) => match v.iter().position(|y| y.bytes == x) {
            Some(i) => {
                let old = v.remove(i);
                cx.discard(old);
                Reply::Unit
            }
            None => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    "list.remove(x): x not in list",
                ));
            }
        },
        Op::Extend(xs) => {
            for x in &xs {
                cx.store(x);
            }
            v.extend(xs);
            Reply::Unit
        }
        Op::Reverse => {
            v.reverse();
            Reply::Unit
        }
        Op::Clear => {
            for old in v.drain(..) {
                cx.discard(old);
            }
            Reply::Unit
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::handler::item as it;

    fn run(cell: &Cell<State>, op: Op) -> Result<Reply> {
        Cx::run_as(1, cell, op, apply)
    }

    #[test]
    fn python_list_semantics() {
        let l = Cell::new(State::new());
        run(&l, Op::Extend(vec![it(1), it(3)])).unwrap();
        run(&l, Op::Insert(1, it(2))).unwrap();
        run(&l, Op::Insert(100, it(4))).unwrap(); // clamped to the end
        run(&l, Op::Insert(-100, it(0))).unwrap(); // clamped to the start
        let all = |l: &Cell<State>| run(l, Op::ToVec).unwrap();
        assert_eq!(
            all(&l),
            Reply::List(vec![vec![0], vec![1], vec![2], vec![3], vec![4]])
        );
        assert_eq!(run(&l, Op::Get(-1)).unwrap(), Reply::Bytes(vec![4]));
        assert_eq!(
            run(&l, Op::Get(5)).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        run(&l, Op::Set(-5, it(9))).unwrap();
        run(&l, Op::Remove(vec![2])).unwrap();
        assert_eq!(
            run(&l, Op::Remove(vec![7])).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        run(&l, Op::Reverse).unwrap();
        assert_eq!(
            all(&l),
            Reply::List(vec![vec![4], vec![3], vec![1], vec![9]])
        );
        assert_eq!(run(&l, Op::Pop).unwrap(), Reply::MaybeBytes(Some(vec![9])));
        run(&l, Op::Push(it(5))).unwrap();
        assert_eq!(run(&l, Op::Len).unwrap(), Reply::U64(4));
        run(&l, Op::Clear).unwrap();
        assert_eq!(run(&l, Op::Pop).unwrap(), Reply::MaybeBytes(None));
    }
}
