//! Hostile bytes at a `Connection`'s receiving end, from a `pipe()` and from a
//! `Listener` after login: random payloads inside valid frames, the issue's crafted
//! frames, and random bytes straight onto the socket. The receiver must return an
//! error (a payload that does not decode: `Deserialize`; a malformed frame:
//! `Protocol`; a closed peer: `Disconnected`) and never abort, hang or exhaust memory;
//! where the framing is intact it then receives the next valid message.
//!
//! The property tests run proptest's default number of cases (256 each, a few
//! seconds in all); set `PROPTEST_CASES` for more, e.g.
//! `PROPTEST_CASES=20000 cargo nextest run --test hostile_connection`.

mod common;

multiprocess::test_support!();

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::AsFd;
use std::time::Duration;

use multiprocess::{Client, Connection, ErrorKind, Listener, pipe};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

/// The frame header: magic "MPFR", number of fds, body length (all little-endian).
fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(16 + body.len());
    f.extend_from_slice(&0x4d50_4652u32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&(body.len() as u64).to_le_bytes());
    f.extend_from_slice(body);
    f
}

/// Writes `bytes` straight onto the socket under `c`.
fn raw_write(c: &impl AsFd, bytes: &[u8]) {
    let mut f = std::fs::File::from(c.as_fd().try_clone_to_owned().unwrap());
    f.write_all(bytes).unwrap();
}

/// A `String` whose length prefix claims `claimed` bytes, followed by `present` bytes.
fn string_claiming(claimed: u64, present: usize) -> Vec<u8> {
    let mut b = claimed.to_le_bytes().to_vec();
    b.extend(std::iter::repeat_n(b'x', present));
    b
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    name: String,
    values: Vec<u64>,
    extra: HashMap<String, Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Tree {
    Leaf(u32),
    Node(Vec<Tree>),
}

/// Sends a hostile payload from `tx` and checks that `rx` refuses it and then
/// receives a valid message.
fn refuses_then_recovers<T>(tx: &Connection<T>, rx: &Connection<T>, payload: &[u8], next: T)
where
    T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    // From another thread: a payload larger than the socket's buffer blocks its send
    // until it is received.
    std::thread::scope(|s| {
        s.spawn(|| tx.send_bytes(payload).unwrap());
        match rx.recv_timeout(Duration::from_secs(30)) {
            // Arbitrary bytes may happen to be a valid `T`.
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), ErrorKind::Deserialize, "{e}"),
        }
    });
    tx.send(&next).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), next);
}

#[test]
fn the_35_byte_frame_is_refused_and_the_pipe_goes_on() {
    let (a, b) = pipe::<String>().unwrap();
    // 16 bytes of header, then a String claiming 2^40 bytes with 11 present.
    let f = frame(&string_claiming(1 << 40, 11));
    assert_eq!(f.len(), 35);
    raw_write(&a, &f);
    let e = b.recv().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Deserialize, "{e}");
    a.send(&"still here".to_string()).unwrap();
    assert_eq!(b.recv().unwrap(), "still here");
}

#[test]
fn the_issue_payloads_are_refused_and_the_pipe_goes_on() {
    let (a, b) = pipe::<String>().unwrap();
    refuses_then_recovers(&a, &b, &string_claiming(1 << 40, 11), "1".into());
    refuses_then_recovers(&a, &b, &string_claiming(1 << 62, 0), "2".into());
    // A u64 of 2^40 received as a String, through `cast`.
    let a64 = a.cast::<u64>();
    a64.send(&(1u64 << 40)).unwrap();
    let e = b.recv().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Deserialize, "{e}");
    let a = a64.cast::<String>();
    a.send(&"3".to_string()).unwrap();
    assert_eq!(b.recv().unwrap(), "3");

    // A struct { String, Vec } received as (u64, String).
    let (a, b) = pipe::<(u64, String)>().unwrap();
    let ar = a.cast::<Record>();
    ar.send(&Record {
        name: "n".into(),
        values: vec![1, 2, 3],
        extra: HashMap::new(),
    })
    .unwrap();
    let e = b.recv().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Deserialize, "{e}");
    let a = ar.cast::<(u64, String)>();
    a.send(&(4, "4".into())).unwrap();
    assert_eq!(b.recv().unwrap(), (4, "4".into()));
}

#[test]
fn a_million_deep_tree_is_refused_and_the_pipe_goes_on() {
    let (a, b) = pipe::<Tree>().unwrap();
    let mut bytes = Vec::new();
    for _ in 0..1_000_000 {
        bytes.extend_from_slice(&1u32.to_le_bytes()); // Node
        bytes.extend_from_slice(&1u64.to_le_bytes()); // of one child
    }
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&7u32.to_le_bytes());
    refuses_then_recovers(&a, &b, &bytes, Tree::Leaf(1));
}

/// Random bytes onto the socket, outside any framing: the receiver reads frames or
/// reports a malformed one until the writer's close ends the stream.
fn drain_after_raw(bytes: &[u8]) {
    let (a, b) = pipe::<String>().unwrap();
    raw_write(&a, bytes);
    drop(a);
    for _ in 0..=bytes.len() {
        match b.recv_timeout(Duration::from_secs(30)) {
            Ok(_) => continue,
            Err(e) => {
                common::assert_hostile_refusal(&e);
                if e.kind() != ErrorKind::Deserialize {
                    return;
                }
            }
        }
    }
    panic!("more messages than bytes");
}

#[test]
fn crafted_frames_end_cleanly() {
    // A bad magic, a body shorter than announced, fds announced that never came,
    // a header cut short, and a body length of 2^62.
    drain_after_raw(&[0xFF; 32]);
    let mut short = frame(b"abcdefgh");
    short.truncate(20);
    drain_after_raw(&short);
    let mut fds = frame(&string_claiming(3, 3));
    fds[4] = 2;
    drain_after_raw(&fds);
    drain_after_raw(&frame(b"")[..10]);
    let mut huge = frame(b"");
    huge[8..16].copy_from_slice(&(1u64 << 62).to_le_bytes());
    drain_after_raw(&huge);
}

/// Bytes that look like a frame header more often than uniform bytes would.
fn raw_stream() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..128),
        (
            proptest::collection::vec(any::<u8>(), 0..64),
            0u64..64,
            any::<bool>()
        )
            .prop_map(|(body, extra, cut)| {
                let mut f = frame(&body);
                if cut {
                    // Announce more than will arrive.
                    let len = body.len() as u64 + extra + 1;
                    f[8..16].copy_from_slice(&len.to_le_bytes());
                }
                f
            }),
    ]
}

proptest! {
    #[test]
    fn random_payloads_in_valid_frames(payload in proptest::collection::vec(any::<u8>(), 0..200)) {
        let (a, b) = pipe::<String>().unwrap();
        refuses_then_recovers(&a, &b, &payload, "after".to_string());
        let (a, b) = pipe::<Record>().unwrap();
        let next = Record { name: "r".into(), values: vec![9], extra: HashMap::new() };
        refuses_then_recovers(&a, &b, &payload, next);
        let (a, b) = pipe::<Tree>().unwrap();
        refuses_then_recovers(&a, &b, &payload, Tree::Node(vec![Tree::Leaf(2)]));
    }

    #[test]
    fn mutated_valid_payloads(
        at in any::<usize>(),
        len in prop_oneof![Just(1u64 << 40), Just(1u64 << 62), Just(u64::MAX), any::<u64>()],
        cut in any::<usize>(),
    ) {
        let (a, b) = pipe::<Record>().unwrap();
        let mut extra = HashMap::new();
        extra.insert("k".to_string(), Some("v".to_string()));
        let r = Record { name: "name".into(), values: vec![1, 2, 3], extra };
        // Encode through a real send, then capture the payload.
        let (x, y) = pipe::<Record>().unwrap();
        x.send(&r).unwrap();
        let mut payload = y.recv_bytes().unwrap();
        let at = at % (payload.len() - 7);
        payload[at..at + 8].copy_from_slice(&len.to_le_bytes());
        payload.truncate(payload.len() - cut % 4);
        refuses_then_recovers(&a, &b, &payload, r);
    }

    #[test]
    fn random_bytes_on_the_socket_end_cleanly(bytes in raw_stream()) {
        drain_after_raw(&bytes);
    }
}

#[test]
fn a_listener_connection_refuses_hostile_frames_after_login() {
    let l = Listener::bind("127.0.0.1:0", b"hostile-key").unwrap();
    let addr = l.address().to_string();
    let client = std::thread::spawn(move || {
        let c = Client::connect::<String>(&addr, b"hostile-key").unwrap();
        // The 35-byte frame, raw.
        raw_write(&c, &frame(&string_claiming(1 << 40, 11)));
        c.send(&"one".to_string()).unwrap();
        // Hostile payloads in valid frames.
        c.send_bytes(&string_claiming(1 << 62, 0)).unwrap();
        c.send_bytes(&(1u64 << 40).to_le_bytes()).unwrap();
        c.send(&"two".to_string()).unwrap();
        // Wait for the server's verdict before closing.
        c.recv().unwrap()
    });
    let s = l.accept::<String>().unwrap();
    let mut got = Vec::new();
    let mut errors = 0;
    while got.len() < 2 {
        match s.recv_timeout(Duration::from_secs(30)) {
            Ok(v) => got.push(v),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Deserialize, "{e}");
                errors += 1;
            }
        }
    }
    assert_eq!(got, ["one", "two"]);
    assert_eq!(errors, 3);
    s.send(&"done".to_string()).unwrap();
    assert_eq!(client.join().unwrap(), "done");
}
