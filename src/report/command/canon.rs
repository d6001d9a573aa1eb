//! The canonical byte string that an operator signs, and the strict JSON reader it is
//! computed from.
//!
//! # The canonical form
//! The signed bytes are [`DOMAIN_TAG`] followed by the canonical JSON of the envelope with
//! its `sig` member removed. Canonical JSON is the received value written again with:
//! - no whitespace anywhere;
//! - object members sorted by the UTF-8 bytes of their keys, at every depth (a key may
//!   appear only once in an object: a duplicate makes the message malformed);
//! - `null`, `true`, `false` as such;
//! - numbers: integers only (`-2^63 ..= 2^64-1`), in plain decimal with no sign on zero or
//!   positives and no leading zeros; a fraction or exponent (`1.0`, `1e3`, `-0`) is refused,
//!   so two texts for one number cannot exist;
//! - strings: `"` and `\` escaped with a backslash, U+0008, U+0009, U+000A, U+000C and
//!   U+000D as `\b \t \n \f \r`, every other control character below U+0020 as `\u00xx`
//!   (lower-case hex), and everything else, all non-ASCII included, as raw UTF-8.
//!
//! This is close to RFC 8785 (JCS) but simpler: keys sort by UTF-8 bytes rather than
//! UTF-16 units, and non-integer numbers do not exist. Because the verifier signs what it
//! parsed (not the bytes it received), key order and whitespace in transit do not matter,
//! and the value it acts on is exactly the value that was signed.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Number, Value};
use std::fmt;

/// Prefix of every signed byte string: keeps an operator signature from being valid in
/// any other protocol that uses the same key, and marks the canonical form's version.
pub const DOMAIN_TAG: &[u8] = b"vendd-cmd-v1\0";

/// Why a value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonError {
    /// A number with a fraction or an exponent, or outside the 64-bit integer range.
    #[error(
        "number {0} is not an integer: write every number as a whole number \
         (amounts in minor units, times in ms)"
    )]
    NotAnInteger(String),
    /// The bytes are not one JSON value, or an object repeats a key.
    #[error("{0}")]
    Json(String),
}

/// Reads one JSON value, refusing duplicate keys and non-integer numbers.
///
/// # Errors
/// [`CanonError::Json`] for anything but exactly one JSON value (trailing whitespace
/// allowed), invalid UTF-8, lone surrogates or a repeated key; [`CanonError::NotAnInteger`]
/// for a fraction, exponent or out-of-range number.
pub fn parse_strict(raw: &[u8]) -> Result<Value, CanonError> {
    match serde_json::from_slice::<Strict>(raw) {
        Ok(Strict(v)) => Ok(v),
        Err(e) => {
            let text = e.to_string();
            if let Some(rest) = text.strip_prefix(NOT_INTEGER) {
                let number = rest.split(" at line").next().unwrap_or(rest);
                Err(CanonError::NotAnInteger(number.to_string()))
            } else {
                Err(CanonError::Json(text))
            }
        }
    }
}

/// The canonical JSON text of `value` (see the module docs).
///
/// # Errors
/// [`CanonError::NotAnInteger`] when the value holds a non-integer number.
pub fn canonical_json(value: &Value) -> Result<String, CanonError> {
    let mut out = String::new();
    write_value(value, &mut out)?;
    Ok(out)
}

/// [`DOMAIN_TAG`] followed by the canonical JSON of `value`: the bytes that are signed.
///
/// # Errors
/// As [`canonical_json`].
pub fn signed_bytes(value: &Value) -> Result<Vec<u8>, CanonError> {
    let json = canonical_json(value)?;
    let mut out = Vec::with_capacity(DOMAIN_TAG.len() + json.len());
    out.extend_from_slice(DOMAIN_TAG);
    out.extend_from_slice(json.as_bytes());
    Ok(out)
}

fn write_value(value: &Value, out: &mut String) -> Result<(), CanonError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&integer_text(n)?),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            // serde_json's Map already iterates in key order unless some crate in the
            // build turns on its `preserve_order` feature; sort anyway so that cannot matter.
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_value(item, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn integer_text(n: &Number) -> Result<String, CanonError> {
    if let Some(u) = n.as_u64() {
        Ok(u.to_string())
    } else if let Some(i) = n.as_i64() {
        Ok(i.to_string())
    } else {
        Err(CanonError::NotAnInteger(n.to_string()))
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Marker at the start of the serde error raised for a non-integer number.
const NOT_INTEGER: &str = "non-integer number ";

/// A [`Value`] read with the strict rules (no duplicate keys, integers only).
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Number(i.into()))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(Value::Number(u.into()))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        Err(E::custom(format_args!("{NOT_INTEGER}{f}")))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(item) = map.next_value()?;
            if members.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "key `{key}` appears twice in one object"
                )));
            }
            members.insert(key, item);
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(text: &str) -> String {
        canonical_json(&parse_strict(text.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn nested_objects_are_sorted_at_every_depth_without_whitespace() {
        let text = r#" { "b" : [ {"z":1, "a":{"y":null,"x":true}} , 2 ],
                        "a" : { "d": "e", "c": false } } "#;
        assert_eq!(
            canon(text),
            r#"{"a":{"c":false,"d":"e"},"b":[{"a":{"x":true,"y":null},"z":1},2]}"#
        );
    }

    #[test]
    fn key_order_and_whitespace_do_not_change_the_canonical_form() {
        let a = canon(r#"{"x":1,"y":{"q":[1,2,{"m":"n","l":"k"}],"p":"s"}}"#);
        let b = canon(
            "{\n  \"y\": {\"p\": \"s\", \"q\": [1, 2, {\"l\": \"k\", \"m\": \"n\"}]},\t\"x\": 1\n}",
        );
        assert_eq!(a, b);
    }

    #[test]
    fn keys_sort_by_utf8_bytes_so_upper_case_and_non_ascii_have_a_fixed_place() {
        assert_eq!(
            canon(r#"{"é":1,"b":2,"B":3,"aa":4,"a":5,"":6}"#),
            r#"{"":6,"B":3,"a":5,"aa":4,"b":2,"é":1}"#
        );
        // U+FF61 sorts before U+1F600 in UTF-8 (and after it in UTF-16, where JCS differs).
        assert_eq!(
            canon(r#"{"😀":1,"｡":2}"#),
            "{\"\u{ff61}\":2,\"\u{1f600}\":1}"
        );
    }

    #[test]
    fn unicode_is_written_raw_and_escapes_are_resolved() {
        assert_eq!(canon(r#""caf\u00e9 \ud83d\ude00 ü""#), "\"café 😀 ü\"");
        assert_eq!(canon(r#""\/\u0041""#), "\"/A\"");
        assert_eq!(
            canon(r#""q\"b\\n\nt\tr\rf\fb\bz\u0000\u001f\u007f\u2028""#),
            "\"q\\\"b\\\\n\\nt\\tr\\rf\\fb\\bz\\u0000\\u001f\u{7f}\u{2028}\""
        );
    }

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_writes_them() {
        let all: String = (0u32..0x80)
            .chain([0xe9, 0x2028, 0xfeff, 0x1f600])
            .filter_map(char::from_u32)
            .collect();
        let mut ours = String::new();
        write_string(&all, &mut ours);
        assert_eq!(ours, serde_json::to_string(&all).unwrap());
    }

    #[test]
    fn integers_are_written_in_plain_decimal_across_the_whole_64_bit_range() {
        assert_eq!(
            canon("[0, -1, 42, 9223372036854775807, -9223372036854775808, 18446744073709551615]"),
            "[0,-1,42,9223372036854775807,-9223372036854775808,18446744073709551615]"
        );
    }

    #[test]
    fn fractions_exponents_negative_zero_and_huge_numbers_are_refused() {
        for bad in [
            "1.0",
            "1e3",
            "-0",
            "0.5",
            "18446744073709551616",
            "[1, 2.5]",
            "{\"a\":1E2}",
        ] {
            match parse_strict(bad.as_bytes()) {
                Err(CanonError::NotAnInteger(_)) => {}
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(canonical_json(&json!({"a": 1.5})).is_err());
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        for bad in [
            r#"{"a":1,"a":1}"#,
            r#"{"x":{"a":1,"b":2,"a":3}}"#,
            r#"[{"k":1,"k":2}]"#,
        ] {
            match parse_strict(bad.as_bytes()) {
                Err(CanonError::Json(m)) => assert!(m.contains("appears twice"), "{m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn broken_json_is_refused() {
        for bad in [
            &b""[..],
            b"{",
            b"{\"a\":1} x",
            b"{\"a\":1}{}",
            b"{'a':1}",
            b"\"\xff\"",
            b"\"\\ud800\"",
            b"[1,]",
            b"nul",
        ] {
            assert!(
                parse_strict(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn signed_bytes_start_with_the_domain_tag() {
        let b = signed_bytes(&json!({"b": 1, "a": "x"})).unwrap();
        assert_eq!(b, b"vendd-cmd-v1\0{\"a\":\"x\",\"b\":1}");
    }
}
