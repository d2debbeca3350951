//! An event in a manager: [`EventProxy`](crate::EventProxy), its operations, and how the server applies
//! them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::manager::handler::{Cell, Cx};
use crate::manager::protocol::{Family, Ops, Reply, Wait};
use crate::manager::proxy::{boolean, proxy_type, unit};

proxy_type!(
    /// An event in a manager: Python's `manager.Event()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let e = m.event()?;
    /// assert!(!e.wait_timeout(Duration::ZERO)?);
    /// e.set()?;
    /// assert!(e.is_set()?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    EventProxy[], "Event"
);

impl EventProxy {
    /// Sets the flag and wakes every waiter.
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
    /// let e = m.event()?;
    /// e.set()?;
    /// e.wait()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn set(&self) -> Result<()> {
        unit(self.home.call(&Op::Set)?)
    }

    /// Clears the flag.
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
    /// let e = m.event()?;
    /// e.set()?;
    /// e.clear()?;
    /// assert!(!e.is_set()?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn clear(&self) -> Result<()> {
        unit(self.home.call(&Op::Clear)?)
    }

    /// Is the flag set?
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
    /// assert!(!m.event()?.is_set()?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn is_set(&self) -> Result<bool> {
        boolean(self.home.call(&Op::IsSet)?)
    }

    /// Waits until the flag is set. A waiter woken by a `set` returns even if the
    /// flag was cleared again before it ran (as Python's `Event.wait`).
    ///
    /// # Errors
    ///
    /// As [`DictProxy::get`](crate::DictProxy::get).
    ///
    /// # Examples
    ///
    /// See [`set`](EventProxy::set).
    pub fn wait(&self) -> Result<()> {
        boolean(self.home.call(&Op::Wait(Wait::Block))?).map(|_| ())
    }

    /// Waits at most `timeout`; `true` if the flag is set, or was set while this
    /// waited (then cleared before this ran again: Python's `Event.wait`).
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
    /// assert!(!m.event()?.wait_timeout(Duration::from_millis(5))?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        boolean(self.home.call(&Op::Wait(Wait::timeout(timeout)))?)
    }
}

/// An event's operations.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    Set,
    Clear,
    IsSet,
    Wait(Wait),
}

impl Ops for Op {
    const FAMILY: Family = Family::Event;
}

/// An event in the server: its flag, and how many times it was set.
#[derive(Debug, Default)]
pub(crate) struct State {
    flag: bool,
    /// Counts the `set`s: a waiter woken by one returns `true` even if a `clear`
    /// came before it ran again (Python's `Event.wait` after `set(); clear()`).
    sets: u64,
}

/// Applies `op` to the event.
pub(crate) fn apply(cell: &Cell<State>, op: Op, cx: &mut Cx<'_>) -> Result<Reply> {
    let mut g = cell.lock();
    Ok(match op {
        Op::Set => {
            g.flag = true;
            g.sets = g.sets.wrapping_add(1);
            cell.notify_all();
            Reply::Unit
        }
        Op::Clear => {
            g.flag = false;
            Reply::Unit
        }
        Op::IsSet => Reply::Bool(g.flag),
        Op::Wait(w) => {
            let seen = g.sets;
            Reply::Bool(cell.wait_until(g, cx, w, |s| s.flag || s.sets != seen)?.1)
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_set_wakes_a_waiter() {
        let e = Arc::new(Cell::new(State::default()));
        let e2 = e.clone();
        let waiter = std::thread::spawn(move || {
            let mut held = HashSet::new();
            Cx::detached(2, &mut held, |cx| apply(&e2, Op::Wait(Wait::Block), cx))
        });
        let mut held = HashSet::new();
        Cx::detached(1, &mut held, |cx| {
            assert_eq!(
                apply(&e, Op::Wait(Wait::Now), cx).unwrap(),
                Reply::Bool(false)
            );
            apply(&e, Op::Set, cx).unwrap();
            assert_eq!(apply(&e, Op::IsSet, cx).unwrap(), Reply::Bool(true));
        });
        assert_eq!(waiter.join().unwrap().unwrap(), Reply::Bool(true));
        let mut held = HashSet::new();
        Cx::detached(1, &mut held, |cx| {
            apply(&e, Op::Clear, cx).unwrap();
            assert_eq!(apply(&e, Op::IsSet, cx).unwrap(), Reply::Bool(false));
        });
    }
}
