//! [`Json`]: a value that travels as JSON text, for types the wire format cannot
//! decode.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value sent as a JSON string inside the crate's binary wire format.
///
/// The wire format is not self-describing (see the crate's wire docs): decoding
/// follows the receiver's type, so types whose `Deserialize` asks the input what comes
/// next (`deserialize_any`) cannot be decoded from it. That is `serde_json::Value`,
/// `#[serde(untagged)]` and internally tagged (`#[serde(tag = "...")]`) enums, and
/// structs with `#[serde(flatten)]` fields. Wrapped in `Json`, such a value is
/// written with `serde_json` as a string and parsed back from it on the other side:
///
/// ```
/// # fn main() -> multiprocess::Result<()> {
/// use multiprocess::{Json, pipe};
///
/// let (a, b) = pipe()?;
/// a.send(&Json(serde_json::json!({"answer": 42})))?;
/// let Json(v): Json<serde_json::Value> = b.recv()?;
/// assert_eq!(v["answer"], 42);
/// # Ok(())
/// # }
/// ```
///
/// It costs a JSON encoding and parse, and numbers go through JSON's rules (for
/// example a NaN float becomes `null`). Received text is hostile as any other bytes:
/// it is bounded by the bytes received, and `serde_json` refuses nesting deeper than
/// 128 levels. Needs the crate feature `json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The wrapped value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Json<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T: Serialize> Serialize for Json<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(&self.0).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Json<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text<T>(PhantomData<T>);
        impl<T: DeserializeOwned> Visitor<'_> for Text<T> {
            type Value = Json<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON string")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Json<T>, E> {
                serde_json::from_str(text).map(Json).map_err(|e| {
                    E::custom(format_args!(
                        "cannot parse the JSON of a {}: {e}",
                        std::any::type_name::<T>()
                    ))
                })
            }
        }
        d.deserialize_str(Text(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use super::Json;
    use crate::wire::codec;

    fn round_trip<T: Serialize + serde::de::DeserializeOwned>(v: T) -> T {
        let bytes = codec::encode(&Json(v)).unwrap().bytes;
        codec::decode::<Json<T>>(&bytes, Vec::new())
            .unwrap()
            .into_inner()
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    #[serde(untagged)]
    enum Untagged {
        Num(u32),
        Text(String),
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Flat {
        id: u8,
        #[serde(flatten)]
        rest: BTreeMap<String, i64>,
    }

    #[test]
    fn self_describing_values_travel_inside_json() {
        let v = serde_json::json!({"a": [1, 2.5, null, {"b": "c"}]});
        assert_eq!(round_trip(v.clone()), v);
        assert_eq!(
            round_trip(vec![Untagged::Num(3), Untagged::Text("x".into())]),
            vec![Untagged::Num(3), Untagged::Text("x".into())]
        );
        let f = Flat {
            id: 1,
            rest: BTreeMap::from([("k".to_string(), -4)]),
        };
        assert_eq!(
            round_trip(f),
            Flat {
                id: 1,
                rest: BTreeMap::from([("k".to_string(), -4)]),
            }
        );
    }

    #[test]
    fn bad_json_is_a_decode_error() {
        let bytes = codec::encode(&"{not json").unwrap().bytes;
        let e = codec::decode::<Json<serde_json::Value>>(&bytes, Vec::new()).unwrap_err();
        assert!(e.to_string().contains("cannot parse the JSON"), "{e}");
        let deep = "[".repeat(100_000);
        let bytes = codec::encode(&deep).unwrap().bytes;
        assert!(codec::decode::<Json<serde_json::Value>>(&bytes, Vec::new()).is_err());
    }
}
