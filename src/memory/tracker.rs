//! The tracker of named segments: a detached process, spawned on a process's first
//! named `SharedMemory::create`, that unlinks the names its creator left behind when
//! the creator dies (even by `SIGKILL`) or exits without unlinking them.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::connection::Connection;
use crate::error::Result;
use crate::process::StartMethod;
use crate::sys;

/// What the creator tells its tracker: a path under `/dev/shm` (`/name`) and the
/// identity of the file it names.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Tracker {
    Register(String, sys::shm::FileId),
    Unregister(String, sys::shm::FileId),
}

/// This process's connection to its tracker (with the pid it belongs to: a forked
/// child must start its own).
static TRACKER: Mutex<Option<(u32, Connection<Tracker>)>> = Mutex::new(None);

pub(super) fn track(msg: Tracker) -> Result<()> {
    let me = sys::process::getpid();
    let mut t = TRACKER.lock().unwrap_or_else(|e| e.into_inner());
    if t.as_ref().is_none_or(|(pid, _)| *pid != me) {
        if matches!(msg, Tracker::Unregister(..)) {
            return Ok(());
        }
        // An entry from our parent (we were forked): its fd was closed in this process
        // and its number may be reused by now, so forget it; dropping would close it.
        if let Some(stale) = t.take() {
            std::mem::forget(stale);
        }
        let (ours, theirs) = crate::connection::pipe::<Tracker>()?;
        crate::process::start_detached(
            StartMethod::Spawn,
            "SharedMemoryTracker",
            tracker_main,
            theirs,
        )?;
        *t = Some((me, ours));
    }
    let (_, conn) = t.as_ref().expect("just set");
    conn.send(&msg)
}

/// The tracker: collects names until the creator's end of the pipe closes, then
/// unlinks those still naming the file they were registered with.
fn tracker_main(conn: Connection<Tracker>) {
    let mut names = std::collections::BTreeMap::new();
    // `recv` fails once the creator is gone (exit, crash or SIGKILL closes its end).
    while let Ok(msg) = conn.recv() {
        match msg {
            Tracker::Register(n, id) => {
                names.insert(n, id);
            }
            Tracker::Unregister(n, id) => {
                if names.get(&n) == Some(&id) {
                    names.remove(&n);
                }
            }
        }
    }
    for (path, id) in names {
        let _ = sys::shm::unlink_if_same(&path, id);
    }
}
