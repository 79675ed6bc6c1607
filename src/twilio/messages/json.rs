//! JSON plumbing shared by the inbound and outbound halves (crate-private):
//! a string escaper for hand-written JSON, and "lenient" field wrappers for
//! serde derives.
//!
//! Why lenient wrappers: a field with the wrong JSON type must not abort the
//! whole parse with an anonymous serde error; it is recorded as
//! [`Field::Invalid`] so the event-specific code can report *which* field is
//! bad. Only JSON syntax errors escape as serde errors. This keeps the media
//! path a single borrowed pass (no `serde_json::Value`).
//!
//! Must NOT: know about events or call state; allocate on the happy path for
//! strings without escapes.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One JSON field as found on the wire.
#[derive(Debug, Default)]
pub(crate) enum Field<T> {
    /// Absent, or `null`.
    #[default]
    Missing,
    /// Present with an acceptable value.
    Present(T),
    /// Present with the wrong type or an unusable value.
    Invalid {
        expected: &'static str,
        found: &'static str,
    },
}

/// Marks a nested JSON object parsed with `T`'s own derive (see [`Field`]).
#[derive(Debug)]
pub(crate) struct Nested<T>(pub T);

/// Parses the JSON *object* `text` into `T`. Unlike `serde_json::from_str`
/// with a derived struct, a top-level array is not accepted positionally.
/// `Ok(None)` means valid JSON that is not an object.
pub(crate) fn from_object<'a, T: Deserialize<'a>>(
    text: &'a str,
) -> Result<Option<T>, serde_json::Error> {
    match serde_json::from_str::<Field<Nested<T>>>(text)? {
        Field::Present(Nested(v)) => Ok(Some(v)),
        Field::Missing | Field::Invalid { .. } => Ok(None),
    }
}

/// Any JSON value, reduced to what the lenient fields need. Arrays and
/// objects are skipped (still syntax-checked) without being stored.
enum Scalar<'de> {
    Str(Cow<'de, str>),
    U64(u64),
    /// serde_json reports only negative integers as `i64`.
    Negative,
    F64(f64),
    Bool,
    Null,
    Array,
    Object,
}

impl Scalar<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Scalar::Str(_) => "a string",
            Scalar::U64(_) | Scalar::Negative | Scalar::F64(_) => "a number",
            Scalar::Bool => "a boolean",
            Scalar::Null => "null",
            Scalar::Array => "an array",
            Scalar::Object => "an object",
        }
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        // Only reached when the JSON string contained escapes.
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(match u64::try_from(v) {
            Ok(n) => Scalar::U64(n),
            Err(_) => Scalar::Negative,
        })
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::F64(v))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Object)
    }
}

/// A JSON string; borrowed when it has no escapes.
impl<'de: 'a, 'a> Deserialize<'de> for Field<Cow<'a, str>> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match d.deserialize_any(ScalarVisitor)? {
            Scalar::Str(s) => Field::Present(s),
            Scalar::Null => Field::Missing,
            other => Field::Invalid {
                expected: "a string",
                found: other.kind(),
            },
        })
    }
}

/// A non-negative integer. Twilio sends `sequenceNumber`, `chunk` and
/// `timestamp` as *strings holding integers* (reference, "Messages Twilio
/// sends") but `sampleRate`/`channels` as numbers; both spellings are accepted
/// everywhere.
impl<'de> Deserialize<'de> for Field<u64> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const EXPECTED: &str = "a non-negative integer";
        let invalid = |found| Field::Invalid {
            expected: EXPECTED,
            found,
        };
        Ok(match d.deserialize_any(ScalarVisitor)? {
            Scalar::Str(s) => match s.parse::<u64>() {
                Ok(n) => Field::Present(n),
                Err(_) => invalid("a non-numeric string"),
            },
            Scalar::U64(n) => Field::Present(n),
            Scalar::Negative => invalid("a negative number"),
            // `8000.0` is still 8000; fractions and out-of-range are not.
            Scalar::F64(x) if x >= 0.0 && x.fract() == 0.0 && x < u64::MAX as f64 => {
                Field::Present(x as u64)
            }
            Scalar::F64(_) => invalid("a fraction or out-of-range number"),
            Scalar::Null => Field::Missing,
            other => invalid(other.kind()),
        })
    }
}

struct NestedVisitor<T>(PhantomData<T>);

impl<T> NestedVisitor<T> {
    fn not_object<V>(found: &'static str) -> Field<V> {
        Field::Invalid {
            expected: "an object",
            found,
        }
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for NestedVisitor<T> {
    type Value = Field<Nested<T>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(|v| Field::Present(Nested(v)))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Self::not_object("a string"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Self::not_object("a number"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Self::not_object("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Self::not_object("a number"))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Self::not_object("a boolean"))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Missing)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Missing)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Self::not_object("an array"))
    }
}

/// A nested JSON object, parsed by `T`'s derive (only from a JSON object,
/// never positionally from an array).
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<Nested<T>> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NestedVisitor(PhantomData))
    }
}

/// Appends `s` to `out` as a JSON string literal (quotes included), escaping
/// `"`, `\` and control characters. Everything else, including non-ASCII, is
/// copied as is (valid JSON).
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `i` is an ASCII byte, hence always a char boundary.
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends `n` as a JSON string holding the integer (`"42"`), the way Twilio
/// spells `sequenceNumber`, `chunk` and `timestamp`.
pub(crate) fn push_quoted_u64(out: &mut String, n: u64) {
    out.push('"');
    push_u64(out, n);
    out.push('"');
}

/// Appends `n` in decimal without allocating.
pub(crate) fn push_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut pos = buf.len();
    loop {
        pos -= 1;
        // `n % 10 < 10`, so the cast cannot truncate.
        buf[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &buf[pos..] {
        out.push(char::from(d));
    }
}
