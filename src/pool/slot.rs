//! Where one result lands: a slot that a pool fills once and callers wait on.
//!
//! A [`Slot`] is shared by the pool side (which completes it, from the pool's thread)
//! and the user side ([`AsyncResult`](super::AsyncResult),
//! [`Future`](crate::futures::Future)). Its life is a small state machine held in an
//! atomic, so the pool can check "cancelled?" before dispatching and users can ask
//! "running?" without a lock:
//!
//! ```text
//! PENDING --dispatch--> RUNNING --result--> DONE
//!    \--cancel--> CANCELLED (a DONE whose result is ErrorKind::Cancelled)
//! ```
//!
//! Completion runs the callbacks first, with the result borrowed, and only then
//! publishes it, as Python's `AsyncResult._set` does: a `get()` that returns has seen
//! every callback finish. Waiters are counted, so completing a slot nobody waits on
//! costs no system call (std's condvar would always issue a futex wake).

use std::fmt;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicU8, AtomicU64};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Instant;

use crate::error::{Error, ErrorKind, Result};

pub(crate) const PENDING: u8 = 0;
pub(crate) const RUNNING: u8 = 1;
pub(crate) const DONE: u8 = 2;
pub(crate) const CANCELLED: u8 = 3;

/// The phase of a task, shared between its slot and the pool that runs it.
#[derive(Debug, Default)]
pub(crate) struct Phase(AtomicU8);

impl Phase {
    pub(crate) fn get(&self) -> u8 {
        self.0.load(SeqCst)
    }

    /// PENDING -> CANCELLED: the pool will drop the task unrun. False if it started.
    pub(crate) fn cancel(&self) -> bool {
        self.0
            .compare_exchange(PENDING, CANCELLED, SeqCst, SeqCst)
            .is_ok()
    }

    /// PENDING -> RUNNING; false if the task was cancelled (or is done). A task handed
    /// out again (taken back from a busy worker, or queued behind a dead one's) is
    /// RUNNING already, and stays so.
    pub(crate) fn start(&self) -> bool {
        match self.0.compare_exchange(PENDING, RUNNING, SeqCst, SeqCst) {
            Ok(_) => true,
            Err(now) => now == RUNNING,
        }
    }
}

type Callback<T> = Box<dyn FnOnce(&Result<T>) + Send>;

/// Numbers the completions of watched slots in the order they are published, so that
/// `as_completed` yields futures in the order they finished. Only a slot someone
/// watches takes a number: a task's hand-off without a watcher pays nothing.
static COMPLETIONS: AtomicU64 = AtomicU64::new(1);

/// Someone waiting on several slots at once (`futures::wait`, `as_completed`).
#[derive(Debug, Default)]
pub(crate) struct Watch {
    fired: Mutex<u64>,
    cv: Condvar,
}

impl Watch {
    fn fire(&self) {
        *self.fired.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.cv.notify_all();
    }

    /// The number of firings so far.
    pub(crate) fn count(&self) -> u64 {
        *self.fired.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the count exceeds `seen` or the deadline passes; the new count.
    pub(crate) fn wait_past(&self, seen: u64, deadline: Option<Instant>) -> u64 {
        let mut g = self.fired.lock().unwrap_or_else(|e| e.into_inner());
        while *g <= seen {
            match deadline {
                None => g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break;
                    }
                    g = self
                        .cv
                        .wait_timeout(g, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        *g
    }
}

struct State<T> {
    result: Option<Result<T>>,
    /// Set once a result (or the cancellation) is published.
    done: bool,
    /// Where the publication came among the watched slots' (0 until done, and for a
    /// slot nobody watched when it was done).
    seq: u64,
    /// Whether the published result was `Ok` (kept after `take`).
    ok: bool,
    taken: bool,
    /// The result is lent to a late callback (`on_done` after completion).
    lent: bool,
    waiters: usize,
    callbacks: Vec<Callback<T>>,
    watches: Vec<Arc<Watch>>,
    wakers: Vec<Waker>,
}

/// One result to come.
pub(crate) struct Slot<T> {
    pub(crate) phase: Arc<Phase>,
    state: Mutex<State<T>>,
    cv: Condvar,
    /// What this is, for error messages ("task 3", "map of 100 items").
    pub(crate) what: String,
}

impl<T> fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("what", &self.what)
            .field("phase", &self.phase.get())
            .finish()
    }
}

impl<T> Slot<T> {
    pub(crate) fn new(what: String) -> Arc<Self> {
        Arc::new(Slot {
            phase: Arc::new(Phase::default()),
            state: Mutex::new(State {
                result: None,
                done: false,
                seq: 0,
                ok: false,
                taken: false,
                lent: false,
                waiters: 0,
                callbacks: Vec::new(),
                watches: Vec::new(),
                wakers: Vec::new(),
            }),
            cv: Condvar::new(),
            what,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the callbacks with `r`, then publishes it. A second completion is ignored.
    pub(crate) fn complete(&self, r: Result<T>) {
        let callbacks = {
            let mut s = self.lock();
            if s.done {
                return;
            }
            std::mem::take(&mut s.callbacks)
        };
        for cb in callbacks {
            // A panicking callback must not take the pool's thread down with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(&r)));
        }
        let (watches, wakers, notify) = {
            let mut s = self.lock();
            if s.done {
                return;
            }
            // Callbacks added while the others ran.
            let late = std::mem::take(&mut s.callbacks);
            if !late.is_empty() {
                drop(s);
                for cb in late {
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(&r)));
                }
                s = self.lock();
            }
            s.ok = r.is_ok();
            s.result = Some(r);
            s.done = true;
            if !s.watches.is_empty() {
                s.seq = COMPLETIONS.fetch_add(1, Relaxed);
            }
            let _ = self.phase.0.compare_exchange(RUNNING, DONE, SeqCst, SeqCst);
            let _ = self.phase.0.compare_exchange(PENDING, DONE, SeqCst, SeqCst);
            (
                std::mem::take(&mut s.watches),
                std::mem::take(&mut s.wakers),
                s.waiters > 0,
            )
        };
        if notify {
            self.cv.notify_all();
        }
        for w in watches {
            w.fire();
        }
        for w in wakers {
            w.wake();
        }
    }

    /// Cancels a task that has not started: true if it was pending.
    pub(crate) fn cancel(&self) -> bool {
        if self
            .phase
            .0
            .compare_exchange(PENDING, CANCELLED, SeqCst, SeqCst)
            .is_err()
        {
            return self.phase.get() == CANCELLED;
        }
        self.complete(Err(Error::new(
            ErrorKind::Cancelled,
            format!("{} was cancelled", self.what),
        )));
        true
    }

    pub(crate) fn is_done(&self) -> bool {
        self.lock().done
    }

    /// When it was done, as a rank among the completions of watched slots (earlier is
    /// smaller; 0 if it was done before anyone watched it); `None` if not done yet.
    pub(crate) fn completed_at(&self) -> Option<u64> {
        let s = self.lock();
        s.done.then_some(s.seq)
    }

    /// `Some(true)` if done with a value, `Some(false)` if done with an error.
    pub(crate) fn outcome(&self) -> Option<bool> {
        let s = self.lock();
        s.done.then_some(s.ok)
    }

    /// Waits until done or the deadline passes; whether it is done.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut s = self.lock();
        while !s.done {
            s.waiters += 1;
            s = match deadline {
                None => self.cv.wait(s).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        s.waiters -= 1;
                        return false;
                    }
                    self.cv
                        .wait_timeout(s, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
            s.waiters -= 1;
        }
        true
    }

    /// Waits (until the deadline) and takes the result out.
    pub(crate) fn take(&self, deadline: Option<Instant>) -> Result<T> {
        if !self.wait(deadline) {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!("waiting for the result of {} timed out", self.what),
            ));
        }
        let mut s = self.lock();
        while s.lent {
            s.waiters += 1;
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
            s.waiters -= 1;
        }
        match s.result.take() {
            // An error stays: a second `get` and `exception()` see it again, as in
            // Python (only a value moves out).
            Some(Err(e)) => {
                s.result = Some(Err(e.duplicate()));
                Err(e)
            }
            Some(r) => {
                s.taken = true;
                r
            }
            None => Err(Error::state(format!(
                "the result of {} was already taken",
                self.what
            ))),
        }
    }

    /// Runs `f` with the result if done (and not taken).
    pub(crate) fn peek<U>(&self, f: impl FnOnce(&Result<T>) -> U) -> Option<U> {
        let s = self.lock();
        s.result.as_ref().map(f)
    }

    /// Adds a callback: run at completion, or now (in this thread) if already done.
    pub(crate) fn on_done(&self, cb: Callback<T>) {
        let mut s = self.lock();
        if !s.done {
            s.callbacks.push(cb);
            return;
        }
        match &s.result {
            Some(r) => {
                // Run outside the lock: the callback may look at the slot.
                let r = match r {
                    Ok(_) => None,
                    Err(e) => Some(e.duplicate()),
                };
                match r {
                    None => {
                        // Borrow the value in place; the callback cannot re-lock
                        // (documented: callbacks must not block on their own future).
                        let r = s.result.take().expect("checked");
                        s.lent = true;
                        drop(s);
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(&r)));
                        let mut s = self.lock();
                        s.result = Some(r);
                        s.lent = false;
                        if s.waiters > 0 {
                            self.cv.notify_all();
                        }
                    }
                    Some(e) => {
                        drop(s);
                        let _ =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(&Err(e))));
                    }
                }
            }
            None => {
                drop(s);
                let e = Error::state(format!("the result of {} was already taken", self.what));
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(&Err(e))));
            }
        }
    }

    /// Registers a watch; false (not registered) if already done.
    pub(crate) fn watch(&self, w: &Arc<Watch>) -> bool {
        let mut s = self.lock();
        if s.done {
            return false;
        }
        s.watches.push(w.clone());
        true
    }

    pub(crate) fn unwatch(&self, w: &Arc<Watch>) {
        self.lock().watches.retain(|x| !Arc::ptr_eq(x, w));
    }

    /// For `IntoFuture`: done, or remember the waker.
    pub(crate) fn poll_ready(&self, waker: &Waker) -> bool {
        let mut s = self.lock();
        if s.done {
            return true;
        }
        if !s.wakers.iter().any(|w| w.will_wake(waker)) {
            s.wakers.push(waker.clone());
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;
    use std::time::Duration;

    #[test]
    fn phase_moves_pending_running_and_cancel_only_while_pending() {
        let p = Phase::default();
        assert_eq!(p.get(), PENDING);
        assert!(p.start());
        assert_eq!(p.get(), RUNNING);
        // Handed out again (taken back, or queued behind a dead worker): still runs.
        assert!(p.start());
        assert!(!p.cancel());
        assert_eq!(p.get(), RUNNING);

        let p = Phase::default();
        assert!(p.cancel());
        assert_eq!(p.get(), CANCELLED);
        assert!(!p.start());
        assert!(!p.cancel());
    }

    #[test]
    fn complete_runs_callbacks_then_publishes_once() {
        let slot = Slot::new("task 1".into());
        let seen = Arc::new(StdMutex::new(Vec::new()));
        let s = seen.clone();
        let probe = slot.clone();
        slot.on_done(Box::new(move |r: &Result<u32>| {
            // The result is not published while callbacks run.
            s.lock()
                .unwrap()
                .push((*r.as_ref().unwrap(), probe.is_done()));
        }));
        assert!(slot.phase.start());
        assert_eq!(slot.outcome(), None);
        slot.complete(Ok(5));
        slot.complete(Ok(6)); // ignored
        assert_eq!(*seen.lock().unwrap(), [(5, false)]);
        assert_eq!(slot.phase.get(), DONE);
        assert_eq!(slot.outcome(), Some(true));
        assert_eq!(slot.peek(|r| *r.as_ref().unwrap()), Some(5));
        assert_eq!(slot.take(None).unwrap(), 5);
        let again = slot.take(None).unwrap_err();
        assert_eq!(again.kind(), ErrorKind::InvalidState);
        // Still known to have succeeded after the value moved out.
        assert_eq!(slot.outcome(), Some(true));
    }

    #[test]
    fn a_late_callback_runs_at_once_with_the_result() {
        let slot = Slot::new("task 2".into());
        slot.complete(Err(Error::new(ErrorKind::Panicked, "boom")));
        let (tx, rx) = std::sync::mpsc::channel();
        slot.on_done(Box::new(move |r: &Result<u8>| {
            tx.send(r.as_ref().unwrap_err().kind()).unwrap()
        }));
        assert_eq!(rx.try_recv().unwrap(), ErrorKind::Panicked);
        assert_eq!(slot.outcome(), Some(false));
    }

    #[test]
    fn cancel_completes_a_pending_slot_only() {
        let slot = Slot::<u8>::new("future 3".into());
        assert!(slot.cancel());
        assert!(slot.cancel()); // already cancelled: still true
        assert_eq!(slot.phase.get(), CANCELLED);
        let e = slot.take(None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Cancelled);
        assert!(e.to_string().contains("future 3 was cancelled"), "{e}");

        let running = Slot::<u8>::new("future 4".into());
        assert!(running.phase.start());
        assert!(!running.cancel());
        assert!(!running.is_done());
    }

    #[test]
    fn waits_time_out_and_wake_on_completion() {
        let slot = Slot::<u8>::new("task 5".into());
        let soon = Instant::now() + Duration::from_millis(10);
        assert!(!slot.wait(Some(soon)));
        let e = slot.take(Some(Instant::now())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);

        let watch = Arc::new(Watch::default());
        assert!(slot.watch(&watch));
        let s = slot.clone();
        let t = std::thread::spawn(move || s.complete(Ok(1)));
        assert_eq!(watch.wait_past(0, None), 1);
        assert!(slot.wait(None));
        t.join().unwrap();
        // Done: a new watch is refused.
        assert!(!slot.watch(&watch));
        assert_eq!(slot.take(None).unwrap(), 1);
    }
}
