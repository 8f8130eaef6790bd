//! Attribute paths (`[URN ":"] name ["." sub]`, RFC 7644 §3.10): the start every filter, PATCH
//! path and `attributes` list shares, and the syntax error of those grammars.
//!
//! At the bottom of the crate: depends on nothing else in it, so that [`crate::schema`] can
//! resolve paths and [`crate::filter`] can parse them without importing each other.

use std::fmt;

const EXPECT_NAME: &str = "attribute name";

/// Longest accepted filter (or attribute path), in characters; longer input fails at
/// position 0.
pub const MAX_FILTER_LEN: usize = 4096;

pub(crate) fn too_long() -> String {
    format!("a filter of at most {MAX_FILTER_LEN} characters")
}

/// An attribute path: `urn:...:User:name.givenName` → urn `Some("urn:...:User")`, name
/// `"name"`, sub `Some("givenName")`. Names keep the case they were written in; all lookups
/// are case-insensitive.
#[derive(Clone, Debug, PartialEq)]
pub struct AttrPath {
    /// Schema URN prefix, if the path was qualified.
    pub urn: Option<String>,
    /// Top-level attribute name.
    pub name: String,
    /// Sub-attribute name, if any.
    pub sub: Option<String>,
}

impl AttrPath {
    /// Parses `[URN ":"] name ["." sub]` (surrounding whitespace is ignored). The URN is
    /// everything before the last `:`; names start with a letter (or `$`, for `$ref`) and
    /// continue with letters, digits, `-` and `_`.
    pub fn parse(s: &str) -> Result<AttrPath, FilterError> {
        if s.chars().count() > MAX_FILTER_LEN {
            return Err(FilterError::new(0, too_long()));
        }
        let lead = s.chars().take_while(|c| c.is_whitespace()).count();
        parse_attr_path(s.trim(), lead)
    }

    /// A path without URN or sub-attribute.
    pub fn simple(name: &str) -> AttrPath {
        AttrPath {
            urn: None,
            name: name.to_owned(),
            sub: None,
        }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// Why a filter (or attribute path) was rejected: the character position (0-based, counted
/// in chars) and what was expected there.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid filter at position {position}: expected {expected}")]
pub struct FilterError {
    /// 0-based character offset into the input.
    pub position: usize,
    /// What the parser expected at that position.
    pub expected: String,
}

impl FilterError {
    pub(crate) fn new(position: usize, expected: impl Into<String>) -> FilterError {
        FilterError {
            position,
            expected: expected.into(),
        }
    }
}

/// Parses an attribute path that starts at character offset `offset` of the whole input
/// (for error positions).
pub(crate) fn parse_attr_path(s: &str, offset: usize) -> Result<AttrPath, FilterError> {
    let chars: Vec<char> = s.chars().collect();
    let (urn, rest_start) = match chars.iter().rposition(|&c| c == ':') {
        Some(colon) => {
            let urn: String = chars.iter().take(colon).collect();
            if urn.is_empty() {
                return Err(FilterError::new(offset, "schema URN before ':'"));
            }
            if let Some(bad) = chars.iter().take(colon).position(|c| c.is_whitespace()) {
                return Err(FilterError::new(
                    offset + bad,
                    "schema URN without whitespace",
                ));
            }
            (Some(urn), colon + 1)
        }
        None => (None, 0),
    };
    let (name, after_name) = attr_name(&chars, rest_start, offset)?;
    let sub = match chars.get(after_name) {
        None => None,
        Some('.') => {
            let (sub, after_sub) = attr_name(&chars, after_name + 1, offset)?;
            if after_sub != chars.len() {
                return Err(FilterError::new(
                    offset + after_sub,
                    "end of attribute path",
                ));
            }
            Some(sub)
        }
        Some(_) => {
            return Err(FilterError::new(
                offset + after_name,
                "'.' or end of attribute path",
            ));
        }
    };
    Ok(AttrPath { urn, name, sub })
}

/// `ALPHA *(ALPHA / DIGIT / "-" / "_")`, or `$` followed by the same (for `$ref`).
fn attr_name(chars: &[char], start: usize, offset: usize) -> Result<(String, usize), FilterError> {
    match chars.get(start) {
        Some(c) if c.is_ascii_alphabetic() || *c == '$' => {}
        _ => return Err(FilterError::new(offset + start, EXPECT_NAME)),
    }
    let mut end = start + 1;
    while chars
        .get(end)
        .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        end += 1;
    }
    if chars.get(start) == Some(&'$') && end == start + 1 {
        return Err(FilterError::new(offset + end, EXPECT_NAME));
    }
    let name: String = chars.get(start..end).unwrap_or_default().iter().collect();
    Ok((name, end))
}
