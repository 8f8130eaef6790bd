//! Resources as JSON: assembling one (`schemas`, `id`, the attributes, `meta` with its weak
//! ETag), reading a value out of one, and the `attributes` / `excludedAttributes` projection
//! (RFC 7644 §3.9).
//!
//! Pure: depends only on serde_json, xxhash and [`crate::schema`] / [`crate::filter`];
//! no I/O.

use serde_json::{Map, Value, json};

use crate::filter::{AttrPath, FilterError};
use crate::schema::{AttributeDef, ResourceSchema, Returned};

/// Comma-separated list of attribute paths (query parameter or SearchRequest field).
/// Whitespace around entries and empty entries are ignored; error positions are character
/// offsets into `s`.
pub fn parse_attr_list(s: &str) -> Result<Vec<AttrPath>, FilterError> {
    let mut out = Vec::new();
    let mut offset = 0;
    for part in s.split(',') {
        if !part.trim().is_empty() {
            let path = AttrPath::parse(part).map_err(|e| FilterError {
                position: e.position + offset,
                expected: e.expected,
            })?;
            out.push(path);
        }
        offset += part.chars().count() + 1;
    }
    Ok(out)
}

/// RFC 7644 §3.9 projection. `schemas` and `returned: always` attributes (`id`) are always
/// kept; `returned: never` (`password`) is always removed; `attributes` non-empty → only
/// those (+always); otherwise everything except `excluded` (and except `returned: request`
/// attributes).
///
/// Paths may name sub-attributes (`name.givenName` keeps `name: {givenName}`; in arrays each
/// element keeps the selected members), be URN-qualified (core URN = top level) or name a
/// whole extension (`urn:...:enterprise:2.0:User`). An extension's object is kept only with
/// its selected members and dropped when nothing of it remains; `schemas` is never changed.
/// Complex values that end up empty are dropped. Names match case-insensitively.
pub fn project(
    resource: &Value,
    schema: &ResourceSchema,
    attributes: &[AttrPath],
    excluded: &[AttrPath],
) -> Value {
    let Some(obj) = resource.as_object() else {
        return resource.clone();
    };
    let p = Projection {
        schema,
        selected: attributes.iter().map(|a| Target::new(a, schema)).collect(),
        excluded: excluded.iter().map(|a| Target::new(a, schema)).collect(),
    };
    let core = AttrPath {
        urn: Some(schema.core.id.clone()),
        name: String::new(),
        sub: None,
    };
    let mut out = Map::new();
    for (key, value) in obj {
        if key.eq_ignore_ascii_case("schemas") {
            out.insert(key.clone(), value.clone());
        } else if is_extension_key(key, value, schema) {
            if let Some(v) = p.extension(key, value) {
                out.insert(key.clone(), v);
            }
        } else {
            let path = AttrPath {
                name: key.clone(),
                ..core.clone()
            };
            let def = schema.resolve(&path).map(|r| r.attr);
            if let Some(v) = p.attribute(None, key, def, value) {
                out.insert(key.clone(), v);
            }
        }
    }
    Value::Object(out)
}

/// A top-level key holding an extension's attributes: a known extension URN, or any
/// URN-looking key (containing `:`) whose value is an object.
fn is_extension_key(key: &str, value: &Value, schema: &ResourceSchema) -> bool {
    schema.extension(key).is_some() || (key.contains(':') && value.is_object())
}

/// A requested or excluded path, normalised to where it lives in the resource JSON.
struct Target {
    /// `None` for core/common attributes, else the extension URN (the resource key).
    urn: Option<String>,
    name: String,
    sub: Option<String>,
}

impl Target {
    fn new(path: &AttrPath, schema: &ResourceSchema) -> Target {
        let urn = match schema.resolve(path) {
            Some(r) => r.extension.map(str::to_owned),
            None => path
                .urn
                .clone()
                .filter(|u| !u.eq_ignore_ascii_case(&schema.core.id)),
        };
        Target {
            urn,
            name: path.name.clone(),
            sub: path.sub.clone(),
        }
    }

    /// Whether this target names attribute `name` in the scope `urn` (None = core).
    fn names(&self, urn: Option<&str>, name: &str) -> bool {
        let same_scope = match (&self.urn, urn) {
            (None, None) => true,
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        };
        same_scope && self.name.eq_ignore_ascii_case(name)
    }

    /// Whether this target names the whole extension keyed `key` (`urn:...:User`, which
    /// parses as URN `urn:...` plus name `User`).
    fn names_extension(&self, key: &str) -> bool {
        self.sub.is_none()
            && self.urn.as_ref().is_some_and(|u| {
                key.len() == u.len() + 1 + self.name.len()
                    && key
                        .get(..u.len())
                        .is_some_and(|k| k.eq_ignore_ascii_case(u))
                    && key
                        .get(u.len() + 1..)
                        .is_some_and(|k| k.eq_ignore_ascii_case(&self.name))
            })
    }
}

struct Projection<'a> {
    schema: &'a ResourceSchema,
    selected: Vec<Target>,
    excluded: Vec<Target>,
}

/// How the members of a complex value are filtered.
enum SubMode<'a> {
    /// Keep everything except `returned: never`.
    All,
    /// Keep only these names (plus `returned: always`).
    Only(Vec<&'a str>),
    /// Keep everything except these names (and `returned: never`).
    Except(Vec<&'a str>),
}

impl Projection<'_> {
    fn extension(&self, key: &str, value: &Value) -> Option<Value> {
        let Some(members) = value.as_object() else {
            return Some(value.clone());
        };
        let ext = self.schema.extension(key);
        let whole_selected = self.selected.iter().any(|t| t.names_extension(key));
        if self.excluded.iter().any(|t| t.names_extension(key)) && self.selected.is_empty() {
            return None;
        }
        let mut out = Map::new();
        for (name, v) in members {
            let def = ext.and_then(|e| e.attribute(name));
            let kept = if whole_selected {
                keep_all(def, v)
            } else {
                self.attribute(Some(key), name, def, v)
            };
            if let Some(v) = kept {
                out.insert(name.clone(), v);
            }
        }
        if out.is_empty() && (!members.is_empty() || !self.selected.is_empty()) {
            None
        } else {
            Some(Value::Object(out))
        }
    }

    /// The projected value of attribute `name` in scope `urn`, or `None` to drop it.
    fn attribute(
        &self,
        urn: Option<&str>,
        name: &str,
        def: Option<&AttributeDef>,
        value: &Value,
    ) -> Option<Value> {
        match def.map_or(Returned::Default, |d| d.returned) {
            Returned::Always => return keep_all(def, value),
            Returned::Never => return None,
            Returned::Default | Returned::Request => {}
        }
        if !self.selected.is_empty() {
            let hits: Vec<&Target> = self
                .selected
                .iter()
                .filter(|t| t.names(urn, name))
                .collect();
            if hits.is_empty() {
                return None;
            }
            if hits.iter().any(|t| t.sub.is_none()) {
                return keep_all(def, value);
            }
            let subs = hits.iter().filter_map(|t| t.sub.as_deref()).collect();
            return filter_members(value, def, &SubMode::Only(subs));
        }
        if def.is_some_and(|d| d.returned == Returned::Request) {
            return None;
        }
        let hits: Vec<&Target> = self
            .excluded
            .iter()
            .filter(|t| t.names(urn, name))
            .collect();
        if hits.iter().any(|t| t.sub.is_none()) {
            return None;
        }
        if hits.is_empty() {
            return keep_all(def, value);
        }
        let subs = hits.iter().filter_map(|t| t.sub.as_deref()).collect();
        filter_members(value, def, &SubMode::Except(subs))
    }
}

/// The whole value, minus `returned: never` sub-attributes of complex values.
fn keep_all(def: Option<&AttributeDef>, value: &Value) -> Option<Value> {
    match def {
        Some(d) if !d.sub_attributes.is_empty() => filter_members(value, def, &SubMode::All),
        _ => Some(value.clone()),
    }
}

/// Filters the members of a complex value (or of each element of a multi-valued one).
/// Objects (and arrays) left empty by the filtering are dropped.
fn filter_members(value: &Value, def: Option<&AttributeDef>, mode: &SubMode<'_>) -> Option<Value> {
    match value {
        Value::Array(items) => {
            let kept: Vec<Value> = items
                .iter()
                .filter_map(|v| filter_object(v, def, mode))
                .collect();
            if kept.is_empty() && !items.is_empty() {
                None
            } else {
                Some(Value::Array(kept))
            }
        }
        other => filter_object(other, def, mode),
    }
}

fn filter_object(value: &Value, def: Option<&AttributeDef>, mode: &SubMode<'_>) -> Option<Value> {
    let Some(members) = value.as_object() else {
        // Only a complex value has members to select.
        return match mode {
            SubMode::Only(_) => None,
            SubMode::All | SubMode::Except(_) => Some(value.clone()),
        };
    };
    let listed = |names: &[&str], key: &str| names.iter().any(|n| n.eq_ignore_ascii_case(key));
    let mut out = Map::new();
    for (key, v) in members {
        let returned = def
            .and_then(|d| d.sub(key))
            .map_or(Returned::Default, |s| s.returned);
        let keep = match (returned, mode) {
            (Returned::Never, _) => false,
            (Returned::Always, _) => true,
            (_, SubMode::All) => true,
            (_, SubMode::Only(names)) => listed(names, key),
            (_, SubMode::Except(names)) => !listed(names, key),
        };
        if keep {
            out.insert(key.clone(), v.clone());
        }
    }
    if out.is_empty() && !members.is_empty() {
        None
    } else {
        Some(Value::Object(out))
    }
}

/// The `meta` of a resource (RFC 7643 §3.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// `User`, `Group`, …
    pub resource_type: &'static str,
    /// When it was created (RFC 3339), when known.
    pub created: Option<String>,
    /// When it last changed (RFC 3339), when known.
    pub last_modified: Option<String>,
    /// Its URL.
    pub location: String,
    /// Its weak ETag ([`version`]), when the resource has one.
    pub version: Option<String>,
}

/// `{base_url}/{endpoint}/{id}`: a resource's `meta.location` (and `Location` header).
pub fn location(base_url: &str, endpoint: &str, id: &str) -> String {
    format!("{base_url}/{endpoint}/{id}")
}

/// A resource's `meta.location`.
pub fn location_of(resource: &Value) -> Option<&str> {
    resource.get("meta")?.get("location")?.as_str()
}

/// A resource: `schemas`, `id`, the attributes in their order, then `meta`.
pub fn assemble(schemas: &[&str], id: &str, attrs: Map<String, Value>, meta: Meta) -> Value {
    let mut out = Map::with_capacity(attrs.len() + 3);
    out.insert("schemas".into(), json!(schemas));
    out.insert("id".into(), json!(id));
    out.extend(attrs);
    let mut m = Map::new();
    m.insert("resourceType".into(), json!(meta.resource_type));
    if let Some(c) = meta.created {
        m.insert("created".into(), json!(c));
    }
    if let Some(l) = meta.last_modified {
        m.insert("lastModified".into(), json!(l));
    }
    m.insert("location".into(), json!(meta.location));
    if let Some(v) = meta.version {
        m.insert("version".into(), json!(v));
    }
    out.insert("meta".into(), Value::Object(m));
    Value::Object(out)
}

/// `meta.version`: a weak ETag of a resource's attributes, a 64-bit xxh3 of their JSON
/// (stable across processes and replicas; a change to any attribute changes it). The JSON is
/// written into a buffer kept by the thread and hashed in one pass: a streaming hasher fed
/// token by token cost twice as much.
pub fn version(attrs: &Map<String, Value>) -> String {
    thread_local! {
        static JSON: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let digest = JSON.with_borrow_mut(|json| {
        json.clear();
        // Writing a JSON map into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *json, attrs);
        let digest = xxhash_rust::xxh3::xxh3_64(json);
        // A resource of many members would otherwise keep its size with the thread.
        if json.capacity() > 64 * 1024 {
            *json = Vec::new();
        }
        digest
    });
    format!("W/\"{digest:016x}\"")
}

/// The text a resource gives `attr` (`userName`; `emails.value`: the primary element's, else
/// the first's), names matched case-insensitively; empty text counts as none.
pub fn text_at(resource: &Value, attr: &AttrPath) -> Option<String> {
    let get = |v: &Value, key: &str| {
        v.as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    let mut v = get(resource, &attr.name)?;
    if let Value::Array(items) = &v {
        let primary = items
            .iter()
            .find(|e| e.get("primary") == Some(&Value::Bool(true)));
        v = primary.or_else(|| items.first())?.clone();
    }
    if let Some(sub) = &attr.sub {
        v = get(&v, sub)?;
    }
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

#[cfg(test)]
mod tests;
