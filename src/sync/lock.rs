//! `Lock` and `RLock`: Python's `multiprocessing.Lock` / `RLock`, robust to the death
//! of their holder.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::raw::{self, Acquired, Owner, RawLock};
use super::segment::{Segment, serde_by_segment};
use crate::error::{Error, ErrorKind, Result};
use crate::sys;

/// Segment layout of both locks: the 64-bit lock word (`raw`) at byte 0 (`word64(0)`);
/// for `RLock`, the re-entry count after it, at byte 8 (`word(2)`); the sleeper count
/// and the sleepers' futex word at bytes 64 and 68 (`word(16)`, `word(17)`). The
/// sleeper words have a cache line of their own, written only by sleepers: a release
/// reads the count right after its store, and under contention the lock word's line
/// may already have moved to the next holder's CPU (on the lock word's line, that read
/// cost a contended counter a fifth of its throughput).
const LOCK: usize = 0;
const R_COUNT: usize = 2;
const SLEEPERS: usize = 16;
/// The segment's length.
const LEN: usize = (SLEEPERS + 2) * 4;

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
/// How a death is seen: the lock word holds the holder's thread id and that thread's
/// start time. A waiter checks every 25 ms, in `/proc/<tid>/stat`, that a thread with
/// this id still runs (a zombie does not) *and* started at that time; so a new thread
/// or process that was given the dead holder's id is not mistaken for it.
///
/// # Platform notes
///
/// Linux only: a futex word (no `FUTEX_PRIVATE_FLAG`) and `/proc`. Start times count
/// 10 ms clock ticks, so the one case not told apart is a thread given the dead
/// holder's id within the tick the holder started, which the kernel's cyclic id
/// allocation rules out unless a privileged process hands out ids on purpose
/// (`ns_last_pid`, `clone3`'s `set_tid`). Without a readable `/proc`, a dead holder
/// cannot be detected and its lock stays held.
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
            .field("owner", &raw::owner(self.lock_word()))
            .finish()
    }
}

/// Proof that a [`Lock`] is held; releases it on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    /// The lock's words themselves, not the `Lock`: the release then reads no pointer
    /// chain (`Lock` -> segment -> mapping) after the acquiring CAS, which no later
    /// load may pass (about 2.5 ns of the pair's 5 here).
    raw: RawLock<'a>,
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
        raw::release(self.raw);
    }
}

impl Lock {
    #[inline]
    fn lock_word(&self) -> &AtomicU64 {
        self.seg.word64(LOCK)
    }

    #[inline]
    fn raw(&self) -> RawLock<'_> {
        self.seg.raw_lock(LOCK, SLEEPERS)
    }

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
            seg: Arc::new(Segment::new("multiprocess-lock", LEN)?),
        })
    }

    #[inline]
    fn guard(raw: RawLock<'_>, a: Acquired) -> LockGuard<'_> {
        LockGuard {
            raw,
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
        let raw = self.raw();
        let a = raw::acquire(raw, Owner::me(), None).expect("no deadline");
        Self::guard(raw, a)
    }

    /// Acquires the lock if it is free, without waiting; or if its holder died (each
    /// thread looks for a dead holder at most every 25 ms when its tries fail).
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
        let raw = self.raw();
        let me = Owner::me();
        raw::try_acquire(raw.word, me)
            .or_else(|| raw::try_take_over(raw.word, me))
            .map(|a| Self::guard(raw, a))
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
        let raw = self.raw();
        raw::acquire(raw, Owner::me(), sys::deadline_after(timeout)).map(|a| Self::guard(raw, a))
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
        if raw::release_held(self.raw()) {
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
        raw::owner(self.lock_word()).is_some()
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
            .field("owner", &raw::owner(self.lock_word()))
            .field("count", &self.count())
            .finish()
    }
}

/// Proof that an [`RLock`] is held (once more); releases one level on drop.
///
/// Not `Send`: an `RLock` belongs to the thread that acquired it, and only that
/// thread may release it (as the guard of std's `ReentrantLock`). A guard dropped in
/// another thread could not release its level, and the lock would stay held for ever.
///
/// ```compile_fail
/// let lock = multiprocess::RLock::new().unwrap();
/// let g = lock.acquire();
/// std::thread::scope(|s| {
///     s.spawn(move || drop(g)); // error: `RLockGuard` cannot be sent between threads
/// });
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    owner_died: bool,
    /// Not `Send` (see above), still `Sync`: a `MutexGuard` is both.
    _owner_thread: PhantomData<std::sync::MutexGuard<'static, ()>>,
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
    #[inline]
    fn lock_word(&self) -> &AtomicU64 {
        self.seg.word64(LOCK)
    }

    #[inline]
    fn raw(&self) -> RawLock<'_> {
        self.seg.raw_lock(LOCK, SLEEPERS)
    }

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
            seg: Arc::new(Segment::new("multiprocess-rlock", LEN)?),
        })
    }

    fn try_reenter(&self, me: Owner) -> Option<RLockGuard<'_>> {
        if raw::owner(self.lock_word()) == Some(me) {
            self.seg.word(R_COUNT).fetch_add(1, Ordering::Relaxed);
            Some(RLockGuard {
                lock: self,
                owner_died: false,
                _owner_thread: PhantomData,
            })
        } else {
            None
        }
    }

    fn acquired(&self, a: Acquired) -> RLockGuard<'_> {
        self.seg.word(R_COUNT).store(1, Ordering::Relaxed);
        RLockGuard {
            lock: self,
            owner_died: a.owner_died,
            _owner_thread: PhantomData,
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
        let me = Owner::me();
        if let Some(g) = self.try_reenter(me) {
            return g;
        }
        let a = raw::acquire(self.raw(), me, None).expect("no deadline");
        self.acquired(a)
    }

    /// Acquires without waiting, if free or already ours (or its holder died, as for
    /// [`Lock::try_acquire`]).
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
        let me = Owner::me();
        if let Some(g) = self.try_reenter(me) {
            return Some(g);
        }
        raw::try_acquire(self.lock_word(), me)
            .or_else(|| raw::try_take_over(self.lock_word(), me))
            .map(|a| self.acquired(a))
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
        let me = Owner::me();
        if let Some(g) = self.try_reenter(me) {
            return Some(g);
        }
        raw::acquire(self.raw(), me, sys::deadline_after(timeout)).map(|a| self.acquired(a))
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
        if raw::owner(self.lock_word()) != Some(Owner::me()) {
            return Err(Error::new(
                ErrorKind::NotPermitted,
                "cannot release an RLock this thread does not hold",
            ));
        }
        let count = self.seg.word(R_COUNT);
        if count.load(Ordering::Relaxed) <= 1 {
            count.store(0, Ordering::Relaxed);
            raw::release(self.raw());
        } else {
            count.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The lock word (for `Condition`).
    pub(crate) fn word(&self) -> &AtomicU64 {
        self.lock_word()
    }

    /// Releases every level held by the calling thread (which must hold it); returns
    /// the depth, for [`acquire_all`](RLock::acquire_all).
    pub(crate) fn release_all(&self) -> u32 {
        let depth = self.seg.word(R_COUNT).swap(0, Ordering::Relaxed);
        raw::release(self.raw());
        depth
    }

    /// Re-acquires the lock at `depth` levels (after [`release_all`](RLock::release_all)).
    pub(crate) fn acquire_all(&self, depth: u32) {
        let _ = raw::acquire(self.raw(), Owner::me(), None);
        self.seg
            .word(R_COUNT)
            .store(depth.max(1), Ordering::Relaxed);
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
        if raw::owner(self.lock_word()).is_some() {
            self.seg.word(R_COUNT).load(Ordering::Relaxed)
        } else {
            0
        }
    }
}

serde_by_segment!(RLock);
