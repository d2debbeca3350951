//! A remote manager, client side: connects to `manager_server.rs` by address and
//! authkey (no common parent, possibly another host) and puts its arguments in the
//! server's queue `get_queue`; it also counts its visits in the dict `results`.
//!
//! ```text
//! terminal 1:  cargo run --example manager_server      # prints a key
//! terminal 2:  export MP_MANAGER_AUTHKEY=<the key it printed>
//!              cargo run --example manager_client -- hello world
//!              cargo run --example manager_client -- shutdown
//! ```
//!
//! Environment: `MP_MANAGER_ADDRESS` (default `127.0.0.1:50000`) and
//! `MP_MANAGER_AUTHKEY` (required: the key the server printed or was given). A wrong
//! key fails with an authentication error on both sides. Connecting also puts the key
//! in this process's key ring, so proxies of that server that this process receives
//! from elsewhere work too (a serialized proxy carries no key).

use multiprocess::{DictProxy, Manager, QueueProxy};

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let address = std::env::var("MP_MANAGER_ADDRESS").unwrap_or_else(|_| "127.0.0.1:50000".into());
    let Some(authkey) = std::env::var("MP_MANAGER_AUTHKEY")
        .ok()
        .filter(|k| !k.is_empty())
    else {
        eprintln!(
            "set MP_MANAGER_AUTHKEY to the server's key (manager_server prints one when it \
             makes it)"
        );
        std::process::exit(2);
    };

    let m = match Manager::connect(&address, authkey.as_str()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("cannot use the manager at {address}: {e}");
            if e.kind() == multiprocess::ErrorKind::Disconnected {
                eprintln!("(start it first: cargo run --example manager_server)");
            }
            std::process::exit(2);
        }
    };
    let queue: QueueProxy<String> = m.get("get_queue")?;
    let results: DictProxy<String, u64> = m.get("results")?;

    let mut messages: Vec<String> = std::env::args().skip(1).collect();
    if messages.is_empty() {
        messages.push(format!("hello from pid {}", std::process::id()));
    }
    let stopping = messages.iter().any(|m| m == "shutdown");
    for msg in messages {
        println!("put: {msg}");
        queue.put(msg)?;
    }
    if stopping {
        return Ok(()); // the server is going away
    }
    // Not atomic across clients (get, then insert): fine for a visit counter; use a
    // manager lock around it when it matters (see seed003_manager_lock.rs).
    let visits = results.get(&"visits".into())?.unwrap_or(0) + 1;
    results.insert("visits".into(), visits)?;
    println!("visits so far: {visits}");
    Ok(())
}
