//! HMAC-SHA256 seals on entries that cross Redis.
//!
//! Anyone who can write to Redis can write an entry; only a holder of the key can seal
//! one. A sealed entry is `tag (32 bytes) || body`, the tag being
//! `HMAC(key, domain || len(domain) || body)`: the domain (for example `b"task"` or
//! `b"result"`) keeps an entry of one kind from being replayed as another, and the
//! length keeps domain and body from sliding into each other. Tags are compared in
//! constant time ([`Mac::verify_slice`]).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Length of a seal's tag, in bytes.
const TAG: usize = 32;

/// A key that seals and opens entries (HMAC-SHA256).
///
/// # Examples
///
/// ```
/// use multiprocess::broker::Seal;
/// let seal = Seal::new(b"cluster key");
/// let entry = seal.seal(b"task", b"payload");
/// assert_eq!(seal.open(b"task", &entry), Some(&b"payload"[..]));
/// // Another domain, another key, or one flipped bit: refused.
/// assert_eq!(seal.open(b"result", &entry), None);
/// assert_eq!(Seal::new(b"other key").open(b"task", &entry), None);
/// let mut forged = entry.clone();
/// *forged.last_mut().unwrap() ^= 1;
/// assert_eq!(seal.open(b"task", &forged), None);
/// ```
#[derive(Clone)]
pub struct Seal {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seal { .. }")
    }
}

impl Seal {
    /// A seal with `key` (any length; use 32 random bytes or more).
    ///
    /// # Examples
    ///
    /// ```
    /// let seal = multiprocess::broker::Seal::new(b"k");
    /// assert_eq!(seal.seal(b"d", b"").len(), 32);
    /// ```
    pub fn new(key: &[u8]) -> Self {
        Seal {
            mac: <Hmac<Sha256> as KeyInit>::new_from_slice(key)
                .expect("HMAC takes keys of any length"),
        }
    }

    fn tag(&self, domain: &[u8], body: &[u8]) -> Hmac<Sha256> {
        let mut m = self.mac.clone();
        m.update(domain);
        m.update(&(domain.len() as u64).to_le_bytes());
        m.update(body);
        m
    }

    /// `body` sealed for `domain`: the tag followed by the body.
    ///
    /// # Examples
    ///
    /// ```
    /// let seal = multiprocess::broker::Seal::new(b"k");
    /// assert!(seal.seal(b"task", b"abc").ends_with(b"abc"));
    /// ```
    pub fn seal(&self, domain: &[u8], body: &[u8]) -> Vec<u8> {
        let tag = self.tag(domain, body).finalize().into_bytes();
        let mut out = Vec::with_capacity(TAG + body.len());
        out.extend_from_slice(&tag);
        out.extend_from_slice(body);
        out
    }

    /// The body of `entry` if a holder of this key sealed it for `domain`; `None` for
    /// anything else (too short, another key, another domain, altered).
    ///
    /// # Examples
    ///
    /// ```
    /// let seal = multiprocess::broker::Seal::new(b"k");
    /// assert_eq!(seal.open(b"task", b"short"), None);
    /// ```
    pub fn open<'e>(&self, domain: &[u8], entry: &'e [u8]) -> Option<&'e [u8]> {
        if entry.len() < TAG {
            return None;
        }
        let (tag, body) = entry.split_at(TAG);
        self.tag(domain, body).verify_slice(tag).ok().map(|()| body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn random_entries_never_open(entry in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(Seal::new(b"key").open(b"task", &entry), None);
        }

        #[test]
        fn sealed_entries_open_to_their_body(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let s = Seal::new(b"key");
            let sealed = s.seal(b"task", &body);
            prop_assert_eq!(s.open(b"task", &sealed), Some(&body[..]));
        }
    }

    #[test]
    fn domain_and_body_do_not_slide() {
        let s = Seal::new(b"key");
        let e = s.seal(b"ab", b"c");
        let moved: Vec<u8> = e[..32].iter().chain(b"bc").copied().collect();
        assert_eq!(s.open(b"a", &moved), None);
    }
}
