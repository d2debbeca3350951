//! Processes: Python's `Process`, start methods, and a `spawn` that returns a value.
//!
//! # Caveats
//!
//! * **Zombies.** Every child is reaped: by [`Process::join`], by
//!   [`Process::is_alive`]/[`Process::exitcode`] once it ended, by [`active_children`],
//!   by the next [`Process::start`], or at exit. Reaping uses pidfds, never `SIGCHLD`.
//! * **Orphans.** A child never outlives a parent that dies, even by `SIGKILL`: it is
//!   created from a long-lived thread with `PR_SET_PDEATHSIG(SIGKILL)`, or, started by
//!   the fork server (whose child it is), it watches the parent's pidfd from a small
//!   thread of its own and dies once the parent is gone, even if the fork server was
//!   killed first (opt out per process with [`Process::die_with_parent`]). At a normal exit (return from `main`
//!   or `std::process::exit`), daemonic children are terminated and the others joined,
//!   as in Python.
//! * **Drop.** Dropping a running [`Process`] neither kills nor waits: the child runs on
//!   and is joined at exit (terminated if daemonic), as Python does.
//! * **Fork safety.** See [`StartMethod`].

/// Writes a line to the real standard error (fd 2). `eprintln!` would go into
/// libtest's output capture, which a thread spawned by a test inherits, and a child
/// forked from such a thread would lose its report when it exits.
macro_rules! report {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod bootstrap;
mod builder;
mod child;
mod context;
mod current;
mod exit_async;
mod fork;
mod forkserver;
mod join;
pub(crate) mod keyring;
mod launcher;
mod method;
mod options;
mod panic;
#[allow(clippy::module_inception)]
mod process;
mod spawn;
mod start;
mod state;

pub use context::{Context, default_context, get_context, get_start_method, set_start_method};
pub use current::{
    ChildInfo, CurrentProcess, ParentProcess, active_children, cpu_count, current_process,
    parent_process,
};
pub use fork::{Fork, fork, waitpid};
pub use join::{JoinFuture, JoinHandle, spawn};
pub use method::{DEFAULT_START_METHOD, StartMethod, get_all_start_methods};
pub use process::{Process, ProcessJoin};

pub use builder::Builder;
pub use options::Stdio;

pub(crate) use join::{describe_exit, spawn_with, start_detached};

pub(crate) use bootstrap::init;
pub(crate) use forkserver::server_pid as fork_server_pid;
pub(crate) use panic::{payload_text, quiet_panics, take_panic, user_frames};
#[cfg(feature = "tracing")]
pub(crate) use spawn::set_child_env;
