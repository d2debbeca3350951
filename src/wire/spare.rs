//! A thread's spare byte buffers, so that large messages reuse their pages.
//!
//! A fresh buffer per large message is fresh pages per message whenever the allocator
//! gives the freed one back to the system: glibc trims the top of its heap past
//! 128 KiB-2 MiB and maps larger blocks on their own, so a 1 MiB buffer freed is often
//! returned, and the next one faults in 256 new pages (3-4 us each on a virtual
//! machine). That made 1 MiB `Vec<u8>` messages 5-8x slower in a fresh process than
//! after other large workloads had moved glibc's thresholds. Each thread keeps its
//! largest recent buffer (up to [`MAX`]) for the next message instead: one for
//! encoding what it sends (`codec::encode_reusing`), one for the bodies of the large
//! frames and queue items it receives (`frame::recycle_body`).

use std::cell::RefCell;
use std::thread::LocalKey;

/// The largest capacity a thread keeps, per kind of buffer.
pub(crate) const MAX: usize = 16 << 20;

/// One kind of spare buffer: a thread-local slot.
pub(crate) type Slot = LocalKey<RefCell<Vec<u8>>>;

/// Takes the thread's spare buffer from `slot` (empty if there is none), cleared.
pub(crate) fn take(slot: &'static Slot) -> Vec<u8> {
    slot.with(|s| std::mem::take(&mut *s.borrow_mut()))
}

/// Keeps `buf` in `slot` for the thread's next [`take`] if its capacity is above
/// `min` (smaller ones are not worth keeping), at most [`MAX`], and larger than what
/// the slot holds.
pub(crate) fn keep(slot: &'static Slot, mut buf: Vec<u8>, min: usize) {
    if buf.capacity() > min && buf.capacity() <= MAX {
        buf.clear();
        slot.with(|s| {
            let mut s = s.borrow_mut();
            if buf.capacity() > s.capacity() {
                *s = buf;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static SLOT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }

    #[test]
    fn keeps_the_largest_within_bounds() {
        keep(&SLOT, Vec::with_capacity(10), 100);
        assert_eq!(take(&SLOT).capacity(), 0, "below the minimum");
        let mut b = Vec::with_capacity(1000);
        b.extend_from_slice(b"stale");
        keep(&SLOT, b, 100);
        keep(&SLOT, Vec::with_capacity(500), 100); // smaller: the larger stays
        let got = take(&SLOT);
        assert!(got.capacity() >= 1000);
        assert!(got.is_empty(), "kept cleared");
        assert_eq!(take(&SLOT).capacity(), 0, "taken");
        keep(&SLOT, Vec::with_capacity(MAX + 1), 100);
        assert_eq!(take(&SLOT).capacity(), 0, "above the maximum");
    }
}
