//! `Lock` and `RLock`: Python's `multiprocessing.Lock` / `RLock`, robust to the death
//! of their holder.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::raw::{self, Acquired};
use super::segment::{Segment, serde_by_segment};
use crate::error::{Error, ErrorKind, Result};
use crate::sys;

/// A lock shared between processes: Python's `multiprocessing.Lock`.
///
/// [`acquire`](Lock::acquire) returns a guard that releases on drop. As in Python, any
/// process may also [`release`](Lock::release) a held lock explicitly.
///
/// **A holder that dies is not a deadlock.** If the process (or thread) holding the
/// lock is killed, the next acquirer takes it over within about 25 ms and is told:
/// [`LockGuard::owner_died`] returns `true`. Whatever the lock protected may be in a
/// half-updated state; check it, as you would after Rust's `Mutex` poisoning.
///
/// Clone it to share it between threads; pass it in a child's args (or send it
/// through a [`Connection`](crate::Connection)) to share it between processes.
///
/// # Examples
///
/// In process 1 and process 2:
///
/// ```
/// use multiprocess::{Lock, Process};
///
/// fn child(lock: Lock) {
///     let _g = lock.acquire();
///     println!("child has the lock");
/// }
///
/// multiprocess::init();
/// let lock = Lock::new()?;
/// let mut p = Process::new(child, lock.clone());
/// {
///     let _g = lock.acquire();
///     p.start()?; // the child waits until we drop the guard
/// }
/// p.join()?;
/// assert_eq!(p.exitcode(), Some(0));
/// # Ok::<(), multiprocess::Error>(())
/// ```
#[derive(Clone)]
pub struct Lock {
    seg: Arc<Segment>,
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("owner", &raw::owner(self.seg.word(0)))
            .finish()
    }
}

/// Proof that a [`Lock`] is held; releases it on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
    owner_died: bool,
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("owner_died", &self.owner_died)
            .finish()
    }
}

impl LockGuard<'_> {
    /// `true` if the previous holder died while holding the lock (and this acquisition
    /// took it over). The data it protected may be inconsistent.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::Lock;
    ///
    /// fn take_and_die(lock: Lock) {
    ///     std::mem::forget(lock.acquire()); // hold it...
    ///     std::process::exit(0); // ...and die without releasing
    /// }
    ///
    /// multiprocess::init();
    /// let lock = Lock::new()?;
    /// let mut p = multiprocess::Process::new(take_and_die, lock.clone());
    /// p.start()?;
    /// p.join()?;
    /// let g = lock.acquire();
    /// assert!(g.owner_died());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// Keeps the lock held after the guard is gone; release it later with
    /// [`Lock::release`], possibly from another process.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let lock = multiprocess::Lock::new()?;
    /// lock.acquire().keep();
    /// assert!(lock.try_acquire().is_none());
    /// lock.release()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for LockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        raw::release(self.lock.seg.word(0));
    }
}

impl Lock {
    /// A new, unlocked lock.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = multiprocess::Lock::new()?;
    /// assert!(!lock.is_locked());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn new() -> Result<Lock> {
        Ok(Lock {
            seg: Arc::new(Segment::new("multiprocess-lock", 8)?),
        })
    }

    #[inline]
    fn guard(&self, a: Acquired) -> LockGuard<'_> {
        LockGuard {
            lock: self,
            owner_died: a.owner_died,
        }
    }

    /// Acquires the lock, waiting as long as it takes (but see the type's docs: a
    /// dead holder does not make this wait forever).
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = multiprocess::Lock::new()?;
    /// let g = lock.acquire();
    /// assert!(lock.is_locked());
    /// drop(g);
    /// assert!(!lock.is_locked());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    #[inline]
    pub fn acquire(&self) -> LockGuard<'_> {
        let a = raw::acquire(self.seg.word(0), sys::process::gettid(), None).expect("no deadline");
        self.guard(a)
    }

    /// Acquires the lock if it is free, without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = multiprocess::Lock::new()?;
    /// let g = lock.try_acquire().expect("free");
    /// assert!(lock.try_acquire().is_none());
    /// # drop(g);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Option<LockGuard<'_>> {
        raw::try_acquire(self.seg.word(0), sys::process::gettid()).map(|a| self.guard(a))
    }

    /// Acquires the lock, waiting at most `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let lock = multiprocess::Lock::new()?;
    /// let _g = lock.acquire();
    /// assert!(lock.acquire_timeout(Duration::from_millis(10)).is_none());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<LockGuard<'_>> {
        raw::acquire(
            self.seg.word(0),
            sys::process::gettid(),
            sys::deadline_after(timeout),
        )
        .map(|a| self.guard(a))
    }

    /// Releases the lock, whoever holds it (Python allows any process to).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidState`] if the lock is not held.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::ErrorKind;
    /// let lock = multiprocess::Lock::new()?;
    /// assert_eq!(lock.release().unwrap_err().kind(), ErrorKind::InvalidState);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn release(&self) -> Result<()> {
        if raw::release(self.seg.word(0)) {
            Ok(())
        } else {
            Err(Error::state("release of an unlocked lock"))
        }
    }

    /// Is the lock held (by anyone)?
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = multiprocess::Lock::new()?;
    /// assert!(!lock.is_locked());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn is_locked(&self) -> bool {
        raw::owner(self.seg.word(0)).is_some()
    }
}

serde_by_segment!(Lock);

/// A re-entrant lock shared between processes: Python's `multiprocessing.RLock`.
///
/// The thread that holds it may acquire it again; it is free once released as many
/// times as it was acquired. Only the holder may release it. A holder that dies is
/// handled as for [`Lock`].
///
/// # Examples
///
/// ```
/// use multiprocess::ErrorKind;
/// let lock = multiprocess::RLock::new()?;
/// let a = lock.acquire();
/// let b = lock.acquire();
/// let c = lock.acquire();
/// assert_eq!(lock.count(), 3);
/// drop((a, b, c));
/// assert_eq!(lock.count(), 0);
/// assert_eq!(lock.release().unwrap_err().kind(), ErrorKind::NotPermitted);
/// # Ok::<(), multiprocess::Error>(())
/// ```
#[derive(Clone)]
pub struct RLock {
    seg: Arc<Segment>,
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("owner", &raw::owner(self.seg.word(0)))
            .field("count", &self.count())
            .finish()
    }
}

/// Proof that an [`RLock`] is held (once more); releases one level on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    owner_died: bool,
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockGuard")
            .field("owner_died", &self.owner_died)
            .finish()
    }
}

impl RLockGuard<'_> {
    /// `true` if this acquisition took the lock over from a holder that died.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = multiprocess::RLock::new()?;
    /// assert!(!lock.acquire().owner_died());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// Keeps this level held after the guard is gone; release it later with
    /// [`RLock::release`] from the same thread.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = multiprocess::RLock::new()?;
    /// lock.acquire().keep();
    /// assert_eq!(lock.count(), 1);
    /// lock.release()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.lock.release();
    }
}

impl RLock {
    /// A new, unlocked re-entrant lock.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = multiprocess::RLock::new()?;
    /// assert_eq!(lock.count(), 0);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn new() -> Result<RLock> {
        Ok(RLock {
            seg: Arc::new(Segment::new("multiprocess-rlock", 8)?),
        })
    }

    fn try_reenter(&self, me: u32) -> Option<RLockGuard<'_>> {
        if raw::owner(self.seg.word(0)) == Some(me) {
            self.seg.word(1).fetch_add(1, Ordering::Relaxed);
            Some(RLockGuard {
                lock: self,
                owner_died: false,
            })
        } else {
            None
        }
    }

    fn acquired(&self, a: Acquired) -> RLockGuard<'_> {
        self.seg.word(1).store(1, Ordering::Relaxed);
        RLockGuard {
            lock: self,
            owner_died: a.owner_died,
        }
    }

    /// Acquires (again, if this thread already holds it).
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = multiprocess::RLock::new()?;
    /// let _a = lock.acquire();
    /// let _b = lock.acquire(); // no deadlock: same thread
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn acquire(&self) -> RLockGuard<'_> {
        let me = sys::process::gettid();
        if let Some(g) = self.try_reenter(me) {
            return g;
        }
        let a = raw::acquire(self.seg.word(0), me, None).expect("no deadline");
        self.acquired(a)
    }

    /// Acquires without waiting, if free or already ours.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = multiprocess::RLock::new()?;
    /// let _a = lock.try_acquire().expect("free");
    /// let _b = lock.try_acquire().expect("ours already");
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn try_acquire(&self) -> Option<RLockGuard<'_>> {
        let me = sys::process::gettid();
        if let Some(g) = self.try_reenter(me) {
            return Some(g);
        }
        raw::try_acquire(self.seg.word(0), me).map(|a| self.acquired(a))
    }

    /// Acquires, waiting at most `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let lock = multiprocess::RLock::new()?;
    /// assert!(lock.acquire_timeout(Duration::from_millis(1)).is_some());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<RLockGuard<'_>> {
        let me = sys::process::gettid();
        if let Some(g) = self.try_reenter(me) {
            return Some(g);
        }
        raw::acquire(self.seg.word(0), me, sys::deadline_after(timeout)).map(|a| self.acquired(a))
    }

    /// Releases one level.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotPermitted`] if the calling thread does not hold the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = multiprocess::RLock::new()?;
    /// lock.acquire().keep();
    /// lock.release()?;
    /// assert!(lock.release().is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn release(&self) -> Result<()> {
        if raw::owner(self.seg.word(0)) != Some(sys::process::gettid()) {
            return Err(Error::new(
                ErrorKind::NotPermitted,
                "cannot release an RLock this thread does not hold",
            ));
        }
        let count = self.seg.word(1);
        if count.load(Ordering::Relaxed) <= 1 {
            count.store(0, Ordering::Relaxed);
            raw::release(self.seg.word(0));
        } else {
            count.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The lock word (for `Condition`).
    pub(crate) fn word(&self) -> &std::sync::atomic::AtomicU32 {
        self.seg.word(0)
    }

    /// Releases every level held by the calling thread (which must hold it); returns
    /// the depth, for [`acquire_all`](RLock::acquire_all).
    pub(crate) fn release_all(&self) -> u32 {
        let depth = self.seg.word(1).swap(0, Ordering::Relaxed);
        raw::release(self.seg.word(0));
        depth
    }

    /// Re-acquires the lock at `depth` levels (after [`release_all`](RLock::release_all)).
    pub(crate) fn acquire_all(&self, depth: u32) {
        let _ = raw::acquire(self.seg.word(0), sys::process::gettid(), None);
        self.seg.word(1).store(depth.max(1), Ordering::Relaxed);
    }

    /// How many times the holder has acquired it (0 when free).
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = multiprocess::RLock::new()?;
    /// let _g = lock.acquire();
    /// assert_eq!(lock.count(), 1);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn count(&self) -> u32 {
        if raw::owner(self.seg.word(0)).is_some() {
            self.seg.word(1).load(Ordering::Relaxed)
        } else {
            0
        }
    }
}

serde_by_segment!(RLock);
