//! `Client::connect_timeout` (issue 14): a deadline of the caller's choice for the
//! whole connection. `None` waits for a listener that has not called `accept` yet, as
//! Python's `Client` does; `Some(d)` retries a refused connection with backoff until
//! the deadline, so a client may start before its server, and bounds the login.
//! Clients run in children under every start method.

multiprocess::test_support!();

#[macro_use]
mod common;

use std::time::Duration;

use multiprocess::{Client, Connection, ErrorKind, Listener, StartMethod, get_context, pipe};

use common::{CHILD_PATIENCE, LONG, TempPath};

/// Says "ready", then connects with `timeout` and sends 42 (or the error's kind).
fn client((path, timeout, to_parent): (String, Option<Duration>, Connection<String>)) {
    to_parent.send(&"ready".to_string()).unwrap();
    match Client::connect_timeout::<u32>(&path, "key", timeout) {
        Ok(c) => c.send(&42).unwrap(),
        Err(e) => to_parent.send(&format!("{:?}", e.kind())).unwrap(),
    }
    let _ = to_parent.recv_timeout(CHILD_PATIENCE);
}

fn connect_with_deadline(method: StartMethod) {
    let ctx = get_context(method);
    // 1. The client starts before the server binds: it retries until it is there.
    let path = TempPath::new("late-bind");
    let (here, there) = pipe::<String>().unwrap();
    let mut p = ctx.process(client, (path.as_string(), Some(LONG), there));
    p.start().unwrap();
    assert_eq!(here.recv_timeout(LONG).unwrap(), "ready");
    std::thread::sleep(Duration::from_millis(50)); // let it be refused once or more
    let l = Listener::bind(&path.as_string(), "key").unwrap();
    let c = l.accept_timeout::<u32>(LONG).unwrap();
    assert_eq!(c.recv_timeout(LONG).unwrap(), 42);
    drop(here);
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));
    drop(l);

    // 2. `None`: the listener is bound but accepts only later; the client waits.
    let path = TempPath::new("late-accept");
    let l = Listener::bind(&path.as_string(), "key").unwrap();
    let (here, there) = pipe::<String>().unwrap();
    let mut p = ctx.process(client, (path.as_string(), None, there));
    p.start().unwrap();
    assert_eq!(here.recv_timeout(LONG).unwrap(), "ready");
    std::thread::sleep(Duration::from_millis(50)); // the client is in its login now
    let c = l.accept_timeout::<u32>(LONG).unwrap();
    assert_eq!(c.recv_timeout(LONG).unwrap(), 42);
    drop(here);
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(p.exitcode(), Some(0));

    // 3. A short deadline and nobody accepting: Timeout; nobody listening: Disconnected.
    let (here, there) = pipe::<String>().unwrap();
    let path2 = TempPath::new("unaccepted");
    let l2 = Listener::bind(&path2.as_string(), "key").unwrap();
    let mut p = ctx.process(
        client,
        (path2.as_string(), Some(Duration::from_millis(100)), there),
    );
    p.start().unwrap();
    assert_eq!(here.recv_timeout(LONG).unwrap(), "ready");
    assert_eq!(here.recv_timeout(LONG).unwrap(), "Timeout");
    drop(here);
    assert!(p.join_timeout(LONG).unwrap());
    drop(l2);
    let nobody = TempPath::new("nobody");
    let e =
        Client::connect_timeout::<u32>(&nobody.as_string(), "key", Some(Duration::from_millis(30)))
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected);
    let e = Client::connect_timeout::<u32>(&nobody.as_string(), "key", None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected);
}

for_each_method!(watchdog: connect_with_deadline);
