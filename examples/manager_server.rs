//! A remote manager, server side: Python's `BaseManager` "remote manager" example.
//!
//! The server registers a queue named `get_queue` and a dict named `results`, and
//! serves them at an address with an authkey. Any program that knows both can connect
//! (see `manager_client.rs`), on this host or, with a TCP address, from another one.
//! The server prints what arrives in the queue; the message `shutdown` stops it.
//!
//! Run it in two terminals:
//!
//! ```text
//! terminal 1:  cargo run --example manager_server      # serves 127.0.0.1:50000, prints a key
//! terminal 2:  export MP_MANAGER_AUTHKEY=<the key it printed>
//!              cargo run --example manager_client -- hello world  # puts two messages
//!              cargo run --example manager_client -- shutdown     # stops the server
//! ```
//!
//! Both take the address as `MP_MANAGER_ADDRESS` (default `127.0.0.1:50000`, loopback
//! only; also `@name` for an abstract Unix socket, or a path) and the key as
//! `MP_MANAGER_AUTHKEY`. There is no default key: without `MP_MANAGER_AUTHKEY` the
//! server makes a random one and prints it, and the client refuses to start.
//!
//! # Serving other hosts
//!
//! Binding `0.0.0.0:50000` (`MP_MANAGER_ADDRESS=0.0.0.0:50000`) serves every network
//! this host is on, and exposes this:
//!
//! * anyone who can reach the port can try to log in, as often as they like;
//! * the key is the only protection: whoever has it can read and change every object
//!   and stop the server, so keep it long, random and secret;
//! * after the login the traffic is not encrypted (the handshake proves both sides
//!   know the key without sending it; what follows travels in clear).
//!
//! Prefer loopback with an SSH tunnel or a VPN, or at least a firewall that lets only
//! your own hosts reach the port.

use multiprocess::{Manager, ManagerServer, QueueProxy, Served};

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let address = std::env::var("MP_MANAGER_ADDRESS").unwrap_or_else(|_| "127.0.0.1:50000".into());
    let authkey = match std::env::var("MP_MANAGER_AUTHKEY") {
        Ok(k) if !k.is_empty() => k,
        _ => {
            // No fixed default: a fresh random key, shown once to the operator.
            let raw = multiprocess::AuthKey::random()?;
            let k: String = raw
                .as_bytes()
                .expect("a random key has bytes")
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            println!("no MP_MANAGER_AUTHKEY given: made a random key; in the client's terminal:");
            println!("    export MP_MANAGER_AUTHKEY={k}");
            k
        }
    };

    let server = ManagerServer::bind(&address, authkey.as_str())?;
    server
        .register("get_queue", Served::queue())
        .register("results", Served::dict());
    println!("serving at {}", server.address());

    // This process reads the queue through a proxy, like any client.
    let reader = {
        let (address, authkey) = (server.address().to_string(), authkey.clone());
        let server = server.clone();
        std::thread::spawn(move || -> multiprocess::Result<()> {
            let m = Manager::connect(&address, authkey.as_str())?;
            let q: QueueProxy<String> = m.get("get_queue")?;
            let mut n = 0u32;
            loop {
                let msg = q.get()?;
                if msg == "shutdown" {
                    println!("got shutdown: stopping after {n} messages");
                    server.shutdown();
                    return Ok(());
                }
                n += 1;
                println!("got #{n}: {msg}");
            }
        })
    };
    server.serve_forever()?;
    reader.join().expect("the reader thread")?;
    Ok(())
}
