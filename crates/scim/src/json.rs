//! Reading a request body as a JSON object, refusing what a lenient parser would quietly
//! accept: duplicate keys (which value wins is parser-specific, so refuse rather than guess),
//! absurdly long keys, nesting past serde_json's limit, and anything that is not an object.
//! Pure.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Longest object key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 256;

/// Why a body is not an acceptable JSON object.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JsonError {
    /// Empty body.
    #[error("the request body is empty")]
    Empty,
    /// Not JSON (or nested too deep).
    #[error("the request body is not valid JSON: {0}")]
    Syntax(String),
    /// A key appears twice in one object.
    #[error("the request body has the key {0:?} twice in one object")]
    DuplicateKey(String),
    /// A key longer than [`MAX_KEY_LEN`].
    #[error("the request body has a key longer than {MAX_KEY_LEN} bytes")]
    KeyTooLong,
    /// Valid JSON, but not an object.
    #[error("the request body must be a JSON object")]
    NotObject,
}

/// Walks a document checking keys; keeps nothing.
struct Checked;

struct CheckVisitor;

impl<'de> Visitor<'de> for CheckVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if key.len() > MAX_KEY_LEN {
                return Err(de::Error::custom(KEY_TOO_LONG));
            }
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("{DUPLICATE}{key}")));
            }
            map.next_value::<Checked>()?;
        }
        Ok(Checked)
    }
}

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckVisitor)
    }
}

const DUPLICATE: &str = "\u{0}duplicate:";
const KEY_TOO_LONG: &str = "\u{0}key too long";

/// Parses `body` as one JSON object, refusing duplicate or over-long keys.
pub fn parse_object(body: &[u8]) -> Result<Value, JsonError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(JsonError::Empty);
    }
    if let Err(e) = serde_json::from_slice::<Checked>(body) {
        let text = e.to_string();
        if let Some(rest) = text.strip_prefix(DUPLICATE) {
            let key = rest.split(" at line ").next().unwrap_or(rest);
            return Err(JsonError::DuplicateKey(key.to_owned()));
        }
        if text.starts_with(KEY_TOO_LONG) {
            return Err(JsonError::KeyTooLong);
        }
        return Err(JsonError::Syntax(text));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(JsonError::NotObject),
        Err(e) => Err(JsonError::Syntax(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_objects_and_refuses_the_rest() {
        assert!(parse_object(br#"{"a": {"b": [1, {"c": null}]}, "d": "x"}"#).is_ok());
        assert_eq!(parse_object(b"  "), Err(JsonError::Empty));
        assert_eq!(parse_object(b"[1]"), Err(JsonError::NotObject));
        assert!(matches!(
            parse_object(b"{\"a\":"),
            Err(JsonError::Syntax(_))
        ));
        assert_eq!(
            parse_object(br#"{"userName": "a", "userName": "b"}"#),
            Err(JsonError::DuplicateKey("userName".into()))
        );
        assert_eq!(
            parse_object(br#"{"name": {"givenName": "a", "givenName": "b"}}"#),
            Err(JsonError::DuplicateKey("givenName".into()))
        );
        let same_in_two_objects = br#"{"emails": [{"value": "a"}, {"value": "b"}]}"#;
        assert!(parse_object(same_in_two_objects).is_ok());
        let long = format!("{{\"{}\": 1}}", "k".repeat(MAX_KEY_LEN + 1));
        assert_eq!(parse_object(long.as_bytes()), Err(JsonError::KeyTooLong));
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        assert!(matches!(
            parse_object(deep.as_bytes()),
            Err(JsonError::Syntax(_))
        ));
        assert!(matches!(
            parse_object(&[0xff, 0xfe]),
            Err(JsonError::Syntax(_))
        ));
    }
}
