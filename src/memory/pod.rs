//! [`Pod`]: the types that may live in shared memory.

// `Pod` is an `unsafe trait`; its impls for primitives state why they hold.
#![allow(unsafe_code)]

/// Types that may live in shared memory and be read and written by several processes.
///
/// Python's typecodes (`multiprocessing.sharedctypes`, Linux x86-64 and aarch64 sizes)
/// map to these Rust types:
///
/// | Python | C type | Rust |
/// |---|---|---|
/// | `'c'` | `char` | `u8` |
/// | `'u'` | `wchar_t` | `u32` (convert with `char::from_u32`: `char` is not `Pod`) |
/// | `'b'`, `'B'` | `signed char`, `unsigned char` | `i8`, `u8` |
/// | `'h'`, `'H'` | `short`, `unsigned short` | `i16`, `u16` |
/// | `'i'`, `'I'` | `int`, `unsigned int` | `i32`, `u32` |
/// | `'l'`, `'L'` | `long`, `unsigned long` | `i64`, `u64` |
/// | `'q'`, `'Q'` | `long long`, `unsigned long long` | `i64`, `u64` |
/// | `'f'`, `'d'` | `float`, `double` | `f32`, `f64` |
///
/// Fixed-size arrays of these (`[f64; 3]`) are `Pod` too, and so may be your own
/// `#[repr(C)]` structs (see Safety).
///
/// # Safety
///
/// Implement only for types that are plain data:
///
/// * every bit pattern is a valid value (another process may write any bytes; so not
///   `bool`, `char`, enums or references);
/// * no pointers, references or file descriptors (they mean nothing in another
///   process), so no `Box`, `Vec`, `String`;
/// * `Copy`, with a stable layout: primitives, arrays of them, or `#[repr(C)]` structs
///   of them without padding whose contents matter;
/// * alignment at most 64 bytes.
///
/// # Examples
///
/// ```
/// use multiprocess::{Pod, Value};
///
/// /// A point as a C struct: two `'d'`s.
/// #[derive(Debug, Clone, Copy, PartialEq)]
/// #[repr(C)]
/// struct Point {
///     x: f64,
///     y: f64,
/// }
/// // SAFETY: `repr(C)`, two f64 and no padding: any bit pattern is a valid `Point`.
/// unsafe impl Pod for Point {}
///
/// let p = Value::new(Point { x: 1.0, y: 2.0 })?;
/// p.lock().x += 1.0;
/// assert_eq!(p.get(), Point { x: 2.0, y: 2.0 });
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub unsafe trait Pod: Copy + Send + Sync + 'static {}

macro_rules! pod {
    ($($t:ty),*) => { $(
        // SAFETY: a primitive number: any bit pattern is valid, no pointers.
        unsafe impl Pod for $t {}
    )* };
}
pod!(
    i8, u8, i16, u16, i32, u32, i64, u64, i128, u128, isize, usize, f32, f64
);

// SAFETY: an array of plain data is plain data.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}
