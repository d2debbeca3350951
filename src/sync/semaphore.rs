//! `Semaphore`, `BoundedSemaphore` and `Event`: Python's, across processes.
//!
//! # Algorithm
//!
//! A semaphore is three words in a shared segment: `count`, `waiters`, `max` (0 for
//! unbounded). `acquire` decrements `count` with a CAS when it is positive; otherwise
//! it registers in `waiters`, re-checks `count` and sleeps on the `count` futex while
//! it is 0. `release` increments `count` and wakes one sleeper if `waiters` says there
//! may be one. Both sides use sequentially consistent operations on the two words, so
//! either the releaser sees the waiter or the waiter sees the new count (no lost
//! wake-up); the futex itself re-checks `count == 0` in the kernel.
//!
//! An `Event` is a `flag` word and a `waiters` word with the same protocol; `set` wakes
//! every sleeper. The flag word also counts the sets (`generation << 1 | set`), and a
//! waiter sleeps while the whole word is what it saw: a `set` wakes it even if a
//! `clear` follows at once (a "pulse"), and it returns, as Python's waiters do.
//!
//! A process killed while asleep leaves `waiters` one too high: later releases make a
//! `FUTEX_WAKE` call that finds nobody. That costs a system call, never a lost wake-up.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::raw;
use super::segment::{Segment, serde_by_segment};
use crate::error::{Error, ErrorKind, Result};
use crate::sys::{self, futex};

const COUNT: usize = 0;
const WAITERS: usize = 1;
const MAX: usize = 2;

/// In an `Event`'s flag word (at `COUNT`): the flag; the bits above count the sets.
const EVENT_SET: u32 = 1;

/// A counting semaphore shared between processes: Python's `multiprocessing.Semaphore`.
///
/// # Caveats
///
/// Permits taken by a process that is then killed are lost, as in Python: a permit
/// has no owner (any process may release it), so nobody can tell that it will never
/// come back. Unlike a [`Lock`](crate::Lock), whose holder's death is detected and
/// reported to the next acquirer, a semaphore stays one permit lower for each such
/// death. Where that matters, hold permits only in processes that release them in
/// `Drop` on every path you control, or use a lock per resource.
///
/// # Examples
///
/// ```
/// let sem = multiprocess::Semaphore::new(2)?;
/// let a = sem.acquire();
/// let b = sem.acquire();
/// assert_eq!(sem.value(), 0);
/// assert!(sem.try_acquire().is_none());
/// drop((a, b));
/// assert_eq!(sem.value(), 2);
/// # Ok::<(), multiprocess::Error>(())
/// ```
#[derive(Clone)]
pub struct Semaphore {
    seg: Arc<Segment>,
}

/// A semaphore that refuses to be released above its initial value: Python's
/// `multiprocessing.BoundedSemaphore`.
///
/// # Examples
///
/// ```
/// use multiprocess::ErrorKind;
/// let sem = multiprocess::BoundedSemaphore::new(1)?;
/// assert_eq!(sem.release().unwrap_err().kind(), ErrorKind::InvalidState);
/// # Ok::<(), multiprocess::Error>(())
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    sem: Semaphore,
}

/// One permit of a [`Semaphore`]; released on drop.
#[must_use = "the permit is released as soon as the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    sem: &'a Semaphore,
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard").finish_non_exhaustive()
    }
}

impl SemaphoreGuard<'_> {
    /// Keeps the permit taken after the guard is gone (release it later with
    /// [`Semaphore::release`], from any process).
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = multiprocess::Semaphore::new(1)?;
    /// sem.acquire().keep();
    /// assert_eq!(sem.value(), 0);
    /// sem.release()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        let _ = self.sem.release();
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.value())
            .finish()
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("value", &self.value())
            .finish()
    }
}

impl Semaphore {
    /// A semaphore with `value` permits.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiprocess::Semaphore::new(3)?.value(), 3);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn new(value: u32) -> Result<Semaphore> {
        Self::with_max(value, 0)
    }

    fn with_max(value: u32, max: u32) -> Result<Semaphore> {
        let seg = Segment::new("multiprocess-semaphore", 12)?;
        seg.word(COUNT).store(value, Relaxed);
        seg.word(MAX).store(max, Relaxed);
        Ok(Semaphore { seg: Arc::new(seg) })
    }

    fn take(&self, deadline: Option<Instant>) -> bool {
        raw::sem_take(self.seg.word(COUNT), self.seg.word(WAITERS), deadline)
    }

    /// Takes a permit, waiting as long as it takes.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = multiprocess::Semaphore::new(1)?;
    /// let _permit = sem.acquire();
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn acquire(&self) -> SemaphoreGuard<'_> {
        self.take(None);
        SemaphoreGuard { sem: self }
    }

    /// Takes a permit if one is free.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = multiprocess::Semaphore::new(0)?;
    /// assert!(sem.try_acquire().is_none());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
        self.take(Some(Instant::now()))
            .then(|| SemaphoreGuard { sem: self })
    }

    /// Takes a permit, waiting at most `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let sem = multiprocess::Semaphore::new(0)?;
    /// assert!(sem.acquire_timeout(Duration::from_millis(10)).is_none());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard<'_>> {
        self.take(sys::deadline_after(timeout))
            .then(|| SemaphoreGuard { sem: self })
    }

    /// Returns a permit (from any process), waking one waiter.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidState`] for a bounded semaphore already at its initial value.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = multiprocess::Semaphore::new(0)?;
    /// sem.release()?; // allowed above the initial value
    /// assert_eq!(sem.value(), 1);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn release(&self) -> Result<()> {
        let max = self.seg.word(MAX).load(Relaxed);
        raw::sem_release(self.seg.word(COUNT), self.seg.word(WAITERS), max).map_err(|r| match r {
            raw::ReleaseRefused::AtMax => Error::state("semaphore released too many times"),
            raw::ReleaseRefused::Overflow => {
                Error::new(ErrorKind::InvalidState, "semaphore value overflow")
            }
        })
    }

    /// The number of free permits (Python's `get_value()`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiprocess::Semaphore::new(2)?.value(), 2);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    #[doc(alias = "get_value")]
    pub fn value(&self) -> u32 {
        self.seg.word(COUNT).load(Relaxed)
    }

    /// Python's name for [`value`](Semaphore::value); getters here have no `get_`
    /// (see the crate's "Naming" section).
    ///
    /// # Examples
    ///
    /// ```
    /// #[allow(deprecated)]
    /// let v = multiprocess::Semaphore::new(2)?.get_value();
    /// assert_eq!(v, 2);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    #[deprecated(since = "0.1.0", note = "use `value()`: getters have no `get_` prefix")]
    pub fn get_value(&self) -> u32 {
        self.value()
    }
}

impl BoundedSemaphore {
    /// A semaphore with `value` permits that cannot be released above `value`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if shared memory cannot be created; [`ErrorKind::InvalidInput`]
    /// for `value == 0` (it could never be released).
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = multiprocess::BoundedSemaphore::new(2)?;
    /// let p = sem.acquire();
    /// drop(p);
    /// assert_eq!(sem.value(), 2);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn new(value: u32) -> Result<BoundedSemaphore> {
        if value == 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a BoundedSemaphore needs at least one permit",
            ));
        }
        Ok(BoundedSemaphore {
            sem: Semaphore::with_max(value, value)?,
        })
    }

    /// As [`Semaphore::acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = multiprocess::BoundedSemaphore::new(1)?;
    /// let _p = sem.acquire();
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn acquire(&self) -> SemaphoreGuard<'_> {
        self.sem.acquire()
    }

    /// As [`Semaphore::try_acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = multiprocess::BoundedSemaphore::new(1)?;
    /// let _p = sem.try_acquire().unwrap();
    /// assert!(sem.try_acquire().is_none());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
        self.sem.try_acquire()
    }

    /// As [`Semaphore::acquire_timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let sem = multiprocess::BoundedSemaphore::new(1)?;
    /// assert!(sem.acquire_timeout(Duration::from_millis(1)).is_some());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard<'_>> {
        self.sem.acquire_timeout(timeout)
    }

    /// As [`Semaphore::release`], but an error above the initial value.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidState`] when already at the initial value.
    ///
    /// # Examples
    ///
    /// ```
    /// let sem = multiprocess::BoundedSemaphore::new(1)?;
    /// sem.acquire().keep();
    /// sem.release()?;
    /// assert!(sem.release().is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn release(&self) -> Result<()> {
        self.sem.release()
    }

    /// The number of free permits (Python's `get_value()`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiprocess::BoundedSemaphore::new(4)?.value(), 4);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    #[doc(alias = "get_value")]
    pub fn value(&self) -> u32 {
        self.sem.value()
    }

    /// Python's name for [`value`](BoundedSemaphore::value).
    ///
    /// # Examples
    ///
    /// ```
    /// #[allow(deprecated)]
    /// let v = multiprocess::BoundedSemaphore::new(4)?.get_value();
    /// assert_eq!(v, 4);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    #[deprecated(since = "0.1.0", note = "use `value()`: getters have no `get_` prefix")]
    pub fn get_value(&self) -> u32 {
        self.value()
    }
}

/// A flag that processes can wait for: Python's `multiprocessing.Event`.
///
/// # Examples
///
/// In process 1 and process 2:
///
/// ```
/// use std::time::Duration;
/// use multiprocess::{Event, Process};
///
/// fn setter(ev: Event) {
///     std::thread::sleep(Duration::from_millis(20));
///     ev.set();
/// }
///
/// multiprocess::init();
/// let ev = Event::new()?;
/// assert!(!ev.wait_timeout(Duration::ZERO));
/// let mut p = Process::new(setter, ev.clone());
/// p.start()?;
/// assert!(ev.wait_timeout(Duration::from_secs(10)));
/// p.join()?;
/// # Ok::<(), multiprocess::Error>(())
/// ```
#[derive(Clone)]
pub struct Event {
    seg: Arc<Segment>,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}

impl Event {
    /// A new, unset event.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!multiprocess::Event::new()?.is_set());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn new() -> Result<Event> {
        Ok(Event {
            seg: Arc::new(Segment::new("multiprocess-event", 8)?),
        })
    }

    /// Is the flag set?
    ///
    /// # Examples
    ///
    /// ```
    /// let ev = multiprocess::Event::new()?;
    /// ev.set();
    /// assert!(ev.is_set());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn is_set(&self) -> bool {
        self.seg.word(COUNT).load(SeqCst) & EVENT_SET != 0
    }

    /// Sets the flag and wakes every waiter, in every process.
    ///
    /// # Examples
    ///
    /// ```
    /// let ev = multiprocess::Event::new()?;
    /// ev.set();
    /// assert!(ev.wait_timeout(std::time::Duration::ZERO));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn set(&self) {
        let flag = self.seg.word(COUNT);
        // Set, counting the set in the bits above the flag (a waiter that saw the flag
        // clear wakes for this set even if a `clear` follows at once).
        let _ = flag.fetch_update(SeqCst, SeqCst, |w| {
            (w & EVENT_SET == 0).then(|| (w | EVENT_SET).wrapping_add(2))
        });
        if self.seg.word(WAITERS).load(SeqCst) > 0 {
            futex::wake(flag, i32::MAX as u32);
        }
    }

    /// Clears the flag.
    ///
    /// # Examples
    ///
    /// ```
    /// let ev = multiprocess::Event::new()?;
    /// ev.set();
    /// ev.clear();
    /// assert!(!ev.is_set());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn clear(&self) {
        self.seg.word(COUNT).fetch_and(!EVENT_SET, SeqCst);
    }

    /// Waits until the flag is set, or was set since the call began (and perhaps
    /// cleared again), or `deadline`; returns the flag.
    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        let flag = self.seg.word(COUNT);
        let seen = flag.load(SeqCst);
        loop {
            let now = flag.load(SeqCst);
            // Set, or changed since we looked: only a `set` changes a clear word.
            if now & EVENT_SET != 0 || now != seen {
                return now & EVENT_SET != 0;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            raw::sleep_while(flag, self.seg.word(WAITERS), seen, deadline);
        }
    }

    /// Waits until the flag is set. A [`set`](Event::set) while this waits wakes it
    /// even if a [`clear`](Event::clear) follows at once, as in Python.
    ///
    /// # Examples
    ///
    /// ```
    /// let ev = multiprocess::Event::new()?;
    /// ev.set();
    /// ev.wait();
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn wait(&self) {
        self.wait_until(None);
    }

    /// Waits at most `timeout`; returns the flag (`false` on timeout). As in Python, a
    /// [`set`](Event::set) while this waits wakes it even if a [`clear`](Event::clear)
    /// follows at once; it then returns the flag as it finds it (`false` if cleared).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let ev = multiprocess::Event::new()?;
    /// assert!(!ev.wait_timeout(Duration::from_millis(5)));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(sys::deadline_after(timeout))
    }
}

serde_by_segment!(Semaphore);
serde_by_segment!(Event);

impl Serialize for BoundedSemaphore {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.sem.serialize(s)
    }
}

impl<'de> Deserialize<'de> for BoundedSemaphore {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(BoundedSemaphore {
            sem: Semaphore::deserialize(d)?,
        })
    }
}
