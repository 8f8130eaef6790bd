//! Where a legacy field lives in a record: a top-level name (`login`), or a JSON pointer into
//! nested objects (`/profile/firstName`) whose steps may pick an element of an array by one of
//! its keys (`/custom_fields[id=7]/value`).
//!
//! A field is read from a record and written into a body with the same path; writing creates
//! what is missing on the way (objects, and the array element with its key), so a body holds
//! each written leaf with its parents and nothing else.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

/// One step of a field path.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    /// A member of an object (or, when it is a number, an index into an array).
    Key(String),
    /// The element of an array whose member `key` equals `value` (compared as text).
    Element {
        /// The member that identifies the element, e.g. `id`.
        key: String,
        /// Its value, e.g. `7`; written as JSON when the element is created.
        value: Value,
    },
}

/// A parsed legacy field: see the module documentation. Shared, not copied, when cloned (a
/// translation clones the paths it writes into a body, a few dozen per request).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldPath {
    text: Arc<str>,
    steps: Arc<[Step]>,
}

/// Why a legacy field is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldPathError {
    /// Nothing written.
    #[error("empty legacy field")]
    Empty,
    /// `/a//b`, or a pointer ending in `/`.
    #[error("{0:?} has an empty step")]
    EmptyStep(String),
    /// `name[…` without `]`, or text after `]`.
    #[error("{0:?}: an element selector is written name[key=value], at the end of a step")]
    Selector(String),
    /// `name[key]` or `name[=value]`.
    #[error("{0:?}: an element selector needs a key and a value, as in custom_fields[id=7]")]
    SelectorParts(String),
    /// A `~` not followed by `0` or `1`.
    #[error("{0:?}: '~' must be written ~0 ('/' is ~1) in a JSON pointer")]
    Escape(String),
}

impl FieldPath {
    /// Parses a field as written in a mapping: a name, or a pointer starting with `/`.
    pub fn parse(text: &str) -> Result<FieldPath, FieldPathError> {
        if text.is_empty() {
            return Err(FieldPathError::Empty);
        }
        let Some(pointer) = text.strip_prefix('/') else {
            return Ok(FieldPath {
                text: text.into(),
                steps: Arc::new([Step::Key(text.to_owned())]),
            });
        };
        let mut steps = Vec::new();
        for raw in pointer.split('/') {
            if raw.is_empty() {
                return Err(FieldPathError::EmptyStep(text.to_owned()));
            }
            let (name, selector) = match raw.split_once('[') {
                None => (raw, None),
                Some((name, rest)) => {
                    let inner = rest
                        .strip_suffix(']')
                        .filter(|i| !i.contains(']') && !name.is_empty())
                        .ok_or_else(|| FieldPathError::Selector(text.to_owned()))?;
                    (name, Some(inner))
                }
            };
            steps.push(Step::Key(unescape(name, text)?));
            if let Some(inner) = selector {
                let (key, value) = inner
                    .split_once('=')
                    .filter(|(k, v)| !k.trim().is_empty() && !v.trim().is_empty())
                    .ok_or_else(|| FieldPathError::SelectorParts(text.to_owned()))?;
                steps.push(Step::Element {
                    key: key.trim().to_owned(),
                    value: selector_value(value.trim()),
                });
            }
        }
        Ok(FieldPath {
            text: text.into(),
            steps: steps.into(),
        })
    }

    /// The field as written in the mapping.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The last member name of the path (`firstName` of `/profile/firstName`), which is what a
    /// legacy app usually names in an error about the field.
    pub fn leaf(&self) -> &str {
        self.steps
            .iter()
            .rev()
            .find_map(|s| match s {
                Step::Key(k) => Some(k.as_str()),
                Step::Element { .. } => None,
            })
            .unwrap_or(&self.text)
    }

    /// Whether the field is a top-level member (a plain name, or a one-step pointer).
    pub fn is_top_level(&self) -> bool {
        matches!(&*self.steps, [Step::Key(_)])
    }

    /// Whether one of the two paths contains the other (`/profile` and `/profile/name`): they
    /// cannot both be mapped, a write of one would overwrite the other.
    pub fn overlaps(&self, other: &FieldPath) -> bool {
        self.steps
            .iter()
            .zip(other.steps.iter())
            .all(|pair| match pair {
                (Step::Key(a), Step::Key(b)) => a == b,
                (Step::Element { key: k1, value: v1 }, Step::Element { key: k2, value: v2 }) => {
                    k1 == k2 && same_text(v1, v2)
                }
                _ => false,
            })
    }

    /// The value of the field in `record`, if it has one.
    pub fn get<'a>(&self, record: &'a Value) -> Option<&'a Value> {
        self.steps.iter().try_fold(record, |v, step| match step {
            Step::Key(k) => match v {
                Value::Object(m) => m.get(k),
                Value::Array(items) => items.get(index(k)?),
                _ => None,
            },
            Step::Element { key, value } => v
                .as_array()?
                .iter()
                .find(|e| e.get(key).is_some_and(|k| same_text(k, value))),
        })
    }

    /// Writes `value` at the field in `target`, creating the objects and the array element on
    /// the way when they are missing. A step through something that is neither an object nor
    /// an array replaces it (a body is built from nothing, so this only happens when a mapping
    /// writes two fields through each other, which `compile` refuses).
    pub fn set(&self, target: &mut Value, value: Value) {
        let mut slot = target;
        for step in self.steps.iter() {
            let array_index = match step {
                Step::Key(k) if slot.is_array() => index(k),
                _ => None,
            };
            slot = match (slot, step, array_index) {
                (Value::Array(items), _, Some(i)) => {
                    if i >= items.len() {
                        items.resize(i + 1, Value::Null);
                    }
                    &mut items[i]
                }
                (slot, Step::Key(k), _) => {
                    if !slot.is_object() {
                        *slot = Value::Object(Map::new());
                    }
                    let Value::Object(m) = slot else { return };
                    m.entry(k.clone()).or_insert(Value::Null)
                }
                (slot, Step::Element { key, value: wanted }, _) => {
                    if !slot.is_array() {
                        *slot = Value::Array(Vec::new());
                    }
                    let Value::Array(items) = slot else { return };
                    let found = items
                        .iter()
                        .position(|e| e.get(key).is_some_and(|k| same_text(k, wanted)));
                    let i = found.unwrap_or_else(|| {
                        let mut element = Map::new();
                        element.insert(key.clone(), wanted.clone());
                        items.push(Value::Object(element));
                        items.len() - 1
                    });
                    &mut items[i]
                }
            };
        }
        *slot = value;
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `7` → the number 7, `true` → true, `"7"` → the string "7", `abc` → the string "abc".
fn selector_value(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::String(_))) => v,
        _ => Value::String(text.to_owned()),
    }
}

fn unescape(token: &str, whole: &str) -> Result<String, FieldPathError> {
    if !token.contains('~') {
        return Ok(token.to_owned());
    }
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c != '~' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('~'),
            Some('1') => out.push('/'),
            _ => return Err(FieldPathError::Escape(whole.to_owned())),
        }
    }
    Ok(out)
}

/// An array index as a JSON pointer writes it (no sign, no leading zero).
fn index(token: &str) -> Option<usize> {
    if token.is_empty()
        || (token.len() > 1 && token.starts_with('0'))
        || !token.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    token.parse().ok()
}

/// Whether two scalars read the same as text (`7` and `"7"`; the selector is typed loosely
/// because legacy apps are).
pub(crate) fn same_text(a: &Value, b: &Value) -> bool {
    fn text(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    a == b || text(a).is_some_and(|t| Some(t) == text(b))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{FieldPath, FieldPathError};

    fn p(text: &str) -> FieldPath {
        FieldPath::parse(text).unwrap()
    }

    #[test]
    fn a_plain_name_is_a_top_level_member_even_with_a_slash_inside() {
        let f = p("nickname");
        assert!(f.is_top_level());
        assert_eq!(f.get(&json!({"nickname": "Jane"})), Some(&json!("Jane")));
        let odd = p("a/b");
        assert_eq!(odd.get(&json!({"a/b": 1, "a": {"b": 2}})), Some(&json!(1)));
    }

    #[test]
    fn a_pointer_reads_nested_members_and_array_indexes() {
        let r = json!({"profile": {"firstName": "Jane", "tags": ["a", "b"]}, "x~y": {"a/b": 3}});
        assert_eq!(p("/profile/firstName").get(&r), Some(&json!("Jane")));
        assert_eq!(p("/profile/tags/1").get(&r), Some(&json!("b")));
        assert_eq!(p("/profile/tags/01").get(&r), None);
        assert_eq!(p("/x~0y/a~1b").get(&r), Some(&json!(3)));
        assert_eq!(p("/profile/missing").get(&r), None);
        assert_eq!(p("/profile/firstName").leaf(), "firstName");
        assert!(!p("/profile/firstName").is_top_level());
        assert!(p("/login").is_top_level());
    }

    #[test]
    fn an_element_selector_finds_the_element_by_its_key_as_text() {
        let r = json!({"custom_fields": [
            {"id": 3, "name": "Team", "value": "Blue"},
            {"id": 7, "name": "Okta id", "value": "00u1"},
        ]});
        assert_eq!(
            p("/custom_fields[id=7]/value").get(&r),
            Some(&json!("00u1"))
        );
        assert_eq!(
            p("/custom_fields[id=\"7\"]/value").get(&r),
            Some(&json!("00u1"))
        );
        assert_eq!(
            p("/custom_fields[name=Team]/value").get(&r),
            Some(&json!("Blue"))
        );
        assert_eq!(p("/custom_fields[id=9]/value").get(&r), None);
        assert_eq!(p("/custom_fields[id=7]/value").leaf(), "value");
    }

    #[test]
    fn writing_creates_parents_and_the_element_with_its_key() {
        let mut body = json!({});
        p("/profile/firstName").set(&mut body, json!("Jane"));
        p("/profile/lastName").set(&mut body, json!("Doe"));
        p("/custom_fields[id=7]/value").set(&mut body, json!("00u1"));
        p("/custom_fields[id=3]/value").set(&mut body, json!(null));
        p("login").set(&mut body, json!("jdoe"));
        assert_eq!(
            body,
            json!({
                "profile": {"firstName": "Jane", "lastName": "Doe"},
                "custom_fields": [{"id": 7, "value": "00u1"}, {"id": 3, "value": null}],
                "login": "jdoe",
            })
        );
        // Writing again into an existing element changes it in place.
        p("/custom_fields[id=7]/value").set(&mut body, json!("00u2"));
        assert_eq!(body["custom_fields"][0], json!({"id": 7, "value": "00u2"}));
        let mut list = json!({"tags": ["a"]});
        p("/tags/2").set(&mut list, json!("c"));
        assert_eq!(list, json!({"tags": ["a", null, "c"]}));
    }

    #[test]
    fn overlapping_paths_are_told() {
        assert!(p("/profile").overlaps(&p("/profile/firstName")));
        assert!(p("/profile/firstName").overlaps(&p("/profile")));
        assert!(p("login").overlaps(&p("/login")));
        assert!(!p("/profile/firstName").overlaps(&p("/profile/lastName")));
        assert!(!p("/custom_fields[id=7]/value").overlaps(&p("/custom_fields[id=3]/value")));
        assert!(p("/custom_fields[id=7]/value").overlaps(&p("/custom_fields[id=\"7\"]/value")));
    }

    #[test]
    fn malformed_fields_are_refused_with_the_reason() {
        assert_eq!(FieldPath::parse(""), Err(FieldPathError::Empty));
        for (text, want) in [
            ("/a//b", FieldPathError::EmptyStep("/a//b".into())),
            ("/a/", FieldPathError::EmptyStep("/a/".into())),
            ("/", FieldPathError::EmptyStep("/".into())),
            ("/cf[id=7", FieldPathError::Selector("/cf[id=7".into())),
            ("/cf[id=7]x", FieldPathError::Selector("/cf[id=7]x".into())),
            ("/[id=7]", FieldPathError::Selector("/[id=7]".into())),
            ("/cf[id]", FieldPathError::SelectorParts("/cf[id]".into())),
            ("/cf[=7]", FieldPathError::SelectorParts("/cf[=7]".into())),
            ("/a~2", FieldPathError::Escape("/a~2".into())),
        ] {
            assert_eq!(FieldPath::parse(text), Err(want), "{text}");
        }
    }
}
