//! [`Value`], [`Array`], [`RawValue`], [`RawArray`]: plain data in an anonymous
//! shared segment (see the module docs of `memory` for the design).

// Raw access to shared memory; every block states its `SAFETY` argument.
#![allow(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::pod::Pod;
use crate::error::{Error, ErrorKind, Result};
use crate::sync::raw;
use crate::sync::segment::Segment;
use crate::wire::codec;

/// Where the data starts in a segment (room for the lock and header words, and the
/// lock's sleeper words on a cache line of their own).
const DATA: usize = 128;
/// The 64-bit lock word (`word64` index: bytes 0..8).
const W_LOCK: usize = 0;
// 32-bit word indices, after the lock word.
const W_RAW: usize = 2;
const W_LEN: usize = 3;
/// The lock's sleeper count, then its sleepers' futex word (17): on the second cache
/// line, which only sleepers write, so that a release's look at it costs no transfer
/// of the lock word's line, which a contender may have just taken.
const W_SLEEPERS: usize = 16;

fn segment_for<T: Pod>(name: &str, n: usize, raw: bool) -> Result<Segment> {
    if std::mem::align_of::<T>() > DATA {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "Pod types must have an alignment of at most 64",
        ));
    }
    let bytes = n
        .checked_mul(std::mem::size_of::<T>())
        .and_then(|b| b.checked_add(DATA))
        .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "shared array too large"))?;
    let seg = Segment::new(name, bytes)?;
    seg.word(W_RAW).store(raw as u32, SeqCst);
    seg.word(W_LEN).store(
        u32::try_from(n).map_err(|_| Error::new(ErrorKind::InvalidInput, "too many elements"))?,
        SeqCst,
    );
    Ok(seg)
}

fn data<T>(seg: &Segment) -> *mut T {
    // The segment is page-aligned and DATA is a multiple of any Pod's alignment.
    seg.as_ptr().wrapping_add(DATA).cast()
}

/// The widest access at `addr` that is aligned and fits in `left` bytes: 8, 4, 2 or 1.
/// It depends only on the address and the length, so every process splits the same
/// element into the same accesses.
fn chunk(addr: usize, left: usize) -> usize {
    [8, 4, 2]
        .into_iter()
        .find(|&w| addr.is_multiple_of(w) && left >= w)
        .unwrap_or(1)
}

/// Reads the `T` at `src`, which other threads and processes may write meanwhile.
///
/// Every byte is read by a relaxed atomic load (a whole aligned word where it can), so
/// a concurrent write is not a data race; but the copy is not atomic as a whole: it
/// may mix bytes from before and after a write (any mix is a valid `T`: `Pod`).
///
/// # Safety
///
/// `src` is valid for reads of a `T`, aligned, and only ever accessed with these racy
/// copies (or by a single owner with no racy copy in flight).
unsafe fn load_racy<T: Pod>(src: *const T) -> T {
    use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering::Relaxed};
    let mut out = std::mem::MaybeUninit::<T>::uninit();
    let dst = out.as_mut_ptr().cast::<u8>();
    let src = src.cast::<u8>().cast_mut();
    let n = std::mem::size_of::<T>();
    let mut i = 0;
    while i < n {
        // SAFETY: `i < n`, so both pointers stay inside their `T`; the chunk is aligned
        // for its atomic type and fits (see `chunk`); the caller's contract makes the
        // atomic access legitimate.
        unsafe {
            let p = src.add(i);
            let w = chunk(p as usize, n - i);
            let d = dst.add(i);
            match w {
                8 => d
                    .cast::<u64>()
                    .write_unaligned(AtomicU64::from_ptr(p.cast()).load(Relaxed)),
                4 => d
                    .cast::<u32>()
                    .write_unaligned(AtomicU32::from_ptr(p.cast()).load(Relaxed)),
                2 => d
                    .cast::<u16>()
                    .write_unaligned(AtomicU16::from_ptr(p.cast()).load(Relaxed)),
                _ => d.write(AtomicU8::from_ptr(p).load(Relaxed)),
            }
            i += w;
        }
    }
    // SAFETY: every one of the `n` bytes was written above.
    unsafe { out.assume_init() }
}

/// Writes `x` to `dst`, which other threads and processes may read or write meanwhile:
/// relaxed atomic stores, as [`load_racy`] reads.
///
/// # Safety
///
/// `dst` is valid for writes of a `T`, aligned, and only ever accessed with these
/// racy copies.
unsafe fn store_racy<T: Pod>(dst: *mut T, x: T) {
    use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering::Relaxed};
    let src = (&raw const x).cast::<u8>();
    let dst = dst.cast::<u8>();
    let n = std::mem::size_of::<T>();
    let mut i = 0;
    while i < n {
        // SAFETY: as in `load_racy`.
        unsafe {
            let p = dst.add(i);
            let w = chunk(p as usize, n - i);
            let s = src.add(i);
            match w {
                8 => AtomicU64::from_ptr(p.cast()).store(s.cast::<u64>().read_unaligned(), Relaxed),
                4 => AtomicU32::from_ptr(p.cast()).store(s.cast::<u32>().read_unaligned(), Relaxed),
                2 => AtomicU16::from_ptr(p.cast()).store(s.cast::<u16>().read_unaligned(), Relaxed),
                _ => AtomicU8::from_ptr(p).store(s.read(), Relaxed),
            }
            i += w;
        }
    }
}

/// A lock held on a shared value or array; dereferences to the data.
pub struct SharedGuard<'a, T: ?Sized> {
    seg: &'a Segment,
    ptr: *mut T,
    owner_died: bool,
    _t: PhantomData<&'a mut T>,
}

impl<T: ?Sized> SharedGuard<'_, T> {
    /// `true` if the previous holder died holding the lock: the data may be half
    /// updated.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = multiprocess::Value::new(0u32)?;
    /// assert!(!v.lock().owner_died());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }
}

impl<T: ?Sized> Deref for SharedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        #[allow(unsafe_code)]
        // SAFETY: `ptr` points into the live segment, properly aligned and initialised
        // (zeroed or written), and the lock is held: no other holder writes it.
        unsafe {
            &*self.ptr
        }
    }
}

impl<T: ?Sized> DerefMut for SharedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        #[allow(unsafe_code)]
        // SAFETY: as in `deref`; the lock makes this the only writer.
        unsafe {
            &mut *self.ptr
        }
    }
}

impl<T: ?Sized> Drop for SharedGuard<'_, T> {
    fn drop(&mut self) {
        raw::release(self.seg.raw_lock(W_LOCK, W_SLEEPERS));
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for SharedGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

fn lock_seg(seg: &Segment) -> bool {
    let lock = seg.raw_lock(W_LOCK, W_SLEEPERS);
    let me = raw::Owner::me();
    match raw::try_acquire(lock.word, me) {
        Some(a) => a.owner_died,
        // The segment, not the lock's words: a `RawLock` argument would be written to
        // the stack before every compare-and-swap (see `raw::acquire`).
        None => lock_seg_contended(seg, me),
    }
}

/// The lock is taken: wait for it, unless this very thread holds it, which would wait
/// for ever. Python's `get_lock()` is re-entrant, so `with v.get_lock(): v.value += 1`
/// works there; its twin here, `v.get()` while a guard of `v.lock()` lives, is a
/// mistake to report, not a hang.
#[cold]
#[inline(never)]
fn lock_seg_contended(seg: &Segment, me: raw::Owner) -> bool {
    let lock = seg.raw_lock(W_LOCK, W_SLEEPERS);
    assert!(
        raw::owner(lock.word) != Some(me),
        "this thread already holds this shared value's lock (a guard from `lock()` is \
         alive): read and write through that guard, not with get/set (the lock is not \
         re-entrant)"
    );
    raw::acquire(lock, me, None)
        .expect("no deadline")
        .owner_died
}

/// A value in shared memory, with a lock: Python's `multiprocessing.Value`. For one
/// without a lock, see [`RawValue`].
///
/// Every access takes the lock: [`get`](Value::get) and [`set`](Value::set) each for
/// one copy, [`lock`](Value::lock) for as long as its guard lives (for a
/// read-modify-write such as `*v.lock() += 1`). The lock is not re-entrant: while a
/// guard lives, go through it; `get` or `set` on the same thread panics (it would wait
/// for ever), where Python's re-entrant `get_lock()` lets `v.value` through.
///
/// # Examples
///
/// In process 1 and process 2:
///
/// ```
/// use multiprocess::{Process, Value};
///
/// fn child(v: Value<f64>) {
///     v.set(3.1415927);
/// }
///
/// multiprocess::init();
/// let v = Value::new(0.0f64)?;
/// let mut p = Process::new(child, v.clone());
/// p.start()?;
/// p.join()?;
/// assert_eq!(v.get(), 3.1415927);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub struct Value<T: Pod> {
    seg: Arc<Segment>,
    _t: PhantomData<T>,
}

/// A value in shared memory without a lock: Python's `multiprocessing.RawValue`.
///
/// [`get`](RawValue::get) and [`set`](RawValue::set) take no lock. Each is one copy
/// of the value, made of relaxed atomic accesses of a machine word or less: never
/// undefined behaviour, whatever other threads and processes do meanwhile, but not
/// atomic as a whole. A `get` racing with a `set` of a type wider than a word (`u128`,
/// `[f64; 2]`, a struct) may see part of the old value and part of the new one, and a
/// read-modify-write (`v.set(v.get() + 1)`) loses updates made in between. This is
/// Python's `RawValue` behaviour; guard it with your own [`Lock`](crate::Lock), or use
/// [`Value`]. There is no `lock()`: a guard's `&mut T` would alias unlocked `set`s.
///
/// # Examples
///
/// ```
/// use multiprocess::{Lock, RawValue};
///
/// fn add((n, lock, k): (RawValue<u64>, Lock, u64)) {
///     let _g = lock.acquire(); // our lock makes the read-modify-write whole
///     n.set(n.get() + k);
/// }
///
/// multiprocess::init();
/// let n = RawValue::new(1u64)?;
/// let lock = Lock::new()?;
/// let mut p = multiprocess::Process::new(add, (n.clone(), lock.clone(), 41));
/// p.start()?;
/// p.join()?;
/// assert_eq!(n.get(), 42);
/// # Ok::<(), multiprocess::Error>(())
/// ```
///
/// A raw value has no lock to take:
///
/// ```compile_fail
/// let v = multiprocess::RawValue::new(0u32).unwrap();
/// *v.lock() += 1; // error: no method named `lock`
/// ```
pub struct RawValue<T: Pod> {
    seg: Arc<Segment>,
    _t: PhantomData<T>,
}

/// An array in shared memory, with a lock: Python's `multiprocessing.Array`. For one
/// without a lock, see [`RawArray`]. As for [`Value`], the lock is not re-entrant:
/// while a guard of [`lock`](Array::lock) lives, the other accessors panic on the same
/// thread.
///
/// # Examples
///
/// In process 1 and process 2:
///
/// ```
/// use multiprocess::{Array, Process};
///
/// fn negate(a: Array<i32>) {
///     for x in a.lock().iter_mut() {
///         *x = -*x;
///     }
/// }
///
/// multiprocess::init();
/// let a = Array::from_slice(&[0, 1, 2, 3])?;
/// let mut p = Process::new(negate, a.clone());
/// p.start()?;
/// p.join()?;
/// assert_eq!(a.to_vec(), vec![0, -1, -2, -3]);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub struct Array<T: Pod> {
    seg: Arc<Segment>,
    _t: PhantomData<T>,
}

/// An array in shared memory without a lock: Python's `multiprocessing.RawArray`.
///
/// Element accesses are as [`RawValue`]'s: each [`get`](RawArray::get) or
/// [`set`](RawArray::set) copies one element with relaxed atomic accesses of a word
/// or less (no undefined behaviour, but an element wider than a word may be seen half
/// written), and [`to_vec`](RawArray::to_vec) copies element by element, so it is no
/// snapshot of the whole array while others write. No `lock()`.
///
/// # Examples
///
/// In process 1 and process 2 (each child fills its own half: no lock needed):
///
/// ```
/// use multiprocess::{Process, RawArray};
///
/// fn fill((a, from, to): (RawArray<u32>, usize, usize)) {
///     for i in from..to {
///         a.set(i, i as u32 * 10).unwrap();
///     }
/// }
///
/// multiprocess::init();
/// let a = RawArray::<u32>::zeroed(4)?;
/// let mut p1 = Process::new(fill, (a.clone(), 0, 2));
/// let mut p2 = Process::new(fill, (a.clone(), 2, 4));
/// p1.start()?;
/// p2.start()?;
/// p1.join()?;
/// p2.join()?;
/// assert_eq!(a.to_vec(), vec![0, 10, 20, 30]);
/// # Ok::<(), multiprocess::Error>(())
/// ```
pub struct RawArray<T: Pod> {
    seg: Arc<Segment>,
    _t: PhantomData<T>,
}

macro_rules! common_impls {
    ($t:ident) => {
        impl<T: Pod> Clone for $t<T> {
            fn clone(&self) -> Self {
                $t {
                    seg: self.seg.clone(),
                    _t: PhantomData,
                }
            }
        }
    };
}
common_impls!(Value);
common_impls!(RawValue);
common_impls!(Array);
common_impls!(RawArray);

impl<T: Pod + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value").field("value", &self.get()).finish()
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawValue")
            .field("value", &self.get())
            .finish()
    }
}

impl<T: Pod> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array").field("len", &self.len()).finish()
    }
}

impl<T: Pod> fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawArray")
            .field("len", &self.len())
            .finish()
    }
}

/// A fresh segment holding `src` (or `n` zeroes), for any flavour.
fn make_segment<T: Pod>(name: &str, src: Option<&[T]>, n: usize, raw: bool) -> Result<Segment> {
    let seg = segment_for::<T>(name, n, raw)?;
    if let Some(src) = src {
        debug_assert_eq!(src.len(), n);
        #[allow(unsafe_code)]
        // SAFETY: the data area holds `n == src.len()` elements, is aligned, and is not
        // yet shared; `src` cannot overlap the fresh mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), data::<T>(&seg), n)
        };
    }
    Ok(seg)
}

impl<T: Pod> Value<T> {
    /// A shared value with a lock (Python's `Value(typecode, x)`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = multiprocess::Value::new(5i32)?;
    /// assert_eq!(v.get(), 5);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn new(x: T) -> Result<Self> {
        Ok(Value {
            seg: Arc::new(make_segment("multiprocess-value", Some(&[x]), 1, false)?),
            _t: PhantomData,
        })
    }

    /// Reads the value, under the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiprocess::Value::new(-3i16)?.get(), -3);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn get(&self) -> T {
        *self.lock()
    }

    /// Writes the value, under the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = multiprocess::Value::new(0u64)?;
    /// v.set(9);
    /// assert_eq!(v.get(), 9);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn set(&self, x: T) {
        *self.lock() = x;
    }

    /// Takes the value's lock (Python's `get_lock()`); the guard dereferences to the
    /// value, so `*v.lock() += 1` is an atomic increment across processes.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = multiprocess::Value::new(1i64)?;
    /// *v.lock() += 1;
    /// assert_eq!(v.get(), 2);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    #[doc(alias = "get_lock")]
    pub fn lock(&self) -> SharedGuard<'_, T> {
        let owner_died = lock_seg(&self.seg);
        SharedGuard {
            seg: &self.seg,
            ptr: data::<T>(&self.seg),
            owner_died,
            _t: PhantomData,
        }
    }
}

impl<T: Pod> RawValue<T> {
    /// A shared value without a lock (Python's `RawValue(typecode, x)`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = multiprocess::RawValue::new(1u8)?;
    /// v.set(2);
    /// assert_eq!(v.get(), 2);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn new(x: T) -> Result<Self> {
        Ok(RawValue {
            seg: Arc::new(make_segment("multiprocess-rawvalue", Some(&[x]), 1, true)?),
            _t: PhantomData,
        })
    }

    /// Reads the value, without a lock (see the type's docs: may be torn by a
    /// concurrent [`set`](RawValue::set)).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiprocess::RawValue::new(-3i16)?.get(), -3);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn get(&self) -> T {
        #[allow(unsafe_code)]
        // SAFETY: in bounds and aligned; a raw segment is only accessed by racy copies.
        unsafe {
            load_racy(data::<T>(&self.seg))
        }
    }

    /// Writes the value, without a lock (see the type's docs).
    ///
    /// # Examples
    ///
    /// ```
    /// let v = multiprocess::RawValue::new(0u64)?;
    /// v.set(9);
    /// assert_eq!(v.get(), 9);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn set(&self, x: T) {
        #[allow(unsafe_code)]
        // SAFETY: in bounds and aligned; a raw segment is only accessed by racy copies.
        unsafe {
            store_racy(data::<T>(&self.seg), x)
        }
    }
}

fn len_of(seg: &Segment) -> usize {
    seg.word(W_LEN).load(SeqCst) as usize
}

fn index_error(i: usize, len: usize) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("index {i} out of range for an array of {len}"),
    )
}

impl<T: Pod> Array<T> {
    fn make(src: Option<&[T]>, n: usize) -> Result<Self> {
        Ok(Array {
            seg: Arc::new(make_segment("multiprocess-array", src, n, false)?),
            _t: PhantomData,
        })
    }

    /// A locked shared array holding a copy of `src` (Python's `Array('i', [...])`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiprocess::Array::from_slice(&[1.5f64, 2.5])?;
    /// assert_eq!(a.get(1), Some(2.5));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn from_slice(src: &[T]) -> Result<Self> {
        Self::make(Some(src), src.len())
    }

    /// A locked shared array of `n` zeroed elements (Python's `Array('i', n)`).
    ///
    /// # Errors
    ///
    /// As [`from_slice`](Array::from_slice).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiprocess::Array::<u16>::zeroed(10)?;
    /// assert_eq!(a.to_vec(), vec![0; 10]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn zeroed(n: usize) -> Result<Self> {
        Self::make(None, n)
    }

    /// The number of elements.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiprocess::Array::<u8>::zeroed(4)?.len(), 4);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        len_of(&self.seg)
    }

    /// Is it empty?
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(multiprocess::Array::<u8>::zeroed(0)?.is_empty());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the array's lock; the guard dereferences to `[T]` (index, slice, iterate).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiprocess::Array::from_slice(&[3, 1, 2])?;
    /// a.lock().sort();
    /// assert_eq!(&a.lock()[..2], &[1, 2]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    #[doc(alias = "get_lock")]
    pub fn lock(&self) -> SharedGuard<'_, [T]> {
        let owner_died = lock_seg(&self.seg);
        SharedGuard {
            seg: &self.seg,
            ptr: std::ptr::slice_from_raw_parts_mut(data::<T>(&self.seg), self.len()),
            owner_died,
            _t: PhantomData,
        }
    }

    /// Element `i` (`None` past the end), under the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiprocess::Array::from_slice(&[7u8])?;
    /// assert_eq!((a.get(0), a.get(1)), (Some(7), None));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn get(&self, i: usize) -> Option<T> {
        self.lock().get(i).copied()
    }

    /// Sets element `i`, under the lock.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if `i` is out of range (Python's `IndexError`).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiprocess::Array::<i32>::zeroed(2)?;
    /// a.set(1, 5)?;
    /// assert!(a.set(2, 5).is_err());
    /// assert_eq!(a.to_vec(), vec![0, 5]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn set(&self, i: usize, x: T) -> Result<()> {
        let mut g = self.lock();
        let len = g.len();
        *g.get_mut(i).ok_or_else(|| index_error(i, len))? = x;
        Ok(())
    }

    /// A copy of the elements, taken under the lock (a consistent snapshot).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiprocess::Array::from_slice(&[1u8, 2])?.to_vec(), vec![1, 2]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        self.lock().to_vec()
    }
}

impl<T: Pod> RawArray<T> {
    fn make(src: Option<&[T]>, n: usize) -> Result<Self> {
        Ok(RawArray {
            seg: Arc::new(make_segment("multiprocess-rawarray", src, n, true)?),
            _t: PhantomData,
        })
    }

    /// A shared array without a lock holding a copy of `src` (Python's
    /// `RawArray('i', [...])`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if shared memory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiprocess::RawArray::from_slice(&[1u8, 2])?;
    /// assert_eq!(a.get(1), Some(2));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn from_slice(src: &[T]) -> Result<Self> {
        Self::make(Some(src), src.len())
    }

    /// A shared array without a lock of `n` zeroed elements (Python's
    /// `RawArray('i', n)`).
    ///
    /// # Errors
    ///
    /// As [`from_slice`](RawArray::from_slice).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiprocess::RawArray::<i64>::zeroed(3)?.to_vec(), vec![0; 3]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn zeroed(n: usize) -> Result<Self> {
        Self::make(None, n)
    }

    /// The number of elements.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiprocess::RawArray::<u8>::zeroed(4)?.len(), 4);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        len_of(&self.seg)
    }

    /// Is it empty?
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(multiprocess::RawArray::<u8>::zeroed(0)?.is_empty());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` (`None` past the end), without a lock (see the type's docs).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiprocess::RawArray::from_slice(&[7u8])?;
    /// assert_eq!((a.get(0), a.get(1)), (Some(7), None));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn get(&self, i: usize) -> Option<T> {
        if i >= self.len() {
            return None;
        }
        #[allow(unsafe_code)]
        // SAFETY: `i` is in bounds, the element aligned; a raw segment is only accessed
        // by racy copies.
        Some(unsafe { load_racy(data::<T>(&self.seg).add(i)) })
    }

    /// Sets element `i`, without a lock (see the type's docs).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if `i` is out of range (Python's `IndexError`).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiprocess::RawArray::<i32>::zeroed(2)?;
    /// a.set(1, 5)?;
    /// assert!(a.set(2, 5).is_err());
    /// assert_eq!(a.to_vec(), vec![0, 5]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn set(&self, i: usize, x: T) -> Result<()> {
        let len = self.len();
        if i >= len {
            return Err(index_error(i, len));
        }
        #[allow(unsafe_code)]
        // SAFETY: as in `get`.
        unsafe {
            store_racy(data::<T>(&self.seg).add(i), x)
        };
        Ok(())
    }

    /// A copy of the elements, one element at a time (no snapshot while others write).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiprocess::RawArray::from_slice(&[1u8, 2])?.to_vec(), vec![1, 2]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        (0..self.len()).filter_map(|i| self.get(i)).collect()
    }
}

/// Checks a segment received for a `$t<T>`: the flavour matches, and the data fits
/// (exactly one element for a value).
fn check_received<T: Pod>(
    seg: &Segment,
    size: u32,
    raw: bool,
    value: bool,
) -> std::result::Result<(), String> {
    if size as usize != std::mem::size_of::<T>() {
        return Err("shared memory element size differs from the receiver's type".into());
    }
    if seg.len() < DATA {
        return Err("shared memory segment smaller than its header".into());
    }
    let is_raw = seg.word(W_RAW).load(SeqCst) != 0;
    if is_raw != raw {
        let (sent, want) = if is_raw {
            ("a raw (lock-free) segment", "a locked Value or Array")
        } else {
            ("a locked segment", "a RawValue or RawArray")
        };
        return Err(format!("received {sent} as {want}"));
    }
    let len = len_of(seg);
    if value && len != 1 {
        return Err(format!(
            "received a shared array of {len} elements as a single value"
        ));
    }
    let need = len
        .checked_mul(std::mem::size_of::<T>())
        .and_then(|b| b.checked_add(DATA));
    if need.is_none_or(|n| n > seg.len()) {
        return Err("shared memory segment smaller than its header says".into());
    }
    Ok(())
}

macro_rules! serde_shared {
    ($t:ident, raw: $raw:expr, value: $value:expr) => {
        impl<T: Pod> Serialize for $t<T> {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                (&*self.seg, std::mem::size_of::<T>() as u32).serialize(s)
            }
        }
        impl<'de, T: Pod> Deserialize<'de> for $t<T> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let (seg, size) = <(Segment, u32)>::deserialize(d)?;
                check_received::<T>(&seg, size, $raw, $value).map_err(codec::de_error)?;
                Ok($t {
                    seg: Arc::new(seg),
                    _t: PhantomData,
                })
            }
        }
    };
}

serde_shared!(Value, raw: false, value: true);
serde_shared!(RawValue, raw: true, value: true);
serde_shared!(Array, raw: false, value: false);
serde_shared!(RawArray, raw: true, value: false);
