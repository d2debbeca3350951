//! Runs the CPython baseline (`bench/python/baseline.py`) and parses its output.
//!
//! The script is run once for all selected workloads (`--only` their names). It
//! prints one JSON object per workload and line, `{"name": NAME, "value": VALUE}`,
//! VALUE being `null` when that workload failed (its traceback goes to stderr,
//! which is passed through). The interpreter is `python3`, or the one named by the
//! `MP_BENCH_PYTHON` environment variable. If it cannot be started every figure is
//! missing; if it exits with an error, the figures it did print are kept and the
//! others are missing.

use std::collections::HashMap;
use std::process::{Command, Stdio};

/// Path of the baseline script, fixed at compile time from the crate's directory.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python/baseline.py");

/// Environment variable naming the Python interpreter (default `python3`).
pub const PYTHON_ENV: &str = "MP_BENCH_PYTHON";

/// Runs the baseline for `names`, returning the figures it produced by workload
/// name.
pub fn run(names: &[&str], quick: bool) -> HashMap<String, f64> {
    // The Redis object rows run redis-py from a venv (crate::redis_objects).
    let (redis_rows, names): (Vec<&str>, Vec<&str>) =
        names.iter().partition(|n| crate::redis_objects::is_row(n));
    let mut figures = crate::redis_objects::python_side(&redis_rows, quick);
    if !names.is_empty() {
        figures.extend(baseline(&names, quick));
    }
    figures
}

fn baseline(names: &[&str], quick: bool) -> HashMap<String, f64> {
    let python = std::env::var(PYTHON_ENV).unwrap_or_else(|_| "python3".to_owned());
    let mut cmd = Command::new(&python);
    cmd.arg(SCRIPT).arg("--only").arg(names.join(","));
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

/// One line of the script's output.
#[derive(serde::Deserialize)]
struct Line {
    name: String,
    value: Option<f64>,
}

/// Parses the JSON lines; lines that are not such an object, and values that
/// are not a positive finite number (such as `null`), are skipped.
pub fn parse(stdout: &str) -> HashMap<String, f64> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Line>(line).ok())
        .filter_map(|l| {
            let v = l.value?;
            (v.is_finite() && v > 0.0).then_some((l.name, v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parse_lines() {
        let out = concat!(
            "{\"name\": \"a\", \"value\": 1.5}\n",
            "{\"name\": \"b\", \"value\": null}\n",
            "{\"name\": \"c\", \"value\": 2e3}\n",
            "\n",
            "noise here too\n",
            "{\"name\": \"d\", \"value\": -1}\n",
            "{\"name\": \"e\"}\n",
            "c 3\n",
        );
        let m = super::parse(out);
        assert_eq!(m.len(), 2);
        assert_eq!(m["a"], 1.5);
        assert_eq!(m["c"], 2000.0);
    }
}
