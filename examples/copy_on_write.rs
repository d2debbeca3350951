//! Seed 001, section 1.3.1: memory is not shared between processes. A child gets a
//! copy (copy-on-write after fork, a fresh copy under spawn): its change to ordinary
//! memory is invisible to the parent, while a change to a shared `Value` is seen.
//! Run: `cargo run --example copy_on_write`.

use std::sync::atomic::{AtomicU32, Ordering};

use multiprocess::{Process, StartMethod, Value, get_context};

static ORDINARY: AtomicU32 = AtomicU32::new(1);

fn child(shared: Value<u32>) {
    ORDINARY.store(100, Ordering::SeqCst);
    shared.set(100);
    println!(
        "  child: ordinary = {}, shared = {}",
        ORDINARY.load(Ordering::SeqCst),
        shared.get()
    );
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    for method in [
        StartMethod::Fork,
        StartMethod::ForkServer,
        StartMethod::Spawn,
    ] {
        ORDINARY.store(1, Ordering::SeqCst);
        let shared = Value::new(1u32)?;
        let mut p: Process<Value<u32>> = get_context(method).process(child, shared.clone());
        p.start()?;
        p.join()?;
        println!(
            "{method}: parent sees ordinary = {} (its own copy), shared = {}",
            ORDINARY.load(Ordering::SeqCst),
            shared.get()
        );
    }
    Ok(())
}
