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
//! terminal 1:  cargo run --example manager_server                 # serves 127.0.0.1:50000
//! terminal 2:  cargo run --example manager_client -- hello world  # puts two messages
//!              cargo run --example manager_client -- shutdown     # stops the server
//! ```
//!
//! Both take the address as `MP_MANAGER_ADDRESS` (default `127.0.0.1:50000`; also
//! `@name` for an abstract Unix socket, or a path) and the key as `MP_MANAGER_AUTHKEY`
//! (default `abracadabra`). To serve other hosts, bind `0.0.0.0:50000` and keep the key
//! secret: anyone with it can call the server. The authkey proves both sides know the
//! key; it does not encrypt the traffic.

use multiprocess::{Manager, ManagerServer, QueueProxy, Served};

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let address = std::env::var("MP_MANAGER_ADDRESS").unwrap_or_else(|_| "127.0.0.1:50000".into());
    let authkey = std::env::var("MP_MANAGER_AUTHKEY").unwrap_or_else(|_| "abracadabra".into());

    let server = ManagerServer::bind(&address, authkey.as_str())?;
    server
        .register("get_queue", Served::queue())
        .register("results", Served::dict());
    println!(
        "serving at {} (authkey from MP_MANAGER_AUTHKEY)",
        server.address()
    );

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
