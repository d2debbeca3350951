//! Functions as values: how a function pointer travels to another process.
//!
//! A child runs a function of *this same binary* (spawned children re-execute it; the
//! fork server and forked children are copies of it). Address-space layout
//! randomization moves the whole image, so an absolute address means nothing in the
//! other process, but the distance between two functions of one image does not change.
//! A function therefore travels as its offset from [`anchor`], a function of this
//! crate, and is turned back into a pointer by adding the receiver's own `anchor`.
//!
//! Only the same build can use an offset: a different binary would jump into the wrong
//! code. That is why [`code_at`] is an `unsafe fn`: its caller promises the offset was
//! made by [`code_offset`] in this binary, from a function of the type it asks for.
//! Every place that calls it receives the offset from a process started by us from
//! this binary (a boot message, a pool task, a barrier segment we created, a manager
//! we started), never from an unrelated peer.
//!
//! (A registry of named functions, as `linkme` allows, would survive rebuilds; remote
//! workers of another build need it. Offsets are enough while every peer is this
//! binary.)

#[inline(never)]
fn anchor() {}

/// A code address as an offset from this binary's [`anchor`].
///
/// ```ignore
/// fn work(x: u32) -> u32 { x + 1 }
/// let off = code_offset(work as *const ());
/// // SAFETY: `off` was made from a `fn(u32) -> u32` of this binary.
/// let f: fn(u32) -> u32 = unsafe { code_at(off) };
/// assert_eq!(f(1), 2);
/// ```
pub(crate) fn code_offset(f: *const ()) -> usize {
    (f as usize).wrapping_sub(anchor as *const () as usize)
}

/// The function pointer of type `F` at `off` from this binary's [`anchor`].
///
/// # Safety
///
/// `F` must be a function pointer type, and `off` must have been made by
/// [`code_offset`] *in this same binary* from a function of exactly the type `F`.
/// Calling the result of any other offset jumps into arbitrary code.
///
/// # Panics
///
/// If `F` is not the size of a pointer (it cannot be a function pointer then).
#[allow(unsafe_code)]
pub(crate) unsafe fn code_at<F: Copy>(off: usize) -> F {
    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<*const ()>());
    let p = (anchor as *const () as usize).wrapping_add(off) as *const ();
    // SAFETY: `F` is a function pointer type of pointer size (asserted); the caller
    // promises that `off` came from an `F` of this binary, so `p` is that function.
    unsafe { std::mem::transmute_copy::<*const (), F>(&p) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add_one(x: u32) -> u32 {
        x + 1
    }

    fn double(x: u32) -> u32 {
        x * 2
    }

    #[test]
    fn offsets_round_trip_to_the_same_function() {
        let a = code_offset(add_one as *const ());
        let b = code_offset(double as *const ());
        assert_ne!(a, b);
        #[allow(unsafe_code)]
        // SAFETY: both offsets were made just above from `fn(u32) -> u32`s.
        let f: fn(u32) -> u32 = unsafe { code_at(a) };
        #[allow(unsafe_code)]
        // SAFETY: as above.
        let g: fn(u32) -> u32 = unsafe { code_at(b) };
        assert_eq!(f(1), 2);
        assert_eq!(g(3), 6);
    }
}
