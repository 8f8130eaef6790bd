//! The mapping: a declarative TOML file compiled into everything the sidecar knows about one
//! legacy application — its calls, paging, errors, attribute map, transforms and lifecycle.
//!
//! Pure: no I/O, no tokio, no hyper. Depends only on `scim` (pure) and `ids`. The handlers ask
//! it to prepare legacy calls and to translate records; the legacy client sends them.
//!
//! - `spec`: the TOML as written (serde, unknown keys denied).
//! - `compile`: checks a spec and builds the compiled `Mapping`.
//! - `template`: `{placeholder}` templates, and a tenant's values for them.
//! - `field`: legacy fields: names, pointers, keyed array elements, read and written.
//! - `body`: fixed JSON bodies with placeholders.
//! - `transform`: named reversible transforms, and value maps.
//! - `apply`: SCIM ⇄ legacy translation, diffs, filter push-down, error reading.
//! - `locate`: `line:column` of the key a problem is about.

pub mod apply;
pub mod body;
pub mod compile;
pub mod discovery;
pub mod error;
pub mod field;
pub mod ids;
pub mod locate;
pub mod plan;
pub mod resource;
pub mod spec;
pub mod template;
pub mod transform;

use std::collections::BTreeMap;

pub use body::BodyTemplate;
pub use error::{CompileError, Problem, TemplateError, TranslateError};
pub use field::FieldPath;
pub use spec::{
    BatchSpec, BodySpec, CaseSpec, ConflictKeyword, ConflictRuleSpec, ConflictThen, ConflictWhen,
    DeactivateSpec, DeleteSpec, ErrorCodeSpec, GroupIdSpec, MultiValuedSpec, PagingStyle,
    RetryAfterFormat, TimeFormat,
};
pub use template::{Template, TenantValues, Var, Vars};
pub use transform::{Transform, ValueMap};

use scim::error::ScimType;
use scim::schema::ResourceSchema;

/// A compiled, checked mapping for one legacy application.
#[derive(Clone, Debug)]
pub struct Mapping {
    /// Transport-level facts.
    pub legacy: Legacy,
    /// The User resource.
    pub users: UserMapping,
    /// The Group resource, when the legacy app has groups.
    pub groups: Option<GroupMapping>,
}

/// Compiled `[legacy]`.
#[derive(Clone, Debug)]
pub struct Legacy {
    /// Human name of the legacy app.
    pub name: String,
    /// Headers sent with every call (names shared with each prepared call).
    pub headers: Vec<(std::sync::Arc<str>, Template)>,
    /// The `Authorization` header of every call, when `[legacy.auth]` says.
    pub auth: Option<Auth>,
    /// List paging.
    pub paging: Paging,
    /// Error reading.
    pub errors: Errors,
}

/// Compiled `[legacy.auth]`.
#[derive(Clone, Debug)]
pub enum Auth {
    /// HTTP Basic.
    Basic {
        /// The user name.
        username: Template,
        /// The password.
        password: Template,
    },
    /// A bearer token.
    Bearer {
        /// The token.
        token: Template,
    },
    /// OAuth 2.0 client credentials: the gateway fetches and keeps the token
    /// ([`Auth::token_request`]).
    OAuth2 {
        /// The token endpoint: a path on the legacy app or an `http://` URL.
        token_url: Template,
        /// The client id.
        client_id: Template,
        /// The client secret.
        client_secret: Template,
        /// The scope, if any.
        scope: Option<Template>,
        /// How the client authenticates to the token endpoint.
        client_auth: spec::ClientAuthSpec,
    },
}

/// A token request of OAuth 2.0 client credentials, rendered for one tenant.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The token endpoint: a path relative to the tenant's base URL (starts with `/`), or an
    /// absolute `http://` URL.
    pub url: String,
    /// The `application/x-www-form-urlencoded` body.
    pub form: String,
    /// The `Authorization` header value (client authentication `basic`), a secret.
    pub authorization: Option<String>,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The form and the header carry the client secret: never printed.
        f.debug_struct("TokenRequest")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Compiled `[legacy.paging]`.
#[derive(Clone, Debug)]
pub struct Paging {
    /// How pages follow each other.
    pub style: PagingStyle,
    /// Page-number parameter (style page).
    pub page_param: String,
    /// Offset parameter (style offset).
    pub offset_param: String,
    /// Page-size / limit parameter, if the API takes one.
    pub size_param: Option<String>,
    /// Parameter the cursor is sent back in (style cursor).
    pub cursor_param: String,
    /// Pointer to the next cursor (style cursor).
    pub cursor: Option<String>,
    /// Pointer to the next page's URL (style next_url).
    pub next: Option<String>,
    /// Number of the first page.
    pub first_page: u64,
    /// Largest accepted page size.
    pub max_page_size: u64,
    /// Where the records, the total and the more flag are in a list answer, for list calls
    /// that do not say.
    pub shape: ListShape,
}

/// Where the parts of a list answer are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListShape {
    /// Pointer to the array of records (`""`: the answer is the array).
    pub items: String,
    /// Pointer to the total, if reported.
    pub total: Option<String>,
    /// Pointer to a has-more flag, if reported.
    pub more: Option<String>,
}

/// Compiled `[legacy.errors]`.
#[derive(Clone, Debug)]
pub struct Errors {
    /// Pointer to the error code, if the app reports codes.
    pub code: Option<String>,
    /// Pointer to the message.
    pub message: Option<String>,
    /// Pointer to the field problems.
    pub fields: Option<String>,
    /// Pointer to a problem's field name.
    pub field: Option<String>,
    /// Pointer to a problem's text.
    pub problem: Option<String>,
    /// Header with the retry hint.
    pub retry_after_header: Option<std::sync::Arc<str>>,
    /// What the header holds.
    pub retry_after_format: RetryAfterFormat,
    /// Code → SCIM answer.
    pub codes: BTreeMap<String, ErrorRule>,
    /// HTTP status → SCIM answer, for an error whose code is not in `codes`.
    pub by_status: BTreeMap<u16, ErrorRule>,
    /// Pointer to the error's sentences.
    pub sentences: Option<String>,
    /// Splits a sentence into (field, problem).
    pub field_pattern: Option<regex::Regex>,
    /// The app's names for fields in its errors → legacy fields.
    pub field_names: BTreeMap<String, String>,
    /// Sentence pattern → SCIM answer, in order.
    pub patterns: Vec<(regex::Regex, ErrorRule)>,
}

/// A compiled entry of `[legacy.errors.codes]`: what a legacy error code means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorRule {
    /// The SCIM HTTP status to answer.
    pub status: u16,
    /// The SCIM `scimType`, if any.
    pub scim_type: Option<ScimType>,
    /// "A record with that unique key exists" (drives `on_conflict`).
    pub conflict: bool,
    /// JSON pointer to the existing record's id in the answer.
    pub existing_id: Option<String>,
    /// The SCIM attribute whose value in the request finds the existing record.
    pub find_existing_by: Option<String>,
    /// In a membership push, skip the member instead of failing.
    pub skip_member: bool,
}

/// One compiled legacy call.
#[derive(Clone, Debug)]
pub struct Call {
    /// Its name in logs and metrics: the key path without `calls`, e.g. `users.get`.
    pub name: std::sync::Arc<str>,
    /// HTTP method.
    pub method: http::Method,
    /// Path template.
    pub path: Template,
    /// Fixed query parameters.
    pub query: Vec<(String, Template)>,
    /// What a user write sends.
    pub body: Option<BodySpec>,
    /// The fixed body of a call that sends no mapped fields.
    pub fixed_body: Option<BodyTemplate>,
    /// Pointer to the record in a single-record answer (absent: the whole answer).
    pub record: Option<String>,
    /// Where a write's body goes in what is sent (absent: it is what is sent).
    pub envelope: Option<FieldPath>,
    /// For list calls: where the records, total and more flag are (the call's own, else
    /// `[legacy.paging]`'s).
    pub list: Option<ListShape>,
    /// Answers meaning the call's effect is already there.
    pub done: Vec<DoneRule>,
    /// A list call answering every record at once (no paging parameters).
    pub unpaged: bool,
    /// `users.list`: each listed record is read again with `get`.
    pub complete: bool,
    /// Pointer to a member's legacy id (member list calls).
    pub member_id: Option<String>,
    /// Pointer to a member's display name (member list calls).
    pub member_display: Option<String>,
    /// Batched member calls: body field and largest batch.
    pub batch: Option<BatchSpec>,
    /// Whether the call may be retried after a failure.
    pub idempotent: bool,
    /// The calls made after this one, in order (`then`): one operation.
    pub then: Vec<Call>,
}

/// A compiled `done` entry: an error answer that means "already done".
#[derive(Clone, Debug)]
pub struct DoneRule {
    /// The legacy HTTP status, when given.
    pub status: Option<u16>,
    /// The legacy error code, when given.
    pub code: Option<String>,
    /// A pattern over the error's message or sentences, when given.
    pub matches: Option<regex::Regex>,
}

/// A call ready to send: what the legacy client needs and nothing else.
#[derive(Clone, Debug)]
pub struct PreparedCall {
    /// The call's name ([`Call::name`]), for logs and metrics.
    pub name: std::sync::Arc<str>,
    /// HTTP method.
    pub method: http::Method,
    /// Path (relative to the tenant's base URL) and query string.
    pub path_and_query: String,
    /// Headers; the flag marks values that carry a secret (never logged).
    pub headers: Vec<(std::sync::Arc<str>, String, bool)>,
    /// JSON body of a write.
    pub body: Option<serde_json::Value>,
    /// Whether the call may be retried after a failure.
    pub idempotent: bool,
    /// The response header with the legacy app's retry hint, and how it is written.
    pub retry_hint: Option<(std::sync::Arc<str>, RetryAfterFormat)>,
    /// `path_and_query` is a URL the legacy app gave (a next page's): absolute, or rooted at
    /// the host, rather than relative to the tenant's base URL.
    pub followed: bool,
}

/// Where a mapped SCIM attribute lives in a resource.
#[derive(Clone, Debug, PartialEq)]
pub struct ScimTarget {
    /// Extension URN, for extension attributes.
    pub extension: Option<String>,
    /// Canonical attribute name.
    pub attr: String,
    /// `[primary]`: the primary (else first) element of a multi-valued attribute.
    pub primary: bool,
    /// Canonical sub-attribute name.
    pub sub: Option<String>,
}

/// One compiled row of the attribute map.
#[derive(Clone, Debug)]
pub struct AttrMap {
    /// The SCIM path as written in the mapping (used in messages).
    pub scim: String,
    /// Where it lives.
    pub target: ScimTarget,
    /// The legacy fields, in transform order.
    pub legacy: Vec<FieldPath>,
    /// The transform.
    pub transform: Transform,
    /// The value map, when the row has one (then the transform is `Identity`).
    pub values: Option<ValueMap>,
    /// The SCIM schema's type of the attribute (values of another type are refused).
    pub kind: scim::schema::AttrType,
    /// The SCIM schema requires the attribute (`userName`): required whatever the row says.
    pub schema_required: bool,
    /// Must have a value on create and replace.
    pub required: bool,
    /// Longest accepted value, in characters.
    pub max_length: Option<usize>,
    /// A pattern the value must match.
    pub pattern: Option<regex::Regex>,
    /// Another attribute this one must equal (ignoring case): (its path as written, target).
    pub equals: Option<(String, ScimTarget)>,
    /// Shown on reads, never written (nor validated: what a client sends for it is ignored).
    pub read_only: bool,
}

/// Compiled `[users.active]`.
#[derive(Clone, Debug)]
pub struct Active {
    /// Pointers that must be true.
    pub all_true: Vec<String>,
    /// Pointers that must be false.
    pub all_false: Vec<String>,
    /// A state field and the values of it that mean active.
    pub field: Option<(String, Vec<serde_json::Value>)>,
    /// `active` written as a field of the update call: the state field and the values that
    /// make a user active and inactive.
    pub written: Option<WrittenActive>,
}

/// `[users.active] set_active`, `set_inactive`: the state field written by the update call.
#[derive(Clone, Debug)]
pub struct WrittenActive {
    /// The state field.
    pub field: FieldPath,
    /// Written to activate.
    pub active: serde_json::Value,
    /// Written to deactivate.
    pub inactive: serde_json::Value,
}

/// Compiled `[users.calls]`.
#[derive(Clone, Debug)]
pub struct UserCalls {
    /// Read one.
    pub get: Call,
    /// Read a page.
    pub list: Call,
    /// Create.
    pub create: Call,
    /// Update.
    pub update: Call,
    /// Deactivate.
    pub deactivate: Option<Call>,
    /// Reactivate.
    pub reactivate: Option<Call>,
    /// Delete.
    pub delete: Option<Call>,
    /// Take over an existing record.
    pub take_over: Option<Call>,
}

/// A SCIM attribute the legacy list call can filter on.
#[derive(Clone, Debug)]
pub struct PushDown {
    /// Lower-case dotted SCIM path, e.g. `username`, `emails.value`.
    pub path: String,
    /// Query parameter.
    pub query: String,
    /// Legacy comparison.
    pub case: CaseSpec,
    /// Whether SCIM compares this attribute exactly.
    pub scim_case_exact: bool,
}

/// The compiled User resource mapping.
#[derive(Clone, Debug)]
pub struct UserMapping {
    /// Pointer to the legacy id.
    pub legacy_id: String,
    /// Pointer to the creation time.
    pub created: Option<String>,
    /// Pointer to the modification time.
    pub last_modified: Option<String>,
    /// Pointer to the record's fingerprint, joined into its SCIM id when set.
    pub fingerprint: Option<String>,
    /// How times are written.
    pub time_format: TimeFormat,
    /// How `active` is read.
    pub active: Option<Active>,
    /// Calls.
    pub calls: UserCalls,
    /// What DELETE does.
    pub delete: DeleteSpec,
    /// What `active: false` does.
    pub deactivate: DeactivateSpec,
    /// Create-conflict rules.
    pub on_conflict: Vec<ConflictRuleSpec>,
    /// Pushed-down filters.
    pub filters: Vec<PushDown>,
    /// Emitted values of single-slot multi-valued attributes, by canonical name.
    pub multi_valued: BTreeMap<String, MultiValuedSpec>,
    /// The attribute map.
    pub attributes: Vec<AttrMap>,
    /// Full SCIM schema of the resource (core + extensions the mapping uses).
    pub schema: ResourceSchema,
}

/// Compiled `[groups] locked`.
#[derive(Clone, Debug)]
pub struct Locked {
    /// Pointer into the group record.
    pub field: String,
    /// The value that locks it.
    pub equals: serde_json::Value,
    /// The detail of the `403`.
    pub detail: String,
}

/// The compiled Group resource mapping.
#[derive(Clone, Debug)]
pub struct GroupMapping {
    /// Pointer to the legacy id.
    pub legacy_id: String,
    /// How the SCIM id is formed.
    pub scim_id: GroupIdSpec,
    /// Pointer to the display name.
    pub display_name: String,
    /// Legacy field a create or rename writes the display name to.
    pub display_name_field: Option<FieldPath>,
    /// Groups that must never be linked or changed.
    pub locked: Option<Locked>,
    /// Read one.
    pub get: Call,
    /// Read a page.
    pub list: Call,
    /// Read a page of members.
    pub members: Option<Call>,
    /// Add one member.
    pub add_member: Option<Call>,
    /// Remove one member.
    pub remove_member: Option<Call>,
    /// Add members in batches.
    pub add_members: Option<Call>,
    /// Remove members in batches.
    pub remove_members: Option<Call>,
    /// Replace the whole member list.
    pub set_members: Option<Call>,
    /// The group record's version, sent back with `set_members`, and where.
    pub version: Option<(FieldPath, spec::VersionIn)>,
    /// The group `get` answers an `ETag`, sent back as `If-Match` with `set_members`.
    pub etag: bool,
    /// Create a group.
    pub create: Option<Call>,
    /// Rename a group.
    pub rename: Option<Call>,
    /// Delete a group.
    pub delete: Option<Call>,
    /// What the admin is told when a group cannot be created, renamed or deleted.
    pub link_only_hint: String,
    /// Pushed-down filters.
    pub filters: Vec<PushDown>,
    /// Full SCIM schema of the resource.
    pub schema: ResourceSchema,
}

impl Mapping {
    /// Every declared call, users' then groups'.
    pub fn calls(&self) -> Vec<&Call> {
        let u = &self.users.calls;
        let mut out = vec![&u.get, &u.list, &u.create, &u.update];
        out.extend(
            [&u.deactivate, &u.reactivate, &u.delete, &u.take_over]
                .into_iter()
                .flatten(),
        );
        out.extend(
            [&u.deactivate, &u.reactivate, &u.delete]
                .into_iter()
                .flatten()
                .flat_map(|c| &c.then),
        );
        if let Some(g) = &self.groups {
            out.extend([&g.get, &g.list]);
            out.extend(g.delete.iter().flat_map(|c| &c.then));
            out.extend(
                [
                    &g.members,
                    &g.add_member,
                    &g.remove_member,
                    &g.add_members,
                    &g.remove_members,
                    &g.set_members,
                    &g.create,
                    &g.rename,
                    &g.delete,
                ]
                .into_iter()
                .flatten(),
            );
        }
        out
    }

    /// The tenant placeholders the mapping uses (`{tenant.customer_id}`, `{secret.api_key}`,
    /// `{var.NAME}`, `{secret.NAME}`), each once: what a tenant's configuration must give.
    pub fn tenant_vars(&self) -> Vec<Var> {
        let mut templates: Vec<&Template> = self.legacy.headers.iter().map(|(_, t)| t).collect();
        match &self.legacy.auth {
            Some(Auth::Basic { username, password }) => templates.extend([username, password]),
            Some(Auth::Bearer { token }) => templates.push(token),
            Some(Auth::OAuth2 {
                token_url,
                client_id,
                client_secret,
                scope,
                ..
            }) => {
                templates.extend([token_url, client_id, client_secret]);
                templates.extend(scope);
            }
            None => {}
        }
        let mut out: Vec<Var> = Vec::new();
        for call in self.calls() {
            templates.push(&call.path);
            templates.extend(call.query.iter().map(|(_, t)| t));
            if let Some(body) = &call.fixed_body {
                for v in body.vars() {
                    if v.is_tenant() && !out.contains(&v) {
                        out.push(v);
                    }
                }
            }
        }
        for v in templates.into_iter().flat_map(Template::vars) {
            if v.is_tenant() && !out.contains(v) {
                out.push(v.clone());
            }
        }
        out
    }

    /// The tenant placeholders the mapping uses that `values` does not give.
    pub fn missing_values(&self, values: &TenantValues) -> Vec<Var> {
        self.tenant_vars()
            .into_iter()
            .filter(|v| values.get(v).is_none())
            .collect()
    }
}
