//! A pipe's fast lane (small messages through shared memory while a receiver waits,
//! `src/connection/lane.rs`): order across the lane and the socket, receivers that
//! come and go, a receiver killed while it waits, and `poll` and `wait` on a message
//! that sits in the lane.

multiprocess::test_support!();

#[macro_use]
mod common;

use std::time::Duration;

use multiprocess::{Connection, ErrorKind, StartMethod, get_context, pipe, wait};
use serde::{Deserialize, Serialize};

use common::LONG;

/// A message: its number and a body whose size decides its path (small ones fit a
/// lane slot, large ones do not), sometimes with a handle (which never takes the
/// lane).
#[derive(Debug, Serialize, Deserialize)]
struct Msg {
    seq: u32,
    body: Vec<u8>,
    handle: Option<multiprocess::Lock>,
}

/// The body of message `seq`: mostly small; every 7th is 4 KiB, every 50th 300 KiB.
fn body(seq: u32) -> Vec<u8> {
    let len = if seq % 50 == 49 {
        300 << 10
    } else if seq % 7 == 6 {
        4096
    } else {
        (seq % 40) as usize
    };
    (0..len).map(|i| (i as u32 ^ seq) as u8).collect()
}

fn check(m: &Msg, seq: u32) {
    assert_eq!(m.seq, seq, "out of order");
    assert!(m.body == body(seq), "message {seq} has the wrong body");
    assert_eq!(m.handle.is_some(), seq % 11 == 10, "message {seq}'s handle");
}

const MESSAGES: u32 = 3000;

/// Sends `MESSAGES` messages, in bursts that overrun the lane's 64 slots, with a
/// handle in every 11th.
fn mixed_sender(conn: Connection<Msg>) {
    for seq in 0..MESSAGES {
        let handle = (seq % 11 == 10).then(|| multiprocess::Lock::new().unwrap());
        conn.send(&Msg {
            seq,
            body: body(seq),
            handle,
        })
        .unwrap();
        if seq % 100 == 99 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Whatever mix of paths the messages take (the lane, the socket when the lane is
/// full, too large, carries a handle or has socket frames ahead of it), and whatever
/// way the receiver waits, every message arrives once and in order.
fn order_is_kept_across_the_lane_and_the_socket(m: StartMethod) {
    let (here, there) = pipe::<Msg>().unwrap();
    let mut p = get_context(m).process(mixed_sender, there);
    p.start().unwrap();
    let mut seq = 0;
    while seq < MESSAGES {
        let got = match seq % 4 {
            0 | 1 => here.recv_timeout(LONG).unwrap(),
            2 => match here.recv_timeout(Duration::from_micros(50)) {
                Ok(v) => v,
                Err(e) if e.kind() == ErrorKind::Timeout => continue,
                Err(e) => panic!("{e}"),
            },
            _ => match here.try_recv() {
                Ok(v) => v,
                Err(e) if e.kind() == ErrorKind::Timeout => {
                    assert!(here.poll(Some(LONG)).unwrap(), "poll timed out");
                    continue;
                }
                Err(e) => panic!("{e}"),
            },
        };
        check(&got, seq);
        seq += 1;
    }
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(
        here.recv_timeout(LONG).unwrap_err().kind(),
        ErrorKind::Disconnected
    );
}

for_each_method!(order_is_kept_across_the_lane_and_the_socket);

/// A receiver that keeps leaving (timeouts of a few microseconds, `try_recv`, `poll`)
/// races every sender's look at whether a receiver is there: a message published as
/// the receiver leaves must still be found, by the leaving receiver or by the next
/// one (through the nudge that makes the socket readable). Threads of one process,
/// many times.
#[test]
fn a_receiver_that_keeps_leaving_loses_nothing() {
    let _g = common::shared();
    let (a, b) = pipe::<u64>().unwrap();
    const N: u64 = 20_000;
    let sender = std::thread::spawn(move || {
        for i in 0..N {
            a.send(&i).unwrap();
            if i % 64 == 0 {
                std::thread::yield_now();
            }
        }
    });
    let mut next = 0;
    let mut round = 0u32;
    while next < N {
        round = round.wrapping_add(1);
        let got = match round % 3 {
            0 => b.recv_timeout(Duration::from_micros(u64::from(round % 20))),
            1 => b.try_recv(),
            _ => {
                // `poll`, then a receive that does not wait.
                if b.poll(Some(Duration::from_micros(200))).unwrap() {
                    match b.try_recv() {
                        // A spurious readiness: a nudge left after the message it
                        // announced was taken.
                        Err(e) if e.kind() == ErrorKind::Timeout => continue,
                        r => r,
                    }
                } else {
                    continue;
                }
            }
        };
        match got {
            Ok(v) => {
                assert_eq!(v, next, "out of order");
                next += 1;
            }
            Err(e) => assert_eq!(e.kind(), ErrorKind::Timeout, "{e}"),
        }
    }
    sender.join().unwrap();
    assert_eq!(
        b.recv_timeout(LONG).unwrap_err().kind(),
        ErrorKind::Disconnected
    );
}

/// Says it is about to block, then blocks in `recv` (present in the lane).
fn blocked_receiver((conn, ready): (Connection<u32>, Connection<()>)) {
    ready.send(&()).unwrap();
    let _ = conn.recv();
}

/// A receiver killed while it waited in `recv` leaves the lane saying a receiver is
/// there, so senders keep using it: `poll` and `wait`, already asleep or called after,
/// still see those messages (the socket alone would not), and a new receiver gets
/// them all, in order, with the ones sent after it over the socket.
fn a_receiver_killed_while_waiting_leaves_the_pipe_working(m: StartMethod) {
    let (a, b) = pipe::<u32>().unwrap();
    let (here, there) = pipe::<()>().unwrap();
    let mut p = get_context(m).process(blocked_receiver, (b.try_clone().unwrap(), there));
    p.start().unwrap();
    here.recv_timeout(LONG).unwrap();
    std::thread::sleep(Duration::from_millis(100)); // asleep in `recv`
    p.kill().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    // Pollers already asleep on copies of the end wake for what comes in the lane.
    let (b2, b3) = (b.try_clone().unwrap(), b.try_clone().unwrap());
    let waiter = std::thread::spawn(move || wait(&[&b2], Some(LONG)).unwrap());
    let poller = std::thread::spawn(move || b3.poll(Some(LONG)).unwrap());
    std::thread::sleep(Duration::from_millis(50));
    for i in 0..100 {
        a.send(&i).unwrap();
    }
    assert_eq!(waiter.join().unwrap(), [0]);
    assert!(poller.join().unwrap());
    assert!(b.poll(Some(Duration::ZERO)).unwrap());
    assert_eq!(wait(&[&b], Some(Duration::ZERO)).unwrap(), [0]);
    for i in 0..100 {
        assert_eq!(b.recv_timeout(LONG).unwrap(), i);
    }
    a.send(&100).unwrap();
    drop(a);
    assert_eq!(b.recv_timeout(LONG).unwrap(), 100);
    assert_eq!(
        b.recv_timeout(LONG).unwrap_err().kind(),
        ErrorKind::Disconnected
    );
}

for_each_method!(a_receiver_killed_while_waiting_leaves_the_pipe_working);

/// Echoes each number doubled, until the peer closes.
fn doubler(conn: Connection<u64>) {
    while let Ok(v) = conn.recv() {
        conn.send(&(v * 2)).unwrap();
    }
}

/// Round trips with a child, where both sides wait in `recv` (the lane's case),
/// mixed with large messages and the peer's close: each answer is the right one.
fn round_trips_and_a_close(m: StartMethod) {
    let (here, there) = pipe::<u64>().unwrap();
    let mut p = get_context(m).process(doubler, there);
    p.start().unwrap();
    for i in 0..5_000u64 {
        here.send(&i).unwrap();
        assert_eq!(here.recv_timeout(LONG).unwrap(), 2 * i);
    }
    drop(here);
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));
}

for_each_method!(round_trips_and_a_close);

/// A peer that sends, then exits at once: what it sent arrives (part of it may sit in
/// the lane behind the socket's hang-up), then `Disconnected`.
fn send_and_exit(conn: Connection<u32>) {
    for i in 0..50 {
        conn.send(&i).unwrap();
    }
}

fn messages_sent_before_a_close_arrive(m: StartMethod) {
    for _ in 0..20 {
        let (here, there) = pipe::<u32>().unwrap();
        let mut p = get_context(m).process(send_and_exit, there);
        p.start().unwrap();
        for i in 0..50 {
            assert_eq!(here.recv_timeout(LONG).unwrap(), i);
        }
        assert_eq!(
            here.recv_timeout(LONG).unwrap_err().kind(),
            ErrorKind::Disconnected
        );
        assert!(p.join_timeout(LONG).unwrap());
    }
}

for_each_method!(messages_sent_before_a_close_arrive);

/// Receives and drops numbers until killed.
fn eager_receiver((conn, ready): (Connection<u32>, Connection<()>)) {
    ready.send(&()).unwrap();
    while conn.recv().is_ok() {}
}

/// A receiver killed at a random moment of a stream of small messages (most of them
/// through the lane) costs only what it had taken: the next receiver gets every later
/// message, once, in order, with no gap.
fn a_receiver_killed_in_a_stream_costs_only_what_it_took(m: StartMethod) {
    for round in 0..5u64 {
        let (a, b) = pipe::<u32>().unwrap();
        let (here, there) = pipe::<()>().unwrap();
        let mut p = get_context(m).process(eager_receiver, (b.try_clone().unwrap(), there));
        p.start().unwrap();
        here.recv_timeout(LONG).unwrap();
        const N: u32 = 20_000;
        let sender = std::thread::spawn(move || {
            for i in 0..N {
                a.send(&i).unwrap();
            }
        });
        std::thread::sleep(Duration::from_micros(300 + round * 700));
        p.kill().unwrap();
        assert!(p.join_timeout(LONG).unwrap());
        let first = b.recv_timeout(LONG).unwrap();
        let mut last = first;
        while last + 1 < N {
            let v = b.recv_timeout(LONG).unwrap();
            assert_eq!(v, last + 1, "a gap or a repeat after {last}");
            last = v;
        }
        sender.join().unwrap();
        assert_eq!(
            b.recv_timeout(LONG).unwrap_err().kind(),
            ErrorKind::Disconnected
        );
    }
}

for_each_method!(a_receiver_killed_in_a_stream_costs_only_what_it_took);
