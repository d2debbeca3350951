//! `Barrier`: Python's `multiprocessing.Barrier`, across processes.
//!
//! # Algorithm
//!
//! Words in a shared segment: an internal robust lock word, `count` (parties arrived in
//! this generation), `generation` (the futex), `broken`, `parties`, and the offset of
//! the action function (0: none). Arriving takes the internal lock, bumps `count` and
//! either trips the barrier (the last party: runs the action, resets `count`, bumps
//! `generation`, wakes everyone) or sleeps on `generation` until it changes, the
//! barrier breaks, or the deadline passes (which breaks it, as in Python).
//!
//! The action is a plain `fn()` identified, like a task, by its offset in the binary,
//! so any process sharing the barrier can run it. An action with arguments
//! ([`Barrier::with_action_args`]) also stores the offset of a monomorphized entry
//! that knows the argument type, and the encoded arguments themselves, after the
//! words above (plain data only: a handle's fd cannot live in shared memory). The
//! process completing a pass decodes them (as hostile bytes, like any message) and
//! calls the action: Python runs `action` in that process too.
//!
//! A party killed while waiting stays counted: the others wait until their timeout
//! (or forever without one), as in Python.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::raw;
use super::segment::{Segment, serde_by_segment};
use crate::error::{Error, ErrorKind, Result};
use crate::sys::{self, futex};

/// The 64-bit lock word (`word64` index: bytes 0..8).
const LOCK: usize = 0;
// 32-bit word indices, after the lock word.
const COUNT: usize = 2;
const GENERATION: usize = 3;
const BROKEN: usize = 4;
const PARTIES: usize = 5;
const ACTION_LO: usize = 6;
const ACTION_HI: usize = 7;
const TIMEOUT_MS: usize = 8;
/// `g + 1` when `reset` broke generation `g` (0: none).
const RESET_GEN: usize = 9;
/// 1 when an action is set, [`ACTION_WITH_ARGS`] when it takes arguments.
const HAS_ACTION: usize = 10;
/// The lock's sleeper count, then its sleepers' futex word (12).
const SLEEPERS: usize = 11;
/// The segment's length: the words above.
const LEN: usize = (SLEEPERS + 2) * 4;
/// `HAS_ACTION` of an action with arguments: the words below follow.
const ACTION_WITH_ARGS: u32 = 2;
/// The offset of the action's monomorphized entry ([`ActionEntry`]).
const ENTRY_LO: usize = 13;
const ENTRY_HI: usize = 14;
/// The length in bytes of the encoded arguments, then the bytes, 4 to a word.
const ARGS_LEN: usize = 15;
const ARGS: usize = 16;
/// The most argument bytes an action may have (they live in the barrier's segment).
const MAX_ARGS: usize = 64 * 1024;

/// Runs the action at `func` (an offset) with the encoded `args`; `false` if they do
/// not decode.
type ActionEntry = fn(usize, &[u8]) -> bool;

/// The entry of an action `fn(A)`.
fn action_entry<A: DeserializeOwned>(func: usize, args: &[u8]) -> bool {
    #[allow(unsafe_code)]
    // SAFETY: `func` was written by `build_with_args` from an `fn(A)` of this binary,
    // together with this very entry (same `A`).
    let f: fn(A) = unsafe { crate::wire::code::code_at(func) };
    match crate::wire::codec::decode::<A>(args, Vec::new()) {
        Ok(a) => {
            f(a);
            true
        }
        Err(_) => false,
    }
}

/// A barrier for a fixed number of parties, in any processes.
///
/// # Examples
///
/// ```
/// use multiprocess::{Barrier, Process};
///
/// fn party(b: Barrier) {
///     b.wait().unwrap();
/// }
///
/// multiprocess::init();
/// let b = Barrier::new(3)?;
/// let mut ps: Vec<_> = (0..2).map(|_| Process::new(party, b.clone())).collect();
/// for p in &mut ps { p.start()?; }
/// let index = b.wait()?; // the third party: everyone passes together
/// assert!(index < 3);
/// for p in &ps { p.join()?; }
/// # Ok::<(), multiprocess::Error>(())
/// ```
#[derive(Clone)]
pub struct Barrier {
    seg: Arc<Segment>,
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("n_waiting", &self.n_waiting())
            .field("broken", &self.is_broken())
            .finish()
    }
}

fn broken() -> Error {
    Error::new(ErrorKind::BrokenBarrier, "the barrier is broken")
}

struct Internal<'a>(raw::RawLock<'a>);

impl Drop for Internal<'_> {
    fn drop(&mut self) {
        raw::release(self.0);
    }
}

impl Barrier {
    fn build(parties: u32, action: Option<fn()>, timeout: Option<Duration>) -> Result<Barrier> {
        Self::build_sized(parties, action, timeout, LEN)
    }

    fn build_sized(
        parties: u32,
        action: Option<fn()>,
        timeout: Option<Duration>,
        len: usize,
    ) -> Result<Barrier> {
        if parties == 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a barrier needs at least one party",
            ));
        }
        let seg = Segment::new("multiprocess-barrier", len)?;
        seg.word(PARTIES).store(parties, SeqCst);
        if let Some(f) = action {
            let off = crate::wire::code::code_offset(f as *const ()) as u64;
            seg.word(ACTION_LO).store(off as u32, SeqCst);
            seg.word(ACTION_HI).store((off >> 32) as u32, SeqCst);
            seg.word(HAS_ACTION).store(1, SeqCst);
        }
        // 0: no timeout. One too long for the word (about 50 days) is "forever" too.
        let ms = match timeout.map(|t| t.as_millis()) {
            Some(ms) if ms < u32::MAX as u128 => (ms as u32).max(1),
            _ => 0,
        };
        seg.word(TIMEOUT_MS).store(ms, SeqCst);
        Ok(Barrier { seg: Arc::new(seg) })
    }

    /// A barrier for `parties` parties.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for 0 parties; [`ErrorKind::Io`] if shared memory
    /// cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = multiprocess::Barrier::new(1)?;
    /// assert_eq!(b.wait()?, 0); // one party: passes at once
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn new(parties: u32) -> Result<Barrier> {
        Self::build(parties, None, None)
    }

    /// A barrier whose `action` runs once per pass, in the last party to arrive, before
    /// anyone is released. A panicking action breaks the barrier.
    ///
    /// # Errors
    ///
    /// As [`new`](Barrier::new).
    ///
    /// # Examples
    ///
    /// ```
    /// fn announce() { println!("everyone is here"); }
    /// let b = multiprocess::Barrier::with_action(1, announce)?;
    /// b.wait()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn with_action(parties: u32, action: fn()) -> Result<Barrier> {
        Self::build(parties, Some(action), None)
    }

    /// A barrier whose `action(args)` runs once per pass, in the process of the last
    /// party to arrive, before anyone is released: Python's
    /// `Barrier(n, action=functools.partial(f, args))`. The args are encoded once,
    /// here, and kept in the barrier's shared memory, so whichever process completes
    /// a pass (the parent or any child the barrier was passed to) runs the action with
    /// them. A panicking action breaks the barrier.
    ///
    /// # Errors
    ///
    /// As [`new`](Barrier::new); [`ErrorKind::Serialize`] if `args` do not serialize;
    /// [`ErrorKind::InvalidInput`] if they hold handles (a [`Connection`] or other fd
    /// cannot live in shared memory: pass such things to the parties instead) or
    /// encode to more than 64 KiB.
    ///
    /// [`Connection`]: crate::Connection
    ///
    /// # Examples
    ///
    /// ```
    /// fn announce((round, who): (u32, String)) { println!("round {round}: {who} are here"); }
    /// let b = multiprocess::Barrier::with_action_args(1, announce, (1, "all".to_string()))?;
    /// b.wait()?;
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn with_action_args<A>(parties: u32, action: fn(A), args: A) -> Result<Barrier>
    where
        A: Serialize + DeserializeOwned + 'static,
    {
        let enc = crate::wire::codec::encode(&args)?;
        if !enc.fds.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "a barrier action's args cannot hold handles (connections, queues, fds)",
            ));
        }
        let bytes = enc.bytes;
        if bytes.len() > MAX_ARGS {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "a barrier action's args encode to {} bytes, more than {MAX_ARGS}",
                    bytes.len()
                ),
            ));
        }
        let b = Self::build_sized(parties, None, None, (ARGS + bytes.len().div_ceil(4)) * 4)?;
        let split = |off: usize| (off as u64 as u32, ((off as u64) >> 32) as u32);
        let (lo, hi) = split(crate::wire::code::code_offset(action as *const ()));
        b.seg.word(ACTION_LO).store(lo, SeqCst);
        b.seg.word(ACTION_HI).store(hi, SeqCst);
        let entry: ActionEntry = action_entry::<A>;
        let (lo, hi) = split(crate::wire::code::code_offset(entry as *const ()));
        b.seg.word(ENTRY_LO).store(lo, SeqCst);
        b.seg.word(ENTRY_HI).store(hi, SeqCst);
        b.seg.word(ARGS_LEN).store(bytes.len() as u32, SeqCst);
        for (i, chunk) in bytes.chunks(4).enumerate() {
            let mut w = [0u8; 4];
            w[..chunk.len()].copy_from_slice(chunk);
            b.seg.word(ARGS + i).store(u32::from_le_bytes(w), SeqCst);
        }
        b.seg.word(HAS_ACTION).store(ACTION_WITH_ARGS, SeqCst);
        Ok(b)
    }

    /// The action's encoded args, if the segment holds them whole.
    fn action_args(&self) -> Option<Vec<u8>> {
        let len = self.seg.word(ARGS_LEN).load(SeqCst) as usize;
        if len > MAX_ARGS || (ARGS + len.div_ceil(4)) * 4 > self.seg.len() {
            return None;
        }
        let mut out = Vec::with_capacity(len);
        for i in 0..len.div_ceil(4) {
            out.extend_from_slice(&self.seg.word(ARGS + i).load(SeqCst).to_le_bytes());
        }
        out.truncate(len);
        Some(out)
    }

    /// A barrier whose [`wait`](Barrier::wait) gives up (and breaks it) after `timeout`.
    /// A timeout of `u32::MAX` milliseconds (about 50 days) or more, such as
    /// `Duration::MAX`, means no timeout.
    ///
    /// # Errors
    ///
    /// As [`new`](Barrier::new).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiprocess::ErrorKind;
    /// let b = multiprocess::Barrier::with_timeout(2, Duration::from_millis(10))?;
    /// assert_eq!(b.wait().unwrap_err().kind(), ErrorKind::BrokenBarrier);
    /// assert!(b.is_broken());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn with_timeout(parties: u32, timeout: Duration) -> Result<Barrier> {
        Self::build(parties, None, Some(timeout))
    }

    fn internal(&self) -> Internal<'_> {
        let l = self.seg.raw_lock(LOCK, SLEEPERS);
        let _ = raw::acquire(l, raw::Owner::me(), None);
        Internal(l)
    }

    fn run_action(&self) -> bool {
        let kind = self.seg.word(HAS_ACTION).load(SeqCst);
        if kind == 0 {
            return true;
        }
        let hi = self.seg.word(ACTION_HI).load(SeqCst) as u64;
        let off = (hi << 32) | self.seg.word(ACTION_LO).load(SeqCst) as u64;
        if kind == ACTION_WITH_ARGS {
            let Some(args) = self.action_args() else {
                return false;
            };
            let hi = self.seg.word(ENTRY_HI).load(SeqCst) as u64;
            let entry = (hi << 32) | self.seg.word(ENTRY_LO).load(SeqCst) as u64;
            #[allow(unsafe_code)]
            // SAFETY: written by `with_action_args` from an `ActionEntry` of this
            // binary; the segment is shared only with processes we started from it.
            let entry = unsafe { crate::wire::code::code_at::<ActionEntry>(entry as usize) };
            return std::panic::catch_unwind(|| entry(off as usize, &args)).unwrap_or(false);
        }
        #[allow(unsafe_code)]
        // SAFETY: the offset was written by `build` from an `fn()` of this binary: the
        // segment is ours, shared only with processes we started from this binary.
        let f = unsafe { crate::wire::code::code_at::<fn()>(off as usize) };
        std::panic::catch_unwind(f).is_ok()
    }

    fn break_now(&self) {
        self.seg.word(BROKEN).store(1, SeqCst);
        let g = self.seg.word(GENERATION);
        futex::wake(g, i32::MAX as u32);
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<u32> {
        let guard = self.internal();
        if self.seg.word(BROKEN).load(SeqCst) != 0 {
            return Err(broken());
        }
        let gen_word = self.seg.word(GENERATION);
        let generation = gen_word.load(SeqCst);
        let count = self.seg.word(COUNT);
        let index = count.fetch_add(1, SeqCst);
        if index + 1 >= self.parties() {
            let ok = self.run_action();
            if !ok {
                count.store(0, SeqCst);
                self.break_now();
                return Err(Error::new(
                    ErrorKind::BrokenBarrier,
                    "the barrier's action panicked (or its args did not decode)",
                ));
            }
            count.store(0, SeqCst);
            gen_word.fetch_add(1, SeqCst);
            futex::wake(gen_word, i32::MAX as u32);
            drop(guard);
            return Ok(index);
        }
        drop(guard);
        let passed = || {
            if self.seg.word(RESET_GEN).load(SeqCst) == generation.wrapping_add(1) {
                Err(Error::new(
                    ErrorKind::BrokenBarrier,
                    "the barrier was reset while waiting",
                ))
            } else {
                Ok(index)
            }
        };
        loop {
            if gen_word.load(SeqCst) != generation {
                return passed();
            }
            if self.seg.word(BROKEN).load(SeqCst) != 0 {
                return Err(broken());
            }
            if futex::wait(gen_word, generation, deadline) == futex::Woken::TimedOut
                && gen_word.load(SeqCst) == generation
            {
                let _g = self.internal();
                if gen_word.load(SeqCst) != generation {
                    return passed();
                }
                self.break_now();
                return Err(Error::new(
                    ErrorKind::BrokenBarrier,
                    "timed out waiting at the barrier; it is broken now",
                ));
            }
        }
    }

    /// Waits until all parties have called `wait`; returns this party's arrival index
    /// (`0..parties`, each index once per pass).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BrokenBarrier`] if the barrier is or becomes broken (abort, reset,
    /// the barrier's own timeout, a panicking action).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = multiprocess::Barrier::new(1)?;
    /// assert_eq!(b.wait()?, 0);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn wait(&self) -> Result<u32> {
        let ms = self.seg.word(TIMEOUT_MS).load(SeqCst);
        let deadline = (ms != 0)
            .then(|| sys::deadline_after(Duration::from_millis(ms as u64)))
            .flatten();
        self.wait_until(deadline)
    }

    /// As [`wait`](Barrier::wait) with this call's own timeout (which breaks the barrier
    /// when it passes).
    ///
    /// # Errors
    ///
    /// As [`wait`](Barrier::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = multiprocess::Barrier::new(2)?;
    /// assert!(b.wait_timeout(Duration::from_millis(10)).is_err());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32> {
        self.wait_until(sys::deadline_after(timeout))
    }

    /// Breaks the barrier: current and future waiters get [`ErrorKind::BrokenBarrier`]
    /// until [`reset`](Barrier::reset).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = multiprocess::Barrier::new(2)?;
    /// b.abort();
    /// assert!(b.is_broken());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn abort(&self) {
        let _g = self.internal();
        self.break_now();
    }

    /// Returns the barrier to its initial state; parties waiting now get
    /// [`ErrorKind::BrokenBarrier`].
    ///
    /// # Examples
    ///
    /// ```
    /// let b = multiprocess::Barrier::new(1)?;
    /// b.abort();
    /// b.reset();
    /// assert!(!b.is_broken());
    /// assert_eq!(b.wait()?, 0);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn reset(&self) {
        let _g = self.internal();
        let gen_word = self.seg.word(GENERATION);
        let generation = gen_word.load(SeqCst);
        if self.seg.word(COUNT).load(SeqCst) > 0 {
            // The parties waiting in this generation will see it was broken.
            self.seg
                .word(RESET_GEN)
                .store(generation.wrapping_add(1), SeqCst);
        }
        self.seg.word(COUNT).store(0, SeqCst);
        self.seg.word(BROKEN).store(0, SeqCst);
        gen_word.fetch_add(1, SeqCst);
        futex::wake(gen_word, i32::MAX as u32);
    }

    /// Is the barrier broken?
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!multiprocess::Barrier::new(2)?.is_broken());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn is_broken(&self) -> bool {
        self.seg.word(BROKEN).load(SeqCst) != 0
    }

    /// How many parties are waiting now: 0 while the barrier is broken (its waiters
    /// are leaving with [`ErrorKind::BrokenBarrier`]), as in Python.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = multiprocess::Barrier::new(2)?;
    /// assert_eq!(b.n_waiting(), 0);
    /// b.abort();
    /// assert_eq!(b.n_waiting(), 0);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn n_waiting(&self) -> u32 {
        if self.is_broken() {
            return 0;
        }
        self.seg.word(COUNT).load(SeqCst)
    }

    /// The number of parties.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiprocess::Barrier::new(5)?.parties(), 5);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn parties(&self) -> u32 {
        self.seg.word(PARTIES).load(SeqCst)
    }
}

serde_by_segment!(Barrier);
