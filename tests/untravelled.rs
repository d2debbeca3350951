//! Arguments and results that the wire format cannot decode (`serde_json::Value`,
//! untagged enums, `#[serde(flatten)]`) are refused by `apply`, `map` and `submit`
//! with a `Serialize` error before any work starts, under every start method; the
//! same values travel inside `multiprocess::Json`, and the pool goes on.

multiprocess::test_support!();

#[macro_use]
mod common;

use multiprocess::futures::ProcessPoolExecutor;
use multiprocess::{ErrorKind, Json, Pool, StartMethod, get_context};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use common::{LONG, assert_quiescent, fork_server_pid};

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Either {
    N(u32),
    S(String),
}

fn text_len(v: Value) -> usize {
    v.to_string().len()
}

fn make(n: u32) -> Value {
    json!({ "n": n })
}

fn either(e: Either) -> u32 {
    match e {
        Either::N(n) => n,
        Either::S(s) => s.len() as u32,
    }
}

fn wrapped(v: Json<Value>) -> Json<Value> {
    Json(json!({ "got": v.0 }))
}

fn refused_before_any_work(method: StartMethod) {
    // The fork server is the one child allowed to stay.
    let server = Some(fork_server_pid());
    let pool = Pool::builder()
        .processes(1)
        .context(get_context(method))
        .build()
        .unwrap();
    let e = pool.apply(text_len, json!({"a": 1})).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Serialize, "{e}");
    assert!(e.to_string().contains("serde_json::value::Value"), "{e}");
    assert!(e.to_string().contains("Json<T>"), "{e}");
    let e = pool.apply_async(make, 3).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Serialize, "{e}");
    assert!(e.to_string().contains("result"), "{e}");
    let e = pool
        .map(either, vec![Either::N(1), Either::S("x".into())])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Serialize, "{e}");
    let mut it = pool.imap(text_len, vec![json!(1), json!(2)]);
    let e = it.next().unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Serialize, "{e}");
    drop(it);
    // Nothing reached a worker, and the pool goes on.
    assert_eq!(pool.stats().iter().map(|s| s.tasks_done).sum::<u64>(), 0);
    let out = pool.apply(wrapped, Json(json!([1, "two"]))).unwrap();
    assert_eq!(out.0, json!({"got": [1, "two"]}));
    pool.close();
    pool.join().unwrap();
    drop(pool);
    assert_quiescent(server);
}

fn executor_refuses_before_any_work(method: StartMethod) {
    let ex = ProcessPoolExecutor::builder()
        .max_workers(1)
        .context(get_context(method))
        .build()
        .unwrap();
    let e = ex.submit(text_len, json!("x")).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Serialize, "{e}");
    let e = ex.submit(make, 1).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Serialize, "{e}");
    let f = ex.submit(wrapped, Json(json!(null))).unwrap();
    assert_eq!(f.result_timeout(LONG).unwrap().0, json!({"got": null}));
    ex.shutdown(true, false);
}

for_each_method!(serial: refused_before_any_work);
for_each_method!(executor_refuses_before_any_work);

fn dict_len(d: multiprocess::DictProxy<String, u32>) -> usize {
    d.len().unwrap()
}

/// A manager proxy in the arguments passes the probe (its `Deserialize` stops at the
/// probe without adopting anything) and the task runs.
fn a_proxy_argument_is_probed_without_side_effects(method: StartMethod) {
    let m = multiprocess::Manager::start().unwrap();
    let d = m.dict::<String, u32>().unwrap();
    d.insert("a".into(), 1).unwrap();
    let pool = Pool::builder()
        .processes(1)
        .context(get_context(method))
        .build()
        .unwrap();
    assert_eq!(pool.apply(dict_len, d.clone()).unwrap(), 1);
    drop(pool);
    drop(d);
    m.shutdown().unwrap();
}

for_each_method!(a_proxy_argument_is_probed_without_side_effects);

/// A cluster pool refuses the same values when they are submitted: without a single
/// worker host, `apply_async` and `map` answer `Serialize` at once.
#[cfg(feature = "redis")]
#[test]
fn a_cluster_pool_refuses_before_sending() {
    let _g = common::shared();
    let server = multiprocess::broker::RedisServer::start().unwrap();
    let pool = Pool::builder()
        .redis(server.url())
        .key(b"untravelled")
        .build()
        .unwrap();
    let e = pool.apply_async(text_len, json!({"a": 1})).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Serialize, "{e}");
    let e = pool.map(make, 0..3).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Serialize, "{e}");
    pool.terminate();
}
