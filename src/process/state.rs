//! Per-process state: who we are (name, identity, parent) and the children we
//! started; and [`PerProcess`], the cell in which other parts of this layer keep
//! what belongs to one process only (the launcher thread, the fork server).
//!
//! # Fork safety
//!
//! The state lives behind an `AtomicPtr`. A forked child never locks a mutex of its
//! parent's state (another thread may have held it at the moment of `fork`, and that
//! thread does not exist in the child): it builds a fresh state from what it was told
//! and swaps the pointer. The parent's copy is leaked in the child, on purpose.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};

use super::child::Child;

use super::method::StartMethod;
use crate::error::{Error, ErrorKind, Result};
use crate::sys;

/// What a process knows about its parent.
#[derive(Debug)]
pub(crate) struct ParentInfo {
    pub(crate) pid: u32,
    pub(crate) name: String,
    /// The parent's pidfd, opened when first asked for (see [`ParentFd`]).
    pidfd: ParentFd,
}

impl ParentInfo {
    /// What we know of our parent `pid`. Its pidfd is opened on first use if `pid` is
    /// our parent in the OS's sense (`getppid`), which can then vouch for it; otherwise
    /// (a fork server's child in the watching mode, whose OS parent is the server) it
    /// is opened now, while the parent is known to be alive.
    #[allow(unsafe_code)] // the section only groups code: "Child text" in process::bootstrap
    #[unsafe(link_section = "multiprocess_child_text")]
    pub(crate) fn new(pid: u32, name: String) -> ParentInfo {
        let fd = if sys::process::getppid() == pid {
            ParentFd::UNOPENED
        } else {
            sys::pidfd::open(pid).map_or(ParentFd::NONE, |f| sys::keep_open(f).as_raw_fd())
        };
        ParentInfo {
            pid,
            name,
            pidfd: ParentFd(AtomicI32::new(fd)),
        }
    }

    /// The parent's pidfd (readable once it ended); `None` only if no fd was left.
    pub(crate) fn pidfd(&self) -> Option<BorrowedFd<'static>> {
        self.pidfd.get(self.pid)
    }
}

/// A parent's pidfd, opened on first use and then kept open for the rest of the
/// process (the state that holds it lives as long as the process).
///
/// Why lazily: opening a pidfd allocates an inode (pidfs, Linux 6.9 and later), and
/// closing it at exit frees it again: 6 us per child on the 2-core VM of the
/// benchmarks, for a handle that most children never use. Why it is still safe: the
/// pid can name another process only after our parent has ended and been reaped, and
/// a process whose parent has ended has been handed to another parent (`init` or a
/// subreaper) before that. So after opening, `getppid() == pid` proves the pidfd is
/// our parent's; otherwise the parent is gone, and the handle becomes a pipe whose
/// writer is closed: readable at once, as the pidfd of a process that ended is.
#[derive(Debug)]
struct ParentFd(AtomicI32);

impl ParentFd {
    /// Not opened yet.
    const UNOPENED: i32 = -2;
    /// No handle could be made (out of fds).
    const NONE: i32 = -1;

    /// The handle of `parent` (our parent's pid), opened on the first call.
    fn get(&self, parent: u32) -> Option<BorrowedFd<'static>> {
        let mut fd = self.0.load(Ordering::Acquire);
        if fd == Self::UNOPENED {
            let opened = Self::open(parent);
            let raw = opened.as_ref().map_or(Self::NONE, |f| f.as_raw_fd());
            match self
                .0
                .compare_exchange(Self::UNOPENED, raw, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    // Kept open from now on (see the type's docs).
                    if let Some(f) = opened {
                        sys::keep_open(f);
                    }
                    fd = raw;
                }
                // Another thread opened it first; ours closes on drop.
                Err(theirs) => fd = theirs,
            }
        }
        #[allow(unsafe_code)]
        // SAFETY: a non-negative value was stored from an fd that is never closed.
        (fd >= 0).then(|| unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// Our parent's pidfd if `parent` is still our parent, else a handle that reads
    /// as ended.
    fn open(parent: u32) -> Option<OwnedFd> {
        if let Ok(fd) = sys::pidfd::open(parent)
            && sys::process::getppid() == parent
        {
            return Some(fd);
        }
        sys::process::pipe().ok().map(|(read, _write)| read)
    }
}

/// One process's view of itself.
pub(crate) struct State {
    pub(crate) pid: u32,
    pub(crate) name: String,
    pub(crate) identity: Vec<u32>,
    pub(crate) daemon: bool,
    pub(crate) parent: Option<ParentInfo>,
    /// Next child number (`Process-<identity>:<n>`).
    pub(crate) counter: AtomicU32,
    /// Children started and not yet reaped.
    pub(crate) children: Mutex<Vec<Arc<Child>>>,
    /// The default start method chosen with `set_start_method` (None: not chosen yet).
    pub(crate) start_method: Mutex<Option<StartMethod>>,
}

static STATE: AtomicPtr<State> = AtomicPtr::new(std::ptr::null_mut());

impl State {
    #[allow(unsafe_code)] // the section only groups code: "Child text" in process::bootstrap
    #[unsafe(link_section = "multiprocess_child_text")]
    fn new(
        name: String,
        identity: Vec<u32>,
        daemon: bool,
        parent: Option<ParentInfo>,
        start_method: Option<StartMethod>,
    ) -> State {
        State {
            pid: sys::process::getpid(),
            name,
            identity,
            daemon,
            parent,
            counter: AtomicU32::new(1),
            children: Mutex::new(Vec::new()),
            start_method: Mutex::new(start_method),
        }
    }
}

impl State {
    /// The identity and default name of our next child: `Process-1`, then
    /// `Process-2`, ...; `Process-1:1` for the first child of `Process-1`.
    pub(crate) fn next_child(&self) -> (Vec<u32>, String) {
        let mut identity = self.identity.clone();
        identity.push(self.counter.fetch_add(1, Ordering::Relaxed));
        let name = child_name(&identity);
        (identity, name)
    }
}

/// Python's name for the process at `identity` in the tree.
fn child_name(identity: &[u32]) -> String {
    let path: Vec<String> = identity.iter().map(u32::to_string).collect();
    format!("Process-{}", path.join(":"))
}

/// This process's state (created as `MainProcess` on first use).
#[allow(unsafe_code)] // the section only groups code: "Child text" in process::bootstrap
#[unsafe(link_section = "multiprocess_child_text")]
pub(crate) fn state() -> &'static State {
    let p = STATE.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: pointers stored in STATE come from Box::leak and are never freed.
        #[allow(unsafe_code)]
        return unsafe { &*p };
    }
    let fresh = Box::into_raw(Box::new(State::new(
        "MainProcess".into(),
        Vec::new(),
        false,
        None,
        None,
    )));
    match STATE.compare_exchange(
        std::ptr::null_mut(),
        fresh,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        // SAFETY: as above; we just stored it.
        #[allow(unsafe_code)]
        Ok(_) => unsafe { &*fresh },
        Err(existing) => {
            // SAFETY: `fresh` was never shared; `existing` is a leaked Box.
            #[allow(unsafe_code)]
            unsafe {
                drop(Box::from_raw(fresh));
                &*existing
            }
        }
    }
}

/// Replaces this process's state (in a new child, before anything else runs). Inlined
/// into the child's start (one code page less to fault in).
#[inline]
#[allow(unsafe_code)] // the section only groups code: "Child text" in process::bootstrap
#[unsafe(link_section = "multiprocess_child_text")]
pub(crate) fn become_child(
    name: String,
    identity: Vec<u32>,
    daemon: bool,
    parent: Option<ParentInfo>,
    start_method: Option<StartMethod>,
) {
    let fresh = in_child_slot(|| State::new(name, identity, daemon, parent, start_method));
    STATE.store(fresh, Ordering::Release);
}

/// A child's state is written into a static instead of the heap: a forked child's first
/// `malloc` costs four page faults (the allocator's code and three of its data pages,
/// all shared copy-on-write with the parent), more than the rest of an empty task's
/// start-up. Each generation of a line of processes has a slot of its own (a fork
/// server's children are the second generation), so a child never writes over the
/// state it inherited, which the stack that forked may still reference. Past the last
/// slot, a child boxes its state.
#[allow(unsafe_code)] // the section only groups code: "Child text" in process::bootstrap
#[unsafe(link_section = "multiprocess_child_text")]
fn in_child_slot(make: impl FnOnce() -> State) -> *mut State {
    struct Slot(std::cell::UnsafeCell<std::mem::MaybeUninit<State>>);
    #[allow(unsafe_code)]
    // SAFETY: a slot is written once per line of processes, by `become_child` in the
    // generation it belongs to (see `GENERATION`), and only read through `STATE` after.
    unsafe impl Sync for Slot {}
    const GENERATIONS: usize = 4;
    static SLOTS: [Slot; GENERATIONS] =
        [const { Slot(std::cell::UnsafeCell::new(std::mem::MaybeUninit::uninit())) }; GENERATIONS];
    /// Generations of children above this process (0 in a main process), inherited.
    static GENERATION: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let g = GENERATION.fetch_add(1, Ordering::AcqRel);
    let Some(slot) = SLOTS.get(g) else {
        return Box::into_raw(Box::new(make()));
    };
    #[allow(unsafe_code)]
    // SAFETY: slot `g` is this call's alone: every earlier call in this line of
    // processes (in an ancestor, or here) took a smaller number and so wrote (and may
    // reference) only slots before it, and every later call, here or in a descendant,
    // takes a larger one.
    unsafe {
        (*slot.0.get()).write(make()) as *mut State
    }
}

/// After a raw [`crate::fork`]: the same identity, a fresh state, no children. As in
/// Python, the copy keeps the parent's start method (read by the caller before the
/// fork: the mutex may be held by a thread that the child does not have) and numbers
/// its children on from the parent's count.
pub(crate) fn become_forked_copy(start_method: Option<StartMethod>) {
    let old = state();
    let parent = Some(ParentInfo::new(old.pid, old.name.clone()));
    let next = old.counter.load(Ordering::Relaxed);
    become_child(
        old.name.clone(),
        old.identity.clone(),
        old.daemon,
        parent,
        start_method,
    );
    state().counter.store(next, Ordering::Relaxed);
}

/// The start method chosen with `set_start_method`, if any.
pub(crate) fn chosen_start_method() -> Option<StartMethod> {
    *state()
        .start_method
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Registers the exit handler once per program: it terminates daemonic children and
/// joins the others, as Python's `atexit` hook does.
pub(crate) fn ensure_exit_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| sys::process::at_exit(exit_handler));
}

extern "C" fn exit_handler() {
    exit_cleanup();
}

/// Terminates daemonic children, then joins every child. Runs at normal exit of any
/// process, and at the end of a child's task.
#[allow(unsafe_code)] // the section only groups code: "Child text" in process::bootstrap
#[unsafe(link_section = "multiprocess_child_text")]
pub(crate) fn exit_cleanup() {
    let st = state();
    if st.pid != sys::process::getpid() {
        return;
    }
    let children: Vec<Arc<Child>> = match st.children.lock() {
        Ok(mut c) => std::mem::take(&mut *c),
        Err(p) => std::mem::take(&mut *p.into_inner()),
    };
    for c in &children {
        if c.daemon && c.exitcode().is_none() {
            let _ = c.signal(sys::process::SIGTERM);
        }
    }
    for c in &children {
        if c.raw_fork {
            let _ = c.poll_exit(Some(std::time::Instant::now()));
        } else {
            let _ = c.poll_exit(None);
        }
    }
}

/// What every start of a child does first: refuses in a daemonic process (as
/// Python), reaps finished children, and makes sure children are joined at exit.
pub(crate) fn before_start() -> Result<&'static State> {
    let me = state();
    if me.daemon {
        return Err(Error::new(
            ErrorKind::NotPermitted,
            "daemonic processes are not allowed to have children",
        ));
    }
    reap_finished();
    ensure_exit_handler();
    Ok(me)
}

/// Reaps finished children and drops them from the registry.
pub(crate) fn reap_finished() {
    let st = state();
    let mut kids = st.children.lock().unwrap_or_else(|e| e.into_inner());
    kids.retain(|c| matches!(c.poll_exit(Some(std::time::Instant::now())), Ok(None)));
}

/// A value that belongs to one process, behind a mutex: a process forked from ours
/// gets a fresh `T::default()`, never our copy.
///
/// A forked child must not lock a mutex of its parent's (another thread may have held
/// it at the moment of `fork`, and that thread does not exist in the child), and what
/// the mutex guards (a launcher thread's channel, a connection to a fork server) is
/// the parent's, not the child's. So the cell remembers which [`State`] it was made
/// under; a process whose state was replaced ([`become_child`],
/// [`become_forked_copy`]) finds the mismatch on first use and installs a fresh value.
/// The old one is leaked, as the parent's state is.
pub(crate) struct PerProcess<T> {
    slot: AtomicPtr<Owned<T>>,
}

struct Owned<T> {
    /// The `State` this value belongs to.
    owner: *const State,
    value: Mutex<T>,
}

impl<T: Default> PerProcess<T> {
    /// An empty cell, for a `static`.
    pub(crate) const fn new() -> PerProcess<T> {
        PerProcess {
            slot: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// This process's value (made on first use in each process).
    pub(crate) fn get(&'static self) -> &'static Mutex<T> {
        let me: *const State = state();
        loop {
            let p = self.slot.load(Ordering::Acquire);
            // SAFETY: non-null pointers in `slot` come from `Box::into_raw` below and
            // are never freed (a replaced value is leaked).
            #[allow(unsafe_code)]
            if let Some(cur) = unsafe { p.as_ref() }
                && std::ptr::eq(cur.owner, me)
            {
                return &cur.value;
            }
            let fresh = Box::into_raw(Box::new(Owned {
                owner: me,
                value: Mutex::new(T::default()),
            }));
            match self
                .slot
                .compare_exchange(p, fresh, Ordering::AcqRel, Ordering::Acquire)
            {
                // SAFETY: just stored; never freed.
                #[allow(unsafe_code)]
                Ok(_) => return unsafe { &(*fresh).value },
                Err(_) => {
                    // Another thread installed one first: use that one.
                    // SAFETY: `fresh` was never shared.
                    #[allow(unsafe_code)]
                    drop(unsafe { Box::from_raw(fresh) });
                }
            }
        }
    }
}

// SAFETY: `owner` is only compared, never dereferenced, and the value sits behind a
// mutex, so sharing the cell shares only `Mutex<T>`, which is `Sync` for `T: Send`.
#[allow(unsafe_code)]
unsafe impl<T: Send> Sync for PerProcess<T> {}

#[cfg(test)]
mod tests {
    use super::child_name;

    #[test]
    fn children_are_named_by_their_place_in_the_tree() {
        assert_eq!(child_name(&[1]), "Process-1");
        assert_eq!(child_name(&[1, 2]), "Process-1:2");
        assert_eq!(child_name(&[3, 1, 4]), "Process-3:1:4");
    }
}
