//! Queues in a manager: [`QueueProxy`](crate::QueueProxy) and [`JoinableQueueProxy`](crate::JoinableQueueProxy), their operations,
//! and how the server applies them. Both kinds share one state and one op enum; the
//! joinable one also counts unfinished tasks for `task_done` and `join`.

use std::collections::VecDeque;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::manager::handler::{Cell, Cx, no_such_op};
use crate::manager::protocol::{Family, Item, Kind, Ops, Reply, Wait};
use crate::manager::proxy::{boolean, number, proxy_type, unit, value};
use crate::queue::PutError;

proxy_type!(
    /// A queue in a manager: Python's `manager.Queue(maxsize)`. Blocking calls wait in
    /// the server; a process that dies while it waits takes nothing out of the queue.
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let q = m.bounded_queue::<String>(2)?;
    /// q.put("a".into())?;
    /// q.put("b".into())?;
    /// assert!(q.is_full()?);
    /// assert_eq!(q.get()?, "a");
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    QueueProxy[T], "Queue"
);

proxy_type!(
    /// A joinable queue in a manager: Python's `manager.JoinableQueue()`, a
    /// [`QueueProxy`](crate::QueueProxy) with [`task_done`](JoinableQueueProxy::task_done) and
    /// [`join`](JoinableQueueProxy::join).
    ///
    /// # Examples
    ///
    /// ```
    /// multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let q = m.joinable_queue::<u32>()?;
    /// q.put(1)?;
    /// assert_eq!(q.get()?, 1);
    /// q.task_done()?;
    /// q.join()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    JoinableQueueProxy[T], "JoinableQueue"
);

fn put_result<T>(item: T, r: Result<Reply>) -> std::result::Result<(), PutError<T>> {
    match r.and_then(unit) {
        Ok(()) => Ok(()),
        Err(error) => Err(PutError::new(error, item)),
    }
}

macro_rules! queue_methods {
    ($name:ident, $q:literal, $bq:literal) => {
        impl<T: Serialize + DeserializeOwned> $name<T> {
            /// Puts `item`, waiting for room in a bounded queue.
            ///
            /// # Errors
            ///
            /// The item comes back in the [`PutError`](crate::PutError) if it fails to encode or the
            /// manager is gone.
            ///
            /// # Examples
            ///
            /// ```
            /// # multiprocess::init();
            /// # let m = multiprocess::Manager::start()?;
            #[doc = concat!("let q = m.", $q, "?;")]
            /// q.put(1)?;
            /// assert_eq!(q.len()?, 1);
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn put(&self, item: T) -> std::result::Result<(), PutError<T>> {
                self.put_wait(item, Wait::Block)
            }

            /// Puts `item` if there is room now.
            ///
            /// # Errors
            ///
            /// [`ErrorKind::Full`](crate::ErrorKind::Full) (with the item back) when there is no room.
            ///
            /// # Examples
            ///
            /// ```
            /// # multiprocess::init();
            /// # let m = multiprocess::Manager::start()?;
            #[doc = concat!("let q = m.", $bq, "?;")]
            /// q.try_put(1)?;
            /// let err = q.try_put(2).unwrap_err();
            /// assert_eq!((err.kind(), err.into_inner()), (multiprocess::ErrorKind::Full, 2));
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            #[doc(alias = "put_nowait")]
            pub fn try_put(&self, item: T) -> std::result::Result<(), PutError<T>> {
                self.put_wait(item, Wait::Now)
            }

            /// Puts `item`, waiting at most `timeout` for room.
            ///
            /// # Errors
            ///
            /// [`ErrorKind::Full`](crate::ErrorKind::Full) (with the item back) if no room came in time.
            ///
            /// # Examples
            ///
            /// ```
            /// # use std::time::Duration;
            /// # multiprocess::init();
            /// # let m = multiprocess::Manager::start()?;
            #[doc = concat!("let q = m.", $bq, "?;")]
            /// q.put_timeout(1, Duration::from_millis(10))?;
            /// assert!(q.put_timeout(2, Duration::from_millis(10)).is_err());
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn put_timeout(
                &self,
                item: T,
                timeout: Duration,
            ) -> std::result::Result<(), PutError<T>> {
                self.put_wait(item, Wait::timeout(timeout))
            }

            fn put_wait(&self, x: T, w: Wait) -> std::result::Result<(), PutError<T>> {
                let stored = match self.home.item(&x) {
                    Ok(b) => b,
                    Err(e) => return Err(PutError::new(e, x)),
                };
                let r = self.home.call(&Op::Put(stored, w));
                put_result(x, r)
            }

            /// Takes the oldest item, waiting for one.
            ///
            /// # Errors
            ///
            /// As [`DictProxy::get`](crate::DictProxy::get).
            ///
            /// # Examples
            ///
            /// ```
            /// # multiprocess::init();
            /// # let m = multiprocess::Manager::start()?;
            #[doc = concat!("let q = m.", $q, "?;")]
            /// q.put(7)?;
            /// assert_eq!(q.get()?, 7);
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn get(&self) -> Result<T> {
                value(self.home.call(&Op::Get(Wait::Block))?)
            }

            /// Takes the oldest item if there is one now.
            ///
            /// # Errors
            ///
            /// [`ErrorKind::Empty`](crate::ErrorKind::Empty) when there is none.
            ///
            /// # Examples
            ///
            /// ```
            /// # multiprocess::init();
            /// # let m = multiprocess::Manager::start()?;
            #[doc = concat!("let q = m.", $q, "?;")]
            /// assert_eq!(q.try_get().unwrap_err().kind(), multiprocess::ErrorKind::Empty);
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            #[doc(alias = "get_nowait")]
            pub fn try_get(&self) -> Result<T> {
                value(self.home.call(&Op::Get(Wait::Now))?)
            }

            /// Takes the oldest item, waiting at most `timeout` for one.
            ///
            /// # Errors
            ///
            /// [`ErrorKind::Empty`](crate::ErrorKind::Empty) if none came in time.
            ///
            /// # Examples
            ///
            /// ```
            /// # use std::time::Duration;
            /// # multiprocess::init();
            /// # let m = multiprocess::Manager::start()?;
            #[doc = concat!("let q = m.", $q, "?;")]
            /// assert!(q.get_timeout(Duration::from_millis(10)).is_err());
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
                value(self.home.call(&Op::Get(Wait::timeout(timeout)))?)
            }

            /// The number of items (exact: the queue lives in one place).
            ///
            /// # Errors
            ///
            /// As [`DictProxy::get`](crate::DictProxy::get).
            ///
            /// # Examples
            ///
            /// ```
            /// # multiprocess::init();
            /// # let m = multiprocess::Manager::start()?;
            #[doc = concat!("let q = m.", $q, "?;")]
            /// assert_eq!(q.len()?, 0);
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            #[doc(alias = "qsize")]
            pub fn len(&self) -> Result<usize> {
                Ok(number(self.home.call(&Op::Len)?)? as usize)
            }

            /// Is it empty?
            ///
            /// # Errors
            ///
            /// As [`DictProxy::get`](crate::DictProxy::get).
            ///
            /// # Examples
            ///
            /// ```
            /// # multiprocess::init();
            /// # let m = multiprocess::Manager::start()?;
            #[doc = concat!("let q = m.", $q, "?;")]
            /// assert!(q.is_empty()?);
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn is_empty(&self) -> Result<bool> {
                Ok(self.len()? == 0)
            }

            /// Is a bounded queue at its limit? (Never for an unbounded one.)
            ///
            /// # Errors
            ///
            /// As [`DictProxy::get`](crate::DictProxy::get).
            ///
            /// # Examples
            ///
            /// ```
            /// # multiprocess::init();
            /// # let m = multiprocess::Manager::start()?;
            #[doc = concat!("let q = m.", $bq, "?;")]
            /// q.put(1)?;
            /// assert!(q.is_full()?);
            /// # Ok::<(), multiprocess::Error>(())
            /// ```
            pub fn is_full(&self) -> Result<bool> {
                boolean(self.home.call(&Op::IsFull)?)
            }
        }
    };
}

queue_methods!(QueueProxy, "queue::<u8>()", "bounded_queue::<u8>(1)");
queue_methods!(
    JoinableQueueProxy,
    "joinable_queue::<u8>()",
    "bounded_joinable_queue::<u8>(1)"
);

impl<T: Serialize + DeserializeOwned> JoinableQueueProxy<T> {
    /// Marks one item taken with `get` as processed.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidState`](crate::ErrorKind::InvalidState) if called more times than items were put.
    ///
    /// # Examples
    ///
    /// ```
    /// # multiprocess::init();
    /// let m = multiprocess::Manager::start()?;
    /// let q = m.joinable_queue::<u8>()?;
    /// assert!(q.task_done().is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn task_done(&self) -> Result<()> {
        unit(self.home.call(&Op::TaskDone)?)
    }

    /// Waits until every item put has been marked done.
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
    /// m.joinable_queue::<u8>()?.join()?; // nothing put: returns at once
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn join(&self) -> Result<()> {
        boolean(self.home.call(&Op::Join(Wait::Block))?).map(|_| ())
    }

    /// As [`join`](JoinableQueueProxy::join), waiting at most `timeout`; `true` if
    /// every item was done.
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
    /// let q = m.joinable_queue::<u8>()?;
    /// q.put(1)?;
    /// assert!(!q.join_timeout(Duration::from_millis(10))?);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        boolean(self.home.call(&Op::Join(Wait::timeout(timeout)))?)
    }
}

/// A queue's operations.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    Put(Item, Wait),
    Get(Wait),
    Len,
    IsFull,
    /// Joinable queues only.
    TaskDone,
    /// Joinable queues only.
    Join(Wait),
}

impl Ops for Op {
    const FAMILY: Family = Family::Queue;
}

/// A queue in the server.
pub(crate) struct State {
    items: VecDeque<Item>,
    maxsize: Option<u64>,
    joinable: bool,
    /// Items put and not yet marked done (joinable queues).
    unfinished: u64,
}

impl State {
    pub(crate) fn new(maxsize: Option<u64>, joinable: bool) -> State {
        State {
            items: VecDeque::new(),
            maxsize,
            joinable,
            unfinished: 0,
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        if self.joinable {
            Kind::JoinableQueue
        } else {
            Kind::Queue
        }
    }

    /// The stored items.
    pub(crate) fn items(&self) -> impl Iterator<Item = &Item> {
        self.items.iter()
    }

    fn has_room(&self) -> bool {
        self.maxsize.is_none_or(|m| (self.items.len() as u64) < m)
    }
}

/// Applies `op` to the queue.
pub(crate) fn apply(cell: &Cell<State>, op: Op, cx: &mut Cx<'_>) -> Result<Reply> {
    let mut g = cell.lock();
    let q = &mut *g;
    Ok(match op {
        Op::Put(item, w) => {
            let (mut g, ok) = cell.wait_until(g, cx, w, |q| q.has_room())?;
            if !ok {
                return Err(Error::new(ErrorKind::Full, "the queue is full"));
            }
            cx.store(&item);
            g.items.push_back(item);
            g.unfinished += 1;
            drop(g);
            cell.notify_all();
            Reply::Unit
        }
        Op::Get(w) => {
            let (mut g, ok) = cell.wait_until(g, cx, w, |q| !q.items.is_empty())?;
            if !ok {
                return Err(Error::new(ErrorKind::Empty, "the queue is empty"));
            }
            let item = g.items.pop_front().unwrap_or_default();
            drop(g);
            cell.notify_all();
            Reply::Bytes(cx.take(item))
        }
        Op::Len => Reply::U64(q.items.len() as u64),
        Op::IsFull => Reply::Bool(!q.has_room()),
        Op::TaskDone | Op::Join(_) if !q.joinable => {
            return Err(no_such_op(
                Kind::Queue,
                if matches!(op, Op::TaskDone) {
                    "TaskDone"
                } else {
                    "Join"
                },
            ));
        }
        Op::TaskDone => {
            if q.unfinished == 0 {
                return Err(Error::new(
                    ErrorKind::InvalidState,
                    "task_done() called more times than there were items",
                ));
            }
            q.unfinished -= 1;
            if q.unfinished == 0 {
                cell.notify_all();
            }
            Reply::Unit
        }
        Op::Join(w) => Reply::Bool(cell.wait_until(g, cx, w, |q| q.unfinished == 0)?.1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::handler::item as it;

    fn run(cell: &Cell<State>, op: Op) -> Result<Reply> {
        Cx::run_as(1, cell, op, apply)
    }

    #[test]
    fn fifo_with_a_bound() {
        let q = Cell::new(State::new(Some(2), false));
        run(&q, Op::Put(it(1), Wait::Now)).unwrap();
        run(&q, Op::Put(it(2), Wait::Now)).unwrap();
        assert_eq!(run(&q, Op::IsFull).unwrap(), Reply::Bool(true));
        let e = run(&q, Op::Put(it(3), Wait::Now)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Full);
        assert_eq!(run(&q, Op::Get(Wait::Now)).unwrap(), Reply::Bytes(vec![1]));
        assert_eq!(run(&q, Op::Get(Wait::Now)).unwrap(), Reply::Bytes(vec![2]));
        let e = run(&q, Op::Get(Wait::timeout(Duration::from_millis(2)))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Empty);
        assert_eq!(run(&q, Op::Len).unwrap(), Reply::U64(0));
        // Only a joinable queue counts tasks.
        let e = run(&q, Op::TaskDone).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("TaskDone"), "{e}");
    }

    #[test]
    fn joinable_counts_unfinished_tasks() {
        let q = Cell::new(State::new(None, true));
        assert_eq!(q.lock().kind(), Kind::JoinableQueue);
        assert_eq!(run(&q, Op::Join(Wait::Now)).unwrap(), Reply::Bool(true));
        run(&q, Op::Put(it(1), Wait::Block)).unwrap();
        run(&q, Op::Put(it(2), Wait::Block)).unwrap();
        run(&q, Op::Get(Wait::Block)).unwrap();
        run(&q, Op::TaskDone).unwrap();
        assert_eq!(run(&q, Op::Join(Wait::Now)).unwrap(), Reply::Bool(false));
        run(&q, Op::TaskDone).unwrap();
        assert_eq!(run(&q, Op::Join(Wait::Now)).unwrap(), Reply::Bool(true));
        let e = run(&q, Op::TaskDone).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidState);
    }
}
