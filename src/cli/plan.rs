//! `plan`: what the sidecar would do with one SCIM request through a mapping — every legacy
//! call in order, with its headers and body, and the SCIM answer — sending nothing.
//!
//! The request runs through the same plans as in `serve` (`mapping::plan`); the legacy app is
//! replaced by answers the admin gives: `--current` (the record the request's id stands for,
//! as the `get` call answers it) and `--answers` (a TOML file of `[[answer]]` tables). A write
//! call without an answer is taken as done (`204`, empty: the plan then re-reads the record
//! where it needs it); a read or a create without one stops the plan, naming the answer to
//! add. `plan` has no cross-reference: ids in the path, and group members' `value`s, are
//! legacy ids.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use http::Method;
use mapping::ids::{LegacyId, TenantId};
use mapping::plan::groups::{self as gplan, Member, MemberPages};
use mapping::plan::users::{self as uplan, After};
use mapping::plan::{Answer, AnswerNow, Exchange, Outbound, Refusal};
use mapping::resource::user_id;
use mapping::{Mapping, PreparedCall, TenantValues, Var};
use scim::list::{ListParams, Projection};
use serde::Deserialize;
use serde_json::Value;

use crate::error::Error;

/// The tenant the ids of a plan's answers are derived for.
const TENANT: &str = "plan";
/// The base URL of the resources a plan's answers show.
const BASE_URL: &str = "https://sidecar.example/scim/v2";

/// `plan` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The mapping file.
    mapping: PathBuf,
    /// The SCIM request's method: GET, POST, PUT, PATCH or DELETE.
    method: String,
    /// The SCIM request's path, with its query: `/Users`, `/Users/6` (6: the legacy id),
    /// `/Users?filter=userName eq "a@example.com"`, `/Groups/4`.
    path: String,
    /// The request body: a JSON file, `-` for standard input, or JSON text.
    #[arg(long)]
    body: Option<String>,
    /// The legacy record the path's id is, as the `get` call answers it (a JSON file or
    /// JSON text): the answer to that call.
    #[arg(long)]
    current: Option<String>,
    /// Canned legacy answers: a TOML file of `[[answer]]` tables
    /// (`method`, `path`, `status`, `body`, `link`).
    #[arg(long)]
    answers: Option<PathBuf>,
    /// A tenant value for the mapping's placeholders, as NAME=VALUE: `var.org=acme`,
    /// `secret.api_key=k`, `customer_id=ACME`. Values not given are shown as `<var.org>`.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
}

/// The canned answers file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswersFile {
    #[serde(default)]
    answer: Vec<CannedAnswer>,
}

/// One `[[answer]]`: what the legacy app answers to a call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CannedAnswer {
    /// The call's method.
    method: String,
    /// The call's path and query, exactly as the plan prints it.
    path: String,
    /// The status (default 200).
    #[serde(default = "ok")]
    status: u16,
    /// The body, as text (default: none).
    #[serde(default)]
    body: String,
    /// The `Link` header, for `link_header` paging.
    link: Option<String>,
    /// The `ETag` header, for `groups.etag`.
    etag: Option<String>,
}

fn ok() -> u16 {
    200
}

pub(super) async fn run(args: &Args) -> anyhow::Result<()> {
    let mapping = super::load_mapping(&args.mapping)?;
    let values = tenant_values(&mapping, &args.set)?;
    let body = args.body.as_deref().map(json_arg).transpose()?;
    let current = args.current.as_deref().map(json_arg).transpose()?;
    let answers = match &args.answers {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("{}", path.display()))?
        }
        None => AnswersFile::default(),
    };
    let method: Method = args
        .method
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| anyhow!("{:?} is not an HTTP method", args.method))?;
    let request = Request::parse(&method, &args.path, body)?;
    let mut x = Canned {
        mapping: &mapping,
        values: &values,
        current: current.map(|c| (c.to_string(), None)),
        answers: answers.answer,
        used: HashMap::new(),
        report: String::new(),
        notes: Vec::new(),
        made: 0,
    };
    let outcome = request.run(&mapping, &mut x).await;
    let mut out = format!(
        "{} {} through {}\n\nlegacy calls (nothing was sent):\n",
        method,
        args.path,
        args.mapping.display()
    );
    if x.made == 0 {
        out.push_str("  none\n");
    }
    out.push_str(&x.report);
    out.push_str("\nSCIM answer: ");
    let complete = match outcome {
        Ok((status, body)) => {
            let _ = writeln!(out, "{status}");
            if let Some(body) = body {
                out.push_str(&serde_json::to_string_pretty(&body)?);
                out.push('\n');
            }
            true
        }
        Err(Stop::Refused(r)) => {
            let a = Error::from(r).answer();
            let _ = writeln!(
                out,
                "{} {}\n{}",
                a.status.as_u16(),
                a.scim_type.map(|t| t.as_str()).unwrap_or(""),
                a.detail
            );
            true
        }
        Err(Stop::NoAnswer(why)) => {
            let _ = writeln!(out, "none: the plan stopped.\n{why}");
            false
        }
    };
    for note in &x.notes {
        let _ = writeln!(out, "\nnote: {note}");
    }
    print!("{out}");
    if complete {
        Ok(())
    } else {
        bail!("the plan needs more legacy answers (see above)")
    }
}

/// Every placeholder the mapping uses, from `--set`, or a visible stand-in.
fn tenant_values(m: &Mapping, set: &[String]) -> anyhow::Result<TenantValues> {
    let mut values = TenantValues::default();
    for s in set {
        let (name, value) = s
            .split_once('=')
            .ok_or_else(|| anyhow!("--set {s:?}: write NAME=VALUE"))?;
        let value = value.to_owned();
        match Var::parse(name) {
            Some(Var::CustomerId) => values.customer_id = value,
            Some(Var::ApiKey) => values.api_key = value,
            Some(Var::Named(n)) => drop(values.vars.insert(n, value)),
            Some(Var::Secret(n)) => drop(values.secrets.insert(n, value)),
            _ if name == "customer_id" => values.customer_id = value,
            _ if name == "api_key" => values.api_key = value,
            _ => bail!("--set {name}: not a tenant value (var.NAME, secret.NAME, customer_id)"),
        }
    }
    for v in m.missing_values(&values) {
        let shown = format!("<{}>", v.name());
        match v {
            Var::CustomerId => values.customer_id = shown,
            Var::ApiKey => values.api_key = shown,
            Var::Named(n) => drop(values.vars.insert(n, shown)),
            Var::Secret(n) => drop(values.secrets.insert(n, shown)),
            Var::LegacyId | Var::MemberLegacyId => {}
        }
    }
    Ok(values)
}

/// A JSON argument: a file, `-` (standard input), or JSON text.
fn json_arg(arg: &str) -> anyhow::Result<Value> {
    let text = if arg == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
    } else if arg.trim_start().starts_with(['{', '[']) {
        arg.to_owned()
    } else {
        std::fs::read_to_string(arg).with_context(|| format!("cannot read {arg}"))?
    };
    serde_json::from_str(&text).with_context(|| format!("{arg}: not JSON"))
}

/// Why a plan stopped before its answer.
#[derive(Debug)]
enum Stop {
    /// The plan refused, as it would in the sidecar: that is the SCIM answer.
    Refused(Refusal),
    /// A call has no answer to go on with.
    NoAnswer(String),
}

impl From<Refusal> for Stop {
    fn from(r: Refusal) -> Self {
        Stop::Refused(r)
    }
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        match e {
            Error::Refused(r) => Stop::Refused(r),
            other => Stop::NoAnswer(other.to_string()),
        }
    }
}

/// The legacy app, replaced by the admin's answers; every call is written to the report.
struct Canned<'a> {
    mapping: &'a Mapping,
    values: &'a TenantValues,
    /// `--current` as text, and the path of the `get` call it answers (once known).
    current: Option<(String, Option<String>)>,
    answers: Vec<CannedAnswer>,
    /// How many times each call (`METHOD path`) was answered.
    used: HashMap<String, usize>,
    report: String,
    /// What the admin should know about the answers used.
    notes: Vec<String>,
    made: usize,
}

impl Canned<'_> {
    /// The answer to `call`: (the answer, its `Link` next target, its `ETag`).
    #[allow(clippy::type_complexity)]
    fn answer(
        &mut self,
        call: &Outbound<'_>,
    ) -> Result<(Answer, Option<String>, Option<String>), Stop> {
        self.made += 1;
        let n = self.made;
        let prepared = call
            .prepare(&self.mapping.legacy, self.values)
            .map_err(|e| Stop::NoAnswer(format!("call #{n} cannot be prepared: {e}")))?;
        self.report.push_str(&describe(n, &prepared));
        if let Some(Ok(Some(token))) =
            (self.mapping.legacy.auth.as_ref()).map(|a| a.token_request(self.values))
        {
            let _ = writeln!(
                self.report,
                "     Authorization: Bearer ••• (the OAuth 2.0 token from POST {}, added when sent)",
                token.url
            );
        }
        // The answers to this call, in order: --current first (the get call of the record the
        // path names), then the --answers entries; the last one repeats.
        type Given<'a> = (u16, String, (Option<String>, Option<String>), &'a str);
        let mut given: Vec<Given<'_>> = Vec::new();
        if let Some((text, Some(path))) = &self.current
            && prepared.method == Method::GET
            && *path == prepared.path_and_query
        {
            given.push((200, text.clone(), (None, None), "--current"));
        }
        given.extend(
            (self.answers.iter())
                .filter(|a| {
                    a.method.eq_ignore_ascii_case(prepared.method.as_str())
                        && a.path == prepared.path_and_query
                })
                .map(|a| {
                    let headers = (a.link.clone(), a.etag.clone());
                    (a.status, a.body.clone(), headers, "--answers")
                }),
        );
        let key = format!("{} {}", prepared.method, prepared.path_and_query);
        let times = self.used.entry(key).or_default();
        *times += 1;
        let repeated = *times > given.len() && given.len() == 1 && given[0].3 == "--current";
        let picked = given.get(*times - 1).or(given.last()).cloned();
        let (status, body, (link, etag), from) = match picked {
            Some((status, body, headers, _)) if repeated => {
                self.notes.push(format!(
                    "call #{n} was answered with --current again: the record as it was before \
                     this request, so the answer below does not show what the app changed. \
                     Give the record as the app then answers it in --answers."
                ));
                (status, body, headers, "--current again")
            }
            Some(a) => a,
            None if prepared.method != Method::GET && !call.call.name.ends_with(".create") => {
                self.notes.push(format!(
                    "call #{n} had no answer: taken as done (204, no body)."
                ));
                (204, String::new(), (None, None), "assumed: no answer given")
            }
            None => {
                let _ = writeln!(self.report, "     → no answer");
                return Err(Stop::NoAnswer(format!(
                    "call #{n} ({} {}) has no answer. Give one in the --answers file:\n\n\
                     [[answer]]\nmethod = \"{}\"\npath = \"{}\"\nstatus = {}\nbody = '…'",
                    prepared.method,
                    prepared.path_and_query,
                    prepared.method,
                    prepared.path_and_query,
                    if prepared.method == Method::POST {
                        201
                    } else {
                        200
                    }
                )));
            }
        };
        let _ = writeln!(
            self.report,
            "     → {status}{} ({from})",
            if body.is_empty() {
                String::new()
            } else {
                format!(" {}", one_line(&body))
            }
        );
        let answer = self
            .mapping
            .legacy
            .decode(status, body.as_bytes(), None)
            .map_err(|e| Stop::Refused(Refusal::Translate(e)))?;
        let link_next = link.as_deref().and_then(mapping::apply::link_next);
        Ok((answer, link_next, etag))
    }

    /// Makes `--current` the answer of the `get` call of `legacy_id`.
    fn current_is(&mut self, call: Outbound<'_>) -> Result<(), Stop> {
        if let Some((_, path)) = &mut self.current {
            let prepared = call
                .prepare(&self.mapping.legacy, self.values)
                .map_err(|e| Stop::NoAnswer(format!("the get call cannot be prepared: {e}")))?;
            *path = Some(prepared.path_and_query);
        }
        Ok(())
    }
}

impl AnswerNow for Canned<'_> {
    type Error = Stop;

    fn answer_now(&mut self, call: &Outbound<'_>) -> Result<(Answer, Option<String>), Stop> {
        self.answer(call).map(|(answer, link, _)| (answer, link))
    }

    fn answer_versioned(&mut self, call: &Outbound<'_>) -> Result<(Answer, Option<String>), Stop> {
        self.answer(call).map(|(answer, _, etag)| (answer, etag))
    }
}

/// A call as the report shows it: method, path, headers (secrets masked), body.
fn describe(n: usize, c: &PreparedCall) -> String {
    let mut s = format!("  {n}. {} {}   [{}]\n", c.method, c.path_and_query, c.name);
    for (name, value, secret) in &c.headers {
        let shown = if *secret { "••• (secret)" } else { value };
        let _ = writeln!(s, "     {name}: {shown}");
    }
    if let Some(body) = &c.body {
        let _ = writeln!(s, "     {body}");
    }
    s
}

fn one_line(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => v.to_string(),
        Err(_) => text.replace('\n', " "),
    }
}

/// The SCIM request, routed as the sidecar routes it.
enum Request {
    UserList(ListParams),
    UserGet(LegacyId),
    UserCreate(Value),
    UserReplace(LegacyId, Value),
    UserPatch(LegacyId, Value),
    UserDelete(LegacyId),
    GroupList(ListParams),
    GroupGet(LegacyId),
    GroupCreate(Value),
    GroupReplace(LegacyId, Value),
    GroupPatch(LegacyId, Value),
    GroupDelete(LegacyId),
}

type Outcome = (u16, Option<Value>);

impl Request {
    fn parse(method: &Method, path: &str, body: Option<Value>) -> anyhow::Result<Request> {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let path = path.strip_prefix("/scim/v2").unwrap_or(path);
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let need = || {
            body.clone()
                .ok_or_else(|| anyhow!("{method} {path} needs --body"))
        };
        let id = |s: &str| LegacyId::new(s);
        Ok(match (method.as_str(), parts.as_slice()) {
            ("GET", ["Users"]) => Request::UserList(
                ListParams::from_query(query).map_err(|e| anyhow!("the query: {e}"))?,
            ),
            ("GET", ["Users", i]) => Request::UserGet(id(i)),
            ("POST", ["Users"]) => Request::UserCreate(need()?),
            ("PUT", ["Users", i]) => Request::UserReplace(id(i), need()?),
            ("PATCH", ["Users", i]) => Request::UserPatch(id(i), need()?),
            ("DELETE", ["Users", i]) => Request::UserDelete(id(i)),
            ("GET", ["Groups"]) => Request::GroupList(
                ListParams::from_query(query).map_err(|e| anyhow!("the query: {e}"))?,
            ),
            ("GET", ["Groups", i]) => Request::GroupGet(id(i)),
            ("POST", ["Groups"]) => Request::GroupCreate(need()?),
            ("PUT", ["Groups", i]) => Request::GroupReplace(id(i), need()?),
            ("PATCH", ["Groups", i]) => Request::GroupPatch(id(i), need()?),
            ("DELETE", ["Groups", i]) => Request::GroupDelete(id(i)),
            _ => bail!(
                "{method} {path}: plan knows GET/POST /Users, GET/PUT/PATCH/DELETE /Users/ID, \
                 GET/POST /Groups, GET/PUT/PATCH/DELETE /Groups/ID (ID: the legacy id)"
            ),
        })
    }

    async fn run(self, m: &Mapping, x: &mut Canned<'_>) -> Result<Outcome, Stop> {
        let tenant = TenantId::new(TENANT);
        let um = &m.users;
        let user = |record: &Value| -> Result<Value, Stop> {
            Ok(um.resource(&tenant, record, um.read(record), None, BASE_URL)?)
        };
        let after = |a: After| -> Result<Value, Stop> {
            Ok(match a {
                After::Record(r) => user(&r)?,
                After::Deleted(r) => um.deleted_resource(&tenant, &r, BASE_URL)?,
            })
        };
        match self {
            Request::UserList(p) => {
                if let Some(f) = &p.filter {
                    f.validate(&um.schema)
                        .map_err(|e| Stop::from(Error::from(e)))?;
                }
                let mut listing = uplan::Listing::new(m, &p, Default::default());
                while let Some(call) = listing.next_call() {
                    let (answer, link) = x.send_page(call).await?;
                    let records = listing.read(answer, link.as_deref())?;
                    let records = uplan::complete(m, records, 1, x).await?;
                    let rows = records
                        .iter()
                        .filter_map(|r| Some((um.legacy_id_of(r)?, user(r).ok()?, false)))
                        .collect();
                    listing.accept(rows, &p);
                }
                let (total, page) = listing.finish();
                let page = page
                    .into_iter()
                    .map(|r| p.projection.apply(r, &um.schema))
                    .collect();
                Ok((200, Some(scim::list::response(total, p.start_index, page))))
            }
            Request::UserGet(id) => {
                let record = current_user(m, &id, x).await?;
                Ok((200, Some(user(&record)?)))
            }
            Request::UserCreate(body) => {
                let created = uplan::create(m, &body, x).await?;
                Ok((201, Some(after(created.after)?)))
            }
            Request::UserReplace(id, body) => {
                let current = current_user(m, &id, x).await?;
                let written = uplan::replace(m, &id, current, &body, x).await?;
                Ok((200, Some(after(written.after)?)))
            }
            Request::UserPatch(id, body) => {
                let current = current_user(m, &id, x).await?;
                let before = user(&current)?;
                let written = uplan::patch(m, &id, current, before, &body, x).await?;
                Ok((200, Some(after(written.after)?)))
            }
            Request::UserDelete(id) => {
                let current = current_user(m, &id, x).await?;
                uplan::delete(m, &id, current, x).await?;
                Ok((204, None))
            }
            Request::GroupList(p) => {
                let gm = groups(m)?;
                if let Some(f) = &p.filter {
                    f.validate(&gm.schema)
                        .map_err(|e| Stop::from(Error::from(e)))?;
                }
                let tenant = TenantId::new(TENANT);
                let mut pages = gplan::list_pages(m, gm, &p);
                let mut window = p.window();
                while let Some(records) = pages.next(x, &m.legacy).await? {
                    for record in &records {
                        let (_, g) = gm.resource(&tenant, record, None, BASE_URL)?;
                        if p.filter.as_ref().is_none_or(|f| f.matches(&g, &gm.schema)) {
                            window.push(p.projection.apply(g, &gm.schema));
                        }
                    }
                }
                let (total, page) = window.finish();
                Ok((200, Some(scim::list::response(total, p.start_index, page))))
            }
            Request::GroupGet(id) => {
                let record = current_group(m, &id, x).await?;
                Ok((200, Some(group(m, &id, &record, x).await?)))
            }
            Request::GroupCreate(body) => {
                let gm = groups(m)?;
                gplan::check_creatable(gm)?;
                let (name, members) = gplan::create_request(&body)?;
                let ids = legacy_ids(&members.named_members());
                let created = gplan::create(m, gm, &name, &members, &ids, 1, x).await?;
                let id = gm.legacy_id_of(&created.record)?;
                Ok((201, Some(group(m, &id, &created.record, x).await?)))
            }
            Request::GroupReplace(id, body) => {
                let gm = groups(m)?;
                let (name, change) = gplan::replace_request(&body)?;
                let record = current_group(m, &id, x).await?;
                gplan::check_unlocked(gm, &record)?;
                let ids = legacy_ids(&change.named_members());
                let names: Vec<String> = name.into_iter().collect();
                let changed =
                    gplan::change(m, gm, &id, record, &change, &names, &ids, 1, x).await?;
                Ok((200, Some(group(m, &id, &changed.record, x).await?)))
            }
            Request::GroupPatch(id, body) => {
                let gm = groups(m)?;
                let change = gplan::patch_request(&body)?;
                let record = current_group(m, &id, x).await?;
                gplan::check_unlocked(gm, &record)?;
                let ids = legacy_ids(&change.named_members());
                let names = change.display_names.clone();
                gplan::change(m, gm, &id, record, &change, &names, &ids, 1, x).await?;
                Ok((204, None))
            }
            Request::GroupDelete(id) => {
                let gm = groups(m)?;
                if gm.delete.is_none() {
                    return Err(gplan::link_only(gm, "GET, PUT, PATCH").into());
                }
                let record = current_group(m, &id, x).await?;
                gplan::delete(m, gm, &id, &record, x).await?;
                Ok((204, None))
            }
        }
    }
}

fn groups(m: &Mapping) -> Result<&mapping::GroupMapping, Stop> {
    gplan::mapping(m).ok_or_else(|| Stop::NoAnswer("the mapping has no [groups]".into()))
}

/// `plan` has no cross-reference: a member's `value` is its legacy id.
fn legacy_ids(named: &[&str]) -> HashMap<String, LegacyId> {
    named
        .iter()
        .map(|v| ((*v).to_owned(), LegacyId::new(*v)))
        .collect()
}

/// The user the path names, read with `get` as the handler reads it first.
async fn current_user(m: &Mapping, id: &LegacyId, x: &mut Canned<'_>) -> Result<Value, Stop> {
    x.current_is(Outbound::about(&m.users.calls.get, id))?;
    uplan::read(m, id, x).await?.ok_or_else(|| {
        Stop::Refused(Refusal::NotFound {
            resource: uplan::RESOURCE_TYPE,
            id: id.to_string(),
        })
    })
}

/// The group the path names, read with `get` as the handler reads it first.
async fn current_group(m: &Mapping, id: &LegacyId, x: &mut Canned<'_>) -> Result<Value, Stop> {
    let gm = groups(m)?;
    x.current_is(Outbound::about(&gm.get, id))?;
    gplan::read(m, gm, id, id.as_str(), x).await
}

/// The SCIM Group of a record, its members read as the handler reads them.
async fn group(
    m: &Mapping,
    id: &LegacyId,
    record: &Value,
    x: &mut Canned<'_>,
) -> Result<Value, Stop> {
    let gm = groups(m)?;
    let tenant = TenantId::new(TENANT);
    let members = if gm.members.is_some() {
        let mut pages = MemberPages::new(m, gm, id);
        let mut all: Vec<Member> = Vec::new();
        while let Some(page) = pages.next(x).await? {
            all.extend(page);
        }
        Some(
            all.into_iter()
                .map(|mb| (user_id(&tenant, &mb.legacy_id), mb))
                .collect::<Vec<_>>(),
        )
    } else {
        None
    };
    let (_, g) = gm.resource(&tenant, record, members.as_deref(), BASE_URL)?;
    Ok(Projection::default().apply(g, &gm.schema))
}

impl From<mapping::TranslateError> for Stop {
    fn from(e: mapping::TranslateError) -> Self {
        Stop::Refused(Refusal::Translate(e))
    }
}
