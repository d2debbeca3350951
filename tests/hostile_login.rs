//! The attacks of the login issue, each as a test that ends with a clean error for the
//! attacker and an unaffected correct client, within the stated deadlines: a silent
//! connection; one byte then silence; 200 one-byte connections; a flood past the cap
//! of unauthenticated connections; a server out of fds (`RLIMIT_NOFILE` lowered in
//! its own process); logged-in connections that announce 1 GiB frames and send
//! 64 MiB each (the server's peak memory stays within its budget); and a frame over
//! the limit refused at its header. Short limits (a 1 s login deadline) keep them fast.

multiprocess::test_support!();

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use multiprocess::{
    Client, Connection, ErrorKind, Limits, Listener, Manager, ManagerServer, Served, StartMethod,
    get_context,
};

use common::LONG;

// Long enough that a correct client on a loaded machine logs in well within it.
const LOGIN: Duration = Duration::from_secs(2);
/// Slack on top of a deadline for a loaded 2-core machine.
const SLACK: Duration = Duration::from_secs(3);

fn name(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "@mp-hostile-login-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn short_limits() -> Limits {
    let mut l = Limits::default();
    l.login_timeout = LOGIN;
    l
}

/// A raw connection to an abstract address.
fn raw(addr: &str) -> UnixStream {
    let a = SocketAddr::from_abstract_name(addr.trim_start_matches('@')).unwrap();
    UnixStream::connect_addr(&a).unwrap()
}

/// Waits at most `limit` for the server to close `s`; whether it did.
fn closed_within(s: &mut UnixStream, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    let mut buf = [0u8; 64];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// A correct client logs in and round-trips while the attack runs.
fn correct_client(addr: String) -> std::thread::JoinHandle<Duration> {
    std::thread::spawn(move || {
        let t = Instant::now();
        let c = Client::connect::<u32>(&addr, b"key").unwrap();
        c.send(&41).unwrap();
        assert_eq!(c.recv_timeout(LONG).unwrap(), 42);
        t.elapsed()
    })
}

/// Accepts one connection, answers `x + 1`.
fn serve_one(l: &Listener) {
    let c = l.accept_timeout::<u32>(LONG).unwrap();
    let x = c.recv_timeout(LONG).unwrap();
    c.send(&(x + 1)).unwrap();
}

fn listener(tag: &str) -> (Listener, String) {
    let l = Listener::bind(&name(tag), b"key").unwrap();
    l.set_limits(short_limits());
    let a = l.address().to_string();
    (l, a)
}

#[test]
fn a_silent_connection_neither_blocks_accept_nor_stays() {
    let _g = common::shared();
    let (l, addr) = listener("silent");
    let mut silent = raw(&addr);
    // TCP too: the same stage serves it.
    let tcp = Listener::bind("127.0.0.1:0", b"key").unwrap();
    tcp.set_limits(short_limits());
    let mut silent_tcp = std::net::TcpStream::connect(tcp.address()).unwrap();
    let client = correct_client(addr);
    serve_one(&l);
    let waited = client.join().unwrap();
    assert!(waited < LOGIN, "the correct client waited {waited:?}");
    assert!(closed_within(&mut silent, LOGIN + SLACK));
    let tcp_client = correct_client(tcp.address().to_string());
    serve_one(&tcp);
    tcp_client.join().unwrap();
    silent_tcp.set_read_timeout(Some(LOGIN + SLACK)).unwrap();
    assert!(matches!(silent_tcp.read(&mut [0u8; 8]), Ok(0) | Err(_)));
}

#[test]
fn one_byte_then_silence_neither_blocks_accept_nor_stays() {
    let _g = common::shared();
    let (l, addr) = listener("one-byte");
    let mut s = raw(&addr);
    s.write_all(&[0x52]).unwrap();
    let t = Instant::now();
    let client = correct_client(addr);
    serve_one(&l);
    assert!(client.join().unwrap() < LOGIN);
    assert!(closed_within(&mut s, LOGIN + SLACK));
    assert!(
        t.elapsed() >= LOGIN - Duration::from_millis(50),
        "{:?}",
        t.elapsed()
    );
}

fn threads() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A manager server on a thread of this process, with `limits`.
fn manager_server(tag: &str, limits: Limits) -> (ManagerServer, std::thread::JoinHandle<()>) {
    let s = ManagerServer::bind(&name(tag), b"key").unwrap();
    s.set_limits(limits);
    s.register("q", Served::queue());
    let s2 = s.clone();
    let t = std::thread::spawn(move || s2.serve_forever().unwrap());
    (s, t)
}

fn use_manager(addr: &str) -> Duration {
    let t = Instant::now();
    let m = Manager::connect(addr, b"key").unwrap();
    assert!(m.registered().unwrap().contains(&"q".to_string()));
    t.elapsed()
}

#[test]
fn two_hundred_one_byte_connections_cost_no_threads_and_go_away() {
    let _g = common::serial(); // counts this process's threads
    let (s, t) = manager_server("200", short_limits());
    let _ = use_manager(s.address()); // the login stage is up
    let before = threads();
    let mut attackers: Vec<UnixStream> = (0..200)
        .map(|_| {
            let mut c = raw(s.address());
            c.write_all(&[0x52]).unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let during = threads();
    assert!(
        during <= before + 1,
        "{before} threads before, {during} during"
    );
    assert!(use_manager(s.address()) < LOGIN);
    // Past the cap the oldest went at once; the rest within the login deadline.
    for a in &mut attackers {
        assert!(closed_within(a, LOGIN + SLACK));
    }
    s.shutdown();
    t.join().unwrap();
}

#[test]
fn a_flood_past_the_cap_does_not_keep_a_correct_client_out() {
    let _g = common::shared();
    let mut limits = short_limits();
    limits.login_timeout = Duration::from_secs(5);
    limits.max_pending_logins = 8;
    let l = Listener::bind(&name("flood"), b"key").unwrap();
    l.set_limits(limits);
    let addr = l.address().to_string();
    let flood: Vec<UnixStream> = (0..100).map(|_| raw(&addr)).collect();
    let client = correct_client(addr.clone());
    serve_one(&l);
    // Well within the (long) login deadline: the cap dropped the oldest.
    assert!(client.join().unwrap() < Duration::from_secs(5));
    // The flood past the cap was closed at once, not after the deadline.
    let t = Instant::now();
    let mut closed = 0;
    for mut f in flood.into_iter().take(90) {
        if closed_within(&mut f, Duration::from_secs(2)) {
            closed += 1;
        }
    }
    assert_eq!(closed, 90);
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}

/// The manager server's process: few fds, a short login deadline.
fn low_fd_server((addr, ready): (String, Connection<()>)) {
    #[allow(unsafe_code)]
    // SAFETY: setrlimit with a valid struct; only this child process is affected.
    unsafe {
        let lim = libc::rlimit {
            rlim_cur: 48,
            rlim_max: 48,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    let s = ManagerServer::bind(&addr, b"key").unwrap();
    s.set_limits(short_limits()); // cap 64: fds run out first
    s.register("q", Served::queue());
    ready.send(&()).unwrap();
    drop(ready);
    s.serve_forever().unwrap();
}

#[test]
fn a_server_out_of_fds_backs_off_and_serves_a_correct_client() {
    let _g = common::shared();
    let addr = name("fds");
    let (ours, theirs) = multiprocess::pipe::<()>().unwrap();
    let mut p = get_context(StartMethod::Spawn).process(low_fd_server, (addr.clone(), theirs));
    p.start().unwrap();
    ours.recv_timeout(LONG).unwrap();
    let pid = p.pid().unwrap();
    let attackers: Vec<UnixStream> = (0..150)
        .map(|_| {
            let mut c = raw(&addr);
            c.write_all(&[0x52]).unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // Backing off, not spinning: the server's CPU time stays small.
    let cpu = |pid: u32| -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let f: Vec<&str> = s.rsplit_once(')').unwrap().1.split_whitespace().collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let c0 = cpu(pid);
    std::thread::sleep(Duration::from_millis(500));
    let spent = cpu(pid) - c0;
    assert!(
        spent < 25,
        "the server spent {spent} ticks in 0.5 s: a busy loop"
    );
    // A correct client gets in while the attackers are still connected.
    let waited = use_manager(&addr);
    assert!(waited < LOGIN + SLACK, "{waited:?}");
    drop(attackers);
    Manager::connect(&addr, b"key").unwrap().shutdown().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
}

fn peak_rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap()
}

const BUDGET: u64 = 96 << 20;

fn budget_server((addr, ready): (String, Connection<()>)) {
    let s = ManagerServer::bind(&addr, b"key").unwrap();
    let mut limits = short_limits();
    limits.max_message_size = 2 << 30;
    limits.partial_frame_budget = BUDGET;
    limits.frame_timeout = Duration::from_secs(2);
    s.set_limits(limits);
    s.register("q", Served::queue());
    ready.send(&()).unwrap();
    drop(ready);
    s.serve_forever().unwrap();
}

/// A frame header as the crate writes it.
fn header(len: u64) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&0x4d50_4652u32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
    h
}

/// A logged-in connection's socket, to write raw bytes on.
fn logged_in(addr: &str) -> (Connection<()>, UnixStream) {
    let c = Client::connect::<()>(addr, b"key").unwrap();
    let s = UnixStream::from(c.as_fd().try_clone_to_owned().unwrap());
    (c, s)
}

#[test]
fn announced_gigabytes_hold_no_more_than_the_budget() {
    let _g = common::shared();
    let addr = name("rss");
    let (ours, theirs) = multiprocess::pipe::<()>().unwrap();
    let mut p = get_context(StartMethod::Spawn).process(budget_server, (addr.clone(), theirs));
    p.start().unwrap();
    ours.recv_timeout(LONG).unwrap();
    let pid = p.pid().unwrap();
    let base = peak_rss_kib(pid);
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let (_c, mut s) = logged_in(&addr);
                let _ = s.write_all(&header(1 << 30));
                let chunk = vec![0xa5u8; 1 << 20];
                for _ in 0..64 {
                    if s.write_all(&chunk).is_err() {
                        break; // refused: over the budget
                    }
                }
                // Idle with the frame half sent: the frame deadline ends it.
                closed_within(&mut s, Duration::from_secs(2) + SLACK)
            })
        })
        .collect();
    for w in writers {
        assert!(w.join().unwrap(), "every attacker was closed");
    }
    let grown = peak_rss_kib(pid).saturating_sub(base) * 1024;
    eprintln!("peak grew by {} MiB", grown >> 20);
    assert!(
        grown <= BUDGET + (16 << 20),
        "the server's peak grew by {} MiB, budget {} MiB",
        grown >> 20,
        BUDGET >> 20
    );
    assert!(use_manager(&addr) < LOGIN);
    Manager::connect(&addr, b"key").unwrap().shutdown().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
}

#[test]
fn a_frame_over_the_limit_is_refused_at_its_header() {
    let _g = common::shared();
    let mut limits = short_limits();
    limits.max_message_size = 1 << 20;
    let (s, t) = manager_server("limit", limits);
    let (_c, mut raw) = logged_in(s.address());
    raw.write_all(&header((1 << 20) + 1)).unwrap();
    assert!(closed_within(&mut raw, SLACK));
    // On a listener's connection too: a Protocol error, the listener goes on.
    let (mut l, addr) = listener("limit");
    l.set_max_message_size(1 << 10);
    let a = addr.clone();
    let sender = std::thread::spawn(move || {
        let c = Client::connect::<Vec<u8>>(&a, b"key").unwrap();
        let _ = c.send(&vec![0u8; 4 << 10]);
        c
    });
    let c = l.accept_timeout::<Vec<u8>>(LONG).unwrap();
    assert_eq!(
        c.recv_timeout(LONG).unwrap_err().kind(),
        ErrorKind::Protocol
    );
    drop(sender.join().unwrap());
    let client = correct_client(addr);
    serve_one(&l);
    client.join().unwrap();
    assert!(use_manager(s.address()) < LOGIN);
    s.shutdown();
    t.join().unwrap();
}
