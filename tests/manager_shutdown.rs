//! Issue 14: the owner of a remote `ManagerServer` (one in another process, reached
//! with `Manager::connect`) stops it with an authenticated call, as Python's manager
//! owner calls `shutdown()`; a client with the wrong key cannot even connect. The
//! server runs in a child under every start method.

multiprocess::test_support!();

#[macro_use]
mod common;

use multiprocess::{
    Connection, ErrorKind, Manager, ManagerServer, Served, StartMethod, get_context,
};

use common::LONG;

/// Serves a manager at a fresh abstract address until a client stops it; exits 0
/// when `serve_forever` returns.
fn serve((tag, to_parent): (String, Connection<String>)) {
    let server = ManagerServer::bind(&format!("@{tag}"), "owner-key").unwrap();
    server.register("d", Served::dict());
    to_parent.send(&server.address().to_string()).unwrap();
    server.serve_forever().unwrap();
}

fn remote_owner_shuts_the_server_down(method: StartMethod) {
    let (here, there) = multiprocess::pipe::<String>().unwrap();
    let tag = format!("mp-test-remote-shutdown-{}-{method}", std::process::id());
    let mut p = get_context(method).process(serve, (tag, there));
    p.start().unwrap();
    let addr = here.recv_timeout(LONG).unwrap();
    assert_eq!(
        Manager::connect(&addr, "not-the-key").unwrap_err().kind(),
        ErrorKind::Authentication
    );
    assert!(
        !p.join_timeout(std::time::Duration::ZERO).unwrap(),
        "still serving"
    );
    let m = Manager::connect(&addr, "owner-key").unwrap();
    m.shutdown().unwrap();
    assert!(p.join_timeout(LONG).unwrap(), "serve_forever returned");
    assert_eq!(p.exitcode(), Some(0));
    assert!(
        Manager::connect(&addr, "owner-key").is_err(),
        "nobody serves now"
    );
}

for_each_method!(watchdog: remote_owner_shuts_the_server_down);
