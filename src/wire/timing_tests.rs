//! Not pass/fail tests: how long the codec takes on typical payloads, to compare
//! before and after a change.
//! `cargo test --release --lib codec_timing -- --ignored --nocapture`.

use serde::{Deserialize, Serialize};

use super::codec;

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Mixed {
    id: u32,
    name: String,
    blob: Vec<u8>,
    samples: Vec<f64>,
}

fn fastest(f: &dyn Fn()) -> std::time::Duration {
    let mut best = std::time::Duration::MAX;
    for _ in 0..30 {
        let t = std::time::Instant::now();
        f();
        best = best.min(t.elapsed());
    }
    best
}

fn time<T>(name: &str, v: &T)
where
    T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = codec::encode(v).unwrap().bytes;
    assert_eq!(&codec::decode::<T>(&bytes, Vec::new()).unwrap(), v);
    let enc = fastest(&|| {
        std::hint::black_box(codec::encode(std::hint::black_box(v)).unwrap());
    });
    let dec = fastest(&|| {
        std::hint::black_box(codec::decode::<T>(&bytes, Vec::new()).unwrap());
    });
    println!("codec_timing {name:<32} encode {enc:>10.1?}  decode {dec:>10.1?}");
}

#[test]
#[ignore = "timing, run by hand"]
fn codec_timing() {
    time("Vec<u8> 1 MiB", &vec![7u8; 1 << 20]);
    time(
        "Vec<f64> x 131,072",
        &(0..131_072).map(|i| i as f64 * 0.5).collect::<Vec<f64>>(),
    );
    time("Vec<u64> x 10k", &(0..10_000u64).collect::<Vec<u64>>());
    time(
        "Vec<String> x 10k",
        &(0..10_000).map(|i| i.to_string()).collect::<Vec<String>>(),
    );
    time(
        "Vec<(u32, bool)> x 10k",
        &(0..10_000u32).map(|i| (i, i % 2 == 0)).collect::<Vec<_>>(),
    );
    time(
        "struct {u32, String, 64 KiB, 1k f64}",
        &Mixed {
            id: 7,
            name: "a mixed struct".into(),
            blob: vec![1; 64 << 10],
            samples: (0..1000).map(f64::from).collect(),
        },
    );
    time("Vec<u8> x 16", &vec![1u8; 16]);
    time("Vec<f64> x 4", &vec![1.5f64; 4]);
    time("(u64, String20)", &(42u64, "x".repeat(20)));
    time("(u32, i64, bool)", &(1u32, -2i64, true));
    time("u64", &42u64);
}
