//! Benchmark harness for `multiprocess`: this crate beside CPython's
//! `multiprocessing`, beside the Rust crates a user would pick instead, and
//! beside the operating system's floor.
//!
//! The contract is `/work/shared/BENCH.md`: every workload of [`workloads::WORKLOADS`]
//! runs in one run with this crate ([`ours`]), with CPython
//! (`bench/python/baseline.py`, driven by [`python`]), with the best Rust peer
//! ([`peers`]: procspawn, ipc-channel), with threads in one process (the
//! in-process ceiling, [`ceiling`]) and, where one exists, as the raw-syscall
//! floor ([`floor`], measured in a fresh helper process). `_loaded` rows run
//! beside CPU-bound processes ([`load`]). [`args`] parses the command line;
//! [`report`] prints the human table and the machine-readable `bench ...` lines.
//!
//! The pieces live in a library so that every public item (sizes, helpers) is
//! usable by the binary, by future Criterion benches, and by the `ours`
//! workloads as they are written, without dead-code noise.

pub mod args;
pub mod ceiling;
pub mod cluster;
pub mod floor;
pub mod load;
pub mod measure;
pub mod ours;
pub mod params;
pub mod peers;
pub mod python;
pub mod redis_objects;
pub mod report;
pub mod workloads;
