//! What every proxy type shares: the [`Proxy`] trait, the `proxy_type!` macro that
//! declares a proxy (its reference counting, serialization, `Debug`, equality), and
//! the decoders of [`Reply`] shapes. Each kind's proxy type and methods live in that
//! kind's file (`kinds/*.rs`); they reach their object only through [`Home`].
//!
//! [`Home`]: super::home::Home

use serde::de::DeserializeOwned;

use super::protocol::Reply;
use crate::error::{Error, ErrorKind, Result};
use crate::listener::AuthKey;
use crate::wire::codec;

/// A handle on an object in a manager's server. Implemented by every proxy type; used
/// by [`Manager::get`](crate::Manager::get) to check that a named object has the
/// type asked for.
///
/// # Examples
///
/// ```
/// use multiprocess::{Proxy, QueueProxy};
/// fn kind<P: Proxy>() -> &'static str { P::KIND }
/// assert_eq!(kind::<QueueProxy<u8>>(), "Queue");
/// ```
pub trait Proxy: Sized {
    /// The server-side kind this proxy drives (`"Dict"`, `"Queue"`, ...).
    #[doc(hidden)]
    const KIND: &'static str;
    /// Makes the proxy from its parts; it owns one reference (the server counted it).
    #[doc(hidden)]
    fn from_parts(address: String, authkey: AuthKey, id: u64) -> Self;
}

/// Declares a proxy type: `proxy_type!(docs Name[generics], "Kind")`.
macro_rules! proxy_type {
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
        ///
        /// # Serialization
        ///
        /// A serialized proxy carries its manager's address, its object's id and
        /// whether the manager has an authkey, never the key. The process that
        /// decodes it presents the key of its key ring for that address: a child
        /// started by this crate has its parent's keys; another program adds one with
        /// [`Manager::connect`](crate::Manager::connect) or
        /// [`add_authkey`](crate::manager::add_authkey). Without it, calls fail with
        /// [`ErrorKind::Authentication`](crate::ErrorKind::Authentication).
        pub struct $name<$($g = ()),*> {
            /// Where the object is; owns a reference (clone, drop and serde count).
            home: $crate::manager::home::Home,
            _t: ::std::marker::PhantomData<fn() -> ($($g,)*)>,
        }

        impl<$($g),*> Clone for $name<$($g),*> {
            fn clone(&self) -> Self {
                $name { home: self.home.clone(), _t: ::std::marker::PhantomData }
            }
        }

        /// Serializes the manager's address and the object's id, never the key.
        /// Serializing takes a lease on the object, so it outlives this proxy while
        /// the bytes travel; the receiver's proxy owns a reference of its own.
        impl<$($g),*> ::serde::Serialize for $name<$($g),*> {
            fn serialize<S: ::serde::Serializer>(
                &self,
                s: S,
            ) -> ::std::result::Result<S::Ok, S::Error> {
                self.home.serialize(s)
            }
        }

        /// The decoded proxy gets its manager's key from this process's key ring
        /// (see [`add_authkey`]($crate::manager::add_authkey)).
        impl<'de, $($g),*> ::serde::Deserialize<'de> for $name<$($g),*> {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                d: D,
            ) -> ::std::result::Result<Self, D::Error> {
                let home = $crate::manager::home::Home::deserialize(d)?;
                Ok($name { home, _t: ::std::marker::PhantomData })
            }
        }

        impl<$($g),*> ::std::fmt::Debug for $name<$($g),*> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, concat!(stringify!($name), "({:?})"), self.home)
            }
        }

        impl<$($g),*> PartialEq for $name<$($g),*> {
            fn eq(&self, other: &Self) -> bool {
                self.home == other.home
            }
        }

        impl<$($g),*> $crate::manager::proxy::FromHome for $name<$($g),*> {
            fn from_home(home: $crate::manager::home::Home) -> Self {
                $name { home, _t: ::std::marker::PhantomData }
            }
        }

        impl<$($g),*> $crate::manager::Proxy for $name<$($g),*> {
            const KIND: &'static str = $kind;
            fn from_parts(address: String, authkey: $crate::listener::AuthKey, id: u64) -> Self {
                let token = $crate::manager::client::Token {
                    address,
                    id,
                    authkey: Some(authkey),
                };
                $name {
                    home: $crate::manager::home::Home::server(token),
                    _t: ::std::marker::PhantomData,
                }
            }
        }
    };
}
pub(crate) use proxy_type;

/// Makes a proxy from a home (an object made in Redis); implemented by
/// `proxy_type!`. Crate-private, unlike [`Proxy`], so that `Home` stays private.
pub(crate) trait FromHome {
    /// The proxy whose object is at `home` (which owns its reference).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    fn from_home(home: super::home::Home) -> Self;
}

pub(crate) fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T> {
    codec::decode(b, Vec::new())
}

pub(crate) fn unexpected(r: Reply) -> Error {
    Error::new(
        ErrorKind::Protocol,
        format!("unexpected reply from the manager: {r:?}"),
    )
}

pub(crate) fn unit(r: Reply) -> Result<()> {
    match r {
        Reply::Unit => Ok(()),
        r => Err(unexpected(r)),
    }
}

pub(crate) fn boolean(r: Reply) -> Result<bool> {
    match r {
        Reply::Bool(b) => Ok(b),
        r => Err(unexpected(r)),
    }
}

pub(crate) fn number(r: Reply) -> Result<u64> {
    match r {
        Reply::U64(n) => Ok(n),
        r => Err(unexpected(r)),
    }
}

pub(crate) fn value<T: DeserializeOwned>(r: Reply) -> Result<T> {
    match r {
        Reply::Bytes(b) => dec(&b),
        r => Err(unexpected(r)),
    }
}

pub(crate) fn maybe<T: DeserializeOwned>(r: Reply) -> Result<Option<T>> {
    match r {
        Reply::MaybeBytes(b) => b.map(|b| dec(&b)).transpose(),
        r => Err(unexpected(r)),
    }
}

pub(crate) fn list<T: DeserializeOwned>(r: Reply) -> Result<Vec<T>> {
    match r {
        Reply::List(v) => v.iter().map(|b| dec(b)).collect(),
        r => Err(unexpected(r)),
    }
}

pub(crate) fn pairs<K: DeserializeOwned, V: DeserializeOwned>(r: Reply) -> Result<Vec<(K, V)>> {
    match r {
        Reply::Pairs(v) => v.iter().map(|(k, x)| Ok((dec(k)?, dec(x)?))).collect(),
        r => Err(unexpected(r)),
    }
}

pub(crate) fn strings(r: Reply) -> Result<Vec<String>> {
    match r {
        Reply::Strings(v) => Ok(v),
        r => Err(unexpected(r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::protocol::encode_args;

    #[test]
    fn replies_decode_to_their_shape_only() {
        assert_eq!(number(Reply::U64(3)).unwrap(), 3);
        assert!(boolean(Reply::Bool(true)).unwrap());
        unit(Reply::Unit).unwrap();
        let b = encode_args(&"hi").unwrap();
        assert_eq!(value::<String>(Reply::Bytes(b.clone())).unwrap(), "hi");
        assert_eq!(maybe::<String>(Reply::MaybeBytes(None)).unwrap(), None);
        assert_eq!(
            list::<String>(Reply::List(vec![b.clone(), b.clone()])).unwrap(),
            vec!["hi", "hi"]
        );
        let p = pairs::<String, String>(Reply::Pairs(vec![(b.clone(), b)])).unwrap();
        assert_eq!(p, vec![("hi".to_string(), "hi".to_string())]);
        // Another shape is a protocol error, bytes of another type a decode error.
        assert_eq!(number(Reply::Unit).unwrap_err().kind(), ErrorKind::Protocol);
        assert_eq!(
            strings(Reply::U64(1)).unwrap_err().kind(),
            ErrorKind::Protocol
        );
        assert_eq!(
            value::<String>(Reply::Bytes(vec![0xff]))
                .unwrap_err()
                .kind(),
            ErrorKind::Deserialize
        );
    }
}
