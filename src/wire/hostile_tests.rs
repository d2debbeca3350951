//! Hostile bytes against [`codec::decode`]: property tests over arbitrary bytes and
//! mutated valid encodings for many shapes of type, and the attacks of the issue as
//! named regression tests.
//!
//! Each property runs proptest's default number of cases (256; about 2,000 cases in
//! all, each decoded as every type of [`decode_all`]), in a few seconds. Set the
//! environment variable `PROPTEST_CASES` for more, e.g.
//! `PROPTEST_CASES=100000 cargo test --lib wire::hostile_tests`.
//!
//! Memory is measured by a counting global allocator (this test binary only) that
//! keeps a per-thread running total and peak, so tests on other threads do not blur it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::codec::{self, MAX_DEPTH};
use crate::error::ErrorKind;

// ---------------------------------------------------------------------------------
// A per-thread allocation meter.

struct Counting;

thread_local! {
    static NOW: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn charge(delta: isize) {
    // `try_with`: an allocation during thread teardown is simply not counted.
    let _ = NOW.try_with(|n| {
        let v = n.get() + delta;
        n.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

#[allow(unsafe_code)]
// SAFETY: every call forwards to `System` with the caller's arguments unchanged; the
// bookkeeping touches only const-initialised thread-locals and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            charge(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            charge(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        charge(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            charge(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result with the most memory this thread held at once
/// during it, beyond what it held before.
fn peak_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let start = NOW.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let r = f();
    let peak = PEAK.with(Cell::get) - start;
    (r, peak.max(0) as usize)
}

/// What decoding `n` bytes may hold at most: a small multiple of `n` (collections of
/// wide elements, hash tables' spare room) plus a constant for error messages.
fn memory_bound(n: usize) -> usize {
    128 * n + 64 * 1024
}

// ---------------------------------------------------------------------------------
// Types of many shapes.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Inner {
    name: String,
    tags: Vec<String>,
    weight: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Outer {
    id: u64,
    inner: Inner,
    children: Vec<Inner>,
    map: HashMap<String, u32>,
    pair: (u8, char, bool),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Unit,
    Newtype(String),
    Tuple(u16, Vec<u8>),
    Struct { a: i64, b: Option<Box<Shape>> },
}

/// A recursive type through a `Box`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Chain {
    End,
    Link(Box<Chain>),
}

/// A recursive type through a `Vec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Tree {
    Leaf(u32),
    Node(Vec<Tree>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Named {
    text: String,
    items: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct UnitStruct;

/// A byte string through `deserialize_byte_buf`, as bulk payloads do it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Bytes(pub(super) Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    codec::encode(v).expect("encode").bytes
}

/// Decodes `bytes` as a `T`: it must not panic, must stay within [`memory_bound`], and
/// a failure must be of kind `Deserialize`.
fn check<T: DeserializeOwned>(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (r, peak) = peak_during(|| codec::decode::<T>(bytes, Vec::new()));
    prop_assert!(
        peak <= memory_bound(bytes.len()),
        "decoding {} bytes as {} held {peak} bytes",
        bytes.len(),
        std::any::type_name::<T>()
    );
    if let Err(e) = r {
        prop_assert_eq!(e.kind(), ErrorKind::Deserialize, "{}", e);
    }
    Ok(())
}

/// [`check`] for every type here but the zero-sized ones ([`decode_zero_sized`]).
fn decode_all(bytes: &[u8]) -> Result<(), TestCaseError> {
    check::<String>(bytes)?;
    check::<Vec<u8>>(bytes)?;
    check::<Bytes>(bytes)?;
    check::<Vec<String>>(bytes)?;
    check::<Vec<u64>>(bytes)?;
    check::<Vec<Vec<u64>>>(bytes)?;
    check::<Option<String>>(bytes)?;
    check::<(u64, String)>(bytes)?;
    check::<(String, Vec<u8>, bool, char, f32)>(bytes)?;
    check::<HashMap<String, u64>>(bytes)?;
    check::<BTreeMap<u32, Vec<String>>>(bytes)?;
    check::<Named>(bytes)?;
    check::<Outer>(bytes)?;
    check::<Shape>(bytes)?;
    check::<Chain>(bytes)?;
    check::<Tree>(bytes)?;
    check::<Result<u32, String>>(bytes)?;
    Ok(())
}

/// [`check`] for sequences of zero-sized elements. Apart: a hostile length costs up to
/// a million cheap iterations before it is refused, slow in a debug build.
fn decode_zero_sized(bytes: &[u8]) -> Result<(), TestCaseError> {
    check::<Vec<()>>(bytes)?;
    check::<Vec<UnitStruct>>(bytes)?;
    check::<Vec<[u8; 0]>>(bytes)
}

/// A sixteenth of the configured cases (`PROPTEST_CASES`, 256 by default).
fn few_cases() -> ProptestConfig {
    let d = ProptestConfig::default();
    ProptestConfig {
        cases: (d.cases / 16).max(1),
        ..d
    }
}

// ---------------------------------------------------------------------------------
// Valid values and their mutations.

fn inner() -> impl Strategy<Value = Inner> {
    (
        ".{0,8}",
        proptest::collection::vec(".{0,4}", 0..4),
        any::<Option<f64>>(),
    )
        .prop_map(|(name, tags, weight)| Inner { name, tags, weight })
}

fn outer() -> impl Strategy<Value = Outer> {
    (
        any::<u64>(),
        inner(),
        proptest::collection::vec(inner(), 0..3),
        proptest::collection::hash_map(".{0,4}", any::<u32>(), 0..4),
        any::<(u8, char, bool)>(),
    )
        .prop_map(|(id, inner, children, map, pair)| Outer {
            id,
            inner,
            children,
            map,
            pair,
        })
}

fn tree() -> impl Strategy<Value = Tree> {
    any::<u32>()
        .prop_map(Tree::Leaf)
        .prop_recursive(6, 32, 4, |t| {
            proptest::collection::vec(t, 0..4).prop_map(Tree::Node)
        })
}

fn shape() -> impl Strategy<Value = Shape> {
    let leaf = prop_oneof![
        Just(Shape::Unit),
        ".{0,6}".prop_map(Shape::Newtype),
        (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(a, b)| Shape::Tuple(a, b)),
    ];
    leaf.prop_recursive(4, 8, 1, |s| {
        (any::<i64>(), proptest::option::of(s)).prop_map(|(a, b)| Shape::Struct {
            a,
            b: b.map(Box::new),
        })
    })
}

/// The encoding of a valid value of one of the types.
fn valid_encoding() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        ".{0,16}".prop_map(|s: String| encode(&s)),
        proptest::collection::vec(any::<u8>(), 0..32).prop_map(|v| encode(&v)),
        proptest::collection::vec(".{0,6}", 0..6).prop_map(|v| encode(&v)),
        proptest::collection::vec(any::<u64>(), 0..8).prop_map(|v| encode(&v)),
        (any::<u64>(), ".{0,8}").prop_map(|v| encode(&v)),
        (".{0,8}", proptest::collection::vec(any::<u64>(), 0..4))
            .prop_map(|(text, items)| encode(&Named { text, items })),
        outer().prop_map(|v| encode(&v)),
        shape().prop_map(|v| encode(&v)),
        tree().prop_map(|v| encode(&v)),
        (0usize..200).prop_map(|n| {
            let mut c = Chain::End;
            for _ in 0..n {
                c = Chain::Link(Box::new(c));
            }
            encode(&c)
        }),
        proptest::collection::btree_map(
            any::<u32>(),
            proptest::collection::vec(".{0,3}", 0..3),
            0..4
        )
        .prop_map(|v| encode(&v)),
    ]
}

/// Values that make a length field hostile.
fn huge() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(1u64 << 40),
        Just(1u64 << 62),
        Just(u64::MAX),
        Just(u64::from(u32::MAX)),
        Just(1u64 << 31),
        any::<u64>(),
        0u64..64,
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, xor: u8 },
    Truncate { to: usize },
    Extend { with: Vec<u8> },
    Length { at: usize, value: u64 },
    Tag { at: usize, value: u32 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        any::<usize>().prop_map(|to| Mutation::Truncate { to }),
        proptest::collection::vec(any::<u8>(), 1..16).prop_map(|with| Mutation::Extend { with }),
        (any::<usize>(), huge()).prop_map(|(at, value)| Mutation::Length { at, value }),
        (any::<usize>(), any::<u32>()).prop_map(|(at, value)| Mutation::Tag { at, value }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len();
    match m {
        Mutation::Flip { at, xor } if n > 0 => bytes[at % n] ^= xor,
        Mutation::Truncate { to } => bytes.truncate(to % (n + 1)),
        Mutation::Extend { with } => bytes.extend_from_slice(with),
        Mutation::Length { at, value } if n >= 8 => {
            let at = at % (n - 7);
            bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
        Mutation::Tag { at, value } if n >= 4 => {
            let at = at % (n - 3);
            bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
        }
        _ => {}
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        decode_all(&bytes)?;
    }

    #[test]
    fn arbitrary_length_prefixed_bytes(len in huge(), tail in proptest::collection::vec(any::<u8>(), 0..64)) {
        // The first field of most types is a length: make it hostile on purpose.
        let mut bytes = len.to_le_bytes().to_vec();
        bytes.extend_from_slice(&tail);
        decode_all(&bytes)?;
    }

    #[test]
    fn valid_encodings_decode_or_fail_cleanly(bytes in valid_encoding()) {
        decode_all(&bytes)?;
    }

    #[test]
    fn mutated_encodings_decode_or_fail_cleanly(
        mut bytes in valid_encoding(),
        ms in proptest::collection::vec(mutation(), 1..4),
    ) {
        for m in &ms {
            apply(&mut bytes, m);
        }
        decode_all(&bytes)?;
    }

    #[test]
    fn valid_values_round_trip(o in outer(), t in tree(), s in shape()) {
        prop_assert_eq!(codec::decode::<Outer>(&encode(&o), Vec::new()).unwrap(), o);
        prop_assert_eq!(codec::decode::<Tree>(&encode(&t), Vec::new()).unwrap(), t);
        prop_assert_eq!(codec::decode::<Shape>(&encode(&s), Vec::new()).unwrap(), s);
    }
}

proptest! {
    #![proptest_config(few_cases())]

    #[test]
    fn zero_sized_sequences_decode_or_fail_cleanly(
        len in huge(),
        tail in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut bytes = len.to_le_bytes().to_vec();
        bytes.extend_from_slice(&tail);
        decode_zero_sized(&bytes)?;
    }
}

// ---------------------------------------------------------------------------------
// The attacks, by name.

fn assert_refused<T: DeserializeOwned + std::fmt::Debug>(bytes: &[u8]) -> String {
    let (r, peak) = peak_during(|| codec::decode::<T>(bytes, Vec::new()));
    assert!(
        peak <= memory_bound(bytes.len()),
        "held {peak} bytes decoding {}",
        bytes.len()
    );
    let e = r.expect_err("hostile bytes decoded");
    assert_eq!(e.kind(), ErrorKind::Deserialize, "{e}");
    e.to_string()
}

/// A `String` whose length prefix claims `claimed` bytes, with `present` bytes after it.
fn string_claiming(claimed: u64, present: usize) -> Vec<u8> {
    let mut b = claimed.to_le_bytes().to_vec();
    b.extend(std::iter::repeat_n(b'a', present));
    b
}

#[test]
fn string_claiming_2_pow_40_bytes_is_refused() {
    assert_refused::<String>(&string_claiming(1 << 40, 23));
    assert_refused::<Vec<u8>>(&string_claiming(1 << 40, 23));
    assert_refused::<Bytes>(&string_claiming(1 << 40, 23));
}

#[test]
fn string_claiming_2_pow_62_bytes_is_refused() {
    assert_refused::<String>(&string_claiming(1 << 62, 23));
    assert_refused::<Vec<u8>>(&string_claiming(1 << 62, 0));
    assert_refused::<Vec<String>>(&string_claiming(1 << 62, 0));
    assert_refused::<Vec<u64>>(&string_claiming(u64::MAX, 16));
}

#[test]
fn u64_2_pow_40_decoded_as_string_is_refused() {
    assert_refused::<String>(&encode(&(1u64 << 40)));
}

#[test]
fn struct_of_string_and_vec_decoded_as_u64_and_string_is_refused() {
    let bytes = encode(&Named {
        text: "hello".into(),
        items: vec![1, 2, 3],
    });
    assert_refused::<(u64, String)>(&bytes);
}

#[test]
fn a_million_deep_recursive_enum_is_refused() {
    // Built by hand so that the sender does not recurse: `Link` is variant 1, `End` 0,
    // each a little-endian u32 under fixint encoding.
    let depth = 1_000_000;
    let mut bytes = Vec::with_capacity(4 * (depth + 1));
    for _ in 0..depth {
        bytes.extend_from_slice(&1u32.to_le_bytes());
    }
    bytes.extend_from_slice(&0u32.to_le_bytes());
    let msg = assert_refused::<Chain>(&bytes);
    assert!(msg.contains("nests deeper"), "{msg}");

    // The same through a Vec: `Node` is variant 1, then a length of 1.
    let mut bytes = Vec::new();
    for _ in 0..depth {
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&1u64.to_le_bytes());
    }
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&7u32.to_le_bytes());
    let msg = assert_refused::<Tree>(&bytes);
    assert!(msg.contains("nests deeper"), "{msg}");
}

#[test]
fn nesting_up_to_the_limit_decodes() {
    // A `Chain` of n links nests n + 1 enums.
    let mut c = Chain::End;
    for _ in 0..MAX_DEPTH - 1 {
        c = Chain::Link(Box::new(c));
    }
    let back: Chain = codec::decode(&encode(&c), Vec::new()).expect("at the limit");
    assert_eq!(back, c);
    let deeper = Chain::Link(Box::new(c));
    let msg = assert_refused::<Chain>(&encode(&deeper));
    assert!(msg.contains("nests deeper than 128"), "{msg}");
    // Iterative drop: the compiler's recursive drop is fine at this depth anyway.
    drop(deeper);
    drop(back);
}

#[test]
fn zero_sized_elements_claiming_2_pow_62_are_refused() {
    let msg = assert_refused::<Vec<()>>(&(1u64 << 62).to_le_bytes());
    assert!(msg.contains("more elements"), "{msg}");
    assert_refused::<Vec<UnitStruct>>(&u64::MAX.to_le_bytes());
    // An honest one decodes.
    let v = vec![(); 1000];
    assert_eq!(
        codec::decode::<Vec<()>>(&encode(&v), Vec::new()).unwrap(),
        v
    );
}

#[test]
fn nested_collections_claiming_huge_lengths_reserve_little() {
    // Each level announces 2^60 elements and holds one: without the preallocation
    // budget each level would reserve serde's 1 MiB cap.
    let mut bytes = Vec::new();
    for _ in 0..100 {
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
    }
    assert_refused::<Tree>(&bytes);
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = encode(&"abc".to_string());
    bytes.push(0);
    let msg = assert_refused::<String>(&bytes);
    assert!(msg.contains("1 trailing bytes"), "{msg}");
}

#[test]
fn large_values_round_trip() {
    let v: Vec<u64> = (0..100_000).collect();
    assert_eq!(
        codec::decode::<Vec<u64>>(&encode(&v), Vec::new()).unwrap(),
        v
    );
    let b = Bytes(vec![7u8; 1 << 20]);
    assert_eq!(codec::decode::<Bytes>(&encode(&b), Vec::new()).unwrap(), b);
    let s: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
    assert_eq!(
        codec::decode::<Vec<String>>(&encode(&s), Vec::new()).unwrap(),
        s
    );
}

/// Not a pass/fail test: how long decoding bulk values takes, to compare before and
/// after a change. `cargo test --release --lib decode_timing -- --ignored --nocapture`.
#[test]
#[ignore = "timing, run by hand"]
fn decode_timing() {
    let v: Vec<u64> = (0..1_000_000).collect();
    let ev = encode(&v);
    let b = Bytes(vec![7u8; 1 << 20]);
    let eb = encode(&b);
    let vb = vec![7u8; 1 << 20];
    let evb = encode(&vb);
    let min = |f: &dyn Fn()| {
        (0..30)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed()
            })
            .min()
            .unwrap()
    };
    {
        let a = min(&|| {
            std::hint::black_box(codec::decode::<Vec<u64>>(&ev, Vec::new()).unwrap());
        });
        let c = min(&|| {
            std::hint::black_box(codec::decode::<Bytes>(&eb, Vec::new()).unwrap());
        });
        let d = min(&|| {
            std::hint::black_box(codec::decode::<Vec<u8>>(&evb, Vec::new()).unwrap());
        });
        println!(
            "fastest of 30: Vec<u64> x 1M: {a:?}; 1 MiB byte string: {c:?}; Vec<u8> 1 MiB: {d:?}"
        );
    }
}

/// A handle whose fd did not come with the bytes is refused with a clear error, also
/// when the decode of a value with no fds leaves the thread's tables untouched (its
/// fast path); with its fd it decodes. A custom message left by an earlier decode does
/// not leak into a later error.
#[test]
fn a_handle_without_its_fd_is_refused() {
    let file = std::fs::File::open("/dev/null").unwrap();
    let fd = crate::Fd::new(file);
    let enc = codec::encode(&fd).unwrap();
    let bytes = enc.bytes.clone();
    let e = codec::decode::<crate::Fd>(&bytes, Vec::new()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Deserialize);
    assert!(e.to_string().contains("carries its fd"), "{e}");
    let dup = std::os::fd::AsFd::as_fd(&fd).try_clone_to_owned().unwrap();
    assert!(codec::decode::<crate::Fd>(&bytes, vec![dup]).is_ok());
    drop(enc);
    // The same in a pair, after a value that decodes with no fds at all.
    assert_eq!(codec::decode::<u32>(&encode(&7u32), Vec::new()).unwrap(), 7);
    let value = (1u8, &fd);
    let pair = codec::encode(&value).unwrap();
    let e = codec::decode::<(u8, crate::Fd)>(&pair.bytes, Vec::new()).unwrap_err();
    assert!(e.to_string().contains("carries its fd"), "{e}");
    let e = codec::decode::<String>(&[9, 0, 0, 0, 0, 0, 0, 0, b'x'], Vec::new()).unwrap_err();
    assert!(!e.to_string().contains("fd"), "no stale message: {e}");
}
