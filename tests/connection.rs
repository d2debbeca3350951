//! `Connection` conformance to Python's `Pipe` (`Listener` is in `listener.rs`),
//! under every start method: values and bytes across processes, `recv_bytes_into`,
//! `poll`, message boundaries, big messages, `Disconnected`, one-way pipes,
//! connections sent through connections, `wait`, values that fail to serialize, and
//! malformed frames.

multiprocess::test_support!();

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::time::Duration;

use multiprocess::{
    Connection, ErrorKind, StartMethod, Waitable, get_context, pipe, pipe_simplex, wait,
};
use serde::{Deserialize, Serialize};

use common::{CHILD_PATIENCE, LONG, Poison, double, timed, wait_for_parent};

// ---------------------------------------------------------------- children

/// Echoes every message, as raw bytes, until the peer closes.
fn echo_bytes(conn: Connection<()>) {
    while let Ok(b) = conn.recv_bytes() {
        conn.send_bytes(&b).unwrap();
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Unit,
    Point { x: f64, y: f64 },
    Named(String, Vec<Option<i32>>),
    Nested(Box<Shape>, BTreeMap<String, u64>),
    Blob(Vec<u8>, char, i128),
}

fn samples() -> Vec<Shape> {
    let mut map = BTreeMap::new();
    map.insert("one".to_string(), 1);
    map.insert("big".to_string(), u64::MAX);
    vec![
        Shape::Unit,
        Shape::Point {
            x: -1.5,
            y: f64::MAX,
        },
        Shape::Named("héllo wörld".into(), vec![Some(50), None, Some(-7)]),
        Shape::Nested(Box::new(Shape::Named(String::new(), vec![])), map),
        Shape::Blob((0..=255).collect(), '🦀', i128::MIN),
    ]
}

/// Sends the samples as values.
fn send_samples(conn: Connection<Shape>) {
    for s in samples() {
        conn.send(&s).unwrap();
    }
}

/// Sends what `recv_bytes_into` is tested with.
fn send_for_recv_into(conn: Connection<()>) {
    for m in [
        &b"xyz"[..],
        &b"hello world"[..],
        &[7u8; 1000][..],
        &b""[..],
        &b"after the errors"[..],
    ] {
        conn.send_bytes(m).unwrap();
    }
    let _ = conn.recv_timeout(CHILD_PATIENCE);
}

/// Answers commands: "zero" sends an empty message; "abc" sends a, b, cd; anything
/// else (or a closed peer) ends.
fn poll_partner(conn: Connection<()>) {
    while let Ok(cmd) = conn.recv_bytes() {
        match &cmd[..] {
            b"zero" => conn.send_bytes(b"").unwrap(),
            b"abc" => {
                conn.send_bytes(b"a").unwrap();
                conn.send_bytes(b"b").unwrap();
                conn.send_bytes(b"cd").unwrap();
            }
            _ => return,
        }
    }
}

fn echo_string(conn: Connection<String>) {
    while let Ok(s) = conn.recv() {
        conn.send(&s).unwrap();
    }
}

fn send_three_and_leave(conn: Connection<u32>) {
    for i in 0..3 {
        conn.send(&i).unwrap();
    }
}

fn hold_until_killed(conn: Connection<u32>) {
    conn.send(&7).unwrap();
    let _ = conn.recv_timeout(CHILD_PATIENCE);
}

/// Exits 0 only if the parent closing its end gives `Disconnected` here.
fn expect_disconnected(conn: Connection<u32>) {
    conn.send(&1).unwrap();
    let e = conn.recv_timeout(LONG).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e:?}");
    let e = conn.send(&2).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e:?}");
}

/// Gets the writing end of a one-way pipe: may send, may not receive.
fn simplex_writer(w: Connection<u32>) {
    assert_eq!(w.recv().unwrap_err().kind(), ErrorKind::NotPermitted);
    assert_eq!(w.recv_bytes().unwrap_err().kind(), ErrorKind::NotPermitted);
    assert_eq!(
        w.poll(Some(Duration::ZERO)).unwrap_err().kind(),
        ErrorKind::NotPermitted
    );
    for i in 0..5 {
        w.send(&i).unwrap();
    }
}

/// Gets the reading end of a one-way pipe: may receive, may not send; sums what
/// arrives until the writer closes.
fn simplex_reader(r: Connection<u32>) -> u32 {
    assert_eq!(r.send(&1).unwrap_err().kind(), ErrorKind::NotPermitted);
    assert_eq!(
        r.send_bytes(b"x").unwrap_err().kind(),
        ErrorKind::NotPermitted
    );
    let mut sum = 0;
    loop {
        match r.recv_timeout(LONG) {
            Ok(v) => sum += v,
            Err(e) if e.kind() == ErrorKind::Disconnected => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    sum
}

#[derive(Debug, Serialize, Deserialize)]
enum Ctl {
    Conn(Connection<String>),
    Text(String),
}

/// Gets a connection through `ctrl` and greets through it; then makes a pipe, sends
/// one end up, and reports through `ctrl` what arrives on the other.
fn hub_a(ctrl: Connection<Ctl>) {
    let Ctl::Conn(c) = ctrl.recv_timeout(LONG).unwrap() else {
        panic!("expected a connection")
    };
    c.send(&"hello via a passed connection".to_string())
        .unwrap();
    assert_eq!(c.recv_timeout(LONG).unwrap(), "ping");
    c.send(&"pong".to_string()).unwrap();
    let (x, y) = pipe::<String>().unwrap();
    ctrl.send(&Ctl::Conn(y)).unwrap();
    let s = x.recv_timeout(LONG).unwrap();
    ctrl.send(&Ctl::Text(format!("A got: {s}"))).unwrap();
}

/// Gets a connection (made by A) and talks to A through it.
fn hub_b(ctrl: Connection<Ctl>) {
    let Ctl::Conn(c) = ctrl.recv_timeout(LONG).unwrap() else {
        panic!("expected a connection")
    };
    c.send(&"hello from B".to_string()).unwrap();
}

fn send_ten((id, conn): (u32, Connection<(u32, u32)>)) {
    for i in 0..10 {
        conn.send(&(id, i)).unwrap();
        if i % 4 == id % 4 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Item {
    Good(u32),
    Bad(Poison),
}

/// Sending a value that fails to serialize is an error; the connection still works.
fn send_poison_then_good(conn: Connection<Item>) {
    let e = conn.send(&Item::Bad(Poison)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Serialize, "{e:?}");
    conn.send(&Item::Good(11)).unwrap();
}

/// Writes bytes that are not a frame on the connection's socket, then waits for
/// the parent to close.
fn write_garbage(conn: Connection<u32>) {
    raw_write(&conn, &[0xAB; 64]);
    let _ = conn.recv_timeout(CHILD_PATIENCE);
}

/// Expects a malformed frame from the parent: exits 0 if the receive says so.
fn expect_malformed(conn: Connection<u32>) {
    let e = conn.recv_timeout(LONG).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e:?}");
}

// ---------------------------------------------------------------- raw socket access

/// Writes `bytes` on the socket under `c`, bypassing the framing.
fn raw_write(c: &impl AsFd, bytes: &[u8]) {
    let mut f = std::fs::File::from(c.as_fd().try_clone_to_owned().unwrap());
    f.write_all(bytes).unwrap();
}

/// Reads everything queued on the socket under `c`, bypassing the framing (fds that
/// ride along are dropped by the kernel).
fn raw_drain<T>(c: &Connection<T>) -> Vec<u8> {
    let mut f = std::fs::File::from(c.as_fd().try_clone_to_owned().unwrap());
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while c.poll(Some(Duration::ZERO)).unwrap() {
        let n = f.read(&mut buf).unwrap();
        assert!(n > 0, "unexpected end of stream");
        out.extend_from_slice(&buf[..n]);
    }
    out
}

// ---------------------------------------------------------------- tests

for_each_method!(
    values_and_bytes_round_trip,
    recv_bytes_into_offsets,
    poll_and_message_boundaries,
    sixteen_mib_round_trip,
    number_vecs_round_trip_around_the_zero_copy_size,
    disconnected,
    one_way_pipes,
    connections_through_connections,
    wait_four_children_ten_messages,
    wait_timeout_and_sentinels,
    unserializable_value_at_send,
    malformed_frame_across_processes,
    too_many_handles_is_invalid_input,
);

/// In a child: receives one message of locks, returns how many arrived.
fn count_locks(conn: Connection<Vec<multiprocess::Lock>>) -> usize {
    conn.recv_timeout(CHILD_PATIENCE).map_or(0, |v| v.len())
}

/// More handles than one message can carry (the kernel's 253) is the caller's
/// mistake: `InvalidInput`, not `Io`; the connection goes on and carries the next
/// message.
fn too_many_handles_is_invalid_input(m: StartMethod) {
    let (here, there) = pipe::<Vec<multiprocess::Lock>>().unwrap();
    let h = get_context(m).spawn(count_locks, there).unwrap();
    let locks: Vec<multiprocess::Lock> = (0..254)
        .map(|_| multiprocess::Lock::new().unwrap())
        .collect();
    let e = here.send(&locks).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("at most 253 handles"), "{e}");
    here.send(&locks[..200].to_vec()).unwrap();
    assert_eq!(h.join().unwrap(), 200);
}

/// Typed values and raw bytes cross to a child and back; typed values sent by a
/// child arrive equal.
fn values_and_bytes_round_trip(m: StartMethod) {
    let ctx = get_context(m);
    let (here, there) = pipe::<()>().unwrap();
    let mut p = ctx.process(echo_bytes, there);
    p.start().unwrap();
    // Values travel as bytes: the echo child does not know their type.
    let typed = here.cast::<Shape>();
    for s in samples() {
        typed.send(&s).unwrap();
        assert_eq!(typed.recv_timeout(LONG).unwrap(), s);
    }
    let here = typed.cast::<()>();
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    for m in [&b""[..], &b"x"[..], &[0u8, 255, 1, 254][..], &big[..]] {
        here.send_bytes(m).unwrap();
        assert_eq!(here.recv_bytes().unwrap(), m);
    }
    drop(here);
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));

    let (here, there) = pipe::<Shape>().unwrap();
    let mut p = ctx.process(send_samples, there);
    p.start().unwrap();
    for s in samples() {
        assert_eq!(here.recv_timeout(LONG).unwrap(), s);
    }
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));
    assert_eq!(
        here.recv_timeout(LONG).unwrap_err().kind(),
        ErrorKind::Disconnected
    );
}

/// `recv_bytes_into` writes at the offset; a buffer that is too short is an error
/// that carries the whole message (which is consumed); an offset past the end is an
/// error that consumes nothing.
fn recv_bytes_into_offsets(m: StartMethod) {
    let ctx = get_context(m);
    let (here, there) = pipe::<()>().unwrap();
    let mut p = ctx.process(send_for_recv_into, there);
    p.start().unwrap();
    let mut buf = [0u8; 16];

    assert_eq!(here.recv_bytes_into(&mut buf, 2).unwrap(), 3);
    assert_eq!(&buf[..], b"\0\0xyz\0\0\0\0\0\0\0\0\0\0\0");

    let e = here.recv_bytes_into(&mut buf, 8).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BufferTooShort, "{e:?}");
    assert_eq!(e.message(), Some(&b"hello world"[..]));

    let e = here.recv_bytes_into(&mut buf, 0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BufferTooShort, "{e:?}");
    assert_eq!(e.message(), Some(&[7u8; 1000][..]));

    assert_eq!(here.recv_bytes_into(&mut buf, 16).unwrap(), 0);

    let e = here.recv_bytes_into(&mut buf, 17).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");

    assert_eq!(here.recv_bytes().unwrap(), b"after the errors");
    assert_eq!(&buf[2..5], b"xyz", "failed receives must not write");
    drop(here);
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));
}

/// `poll(0)` is false at once with nothing pending, `poll(t)` false after about `t`,
/// true at once when data waits; a zero-length message makes `poll` true and arrives
/// empty; `a`, `b`, `cd` arrive as three messages; a closed peer makes `poll` true.
fn poll_and_message_boundaries(m: StartMethod) {
    let ctx = get_context(m);
    let (here, there) = pipe::<()>().unwrap();
    let mut p = ctx.process(poll_partner, there);
    p.start().unwrap();

    let (ready, took) = timed(|| here.poll(Some(Duration::ZERO)).unwrap());
    assert!(!ready);
    assert!(took < Duration::from_secs(1), "poll(0) took {took:?}");
    let (ready, took) = timed(|| here.poll(Some(Duration::from_millis(300))).unwrap());
    assert!(!ready);
    assert!(
        took >= Duration::from_millis(290) && took < LONG,
        "poll(300ms) took {took:?}"
    );
    assert_eq!(
        here.try_recv().map(|_| ()).unwrap_err().kind(),
        ErrorKind::Timeout
    );

    here.send_bytes(b"zero").unwrap();
    assert!(here.poll(Some(LONG)).unwrap());
    let (ready, took) = timed(|| here.poll(Some(Duration::ZERO)).unwrap());
    assert!(ready, "data waits: poll(0) is true");
    assert!(took < Duration::from_secs(1));
    assert!(here.poll(None).unwrap());
    assert_eq!(here.recv_bytes().unwrap(), b"");
    assert!(!here.poll(Some(Duration::ZERO)).unwrap());

    here.send_bytes(b"abc").unwrap();
    assert_eq!(here.recv_bytes().unwrap(), b"a");
    assert_eq!(here.recv_bytes().unwrap(), b"b");
    assert_eq!(here.recv_bytes().unwrap(), b"cd");
    assert!(!here.poll(Some(Duration::ZERO)).unwrap());

    here.send_bytes(b"bye").unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));
    assert!(
        here.poll(Some(LONG)).unwrap(),
        "a closed peer makes poll true"
    );
    assert_eq!(
        here.recv_bytes().unwrap_err().kind(),
        ErrorKind::Disconnected
    );
}

/// A 16 MiB message round-trips, as raw bytes and as a typed value.
fn sixteen_mib_round_trip(m: StartMethod) {
    let ctx = get_context(m);
    let (here, there) = pipe::<()>().unwrap();
    let mut p = ctx.process(echo_bytes, there);
    p.start().unwrap();
    let block: Vec<u8> = (0..1u32 << 16).map(|i| (i % 251) as u8).collect();
    let big = block.repeat(256);
    assert_eq!(big.len(), 16 << 20);
    here.send_bytes(&big).unwrap();
    let back = here.recv_bytes().unwrap();
    assert!(back == big, "16 MiB of bytes came back changed");
    drop(here);
    assert!(p.join_timeout(LONG).unwrap());

    let (here, there) = pipe::<String>().unwrap();
    let mut p = ctx.process(echo_string, there);
    p.start().unwrap();
    let s = "0123456789abcdef".repeat(1 << 20);
    here.send(&s).unwrap();
    assert!(
        here.recv_timeout(LONG).unwrap() == s,
        "16 MiB string changed"
    );
    drop(here);
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));
}

/// Echoes `Vec<f64>`s, doubled, until the peer closes.
fn echo_doubled_f64(conn: Connection<Vec<f64>>) {
    while let Ok(v) = conn.recv() {
        let back: Vec<f64> = v.iter().map(|x| x * 2.0).collect();
        if conn.send(&back).is_err() {
            break;
        }
    }
}

/// `Vec`s of numbers at, below and above the size from which a sender sends them from
/// their own memory arrive whole, in order, as the same values; read as raw bytes,
/// such a frame is the value's encoding (its length word, then its elements).
fn number_vecs_round_trip_around_the_zero_copy_size(m: StartMethod) {
    let ctx = get_context(m);
    let (here, there) = pipe::<Vec<f64>>().unwrap();
    let mut p = ctx.process(echo_doubled_f64, there);
    p.start().unwrap();
    for n in [0, 1, 8191, 8192, 8193, (1 << 17) + 3, 3] {
        let v: Vec<f64> = (0..n).map(|i| i as f64 + 0.25).collect();
        here.send(&v).unwrap();
        let back = here.recv_timeout(LONG).unwrap();
        assert_eq!(back.len(), n);
        assert!(
            back.iter().zip(&v).all(|(b, x)| *b == x * 2.0),
            "{n} f64s came back changed"
        );
    }
    drop(here);
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));

    let (a, b) = pipe::<Vec<u8>>().unwrap();
    let big: Vec<u8> = (0..(1 << 20) + 7).map(|i| (i % 253) as u8).collect();
    let sender = std::thread::spawn(move || {
        a.send(&big).unwrap();
        a.send(&vec![9u8; 5]).unwrap();
        a.send(&big).unwrap();
        (a, big)
    });
    let raw = b.recv_bytes().unwrap();
    assert_eq!(raw[..8], ((1u64 << 20) + 7).to_le_bytes());
    assert_eq!(raw.len(), 8 + (1 << 20) + 7);
    assert_eq!(b.recv().unwrap(), vec![9u8; 5]);
    let again = b.recv().unwrap();
    let (_a, big) = sender.join().unwrap();
    assert!(
        raw[8..] == big[..] && again == big,
        "1 MiB of bytes came back changed"
    );
}

const MIB: usize = 1 << 20;

/// One MiB of the 1 GiB message: a pattern, stamped with the block's index.
fn gib_block(k: u64) -> Vec<u8> {
    let mut b: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8).collect();
    b[..8].copy_from_slice(&k.to_le_bytes());
    b
}

/// Sends one 1 GiB message.
fn send_gib(conn: Connection<()>) {
    let block = gib_block(0);
    let mut big = Vec::with_capacity(1024 * MIB);
    for k in 0..1024u64 {
        let start = big.len();
        big.extend_from_slice(&block);
        big[start..start + 8].copy_from_slice(&k.to_le_bytes());
    }
    conn.send_bytes(&big).unwrap();
}

/// A 1 GiB message from a child arrives intact (one start method only: this is about
/// the frame size, not the start method).
#[test]
fn one_gib_message() {
    let _g = common::shared();
    let ctx = get_context(StartMethod::ForkServer);
    let (here, there) = pipe::<()>().unwrap();
    let mut p = ctx.process(send_gib, there);
    p.start().unwrap();
    let big = here.recv_bytes().unwrap();
    assert_eq!(big.len(), 1024 * MIB);
    let mut expected = gib_block(0);
    for (k, chunk) in big.chunks(MIB).enumerate() {
        expected[..8].copy_from_slice(&(k as u64).to_le_bytes());
        assert!(
            chunk == expected,
            "MiB number {k} of the 1 GiB message differs"
        );
    }
    drop(big);
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));
}

/// The peer closing (by returning, or by being killed) gives `Disconnected` after
/// what it sent; a child sees `Disconnected` when we close.
fn disconnected(m: StartMethod) {
    let ctx = get_context(m);

    let (here, there) = pipe::<u32>().unwrap();
    let mut p = ctx.process(send_three_and_leave, there);
    p.start().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    for i in 0..3 {
        assert_eq!(here.recv_timeout(LONG).unwrap(), i);
    }
    // Not `poll(0)`: under `cargo test`, a child being spawned for another test holds
    // a copy of every fd of ours until its exec (close-on-exec), for a moment.
    assert!(
        here.poll(Some(LONG)).unwrap(),
        "a closed peer makes poll true"
    );
    assert_eq!(here.recv().unwrap_err().kind(), ErrorKind::Disconnected);
    assert_eq!(
        here.recv_timeout(LONG).unwrap_err().kind(),
        ErrorKind::Disconnected
    );
    assert_eq!(here.send(&1).unwrap_err().kind(), ErrorKind::Disconnected);
    assert_eq!(
        here.send_bytes(b"x").unwrap_err().kind(),
        ErrorKind::Disconnected
    );

    let (here, there) = pipe::<u32>().unwrap();
    let mut p = ctx.process(hold_until_killed, there);
    p.start().unwrap();
    assert_eq!(here.recv_timeout(LONG).unwrap(), 7);
    p.kill().unwrap();
    let (e, took) = timed(|| here.recv_timeout(LONG).unwrap_err());
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e:?}");
    assert!(took < LONG);
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(-libc::SIGKILL));

    let (here, there) = pipe::<u32>().unwrap();
    let mut p = ctx.process(expect_disconnected, there);
    p.start().unwrap();
    assert_eq!(here.recv_timeout(LONG).unwrap(), 1);
    drop(here);
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0), "the child did not see Disconnected");
}

/// One-way pipes: the reader cannot send, the writer cannot receive, wherever the
/// ends live.
fn one_way_pipes(m: StartMethod) {
    let (r, w) = pipe_simplex::<u32>().unwrap();
    assert_eq!(r.send(&1).unwrap_err().kind(), ErrorKind::NotPermitted);
    assert_eq!(
        r.send_bytes(b"").unwrap_err().kind(),
        ErrorKind::NotPermitted
    );
    assert_eq!(w.recv().unwrap_err().kind(), ErrorKind::NotPermitted);
    assert_eq!(
        w.recv_timeout(Duration::ZERO).unwrap_err().kind(),
        ErrorKind::NotPermitted
    );
    assert_eq!(w.recv_bytes().unwrap_err().kind(), ErrorKind::NotPermitted);
    let mut buf = [0u8; 4];
    assert_eq!(
        w.recv_bytes_into(&mut buf, 0).unwrap_err().kind(),
        ErrorKind::NotPermitted
    );
    assert_eq!(
        w.poll(Some(Duration::ZERO)).unwrap_err().kind(),
        ErrorKind::NotPermitted
    );

    let ctx = get_context(m);
    let mut p = ctx.process(simplex_writer, w);
    p.start().unwrap();
    let got: Vec<u32> = (0..5).map(|_| r.recv_timeout(LONG).unwrap()).collect();
    assert_eq!(got, [0, 1, 2, 3, 4]);
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));
    assert_eq!(r.recv().unwrap_err().kind(), ErrorKind::Disconnected);

    let (r, w) = pipe_simplex::<u32>().unwrap();
    let mut h = ctx.spawn(simplex_reader, r).unwrap();
    for v in [10, 20, 12] {
        w.send(&v).unwrap();
    }
    drop(w);
    assert_eq!(h.join_timeout(LONG).unwrap(), 42);
}

/// Connections travel through connections: from us to a running child, from a child
/// to us, and from one child (through us) to another, which then talk directly.
fn connections_through_connections(m: StartMethod) {
    let ctx = get_context(m);
    let (ctrl_a, there_a) = pipe::<Ctl>().unwrap();
    let (ctrl_b, there_b) = pipe::<Ctl>().unwrap();
    let mut a = ctx.process(hub_a, there_a);
    let mut b = ctx.process(hub_b, there_b);
    a.start().unwrap();
    b.start().unwrap();

    let (mine, theirs) = pipe::<String>().unwrap();
    ctrl_a.send(&Ctl::Conn(theirs)).unwrap(); // `theirs` is dropped here: A has its own
    assert_eq!(
        mine.recv_timeout(LONG).unwrap(),
        "hello via a passed connection"
    );
    mine.send(&"ping".to_string()).unwrap();
    assert_eq!(mine.recv_timeout(LONG).unwrap(), "pong");

    let Ctl::Conn(y) = ctrl_a.recv_timeout(LONG).unwrap() else {
        panic!("expected a connection from A")
    };
    ctrl_b.send(&Ctl::Conn(y)).unwrap();
    match ctrl_a.recv_timeout(LONG).unwrap() {
        Ctl::Text(t) => assert_eq!(t, "A got: hello from B"),
        Ctl::Conn(_) => panic!("expected text from A"),
    }
    for p in [&a, &b] {
        assert!(p.join_timeout(LONG).unwrap());
        assert_eq!(p.exitcode(), Some(0));
    }
    // A's pipe end went to B through us; now that both ended, nobody holds it.
    assert_eq!(
        mine.recv_timeout(LONG).unwrap_err().kind(),
        ErrorKind::Disconnected
    );
}

/// `wait()` over 4 children sending 10 messages each returns every message, in order
/// per child, and reports each closed connection.
fn wait_four_children_ten_messages(m: StartMethod) {
    let ctx = get_context(m);
    let mut readers = Vec::new();
    let mut procs = Vec::new();
    for id in 0..4u32 {
        let (r, w) = pipe_simplex::<(u32, u32)>().unwrap();
        let mut p = ctx.process(send_ten, (id, w));
        p.start().unwrap();
        readers.push(r);
        procs.push(p);
    }
    let mut got: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    while !readers.is_empty() {
        let objs: Vec<&dyn Waitable> = readers.iter().map(|r| r as &dyn Waitable).collect();
        let mut ready = wait(&objs, Some(LONG)).unwrap();
        assert!(
            !ready.is_empty(),
            "wait timed out with messages outstanding"
        );
        ready.sort_unstable();
        let mut closed = Vec::new();
        for &i in &ready {
            match readers[i].recv_timeout(LONG) {
                Ok((id, n)) => got.entry(id).or_default().push(n),
                Err(e) if e.kind() == ErrorKind::Disconnected => closed.push(i),
                Err(e) => panic!("{e:?}"),
            }
        }
        for i in closed.into_iter().rev() {
            readers.remove(i);
        }
    }
    let expected: Vec<u32> = (0..10).collect();
    assert_eq!(got.len(), 4, "{got:?}");
    for (id, v) in &got {
        assert_eq!(v, &expected, "messages of child {id}");
    }
    for p in &procs {
        assert!(p.join_timeout(LONG).unwrap());
        assert_eq!(p.exitcode(), Some(0));
    }
}

/// `wait` with nothing ready returns empty after about the timeout; a process
/// sentinel (and a `spawn` handle) becomes ready when the process ends; a ready
/// connection is reported at once; raw fds (`BorrowedFd`, `OwnedFd`) work as well.
fn wait_timeout_and_sentinels(m: StartMethod) {
    let ctx = get_context(m);
    let (here, there) = pipe::<()>().unwrap();
    let mut p = ctx.process(wait_for_parent, there);

    let e = wait(&[&p], Some(Duration::ZERO)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidState, "{e:?}");

    p.start().unwrap();
    let (ready, took) =
        timed(|| wait(&[&here as &dyn Waitable, &p], Some(Duration::from_secs(1))).unwrap());
    assert!(ready.is_empty(), "{ready:?}");
    assert!(
        took >= Duration::from_millis(900) && took < LONG,
        "wait(1s) took {took:?}"
    );
    let (ready, took) =
        timed(|| wait(&[&here as &dyn Waitable, &p], Some(Duration::ZERO)).unwrap());
    assert!(ready.is_empty(), "{ready:?}");
    assert!(took < Duration::from_secs(1));

    let (a, b) = pipe::<u8>().unwrap();
    a.send(&1).unwrap();
    let (ready, took) = timed(|| wait(&[&here as &dyn Waitable, &p, &b], Some(LONG)).unwrap());
    assert_eq!(ready, [2]);
    assert!(took < Duration::from_secs(1));

    // Raw fds too: a process's sentinel as a `BorrowedFd`, and an `OwnedFd` (a copy of
    // `b`'s, with a message waiting).
    let sentinel = p.sentinel().unwrap();
    let owned = b.as_fd().try_clone_to_owned().unwrap();
    assert_eq!(
        wait(&[&sentinel as &dyn Waitable, &owned], Some(LONG)).unwrap(),
        [1]
    );

    drop(here); // the child returns
    assert_eq!(wait(&[&p], Some(LONG)).unwrap(), [0]);
    assert_eq!(
        wait(&[&sentinel as &dyn Waitable, &owned], Some(LONG)).unwrap(),
        [0, 1]
    );
    assert!(p.join_timeout(Duration::ZERO).unwrap());
    assert_eq!(p.exitcode(), Some(0));

    let mut h = ctx.spawn(double, 21).unwrap();
    assert_eq!(wait(&[&h], Some(LONG)).unwrap(), [0]);
    assert_eq!(
        wait(&[&h as &dyn Waitable, &b], Some(LONG)).unwrap(),
        [0, 1]
    );
    assert_eq!(h.join_timeout(LONG).unwrap(), 42);
}

/// A value that fails to serialize is an error at `send()`, not a crash, and sends
/// nothing: the connection stays usable, in us and in a child.
fn unserializable_value_at_send(m: StartMethod) {
    let (a, b) = pipe::<Item>().unwrap();
    let e = a.send(&Item::Bad(Poison)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Serialize, "{e:?}");
    assert!(!b.poll(Some(Duration::ZERO)).unwrap(), "nothing was sent");
    a.send(&Item::Good(5)).unwrap();
    assert_eq!(b.recv().unwrap(), Item::Good(5));

    let ctx = get_context(m);
    let (here, there) = pipe::<Item>().unwrap();
    let mut p = ctx.process(send_poison_then_good, there);
    p.start().unwrap();
    assert_eq!(here.recv_timeout(LONG).unwrap(), Item::Good(11));
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));
}

/// Garbage on the wire is a `Protocol` error on either side, not a crash or a hang.
fn malformed_frame_across_processes(m: StartMethod) {
    let ctx = get_context(m);
    let (here, there) = pipe::<u32>().unwrap();
    let mut p = ctx.process(write_garbage, there);
    p.start().unwrap();
    let e = here.recv_timeout(LONG).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e:?}");
    drop(here);
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));

    let (here, there) = pipe::<u32>().unwrap();
    let mut p = ctx.process(expect_malformed, there);
    p.start().unwrap();
    raw_write(&here, &[0xCD; 40]);
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(
        p.exitcode(),
        Some(0),
        "the child did not get a Protocol error"
    );
}

/// Malformed frames of every kind: garbage, truncated (peer closed mid-frame), a
/// frame that announces handles that did not come, one over the size limit, and
/// bytes that are not the expected type (the connection stays usable after this one).
#[test]
fn malformed_frames() {
    let _g = common::shared();

    let (a, b) = pipe::<u32>().unwrap();
    raw_write(&a, &[0xFF; 32]);
    let e = b.recv_timeout(LONG).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e:?}");

    // Capture a real frame, then replay it without its last bytes and close.
    let (x, y) = pipe::<()>().unwrap();
    x.send_bytes(b"0123456789").unwrap();
    let frame = raw_drain(&y);
    assert!(frame.len() > 10 && frame.ends_with(b"0123456789"));
    let (a, b) = pipe::<()>().unwrap();
    raw_write(&a, &frame);
    assert_eq!(
        b.recv_bytes().unwrap(),
        b"0123456789",
        "the replay is valid"
    );
    raw_write(&a, &frame[..frame.len() - 3]);
    drop(a);
    let (e, took) = timed(|| b.recv_bytes().unwrap_err());
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e:?}");
    assert!(took < LONG);
    // Only a header, then close.
    let (a, b) = pipe::<()>().unwrap();
    raw_write(&a, &frame[..frame.len() - 10]);
    drop(a);
    assert_eq!(b.recv_bytes().unwrap_err().kind(), ErrorKind::Protocol);

    // A frame that carried a handle, replayed without it.
    let (x, y) = pipe::<Connection<()>>().unwrap();
    let (_keep, passed) = pipe::<()>().unwrap();
    x.send(&passed).unwrap();
    let frame = raw_drain(&y);
    let (a, b) = pipe::<Connection<()>>().unwrap();
    raw_write(&a, &frame);
    let e = b.recv_timeout(LONG).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e:?}");

    // Over the receiver's limit.
    let (a, mut b) = pipe::<()>().unwrap();
    b.set_max_message_size(10);
    a.send_bytes(&[1; 10]).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), [1; 10]);
    a.send_bytes(&[1; 100]).unwrap();
    let e = b.recv_bytes().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e:?}");

    // Well-framed bytes that are not a `u64`: a decode error; the next value is fine.
    let (a, b) = pipe::<u64>().unwrap();
    a.send_bytes(&[0xFF; 3]).unwrap();
    let e = b.recv_timeout(LONG).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Deserialize, "{e:?}");
    a.send(&99).unwrap();
    assert_eq!(b.recv_timeout(LONG).unwrap(), 99);
}

/// In one process: a closed peer gives `Disconnected` (not a timeout), for sends
/// and receives.
#[test]
fn disconnected_in_process() {
    let _g = common::shared();
    let (a, b) = pipe::<u32>().unwrap();
    a.send(&1).unwrap();
    b.close();
    assert_eq!(a.recv().unwrap_err().kind(), ErrorKind::Disconnected);
    assert_eq!(
        a.recv_timeout(LONG).unwrap_err().kind(),
        ErrorKind::Disconnected
    );
    assert_eq!(a.send(&2).unwrap_err().kind(), ErrorKind::Disconnected);
    assert!(a.poll(Some(Duration::ZERO)).unwrap());
}

/// `wait` reports every object that is ready, as Python's does: a queue holding an
/// item does not hide the connections and processes that are ready beside it (before,
/// only the queue came back).
#[test]
fn wait_reports_every_ready_object_beside_a_ready_queue() {
    let _g = common::shared();
    let q = multiprocess::Queue::<u8>::new().unwrap();
    let (a, b) = pipe::<u8>().unwrap();
    let (_c, d) = pipe::<u8>().unwrap();
    a.send(&1).unwrap();
    q.put(2).unwrap();
    let objs = [&d as &dyn Waitable, &q, &b];
    assert_eq!(wait(&objs, Some(LONG)).unwrap(), [1, 2]);
    assert_eq!(wait(&objs, Some(Duration::ZERO)).unwrap(), [1, 2]);
    assert_eq!(b.recv().unwrap(), 1);
    assert_eq!(wait(&objs, Some(Duration::ZERO)).unwrap(), [1]);
    assert_eq!(q.get().unwrap(), 2);
    assert!(wait(&objs, Some(Duration::ZERO)).unwrap().is_empty());
}

/// Says it is about to block, then blocks in `recv` (holding the receive lock).
fn blocked_receiver((conn, ready): (Connection<u8>, Connection<()>)) {
    ready.send(&()).unwrap();
    let _ = conn.recv();
}

/// A receiver killed while blocked in `recv` on a shared end held its receive lock:
/// `try_recv` on another copy takes the dead receiver's lock over and gets the message.
/// Before, only a wait of 25 ms or more did (a `Timeout` for ever otherwise).
#[test]
fn try_recv_after_a_blocked_receiver_was_killed() {
    let _g = common::shared();
    let (a, b) = pipe::<u8>().unwrap();
    let (here, there) = pipe::<()>().unwrap();
    let mut p = get_context(StartMethod::ForkServer)
        .process(blocked_receiver, (b.try_clone().unwrap(), there));
    p.start().unwrap();
    here.recv_timeout(LONG).unwrap();
    std::thread::sleep(Duration::from_millis(100)); // asleep in `recv`
    p.kill().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    a.send(&7).unwrap();
    let got = common::within(
        Duration::from_secs(5),
        "try_recv never took the lock over",
        || match b.try_recv() {
            Ok(v) => Some(v),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Timeout);
                None
            }
        },
    );
    assert_eq!(got, 7);
}
