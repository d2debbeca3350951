//! `Listener` / `Client` conformance to Python's `multiprocessing.connection`, over
//! abstract names, Unix paths and TCP on loopback: binding twice, connect-send-close
//! before `accept`, authkeys right and wrong (both sides fail, the server goes on),
//! oversized and malformed frames (only that connection closes), handles over TCP, and
//! clients in child processes under every start method.

multiprocess::test_support!();

#[macro_use]
mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use multiprocess::{Client, Connection, ErrorKind, Listener, StartMethod, get_context, pipe};

use common::{LONG, TempPath};

fn abstract_name(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "@mp-test-listener-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The three kinds of address, fresh for one test.
fn addresses(tag: &str) -> (Vec<String>, TempPath) {
    let path = TempPath::new(tag);
    (
        vec![
            abstract_name(tag),
            path.as_string(),
            "127.0.0.1:0".to_string(),
        ],
        path,
    )
}

#[test]
fn binding_twice_is_an_error() {
    let _g = common::shared();
    let (addrs, _p) = addresses("twice");
    for a in addrs {
        let first = Listener::bind(&a, None).unwrap();
        let again = Listener::bind(first.address(), None).unwrap_err();
        assert_eq!(again.kind(), ErrorKind::AlreadyExists, "{a}: {again}");
        let shown = first.address().to_string();
        drop(first);
        // Free again once the first is gone (a path listener removes its file), and
        // every copy of its socket: a child that another test is spawning holds a copy
        // of every fd until its exec (which closes it), so an abstract name may stay
        // bound for that long. Reusing a name at once is what made
        // `connect_send_close_before_accept_is_received` flaky under `cargo test`.
        let mut last = None;
        let free = common::eventually(LONG, || match Listener::bind(&shown, None) {
            Ok(_) => true,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{shown}: {e}");
                last = Some(e);
                false
            }
        });
        assert!(free, "{shown} still bound: {last:?}");
    }
}

/// Says it runs, waits for the parent, then exits.
fn hold_on(conn: Connection<()>) {
    conn.send(&()).unwrap();
    common::wait_for_parent(conn);
}

/// A child made by `fork` inherits every fd; it closes a listener's socket as it
/// closes handles, so dropping the listener in the parent frees its address at once
/// even while the child lives (before, the child's copy kept the name bound).
#[test]
fn a_fork_child_does_not_keep_a_dropped_listeners_address() {
    let _g = common::serial(); // no other test spawns a child meanwhile
    let name = abstract_name("forked");
    let l = Listener::bind(&name, None).unwrap();
    let (mine, theirs) = pipe::<()>().unwrap();
    let mut p = get_context(StartMethod::Fork).process(hold_on, theirs);
    p.start().unwrap();
    // Its task runs: the child is past closing what it inherited.
    mine.recv_timeout(LONG).unwrap();
    drop(l);
    let again = Listener::bind(&name, None);
    drop(mine); // the child returns
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));
    common::assert_gone(p.pid().unwrap());
    again.unwrap_or_else(|e| panic!("{name} still bound by the fork child: {e}"));
}

#[test]
fn connect_send_close_before_accept_is_received() {
    let _g = common::shared();
    for key in [None, Some(b"k3y".as_slice())] {
        // Fresh addresses for each listener: an abstract name just freed may still be
        // bound by a child another test is spawning (see `an_address_is_free_again...`).
        let (addrs, _p) = addresses("early");
        for a in addrs {
            let l = Listener::bind(&a, key).unwrap();
            let addr = l.address().to_string();
            // The client must wait for the handshake, so it runs on a thread.
            let t = std::thread::spawn(move || {
                let c = Client::connect::<String>(&addr, key).unwrap();
                c.send(&"early bird".to_string()).unwrap();
                c.close();
            });
            // Without a key the client need not wait: it is done before accept.
            let t = if key.is_none() {
                t.join().unwrap();
                None
            } else {
                Some(t)
            };
            let conn = l.accept::<String>().unwrap();
            assert_eq!(conn.recv_timeout(LONG).unwrap(), "early bird", "{a}");
            assert_eq!(conn.recv().unwrap_err().kind(), ErrorKind::Disconnected);
            if let Some(t) = t {
                t.join().unwrap();
            }
        }
    }
}

#[test]
fn wrong_authkey_fails_on_both_sides_and_the_server_goes_on() {
    let _g = common::shared();
    let (addrs, _p) = addresses("auth");
    for a in addrs {
        let l = Listener::bind(&a, b"right key").unwrap();
        let addr = l.address().to_string();
        let t = std::thread::spawn(move || {
            let wrong = Client::connect::<u32>(&addr, b"wrong key").unwrap_err();
            // A keyless client does not wait for the server: it learns on first use.
            let keyless = Client::connect::<u32>(&addr, None).unwrap();
            let none = keyless.recv_timeout(LONG).unwrap_err();
            let right = Client::connect::<u32>(&addr, b"right key").unwrap();
            right.send(&7).unwrap();
            (wrong.kind(), none.kind())
        });
        // Failed logins never reach `accept`: it returns the next authenticated one.
        let ok = l.accept::<u32>().unwrap();
        assert_eq!(ok.recv_timeout(LONG).unwrap(), 7);
        let (wrong, none) = t.join().unwrap();
        assert_eq!(wrong, ErrorKind::Authentication);
        assert_eq!(none, ErrorKind::Disconnected);
    }
    // A keyed client facing a keyless server cannot authenticate it either.
    let l = Listener::bind("127.0.0.1:0", None).unwrap();
    let addr = l.address().to_string();
    let t = std::thread::spawn(move || Client::connect::<u32>(&addr, b"k").unwrap_err().kind());
    let _ = l.accept_timeout::<u32>(Duration::from_millis(100));
    assert_eq!(t.join().unwrap(), ErrorKind::Authentication);
}

/// Writes a raw frame header (magic, nfds, len) to a socket.
fn raw_header(magic: u32, len: u64) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&magic.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
    h
}

#[test]
fn oversized_and_malformed_frames_close_only_that_connection() {
    let _g = common::shared();
    let name = abstract_name("frames");
    let mut l = Listener::bind(&name, None).unwrap();
    l.set_max_message_size(1 << 20);
    let sock_name = name.trim_start_matches('@').to_string();
    let raw = |bytes: Vec<u8>| {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&sock_name).unwrap();
        let mut s = UnixStream::connect_addr(&addr).unwrap();
        s.write_all(&bytes).unwrap();
        s
    };
    // A keyless client's hello, as the crate sends it.
    let hello = || {
        let mut h = raw_header(0x4d50_4652, 12);
        h.extend_from_slice(b"#MP-AUTH-1#\0");
        h
    };
    // 1 TiB announced: refused without allocating it.
    let _big = raw([hello(), raw_header(0x4d50_4652, 1 << 40)].concat());
    let c = l.accept::<Vec<u8>>().unwrap();
    assert_eq!(
        c.recv_timeout(LONG).unwrap_err().kind(),
        ErrorKind::Protocol
    );
    // Garbage instead of a header.
    let _bad = raw([hello(), b"GET / HTTP/1.1\r\n\r\n".to_vec()].concat());
    let c = l.accept::<Vec<u8>>().unwrap();
    assert_eq!(
        c.recv_timeout(LONG).unwrap_err().kind(),
        ErrorKind::Protocol
    );
    // Garbage, or an oversized frame, instead of the hello: the login stage closes
    // them (the peer reads end of stream) and `accept` never sees them.
    let mut worse = raw(b"GET / HTTP/1.1\r\n\r\n".to_vec());
    let mut huge = raw(raw_header(0x4d50_4652, 1 << 40));
    for s in [&mut worse, &mut huge] {
        use std::io::Read;
        s.set_read_timeout(Some(LONG)).unwrap();
        match s.read(&mut [0u8; 16]) {
            Ok(n) => assert_eq!(n, 0),
            // Closed with bytes it did not read: the kernel says so.
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        }
    }
    // The listener still serves a well-behaved client.
    let t = std::thread::spawn(move || {
        let c = Client::connect::<Vec<u8>>(&name, None).unwrap();
        c.send(&vec![1, 2, 3]).unwrap();
    });
    let c = l.accept::<Vec<u8>>().unwrap();
    assert_eq!(c.recv_timeout(LONG).unwrap(), vec![1, 2, 3]);
    t.join().unwrap();
}

#[test]
fn a_handle_over_tcp_is_a_clear_error() {
    let _g = common::shared();
    let l = Listener::bind("127.0.0.1:0", b"k").unwrap();
    let addr = l.address().to_string();
    let t = std::thread::spawn(move || Client::connect::<Connection<u8>>(&addr, b"k").unwrap());
    let server = l.accept::<Connection<u8>>().unwrap();
    let client = t.join().unwrap();
    let (a, _b) = pipe::<u8>().unwrap();
    let err = client.send(&a).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("TCP"), "{err}");
    // The connection still works for plain bytes.
    client.send_bytes(b"still fine").unwrap();
    assert_eq!(server.recv_bytes().unwrap(), b"still fine");
    // Over a Unix listener handles do travel.
    let name = abstract_name("handles");
    let l = Listener::bind(&name, b"k").unwrap();
    let t = std::thread::spawn(move || Client::connect::<Connection<u8>>(&name, b"k").unwrap());
    let server = l.accept::<Connection<u8>>().unwrap();
    let client = t.join().unwrap();
    let (a, b) = pipe::<u8>().unwrap();
    client.send(&a).unwrap();
    let a2 = server.recv_timeout(LONG).unwrap();
    a2.send(&5).unwrap();
    assert_eq!(b.recv_timeout(LONG).unwrap(), 5);
}

fn child_client((addr, key): (String, Vec<u8>)) {
    let c = Client::connect::<(u32, String)>(&addr, key).unwrap();
    c.send(&(std::process::id(), "from a child".into()))
        .unwrap();
    // Wait for the server's word before exiting.
    let _ = c.recv_timeout(Duration::from_secs(60));
}

fn clients_in_children(method: StartMethod) {
    let (addrs, _p) = addresses("child");
    for a in addrs {
        let l = Listener::bind(&a, b"family").unwrap();
        let mut p = get_context(method)
            .process(child_client, (l.address().to_string(), b"family".to_vec()));
        p.start().unwrap();
        let c = l.accept_timeout::<(u32, String)>(LONG).unwrap();
        let (pid, msg) = c.recv_timeout(LONG).unwrap();
        assert_eq!((Some(pid), msg.as_str()), (p.pid(), "from a child"));
        c.send(&(0, "bye".into())).unwrap();
        assert!(p.join_timeout(LONG).unwrap());
        assert_eq!(p.exitcode(), Some(0));
    }
}

for_each_method!(clients_in_children);
