//! Seed 003, "服务进程（Manager）" (server process, under "进程间共享状态"): a child writes
//! keys of three types into a manager's dict and reverses a manager's list; the
//! parent prints both.
//!
//! Python:
//! ```python
//! def f(d, l):
//!     d[1] = '1'
//!     d['2'] = 2
//!     d[0.25] = None
//!     l.reverse()
//!
//! if __name__ == '__main__':
//!     with Manager() as manager:
//!         d = manager.dict()
//!         l = manager.list(range(10))
//!
//!         p = Process(target=f, args=(d, l))
//!         p.start()
//!         p.join()
//!
//!         print(d)
//!         print(l)
//! ```
//! which the seed says prints
//! ```text
//! {0.25: None, 1: '1', '2': 2}
//! [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
//! ```
//!
//! Rust: `Manager::start()` is `with Manager() as manager:` (the server process stops
//! when the last handle is dropped, at the end of `main`); `manager.dict()` and
//! `manager.list_from(0..10)` are `manager.dict()` and `manager.list(range(10))`.
//! A manager object holds any serializable type, which is the seed's point ("更灵活",
//! more flexible than shared memory). A Python dict may mix key and value types; a
//! Rust one has one type each, so both are `Obj`, a serde enum of Python's `None`,
//! int, float and str, printed in Python's `repr` shape. Items come back in the order
//! they were inserted, as from a Python 3.7+ dict: `{1: '1', '2': 2, 0.25: None}`. The
//! seed's order is from the Python documentation of old, when dicts had no order.
//!
//! Run: `cargo run --example manager_dict_list`.

use std::fmt;

use multiprocess::{DictProxy, ListProxy, Manager, Process};
use serde::{Deserialize, Serialize};

/// The Python values the seed uses.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
enum Obj {
    None,
    Int(i64),
    Float(f64),
    Str(String),
}

impl fmt::Display for Obj {
    /// Python's `repr`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Obj::None => write!(f, "None"),
            Obj::Int(i) => write!(f, "{i}"),
            Obj::Float(x) => write!(f, "{x:?}"),
            Obj::Str(s) => write!(f, "'{s}'"),
        }
    }
}

fn f((d, l): (DictProxy<Obj, Obj>, ListProxy<i64>)) {
    d.insert(Obj::Int(1), Obj::Str("1".into())).expect("insert");
    d.insert(Obj::Str("2".into()), Obj::Int(2)).expect("insert");
    d.insert(Obj::Float(0.25), Obj::None).expect("insert");
    l.reverse().expect("reverse");
}

fn main() -> multiprocess::Result<()> {
    multiprocess::init();
    let manager = Manager::start()?;
    let d = manager.dict::<Obj, Obj>()?;
    let l = manager.list_from(0..10i64)?;

    let mut p = Process::new(f, (d.clone(), l.clone()));
    p.start()?;
    p.join()?;

    let items: Vec<String> = d
        .items()?
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    println!("{{{}}}", items.join(", "));
    println!("{:?}", l.to_vec()?);
    Ok(())
}
