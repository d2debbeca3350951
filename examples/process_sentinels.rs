//! Seed 001, section 1.2.2 (Process): four processes called with `args=(1,)` and
//! `kwargs={"b": 2}`, each sleeping 0-2 s at random; the parent collects their
//! sentinels, joins them all and prints 2222.
//!
//! Python:
//! ```python
//! def foo(a, *, b):
//!     s = random.randint(0, 2)
//!     time.sleep(s)
//!     print(a, b, s)
//!
//! if __name__ == '__main__':
//!     file_nums = []
//!     p_list = []
//!     for i in range(4):
//!         p = Process(target=foo, args=(1,), kwargs={"b": 2})
//!         p.start()
//!         p_list.append(p)
//!         file_nums.append(p.sentinel)
//!     # connection.wait(file_nums)
//!     [p.join() for p in p_list]
//!     print(2222)
//! ```
//!
//! Rust has no keyword arguments: a struct with named fields, `Args { a, b }`, plays
//! `args` + `kwargs`, and `foo` destructures it by name. It travels to the child
//! serialized, hence `Serialize + Deserialize`. The random 0-2 s comes from a cheap mix
//! of the child's pid and the clock (no `rand` dependency).
//!
//! `p.sentinel()` is the child's pidfd, readable once it ended, as Python's
//! `p.sentinel`. `multiprocess::wait` (Python's `connection.wait`) takes the processes
//! themselves, which implement `Waitable` through their sentinel; like Python's it
//! returns as soon as at least one is ready, with the indices of the ready ones. The
//! seed leaves that call commented out; here it runs, and one line (in parentheses)
//! says which process ended first.
//!
//! Run: `cargo run --example process_sentinels` (at most about 2 s).

use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use multiprocess::{Process, Waitable};
use serde::{Deserialize, Serialize};

/// `args=(1,), kwargs={"b": 2}`.
#[derive(Serialize, Deserialize)]
struct Args {
    a: u32,
    b: u32,
}

/// `random.randint(0, 2)`: a splitmix64 step over the clock and the pid.
fn randint_0_2() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() ^ u64::from(d.subsec_nanos()));
    let mut z = nanos ^ (u64::from(std::process::id()) << 32);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) % 3
}

fn foo(Args { a, b }: Args) {
    let s = randint_0_2();
    std::thread::sleep(Duration::from_secs(s));
    println!("{a} {b} {s}");
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let mut file_nums = Vec::new();
    let mut p_list = Vec::new();
    for _ in 0..4 {
        let mut p = Process::new(foo, Args { a: 1, b: 2 });
        p.start()?;
        file_nums.push(p.sentinel()?.as_raw_fd());
        p_list.push(p);
    }
    // connection.wait(file_nums): `wait` takes the processes (their sentinels).
    let sentinels: Vec<&dyn Waitable> = p_list.iter().map(|p| p as &dyn Waitable).collect();
    let ready = multiprocess::wait(&sentinels, None)?;
    let first: Vec<String> = ready
        .iter()
        .map(|&i| format!("{} (sentinel fd {})", p_list[i].get_name(), file_nums[i]))
        .collect();
    println!("(connection.wait: first ended: {})", first.join(", "));
    for p in &p_list {
        p.join()?;
    }
    println!("2222");
    Ok(())
}
