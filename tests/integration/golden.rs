//! Golden cases for the mapping engine: every folder under `tests/mapping_cases/` is one case
//! (a `case.toml`, format in `tests/mapping_cases/README.md`) — a mapping, SCIM input and the
//! legacy calls it must give, legacy answers and what must come of them. One test runs them
//! all and reports every difference as a diff of pretty JSON. Adding a case needs no Rust.
//!
//! The steps run the code the sidecar runs: writes and whole operations go through the plans
//! of `mapping::plan` (the functions the handlers call), over an exchange that checks each call
//! a plan makes against the case's script and answers with the case's canned answer, decoded
//! by the mapping as the gateway decodes a real one. A refusal is told as the error funnel
//! tells it to a SCIM client.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use mapping::ids::{LegacyId, TenantId};
use mapping::plan::groups::{self as gplan, Changed, Pushed};
use mapping::plan::users::{self as uplan, After};
use mapping::plan::{Answer, AnswerNow, Exchange, Outbound, Refusal};
use mapping::resource::Remembered;
use mapping::{Call, Mapping, PreparedCall};
use scim::list::ListParams;
use scim::{filter, patch};
use scim_sidecar::error::Error as ScimError;
use serde::Deserialize;
use serde_json::{Value, json};

/// The cases folder, relative to the repository root.
const CASES: &str = "tests/mapping_cases";
/// The file that makes a folder a case.
const CASE_FILE: &str = "case.toml";
/// A case's own mapping, used when `case.toml` names none.
const ADJACENT_MAPPING: &str = "mapping.toml";
/// The SCIM PatchOp message URN, for `operations` given as a bare array.
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The tenant and base URL resources are built for (ids and `meta.location`).
const TENANT: &str = "golden";
const BASE_URL: &str = "https://sidecar.example/scim/v2";

// ------------------------------------------------------------------------------ case format

/// One `case.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    /// Mapping file relative to the repository root; absent: `mapping.toml` beside the case.
    mapping: Option<String>,
    /// Tenant values for templates; needed by steps that prepare a call.
    vars: Option<VarsSpec>,
    #[serde(default)]
    write: Vec<WriteStep>,
    #[serde(default)]
    write_error: Vec<WriteErrorStep>,
    #[serde(default)]
    exchange: Vec<ExchangeStep>,
    #[serde(default)]
    read: Vec<ReadStep>,
    #[serde(default)]
    list_answer: Vec<ListAnswerStep>,
    #[serde(default)]
    call: Vec<CallStep>,
    #[serde(default)]
    error: Vec<ErrorStep>,
    #[serde(default)]
    filter: Vec<FilterStep>,
    #[serde(default)]
    token_request: Vec<TokenRequestStep>,
}

/// `[[token_request]]`: the OAuth 2.0 token request the mapping's `[legacy.auth]` makes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequestStep {
    name: Option<String>,
    expect: TokenRequestExpect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequestExpect {
    url: String,
    form: String,
    authorization: Option<String>,
}

/// `[vars]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VarsSpec {
    #[serde(default)]
    customer_id: String,
    #[serde(default)]
    api_key: String,
    legacy_id: Option<String>,
    member_legacy_id: Option<String>,
    /// `{var.NAME}` values.
    #[serde(default)]
    var: BTreeMap<String, String>,
    /// `{secret.NAME}` values.
    #[serde(default)]
    secret: BTreeMap<String, String>,
}

impl VarsSpec {
    fn tenant(&self) -> mapping::TenantValues {
        mapping::TenantValues {
            customer_id: self.customer_id.clone(),
            api_key: self.api_key.clone(),
            vars: self.var.clone(),
            secrets: self.secret.clone(),
        }
    }
}

/// A JSON value: JSON text in a TOML string, or `{ file = "x.json" }` beside `case.toml`.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "JSON text in a string, or a table { file = \"name.json\" }"
)]
enum Json {
    Text(String),
    File(JsonFile),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonFile {
    file: String,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Op {
    Create,
    Replace,
    Patch,
}

/// `[[write]]`: SCIM in, the legacy write call out (or no call when nothing changes).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteStep {
    name: Option<String>,
    op: Op,
    scim: Option<Json>,
    current: Option<Json>,
    before: Option<Json>,
    after: Option<Json>,
    operations: Option<Json>,
    expect: Option<CallExpect>,
    no_call: Option<bool>,
}

/// `[[write_error]]`: SCIM in, the mapping's refusal out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteErrorStep {
    name: Option<String>,
    op: Op,
    scim: Option<Json>,
    current: Option<Json>,
    before: Option<Json>,
    after: Option<Json>,
    operations: Option<Json>,
    expect: String,
}

/// The operations `[[exchange]]` runs.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum ExchangeOp {
    Create,
    Replace,
    Patch,
    Delete,
    GroupCreate,
    GroupPatch,
    GroupReplace,
    GroupDelete,
    List,
}

/// `[[exchange]]`: a whole operation, every call it makes checked against the script and
/// answered from it, and what came of it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangeStep {
    name: Option<String>,
    op: ExchangeOp,
    /// The request body (a PatchOp for `patch` and `group_patch`).
    scim: Option<Json>,
    /// `list`: the SCIM list request's query string (`filter=…&startIndex=1&count=100`).
    query: Option<String>,
    /// The legacy record the SCIM id is (what the sidecar found through the cross-reference).
    current: Option<Json>,
    /// Group operations: the cross-reference of members, SCIM id → legacy id.
    #[serde(default)]
    members: BTreeMap<String, String>,
    /// Group member calls in flight at once (default 1, so the order is the script's).
    concurrency: Option<usize>,
    #[serde(default)]
    calls: Vec<ScriptedCall>,
    /// What came of it (JSON).
    expect: Json,
}

/// One call of an `[[exchange]]` script: what the plan must send, and what it gets back.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptedCall {
    method: String,
    path_and_query: String,
    /// Every header, when given (absent: not compared).
    headers: Option<Vec<HeaderExpect>>,
    /// The JSON body (absent: the call sends none).
    body: Option<Json>,
    answer: AnswerSpec,
}

/// A canned legacy answer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerSpec {
    status: u16,
    #[serde(default)]
    body: String,
    /// The value of the mapping's retry header, if the answer has one.
    retry_after: Option<String>,
    /// The answer's `Link` header, if it has one (`<…>; rel="next"`).
    link: Option<String>,
    /// The answer's `ETag` header, if it has one.
    etag: Option<String>,
}

/// `[[read]]`: a legacy record in, SCIM attributes out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadStep {
    name: Option<String>,
    record: Json,
    expect: Json,
    expect_legacy_id: Option<String>,
    expect_id: Option<String>,
    kept_external_id: Option<String>,
    expect_external_id: Option<String>,
}

/// `[[list_answer]]`: a legacy list answer in, total / has-more / SCIM resources out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListAnswerStep {
    name: Option<String>,
    answer: Json,
    expect: ListExpect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListExpect {
    total: Option<u64>,
    has_more: Option<bool>,
    resources: Option<Json>,
    error: Option<String>,
}

/// `[[call]]`: a declared call (with paging and a pushed-down filter) → the prepared call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallStep {
    name: Option<String>,
    call: String,
    filter: Option<String>,
    page: Option<PageSpec>,
    expect: CallExpect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageSpec {
    index: u64,
    size: u64,
}

/// The expected `PreparedCall`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallExpect {
    method: String,
    path_and_query: String,
    #[serde(default)]
    headers: Vec<HeaderExpect>,
    body: Option<Json>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderExpect {
    name: String,
    value: String,
    #[serde(default)]
    secret: bool,
}

/// `[[error]]`: a legacy error answer in, its interpretation out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorStep {
    name: Option<String>,
    status: u16,
    #[serde(default)]
    body: String,
    retry_after: Option<String>,
    /// The Unix time "now", for mappings whose retry hint is an epoch second (default 0).
    #[serde(default)]
    now_unix: u64,
    expect: ErrorExpect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorExpect {
    code: Option<String>,
    message: Option<String>,
    scim_status: Option<u16>,
    scim_type: Option<String>,
    #[serde(default)]
    conflict: bool,
    #[serde(default)]
    skip_member: bool,
    existing_id: Option<String>,
    retry_after: Option<u64>,
    #[serde(default)]
    fields: Vec<FieldExpect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldExpect {
    field: String,
    problem: String,
    detail: String,
}

#[derive(Debug, Deserialize, Clone, Copy, Default)]
enum Resource {
    #[default]
    User,
    Group,
}

/// `[[filter]]`: a SCIM filter in, the pushed-down legacy query (or none) out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterStep {
    name: Option<String>,
    filter: String,
    #[serde(default)]
    resource: Resource,
    query: Option<Vec<(String, String)>>,
    not_pushed: Option<bool>,
}

// ------------------------------------------------------------------------------ exchanges

/// Why a plan run by the harness stopped.
#[derive(Debug)]
enum Stop {
    /// The plan refused (as it would in the sidecar).
    Refused(Refusal),
    /// The script ended, or a call differs from it: a failure of the case.
    Script(String),
    /// A capturing run has what it wanted.
    Captured,
}

impl From<Refusal> for Stop {
    fn from(r: Refusal) -> Self {
        Stop::Refused(r)
    }
}

/// Prepares calls as the gateway does, with the case's `[vars]`.
#[derive(Clone, Copy)]
struct Preparer<'a> {
    mapping: &'a Mapping,
    vars: Option<&'a VarsSpec>,
}

impl Preparer<'_> {
    fn prepare(&self, call: &Outbound<'_>) -> Result<PreparedCall, String> {
        let v = self
            .vars
            .ok_or("this step prepares a call: the case needs a [vars] table")?;
        call.prepare(&self.mapping.legacy, &v.tenant())
            .map_err(|e| format!("the call cannot be prepared: {e}"))
    }
}

/// Runs a plan against a script: each call is compared with the next scripted one and
/// answered with its canned answer.
struct Script<'a> {
    prep: Preparer<'a>,
    dir: &'a Path,
    calls: VecDeque<&'a ScriptedCall>,
    made: usize,
    /// Every call the plan made, as `METHOD path_and_query`, in order.
    sent: Vec<String>,
    /// Differences between what the plan sent and the script: (call number, check).
    diffs: Vec<(usize, Check)>,
}

impl Script<'_> {
    /// The scripted answer to `call`: (the answer, its `Link` next target, its `ETag`).
    #[allow(clippy::type_complexity)]
    fn next(
        &mut self,
        call: &Outbound<'_>,
    ) -> Result<(Answer, Option<String>, Option<String>), Stop> {
        self.made += 1;
        let n = self.made;
        let prepared = self.prep.prepare(call).map_err(Stop::Script)?;
        self.sent
            .push(format!("{} {}", prepared.method, prepared.path_and_query));
        let Some(expected) = self.calls.pop_front() else {
            return Err(Stop::Script(format!(
                "the plan made call #{n} ({} {}), the script has no more",
                prepared.method, prepared.path_and_query
            )));
        };
        let body =
            opt_json(self.dir, expected.body.as_ref(), "calls.body").map_err(Stop::Script)?;
        let mut want = json!({
            "method": expected.method,
            "path_and_query": expected.path_and_query,
            "body": body.unwrap_or(Value::Null),
        });
        let mut got = call_json(&prepared);
        match &expected.headers {
            Some(h) => want["headers"] = headers_json(h),
            None => {
                if let Some(o) = got.as_object_mut() {
                    o.remove("headers");
                }
            }
        }
        if want != got {
            self.diffs.push((n, Check::json("the call", want, got)));
        }
        let a = &expected.answer;
        let errors = &self.prep.mapping.legacy.errors;
        let retry_after = a
            .retry_after
            .as_deref()
            .filter(|_| errors.retry_after_header.is_some())
            .and_then(|v| errors.retry_after_format.seconds(v, 0));
        let link_next = a.link.as_deref().and_then(mapping::apply::link_next);
        let answer = self
            .prep
            .mapping
            .legacy
            .decode(a.status, a.body.as_bytes(), retry_after)
            .map_err(|e| Stop::Refused(Refusal::Translate(e)))?;
        Ok((answer, link_next, a.etag.clone()))
    }
}

// One at a time, in order: the script's order.
impl AnswerNow for Script<'_> {
    type Error = Stop;

    fn answer_now(&mut self, call: &Outbound<'_>) -> Result<(Answer, Option<String>), Stop> {
        self.next(call).map(|(answer, link, _)| (answer, link))
    }

    fn answer_versioned(&mut self, call: &Outbound<'_>) -> Result<(Answer, Option<String>), Stop> {
        self.next(call).map(|(answer, _, etag)| (answer, etag))
    }
}

/// Captures the first call a plan makes, then stops it.
struct Capture<'a> {
    prep: Preparer<'a>,
    first: Option<(String, PreparedCall)>,
}

impl Exchange for Capture<'_> {
    type Error = Stop;

    async fn send(&mut self, call: Outbound<'_>) -> Result<Answer, Stop> {
        let prepared = self.prep.prepare(&call).map_err(Stop::Script)?;
        self.first = Some((call.call.name.to_string(), prepared));
        Err(Stop::Captured)
    }

    async fn send_all<'m>(
        &mut self,
        calls: Vec<Outbound<'m>>,
        _limit: usize,
        _each: &mut (dyn FnMut(usize, Answer) -> Result<(), Stop> + Send),
    ) -> Result<(), Stop> {
        match calls.into_iter().next() {
            Some(call) => self.send(call).await.map(drop),
            None => Ok(()),
        }
    }
}

/// `GET /Users` as the handler runs it: the listing's calls, each page completed and read,
/// rows built without a cross-reference (no tombstones). The outcome: the total and the
/// window's userNames.
async fn list_users(m: &Mapping, p: &ListParams, x: &mut Script<'_>) -> Result<Value, Stop> {
    let mut listing = uplan::Listing::new(m, p, HashSet::new());
    while let Some(call) = listing.next_call() {
        let (answer, link_next) = x.send_page(call).await?;
        let records = listing.read(answer, link_next.as_deref())?;
        let records = uplan::complete(m, records, 1, x).await?;
        let rows = records
            .into_iter()
            .filter_map(|r| {
                let id = m.users.legacy_id_of(&r)?;
                Some((id, Value::Object(m.users.read(&r)), false))
            })
            .collect();
        listing.accept(rows, p);
    }
    let (total, page) = listing.finish();
    let names: Vec<Value> = page.iter().map(|r| r["userName"].clone()).collect();
    Ok(json!({"total": total, "userNames": names}))
}

/// Runs a plan's future to its end (the harness's exchanges never wait).
fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
        .block_on(f)
}

/// How the error funnel answers a refusal: what a SCIM client is told.
fn refused_json(r: Refusal) -> Value {
    let a = ScimError::from(r).answer();
    json!({"error": {
        "status": a.status.as_u16(),
        "scim_type": a.scim_type.map(|t| t.as_str()),
        "detail": a.detail,
    }})
}

// ------------------------------------------------------------------------------ running

/// What one case runs against.
struct Ctx<'a> {
    dir: &'a Path,
    mapping: Mapping,
    vars: Option<&'a VarsSpec>,
}

fn json_of(dir: &Path, j: &Json, key: &str) -> Result<Value, String> {
    let (text, origin) = match j {
        Json::Text(t) => (t.clone(), format!("`{key}`")),
        Json::File(f) => {
            let path = dir.join(&f.file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("`{key}`: cannot read {}: {e}", path.display()))?;
            (text, format!("`{key}` ({})", f.file))
        }
    };
    serde_json::from_str(&text).map_err(|e| format!("{origin} is not valid JSON: {e}"))
}

fn opt_json(dir: &Path, j: Option<&Json>, key: &str) -> Result<Option<Value>, String> {
    j.map(|j| json_of(dir, j, key)).transpose()
}

impl Ctx<'_> {
    fn json(&self, j: &Json, key: &str) -> Result<Value, String> {
        json_of(self.dir, j, key)
    }

    fn opt_json(&self, j: Option<&Json>, key: &str) -> Result<Option<Value>, String> {
        opt_json(self.dir, j, key)
    }

    fn prep(&self) -> Preparer<'_> {
        Preparer {
            mapping: &self.mapping,
            vars: self.vars,
        }
    }

    fn call(&self, name: &str) -> Result<&Call, String> {
        let u = &self.mapping.users.calls;
        let g = self.mapping.groups.as_ref();
        let call = match name {
            "users.get" => Some(&u.get),
            "users.list" => Some(&u.list),
            "users.create" => Some(&u.create),
            "users.update" => Some(&u.update),
            "users.deactivate" => u.deactivate.as_ref(),
            "users.reactivate" => u.reactivate.as_ref(),
            "users.delete" => u.delete.as_ref(),
            "users.take_over" => u.take_over.as_ref(),
            "groups.get" => g.map(|g| &g.get),
            "groups.list" => g.map(|g| &g.list),
            "groups.members" => g.and_then(|g| g.members.as_ref()),
            "groups.add_member" => g.and_then(|g| g.add_member.as_ref()),
            "groups.remove_member" => g.and_then(|g| g.remove_member.as_ref()),
            "groups.add_members" => g.and_then(|g| g.add_members.as_ref()),
            "groups.remove_members" => g.and_then(|g| g.remove_members.as_ref()),
            "groups.create" => g.and_then(|g| g.create.as_ref()),
            "groups.rename" => g.and_then(|g| g.rename.as_ref()),
            "groups.delete" => g.and_then(|g| g.delete.as_ref()),
            _ => {
                return Err(format!(
                    "unknown call {name:?} (users.get|list|create|update|deactivate|reactivate|\
                     delete|take_over, groups.get|list|members|add_member|remove_member|\
                     add_members|remove_members|create|rename|delete)"
                ));
            }
        };
        call.ok_or_else(|| format!("the mapping declares no call {name:?}"))
    }

    fn push_down(
        &self,
        resource: Resource,
        text: &str,
    ) -> Result<Option<Vec<(String, String)>>, String> {
        let f = filter::parse(text).map_err(|e| format!("filter {text:?}: {e}"))?;
        Ok(match resource {
            Resource::User => self.mapping.users.push_down(&f),
            Resource::Group => {
                let g = self
                    .mapping
                    .groups
                    .as_ref()
                    .ok_or("the mapping has no [groups]")?;
                mapping::apply::push_down(&g.filters, &g.schema, &f)
            }
        })
    }

    /// The SCIM resource the sidecar shows for a legacy record (a PATCH applies to it).
    fn resource_of(&self, record: &Value) -> Result<Value, String> {
        let um = &self.mapping.users;
        um.resource(
            &TenantId::new(TENANT),
            record,
            um.read(record),
            None,
            BASE_URL,
        )
        .map_err(|e| format!("`current` has no legacy id: {e}"))
    }

    fn legacy_id(&self, record: &Value) -> Result<LegacyId, String> {
        self.mapping
            .users
            .legacy_id_of(record)
            .ok_or_else(|| "`current` has no legacy id".to_owned())
    }
}

/// The inputs of a write, shared by `[[write]]` and `[[write_error]]`.
struct WriteInput<'a> {
    op: Op,
    scim: Option<&'a Json>,
    current: Option<&'a Json>,
    before: Option<&'a Json>,
    after: Option<&'a Json>,
    operations: Option<&'a Json>,
}

impl WriteStep {
    fn input(&self) -> WriteInput<'_> {
        WriteInput {
            op: self.op,
            scim: self.scim.as_ref(),
            current: self.current.as_ref(),
            before: self.before.as_ref(),
            after: self.after.as_ref(),
            operations: self.operations.as_ref(),
        }
    }
}

impl WriteErrorStep {
    fn input(&self) -> WriteInput<'_> {
        WriteInput {
            op: self.op,
            scim: self.scim.as_ref(),
            current: self.current.as_ref(),
            before: self.before.as_ref(),
            after: self.after.as_ref(),
            operations: self.operations.as_ref(),
        }
    }
}

/// Which keys each `op` needs and takes.
fn check_keys(w: &WriteInput<'_>) -> Result<(), String> {
    let given = [
        ("scim", w.scim.is_some()),
        ("current", w.current.is_some()),
        ("before", w.before.is_some()),
        ("after", w.after.is_some()),
        ("operations", w.operations.is_some()),
    ];
    let (name, needs, takes): (&str, &[&str], &[&str]) = match w.op {
        Op::Create => ("create", &["scim"], &["scim"]),
        Op::Replace => ("replace", &["scim", "current"], &["scim", "current"]),
        Op::Patch => (
            "patch",
            &["current"],
            &["current", "before", "after", "operations"],
        ),
    };
    for (key, present) in given {
        if !present && needs.contains(&key) {
            return Err(format!("op = \"{name}\" needs `{key}`"));
        }
        if present && !takes.contains(&key) {
            return Err(format!("op = \"{name}\" takes no `{key}`"));
        }
    }
    if w.op == Op::Patch && w.after.is_some() == w.operations.is_some() {
        return Err("op = \"patch\" needs exactly one of `after` and `operations`".into());
    }
    Ok(())
}

/// A PatchOp body from `operations` (a body, or only its `Operations` array).
fn patch_body(ctx: &Ctx<'_>, ops: &Json) -> Result<Value, String> {
    let mut body = ctx.json(ops, "operations")?;
    if body.is_array() {
        body = json!({"schemas": [PATCH_OP], "Operations": body});
    }
    Ok(body)
}

/// The write call a plan sends first (`Ok(None)`: it sends none, nothing changes), or the
/// plan's refusal. The outer error is a malformed step.
fn run_write(
    ctx: &Ctx<'_>,
    w: &WriteInput<'_>,
) -> Result<Result<Option<PreparedCall>, Refusal>, String> {
    check_keys(w)?;
    let m = &ctx.mapping;
    let um = &m.users;
    let current = ctx.opt_json(w.current, "current")?;
    // A PATCH given as the resource after it: the plan's own field and body choice.
    if let (Op::Patch, Some(after)) = (w.op, w.after) {
        let current = current.ok_or("`current` missing")?;
        let before = match ctx.opt_json(w.before, "before")? {
            Some(b) => b,
            None => Value::Object(um.read(&current)),
        };
        let after = ctx.json(after, "after")?;
        let fields = match uplan::patch_fields(um, &before, &after) {
            Ok(f) if f.is_empty() => return Ok(Ok(None)),
            Ok(f) => f,
            Err(e) => return Ok(Err(Refusal::Translate(e))),
        };
        let Some(body) = uplan::update_body(um, &current, &fields) else {
            return Ok(Ok(None));
        };
        let legacy_id = ctx.legacy_id(&current)?;
        let call = Outbound::about(&um.calls.update, &legacy_id).with_body(body);
        return Ok(Ok(Some(ctx.prep().prepare(&call)?)));
    }
    let mut x = Capture {
        prep: ctx.prep(),
        first: None,
    };
    let outcome: Result<(), Stop> = match w.op {
        Op::Create => {
            let scim = ctx.opt_json(w.scim, "scim")?.unwrap_or_default();
            run(uplan::create(m, &scim, &mut x)).map(drop)
        }
        Op::Replace => {
            let scim = ctx.opt_json(w.scim, "scim")?.unwrap_or_default();
            let current = current.ok_or("`current` missing")?;
            let id = ctx.legacy_id(&current)?;
            run(uplan::replace(m, &id, current, &scim, &mut x)).map(drop)
        }
        Op::Patch => {
            let current = current.ok_or("`current` missing")?;
            let id = ctx.legacy_id(&current)?;
            let before = match ctx.opt_json(w.before, "before")? {
                Some(b) => b,
                None => ctx.resource_of(&current)?,
            };
            let ops = w.operations.ok_or("`after` or `operations` missing")?;
            let body = patch_body(ctx, ops)?;
            patch::parse_request(&body).map_err(|e| format!("`operations`: {e}"))?;
            run(uplan::patch(m, &id, current, before, &body, &mut x)).map(drop)
        }
    };
    let write_call = match w.op {
        Op::Create => &um.calls.create.name,
        Op::Replace | Op::Patch => &um.calls.update.name,
    };
    match (outcome, x.first) {
        (Err(Stop::Refused(r)), _) => Ok(Err(r)),
        (Err(Stop::Script(e)), _) => Err(e),
        (_, Some((name, call))) if *name == **write_call => Ok(Ok(Some(call))),
        _ => Ok(Ok(None)),
    }
}

fn headers_json(h: &[HeaderExpect]) -> Value {
    let mut headers: Vec<Value> = h
        .iter()
        .map(|h| json!({"name": h.name, "value": h.value, "secret": h.secret}))
        .collect();
    headers.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Value::Array(headers)
}

fn call_json(c: &PreparedCall) -> Value {
    let mut headers: Vec<Value> = c
        .headers
        .iter()
        .map(|(n, v, s)| json!({"name": &**n, "value": v, "secret": s}))
        .collect();
    headers.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    json!({
        "method": c.method.as_str(),
        "path_and_query": c.path_and_query,
        "headers": headers,
        "body": c.body.clone().unwrap_or(Value::Null),
    })
}

fn expected_call_json(ctx: &Ctx<'_>, e: &CallExpect) -> Result<Value, String> {
    Ok(json!({
        "method": e.method,
        "path_and_query": e.path_and_query,
        "headers": headers_json(&e.headers),
        "body": ctx.opt_json(e.body.as_ref(), "expect.body")?.unwrap_or(Value::Null),
    }))
}

const NO_CALL: &str = "no call: nothing changes";

fn step_write(ctx: &Ctx<'_>, s: &WriteStep) -> Result<Check, String> {
    let expected = match (&s.expect, s.no_call) {
        (Some(e), None) => expected_call_json(ctx, e)?,
        (None, Some(true)) => json!(NO_CALL),
        _ => return Err("give exactly one of `expect` (a call) and `no_call = true`".into()),
    };
    let actual = match run_write(ctx, &s.input())? {
        Ok(Some(c)) => call_json(&c),
        Ok(None) => json!(NO_CALL),
        Err(e) => json!({ "the mapping refused": e.to_string() }),
    };
    Ok(Check::json("the write call", expected, actual))
}

fn step_write_error(ctx: &Ctx<'_>, s: &WriteErrorStep) -> Result<Check, String> {
    let actual = match run_write(ctx, &s.input())? {
        Err(e) => json!(e.to_string()),
        Ok(Some(c)) => json!({ "the mapping accepted it and prepared": call_json(&c) }),
        Ok(None) => json!({ "the mapping accepted it": NO_CALL }),
    };
    Ok(Check::json("the refusal", json!(s.expect), actual))
}

fn after_json(after: &After) -> Value {
    match after {
        After::Record(_) => json!("record"),
        After::Deleted(_) => json!("deleted"),
    }
}

fn pushed_json(p: &Option<Pushed>) -> Value {
    match p {
        None => Value::Null,
        Some(p) => json!({
            "added": p.added.len(),
            "removed": p.removed.len(),
            "calls": p.calls,
            "skipped": p.skipped.iter().map(|(ids, code)| json!({
                "members": ids.iter().map(LegacyId::as_str).collect::<Vec<_>>(),
                "code": code,
            })).collect::<Vec<_>>(),
        }),
    }
}

fn changed_json(c: &Changed) -> Value {
    json!({
        "legacy_id": c.legacy_id.as_str(),
        "pushed": pushed_json(&c.pushed),
        "members_read": c.members_read.iter().map(|m| m.legacy_id.as_str()).collect::<Vec<_>>(),
    })
}

/// Runs an `[[exchange]]`: the operation's plan over its script.
fn step_exchange(ctx: &Ctx<'_>, s: &ExchangeStep) -> Result<Vec<Check>, String> {
    let m = &ctx.mapping;
    let scim = ctx.opt_json(s.scim.as_ref(), "scim")?;
    let current = ctx.opt_json(s.current.as_ref(), "current")?;
    let need = |v: &Option<Value>, key: &str| {
        v.clone()
            .ok_or_else(|| format!("op = {:?} needs `{key}`", s.op))
    };
    let ids: HashMap<String, LegacyId> = s
        .members
        .iter()
        .map(|(scim, legacy)| (scim.clone(), LegacyId::new(legacy.clone())))
        .collect();
    let concurrency = s.concurrency.unwrap_or(1);
    let mut x = Script {
        prep: ctx.prep(),
        dir: ctx.dir,
        calls: s.calls.iter().collect(),
        made: 0,
        sent: Vec::new(),
        diffs: Vec::new(),
    };
    let gm = || m.groups.as_ref().ok_or("the mapping has no [groups]");
    let group_id = |record: &Value| -> Result<LegacyId, String> {
        gm()?
            .legacy_id_of(record)
            .map_err(|e| format!("`current`: {e}"))
    };
    let outcome: Result<Value, Stop> = match s.op {
        ExchangeOp::Create => {
            let body = need(&scim, "scim")?;
            run(uplan::create(m, &body, &mut x)).map(|c| {
                json!({
                    "legacy_id": c.legacy_id.as_str(),
                    "after": after_json(&c.after),
                    "adopted": c.adopted.map(|t| t.as_str()),
                })
            })
        }
        ExchangeOp::Replace | ExchangeOp::Patch => {
            let body = need(&scim, "scim")?;
            let current = need(&current, "current")?;
            let id = ctx.legacy_id(&current)?;
            let written = if s.op == ExchangeOp::Replace {
                run(uplan::replace(m, &id, current, &body, &mut x))
            } else {
                let before = ctx.resource_of(&current)?;
                run(uplan::patch(m, &id, current, before, &body, &mut x))
            };
            written.map(|w| {
                json!({
                    "after": after_json(&w.after),
                    "activation": w.activation.map(|a| a.as_str()),
                })
            })
        }
        ExchangeOp::Delete => {
            let current = need(&current, "current")?;
            let id = ctx.legacy_id(&current)?;
            run(uplan::delete(m, &id, current, &mut x)).map(|()| json!("done"))
        }
        ExchangeOp::GroupCreate => {
            let gm = gm()?;
            let body = need(&scim, "scim")?;
            let made = gplan::check_creatable(gm)
                .and_then(|()| gplan::create_request(&body))
                .map_err(Stop::Refused);
            match made {
                Ok((name, members)) => run(gplan::create(
                    m,
                    gm,
                    &name,
                    &members,
                    &ids,
                    concurrency,
                    &mut x,
                ))
                .map(|c| changed_json(&c)),
                Err(e) => Err(e),
            }
        }
        ExchangeOp::GroupPatch | ExchangeOp::GroupReplace => {
            let gm = gm()?;
            let body = need(&scim, "scim")?;
            let record = need(&current, "current")?;
            let id = group_id(&record)?;
            let asked = if s.op == ExchangeOp::GroupPatch {
                gplan::patch_request(&body).map(|c| (c.display_names.clone(), c))
            } else {
                gplan::replace_request(&body).map(|(name, c)| (name.into_iter().collect(), c))
            };
            match asked.and_then(|a| gplan::check_unlocked(gm, &record).map(|()| a)) {
                Ok((names, change)) => run(gplan::change(
                    m,
                    gm,
                    &id,
                    record,
                    &change,
                    &names,
                    &ids,
                    concurrency,
                    &mut x,
                ))
                .map(|c| changed_json(&c)),
                Err(e) => Err(Stop::Refused(e)),
            }
        }
        ExchangeOp::GroupDelete => {
            let gm = gm()?;
            let record = need(&current, "current")?;
            let id = group_id(&record)?;
            run(gplan::delete(m, gm, &id, &record, &mut x)).map(|()| json!("done"))
        }
        ExchangeOp::List => {
            let q = s.query.as_deref().unwrap_or("");
            let p = ListParams::from_query(q).map_err(|e| format!("`query`: {e}"))?;
            run(list_users(m, &p, &mut x))
        }
    };
    let actual = match outcome {
        Ok(v) => v,
        Err(Stop::Refused(r)) => refused_json(r),
        Err(Stop::Script(e)) => json!({ "the script": e }),
        Err(Stop::Captured) => return Err("internal: a script never captures".into()),
    };
    let mut checks: Vec<Check> = x
        .diffs
        .into_iter()
        .map(|(n, mut c)| {
            c.what = format!("call #{n}");
            c
        })
        .collect();
    // The sequence, so a call missing or extra is named, not only counted.
    let scripted: Vec<String> = s
        .calls
        .iter()
        .map(|c| format!("{} {}", c.method, c.path_and_query))
        .collect();
    checks.push(Check::json(
        "the call sequence",
        json!(scripted),
        json!(x.sent),
    ));
    checks.push(Check::json(
        "the outcome",
        ctx.json(&s.expect, "expect")?,
        actual,
    ));
    Ok(checks)
}

fn step_read(ctx: &Ctx<'_>, s: &ReadStep) -> Result<Vec<Check>, String> {
    let record = ctx.json(&s.record, "record")?;
    let um = &ctx.mapping.users;
    let mut checks = vec![Check::json(
        "the SCIM attributes",
        ctx.json(&s.expect, "expect")?,
        Value::Object(um.read(&record)),
    )];
    if let Some(id) = &s.expect_legacy_id {
        checks.push(Check::json(
            "the legacy id",
            json!(id),
            json!(um.legacy_id_of(&record).map(|i| i.as_str().to_owned())),
        ));
    }
    if let Some(id) = &s.expect_id {
        let actual = match um.ids_of(&TenantId::new(TENANT), &record) {
            Ok((_, sid)) => sid.into_inner(),
            Err(e) => format!("no SCIM id: {e}"),
        };
        checks.push(Check::json("the SCIM id", json!(id), json!(actual)));
    }
    if let Some(expected) = &s.expect_external_id {
        let kept = Remembered {
            created: "2026-01-01T00:00:00Z",
            last_modified: "2026-01-01T00:00:00Z",
            external_id: s.kept_external_id.as_deref(),
        };
        let resource = um
            .resource(
                &TenantId::new(TENANT),
                &record,
                um.read(&record),
                Some(kept),
                BASE_URL,
            )
            .map_err(|e| format!("the record has no SCIM resource: {e}"))?;
        let actual = resource
            .get("externalId")
            .and_then(Value::as_str)
            .unwrap_or("(none)");
        checks.push(Check::json(
            "the resource's externalId",
            json!(expected),
            json!(actual),
        ));
    } else if s.kept_external_id.is_some() {
        return Err("`kept_external_id` needs `expect_external_id`".into());
    }
    Ok(checks)
}

fn step_list_answer(ctx: &Ctx<'_>, s: &ListAnswerStep) -> Result<Check, String> {
    let answer = ctx.json(&s.answer, "answer")?;
    // The users list call's answers: its own items, total and more, else [legacy.paging]'s.
    let m = &ctx.mapping;
    let paging = m
        .users
        .calls
        .list
        .list
        .as_ref()
        .unwrap_or(&m.legacy.paging.shape);
    let e = &s.expect;
    let expected = match &e.error {
        Some(err) if e.total.is_none() && e.has_more.is_none() && e.resources.is_none() => {
            json!({ "error": err })
        }
        Some(_) => return Err("`expect.error` excludes total, has_more and resources".into()),
        None => json!({
            "total": e.total,
            "has_more": e.has_more,
            "resources": ctx.opt_json(e.resources.as_ref(), "expect.resources")?
                .unwrap_or(json!([])),
        }),
    };
    let actual = match paging.items(answer.clone()) {
        Err(err) => json!({ "error": err.to_string() }),
        Ok(items) => json!({
            "total": paging.total(&answer),
            "has_more": paging.more(&answer),
            "resources": items
                .iter()
                .map(|r| Value::Object(ctx.mapping.users.read(r)))
                .collect::<Vec<_>>(),
        }),
    };
    Ok(Check::json("the page", expected, actual))
}

fn step_call(ctx: &Ctx<'_>, s: &CallStep) -> Result<Check, String> {
    let call = ctx.call(&s.call)?;
    let mut out = Outbound::new(call);
    if let Some(v) = ctx.vars {
        out.legacy_id = v.legacy_id.clone().map(LegacyId::new);
        out.member_legacy_id = v.member_legacy_id.clone().map(LegacyId::new);
    }
    if let Some(f) = &s.filter {
        let resource = if s.call.starts_with("groups.") {
            Resource::Group
        } else {
            Resource::User
        };
        out.query
            .extend(ctx.push_down(resource, f)?.unwrap_or_default());
    }
    if let Some(p) = &s.page {
        out.query
            .extend(ctx.mapping.legacy.paging.query(p.index, p.size));
    }
    let actual = match ctx.prep().prepare(&out) {
        Ok(c) => call_json(&c),
        Err(e) => json!({ "the mapping refused": e }),
    };
    Ok(Check::json(
        "the call",
        expected_call_json(ctx, &s.expect)?,
        actual,
    ))
}

fn step_error(ctx: &Ctx<'_>, s: &ErrorStep) -> Check {
    let errors = &ctx.mapping.legacy.errors;
    // The gateway reads the hint only when the mapping names the header.
    let retry_after = s
        .retry_after
        .as_deref()
        .filter(|_| errors.retry_after_header.is_some())
        .and_then(|v| errors.retry_after_format.seconds(v, s.now_unix));
    let f = errors.interpret(s.status, s.body.as_bytes(), retry_after);
    let um = &ctx.mapping.users;
    let rule = f.rule.as_ref();
    let actual = json!({
        "code": f.code,
        "message": f.message,
        "scim_status": rule.map(|r| r.status),
        "scim_type": rule.and_then(|r| r.scim_type).map(|t| t.as_str()),
        "conflict": f.is_conflict(),
        "skip_member": rule.is_some_and(|r| r.skip_member),
        "existing_id": f.existing_id.as_ref().map(|i| i.as_str().to_owned()),
        "retry_after": f.retry_after,
        "fields": f.fields.iter().map(|(field, problem)| json!({
            "field": field,
            "problem": problem,
            "detail": um.field_problem(field, problem),
        })).collect::<Vec<_>>(),
    });
    let e = &s.expect;
    let expected = json!({
        "code": e.code,
        "message": e.message,
        "scim_status": e.scim_status,
        "scim_type": e.scim_type,
        "conflict": e.conflict,
        "skip_member": e.skip_member,
        "existing_id": e.existing_id,
        "retry_after": e.retry_after,
        "fields": e.fields.iter().map(|x| json!({
            "field": x.field,
            "problem": x.problem,
            "detail": x.detail,
        })).collect::<Vec<_>>(),
    });
    Check::json("the interpretation", expected, actual)
}

fn step_token_request(ctx: &Ctx<'_>, s: &TokenRequestStep) -> Result<Check, String> {
    let vars = ctx
        .vars
        .ok_or("this step renders the token request: the case needs a [vars] table")?;
    let auth = (ctx.mapping.legacy.auth.as_ref()).ok_or("the mapping has no [legacy.auth]")?;
    let actual = match auth.token_request(&vars.tenant()) {
        Ok(Some(r)) => json!({"url": r.url, "form": r.form, "authorization": r.authorization}),
        Ok(None) => json!("no token request: [legacy.auth] is not OAuth 2.0"),
        Err(e) => json!({ "the mapping refused": e.to_string() }),
    };
    let e = &s.expect;
    Ok(Check::json(
        "the token request",
        json!({"url": e.url, "form": e.form, "authorization": e.authorization}),
        actual,
    ))
}

fn step_filter(ctx: &Ctx<'_>, s: &FilterStep) -> Result<Check, String> {
    const NOT_PUSHED: &str = "not pushed down";
    let expected = match (&s.query, s.not_pushed) {
        (Some(q), None) => json!(q),
        (None, Some(true)) => json!(NOT_PUSHED),
        _ => return Err("give exactly one of `query` and `not_pushed = true`".into()),
    };
    let actual = match ctx.push_down(s.resource, &s.filter)? {
        Some(q) => json!(q),
        None => json!(NOT_PUSHED),
    };
    Ok(Check::json("the pushed-down query", expected, actual))
}

/// One comparison of a step.
struct Check {
    what: String,
    expected: Value,
    actual: Value,
}

impl Check {
    fn json(what: impl Into<String>, expected: Value, actual: Value) -> Check {
        Check {
            what: what.into(),
            expected,
            actual,
        }
    }
}

/// Runs every step of one case; each failure is a report naming the case and step.
fn run_case(root: &Path, dir: &Path, name: &str) -> Result<(usize, Vec<String>), String> {
    let text = std::fs::read_to_string(dir.join(CASE_FILE))
        .map_err(|e| format!("case `{name}`: cannot read {CASE_FILE}: {e}"))?;
    let case = parse_case(&text).map_err(|e| format!("case `{name}`: {CASE_FILE}: {e}"))?;
    let adjacent = dir.join(ADJACENT_MAPPING);
    let mapping_path = match &case.mapping {
        Some(_) if adjacent.exists() => {
            return Err(format!(
                "case `{name}`: names `mapping` and has a {ADJACENT_MAPPING}: keep one"
            ));
        }
        Some(m) => root.join(m),
        None => adjacent,
    };
    let mapping_text = std::fs::read_to_string(&mapping_path)
        .map_err(|e| format!("case `{name}`: cannot read {}: {e}", mapping_path.display()))?;
    let source = mapping_path.strip_prefix(root).unwrap_or(&mapping_path);
    let mapping = Mapping::from_toml(&mapping_text, &source.display().to_string())
        .map_err(|e| format!("case `{name}`: the mapping does not compile:\n{e}"))?;
    let ctx = Ctx {
        dir,
        mapping,
        vars: case.vars.as_ref(),
    };

    let mut steps: Vec<(String, Result<Vec<Check>, String>)> = Vec::new();
    let label = |kind: &str, i: usize, n: &Option<String>| match n {
        Some(n) => format!("{kind} #{} ({n})", i + 1),
        None => format!("{kind} #{}", i + 1),
    };
    for (i, s) in case.write.iter().enumerate() {
        steps.push((
            label("write", i, &s.name),
            step_write(&ctx, s).map(|c| vec![c]),
        ));
    }
    for (i, s) in case.write_error.iter().enumerate() {
        let r = step_write_error(&ctx, s).map(|c| vec![c]);
        steps.push((label("write_error", i, &s.name), r));
    }
    for (i, s) in case.exchange.iter().enumerate() {
        steps.push((label("exchange", i, &s.name), step_exchange(&ctx, s)));
    }
    for (i, s) in case.read.iter().enumerate() {
        steps.push((label("read", i, &s.name), step_read(&ctx, s)));
    }
    for (i, s) in case.list_answer.iter().enumerate() {
        let r = step_list_answer(&ctx, s).map(|c| vec![c]);
        steps.push((label("list_answer", i, &s.name), r));
    }
    for (i, s) in case.call.iter().enumerate() {
        steps.push((
            label("call", i, &s.name),
            step_call(&ctx, s).map(|c| vec![c]),
        ));
    }
    for (i, s) in case.error.iter().enumerate() {
        steps.push((label("error", i, &s.name), Ok(vec![step_error(&ctx, s)])));
    }
    for (i, s) in case.filter.iter().enumerate() {
        steps.push((
            label("filter", i, &s.name),
            step_filter(&ctx, s).map(|c| vec![c]),
        ));
    }
    for (i, s) in case.token_request.iter().enumerate() {
        steps.push((
            label("token_request", i, &s.name),
            step_token_request(&ctx, s).map(|c| vec![c]),
        ));
    }
    if steps.is_empty() {
        return Err(format!("case `{name}`: has no steps"));
    }

    let mut failures = Vec::new();
    for (step, result) in &steps {
        match result {
            Err(e) => failures.push(format!("case `{name}`, {step}: the step is malformed: {e}")),
            Ok(checks) => {
                for c in checks.iter().filter(|c| c.expected != c.actual) {
                    failures.push(format!(
                        "case `{name}`, {step}: {} differs (- expected, + actual)\n{}",
                        c.what,
                        diff(&pretty(&c.expected), &pretty(&c.actual))
                    ));
                }
            }
        }
    }
    Ok((steps.len(), failures))
}

fn parse_case(text: &str) -> Result<CaseFile, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
}

/// Runs every case folder under `cases`; `Err` is the full failure report.
fn run_all(root: &Path, cases: &Path) -> Result<String, String> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cases)
        .map_err(|e| format!("cannot read {}: {e}", cases.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(format!(
            "no cases in {}: add a folder with a {CASE_FILE}",
            cases.display()
        ));
    }
    let (mut steps, mut failures) = (0, Vec::new());
    for dir in &dirs {
        let name = dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        match run_case(root, dir, &name) {
            Ok((n, f)) => {
                steps += n;
                failures.extend(f);
            }
            Err(e) => failures.push(e),
        }
    }
    let summary = format!("{} golden cases, {steps} steps", dirs.len());
    if failures.is_empty() {
        Ok(summary)
    } else {
        Err(format!(
            "{summary}: {} failures\n\n{}",
            failures.len(),
            failures.join("\n\n")
        ))
    }
}

// ------------------------------------------------------------------------------ reporting

/// Pretty JSON with object keys sorted, so a diff shows only real differences.
fn pretty(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string_pretty(&sorted(v)).unwrap_or_else(|e| format!("<{e}>"))
}

/// A line diff (longest common subsequence): `-` expected only, `+` actual only.
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            let _ = writeln!(out, "    {}", a[i]);
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "  - {}", a[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "  + {}", b[j]);
            j += 1;
        }
    }
    out
}

// ------------------------------------------------------------------------------ tests

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn golden_mapping_cases() {
    match run_all(repo_root(), &repo_root().join(CASES)) {
        Ok(summary) => println!("{summary}"),
        Err(report) => panic!("{report}"),
    }
}

#[test]
fn golden_harness_refuses_what_it_cannot_trust() {
    // An unknown key is an error, not a silently skipped expectation.
    let e = parse_case(
        "mapping = \"mappings/marketing-center.toml\"\n\
         [[read]]\nrecord = '{}'\nexpect = '{}'\nexpect_legacyid = \"1\"\n",
    )
    .unwrap_err();
    assert!(e.contains("unknown field `expect_legacyid`"), "{e}");

    // An empty folder is a failure, not a pass.
    let cases = tempfile::tempdir().unwrap();
    let e = run_all(repo_root(), cases.path()).unwrap_err();
    assert!(e.starts_with("no cases in "), "{e}");

    // A wrong expectation names the case and step and shows a diff.
    let case = cases.path().join("wrong-title");
    std::fs::create_dir(&case).unwrap();
    std::fs::write(
        case.join(CASE_FILE),
        "mapping = \"mappings/marketing-center.toml\"\n\
         [[read]]\nname = \"title\"\nrecord = '{\"LogonName\": \"a\", \"UserProfileTitle\": \"Boss\"}'\n\
         expect = '{\"userName\": \"a\", \"title\": \"Chief\", \"active\": true}'\n",
    )
    .unwrap();
    let e = run_all(repo_root(), cases.path()).unwrap_err();
    assert!(
        e.contains("case `wrong-title`, read #1 (title): the SCIM attributes differ"),
        "{e}"
    );
    assert!(
        e.contains("  - ") && e.contains("\"Chief\"") && e.contains("  + "),
        "{e}"
    );
    assert!(e.contains("\"active\": false"), "IsActive is missing: {e}");

    // A scripted call the plan does not make is named, not only counted.
    std::fs::remove_dir_all(&case).unwrap();
    let case = cases.path().join("archived-already");
    std::fs::create_dir(&case).unwrap();
    std::fs::write(
        case.join(CASE_FILE),
        "mapping = \"mappings/marketing-center.toml\"\n\
         [vars]\ncustomer_id = \"ACME\"\napi_key = \"k\"\n\
         [[exchange]]\nop = \"delete\"\nexpect = '\"done\"'\n\
         current = '{\"UserID\": 7, \"IsActive\": false, \"IsArchived\": true}'\n\
         [[exchange.calls]]\nmethod = \"POST\"\npath_and_query = \"/users/7/archive\"\n\
         answer = { status = 200 }\n",
    )
    .unwrap();
    let e = run_all(repo_root(), cases.path()).unwrap_err();
    assert!(
        e.contains("case `archived-already`, exchange #1: the call sequence differs"),
        "{e}"
    );
    assert!(e.contains("  -   \"POST /users/7/archive\""), "{e}");
}
