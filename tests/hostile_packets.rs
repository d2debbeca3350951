//! Hostile records at a pipe's receiving end. A `pipe()` is a Unix sequenced-packet
//! socket, and a frame larger than one record continues in records that start with
//! a prefix ("MPFC", 4 zero bytes, the offset in the body). Here records are written
//! one by one straight onto the socket: valid frames, first records that announce more
//! than comes, continuation records out of place, of the wrong length, carrying
//! handles, or with no frame to continue, and random bytes. The receiver must return
//! whole messages or an error (`Deserialize`, `Protocol`, `Disconnected` once the
//! writer is gone), never abort, hang, leak a handle or misread, and a valid message
//! sent after any of it arrives intact.
//!
//! Each property test runs proptest's default number of cases (256); set
//! `PROPTEST_CASES` for more.

mod common;

multiprocess::test_support!();

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use multiprocess::{Connection, ErrorKind, pipe};
use proptest::prelude::*;

/// Every record of a frame but the last has this many bytes.
const RECORD: usize = 64 << 10;
/// The prefix of a first record (the frame header) and of a continuation record.
const PREFIX: usize = 16;
const PER: usize = RECORD - PREFIX;

fn header(len: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(PREFIX);
    h.extend_from_slice(&0x4d50_4652u32.to_le_bytes()); // "MPFR"
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
    h
}

fn cont(offset: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(PREFIX);
    p.extend_from_slice(&0x4d50_4643u32.to_le_bytes()); // "MPFC"
    p.extend_from_slice(&0u32.to_le_bytes());
    p.extend_from_slice(&offset.to_le_bytes());
    p
}

/// The records of a valid frame carrying `body`, as the crate sends them.
fn frame_records(body: &[u8]) -> Vec<Vec<u8>> {
    let first = body.len().min(RECORD - PREFIX);
    let mut recs = vec![[header(body.len() as u64), body[..first].to_vec()].concat()];
    let mut at = first;
    while at < body.len() {
        let end = (at + PER).min(body.len());
        recs.push([cont(at as u64), body[at..end].to_vec()].concat());
        at = end;
    }
    recs
}

/// The bytes `bincode`-style of a `String` (u64 length, then the bytes).
fn string_body(s: &str) -> Vec<u8> {
    [
        (s.len() as u64).to_le_bytes().to_vec(),
        s.as_bytes().to_vec(),
    ]
    .concat()
}

/// Writes one record onto the socket under `c`, with a handle (to `/dev/null`)
/// attached if `with_fd`.
#[allow(unsafe_code)]
fn write_record(c: &impl AsFd, bytes: &[u8], with_fd: bool) {
    let fd: BorrowedFd<'_> = c.as_fd();
    let null = std::fs::File::open("/dev/null").unwrap();
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut _,
        iov_len: bytes.len(),
    };
    // SAFETY: plain `sendmsg` on a live socket with buffers that outlive the call.
    unsafe {
        let mut space = [0u64; 8];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if with_fd {
            msg.msg_control = space.as_mut_ptr() as *mut _;
            msg.msg_controllen = libc::CMSG_SPACE(4) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(4) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut i32, null.as_raw_fd());
        }
        let n = libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_NOSIGNAL);
        assert_eq!(
            n,
            bytes.len() as isize,
            "{}",
            std::io::Error::last_os_error()
        );
    }
}

/// Receives until the writer's close is reported; every error is one of the allowed
/// kinds, and there are never more messages than records.
fn drain(rx: Connection<String>, records: usize) -> Vec<String> {
    let mut got = Vec::new();
    for _ in 0..=records {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(s) => got.push(s),
            Err(e) => {
                common::assert_hostile_refusal(&e);
                if e.kind() == ErrorKind::Disconnected {
                    return got;
                }
            }
        }
    }
    panic!("more messages than records, or no end");
}

#[test]
fn a_large_message_arrives_whole_from_hand_made_records() {
    let (a, b) = pipe::<String>().unwrap();
    let text: String = (0..300_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    std::thread::scope(|s| {
        // Owned here, so that a failed receive closes it while unwinding and the
        // writer's next write fails instead of waiting for room forever.
        let b = b;
        s.spawn(|| {
            for r in frame_records(&string_body(&text)) {
                write_record(&a, &r, false);
            }
        });
        assert_eq!(b.recv_timeout(Duration::from_secs(30)).unwrap(), text);
    });
}

#[test]
fn misplaced_continuations_are_refused_and_the_pipe_goes_on() {
    let fds_before = common::fd_count();
    let (a, b) = pipe::<String>().unwrap();
    let text = "x".repeat(200_000);
    let good = frame_records(&string_body(&text));
    assert!(good.len() >= 4);
    let check = |what: &str, recs: Vec<(Vec<u8>, bool)>| {
        for (r, fd) in &recs {
            write_record(&a, r, *fd);
        }
        let e = b.recv_timeout(Duration::from_secs(30)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol, "{what}: {e}");
        a.send(&format!("after {what}")).unwrap();
        assert_eq!(
            b.recv_timeout(Duration::from_secs(30)).unwrap(),
            format!("after {what}"),
            "{what}"
        );
    };
    let plain = |v: &[Vec<u8>]| v.iter().map(|r| (r.clone(), false)).collect::<Vec<_>>();
    // The second and third continuation records swapped.
    let mut swapped = plain(&good);
    swapped.swap(1, 2);
    check("swapped records", swapped);
    // A continuation record cut short in the middle of the frame.
    let mut short = plain(&good);
    short[1].0.truncate(1000);
    check("a short record", short);
    // A continuation record carrying a handle (which must be closed, not leaked).
    let mut with_fd = plain(&good);
    with_fd[2].1 = true;
    check("a record with a handle", with_fd);
    // The frame stops; another frame's first record comes instead.
    let mut cut = plain(&good[..2]);
    cut.extend(plain(&frame_records(&string_body("next"))));
    check("a frame cut by the next", cut);
    drop((a, b));
    assert_eq!(
        common::fd_count(),
        fds_before,
        "a handle leaked: {:?}",
        common::fd_list()
    );
}

#[test]
fn continuations_with_no_frame_are_skipped() {
    let (a, b) = pipe::<String>().unwrap();
    write_record(&a, &[cont(65_520), vec![7; 100]].concat(), false);
    write_record(&a, &cont(0), true);
    a.send(&"after".to_string()).unwrap();
    assert_eq!(b.recv_timeout(Duration::from_secs(30)).unwrap(), "after");
}

#[test]
fn an_empty_record_is_not_a_close() {
    let (a, b) = pipe::<String>().unwrap();
    write_record(&a, &[], false);
    a.send(&"after".to_string()).unwrap();
    let e = b.recv_timeout(Duration::from_secs(30)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert_eq!(b.recv_timeout(Duration::from_secs(30)).unwrap(), "after");
    drop(a);
    let e = b.recv_timeout(Duration::from_secs(30)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
}

/// One hostile record.
fn record() -> impl Strategy<Value = (Vec<u8>, bool)> {
    let raw = (
        proptest::collection::vec(any::<u8>(), 0..300),
        any::<bool>(),
    );
    let first = (0u64..400_000, 0usize..2000).prop_map(|(len, n)| {
        let mut r = header(len);
        r.extend(std::iter::repeat_n(b'z', n.min(len as usize)));
        (r, false)
    });
    let continuation = (
        prop_oneof![Just(65_520u64), Just(131_040), any::<u64>()],
        prop_oneof![Just(PER), 0usize..2000],
        any::<bool>(),
    )
        .prop_map(|(off, n, fd)| ([cont(off), vec![b'y'; n]].concat(), fd));
    let valid = "[a-z]{0,20}".prop_map(|s| (frame_records(&string_body(&s)).remove(0), false));
    prop_oneof![raw, first, continuation, valid]
}

proptest! {
    #[test]
    fn random_records_end_cleanly(
        recs in proptest::collection::vec(record(), 1..8),
        big in 0usize..3,
    ) {
        let (a, b) = pipe::<String>().unwrap();
        // Then a valid message, possibly several records long: whatever came before,
        // it arrives whole unless it is taken as the rest of a frame left open, and
        // never garbled.
        let text = "q".repeat(big * 70_000 + 5);
        // Written from a thread: on a machine with small socket buffers the writes
        // wait for the receiver.
        let got = std::thread::scope(|s| {
            s.spawn(|| {
                for (r, fd) in &recs {
                    write_record(&a, r, *fd);
                }
                for r in frame_records(&string_body(&text)) {
                    write_record(&a, &r, false);
                }
                drop(a);
            });
            // `b` moves into `drain`: if it panics, `b` closes and the writer stops.
            drain(b, recs.len() + 4)
        });
        for s in got {
            prop_assert!(s == text || s.bytes().all(|c| c.is_ascii_lowercase()), "{s:?}");
        }
    }
}
