//! The mapping file as written: serde structs mirroring the TOML, one per table.
//!
//! Nothing here is interpreted; `compile` turns a `MappingSpec` into a checked `Mapping`.
//! Every struct denies unknown keys so a misspelt key is an error, not a silent no-op.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A whole mapping file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingSpec {
    /// How to talk to the legacy application: headers, paging, errors.
    pub legacy: LegacySpec,
    /// How SCIM Users map onto legacy records.
    pub users: UsersSpec,
    /// How SCIM Groups map onto legacy records; absent when the app has no groups.
    pub groups: Option<GroupsSpec>,
}

/// `[legacy]`: transport-level facts about the legacy application.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacySpec {
    /// A human name for logs and error details, e.g. "Marketing Center".
    pub name: String,
    /// Headers sent with every call; values are templates.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How calls authenticate, beyond `headers`.
    pub auth: Option<AuthSpec>,
    /// How list answers are paged.
    pub paging: PagingSpec,
    /// How error answers are read and translated (absent: by HTTP status alone).
    #[serde(default)]
    pub errors: ErrorsSpec,
}

/// `[legacy.auth]`: the `Authorization` header of every call.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthSpec {
    /// HTTP Basic (RFC 7617): `Authorization: Basic base64(username:password)`.
    Basic {
        /// The user name (a template, e.g. `{var.api_user}`).
        username: String,
        /// The password (a template, e.g. `{secret.api_password}`).
        password: String,
    },
    /// A bearer token (RFC 6750): `Authorization: Bearer <token>`.
    Bearer {
        /// The token (a template, e.g. `{secret.api_token}`).
        token: String,
    },
    /// OAuth 2.0 client credentials (RFC 6749 §4.4): a token fetched from `token_url`, kept
    /// until it expires, fetched again once when a call is answered 401; sent as a bearer.
    Oauth2ClientCredentials {
        /// Where tokens are asked for: a path on the legacy app (relative to the tenant's base
        /// URL, e.g. `/oauth/token`) or an `http://` URL.
        token_url: String,
        /// The client id (a template, e.g. `{var.client_id}`).
        client_id: String,
        /// The client secret (a template naming a secret, e.g. `{secret.client_secret}`).
        client_secret: String,
        /// The scope asked for, if the server wants one (space-separated).
        scope: Option<String>,
        /// How the client authenticates to the token endpoint: `"basic"` (HTTP Basic, the
        /// default, RFC 6749 §2.3.1) or `"body"` (`client_id` and `client_secret` in the form).
        #[serde(default)]
        client_auth: ClientAuthSpec,
    },
}

/// How an OAuth 2.0 client authenticates to the token endpoint.
#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthSpec {
    /// HTTP Basic with the client id and secret.
    #[default]
    Basic,
    /// `client_id` and `client_secret` as form parameters.
    Body,
}

/// Paging styles a legacy list call can use.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PagingStyle {
    /// A page number and a page size.
    Page,
    /// A 0-based offset and a limit.
    Offset,
    /// A cursor token in each answer, sent back as a parameter for the next page.
    Cursor,
    /// The next page's URL in each answer.
    NextUrl,
    /// The next page's URL in the `Link` header (RFC 8288, `rel="next"`).
    LinkHeader,
}

/// `[legacy.paging]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagingSpec {
    /// `page`, `offset`, `cursor`, `next_url` or `link_header`.
    pub style: PagingStyle,
    /// Query parameter of the page number (style `page`).
    pub page_param: Option<String>,
    /// Query parameter of the offset (style `offset`).
    pub offset_param: Option<String>,
    /// Query parameter of the page size / limit (required for `page` and `offset`).
    pub size_param: Option<String>,
    /// Query parameter the cursor is sent back in (style `cursor`).
    pub cursor_param: Option<String>,
    /// JSON pointer to the next page's cursor in an answer (style `cursor`); absent, `null`
    /// or empty on the last page.
    pub cursor: Option<String>,
    /// JSON pointer to the next page's URL in an answer (style `next_url`); absent, `null`
    /// or empty on the last page.
    pub next: Option<String>,
    /// Number of the first page (style `page`), usually 1.
    #[serde(default = "one")]
    pub first_page: u64,
    /// Largest page size the legacy app accepts.
    pub max_page_size: u64,
    /// JSON pointer to the array of records in a list answer (`""`, the default: the answer
    /// is the array). A list call's own `items` overrides it.
    #[serde(default)]
    pub items: String,
    /// JSON pointer to the total count, if the app reports one.
    pub total: Option<String>,
    /// JSON pointer to a boolean "more pages follow", for apps without a total.
    pub more: Option<String>,
}

fn one() -> u64 {
    1
}

/// `[legacy.errors]`: where the parts of an error answer are.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorsSpec {
    /// JSON pointer to the machine-readable error code; absent for an API without codes
    /// (`by_status` then decides).
    pub code: Option<String>,
    /// JSON pointer to the human message (logged, never sent to the client).
    pub message: Option<String>,
    /// JSON pointer to the list of per-field problems.
    pub fields: Option<String>,
    /// JSON pointer, inside one field problem, to the legacy field name.
    pub field: Option<String>,
    /// JSON pointer, inside one field problem, to the problem text.
    pub problem: Option<String>,
    /// Response header saying when to retry.
    pub retry_after_header: Option<String>,
    /// What that header holds: `seconds` to wait (default) or the `epoch` second to wait for.
    #[serde(default)]
    pub retry_after_format: RetryAfterFormat,
    /// Legacy error code → SCIM answer.
    #[serde(default)]
    pub codes: BTreeMap<String, ErrorCodeSpec>,
    /// Legacy HTTP status → SCIM answer, for errors whose code is absent or not in `codes`.
    /// 400 and 422 default to `400 invalidValue`.
    #[serde(default)]
    pub by_status: BTreeMap<String, ErrorCodeSpec>,
    /// JSON pointer to the error's sentences: one string, or an array of strings (`""` with
    /// a plain-text answer: the text).
    pub sentences: Option<String>,
    /// A regular expression with the named groups `field` and `problem`, splitting each
    /// sentence into a field problem (`(?<field>\w+) (?<problem>.+)`).
    pub field_pattern: Option<String>,
    /// The app's names for fields in its errors → the legacy field as the attribute rows
    /// write it (`"First name" = "firstname"`).
    #[serde(default)]
    pub field_names: BTreeMap<String, String>,
    /// Sentence patterns → SCIM answer, tried in order for an error whose code is absent or
    /// not in `codes`.
    #[serde(default)]
    pub patterns: Vec<PatternSpec>,
}

/// One `[[legacy.errors.patterns]]` entry: a regular expression over the error's sentences
/// and the SCIM answer of an error one of whose sentences it matches.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct PatternSpec {
    /// The regular expression (unanchored; `(?i)` ignores case).
    pub matches: String,
    /// The SCIM HTTP status to answer.
    pub status: u16,
    /// The SCIM `scimType`, if any.
    pub scim_type: Option<String>,
    /// "A record with that unique key exists" (drives `on_conflict`).
    #[serde(default)]
    pub conflict: bool,
    /// For `conflict`: the SCIM attribute whose value in the request finds the existing
    /// record (one of `[users.filters]`).
    pub find_existing_by: Option<String>,
    /// In a membership push, skip the member instead of failing.
    #[serde(default)]
    pub skip_member: bool,
}

/// How a retry hint is written.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum RetryAfterFormat {
    /// Seconds to wait (`Retry-After: 7`).
    #[default]
    Seconds,
    /// The Unix time at which to retry (e.g. a reset header holding `1767225600`).
    Epoch,
}

/// One entry of `[legacy.errors.codes]`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ErrorCodeSpec {
    /// The SCIM HTTP status to answer.
    pub status: u16,
    /// The SCIM `scimType`, if any.
    pub scim_type: Option<String>,
    /// This code means "a record with that unique key exists" (drives `on_conflict`).
    #[serde(default)]
    pub conflict: bool,
    /// JSON pointer to the id of the existing record, for `conflict` codes.
    pub existing_id: Option<String>,
    /// For `conflict` codes without an id in the answer: the SCIM attribute (one of
    /// `[users.filters]`) whose value in the request finds the existing record.
    pub find_existing_by: Option<String>,
    /// In a group membership push, a member call failing with this code skips that member
    /// (logged and counted) instead of failing the push (e.g. an archived user).
    #[serde(default)]
    pub skip_member: bool,
}

/// HTTP methods a legacy call may use.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum MethodSpec {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

/// What a write call sends as its body.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BodySpec {
    /// Every mapped field that has a value (creates).
    Mapped,
    /// Only the fields that change; a cleared field is sent as `null` (partial updates).
    Changed,
    /// Every mapped field, empty ones as `null` (full replace).
    Full,
}

/// The `body` of a call as written.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum BodyField {
    /// `"mapped"`, `"changed"` or `"full"`.
    Kind(BodySpec),
    /// A fixed JSON body (see `body`).
    Fixed(String),
}

/// One declared legacy call.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct CallSpec {
    /// HTTP method.
    pub method: MethodSpec,
    /// Path template relative to the tenant's legacy base URL, e.g. `/people/{legacy_id}`.
    pub path: String,
    /// Fixed query parameters (values are templates).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// The body of a write call: what a user write sends (`mapped`, `changed`, `full`), or
    /// a fixed JSON body with placeholders for calls that send no mapped fields.
    pub body: Option<BodyField>,
    /// JSON pointer to the record in a single-record answer (`/user` for `{"user": {…}}`);
    /// the whole answer when absent.
    pub record: Option<String>,
    /// JSON pointer under which a write sends its body (`/user` sends `{"user": {…}}`).
    pub envelope: Option<String>,
    /// List calls: JSON pointer to the array of records, instead of `[legacy.paging]`'s.
    pub items: Option<String>,
    /// List calls with their own `items`: JSON pointer to the total, if the answer has one.
    pub total: Option<String>,
    /// List calls with their own `items`: JSON pointer to a "more pages follow" flag.
    pub more: Option<String>,
    /// Answers meaning the call's effect is already there (a member already added, a
    /// record already gone), counted as success.
    #[serde(default)]
    pub done: Vec<DoneSpec>,
    /// List calls: `"none"` when one call answers every record (no paging parameters).
    pub paging: Option<CallPaging>,
    /// `users.calls.list`: `"get"` when list items lack fields the mapping reads: each
    /// listed record is read again with the `get` call.
    pub complete: Option<Complete>,
    /// For member list calls: JSON pointer to the member's legacy id in each item.
    pub member_id: Option<String>,
    /// For member list calls: JSON pointer to a display name in each item (SCIM `display`).
    pub member_display: Option<String>,
    /// For batched member calls: the body is `{ <field>: [member ids] }`, at most `max` ids.
    pub batch: Option<BatchSpec>,
    /// Whether repeating the call is harmless, so it may be retried after a failure. Default:
    /// true for GET, PUT and DELETE, false for POST and PATCH (say `true` for e.g. an
    /// idempotent archive call).
    pub idempotent: Option<bool>,
    /// Calls made after this one, in order, when it succeeds (or is "already done"): an
    /// operation of several calls, e.g. lock, then delete (`[[users.calls.delete.then]]`).
    /// The last call's answer is the operation's. Deactivate, reactivate and delete only.
    #[serde(default)]
    pub then: Vec<CallSpec>,
}

/// An answer meaning "already done": every key given must hold.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct DoneSpec {
    /// The legacy HTTP status.
    pub status: Option<u16>,
    /// The legacy error code.
    pub code: Option<String>,
    /// A regular expression over the error's message or sentences.
    pub matches: Option<String>,
}

/// How a list call pages, when not as `[legacy.paging]` says.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CallPaging {
    /// One call answers every record.
    None,
}

/// How listed records are completed.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Complete {
    /// Each listed record is read again with the `get` call.
    Get,
}

/// `batch = { field = "uids", max = 100 }`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct BatchSpec {
    /// The body field holding the array of member ids.
    pub field: String,
    /// Largest number of ids in one call (for `set_members`: in the group).
    pub max: usize,
    /// How the ids are written: `"text"` (default, `["7", "9"]`) or `"number"` (`[7, 9]`).
    #[serde(default)]
    pub ids: BatchIds,
}

/// How member ids are written in a batch body.
#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BatchIds {
    /// JSON strings.
    #[default]
    Text,
    /// JSON numbers (an id that is not a whole number is refused).
    Number,
}

/// `[users]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersSpec {
    /// JSON pointer to the legacy id in a record.
    pub legacy_id: String,
    /// JSON pointer to the creation time (RFC 3339) in a record.
    pub created: Option<String>,
    /// JSON pointer to the last modification time (RFC 3339) in a record.
    pub last_modified: Option<String>,
    /// JSON pointer to a value that never changes for one account and tells two accounts of
    /// one legacy id apart (its creation time): it joins the SCIM id, for apps that reuse ids.
    pub fingerprint: Option<String>,
    /// How `created` and `last_modified` are written.
    #[serde(default)]
    pub time_format: TimeFormat,
    /// How SCIM `active` is read; absent when every existing record is active.
    pub active: Option<ActiveSpec>,
    /// The declared calls.
    pub calls: UserCallsSpec,
    /// Lifecycle choices.
    #[serde(default)]
    pub lifecycle: LifecycleSpec,
    /// SCIM `attr eq "value"` filters the legacy list call answers itself.
    #[serde(default)]
    pub filters: BTreeMap<String, FilterSpec>,
    /// Values emitted on single-slot multi-valued attributes (e.g. `emails`).
    #[serde(default)]
    pub multi_valued: BTreeMap<String, MultiValuedSpec>,
    /// The attribute map.
    #[serde(default)]
    pub attributes: Vec<AttributeSpec>,
}

/// How the legacy app writes times.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// RFC 3339 text, e.g. `2026-03-01T10:00:00Z`.
    #[default]
    Rfc3339,
    /// Seconds since the Unix epoch, e.g. `1767225600`.
    UnixSeconds,
}

/// `[users.active]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActiveSpec {
    /// JSON pointers to booleans that must all be true.
    #[serde(default)]
    pub all_true: Vec<String>,
    /// JSON pointers to booleans that must all be false.
    #[serde(default)]
    pub all_false: Vec<String>,
    /// JSON pointer to a state field (a number or a text such as `"ACTIVE"`), read through
    /// `active`.
    pub field: Option<String>,
    /// The values of `field` that mean active; any other value reads inactive.
    #[serde(default)]
    pub active: Vec<toml::Value>,
    /// The value the update call writes to `field` to activate a user (instead of a
    /// `reactivate` call); one of `active`.
    pub set_active: Option<toml::Value>,
    /// The value the update call writes to `field` to deactivate a user (instead of a
    /// `deactivate` call); not one of `active`.
    pub set_inactive: Option<toml::Value>,
}

/// `[users.calls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserCallsSpec {
    /// Read one record by legacy id.
    pub get: CallSpec,
    /// Read a page of records.
    pub list: CallSpec,
    /// Create a record; answers the new record.
    pub create: CallSpec,
    /// Change a record.
    pub update: CallSpec,
    /// Make a record inactive.
    pub deactivate: Option<CallSpec>,
    /// Make an inactive record active again.
    pub reactivate: Option<CallSpec>,
    /// Delete a record.
    pub delete: Option<CallSpec>,
    /// Take over an existing record (e.g. one created by hand), for `take_over_and_update`.
    pub take_over: Option<CallSpec>,
}

/// What SCIM DELETE does.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DeleteSpec {
    /// Call `deactivate` and tombstone the SCIM id.
    #[default]
    Deactivate,
    /// Call `delete`.
    Delete,
}

/// What SCIM `active: false` does.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DeactivateSpec {
    /// Call `deactivate` (and `reactivate` for `active: true`).
    #[default]
    Call,
    /// Call `delete` and tombstone the SCIM id: the record is gone (a later GET is 404).
    Delete,
}

/// `[users.lifecycle]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LifecycleSpec {
    /// What SCIM DELETE does.
    #[serde(default)]
    pub delete: DeleteSpec,
    /// What SCIM `active: false` does.
    #[serde(default)]
    pub deactivate: DeactivateSpec,
    /// Rules tried in order when a create meets a `conflict` error.
    #[serde(default)]
    pub on_conflict: Vec<ConflictRuleSpec>,
}

/// A condition on the existing record of a create conflict.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKeyword {
    /// The existing record is inactive (deactivated earlier).
    ExistingInactive,
    /// The existing record carries the request's `externalId`.
    SameExternalId,
}

/// A condition on the existing record of a create conflict: a keyword, or a field test.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(untagged)]
pub enum ConflictWhen {
    /// `"existing_inactive"` or `"same_external_id"`.
    Keyword(ConflictKeyword),
    /// `{ field = "/origin", equals = "local" }`: a field of the existing record has a value.
    Field(FieldTest),
}

/// A test of one field of a legacy record.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FieldTest {
    /// JSON pointer into the record.
    pub field: String,
    /// The value it must have (any JSON value).
    pub equals: toml::Value,
}

/// What to do with the existing record of a create conflict.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConflictThen {
    /// Reactivate it, update it with the request, answer 201.
    ReactivateAndUpdate,
    /// Take it over as the created resource, update it with the request, answer 201.
    Adopt,
    /// Call `take_over` on it, update it with the request, answer 201.
    TakeOverAndUpdate,
}

impl ConflictThen {
    /// The action as written in a mapping.
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictThen::ReactivateAndUpdate => "reactivate_and_update",
            ConflictThen::Adopt => "adopt",
            ConflictThen::TakeOverAndUpdate => "take_over_and_update",
        }
    }
}

/// One `on_conflict` rule.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ConflictRuleSpec {
    /// The condition.
    pub when: ConflictWhen,
    /// The action.
    pub then: ConflictThen,
}

/// Case sensitivity of a pushed-down filter.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CaseSpec {
    /// The legacy app compares exactly.
    Exact,
    /// The legacy app ignores case.
    Insensitive,
}

/// One pushed-down filter.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// Query parameter of the list call that filters on this attribute.
    pub query: String,
    /// How the legacy app compares.
    pub case: CaseSpec,
}

/// Emitted values of one single-slot multi-valued attribute.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct MultiValuedSpec {
    /// The `type` of the element the sidecar emits.
    pub r#type: Option<String>,
    /// Whether the emitted element says `primary: true`.
    #[serde(default)]
    pub primary: bool,
    /// The only `type` values a request may give an element (any, when empty).
    #[serde(default)]
    pub accepted_types: Vec<String>,
}

/// One or several legacy fields.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum LegacyFields {
    /// One field.
    One(String),
    /// Several fields, combined by a transform.
    Many(Vec<String>),
}

/// One row of the attribute map.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct AttributeSpec {
    /// SCIM attribute path: `userName`, `name.givenName`, `emails[primary].value`,
    /// or URN-qualified for extensions.
    pub scim: String,
    /// The legacy field(s).
    pub legacy: LegacyFields,
    /// Named transform between the two.
    pub transform: Option<String>,
    /// A value map instead of a transform: each SCIM value and the legacy value standing
    /// for it.
    pub values: Option<Vec<ValuePairSpec>>,
    /// The SCIM attribute must have a value on create and replace.
    #[serde(default)]
    pub required: bool,
    /// Longest accepted value, in characters.
    pub max_length: Option<usize>,
    /// A regular expression the value must match (anchor it with `^…$` to match whole).
    pub pattern: Option<String>,
    /// Another SCIM attribute whose value this one must equal (ignoring case), e.g.
    /// `userName` equal to `emails[primary].value`.
    pub equals: Option<String>,
    /// Shown on reads, never written: a second SCIM attribute read from a field another row
    /// writes (`emails[primary].value` from the `email` that `userName` writes).
    #[serde(default)]
    pub read_only: bool,
}

/// One pair of a value map: `{ scim = "Manager", legacy = 2 }`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ValuePairSpec {
    /// The SCIM value.
    pub scim: toml::Value,
    /// The legacy value standing for it.
    pub legacy: toml::Value,
}

/// `[groups]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupsSpec {
    /// JSON pointer to the legacy id in a record.
    pub legacy_id: String,
    /// `legacy`: the SCIM id is the legacy id; `derived`: a name-based UUID.
    #[serde(default)]
    pub scim_id: GroupIdSpec,
    /// JSON pointer to the group's display name.
    pub display_name: String,
    /// The legacy field a create or rename writes the display name to.
    pub display_name_field: Option<String>,
    /// Groups that must never be linked or changed: any write answers `403`.
    pub locked: Option<LockedSpec>,
    /// The declared calls.
    pub calls: GroupCallsSpec,
    /// JSON pointer to the group record's version (`lock_version`, `etag`), sent back with
    /// `set_members` so the app refuses a list computed from an older state.
    pub version: Option<String>,
    /// Where the version goes: `"body"` (default: at the same pointer in the body) or
    /// `"if_match"` (an `If-Match` header).
    #[serde(default)]
    pub version_in: VersionIn,
    /// The group `get` answers an `ETag` header: it is read just before `set_members` and
    /// sent back as `If-Match` (instead of `version`).
    #[serde(default)]
    pub etag: bool,
    /// Pushed-down filters.
    #[serde(default)]
    pub filters: BTreeMap<String, FilterSpec>,
    /// What the admin is told when asking to create, rename or delete a group the legacy
    /// app owns (no `create` / `rename` / `delete` call is declared).
    pub link_only_hint: Option<String>,
}

/// `[groups] locked`: a field test and what the client is told.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct LockedSpec {
    /// JSON pointer into the group record.
    pub field: String,
    /// The value that locks the group.
    pub equals: toml::Value,
    /// The detail of the `403`.
    pub detail: String,
}

/// Where a group's version is sent.
#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum VersionIn {
    /// In the body, at the pointer it is read from.
    #[default]
    Body,
    /// As `If-Match: <version>`.
    IfMatch,
}

/// How a group's SCIM id is formed.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum GroupIdSpec {
    /// The legacy id, verbatim.
    #[default]
    Legacy,
    /// A name-based UUID of (tenant, legacy id).
    Derived,
}

/// `[groups.calls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupCallsSpec {
    /// Read one group.
    pub get: CallSpec,
    /// Read a page of groups.
    pub list: CallSpec,
    /// Read a page of a group's members.
    pub members: Option<CallSpec>,
    /// Add one member: `{legacy_id}` is the group, `{member_legacy_id}` the user.
    pub add_member: Option<CallSpec>,
    /// Remove one member: `{legacy_id}` is the group, `{member_legacy_id}` the user.
    pub remove_member: Option<CallSpec>,
    /// Add members in batches (with `batch`), instead of `add_member`.
    pub add_members: Option<CallSpec>,
    /// Remove members in batches (with `batch`), instead of `remove_member`.
    pub remove_members: Option<CallSpec>,
    /// Replace the whole member list in one call (with `batch`: the body field and the app's
    /// largest group), instead of add and remove calls.
    pub set_members: Option<CallSpec>,
    /// Create a group (body: the display name in `display_name_field`).
    pub create: Option<CallSpec>,
    /// Rename a group (body: the display name in `display_name_field`).
    pub rename: Option<CallSpec>,
    /// Delete a group.
    pub delete: Option<CallSpec>,
}
