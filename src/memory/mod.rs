//! Shared memory: Python's `Value`, `Array`, `RawValue` and `RawArray` (plain data
//! in anonymous segments) and `shared_memory.SharedMemory` (named segments, with a
//! tracker that unlinks them when their creator dies).
//!
//! A `Value<T>` or `Array<T>` is a handle on an anonymous shared segment (memfd): a
//! robust lock word, then the data at offset 64. Clone it to share between threads,
//! pass it in a child's args or send it through a connection to share between
//! processes. Nothing is left in `/dev/shm`. Which Rust type stands for which of
//! Python's typecodes is in [`Pod`]'s docs.
//!
//! # Locked and raw flavours (design note)
//!
//! Python's `Value`/`Array` carry a lock; `RawValue`/`RawArray` do not. Here they are
//! distinct types, not a flag: a locked flavour's [`lock`](Value::lock) guard hands out
//! `&mut T`, which is only sound if *every* access to the data takes the lock. A raw
//! flavour's unlocked `set` from a clone would alias that `&mut T`, so the raw types
//! have no `lock` at all, and a segment sent as one flavour cannot be received as the
//! other (deserializing checks the flag stored in the segment). Raw `get`/`set` copy
//! the data with relaxed atomic loads and stores, a machine word (or less) at a time:
//! never undefined behaviour however they race, but not atomic as a whole (see
//! [`RawValue`]).

mod named;
mod pod;
mod tracker;
mod value;

pub use named::SharedMemory;
pub use pod::Pod;
pub use value::{Array, RawArray, RawValue, SharedGuard, Value};
