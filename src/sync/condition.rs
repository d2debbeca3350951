//! `Condition`: Python's `multiprocessing.Condition`, across processes.
//!
//! # Algorithm
//!
//! Two words beside the condition's [`RLock`]: `seq` (the futex waiters sleep on) and
//! `count`, which packs `waiting` (waiters not yet notified, low 16 bits) and `tickets`
//! (notifications not yet taken, high 16 bits) so that a notify's move from one to the
//! other and a waiter's withdrawal are each one atomic step.
//!
//! * `wait`: `waiting += 1` (with the lock held), release the lock fully (remembering
//!   the re-entry count), then sleep on `seq` until a ticket can be taken
//!   (`tickets -= 1`), or the deadline passes; re-acquire the lock and restore the
//!   count.
//! * `notify_n(k)`: `m = min(k, waiting)`; `waiting -= m, tickets += m`, `seq += 1`,
//!   `FUTEX_WAKE` `m` sleepers; then, still holding the lock, wait until the `m`
//!   tickets are taken (a taker wakes the notifier through `count`). As in CPython,
//!   whose `notify` waits for the woken sleepers to acknowledge: while tickets are
//!   out, no thread can start waiting (that needs the lock), so only the waiters the
//!   notify counted can take them. Without that wait a thread that notified and then
//!   waited at once (two processes taking turns) took its own ticket back, and the
//!   waiter it had woken slept on, uncounted, for ever.
//! * A waiter that times out takes a ticket if one is there (it was counted by a notify
//!   still waiting for its tickets to go), otherwise it withdraws from `waiting`, in
//!   one step, before it re-acquires the lock (which that notifier holds).
//! * A notifier waits for its tickets at most [`ACK_PATIENCE`]: a woken waiter whose
//!   process was killed never takes its ticket.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::lock::{RLock, RLockGuard};
use super::raw;
use super::segment::Segment;
use crate::error::{Error, ErrorKind, Result};
use crate::sys::{self, futex};

const SEQ: usize = 0;
/// `waiting | tickets << 16` (see the module docs).
const COUNT: usize = 1;

const TICKET: u32 = 1 << 16;

fn waiting(count: u32) -> u32 {
    count & 0xffff
}

fn tickets(count: u32) -> u32 {
    count >> 16
}

/// How long a notify waits for the waiters it woke to take their tickets: they need
/// only to wake (microseconds); one that never does was killed.
const ACK_PATIENCE: Duration = Duration::from_secs(1);

/// A condition variable shared between processes, with its own [`RLock`].
///
/// Hold the lock (from [`acquire`](Condition::acquire)) to wait or notify, as in Python.
///
/// # Examples
///
/// In process 1 and process 2:
///
/// ```
/// use std::time::Duration;
/// use multiprocess::{Condition, Process};
///
/// fn producer(cond: Condition) {
///     let _g = cond.acquire();
///     cond.notify_all().unwrap();
/// }
///
/// multiprocess::init();
/// let cond = Condition::new()?;
/// let mut g = cond.acquire();
/// let mut p = Process::new(producer, cond.clone());
/// p.start()?;
/// // Released while waiting; the child takes the lock and notifies us.
/// assert!(cond.wait_timeout(&mut g, Duration::from_secs(10)));
/// drop(g);
/// p.join()?;
/// # Ok::<(), multiprocess::Error>(())
/// ```
#[derive(Clone)]
pub struct Condition {
    lock: RLock,
    seg: Arc<Segment>,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("waiting", &waiting(self.seg.word(COUNT).load(SeqCst)))
            .finish_non_exhaustive()
    }
}

impl Condition {
    /// A new condition with a fresh [`RLock`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let cond = multiprocess::Condition::new()?;
    /// let _g = cond.acquire();
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn new() -> Result<Condition> {
        Self::with_lock(RLock::new()?)
    }

    /// A condition using `lock` (share one lock among several conditions).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = multiprocess::RLock::new()?;
    /// let not_empty = multiprocess::Condition::with_lock(lock.clone())?;
    /// let not_full = multiprocess::Condition::with_lock(lock)?;
    /// # drop((not_empty, not_full));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn with_lock(lock: RLock) -> Result<Condition> {
        Ok(Condition {
            lock,
            seg: Arc::new(Segment::new("multiprocess-condition", 12)?),
        })
    }

    /// Acquires the condition's lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let cond = multiprocess::Condition::new()?;
    /// let g = cond.acquire();
    /// cond.notify()?; // nobody waits: no effect
    /// drop(g);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn acquire(&self) -> RLockGuard<'_> {
        self.lock.acquire()
    }

    /// The condition's lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let cond = multiprocess::Condition::new()?;
    /// assert_eq!(cond.lock().count(), 0);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn lock(&self) -> &RLock {
        &self.lock
    }

    /// Takes a ticket if one is out; the notifier that gave it waits for that.
    fn take_ticket(&self) -> bool {
        let count = self.seg.word(COUNT);
        let taken = count
            .fetch_update(SeqCst, SeqCst, |c| (tickets(c) > 0).then(|| c - TICKET))
            .is_ok();
        if taken {
            futex::wake(count, 1);
        }
        taken
    }

    /// A waiter whose deadline passed: takes a ticket if one is out (it was notified
    /// after all), otherwise leaves `waiting`. `true` if it took a ticket.
    fn ticket_or_withdraw(&self) -> bool {
        let count = self.seg.word(COUNT);
        let before = count
            .fetch_update(SeqCst, SeqCst, |c| {
                Some(if tickets(c) > 0 {
                    c - TICKET
                } else {
                    c.saturating_sub(1)
                })
            })
            .unwrap_or_else(|c| c);
        let took = tickets(before) > 0;
        if took {
            futex::wake(count, 1);
        }
        took
    }

    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        if raw::owner(self.lock.word()) != Some(raw::Owner::me()) {
            // The guard is another lock's (a guard proves its own lock is held, and
            // cannot leave its thread): waiting here would return at once, and a
            // waiting loop would spin. Python raises; std's `Condvar` panics likewise.
            panic!("Condition::wait with a guard of another lock than the condition's");
        }
        if waiting(self.seg.word(COUNT).fetch_add(1, SeqCst)) == 0xffff {
            // 65,536 waiters at once: no room to count another; give up at once.
            self.seg.word(COUNT).fetch_sub(1, SeqCst);
            return false;
        }
        let depth = self.lock.release_all();
        let seq = self.seg.word(SEQ);
        let notified = loop {
            let s = seq.load(SeqCst);
            if self.take_ticket() {
                break true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break self.ticket_or_withdraw();
            }
            futex::wait(seq, s, deadline);
        };
        self.lock.acquire_all(depth);
        notified
    }

    /// Releases the lock, waits for a notification, and re-acquires the lock.
    ///
    /// # Panics
    ///
    /// If this thread does not hold the condition's [`lock`](Condition::lock) (`guard`
    /// is another lock's), as Python raises and std's `Condvar` panics.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let cond = multiprocess::Condition::new()?;
    /// let mut g = cond.acquire();
    /// cond.wait(&mut g); // until another thread or process notifies
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn wait(&self, guard: &mut RLockGuard<'_>) {
        let _ = guard;
        self.wait_until(None);
    }

    /// As [`wait`](Condition::wait), giving up after `timeout`; `false` on timeout.
    ///
    /// # Panics
    ///
    /// If this thread does not hold the condition's [`lock`](Condition::lock) (`guard`
    /// is another lock's), as Python raises and std's `Condvar` panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let cond = multiprocess::Condition::new()?;
    /// let mut g = cond.acquire();
    /// assert!(!cond.wait_timeout(&mut g, Duration::from_millis(10)));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn wait_timeout(&self, guard: &mut RLockGuard<'_>, timeout: Duration) -> bool {
        let _ = guard;
        self.wait_until(sys::deadline_after(timeout))
    }

    /// Waits until `predicate()` is true (checked with the lock held), or `timeout`
    /// (`None`: forever) passes; returns the last value of the predicate.
    ///
    /// # Panics
    ///
    /// If it has to wait while this thread does not hold the condition's
    /// [`lock`](Condition::lock) (`guard` is another lock's), as for
    /// [`wait`](Condition::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let cond = multiprocess::Condition::new()?;
    /// let mut g = cond.acquire();
    /// assert!(cond.wait_for(&mut g, || true, None));
    /// assert!(!cond.wait_for(&mut g, || false, Some(Duration::from_millis(10))));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn wait_for(
        &self,
        guard: &mut RLockGuard<'_>,
        mut predicate: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> bool {
        let _ = guard;
        let deadline = sys::deadline_after_opt(timeout);
        loop {
            if predicate() {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            self.wait_until(deadline);
        }
    }

    fn check_owner(&self) -> Result<()> {
        if raw::owner(self.lock.word()) == Some(raw::Owner::me()) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::NotPermitted,
                "notify on a Condition whose lock this thread does not hold",
            ))
        }
    }

    /// Wakes one waiter (call with the lock held).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotPermitted`] if the calling thread does not hold the lock, as
    /// Python raises `RuntimeError`: a notify without the lock would race with the
    /// waiter's check of its predicate, so it is refused rather than silently lost.
    /// (A `Result`, not a panic: the condition may be shared with another process,
    /// whose thread can release the lock at any moment.)
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::ErrorKind;
    /// let cond = multiprocess::Condition::new()?;
    /// assert_eq!(cond.notify().unwrap_err().kind(), ErrorKind::NotPermitted);
    /// let _g = cond.acquire();
    /// cond.notify()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn notify(&self) -> Result<()> {
        self.notify_n(1).map(drop)
    }

    /// Wakes up to `n` waiters; returns how many were waiting to be woken.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotPermitted`] if the calling thread does not hold the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let cond = multiprocess::Condition::new()?;
    /// assert!(cond.notify_n(2).is_err()); // lock not held
    /// let _g = cond.acquire();
    /// assert_eq!(cond.notify_n(2)?, 0);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn notify_n(&self, n: u32) -> Result<u32> {
        self.check_owner()?;
        let count = self.seg.word(COUNT);
        let (mut m, mut out) = (0, 0);
        let _ = count.fetch_update(SeqCst, SeqCst, |c| {
            out = tickets(c);
            m = n.min(waiting(c)).min(0xffff - out);
            (m > 0).then(|| c - m + m * TICKET)
        });
        if m == 0 {
            return Ok(0);
        }
        let seq = self.seg.word(SEQ);
        seq.fetch_add(1, SeqCst);
        futex::wake(seq, m);
        // Hold the lock until the tickets are taken (see the module docs); `out` were
        // left by a notify whose waiter died.
        let patience = Instant::now() + ACK_PATIENCE;
        loop {
            let c = count.load(SeqCst);
            if tickets(c) <= out || Instant::now() >= patience {
                break;
            }
            futex::wait(count, c, Some(patience));
        }
        Ok(m)
    }

    /// Wakes every waiter.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotPermitted`] if the calling thread does not hold the lock (see
    /// [`notify`](Condition::notify)).
    ///
    /// # Examples
    ///
    /// ```
    /// let cond = multiprocess::Condition::new()?;
    /// assert!(cond.notify_all().is_err());
    /// let _g = cond.acquire();
    /// cond.notify_all()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn notify_all(&self) -> Result<()> {
        self.notify_n(u32::MAX).map(drop)
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (&self.lock, &*self.seg).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (lock, seg) = <(RLock, Segment)>::deserialize(d)?;
        Ok(Condition {
            lock,
            seg: Arc::new(seg),
        })
    }
}
