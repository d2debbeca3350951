//! The process's key ring: which authkey to present to the manager at an address.
//!
//! # Design
//!
//! A serialized manager proxy carries its manager's address and its object's id, never
//! the manager's key (DESIGN.md, "Hostile input": serialized handles carry no
//! secrets; Python refuses to pickle an authkey for the same reason). A process that
//! decodes a proxy finds the key here when it first connects to that address. The
//! ring is filled by the manager layer (a manager this process started, or one it
//! reached with `Manager::connect`, or `manager::add_authkey`), and, in a child
//! started by this crate, from its [`Boot`](super::bootstrap::Boot): the parent's
//! whole ring at the moment of the start. The boot message travels only over private
//! channels (a socketpair to a spawned child, the fork server's private socket, or the
//! memory of a forked child), never a network.
//!
//! It lives in this layer (below the manager) because the boot message carries it;
//! it stores raw key bytes for the same reason (`AuthKey` belongs to a higher layer).
//!
//! # Fork safety
//!
//! The ring is a [`PerProcess`] value: a forked child never locks its parent's mutex.
//! A child started by this crate installs the ring of its boot message
//! ([`install`], run by `run_child` after its state is replaced); a raw
//! [`fork`](crate::fork) child gets a [`snapshot`] taken by the parent just before the
//! fork.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::state::PerProcess;

static RING: PerProcess<HashMap<String, Vec<u8>>> = PerProcess::new();

/// A copy of a ring, as a boot message carries it. Its `Debug` shows the addresses,
/// never the keys.
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct Keys(Vec<(String, Vec<u8>)>);

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.0.iter().map(|(a, _)| a))
            .finish()
    }
}

/// Records `key` as the key of the manager at `address` (replacing another).
pub(crate) fn insert(address: &str, key: &[u8]) {
    let mut ring = RING.get().lock().unwrap_or_else(|e| e.into_inner());
    ring.insert(address.to_string(), key.to_vec());
}

/// Forgets the key of `address`, if it is still `key` (a manager that stopped; a
/// later one at the same address may have put its own).
pub(crate) fn remove_if(address: &str, key: &[u8]) {
    let mut ring = RING.get().lock().unwrap_or_else(|e| e.into_inner());
    if ring.get(address).is_some_and(|k| k == key) {
        ring.remove(address);
    }
}

/// Forgets the key of `address`, whatever it is.
pub(crate) fn remove(address: &str) {
    let mut ring = RING.get().lock().unwrap_or_else(|e| e.into_inner());
    ring.remove(address);
}

/// The key of the manager at `address`, if this process knows it.
pub(crate) fn lookup(address: &str) -> Option<Vec<u8>> {
    let ring = RING.get().lock().unwrap_or_else(|e| e.into_inner());
    ring.get(address).cloned()
}

/// A copy of the whole ring, for a child's boot message.
pub(crate) fn snapshot() -> Keys {
    let ring = RING.get().lock().unwrap_or_else(|e| e.into_inner());
    Keys(ring.iter().map(|(a, k)| (a.clone(), k.clone())).collect())
}

/// Adds `keys` to this process's ring (a new child, from its boot message). The check
/// for none is inlined into the caller: in a fresh fork child every page of code run
/// for the first time is a page fault, and most children get no keys.
#[inline]
pub(crate) fn install(keys: Keys) {
    if !keys.0.is_empty() {
        install_now(keys);
    }
}

#[inline(never)]
fn install_now(keys: Keys) {
    let mut ring = RING.get().lock().unwrap_or_else(|e| e.into_inner());
    ring.extend(keys.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_maps_addresses_to_keys_and_hides_them_in_debug() {
        let a = format!("@keyring-test-{}", std::process::id());
        assert_eq!(lookup(&a), None);
        insert(&a, b"first");
        insert(&a, b"second");
        assert_eq!(lookup(&a).as_deref(), Some(&b"second"[..]));
        let snap = snapshot();
        let shown = format!("{snap:?}");
        assert!(shown.contains(&a) && !shown.contains("second"), "{shown}");
        remove_if(&a, b"first"); // not the current key: kept
        assert!(lookup(&a).is_some());
        remove_if(&a, b"second");
        assert_eq!(lookup(&a), None);
        install(snap);
        assert_eq!(lookup(&a).as_deref(), Some(&b"second"[..]));
        remove(&a);
        assert_eq!(lookup(&a), None);
    }
}
