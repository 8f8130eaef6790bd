//! The PATCH apply engine: resolves each operation's target against the `ResourceSchema` and
//! rewrites the resource JSON (RFC 7644 §3.5.2.1–3), one operation after another, on a copy.
//!
//! Every attribute is rewritten functionally: its old value is taken out of the container, a
//! new value is computed (or an error returned), and the new value is put back at the same
//! position. Recursion is bounded by the schema (resource → extension → attribute → element →
//! sub-attribute), never by the input.

use serde_json::{Map, Value};

use super::value::{
    ElementIndex, coerce_complex, coerce_element, coerce_elements, coerce_simple, coerce_sub_value,
    enforce_primary, get_ci, is_assigned, merge_object, put_at, remove_ci, remove_matching, set_ci,
    take_ci, value_eq, value_eq_str,
};
use super::{PatchError, PatchOpKind, PatchOperation, PatchPath, at_operation, path};
use crate::filter::{AttrPath, CompareOp, Filter};
use crate::schema::{AttrType, AttributeDef, Mutability, ResourceSchema, SchemaDef};

/// What a path designates.
enum Target<'a> {
    /// A whole schema: the path (or a path-less key) is exactly a schema URN.
    Schema { def: &'a SchemaDef, core: bool },
    /// An attribute, possibly narrowed by a value filter and/or a sub-attribute.
    Attr(AttrTarget<'a>),
}

/// A resolved attribute target.
struct AttrTarget<'a> {
    /// The extension URN whose object holds the attribute; `None` for core/common attributes.
    ext: Option<&'a str>,
    attr: &'a AttributeDef,
    filter: Option<&'a Filter>,
    sub: Option<&'a AttributeDef>,
}

impl AttrTarget<'_> {
    /// Canonical `attr[…].sub` for messages.
    fn label(&self) -> String {
        let mut s = self.attr.name.clone();
        if self.filter.is_some() {
            s.push_str("[…]");
        }
        if let Some(sub) = self.sub {
            s.push('.');
            s.push_str(&sub.name);
        }
        s
    }

    fn read_only(&self) -> bool {
        self.attr.mutability == Mutability::ReadOnly
            || self
                .sub
                .is_some_and(|s| s.mutability == Mutability::ReadOnly)
    }
}

pub(super) fn apply_all(
    resource: &mut Value,
    ops: &[PatchOperation],
    schema: &ResourceSchema,
) -> Result<(), PatchError> {
    let work = apply_owned(resource.clone(), ops, schema)?;
    *resource = work;
    Ok(())
}

/// Applies `ops` to `resource` in place; on error the partly patched value is dropped.
pub(super) fn apply_owned(
    mut resource: Value,
    ops: &[PatchOperation],
    schema: &ResourceSchema,
) -> Result<Value, PatchError> {
    let Value::Object(root) = &mut resource else {
        return Err(PatchError::InvalidValue(
            "the resource is not a JSON object".to_owned(),
        ));
    };
    for (i, op) in ops.iter().enumerate() {
        apply_one(root, op, schema).map_err(|e| at_operation(i, e))?;
    }
    Ok(resource)
}

fn apply_one(
    root: &mut Map<String, Value>,
    op: &PatchOperation,
    schema: &ResourceSchema,
) -> Result<(), PatchError> {
    let required_before = required_present(root, schema);
    let mut touched: Vec<String> = Vec::new();
    match &op.path {
        None => {
            if op.op == PatchOpKind::Remove {
                return Err(PatchError::NoTarget(
                    "remove requires a \"path\"".to_owned(),
                ));
            }
            let Some(Value::Object(obj)) = &op.value else {
                return Err(PatchError::InvalidValue(format!(
                    "{} without a \"path\" requires an object \"value\"",
                    op.op
                )));
            };
            pathless(root, obj, op.op, schema, None, &mut touched)?;
        }
        Some(path) => match resolve(path, schema)? {
            Target::Schema { def, core } => {
                whole_schema(root, def, core, op, schema, &mut touched)?;
            }
            Target::Attr(t) => {
                if t.read_only() {
                    return Err(PatchError::Mutability(format!(
                        "attribute '{}' is read-only",
                        t.label()
                    )));
                }
                apply_attr(root, &t, op.op, op.value.as_ref(), &mut touched)?;
            }
        },
    }
    tidy_extensions(root, &schema.core.id, &touched);
    check_required(root, schema, &required_before)
}

// ---------------------------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------------------------

fn schema_by_id<'a>(schema: &'a ResourceSchema, id: &str) -> Option<(&'a SchemaDef, bool)> {
    if schema.core.id.eq_ignore_ascii_case(id) {
        return Some((&schema.core, true));
    }
    schema
        .extensions
        .iter()
        .find(|e| e.id.eq_ignore_ascii_case(id))
        .map(|e| (e, false))
}

fn resolve<'a>(path: &'a PatchPath, schema: &'a ResourceSchema) -> Result<Target<'a>, PatchError> {
    if path.filter.is_none()
        && path.sub.is_none()
        && let Some(urn) = &path.urn
        && let Some((def, core)) = schema_by_id(schema, &format!("{urn}:{}", path.attr))
    {
        return Ok(Target::Schema { def, core });
    }
    let attr_path = AttrPath {
        urn: path.urn.clone(),
        name: path.attr.clone(),
        sub: path.sub.clone(),
    };
    let resolved = schema.resolve(&attr_path).ok_or_else(|| {
        PatchError::InvalidPath(format!(
            "unknown attribute '{}'",
            path::echo(&path.to_string())
        ))
    })?;
    if path.sub.is_some() && resolved.sub.is_none() {
        return Err(PatchError::InvalidPath(format!(
            "unknown attribute '{}'",
            path::echo(&path.to_string())
        )));
    }
    if let Some(filter) = &path.filter {
        if !resolved.attr.multi_valued {
            return Err(PatchError::InvalidPath(format!(
                "attribute '{}' is single-valued; a [filter] needs a multi-valued attribute",
                resolved.attr.name
            )));
        }
        let value_path = Filter::ValuePath(
            AttrPath {
                urn: resolved.extension.map(str::to_owned),
                name: resolved.attr.name.clone(),
                sub: None,
            },
            Box::new(filter.clone()),
        );
        value_path.validate(schema).map_err(|e| {
            PatchError::InvalidPath(format!("invalid filter on '{}': {e}", resolved.attr.name))
        })?;
    }
    Ok(Target::Attr(AttrTarget {
        ext: resolved.extension,
        attr: resolved.attr,
        filter: path.filter.as_ref(),
        sub: resolved.sub,
    }))
}

// ---------------------------------------------------------------------------------------------
// Path-less operations and whole-schema targets
// ---------------------------------------------------------------------------------------------

/// Applies each member of a path-less `value` object as if it were an operation with that
/// member's key as path. `scope` is set when `obj` is the object under a schema URN key.
/// Unknown keys, `schemas` and read-only attributes are skipped.
fn pathless(
    root: &mut Map<String, Value>,
    obj: &Map<String, Value>,
    kind: PatchOpKind,
    schema: &ResourceSchema,
    scope: Option<&SchemaDef>,
    touched: &mut Vec<String>,
) -> Result<(), PatchError> {
    for (key, v) in obj {
        let key = key.trim();
        if scope.is_none() {
            if key.eq_ignore_ascii_case("schemas") {
                continue;
            }
            if let Some((def, core)) = schema_by_id(schema, key) {
                match v {
                    Value::Object(inner) => {
                        pathless(root, inner, kind, schema, Some(def), touched)?;
                    }
                    Value::Null if kind == PatchOpKind::Replace && !core => {
                        remove_ci(root, &def.id);
                        touched.push(def.id.clone());
                    }
                    Value::Null => {}
                    _ => {
                        return Err(PatchError::InvalidValue(format!(
                            "the value of '{}' must be an object of its attributes",
                            def.id
                        )));
                    }
                }
                continue;
            }
        }
        let Ok(mut key_path) = path::parse(key) else {
            continue;
        };
        if let Some(def) = scope
            && key_path.urn.is_none()
        {
            key_path.urn = Some(def.id.clone());
        }
        let Ok(Target::Attr(t)) = resolve(&key_path, schema) else {
            continue;
        };
        if t.read_only() {
            continue;
        }
        apply_attr(root, &t, kind, Some(v), touched)?;
    }
    Ok(())
}

/// An operation whose path is exactly a schema URN.
fn whole_schema(
    root: &mut Map<String, Value>,
    def: &SchemaDef,
    core: bool,
    op: &PatchOperation,
    schema: &ResourceSchema,
    touched: &mut Vec<String>,
) -> Result<(), PatchError> {
    let remove = op.op == PatchOpKind::Remove
        || (op.op == PatchOpKind::Replace && matches!(op.value, Some(Value::Null)));
    if remove {
        if core {
            return Err(PatchError::InvalidPath(format!(
                "'{}' is the core schema; remove needs an attribute path",
                def.id
            )));
        }
        remove_ci(root, &def.id);
        touched.push(def.id.clone());
        return Ok(());
    }
    match &op.value {
        Some(Value::Object(obj)) => pathless(root, obj, op.op, schema, Some(def), touched),
        Some(Value::Null) => Ok(()),
        _ => Err(PatchError::InvalidValue(format!(
            "the value for '{}' must be an object of its attributes",
            def.id
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Attribute targets
// ---------------------------------------------------------------------------------------------

fn apply_attr(
    root: &mut Map<String, Value>,
    t: &AttrTarget<'_>,
    kind: PatchOpKind,
    value: Option<&Value>,
    touched: &mut Vec<String>,
) -> Result<(), PatchError> {
    let (kind, value) = match (kind, value) {
        (PatchOpKind::Add | PatchOpKind::Replace, None) => {
            return Err(PatchError::InvalidValue(format!(
                "{kind} of '{}' requires a \"value\"",
                t.label()
            )));
        }
        // RFC 7643 §2.5: null is "unassigned". Adding nothing is a no-op; replacing with
        // nothing unassigns.
        (PatchOpKind::Add, Some(Value::Null)) => return Ok(()),
        (PatchOpKind::Replace, Some(Value::Null)) => (PatchOpKind::Remove, None),
        (PatchOpKind::Remove, v) => (PatchOpKind::Remove, v.filter(|v| !v.is_null())),
        (k, v) => (k, v),
    };

    let Some(urn) = t.ext else {
        return apply_in(root, t, kind, value);
    };
    let (old, pos) = take_ci(root, urn);
    let mut ext = match old {
        Some(Value::Object(m)) => m,
        Some(other) if kind == PatchOpKind::Remove => {
            put_at(root, urn, other, pos);
            return Ok(());
        }
        None if kind == PatchOpKind::Remove => return Ok(()),
        _ => Map::new(),
    };
    apply_in(&mut ext, t, kind, value)?;
    put_at(root, urn, Value::Object(ext), pos);
    touched.push(urn.to_owned());
    Ok(())
}

/// Applies one operation to attribute `t.attr` inside `container` (the resource or an
/// extension object). `value` is non-null for add/replace.
fn apply_in(
    container: &mut Map<String, Value>,
    t: &AttrTarget<'_>,
    kind: PatchOpKind,
    value: Option<&Value>,
) -> Result<(), PatchError> {
    let (old, pos) = take_ci(container, &t.attr.name);
    let old = old.filter(|v| !v.is_null());
    let old_copy = (t.attr.mutability == Mutability::Immutable)
        .then(|| old.clone())
        .flatten();
    let new = if t.attr.multi_valued {
        multi_valued(old, t, kind, value)?
    } else {
        single_valued(old, t, kind, value)?
    };
    guard_immutable(t.attr, &t.label(), old_copy.as_ref(), new.as_ref())?;
    if let Some(v) = new
        && is_assigned(Some(&v))
    {
        put_at(container, &t.attr.name, v, pos);
    }
    Ok(())
}

/// `immutable` (RFC 7643 §2.2): may be set while unassigned, never changed or removed after.
fn guard_immutable(
    def: &AttributeDef,
    label: &str,
    old: Option<&Value>,
    new: Option<&Value>,
) -> Result<(), PatchError> {
    if def.mutability != Mutability::Immutable || !is_assigned(old) {
        return Ok(());
    }
    let unchanged = match (old, new) {
        (Some(a), Some(b)) => value_eq(a, b, def.case_exact),
        _ => false,
    };
    if unchanged {
        Ok(())
    } else {
        Err(PatchError::Mutability(format!(
            "attribute '{label}' is immutable and already has a value"
        )))
    }
}

fn set_sub(
    obj: &mut Map<String, Value>,
    attr: &AttributeDef,
    sub: &AttributeDef,
    v: Value,
) -> Result<(), PatchError> {
    let label = format!("{}.{}", attr.name, sub.name);
    guard_immutable(sub, &label, get_ci(obj, &sub.name), Some(&v))?;
    set_ci(obj, &sub.name, v);
    Ok(())
}

fn remove_sub(
    obj: &mut Map<String, Value>,
    attr: &AttributeDef,
    sub: &AttributeDef,
) -> Result<(), PatchError> {
    let label = format!("{}.{}", attr.name, sub.name);
    guard_immutable(sub, &label, get_ci(obj, &sub.name), None)?;
    remove_ci(obj, &sub.name);
    Ok(())
}

/// The non-null operand of an add/replace (guaranteed by [`apply_attr`]).
fn operand<'v>(value: Option<&'v Value>, t: &AttrTarget<'_>) -> Result<&'v Value, PatchError> {
    value.ok_or_else(|| PatchError::InvalidValue(format!("'{}' requires a value", t.label())))
}

fn single_valued(
    old: Option<Value>,
    t: &AttrTarget<'_>,
    kind: PatchOpKind,
    value: Option<&Value>,
) -> Result<Option<Value>, PatchError> {
    let attr = t.attr;
    match (t.sub, kind) {
        (None, PatchOpKind::Remove) => Ok(None),
        (None, _) if attr.kind == AttrType::Complex => {
            let incoming = coerce_complex(operand(value, t)?, attr)?;
            let mut obj = match old {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            merge_object(&mut obj, &incoming);
            Ok(Some(Value::Object(obj)))
        }
        (None, _) => Ok(Some(coerce_simple(
            operand(value, t)?,
            attr.kind,
            &attr.name,
        )?)),
        (Some(sub), kind) => {
            let mut obj = match old {
                Some(Value::Object(m)) => m,
                Some(other) if kind == PatchOpKind::Remove => return Ok(Some(other)),
                _ => Map::new(),
            };
            if kind == PatchOpKind::Remove {
                remove_sub(&mut obj, attr, sub)?;
            } else {
                let v = coerce_sub_value(operand(value, t)?, attr, sub)?;
                set_sub(&mut obj, attr, sub, v)?;
            }
            Ok(Some(Value::Object(obj)))
        }
    }
}

fn multi_valued(
    old: Option<Value>,
    t: &AttrTarget<'_>,
    kind: PatchOpKind,
    value: Option<&Value>,
) -> Result<Option<Value>, PatchError> {
    let attr = t.attr;
    let mut items: Vec<Value> = match old {
        Some(Value::Array(a)) => a,
        Some(other) => vec![other],
        None => Vec::new(),
    };
    match (t.filter, t.sub) {
        (None, None) => whole_array(&mut items, attr, kind, value)?,
        (None, Some(sub)) => {
            if kind == PatchOpKind::Remove {
                for el in &mut items {
                    if let Value::Object(o) = el {
                        remove_sub(o, attr, sub)?;
                    }
                }
            } else {
                let v = coerce_sub_value(operand(value, t)?, attr, sub)?;
                if items.is_empty() {
                    let mut el = Map::new();
                    el.insert(sub.name.clone(), v);
                    items.push(Value::Object(el));
                } else {
                    for el in &mut items {
                        if let Value::Object(o) = el {
                            set_sub(o, attr, sub, v.clone())?;
                        }
                    }
                }
                let all: Vec<usize> = (0..items.len()).collect();
                enforce_primary(&mut items, &all);
            }
        }
        (Some(filter), sub) => filtered(&mut items, t, filter, sub, kind, value)?,
    }
    items.retain(|el| !el.is_null() && !el.as_object().is_some_and(Map::is_empty));
    Ok((!items.is_empty()).then_some(Value::Array(items)))
}

/// Operations on a whole multi-valued attribute (no filter, no sub-attribute).
fn whole_array(
    items: &mut Vec<Value>,
    attr: &AttributeDef,
    kind: PatchOpKind,
    value: Option<&Value>,
) -> Result<(), PatchError> {
    match (kind, value) {
        (PatchOpKind::Remove, None) => items.clear(),
        (PatchOpKind::Remove, Some(v)) => {
            // Entra: {"op":"Remove","path":"members","value":[{"value":"<id>"}]}
            let doomed = coerce_elements(v, attr)?;
            remove_matching(items, &doomed, attr);
        }
        (PatchOpKind::Replace, Some(v)) => {
            *items = coerce_elements(v, attr)?;
            let all: Vec<usize> = (0..items.len()).collect();
            enforce_primary(items, &all);
        }
        (PatchOpKind::Add, Some(v)) => {
            let mut touched = Vec::new();
            let mut index = ElementIndex::new(items, attr);
            for el in coerce_elements(v, attr)? {
                match index.find(items, &el, attr) {
                    Some(i) => {
                        if let (Some(Value::Object(existing)), Value::Object(incoming)) =
                            (items.get_mut(i), &el)
                        {
                            merge_object(existing, incoming);
                        }
                        touched.push(i);
                    }
                    None => {
                        index.insert(items.len(), &el, attr);
                        items.push(el);
                        touched.push(items.len() - 1);
                    }
                }
            }
            enforce_primary(items, &touched);
        }
        (_, None) => {
            return Err(PatchError::InvalidValue(format!(
                "{kind} of '{}' requires a \"value\"",
                attr.name
            )));
        }
    }
    Ok(())
}

/// Operations on `attr[filter]` and `attr[filter].sub`.
fn filtered(
    items: &mut Vec<Value>,
    t: &AttrTarget<'_>,
    filter: &Filter,
    sub: Option<&AttributeDef>,
    kind: PatchOpKind,
    value: Option<&Value>,
) -> Result<(), PatchError> {
    let attr = t.attr;
    let fast = string_eq_conjunction(filter, attr);
    let matched: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(
            |(_, el)| match fast.as_deref().map(|conds| fast_select(conds, el)) {
                Some(Some(selected)) => selected,
                _ => element_selected(filter, el, attr),
            },
        )
        .map(|(i, _)| i)
        .collect();

    if kind == PatchOpKind::Remove {
        match sub {
            None => {
                let mut i = 0;
                items.retain(|_| {
                    let keep = !matched.contains(&i);
                    i += 1;
                    keep
                });
            }
            Some(sub) => {
                for &i in &matched {
                    if let Some(Value::Object(o)) = items.get_mut(i) {
                        remove_sub(o, attr, sub)?;
                    }
                }
            }
        }
        return Ok(());
    }

    let v = operand(value, t)?;
    let no_target = || {
        PatchError::NoTarget(format!(
            "no value of '{}' matches the filter, and the filter has no 'eq' conditions to \
             create one from",
            attr.name
        ))
    };

    if attr.kind != AttrType::Complex {
        // Simple multi-valued attribute: the elements themselves are the values.
        let nv = coerce_element(v, attr)?;
        if matched.is_empty() {
            if !items.iter().any(|e| value_eq(e, &nv, attr.case_exact)) {
                items.push(nv);
            }
        } else {
            for &i in &matched {
                if let Some(el) = items.get_mut(i) {
                    *el = nv.clone();
                }
            }
        }
        return Ok(());
    }

    let mut touched = Vec::new();
    match sub {
        Some(sub) => {
            let nv = coerce_sub_value(v, attr, sub)?;
            if matched.is_empty() {
                let mut el = eq_conditions(filter, attr).ok_or_else(no_target)?;
                set_ci(&mut el, &sub.name, nv);
                items.push(Value::Object(el));
                touched.push(items.len() - 1);
            } else {
                for &i in &matched {
                    if let Some(Value::Object(o)) = items.get_mut(i) {
                        set_sub(o, attr, sub, nv.clone())?;
                    }
                }
                touched = matched;
            }
        }
        None => {
            let incoming = coerce_complex(v, attr)?;
            if matched.is_empty() {
                let mut el = eq_conditions(filter, attr).ok_or_else(no_target)?;
                merge_object(&mut el, &incoming);
                items.push(Value::Object(el));
                touched.push(items.len() - 1);
            } else {
                for &i in &matched {
                    let Some(Value::Object(o)) = items.get_mut(i) else {
                        continue;
                    };
                    if kind == PatchOpKind::Add {
                        merge_object(o, &incoming);
                    } else {
                        // replace: the element becomes the filter's eq conditions + the value.
                        let mut el = eq_conditions(filter, attr).unwrap_or_default();
                        merge_object(&mut el, &incoming);
                        for s in &attr.sub_attributes {
                            let label = format!("{}.{}", attr.name, s.name);
                            guard_immutable(s, &label, get_ci(o, &s.name), get_ci(&el, &s.name))?;
                        }
                        *o = el;
                    }
                }
                touched = matched;
            }
        }
    }
    enforce_primary(items, &touched);
    Ok(())
}

/// Whether `filter` selects `el`. Elements of a simple multi-valued attribute are matched as
/// `{"value": el}`, so `tags[value eq "x"]` selects the string `"x"`.
fn element_selected(filter: &Filter, el: &Value, attr: &AttributeDef) -> bool {
    if attr.kind == AttrType::Complex {
        return filter.matches_element(el, attr);
    }
    let mut wrapped = Map::new();
    wrapped.insert("value".to_owned(), el.clone());
    filter.matches_element(&Value::Object(wrapped), attr)
}

/// `a eq "x" and b eq "y"` over plain string sub-attributes of complex `attr`, as
/// (sub-attribute, literal) pairs: the shape of nearly every real PATCH filter
/// (`members[value eq "…"]`, `emails[type eq "work"]`), evaluated by [`fast_select`] without
/// the general evaluator's per-element allocations.
fn string_eq_conjunction<'f>(
    filter: &'f Filter,
    attr: &'f AttributeDef,
) -> Option<Vec<(&'f AttributeDef, &'f str)>> {
    if attr.kind != AttrType::Complex {
        return None;
    }
    let mut out = Vec::new();
    for (p, v) in eq_leaves(filter)? {
        let (None, Value::String(lit)) = (&p.urn, v) else {
            return None;
        };
        let sub = attr.sub(&p.name)?;
        if !matches!(sub.kind, AttrType::String | AttrType::Reference) || sub.multi_valued {
            return None;
        }
        out.push((sub, lit.as_str()));
    }
    Some(out)
}

/// The `attr eq value` leaves of a filter made of such comparisons joined by `and` only, in
/// order; `None` when it holds anything else.
fn eq_leaves(filter: &Filter) -> Option<Vec<(&AttrPath, &Value)>> {
    let mut out = Vec::new();
    let mut stack = vec![filter];
    while let Some(node) = stack.pop() {
        match node {
            Filter::And(a, b) => {
                stack.push(b);
                stack.push(a);
            }
            Filter::Compare(p, CompareOp::Eq, v) if p.sub.is_none() => out.push((p, v)),
            _ => return None,
        }
    }
    Some(out)
}

/// Evaluates a [`string_eq_conjunction`] on one element with the evaluator's semantics
/// (case folded unless `caseExact`; a missing or null value never matches); `None` when the
/// element holds something other than strings there and the general evaluator must decide.
fn fast_select(conds: &[(&AttributeDef, &str)], el: &Value) -> Option<bool> {
    let obj = el.as_object()?;
    for (sub, lit) in conds {
        match get_ci(obj, &sub.name) {
            None | Some(Value::Null) => return Some(false),
            Some(Value::String(s)) => {
                if !value_eq_str(s, lit, sub.case_exact) {
                    return Some(false);
                }
            }
            Some(_) => return None,
        }
    }
    Some(true)
}

/// The sub-attribute values a value filter pins with `eq` (joined by `and` only), as a new
/// element; `None` when the filter uses anything else or names unknown sub-attributes.
fn eq_conditions(filter: &Filter, attr: &AttributeDef) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    for (p, v) in eq_leaves(filter)? {
        if v.is_null() {
            return None;
        }
        let sub = attr.sub(&p.name)?;
        let label = format!("{}.{}", attr.name, sub.name);
        let v = coerce_simple(v, sub.kind, &label).ok()?;
        out.insert(sub.name.clone(), v);
    }
    (!out.is_empty()).then_some(out)
}

// ---------------------------------------------------------------------------------------------
// Resource-level invariants
// ---------------------------------------------------------------------------------------------

/// Keeps `schemas` in step with the extension objects an operation touched: a non-empty
/// extension object has its URN listed; an empty one is dropped together with its URN.
fn tidy_extensions(root: &mut Map<String, Value>, core_id: &str, touched: &[String]) {
    for (i, urn) in touched.iter().enumerate() {
        if touched.get(..i).is_some_and(|seen| seen.contains(urn)) {
            continue;
        }
        let keep = get_ci(root, urn)
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty());
        let (old, pos) = take_ci(root, "schemas");
        let mut list = match old {
            Some(Value::Array(a)) => a,
            _ if keep => vec![Value::String(core_id.to_owned())],
            _ => continue,
        };
        let listed = |s: &Value| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn));
        if keep {
            if !list.iter().any(listed) {
                list.push(Value::String(urn.clone()));
            }
        } else {
            remove_ci(root, urn);
            list.retain(|s| !listed(s));
        }
        put_at(root, "schemas", Value::Array(list), pos);
    }
}

/// (extension URN or `None`, attribute name) of every `required` attribute currently assigned.
fn required_present(
    root: &Map<String, Value>,
    schema: &ResourceSchema,
) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    for a in schema.core.attributes.iter().filter(|a| a.required) {
        if is_assigned(get_ci(root, &a.name)) {
            out.push((None, a.name.clone()));
        }
    }
    for ext in &schema.extensions {
        let Some(Value::Object(m)) = get_ci(root, &ext.id) else {
            continue;
        };
        for a in ext.attributes.iter().filter(|a| a.required) {
            if is_assigned(get_ci(m, &a.name)) {
                out.push((Some(ext.id.clone()), a.name.clone()));
            }
        }
    }
    out
}

/// RFC 7644 §3.12 `invalidValue` ("a required value was missing"): an operation may not
/// unassign a required attribute.
fn check_required(
    root: &Map<String, Value>,
    schema: &ResourceSchema,
    before: &[(Option<String>, String)],
) -> Result<(), PatchError> {
    let after = required_present(root, schema);
    match before.iter().find(|r| !after.contains(r)) {
        None => Ok(()),
        Some((_, name)) => Err(PatchError::InvalidValue(format!(
            "attribute '{name}' is required and cannot be removed"
        ))),
    }
}
