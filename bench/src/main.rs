//! `multiprocess-bench`: runs the workloads of BENCH.md with this crate, with
//! CPython's `multiprocessing` and as the OS floor, in one run.
//!
//! ```text
//! cargo run --release -p multiprocess-bench -- [--only NAME[,NAME..]] [--quick]
//! ```
//!
//! Prints a human table, then one `bench NAME ours=.. python=.. floor=..
//! unit=.. better=..` line per selected workload, in the table's order.
//! Progress goes to stderr.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;

use multiprocess_bench::report::{self, Row, fmt_opt};
use multiprocess_bench::workloads::{Floor, WORKLOADS, Workload, find};
use multiprocess_bench::{floor, ours, python};

const USAGE: &str = "usage: multiprocess-bench [--only NAME[,NAME..]] [--quick]";

/// Command-line options.
struct Options {
    /// Selected workloads, in the table's order.
    selected: Vec<&'static Workload>,
    /// Whether every workload is selected.
    all: bool,
    /// Smaller sizes and fewer repetitions.
    quick: bool,
}

fn valid_names() -> String {
    WORKLOADS
        .iter()
        .map(|w| w.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let mut only: Option<Vec<String>> = None;
    let mut quick = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let list = if arg == "--only" {
            Some(args.next().ok_or("--only needs a list of workload names")?)
        } else {
            arg.strip_prefix("--only=").map(str::to_owned)
        };
        if let Some(list) = list {
            let names = list.split(',').filter(|s| !s.is_empty()).map(str::to_owned);
            only.get_or_insert_with(Vec::new).extend(names);
        } else if arg == "--quick" {
            quick = true;
        } else if arg == "-h" || arg == "--help" {
            println!("{USAGE}\nworkloads: {}", valid_names());
            return Ok(None);
        } else {
            return Err(format!("unknown argument {arg:?}\n{USAGE}"));
        }
    }
    let selected = match &only {
        None => WORKLOADS.iter().collect(),
        Some(names) => {
            let unknown: Vec<&str> = names
                .iter()
                .map(String::as_str)
                .filter(|n| find(n).is_none())
                .collect();
            if !unknown.is_empty() {
                return Err(format!(
                    "unknown workload(s): {}\nvalid names: {}",
                    unknown.join(", "),
                    valid_names()
                ));
            }
            if names.is_empty() {
                return Err(format!(
                    "--only: empty list\nvalid names: {}",
                    valid_names()
                ));
            }
            WORKLOADS
                .iter()
                .filter(|w| names.iter().any(|n| n == w.name))
                .collect()
        }
    };
    let all = only.is_none();
    Ok(Some(Options {
        selected,
        all,
        quick,
    }))
}

/// Runs our implementation of one workload; a panic counts as a missing figure.
fn run_ours(name: &str, quick: bool) -> Option<f64> {
    match catch_unwind(AssertUnwindSafe(|| ours::run(name, quick))) {
        Ok(value) => value.filter(|v| v.is_finite() && *v > 0.0),
        Err(_) => {
            eprintln!("[ours] {name} panicked; figure missing");
            None
        }
    }
}

fn main() -> ExitCode {
    multiprocess::init();
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(Some(opts)) => opts,
        Ok(None) => return ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            return ExitCode::from(2);
        }
    };
    let quick = opts.quick;

    let mut ours_figures = Vec::with_capacity(opts.selected.len());
    for w in &opts.selected {
        let value = run_ours(w.name, quick);
        eprintln!(
            "[ours]   {:<34} {} {}",
            w.name,
            fmt_opt(value),
            w.unit.as_str()
        );
        ours_figures.push(value);
    }

    // Every floor the selection needs, each measured once; the spinning round
    // trip and the cache-hot memcpy ride along with the blocking round trip and
    // the page-faulting memcpy, for reference.
    let mut needed: Vec<Floor> = opts.selected.iter().filter_map(|w| w.floor).collect();
    if needed.contains(&Floor::SocketRoundTrip) {
        needed.push(Floor::SpinRoundTrip);
    }
    if needed.contains(&Floor::Memcpy) {
        needed.push(Floor::MemcpyHot);
    }
    needed.sort();
    needed.dedup();
    let mut floors = BTreeMap::new();
    for f in needed {
        let value = catch_unwind(AssertUnwindSafe(|| floor::measure(f, quick)))
            .ok()
            .flatten();
        eprintln!(
            "[floor]  {:<34} {} {}",
            f.describe(),
            fmt_opt(value),
            f.unit().as_str()
        );
        if let Some(value) = value {
            floors.insert(f, value);
        }
    }

    eprintln!("[python] running {} ...", python::SCRIPT);
    let names: Vec<&str> = opts.selected.iter().map(|w| w.name).collect();
    let py = python::run(&names, opts.all, quick);

    let rows: Vec<Row> = opts
        .selected
        .iter()
        .zip(ours_figures)
        .map(|(w, ours)| Row {
            workload: w,
            ours,
            python: py.get(w.name).copied(),
            floor: w.floor.and_then(|f| floors.get(&f).copied()),
        })
        .collect();
    let floor_list: Vec<(Floor, f64)> = floors.into_iter().collect();
    println!("{}", report::table(&rows, &floor_list, quick));
    for row in &rows {
        println!("{}", row.bench_line());
    }
    ExitCode::SUCCESS
}
