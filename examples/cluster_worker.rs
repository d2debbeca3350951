//! A worker host started by a function call instead of the environment variable:
//! `pool::cluster::Worker`, for programs that read their own configuration.
//!
//! The submitter and the hosts must be the same binary (functions travel as code
//! offsets; another build refuses the tasks), so this program, too, has both parts:
//!
//! ```text
//! terminal 1:  redis-server --save '' --appendonly no
//! terminal 2:  cargo run --release --features redis --example cluster_worker -- serve
//! terminal 3:  cargo run --release --features redis --example cluster_worker -- submit
//! ```
//!
//! A task that crashes its process, or runs past its timeout, fails on its own; the
//! host goes on (its local pool replaces the worker).

#[cfg(feature = "redis")]
fn shout(s: String) -> String {
    s.to_uppercase()
}

#[cfg(feature = "redis")]
fn crash(_: ()) -> u8 {
    std::process::abort()
}

#[cfg(feature = "redis")]
fn main() -> multiprocess::Result<()> {
    use multiprocess::pool::cluster::Worker;
    multiprocess::init();
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1/".into());
    let key = b"demo-key";
    match std::env::args().nth(1).as_deref() {
        Some("serve") => {
            println!("worker host on {url}; Ctrl-C to stop");
            Worker::new(&url, key).processes(2).run()
        }
        Some("submit") => {
            let pool = multiprocess::Pool::builder().redis(&url).key(key).build()?;
            let words = ["beyond", "one", "machine"].map(String::from);
            println!("{:?}", pool.map(shout, words)?);
            let e = pool.apply(crash, ()).unwrap_err();
            println!("a crashing task: {:?}: {e}", e.kind());
            println!(
                "and the host goes on: {}",
                pool.apply(shout, "still here".into())?
            );
            Ok(())
        }
        _ => {
            eprintln!("usage: cluster_worker serve | submit");
            Ok(())
        }
    }
}

#[cfg(not(feature = "redis"))]
fn main() {
    multiprocess::init();
    println!("this example needs the feature `redis`: add --features redis");
}
