//! The wire layer: how values and handles travel between processes.
//!
//! * [`codec`]: values are encoded with bincode (fixed-width integers) over serde. While a value is encoded,
//!   every handle inside it (a [`Connection`](crate::Connection), a queue, a lock,
//!   shared memory) records its file descriptor in a side table instead of writing it
//!   into the bytes; the bytes hold only the fd's index in that table. Decoding
//!   re-attaches the received fds in the same order. One mechanism serves the args of
//!   a child under every start method, `Connection::send`, queues and pool tasks, as
//!   ipc-channel does for its `IpcSender`.
//! * [`code`]: functions as offsets in this binary, so a child can be told which
//!   function to run.
//! * [`frame`]: length-prefixed frames over a Unix stream socket, with the side table's
//!   fds travelling beside the first byte (`SCM_RIGHTS`).

pub(crate) mod code;
pub(crate) mod codec;
pub(crate) mod format;
#[cfg(test)]
mod format_tests;
pub(crate) mod frame;
pub(crate) mod handles;
#[cfg(test)]
mod hostile_tests;
pub(crate) mod limit;
#[cfg(test)]
mod timing_tests;
