//! Where a proxy's object lives: the one seam between the proxy types and a transport.
//!
//! # Design
//!
//! Every proxy type (`DictProxy<K, V>`, `QueueProxy<T>`, `LockProxy`, ...) holds a
//! [`Home`] and nothing else that says where its object is. Its methods encode their
//! arguments into their kind's op enum (`kinds::dict::Op`, ...), pass it to
//! [`Home::call`], and decode the [`Reply`]. Reference counting goes through the same
//! seam: a home's `Clone` and `Deserialize` adopt the object, its `Drop` gives the
//! reference back, its `Serialize` lends the object ([`Home::lend`]), and
//! [`Home::item`] encodes a value about to be stored, with the objects of the same
//! home that its proxies refer to.
//!
//! There are two places. `Place::Server`: a manager's server process, reached over
//! the per-thread connections of [`client`](super::client). `Place::Redis` (feature
//! `redis`): the objects of a manager kept in Redis (DESIGN.md "Beyond one machine"),
//! with its own arms in these few functions and a Redis-side applier of each kind's
//! ops (`manager/redis/`); no proxy method changes, because no proxy method knows
//! which variant it holds. This is the private-enum choice between implementations of
//! the crate's style (crossbeam-channel's flavors), not a trait object.
//!
//! A Redis home serializes as the Redis URL and the object's key base (and its kind
//! and lease), never the key that seals its values; a decoding process finds that key
//! in its key ring under the URL. It never waits for a key to adopt: counting
//! processes in Redis needs none (see `redis/mod.rs`).
//!
//! # What a serialized proxy carries
//!
//! A [`Home`] serializes as its [`Token`] does: the manager's address, the object's
//! id, and whether the manager has a key; never the key (DESIGN.md, "Hostile
//! input"). A decoded home finds the key in the process's key ring when it sets up a
//! connection (see [`client`](super::client)). Decoding adopts the object (an owner
//! more, `IncRef`); when the ring has no key for the address yet, the adoption waits
//! ([`Claim::Pending`]) and is made by the first call that finds one, so a proxy
//! decoded before `Manager::connect` or `manager::add_authkey` works, and owns its
//! object, once the key is given. Until then its object lives on the sender's lease
//! (two minutes by default): a key given later than that may find it freed. A wrong
//! key in the ring also leaves the adoption pending (and the calls failing with
//! `Authentication`), so correcting it is enough.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::{Deserialize, Serialize};

use super::client::{self, Token};
use super::protocol::{Item, Ops, Plain, Reply, Request, Tagged, encode_args};
use crate::error::{ErrorKind, Result};

/// Where an object lives, how to reach it, and whether this handle owns one of its
/// references. Cloning adopts the object again (a clone owns a reference of its own);
/// dropping gives the reference back.
pub(crate) struct Home {
    place: Place,
    /// A [`Claim`], as a `u8`.
    claim: AtomicU8,
}

/// Where an object lives.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Place {
    /// In a manager's server, reached by address and authkey.
    Server(Token),
    /// In Redis (a manager made by `Manager::redis`).
    #[cfg(feature = "redis")]
    Redis(super::redis::Ref),
}

/// Whether a [`Home`] owns one of its object's references.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Claim {
    /// No: the home refused (the object or the server is gone); calls fail.
    None = 0,
    /// Yes: given back on drop.
    Owned = 1,
    /// Not yet: decoded without a key for its manager; the first call that finds
    /// one adopts the object.
    Pending = 2,
}

impl Claim {
    fn of(b: u8) -> Claim {
        match b {
            1 => Claim::Owned,
            2 => Claim::Pending,
            _ => Claim::None,
        }
    }
}

impl fmt::Debug for Home {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.place {
            Place::Server(t) => t.fmt(f),
            #[cfg(feature = "redis")]
            Place::Redis(r) => r.fmt(f),
        }
    }
}

/// Two homes are equal when they hold the same object.
impl PartialEq for Home {
    fn eq(&self, other: &Self) -> bool {
        self.place == other.place
    }
}

impl Clone for Home {
    fn clone(&self) -> Self {
        Home::adopted(self.place.clone())
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        if Claim::of(*self.claim.get_mut()) == Claim::Owned {
            match &self.place {
                Place::Server(t) => client::release(t),
                #[cfg(feature = "redis")]
                Place::Redis(r) => super::redis::release(r),
            }
        }
    }
}

/// Serializing takes a lease on the object, so it outlives this proxy while the
/// bytes travel ([`lend`](Home::lend)); no key is written.
impl Serialize for Home {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.lend();
        self.place.serialize(s)
    }
}

/// Decoding adopts the object (or waits for a key to: [`Claim::Pending`]).
impl<'de> Deserialize<'de> for Home {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let place = Place::deserialize(d)?;
        if crate::wire::probe::active() {
            // A type probe walks the shape only: adopt nothing, ask no server.
            return Err(serde::de::Error::custom("a type probe adopts no object"));
        }
        Ok(Home::adopted(place))
    }
}

impl Home {
    /// The home of an object just made or looked up in a server: it owns the
    /// reference the server counted for it.
    pub(crate) fn server(token: Token) -> Home {
        Home {
            place: Place::Server(token),
            claim: AtomicU8::new(Claim::Owned as u8),
        }
    }

    /// The home of an object just made or opened in Redis (this process's count of
    /// it already includes this home).
    #[cfg(feature = "redis")]
    pub(crate) fn redis(r: super::redis::Ref) -> Home {
        Home {
            place: Place::Redis(r),
            claim: AtomicU8::new(Claim::Owned as u8),
        }
    }

    /// For a lock proxy: the fencing token of this process's current hold and
    /// whether its last acquire found the previous holder's lease run out (Redis
    /// only; a server's lock has neither).
    #[cfg(feature = "redis")]
    pub(crate) fn lock_info(&self) -> (Option<u64>, bool) {
        match &self.place {
            Place::Server(_) => (None, false),
            #[cfg(feature = "redis")]
            Place::Redis(r) => super::redis::lock_info(r),
        }
    }

    /// A home at `place` that adds an owner to the object, or waits for a key to.
    fn adopted(place: Place) -> Home {
        let claim = match &place {
            #[cfg(feature = "redis")]
            Place::Redis(r) => {
                // Counted in this process whatever Redis says (a drop uncounts it);
                // an object that is gone fails the calls.
                super::redis::adopt(r);
                Claim::Owned
            }
            Place::Server(t) if !client::has_key(t) => Claim::Pending,
            Place::Server(t) => {
                if client::request(&t.address, t.authkey.as_ref(), &Plain::IncRef(t.id)).is_ok() {
                    Claim::Owned
                } else {
                    Claim::None
                }
            }
        };
        Home {
            place,
            claim: AtomicU8::new(claim as u8),
        }
    }

    /// A home decoded before its key was known: adopt the object now, once.
    #[cold]
    fn settle(&self) -> Result<()> {
        #[allow(irrefutable_let_patterns)]
        let Place::Server(t) = &self.place else {
            return Ok(());
        };
        match client::request(&t.address, t.authkey.as_ref(), &Plain::IncRef(t.id)) {
            Ok(_) => {
                let won = self.claim.compare_exchange(
                    Claim::Pending as u8,
                    Claim::Owned as u8,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                if won.is_err() {
                    client::release(t); // another thread adopted it first
                }
                Ok(())
            }
            Err(e) => {
                if e.kind() != ErrorKind::Authentication {
                    let _ = self.claim.compare_exchange(
                        Claim::Pending as u8,
                        Claim::None as u8,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                }
                Err(e)
            }
        }
    }

    /// Runs `op` on the object and returns the reply (or the error the object gave).
    pub(crate) fn call<O: Ops>(&self, op: &O) -> Result<Reply> {
        if Claim::of(self.claim.load(Ordering::Acquire)) == Claim::Pending {
            self.settle()?;
        }
        match &self.place {
            Place::Server(t) => client::request(
                &t.address,
                t.authkey.as_ref(),
                &Request::<(), _>::Call(t.id, Tagged(op)),
            ),
            #[cfg(feature = "redis")]
            Place::Redis(r) => super::redis::call(r, op),
        }
    }

    /// A proxy is being serialized: keep the object alive while the bytes travel
    /// (a lease, see the server's design notes), and record the proxy if it is
    /// inside a value being stored in the same home ([`item`](Home::item)).
    /// Errors are left to the receiver, whose calls will fail.
    fn lend(&self) {
        match &self.place {
            Place::Server(t) => {
                let _ = client::request(&t.address, t.authkey.as_ref(), &Plain::Lease(t.id));
                collect(&t.address, t.id);
            }
            #[cfg(feature = "redis")]
            Place::Redis(r) => super::redis::lend(r),
        }
    }

    /// Encodes a value to be stored in this object's home.
    pub(crate) fn item<T: Serialize + ?Sized>(&self, x: &T) -> Result<Item> {
        match &self.place {
            Place::Server(t) => encode_item(&t.address, x),
            #[cfg(feature = "redis")]
            Place::Redis(_) => super::redis::item(x),
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
