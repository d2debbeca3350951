//! A barrier in a manager: [`BarrierProxy`](crate::BarrierProxy), its operations, and how the server
//! applies them.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::manager::handler::{Cell, Cx};
use crate::manager::protocol::{Family, Ops, Reply, Wait};
use crate::manager::proxy::{boolean, number, proxy_type, unit};

proxy_type!(
    /// A barrier in a manager: Python's `manager.Barrier(parties)`.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let b = m.barrier(1)?;
    /// assert_eq!(b.wait()?, 0);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    BarrierProxy[], "Barrier"
);

impl BarrierProxy {
    /// Waits until `parties` callers wait; returns this caller's arrival index
    /// (`0..parties`, exactly one caller gets each).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BrokenBarrier`](crate::ErrorKind::BrokenBarrier) if the barrier is or becomes broken.
    ///
    /// # Examples
    ///
    /// See [`BarrierProxy`](crate::BarrierProxy).
    pub fn wait(&self) -> Result<u32> {
        Ok(number(self.home.call(&Op::Wait(Wait::Block))?)? as u32)
    }

    /// As [`wait`](BarrierProxy::wait); running out of time breaks the barrier.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BrokenBarrier`](crate::ErrorKind::BrokenBarrier), also on timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let b = m.barrier(2)?;
    /// assert!(b.wait_timeout(Duration::from_millis(10)).is_err());
    /// assert!(b.is_broken()?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32> {
        Ok(number(self.home.call(&Op::Wait(Wait::timeout(timeout)))?)? as u32)
    }

    /// Breaks the barrier: current and future waiters fail until
    /// [`reset`](BarrierProxy::reset).
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
    /// let b = m.barrier(2)?;
    /// b.abort()?;
    /// assert!(b.wait().is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn abort(&self) -> Result<()> {
        unit(self.home.call(&Op::Abort)?)
    }

    /// Returns the barrier to its initial state; current waiters fail.
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
    /// let b = m.barrier(1)?;
    /// b.abort()?;
    /// b.reset()?;
    /// assert_eq!(b.wait()?, 0);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn reset(&self) -> Result<()> {
        unit(self.home.call(&Op::Reset)?)
    }

    /// Is it broken?
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
    /// assert!(!m.barrier(2)?.is_broken()?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn is_broken(&self) -> Result<bool> {
        boolean(self.home.call(&Op::IsBroken)?)
    }

    /// How many callers wait now.
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
    /// assert_eq!(m.barrier(2)?.n_waiting()?, 0);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn n_waiting(&self) -> Result<u32> {
        Ok(number(self.home.call(&Op::Waiting)?)? as u32)
    }

    /// The number of parties.
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
    /// assert_eq!(m.barrier(5)?.parties()?, 5);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn parties(&self) -> Result<u32> {
        Ok(number(self.home.call(&Op::Parties)?)? as u32)
    }
}

/// A barrier's operations.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    Wait(Wait),
    Abort,
    Reset,
    IsBroken,
    Waiting,
    Parties,
}

impl Ops for Op {
    const FAMILY: Family = Family::Barrier;
}

/// A barrier in the server.
pub(crate) struct State {
    parties: u32,
    /// Callers waiting in this generation.
    count: u32,
    /// Passes so far (and resets): a waiter is through when it changes.
    generation: u64,
    broken: bool,
    /// Generations broken (by `abort`, a timeout) or ended by a reset: their waiters
    /// fail instead of passing, even if a reset moved the generation on before they
    /// ran again (Python's waiters of an aborted barrier all fail).
    failed_generations: HashSet<u64>,
}

impl State {
    pub(crate) fn new(parties: u32) -> State {
        State {
            parties,
            count: 0,
            generation: 0,
            broken: false,
            failed_generations: HashSet::new(),
        }
    }
}

fn broken_barrier() -> Error {
    Error::new(ErrorKind::BrokenBarrier, "the barrier is broken")
}

/// Applies `op` to the barrier.
pub(crate) fn apply(cell: &Cell<State>, op: Op, cx: &mut Cx<'_>) -> Result<Reply> {
    let mut g = cell.lock();
    let b = &mut *g;
    Ok(match op {
        Op::Wait(w) => {
            if b.broken {
                return Err(broken_barrier());
            }
            let index = b.count;
            b.count += 1;
            if b.count == b.parties {
                b.count = 0;
                b.generation += 1;
                drop(g);
                cell.notify_all();
                return Ok(Reply::U64(u64::from(index)));
            }
            let gen_ = b.generation;
            let (mut g, ok) = cell.wait_until(g, cx, w, |b| b.broken || b.generation != gen_)?;
            let b = &mut *g;
            if !ok {
                // A party that times out breaks the barrier for everyone.
                b.broken = true;
                b.failed_generations.insert(gen_);
                b.count = 0;
                drop(g);
                cell.notify_all();
                return Err(broken_barrier());
            }
            if b.generation != gen_ && !b.failed_generations.contains(&gen_) {
                return Ok(Reply::U64(u64::from(index)));
            }
            return Err(broken_barrier());
        }
        Op::Abort => {
            b.broken = true;
            if b.count > 0 {
                // Its waiters fail, even if a reset comes before they run again.
                b.failed_generations.insert(b.generation);
            }
            b.count = 0;
            cell.notify_all();
            Reply::Unit
        }
        Op::Reset => {
            if b.count > 0 {
                b.failed_generations.insert(b.generation);
            }
            b.generation += 1;
            b.count = 0;
            b.broken = false;
            cell.notify_all();
            Reply::Unit
        }
        Op::IsBroken => Reply::Bool(b.broken),
        Op::Waiting => Reply::U64(u64::from(b.count)),
        Op::Parties => Reply::U64(u64::from(b.parties)),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn run(cell: &Cell<State>, op: Op) -> Result<Reply> {
        Cx::run_as(1, cell, op, apply)
    }

    #[test]
    fn every_party_passes_with_its_own_index_twice() {
        let b = Arc::new(Cell::new(State::new(3)));
        for _round in 0..2 {
            let threads: Vec<_> = (0..3)
                .map(|_| {
                    let b = b.clone();
                    std::thread::spawn(move || run(&b, Op::Wait(Wait::Block)))
                })
                .collect();
            let mut got: Vec<u64> = threads
                .into_iter()
                .map(|t| match t.join().unwrap().unwrap() {
                    Reply::U64(i) => i,
                    r => panic!("{r:?}"),
                })
                .collect();
            got.sort_unstable();
            assert_eq!(got, vec![0, 1, 2]);
            assert_eq!(run(&b, Op::Waiting).unwrap(), Reply::U64(0));
        }
        assert_eq!(run(&b, Op::Parties).unwrap(), Reply::U64(3));
    }

    #[test]
    fn a_timeout_breaks_it_until_reset() {
        let b = Cell::new(State::new(2));
        let e = run(&b, Op::Wait(Wait::Now)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenBarrier);
        assert_eq!(run(&b, Op::IsBroken).unwrap(), Reply::Bool(true));
        let e = run(&b, Op::Wait(Wait::Block)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenBarrier);
        run(&b, Op::Reset).unwrap();
        assert_eq!(run(&b, Op::IsBroken).unwrap(), Reply::Bool(false));
        let one = Cell::new(State::new(1));
        assert_eq!(run(&one, Op::Wait(Wait::Now)).unwrap(), Reply::U64(0));
        run(&one, Op::Abort).unwrap();
        assert!(run(&one, Op::Wait(Wait::Now)).is_err());
    }

    #[test]
    fn a_reset_fails_the_waiters_of_its_generation() {
        let b = Arc::new(Cell::new(State::new(2)));
        let b2 = b.clone();
        let waiter = std::thread::spawn(move || run(&b2, Op::Wait(Wait::Block)));
        while run(&b, Op::Waiting).unwrap() != Reply::U64(1) {
            std::thread::yield_now();
        }
        run(&b, Op::Reset).unwrap();
        let e = waiter.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenBarrier);
        assert_eq!(run(&b, Op::IsBroken).unwrap(), Reply::Bool(false));
    }
}
