//! The wire format against bincode 1.3 (a dev-dependency kept for this only): the
//! same bytes for every serde data model type, the same verdict on arbitrary input,
//! and the block paths taken only where they are sound.

use std::collections::BTreeMap;

use bincode::Options as _;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::codec;
use super::format;
use super::hostile_tests::{Bytes, UnitStruct};

/// Today's wire, as bincode 1.3 wrote it.
fn bincode_options() -> impl bincode::Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .allow_trailing_bytes()
}

fn ours<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    format::encode_into(v, &mut out).unwrap();
    out
}

fn theirs<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    bincode_options().serialize(v).unwrap()
}

/// Decodes `bytes` as a whole `T` with the format alone (no `Limited`).
fn decode_plain<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, format::Error> {
    let mut de = format::Deserializer::new(bytes, None);
    let v = T::deserialize(&mut de)?;
    if de.rest().is_empty() {
        Ok(v)
    } else {
        Err(serde::de::Error::custom("trailing bytes"))
    }
}

fn decode_bincode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let mut rest = bytes;
    let v = bincode_options().deserialize_from(&mut rest).ok()?;
    rest.is_empty().then_some(v)
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Newtype(u16);

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct TupleStruct(i8, char);

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Enum {
    Unit,
    Newtype(u32),
    Tuple(i16, Option<String>),
    Struct { x: f32, y: Vec<i32> },
}

/// Every serde data model type, and every block-path element type as `Vec<P>` and
/// `Box<[P]>` (which serializes as `&[P]`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct All {
    b: bool,
    u: (u8, u16, u32, u64, u128),
    i: (i8, i16, i32, i64, i128),
    f: (f32, f64),
    c: char,
    s: String,
    vu8: Vec<u8>,
    vi8: Vec<i8>,
    vu16: Vec<u16>,
    vi16: Vec<i16>,
    vu32: Vec<u32>,
    vi32: Vec<i32>,
    vu64: Vec<u64>,
    vi64: Vec<i64>,
    vf32: Vec<f32>,
    vf64: Vec<f64>,
    boxed: Box<[u16]>,
    boxed_f: Box<[f64]>,
    vu128: Vec<u128>,
    opt: Option<Option<u8>>,
    unit: (),
    unit_struct: UnitStruct,
    newtype: Newtype,
    tuple_struct: TupleStruct,
    enums: Vec<Enum>,
    map: BTreeMap<String, Vec<u8>>,
    bytes: Bytes,
    array: [u32; 3],
    nested: Vec<Vec<f64>>,
    strings: Vec<String>,
    chars: Vec<char>,
    bools: Vec<bool>,
    units: Vec<()>,
}

/// A small deterministic generator, so that one proptest seed makes one `All`.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn len(&mut self) -> usize {
        match self.next() % 8 {
            0 => 0,
            1 => 1,
            7 => (self.next() % 300) as usize,
            _ => (self.next() % 9) as usize,
        }
    }
    fn vec<T>(&mut self, f: impl Fn(&mut Self) -> T) -> Vec<T> {
        (0..self.len()).map(|_| f(self)).collect()
    }
    fn char(&mut self) -> char {
        let bound = [0x80, 0x800, 0x1_0000, 0x11_0000][(self.next() % 4) as usize];
        char::from_u32((self.next() % bound) as u32).unwrap_or('\u{fffd}')
    }
    fn string(&mut self) -> String {
        (0..self.len()).map(|_| self.char()).collect()
    }
    fn enumeration(&mut self) -> Enum {
        match self.next() % 4 {
            0 => Enum::Unit,
            1 => Enum::Newtype(self.next() as u32),
            2 => Enum::Tuple(
                self.next() as i16,
                self.next().is_multiple_of(2).then(|| self.string()),
            ),
            _ => Enum::Struct {
                x: f32::from_bits(self.next() as u32),
                y: self.vec(|g| g.next() as i32),
            },
        }
    }
    fn all(&mut self) -> All {
        All {
            b: self.next().is_multiple_of(2),
            u: (
                self.next() as u8,
                self.next() as u16,
                self.next() as u32,
                self.next(),
                u128::from(self.next()) << 64 | u128::from(self.next()),
            ),
            i: (
                self.next() as i8,
                self.next() as i16,
                self.next() as i32,
                self.next() as i64,
                (u128::from(self.next()) << 64 | u128::from(self.next())) as i128,
            ),
            f: (
                f32::from_bits(self.next() as u32),
                f64::from_bits(self.next()),
            ),
            c: self.char(),
            s: self.string(),
            vu8: self.vec(|g| g.next() as u8),
            vi8: self.vec(|g| g.next() as i8),
            vu16: self.vec(|g| g.next() as u16),
            vi16: self.vec(|g| g.next() as i16),
            vu32: self.vec(|g| g.next() as u32),
            vi32: self.vec(|g| g.next() as i32),
            vu64: self.vec(Gen::next),
            vi64: self.vec(|g| g.next() as i64),
            vf32: self.vec(|g| f32::from_bits(g.next() as u32)),
            vf64: self.vec(|g| f64::from_bits(g.next())),
            boxed: self.vec(|g| g.next() as u16).into(),
            boxed_f: self.vec(|g| f64::from_bits(g.next())).into(),
            vu128: self.vec(|g| u128::from(g.next())),
            opt: match self.next() % 3 {
                0 => None,
                1 => Some(None),
                _ => Some(Some(self.next() as u8)),
            },
            unit: (),
            unit_struct: UnitStruct,
            newtype: Newtype(self.next() as u16),
            tuple_struct: TupleStruct(self.next() as i8, self.char()),
            enums: self.vec(Gen::enumeration),
            map: (0..self.len())
                .map(|_| (self.string(), self.vec(|g| g.next() as u8)))
                .collect(),
            bytes: Bytes(self.vec(|g| g.next() as u8)),
            array: [self.next() as u32, self.next() as u32, self.next() as u32],
            nested: self.vec(|g| g.vec(|g| f64::from_bits(g.next()))),
            strings: self.vec(Gen::string),
            chars: self.vec(Gen::char),
            bools: self.vec(|g| g.next() % 2 == 0),
            units: self.vec(|_| ()),
        }
    }
}

proptest! {
    /// The bytes are bincode 1.3's, both ways: ours decode (alone, and through the
    /// codec's `decode` with its limits) to a value that encodes to the same bytes,
    /// and bincode decodes ours. (Compared as bytes: NaNs are not equal to
    /// themselves.)
    #[test]
    fn encoding_is_bincode_1_fixint_le(seed in 1..u64::MAX) {
        let v = Gen(seed).all();
        let bytes = ours(&v);
        prop_assert_eq!(&bytes, &theirs(&v));
        prop_assert_eq!(&ours(&decode_plain::<All>(&bytes).unwrap()), &bytes);
        prop_assert_eq!(&ours(&codec::decode::<All>(&bytes, Vec::new()).unwrap()), &bytes);
        prop_assert_eq!(&theirs(&decode_bincode::<All>(&bytes).unwrap()), &bytes);
    }

    /// On arbitrary bytes, the format and bincode agree: both refuse, or both decode
    /// the same value.
    #[test]
    fn arbitrary_bytes_decode_as_bincode_does(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
        fn same<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<(), TestCaseError> {
            let a = decode_plain::<T>(bytes).ok().map(|v| ours(&v));
            let b = decode_bincode::<T>(bytes).map(|v| theirs(&v));
            prop_assert_eq!(a, b, "{}", std::any::type_name::<T>());
            Ok(())
        }
        same::<(bool, char, Option<u8>)>(&bytes)?;
        same::<(Vec<u16>, String)>(&bytes)?;
        same::<Vec<Enum>>(&bytes)?;
        same::<(char, char, Vec<f32>, Bytes)>(&bytes)?;
        same::<BTreeMap<u8, Option<bool>>>(&bytes)?;
        same::<Vec<u8>>(&bytes)?;
        same::<Vec<i64>>(&bytes)?;
    }
}

#[test]
fn edge_values_are_bincode_1_fixint_le() {
    for c in [
        '\0',
        '\u{7f}',
        '\u{80}',
        '\u{7ff}',
        '\u{800}',
        '\u{ffff}',
        '\u{10000}',
        '\u{10ffff}',
    ] {
        assert_eq!(ours(&c), theirs(&c), "{c:?}");
        assert_eq!(decode_plain::<char>(&ours(&c)).unwrap(), c);
    }
    assert_eq!(ours(&u128::MAX), theirs(&u128::MAX));
    assert_eq!(ours(&i128::MIN), theirs(&i128::MIN));
    assert_eq!(ours(&f64::NAN), theirs(&f64::NAN));
    assert_eq!(ours(&-0.0f32), theirs(&-0.0f32));
    assert_eq!(ours(&Vec::<u8>::new()), theirs(&Vec::<u8>::new()));
    assert_eq!(ours(&[1u8, 2, 3][..]), theirs(&[1u8, 2, 3][..]));
    assert_eq!(ours("str"), theirs("str"));
    let e = [Enum::Unit, Enum::Newtype(3)];
    assert_eq!(ours(&e), theirs(&e));
    // A few by hand: lengths as u64, variant indices as u32, little endian.
    assert_eq!(ours(&vec![1u16, 2]), [2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0]);
    assert_eq!(ours(&Enum::Newtype(5)), [1, 0, 0, 0, 5, 0, 0, 0]);
    assert_eq!(ours(&Some(true)), [1, 1]);
    assert_eq!(ours(&'é'), [0xc3, 0xa9]);
}

#[test]
fn bad_bool_option_and_char_bytes_are_refused() {
    assert!(decode_plain::<bool>(&[2]).is_err());
    assert!(decode_plain::<Option<u8>>(&[2, 0]).is_err());
    assert!(decode_plain::<char>(&[0x80]).is_err());
    assert!(decode_plain::<char>(&[0xc3]).is_err());
    assert!(decode_plain::<char>(&[0xed, 0xa0, 0x80]).is_err()); // a surrogate
    assert!(decode_plain::<String>(&[1, 0, 0, 0, 0, 0, 0, 0, 0xff]).is_err());
}

/// A `Vec<u8>` made by a hand-written visitor from `u16` elements: its `Value` is
/// `Vec<u8>`, but it is not serde's visitor, so the block path must not take it.
#[derive(Debug, PartialEq)]
struct Narrowed(Vec<u8>);

impl<'de> Deserialize<'de> for Narrowed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("u16s")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Vec<u8>, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element::<u16>()? {
                    v.push(x as u8);
                }
                Ok(v)
            }
        }
        d.deserialize_seq(V).map(Narrowed)
    }
}

#[test]
fn hand_written_vec_visitors_go_through_the_visitor() {
    let bytes = ours(&vec![1u16, 2, 300]);
    assert_eq!(
        decode_plain::<Narrowed>(&bytes).unwrap(),
        Narrowed(vec![1, 2, 44])
    );
    assert_eq!(
        codec::decode::<Narrowed>(&bytes, Vec::new()).unwrap(),
        Narrowed(vec![1, 2, 44])
    );
}

#[test]
fn block_paths_round_trip_inside_other_values() {
    let v = (
        Some(vec![1.5f64, -2.0]),
        vec![vec![1u8, 2], vec![]],
        Enum::Struct {
            x: 1.0,
            y: vec![-1, 7],
        },
        BTreeMap::from([(1u8, vec![9i16; 1000])]),
    );
    let bytes = codec::encode(&v).unwrap().bytes;
    assert_eq!(bytes, theirs(&v));
    assert_eq!(
        codec::decode::<(Option<Vec<f64>>, Vec<Vec<u8>>, Enum, BTreeMap<u8, Vec<i16>>,)>(
            &bytes,
            Vec::new()
        )
        .unwrap(),
        v
    );
}

#[test]
fn deserialize_any_is_refused_with_the_way_out() {
    let bytes = codec::encode(&serde_json::json!({"a": 1})).unwrap().bytes;
    let e = codec::decode::<serde_json::Value>(&bytes, Vec::new()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("serde_json::value::Value"), "{msg}");
    assert!(msg.contains("deserialize_any is not supported"), "{msg}");
    assert!(msg.contains("not self-describing"), "{msg}");
    assert!(msg.contains("Json"), "{msg}");
}

#[test]
fn sequences_without_a_length_are_refused_when_encoding() {
    #[derive(Serialize)]
    struct Flat {
        #[serde(flatten)]
        inner: BTreeMap<String, u8>,
    }
    let e = codec::encode(&Flat {
        inner: BTreeMap::new(),
    })
    .unwrap_err();
    assert!(e.to_string().contains("unknown length"), "{e}");
}

/// The block path is taken for serde's `Vec<P>` (alone and through the codec's
/// `Limited`): it checks the whole block's length at once, where the element-wise
/// path would fail on the first element that does not fit.
#[test]
fn serde_vec_visitors_take_the_block_path() {
    let mut bytes = 3u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(&[0; 4]);
    let e = decode_plain::<Vec<u64>>(&bytes).unwrap_err();
    assert!(
        e.to_string()
            .contains("a length of 24 bytes where 4 are left"),
        "{e}"
    );
    let e = codec::decode::<Vec<u64>>(&bytes, Vec::new()).unwrap_err();
    assert!(
        e.to_string()
            .contains("a length of 24 bytes where 4 are left"),
        "{e}"
    );
    let e = codec::decode::<(u8, Vec<f32>)>(&[&[1][..], &bytes].concat(), Vec::new()).unwrap_err();
    assert!(
        e.to_string()
            .contains("a length of 12 bytes where 4 are left"),
        "{e}"
    );
    // A tuple of the same bytes goes element by element.
    let e = codec::decode::<Vec<(u64,)>>(&bytes, Vec::new()).unwrap_err();
    assert!(
        e.to_string().contains("8 bytes needed where 4 are left"),
        "{e}"
    );
}

/// The parts a sender hands the kernel for a `Vec` of numbers are exactly the
/// encoding, for every plain element type; anything else has no such parts.
#[test]
fn plain_vec_parts_are_the_encoding() {
    fn check<T: Serialize>(v: &T) {
        let (word, elems) = format::plain_vec_parts(v).expect("a Vec of numbers");
        let mut joined = word.to_vec();
        joined.extend_from_slice(elems);
        assert_eq!(joined, ours(v), "{}", std::any::type_name::<T>());
    }
    check(&(0..=255u8).collect::<Vec<u8>>());
    check(&vec![-1i8, 0, 1]);
    check(&vec![u16::MAX, 1]);
    check(&vec![i16::MIN, 2]);
    check(&vec![u32::MAX, 3]);
    check(&vec![i32::MIN, 4]);
    check(&vec![u64::MAX, 5]);
    check(&vec![i64::MIN, 6]);
    check(&vec![f32::NAN, -0.0, f32::INFINITY]);
    check(&vec![f64::MIN_POSITIVE, 1.5, f64::NEG_INFINITY]);
    check(&Vec::<f64>::new());
    assert!(format::plain_vec_parts(&vec![true]).is_none());
    assert!(format::plain_vec_parts(&vec![vec![1u8]]).is_none());
    assert!(format::plain_vec_parts(&[1u8, 2][..]).is_none());
    assert!(format::plain_vec_parts(&"text".to_string()).is_none());
    assert!(format::plain_vec_parts(&(1u8, 2u8)).is_none());
}
