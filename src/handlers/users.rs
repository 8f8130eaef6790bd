//! SCIM Users: list and search, get, create, replace, patch, delete.
//!
//! Every legacy record met on the way is recorded in the xref on the spot. SCIM ids are
//! derived from (tenant, legacy id); the xref indexes them and keeps tombstones.

use std::collections::HashSet;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Map, Value, json};

use super::{Ctx, ListParams, Projection, list_response};
use crate::error::ScimError;
use crate::error::scim_json;
use crate::xref::{Seen, XrefRecord};
use mapping::apply::field_test;
use mapping::apply::{FieldValues, LegacyFailure};
use mapping::ids::{ExternalId, LegacyId, ScimId};
use mapping::{
    BodySpec, ConflictKeyword, ConflictThen, ConflictWhen, DeactivateSpec, DeleteSpec, UserMapping,
};
use scim::filter::{AttrPath, CompareOp, Filter};
use scim::patch::{PatchOpKind, PatchOperation};
use scim::schema;

/// The xref resource type of users.
pub const RESOURCE_TYPE: &str = "User";

/// How long after a full scan for an unknown id another one is refused.
const RESCAN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

fn users(ctx: &Ctx) -> &UserMapping {
    &ctx.mapping.users
}

/// `GET /Users` and `POST /Users/.search`.
pub async fn list(ctx: &Ctx, p: ListParams) -> Result<Response<Full<Bytes>>, ScimError> {
    let (total, page) = search(ctx, &p).await?;
    Ok(list_response(total, p.start_index, page))
}

/// The users matching a list request: (total, the requested window, projected).
pub async fn search(ctx: &Ctx, p: &ListParams) -> Result<(u64, Vec<Value>), ScimError> {
    let um = users(ctx);
    if let Some(f) = &p.filter {
        f.validate(&um.schema)?;
    }
    let project = |v: Vec<Value>| -> Vec<Value> {
        v.into_iter()
            .map(|r| p.projection.apply(r, &um.schema))
            .collect()
    };
    if let Some(id) = p.filter.as_ref().and_then(id_eq) {
        let found = match locate(ctx, &id).await {
            Ok((_, record, x)) => Some(assemble(ctx, &record, x.as_ref())?),
            Err(e) if e.status == StatusCode::NOT_FOUND => None,
            Err(e) => return Err(e),
        };
        let hits: Vec<Value> = found
            .into_iter()
            .filter(|r| p.filter.as_ref().is_none_or(|f| f.matches(r, &um.schema)))
            .collect();
        let total = hits.len() as u64;
        let page = hits
            .into_iter()
            .skip((p.start_index - 1) as usize)
            .take(p.count as usize)
            .collect();
        return Ok((total, project(page)));
    }
    if p.filter.is_none() {
        let tombstoned = ctx
            .state
            .xref
            .tombstoned(&ctx.tenant.id, RESOURCE_TYPE)
            .await?;
        if let Some((total, page)) =
            direct_page(ctx, p.start_index - 1, p.count, &tombstoned).await?
        {
            return Ok((total, project(page)));
        }
    }
    let query = p
        .filter
        .as_ref()
        .and_then(|f| um.push_down(f))
        .unwrap_or_default();
    let mut pager = ctx.pager(&um.calls.list, None, query);
    let (skip, mut matched, mut out) = (p.start_index - 1, 0u64, Vec::new());
    while let Some(items) = pager.next().await? {
        for (_, resource, tombstoned) in build_page(ctx, items).await? {
            if tombstoned
                || p.filter
                    .as_ref()
                    .is_some_and(|f| !f.matches(&resource, &um.schema))
            {
                continue;
            }
            if matched >= skip && (out.len() as u64) < p.count {
                out.push(resource);
            }
            matched += 1;
        }
    }
    Ok((matched, project(out)))
}

/// `id eq "…"` alone.
fn id_eq(f: &Filter) -> Option<String> {
    match f {
        Filter::Compare(path, CompareOp::Eq, Value::String(v))
            if path.name.eq_ignore_ascii_case("id")
                && path.sub.is_none()
                && path
                    .urn
                    .as_deref()
                    .is_none_or(|u| u.eq_ignore_ascii_case(schema::USER)) =>
        {
            Some(v.clone())
        }
        _ => None,
    }
}

/// Answers an unfiltered page straight from the legacy pages, reading only as far as the
/// requested window, when the legacy app reports a total. `None` when that is not possible.
///
/// Without tombstones the first page read is the one holding `skip`. With tombstones the
/// positions shift, so the walk starts at the first page; the total is the legacy total less
/// the tombstoned records, which stay in the legacy list when DELETE deactivates (the list
/// call lists inactive records: SCIM lists deactivated users).
async fn direct_page(
    ctx: &Ctx,
    skip: u64,
    count: u64,
    tombstoned: &HashSet<LegacyId>,
) -> Result<Option<(u64, Vec<Value>)>, ScimError> {
    let um = users(ctx);
    let paging = &ctx.mapping.legacy.paging;
    if paging.total.is_none() || (!tombstoned.is_empty() && um.delete != DeleteSpec::Deactivate) {
        return Ok(None);
    }
    let hidden = tombstoned.len() as u64;
    let call = &um.calls.list;
    if count == 0 {
        let (_, total, _) = ctx.page(call, None, &[], 0, 1).await?;
        return Ok(total.map(|t| (t.saturating_sub(hidden), Vec::new())));
    }
    let size = paging.max_page_size;
    let mut index = if hidden == 0 { (skip / size) * size } else { 0 };
    let mut visible = index;
    let mut out = Vec::new();
    loop {
        let (items, total, _) = ctx.page(call, None, &[], index, size).await?;
        let Some(total) = total else { return Ok(None) };
        let n = items.len() as u64;
        for (legacy_id, resource, _) in build_page(ctx, items).await? {
            if tombstoned.contains(&legacy_id) {
                continue;
            }
            if visible >= skip && (out.len() as u64) < count {
                out.push(resource);
            }
            visible += 1;
        }
        index += n;
        if out.len() as u64 >= count || n < size || index >= total {
            return Ok(Some((total.saturating_sub(hidden), out)));
        }
    }
}

/// Builds the SCIM resources of a page of legacy records, recording them in the xref:
/// (legacy id, resource, whether the xref holds a tombstone for it).
async fn build_page(
    ctx: &Ctx,
    items: Vec<Value>,
) -> Result<Vec<(LegacyId, Value, bool)>, ScimError> {
    let um = users(ctx);
    let mut rows = Vec::with_capacity(items.len());
    let mut kept = Vec::with_capacity(items.len());
    for record in items {
        let Some(legacy_id) = um.legacy_id_of(&record) else {
            tracing::warn!("a legacy list item has no id; skipped");
            continue;
        };
        let attrs = um.read(&record);
        rows.push(seen_row(ctx, &legacy_id, &attrs));
        kept.push((legacy_id, record, attrs));
    }
    let xrefs = ctx
        .state
        .xref
        .seen(&ctx.tenant.id, RESOURCE_TYPE, rows)
        .await?;
    kept.into_iter()
        .zip(xrefs)
        .map(|((legacy_id, record, attrs), x)| {
            let resource = assemble_read(ctx, &record, attrs, Some(&x))?;
            Ok((legacy_id, resource, x.tombstoned_at.is_some()))
        })
        .collect()
}

fn seen_row(ctx: &Ctx, legacy_id: &LegacyId, attrs: &Map<String, Value>) -> Seen {
    let text = |k: &str| attrs.get(k).and_then(Value::as_str).map(str::to_owned);
    Seen {
        scim_id: ScimId::derive(&ctx.tenant.id, RESOURCE_TYPE, legacy_id),
        legacy_id: legacy_id.clone(),
        external_id: text("externalId").map(ExternalId::new),
        user_name: text("userName"),
    }
}

/// The full SCIM resource of a legacy record.
fn assemble(ctx: &Ctx, record: &Value, x: Option<&XrefRecord>) -> Result<Value, ScimError> {
    assemble_read(ctx, record, users(ctx).read(record), x)
}

/// [`assemble`] with the record's SCIM attributes already read (`UserMapping::read`).
fn assemble_read(
    ctx: &Ctx,
    record: &Value,
    attrs: Map<String, Value>,
    x: Option<&XrefRecord>,
) -> Result<Value, ScimError> {
    let um = users(ctx);
    let legacy_id = um
        .legacy_id_of(record)
        .ok_or_else(|| ScimError::from(mapping::MappingError::Answer("has no record id".into())))?;
    let id = ScimId::derive(&ctx.tenant.id, RESOURCE_TYPE, &legacy_id);
    let mut schemas = vec![json!(schema::USER)];
    for ext in &um.schema.extensions {
        if attrs.contains_key(&ext.id) {
            schemas.push(json!(ext.id));
        }
    }
    let version = version_of(&attrs);
    let created = um
        .time(record, um.created.as_deref())
        .or_else(|| x.map(|x| x.created.clone()));
    let modified = um
        .time(record, um.last_modified.as_deref())
        .or_else(|| x.map(|x| x.last_modified.clone()))
        .or_else(|| created.clone());
    let mut out = Map::new();
    out.insert("schemas".into(), Value::Array(schemas));
    out.insert("id".into(), json!(id.as_str()));
    out.extend(attrs);
    let mut meta = Map::new();
    meta.insert("resourceType".into(), json!(RESOURCE_TYPE));
    if let Some(c) = created {
        meta.insert("created".into(), json!(c));
    }
    if let Some(m) = modified {
        meta.insert("lastModified".into(), json!(m));
    }
    meta.insert(
        "location".into(),
        json!(format!("{}/Users/{}", ctx.base_url, id)),
    );
    meta.insert("version".into(), json!(version));
    out.insert("meta".into(), Value::Object(meta));
    Ok(Value::Object(out))
}

/// `meta.version`: a weak ETag of the SCIM attributes, a 64-bit xxh3 of their JSON (stable
/// across processes and replicas; a change to any attribute changes it). Serialised straight
/// into the hash: no intermediate buffer.
fn version_of(attrs: &Map<String, Value>) -> String {
    struct Hashing(xxhash_rust::xxh3::Xxh3);
    impl std::io::Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut h = Hashing(xxhash_rust::xxh3::Xxh3::new());
    // Writing a JSON map of strings into an infallible writer cannot fail.
    let _ = serde_json::to_writer(&mut h, attrs);
    format!("W/\"{:016x}\"", h.0.digest())
}

/// Finds the legacy record behind a SCIM id: (legacy id, record, xref row).
async fn locate(ctx: &Ctx, id: &str) -> Result<(LegacyId, Value, Option<XrefRecord>), ScimError> {
    let not_found = || ScimError::not_found("User", id);
    // The ids handed out are name-based (v5) UUIDs; anything else cannot be one of ours.
    let uuid = match uuid::Uuid::parse_str(id) {
        Ok(u) if u.get_version_num() == 5 => u,
        _ => return Err(not_found()),
    };
    let scim_id = ScimId::new(uuid.hyphenated().to_string());
    let xref = &ctx.state.xref;
    if let Some(x) = xref.get(&ctx.tenant.id, RESOURCE_TYPE, &scim_id).await? {
        if x.tombstoned_at.is_some() {
            return Err(not_found());
        }
        let record = get_record(ctx, &x.legacy_id).await?.ok_or_else(not_found)?;
        return Ok((x.legacy_id.clone(), record, Some(x)));
    }
    // Not in the xref (a lost database, another replica's user): the id is derived, so a scan
    // of the legacy users finds it, recording everyone met. Rate-limited per tenant.
    if !rescan_allowed(ctx)? {
        return Err(not_found());
    }
    let um = users(ctx);
    let mut pager = ctx.pager(&um.calls.list, None, Vec::new());
    while let Some(items) = pager.next().await? {
        let mut found = None;
        for record in &items {
            if let Some(lid) = um.legacy_id_of(record)
                && ScimId::derive(&ctx.tenant.id, RESOURCE_TYPE, &lid) == scim_id
            {
                found = Some((lid, record.clone()));
            }
        }
        build_page(ctx, items).await?;
        if let Some((lid, record)) = found {
            let x = xref.get(&ctx.tenant.id, RESOURCE_TYPE, &scim_id).await?;
            return Ok((lid, record, x));
        }
    }
    Err(not_found())
}

/// Whether this tenant may scan the legacy users for unknown ids now (at most once per
/// [`RESCAN_INTERVAL`]); taking the answer `true` starts the interval.
fn rescan_allowed(ctx: &Ctx) -> Result<bool, ScimError> {
    let allowed = {
        let mut rescans = ctx
            .state
            .rescans
            .lock()
            .map_err(|_| ScimError::internal("rescan lock poisoned"))?;
        let now = std::time::Instant::now();
        match rescans.get(&ctx.tenant.id) {
            Some(at) if now.duration_since(*at) < RESCAN_INTERVAL => false,
            _ => {
                rescans.insert(ctx.tenant.id.clone(), now);
                true
            }
        }
    };
    Ok(allowed)
}

/// Scans every legacy user, recording each in the xref, when [`rescan_allowed`] says so.
/// Returns whether a scan ran.
pub async fn rediscover(ctx: &Ctx) -> Result<bool, ScimError> {
    if !rescan_allowed(ctx)? {
        return Ok(false);
    }
    let mut pager = ctx.pager(&users(ctx).calls.list, None, Vec::new());
    while let Some(items) = pager.next().await? {
        build_page(ctx, items).await?;
    }
    Ok(true)
}

/// Reads one legacy record; `None` when the legacy app says it does not exist.
async fn get_record(ctx: &Ctx, legacy_id: &LegacyId) -> Result<Option<Value>, ScimError> {
    match ctx
        .call(&users(ctx).calls.get, Some(legacy_id), &[], None)
        .await?
    {
        Ok(record) => Ok(Some(record)),
        Err(f) if f.is_not_found() => Ok(None),
        Err(f) => Err(ctx.failure(&f)),
    }
}

/// `GET /Users/{id}`.
pub async fn get(
    ctx: &Ctx,
    id: &str,
    projection: &Projection,
) -> Result<Response<Full<Bytes>>, ScimError> {
    let (_, record, x) = locate(ctx, id).await?;
    let resource = assemble(ctx, &record, x.as_ref())?;
    Ok(resource_response(
        StatusCode::OK,
        projection.apply(resource, &users(ctx).schema),
    ))
}

fn resource_response(status: StatusCode, resource: Value) -> Response<Full<Bytes>> {
    let mut resp = scim_json(status, &resource);
    let h = resp.headers_mut();
    if status == StatusCode::CREATED
        && let Some(loc) = resource.pointer("/meta/location").and_then(Value::as_str)
        && let Ok(v) = HeaderValue::from_str(loc)
    {
        h.insert(header::LOCATION, v);
    }
    resp
}

/// The `active` a request asks for: a boolean, or "True"/"False" as Entra sends.
fn requested_active(body: &Value) -> Result<Option<bool>, ScimError> {
    let Some(obj) = body.as_object() else {
        return Ok(None);
    };
    let v = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("active"))
        .map(|(_, v)| v);
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(ScimError::invalid_value("active must be a boolean")),
    }
}

fn check_schemas(body: &Value) -> Result<(), ScimError> {
    match body.get("schemas") {
        None => Ok(()),
        Some(Value::Array(s))
            if s.iter().any(|u| {
                u.as_str()
                    .is_some_and(|u| u.eq_ignore_ascii_case(schema::USER))
            }) =>
        {
            Ok(())
        }
        Some(_) => Err(ScimError::invalid_syntax(format!(
            "schemas must contain {}",
            schema::USER
        ))),
    }
}

/// The SCIM error for a failed legacy write, naming SCIM attributes, never legacy fields:
/// every legacy field name in a problem text is replaced by its SCIM attribute.
fn write_failure(ctx: &Ctx, f: &LegacyFailure) -> ScimError {
    let um = users(ctx);
    if f.fields.is_empty() {
        return ctx.failure(f);
    }
    let detail = f
        .fields
        .iter()
        .map(|(field, problem)| um.field_problem(field, problem))
        .collect::<Vec<_>>()
        .join("; ");
    ScimError::legacy_write_failure(f, &ctx.mapping.legacy.name, detail)
}

/// Answers a write: the record, or (for an empty 2xx) a fresh read of it.
async fn record_of(ctx: &Ctx, answer: Value, legacy_id: &LegacyId) -> Result<Value, ScimError> {
    if users(ctx).legacy_id_of(&answer).is_some() {
        return Ok(answer);
    }
    get_record(ctx, legacy_id)
        .await?
        .ok_or_else(|| ScimError::not_found("User", legacy_id.as_str()))
}

/// Sends the update call for `fields` against `current`; skips it when nothing changes.
async fn update_fields(
    ctx: &Ctx,
    legacy_id: &LegacyId,
    current: Value,
    fields: &FieldValues,
) -> Result<Value, ScimError> {
    let um = users(ctx);
    let changed = um.body(BodySpec::Changed, fields, Some(&current));
    if changed.as_object().is_some_and(Map::is_empty) {
        return Ok(current);
    }
    let body = match um.calls.update.body.unwrap_or(BodySpec::Changed) {
        BodySpec::Changed => changed,
        kind => um.body(kind, fields, Some(&current)),
    };
    match ctx
        .call(&um.calls.update, Some(legacy_id), &[], Some(body))
        .await?
    {
        Ok(answer) => record_of(ctx, answer, legacy_id).await,
        Err(f) => Err(write_failure(ctx, &f)),
    }
}

/// Where bringing a record to an `active` state left it.
enum After {
    /// The record, as the legacy app now has it.
    Record(Value),
    /// Deleted (deactivation deletes, per the mapping); the record as it was.
    Deleted(Value),
}

/// Brings the record to `want` active through the lifecycle: the deactivate / reactivate
/// calls, or, where deactivation deletes, the delete call and a tombstone.
async fn set_active(
    ctx: &Ctx,
    legacy_id: &LegacyId,
    record: Value,
    want: bool,
) -> Result<After, ScimError> {
    let um = users(ctx);
    if !want && um.deactivate == DeactivateSpec::Delete {
        delete_record(ctx, legacy_id).await?;
        return Ok(After::Deleted(record));
    }
    if um.active.is_none() || um.is_active(&record) == want {
        return Ok(After::Record(record));
    }
    let call = if want {
        um.calls.reactivate.as_ref()
    } else {
        um.calls.deactivate.as_ref()
    };
    let Some(call) = call else {
        return Ok(After::Record(record));
    };
    match ctx.call(call, Some(legacy_id), &[], None).await? {
        Ok(answer) => Ok(After::Record(record_of(ctx, answer, legacy_id).await?)),
        Err(f) => Err(ctx.failure(&f)),
    }
}

/// Deletes a record through the delete call (already gone is fine) and tombstones its id.
async fn delete_record(ctx: &Ctx, legacy_id: &LegacyId) -> Result<(), ScimError> {
    if let Some(call) = &users(ctx).calls.delete {
        match ctx.call(call, Some(legacy_id), &[], None).await? {
            Ok(_) => {}
            Err(f) if f.is_not_found() => {}
            Err(f) => return Err(ctx.failure(&f)),
        }
    }
    tombstone(ctx, legacy_id).await
}

async fn tombstone(ctx: &Ctx, legacy_id: &LegacyId) -> Result<(), ScimError> {
    let scim_id = ScimId::derive(&ctx.tenant.id, RESOURCE_TYPE, legacy_id);
    // A record deleted before the xref met it is recorded first, so its id stays gone.
    let row = seen_row(ctx, legacy_id, &Map::new());
    ctx.state
        .xref
        .seen(&ctx.tenant.id, RESOURCE_TYPE, vec![row])
        .await?;
    ctx.state
        .xref
        .tombstone(&ctx.tenant.id, RESOURCE_TYPE, &scim_id)
        .await?;
    Ok(())
}

/// The answer to a write: the recorded resource, or, after a deletion, the last state with
/// `active: false` (the id answers 404 from now on).
async fn answer(
    ctx: &Ctx,
    legacy_id: &LegacyId,
    after: After,
    status: StatusCode,
) -> Result<Response<Full<Bytes>>, ScimError> {
    match after {
        After::Record(record) => Ok(resource_response(
            status,
            finish(ctx, legacy_id, &record).await?,
        )),
        After::Deleted(record) => {
            let mut resource = assemble(ctx, &record, None)?;
            resource["active"] = Value::Bool(false);
            Ok(resource_response(status, resource))
        }
    }
}

/// Records a successful write in the xref (lifting any tombstone) and builds the resource.
async fn finish(ctx: &Ctx, legacy_id: &LegacyId, record: &Value) -> Result<Value, ScimError> {
    let attrs = users(ctx).read(record);
    let row = seen_row(ctx, legacy_id, &attrs);
    let scim_id = row.scim_id.clone();
    let xref = &ctx.state.xref;
    let x = xref.upsert(&ctx.tenant.id, RESOURCE_TYPE, row).await?;
    let x = if x.tombstoned_at.is_some() {
        xref.lift_tombstone(&ctx.tenant.id, RESOURCE_TYPE, &scim_id)
            .await?;
        xref.get(&ctx.tenant.id, RESOURCE_TYPE, &scim_id).await?
    } else {
        Some(x)
    };
    assemble_read(ctx, record, attrs, x.as_ref())
}

/// `POST /Users`.
pub async fn create(ctx: &Ctx, body: Value) -> Result<Response<Full<Bytes>>, ScimError> {
    let um = users(ctx);
    note_user_name(ctx, &body);
    check_schemas(&body)?;
    let fields = um.write(&body)?;
    let want_active = requested_active(&body)?.unwrap_or(true);
    let kind = um.calls.create.body.unwrap_or(BodySpec::Mapped);
    let create_body = um.body(kind, &fields, None);
    let (legacy_id, record) = match ctx
        .call(&um.calls.create, None, &[], Some(create_body))
        .await?
    {
        Ok(record) => {
            let legacy_id = um.legacy_id_of(&record).ok_or_else(|| {
                ScimError::from(mapping::MappingError::Answer(
                    "to a create has no record id".into(),
                ))
            })?;
            (legacy_id, record)
        }
        Err(f) if f.is_conflict() => resolve_conflict(ctx, &body, &fields, &f).await?,
        Err(f) => return Err(write_failure(ctx, &f)),
    };
    let scim_id = ScimId::derive(&ctx.tenant.id, RESOURCE_TYPE, &legacy_id);
    ctx.note.set_scim_id(scim_id.as_str());
    let after = set_active(ctx, &legacy_id, record, want_active).await?;
    answer(ctx, &legacy_id, after, StatusCode::CREATED).await
}

/// A create met an existing record with the same unique key: apply `on_conflict`.
async fn resolve_conflict(
    ctx: &Ctx,
    body: &Value,
    fields: &FieldValues,
    f: &LegacyFailure,
) -> Result<(LegacyId, Value), ScimError> {
    let um = users(ctx);
    let taken = || {
        let name = body.get("userName").and_then(Value::as_str).unwrap_or("");
        ScimError::uniqueness(format!("userName {name:?} is already taken")).with_cause(format!(
            "{} answered {}",
            ctx.mapping.legacy.name,
            f.code.as_deref().unwrap_or("a conflict")
        ))
    };
    let found = match (
        &f.existing_id,
        f.rule.as_ref().and_then(|r| r.find_existing_by.as_deref()),
    ) {
        (Some(id), _) => get_record(ctx, id).await?.map(|r| (id.clone(), r)),
        (None, Some(path)) => find_existing(ctx, body, path).await?,
        (None, None) => None,
    };
    let Some((existing_id, existing)) = found else {
        return Err(taken());
    };
    let wanted_ext = body
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("externalId")))
        .and_then(|(_, v)| v.as_str())
        .filter(|s| !s.is_empty());
    let existing_ext = um
        .read(&existing)
        .get("externalId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    for rule in &um.on_conflict {
        let applies = match &rule.when {
            ConflictWhen::Keyword(ConflictKeyword::ExistingInactive) => !um.is_active(&existing),
            ConflictWhen::Keyword(ConflictKeyword::SameExternalId) => {
                wanted_ext.is_some() && wanted_ext == existing_ext.as_deref()
            }
            ConflictWhen::Field(test) => field_test(&existing, test),
        };
        if !applies {
            continue;
        }
        let action = match rule.then {
            ConflictThen::Adopt => "adopt",
            ConflictThen::ReactivateAndUpdate => "reactivate_and_update",
            ConflictThen::TakeOverAndUpdate => "take_over_and_update",
        };
        tracing::info!(legacy_id = %existing_id, action, "create met an existing account");
        let existing = match (rule.then, &um.calls.take_over) {
            (ConflictThen::TakeOverAndUpdate, Some(take_over)) => {
                match ctx.call(take_over, Some(&existing_id), &[], None).await? {
                    Ok(answer) => record_of(ctx, answer, &existing_id).await?,
                    Err(f) => return Err(ctx.failure(&f)),
                }
            }
            _ => existing,
        };
        let record = update_fields(ctx, &existing_id, existing, fields).await?;
        return Ok((existing_id, record));
    }
    Err(taken())
}

/// Finds the record a conflict is about through the list call, filtering on the value the
/// request gives the SCIM attribute `path` (a pushed-down filter of the mapping).
async fn find_existing(
    ctx: &Ctx,
    body: &Value,
    path: &str,
) -> Result<Option<(LegacyId, Value)>, ScimError> {
    let um = users(ctx);
    let Ok(attr) = AttrPath::parse(path) else {
        return Ok(None);
    };
    let Some(value) = scim_text(body, &attr) else {
        return Ok(None);
    };
    let filter = Filter::Compare(attr, CompareOp::Eq, Value::String(value));
    let Some(query) = um.push_down(&filter) else {
        return Ok(None);
    };
    let size = ctx.mapping.legacy.paging.max_page_size;
    let (items, _, _) = ctx.page(&um.calls.list, None, &query, 0, size).await?;
    // The legacy filter may match more loosely than SCIM: the record must match the filter.
    Ok(items.into_iter().find_map(|r| {
        let attrs = Value::Object(um.read(&r));
        if filter.matches(&attrs, &um.schema) {
            um.legacy_id_of(&r).map(|id| (id, r))
        } else {
            None
        }
    }))
}

/// The text a SCIM resource gives `attr` (`userName`, `emails.value`: the primary element's).
fn scim_text(resource: &Value, attr: &AttrPath) -> Option<String> {
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

/// `PUT /Users/{id}`: full replace; mapped attributes absent from the body are cleared.
pub async fn replace(ctx: &Ctx, id: &str, body: Value) -> Result<Response<Full<Bytes>>, ScimError> {
    let um = users(ctx);
    note_user_name(ctx, &body);
    check_schemas(&body)?;
    let fields = um.write(&body)?;
    let want_active = requested_active(&body)?;
    let (legacy_id, current, _) = locate(ctx, id).await?;
    note_activation(
        ctx,
        um.active.is_some().then(|| um.is_active(&current)),
        want_active,
    );
    let record = update_fields(ctx, &legacy_id, current, &fields).await?;
    let after = match want_active {
        Some(want) => set_active(ctx, &legacy_id, record, want).await?,
        None => After::Record(record),
    };
    answer(ctx, &legacy_id, after, StatusCode::OK).await
}

/// `PATCH /Users/{id}`: only changed fields go to the legacy app; `active` goes through the
/// lifecycle calls.
pub async fn patch(ctx: &Ctx, id: &str, body: Value) -> Result<Response<Full<Bytes>>, ScimError> {
    let um = users(ctx);
    let ops = scim::patch::parse_request(&body)?;
    if ops.iter().any(removes_active) {
        return Err(ScimError::mutability(
            "active cannot be removed: an account is either active or deactivated; replace it \
             with true or false",
        ));
    }
    let (legacy_id, current, x) = locate(ctx, id).await?;
    let before = assemble(ctx, &current, x.as_ref())?;
    note_user_name(ctx, &before);
    let after = scim::patch::apply_owned(before.clone(), &ops, &um.schema)?;
    note_activation(
        ctx,
        before.get("active").and_then(Value::as_bool),
        after.get("active").and_then(Value::as_bool),
    );
    // A legacy update that replaces the whole record needs every field, not only the changes.
    let fields = if um.calls.update.body == Some(BodySpec::Full) {
        um.write(&after)?
    } else {
        um.write_changed(&before, &after)?
    };
    let record = if fields.is_empty() {
        current
    } else {
        update_fields(ctx, &legacy_id, current, &fields).await?
    };
    let after = match after.get("active") {
        Some(Value::Bool(want)) => set_active(ctx, &legacy_id, record, *want).await?,
        _ => After::Record(record),
    };
    answer(ctx, &legacy_id, after, StatusCode::OK).await
}

/// Whether an operation removes `active` (by path, or `remove` of the whole core schema).
fn removes_active(op: &PatchOperation) -> bool {
    op.op == PatchOpKind::Remove
        && op.path.as_ref().is_some_and(|p| {
            p.attr.eq_ignore_ascii_case("active")
                && p.sub.is_none()
                && p.urn
                    .as_deref()
                    .is_none_or(|u| u.eq_ignore_ascii_case(schema::USER))
        })
}

/// `DELETE /Users/{id}`: per the mapping, deactivate and tombstone, or delete.
pub async fn delete(ctx: &Ctx, id: &str) -> Result<Response<Full<Bytes>>, ScimError> {
    let um = users(ctx);
    let (legacy_id, record, _) = locate(ctx, id).await?;
    if let Some(name) = um.read(&record).get("userName").and_then(Value::as_str) {
        ctx.note.set_subject(name);
    }
    match um.delete {
        DeleteSpec::Deactivate => {
            if let After::Record(_) = set_active(ctx, &legacy_id, record, false).await? {
                tombstone(ctx, &legacy_id).await?;
            }
        }
        DeleteSpec::Delete => delete_record(ctx, &legacy_id).await?,
    }
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}

/// Notes the request's userName for the logs.
fn note_user_name(ctx: &Ctx, resource: &Value) {
    if let Some(name) = resource.get("userName").and_then(Value::as_str) {
        ctx.note.set_subject(name);
    }
}

/// Notes a change of `active` as the write's action (deactivate / reactivate).
fn note_activation(ctx: &Ctx, was: Option<bool>, want: Option<bool>) {
    match (was, want) {
        (Some(true), Some(false)) => ctx.note.set_action("deactivate"),
        (Some(false), Some(true)) => ctx.note.set_action("reactivate"),
        _ => {}
    }
}
