//! A fixed-length array in a manager: [`ArrayProxy`](crate::ArrayProxy), its operations, and how the
//! server applies them.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::manager::handler::{Cell, Cx};
use crate::manager::kinds::list;
use crate::manager::protocol::{Family, Item, Ops, Reply};
use crate::manager::proxy::{list, number, proxy_type, unit, value};

proxy_type!(
    /// A fixed-length array in a manager: Python's `manager.Array(typecode, seq)`.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let a = m.array(&[1, 2, 3])?;
    /// a.set(0, 10)?;
    /// assert_eq!(a.to_vec()?, vec![10, 2, 3]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    ArrayProxy[T], "Array"
);

impl<T: Serialize + DeserializeOwned> ArrayProxy<T> {
    /// The length.
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
    /// assert_eq!(m.array(&[0u8; 4])?.len()?, 4);
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
    /// assert!(m.array::<u8>(&[])?.is_empty()?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The item at `index` (negative counts from the end).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// assert_eq!(m.array(&[1, 2])?.get(-1)?, 2);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn get(&self, index: i64) -> Result<T> {
        value(self.home.call(&Op::Get(index))?)
    }

    /// Replaces the item at `index`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when out of range.
    ///
    /// # Examples
    ///
    /// See [`ArrayProxy`](crate::ArrayProxy).
    pub fn set(&self, index: i64, x: T) -> Result<()> {
        unit(self.home.call(&Op::Set(index, self.home.item(&x)?))?)
    }

    /// A copy of the whole array.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`](crate::DictProxy::get).
    ///
    /// # Examples
    ///
    /// See [`ArrayProxy`](crate::ArrayProxy).
    pub fn to_vec(&self) -> Result<Vec<T>> {
        list(self.home.call(&Op::ToVec)?)
    }
}

/// An array's operations (a list's, without those that change its length).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    Len,
    Get(i64),
    Set(i64, Item),
    ToVec,
}

impl Ops for Op {
    const FAMILY: Family = Family::Array;
}

/// An array in the server.
pub(crate) type State = list::State;

/// Applies `op` to the array: as the list's op of the same name (an array is a list
/// whose length never changes).
pub(crate) fn apply(cell: &Cell<State>, op: Op, cx: &mut Cx<'_>) -> Result<Reply> {
    let op = match op {
        Op::Len => list::Op::Len,
        Op::Get(i) => list::Op::Get(i),
        Op::Set(i, x) => list::Op::Set(i, x),
        Op::ToVec => list::Op::ToVec,
    };
    list::apply(cell, op, cx)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn fixed_length_get_and_set() {
        let it = |x: u8| Item {
            bytes: vec![x],
            refs: Vec::new(),
        };
        let a = Cell::new(vec![it(1), it(2)]);
        let mut held = HashSet::new();
        Cx::detached(1, &mut held, |cx| {
            apply(&a, Op::Set(-2, it(5)), cx).unwrap();
            assert_eq!(apply(&a, Op::Get(0), cx).unwrap(), Reply::Bytes(vec![5]));
            let e = apply(&a, Op::Set(2, it(0)), cx).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert_eq!(apply(&a, Op::Len, cx).unwrap(), Reply::U64(2));
            assert_eq!(
                apply(&a, Op::ToVec, cx).unwrap(),
                Reply::List(vec![vec![5], vec![2]])
            );
        });
    }
}
