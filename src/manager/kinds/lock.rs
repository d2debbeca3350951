//! Locks in a manager: [`LockProxy`](crate::LockProxy) and [`RLockProxy`](crate::RLockProxy), their operations and how the
//! server applies them; and what every kind that can be acquired shares:
//! [`ProxyGuard`](crate::ProxyGuard), the `acquire_methods!` of the proxies, and [`Owner`], the
//! re-entrant ownership of an `RLock` (also a condition's lock).

use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::manager::handler::{Cell, Cx, not_owner, not_the_owner};
use crate::manager::home::Home;
use crate::manager::protocol::{Family, Ops, Reply, Wait};
use crate::manager::proxy::proxy_type;

/// A held lock, semaphore permit or condition of a manager; released on drop.
///
/// # Examples
///
/// ```
/// # multiprocess::init();
/// let m = multiprocess::Manager::start()?;
/// let lock = m.lock()?;
/// {
///     let _g = lock.acquire()?;
///     assert!(lock.try_acquire()?.is_none());
/// } // released here
/// assert!(lock.try_acquire()?.is_some());
/// # Ok::<(), multiprocess::Error>(())
/// ```
///
/// A guard stays on its thread (the thread's connection is the owner):
///
/// ```compile_fail
/// fn is_send<T: Send>() {}
/// is_send::<multiprocess::ProxyGuard<'static>>();
/// ```
#[must_use = "the lock is released when the guard drops"]
pub struct ProxyGuard<'a> {
    home: &'a Home,
    /// How this kind releases (each kind has its own op enum).
    release: fn(&Home) -> Result<()>,
    held: bool,
    /// Not `Send`: it releases through this thread's connection, which owns an
    /// `RLock` or a condition (as `std::sync::MutexGuard`).
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for ProxyGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyGuard({:?})", self.home)
    }
}

impl ProxyGuard<'_> {
    /// Releases now, reporting an error (dropping the guard ignores it).
    ///
    /// # Errors
    ///
    /// As [`LockProxy::release`](crate::LockProxy::release).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let lock = m.lock()?;
    /// lock.acquire()?.release()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn release(mut self) -> Result<()> {
        self.held = false;
        (self.release)(self.home)
    }

    /// Keeps it held after the guard is gone (to be released later with the proxy's
    /// `release`, maybe by another process).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let lock = m.lock()?;
    /// lock.acquire()?.keep();
    /// lock.release()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn keep(mut self) {
        self.held = false;
    }
}

impl Drop for ProxyGuard<'_> {
    fn drop(&mut self) {
        if self.held {
            let _ = (self.release)(self.home);
        }
    }
}

/// The guard of a successful acquire (`ok`), releasing with `release`.
pub(crate) fn acquired(
    home: &Home,
    release: fn(&Home) -> Result<()>,
    ok: bool,
) -> Option<ProxyGuard<'_>> {
    // Lazily: a guard built and dropped here would release what we never held.
    ok.then(|| ProxyGuard {
        home,
        release,
        held: true,
        _not_send: PhantomData,
    })
}

/// The acquire/release methods of a proxy whose op enum (`$op`) has `Acquire(Wait)`
/// and `Release`.
macro_rules! acquire_methods {
    ($name:ident, $op:ident, $ctor:literal) => {
        impl $name {
            fn release_op(home: &$crate::manager::home::Home) -> $crate::Result<()> {
                $crate::manager::proxy::unit(home.call(&$op::Release)?)
            }

            /// Acquires, waiting as long as it takes; the guard releases on drop.
            ///
            /// # Errors
            ///
            /// As [`DictProxy::get`](crate::DictProxy::get).
            ///
            /// # Examples
            ///
            /// ```
            /// # multiprocess::init();
            /// let m = multiprocess::Manager::start()?;
            #[doc = concat!("let x = m.", $ctor, "?;")]
            /// let g = x.acquire()?;
            /// drop(g);
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn acquire(&self) -> $crate::Result<$crate::manager::ProxyGuard<'_>> {
                let ok = $crate::manager::proxy::boolean(
                    self.home
                        .call(&$op::Acquire($crate::manager::protocol::Wait::Block))?,
                )?;
                Ok(
                    $crate::manager::kinds::lock::acquired(&self.home, Self::release_op, ok)
                        .expect("a blocking acquire succeeds"),
                )
            }

            /// Acquires if that is possible now; `None` otherwise.
            ///
            /// # Errors
            ///
            /// As [`DictProxy::get`](crate::DictProxy::get).
            ///
            /// # Examples
            ///
            /// ```
            /// # multiprocess::init();
            /// let m = multiprocess::Manager::start()?;
            #[doc = concat!("let x = m.", $ctor, "?;")]
            /// assert!(x.try_acquire()?.is_some());
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn try_acquire(&self) -> $crate::Result<Option<$crate::manager::ProxyGuard<'_>>> {
                let ok = $crate::manager::proxy::boolean(
                    self.home
                        .call(&$op::Acquire($crate::manager::protocol::Wait::Now))?,
                )?;
                Ok($crate::manager::kinds::lock::acquired(
                    &self.home,
                    Self::release_op,
                    ok,
                ))
            }

            /// Acquires, waiting at most `timeout`; `None` if that was not enough.
            ///
            /// # Errors
            ///
            /// As [`DictProxy::get`](crate::DictProxy::get).
            ///
            /// # Examples
            ///
            /// ```
            /// # use std::time::Duration;
            /// # multiprocess::init();
            /// let m = multiprocess::Manager::start()?;
            #[doc = concat!("let x = m.", $ctor, "?;")]
            /// assert!(x.acquire_timeout(Duration::from_millis(10))?.is_some());
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn acquire_timeout(
                &self,
                timeout: ::std::time::Duration,
            ) -> $crate::Result<Option<$crate::manager::ProxyGuard<'_>>> {
                let ok = $crate::manager::proxy::boolean(self.home.call(&$op::Acquire(
                    $crate::manager::protocol::Wait::timeout(timeout),
                ))?)?;
                Ok($crate::manager::kinds::lock::acquired(
                    &self.home,
                    Self::release_op,
                    ok,
                ))
            }

            /// Releases explicitly (after [`ProxyGuard::keep`](crate::ProxyGuard::keep), or from another process
            /// where Python allows it).
            ///
            /// # Errors
            ///
            /// [`ErrorKind::InvalidState`](crate::ErrorKind::InvalidState) when there
            /// is nothing to release (an unlocked lock, a bounded semaphore at its
            /// initial value);
            /// [`ErrorKind::NotPermitted`](crate::ErrorKind::NotPermitted) for an
            /// `RLock` or condition this thread does not own (as
            /// [`RLock`](crate::RLock)).
            ///
            /// # Examples
            ///
            /// ```
            /// # multiprocess::init();
            /// let m = multiprocess::Manager::start()?;
            #[doc = concat!("let x = m.", $ctor, "?;")]
            /// x.acquire()?.keep();
            /// x.release()?;
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn release(&self) -> $crate::Result<()> {
                Self::release_op(&self.home)
            }
        }
    };
}
pub(crate) use acquire_methods;

proxy_type!(
    /// A lock in a manager: Python's `manager.Lock()`. Any process may release it;
    /// releasing it unlocked is an error. If the process holding it dies (its
    /// connection closes), the server releases it. Each thread has a connection of its
    /// own, so a thread that ends while holding the lock releases it too (Python would
    /// let another thread release it later).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiprocess::ErrorKind;
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let lock = m.lock()?;
    /// lock.acquire()?.release()?;
    /// assert_eq!(lock.release().unwrap_err().kind(), ErrorKind::InvalidState);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    LockProxy[], "Lock"
);
acquire_methods!(LockProxy, Op, "lock()");

/// What a lock of a Redis manager tells its holder (feature `redis`); see the design
/// notes of `manager/redis/sync.rs` for the lease, fencing and owner-died semantics.
macro_rules! lease_methods {
    ($name:ident, $ctor:literal, $who:literal) => {
        #[cfg(feature = "redis")]
        impl $name {
            #[doc = concat!("The fencing token of ", $who, "'s current hold of this lock,")]
            /// `None` when it holds none (or the lock is a server manager's, which
            /// has no leases).
            ///
            /// Every acquire of a Redis lock takes a token strictly larger than every
            /// earlier one (`INCR`). A holder stopped past its lease (`SIGSTOP`, a
            /// pause, a partition) may wake up believing it still holds the lock while
            /// another process holds it too; so pass the token with every write to the
            /// resource the lock guards, and let the resource refuse a token smaller
            /// than the largest it has seen:
            ///
            /// ```
            /// use multiprocess::{broker::RedisServer, Manager};
            /// let redis = RedisServer::start()?;
            /// let m = Manager::redis(redis.url(), b"key")?;
            #[doc = concat!("let lock = m.", $ctor, "?;")]
            /// let storage = m.dict::<String, u64>()?; // the guarded resource
            /// let guard = lock.acquire()?;
            /// let token = lock.fencing_token().expect("held");
            /// // The resource keeps the largest token seen and refuses older ones
            /// // (a script or a transaction in a real store):
            /// let seen = storage.get(&"token".into())?.unwrap_or(0);
            /// assert!(token > seen);
            /// storage.insert("token".into(), token)?;
            /// storage.insert("data".into(), 42)?;
            /// drop(guard);
            /// assert_eq!(lock.fencing_token(), None);
            /// let again = lock.acquire()?;
            /// assert!(lock.fencing_token().unwrap() > token);
            /// # drop(again);
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn fencing_token(&self) -> Option<u64> {
                self.home.lock_info().0
            }

            #[doc = concat!("Whether ", $who, "'s last acquire found that the previous")]
            /// holder's lease had run out without a release (it died, or was stopped
            /// past its lease): what it guarded may be half-done. `false` for a server
            /// manager's lock (a dead holder's connection frees it there).
            ///
            /// ```
            /// use multiprocess::{broker::RedisServer, Manager};
            /// let redis = RedisServer::start()?;
            /// let m = Manager::redis(redis.url(), b"key")?;
            #[doc = concat!("let lock = m.", $ctor, "?;")]
            /// lock.acquire()?.release()?;
            /// assert!(!lock.owner_died()); // released, not abandoned
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn owner_died(&self) -> bool {
                self.home.lock_info().1
            }
        }
    };
}
lease_methods!(LockProxy, "lock()", "this process");

proxy_type!(
    /// A re-entrant lock in a manager: Python's `manager.RLock()`. The owner is the
    /// acquiring thread of the acquiring process; only it may release.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let r = m.rlock()?;
    /// let a = r.acquire()?;
    /// let b = r.acquire()?; // again, same thread
    /// drop((b, a));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    RLockProxy[], "RLock"
);
acquire_methods!(RLockProxy, Op, "rlock()");
lease_methods!(RLockProxy, "rlock()", "this thread");

/// The operations of a lock and of an rlock.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    Acquire(Wait),
    Release,
}

impl Ops for Op {
    const FAMILY: Family = Family::Lock;
}

/// A lock in the server: the connection that acquired it, if any (any connection
/// may release it, as Python's `Lock`).
pub(crate) type State = Option<u64>;

/// Applies `op` to a lock.
pub(crate) fn apply(cell: &Cell<State>, op: Op, cx: &mut Cx<'_>) -> Result<Reply> {
    let mut g = cell.lock();
    Ok(match op {
        Op::Acquire(w) => {
            let (mut g, ok) = cell.wait_until(g, cx, w, |h| h.is_none())?;
            if ok {
                *g = Some(cx.me);
                cx.held.insert(cx.id);
            }
            Reply::Bool(ok)
        }
        Op::Release => {
            if g.is_none() {
                return Err(not_owner("lock"));
            }
            *g = None;
            cx.held.remove(&cx.id);
            cell.notify_all();
            Reply::Unit
        }
    })
}

/// Frees a lock held by `conn`, a connection that ended.
pub(crate) fn abandon(cell: &Cell<State>, conn: u64) {
    let mut g = cell.lock();
    if *g == Some(conn) {
        *g = None;
        drop(g);
        cell.notify_all();
    }
}

/// Who owns a re-entrant lock, and how many times.
#[derive(Debug, Default)]
pub(crate) struct Owner {
    owner: Option<u64>,
    count: u64,
}

impl Owner {
    /// May `me` acquire it now?
    pub(crate) fn free_for(&self, me: u64) -> bool {
        self.owner.is_none_or(|o| o == me)
    }

    pub(crate) fn is_free(&self) -> bool {
        self.owner.is_none()
    }

    pub(crate) fn is_owned_by(&self, me: u64) -> bool {
        self.owner == Some(me)
    }

    /// `me` acquires once more (after [`free_for`](Owner::free_for)).
    pub(crate) fn enter(&mut self, me: u64) {
        self.owner = Some(me);
        self.count += 1;
    }

    /// `me` releases once; `Ok(true)` when that freed it.
    pub(crate) fn leave(&mut self, me: u64, what: &str) -> Result<bool> {
        if self.owner != Some(me) {
            return Err(not_the_owner(what));
        }
        self.count -= 1;
        if self.count == 0 {
            self.owner = None;
            return Ok(true);
        }
        Ok(false)
    }

    /// Gives it up entirely, returning the depth to restore later (a condition's wait).
    pub(crate) fn suspend(&mut self) -> u64 {
        self.owner = None;
        std::mem::take(&mut self.count)
    }

    /// Takes it back at `depth` (after [`suspend`](Owner::suspend)).
    pub(crate) fn resume(&mut self, me: u64, depth: u64) {
        self.owner = Some(me);
        self.count = depth;
    }

    /// Frees it if `conn`, a connection that ended, owns it; `true` if it did.
    pub(crate) fn abandon(&mut self, conn: u64) -> bool {
        if self.owner == Some(conn) {
            self.owner = None;
            self.count = 0;
            return true;
        }
        false
    }
}

/// Acquires the [`Owner`] inside `S` (`part` finds it) for the caller.
pub(crate) fn acquire_owner<S>(
    cell: &Cell<S>,
    g: std::sync::MutexGuard<'_, S>,
    cx: &mut Cx<'_>,
    w: Wait,
    part: fn(&mut S) -> &mut Owner,
) -> Result<Reply> {
    let me = cx.me;
    let (mut g, ok) = cell.wait_until(g, cx, w, |s| part(s).free_for(me))?;
    if ok {
        part(&mut g).enter(me);
        cx.held.insert(cx.id);
    }
    Ok(Reply::Bool(ok))
}

/// Releases the [`Owner`] inside `S` once, for the caller.
pub(crate) fn release_owner<S>(
    cell: &Cell<S>,
    mut g: std::sync::MutexGuard<'_, S>,
    cx: &mut Cx<'_>,
    part: fn(&mut S) -> &mut Owner,
    what: &str,
) -> Result<Reply> {
    if part(&mut g).leave(cx.me, what)? {
        cx.held.remove(&cx.id);
        drop(g);
        cell.notify_all();
    }
    Ok(Reply::Unit)
}

/// Applies `op` to an rlock.
pub(crate) fn apply_rlock(cell: &Cell<Owner>, op: Op, cx: &mut Cx<'_>) -> Result<Reply> {
    let g = cell.lock();
    match op {
        Op::Acquire(w) => acquire_owner(cell, g, cx, w, |o| o),
        Op::Release => release_owner(
            cell,
            g,
            cx,
            |o| o,
            "rlock (or one owned by another thread or process)",
        ),
    }
}

/// Frees an rlock owned by `conn`, a connection that ended.
pub(crate) fn abandon_rlock(cell: &Cell<Owner>, conn: u64) {
    let freed = cell.lock().abandon(conn);
    if freed {
        cell.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn a_lock_is_held_once_and_released_by_anyone() {
        let l = Cell::new(None);
        let mut held = HashSet::new();
        Cx::detached(1, &mut held, |cx| {
            assert_eq!(
                apply(&l, Op::Acquire(Wait::Now), cx).unwrap(),
                Reply::Bool(true)
            );
            assert_eq!(
                apply(&l, Op::Acquire(Wait::Now), cx).unwrap(),
                Reply::Bool(false)
            );
        });
        assert!(held.contains(&1));
        let mut other = HashSet::new();
        Cx::detached(2, &mut other, |cx| {
            apply(&l, Op::Release, cx).unwrap();
            let e = apply(&l, Op::Release, cx).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidState);
        });
        // A connection that ends frees only what it holds.
        *l.lock() = Some(3);
        abandon(&l, 4);
        assert_eq!(*l.lock(), Some(3));
        abandon(&l, 3);
        assert_eq!(*l.lock(), None);
    }

    #[test]
    fn an_rlock_counts_its_owners_depth() {
        let r = Cell::new(Owner::default());
        let mut held = HashSet::new();
        Cx::detached(1, &mut held, |cx| {
            for _ in 0..2 {
                assert_eq!(
                    apply_rlock(&r, Op::Acquire(Wait::Now), cx).unwrap(),
                    Reply::Bool(true)
                );
            }
        });
        let mut other = HashSet::new();
        Cx::detached(2, &mut other, |cx| {
            let ok = apply_rlock(&r, Op::Acquire(Wait::Now), cx).unwrap();
            assert_eq!(ok, Reply::Bool(false));
            let e = apply_rlock(&r, Op::Release, cx).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotPermitted);
        });
        Cx::detached(1, &mut held, |cx| {
            apply_rlock(&r, Op::Release, cx).unwrap();
            assert!(cx.held.contains(&1), "still held once");
            apply_rlock(&r, Op::Release, cx).unwrap();
            assert!(cx.held.is_empty());
        });
        assert!(r.lock().is_free());
    }
}
