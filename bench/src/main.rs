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

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;

use multiprocess_bench::report::{self, Row, fmt_opt};
use multiprocess_bench::workloads::{Floor, Workload};
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

    // Each row's OS floors are measured right after it, in a fresh helper process: on a
    // machine whose speed drifts over minutes (steal, reclaim), a ratio of figures
    // taken seconds apart holds where one of figures taken minutes apart does not.
    // CPython runs after all rows, in one interpreter: its rows allocate much (lists of
    // a million items, 64 MiB arrays), and the aftermath would land on our next row.
    let mut rows = Vec::with_capacity(opts.selected.len());
    let mut floors_seen: BTreeMap<Floor, Vec<f64>> = BTreeMap::new();
    for w in &opts.selected {
        let floors = row_floors(w);
        // The start rows' floors are measured round by round beside ours; the
        // others' right after the row (see `floor::Paired`).
        let mut paired = if w.paired() {
            floor::Paired::start(w.name, &floors, quick)
                .inspect_err(|e| {
                    eprintln!("warning: paired floor helper: {e}; floors after the row")
                })
                .ok()
        } else {
            None
        };
        let ours_value = run_side("ours", w.name, || match paired.as_mut() {
            Some(helper) => ours::run_paired(w.name, quick, &mut |v| helper.round(v)),
            None => ours::run(w.name, quick),
        });
        let mut row = Row::new(w, ours_value, None);
        row.peer = run_side("peer", w.name, || peers::run(w.name, quick));
        row.ceiling = run_side("ceiling", w.name, || ceiling::run(w.name, quick));
        let mut measured = paired.map(floor::Paired::finish).unwrap_or_default();
        if !floors.is_empty() && measured.len() < floors.len() {
            measured = floor::in_helper(&floors, quick);
        }
        for (f, v) in &measured {
            floors_seen.entry(*f).or_default().push(*v);
        }
        row.floor = w.floor.and_then(|f| measured.get(&f).copied());
        row.floor2 = w.floor2().and_then(|f| measured.get(&f).copied());
        let unit = w.unit.as_str();
        eprintln!(
            "[ours]   {:<30} {} {unit}  (peer {}, ceiling {}, floor {})",
            w.name,
            fmt_opt(row.ours),
            fmt_opt(row.peer),
            fmt_opt(row.ceiling),
            fmt_opt(row.floor),
        );
        rows.push(row);
    }

    // The floors' table: each floor's median over the rows that measured it.
    let floors: Vec<(Floor, f64)> = floors_seen
        .into_iter()
        .map(|(f, mut v)| {
            v.sort_by(f64::total_cmp);
            (f, v[v.len() / 2])
        })
        .collect();
    for (f, value) in &floors {
        eprintln!(
            "[floor]  {:<34} {} {}",
            f.describe(),
            fmt_opt(Some(*value)),
            f.unit().as_str()
        );
    }
    eprintln!("[python] running {} ...", python::SCRIPT);
    let names: Vec<&str> = opts.selected.iter().map(|w| w.name).collect();
    // The cluster rows' Python side is Celery (bench/python/celery_bench.py).
    let (celery_rows, baseline_rows): (Vec<&str>, Vec<&str>) =
        names.iter().partition(|n| cluster::is_cluster(n));
    let mut py = python::run(&baseline_rows, quick);
    py.extend(cluster::celery(&celery_rows, quick));
    for row in &mut rows {
        row.python = py.get(row.workload.name).copied();
    }
    println!("{}", report::table(&rows, &floors, quick));
    for row in &rows {
        println!("{}", row.bench_line());
    }
    ExitCode::SUCCESS
}

/// The floors a row's helper measures: the row's own, plus the spinning round trip
/// beside the blocking one and the cache-hot memcpy beside the page-faulting one,
/// for reference.
fn row_floors(w: &Workload) -> Vec<Floor> {
    let mut v: Vec<Floor> = [w.floor, w.floor2()].into_iter().flatten().collect();
    if v.contains(&Floor::SocketRoundTrip) {
        v.push(Floor::SpinRoundTrip);
    }
    if v.contains(&Floor::Memcpy) {
        v.push(Floor::MemcpyHot);
    }
    v
}
