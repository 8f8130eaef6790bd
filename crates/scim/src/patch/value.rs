//! Values for PATCH: type checking and coercion against an `AttributeDef`, case-insensitive
//! JSON object access, element identity in multi-valued attributes and the `primary` rule.
//!
//! Recursion here follows the schema (complex → simple sub-attributes), never the input, so it
//! is bounded no matter what the client sends.

use std::collections::HashMap;

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use super::PatchError;
use crate::schema::{AttrType, AttributeDef, Mutability};

// ---------------------------------------------------------------------------------------------
// Case-insensitive object access
// ---------------------------------------------------------------------------------------------

/// `map[name]`, ignoring key case.
pub(super) fn get_ci<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.get(name).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// Removes every spelling of `name` from `map`. Returns the first removed value and the
/// position it had (or `map.len()`), so that [`put_at`] can put a new value back in place.
pub(super) fn take_ci(map: &mut Map<String, Value>, name: &str) -> (Option<Value>, usize) {
    let position = map
        .keys()
        .position(|k| k.eq_ignore_ascii_case(name))
        .unwrap_or(map.len());
    let keys: Vec<String> = map
        .keys()
        .filter(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .collect();
    let mut first = None;
    for k in keys {
        let removed = map.shift_remove(&k);
        if first.is_none() {
            first = removed;
        }
    }
    (first, position)
}

/// Inserts `canonical: value` at `position` (clamped), after [`take_ci`] removed the old one.
pub(super) fn put_at(map: &mut Map<String, Value>, canonical: &str, value: Value, position: usize) {
    let position = position.min(map.len());
    map.shift_insert(position, canonical.to_owned(), value);
}

/// Sets `map[canonical] = value`, replacing any differently-cased spelling of the key in place.
pub(super) fn set_ci(map: &mut Map<String, Value>, canonical: &str, value: Value) {
    if map.contains_key(canonical)
        && !map
            .keys()
            .any(|k| k != canonical && k.eq_ignore_ascii_case(canonical))
    {
        map.insert(canonical.to_owned(), value);
        return;
    }
    let (_, position) = take_ci(map, canonical);
    put_at(map, canonical, value, position);
}

/// Removes every spelling of `name` from `map`; returns the first removed value.
pub(super) fn remove_ci(map: &mut Map<String, Value>, name: &str) -> Option<Value> {
    take_ci(map, name).0
}

/// True when an attribute value counts as assigned (RFC 7643 §2.5: null and `[]` do not).
pub(super) fn is_assigned(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

// ---------------------------------------------------------------------------------------------
// Coercion
// ---------------------------------------------------------------------------------------------

fn mismatch(label: &str, kind: AttrType, got: &Value) -> PatchError {
    PatchError::InvalidValue(format!(
        "attribute '{label}' expects {}, got {}",
        kind.described(),
        crate::schema::json_kind(got)
    ))
}

fn is_date_time(s: &str) -> bool {
    let local = format_description!(
        version = 2,
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    time::OffsetDateTime::parse(s, &Rfc3339).is_ok()
        || time::PrimitiveDateTime::parse(s, local).is_ok()
}

/// Checks/coerces one value of a non-complex type. Booleans accept `"true"`/`"false"` strings
/// in any case; nothing else changes JSON type.
pub(super) fn coerce_simple(v: &Value, kind: AttrType, label: &str) -> Result<Value, PatchError> {
    let ok = match (kind, v) {
        (AttrType::Boolean, Value::Bool(_)) => true,
        (AttrType::Boolean, Value::String(s)) => {
            let s = s.trim();
            if s.eq_ignore_ascii_case("true") {
                return Ok(Value::Bool(true));
            }
            if s.eq_ignore_ascii_case("false") {
                return Ok(Value::Bool(false));
            }
            false
        }
        (AttrType::String | AttrType::Reference | AttrType::Binary, Value::String(_)) => true,
        (AttrType::DateTime, Value::String(s)) => {
            if !is_date_time(s.trim()) {
                return Err(PatchError::InvalidValue(format!(
                    "attribute '{label}' expects a dateTime (e.g. 2024-01-23T04:56:22Z)"
                )));
            }
            true
        }
        (AttrType::Integer, Value::Number(n)) => n.is_i64() || n.is_u64(),
        (AttrType::Decimal, Value::Number(_)) => true,
        // A complex sub-attribute (not allowed by RFC 7643 §2.3.8) is kept as given.
        (AttrType::Complex, Value::Object(_)) => true,
        _ => false,
    };
    if ok {
        Ok(v.clone())
    } else {
        Err(mismatch(label, kind, v))
    }
}

/// Coerces a value for a sub-attribute (which may itself be a simple multi-valued one).
fn coerce_sub(v: &Value, sub: &AttributeDef, label: &str) -> Result<Value, PatchError> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    if sub.multi_valued {
        let items: Vec<&Value> = match v {
            Value::Array(a) => a.iter().filter(|x| !x.is_null()).collect(),
            other => vec![other],
        };
        let out = items
            .into_iter()
            .map(|x| coerce_simple(x, sub.kind, label))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Value::Array(out));
    }
    coerce_simple(v, sub.kind, label)
}

/// Coerces a value aimed at sub-attribute `sub` of `attr` (label `attr.sub`).
pub(super) fn coerce_sub_value(
    v: &Value,
    attr: &AttributeDef,
    sub: &AttributeDef,
) -> Result<Value, PatchError> {
    coerce_sub(v, sub, &format!("{}.{}", attr.name, sub.name))
}

/// Coerces one complex value: known sub-attributes only (canonical names), read-only ones
/// dropped, `null` kept (it means "unassign this sub-attribute" when merging). A bare scalar
/// becomes `{"value": scalar}` when the attribute has a `value` sub-attribute (Entra sends the
/// enterprise `manager` that way).
pub(super) fn coerce_complex(
    v: &Value,
    def: &AttributeDef,
) -> Result<Map<String, Value>, PatchError> {
    let obj = match v {
        Value::Object(o) => o,
        Value::String(_) | Value::Number(_) | Value::Bool(_) => {
            let Some(value_sub) = def.sub("value") else {
                return Err(mismatch(&def.name, AttrType::Complex, v));
            };
            let mut out = Map::new();
            out.insert(value_sub.name.clone(), coerce_sub_value(v, def, value_sub)?);
            return Ok(out);
        }
        _ => return Err(mismatch(&def.name, AttrType::Complex, v)),
    };
    let mut out = Map::new();
    for (key, sv) in obj {
        let Some(sub) = def.sub(key) else { continue };
        if sub.mutability == Mutability::ReadOnly {
            continue;
        }
        let coerced = coerce_sub_value(sv, def, sub)?;
        out.insert(sub.name.clone(), coerced);
    }
    Ok(out)
}

/// Drops `null` members (an element or replacement value has no use for them).
pub(super) fn without_nulls(mut m: Map<String, Value>) -> Map<String, Value> {
    m.retain(|_, v| !v.is_null());
    m
}

/// Coerces one element of multi-valued `def`. For a simple multi-valued attribute,
/// `{"value": x}` is unwrapped to `x` (Entra sends custom multi-valued strings that way).
pub(super) fn coerce_element(v: &Value, def: &AttributeDef) -> Result<Value, PatchError> {
    if def.kind == AttrType::Complex {
        return Ok(Value::Object(without_nulls(coerce_complex(v, def)?)));
    }
    if let Value::Object(o) = v
        && o.len() == 1
        && let Some(inner) = get_ci(o, "value")
    {
        return coerce_simple(inner, def.kind, &def.name);
    }
    coerce_simple(v, def.kind, &def.name)
}

/// Coerces the value of an operation on a whole multi-valued attribute: an array of elements
/// or a single element. `null` elements and empty complex elements are dropped.
pub(super) fn coerce_elements(v: &Value, def: &AttributeDef) -> Result<Vec<Value>, PatchError> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if item.is_null() {
            continue;
        }
        let el = coerce_element(item, def)?;
        if el.as_object().is_some_and(Map::is_empty) {
            continue;
        }
        out.push(el);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Comparison and element identity
// ---------------------------------------------------------------------------------------------

/// String equality, case-insensitive (Unicode lowercase) unless `case_exact`.
pub(super) fn value_eq_str(x: &str, y: &str, case_exact: bool) -> bool {
    if case_exact {
        return x == y;
    }
    x.eq_ignore_ascii_case(y)
        || (!(x.is_ascii() && y.is_ascii()) && x.to_lowercase() == y.to_lowercase())
}

/// Equality of two attribute values; strings compare case-insensitively unless `case_exact`.
pub(super) fn value_eq(a: &Value, b: &Value, case_exact: bool) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => value_eq_str(x, y, case_exact),
        _ => a == b,
    }
}

fn sub_eq(def: &AttributeDef, name: &str, a: &Value, b: &Value) -> bool {
    let case_exact = def.sub(name).is_some_and(|s| s.case_exact);
    value_eq(a, b, case_exact)
}

/// Whether `candidate` denotes `existing` in multi-valued `def`:
/// with a `value` sub-attribute, same `value` and — when both have one — same `type`;
/// otherwise every member of `candidate` equals the same member of `existing`.
pub(super) fn element_matches(existing: &Value, candidate: &Value, def: &AttributeDef) -> bool {
    if def.kind != AttrType::Complex {
        return value_eq(existing, candidate, def.case_exact);
    }
    let (Some(e), Some(c)) = (existing.as_object(), candidate.as_object()) else {
        return false;
    };
    if let Some(cv) = get_ci(c, "value").filter(|v| !v.is_null())
        && def.sub("value").is_some()
    {
        let Some(ev) = get_ci(e, "value") else {
            return false;
        };
        if !sub_eq(def, "value", ev, cv) {
            return false;
        }
        return match (get_ci(e, "type"), get_ci(c, "type")) {
            (Some(et), Some(ct)) if !et.is_null() && !ct.is_null() => sub_eq(def, "type", et, ct),
            _ => true,
        };
    }
    !c.is_empty()
        && c.iter()
            .all(|(k, cv)| cv.is_null() || get_ci(e, k).is_some_and(|ev| sub_eq(def, k, ev, cv)))
}

/// A hashable key such that two elements of multi-valued `def` can only [`element_matches`]
/// each other when their keys are equal (`None`: the element has no `value` to key on).
fn identity_key(el: &Value, def: &AttributeDef) -> Option<String> {
    let (v, case_exact) = if def.kind == AttrType::Complex {
        let value_sub = def.sub("value")?;
        (get_ci(el.as_object()?, "value")?, value_sub.case_exact)
    } else {
        (el, def.case_exact)
    };
    match v {
        Value::String(s) if case_exact => Some(format!("s{s}")),
        Value::String(s) => Some(format!("s{}", s.to_lowercase())),
        Value::Number(_) | Value::Bool(_) => Some(format!("j{v}")),
        _ => None,
    }
}

/// Index over the elements of a multi-valued attribute for [`element_matches`] look-ups, so
/// that adding or removing k elements of an n-element attribute costs O(n + k), not O(n·k).
pub(super) struct ElementIndex {
    keyed: HashMap<String, Vec<usize>>,
    unkeyed: Vec<usize>,
}

impl ElementIndex {
    /// Indexes `items`.
    pub(super) fn new(items: &[Value], def: &AttributeDef) -> ElementIndex {
        let mut index = ElementIndex {
            keyed: HashMap::new(),
            unkeyed: Vec::new(),
        };
        for (i, el) in items.iter().enumerate() {
            index.insert(i, el, def);
        }
        index
    }

    /// Records that `items[i]` is `el`.
    pub(super) fn insert(&mut self, i: usize, el: &Value, def: &AttributeDef) {
        match identity_key(el, def) {
            Some(k) => self.keyed.entry(k).or_default().push(i),
            None => self.unkeyed.push(i),
        }
    }

    /// The first indexed element of `items` that `candidate` denotes.
    pub(super) fn find(
        &self,
        items: &[Value],
        candidate: &Value,
        def: &AttributeDef,
    ) -> Option<usize> {
        let hit = |i: &usize| {
            items
                .get(*i)
                .is_some_and(|e| element_matches(e, candidate, def))
        };
        match identity_key(candidate, def) {
            Some(k) => self.keyed.get(&k)?.iter().copied().find(hit),
            // A candidate without a `value` may match any element (sub-set comparison).
            None => {
                let mut all: Vec<usize> = self.keyed.values().flatten().copied().collect();
                all.extend(self.unkeyed.iter().copied());
                all.sort_unstable();
                all.into_iter().find(hit)
            }
        }
    }
}

/// Removes from `items` every element that one of `doomed` denotes ([`element_matches`]).
pub(super) fn remove_matching(items: &mut Vec<Value>, doomed: &[Value], def: &AttributeDef) {
    let mut keyed: HashMap<String, Vec<&Value>> = HashMap::new();
    let mut unkeyed: Vec<&Value> = Vec::new();
    for d in doomed {
        match identity_key(d, def) {
            Some(k) => keyed.entry(k).or_default().push(d),
            None => unkeyed.push(d),
        }
    }
    items.retain(|el| {
        let by_key = identity_key(el, def)
            .and_then(|k| keyed.get(&k))
            .is_some_and(|ds| ds.iter().any(|d| element_matches(el, d, def)));
        !(by_key || unkeyed.iter().any(|d| element_matches(el, d, def)))
    });
}

/// Merges `incoming` into `existing`: members set (canonical keys), `null` members removed.
pub(super) fn merge_object(existing: &mut Map<String, Value>, incoming: &Map<String, Value>) {
    for (k, v) in incoming {
        if v.is_null() {
            remove_ci(existing, k);
        } else {
            set_ci(existing, k, v.clone());
        }
    }
}

fn is_primary(v: &Value) -> bool {
    v.as_object()
        .and_then(|o| get_ci(o, "primary"))
        .is_some_and(|p| p == &Value::Bool(true))
}

/// RFC 7643 §2.4: `primary: true` at most once. Of the elements this operation `touched`, the
/// first one marked primary keeps it; every other element marked primary gets `false`.
pub(super) fn enforce_primary(elements: &mut [Value], touched: &[usize]) {
    let Some(winner) = touched
        .iter()
        .copied()
        .find(|&i| elements.get(i).is_some_and(is_primary))
    else {
        return;
    };
    for (i, el) in elements.iter_mut().enumerate() {
        if i != winner
            && is_primary(el)
            && let Value::Object(o) = el
        {
            set_ci(o, "primary", Value::Bool(false));
        }
    }
}
