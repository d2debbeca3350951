//! Formatting of the results: the human table and the `bench ...` lines.
//!
//! The machine-readable line per workload is exactly
//!
//! ```text
//! bench NAME ours=VALUE python=VALUE floor=VALUE|- unit=UNIT better=X
//! ```
//!
//! with `-` for a missing value, numbers to three significant digits and no
//! thousands separators. `better` is Python/ours for times and ours/Python
//! for rates (> 1: ours wins).

use std::fmt::Write as _;

use crate::workloads::{Floor, Workload};

/// The three figures of one workload.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    /// The workload.
    pub workload: &'static Workload,
    /// With this crate.
    pub ours: Option<f64>,
    /// With CPython.
    pub python: Option<f64>,
    /// The OS floor, if the workload has one and it was measured.
    pub floor: Option<f64>,
}

impl Row {
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
            "bench {} ours={} python={} floor={} unit={} better={}",
            self.workload.name,
            fmt_opt(self.ours),
            fmt_opt(self.python),
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

/// The human table, followed by the list of floors measured.
pub fn table(rows: &[Row], floors: &[(Floor, f64)], quick: bool) -> String {
    let mut out = String::new();
    let mode = if quick { "quick" } else { "full" };
    let _ = writeln!(
        out,
        "multiprocess vs CPython multiprocessing vs OS floor ({mode} mode; medians)"
    );
    let width = rows
        .iter()
        .map(|r| r.workload.name.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let _ = writeln!(
        out,
        "{:<width$}  {:>6}  {:>10}  {:>10}  {:>10}  {:>7}  {:>8}",
        "workload", "unit", "ours", "python", "floor", "better", "x floor"
    );
    let _ = writeln!(
        out,
        "{}",
        "-".repeat(width + 2 + 6 + 2 + 10 * 3 + 4 + 2 + 7 + 2 + 8)
    );
    for row in rows {
        let _ = writeln!(
            out,
            "{:<width$}  {:>6}  {:>10}  {:>10}  {:>10}  {:>7}  {:>8}",
            row.workload.name,
            row.workload.unit.as_str(),
            fmt_opt(row.ours),
            fmt_opt(row.python),
            fmt_opt(row.floor),
            fmt_opt(row.better()),
            fmt_opt(row.over_floor()),
        );
    }
    let _ = writeln!(
        out,
        "better: > 1 means ours beats CPython; x floor: ours' cost in multiples of the OS floor"
    );
    if !floors.is_empty() {
        let _ = writeln!(out, "\nOS floors measured:");
        for (floor, value) in floors {
            let _ = writeln!(
                out,
                "  {:<36} {:>10} {}",
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
        let row = Row {
            workload: find("pipe_roundtrip_small").unwrap(),
            ours: Some(20.0),
            python: Some(50.0),
            floor: None,
        };
        assert_eq!(
            row.bench_line(),
            "bench pipe_roundtrip_small ours=20.0 python=50.0 floor=- unit=us better=2.50"
        );
        let row = Row {
            workload: find("queue_1p1c_small").unwrap(),
            ours: None,
            python: Some(158_000.0),
            floor: None,
        };
        assert_eq!(
            row.bench_line(),
            "bench queue_1p1c_small ours=- python=158000 floor=- unit=msg/s better=-"
        );
        let row = Row {
            workload: find("queue_1p1c_1MiB").unwrap(),
            ours: Some(1000.0),
            python: Some(500.0),
            floor: Some(2000.0),
        };
        assert_eq!(row.better(), Some(2.0));
        assert_eq!(row.over_floor(), Some(2.0));
    }
}
