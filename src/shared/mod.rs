//! Shared values and arrays: Python's `Value`, `Array`, `RawValue` and `RawArray`.
//!
//! A `Value<T>` or `Array<T>` is a handle on an anonymous shared segment (memfd): a
//! robust lock word, then the data at offset 64. Clone it to share between threads,
//! pass it in a child's args or send it through a connection to share between
//! processes. Nothing is left in `/dev/shm`.
//!
//! Python's typecodes map to Rust types:
//!
//! | Python | Rust |
//! |---|---|
//! | `'b'`, `'B'` | `i8`, `u8` |
//! | `'h'`, `'H'` | `i16`, `u16` |
//! | `'i'`, `'I'` | `i32`, `u32` |
//! | `'l'`, `'q'`, `'L'`, `'Q'` | `i64`, `u64` |
//! | `'f'`, `'d'` | `f32`, `f64` |

// Raw access to shared memory; every block states its `SAFETY` argument.
#![allow(unsafe_code)]

mod memory;

pub use memory::SharedMemory;

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, ErrorKind, Result};
use crate::sync::raw;
use crate::sync::segment::Segment;
use crate::sys;

/// Types that may live in shared memory and be read and written by several processes.
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

/// Where the data starts in a segment (room for the lock and header words).
const DATA: usize = 64;
const W_LOCK: usize = 0;
const W_RAW: usize = 1;
const W_LEN: usize = 2;

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
        raw::release(self.seg.word(W_LOCK));
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for SharedGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

fn lock_seg(seg: &Segment) -> bool {
    raw::acquire(seg.word(W_LOCK), sys::process::gettid(), None)
        .expect("no deadline")
        .owner_died
}

/// A value in shared memory: Python's `multiprocessing.Value` (and, made with
/// [`raw`](Value::raw), `RawValue`).
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

impl<T: Pod> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            seg: self.seg.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value")
            .field("value", &self.get())
            .field("raw", &self.is_raw())
            .finish()
    }
}

impl<T: Pod> Value<T> {
    fn make(x: T, raw: bool) -> Result<Self> {
        let seg = segment_for::<T>("multiprocess-value", 1, raw)?;
        #[allow(unsafe_code)]
        // SAFETY: the data area is in bounds, aligned, and not yet shared.
        unsafe {
            data::<T>(&seg).write(x)
        };
        Ok(Value {
            seg: Arc::new(seg),
            _t: PhantomData,
        })
    }

    /// A shared value with a lock: `get` and `set` take it (Python's
    /// `Value(typecode, x)`).
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
        Self::make(x, false)
    }

    /// A shared value whose `get`/`set` take no lock (Python's `RawValue`): each is a
    /// single volatile read or write, and a read-modify-write of several steps races.
    /// [`lock`](Value::lock) still works for callers that agree to use it.
    ///
    /// # Errors
    ///
    /// As [`new`](Value::new).
    ///
    /// # Examples
    ///
    /// ```
    /// let v = multiprocess::Value::raw(1u8)?;
    /// v.set(2);
    /// assert_eq!(v.get(), 2);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn raw(x: T) -> Result<Self> {
        Self::make(x, true)
    }

    /// Was it made with [`raw`](Value::raw)?
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(multiprocess::Value::raw(0u8)?.is_raw());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn is_raw(&self) -> bool {
        self.seg.word(W_RAW).load(SeqCst) != 0
    }

    /// Reads the value (under the lock unless raw).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiprocess::Value::new(-3i16)?.get(), -3);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn get(&self) -> T {
        if self.is_raw() {
            #[allow(unsafe_code)]
            // SAFETY: in bounds and aligned; any bit pattern is a valid `T` (Pod).
            return unsafe { data::<T>(&self.seg).read_volatile() };
        }
        *self.lock()
    }

    /// Writes the value (under the lock unless raw).
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
        if self.is_raw() {
            #[allow(unsafe_code)]
            // SAFETY: in bounds and aligned; writing plain data.
            unsafe {
                data::<T>(&self.seg).write_volatile(x)
            };
            return;
        }
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

/// An array in shared memory: Python's `multiprocessing.Array` (and, made with the
/// `raw_` constructors, `RawArray`).
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

impl<T: Pod> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            seg: self.seg.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array")
            .field("len", &self.len())
            .field("raw", &self.is_raw())
            .finish()
    }
}

impl<T: Pod> Array<T> {
    fn make(src: Option<&[T]>, n: usize, raw: bool) -> Result<Self> {
        let seg = segment_for::<T>("multiprocess-array", n, raw)?;
        if let Some(src) = src {
            #[allow(unsafe_code)]
            // SAFETY: the data area holds `n == src.len()` elements, is aligned, and is
            // not yet shared; `src` cannot overlap the fresh mapping.
            unsafe {
                std::ptr::copy_nonoverlapping(src.as_ptr(), data::<T>(&seg), n)
            };
        }
        Ok(Array {
            seg: Arc::new(seg),
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
        Self::make(Some(src), src.len(), false)
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
        Self::make(None, n, false)
    }

    /// As [`from_slice`](Array::from_slice) without a lock for `get`/`set`/`to_vec`
    /// (Python's `RawArray`).
    ///
    /// # Errors
    ///
    /// As [`from_slice`](Array::from_slice).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiprocess::Array::raw_from_slice(&[1u8, 2])?;
    /// assert!(a.is_raw());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn raw_from_slice(src: &[T]) -> Result<Self> {
        Self::make(Some(src), src.len(), true)
    }

    /// As [`zeroed`](Array::zeroed) without a lock for `get`/`set`/`to_vec`.
    ///
    /// # Errors
    ///
    /// As [`from_slice`](Array::from_slice).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiprocess::Array::<i64>::raw_zeroed(3)?.len(), 3);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn raw_zeroed(n: usize) -> Result<Self> {
        Self::make(None, n, true)
    }

    /// Was it made with a `raw_` constructor?
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!multiprocess::Array::<u8>::zeroed(1)?.is_raw());
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn is_raw(&self) -> bool {
        self.seg.word(W_RAW).load(SeqCst) != 0
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
        self.seg.word(W_LEN).load(SeqCst) as usize
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

    fn slice_ptr(&self) -> *mut [T] {
        std::ptr::slice_from_raw_parts_mut(data::<T>(&self.seg), self.len())
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
            ptr: self.slice_ptr(),
            owner_died,
            _t: PhantomData,
        }
    }

    /// Element `i` (`None` past the end), under the lock unless raw.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiprocess::Array::from_slice(&[7u8])?;
    /// assert_eq!((a.get(0), a.get(1)), (Some(7), None));
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn get(&self, i: usize) -> Option<T> {
        if i >= self.len() {
            return None;
        }
        if self.is_raw() {
            #[allow(unsafe_code)]
            // SAFETY: `i` is in bounds; any bit pattern is a valid `T`.
            return Some(unsafe { data::<T>(&self.seg).add(i).read_volatile() });
        }
        Some(self.lock()[i])
    }

    /// Sets element `i`, under the lock unless raw.
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
        if i >= self.len() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("index {i} out of range for an array of {}", self.len()),
            ));
        }
        if self.is_raw() {
            #[allow(unsafe_code)]
            // SAFETY: `i` is in bounds; writing plain data.
            unsafe {
                data::<T>(&self.seg).add(i).write_volatile(x)
            };
        } else {
            self.lock()[i] = x;
        }
        Ok(())
    }

    /// A copy of the elements (under the lock unless raw).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(multiprocess::Array::from_slice(&[1u8, 2])?.to_vec(), vec![1, 2]);
    /// # Ok::<(), multiprocess::Error>(())
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        if self.is_raw() {
            (0..self.len()).filter_map(|i| self.get(i)).collect()
        } else {
            self.lock().to_vec()
        }
    }
}

macro_rules! serde_shared {
    ($t:ident) => {
        impl<T: Pod> Serialize for $t<T> {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                (&*self.seg, std::mem::size_of::<T>() as u32).serialize(s)
            }
        }
        impl<'de, T: Pod> Deserialize<'de> for $t<T> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let (seg, size) = <(Segment, u32)>::deserialize(d)?;
                if size as usize != std::mem::size_of::<T>() {
                    return Err(serde::de::Error::custom(
                        "shared memory element size differs from the receiver's type",
                    ));
                }
                let len = seg.word(W_LEN).load(SeqCst) as usize;
                if DATA + len * std::mem::size_of::<T>() > seg.len() {
                    return Err(serde::de::Error::custom(
                        "shared memory segment smaller than its header says",
                    ));
                }
                Ok($t {
                    seg: Arc::new(seg),
                    _t: PhantomData,
                })
            }
        }
    };
}

serde_shared!(Value);
serde_shared!(Array);
