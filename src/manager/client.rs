//! The client side: one authenticated connection per thread and manager address.
//!
//! This is the transport of a proxy whose object lives in a server (the `Server` home of
//! [`Home`](super::home::Home)). Such a proxy holds a [`Token`]: the manager's address,
//! the object's id, and the key to present, if this process was given it. Serialized,
//! a token keeps the address, the id and whether the manager has a key at all, never
//! the key: a process that decodes one looks the key up in its key ring
//! ([`keyring`](crate::process::keyring)) when it sets up a connection to that address
//! (not on every call), and without one its calls fail with a clear
//! [`ErrorKind::Authentication`] error ([`missing_key`]). A process that
//! receives a proxy connects on first use. Connections are per *thread* (as Python's
//! `BaseProxy._tls`): a thread blocked in a queue `get` or a lock `acquire` never holds
//! up another thread's calls, and the server uses the connection as the owner's
//! identity for `RLock` and `Condition`. A connection inherited through `fork` belongs
//! to the parent: a child notices the pid changed and opens its own.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::AsFd;

use serde::{Deserialize, Serialize};

use super::protocol::{Plain, Reply, Response};
use crate::error::{Error, ErrorKind, Result};
use crate::listener::{AuthKey, connect_raw};
use crate::process::keyring;
use crate::sys;
use crate::wire::frame::AdaptiveSpin;
use crate::wire::handles::HandleFd;
use crate::wire::{codec, frame};

/// What a proxy needs to reach its object.
#[derive(Clone)]
pub(crate) struct Token {
    pub(crate) address: String,
    pub(crate) id: u64,
    /// The key to present: given to this process with the manager (it started the
    /// manager, or reached it with `Manager::connect`), or `AuthKey::none` for a
    /// manager without a key; `None` for a decoded token of a keyed manager, whose key
    /// comes from the key ring when a connection is set up.
    pub(crate) authkey: Option<AuthKey>,
}

/// A token as it travels: no key, only whether the manager has one.
#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    address: std::borrow::Cow<'a, str>,
    id: u64,
    keyed: bool,
}

impl Serialize for Token {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        Wire {
            address: std::borrow::Cow::Borrowed(&self.address),
            id: self.id,
            keyed: self.authkey.as_ref().is_none_or(|k| k.as_bytes().is_some()),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let w = Wire::deserialize(d)?;
        Ok(Token {
            address: w.address.into_owned(),
            id: w.id,
            authkey: (!w.keyed).then(AuthKey::default),
        })
    }
}

/// Two tokens are equal when they name the same object, however they got their key.
impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        self.address == other.address && self.id == other.id
    }
}
impl Eq for Token {}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.address, self.id)
    }
}

/// The error of a call through a decoded proxy whose manager's key this process
/// does not know.
pub(crate) fn missing_key(address: &str) -> Error {
    Error::new(
        ErrorKind::Authentication,
        format!(
            "no authkey is known in this process for the manager at {address}: a \
             serialized proxy carries no key. Call `Manager::connect({address:?}, key)` or \
             `multiprocess::manager::add_authkey({address:?}, key)` in this process first \
             (a child started by this crate gets its parent's keys when it starts)"
        ),
    )
}

/// Whether a connection to `token`'s manager can be set up without a missing key.
pub(crate) fn has_key(token: &Token) -> bool {
    token.authkey.is_some() || keyring::lookup(&token.address).is_some()
}

/// The key to present to `address`: `given`, or the ring's.
fn key_for(address: &str, given: Option<&AuthKey>) -> Result<AuthKey> {
    match given {
        Some(k) => Ok(k.clone()),
        None => keyring::lookup(address)
            .map(AuthKey::from)
            .ok_or_else(|| missing_key(address)),
    }
}

struct Cached {
    pid: u32,
    authkey: AuthKey,
    fd: HandleFd,
    spin: AdaptiveSpin,
}

impl Cached {
    fn new(pid: u32, authkey: AuthKey, fd: std::os::fd::OwnedFd) -> Cached {
        Cached {
            pid,
            authkey,
            fd: HandleFd::new(fd),
            spin: AdaptiveSpin::new(),
        }
    }
}

thread_local! {
    static CONNS: RefCell<HashMap<String, Cached>> = RefCell::new(HashMap::new());
}

fn send_request(c: &Cached, bytes: &mut [u8]) -> Result<()> {
    frame::send(c.fd.as_fd(), bytes, &[])
}

fn recv_reply(c: &mut Cached) -> Result<Reply> {
    let f = c
        .spin
        .recv(c.fd.as_fd(), None, u64::MAX)?
        .expect("no deadline");
    let resp: Response = f.decode()?;
    resp.map_err(Error::from)
}

/// Sends `req` to the manager at `address` and waits for its reply. `authkey`: as
/// [`Token::authkey`] (`None`: the key ring's, looked up only to set up a connection).
pub(crate) fn request<R: Serialize + ?Sized>(
    address: &str,
    authkey: Option<&AuthKey>,
    req: &R,
) -> Result<Reply> {
    let mut enc = codec::encode_with_prefix(req, frame::HEADER)?;
    let pid = sys::process::getpid();
    let outcome = CONNS.try_with(|conns| {
        let Ok(mut conns) = conns.try_borrow_mut() else {
            return Err(Error::state(
                "a manager call was made from within another on the same thread",
            ));
        };
        let mut fresh = false;
        if let Some(c) = conns.get(address)
            && (c.pid != pid || authkey.is_some_and(|k| c.authkey != *k))
        {
            let stale = conns.remove(address).expect("present");
            if stale.pid != pid {
                // Inherited through fork: the fd was closed (or reused) in this child.
                std::mem::forget(stale);
            }
        }
        if !conns.contains_key(address) {
            let key = key_for(address, authkey)?;
            let fd = connect_raw(address, &key)?;
            conns.insert(address.to_string(), Cached::new(pid, key, fd));
            fresh = true;
        }
        let c = conns.get(address).expect("inserted");
        if let Err(e) = send_request(c, &mut enc.bytes) {
            conns.remove(address);
            if fresh || e.kind() != ErrorKind::Disconnected {
                return Err(e);
            }
            // The cached connection went stale (its server stopped; maybe another
            // runs at the address now): the request was not delivered, so retry once.
            let key = key_for(address, authkey)?;
            let fd = connect_raw(address, &key)?;
            conns.insert(address.to_string(), Cached::new(pid, key, fd));
            let c = conns.get(address).expect("inserted");
            send_request(c, &mut enc.bytes)?;
        }
        let c = conns.get_mut(address).expect("present");
        match recv_reply(c) {
            Ok(r) => Ok(r),
            Err(e) => {
                if matches!(
                    e.kind(),
                    ErrorKind::Disconnected | ErrorKind::Protocol | ErrorKind::Io
                ) {
                    conns.remove(address);
                }
                Err(e)
            }
        }
    });
    outcome.unwrap_or_else(|_| {
        Err(Error::state(
            "a manager proxy was used while its thread was exiting (after its \
             connections were closed)",
        ))
    })
}

/// Tells the server a proxy that owned `token`'s object is gone, without waiting
/// for an answer: a drop never blocks on the server. Only over this thread's
/// connection to it: a thread that never cloned, decoded nor used a proxy of that
/// manager has none, and opening one in `drop` could block (a server that stopped
/// accepting, an unreachable host); the reference is then left to the server (the
/// object lives on, as if the proxy were still alive).
pub(crate) fn release(token: &Token) {
    let req = Plain::DecRef(token.id);
    let Ok(mut enc) = codec::encode_with_prefix(&req, frame::HEADER) else {
        return;
    };
    let pid = sys::process::getpid();
    let _ = CONNS.try_with(|conns| {
        let Ok(mut conns) = conns.try_borrow_mut() else {
            return;
        };
        let Some(c) = conns.get(&token.address) else {
            return;
        };
        if c.pid != pid || token.authkey.as_ref().is_some_and(|k| c.authkey != *k) {
            return;
        }
        if send_request(c, &mut enc.bytes).is_err() {
            conns.remove(&token.address);
        }
    });
}

/// Drops this thread's connection to `address` (after a shutdown).
pub(crate) fn forget(address: &str) {
    let _ = CONNS.try_with(|c| c.borrow_mut().remove(address));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_travels_without_its_key() {
        let keyed = Token {
            address: "@a".into(),
            id: 7,
            authkey: Some(AuthKey::from(b"sekrit-sekrit")),
        };
        let bytes = codec::encode(&keyed).unwrap().bytes;
        assert!(!bytes.windows(6).any(|w| w == b"sekrit"));
        let back: Token = codec::decode(&bytes, Vec::new()).unwrap();
        assert_eq!(back, keyed);
        assert!(back.authkey.is_none(), "its key comes from the ring");
        // A keyless manager's token decodes keyless: no ring entry needed.
        let keyless = Token {
            authkey: Some(AuthKey::default()),
            ..keyed
        };
        let back: Token =
            codec::decode(&codec::encode(&keyless).unwrap().bytes, Vec::new()).unwrap();
        assert_eq!(back.authkey, Some(AuthKey::default()));
        assert!(has_key(&back));
        let e = key_for("@nobody-has-this", None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Authentication);
        assert!(e.to_string().contains("add_authkey"), "{e}");
    }
}
