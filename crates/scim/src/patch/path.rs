//! Parser for PATCH `path` strings (RFC 7644 §3.5.2, `PATH = attrPath / valuePath [subAttr]`).
//!
//! Splits `[urn:]attr[.sub]` and `[urn:]attr[filter][.sub]`; the filter text itself goes to
//! `crate::filter::parse_value_filter`. Knows nothing about schemas.

use super::{PatchError, PatchPath};
use crate::filter::{MAX_FILTER_LEN, parse_value_filter};

/// How much of a client-supplied string is echoed back in an error message.
const ECHO_LIMIT: usize = 100;

/// Shortens client input for error messages (on a char boundary).
pub(super) fn echo(s: &str) -> String {
    match s.char_indices().nth(ECHO_LIMIT) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn invalid(input: &str, why: &str) -> PatchError {
    PatchError::InvalidPath(format!("invalid path '{}': {why}", echo(input)))
}

/// `ATTRNAME = ALPHA *(nameChar)`, plus `$ref`-style names (`$` followed by an ATTRNAME).
pub(super) fn is_attr_name(s: &str) -> bool {
    let body = s.strip_prefix('$').unwrap_or(s);
    let mut chars = body.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn is_urn(s: &str) -> bool {
    s.len() > 4
        && s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
        && s.chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '[' | ']' | '"'))
}

/// Byte offset (within `s`) of the `]` closing a value filter that starts right after a `[`,
/// skipping brackets inside quoted strings.
fn closing_bracket(s: &str) -> Result<usize, &'static str> {
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '[' => return Err("nested '[' is not allowed"),
            ']' => return Ok(i),
            _ => {}
        }
    }
    Err("missing ']'")
}

pub(super) fn parse(input: &str) -> Result<PatchPath, PatchError> {
    if input.len() > MAX_FILTER_LEN {
        return Err(PatchError::InvalidPath(format!(
            "invalid path: longer than {MAX_FILTER_LEN} bytes"
        )));
    }
    let s = input.trim();
    if s.is_empty() {
        return Err(PatchError::InvalidPath("invalid path: empty".to_owned()));
    }

    let (head, filter_text, tail) = match s.find('[') {
        None => (s, None, ""),
        Some(open) => {
            let after_open = s.get(open + 1..).unwrap_or("");
            let close = closing_bracket(after_open).map_err(|why| invalid(input, why))?;
            let text = after_open.get(..close).unwrap_or("");
            let tail = after_open.get(close + 1..).unwrap_or("");
            (s.get(..open).unwrap_or(""), Some(text), tail)
        }
    };

    let (urn, attr_part) = match head.rsplit_once(':') {
        Some((urn, rest)) => {
            if !is_urn(urn) {
                return Err(invalid(input, "a schema prefix must be a URN ('urn:…')"));
            }
            (Some(urn.to_owned()), rest)
        }
        None => (None, head),
    };

    let (attr, mut sub) = match attr_part.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (attr_part, None),
    };
    if !is_attr_name(attr) {
        return Err(invalid(input, "expected an attribute name"));
    }

    let filter = match filter_text {
        None => None,
        Some(text) => {
            if sub.is_some() {
                return Err(invalid(
                    input,
                    "a filter must follow the attribute, not a sub-attribute",
                ));
            }
            if text.trim().is_empty() {
                return Err(invalid(input, "empty filter '[]'"));
            }
            if !tail.is_empty() {
                match tail.strip_prefix('.') {
                    Some(rest) => sub = Some(rest),
                    None => return Err(invalid(input, "expected '.' or the end after ']'")),
                }
            }
            let filter = parse_value_filter(text)
                .map_err(|e| invalid(input, &format!("bad filter: {e}")))?;
            Some(filter)
        }
    };

    if let Some(sub) = sub
        && !is_attr_name(sub)
    {
        return Err(invalid(input, "expected a sub-attribute name after '.'"));
    }

    Ok(PatchPath {
        urn,
        attr: attr.to_owned(),
        filter,
        sub: sub.map(str::to_owned),
    })
}
