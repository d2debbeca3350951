//! The worker side: a pool worker's loop and the trampolines that run its tasks.
//!
//! A worker runs its initializer (answering `Ready` or `InitFailed`), then takes tasks
//! from its ring in order until told to exit or until its parent is gone. Each task
//! names a trampoline (`entry`) and the user's function (`func`) as code offsets: the
//! trampoline, made generic where the types were known, decodes the items, calls the
//! function on each (catching panics), and encodes a [`ChunkOut`] after room for the
//! result header.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::panic::{self, AssertUnwindSafe};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::protocol::{
    Blob, ChunkOut, Encoded, Failure, ResultHeader, ResultKind, TaskHeader, dup_all,
};
use super::status::Status;
use crate::error::Result;
use crate::queue::Queue;
use crate::wire::code::code_at;
use crate::wire::codec;

/// What a worker is given.
#[derive(Serialize, Deserialize)]
pub(crate) struct WorkerArgs {
    pub(crate) tasks: Queue<()>,
    pub(crate) results: Queue<()>,
    pub(crate) status: Status,
    /// The initializer: trampoline, function (code offsets) and its encoded argument.
    pub(crate) init: Option<(usize, usize, Blob)>,
}

/// The stamp callback handed to a trampoline.
pub(crate) struct Stamp<'a> {
    status: Option<(&'a Status, u64)>,
}

impl Stamp<'_> {
    fn begin(&self, item: usize) {
        if let Some((s, id)) = self.status {
            s.stamp(id, item as u64);
        }
    }
}

/// A trampoline: decode the payload, call `func` on it, encode the output.
///
/// # Safety
///
/// `func` must be the code offset, made in this binary, of a function of the type
/// the trampoline was instantiated for (see [`run_chunk`], [`run_init`]).
pub(crate) type Entry =
    unsafe fn(usize, &[u8], Vec<OwnedFd>, &Stamp<'_>) -> std::result::Result<Encoded, String>;

/// The trampoline for `fn(A) -> R` over a chunk: decodes a `Vec<A>`, calls `func` on
/// each item, encodes a [`ChunkOut<R>`] after room for the result header.
///
/// # Safety
///
/// `func` must have been made by [`code_offset`](crate::wire::code::code_offset) in
/// this binary from an `fn(A) -> R` with this call's `A` and `R`.
#[allow(unsafe_code)]
pub(crate) unsafe fn run_chunk<A, R>(
    func: usize,
    bytes: &[u8],
    fds: Vec<OwnedFd>,
    stamp: &Stamp<'_>,
) -> std::result::Result<Encoded, String>
where
    A: DeserializeOwned,
    R: Serialize,
{
    #[allow(unsafe_code)]
    // SAFETY: our caller promises that `func` came from an `fn(A) -> R` of this binary.
    let f: fn(A) -> R = unsafe { code_at(func) };
    let items: Vec<A> = codec::decode(bytes, fds)
        .map_err(|e| format!("cannot decode the task's arguments: {e}"))?;
    let n = items.len();
    let mut ok: Vec<R> = Vec::with_capacity(n);
    let mut mixed: Option<Vec<std::result::Result<R, Failure>>> = None;
    for (i, a) in items.into_iter().enumerate() {
        stamp.begin(i);
        let r = panic::catch_unwind(AssertUnwindSafe(|| f(a))).map_err(|_| Failure {
            message: crate::process::take_panic().unwrap_or_else(|| "panicked".into()),
        });
        match (&mut mixed, r) {
            (None, Ok(v)) => ok.push(v),
            (None, Err(e)) => {
                let mut m: Vec<std::result::Result<R, Failure>> =
                    std::mem::take(&mut ok).into_iter().map(Ok).collect();
                m.push(Err(e));
                mixed = Some(m);
            }
            (Some(m), r) => m.push(r),
        }
    }
    let out = match mixed {
        None => ChunkOut::AllOk(ok),
        Some(m) => ChunkOut::Mixed(m),
    };
    let expected = (std::mem::size_of::<R>() + 4) * n + 16;
    let enc = codec::encode_sized(&out, ResultHeader::LEN, expected)
        .map_err(|e| format!("cannot serialize the result: {e}"))?;
    let fds = if enc.fds.is_empty() {
        Vec::new()
    } else {
        dup_all(&enc.borrowed_fds()).map_err(|e| e.to_string())?
    };
    Ok((enc.bytes, fds))
}

/// The trampoline of an initializer `fn(A)`.
///
/// # Safety
///
/// `func` must have been made by [`code_offset`](crate::wire::code::code_offset) in
/// this binary from an `fn(A)` with this call's `A`.
#[allow(unsafe_code)]
pub(crate) unsafe fn run_init<A: DeserializeOwned>(
    func: usize,
    bytes: &[u8],
    fds: Vec<OwnedFd>,
    _stamp: &Stamp<'_>,
) -> std::result::Result<Encoded, String> {
    #[allow(unsafe_code)]
    // SAFETY: our caller promises that `func` came from an `fn(A)` of this binary.
    let f: fn(A) = unsafe { code_at(func) };
    let a: A = codec::decode(bytes, fds)
        .map_err(|e| format!("cannot decode the initializer's arguments: {e}"))?;
    panic::catch_unwind(AssertUnwindSafe(|| f(a)))
        .map_err(|_| crate::process::take_panic().unwrap_or_else(|| "panicked".into()))?;
    Ok((Vec::new(), Vec::new()))
}

/// Sends a message whose first [`ResultHeader::LEN`] bytes are reserved for the
/// header.
fn send_prefixed(
    results: &Queue<()>,
    kind: ResultKind,
    id: u64,
    mut buf: Vec<u8>,
    fds: &[OwnedFd],
) -> Result<()> {
    ResultHeader { kind, id }.write(&mut buf);
    let fds: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
    results.raw().put(&buf, &fds, None)
}

fn send(results: &Queue<()>, kind: ResultKind, id: u64, body: &[u8]) -> Result<()> {
    let mut buf = vec![0u8; ResultHeader::LEN];
    buf.extend_from_slice(body);
    send_prefixed(results, kind, id, buf, &[])
}

/// A task taken from the ring.
enum Job {
    Run {
        id: u64,
        stamp: bool,
        entry: usize,
        func: usize,
        bytes: Vec<u8>,
        fds: Vec<OwnedFd>,
    },
    Exit,
}

/// A pool worker's life: run the initializer, then tasks until told to exit.
pub(crate) fn worker_main(args: WorkerArgs) {
    crate::process::quiet_panics();
    // Chunks allocate and free the same large buffers over and over.
    crate::sys::process::keep_heap();
    if let Some((entry, func, blob)) = args.init {
        #[allow(unsafe_code)]
        // SAFETY: our parent's pool (this binary) made `entry` with `code_offset` from
        // `run_init::<A>` as an `Entry`, and `func` from the initializer, an `fn(A)`
        // (`PoolBuilder::initializer`); so calling `run` with `func` keeps its promise.
        let done = unsafe {
            let run: Entry = code_at(entry);
            run(func, &blob.bytes, blob.fds, &Stamp { status: None })
        };
        match done {
            Ok(_) => {
                if send(&args.results, ResultKind::Ready, 0, &[]).is_err() {
                    return;
                }
            }
            Err(msg) => {
                let _ = send(&args.results, ResultKind::InitFailed, 0, msg.as_bytes());
                std::process::exit(1);
            }
        }
    }
    loop {
        let job = args.tasks.raw().get_with(None, |bytes, fds| {
            Ok(match TaskHeader::decode(bytes)? {
                TaskHeader::Run {
                    id,
                    stamp,
                    entry,
                    func,
                } => Job::Run {
                    id,
                    stamp,
                    entry,
                    func,
                    bytes: bytes[TaskHeader::LEN..].to_vec(),
                    fds,
                },
                TaskHeader::Exit => Job::Exit,
            })
        });
        match job {
            Ok(Job::Run {
                id,
                stamp,
                entry,
                func,
                bytes,
                fds,
            }) => {
                let st = Stamp {
                    status: stamp.then_some((&args.status, id)),
                };
                #[allow(unsafe_code)]
                // SAFETY: the pool thread of our parent (this binary) made `entry` with
                // `code_offset` from `run_chunk::<A, R>` as an `Entry`, and `func` in the
                // same task from an `fn(A) -> R` (`ProcessFlavor::new`).
                let done = unsafe {
                    let run: Entry = code_at(entry);
                    run(func, &bytes, fds, &st)
                };
                let sent = match done {
                    Ok((out, ofds)) => {
                        send_prefixed(&args.results, ResultKind::Result, id, out, &ofds)
                    }
                    Err(msg) => send(&args.results, ResultKind::Failed, id, msg.as_bytes()),
                };
                if sent.is_err() {
                    return;
                }
            }
            // A garbled task, or our parent is gone.
            Ok(Job::Exit) | Err(_) => return,
        }
    }
}
