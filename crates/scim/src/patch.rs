//! SCIM PATCH (RFC 7644 §3.5.2): parsing a `PatchOp` request body and applying its operations to
//! a resource's SCIM JSON, in the dialects Okta and Microsoft Entra ID really send.
//!
//! Owns: the PATCH request model ([`PatchOperation`], [`PatchPath`]), its parser
//! ([`parse_request`], [`parse_path`]), the apply engine ([`apply`]) and [`PatchError`].
//! Depends only on `crate::schema` (attribute characteristics) and `crate::filter`
//! (value filters inside `[...]`); no I/O, no tokio, nothing outside `crate::scim`.
//!
//! # Semantics in brief
//!
//! * Operations apply in order to a copy of the resource; the first error aborts and leaves the
//!   caller's resource unchanged.
//! * The resource keeps core attributes at top level (canonical names) and each extension's
//!   attributes in an object under the extension URN. Existing keys are matched
//!   case-insensitively; written keys get the schema's canonical spelling. Writing an extension
//!   attribute adds the URN to `schemas`; removing the last one removes the object and the URN.
//! * Path-less `add`/`replace`: `value` is an object whose keys may be attribute names in any
//!   case, dotted (`name.givenName`), URN-qualified, full value paths
//!   (`emails[type eq "work"].value`) or an extension URN holding an object of that extension's
//!   attributes. Unknown keys, `schemas` and read-only attributes (`id`, `meta`, `groups` …)
//!   are ignored there; an explicit `path` to them is an error.
//! * Complex single-valued targets merge sub-attributes for both `add` and `replace`
//!   (RFC 7644 §3.5.2.3: sub-attributes not specified are left unchanged); a `null`
//!   sub-attribute unassigns it. Multi-valued `add` appends (an element equal to an existing one
//!   — same `value` and `type` when the attribute has a `value` sub-attribute — is merged into it
//!   instead of duplicated); multi-valued `replace` replaces the whole array.
//! * `attr[filter].sub` with `add` or `replace` sets the sub-attribute on every matching
//!   element; `attr[filter]` merges the value into every match (`add`) or makes each match
//!   "the filter's `eq` conditions + the value" (`replace`). When nothing matches, both build a
//!   new element from the filter's `eq` conditions (joined by `and`) plus the value — Entra
//!   sends `replace` on `emails[type eq "work"].value` for users with no work email. With no
//!   match and no usable `eq` conditions → [`PatchError::NoTarget`]. `attr.sub` without a
//!   filter on a multi-valued attribute addresses every element.
//! * `remove` on a multi-valued attribute with a `value` list removes the listed elements
//!   (Entra group-member removal). Removing what is not there is a no-op (idempotent retries).
//!   Removing the last element unassigns the attribute. Removing (or nulling) a `required`
//!   attribute → [`PatchError::InvalidValue`] (RFC 7644 §3.12: "a required value was missing").
//! * Setting `primary: true` on one element sets it false on the others (RFC 7643 §2.4).
//! * Booleans accept the strings `"True"`/`"False"` (any case; Entra sends `"active": "False"`).
//!   A string or number for a complex attribute with a `value` sub-attribute becomes
//!   `{"value": …}` (Entra sends the manager id as a bare string); `{"value": x}` for a simple
//!   multi-valued attribute becomes `x`. Any other type mismatch → [`PatchError::InvalidValue`].
//! * `readOnly` targets → [`PatchError::Mutability`]; changing or removing an `immutable` value
//!   that is already set → [`PatchError::Mutability`].

mod apply;
pub mod members;
mod path;
mod request;
mod value;

#[cfg(test)]
mod tests;

use std::fmt;

use crate::error::ScimType;
use crate::filter::Filter;
use crate::schema::ResourceSchema;

/// The three PATCH operations of RFC 7644 §3.5.2 (`op` is matched case-insensitively).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchOpKind {
    /// `add`: set a single value, merge into a complex value, append to a multi-valued one.
    Add,
    /// `remove`: unassign an attribute, a sub-attribute or the elements a filter selects.
    Remove,
    /// `replace`: overwrite the target (multi-valued attributes get the whole new array).
    Replace,
}

impl fmt::Display for PatchOpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PatchOpKind::Add => "add",
            PatchOpKind::Remove => "remove",
            PatchOpKind::Replace => "replace",
        })
    }
}

/// A parsed PATCH `path` (RFC 7644 §3.5.2 `PATH = attrPath / valuePath [subAttr]`).
///
/// `emails[type eq "work"].value` → attr `emails`, filter `Some`, sub `Some("value")`;
/// `name.givenName` → attr `name`, sub `givenName`;
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value` → urn
/// `Some("urn:…:enterprise:2.0:User")`, attr `manager`, sub `value`.
/// Names keep the client's spelling; matching against the schema is case-insensitive.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchPath {
    /// Schema URN prefix, without the trailing `:`.
    pub urn: Option<String>,
    /// The top-level attribute name.
    pub attr: String,
    /// The value filter between `[` and `]`, relative to one element of `attr`.
    pub filter: Option<Filter>,
    /// The sub-attribute after `.` (after `]` when there is a filter).
    pub sub: Option<String>,
}

impl fmt::Display for PatchPath {
    /// Renders the attribute part (`urn:attr[…].sub`); the filter is shown as `[…]` because
    /// it is echoed in client-facing error messages, where the attribute is what matters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.attr)?;
        if self.filter.is_some() {
            f.write_str("[…]")?;
        }
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// Parses a PATCH `path`. Errors are [`PatchError::InvalidPath`]; the input is bounded by
/// [`crate::filter::MAX_FILTER_LEN`].
pub fn parse_path(s: &str) -> Result<PatchPath, PatchError> {
    path::parse(s)
}

/// One entry of the request's `Operations` array.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchOperation {
    /// What to do.
    pub op: PatchOpKind,
    /// Where; `None` means the resource itself (only for `add` and `replace`).
    pub path: Option<PatchPath>,
    /// The operand; always present for `add`/`replace` from [`parse_request`], optional for
    /// `remove` (a list of elements to remove from a multi-valued attribute).
    pub value: Option<serde_json::Value>,
}

/// Upper bound on `Operations` in one request; more → [`PatchError::InvalidSyntax`].
pub const MAX_OPERATIONS: usize = 1000;

/// Parses a PATCH request body (`{"schemas":[PatchOp URN],"Operations":[…]}`).
///
/// Accepts `Operations` in any key case and `op` values in any case. `remove` without a path
/// → [`PatchError::NoTarget`]; `add`/`replace` without a value → [`PatchError::InvalidValue`];
/// a malformed body → [`PatchError::InvalidSyntax`]; a malformed path →
/// [`PatchError::InvalidPath`].
pub fn parse_request(body: &serde_json::Value) -> Result<Vec<PatchOperation>, PatchError> {
    request::parse(body)
}

/// Applies `ops` in order to `resource` (SCIM JSON of one resource described by `schema`).
///
/// All or nothing: on error `resource` is left exactly as it was.
pub fn apply(
    resource: &mut serde_json::Value,
    ops: &[PatchOperation],
    schema: &ResourceSchema,
) -> Result<(), PatchError> {
    apply::apply_all(resource, ops, schema)
}

/// [`apply`] taking the resource by value and returning the patched one: no copy is made to
/// restore on error, since the caller keeps its own original (a PATCH compares before and
/// after anyway).
pub fn apply_owned(
    resource: serde_json::Value,
    ops: &[PatchOperation],
    schema: &ResourceSchema,
) -> Result<serde_json::Value, PatchError> {
    apply::apply_owned(resource, ops, schema)
}

/// Why a PATCH request was rejected. Messages name the SCIM attribute or path involved and
/// contain nothing but what the client sent and the schema; they are safe to return as the
/// SCIM error `detail`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    /// The body is not a well-formed PatchOp request (`scimType` `invalidSyntax`).
    #[error("{0}")]
    InvalidSyntax(String),
    /// A path is malformed or names an attribute the schema does not have (`invalidPath`).
    #[error("{0}")]
    InvalidPath(String),
    /// A path selects nothing that the operation could act on (`noTarget`).
    #[error("{0}")]
    NoTarget(String),
    /// A value is missing or incompatible with the attribute's type (`invalidValue`).
    #[error("{0}")]
    InvalidValue(String),
    /// The attribute's mutability forbids the change (`mutability`).
    #[error("{0}")]
    Mutability(String),
}

/// Prefixes an error's message with the operation it came from (`Operations[2]: …`).
fn at_operation(index: usize, e: PatchError) -> PatchError {
    let at = |m: String| format!("Operations[{index}]: {m}");
    match e {
        PatchError::InvalidSyntax(m) => PatchError::InvalidSyntax(at(m)),
        PatchError::InvalidPath(m) => PatchError::InvalidPath(at(m)),
        PatchError::NoTarget(m) => PatchError::NoTarget(at(m)),
        PatchError::InvalidValue(m) => PatchError::InvalidValue(at(m)),
        PatchError::Mutability(m) => PatchError::Mutability(at(m)),
    }
}

impl PatchError {
    /// The RFC 7644 §3.5.2 / §3.12 `scimType` of this kind of failure (the error funnel
    /// answers it).
    pub fn scim_type(&self) -> ScimType {
        match self {
            PatchError::InvalidSyntax(_) => ScimType::InvalidSyntax,
            PatchError::InvalidPath(_) => ScimType::InvalidPath,
            PatchError::NoTarget(_) => ScimType::NoTarget,
            PatchError::InvalidValue(_) => ScimType::InvalidValue,
            PatchError::Mutability(_) => ScimType::Mutability,
        }
    }
}
