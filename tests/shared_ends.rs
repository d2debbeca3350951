//! One connection end shared by several senders or receivers, in several processes
//! (under every start method) and threads: every message arrives whole, exactly once,
//! or not at all. A sender killed in the middle of a message does not wedge the
//! others and never makes the receiver read garbage: over a pipe it costs only its own
//! message, over a stream connection it closes the direction cleanly.
//!
//! Messages encode `(sender, sequence)` in their first 8 bytes and a pattern derived
//! from both in the rest, so the receiver checks every byte; every fourth message is
//! 1 MiB, the others are small.

multiprocess::test_support!();

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use multiprocess::{
    Client, Connection, ErrorKind, Listener, StartMethod, get_context, pipe, pipe_simplex,
};

use common::LONG;

const MIB: usize = 1 << 20;

/// Message `seq` of `sender`: 1 MiB every fourth, else 8 to 300 bytes.
fn message(sender: u32, seq: u32) -> Vec<u8> {
    let len = if seq.is_multiple_of(4) {
        MIB
    } else {
        8 + (seq as usize * 37 + sender as usize * 11) % 293
    };
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&sender.to_le_bytes());
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend((8..len).map(|k| pattern(sender, seq, k)));
    m
}

fn pattern(sender: u32, seq: u32, k: usize) -> u8 {
    (k as u32)
        .wrapping_mul(31)
        .wrapping_add(sender.wrapping_mul(7))
        .wrapping_add(seq.wrapping_mul(13)) as u8
        ^ (k >> 8) as u8
}

/// Checks a received message byte for byte; returns its `(sender, sequence)`.
fn check(m: &[u8]) -> (u32, u32) {
    assert!(m.len() >= 8, "a message of {} bytes", m.len());
    let sender = u32::from_le_bytes(m[0..4].try_into().unwrap());
    let seq = u32::from_le_bytes(m[4..8].try_into().unwrap());
    let want = message(sender, seq);
    assert_eq!(m.len(), want.len(), "length of message ({sender}, {seq})");
    if let Some(k) = (0..m.len()).find(|&k| m[k] != want[k]) {
        panic!(
            "message ({sender}, {seq}) differs at byte {k} of {}",
            m.len()
        );
    }
    (sender, seq)
}

/// Sends `count` messages as `sender`; stops at the first error, which must say the
/// end is broken (a `Protocol` error), and returns how many were sent.
fn send_messages(sender: u32, count: u32, w: &Connection<()>) -> u32 {
    for seq in 0..count {
        if let Err(e) = w.send_bytes(&message(sender, seq)) {
            assert_eq!(e.kind(), ErrorKind::Protocol, "{e:?}");
            assert!(e.to_string().contains("died"), "{e}");
            return seq;
        }
    }
    count
}

fn sender_child((sender, count, w): (u32, u32, Connection<()>)) -> u32 {
    send_messages(sender, count, &w)
}

/// Receives until the peer is gone; returns the `(sender, sequence)` of each message.
fn receiver_child(r: Connection<()>) -> Vec<(u32, u32)> {
    let mut got = Vec::new();
    loop {
        match r.recv_bytes() {
            Ok(m) => got.push(check(&m)),
            Err(e) if e.kind() == ErrorKind::Disconnected => return got,
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// Sends 1 MiB messages until killed.
fn endless_sender((sender, w): (u32, Connection<()>)) {
    for seq in 0.. {
        w.send_bytes(&message(sender, seq)).unwrap();
    }
}

/// Sends one message far larger than the socket buffer: it blocks in the middle.
fn one_huge_message(w: Connection<()>) {
    let _ = w.send_bytes(&vec![0x5A; 64 * MIB]);
}

/// Receives until `Disconnected` (bounded by [`LONG`] per message); returns the ids
/// of the whole messages and the `Protocol` errors seen, in order.
fn drain(r: &Connection<()>) -> (Vec<(u32, u32)>, Vec<String>) {
    let mut got = Vec::new();
    let mut errors = Vec::new();
    loop {
        match r.recv_bytes_timeout(LONG) {
            Ok(m) => got.push(check(&m)),
            Err(e) if e.kind() == ErrorKind::Disconnected => return (got, errors),
            Err(e) if e.kind() == ErrorKind::Protocol => {
                assert!(errors.is_empty(), "a second error {e:?} after {errors:?}");
                errors.push(e.to_string());
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// Every sender's messages, in order: `got` holds exactly `0..sent[s]` of sender `s`.
fn assert_all_in_order(got: &[(u32, u32)], sent: &BTreeMap<u32, u32>) {
    let mut by_sender: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &(s, q) in got {
        by_sender.entry(s).or_default().push(q);
    }
    for (s, &n) in sent {
        let v = by_sender.remove(s).unwrap_or_default();
        assert_eq!(v, (0..n).collect::<Vec<_>>(), "messages of sender {s}");
    }
    assert!(by_sender.is_empty(), "unknown senders {by_sender:?}");
}

trait RecvBytesTimeout {
    fn recv_bytes_timeout(&self, t: Duration) -> multiprocess::Result<Vec<u8>>;
}

impl RecvBytesTimeout for Connection<()> {
    /// A bounded `recv_bytes`: waits with `poll` first.
    fn recv_bytes_timeout(&self, t: Duration) -> multiprocess::Result<Vec<u8>> {
        assert!(self.poll(Some(t))?, "nothing arrived within {t:?}");
        self.recv_bytes()
    }
}

/// Starts `n` children (senders `0..n`) that each send `count` messages on a clone
/// of `w`.
fn spawn_senders(
    m: StartMethod,
    n: u32,
    count: u32,
    w: &Connection<()>,
) -> Vec<multiprocess::JoinHandle<u32>> {
    (0..n)
        .map(|s| {
            let w = w.try_clone().unwrap();
            get_context(m).spawn(sender_child, (s, count, w)).unwrap()
        })
        .collect()
}

/// A connected pair over a Unix stream socket (a listener's accepted end and a
/// client's): `(receiving end, sending end)`, as `pipe_simplex` returns them.
fn stream_pair() -> (Connection<()>, Connection<()>) {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "@mp-shared-ends-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let l = Listener::bind(&name, None).unwrap();
    std::thread::scope(|sc| {
        let c = sc.spawn(|| Client::connect::<()>(&name, None).unwrap());
        let r = l.accept_timeout::<()>(LONG).unwrap();
        (r, c.join().unwrap())
    })
}

fn packet_pair() -> (Connection<()>, Connection<()>) {
    pipe_simplex::<()>().unwrap()
}

// ---------------------------------------------------------------- tests

for_each_method!(
    watchdog: five_processes_send_on_one_end,
    four_processes_receive_on_one_end,
    a_sender_killed_in_a_message_costs_only_that_message,
    a_sender_killed_in_a_message_breaks_a_stream_cleanly,
    a_sender_killed_at_random_never_garbles,
    a_sender_killed_at_random_never_garbles_a_stream,
);

/// Five children send 20 messages each on clones of one end, at once.
fn five_processes_send_on_one_end(m: StartMethod) {
    let (r, w) = pipe_simplex::<()>().unwrap();
    let mut hs = spawn_senders(m, 5, 20, &w);
    drop(w);
    let (got, errors) = drain(&r);
    assert!(errors.is_empty(), "{errors:?}");
    let sent: BTreeMap<u32, u32> = (0..5).map(|s| (s, 20)).collect();
    assert_all_in_order(&got, &sent);
    for h in &mut hs {
        assert_eq!(h.join_timeout(LONG).unwrap(), 20);
    }
}

/// Four children receive on clones of one end while three threads here send: each
/// message arrives exactly once, whole.
fn four_processes_receive_on_one_end(m: StartMethod) {
    let ctx = get_context(m);
    let (r, w) = pipe_simplex::<()>().unwrap();
    let mut hs: Vec<_> = (0..4)
        .map(|_| ctx.spawn(receiver_child, r.try_clone().unwrap()).unwrap())
        .collect();
    drop(r);
    std::thread::scope(|sc| {
        for s in 0..3u32 {
            let w = &w;
            sc.spawn(move || assert_eq!(send_messages(s, 24, w), 24));
        }
    });
    drop(w);
    let mut got: Vec<(u32, u32)> = Vec::new();
    for h in &mut hs {
        let mine = h.join_timeout(LONG).unwrap();
        // Each receiver sees each sender's messages in order.
        for s in 0..3 {
            let seqs: Vec<u32> = mine.iter().filter(|m| m.0 == s).map(|m| m.1).collect();
            assert!(seqs.windows(2).all(|p| p[0] < p[1]), "{seqs:?}");
        }
        got.extend(mine);
    }
    got.sort_unstable();
    let want: Vec<(u32, u32)> = (0..3).flat_map(|s| (0..24).map(move |q| (s, q))).collect();
    assert_eq!(got, want, "every message exactly once");
}

/// Over a pipe, a child is killed while it is blocked in the middle of a 64 MiB
/// message. The senders after it send as if nothing happened; the receiver reads the
/// part that arrived as one `Protocol` error (a truncated frame, its sender died), then
/// every later message whole.
fn a_sender_killed_in_a_message_costs_only_that_message(m: StartMethod) {
    let (r, w) = packet_pair();
    kill_in_a_huge_message(m, &r, &w);
    let mut hs = spawn_senders(m, 3, 5, &w);
    // The victim filled the socket buffer: the senders wait for the receiver.
    let (got, errors) = std::thread::scope(|sc| {
        sc.spawn(move || w.send_bytes(&message(8, 0)).unwrap());
        drain(&r)
    });
    for h in &mut hs {
        assert_eq!(h.join_timeout(LONG).unwrap(), 5, "every message is sent");
    }
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("died in its middle"), "{errors:?}");
    let sent: BTreeMap<u32, u32> = [(0, 5), (1, 5), (2, 5), (8, 1)].into();
    assert_all_in_order(&got, &sent);
}

/// The same over a stream connection, where a cut frame leaves no boundary to find:
/// the senders after it are not wedged, each learns at once (a `Protocol` error that
/// says a sender died) that the end is broken; the receiver reads the part that
/// arrived as one `Protocol` error (a truncated frame), then `Disconnected`.
fn a_sender_killed_in_a_message_breaks_a_stream_cleanly(m: StartMethod) {
    let (r, w) = stream_pair();
    kill_in_a_huge_message(m, &r, &w);
    let mut hs = spawn_senders(m, 3, 5, &w);
    for h in &mut hs {
        assert_eq!(
            h.join_timeout(LONG).unwrap(),
            0,
            "nothing is sent once broken"
        );
    }
    let e = w.send_bytes(b"late").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e:?}");
    drop(w);
    let (got, errors) = drain(&r);
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("truncated"), "{errors:?}");
}

/// Sends a small message on `w`, then starts a child that sends one far larger than
/// the socket buffer, and kills it once part of that is on its way.
fn kill_in_a_huge_message(m: StartMethod, r: &Connection<()>, w: &Connection<()>) {
    w.send_bytes(&message(9, 1)).unwrap(); // small: nobody reads yet
    let mut victim = get_context(m).process(one_huge_message, w.try_clone().unwrap());
    victim.start().unwrap();
    // Our own message, then the victim's frame starts.
    assert_eq!(check(&r.recv_bytes_timeout(LONG).unwrap()), (9, 1));
    assert!(r.poll(Some(LONG)).unwrap());
    std::thread::sleep(Duration::from_millis(50)); // let it fill the socket buffer
    victim.kill().unwrap();
    assert!(victim.join_timeout(LONG).unwrap());
}

/// Three children send 16 messages each on a pipe while a fourth sends 1 MiB messages
/// until it is killed at some point: wherever it died, the receiver gets only whole
/// messages, each sender's in order and without a gap, every message of the three,
/// and at most one error (if it died in a message: a truncated frame).
fn a_sender_killed_at_random_never_garbles(m: StartMethod) {
    let (got, errors, sent) = kill_at_random(m, packet_pair());
    assert!(sent.values().take(3).all(|&n| n == 16), "{sent:?}");
    assert_all_in_order(&got, &sent);
    if let Some(e) = errors.first() {
        assert!(e.contains("died in its middle"), "{errors:?}");
    }
}

/// The same over a stream connection: only whole messages, each sender's in order
/// and without a gap, at most one error. (If the victim died inside a send, the
/// others' later sends fail, and they say so.)
fn a_sender_killed_at_random_never_garbles_a_stream(m: StartMethod) {
    let (got, errors, sent) = kill_at_random(m, stream_pair());
    assert_all_in_order(&got, &sent);
    if let Some(e) = errors.first() {
        assert!(e.contains("truncated"), "{errors:?}");
    }
}

/// What a run of [`kill_at_random`] saw: the messages that arrived, the errors, and
/// how many each sender sent (for the victim: how many arrived).
type Outcome = (Vec<(u32, u32)>, Vec<String>, BTreeMap<u32, u32>);

/// Three senders and a victim (sender 7) on `w`; kills the victim once three of its
/// messages arrived.
fn kill_at_random(m: StartMethod, (r, w): (Connection<()>, Connection<()>)) -> Outcome {
    let mut victim = get_context(m).process(endless_sender, (7, w.try_clone().unwrap()));
    victim.start().unwrap();
    let mut hs = spawn_senders(m, 3, 16, &w);
    drop(w);
    let mut got = Vec::new();
    while got.iter().filter(|g: &&(u32, u32)| g.0 == 7).count() < 3 {
        got.push(check(&r.recv_bytes_timeout(LONG).unwrap()));
    }
    victim.kill().unwrap();
    let (rest, errors) = drain(&r);
    got.extend(rest);
    assert!(victim.join_timeout(LONG).unwrap());
    let mut sent: BTreeMap<u32, u32> = BTreeMap::new();
    for (s, h) in hs.iter_mut().enumerate() {
        sent.insert(s as u32, h.join_timeout(LONG).unwrap());
    }
    let from_victim = got.iter().filter(|g| g.0 == 7).count() as u32;
    sent.insert(7, from_victim);
    (got, errors, sent)
}

/// Threads of one process: six send (each on its own clone of the end, typed values)
/// and three receive on one pipe's two ends.
#[test]
fn threads_share_both_ends() {
    let _g = common::shared();
    let (a, b) = pipe::<Vec<u8>>().unwrap();
    let mut got = std::thread::scope(|sc| {
        let senders: Vec<_> = (0..6u32)
            .map(|s| {
                let a = a.try_clone().unwrap();
                sc.spawn(move || {
                    for q in 0..12 {
                        a.send(&message(s, q)).unwrap();
                    }
                })
            })
            .collect();
        drop(a);
        let receivers: Vec<_> = (0..3)
            .map(|_| {
                let b = &b;
                sc.spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        match b.recv_timeout(LONG) {
                            Ok(m) => got.push(check(&m)),
                            Err(e) if e.kind() == ErrorKind::Disconnected => return got,
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                })
            })
            .collect();
        for h in senders {
            h.join().unwrap();
        }
        receivers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    got.sort_unstable();
    let want: Vec<(u32, u32)> = (0..6).flat_map(|s| (0..12).map(move |q| (s, q))).collect();
    assert_eq!(got, want, "every message exactly once");
}
