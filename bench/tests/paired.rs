//! The paired floor helper, run as the benchmark binary itself.

use multiprocess_bench::floor::Paired;
use multiprocess_bench::workloads::Floor;

const EXE: &str = env!("CARGO_BIN_EXE_multiprocess-bench");

#[test]
fn a_paired_helper_measures_one_repetition_per_round() {
    let exe = std::path::Path::new(EXE);
    let mut helper =
        Paired::start_exe(exe, "test", &[Floor::ForkWait, Floor::SpawnSelf], true).unwrap();
    for i in 0..3 {
        helper.round(f64::from(i));
    }
    let floors = helper.finish();
    assert_eq!(floors.len(), 2, "{floors:?}");
    for (floor, value) in floors {
        assert!(value.is_finite() && value > 1.0, "{floor:?} = {value}");
    }
}

#[test]
fn a_helper_that_fails_leaves_its_floors_missing() {
    // `true` is no benchmark binary: it exits at once, so the first round reads
    // an end of file; the helper is reported broken and yields nothing.
    let mut helper = Paired::start_exe(
        std::path::Path::new("true"),
        "test",
        &[Floor::ForkWait],
        true,
    )
    .unwrap();
    helper.round(1.0);
    helper.round(2.0);
    assert!(helper.finish().is_empty());
}
