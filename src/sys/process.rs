//! Creating and ending processes: `fork`, exec of the current binary, `_exit`,
//! parent-death signals, `atexit`, and the facts `cpu_count` needs.
//!
//! # Caveats
//!
//! `fork` in a multithreaded process copies only the calling thread. Locks held by other
//! threads at that moment stay locked forever in the child, so a forked child should run
//! self-contained work. Rust's global allocator (glibc malloc) is safe after fork because
//! glibc takes its arenas' locks around `fork`. The std `stdout` lock is not: a child
//! forked while another thread was printing deadlocks on its first `println!`, so
//! callers hold it across `fork`; libtest's output capture has a lock of its own that
//! nothing on stable Rust can take, which is why the launcher is a
//! [`spawn_bare_thread`] (see `StartMethod`'s caveats).
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that created the child exits, not when the
//! process does. The caller of [`fork`] and [`spawn_self`] must therefore be a thread
//! that lives as long as the process (the main thread, or the launcher thread of
//! `process::launcher`).

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::cvt;

/// `SIGTERM`, `SIGKILL`.
pub(crate) const SIGTERM: i32 = libc::SIGTERM;
pub(crate) const SIGKILL: i32 = libc::SIGKILL;

/// The calling process's pid.
#[allow(unsafe_code)] // the section only groups code: "Child text" in process::bootstrap
#[unsafe(link_section = "multiprocess_child_text")]
pub(crate) fn getpid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// The parent's pid (0 if we have none, for example in a container's init).
#[allow(unsafe_code)] // the section only groups code: "Child text" in process::bootstrap
#[unsafe(link_section = "multiprocess_child_text")]
pub(crate) fn getppid() -> u32 {
    rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32)
}

/// Has this process only the calling thread, and never had another? Read from glibc's
/// `__libc_single_threaded` (glibc 2.32 and later; found with `dlsym` once, since older
/// libcs and musl lack it): true until the first `pthread_create`, then false for good
/// (glibc 2.36 does not set it again in a fork child). `false` where it cannot tell.
/// Threads made by a bare `clone` are not counted (glibc supports no such thread).
///
/// A fork from a process with no other thread can skip the locks that only keep other
/// threads' half-done work out of the child (see `process::start`).
pub(crate) fn single_threaded() -> bool {
    use std::sync::OnceLock;
    /// The flag's address, 0 if this libc has none.
    static FLAG: OnceLock<usize> = OnceLock::new();
    let addr = *FLAG.get_or_init(|| {
        // SAFETY: `dlsym` with a valid NUL-terminated name only looks the symbol up.
        unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__libc_single_threaded".as_ptr()) as usize }
    });
    if addr == 0 {
        return false;
    }
    // SAFETY: the symbol is glibc's `char __libc_single_threaded`, which lives as long as
    // the process; it is written only by the one thread of a single-threaded process
    // (which is us, if it reads true), so a relaxed atomic read of it is sound.
    unsafe { std::sync::atomic::AtomicU8::from_ptr(addr as *mut u8) }
        .load(std::sync::atomic::Ordering::Relaxed)
        != 0
}

/// Is the calling thread the process's main thread?
pub(crate) fn is_main_thread() -> bool {
    rustix::thread::gettid() == rustix::process::getpid()
}

/// What [`fork`] returns.
pub(crate) enum Forked {
    /// In the parent, with the child's pid.
    Parent(u32),
    /// In the child.
    Child,
}

/// `fork(2)`.
///
/// # Safety
///
/// In the child only the calling thread exists; the caller must make the child run
/// work that does not depend on locks other threads may have held (see the module's
/// caveats), and must end it with [`exit_now`] rather than by returning into code that
/// expects to run in the parent.
pub(crate) unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the caller upholds the contract above.
    let pid = cvt(unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        Forked::Child
    } else {
        Forked::Parent(pid as u32)
    })
}

/// What a *sibling fork* needs from this thread's C library state, read once by
/// [`SiblingFork::probe`] in a process that has a single thread.
///
/// A sibling fork is `fork(2)` with `CLONE_PARENT`: the child's parent is *our* parent,
/// not us. The fork server uses it so that its children are its client's own children:
/// the client reaps them with `waitid` and they die with the client's long-lived thread
/// by `PR_SET_PDEATHSIG`, exactly like fork-started children (see
/// `process::forkserver`, "Lifetime").
///
/// glibc's `fork` cannot pass `CLONE_PARENT`, so the fork is a raw `clone3`, and it does
/// by hand the two things glibc's `_Fork` does for the thread that forks: the kernel
/// writes the child's tid into the thread descriptor (`CLONE_CHILD_SETTID` on the
/// address glibc registered with `set_tid_address`, read back with
/// `PR_GET_TID_ADDRESS`), and the child registers the same robust-futex list
/// (`set_robust_list`; the kernel gives a new process none). What glibc's `fork` does
/// around `_Fork` (atfork handlers, taking and resetting malloc's and stdio's locks,
/// forgetting other threads' descriptors) is only needed when other threads exist:
/// hence the single-thread condition, checked by the probe. (The one exception the
/// fork server makes is libtest's main thread, which only waits for the test thread
/// that runs the server; it takes no lock a child could need: the child's allocations
/// go to its own thread's malloc arena.)
#[derive(Debug, Clone, Copy)]
pub(crate) struct SiblingFork {
    tid_address: u64,
    robust_head: usize,
    robust_len: usize,
}

impl SiblingFork {
    /// `Some` if this process has at most `threads` threads (the caller's, and others
    /// it knows to be idle forever) and the kernel tells the two addresses; call it
    /// from the thread that will fork.
    pub(crate) fn probe(threads: usize) -> Option<SiblingFork> {
        if std::fs::read_dir("/proc/self/task").ok()?.count() > threads {
            return None;
        }
        let mut tid_address: *mut libc::c_int = std::ptr::null_mut();
        let mut robust_head: *mut libc::c_void = std::ptr::null_mut();
        let mut robust_len: libc::size_t = 0;
        // SAFETY: both calls only write the pointers we pass, which point to locals of
        // the right types (PR_GET_TID_ADDRESS stores an `int *`; get_robust_list a
        // `struct robust_list_head *` and a `size_t`).
        let ok = unsafe {
            libc::prctl(
                libc::PR_GET_TID_ADDRESS,
                &mut tid_address as *mut _,
                0,
                0,
                0,
            ) == 0
                && libc::syscall(
                    libc::SYS_get_robust_list,
                    0,
                    &mut robust_head as *mut _,
                    &mut robust_len as *mut _,
                ) == 0
        };
        // The tid address must point at our own tid, as glibc's does.
        // SAFETY: a non-null address the kernel holds for this thread is glibc's
        // `pthread.tid`, a live `int` of this thread's descriptor.
        let ours = ok
            && !tid_address.is_null()
            && unsafe { std::ptr::read_volatile(tid_address) }
                == rustix::thread::gettid().as_raw_nonzero().get();
        ours.then_some(SiblingFork {
            tid_address: tid_address as u64,
            robust_head: robust_head as usize,
            robust_len,
        })
    }
}

/// `fork(2)` with `CLONE_PARENT`: see [`SiblingFork`]. Fails with
/// [`io::ErrorKind::Unsupported`] where the kernel will not make sibling forks at all
/// (`ENOSYS`: no `clone3`, before Linux 5.3, or filtered by a seccomp profile; `EPERM`:
/// filtered; `EINVAL`: we are a container's init): the caller then forks normally.
/// Other errors (`EAGAIN`: out of processes) are those of `fork`.
///
/// # Safety
///
/// As [`fork`], and: `how` was probed in this process, on the calling thread, and the
/// process still has only that thread.
pub(crate) unsafe fn fork_sibling(how: &SiblingFork) -> io::Result<Forked> {
    /// `struct clone_args` up to `tls` (`CLONE_ARGS_SIZE_VER0`).
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
    }
    let args = CloneArgs {
        flags: (libc::CLONE_PARENT | libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID) as u64,
        pidfd: 0,
        child_tid: how.tid_address,
        parent_tid: 0,
        // Must be 0 with CLONE_PARENT: the child gets our own exit signal (SIGCHLD,
        // from our spawn), as our parent's other children do.
        exit_signal: 0,
        stack: 0,
        stack_size: 0,
        tls: 0,
    };
    // SAFETY: clone3 without CLONE_VM and without a stack is fork: the child runs on a
    // copy of this stack; the caller's contract covers the rest.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ENOSYS | libc::EPERM | libc::EINVAL) => {
                io::Error::new(io::ErrorKind::Unsupported, e)
            }
            _ => e,
        });
    }
    if pid == 0 {
        // SAFETY: the list head is this thread's (glibc's `pthread.robust_head`), which
        // the child's copy of memory holds at the same address.
        unsafe { libc::syscall(libc::SYS_set_robust_list, how.robust_head, how.robust_len) };
        // No atfork handlers ran: forget the cached ids by hand.
        after_fork_in_child();
        return Ok(Forked::Child);
    }
    Ok(Forked::Parent(pid as u32))
}

/// Ends the process at once with `code`: no atexit handlers, no destructors.
#[allow(unsafe_code)] // the section only groups code: "Child text" in process::bootstrap
#[unsafe(link_section = "multiprocess_child_text")]
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}

/// Asks the kernel to SIGKILL us when our parent (thread) exits, then checks that the
/// parent is still `expected_parent`; if it already died, we die now.
///
/// Inlined, with rustix's inline system calls rather than libc's wrappers: in a fresh
/// fork child every page of code run for the first time is a page fault.
#[inline(always)]
pub(crate) fn die_with_parent(expected_parent: u32) {
    // Cannot fail: SIGKILL is a valid signal.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if getppid() != expected_parent {
        kill_self(SIGKILL);
    }
}

/// Makes the program `cmd` will run get SIGKILL when the calling *thread* exits (see
/// the module's caveats): helper servers such as a private `redis-server` then never
/// outlive their owner, even after a SIGKILL of it.
#[cfg(feature = "redis")]
pub(crate) fn kill_with_this_thread(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and makes one async-signal-safe
    // system call, prctl, with no memory effects.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Sends `sig` to ourselves with `kill(2)` (the whole process, not one thread).
/// Clears this process's parent-death signal (a child started with
/// `die_with_parent(false)`).
pub(crate) fn outlive_parent() {
    // SAFETY: prctl(PR_SET_PDEATHSIG, 0) clears the setting; no memory effects.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0);
    }
}

pub(crate) fn kill_self(sig: i32) {
    // SAFETY: kill on our own pid has no memory effects.
    unsafe { libc::kill(libc::getpid(), sig) };
}

/// Spawns a fresh copy of the current binary (`/proc/self/exe`) with `posix_spawn`
/// (`CLONE_VM | CLONE_VFORK` in glibc: no copy of our page tables), with `env` added
/// to our environment (or to `base` instead of ours, when given) and `inherit` (a close-on-exec fd of ours) left open in the
/// child under the same number.
///
/// Until the child calls `init`, its standard output is `/dev/null` (so a test
/// harness's "running 1 test" banner stays out of the child's output); the real
/// stdout is inherited as `saved_stdout`, which `init` puts back on fd 1.
///
/// The child sets `PR_SET_PDEATHSIG` itself, first thing in `init`, and then checks
/// that its parent is still the pid it was given; a parent that died in between is
/// caught by that check.
pub(crate) fn spawn_self(
    args: &[OsString],
    env: &[(OsString, OsString)],
    base: Option<&[(OsString, OsString)]>,
    inherit: BorrowedFd<'_>,
    saved_stdout: BorrowedFd<'_>,
) -> io::Result<u32> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let cstr = |b: &[u8]| {
        CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in argument"))
    };
    let exe = cstr(b"/proc/self/exe")?;
    let arg0 = std::env::args_os()
        .next()
        .unwrap_or_else(|| "multiprocess-child".into());
    let mut argv = vec![cstr(arg0.as_bytes())?];
    for a in args {
        argv.push(cstr(a.as_bytes())?);
    }
    let mut envs = Vec::new();
    let ours: Vec<(OsString, OsString)>;
    let base = match base {
        Some(b) => b,
        None => {
            ours = std::env::vars_os().collect();
            &ours
        }
    };
    for (k, v) in base {
        if env.iter().any(|(ek, _)| ek == k) {
            continue;
        }
        envs.push(cstr(&[k.as_bytes(), b"=", v.as_bytes()].concat())?);
    }
    for (k, v) in env {
        envs.push(cstr(&[k.as_bytes(), b"=", v.as_bytes()].concat())?);
    }
    let mut argv_p: Vec<*mut libc::c_char> = argv.iter().map(|c| c.as_ptr() as *mut _).collect();
    argv_p.push(std::ptr::null_mut());
    let mut envp: Vec<*mut libc::c_char> = envs.iter().map(|c| c.as_ptr() as *mut _).collect();
    envp.push(std::ptr::null_mut());
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    let mut pid: libc::pid_t = 0;
    // SAFETY: every pointer passed is valid for the call: the file actions are
    // initialised before use and destroyed after; argv/envp are NUL-terminated arrays
    // of C strings that outlive the call.
    let rc = unsafe {
        let mut fa: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        libc::posix_spawn_file_actions_init(&mut fa);
        // dup2(fd, fd) in a file action clears FD_CLOEXEC (glibc >= 2.29, POSIX 2024).
        libc::posix_spawn_file_actions_adddup2(&mut fa, inherit.as_raw_fd(), inherit.as_raw_fd());
        libc::posix_spawn_file_actions_adddup2(
            &mut fa,
            saved_stdout.as_raw_fd(),
            saved_stdout.as_raw_fd(),
        );
        libc::posix_spawn_file_actions_adddup2(&mut fa, null.as_raw_fd(), 1);
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        libc::posix_spawnattr_init(&mut attr);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::posix_spawnattr_setsigmask(&mut attr, &empty);
        libc::posix_spawnattr_setflags(&mut attr, libc::POSIX_SPAWN_SETSIGMASK as libc::c_short);
        let rc = libc::posix_spawn(
            &mut pid,
            exe.as_ptr(),
            &fa,
            &attr,
            argv_p.as_ptr(),
            envp.as_ptr(),
        );
        libc::posix_spawnattr_destroy(&mut attr);
        libc::posix_spawn_file_actions_destroy(&mut fa);
        rc
    };
    drop(null);
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(pid as u32)
}

/// A close-on-exec duplicate of our standard output, for [`spawn_self`].
pub(crate) fn dup_stdout() -> io::Result<std::os::fd::OwnedFd> {
    super::retry(|| {
        rustix::io::fcntl_dupfd_cloexec(std::os::fd::AsFd::as_fd(&std::io::stdout()), 3)
    })
}

/// Puts `saved` back on fd 1 (see [`spawn_self`]) and closes it.
pub(crate) fn restore_stdout(saved: std::os::fd::OwnedFd) {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: dup2 onto fd 1 of an fd we own; no memory effects.
    unsafe { libc::dup2(saved.as_raw_fd(), 1) };
}

/// Registers `f` to run when the process exits normally (`exit`, return from `main`).
pub(crate) fn at_exit(f: extern "C" fn()) {
    // SAFETY: `f` is a plain function; atexit only stores the pointer.
    unsafe { libc::atexit(f) };
}

/// In a forked child that runs a task: from now on, `exit` (what
/// `std::process::exit` calls) runs `cleanup` and ends the process with `_exit`,
/// before any exit handler inherited from the parent can run: a C library's `atexit`
/// handler (or a C++ static destructor) belongs to the parent and may delete its files
/// or write to its connections. Python's forked children end with `os._exit` for the
/// same reason. Handlers that the task registers later still run, first (they are the
/// child's own). C stdio buffers are not flushed (`_exit` skips that, as `os._exit`
/// does); `cleanup` flushes Rust's standard streams.
///
/// glibc's `on_exit`, which hands the handler the exit status; elsewhere a no-op.
#[allow(unsafe_code)] // the section only groups code: "Child text" in process::bootstrap
#[unsafe(link_section = "multiprocess_child_text")]
pub(crate) fn end_at_exit(cleanup: fn()) {
    #[cfg(target_env = "gnu")]
    {
        unsafe extern "C" {
            fn on_exit(
                f: extern "C" fn(libc::c_int, *mut libc::c_void),
                arg: *mut libc::c_void,
            ) -> libc::c_int;
        }
        extern "C" fn end(status: libc::c_int, arg: *mut libc::c_void) {
            // SAFETY: `arg` is the `fn()` that `end_at_exit` was given, cast below.
            let cleanup = unsafe { std::mem::transmute::<*mut libc::c_void, fn()>(arg) };
            cleanup();
            exit_now(status)
        }
        // SAFETY: `end` is a plain function and `arg` a function pointer, valid for the
        // whole process; on_exit only stores them.
        unsafe { on_exit(end, cleanup as *mut libc::c_void) };
    }
    #[cfg(not(target_env = "gnu"))]
    let _ = cleanup;
}

/// In a child of the fork server, whose OS parent is the server and not the process
/// that asked for it (the *client*): kill this process with `SIGKILL` as soon as the
/// client has exited. `client` is a pidfd of the client, opened by the server while the
/// client was its parent, so it cannot name a recycled pid; it becomes readable only
/// once the whole client process is gone (every thread), which is what makes this
/// exact where a parent-death signal is not (see `process::forkserver`, "Lifetime").
///
/// A small thread does the watching (one `poll`, forever). It runs with every signal
/// blocked, so signals meant for the process reach the task's own threads as before
/// (a task that blocks `SIGTERM` and `sigwait`s for it still gets it).
pub(crate) fn die_with_client(client: std::os::fd::OwnedFd) -> io::Result<()> {
    use std::os::fd::AsFd;
    // SAFETY: sigfillset and pthread_sigmask on local, initialised sets. The new thread
    // inherits the full mask at creation, so it never runs with signals unblocked.
    let old = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    };
    let spawned = std::thread::Builder::new()
        .name("mp-parent-watch".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            loop {
                match super::poll::wait_readable(client.as_fd(), None) {
                    Ok(true) => kill_self(SIGKILL),
                    // No deadline, so only a failing poll (ENOMEM) gets here: retry.
                    _ => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        });
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    spawned.map(drop)
}

/// Starts a detached thread running `f` that inherits none of the caller's Rust
/// thread state, unlike `std::thread::spawn`, which hands the new thread the caller's
/// *output capture* (libtest's buffer for `print!` in a test, on stable Rust only
/// reachable through `std::thread`). The launcher thread forks children: a child that
/// is a copy of a capturing thread would print into a buffer it never shows, and
/// would deadlock on the buffer's lock if another thread of the test held it at the
/// fork. A thread created here prints to the real standard streams.
///
/// A panic in `f` is caught (it must not unwind into C); the thread then ends.
pub(crate) fn spawn_bare_thread(name: &str, f: Box<dyn FnOnce() + Send>) -> io::Result<()> {
    extern "C" fn start(arg: *mut libc::c_void) -> *mut libc::c_void {
        // SAFETY: `arg` is the `Box` leaked below for exactly this thread.
        let f = unsafe { Box::from_raw(arg as *mut Box<dyn FnOnce() + Send>) };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        std::ptr::null_mut()
    }
    let arg = Box::into_raw(Box::new(f)) as *mut libc::c_void;
    let cname = std::ffi::CString::new(name).unwrap_or_default();
    // SAFETY: the attribute object is initialised before use and destroyed after;
    // `start` takes back ownership of `arg` exactly once, and only if the thread was
    // created (else we do, here).
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        let mut t: libc::pthread_t = std::mem::zeroed();
        let rc = libc::pthread_create(&mut t, &attr, start, arg);
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 {
            drop(Box::from_raw(arg as *mut Box<dyn FnOnce() + Send>));
            return Err(io::Error::from_raw_os_error(rc));
        }
        libc::pthread_setname_np(t, cname.as_ptr());
    }
    Ok(())
}

/// The CPUs this process may run on: the affinity mask, capped by a cgroup v2 CPU
/// quota (`cpu.max`), at least 1.
pub(crate) fn usable_cpus() -> usize {
    let affinity = rustix::thread::sched_getaffinity(None)
        .map(|set| set.count() as usize)
        .unwrap_or(0);
    let online = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut n = if affinity > 0 { affinity } else { online };
    if let Some(q) = cgroup_quota() {
        n = n.min(q);
    }
    n.max(1)
}

fn cgroup_quota() -> Option<usize> {
    let cg = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cg.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mut dir = std::path::PathBuf::from("/sys/fs/cgroup");
    dir.push(path.trim_start_matches('/'));
    // Walk up: a parent's quota caps us too.
    let mut best: Option<usize> = None;
    loop {
        if let Ok(s) = std::fs::read_to_string(dir.join("cpu.max")) {
            let mut it = s.split_whitespace();
            if let (Some(q), Some(p)) = (it.next(), it.next())
                && let (Ok(q), Ok(p)) = (q.parse::<u64>(), p.parse::<u64>())
                && p > 0
            {
                let n = q.div_ceil(p).max(1) as usize;
                best = Some(best.map_or(n, |b| b.min(n)));
            }
        }
        if !dir.pop() || !dir.starts_with("/sys/fs/cgroup") || dir.as_os_str() == "/sys/fs/cgroup" {
            break;
        }
    }
    best
}

/// What `/proc/<tid>/stat` says about a thread, for the robust locks' owner check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThreadLife {
    /// A thread with this id runs; it started `start` clock ticks after boot.
    Running {
        /// Field 22 of the stat line (`starttime`, in `USER_HZ` ticks since boot).
        start: u64,
    },
    /// No thread has this id, or it is a zombie: it will never release anything again.
    Gone,
    /// `/proc` could not be read (not mounted?): we cannot tell.
    Unknown,
}

/// Parses a `/proc/<tid>/stat` line into what [`thread_life`] returns: the state
/// (field 3; `Z` and `X` are dead) and the start time (field 22). The command name
/// (field 2) is in parentheses and may itself contain spaces and `)`, so the fields
/// are counted from the *last* `)`. `None` if the line is malformed.
pub(crate) fn parse_stat(line: &str) -> Option<ThreadLife> {
    let (_, rest) = line.rsplit_once(')')?;
    let mut fields = rest.split_ascii_whitespace();
    // Field 3 is the first after the name; field 22 is 19 further on.
    let state = fields.next()?;
    let start = fields.nth(18)?.parse::<u64>().ok()?;
    Some(if matches!(state, "Z" | "X" | "x") {
        ThreadLife::Gone
    } else {
        ThreadLife::Running { start }
    })
}

/// Is there a live thread `tid` (of any process in our pid namespace), and when did
/// it start? Reads `/proc/<tid>/stat`, which exists for every thread id, not only for
/// process leaders, and describes that very thread.
pub(crate) fn thread_life(tid: u32) -> ThreadLife {
    match std::fs::read_to_string(format!("/proc/{tid}/stat")) {
        Ok(s) => parse_stat(&s).unwrap_or(ThreadLife::Unknown),
        // No such id, unless `/proc` itself is missing (not mounted in this container).
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) => {
            if std::fs::metadata("/proc/self/stat").is_ok() {
                ThreadLife::Gone
            } else {
                ThreadLife::Unknown
            }
        }
        Err(_) => ThreadLife::Unknown,
    }
}

thread_local! {
    /// This thread's id, 0 until cached.
    static TID: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// `(tid, start)` for [`thread_identity`]; tid 0 until cached.
    static IDENTITY: std::cell::Cell<(u32, u32)> = const { std::cell::Cell::new((0, 0)) };
}

/// Forgets the forking thread's cached ids in the child (a `pthread_atfork` child
/// handler): the child's only thread is that thread, under a new id. The caches are
/// const-initialised cells without destructors, so touching them here is a plain
/// write to thread-local memory (async-signal-safe). Registered before any id is
/// cached, so no cache survives a fork.
extern "C" fn after_fork_in_child() {
    TID.with(|c| c.set(0));
    IDENTITY.with(|c| c.set((0, 0)));
}

/// The calling thread's id (a pid-space number, unique among live threads).
///
/// Cached per thread: `gettid` is a system call, and the lock fast path needs the id
/// on every acquire. A forked child forgets the cache (see `after_fork_in_child`):
/// checking a cell costs the fast path nothing more than reading it.
#[inline]
pub(crate) fn gettid() -> u32 {
    let tid = TID.with(|c| c.get());
    if tid != 0 {
        return tid;
    }
    gettid_slow()
}

#[cold]
#[inline(never)]
fn gettid_slow() -> u32 {
    static ATFORK: std::sync::Once = std::sync::Once::new();
    ATFORK.call_once(|| {
        // SAFETY: registers a handler that only writes this thread's plain cells
        // (async-signal-safe).
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
    let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
    TID.with(|c| c.set(tid));
    tid
}

/// The calling thread's identity for the robust locks: its id and the low 32 bits of
/// its start time (see [`thread_life`]; 0 if `/proc` cannot be read). No later thread
/// that gets the same id has the same start time, except one started within the same
/// clock tick (see `sync::raw`'s design notes).
///
/// Cached per thread like [`gettid`] (reading the start time costs an `open` and a
/// `read` of `/proc`, once per thread), and invalidated the same way in a forked child.
#[inline]
pub(crate) fn thread_identity() -> (u32, u32) {
    let id = IDENTITY.with(|c| c.get());
    if id.0 != 0 {
        return id;
    }
    thread_identity_slow()
}

#[cold]
#[inline(never)]
fn thread_identity_slow() -> (u32, u32) {
    let tid = gettid();
    let start = match thread_life(tid) {
        ThreadLife::Running { start } => start as u32,
        ThreadLife::Gone | ThreadLife::Unknown => 0,
    };
    IDENTITY.with(|c| c.set((tid, start)));
    (tid, start)
}

/// Tells glibc's malloc to keep freed memory in the heap instead of returning it to
/// the system at once (large blocks from the heap, trimming only past 256 MiB).
/// A pool worker allocates and frees the same large buffers for every chunk; with
/// the defaults each one is a fresh mmap whose pages all fault again (about 2.5 us a
/// page in this VM). Harmless under another allocator (the settings are unused).
pub(crate) fn keep_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets allocator parameters; any values are allowed.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// A pipe, both ends close-on-exec: `(read, write)`.
pub(crate) fn pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    super::retry(|| rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC))
}

/// Puts `fd` on standard stream `target` (0, 1 or 2) with `dup2`; the new descriptor
/// is not close-on-exec, as a standard stream must be. Flushes Rust's buffered
/// standard output first, so nothing written before lands in the new file.
///
/// If `fd` already is `target` (a child whose standard stream was closed received
/// it under that number), only its close-on-exec flag is cleared: the caller must
/// then not close it.
pub(crate) fn redirect_std(fd: BorrowedFd<'_>, target: i32) -> io::Result<()> {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    if fd.as_raw_fd() == target {
        return rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty()).map_err(Into::into);
    }
    // SAFETY: dup2 of an open fd we borrow onto a standard stream; no memory effects.
    cvt(unsafe { libc::dup2(fd.as_raw_fd(), target) }).map(drop)
}

/// What turns this process's environment into a wanted one: the names to remove and
/// the variables to set. Made by [`env_diff`]; empty when the two are the same.
#[derive(Debug, Default)]
pub(crate) struct EnvDiff {
    remove: Vec<OsString>,
    set: Vec<(OsString, OsString)>,
}

/// What [`EnvDiff::apply`] must do to make this process's environment exactly `vars`
/// (the last value of a name wins, as in `environ`). Only reads the environment.
pub(crate) fn env_diff(vars: &[(OsString, OsString)]) -> EnvDiff {
    use std::collections::HashMap;
    let want: HashMap<&OsString, &OsString> = vars.iter().map(|(k, v)| (k, v)).collect();
    let mut diff = EnvDiff::default();
    for (k, _) in std::env::vars_os() {
        if !want.contains_key(&k) && !k.is_empty() {
            diff.remove.push(k);
        }
    }
    for (k, v) in want {
        if std::env::var_os(k).as_ref() != Some(v) {
            diff.set.push((k.clone(), v.clone()));
        }
    }
    diff
}

impl EnvDiff {
    /// Nothing to change.
    pub(crate) fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty()
    }

    /// Changes the environment as [`env_diff`] found it must.
    ///
    /// # Safety
    ///
    /// No other thread may read or write the environment meanwhile: called in a new
    /// child before its task runs, where the only other threads (a fork-server child's
    /// parent watcher, libtest's idle threads in a spawned test binary) never touch it.
    pub(crate) unsafe fn apply(&self) {
        for k in &self.remove {
            // SAFETY: the caller guarantees no concurrent access to the environment.
            unsafe { std::env::remove_var(k) };
        }
        for (k, v) in &self.set {
            // SAFETY: as above.
            unsafe { std::env::set_var(k, v) };
        }
    }
}

/// Makes the environment exactly `vars` (removes every other variable).
///
/// # Safety
///
/// As [`EnvDiff::apply`].
pub(crate) unsafe fn replace_env(vars: &[(OsString, OsString)]) {
    // SAFETY: the caller's guarantee.
    unsafe { env_diff(vars).apply() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "2895 (cat) R 2890 2895 2890 34816 2895 4194304 92 0 0 0 0 0 0 0 20 0 1 0 \
                        142257 2510848 256 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 \
                        0 0 0";

    #[test]
    fn env_diff_is_what_differs() {
        let now: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        assert!(env_diff(&now).is_empty());
        let mut more = now.clone();
        more.push(("MP_ENV_DIFF_TEST".into(), "1".into()));
        more.push(("MP_ENV_DIFF_TEST".into(), "2".into())); // the last one wins
        let d = env_diff(&more);
        assert!(d.remove.is_empty());
        assert_eq!(d.set, [("MP_ENV_DIFF_TEST".into(), "2".into())]);
        let (gone, _) = &now[0];
        let fewer: Vec<_> = now.iter().filter(|(k, _)| k != gone).cloned().collect();
        let d = env_diff(&fewer);
        assert_eq!(d.remove, std::slice::from_ref(gone));
        assert!(d.set.is_empty());
    }

    #[test]
    fn stat_line_gives_state_and_start() {
        assert_eq!(
            parse_stat(LINE),
            Some(ThreadLife::Running { start: 142257 })
        );
    }

    #[test]
    fn stat_name_with_spaces_and_parens() {
        let line = LINE.replace("(cat)", "(a) b ) R 1 (c)");
        assert_eq!(
            parse_stat(&line),
            Some(ThreadLife::Running { start: 142257 })
        );
    }

    #[test]
    fn stat_zombie_and_dead_are_gone() {
        for state in ["Z", "X"] {
            let line = LINE.replace(") R ", &format!(") {state} "));
            assert_eq!(parse_stat(&line), Some(ThreadLife::Gone), "{state}");
        }
        let sleeping = LINE.replace(") R ", ") S ");
        assert!(matches!(
            parse_stat(&sleeping),
            Some(ThreadLife::Running { .. })
        ));
    }

    #[test]
    fn stat_malformed_lines() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("12 (x"), None);
        assert_eq!(parse_stat("12 (x) R 1 2 3"), None, "too short");
        let bad = LINE.replace("142257", "soon");
        assert_eq!(parse_stat(&bad), None, "start not a number");
    }

    #[test]
    fn identity_is_our_start_time() {
        let (tid, start) = thread_identity();
        assert_eq!(tid, gettid());
        match thread_life(tid) {
            ThreadLife::Running { start: s } => assert_eq!(s as u32, start),
            other => panic!("we are not running? {other:?}"),
        }
        // Another thread: another id, and the cache is per thread.
        let (other, _) = std::thread::spawn(thread_identity).join().unwrap();
        assert_ne!(other, tid);
        assert_eq!(thread_identity(), (tid, start));
    }

    /// `exit` in a forked task runs the task's cleanup, then ends with the status it
    /// was given, and no exit handler of the parent runs (one here would end the child
    /// with 99).
    #[cfg(target_env = "gnu")]
    #[test]
    fn a_forked_task_ends_without_the_parents_exit_handlers() {
        use std::sync::atomic::{AtomicBool, Ordering};
        static IN_CHILD: AtomicBool = AtomicBool::new(false);
        extern "C" fn inherited() {
            if IN_CHILD.load(Ordering::Relaxed) {
                exit_now(99)
            }
        }
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| at_exit(inherited));
        let exit_with = |code: i32, cleanup: fn()| {
            in_fork_child(move || {
                IN_CHILD.store(true, Ordering::Relaxed);
                end_at_exit(cleanup);
                #[allow(unsafe_code)]
                // SAFETY: `exit` in a fork child whose exit handlers are ours and the
                // test's, both of which end the process.
                unsafe {
                    libc::exit(code)
                }
            })
        };
        assert_eq!(exit_with(7, || {}), Some(7), "the status is kept");
        assert_eq!(
            exit_with(7, || exit_now(8)),
            Some(8),
            "the cleanup runs first"
        );
    }

    /// Forks a child that `_exit`s with 0 if `check` says true, 1 otherwise, and reaps
    /// it within a bound (a child that hangs is killed, and fails the test); its code.
    ///
    /// `check` must keep to what a fork child of a threaded process may do: read
    /// memory, make system calls, use malloc (which glibc's fork leaves usable).
    fn in_fork_child(check: impl FnOnce() -> bool) -> Option<i32> {
        use super::super::pidfd;
        use std::os::fd::AsFd;
        #[allow(unsafe_code)]
        // SAFETY: the child only runs `check` (see above) and `_exit`s.
        match unsafe { fork() }.unwrap() {
            Forked::Child => exit_now(if check() { 0 } else { 1 }),
            Forked::Parent(pid) => {
                let fd = pidfd::open(pid).unwrap();
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                let exited = pidfd::wait_exit(fd.as_fd(), Some(deadline)).unwrap();
                if !exited {
                    pidfd::send_signal(fd.as_fd(), libc::SIGKILL).unwrap();
                    pidfd::wait_exit(fd.as_fd(), None).unwrap();
                }
                let code = pidfd::try_reap(fd.as_fd()).unwrap();
                assert!(exited, "the forked child did not exit within 10 s");
                code
            }
        }
    }

    #[test]
    #[cfg(target_env = "gnu")]
    fn a_process_with_threads_is_not_single_threaded() {
        // libtest runs this test on a thread of its own; glibc's flag stays false for
        // good once a thread was made (also in a fork child, with one thread: glibc
        // 2.36 does not set it again there).
        let helper = std::thread::spawn(|| ());
        assert!(!single_threaded());
        helper.join().unwrap();
        assert!(!single_threaded());
        assert_eq!(in_fork_child(|| !single_threaded()), Some(0));
    }

    #[test]
    fn a_forked_child_forgets_the_cached_ids() {
        // Cached here, in the thread that forks.
        let (tid, _) = thread_identity();
        assert_eq!(gettid(), tid);
        let code = in_fork_child(|| {
            let real = rustix::thread::gettid().as_raw_nonzero().get() as u32;
            gettid() == real && thread_identity().0 == real && real != tid
        });
        assert_eq!(code, Some(0), "the child saw our tid");
        assert_eq!(gettid(), tid, "the parent keeps its cache");
    }

    #[test]
    fn exited_thread_is_gone() {
        let tid = std::thread::spawn(gettid).join().unwrap();
        // `join` returns when the thread clears its tid word, a little before the
        // kernel frees the id (ids are handed out cyclically, so not reused yet).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while thread_life(tid) != ThreadLife::Gone {
            assert!(
                std::time::Instant::now() < deadline,
                "thread {tid} still there"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(thread_life(u32::MAX >> 1), ThreadLife::Gone, "never a pid");
    }
}
