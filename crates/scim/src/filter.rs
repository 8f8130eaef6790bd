//! The SCIM filter language (RFC 7644 §3.4.2.2): attribute paths, the filter AST, a bounded
//! parser and evaluation over resource JSON.
//!
//! Grammar (case-insensitive keywords and attribute names, whitespace tolerant):
//!
//! ```text
//! filter    = orExp
//! orExp     = andExp *("or" andExp)
//! andExp    = unary *("and" unary)
//! unary     = "not" "(" filter ")" / "(" filter ")" / attrExp / valuePath
//! valuePath = attrPath "[" filter "]"          ; not nested, inner paths relative
//! attrExp   = attrPath "pr" / attrPath compareOp compValue
//! compareOp = "eq" / "ne" / "co" / "sw" / "ew" / "gt" / "ge" / "lt" / "le"
//! compValue = "false" / "null" / "true" / number / string   ; JSON literals
//! attrPath  = [URI ":"] ATTRNAME ["." ATTRNAME]
//! ```
//!
//! Precedence is `not` > `and` > `or`; `and`/`or` associate to the left. The parser never
//! recurses deeper than [`MAX_FILTER_DEPTH`] levels of parentheses / `not` / `[..]` and
//! rejects input longer than [`MAX_FILTER_LEN`] characters, so no input can exhaust the stack.
//!
//! Pure: depends only on serde_json, thiserror, time and [`crate::schema`]; no I/O.

mod eval;
mod lexer;
mod parser;
#[cfg(test)]
mod tests;

use std::fmt;

use serde_json::Value;

use crate::attr::too_long;
pub use crate::attr::{AttrPath, FilterError, MAX_FILTER_LEN};
use crate::schema::{AttrType, AttributeDef, ResourceSchema};

/// A comparison operator (RFC 7644 Table 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Contains (substring).
    Co,
    /// Starts with.
    Sw,
    /// Ends with.
    Ew,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
}

impl CompareOp {
    /// The lowercase operator keyword, e.g. `"eq"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    /// Parses an operator keyword case-insensitively (`pr` is not a comparison operator).
    pub fn from_keyword(s: &str) -> Option<CompareOp> {
        const ALL: [CompareOp; 9] = [
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Co,
            CompareOp::Sw,
            CompareOp::Ew,
            CompareOp::Gt,
            CompareOp::Ge,
            CompareOp::Lt,
            CompareOp::Le,
        ];
        ALL.into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(s))
    }

    /// Whether this is one of the ordering operators `gt`, `ge`, `lt`, `le`.
    pub fn is_ordering(self) -> bool {
        matches!(
            self,
            CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
        )
    }

    /// Whether this is one of the substring operators `co`, `sw`, `ew`.
    pub fn is_substring(self) -> bool {
        matches!(self, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed filter expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// `attr pr`.
    Present(AttrPath),
    /// `attr op value`; the value is a JSON string, number, bool or null.
    Compare(AttrPath, CompareOp, Value),
    /// `a and b`.
    And(Box<Filter>, Box<Filter>),
    /// `a or b`.
    Or(Box<Filter>, Box<Filter>),
    /// `not (a)`.
    Not(Box<Filter>),
    /// `emails[type eq "work" and value co "@x"]` — the inner filter's paths are relative to
    /// one element. `emails[type eq "work"].value eq "x"` is not valid RFC filter syntax
    /// except inside PATCH paths.
    ValuePath(AttrPath, Box<Filter>),
}

/// Deepest accepted nesting of parentheses, `not` and `[..]`; deeper input fails without
/// recursing further.
pub const MAX_FILTER_DEPTH: usize = 32;

/// Parses a filter (the `filter` query parameter, already URL-decoded).
pub fn parse(input: &str) -> Result<Filter, FilterError> {
    parser::parse(input, false)
}

/// The filter inside `[...]` of a PATCH path (same grammar, paths relative to the element,
/// no nested value paths).
pub fn parse_value_filter(input: &str) -> Result<Filter, FilterError> {
    parser::parse(input, true)
}

impl Filter {
    /// Type-checks against the schema: `gt`/`ge`/`lt`/`le` on booleans, binaries or complex
    /// attributes, `co`/`sw`/`ew` on booleans, numbers or complex attributes, and comparisons
    /// on a complex attribute that has no `value` sub-attribute are errors (position 0).
    /// Unknown attributes are NOT errors (they simply never match).
    pub fn validate(&self, schema: &ResourceSchema) -> Result<(), FilterError> {
        let mut stack: Vec<(&Filter, Option<&AttributeDef>)> = vec![(self, None)];
        while let Some((f, parent)) = stack.pop() {
            match f {
                Filter::Present(_) => {}
                Filter::Compare(path, op, _) => {
                    let leaf = match parent {
                        Some(p) => relative_leaf(p, path),
                        None => schema.resolve(path).map(|r| r.leaf()),
                    };
                    if let Some(leaf) = leaf {
                        check_operator(path, *op, leaf)?;
                    }
                }
                Filter::And(a, b) | Filter::Or(a, b) => {
                    stack.push((b, parent));
                    stack.push((a, parent));
                }
                Filter::Not(a) => stack.push((a, parent)),
                Filter::ValuePath(path, inner) => {
                    let def = match parent {
                        Some(p) => relative_leaf(p, path),
                        None => schema.resolve(path).map(|r| r.leaf()),
                    };
                    // An unknown attribute never matches, whatever the inner filter says.
                    if let Some(def) = def {
                        stack.push((inner, Some(def)));
                    }
                }
            }
        }
        Ok(())
    }

    /// RFC 7644 §3.4.2.2 semantics over a resource JSON object; see the `eval` module docs
    /// for the exact rules (case exactness, multi-valued attributes, `pr`, `ne`, dates).
    pub fn matches(&self, resource: &Value, schema: &ResourceSchema) -> bool {
        eval::matches(self, resource, eval::Scope::Resource(schema))
    }

    /// Same, for the inner filter of a value path, against one element of a multi-valued
    /// attribute described by `parent` (paths name `parent`'s sub-attributes).
    pub fn matches_element(&self, element: &Value, parent: &AttributeDef) -> bool {
        eval::matches(self, element, eval::Scope::Element(Some(parent)))
    }
}

/// The definition a relative path (inside `[..]`) names under `parent`.
fn relative_leaf<'a>(parent: &'a AttributeDef, path: &AttrPath) -> Option<&'a AttributeDef> {
    let attr = parent.sub(&path.name)?;
    match &path.sub {
        Some(sub) => attr.sub(sub),
        None => Some(attr),
    }
}

fn check_operator(path: &AttrPath, op: CompareOp, leaf: &AttributeDef) -> Result<(), FilterError> {
    let kind = match leaf.kind {
        AttrType::Complex => match leaf.sub("value") {
            Some(value) => value.kind,
            None => {
                return Err(FilterError::new(
                    0,
                    format!("a sub-attribute of complex attribute '{path}' to compare"),
                ));
            }
        },
        k => k,
    };
    let bad = match kind {
        AttrType::Boolean => op.is_ordering() || op.is_substring(),
        AttrType::Binary => op.is_ordering(),
        AttrType::Integer | AttrType::Decimal => op.is_substring(),
        AttrType::Complex => true,
        AttrType::String | AttrType::DateTime | AttrType::Reference => false,
    };
    if bad {
        return Err(FilterError::new(
            0,
            format!(
                "an operator applicable to {} attribute '{path}' (got '{op}')",
                kind.as_str()
            ),
        ));
    }
    Ok(())
}

impl fmt::Display for Filter {
    /// Canonical text form: `parse(&f.to_string()) == Ok(f)` for every parsed filter whose
    /// text form fits the parser's bounds. The form can be longer than the input (control
    /// characters are escaped) or one level deeper (`emails[…].value eq "x"` is written as a
    /// value path with `and`), so near [`MAX_FILTER_LEN`] / [`MAX_FILTER_DEPTH`] it may not
    /// parse again; the sidecar never parses a rendered filter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Present(p) => write!(f, "{p} pr"),
            Filter::Compare(p, op, v) => write!(f, "{p} {op} {v}"),
            Filter::And(a, b) => {
                write_operand(f, a, false)?;
                f.write_str(" and ")?;
                write_operand(f, b, true)
            }
            Filter::Or(a, b) => {
                write_or_operand(f, a, false)?;
                f.write_str(" or ")?;
                write_or_operand(f, b, true)
            }
            Filter::Not(a) => write!(f, "not ({a})"),
            Filter::ValuePath(p, inner) => write!(f, "{p}[{inner}]"),
        }
    }
}

/// Writes an operand of `and`: `or` always needs parentheses, a right-hand `and` too.
fn write_operand(f: &mut fmt::Formatter<'_>, x: &Filter, right: bool) -> fmt::Result {
    match x {
        Filter::Or(..) => write!(f, "({x})"),
        Filter::And(..) if right => write!(f, "({x})"),
        _ => write!(f, "{x}"),
    }
}

/// Writes an operand of `or`: only a right-hand `or` needs parentheses.
fn write_or_operand(f: &mut fmt::Formatter<'_>, x: &Filter, right: bool) -> fmt::Result {
    match x {
        Filter::Or(..) if right => write!(f, "({x})"),
        _ => write!(f, "{x}"),
    }
}
