//! Command-line options, parsed with `lexopt`.
//!
//! ```text
//! multiprocess-bench [--only NAME[,NAME..]]... [--quick]
//! ```

use crate::workloads::{WORKLOADS, Workload, find};

/// The usage line.
pub const USAGE: &str = "usage: multiprocess-bench [--only NAME[,NAME..]] [--quick]";

/// Command-line options.
#[derive(Debug)]
pub struct Options {
    /// Selected workloads, in the table's order.
    pub selected: Vec<&'static Workload>,
    /// Smaller sizes and fewer repetitions.
    pub quick: bool,
}

/// Every workload name, comma-separated.
pub fn valid_names() -> String {
    WORKLOADS
        .iter()
        .map(|w| w.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses the arguments (without the program name): `Ok(None)` after
/// printing help, `Err(message)` on a bad argument or an unknown workload.
pub fn parse<I>(args: I) -> Result<Option<Options>, String>
where
    I: IntoIterator,
    I::Item: Into<std::ffi::OsString>,
{
    use lexopt::prelude::*;
    let mut only: Option<Vec<String>> = None;
    let mut quick = false;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(|e| format!("{e}\n{USAGE}"))? {
        match arg {
            Long("only") => {
                let list = parser
                    .value()
                    .map_err(|_| "--only needs a list of workload names".to_owned())?
                    .string()
                    .map_err(|e| e.to_string())?;
                let names = list.split(',').filter(|s| !s.is_empty()).map(str::to_owned);
                only.get_or_insert_with(Vec::new).extend(names);
            }
            Long("quick") => quick = true,
            Short('h') | Long("help") => {
                println!("{USAGE}\nworkloads: {}", valid_names());
                return Ok(None);
            }
            other => return Err(format!("{}\n{USAGE}", other.unexpected())),
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
    Ok(Some(Options { selected, quick }))
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn names(args: &[&str]) -> Result<Vec<&'static str>, String> {
        let opts = parse(args.iter().copied())?.expect("options");
        Ok(opts.selected.iter().map(|w| w.name).collect())
    }

    #[test]
    fn only_lists_keep_table_order() {
        assert_eq!(
            names(&["--only", "queue_1p1c_small,pipe_roundtrip_small"]).unwrap(),
            ["pipe_roundtrip_small", "queue_1p1c_small"]
        );
        assert_eq!(
            names(&[
                "--only=pool_dispatch_capacity",
                "--only",
                "manager_dict_op_loaded"
            ])
            .unwrap(),
            ["manager_dict_op_loaded", "pool_dispatch_capacity"]
        );
        let opts = parse(["--quick"]).unwrap().unwrap();
        assert!(opts.quick);
        assert_eq!(opts.selected.len(), crate::workloads::WORKLOADS.len());
    }

    #[test]
    fn errors() {
        assert!(
            names(&["--only", "nope"])
                .unwrap_err()
                .contains("unknown workload")
        );
        assert!(names(&["--only", ","]).unwrap_err().contains("empty list"));
        assert!(names(&["--only"]).is_err());
        assert!(names(&["--fast"]).is_err());
        assert!(names(&["stray"]).is_err());
    }
}
