//! A serde [`Deserializer`] adapter that bounds what decoding hostile bytes can cost.
//!
//! [`Limited`] wraps any format's deserializer (nothing here knows bincode) and, on
//! the way through, every visitor, `SeqAccess`, `MapAccess`, `EnumAccess` and
//! `VariantAccess` the format hands out, so that it sees every level of nesting. It
//! enforces three budgets, shared by the whole decode through one [`Budget`]:
//!
//! * **Depth.** Each nested value (a sequence, map, struct, tuple, enum, `Some` or
//!   newtype) takes one level for as long as it is being decoded; past the limit the
//!   decode fails instead of recursing further. Without it a recursive type (a tree,
//!   an AST) lets a few bytes per level overflow the receiver's stack.
//! * **Items.** Every element of a sequence and every entry of a map takes one item.
//!   An element costs at least one byte in any binary format unless its type is
//!   zero-sized (`()`, a unit struct, `[T; 0]`), so a budget of "received bytes plus a
//!   fixed allowance" never stops an honest value with fewer zero-sized elements than
//!   the allowance, and stops a `Vec<()>` that claims 2^62 elements from spinning.
//! * **Preallocation.** serde's collections reserve the length a sequence or map
//!   announces (its `size_hint`, capped by serde at 1 MiB per collection). Each hint
//!   is taken from a budget counted in elements, so that all collections being built
//!   at once, one per nesting level, reserve no more than the budget in total; a hint
//!   past the budget becomes what is left of it, and the collection grows as it
//!   fills. Honest values never hit this: in a binary format every announced element
//!   costs at least one received byte.
//!
//! The format must itself refuse a length it has no bytes for (a string or byte
//! string longer than the input): this adapter sees only the calls, not the bytes.
//!
//! Errors are the format's own, made with [`de::Error::custom`].

use std::cell::Cell;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

/// The budgets of one decode; see the module docs.
#[derive(Debug)]
pub(crate) struct Budget {
    max_depth: u32,
    depth_left: Cell<u32>,
    items_left: Cell<usize>,
    hint_left: Cell<usize>,
}

impl Budget {
    /// A budget of `max_depth` nesting levels, `items` sequence elements and map
    /// entries, and `hint` preallocated elements in total.
    pub(crate) fn new(max_depth: u32, items: usize, hint: usize) -> Self {
        Self {
            max_depth,
            depth_left: Cell::new(max_depth),
            items_left: Cell::new(items),
            hint_left: Cell::new(hint),
        }
    }

    #[inline]
    fn enter<E: de::Error>(&self) -> Result<Level<'_>, E> {
        let left = self.depth_left.get();
        if left == 0 {
            return Err(E::custom(format_args!(
                "the value nests deeper than {} levels",
                self.max_depth
            )));
        }
        self.depth_left.set(left - 1);
        Ok(Level(self))
    }

    #[inline]
    fn item<E: de::Error>(&self) -> Result<(), E> {
        let left = self.items_left.get();
        if left == 0 {
            return Err(E::custom(
                "the value has more elements than its bytes can hold",
            ));
        }
        self.items_left.set(left - 1);
        Ok(())
    }

    /// Charges what visiting a sequence of `items` elements would have (one nesting
    /// level, entered and left, and `items` items), for a format that builds such a
    /// sequence in one step without its visitor.
    #[inline]
    pub(crate) fn charge_block<E: de::Error>(&self, items: usize) -> Result<(), E> {
        let _level = self.enter::<E>()?;
        let left = self.items_left.get();
        if items > left {
            return Err(E::custom(
                "the value has more elements than its bytes can hold",
            ));
        }
        self.items_left.set(left - items);
        Ok(())
    }

    #[inline]
    fn hint(&self, hint: Option<usize>) -> Option<usize> {
        hint.map(|h| {
            let left = self.hint_left.get();
            let h = h.min(left);
            self.hint_left.set(left - h);
            h
        })
    }
}

/// One level of nesting, given back when dropped.
struct Level<'b>(&'b Budget);

impl Drop for Level<'_> {
    #[inline]
    fn drop(&mut self) {
        let d = &self.0.depth_left;
        d.set(d.get() + 1);
    }
}

/// A deserializer that charges what it decodes to a [`Budget`].
pub(crate) struct Limited<'b, D> {
    inner: D,
    budget: &'b Budget,
}

impl<'b, D> Limited<'b, D> {
    /// Wraps `inner`, charging `budget`.
    pub(crate) fn new(inner: D, budget: &'b Budget) -> Self {
        Self { inner, budget }
    }
}

/// A visitor, seed or access wrapped with the budget.
struct Wrap<'b, X> {
    inner: X,
    budget: &'b Budget,
}

impl<'b, X> Wrap<'b, X> {
    #[inline]
    fn new(inner: X, budget: &'b Budget) -> Self {
        Self { inner, budget }
    }
}

macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.inner.$method($($arg,)* Wrap::new(visitor, self.budget))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Limited<'_, D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    #[inline]
    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {$(
        #[inline]
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    #[inline]
    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    #[inline]
    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    #[inline]
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        let _level = self.budget.enter::<D::Error>()?;
        self.inner.visit_some(Limited::new(d, self.budget))
    }

    #[inline]
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        let _level = self.budget.enter::<D::Error>()?;
        self.inner
            .visit_newtype_struct(Limited::new(d, self.budget))
    }

    #[inline]
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let _level = self.budget.enter::<A::Error>()?;
        self.inner.visit_seq(Wrap::new(seq, self.budget))
    }

    #[inline]
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let _level = self.budget.enter::<A::Error>()?;
        self.inner.visit_map(Wrap::new(map, self.budget))
    }

    #[inline]
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        let _level = self.budget.enter::<A::Error>()?;
        self.inner.visit_enum(Wrap::new(data, self.budget))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Wrap<'_, S> {
    type Value = S::Value;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(Limited::new(d, self.budget))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let next = self.inner.next_element_seed(Wrap::new(seed, self.budget))?;
        if next.is_some() {
            self.budget.item::<A::Error>()?;
        }
        Ok(next)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.budget.hint(self.inner.size_hint())
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let next = self.inner.next_key_seed(Wrap::new(seed, self.budget))?;
        if next.is_some() {
            self.budget.item::<A::Error>()?;
        }
        Ok(next)
    }

    #[inline]
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.next_value_seed(Wrap::new(seed, self.budget))
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.budget.hint(self.inner.size_hint())
    }
}

impl<'b, 'de, A: EnumAccess<'de>> EnumAccess<'de> for Wrap<'b, A> {
    type Error = A::Error;
    type Variant = Wrap<'b, A::Variant>;

    #[inline]
    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        let (value, variant) = self.inner.variant_seed(Wrap::new(seed, self.budget))?;
        Ok((value, Wrap::new(variant, self.budget)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    #[inline]
    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.inner
            .newtype_variant_seed(Wrap::new(seed, self.budget))
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.inner
            .tuple_variant(len, Wrap::new(visitor, self.budget))
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.inner
            .struct_variant(fields, Wrap::new(visitor, self.budget))
    }
}
