//! `multiprocess-bench`: runs the workloads of BENCH.md with this crate, with
//! CPython's `multiprocessing` and as the OS floor, in one run.
//!
//! ```text
//! cargo run --release -p multiprocess-bench -- [--only NAME[,NAME..]] [--quick]
//! ```
//!
//! Prints a human table, then one `bench NAME ours=.. python=.. peer=..
//! floor=.. unit=.. better=..` line per selected workload, in the table's
//! order. Progress goes to stderr.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;

use multiprocess_bench::report::{self, Row, fmt_opt};
use multiprocess_bench::workloads::Floor;
use multiprocess_bench::{args, ceiling, cluster, floor, ours, peers, python};

/// Runs one side (`who`) of one workload; a panic counts as a missing figure.
fn run_side(who: &str, name: &str, f: impl FnOnce() -> Option<f64>) -> Option<f64> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => value.filter(|v| v.is_finite() && *v > 0.0),
        Err(_) => {
            eprintln!("[{who}] {name} panicked; figure missing");
            None
        }
    }
}

fn main() -> ExitCode {
    // Helper modes first (the binary-spawn floor exits here at once), then the
    // child hooks: a procspawn child runs its function inside init() and exits.
    if let Some(code) = floor::helper_main() {
        return code;
    }
    procspawn::init();
    multiprocess::init();
    let opts = match args::parse(std::env::args_os().skip(1)) {
        Ok(Some(opts)) => opts,
        Ok(None) => return ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            return ExitCode::from(2);
        }
    };
    let quick = opts.quick;

    let mut rows = Vec::with_capacity(opts.selected.len());
    for w in &opts.selected {
        let mut row = Row::new(
            w,
            run_side("ours", w.name, || ours::run(w.name, quick)),
            None,
        );
        row.peer = run_side("peer", w.name, || peers::run(w.name, quick));
        row.ceiling = run_side("ceiling", w.name, || ceiling::run(w.name, quick));
        let unit = w.unit.as_str();
        eprintln!(
            "[ours]   {:<30} {} {unit}  (peer {}, ceiling {})",
            w.name,
            fmt_opt(row.ours),
            fmt_opt(row.peer),
            fmt_opt(row.ceiling),
        );
        rows.push(row);
    }

    // Every floor the selection needs, measured once each in a fresh helper
    // process; the spinning round trip and the cache-hot memcpy ride along
    // with the blocking round trip and the page-faulting memcpy, for reference.
    let mut needed: Vec<Floor> = opts
        .selected
        .iter()
        .flat_map(|w| [w.floor, w.floor2()])
        .flatten()
        .collect();
    if needed.contains(&Floor::SocketRoundTrip) {
        needed.push(Floor::SpinRoundTrip);
    }
    if needed.contains(&Floor::Memcpy) {
        needed.push(Floor::MemcpyHot);
    }
    needed.sort();
    needed.dedup();
    let floors = if needed.is_empty() {
        Default::default()
    } else {
        floor::in_helper(&needed, quick)
    };
    for f in &needed {
        let value = floors.get(f).copied();
        eprintln!(
            "[floor]  {:<34} {} {}",
            f.describe(),
            fmt_opt(value),
            f.unit().as_str()
        );
    }

    eprintln!("[python] running {} ...", python::SCRIPT);
    let names: Vec<&str> = opts.selected.iter().map(|w| w.name).collect();
    // The cluster rows' Python side is Celery (bench/python/celery_bench.py).
    let (celery_rows, baseline_rows): (Vec<&str>, Vec<&str>) =
        names.iter().partition(|n| cluster::is_cluster(n));
    let mut py = if baseline_rows.is_empty() {
        Default::default()
    } else {
        python::run(&baseline_rows, opts.all, quick)
    };
    py.extend(cluster::celery(&celery_rows, quick));

    for row in &mut rows {
        row.python = py.get(row.workload.name).copied();
        row.floor = row.workload.floor.and_then(|f| floors.get(&f).copied());
        row.floor2 = row.workload.floor2().and_then(|f| floors.get(&f).copied());
    }
    let floor_list: Vec<(Floor, f64)> = floors.into_iter().collect();
    println!("{}", report::table(&rows, &floor_list, quick));
    for row in &rows {
        println!("{}", row.bench_line());
    }
    ExitCode::SUCCESS
}
