//! Filter evaluation over resource JSON (RFC 7644 §3.4.2.2).
//!
//! Rules:
//! - Attribute names (and JSON keys) match case-insensitively. Extension attributes are read
//!   from the object under the extension URN key; an unqualified name that only an extension
//!   defines is read from there too.
//! - String comparisons fold case unless the attribute is `caseExact` in the schema (`id`,
//!   `externalId`, `meta.location`, ...). Unknown attributes compare case-insensitively.
//! - A multi-valued attribute matches if ANY of its values matches; `emails.value eq "x"`
//!   matches if any element's `value` does. Comparing a complex attribute without naming a
//!   sub-attribute (`emails eq "x"`, `manager eq "x"`) compares each element's `value`.
//! - `pr`: at least one value that is not null, not `""`, not `[]` and, for complex values,
//!   has at least one present member.
//! - `eq null` is true exactly when the attribute is not present (`not (x pr)`).
//! - `ne` is the negation of `eq` over the whole attribute: true when the attribute is absent
//!   and, for multi-valued attributes, true only when no value equals the literal.
//! - Booleans compare as booleans (a JSON string `"true"`/`"false"` in the resource is
//!   accepted too); only `eq`/`ne` apply. Numbers compare numerically (a numeric string in
//!   the resource is compared numerically as well).
//! - `dateTime` attributes (`meta.created`, `meta.lastModified`, ...) compare as instants when
//!   both sides parse as RFC 3339, else as strings.
//! - `gt`/`ge`/`lt`/`le` on strings compare lexicographically (after case folding unless
//!   `caseExact`); on booleans and complex values they never match.
//!
//! And/or chains are walked iteratively along their left spine, so evaluation recursion is
//! bounded by the parser's nesting limit for parsed filters.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Number, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{AttrPath, CompareOp, Filter};
use crate::schema::{AttrType, AttributeDef, ResourceSchema};

/// What the paths of a filter are relative to.
#[derive(Clone, Copy)]
pub(super) enum Scope<'a> {
    /// A whole resource described by a resource schema.
    Resource(&'a ResourceSchema),
    /// One element of a (multi-valued) complex attribute; `None` when the attribute is unknown.
    Element(Option<&'a AttributeDef>),
}

/// How deep `pr` looks into nested JSON before treating a non-null value as present.
const PRESENCE_DEPTH: usize = 8;

/// Evaluates `filter` against `json` in `scope`.
pub(super) fn matches(filter: &Filter, json: &Value, scope: Scope<'_>) -> bool {
    let mut f = filter;
    loop {
        match f {
            Filter::And(a, b) => {
                if !matches(b, json, scope) {
                    return false;
                }
                f = a;
            }
            Filter::Or(a, b) => {
                if matches(b, json, scope) {
                    return true;
                }
                f = a;
            }
            Filter::Not(a) => return !matches(a, json, scope),
            Filter::Present(path) => {
                let (values, _) = lookup(path, json, scope);
                return values.iter().any(|v| is_present(v, PRESENCE_DEPTH));
            }
            Filter::Compare(path, op, literal) => return compare(path, *op, literal, json, scope),
            Filter::ValuePath(path, inner) => {
                let (values, def) = lookup(path, json, scope);
                return values
                    .iter()
                    .filter(|v| v.is_object())
                    .any(|v| matches(inner, v, Scope::Element(def)));
            }
        }
    }
}

fn compare(
    path: &AttrPath,
    op: CompareOp,
    literal: &Value,
    json: &Value,
    scope: Scope<'_>,
) -> bool {
    if op == CompareOp::Ne {
        return !compare(path, CompareOp::Eq, literal, json, scope);
    }
    let (values, def) = lookup(path, json, scope);
    if literal.is_null() {
        return op == CompareOp::Eq && !values.iter().any(|v| is_present(v, PRESENCE_DEPTH));
    }
    // A complex value without a named sub-attribute is compared through its `value`.
    let complex_value = def.is_some_and(|d| d.kind == AttrType::Complex);
    let leaf = if complex_value {
        def.and_then(|d| d.sub("value"))
    } else {
        def
    };
    values.iter().any(|v| {
        let v = if v.is_object() {
            get_ci(v, "value")
        } else {
            Some(*v)
        };
        v.is_some_and(|v| compare_one(v, op, literal, leaf))
    })
}

/// Compares one resource value with the literal (`op` is never `Ne`).
fn compare_one(value: &Value, op: CompareOp, literal: &Value, def: Option<&AttributeDef>) -> bool {
    match (literal, value) {
        (Value::Bool(l), Value::Bool(v)) => op == CompareOp::Eq && l == v,
        (Value::Bool(l), Value::String(v)) => {
            op == CompareOp::Eq && v.eq_ignore_ascii_case(if *l { "true" } else { "false" })
        }
        (Value::Number(l), Value::Number(v)) => numeric(op, cmp_numbers(v, l)),
        (Value::Number(l), Value::String(v)) => match v.trim().parse::<f64>() {
            Ok(v) => l.as_f64().is_some_and(|l| numeric(op, v.partial_cmp(&l))),
            Err(_) => false,
        },
        (Value::String(l), Value::Number(v)) => match l.trim().parse::<f64>() {
            Ok(l) => v.as_f64().is_some_and(|v| numeric(op, v.partial_cmp(&l))),
            Err(_) => false,
        },
        (Value::String(l), Value::Bool(v)) => {
            op == CompareOp::Eq && l.eq_ignore_ascii_case(if *v { "true" } else { "false" })
        }
        (Value::String(l), Value::String(v)) => {
            let is_date = def.is_some_and(|d| d.kind == AttrType::DateTime);
            if is_date
                && !op.is_substring()
                && let (Ok(v), Ok(l)) = (
                    OffsetDateTime::parse(v, &Rfc3339),
                    OffsetDateTime::parse(l, &Rfc3339),
                )
            {
                return ordering(op, v.cmp(&l));
            }
            compare_strings(v, op, l, def.is_some_and(|d| d.case_exact))
        }
        _ => false,
    }
}

fn compare_strings(value: &str, op: CompareOp, literal: &str, case_exact: bool) -> bool {
    let (v, l): (Cow<'_, str>, Cow<'_, str>) = if case_exact {
        (Cow::Borrowed(value), Cow::Borrowed(literal))
    } else {
        (
            Cow::Owned(value.to_lowercase()),
            Cow::Owned(literal.to_lowercase()),
        )
    };
    match op {
        CompareOp::Co => v.contains(l.as_ref()),
        CompareOp::Sw => v.starts_with(l.as_ref()),
        CompareOp::Ew => v.ends_with(l.as_ref()),
        _ => ordering(op, v.cmp(&l)),
    }
}

/// Applies an equality / ordering operator to `value.cmp(literal)`.
fn ordering(op: CompareOp, ord: Ordering) -> bool {
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

/// Numeric comparison: substring operators never match numbers.
fn numeric(op: CompareOp, ord: Option<Ordering>) -> bool {
    ord.is_some_and(|ord| ordering(op, ord))
}

fn cmp_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return Some(a.cmp(&b));
    }
    if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
        return Some(a.cmp(&b));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// The values `path` denotes in `json` (arrays flattened one level) and the definition of
/// the leaf the path names, when known.
fn lookup<'v, 's>(
    path: &AttrPath,
    json: &'v Value,
    scope: Scope<'s>,
) -> (Vec<&'v Value>, Option<&'s AttributeDef>) {
    let (top, def) = match scope {
        Scope::Resource(schema) => {
            let resolved = schema.resolve(path);
            let container = match (resolved.as_ref().map(|r| r.extension), &path.urn) {
                (Some(Some(ext)), _) => get_ci(json, ext),
                (Some(None), _) => Some(json),
                (None, Some(urn)) if !urn.eq_ignore_ascii_case(&schema.core.id) => {
                    get_ci(json, urn)
                }
                (None, _) => Some(json),
            };
            (
                container.and_then(|c| get_ci(c, &path.name)),
                resolved.map(|r| r.leaf()),
            )
        }
        Scope::Element(parent) => {
            let attr = parent.and_then(|p| p.sub(&path.name));
            let def = match &path.sub {
                Some(sub) => attr.and_then(|a| a.sub(sub)),
                None => attr,
            };
            (get_ci(json, &path.name), def)
        }
    };
    let mut values = Vec::new();
    if let Some(top) = top {
        match &path.sub {
            None => flatten_into(top, &mut values),
            Some(sub) => {
                let mut parents = Vec::new();
                flatten_into(top, &mut parents);
                for p in parents {
                    if let Some(v) = get_ci(p, sub) {
                        flatten_into(v, &mut values);
                    }
                }
            }
        }
    }
    (values, def)
}

fn flatten_into<'v>(v: &'v Value, out: &mut Vec<&'v Value>) {
    match v {
        Value::Array(items) => out.extend(items.iter()),
        other => out.push(other),
    }
}

/// The member `key` of an object, matched exactly first, then case-insensitively.
pub(super) fn get_ci<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    let obj = v.as_object()?;
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// RFC 7644 `pr`: not null, not an empty string or array, and complex values with at least
/// one present member. Beyond `depth` levels any non-null value counts as present.
fn is_present(v: &Value, depth: usize) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) if depth == 0 => !items.is_empty(),
        Value::Array(items) => items.iter().any(|x| is_present(x, depth - 1)),
        Value::Object(members) if depth == 0 => !members.is_empty(),
        Value::Object(members) => members.values().any(|x| is_present(x, depth - 1)),
        Value::Bool(_) | Value::Number(_) => true,
    }
}
