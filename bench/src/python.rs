//! Runs the CPython baseline (`bench/python/baseline.py`) and parses its output.
//!
//! The script is run once for all selected workloads. It prints `NAME VALUE`
//! per workload (`NAME -` when that workload failed, with its traceback on
//! stderr, which is passed through). The interpreter is `python3`, or the one
//! named by the `MP_BENCH_PYTHON` environment variable. If it cannot be started
//! every figure is missing; if it exits with an error, the figures it did print
//! are kept and the others are missing.

use std::collections::HashMap;
use std::process::{Command, Stdio};

/// Path of the baseline script, fixed at compile time from the crate's directory.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python/baseline.py");

/// Environment variable naming the Python interpreter (default `python3`).
pub const PYTHON_ENV: &str = "MP_BENCH_PYTHON";

/// Runs the baseline for `names` (all workloads if `all`), returning the
/// figures it produced by workload name.
pub fn run(names: &[&str], all: bool, quick: bool) -> HashMap<String, f64> {
    let python = std::env::var(PYTHON_ENV).unwrap_or_else(|_| "python3".to_owned());
    let mut cmd = Command::new(&python);
    cmd.arg(SCRIPT);
    if !all {
        cmd.arg("--only").arg(names.join(","));
    }
    if quick {
        cmd.arg("--quick");
    }
    cmd.stdin(Stdio::null()).stderr(Stdio::inherit());
    let output = match cmd.output() {
        Ok(output) => output,
        Err(err) => {
            eprintln!("warning: cannot run {python} {SCRIPT}: {err}; python figures missing");
            return HashMap::new();
        }
    };
    if !output.status.success() {
        eprintln!("warning: {python} {SCRIPT} failed ({})", output.status);
    }
    parse(&String::from_utf8_lossy(&output.stdout))
}

/// Parses `NAME VALUE` lines; lines whose value is not a positive finite
/// number (such as `NAME -`) are skipped.
pub fn parse(stdout: &str) -> HashMap<String, f64> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (name, value, rest) = (words.next()?, words.next()?, words.next());
            let value: f64 = value.parse().ok()?;
            (rest.is_none() && value.is_finite() && value > 0.0).then(|| (name.to_owned(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parse_lines() {
        let m = super::parse("a 1.5\nb -\nc 2e3\n\nnoise here too\nd nan\n");
        assert_eq!(m.len(), 2);
        assert_eq!(m["a"], 1.5);
        assert_eq!(m["c"], 2000.0);
    }
}
