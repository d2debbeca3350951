//! The operating system's floor for each act, in raw syscalls.
//!
//! Each function measures one act with nothing but libc/rustix calls and
//! returns the median over [`crate::params::REPS`] repetitions, in the unit of
//! the workloads compared with it (see [`crate::workloads::Floor`]):
//!
//! * [`fork_wait_us`]: `fork` of a child that `_exit`s at once, then `waitpid`;
//! * [`spawn_exec_us`]: `posix_spawn` of `/bin/true`, then `waitpid`;
//! * [`spawn_self_us`]: `posix_spawn` of this benchmark binary in a mode that
//!   exits first thing in `main` ([`MODE_ENV`]` = exit`), then `waitpid`;
//! * [`socket_roundtrip_us`]: blocking round trip of 8 bytes over a Unix
//!   socketpair with a forked echo child;
//! * [`spin_roundtrip_us`]: round trip through one atomic word in shared memory,
//!   both sides spinning (needs two CPUs);
//! * [`memcpy_mbps`]: copies of 1 MiB into freshly mapped pages (page faults
//!   included: BENCH.md's memcpy figure); [`memcpy_hot_mbps`]: the same between
//!   two reused, cache-hot buffers, for reference;
//! * [`cas_lock_pair_ns`]: an uncontended lock made of `compare_exchange` + `store`.
//!
//! The harness measures them in a small, fresh helper process ([`in_helper`]:
//! this binary again, in the `floors` mode of [`helper_main`]), because a
//! large benchmark process makes fork itself slow (page tables).
//!
//! Forked children only make async-signal-safe calls (read, write, close,
//! getppid, `_exit`) and touch memory they inherited; they never allocate,
//! lock or unwind.

use std::hint::{black_box, spin_loop};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use rustix::io::Errno;

use crate::measure::{mb_per_s, median_of, ns_per, us_per};
use crate::params::{
    FLOOR_CAS_PAIRS, FLOOR_FORKS, FLOOR_MEMCPY_COPIES, FLOOR_SOCKET_ROUNDTRIPS, FLOOR_SPAWNS,
    FLOOR_SPIN_ROUNDTRIPS, MIB, REPS,
};
use crate::workloads::Floor;

/// Environment variable that selects a helper mode of the benchmark binary,
/// checked first thing in `main`: `exit` exits at once (the binary-spawn
/// floor), `floors` measures the floors named in [`FLOORS_ENV`].
pub const MODE_ENV: &str = "MP_BENCH_MODE";
/// The floors a `floors` helper measures: a JSON array of [`Floor`] names.
pub const FLOORS_ENV: &str = "MP_BENCH_FLOORS";
/// Set to `1` for a `floors` helper in `--quick` mode.
pub const QUICK_ENV: &str = "MP_BENCH_QUICK";

/// One line of a floors helper's output.
#[derive(serde::Serialize, serde::Deserialize)]
struct FloorLine {
    floor: Floor,
    value: Option<f64>,
}

/// The helper modes of the benchmark binary; `Some(exit code)` if this
/// process is a helper (then `main` returns it at once), `None` otherwise.
pub fn helper_main() -> Option<std::process::ExitCode> {
    use std::process::ExitCode;
    let mode = std::env::var(MODE_ENV).ok()?;
    if mode == "exit" {
        return Some(ExitCode::SUCCESS);
    }
    if mode != "floors" && mode != "paired" {
        eprintln!("error: unknown {MODE_ENV}={mode:?}");
        return Some(ExitCode::from(2));
    }
    let quick = std::env::var(QUICK_ENV).is_ok_and(|v| v == "1");
    let Ok(floors) =
        serde_json::from_str::<Vec<Floor>>(&std::env::var(FLOORS_ENV).unwrap_or_default())
    else {
        eprintln!("error: {FLOORS_ENV} is not a JSON array of floors");
        return Some(ExitCode::from(2));
    };
    let mut out = std::io::stdout().lock();
    if mode == "floors" {
        for &floor in &floors {
            if answer(&mut out, floor, || measure(floor, quick)).is_err() {
                break;
            }
        }
    } else {
        serve_rounds(&mut out, &floors, quick);
    }
    Some(ExitCode::SUCCESS)
}

/// Writes `floor`'s [`FloorLine`] with the value `measure` gives (none if it
/// panics) and flushes it.
fn answer(
    out: &mut impl std::io::Write,
    floor: Floor,
    measure: impl FnOnce() -> Option<f64> + std::panic::UnwindSafe,
) -> std::io::Result<()> {
    let value = std::panic::catch_unwind(measure).ok().flatten();
    let line = serde_json::to_string(&FloorLine { floor, value }).map_err(std::io::Error::other)?;
    writeln!(out, "{line}")?;
    out.flush()
}

/// This binary as a floors helper in `mode` (`floors` or `paired`) for `floors`.
fn helper_command(
    exe: &std::path::Path,
    mode: &str,
    floors: &[Floor],
    quick: bool,
) -> std::io::Result<std::process::Command> {
    let mut cmd = std::process::Command::new(exe);
    cmd.env(MODE_ENV, mode)
        .env(FLOORS_ENV, serde_json::to_string(floors)?)
        .env(QUICK_ENV, if quick { "1" } else { "0" })
        .stderr(std::process::Stdio::inherit());
    Ok(cmd)
}

/// Measures `floors` in a fresh helper process (this binary in `floors`
/// mode); a floor the helper could not measure is missing from the answer.
pub fn in_helper(floors: &[Floor], quick: bool) -> std::collections::BTreeMap<Floor, f64> {
    let run = || -> std::io::Result<std::process::Output> {
        helper_command(&std::env::current_exe()?, "floors", floors, quick)?
            .stdin(std::process::Stdio::null())
            .output()
    };
    match run() {
        Ok(out) => parse_helper(&String::from_utf8_lossy(&out.stdout)),
        Err(err) => {
            eprintln!("warning: floor helper failed: {err}; floors missing");
            Default::default()
        }
    }
}

/// Parses a floors helper's JSON lines, keeping positive finite values.
fn parse_helper(stdout: &str) -> std::collections::BTreeMap<Floor, f64> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<FloorLine>(l).ok())
        .filter_map(|l| Some((l.floor, l.value.filter(|v| v.is_finite() && *v > 0.0)?)))
        .collect()
}

/// The `paired` helper: for every line on stdin, one repetition of each of
/// `floors` ([`measure_once`]), one [`FloorLine`] each on stdout; ends at end of input.
fn serve_rounds(out: &mut impl std::io::Write, floors: &[Floor], quick: bool) {
    use std::io::BufRead;
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            return;
        }
        for &floor in floors {
            if answer(out, floor, || measure_once(floor, quick)).is_err() {
                return;
            }
        }
    }
}

/// A floor helper that measures beside a workload, round by round (see
/// [`Floor::pairs`]): after each repetition of the workload, [`Paired::round`]
/// has the helper measure one repetition of each floor, so that both sides of a
/// ratio see the host in the same few milliseconds. The helper waits in a `read`
/// meanwhile (it takes no CPU while the workload runs).
pub struct Paired {
    child: std::process::Child,
    to: Option<std::process::ChildStdin>,
    from: std::io::BufReader<std::process::ChildStdout>,
    floors: Vec<Floor>,
    samples: std::collections::BTreeMap<Floor, Vec<f64>>,
    workload: &'static str,
    rounds: usize,
    broken: bool,
}

impl Paired {
    /// Starts a `paired` helper (this binary again) for `floors`.
    pub fn start(workload: &'static str, floors: &[Floor], quick: bool) -> std::io::Result<Paired> {
        Self::start_exe(&std::env::current_exe()?, workload, floors, quick)
    }

    /// As [`Paired::start`], with the benchmark binary at `exe` as the helper.
    pub fn start_exe(
        exe: &std::path::Path,
        workload: &'static str,
        floors: &[Floor],
        quick: bool,
    ) -> std::io::Result<Paired> {
        use std::process::Stdio;
        let mut child = helper_command(exe, "paired", floors, quick)?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let (Some(to), Some(from)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("helper without pipes"));
        };
        Ok(Paired {
            child,
            to: Some(to),
            from: std::io::BufReader::new(from),
            floors: floors.to_vec(),
            samples: Default::default(),
            workload,
            rounds: 0,
            broken: false,
        })
    }

    /// One round: the helper measures one repetition of each floor. `ours` is the
    /// workload's figure of the repetition just done, printed beside them on stderr.
    /// A helper that fails is reported once and left out of later rounds.
    pub fn round(&mut self, ours: f64) {
        if self.broken {
            return;
        }
        self.rounds += 1;
        match self.ask() {
            Ok(values) => {
                let shown: Vec<String> = values
                    .iter()
                    .map(|(f, v)| format!("{} {}", f.short(), crate::report::fmt_opt(*v)))
                    .collect();
                eprintln!(
                    "[pair]   {:<30} round {}: ours {}, {}",
                    self.workload,
                    self.rounds,
                    crate::report::fmt_opt(Some(ours)),
                    shown.join(", ")
                );
                for (f, v) in values {
                    if let Some(v) = v.filter(|v| v.is_finite() && *v > 0.0) {
                        self.samples.entry(f).or_default().push(v);
                    }
                }
            }
            Err(err) => {
                eprintln!("warning: paired floor helper failed: {err}");
                self.broken = true;
            }
        }
    }

    fn ask(&mut self) -> std::io::Result<Vec<(Floor, Option<f64>)>> {
        use std::io::{BufRead, Write};
        let to = self.to.as_mut().ok_or(std::io::ErrorKind::BrokenPipe)?;
        to.write_all(b"round\n")?;
        to.flush()?;
        let mut values = Vec::with_capacity(self.floors.len());
        for _ in &self.floors {
            let mut line = String::new();
            if self.from.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let l: FloorLine = serde_json::from_str(&line).map_err(std::io::Error::other)?;
            values.push((l.floor, l.value));
        }
        Ok(values)
    }

    /// Ends the helper and returns each floor's median over the rounds (a floor
    /// with no sample is missing).
    pub fn finish(mut self) -> std::collections::BTreeMap<Floor, f64> {
        drop(self.to.take());
        let _ = self.child.wait();
        std::mem::take(&mut self.samples)
            .into_iter()
            .map(|(f, mut v)| (f, crate::measure::median(&mut v)))
            .collect()
    }
}

impl Drop for Paired {
    fn drop(&mut self) {
        drop(self.to.take());
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One repetition of `floor` for a [`Paired`] helper: the process-start floors
/// ([`Floor::pairs`]) measure one repetition; the others, which set up a child
/// or buffers first, measure as [`measure`] does.
pub fn measure_once(floor: Floor, quick: bool) -> Option<f64> {
    match floor {
        Floor::ForkWait => Some(fork_wait_once(quick)),
        Floor::SpawnExec => spawn_exec_once(quick),
        Floor::SpawnSelf => spawn_self_once(quick),
        other => measure(other, quick),
    }
}

/// Measures `floor` in this process; `None` if it cannot be measured on this machine.
pub fn measure(floor: Floor, quick: bool) -> Option<f64> {
    match floor {
        Floor::ForkWait => Some(fork_wait_us(quick)),
        Floor::SpawnExec => spawn_exec_us(quick),
        Floor::SpawnSelf => spawn_self_us(quick),
        Floor::SocketRoundTrip => Some(socket_roundtrip_us(quick)),
        Floor::SpinRoundTrip => spin_roundtrip_us(quick),
        Floor::Memcpy => Some(memcpy_mbps(quick)),
        Floor::MemcpyHot => Some(memcpy_hot_mbps(quick)),
        Floor::CasLock => Some(cas_lock_pair_ns(quick)),
    }
}

/// Forks; the child runs `child` and `_exit`s with its result. Returns the child's pid.
///
/// # Safety
///
/// `child` runs in the forked copy of a possibly multi-threaded process: it must
/// only make async-signal-safe calls, and must neither allocate, take locks,
/// nor panic.
pub(crate) unsafe fn fork_child(child: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: fork has no preconditions; the child side below only runs
    // `child`, which the caller vouches for, then `_exit`s without running
    // destructors or atexit handlers.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => panic!("fork: {}", std::io::Error::last_os_error()),
        0 => {
            let code = child();
            // SAFETY: `_exit` is async-signal-safe and never returns.
            unsafe { libc::_exit(code) }
        }
        pid => pid,
    }
}

/// Waits for child `pid` and panics unless it exited with status 0.
fn wait_ok(pid: libc::pid_t) {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer; `pid` is our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        assert!(
            r == -1 && err.kind() == std::io::ErrorKind::Interrupted,
            "waitpid({pid}): {err}"
        );
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "floor child {pid} failed: wait status {status:#x}"
    );
}

/// us per `fork` of a child that `_exit(0)`s at once plus `waitpid`.
///
/// The floor for the fork and forkserver start methods.
pub fn fork_wait_us(quick: bool) -> f64 {
    median_of(REPS.get(quick), || fork_wait_once(quick))
}

/// One repetition of [`fork_wait_us`]: [`FLOOR_FORKS`] forks, us per fork.
fn fork_wait_once(quick: bool) -> f64 {
    let n = FLOOR_FORKS.get(quick);
    let start = Instant::now();
    for _ in 0..n {
        // SAFETY: the child does nothing but `_exit(0)`.
        let pid = unsafe { fork_child(|| 0) };
        wait_ok(pid);
    }
    us_per(start.elapsed(), n)
}

/// us per `posix_spawn` of `/bin/true` (empty environment) plus `waitpid`.
///
/// The floor for the spawn start method, which must exec a fresh program.
/// `None` if no `true` binary is found.
pub fn spawn_exec_us(quick: bool) -> Option<f64> {
    median_opt(REPS.get(quick), || spawn_exec_once(quick))
}

/// One repetition of [`spawn_exec_us`]; `None` if no `true` binary is found.
fn spawn_exec_once(quick: bool) -> Option<f64> {
    let path = [c"/bin/true", c"/usr/bin/true"]
        .into_iter()
        .find(|p| std::path::Path::new(p.to_str().unwrap_or_default()).exists())?;
    Some(posix_spawn_wait_once(path, &[], quick))
}

/// us per `posix_spawn` of this benchmark binary with only `MP_BENCH_MODE=exit`
/// in its environment (its `main` returns at once), plus `waitpid`.
///
/// The second spawn floor: a Rust binary costs more to load than `/bin/true`,
/// and the spawn start method must exec exactly this binary.
pub fn spawn_self_us(quick: bool) -> Option<f64> {
    median_opt(REPS.get(quick), || spawn_self_once(quick))
}

/// One repetition of [`spawn_self_us`]; `None` if this binary cannot be named.
fn spawn_self_once(quick: bool) -> Option<f64> {
    use std::os::unix::ffi::OsStrExt;
    let exe = std::env::current_exe().ok()?;
    let path = std::ffi::CString::new(exe.as_os_str().as_bytes()).ok()?;
    let env = std::ffi::CString::new(format!("{MODE_ENV}=exit")).ok()?;
    Some(posix_spawn_wait_once(&path, &[&env], quick))
}

/// The median of `reps` repetitions of `once`; `None` as soon as one yields `None`.
fn median_opt(reps: usize, mut once: impl FnMut() -> Option<f64>) -> Option<f64> {
    let mut values = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        values.push(once()?);
    }
    Some(crate::measure::median(&mut values))
}

/// us per `posix_spawn` of `path` (argv: the path; environment: `env`) plus
/// `waitpid` of a child that must exit with status 0: one repetition of
/// [`FLOOR_SPAWNS`] spawns.
fn posix_spawn_wait_once(path: &std::ffi::CStr, env: &[&std::ffi::CStr], quick: bool) -> f64 {
    let argv = [path.as_ptr().cast_mut(), null_mut()];
    let envp: Vec<*mut libc::c_char> = env
        .iter()
        .map(|e| e.as_ptr().cast_mut())
        .chain([null_mut()])
        .collect();
    let n = FLOOR_SPAWNS.get(quick);
    let start = Instant::now();
    for _ in 0..n {
        let mut pid: libc::pid_t = 0;
        // SAFETY: `path` is a valid C string; `argv` and `envp` are
        // null-terminated arrays of valid C strings that outlive the call;
        // null file actions and attributes mean the defaults.
        let rc = unsafe {
            libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                null(),
                null(),
                argv.as_ptr(),
                envp.as_ptr(),
            )
        };
        assert_eq!(
            rc,
            0,
            "posix_spawn: {}",
            std::io::Error::from_raw_os_error(rc)
        );
        wait_ok(pid);
    }
    us_per(start.elapsed(), n)
}

/// Reads exactly `buf.len()` bytes; false on end of file or error.
/// Async-signal-safe.
fn read_exact(fd: BorrowedFd<'_>, buf: &mut [u8; 8]) -> bool {
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::read(fd, &mut buf[got..]) {
            Ok(0) => return false,
            Ok(n) => got += n,
            Err(Errno::INTR) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Writes all of `buf`; false on error. Async-signal-safe.
fn write_all(fd: BorrowedFd<'_>, buf: &[u8; 8]) -> bool {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::write(fd, &buf[done..]) {
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(_) => return false,
        }
    }
    true
}

/// us per blocking round trip over a Unix stream socketpair: the parent writes
/// a `u64`, a forked child reads it and writes it back plus one.
///
/// The floor for `pipe_roundtrip_small` (the wake-up latency of the machine).
pub fn socket_roundtrip_us(quick: bool) -> f64 {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
    let (ours, theirs) = socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .expect("socketpair");
    let our_raw = ours.as_raw_fd();
    let child_fd = theirs.as_fd();
    // Runs in the child: only close, read and write, no allocation, lock or panic.
    let echo = || {
        // SAFETY: closes the child's copy of the parent's end, so that the
        // parent's close reads as end of file here; nothing else uses it.
        unsafe { libc::close(our_raw) };
        let mut buf = [0u8; 8];
        while read_exact(child_fd, &mut buf) {
            let reply = u64::from_ne_bytes(buf).wrapping_add(1).to_ne_bytes();
            if !write_all(child_fd, &reply) {
                return 1;
            }
        }
        0
    };
    // SAFETY: `echo` is async-signal-safe (see above).
    let pid = unsafe { fork_child(echo) };
    drop(theirs);
    let n = FLOOR_SOCKET_ROUNDTRIPS.get(quick);
    let fd = ours.as_fd();
    let mut next = 0u64;
    let us = median_of(REPS.get(quick), || {
        let start = Instant::now();
        for _ in 0..n {
            let mut buf = [0u8; 8];
            assert!(write_all(fd, &next.to_ne_bytes()), "socket write");
            assert!(read_exact(fd, &mut buf), "socket read");
            assert_eq!(u64::from_ne_bytes(buf), next + 1);
            next += 1;
        }
        us_per(start.elapsed(), n)
    });
    drop(ours);
    wait_ok(pid);
    us
}

/// Value of the shared word that tells the spinning child to exit (odd).
const SPIN_STOP: u64 = u64::MAX;

/// us per round trip through one shared atomic word, both processes spinning:
/// the parent stores an odd value, the child answers with value + 1.
///
/// `None` with fewer than two CPUs (spinning would measure the scheduler).
pub fn spin_roundtrip_us(quick: bool) -> Option<f64> {
    use rustix::mm::{MapFlags, ProtFlags, mmap_anonymous, munmap};
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return None;
    }
    const LEN: usize = 4096;
    // SAFETY: a fresh anonymous mapping aliases no existing memory.
    let ptr = unsafe {
        mmap_anonymous(
            null_mut(),
            LEN,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
        )
    }
    .ok()?;
    // SAFETY: the mapping is page-aligned, zero-filled (a valid AtomicU64 of 0),
    // shared with the child across fork, and unmapped only after the child is
    // reaped and the last use of `cell`.
    let cell: &AtomicU64 = unsafe { &*ptr.cast::<AtomicU64>() };
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // Runs in the child: atomics and getppid only, no allocation, lock or panic.
    let echo = || {
        let mut spins = 0u32;
        loop {
            let v = cell.load(Ordering::Acquire);
            if v == SPIN_STOP {
                return 0;
            }
            if v & 1 == 1 {
                cell.store(v + 1, Ordering::Release);
            } else {
                spin_loop();
                spins = spins.wrapping_add(1);
                // Never outlive the parent, even if it dies mid-run.
                // SAFETY: getppid has no preconditions and is async-signal-safe.
                if spins & 0xF_FFFF == 0 && unsafe { libc::getppid() } != parent {
                    return 1;
                }
            }
        }
    };
    // SAFETY: `echo` is async-signal-safe (see above).
    let pid = unsafe { fork_child(echo) };
    let n = FLOOR_SPIN_ROUNDTRIPS.get(quick);
    let mut seq = 0u64;
    let us = median_of(REPS.get(quick), || {
        let start = Instant::now();
        for _ in 0..n {
            cell.store(seq + 1, Ordering::Release);
            while cell.load(Ordering::Acquire) != seq + 2 {
                spin_loop();
            }
            seq += 2;
        }
        us_per(start.elapsed(), n)
    });
    cell.store(SPIN_STOP, Ordering::Release);
    wait_ok(pid);
    // SAFETY: `ptr`/`LEN` is the mapping made above; the child is gone and
    // `cell` is not used any more.
    unsafe { munmap(ptr, LEN) }.expect("munmap");
    Some(us)
}

/// MB/s of memcpy of 1 MiB into freshly mapped pages: per copy, `mmap` 1 MiB
/// of anonymous memory, copy a 1 MiB source into it, `munmap` it.
///
/// The floor for bulk transfers (pipe and queue of 1 MiB messages, the shared
/// array fill-and-sum): a message that lands in new memory pays the page
/// faults. This is the act behind BENCH.md's "memcpy about 2,100 MB/s"; the
/// cache-hot copy ([`memcpy_hot_mbps`]) is about 20 times faster on the
/// reference machine and is reported beside it.
pub fn memcpy_mbps(quick: bool) -> f64 {
    use rustix::mm::{MapFlags, ProtFlags, mmap_anonymous, munmap};
    let src = vec![0x5au8; MIB];
    let n = FLOOR_MEMCPY_COPIES.get(quick);
    median_of(REPS.get(quick), || {
        let start = Instant::now();
        for _ in 0..n {
            // SAFETY: a fresh anonymous mapping aliases no existing memory.
            let dst = unsafe {
                mmap_anonymous(
                    null_mut(),
                    MIB,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::PRIVATE,
                )
            }
            .expect("mmap");
            // SAFETY: `dst` is a writable mapping of MIB bytes that does not
            // overlap `src`, which holds MIB bytes.
            unsafe { std::ptr::copy_nonoverlapping(black_box(src.as_ptr()), dst.cast(), MIB) };
            black_box(dst);
            // SAFETY: `dst`/MIB is the mapping made above, no longer used.
            unsafe { munmap(dst, MIB) }.expect("munmap");
        }
        mb_per_s(n * MIB, start.elapsed())
    })
}

/// MB/s of `copy_from_slice` (memcpy) between two reused, cache-hot 1 MiB buffers.
///
/// Reported beside [`memcpy_mbps`] for reference: the upper bound of a copy
/// that faults no pages and stays in cache.
pub fn memcpy_hot_mbps(quick: bool) -> f64 {
    let src = vec![0x5au8; MIB];
    let mut dst = vec![0u8; MIB];
    dst.copy_from_slice(&src); // fault the pages in
    let n = FLOOR_MEMCPY_COPIES.get(quick) * 10;
    median_of(REPS.get(quick), || {
        let start = Instant::now();
        for _ in 0..n {
            black_box(&mut dst).copy_from_slice(black_box(&src));
        }
        mb_per_s(n * MIB, start.elapsed())
    })
}

/// ns per uncontended lock pair: `compare_exchange(0, 1)` (acquire) then
/// `store(0)` (release) on an `AtomicU32`.
///
/// The floor for `lock_uncontended_pair`.
pub fn cas_lock_pair_ns(quick: bool) -> f64 {
    let lock = AtomicU32::new(0);
    let n = FLOOR_CAS_PAIRS.get(quick);
    median_of(REPS.get(quick), || {
        let start = Instant::now();
        for _ in 0..n {
            let lock = black_box(&lock);
            while lock
                .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                spin_loop();
            }
            lock.store(0, Ordering::Release);
        }
        ns_per(start.elapsed(), n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_lines() {
        let m = parse_helper(concat!(
            "{\"floor\":\"ForkWait\",\"value\":120.5}\n",
            "{\"floor\":\"SpawnSelf\",\"value\":null}\n",
            "{\"floor\":\"Nope\",\"value\":1}\n",
            "garbage\n",
        ));
        assert_eq!(m.len(), 1);
        assert_eq!(m[&Floor::ForkWait], 120.5);
        let json = serde_json::to_string(&[Floor::SpawnExec, Floor::SpawnSelf]).unwrap();
        assert_eq!(json, "[\"SpawnExec\",\"SpawnSelf\"]");
    }
}
