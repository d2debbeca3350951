//! Formatting of the results: the human table and the `bench ...` lines.
//!
//! The machine-readable line per workload is exactly
//!
//! ```text
//! bench NAME ours=VALUE python=VALUE peer=VALUE|- floor=VALUE|- unit=UNIT better=X
//! ```
//!
//! with `-` for a missing value, numbers to three significant digits and no
//! thousands separators. `better` is Python/ours for times and ours/Python
//! for rates (> 1: ours wins). `peer` is the best Rust crate a user would pick
//! instead ([`crate::peers`]). The human table adds the in-process ceiling
//! ([`crate::ceiling`]), the second spawn floor (`floor2`: exec of this binary)
//! and how ours compares with the peer and the floors.

use std::fmt::Write as _;

use crate::workloads::{Floor, Workload};

/// The figures of one workload.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    /// The workload.
    pub workload: &'static Workload,
    /// With this crate.
    pub ours: Option<f64>,
    /// With CPython.
    pub python: Option<f64>,
    /// With the best Rust peer crate, if the workload has one.
    pub peer: Option<f64>,
    /// In one process with threads (the in-process ceiling), if one applies.
    pub ceiling: Option<f64>,
    /// The OS floor, if the workload has one and it was measured.
    pub floor: Option<f64>,
    /// The second floor ([`Workload::floor2`]), if any.
    pub floor2: Option<f64>,
}

impl Row {
    /// A row with only ours and Python's figures.
    pub fn new(workload: &'static Workload, ours: Option<f64>, python: Option<f64>) -> Row {
        Row {
            workload,
            ours,
            python,
            peer: None,
            ceiling: None,
            floor: None,
            floor2: None,
        }
    }

    /// How many times better ours is than the peer (> 1: ours wins).
    pub fn vs_peer(&self) -> Option<f64> {
        usable(self.workload.unit.better(self.ours?, self.peer?))
    }

    /// How many times the second floor's cost ours pays.
    pub fn over_floor2(&self) -> Option<f64> {
        usable(self.workload.unit.better(self.floor2?, self.ours?))
    }

    /// How many times better ours is than Python (> 1: ours wins).
    pub fn better(&self) -> Option<f64> {
        usable(self.workload.unit.better(self.ours?, self.python?))
    }

    /// How many times the floor's cost ours pays (1 = at the floor):
    /// ours/floor for times, floor/ours for rates.
    pub fn over_floor(&self) -> Option<f64> {
        usable(self.workload.unit.better(self.floor?, self.ours?))
    }

    /// The machine-readable `bench ...` line.
    pub fn bench_line(&self) -> String {
        format!(
            "bench {} ours={} python={} peer={} floor={} unit={} better={}",
            self.workload.name,
            fmt_opt(self.ours),
            fmt_opt(self.python),
            fmt_opt(self.peer),
            fmt_opt(self.floor),
            self.workload.unit.as_str(),
            fmt_opt(self.better()),
        )
    }
}

fn usable(v: f64) -> Option<f64> {
    (v.is_finite() && v > 0.0).then_some(v)
}

/// Formats `v` to three significant digits without exponent or thousands
/// separators (`1991.2` -> `1990`, `77.04` -> `77.0`, `0.1234` -> `0.123`).
pub fn sig3(v: f64) -> String {
    if !v.is_finite() {
        return "-".to_owned();
    }
    if v == 0.0 {
        return "0".to_owned();
    }
    let digits = v.abs().log10().floor() as i32 + 1;
    if digits >= 3 {
        let scale = 10f64.powi(digits - 3);
        format!("{:.0}", (v / scale).round() * scale)
    } else {
        format!("{:.*}", (3 - digits) as usize, v)
    }
}

/// [`sig3`], or `-` for a missing value.
pub fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), sig3)
}

/// How a column reads its cell from a row.
type Cell = fn(&Row) -> Option<f64>;

/// The columns of the human table: header and cell of a row.
const COLUMNS: &[(&str, Cell)] = &[
    ("ours", |r| r.ours),
    ("python", |r| r.python),
    ("peer", |r| r.peer),
    ("ceiling", |r| r.ceiling),
    ("floor", |r| r.floor),
    ("floor2", |r| r.floor2),
    ("better", Row::better),
    ("vs peer", Row::vs_peer),
    ("x floor", Row::over_floor),
    ("x floor2", Row::over_floor2),
];

/// The human table, followed by the list of floors measured.
pub fn table(rows: &[Row], floors: &[(Floor, f64)], quick: bool) -> String {
    let mut out = String::new();
    let mode = if quick { "quick" } else { "full" };
    let _ = writeln!(
        out,
        "multiprocess vs CPython multiprocessing vs Rust peers vs OS floor ({mode} mode; medians)"
    );
    let width = rows
        .iter()
        .map(|r| r.workload.name.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let _ = write!(
        out,
        "{:<width$}  {:>7}  {:>11}",
        "workload", "unit", "peer crate"
    );
    for (head, _) in COLUMNS {
        let _ = write!(out, "  {head:>9}");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", "-".repeat(width + 22 + 11 * COLUMNS.len()));
    for row in rows {
        let _ = write!(
            out,
            "{:<width$}  {:>7}  {:>11}",
            row.workload.name,
            row.workload.unit.as_str(),
            crate::peers::crate_of(row.workload.name).unwrap_or("-"),
        );
        for (_, cell) in COLUMNS {
            let _ = write!(out, "  {:>9}", fmt_opt(cell(row)));
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "better / vs peer: > 1 means ours beats CPython / the peer; ceiling: threads in one \
         process (crossbeam-channel, rayon);\nx floor(2): ours' cost in multiples of the OS \
         floor; floor2: posix_spawn of this binary (floor: of /bin/true)"
    );
    if !floors.is_empty() {
        let _ = writeln!(out, "\nOS floors measured:");
        for (floor, value) in floors {
            let _ = writeln!(
                out,
                "  {:<38} {:>10} {}",
                floor.describe(),
                sig3(*value),
                floor.unit().as_str()
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::find;

    #[test]
    fn three_significant_digits() {
        assert_eq!(sig3(1991.2), "1990");
        assert_eq!(sig3(158_000.0), "158000");
        assert_eq!(sig3(54_518.0), "54500");
        assert_eq!(sig3(77.04), "77.0");
        assert_eq!(sig3(0.1234), "0.123");
        assert_eq!(sig3(1.55e6), "1550000");
        assert_eq!(sig3(2.0), "2.00");
        assert_eq!(sig3(f64::NAN), "-");
    }

    #[test]
    fn bench_lines() {
        let mut row = Row::new(
            find("pipe_roundtrip_small").unwrap(),
            Some(20.0),
            Some(50.0),
        );
        assert_eq!(
            row.bench_line(),
            "bench pipe_roundtrip_small ours=20.0 python=50.0 peer=- floor=- unit=us better=2.50"
        );
        row.peer = Some(30.0);
        row.floor = Some(12.5);
        assert_eq!(
            row.bench_line(),
            "bench pipe_roundtrip_small ours=20.0 python=50.0 peer=30.0 floor=12.5 unit=us better=2.50"
        );
        assert_eq!(row.vs_peer(), Some(1.5));
        let row = Row::new(find("queue_1p1c_small").unwrap(), None, Some(158_000.0));
        assert_eq!(
            row.bench_line(),
            "bench queue_1p1c_small ours=- python=158000 peer=- floor=- unit=msg/s better=-"
        );
        let mut row = Row::new(find("queue_1p1c_1MiB").unwrap(), Some(1000.0), Some(500.0));
        row.floor = Some(2000.0);
        row.peer = Some(4000.0);
        assert_eq!(row.better(), Some(2.0));
        assert_eq!(row.over_floor(), Some(2.0));
        assert_eq!(row.vs_peer(), Some(0.25));
        let mut row = Row::new(
            find("process_start_join_spawn").unwrap(),
            Some(1500.0),
            None,
        );
        row.floor = Some(750.0);
        row.floor2 = Some(1000.0);
        assert_eq!(row.over_floor2(), Some(1.5));
        let table = table(&[row], &[(Floor::SpawnSelf, 1000.0)], true);
        assert!(table.contains("floor2"));
        assert!(table.contains("posix_spawn(this binary"));
    }

    #[test]
    fn bench_line_has_every_field_in_order() {
        let row = Row::new(
            find("pool_dispatch_capacity").unwrap(),
            Some(2.0),
            Some(1.0),
        );
        let line = row.bench_line();
        let keys: Vec<&str> = line
            .split_whitespace()
            .skip(2)
            .map(|kv| kv.split('=').next().unwrap())
            .collect();
        assert_eq!(keys, ["ours", "python", "peer", "floor", "unit", "better"]);
        assert!(line.contains("unit=tasks/s better=2.00"));
    }
}
