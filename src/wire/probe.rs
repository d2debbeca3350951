//! Whether a type can travel in the wire [`format`](super::format), asked of the type
//! before any value of it is sent.
//!
//! The format is not self-describing: a type whose `Deserialize` inspects the input
//! (`serde_json::Value`, `#[serde(untagged)]` enums, `#[serde(flatten)]` fields)
//! encodes fine and then fails to decode on the other side. For a pool task that is
//! the worst moment: the arguments fail in the worker after the task was queued, and a
//! result fails after the work was done. [`check`] finds such types up front, so that
//! `apply`, `map` and `submit` refuse them with a `Serialize` error before any work
//! starts, naming the type and the way out.
//!
//! # How
//!
//! Serde has no type reflection, but a type's `Deserialize` *is* a walk over its shape.
//! [`check`] runs it against a probe deserializer that answers every request with a
//! placeholder (zero, `""`, an empty byte string) and records a call of a method the
//! format cannot serve (`deserialize_any`, `deserialize_identifier`,
//! `deserialize_ignored_any`). Structs and tuples are walked field by field; a sequence
//! and a map are walked through one element (a `Vec<serde_json::Value>` is refused,
//! though an empty one would travel: nobody sends only empty ones). What a value may or
//! may not contain is not held against the type: an `Option` is probed as `None` and
//! an enum's variants are not entered, so an enum with one variant that cannot travel
//! still passes and fails, as before, only when that variant is sent.
//!
//! The walk is bounded (depth and number of calls), so recursive types end; it
//! never touches fds or the network: a handle's `Deserialize` asks the decoder for its
//! fd, which the probe does not have, and gives up, and a manager proxy's sees
//! [`active`] and adopts nothing (the walk stops there, and what was seen so far
//! counts). Answers are cached per type in a thread-local table (no lock:
//! a child forked while another thread probed inherits no held lock).

use std::any::TypeId;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

use crate::error::{Error, ErrorKind, Result};

/// How deep the probe walks into nested sequences and maps.
const DEPTH: u32 = 12;
/// How many calls one probe makes at most.
const CALLS: u32 = 4096;

thread_local! {
    static SEEN: RefCell<HashMap<TypeId, Option<&'static str>>> = RefCell::new(HashMap::new());
    static PROBING: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread is probing a type now: a `Deserialize` with side effects
/// (adopting a manager object) returns an error at once instead.
pub(crate) fn active() -> bool {
    PROBING.with(Cell::get)
}

/// `Ok` if values of `T` can be decoded from the wire format, else a
/// [`Serialize`](ErrorKind::Serialize) error naming the type, `what` it is (e.g.
/// "the task's arguments") and the way out.
pub(crate) fn check<T: DeserializeOwned + 'static>(what: &str) -> Result<()> {
    let id = TypeId::of::<T>();
    let cached = SEEN.with(|s| s.borrow().get(&id).copied());
    let hit = match cached {
        Some(hit) => hit,
        None => {
            let hit = probe::<T>();
            SEEN.with(|s| s.borrow_mut().insert(id, hit));
            hit
        }
    };
    match hit {
        None => Ok(()),
        Some(method) => Err(Error::new(
            ErrorKind::Serialize,
            format!(
                "{what} ({}) cannot travel between processes: its Deserialize calls \
                 {method}, which the wire format (not self-describing) cannot serve; \
                 types such as serde_json::Value, #[serde(untagged)] enums and \
                 #[serde(flatten)] fields need a self-describing wrapper: \
                 multiprocess::Json<T> (feature `json`) or a JSON string",
                std::any::type_name::<T>()
            ),
        )),
    }
}

/// Walks `T`'s shape; the first method the format cannot serve, if any.
fn probe<T: DeserializeOwned>() -> Option<&'static str> {
    let state = State {
        hit: Cell::new(None),
        calls: Cell::new(0),
    };
    let was = PROBING.with(|p| p.replace(true));
    let _ = T::deserialize(Probe {
        state: &state,
        depth: 0,
    });
    PROBING.with(|p| p.set(was));
    state.hit.get()
}

struct State {
    hit: Cell<Option<&'static str>>,
    calls: Cell<u32>,
}

/// The probe's error: the walk ends, and what it saw counts.
#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("probe stopped")
    }
}
impl std::error::Error for Stop {}
impl de::Error for Stop {
    fn custom<M: fmt::Display>(_: M) -> Self {
        Stop
    }
}

#[derive(Clone, Copy)]
struct Probe<'s> {
    state: &'s State,
    depth: u32,
}

impl<'s> Probe<'s> {
    /// Counts a call; `Err` once the budget is spent.
    fn step(self) -> std::result::Result<Self, Stop> {
        let n = self.state.calls.get() + 1;
        self.state.calls.set(n);
        if n > CALLS {
            return Err(Stop);
        }
        Ok(self)
    }

    fn deeper(self) -> Self {
        Probe {
            depth: self.depth + 1,
            ..self
        }
    }

    /// Records a method the format cannot serve and answers with a unit, which the
    /// visitors of such types accept, so that the walk goes on past it.
    fn unserved<'de, V: Visitor<'de>>(
        self,
        method: &'static str,
        v: V,
    ) -> std::result::Result<V::Value, Stop> {
        self.step()?;
        if self.state.hit.get().is_none() {
            self.state.hit.set(Some(method));
        }
        v.visit_unit()
    }

    /// A sequence of `n` probes (fields of a struct or a tuple, or the one element
    /// walked of a sequence: none past [`DEPTH`]).
    fn seq<'de, V: Visitor<'de>>(self, n: usize, v: V) -> std::result::Result<V::Value, Stop> {
        let p = self.step()?.deeper();
        v.visit_seq(Seq { probe: p, left: n })
    }
}

macro_rules! zero {
    ($($method:ident => $visit:ident($value:expr)),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, Stop> {
            self.step()?;
            v.$visit($value)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, Stop> {
        self.unserved("deserialize_any", v)
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, Stop> {
        self.unserved("deserialize_identifier", v)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, Stop> {
        self.unserved("deserialize_ignored_any", v)
    }

    zero! {
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i8(0),
        deserialize_i16 => visit_i16(0),
        deserialize_i32 => visit_i32(0),
        deserialize_i64 => visit_i64(0),
        deserialize_i128 => visit_i128(0),
        deserialize_u8 => visit_u8(0),
        deserialize_u16 => visit_u16(0),
        deserialize_u32 => visit_u32(0),
        deserialize_u64 => visit_u64(0),
        deserialize_u128 => visit_u128(0),
        deserialize_f32 => visit_f32(0.0),
        deserialize_f64 => visit_f64(0.0),
        deserialize_char => visit_char('0'),
        deserialize_str => visit_str(""),
        deserialize_string => visit_str(""),
        deserialize_bytes => visit_bytes(&[]),
        deserialize_byte_buf => visit_bytes(&[]),
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, Stop> {
        self.step()?;
        v.visit_none()
    }
    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, Stop> {
        self.step()?;
        v.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> std::result::Result<V::Value, Stop> {
        self.step()?;
        v.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> std::result::Result<V::Value, Stop> {
        let p = self.step()?.deeper();
        v.visit_newtype_struct(p)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, Stop> {
        let n = usize::from(self.depth < DEPTH);
        self.seq(n, v)
    }
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        v: V,
    ) -> std::result::Result<V::Value, Stop> {
        self.seq(len, v)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        v: V,
    ) -> std::result::Result<V::Value, Stop> {
        self.seq(len, v)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> std::result::Result<V::Value, Stop> {
        self.seq(fields.len(), v)
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, Stop> {
        let p = self.step()?.deeper();
        let left = usize::from(self.depth < DEPTH);
        v.visit_map(Map { probe: p, left })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> std::result::Result<V::Value, Stop> {
        // Which variant a value holds is the value's business, not the type's: walk
        // variant 0 as a unit-like variant, without entering its fields.
        self.step()?;
        v.visit_enum(Enum)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

struct Seq<'s> {
    probe: Probe<'s>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Seq<'_> {
    type Error = Stop;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> std::result::Result<Option<T::Value>, Stop> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(self.probe).map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

struct Map<'s> {
    probe: Probe<'s>,
    left: usize,
}

impl<'de> de::MapAccess<'de> for Map<'_> {
    type Error = Stop;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> std::result::Result<Option<K::Value>, Stop> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(self.probe).map(Some)
    }
    fn next_value_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> std::result::Result<T::Value, Stop> {
        seed.deserialize(self.probe)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// An enum whose variant is not entered: the walk ends at it (without a hit).
struct Enum;

impl<'de> de::EnumAccess<'de> for Enum {
    type Error = Stop;
    type Variant = Self;
    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> std::result::Result<(T::Value, Self), Stop> {
        let index: de::value::U32Deserializer<Stop> = 0u32.into_deserializer();
        Ok((seed.deserialize(index)?, Enum))
    }
}

impl<'de> de::VariantAccess<'de> for Enum {
    type Error = Stop;
    fn unit_variant(self) -> std::result::Result<(), Stop> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        _: T,
    ) -> std::result::Result<T::Value, Stop> {
        Err(Stop)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> std::result::Result<V::Value, Stop> {
        Err(Stop)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        _: V,
    ) -> std::result::Result<V::Value, Stop> {
        Err(Stop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::{BTreeMap, HashMap};

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Plain {
        a: u32,
        b: String,
        c: Vec<f64>,
        d: Option<Box<Plain>>,
        e: HashMap<String, (u8, char)>,
        f: Kind,
        g: std::time::Duration,
        h: std::path::PathBuf,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Kind {
        A,
        B(serde_json::Value),
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    #[serde(untagged)]
    enum Untagged {
        A(u32),
        B(String),
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Flat {
        a: u32,
        #[serde(flatten)]
        rest: BTreeMap<String, u32>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Holds {
        n: u64,
        inner: Untagged,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Tree {
        children: Vec<Tree>,
        label: String,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    #[serde(tag = "type")]
    enum Internally {
        A { x: u32 },
    }

    fn kind<T: DeserializeOwned + 'static>() -> Option<ErrorKind> {
        check::<T>("it").err().map(|e| e.kind())
    }

    #[test]
    fn plain_types_travel() {
        assert_eq!(kind::<u64>(), None);
        assert_eq!(kind::<(u32, String, Vec<u8>)>(), None);
        assert_eq!(kind::<Plain>(), None);
        assert_eq!(kind::<Tree>(), None, "recursive types end");
        assert_eq!(kind::<Vec<Vec<Vec<Option<String>>>>>(), None);
        assert_eq!(kind::<BTreeMap<u32, Vec<String>>>(), None);
        assert_eq!(kind::<Result<u32, String>>(), None);
        assert_eq!(kind::<std::net::SocketAddr>(), None);
    }

    #[test]
    fn self_describing_types_are_refused_with_the_way_out() {
        assert_eq!(kind::<serde_json::Value>(), Some(ErrorKind::Serialize));
        assert_eq!(kind::<Untagged>(), Some(ErrorKind::Serialize));
        assert_eq!(kind::<Flat>(), Some(ErrorKind::Serialize));
        assert_eq!(kind::<Holds>(), Some(ErrorKind::Serialize));
        assert_eq!(kind::<Internally>(), Some(ErrorKind::Serialize));
        assert_eq!(kind::<Vec<serde_json::Value>>(), Some(ErrorKind::Serialize));
        assert_eq!(
            kind::<(u32, serde_json::Value)>(),
            Some(ErrorKind::Serialize)
        );
        let e = check::<Untagged>("the task's arguments").unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("the task's arguments") && s.contains("Untagged"),
            "{s}"
        );
        assert!(s.contains("Json<T>"), "{s}");
    }

    #[test]
    fn the_json_wrapper_travels() {
        assert_eq!(kind::<crate::Json<serde_json::Value>>(), None);
    }

    #[test]
    fn the_verdict_agrees_with_a_real_decode() {
        // What the probe refuses, the format refuses to decode; what it passes decodes.
        use crate::wire::{codec::decode, format::encode_into};
        let mut bytes = Vec::new();
        encode_into(&serde_json::json!({"a": 1}), &mut bytes).unwrap();
        assert!(decode::<serde_json::Value>(&bytes, Vec::new()).is_err());
        bytes.clear();
        encode_into(&(7u32, "x".to_string()), &mut bytes).unwrap();
        assert!(decode::<(u32, String)>(&bytes, Vec::new()).is_ok());
        assert_eq!(kind::<(u32, String)>(), None);
    }

    #[test]
    fn the_probe_flag_is_set_only_while_probing() {
        struct Spy;
        impl<'de> Deserialize<'de> for Spy {
            fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                assert!(active());
                u8::deserialize(d).map(|_| Spy)
            }
        }
        assert!(!active());
        assert_eq!(kind::<Spy>(), None);
        assert!(!active());
    }
}
