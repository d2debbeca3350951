//! A condition variable in a manager: [`ConditionProxy`](crate::ConditionProxy), its operations, and how the
//! server applies them. Its lock is an rlock ([`Owner`]); a wait takes a ticket, and
//! a notify marks tickets, so exactly the number asked wake up.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::manager::handler::{Cell, Cx};
use crate::manager::kinds::lock::{
    Owner, ProxyGuard, acquire_methods, acquire_owner, release_owner,
};
use crate::manager::protocol::{Family, Ops, Reply, Wait};
use crate::manager::proxy::{boolean, number, proxy_type, unit};

proxy_type!(
    /// A condition variable in a manager: Python's `manager.Condition()`, with its own
    /// re-entrant lock.
    ///
    /// # Examples
    ///
    /// In process 1 and process 2:
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocess::{ConditionProxy, ValueProxy};
    ///
    /// fn producer((c, ready): (ConditionProxy, ValueProxy<bool>)) {
    ///     let _g = c.acquire().unwrap();
    ///     ready.set(&true).unwrap();
    ///     c.notify_all().unwrap();
    /// }
    ///
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let (c, ready) = (m.condition()?, m.value(false)?);
    /// let mut g = c.acquire()?;
    /// let mut p = multiprocess::Process::new(producer, (c.clone(), ready.clone()));
    /// p.start()?;
    /// assert!(c.wait_for(&mut g, || ready.get().unwrap(), Some(Duration::from_secs(30)))?);
    /// drop(g);
    /// p.join()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    ConditionProxy[], "Condition"
);
acquire_methods!(ConditionProxy, Op, "condition()");

impl ConditionProxy {
    /// Releases the lock (held through `guard`), waits for a notification, and takes
    /// the lock back.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`](crate::DictProxy::get).
    ///
    /// # Examples
    ///
    /// See [`ConditionProxy`](crate::ConditionProxy).
    pub fn wait(&self, guard: &mut ProxyGuard<'_>) -> Result<()> {
        let _ = guard;
        boolean(self.home.call(&Op::Wait(Wait::Block))?).map(|_| ())
    }

    /// As [`wait`](ConditionProxy::wait), for at most `timeout`; `false` if it timed
    /// out (the lock is held again either way).
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
    /// let c = m.condition()?;
    /// let mut g = c.acquire()?;
    /// assert!(!c.wait_timeout(&mut g, Duration::from_millis(10))?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn wait_timeout(&self, guard: &mut ProxyGuard<'_>, timeout: Duration) -> Result<bool> {
        let _ = guard;
        boolean(self.home.call(&Op::Wait(Wait::timeout(timeout)))?)
    }

    /// Waits until `predicate()` is true (checked with the lock held), for at most
    /// `timeout` if given; returns the predicate's last value.
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`](crate::DictProxy::get).
    ///
    /// # Examples
    ///
    /// See [`ConditionProxy`](crate::ConditionProxy).
    pub fn wait_for(
        &self,
        guard: &mut ProxyGuard<'_>,
        mut predicate: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> Result<bool> {
        // A timeout too long to add to now is no timeout (no panic on `Duration::MAX`).
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            if predicate() {
                return Ok(true);
            }
            match deadline {
                None => self.wait(guard)?,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(false);
                    }
                    self.wait_timeout(guard, left)?;
                }
            }
        }
    }

    /// Wakes one waiter. The lock must be held.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotPermitted`] if this thread does not hold the lock (as
    /// [`Condition`](crate::Condition)).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let c = m.condition()?;
    /// assert!(c.notify().is_err()); // not held
    /// let _g = c.acquire()?;
    /// c.notify()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn notify(&self) -> Result<()> {
        self.notify_n(1).map(|_| ())
    }

    /// Wakes up to `n` waiters; returns how many were woken.
    ///
    /// # Errors
    ///
    /// As [`notify`](ConditionProxy::notify).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let c = m.condition()?;
    /// let _g = c.acquire()?;
    /// assert_eq!(c.notify_n(2)?, 0); // nobody waits
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn notify_n(&self, n: u32) -> Result<u32> {
        Ok(number(self.home.call(&Op::Notify(n))?)? as u32)
    }

    /// Wakes every waiter.
    ///
    /// # Errors
    ///
    /// As [`notify`](ConditionProxy::notify).
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let c = m.condition()?;
    /// let _g = c.acquire()?;
    /// c.notify_all()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn notify_all(&self) -> Result<()> {
        unit(self.home.call(&Op::NotifyAll)?)
    }
}

/// A condition's operations.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    Acquire(Wait),
    Release,
    Wait(Wait),
    Notify(u32),
    NotifyAll,
}

impl Ops for Op {
    const FAMILY: Family = Family::Condition;
}

/// A condition in the server.
#[derive(Default)]
pub(crate) struct State {
    lock: Owner,
    /// Tickets of the waiting calls, oldest first.
    waiters: VecDeque<u64>,
    /// Tickets notified and not yet awake.
    notified: HashSet<u64>,
    next_ticket: u64,
}

impl State {
    pub(crate) fn new() -> State {
        State::default()
    }

    fn forget(&mut self, ticket: u64) {
        self.waiters.retain(|t| *t != ticket);
        self.notified.remove(&ticket);
    }
}

fn lock_of(s: &mut State) -> &mut Owner {
    &mut s.lock
}

fn not_acquired(what: &str) -> Error {
    Error::new(
        ErrorKind::NotPermitted,
        format!("cannot {what} on an un-acquired condition"),
    )
}

/// Applies `op` to the condition.
pub(crate) fn apply(cell: &Cell<State>, op: Op, cx: &mut Cx<'_>) -> Result<Reply> {
    let mut g = cell.lock();
    let me = cx.me;
    Ok(match op {
        Op::Acquire(w) => return acquire_owner(cell, g, cx, w, lock_of),
        Op::Release => return release_owner(cell, g, cx, lock_of, "condition"),
        Op::Wait(w) => {
            if !g.lock.is_owned_by(me) {
                return Err(not_acquired("wait"));
            }
            let depth = g.lock.suspend();
            let ticket = g.next_ticket;
            g.next_ticket += 1;
            g.waiters.push_back(ticket);
            cell.notify_all();
            let (mut g, woken) = match cell.wait_until(g, cx, w, |s| s.notified.contains(&ticket)) {
                Ok(x) => x,
                Err(e) => {
                    cell.lock().forget(ticket);
                    cx.held.remove(&cx.id);
                    return Err(e);
                }
            };
            g.forget(ticket);
            // Take the lock back, however long that takes (as Python does).
            let (mut g, _) = cell.wait_until(g, cx, Wait::Block, |s| s.lock.is_free())?;
            g.lock.resume(me, depth);
            Reply::Bool(woken)
        }
        Op::Notify(n) => {
            if !g.lock.is_owned_by(me) {
                return Err(not_acquired("notify"));
            }
            let s = &mut *g;
            let mut woken = 0u64;
            for t in s.waiters.iter() {
                if woken == u64::from(n) {
                    break;
                }
                if s.notified.insert(*t) {
                    woken += 1;
                }
            }
            cell.notify_all();
            Reply::U64(woken)
        }
        Op::NotifyAll => {
            if !g.lock.is_owned_by(me) {
                return Err(not_acquired("notify"));
            }
            let s = &mut *g;
            s.notified.extend(s.waiters.iter().copied());
            cell.notify_all();
            Reply::Unit
        }
    })
}

/// Frees the lock of a condition owned by `conn`, a connection that ended.
pub(crate) fn abandon(cell: &Cell<State>, conn: u64) {
    let freed = cell.lock().lock.abandon(conn);
    if freed {
        cell.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn run(cell: &Cell<State>, me: u64, op: Op) -> Result<Reply> {
        Cx::run_as(me, cell, op, apply)
    }

    #[test]
    fn notify_needs_the_lock_and_wakes_the_number_asked() {
        let c = Arc::new(Cell::new(State::new()));
        assert!(run(&c, 1, Op::Notify(1)).is_err());
        assert!(run(&c, 1, Op::Wait(Wait::Now)).is_err());
        let waiters: Vec<_> = (10..13)
            .map(|me| {
                let c = c.clone();
                std::thread::spawn(move || {
                    let mut held = HashSet::new();
                    Cx::detached(me, &mut held, |cx| {
                        apply(&c, Op::Acquire(Wait::Block), cx).unwrap();
                        let r = apply(&c, Op::Wait(Wait::Block), cx);
                        apply(&c, Op::Release, cx).unwrap();
                        r
                    })
                })
            })
            .collect();
        while c.lock().waiters.len() < 3 {
            std::thread::yield_now();
        }
        run(&c, 1, Op::Acquire(Wait::Block)).unwrap();
        assert_eq!(run(&c, 1, Op::Notify(2)).unwrap(), Reply::U64(2));
        assert_eq!(run(&c, 1, Op::Notify(5)).unwrap(), Reply::U64(1));
        assert_eq!(run(&c, 1, Op::Notify(5)).unwrap(), Reply::U64(0));
        run(&c, 1, Op::Release).unwrap();
        for w in waiters {
            assert_eq!(w.join().unwrap().unwrap(), Reply::Bool(true));
        }
        assert!(c.lock().lock.is_free());
    }

    #[test]
    fn a_timed_out_wait_holds_the_lock_again() {
        let c = Cell::new(State::new());
        let mut held = HashSet::new();
        Cx::detached(1, &mut held, |cx| {
            apply(&c, Op::Acquire(Wait::Now), cx).unwrap();
            apply(&c, Op::Acquire(Wait::Now), cx).unwrap();
            let r = apply(&c, Op::Wait(Wait::timeout(Duration::from_millis(2))), cx);
            assert_eq!(r.unwrap(), Reply::Bool(false));
            assert!(c.lock().lock.is_owned_by(1));
            assert!(c.lock().waiters.is_empty());
            apply(&c, Op::Release, cx).unwrap();
            apply(&c, Op::Release, cx).unwrap(); // the depth came back too
            assert!(apply(&c, Op::Release, cx).is_err());
        });
        abandon(&c, 1);
    }
}
