//! Seed 001, section 3.1.2 (Manager, dict): one process fills a manager's dict, another
//! prints it.
//!
//! Python:
//! ```python
//! def share_put(dict_share):
//!     for i in range(10):
//!         dict_share[i] = i
//!
//! def share_get(dict_share):
//!     print(dict_share)
//!
//! if __name__ == '__main__':
//!     share_dict = Manager().dict()
//!     p1 = Process(target=share_put, args=[share_dict])
//!     p1.start()
//!     p2 = Process(target=share_get, args=[share_dict])
//!     p2.start()
//!     p1.join()
//!     p2.join()
//! ```
//!
//! Rust: `Manager::start()?.dict::<i32, i32>()` is `Manager().dict()`; the proxy is
//! passed in the args like any value, and every call on it is a request to the
//! manager's server process, so both children see one dict. `share_get` prints it in
//! Python's `repr` shape, `{0: 0, 1: 1, ...}`. The seed shows no output, and with
//! reason: nothing makes `share_get` wait for `share_put`, so it prints the dict as it
//! is at that moment: empty, partly or wholly filled, from run to run (in Python too;
//! three runs here printed `{}`, all ten, and `{0: 0, ..., 4: 4}`). The twin then does what the seed leaves out: after both `join()`s the
//! parent prints the dict, always all ten items, then a third process started after
//! `p1.join()` prints it too, which is the order that makes `share_get` see them all.
//!
//! Run: `cargo run --example manager_dict_put_get`.

use multiprocess::{DictProxy, Manager, Process};

fn share_put(dict_share: DictProxy<i32, i32>) {
    for i in 0..10 {
        dict_share.insert(i, i).expect("the manager runs");
    }
}

/// Python's `repr` of a dict of ints.
fn repr(items: &[(i32, i32)]) -> String {
    let inner: Vec<String> = items.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("{{{}}}", inner.join(", "))
}

fn share_get(dict_share: DictProxy<i32, i32>) {
    let mut items = dict_share.items().expect("the manager runs");
    items.sort();
    println!("{}", repr(&items));
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let manager = Manager::start()?;
    let share_dict = manager.dict::<i32, i32>()?;
    let mut p1 = Process::new(share_put, share_dict.clone());
    p1.start()?;
    let mut p2 = Process::new(share_get, share_dict.clone());
    p2.start()?;
    p1.join()?;
    p2.join()?;

    let mut items = share_dict.items()?;
    items.sort();
    println!("after both joins, the parent sees {}", repr(&items));
    println!("a share_get started after p1.join() sees:");
    let mut p3 = Process::new(share_get, share_dict);
    p3.start()?;
    p3.join()?;
    Ok(())
}
