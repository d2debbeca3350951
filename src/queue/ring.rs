//! The ring's layout and arithmetic, apart from the shared memory it lives in, so it
//! can be tested without processes.
//!
//! ```text
//! segment: | control words (RING bytes) | ring of `cap` bytes (a power of two) ... |
//! record:  | len u32 | flags u32 | seq u64 | payload, padded to 8 |
//! ```
//!
//! `head` and `tail` are byte counters that only grow; a position in the ring is the
//! counter modulo `cap`. A record never wraps: when it does not fit in the bytes left
//! before the end of the ring, the producer writes a wrap mark (`len = u32::MAX`) there
//! and skips to the start; those skipped bytes (the *waste*) count as used until the
//! consumer passes them.

/// Where the ring starts in the segment (bytes).
pub(super) const RING: usize = 256;
/// The size of a record's header.
pub(super) const HEADER: usize = 16;
/// The item travels in a memfd of its own; the payload is its length.
pub(super) const F_BIG: u32 = 1;
/// The item has handles (fds) waiting on the socket pair under `seq`.
pub(super) const F_FDS: u32 = 2;

const WRAP: u32 = u32::MAX;

/// `n` rounded up to a multiple of 8 (records keep 8-byte alignment).
pub(super) fn align8(n: usize) -> usize {
    (n + 7) & !7
}

/// Where a record of `need` bytes goes in a ring of `cap` bytes holding `head..tail`:
/// `Some(waste)` (the bytes to skip at the end of the ring first, 0 if none) when it
/// fits, `None` when the ring has no room for it now.
pub(super) fn room(head: u64, tail: u64, cap: u64, need: u64) -> Option<u64> {
    let contiguous = cap - tail % cap;
    let waste = if need > contiguous { contiguous } else { 0 };
    ((tail - head) + waste + need <= cap).then_some(waste)
}

/// A record's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Record {
    /// Payload length (for a big item: 8, the length of its memfd's contents).
    pub(super) len: u32,
    /// `F_BIG`, `F_FDS`.
    pub(super) flags: u32,
    /// The sequence number its fds travel under (0 when it has none).
    pub(super) seq: u64,
}

impl Record {
    /// The first four bytes of a wrap mark.
    pub(super) const WRAP_MARK: [u8; 4] = WRAP.to_le_bytes();

    pub(super) fn to_bytes(self) -> [u8; HEADER] {
        let mut b = [0u8; HEADER];
        b[0..4].copy_from_slice(&self.len.to_le_bytes());
        b[4..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b
    }

    pub(super) fn from_bytes(b: &[u8; HEADER]) -> Record {
        let (len, rest) = b.split_at(4);
        let (flags, seq) = rest.split_at(4);
        Record {
            len: u32::from_le_bytes(len.try_into().expect("4 bytes")),
            flags: u32::from_le_bytes(flags.try_into().expect("4 bytes")),
            seq: u64::from_le_bytes(seq.try_into().expect("8 bytes")),
        }
    }

    /// Whether a header starts with the wrap mark.
    pub(super) fn is_wrap(b: &[u8; HEADER]) -> bool {
        b[0..4] == Self::WRAP_MARK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align8_rounds_up() {
        assert_eq!([0, 1, 7, 8, 9, 16].map(align8), [0, 8, 8, 8, 16, 16]);
    }

    #[test]
    fn record_round_trips_and_wrap_is_told_apart() {
        let r = Record {
            len: 1234,
            flags: F_BIG | F_FDS,
            seq: u64::MAX - 1,
        };
        let b = r.to_bytes();
        assert_eq!(Record::from_bytes(&b), r);
        assert!(!Record::is_wrap(&b));
        let mut w = [0u8; HEADER];
        w[..4].copy_from_slice(&Record::WRAP_MARK);
        assert!(Record::is_wrap(&w));
    }

    #[test]
    fn room_in_an_empty_ring() {
        assert_eq!(room(0, 0, 4096, 4096), Some(0));
        assert_eq!(room(0, 0, 4096, 4097), None);
    }

    #[test]
    fn a_record_that_does_not_fit_before_the_end_wastes_the_rest() {
        // 4000 bytes consumed, tail at 4080: 16 bytes left before the end.
        assert_eq!(room(4000, 4080, 4096, 16), Some(0));
        assert_eq!(room(4000, 4080, 4096, 24), Some(16));
        // The waste counts as used: 80 in the ring + 16 waste + need <= 4096.
        assert_eq!(room(4000, 4080, 4096, 4000), Some(16));
        assert_eq!(room(4000, 4080, 4096, 4001), None);
    }

    #[test]
    fn a_full_ring_has_no_room_until_the_head_moves() {
        assert_eq!(room(0, 4096, 4096, 8), None);
        assert_eq!(room(8, 4096, 4096, 8), Some(0));
    }

    #[test]
    fn counters_far_past_the_first_lap() {
        let cap = 1 << 20;
        let head = 1000 * cap + 100;
        let tail = head + cap / 2;
        assert_eq!(room(head, tail, cap, cap / 2), None);
        assert_eq!(room(head, tail, cap, 64), Some(0));
    }
}
