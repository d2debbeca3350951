//! Typed proxies: generic wrappers that encode arguments, call the server and decode
//! the reply. A proxy is `(address, authkey, object id)` and a phantom type: cheap to
//! clone, and serializable to any process under any start method, through a queue or
//! a connection, even over TCP.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::client::{Token, release, request};
use super::protocol::{Bytes, Item, Op, Reply, Request, Wait};
use super::shared::encode_args;
use crate::error::{Error, ErrorKind, Result};
use crate::listener::AuthKey;
use crate::queue::PutError;
use crate::wire::codec;

/// A handle on an object in a manager's server. Implemented by every proxy type; used
/// by [`Manager::get`](crate::Manager::get) to check that a named object has the
/// type asked for.
pub trait Proxy: Sized {
    /// The server-side kind this proxy drives (`"Dict"`, `"Queue"`, ...).
    #[doc(hidden)]
    const KIND: &'static str;
    /// Makes the proxy from its parts; it owns one reference (the server counted it).
    #[doc(hidden)]
    fn from_parts(address: String, authkey: AuthKey, id: u64) -> Self;
}

fn call(t: &Token, op: Op) -> Result<Reply> {
    request(&t.address, &t.authkey, &Request::Call(t.id, op))
}

fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T> {
    codec::decode(b, Vec::new())
}

fn unexpected(r: Reply) -> Error {
    Error::new(
        ErrorKind::Protocol,
        format!("unexpected reply from the manager: {r:?}"),
    )
}

fn unit(r: Reply) -> Result<()> {
    match r {
        Reply::Unit => Ok(()),
        r => Err(unexpected(r)),
    }
}

fn boolean(r: Reply) -> Result<bool> {
    match r {
        Reply::Bool(b) => Ok(b),
        r => Err(unexpected(r)),
    }
}

fn number(r: Reply) -> Result<u64> {
    match r {
        Reply::U64(n) => Ok(n),
        r => Err(unexpected(r)),
    }
}

fn value<T: DeserializeOwned>(r: Reply) -> Result<T> {
    match r {
        Reply::Bytes(b) => dec(&b),
        r => Err(unexpected(r)),
    }
}

fn maybe<T: DeserializeOwned>(r: Reply) -> Result<Option<T>> {
    match r {
        Reply::MaybeBytes(b) => b.map(|b| dec(&b)).transpose(),
        r => Err(unexpected(r)),
    }
}

fn list<T: DeserializeOwned>(r: Reply) -> Result<Vec<T>> {
    match r {
        Reply::List(v) => v.iter().map(|b| dec(b)).collect(),
        r => Err(unexpected(r)),
    }
}

fn pairs<K: DeserializeOwned, V: DeserializeOwned>(r: Reply) -> Result<Vec<(K, V)>> {
    match r {
        Reply::Pairs(v) => v.iter().map(|(k, x)| Ok((dec(k)?, dec(x)?))).collect(),
        r => Err(unexpected(r)),
    }
}

fn strings(r: Reply) -> Result<Vec<String>> {
    match r {
        Reply::Strings(v) => Ok(v),
        r => Err(unexpected(r)),
    }
}

macro_rules! proxy {
    ($(#[$m:meta])* $name:ident [$($g:ident),*], $kind:literal) => {
        $(#[$m])*
        ///
        /// # Lifetime
        ///
        /// Each proxy owns a reference to its object: cloning adds one (a call to the
        /// server), dropping gives it back (a message without an answer), and a
        /// value stored in the same manager that holds a proxy owns one while it is
        /// stored. The object is freed when nothing owns it and no serialized proxy
        /// is in transit (see [`Manager::object_count`](crate::Manager::object_count)).
        pub struct $name<$($g = ()),*> {
            token: Token,
            /// Whether this proxy holds one of the object's references.
            owned: bool,
            _t: PhantomData<fn() -> ($($g,)*)>,
        }

        impl<$($g),*> Clone for $name<$($g),*> {
            fn clone(&self) -> Self {
                $name {
                    token: self.token.clone(),
                    owned: incref(&self.token),
                    _t: PhantomData,
                }
            }
        }

        impl<$($g),*> Drop for $name<$($g),*> {
            fn drop(&mut self) {
                if self.owned {
                    release(&self.token);
                }
            }
        }

        /// Serializing takes a lease on the object, so it outlives this proxy while
        /// the bytes travel; the receiver's proxy owns a reference of its own.
        impl<$($g),*> Serialize for $name<$($g),*> {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                lease(&self.token);
                collect(&self.token);
                self.token.serialize(s)
            }
        }

        impl<'de, $($g),*> Deserialize<'de> for $name<$($g),*> {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let token = Token::deserialize(d)?;
                let owned = incref(&token);
                Ok($name { token, owned, _t: PhantomData })
            }
        }

        impl<$($g),*> fmt::Debug for $name<$($g),*> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:?})"), self.token)
            }
        }

        impl<$($g),*> PartialEq for $name<$($g),*> {
            fn eq(&self, other: &Self) -> bool {
                self.token == other.token
            }
        }

        impl<$($g),*> Proxy for $name<$($g),*> {
            const KIND: &'static str = $kind;
            fn from_parts(address: String, authkey: AuthKey, id: u64) -> Self {
                $name { token: Token { address, authkey, id }, owned: true, _t: PhantomData }
            }
        }
    };
}

/// Adds an owner to the object; `false` if the server refused (the object or the
/// server is gone: the proxy then owns nothing, and its calls fail).
fn incref(t: &Token) -> bool {
    request(&t.address, &t.authkey, &Request::IncRef(t.id)).is_ok()
}

thread_local! {
    /// While a value is encoded to be stored in a manager (`item`): that manager's
    /// address and the ids of its objects whose proxies the value holds.
    static COLLECT: std::cell::RefCell<Option<(String, Vec<u64>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Records a proxy serialized inside a value that is about to be stored in its own
/// manager.
fn collect(t: &Token) {
    let _ = COLLECT.try_with(|c| {
        if let Ok(mut c) = c.try_borrow_mut()
            && let Some((address, ids)) = c.as_mut()
            && *address == t.address
        {
            ids.push(t.id);
        }
    });
}

/// Encodes a value to be stored in the manager at `address`, with the objects of that
/// manager its proxies refer to (kept alive while the value is stored).
pub(crate) fn encode_item<T: Serialize + ?Sized>(address: &str, x: &T) -> Result<Item> {
    struct Restore(Option<(String, Vec<u64>)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let saved = self.0.take();
            let _ = COLLECT.try_with(|c| *c.borrow_mut() = saved);
        }
    }
    let saved = COLLECT.with(|c| c.replace(Some((address.to_string(), Vec::new()))));
    let restore = Restore(saved);
    let bytes = encode_args(x);
    let refs = COLLECT
        .with(|c| c.borrow_mut().take())
        .map(|(_, ids)| ids)
        .unwrap_or_default();
    drop(restore);
    Ok(Item {
        bytes: bytes?,
        refs,
    })
}

fn item<T: Serialize + ?Sized>(t: &Token, x: &T) -> Result<Item> {
    encode_item(&t.address, x)
}

/// Extends the object's lease (see the server's design notes); errors are left to
/// the receiver, whose calls will fail.
fn lease(t: &Token) {
    let _ = request(&t.address, &t.authkey, &Request::Lease(t.id));
}

// ------------------------------------------------------------------ dict

proxy!(
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
    /// A manager that is gone is [`ErrorKind::Disconnected`]; bytes that do not decode
    /// as `V` (another program stored another type) are [`ErrorKind::Deserialize`].
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
        maybe(call(&self.token, Op::DictGet(encode_args(key)?))?)
    }

    /// Sets `key` to `value` (Python's `d[k] = v`); returns the old value.
    ///
    /// # Errors
    ///
    /// As [`get`](DictProxy::get); [`ErrorKind::Serialize`] if the key or value does
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
        maybe(call(
            &self.token,
            Op::DictInsert(encode_args(&key)?, item(&self.token, &value)?),
        )?)
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
        maybe(call(&self.token, Op::DictRemove(encode_args(key)?))?)
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
        boolean(call(&self.token, Op::DictContains(encode_args(key)?))?)
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
        Ok(number(call(&self.token, Op::Len)?)? as usize)
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
        list(call(&self.token, Op::DictKeys)?)
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
        list(call(&self.token, Op::DictValues)?)
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
        pairs(call(&self.token, Op::DictItems)?)
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
        unit(call(&self.token, Op::Clear)?)
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
            .map(|(k, v)| Ok((encode_args(&k)?, item(&self.token, &v)?)))
            .collect::<Result<_>>()?;
        unit(call(&self.token, Op::DictUpdate(items))?)
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
        match call(&self.token, Op::DictPopItem)? {
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
        value(call(
            &self.token,
            Op::DictSetDefault(encode_args(&key)?, item(&self.token, &default)?),
        )?)
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

// ------------------------------------------------------------------ list

proxy!(
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
    /// As [`DictProxy::insert`].
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
        unit(call(&self.token, Op::ListPush(item(&self.token, &x)?))?)
    }

    /// The item at `index`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] when out of range (Python's `IndexError`);
    /// otherwise as [`DictProxy::get`].
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
        value(call(&self.token, Op::ListGet(index))?)
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
        unit(call(
            &self.token,
            Op::ListSet(index, item(&self.token, &x)?),
        )?)
    }

    /// The number of items.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
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
        Ok(number(call(&self.token, Op::Len)?)? as usize)
    }

    /// Is it empty?
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
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
    /// As [`DictProxy::get`].
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
        maybe(call(&self.token, Op::ListPop)?)
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
        unit(call(
            &self.token,
            Op::ListInsert(index, item(&self.token, &x)?),
        )?)
    }

    /// Removes the first item equal to `item` (compared as encoded bytes).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] if there is none (Python's `ValueError`).
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
        unit(call(&self.token, Op::ListRemove(encode_args(item)?))?)
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
            .map(|x| item(&self.token, &x))
            .collect::<Result<Vec<_>>>()?;
        unit(call(&self.token, Op::ListExtend(items))?)
    }

    /// Reverses the list in place.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
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
        unit(call(&self.token, Op::ListReverse)?)
    }

    /// Removes every item.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
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
        unit(call(&self.token, Op::Clear)?)
    }

    /// A copy of the whole list (Python's `l[:]`).
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
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
        list(call(&self.token, Op::ToVec)?)
    }
}

// ------------------------------------------------------------------ queues

proxy!(
    /// A queue in a manager: Python's `manager.Queue(maxsize)`. Blocking calls wait in
    /// the server; a process that dies while it waits takes nothing out of the queue.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let q = m.bounded_queue::<String>(2)?;
    /// q.put("a".into())?;
    /// q.put("b".into())?;
    /// assert!(q.is_full()?);
    /// assert_eq!(q.get()?, "a");
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    QueueProxy[T], "Queue"
);

proxy!(
    /// A joinable queue in a manager: Python's `manager.JoinableQueue()`, a
    /// [`QueueProxy`] with [`task_done`](JoinableQueueProxy::task_done) and
    /// [`join`](JoinableQueueProxy::join).
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let q = m.joinable_queue::<u32>()?;
    /// q.put(1)?;
    /// assert_eq!(q.get()?, 1);
    /// q.task_done()?;
    /// q.join()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    JoinableQueueProxy[T], "JoinableQueue"
);

fn put_result<T>(item: T, r: Result<Reply>) -> std::result::Result<(), PutError<T>> {
    match r.and_then(unit) {
        Ok(()) => Ok(()),
        Err(error) => Err(PutError::new(error, item)),
    }
}

macro_rules! queue_methods {
    ($name:ident, $q:literal, $bq:literal) => {
        impl<T: Serialize + DeserializeOwned> $name<T> {
            /// Puts `item`, waiting for room in a bounded queue.
            ///
            /// # Errors
            ///
            /// The item comes back in the [`PutError`] if it fails to encode or the
            /// manager is gone.
            ///
            /// # Examples
            ///
            /// ```
            /// # multiprocess::init();
            /// # let m = multiprocess::Manager::start()?;
            #[doc = concat!("let q = m.", $q, "?;")]
            /// q.put(1)?;
            /// assert_eq!(q.len()?, 1);
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn put(&self, item: T) -> std::result::Result<(), PutError<T>> {
                self.put_wait(item, Wait::Block)
            }

            /// Puts `item` if there is room now.
            ///
            /// # Errors
            ///
            /// [`ErrorKind::Full`] (with the item back) when there is no room.
            ///
            /// # Examples
            ///
            /// ```
            /// # multiprocess::init();
            /// # let m = multiprocess::Manager::start()?;
            #[doc = concat!("let q = m.", $bq, "?;")]
            /// q.try_put(1)?;
            /// let err = q.try_put(2).unwrap_err();
            /// assert_eq!((err.kind(), err.into_inner()), (multiprocess::ErrorKind::Full, 2));
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            #[doc(alias = "put_nowait")]
            pub fn try_put(&self, item: T) -> std::result::Result<(), PutError<T>> {
                self.put_wait(item, Wait::Now)
            }

            /// Puts `item`, waiting at most `timeout` for room.
            ///
            /// # Errors
            ///
            /// [`ErrorKind::Full`] (with the item back) if no room came in time.
            ///
            /// # Examples
            ///
            /// ```
            /// # use std::time::Duration;
            /// # multiprocess::init();
            /// # let m = multiprocess::Manager::start()?;
            #[doc = concat!("let q = m.", $bq, "?;")]
            /// q.put_timeout(1, Duration::from_millis(10))?;
            /// assert!(q.put_timeout(2, Duration::from_millis(10)).is_err());
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn put_timeout(
                &self,
                item: T,
                timeout: Duration,
            ) -> std::result::Result<(), PutError<T>> {
                self.put_wait(item, Wait::timeout(timeout))
            }

            fn put_wait(&self, x: T, w: Wait) -> std::result::Result<(), PutError<T>> {
                let stored = match encode_item(&self.token.address, &x) {
                    Ok(b) => b,
                    Err(e) => return Err(PutError::new(e, x)),
                };
                let r = call(&self.token, Op::Put(stored, w));
                put_result(x, r)
            }

            /// Takes the oldest item, waiting for one.
            ///
            /// # Errors
            ///
            /// As [`DictProxy::get`].
            ///
            /// # Examples
            ///
            /// ```
            /// # multiprocess::init();
            /// # let m = multiprocess::Manager::start()?;
            #[doc = concat!("let q = m.", $q, "?;")]
            /// q.put(7)?;
            /// assert_eq!(q.get()?, 7);
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn get(&self) -> Result<T> {
                value(call(&self.token, Op::Get(Wait::Block))?)
            }

            /// Takes the oldest item if there is one now.
            ///
            /// # Errors
            ///
            /// [`ErrorKind::Empty`] when there is none.
            ///
            /// # Examples
            ///
            /// ```
            /// # multiprocess::init();
            /// # let m = multiprocess::Manager::start()?;
            #[doc = concat!("let q = m.", $q, "?;")]
            /// assert_eq!(q.try_get().unwrap_err().kind(), multiprocess::ErrorKind::Empty);
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            #[doc(alias = "get_nowait")]
            pub fn try_get(&self) -> Result<T> {
                value(call(&self.token, Op::Get(Wait::Now))?)
            }

            /// Takes the oldest item, waiting at most `timeout` for one.
            ///
            /// # Errors
            ///
            /// [`ErrorKind::Empty`] if none came in time.
            ///
            /// # Examples
            ///
            /// ```
            /// # use std::time::Duration;
            /// # multiprocess::init();
            /// # let m = multiprocess::Manager::start()?;
            #[doc = concat!("let q = m.", $q, "?;")]
            /// assert!(q.get_timeout(Duration::from_millis(10)).is_err());
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
                value(call(&self.token, Op::Get(Wait::timeout(timeout)))?)
            }

            /// The number of items (exact: the queue lives in one place).
            ///
            /// # Errors
            ///
            /// As [`DictProxy::get`].
            ///
            /// # Examples
            ///
            /// ```
            /// # multiprocess::init();
            /// # let m = multiprocess::Manager::start()?;
            #[doc = concat!("let q = m.", $q, "?;")]
            /// assert_eq!(q.len()?, 0);
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            #[doc(alias = "qsize")]
            pub fn len(&self) -> Result<usize> {
                Ok(number(call(&self.token, Op::Len)?)? as usize)
            }

            /// Is it empty?
            ///
            /// # Errors
            ///
            /// As [`DictProxy::get`].
            ///
            /// # Examples
            ///
            /// ```
            /// # multiprocess::init();
            /// # let m = multiprocess::Manager::start()?;
            #[doc = concat!("let q = m.", $q, "?;")]
            /// assert!(q.is_empty()?);
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn is_empty(&self) -> Result<bool> {
                Ok(self.len()? == 0)
            }

            /// Is a bounded queue at its limit? (Never for an unbounded one.)
            ///
            /// # Errors
            ///
            /// As [`DictProxy::get`].
            ///
            /// # Examples
            ///
            /// ```
            /// # multiprocess::init();
            /// # let m = multiprocess::Manager::start()?;
            #[doc = concat!("let q = m.", $bq, "?;")]
            /// q.put(1)?;
            /// assert!(q.is_full()?);
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn is_full(&self) -> Result<bool> {
                boolean(call(&self.token, Op::IsFull)?)
            }
        }
    };
}

queue_methods!(QueueProxy, "queue::<u8>()", "bounded_queue::<u8>(1)");
queue_methods!(
    JoinableQueueProxy,
    "joinable_queue::<u8>()",
    "bounded_joinable_queue::<u8>(1)"
);

impl<T: Serialize + DeserializeOwned> JoinableQueueProxy<T> {
    /// Marks one item taken with `get` as processed.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidState`] if called more times than items were put.
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let q = m.joinable_queue::<u8>()?;
    /// assert!(q.task_done().is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn task_done(&self) -> Result<()> {
        unit(call(&self.token, Op::TaskDone)?)
    }

    /// Waits until every item put has been marked done.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// m.joinable_queue::<u8>()?.join()?; // nothing put: returns at once
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn join(&self) -> Result<()> {
        boolean(call(&self.token, Op::Join(Wait::Block))?).map(|_| ())
    }

    /// As [`join`](JoinableQueueProxy::join), waiting at most `timeout`; `true` if
    /// every item was done.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let q = m.joinable_queue::<u8>()?;
    /// q.put(1)?;
    /// assert!(!q.join_timeout(Duration::from_millis(10))?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        boolean(call(&self.token, Op::Join(Wait::timeout(timeout)))?)
    }
}

// ------------------------------------------------------------------ locks

/// A held lock, semaphore permit or condition of a manager; released on drop.
///
/// # Examples
///
/// ```
/// # multiprocess::init();
/// let m = multiprocess::Manager::start()?;
/// let lock = m.lock()?;
/// {
///     let _g = lock.acquire()?;
///     assert!(lock.try_acquire()?.is_none());
/// } // released here
/// assert!(lock.try_acquire()?.is_some());
/// # Ok::<(), multiprocess::Error>(())
/// ```
///
/// A guard stays on its thread (the thread's connection is the owner):
///
/// ```compile_fail
/// fn is_send<T: Send>() {}
/// is_send::<multiprocess::ProxyGuard<'static>>();
/// ```
#[must_use = "the lock is released when the guard drops"]
pub struct ProxyGuard<'a> {
    token: &'a Token,
    held: bool,
    /// Not `Send`: it releases through this thread's connection, which owns an
    /// `RLock` or a condition (as `std::sync::MutexGuard`).
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for ProxyGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyGuard({:?})", self.token)
    }
}

impl ProxyGuard<'_> {
    /// Releases now, reporting an error (dropping the guard ignores it).
    ///
    /// # Errors
    ///
    /// As [`LockProxy::release`].
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let lock = m.lock()?;
    /// lock.acquire()?.release()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn release(mut self) -> Result<()> {
        self.held = false;
        unit(call(self.token, Op::Release)?)
    }

    /// Keeps it held after the guard is gone (to be released later with the proxy's
    /// `release`, maybe by another process).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let lock = m.lock()?;
    /// lock.acquire()?.keep();
    /// lock.release()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn keep(mut self) {
        self.held = false;
    }
}

impl Drop for ProxyGuard<'_> {
    fn drop(&mut self) {
        if self.held {
            let _ = call(self.token, Op::Release);
        }
    }
}

fn acquired(token: &Token, ok: bool) -> Option<ProxyGuard<'_>> {
    // Lazily: a guard built and dropped here would release what we never held.
    ok.then(|| ProxyGuard {
        token,
        held: true,
        _not_send: PhantomData,
    })
}

macro_rules! acquire_methods {
    ($name:ident, $ctor:literal) => {
        impl $name {
            /// Acquires, waiting as long as it takes; the guard releases on drop.
            ///
            /// # Errors
            ///
            /// As [`DictProxy::get`].
            ///
            /// # Examples
            ///
            /// ```
            /// # multiprocess::init();
            /// let m = multiprocess::Manager::start()?;
            #[doc = concat!("let x = m.", $ctor, "?;")]
            /// let g = x.acquire()?;
            /// drop(g);
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn acquire(&self) -> Result<ProxyGuard<'_>> {
                let ok = boolean(call(&self.token, Op::Acquire(Wait::Block))?)?;
                Ok(acquired(&self.token, ok).expect("a blocking acquire succeeds"))
            }

            /// Acquires if that is possible now; `None` otherwise.
            ///
            /// # Errors
            ///
            /// As [`DictProxy::get`].
            ///
            /// # Examples
            ///
            /// ```
            /// # multiprocess::init();
            /// let m = multiprocess::Manager::start()?;
            #[doc = concat!("let x = m.", $ctor, "?;")]
            /// assert!(x.try_acquire()?.is_some());
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn try_acquire(&self) -> Result<Option<ProxyGuard<'_>>> {
                let ok = boolean(call(&self.token, Op::Acquire(Wait::Now))?)?;
                Ok(acquired(&self.token, ok))
            }

            /// Acquires, waiting at most `timeout`; `None` if that was not enough.
            ///
            /// # Errors
            ///
            /// As [`DictProxy::get`].
            ///
            /// # Examples
            ///
            /// ```
            /// # use std::time::Duration;
            /// # multiprocess::init();
            /// let m = multiprocess::Manager::start()?;
            #[doc = concat!("let x = m.", $ctor, "?;")]
            /// assert!(x.acquire_timeout(Duration::from_millis(10))?.is_some());
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<ProxyGuard<'_>>> {
                let ok = boolean(call(&self.token, Op::Acquire(Wait::timeout(timeout)))?)?;
                Ok(acquired(&self.token, ok))
            }

            /// Releases explicitly (after [`ProxyGuard::keep`], or from another process
            /// where Python allows it).
            ///
            /// # Errors
            ///
            /// [`ErrorKind::InvalidState`] when there is nothing to release: an
            /// unlocked lock, an `RLock` or condition this thread does not own, a
            /// bounded semaphore at its initial value.
            ///
            /// # Examples
            ///
            /// ```
            /// # multiprocess::init();
            /// let m = multiprocess::Manager::start()?;
            #[doc = concat!("let x = m.", $ctor, "?;")]
            /// x.acquire()?.keep();
            /// x.release()?;
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn release(&self) -> Result<()> {
                unit(call(&self.token, Op::Release)?)
            }
        }
    };
}

proxy!(
    /// A lock in a manager: Python's `manager.Lock()`. Any process may release it;
    /// releasing it unlocked is an error. If the process holding it dies (its
    /// connection closes), the server releases it.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::ErrorKind;
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let lock = m.lock()?;
    /// lock.acquire()?.release()?;
    /// assert_eq!(lock.release().unwrap_err().kind(), ErrorKind::InvalidState);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    LockProxy[], "Lock"
);
acquire_methods!(LockProxy, "lock()");

proxy!(
    /// A re-entrant lock in a manager: Python's `manager.RLock()`. The owner is the
    /// acquiring thread of the acquiring process; only it may release.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let r = m.rlock()?;
    /// let a = r.acquire()?;
    /// let b = r.acquire()?; // again, same thread
    /// drop((b, a));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    RLockProxy[], "RLock"
);
acquire_methods!(RLockProxy, "rlock()");

proxy!(
    /// A semaphore in a manager: Python's `manager.Semaphore(n)`.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let s = m.semaphore(2)?;
    /// let (_a, _b) = (s.acquire()?, s.acquire()?);
    /// assert!(s.try_acquire()?.is_none());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    SemaphoreProxy[], "Semaphore"
);
acquire_methods!(SemaphoreProxy, "semaphore(1)");

proxy!(
    /// A bounded semaphore in a manager: Python's `manager.BoundedSemaphore(n)`;
    /// releasing above the initial value is an error.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let s = m.bounded_semaphore(1)?;
    /// assert!(s.release().is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    BoundedSemaphoreProxy[], "BoundedSemaphore"
);
acquire_methods!(BoundedSemaphoreProxy, "bounded_semaphore(1)");

macro_rules! get_value {
    ($name:ident, $ctor:literal) => {
        impl $name {
            /// The current value.
            ///
            /// # Errors
            ///
            /// As [`DictProxy::get`].
            ///
            /// # Examples
            ///
            /// ```
            /// # multiprocess::init();
            /// let m = multiprocess::Manager::start()?;
            #[doc = concat!("let s = m.", $ctor, "?;")]
            /// assert_eq!(s.get_value()?, 3);
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn get_value(&self) -> Result<u32> {
                Ok(number(call(&self.token, Op::GetValue)?)? as u32)
            }
        }
    };
}
get_value!(SemaphoreProxy, "semaphore(3)");
get_value!(BoundedSemaphoreProxy, "bounded_semaphore(3)");

proxy!(
    /// A condition variable in a manager: Python's `manager.Condition()`, with its own
    /// re-entrant lock.
    ///
    /// # Examples
    ///
    /// In process 1 and process 2:
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocess::{ConditionProxy, ValueProxy};
    ///
    /// fn producer((c, ready): (ConditionProxy, ValueProxy<bool>)) {
    ///     let _g = c.acquire().unwrap();
    ///     ready.set(&true).unwrap();
    ///     c.notify_all().unwrap();
    /// }
    ///
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let (c, ready) = (m.condition()?, m.value(false)?);
    /// let mut g = c.acquire()?;
    /// let mut p = multiprocess::Process::new(producer, (c.clone(), ready.clone()));
    /// p.start()?;
    /// assert!(c.wait_for(&mut g, || ready.get().unwrap(), Some(Duration::from_secs(30)))?);
    /// drop(g);
    /// p.join()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    ConditionProxy[], "Condition"
);
acquire_methods!(ConditionProxy, "condition()");

impl ConditionProxy {
    /// Releases the lock (held through `guard`), waits for a notification, and takes
    /// the lock back.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
    ///
    /// # Examples
    ///
    /// See [`ConditionProxy`].
    pub fn wait(&self, guard: &mut ProxyGuard<'_>) -> Result<()> {
        let _ = guard;
        boolean(call(&self.token, Op::CondWait(Wait::Block))?).map(|_| ())
    }

    /// As [`wait`](ConditionProxy::wait), for at most `timeout`; `false` if it timed
    /// out (the lock is held again either way).
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let c = m.condition()?;
    /// let mut g = c.acquire()?;
    /// assert!(!c.wait_timeout(&mut g, Duration::from_millis(10))?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn wait_timeout(&self, guard: &mut ProxyGuard<'_>, timeout: Duration) -> Result<bool> {
        let _ = guard;
        boolean(call(&self.token, Op::CondWait(Wait::timeout(timeout)))?)
    }

    /// Waits until `predicate()` is true (checked with the lock held), for at most
    /// `timeout` if given; returns the predicate's last value.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
    ///
    /// # Examples
    ///
    /// See [`ConditionProxy`].
    pub fn wait_for(
        &self,
        guard: &mut ProxyGuard<'_>,
        mut predicate: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<bool> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if predicate() {
                return Ok(true);
            }
            match deadline {
                None => self.wait(guard)?,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(false);
                    }
                    self.wait_timeout(guard, left)?;
                }
            }
        }
    }

    /// Wakes one waiter. The lock must be held.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidState`] if this thread does not hold the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let c = m.condition()?;
    /// assert!(c.notify().is_err()); // not held
    /// let _g = c.acquire()?;
    /// c.notify()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn notify(&self) -> Result<()> {
        self.notify_n(1).map(|_| ())
    }

    /// Wakes up to `n` waiters; returns how many were woken.
    ///
    /// # Errors
    ///
    /// As [`notify`](ConditionProxy::notify).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let c = m.condition()?;
    /// let _g = c.acquire()?;
    /// assert_eq!(c.notify_n(2)?, 0); // nobody waits
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn notify_n(&self, n: u32) -> Result<u32> {
        Ok(number(call(&self.token, Op::Notify(n))?)? as u32)
    }

    /// Wakes every waiter.
    ///
    /// # Errors
    ///
    /// As [`notify`](ConditionProxy::notify).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let c = m.condition()?;
    /// let _g = c.acquire()?;
    /// c.notify_all()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn notify_all(&self) -> Result<()> {
        unit(call(&self.token, Op::NotifyAll)?)
    }
}

// ------------------------------------------------------------------ event

proxy!(
    /// An event in a manager: Python's `manager.Event()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let e = m.event()?;
    /// assert!(!e.wait_timeout(Duration::ZERO)?);
    /// e.set()?;
    /// assert!(e.is_set()?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    EventProxy[], "Event"
);

impl EventProxy {
    /// Sets the flag and wakes every waiter.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let e = m.event()?;
    /// e.set()?;
    /// e.wait()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn set(&self) -> Result<()> {
        unit(call(&self.token, Op::EventSet)?)
    }

    /// Clears the flag.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let e = m.event()?;
    /// e.set()?;
    /// e.clear()?;
    /// assert!(!e.is_set()?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn clear(&self) -> Result<()> {
        unit(call(&self.token, Op::EventClear)?)
    }

    /// Is the flag set?
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// assert!(!m.event()?.is_set()?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn is_set(&self) -> Result<bool> {
        boolean(call(&self.token, Op::EventIsSet)?)
    }

    /// Waits until the flag is set.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
    ///
    /// # Examples
    ///
    /// See [`set`](EventProxy::set).
    pub fn wait(&self) -> Result<()> {
        boolean(call(&self.token, Op::EventWait(Wait::Block))?).map(|_| ())
    }

    /// Waits at most `timeout`; `true` if the flag is set.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// assert!(!m.event()?.wait_timeout(Duration::from_millis(5))?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        boolean(call(&self.token, Op::EventWait(Wait::timeout(timeout)))?)
    }
}

// ------------------------------------------------------------------ barrier

proxy!(
    /// A barrier in a manager: Python's `manager.Barrier(parties)`.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let b = m.barrier(1)?;
    /// assert_eq!(b.wait()?, 0);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    BarrierProxy[], "Barrier"
);

impl BarrierProxy {
    /// Waits until `parties` callers wait; returns this caller's arrival index
    /// (`0..parties`, exactly one caller gets each).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BrokenBarrier`] if the barrier is or becomes broken.
    ///
    /// # Examples
    ///
    /// See [`BarrierProxy`].
    pub fn wait(&self) -> Result<u32> {
        Ok(number(call(&self.token, Op::BarrierWait(Wait::Block))?)? as u32)
    }

    /// As [`wait`](BarrierProxy::wait); running out of time breaks the barrier.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BrokenBarrier`], also on timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let b = m.barrier(2)?;
    /// assert!(b.wait_timeout(Duration::from_millis(10)).is_err());
    /// assert!(b.is_broken()?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32> {
        Ok(number(call(&self.token, Op::BarrierWait(Wait::timeout(timeout)))?)? as u32)
    }

    /// Breaks the barrier: current and future waiters fail until
    /// [`reset`](BarrierProxy::reset).
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let b = m.barrier(2)?;
    /// b.abort()?;
    /// assert!(b.wait().is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn abort(&self) -> Result<()> {
        unit(call(&self.token, Op::BarrierAbort)?)
    }

    /// Returns the barrier to its initial state; current waiters fail.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let b = m.barrier(1)?;
    /// b.abort()?;
    /// b.reset()?;
    /// assert_eq!(b.wait()?, 0);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn reset(&self) -> Result<()> {
        unit(call(&self.token, Op::BarrierReset)?)
    }

    /// Is it broken?
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// assert!(!m.barrier(2)?.is_broken()?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn is_broken(&self) -> Result<bool> {
        boolean(call(&self.token, Op::BarrierIsBroken)?)
    }

    /// How many callers wait now.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// assert_eq!(m.barrier(2)?.n_waiting()?, 0);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn n_waiting(&self) -> Result<u32> {
        Ok(number(call(&self.token, Op::BarrierWaiting)?)? as u32)
    }

    /// The number of parties.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// assert_eq!(m.barrier(5)?.parties()?, 5);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn parties(&self) -> Result<u32> {
        Ok(number(call(&self.token, Op::BarrierParties)?)? as u32)
    }
}

// ------------------------------------------------------------------ namespace

proxy!(
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
    /// [`ErrorKind::Deserialize`] if it holds another type; otherwise as
    /// [`DictProxy::get`].
    ///
    /// # Examples
    ///
    /// See [`NamespaceProxy`].
    #[doc(alias = "getattr")]
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        maybe(call(&self.token, Op::NsGet(name.to_string()))?)
    }

    /// Sets the attribute `name`.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::insert`].
    ///
    /// # Examples
    ///
    /// See [`NamespaceProxy`].
    #[doc(alias = "setattr")]
    pub fn set<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<()> {
        unit(call(
            &self.token,
            Op::NsSet(name.to_string(), item(&self.token, value)?),
        )?)
    }

    /// Removes the attribute `name`; `true` if it was set.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
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
        match call(&self.token, Op::NsRemove(name.to_string()))? {
            Reply::MaybeBytes(b) => Ok(b.is_some()),
            r => Err(unexpected(r)),
        }
    }

    /// The names set, in the order they were first set.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
    ///
    /// # Examples
    ///
    /// See [`NamespaceProxy`].
    pub fn names(&self) -> Result<Vec<String>> {
        strings(call(&self.token, Op::NsNames)?)
    }
}

// ------------------------------------------------------------------ value, array

proxy!(
    /// A value in a manager: Python's `manager.Value(typecode, x)`, of any
    /// serializable type.
    ///
    /// `get` then `set` is two calls, not atomic: guard a read-modify-write with a
    /// [`LockProxy`], as in Python.
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
    /// As [`DictProxy::get`].
    ///
    /// # Examples
    ///
    /// See [`ValueProxy`].
    pub fn get(&self) -> Result<T> {
        value(call(&self.token, Op::ValueGet)?)
    }

    /// Replaces the value (Python's `v.value = x`).
    ///
    /// # Errors
    ///
    /// As [`DictProxy::insert`].
    ///
    /// # Examples
    ///
    /// See [`ValueProxy`].
    pub fn set(&self, x: &T) -> Result<()> {
        unit(call(&self.token, Op::ValueSet(item(&self.token, x)?))?)
    }
}

proxy!(
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
    /// As [`DictProxy::get`].
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
        Ok(number(call(&self.token, Op::Len)?)? as usize)
    }

    /// Is it empty?
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
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
    /// [`ErrorKind::InvalidInput`] when out of range.
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
        value(call(&self.token, Op::ListGet(index))?)
    }

    /// Replaces the item at `index`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] when out of range.
    ///
    /// # Examples
    ///
    /// See [`ArrayProxy`].
    pub fn set(&self, index: i64, x: T) -> Result<()> {
        unit(call(
            &self.token,
            Op::ListSet(index, item(&self.token, &x)?),
        )?)
    }

    /// A copy of the whole array.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`].
    ///
    /// # Examples
    ///
    /// See [`ArrayProxy`].
    pub fn to_vec(&self) -> Result<Vec<T>> {
        list(call(&self.token, Op::ToVec)?)
    }
}

// ------------------------------------------------------------------ custom

proxy!(
    /// A custom object in a manager (see [`SharedObject`](crate::SharedObject)):
    /// methods are called by name with serialized arguments.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::{Manager, SharedObject, invoke};
    ///
    /// #[derive(Default)]
    /// struct Counter { n: u64 }
    /// impl SharedObject for Counter {
    ///     fn methods(&self) -> &'static [&'static str] { &["add"] }
    ///     fn call(&mut self, _m: &str, args: &[u8]) -> multiprocess::Result<Vec<u8>> {
    ///         invoke(args, |by: u64| { self.n += by; self.n })
    ///     }
    /// }
    /// fn counter() -> Box<dyn SharedObject> { Box::new(Counter::default()) }
    ///
    /// multiprocess::init();
    /// let m = Manager::builder().register_type("Counter", counter).start()?;
    /// let c = m.create("Counter")?;
    /// assert_eq!(c.call::<_, u64>("add", &2u64)?, 2);
    /// assert_eq!(c.call::<_, u64>("add", &3u64)?, 5);
    /// assert!(c.call::<_, u64>("sub", &1u64).is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    ObjectProxy[], "Custom"
);

impl ObjectProxy {
    /// Calls `method` with `args`; decodes the result as an `R`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] for a method the object does not expose; whatever the
    /// method returns; otherwise as [`DictProxy::get`].
    ///
    /// # Examples
    ///
    /// See [`ObjectProxy`].
    pub fn call<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &str,
        args: &A,
    ) -> Result<R> {
        value(call(
            &self.token,
            Op::Method(method.to_string(), encode_args(args)?),
        )?)
    }
}
