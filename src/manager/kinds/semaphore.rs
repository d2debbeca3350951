//! Semaphores in a manager: [`SemaphoreProxy`](crate::SemaphoreProxy) and [`BoundedSemaphoreProxy`](crate::BoundedSemaphoreProxy), their
//! operations, and how the server applies them.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::manager::handler::{Cell, Cx};
use crate::manager::kinds::lock::acquire_methods;
use crate::manager::protocol::{Family, Kind, Ops, Reply, Wait};
use crate::manager::proxy::{number, proxy_type};

proxy_type!(
    /// A semaphore in a manager: Python's `manager.Semaphore(n)`.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let s = m.semaphore(2)?;
    /// let (_a, _b) = (s.acquire()?, s.acquire()?);
    /// assert!(s.try_acquire()?.is_none());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    SemaphoreProxy[], "Semaphore"
);
acquire_methods!(SemaphoreProxy, Op, "semaphore(1)");

proxy_type!(
    /// A bounded semaphore in a manager: Python's `manager.BoundedSemaphore(n)`;
    /// releasing above the initial value is an error.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let s = m.bounded_semaphore(1)?;
    /// assert!(s.release().is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    BoundedSemaphoreProxy[], "BoundedSemaphore"
);
acquire_methods!(BoundedSemaphoreProxy, Op, "bounded_semaphore(1)");

macro_rules! get_value {
    ($name:ident, $ctor:literal) => {
        impl $name {
            /// The current value.
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
            #[doc = concat!("let s = m.", $ctor, "?;")]
            /// assert_eq!(s.get_value()?, 3);
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn get_value(&self) -> Result<u32> {
                Ok(number(self.home.call(&Op::GetValue)?)? as u32)
            }
        }
    };
}
get_value!(SemaphoreProxy, "semaphore(3)");
get_value!(BoundedSemaphoreProxy, "bounded_semaphore(3)");

/// A semaphore's operations.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    Acquire(Wait),
    Release,
    GetValue,
}

impl Ops for Op {
    const FAMILY: Family = Family::Semaphore;
}

/// A semaphore in the server.
pub(crate) struct State {
    value: u64,
    /// The initial value, for a bounded semaphore.
    bound: Option<u64>,
}

impl State {
    pub(crate) fn new(value: u64, bounded: bool) -> State {
        State {
            value,
            bound: bounded.then_some(value),
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        if self.bound.is_some() {
            Kind::BoundedSemaphore
        } else {
            Kind::Semaphore
        }
    }
}

/// Applies `op` to the semaphore.
pub(crate) fn apply(cell: &Cell<State>, op: Op, cx: &mut Cx<'_>) -> Result<Reply> {
    let mut g = cell.lock();
    Ok(match op {
        Op::Acquire(w) => {
            let (mut g, ok) = cell.wait_until(g, cx, w, |s| s.value > 0)?;
            if ok {
                g.value -= 1;
            }
            Reply::Bool(ok)
        }
        Op::Release => {
            if g.bound.is_some_and(|b| g.value >= b) {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "bounded semaphore released too many times",
                ));
            }
            g.value += 1;
            cell.notify_all();
            Reply::Unit
        }
        Op::GetValue => Reply::U64(g.value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cell: &Cell<State>, op: Op) -> Result<Reply> {
        Cx::run_as(1, cell, op, apply)
    }

    #[test]
    fn counts_permits() {
        let s = Cell::new(State::new(2, false));
        assert_eq!(s.lock().kind(), Kind::Semaphore);
        assert_eq!(run(&s, Op::Acquire(Wait::Now)).unwrap(), Reply::Bool(true));
        assert_eq!(run(&s, Op::Acquire(Wait::Now)).unwrap(), Reply::Bool(true));
        assert_eq!(run(&s, Op::Acquire(Wait::Now)).unwrap(), Reply::Bool(false));
        assert_eq!(run(&s, Op::GetValue).unwrap(), Reply::U64(0));
        for _ in 0..3 {
            run(&s, Op::Release).unwrap(); // unbounded: above the start is fine
        }
        assert_eq!(run(&s, Op::GetValue).unwrap(), Reply::U64(3));
    }

    #[test]
    fn a_bounded_one_refuses_extra_releases() {
        let s = Cell::new(State::new(1, true));
        assert_eq!(s.lock().kind(), Kind::BoundedSemaphore);
        let e = run(&s, Op::Release).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidState);
        run(&s, Op::Acquire(Wait::Block)).unwrap();
        run(&s, Op::Release).unwrap();
        assert_eq!(run(&s, Op::GetValue).unwrap(), Reply::U64(1));
    }
}
