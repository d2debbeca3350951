//! The wire layer: how values and handles travel between processes.
//!
//! * [`codec`]: values are encoded over serde in the crate's own [`format`]. While a value is encoded,
//!   every handle inside it (a [`Connection`](crate::Connection), a queue, a lock,
//!   shared memory) records its file descriptor in a side table instead of writing it
//!   into the bytes; the bytes hold only the fd's index in that table. Decoding
//!   re-attaches the received fds in the same order. One mechanism serves the args of
//!   a child under every start method, `Connection::send`, queues and pool tasks, as
//!   ipc-channel does for its `IpcSender`.
//! * [`code`]: functions as offsets in this binary, so a child can be told which
//!   function to run.
//! * [`format`]: the wire format of values, a serde serializer and deserializer (see
//!   *Stability* below), with block copies for sequences of plain numbers.
//! * [`probe`]: whether a type can be decoded from the format, asked of the type.
//! * [`frame`]: length-prefixed frames over a Unix stream socket, with the side table's
//!   fds travelling beside the first byte (`SCM_RIGHTS`).
//! * [`packet`]: the same frames over a sequenced-packet socket (pipes): one record
//!   for a small frame, so one system call to receive it; a large one in records sent
//!   and received in batches.
//!
//! # Stability
//!
//! A value's bytes are bincode 1.3's encoding of its serde data model with
//! `DefaultOptions::new().with_fixint_encoding().with_little_endian()`: integers and
//! floats as fixed-width little-endian bytes, lengths as `u64`, enum variants as a
//! `u32` index, `Option` as a 0/1 byte, chars as UTF-8, no field names, no type tags.
//! This is the exact wire of the versions of this crate that used bincode 1.3 itself
//! (the unit tests compare the two byte for byte), and it is kept: a value encoded by
//! one build of a given crate version decodes in any other build of that version (the
//! same types, the same serde derives), on any little-endian target. It is not
//! self-describing: decoding follows the receiver's type, so both ends must agree on
//! it, and types that need `deserialize_any` (`serde_json::Value`, untagged enums,
//! `#[serde(flatten)]`) are refused with an error that says so; a pool or an executor
//! refuses them as arguments or results when the task is submitted, before any work
//! starts ([`probe`]). Frames carry a magic
//! (`MPFR`), no version: the bytes of a value did not change with the move off
//! bincode, so there was nothing to tell apart; a future change of the value
//! encoding must change the magic, so that an old peer refuses new frames at their
//! header instead of misreading them.

pub(crate) mod code;
pub(crate) mod codec;
pub(crate) mod fd;
pub(crate) mod format;
#[cfg(test)]
mod format_tests;
pub(crate) mod frame;
pub(crate) mod handles;
#[cfg(test)]
mod hostile_tests;
#[cfg(any(feature = "json", test))]
pub(crate) mod json;
pub(crate) mod limit;
pub(crate) mod packet;
pub(crate) mod probe;
pub(crate) mod spare;
#[cfg(test)]
mod timing_tests;
