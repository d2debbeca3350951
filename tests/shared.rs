//! `Value` and `Array` in shared memory across processes under every start method,
//! and named `SharedMemory`.

use std::time::Duration;

use multiprocess::{Array, RawArray, RawValue, StartMethod, Value, get_context};

multiprocess::test_support!();

#[macro_use]
mod common;

const LONG: Duration = Duration::from_secs(60);

type Values = (
    Value<i32>,
    Value<f64>,
    Value<i16>,
    RawValue<i64>,
    RawValue<u8>,
);

fn mutate_values((a, b, c, d, e): Values) {
    a.set(a.get() * 2);
    b.set(b.get() * 2.0);
    c.set(c.get() - 1);
    d.set(d.get() + 1_000_000_000_000);
    e.set(e.get().wrapping_add(1));
}

fn values_seen_by_parent(method: StartMethod) {
    let vals: Values = (
        Value::new(21).unwrap(),
        Value::new(1.25).unwrap(),
        Value::new(-7).unwrap(),
        RawValue::new(5).unwrap(),
        RawValue::new(255).unwrap(),
    );
    let mut h = get_context(method)
        .spawn(mutate_values, vals.clone())
        .unwrap();
    h.join_timeout(LONG).unwrap();
    assert_eq!(vals.0.get(), 42);
    assert_eq!(vals.1.get(), 2.5);
    assert_eq!(vals.2.get(), -8);
    assert_eq!(vals.3.get(), 1_000_000_000_005);
    assert_eq!(vals.4.get(), 0);
}

fn prefix_sums(a: Array<i64>) {
    let mut g = a.lock();
    for i in 1..g.len() {
        g[i] += g[i - 1];
    }
}

fn array_prefix_sums(method: StartMethod) {
    let a = Array::from_slice(&[1i64, 2, 3, 4, 5, 6, 7, 8, 9, 10]).unwrap();
    assert_eq!(a.len(), 10);
    assert_eq!(a.get(3), Some(4));
    assert_eq!(&a.lock()[2..5], &[3, 4, 5]);
    get_context(method)
        .spawn(prefix_sums, a.clone())
        .unwrap()
        .join_timeout(LONG)
        .unwrap();
    assert_eq!(a.to_vec(), vec![1, 3, 6, 10, 15, 21, 28, 36, 45, 55]);
}

fn add_under_lock((v, n): (Value<u64>, u64)) {
    for _ in 0..n {
        *v.lock() += 1;
    }
}

fn locked_increments(method: StartMethod) {
    let v = Value::new(0u64).unwrap();
    let ctx = get_context(method);
    let hs: Vec<_> = (0..2)
        .map(|_| ctx.spawn(add_under_lock, (v.clone(), 20_000)).unwrap())
        .collect();
    for mut h in hs {
        h.join_timeout(LONG).unwrap();
    }
    assert_eq!(v.get(), 40_000, "{method}: the lock makes increments exact");
}

for_each_method!(values_seen_by_parent, array_prefix_sums, locked_increments);

#[test]
fn zeroed_and_bounds() {
    let a = Array::<i32>::zeroed(10).unwrap();
    assert_eq!(a.to_vec(), vec![0; 10]);
    assert!(a.get(10).is_none());
    assert_eq!(
        a.set(10, 1).unwrap_err().kind(),
        multiprocess::ErrorKind::InvalidInput
    );
    let r = RawArray::<f32>::zeroed(3).unwrap();
    r.set(2, 1.5).unwrap();
    assert_eq!(r.to_vec(), vec![0.0, 0.0, 1.5]);
    assert!(r.get(3).is_none());
    assert_eq!(
        r.set(3, 1.0).unwrap_err().kind(),
        multiprocess::ErrorKind::InvalidInput
    );
    assert!(Array::<u8>::zeroed(0).unwrap().is_empty());
}

#[test]
fn no_dev_shm_entries() {
    // Anonymous segments never appear in /dev/shm.
    let before: Vec<_> = std::fs::read_dir("/dev/shm")
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    let v = Value::new(1u8).unwrap();
    let a = Array::from_slice(&[1u8; 100]).unwrap();
    let q = multiprocess::Queue::<u8>::new().unwrap();
    let l = multiprocess::Lock::new().unwrap();
    let after: Vec<_> = std::fs::read_dir("/dev/shm")
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    let new: Vec<_> = after
        .iter()
        .filter(|n| !before.contains(n))
        .filter(|n| n.to_string_lossy().contains("multiprocess"))
        .collect();
    assert!(new.is_empty(), "{new:?}");
    drop((v, a, q, l));
}

fn shm_name(tag: &str, method: StartMethod) -> String {
    format!("mp-test-{}-{tag}-{method}", std::process::id())
}

fn gone(name: &str) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if !std::path::Path::new("/dev/shm").join(name).exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn open_and_write(name: String) {
    let shm = multiprocess::SharedMemory::open(&name).unwrap();
    assert_eq!(shm.size(), 4096);
    shm.write(100, b"written by the child").unwrap();
}

fn shared_memory_by_name(method: StartMethod) {
    use multiprocess::{ErrorKind, SharedMemory};
    let name = shm_name("byname", method);
    let shm = SharedMemory::create(Some(&name), 4096).unwrap();
    assert_eq!(shm.name(), name);
    assert_eq!(
        SharedMemory::create(Some(&name), 10).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    get_context(method)
        .spawn(open_and_write, name.clone())
        .unwrap()
        .join_timeout(LONG)
        .unwrap();
    let mut buf = [0u8; 20];
    shm.read(100, &mut buf).unwrap();
    assert_eq!(&buf, b"written by the child");
    // SAFETY: the child has ended; nobody else writes the segment now.
    #[allow(unsafe_code)]
    let whole = unsafe { shm.as_slice() };
    assert_eq!(whole.len(), 4096);
    assert_eq!(&whole[100..120], b"written by the child");
    assert!(whole[..100].iter().all(|&b| b == 0));
    let mut shm = shm;
    // SAFETY: as above; `as_slice`'s borrow has ended.
    #[allow(unsafe_code)]
    let bytes = unsafe { shm.as_mut_slice() };
    bytes[..4].copy_from_slice(b"mine");
    let mut buf = [0u8; 4];
    multiprocess::SharedMemory::open(&name)
        .unwrap()
        .read(0, &mut buf)
        .unwrap();
    assert_eq!(&buf, b"mine", "seen through another mapping");
    shm.unlink().unwrap();
    assert_eq!(shm.unlink().unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(
        SharedMemory::open(&name).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(gone(&name));
}

/// Creates a named segment, says so, and waits to be killed (or returns without
/// unlinking, when `linger` is false).
fn create_and_linger((name, linger, conn): (String, bool, multiprocess::Connection<()>)) {
    let shm = multiprocess::SharedMemory::create(Some(&name), 1 << 16).unwrap();
    shm.write(0, b"x").unwrap();
    conn.send(&()).unwrap();
    if linger {
        std::thread::sleep(Duration::from_secs(600));
    }
}

fn creator_death_cleans_up(method: StartMethod) {
    for (linger, tag) in [(true, "killed"), (false, "exited")] {
        let name = shm_name(tag, method);
        let (here, there) = multiprocess::pipe::<()>().unwrap();
        let mut p = get_context(method).process(create_and_linger, (name.clone(), linger, there));
        p.start().unwrap();
        here.recv_timeout(LONG).unwrap();
        if linger {
            // Still alive (it sleeps): its segment is there.
            assert!(std::path::Path::new("/dev/shm").join(&name).exists());
            p.kill().unwrap();
        }
        assert!(p.join_timeout(LONG).unwrap());
        assert!(
            gone(&name),
            "{method}: a segment whose creator {tag} must be unlinked by its tracker"
        );
    }
}

for_each_method!(shared_memory_by_name, creator_death_cleans_up);

/// A `Value` must be received from a segment of exactly one element: an `Array` of
/// three sent through a connection and received as a `Value` is an error, not a value
/// reading the first element (and an `Array` of one is accepted).
#[test]
fn value_from_a_longer_segment_is_an_error() {
    let (tx, rx) = multiprocess::pipe::<Array<u32>>().unwrap();
    let rx = rx.cast::<Value<u32>>();
    tx.send(&Array::from_slice(&[1, 2, 3]).unwrap()).unwrap();
    let e = rx.recv_timeout(LONG).unwrap_err();
    assert_eq!(e.kind(), multiprocess::ErrorKind::Deserialize, "{e:?}");
    assert!(e.to_string().contains("3 elements"), "{e}");
    tx.send(&Array::from_slice(&[7]).unwrap()).unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap().get(), 7);
}

/// A segment sent as one flavour cannot be received as the other: a locked `Value`'s
/// guard hands out `&mut T`, which unlocked `RawValue::set`s on the same memory would
/// alias.
#[test]
fn locked_and_raw_flavours_do_not_mix() {
    let (tx, rx) = multiprocess::pipe::<Value<u32>>().unwrap();
    let rx = rx.cast::<RawValue<u32>>();
    tx.send(&Value::new(1).unwrap()).unwrap();
    let e = rx.recv_timeout(LONG).unwrap_err();
    assert_eq!(e.kind(), multiprocess::ErrorKind::Deserialize, "{e:?}");

    let (tx, rx) = multiprocess::pipe::<RawArray<u32>>().unwrap();
    let rx = rx.cast::<Array<u32>>();
    tx.send(&RawArray::from_slice(&[1, 2]).unwrap()).unwrap();
    let e = rx.recv_timeout(LONG).unwrap_err();
    assert_eq!(e.kind(), multiprocess::ErrorKind::Deserialize, "{e:?}");

    // The same flavour round-trips.
    let rx = rx.cast::<RawArray<u32>>();
    let tx = tx.cast::<RawArray<u32>>();
    tx.send(&RawArray::from_slice(&[5, 6]).unwrap()).unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap().to_vec(), vec![5, 6]);
}

/// Raw values wider than a word, written and read by threads at once: whatever the
/// interleaving, every read is some mix of written bytes (no crash, no UB under
/// Miri/TSan); the last write wins once the writers are done.
#[test]
fn raw_value_races_are_defined() {
    let v = RawValue::new([0u64; 3]).unwrap();
    let writers: Vec<_> = (1..=2u64)
        .map(|k| {
            let v = v.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    v.set([k; 3]);
                }
            })
        })
        .collect();
    for _ in 0..10_000 {
        let x = v.get();
        assert!(x.iter().all(|w| *w <= 2), "{x:?}");
    }
    for w in writers {
        w.join().unwrap();
    }
    v.set([9; 3]);
    assert_eq!(v.get(), [9; 3]);
}

/// Creates two named segments, says so, waits, and exits without unlinking them (so
/// its tracker unlinks them, in name order).
fn create_two_and_leave((a, b, conn): (String, String, multiprocess::Connection<()>)) {
    let x = multiprocess::SharedMemory::create(Some(&a), 64).unwrap();
    let y = multiprocess::SharedMemory::create(Some(&b), 64).unwrap();
    conn.send(&()).unwrap();
    let _ = conn.recv_timeout(LONG);
    drop((x, y));
}

/// A name its creator's tracker would clean up, unlinked by someone else and created
/// again (another segment now), is left alone when the creator exits: the tracker
/// unlinks a name only while it names the file it registered. (The tracker used to
/// unlink by name, removing the newcomer's segment.) The tracker also has a later
/// name (`z-marker`) to unlink: once that is gone, it has dealt with the first.
#[test]
fn tracker_leaves_a_reused_name_alone() {
    use multiprocess::SharedMemory;
    let reused = shm_name("a-reused", StartMethod::Spawn);
    let marker = shm_name("z-marker", StartMethod::Spawn);
    let (here, there) = multiprocess::pipe::<()>().unwrap();
    let mut p = get_context(StartMethod::Spawn).process(
        create_two_and_leave,
        (reused.clone(), marker.clone(), there),
    );
    p.start().unwrap();
    here.recv_timeout(LONG).unwrap();
    SharedMemory::open(&reused).unwrap().unlink().unwrap();
    let newcomer = SharedMemory::create(Some(&reused), 16).unwrap();
    here.send(&()).unwrap(); // the creator exits
    assert!(p.join_timeout(LONG).unwrap());
    assert!(gone(&marker), "the creator's tracker did not clean up");
    let still = std::path::Path::new("/dev/shm").join(&reused).exists();
    let _ = newcomer.unlink();
    assert!(still, "the tracker unlinked a segment it does not own");
}

/// Python's `get_lock()` is re-entrant; ours is not, so `get`/`set` while this thread
/// holds a guard is a clear panic, not a hang (it waited for ever before).
#[test]
fn get_while_holding_the_lock_panics() {
    let v = Value::new(1i64).unwrap();
    let a = Array::from_slice(&[1u8, 2]).unwrap();
    let g = v.lock();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| v.get()));
    let msg = r.expect_err("get under our own guard must panic");
    let text = msg
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| msg.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(text.contains("already holds"), "{text}");
    drop(g);
    assert_eq!(v.get(), 1, "the lock was left usable");
    let g = a.lock();
    assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.set(0, 5))).is_err());
    drop(g);
    assert_eq!(a.to_vec(), vec![1, 2]);
    // Another thread still waits for the guard, as before.
    let g = v.lock();
    let other = {
        let v = v.clone();
        std::thread::spawn(move || v.get())
    };
    std::thread::sleep(std::time::Duration::from_millis(20));
    drop(g);
    assert_eq!(other.join().unwrap(), 1);
}
