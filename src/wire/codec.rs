//! Values on the wire ([`format`]: bincode 1.3's fixed-width little-endian layout of
//! serde's data model) with a side table of file descriptors.
//!
//! A handle serializes as the index of its fd in the thread's current *send table*; it
//! deserializes by taking the fd at that index from the thread's current *receive
//! table*. Outside [`encode`]/[`decode`] there is no table, and serializing a handle is
//! an error (for example through `serde_json`): an fd number means nothing elsewhere.
//!
//! # Hostile input
//!
//! Every received value in the crate (connections, queues, pool tasks and results,
//! manager requests and replies, a child's boot message) is decoded by [`decode`],
//! and the bytes are treated as hostile. The [`format`] reads from the received slice
//! and checks each claimed length against the bytes left before allocating or reading
//! anything for it (bincode 1.3's `io::Read` path resized a buffer to the claimed
//! length first, so a `String` claiming 2^40 bytes aborted the receiver). On top,
//! [`limit::Limited`](super::limit::Limited) bounds nesting to [`MAX_DEPTH`] levels,
//! what collections may reserve to one element per received byte in total, and the
//! number of elements visited; the format charges the same budget for the sequences
//! of plain numbers it copies in one block. Whatever the bytes, a malformed value is
//! an error of kind [`ErrorKind::Deserialize`], never a panic, an abort or an
//! unbounded allocation, and the caller goes on with its next message.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{format, limit, spare};
use crate::error::{Error, ErrorKind, Result};

thread_local! {
    static SEND: RefCell<Option<Vec<RawFd>>> = const { RefCell::new(None) };
    static RECV: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
}

/// An encoded value: its bytes and the fds its handles refer to. The fds belong to
/// the value, so an `Encoded` borrows it (`'a`): the borrow checker keeps the value,
/// and so the fds, alive while the encoding is used.
#[derive(Debug)]
pub(crate) struct Encoded<'a> {
    pub(crate) bytes: Vec<u8>,
    pub(crate) fds: Vec<RawFd>,
    _value: PhantomData<&'a ()>,
}

impl<'a> Encoded<'a> {
    /// The fds as borrowed fds, valid while the encoded value lives.
    pub(crate) fn borrowed_fds(&self) -> Vec<BorrowedFd<'a>> {
        #[allow(unsafe_code)]
        self.fds
            .iter()
            // SAFETY: the fds belong to handles inside the value this encoding borrows
            // for `'a`: they stay open for `'a`.
            .map(|&fd| unsafe { BorrowedFd::borrow_raw(fd) })
            .collect()
    }
}

/// Encodes `value` after `prefix` reserved bytes (a frame header to fill in later).
pub(crate) fn encode_with_prefix<T: Serialize + ?Sized>(
    value: &T,
    prefix: usize,
) -> Result<Encoded<'_>> {
    encode_sized(value, prefix, 0)
}

/// Encodes `value` after `prefix` reserved bytes into a buffer with room for
/// `expected` more bytes (a guess that saves regrowing a large buffer).
pub(crate) fn encode_sized<T: Serialize + ?Sized>(
    value: &T,
    prefix: usize,
    expected: usize,
) -> Result<Encoded<'_>> {
    encode_in(value, prefix, Vec::with_capacity(prefix + expected))
}

thread_local! {
    /// This thread's spare encoding buffer (see `wire::spare`).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// As [`encode_with_prefix`], into this thread's spare buffer; hand the bytes back with
/// [`recycle`] once sent, so that a sender of large messages writes each into the same
/// pages (see `wire::spare`).
pub(crate) fn encode_reusing<T: Serialize + ?Sized>(
    value: &T,
    prefix: usize,
) -> Result<Encoded<'_>> {
    encode_in(value, prefix, spare::take(&SCRATCH))
}

/// Gives an encoding buffer back for this thread's next [`encode_reusing`].
pub(crate) fn recycle(buf: Vec<u8>) {
    spare::keep(&SCRATCH, buf, 0);
}

fn encode_in<T: Serialize + ?Sized>(
    value: &T,
    prefix: usize,
    mut bytes: Vec<u8>,
) -> Result<Encoded<'_>> {
    struct Reset(Option<Vec<RawFd>>);
    impl Drop for Reset {
        fn drop(&mut self) {
            SEND.with(|s| *s.borrow_mut() = self.0.take());
        }
    }
    // Support nesting (a handle's serializer never encodes, but be safe).
    let saved = SEND.with(|s| s.borrow_mut().replace(Vec::new()));
    let _reset = Reset(saved);
    bytes.clear();
    bytes.resize(prefix, 0);
    format::encode_into(value, &mut bytes).map_err(|e| {
        Error::new(
            ErrorKind::Serialize,
            format!("cannot serialize the value: {e}"),
        )
    })?;
    let fds = SEND
        .with(|s| s.borrow_mut().replace(Vec::new()))
        .unwrap_or_default();
    Ok(Encoded {
        bytes,
        fds,
        _value: PhantomData,
    })
}

/// Encodes `value`.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Encoded<'_>> {
    encode_with_prefix(value, 0)
}

/// Initializes this thread's codec state (its thread-locals and their destructors'
/// registration) if it was not yet. Called before a fork on the forking thread, so the
/// child, a copy of it, finds them ready: registering a thread-local destructor in the
/// child would touch five fresh pages (C library code, a lock, an allocation), each a
/// page fault of a few microseconds on a virtual machine, in every child started.
pub(crate) fn prepare_thread_for_fork() {
    SEND.with(|_| ());
    RECV.with(|_| ());
    DE_MESSAGE.with(|_| ());
    SCRATCH.with(|_| ());
}

thread_local! {
    /// The message of the last [`de_error`] on this thread (the format keeps only its own).
    static DE_MESSAGE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// A deserialization error saying `msg`, for our own `Deserialize` impls. The message
/// is also kept aside here and [`decode`] puts it in its error, so that it survives a
/// format that reduces custom errors to a bare description.
pub(crate) fn de_error<E: serde::de::Error>(msg: impl std::fmt::Display) -> E {
    let msg = msg.to_string();
    DE_MESSAGE.with(|m| *m.borrow_mut() = Some(msg.clone()));
    E::custom(msg)
}

/// How deeply a received value may nest (sequences, maps, structs, tuples, enums,
/// options, newtypes) before [`decode`] refuses it. serde_json's default is the same;
/// it keeps a recursive type from overflowing the receiver's stack while leaving room
/// for any hand-written message type.
pub(crate) const MAX_DEPTH: u32 = 128;

/// How many zero-sized elements (`()`, unit structs) a received value may hold beyond
/// one per received byte: see [`limit`](super::limit).
const ZERO_SIZED_ITEMS: usize = 1 << 20;

/// Decodes a `T` from `bytes`, giving its handles the `fds` (which it takes ownership
/// of; fds not claimed by a handle are closed).
///
/// The bytes are hostile: whatever they claim, decoding reads only from `bytes` (a
/// length past their end fails before anything is allocated for it), nests at most
/// [`MAX_DEPTH`] levels, reserves memory for at most `bytes.len()` collection elements
/// in total, and visits at most `bytes.len()` plus [`ZERO_SIZED_ITEMS`] elements. Any
/// byte string that is not exactly one encoded `T` gives an error of kind
/// [`ErrorKind::Deserialize`] (never a panic or an abort), and the caller can go on.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<T> {
    struct Reset(Option<Option<Vec<Option<OwnedFd>>>>);
    impl Drop for Reset {
        // Inlined: with nothing to put back (most decodes) it is one test, and a call
        // would be one more page of code for a fork child to fault in.
        #[inline]
        fn drop(&mut self) {
            if let Some(saved) = self.0.take() {
                end_decode(saved);
            }
        }
    }
    let _reset = Reset(begin_decode(fds));
    let budget = limit::Budget::new(
        MAX_DEPTH,
        bytes.len().saturating_add(ZERO_SIZED_ITEMS),
        bytes.len(),
    );
    let mut de = format::Deserializer::new(bytes, Some(&budget));
    let value = T::deserialize(limit::Limited::new(&mut de, &budget)).map_err(|e| {
        let why = DE_MESSAGE
            .with(|m| m.borrow_mut().take())
            .unwrap_or_else(|| e.to_string());
        Error::new(
            ErrorKind::Deserialize,
            format!(
                "cannot decode a {} from {} received bytes: {why}",
                std::any::type_name::<T>(),
                bytes.len()
            ),
        )
    })?;
    let rest = de.rest();
    if !rest.is_empty() {
        return Err(Error::new(
            ErrorKind::Deserialize,
            format!(
                "{} trailing bytes after decoding a {}: the sender's type differs",
                rest.len(),
                std::any::type_name::<T>()
            ),
        ));
    }
    Ok(value)
}

/// The start of a [`decode`]: puts `fds` in this thread's receive table and forgets the
/// last custom error message; returns the table it replaced, for [`end_decode`]. Not
/// generic, so every [`decode`] shares one copy of it (and a fresh fork child, which
/// faults in each code page it runs first, runs fewer pages).
///
/// With no fds, no table in use (not inside another decode) and no message left, it
/// changes nothing and returns `None`: a handle in the value then finds no table and
/// fails, as it would find none of its fds in an empty one. So decoding a value
/// without handles writes nothing to thread-local storage, which in a fresh fork
/// child is a page shared with the parent, copied at the first write.
#[inline(never)]
#[allow(unsafe_code)] // the section only groups code: "Child text" in process::bootstrap
#[unsafe(link_section = "multiprocess_child_text")]
fn begin_decode(fds: Vec<OwnedFd>) -> Option<Option<Vec<Option<OwnedFd>>>> {
    #[allow(unsafe_code)]
    // SAFETY: each reference lives only for the `is_none()` on this thread, inside
    // `with`; no mutable borrow of either cell is held here (their `borrow_mut`s are
    // all in scopes that end before any decode code runs).
    let idle = || unsafe {
        RECV.with(|s| s.try_borrow_unguarded().is_ok_and(Option::is_none))
            && DE_MESSAGE.with(|m| m.try_borrow_unguarded().is_ok_and(Option::is_none))
    };
    if fds.is_empty() && idle() {
        return None;
    }
    DE_MESSAGE.with(|m| m.borrow_mut().take());
    let table = fds.into_iter().map(Some).collect();
    Some(RECV.with(|s| s.borrow_mut().replace(table)))
}

/// The end of a [`decode`]: puts back the receive table [`begin_decode`] replaced
/// (closing the fds no handle claimed).
#[inline(never)]
#[allow(unsafe_code)] // the section only groups code: "Child text" in process::bootstrap
#[unsafe(link_section = "multiprocess_child_text")]
fn end_decode(saved: Option<Vec<Option<OwnedFd>>>) {
    RECV.with(|s| *s.borrow_mut() = saved);
}

/// For a handle's `Serialize`: records `fd` in the send table and writes its index.
pub(crate) fn serialize_fd<S: Serializer>(fd: BorrowedFd<'_>, s: S) -> Result<S::Ok, S::Error> {
    let idx = SEND.with(|t| {
        t.borrow_mut().as_mut().map(|v| {
            v.push(fd.as_raw_fd());
            (v.len() - 1) as u32
        })
    });
    match idx {
        Some(i) => i.serialize(s),
        None => Err(serde::ser::Error::custom(
            "a multiprocess handle can only be serialized by multiprocess itself \
             (as an argument of a child, or sent through a Connection or Queue)",
        )),
    }
}

/// For a handle's `Deserialize`: takes the fd whose index is next in the input.
pub(crate) fn deserialize_fd<'de, D: Deserializer<'de>>(d: D) -> Result<OwnedFd, D::Error> {
    let idx = u32::deserialize(d)? as usize;
    RECV.with(|t| match t.borrow_mut().as_mut() {
        None => Err(serde::de::Error::custom(
            "a multiprocess handle can only be deserialized by multiprocess itself, from a \
             message that carries its fd",
        )),
        Some(v) => match v.get_mut(idx).and_then(Option::take) {
            Some(fd) => Ok(fd),
            None => Err(serde::de::Error::custom(format!(
                "handle refers to fd #{idx}, which did not arrive with the message"
            ))),
        },
    })
}

/// Duplicates raw fds inherited through `fork` so each decoded handle owns its own.
/// Every fork child runs it: it lives with their code ("Child text" in
/// `process::bootstrap`).
#[allow(unsafe_code)] // the section only groups code: "Child text" in process::bootstrap
#[unsafe(link_section = "multiprocess_child_text")]
pub(crate) fn dup_inherited(fds: &[RawFd]) -> Result<Vec<OwnedFd>> {
    if fds.is_empty() {
        // The common case in a fresh fork child, where every code page touched costs
        // a page fault: skip the iterator machinery.
        return Ok(Vec::new());
    }
    fds.iter()
        .map(|&fd| {
            #[allow(unsafe_code)]
            // SAFETY: the fds were open in the parent at fork time and are inherited.
            let b = unsafe { BorrowedFd::borrow_raw(fd) };
            crate::sys::socket::dup(b).map_err(|e| Error::io("duplicating an inherited handle", e))
        })
        .collect()
}

/// Wraps a raw fd received from the kernel as owned (only used where the fd number
/// is known to be ours and unowned).
#[allow(unsafe_code, dead_code)]
pub(crate) fn own_raw(fd: RawFd) -> OwnedFd {
    // SAFETY: callers pass fds they own exclusively.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
