//! What crosses Redis: the keys, the task and result entries, the build fingerprint
//! and error kinds as numbers.
//!
//! ```text
//! mp:tasks          stream, consumer group "hosts": one entry per task (a chunk),
//!                   field "t" = seal("task", encode(TaskEntry))
//! mp:r:<origin>     list: the results for one submitter, each element
//!                   seal("result", encode(ResultBatch)); expires an hour after the
//!                   last push (a submitter that vanished leaves nothing for good)
//! mp:hb:<host>      a host's heartbeat: its process count, with a TTL of one lease
//! mp:hosts          hash host -> seal("stats", encode(HostReport))
//! mp:forged         counter of entries whose seal did not open (any host)
//! ```

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};

/// The task stream.
pub(crate) const TASKS: &str = "mp:tasks";
/// The consumer group of the worker hosts.
pub(crate) const GROUP: &str = "hosts";
/// The hash of host reports.
pub(crate) const HOSTS: &str = "mp:hosts";
/// The forged-entry counter.
pub(crate) const FORGED: &str = "mp:forged";
/// Prefix of the heartbeat keys.
pub(crate) const HB: &str = "mp:hb:";
/// How long a results list outlives its last push, in seconds.
pub(crate) const RESULTS_TTL: u64 = 3600;

/// Seal domains.
pub(crate) const D_TASK: &[u8] = b"multiprocess cluster task v1";
pub(crate) const D_RESULT: &[u8] = b"multiprocess cluster result v1";
pub(crate) const D_STATS: &[u8] = b"multiprocess cluster stats v1";

/// The results list of submitter `origin`.
pub(crate) fn results_key(origin: &str) -> String {
    format!("mp:r:{origin}")
}

/// One task as it travels to a host.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TaskEntry {
    /// The sender's build fingerprint.
    pub(crate) build: String,
    /// The sender (its results list is `mp:r:<origin>`).
    pub(crate) origin: String,
    /// The sender's task id (unique per origin).
    pub(crate) id: u64,
    /// Trampoline and function, as code offsets of the sender's build.
    pub(crate) entry: u64,
    pub(crate) func: u64,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) what: String,
    pub(crate) chunk: bool,
    /// The encoded `Vec<A>` of the chunk.
    pub(crate) items: Vec<u8>,
}

/// One task's answer: the encoded `ChunkOut<R>`, or how it failed as a whole.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireResult {
    pub(crate) id: u64,
    /// How many times the task was delivered (more than 1: its host vanished).
    pub(crate) deliveries: u32,
    pub(crate) out: std::result::Result<Vec<u8>, (u8, String)>,
}

/// The answers a host sends to one submitter at once.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ResultBatch {
    pub(crate) host: String,
    pub(crate) results: Vec<WireResult>,
}

/// What a host says about itself (for `stats()`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HostReport {
    pub(crate) processes: u32,
    pub(crate) build: String,
    pub(crate) tasks: u64,
    pub(crate) forged: u64,
    pub(crate) refused: u64,
    /// Per local worker.
    pub(crate) workers: Vec<WorkerReport>,
}

/// One local worker in a [`HostReport`]: name, pid, tasks done, busy nanoseconds, the
/// task it runs and for how many nanoseconds it had run it when the report was written.
pub(crate) type WorkerReport = (String, u32, u64, u64, Option<String>, Option<u64>);

/// An error kind as a number on the wire.
pub(crate) fn kind_code(k: ErrorKind) -> u8 {
    k.code()
}

/// The error kind of a number from the wire (unknown: `Protocol`).
pub(crate) fn kind_of(code: u8) -> ErrorKind {
    ErrorKind::from_code(code).unwrap_or(ErrorKind::Protocol)
}

/// An error as it travels.
pub(crate) fn wire_error(e: &Error) -> (u8, String) {
    (kind_code(e.kind()), e.to_string())
}

/// This build's fingerprint: a hash of the executable's bytes (computed once), in hex.
///
/// Two builds of one program put their functions at other offsets, so a task's code
/// offsets mean something only on a host that runs the very same file. The hash is
/// not a security measure (the seal is): it tells an honest mistake (a host left on
/// an old build) apart from a task to run, before anything runs. A 64-bit
/// multiply-rotate hash over 8-byte words, four lanes: fast even unoptimized, and a
/// rebuilt binary differs in many words.
///
/// The test-only variable `__MULTIPROCESS_BUILD_SALT` is hashed in too, so that a
/// test can start a host that looks like another build; it cannot make one build
/// pass for another (that would need a preimage).
pub(crate) fn fingerprint() -> &'static str {
    static FP: OnceLock<String> = OnceLock::new();
    FP.get_or_init(|| {
        let bytes = std::env::current_exe()
            .and_then(std::fs::read)
            .unwrap_or_default();
        let mut h = hash_words(&bytes);
        if let Some(salt) = std::env::var_os("__MULTIPROCESS_BUILD_SALT") {
            h ^= hash_words(salt.as_encoded_bytes()).rotate_left(17);
        }
        format!("{h:016x}")
    })
}

fn hash_words(bytes: &[u8]) -> u64 {
    const K: [u64; 4] = [
        0x9E37_79B9_7F4A_7C15,
        0xC2B2_AE3D_27D4_EB4F,
        0x1656_67B1_9E37_79F9,
        0x85EB_CA77_C2B2_AE63,
    ];
    let mut lanes = K;
    let mut it = bytes.chunks_exact(32);
    for c in &mut it {
        for (i, l) in lanes.iter_mut().enumerate() {
            let w = u64::from_le_bytes(c[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            *l = (*l ^ w).wrapping_mul(K[i]).rotate_left(31);
        }
    }
    let mut h = bytes.len() as u64;
    for &b in it.remainder() {
        h = (h ^ b as u64).wrapping_mul(K[0]);
    }
    for (i, l) in lanes.iter().enumerate() {
        h = (h ^ l).wrapping_mul(K[i]).rotate_left(27);
    }
    h ^ (h >> 29)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::codec;

    #[test]
    fn kinds_round_trip_and_unknown_is_protocol() {
        for &k in ErrorKind::all() {
            assert_eq!(kind_of(kind_code(k)), k);
        }
        assert_eq!(kind_of(200), ErrorKind::Protocol);
    }

    #[test]
    fn the_fingerprint_is_stable_and_hashes_every_byte() {
        assert_eq!(fingerprint(), fingerprint());
        assert_eq!(fingerprint().len(), 16);
        let a = vec![7u8; 100];
        let mut b = a.clone();
        b[50] = 8;
        assert_ne!(hash_words(&a), hash_words(&b));
        assert_ne!(hash_words(&a), hash_words(&a[..99]));
    }

    #[test]
    fn entries_round_trip_and_garbage_fails_cleanly() {
        let t = TaskEntry {
            build: "b".into(),
            origin: "o".into(),
            id: 3,
            entry: 1,
            func: 2,
            timeout_ms: Some(5),
            what: "task 3".into(),
            chunk: false,
            items: vec![1, 2, 3],
        };
        let enc = codec::encode(&t).unwrap();
        let back: TaskEntry = codec::decode(&enc.bytes, Vec::new()).unwrap();
        assert_eq!((back.id, back.items), (3, vec![1, 2, 3]));
        for n in 0..enc.bytes.len() {
            assert!(codec::decode::<TaskEntry>(&enc.bytes[..n], Vec::new()).is_err());
        }
        let r = ResultBatch {
            host: "h".into(),
            results: vec![WireResult {
                id: 1,
                deliveries: 2,
                out: Err((kind_code(ErrorKind::Timeout), "late".into())),
            }],
        };
        let enc = codec::encode(&r).unwrap();
        let back: ResultBatch = codec::decode(&enc.bytes, Vec::new()).unwrap();
        assert_eq!(back.results[0].deliveries, 2);
    }
}
