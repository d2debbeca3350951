//! Where a proxy's object lives: the one seam between the proxy types and a transport.
//!
//! # Design
//!
//! Every proxy type (`DictProxy<K, V>`, `QueueProxy<T>`, `LockProxy`, ...) holds a
//! [`Home`] and nothing else that says where its object is. Its methods encode their
//! arguments into their kind's op enum (`kinds::dict::Op`, ...), pass it to
//! [`Home::call`], and decode the [`Reply`]. Reference counting goes through the same
//! seam: [`Home::adopt`] (a clone or a decoded proxy), [`Home::release`] (a drop),
//! [`Home::lend`] (a proxy being serialized), and [`Home::item`] (a value about to be
//! stored, with the objects of the same home that its proxies refer to).
//!
//! Today there is one home, [`Home::Server`]: a manager's server process, reached
//! over the per-thread connections of [`client`](super::client). A second home (the
//! objects of a manager kept in Redis, DESIGN.md "Beyond one machine") is one more
//! variant here with its own arms in these few functions, and a Redis-side applier of
//! each kind's ops; no proxy method changes, because no proxy method knows which
//! variant it holds. This is the private-enum choice between implementations of the
//! crate's style (crossbeam-channel's flavors), not a trait object.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::client::{self, Token};
use super::protocol::{Item, Ops, Plain, Reply, Request, Tagged, encode_args};
use crate::error::Result;

/// Where an object lives, and how to reach it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Home {
    /// In a manager's server, reached by address and authkey.
    Server(Token),
}

impl fmt::Debug for Home {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Home::Server(t) => t.fmt(f),
        }
    }
}

impl Home {
    /// Runs `op` on the object and returns the reply (or the error the object gave).
    pub(crate) fn call<O: Ops>(&self, op: &O) -> Result<Reply> {
        match self {
            Home::Server(t) => client::request(
                &t.address,
                &t.authkey,
                &Request::<(), _>::Call(t.id, Tagged(op)),
            ),
        }
    }

    /// Adds an owner to the object; `false` if the home refused (the object or the
    /// server is gone: the proxy then owns nothing, and its calls fail).
    pub(crate) fn adopt(&self) -> bool {
        match self {
            Home::Server(t) => {
                client::request(&t.address, &t.authkey, &Plain::IncRef(t.id)).is_ok()
            }
        }
    }

    /// Gives an owner back, without waiting (a drop never blocks on the home).
    pub(crate) fn release(&self) {
        match self {
            Home::Server(t) => client::release(t),
        }
    }

    /// A proxy is being serialized: keep the object alive while the bytes travel
    /// (a lease, see the server's design notes), and record the proxy if it is
    /// inside a value being stored in the same home ([`item`](Home::item)).
    /// Errors are left to the receiver, whose calls will fail.
    pub(crate) fn lend(&self) {
        match self {
            Home::Server(t) => {
                let _ = client::request(&t.address, &t.authkey, &Plain::Lease(t.id));
                collect(&t.address, t.id);
            }
        }
    }

    /// Encodes a value to be stored in this object's home.
    pub(crate) fn item<T: Serialize + ?Sized>(&self, x: &T) -> Result<Item> {
        match self {
            Home::Server(t) => encode_item(&t.address, x),
        }
    }
}

thread_local! {
    /// While a value is encoded to be stored in a manager (`encode_item`): that
    /// manager's address and the ids of its objects whose proxies the value holds.
    static COLLECT: std::cell::RefCell<Option<(String, Vec<u64>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Records a proxy serialized inside a value that is about to be stored in its own
/// manager.
fn collect(address: &str, id: u64) {
    let _ = COLLECT.try_with(|c| {
        if let Ok(mut c) = c.try_borrow_mut()
            && let Some((at, ids)) = c.as_mut()
            && at == address
        {
            ids.push(id);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Stands for a proxy: serializing it records its id, as a proxy's `Serialize`
    /// does through `Home::lend` (without the lease, which needs a server).
    struct Fake(&'static str, u64);
    impl Serialize for Fake {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            collect(self.0, self.1);
            self.1.serialize(s)
        }
    }

    #[test]
    fn an_item_records_the_proxies_of_its_own_manager_only() {
        let v = vec![Fake("@a", 1), Fake("@b", 2), Fake("@a", 3)];
        let item = encode_item("@a", &v).unwrap();
        assert_eq!(item.refs, vec![1, 3]);
        assert_eq!(item.bytes, encode_args(&vec![1u64, 2, 3]).unwrap());
        // Outside `encode_item` nothing is recorded, and nesting restores the outer one.
        collect("@a", 9);
        let outer = encode_item("@a", &(Fake("@a", 4), Nested)).unwrap();
        assert_eq!(outer.refs, vec![4, 6]);
    }

    struct Nested;
    impl Serialize for Nested {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            let inner = encode_item("@b", &Fake("@b", 5)).unwrap();
            assert_eq!(inner.refs, vec![5]);
            Fake("@a", 6).serialize(s)
        }
    }
}
