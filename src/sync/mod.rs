//! Synchronization primitives that work across processes: futex words in shared
//! memory (no `FUTEX_PRIVATE_FLAG`).
//!
//! Every primitive is a handle on an anonymous shared segment: clone it to share it
//! between threads, pass it in a child's args or send it through a
//! [`Connection`](crate::Connection) to share it between processes.

mod barrier;
mod condition;
mod lock;
pub(crate) mod raw;
pub(crate) mod segment;
mod semaphore;

pub use barrier::Barrier;
pub use condition::Condition;
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, Event, Semaphore, SemaphoreGuard};
