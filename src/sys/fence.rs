//! Asymmetric fences: a cheap fence on the hot side of a store-then-load handshake and
//! an expensive one on the cold side, with `membarrier(2)`.
//!
//! The handshake: a releaser stores "free" then loads "is anyone asleep?"; a sleeper
//! stores "I am asleep" then loads "is it free?". Each side needs a full fence between
//! its store and its load (else both loads can miss both stores, and the sleeper sleeps
//! on a free lock with nobody to wake it). A full fence costs as much as the atomic
//! read-modify-write it would replace (about 2.5 ns here), on every release.
//!
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` makes every CPU that runs a thread of
//! a *registered* process execute a full fence before the call returns (an IPI; a CPU
//! that switches tasks fences anyway). So the releaser needs only a compiler fence
//! ([`light`]) if its process is registered, and the sleeper, which is about to make a
//! system call anyway, pays for [`heavy`] (about 0.7 us here). This is the pairing
//! Folly's `asymmetricLightBarrier`/`asymmetricHeavyBarrier` and liburcu use.
//!
//! Registration ([`light`] does it on first use) is per process, kept across `fork`
//! (the kernel copies it with the address space; checked on this kernel) and dropped
//! by `exec`, after which the new image registers again on first use. Where the
//! kernel refuses (older than 4.16, or a seccomp filter), [`light`] is a full fence:
//! correct, at the old price. Where [`heavy`] fails, it still fences this CPU and
//! returns `false`; the sleeper then cannot trust a light fence elsewhere and must
//! wake up on its own, in short slices (see `sync::raw`).

use std::sync::atomic::{AtomicU8, Ordering, compiler_fence, fence};

/// Whether this process is registered for global expedited membarriers.
static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const REGISTERED: u8 = 1;
const REFUSED: u8 = 2;

const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;

fn membarrier(cmd: libc::c_int) -> bool {
    // SAFETY: membarrier takes two integer arguments and touches no user memory.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_uint,
            0 as libc::c_int,
        ) == 0
    }
}

/// The hot side: orders this thread's earlier stores before its later loads, against
/// a thread that passes [`heavy`]. A compiler fence once this process is registered.
#[inline]
pub(crate) fn light() {
    if MODE.load(Ordering::Relaxed) == REGISTERED {
        compiler_fence(Ordering::SeqCst);
    } else {
        light_slow();
    }
}

#[cold]
#[inline(never)]
fn light_slow() {
    if MODE.load(Ordering::Relaxed) == UNKNOWN {
        register();
    }
    // Registering is itself a full barrier, but this call's store came before it: fence
    // here, and from the next call on the registration holds.
    fence(Ordering::SeqCst);
}

/// Registers this process (idempotent); `true` if the kernel took it.
fn register() -> bool {
    let ok = membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED);
    MODE.store(if ok { REGISTERED } else { REFUSED }, Ordering::Relaxed);
    ok
}

/// The cold side: a full fence on every CPU running a registered process, this one
/// included. `false` if the kernel refused: only this CPU fenced, and a peer that
/// relied on [`light`] may not be ordered against it.
pub(crate) fn heavy() -> bool {
    let ok = membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED);
    fence(Ordering::SeqCst);
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_and_fences() {
        light();
        assert_ne!(MODE.load(Ordering::Relaxed), UNKNOWN);
        // Where the kernel registered us it also runs the barrier (both date from 4.16).
        if MODE.load(Ordering::Relaxed) == REGISTERED {
            assert!(heavy());
        }
    }
}
