//! The async wait for a child's exit: its pidfd becomes readable when it exits, under
//! tokio's reactor or the crate's shared one (see `aio`); then it is reaped at once.

use std::os::fd::AsFd;
use std::task::{Context, Poll};
use std::time::Instant;

use super::child::Child;
use crate::aio::{self, Attempt, Backoff, Readable};
use crate::error::{Error, Result};

/// The state of one async wait for an exit: its registration, made at the first miss.
#[derive(Debug, Default)]
pub(super) struct ExitState {
    readable: Option<Readable>,
    backoff: Backoff,
}

/// Polls for `child`'s exit; its exit code once it has exited (and is reaped).
pub(super) fn poll_exit(
    child: &Child,
    cx: &mut Context<'_>,
    st: &mut ExitState,
) -> Poll<Result<i32>> {
    aio::poll_attempts(
        cx,
        &mut st.readable,
        &mut st.backoff,
        || Readable::new(child.pidfd.as_fd()),
        || match child.poll_exit(Some(Instant::now())) {
            Ok(Some(code)) => Attempt::Done(Ok(code)),
            Ok(None) => Attempt::WouldBlock,
            Err(e) => Attempt::Done(Err(Error::io("join", e))),
        },
        |e| Err(Error::io("waiting for a process to exit", e)),
    )
}
