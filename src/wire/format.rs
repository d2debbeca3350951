//! The wire format: serde's data model in bincode 1.3's fixed-width little-endian
//! encoding, byte for byte, written and read by this crate.
//!
//! | serde type | bytes |
//! |---|---|
//! | `bool` | one byte, 0 or 1 (anything else is refused) |
//! | `u8`..`u128`, `i8`..`i128`, `f32`, `f64` | their little-endian bytes (IEEE bits for floats) |
//! | `char` | its UTF-8 bytes, no length |
//! | `str`, bytes | length as `u64`, then the bytes |
//! | `Option` | byte 0 (`None`) or byte 1 then the value (anything else is refused) |
//! | unit, unit struct | nothing |
//! | newtype struct | the inner value |
//! | tuple, tuple struct, struct | the fields in order, no length |
//! | sequence, map | length as `u64`, then the elements (keys and values alternating) |
//! | enum variant | variant index as `u32`, then the fields as above |
//!
//! This is what `bincode::DefaultOptions::new().with_fixint_encoding()
//! .with_little_endian()` writes (bincode 1.3.3's `ser/mod.rs` and `de/mod.rs`), and
//! the crate's unit tests compare the two byte for byte. The format is not
//! self-describing: [`deserialize_any`](serde::Deserializer::deserialize_any) (and `deserialize_identifier`,
//! `deserialize_ignored_any`) are refused.
//!
//! # Block copies
//!
//! serde hands sequences over element by element. Two fast paths move a sequence of
//! plain numbers (`u8`, `i8`, `u16`, `i16`, `u32`, `i32`, `u64`, `i64`, `f32`, `f64`)
//! as one copy instead, producing and accepting exactly the same bytes:
//!
//! * **Encode.** serde's `Serialize` for `[T]` and `Vec<T>` calls
//!   [`collect_seq`](serde::Serializer::collect_seq) with `&[T]` / `&Vec<T>`; when that iterator's type is
//!   one of those for a plain `P`, the length and the slice's memory are written.
//! * **Decode.** When [`deserialize_seq`](serde::Deserializer::deserialize_seq) is called with serde's own
//!   visitor for `Vec<P>` (alone or wrapped by [`Limited`](super::limit::Limited)), the
//!   `n * size_of::<P>()` bytes are checked against the bytes left and copied into a
//!   new `Vec<P>`, without calling the visitor. Which visitor types are serde's is
//!   learnt by running `Vec::<P>::deserialize` against a probe deserializer that
//!   records the type of the visitor it is given: a hand-written
//!   visitor whose `Value` is `Vec<P>` is a different type and goes through the
//!   visitor, element by element.
//!
//! Both are for little-endian targets only (where a plain number's memory is its wire
//! encoding); elsewhere every sequence goes element by element.

use std::any::TypeId;
use std::fmt;
use std::mem::{ManuallyDrop, size_of, size_of_val};

use serde::de::{self, Deserialize as _, DeserializeSeed, IntoDeserializer as _, Visitor};
use serde::ser::{self, Serialize};

use super::limit::{Budget, Limited};

/// An encoding or decoding error: a message.
#[derive(Debug)]
pub(crate) struct Error(String);

impl Error {
    fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a value that needs a self-describing format can go instead.
const SELF_DESCRIBING_HINT: &str = "the wire format is not self-describing (bincode 1 \
    layout), so values that decode by inspecting the input (`serde_json::Value`, \
    `#[serde(untagged)]` or internally tagged enums, `#[serde(flatten)]` fields, \
    skipped fields read with `IgnoredAny`) cannot be decoded from it; send such a value \
    inside a self-describing wrapper, e.g. as a JSON string \
    (`multiprocess::Json<T>` with the `json` feature, or `serde_json::to_string`)";

// ---------------------------------------------------------------------------------
// Plain numbers.

/// A number type whose sequences travel as one block.
///
/// # Safety
///
/// Implementors are plain numbers: no padding, no pointers, every bit pattern is a
/// valid value, and on a little-endian target their memory is exactly their encoding
/// in this format (little-endian bytes; IEEE bits for floats).
#[allow(unsafe_code)]
unsafe trait Plain: Copy + 'static + for<'de> de::Deserialize<'de> {}

macro_rules! plain {
    ($($p:ty),*) => {$(
        #[allow(unsafe_code)]
        // SAFETY: a primitive integer or float: no padding, every bit pattern valid,
        // its memory on a little-endian target is its little-endian encoding.
        unsafe impl Plain for $p {}
    )*};
}

plain!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);

/// The memory of `v` as bytes: on a little-endian target, its encoding.
#[allow(unsafe_code)]
fn plain_bytes<P: Plain>(v: &[P]) -> &[u8] {
    // SAFETY: `P: Plain` has no padding, so all `size_of_val(v)` bytes from `v`'s start
    // are initialised; `u8` has alignment 1; the result borrows `v`, so the memory
    // outlives it and is not mutated meanwhile.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), size_of_val(v)) }
}

/// The `P`s whose encoding is `bytes` (a whole number of them), with one copy.
#[allow(unsafe_code)]
fn plain_vec<P: Plain>(bytes: &[u8]) -> Vec<P> {
    let n = bytes.len() / size_of::<P>();
    assert_eq!(n * size_of::<P>(), bytes.len());
    let mut v = Vec::<P>::with_capacity(n);
    // SAFETY: `v` has room for `n` elements, i.e. `bytes.len()` bytes, and is a fresh
    // allocation so it does not overlap `bytes`; after the copy its first `n` elements
    // are initialised, and any bit pattern is a valid `P` (`Plain`).
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr().cast::<u8>(), bytes.len());
        v.set_len(n);
    }
    v
}

/// `t` as a `U`.
///
/// # Safety
///
/// `T` and `U` must be the same type, up to lifetimes, and if they differ in
/// lifetimes the result must not outlive `T`'s.
#[allow(unsafe_code)]
unsafe fn same_type<T, U>(t: T) -> U {
    assert_eq!(size_of::<T>(), size_of::<U>());
    let t = ManuallyDrop::new(t);
    // SAFETY: the caller guarantees `U` is `T` (up to lifetimes it vouches for); `t`
    // is not dropped, so ownership moves to the result exactly once.
    unsafe { std::mem::transmute_copy::<T, U>(&*t) }
}

/// When `value` is a `Vec` of a plain number type (`Vec<u8>`, `Vec<f64>`, ...), its
/// encoding as two parts that need no copy: the length word and the elements' memory
/// (the same bytes as [`encode_into`] writes). A sender hands both to the kernel as
/// they are, where encoding would first copy the elements into a buffer.
#[allow(unsafe_code)]
pub(crate) fn plain_vec_parts<T: ?Sized>(value: &T) -> Option<([u8; 8], &[u8])> {
    macro_rules! plain_vec_of {
        ($($p:ty),*) => {$(
            if typeid::of::<T>() == typeid::of::<Vec<$p>>() {
                // SAFETY: `T` is `Vec<$p>` (equal TypeIds; `Vec<$p>` has no lifetimes),
                // so this is the same reference, and the result borrows `value`.
                let v: &Vec<$p> = unsafe { same_type::<&T, &Vec<$p>>(value) };
                return Some(((v.len() as u64).to_le_bytes(), plain_bytes(v.as_slice())));
            }
        )*};
    }
    if cfg!(target_endian = "little") {
        plain_vec_of!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);
    }
    None
}

/// A deserializer that only records the type of the visitor `deserialize_seq` gets.
struct Probe(Option<TypeId>);

impl<'de> de::Deserializer<'de> for &mut Probe {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(Error(String::new()))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        self.0 = Some(typeid::of::<V>());
        Err(Error(String::new()))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct tuple tuple_struct map struct
        enum identifier ignored_any
    }
}

/// Whether `V` is the visitor serde's `Vec<P>` hands to `deserialize_seq`, directly
/// or through [`Limited`] (lifetimes erased).
///
/// serde's visitor type cannot be named, so this asks serde each time: the probe
/// allocates nothing and, inlined, folds to a comparison of constants. (No cache: a
/// `OnceLock` being filled by another thread at a `fork` would never be filled in
/// the child.)
#[inline]
fn is_vec_visitor<P: Plain, V: ?Sized>() -> bool {
    let mut probe = Probe(None);
    let _ = Vec::<P>::deserialize(&mut probe);
    let plain = probe.0.take();
    let budget = Budget::new(1, 1, 1);
    let _ = Vec::<P>::deserialize(Limited::new(&mut probe, &budget));
    let v = Some(typeid::of::<V>());
    v == plain || v == probe.0
}

// ---------------------------------------------------------------------------------
// Encoding.

/// Appends the encoding of `value` to `out`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    value.serialize(&mut Serializer { out })
}

/// The encoder: appends to a buffer.
pub(crate) struct Serializer<'a> {
    out: &'a mut Vec<u8>,
}

impl Serializer<'_> {
    #[inline(always)]
    fn put<const N: usize>(&mut self, b: [u8; N]) {
        self.out.extend_from_slice(&b);
    }

    #[inline(always)]
    fn len(&mut self, n: usize) {
        self.put((n as u64).to_le_bytes());
    }

    #[inline(always)]
    fn block<P: Plain>(&mut self, v: &[P]) {
        self.len(v.len());
        self.out.extend_from_slice(plain_bytes(v));
    }
}

macro_rules! serialize_le {
    ($($method:ident($ty:ty);)*) => {$(
        #[inline(always)]
        fn $method(self, v: $ty) -> Result<()> {
            self.put(v.to_le_bytes());
            Ok(())
        }
    )*};
}

/// A tuple or struct variant starts with its index; the fields follow.
macro_rules! variant_start {
    ($($method:ident),*) => {$(
        #[inline]
        fn $method(self, _: &'static str, index: u32, _: &'static str, _: usize) -> Result<Self> {
            self.put(index.to_le_bytes());
            Ok(self)
        }
    )*};
}

impl ser::Serializer for &mut Serializer<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    serialize_le! {
        serialize_u16(u16); serialize_u32(u32); serialize_u64(u64); serialize_u128(u128);
        serialize_i8(i8); serialize_i16(i16); serialize_i32(i32); serialize_i64(i64);
        serialize_i128(i128); serialize_f32(f32); serialize_f64(f64);
    }

    #[inline(always)]
    fn serialize_u8(self, v: u8) -> Result<()> {
        self.out.push(v);
        Ok(())
    }

    #[inline(always)]
    fn serialize_bool(self, v: bool) -> Result<()> {
        self.out.push(u8::from(v));
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<()> {
        let mut b = [0; 4];
        self.out.extend_from_slice(v.encode_utf8(&mut b).as_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_str(self, v: &str) -> Result<()> {
        self.serialize_bytes(v.as_bytes())
    }

    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        self.len(v.len());
        self.out.extend_from_slice(v);
        Ok(())
    }

    #[inline]
    fn serialize_none(self) -> Result<()> {
        self.out.push(0);
        Ok(())
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<()> {
        self.out.push(1);
        v.serialize(self)
    }

    #[inline]
    fn serialize_unit(self) -> Result<()> {
        Ok(())
    }

    #[inline]
    fn serialize_unit_struct(self, _: &'static str) -> Result<()> {
        Ok(())
    }

    #[inline]
    fn serialize_unit_variant(self, _: &'static str, index: u32, _: &'static str) -> Result<()> {
        self.put(index.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result<()> {
        v.serialize(self)
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        v: &T,
    ) -> Result<()> {
        self.put(index.to_le_bytes());
        v.serialize(self)
    }

    /// serde's `[T]` and `Vec<T>` serialize through here with `&[T]` / `&Vec<T>`: for a
    /// plain number type, the slice goes as one block (the same bytes as element by
    /// element).
    #[inline]
    #[allow(unsafe_code)]
    fn collect_seq<I>(self, iter: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        macro_rules! block {
            ($($p:ty),*) => {$(
                if typeid::of::<I>() == typeid::of::<&Vec<$p>>() {
                    // SAFETY: `I` is `&Vec<$p>` up to its lifetime (equal TypeIds with
                    // lifetimes erased); the copy is used only during this call, while
                    // `iter`, and so its borrow, is alive.
                    let v: &Vec<$p> = unsafe { same_type(iter) };
                    self.block(v.as_slice());
                    return Ok(());
                }
                if typeid::of::<I>() == typeid::of::<&[$p]>() {
                    // SAFETY: as above, for `&[$p]`.
                    let v: &[$p] = unsafe { same_type(iter) };
                    self.block(v);
                    return Ok(());
                }
            )*};
        }
        if cfg!(target_endian = "little") {
            block!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);
        }
        let iter = iter.into_iter();
        let (low, high) = iter.size_hint();
        let len = high.filter(|&h| h == low);
        let mut seq = ser::Serializer::serialize_seq(self, len)?;
        for x in iter {
            ser::SerializeSeq::serialize_element(&mut seq, &x)?;
        }
        ser::SerializeSeq::end(seq)
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Self> {
        let len = len.ok_or_else(|| {
            Error::new(
                "a sequence of unknown length cannot be encoded: the wire format \
                 writes the length first",
            )
        })?;
        self.len(len);
        // Every element takes at least a byte (zero-sized ones aside).
        self.out.reserve(len);
        Ok(self)
    }

    #[inline]
    fn serialize_tuple(self, _: usize) -> Result<Self> {
        Ok(self)
    }

    #[inline]
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self> {
        Ok(self)
    }

    variant_start!(serialize_tuple_variant, serialize_struct_variant);

    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Self> {
        let len = len.ok_or_else(|| {
            Error::new(
                "a map of unknown length cannot be encoded (e.g. a struct with a \
                 `#[serde(flatten)]` field): the wire format writes the length first",
            )
        })?;
        self.len(len);
        Ok(self)
    }

    #[inline]
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self> {
        Ok(self)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

macro_rules! compound {
    ($($trait:ident $method:ident $(($key:ident))?;)*) => {$(
        impl ser::$trait for &mut Serializer<'_> {
            type Ok = ();
            type Error = Error;

            #[inline(always)]
            fn $method<T: Serialize + ?Sized>(
                &mut self,
                $($key: &'static str,)?
                v: &T,
            ) -> Result<()> {
                v.serialize(&mut **self)
            }

            #[inline(always)]
            fn end(self) -> Result<()> {
                Ok(())
            }
        }
    )*};
}

compound! {
    SerializeSeq serialize_element;
    SerializeTuple serialize_element;
    SerializeTupleStruct serialize_field;
    SerializeTupleVariant serialize_field;
    SerializeStruct serialize_field(_key);
    SerializeStructVariant serialize_field(_key);
}

impl ser::SerializeMap for &mut Serializer<'_> {
    type Ok = ();
    type Error = Error;

    #[inline(always)]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<()> {
        k.serialize(&mut **self)
    }

    #[inline(always)]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<()> {
        v.serialize(&mut **self)
    }

    #[inline(always)]
    fn end(self) -> Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// Decoding.

/// The decoder: reads from a slice, checking every length against the bytes left
/// before it allocates or reads anything for it.
pub(crate) struct Deserializer<'de, 'b> {
    rest: &'de [u8],
    /// The budget that [`Limited`] charges, charged here for what the block path
    /// builds without the visitor (one nesting level and one item per element).
    budget: Option<&'b Budget>,
}

impl<'de, 'b> Deserializer<'de, 'b> {
    /// A decoder of `bytes`, charging block-copied sequences to `budget` (pass the
    /// one the [`Limited`] around it uses).
    pub(crate) fn new(bytes: &'de [u8], budget: Option<&'b Budget>) -> Self {
        Self {
            rest: bytes,
            budget,
        }
    }

    /// The bytes not decoded yet.
    pub(crate) fn rest(&self) -> &'de [u8] {
        self.rest
    }

    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'de [u8]> {
        if n > self.rest.len() {
            return Err(Error(format!(
                "a length of {n} bytes where {} are left",
                self.rest.len()
            )));
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    #[inline(always)]
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        match self.rest.split_first_chunk::<N>() {
            Some((a, rest)) => {
                self.rest = rest;
                Ok(*a)
            }
            None => Err(Error(format!(
                "{N} bytes needed where {} are left",
                self.rest.len()
            ))),
        }
    }

    #[inline(always)]
    fn len(&mut self) -> Result<usize> {
        let n = u64::from_le_bytes(self.array()?);
        usize::try_from(n).map_err(|_| Error(format!("a length of {n} does not fit a usize")))
    }

    #[inline(always)]
    fn byte(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    /// `n` plain `P`s in one copy, as a `V::Value` (which the caller has checked is
    /// `Vec<P>` built by serde's own visitor).
    #[inline]
    fn block<P: Plain, V: Visitor<'de>>(&mut self, n: usize) -> Result<V::Value> {
        if let Some(budget) = self.budget {
            budget.charge_block::<Error>(n)?;
        }
        let size = n
            .checked_mul(size_of::<P>())
            .ok_or_else(|| Error(format!("a sequence of {n} elements is too long")))?;
        let v = plain_vec::<P>(self.take(size)?);
        #[allow(unsafe_code)]
        // SAFETY: the caller checked that `V::Value` is `Vec<P>` (TypeIds equal; `Vec<P>`
        // has no lifetimes, so nothing was erased).
        Ok(unsafe { same_type::<Vec<P>, V::Value>(v) })
    }

    /// The `len` fields of a tuple, struct or variant, or elements of a sequence.
    #[inline(always)]
    fn visit_fields<V: Visitor<'de>>(&mut self, len: usize, visitor: V) -> Result<V::Value> {
        visitor.visit_seq(Access {
            de: self,
            left: len,
        })
    }

    #[cold]
    fn not_self_describing<V: Visitor<'de>>(&self, what: &str, visitor: &V) -> Error {
        Error(format!(
            "{what} is not supported (the value expected {}, visitor `{}`): {SELF_DESCRIBING_HINT}",
            visitor as &dyn de::Expected,
            std::any::type_name::<V>(),
        ))
    }
}

macro_rules! deserialize_le {
    ($($method:ident $visit:ident $ty:ty;)*) => {$(
        #[inline(always)]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            visitor.$visit(<$ty>::from_le_bytes(self.array()?))
        }
    )*};
}

/// How many bytes a UTF-8 sequence starting with `first` has (0: not a first byte).
fn utf8_width(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 0,
    }
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        Err(self.not_self_describing("deserialize_any", &visitor))
    }

    deserialize_le! {
        deserialize_u8 visit_u8 u8; deserialize_u16 visit_u16 u16;
        deserialize_u32 visit_u32 u32; deserialize_u64 visit_u64 u64;
        deserialize_u128 visit_u128 u128; deserialize_i8 visit_i8 i8;
        deserialize_i16 visit_i16 i16; deserialize_i32 visit_i32 i32;
        deserialize_i64 visit_i64 i64; deserialize_i128 visit_i128 i128;
        deserialize_f32 visit_f32 f32; deserialize_f64 visit_f64 f64;
    }

    #[inline]
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.byte()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            b => Err(Error(format!("{b} is not a bool (0 or 1)"))),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let first = *self
            .rest
            .first()
            .ok_or_else(|| Error::new("a char where no bytes are left"))?;
        let width = utf8_width(first);
        if width == 0 {
            return Err(Error(format!("{first:#x} does not start a UTF-8 char")));
        }
        let bytes = self.take(width)?;
        match std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.chars().next())
        {
            Some(c) => visitor.visit_char(c),
            None => Err(Error(format!("{bytes:x?} is not a UTF-8 char"))),
        }
    }

    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let n = self.len()?;
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => visitor.visit_borrowed_str(s),
            Err(e) => Err(Error(format!("a string that is not UTF-8: {e}"))),
        }
    }

    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let n = self.len()?;
        visitor.visit_borrowed_bytes(self.take(n)?)
    }

    #[inline]
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let n = self.len()?;
        visitor.visit_byte_buf(self.take(n)?.to_vec())
    }

    #[inline]
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.byte()? {
            0 => visitor.visit_none(),
            1 => visitor.visit_some(self),
            b => Err(Error(format!("{b} is not an Option tag (0 or 1)"))),
        }
    }

    #[inline]
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    #[inline]
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let n = self.len()?;
        macro_rules! block {
            ($($p:ty),*) => {$(
                if typeid::of::<V::Value>() == typeid::of::<Vec<$p>>()
                    && is_vec_visitor::<$p, V>()
                {
                    return self.block::<$p, V>(n);
                }
            )*};
        }
        if cfg!(target_endian = "little") {
            block!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);
        }
        self.visit_fields(n, visitor)
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        self.visit_fields(len, visitor)
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.visit_fields(len, visitor)
    }

    #[inline]
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let n = self.len()?;
        visitor.visit_map(Access { de: self, left: n })
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.visit_fields(fields.len(), visitor)
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_enum(self)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        Err(self.not_self_describing("deserialize_identifier", &visitor))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        Err(self.not_self_describing("deserialize_ignored_any", &visitor))
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The elements of a sequence, tuple or struct, or the entries of a map.
struct Access<'a, 'de, 'b> {
    de: &'a mut Deserializer<'de, 'b>,
    left: usize,
}

impl<'de> Access<'_, 'de, '_> {
    /// The next element or key, if any are left.
    #[inline(always)]
    fn next<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }
}

impl<'de> de::SeqAccess<'de> for Access<'_, 'de, '_> {
    type Error = Error;

    #[inline(always)]
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        self.next(seed)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> de::MapAccess<'de> for Access<'_, 'de, '_> {
    type Error = Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        self.next(seed)
    }

    #[inline]
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value> {
        seed.deserialize(&mut *self.de)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> de::EnumAccess<'de> for &mut Deserializer<'de, '_> {
    type Error = Error;
    type Variant = Self;

    #[inline]
    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Self)> {
        let index = u32::from_le_bytes(self.array()?);
        let value = seed.deserialize(index.into_deserializer())?;
        Ok((value, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut Deserializer<'de, '_> {
    type Error = Error;

    #[inline]
    fn unit_variant(self) -> Result<()> {
        Ok(())
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        seed.deserialize(self)
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        self.visit_fields(len, visitor)
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.visit_fields(fields.len(), visitor)
    }
}
