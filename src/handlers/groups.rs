//! SCIM Groups: discovery (list, filter, get with members). Groups belong to the legacy app;
//! creating and deleting them through SCIM is refused with guidance for the admin.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Map, Value, json};

use super::{Ctx, ListParams, Projection, list_response, users};
use crate::error::ScimError;
use crate::error::scim_json;
use crate::xref::Seen;
use mapping::apply::pointer_text;
use mapping::ids::{LegacyId, ScimId};
use mapping::{Call, GroupIdSpec, GroupMapping, MappingError};
use scim::patch::members::{GroupPatch, MemberChange, group_patch};
use scim::schema;

/// The xref resource type of groups.
pub const RESOURCE_TYPE: &str = "Group";

fn groups(ctx: &Ctx) -> Result<&GroupMapping, ScimError> {
    ctx.mapping
        .groups
        .as_ref()
        .ok_or_else(ScimError::no_endpoint)
}

/// The answer to creating or deleting a group where the mapping declares no such call.
fn refused(gm: &GroupMapping, allow: &'static str) -> ScimError {
    ScimError::groups_link_only(allow, &gm.link_only_hint)
}

/// `403` when the group is one the mapping locks (never linked or changed).
fn check_unlocked(gm: &GroupMapping, record: &Value) -> Result<(), ScimError> {
    match &gm.locked {
        Some(lock) if lock.matches(record) => Err(ScimError::forbidden(lock.detail.clone())),
        _ => Ok(()),
    }
}

/// The body of a create or rename: the display name in the declared field.
fn name_body(gm: &GroupMapping, name: &str) -> Option<Value> {
    let field = gm.display_name_field.as_ref()?;
    let mut body = Map::new();
    body.insert(field.clone(), json!(name));
    Some(Value::Object(body))
}

/// `POST /Groups`: creates the group when the mapping declares a create call (then adds the
/// members given); otherwise `405` with the mapping's hint.
pub async fn create(ctx: &Ctx, body: Value) -> Result<Response<Full<Bytes>>, ScimError> {
    let gm = groups(ctx)?;
    let Some(call) = &gm.create else {
        return Err(refused(gm, "GET"));
    };
    let name = body
        .as_object()
        .and_then(|o| {
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("displayName"))
        })
        .and_then(|(_, v)| v.as_str())
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ScimError::invalid_value("displayName is required"))?
        .to_owned();
    let members = body
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("members")))
        .map(|(_, v)| v.clone());
    let change = match &members {
        Some(m) => group_patch(&[scim::patch::PatchOperation {
            op: scim::patch::PatchOpKind::Add,
            path: None,
            value: Some(json!({ "members": m })),
        }])?,
        None => group_patch(&[])?,
    };
    // Unknown members are refused before the group is created.
    translate(ctx, &change.named_members()).await?;
    let record = match ctx.call(call, None, &[], name_body(gm, &name)).await? {
        Ok(record) => record,
        Err(f) => return Err(ctx.failure(&f)),
    };
    let (legacy_id, _) = assemble(ctx, gm, &record)?;
    record_seen(
        ctx,
        gm,
        &[(legacy_id.clone(), json!({ "displayName": name }))],
    )
    .await?;
    push(ctx, gm, &legacy_id, &change).await?;
    let group = render(ctx, gm, &record, &Projection::default()).await?;
    let mut resp = scim_json(StatusCode::CREATED, &group);
    if let Some(loc) = group.pointer("/meta/location").and_then(Value::as_str)
        && let Ok(v) = http::HeaderValue::from_str(loc)
    {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    Ok(resp)
}

/// `DELETE /Groups/{id}`: deletes the group when the mapping declares a delete call;
/// otherwise `405` with the mapping's hint.
pub async fn delete(ctx: &Ctx, id: &str) -> Result<Response<Full<Bytes>>, ScimError> {
    let gm = groups(ctx)?;
    let Some(call) = &gm.delete else {
        return Err(refused(gm, "GET, PUT, PATCH"));
    };
    let (legacy_id, record) = load(ctx, gm, id).await?;
    if let Some(name) = pointer_text(&record, &gm.display_name) {
        ctx.note.set_subject(&name);
    }
    check_unlocked(gm, &record)?;
    match ctx.call(call, Some(&legacy_id), &[], None).await? {
        Ok(_) => {}
        Err(f) if f.is_not_found() => {}
        Err(f) => return Err(ctx.failure(&f)),
    }
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}

fn scim_id(ctx: &Ctx, gm: &GroupMapping, legacy_id: &LegacyId) -> ScimId {
    match gm.scim_id {
        GroupIdSpec::Legacy => ScimId::new(legacy_id.as_str()),
        GroupIdSpec::Derived => ScimId::derive(&ctx.tenant.id, RESOURCE_TYPE, legacy_id),
    }
}

fn assemble(ctx: &Ctx, gm: &GroupMapping, record: &Value) -> Result<(LegacyId, Value), ScimError> {
    let legacy_id = pointer_text(record, &gm.legacy_id)
        .map(LegacyId::new)
        .ok_or_else(|| ScimError::from(MappingError::Answer("has a group without id".into())))?;
    let id = scim_id(ctx, gm, &legacy_id);
    let mut out = Map::new();
    out.insert("schemas".into(), json!([schema::GROUP]));
    out.insert("id".into(), json!(id.as_str()));
    if let Some(name) = pointer_text(record, &gm.display_name) {
        out.insert("displayName".into(), json!(name));
    }
    out.insert(
        "meta".into(),
        json!({"resourceType": RESOURCE_TYPE, "location": format!("{}/Groups/{}", ctx.base_url, id)}),
    );
    Ok((legacy_id, Value::Object(out)))
}

async fn record_seen(
    ctx: &Ctx,
    gm: &GroupMapping,
    built: &[(LegacyId, Value)],
) -> Result<(), ScimError> {
    let rows = built
        .iter()
        .map(|(lid, r)| Seen {
            scim_id: scim_id(ctx, gm, lid),
            legacy_id: lid.clone(),
            external_id: None,
            user_name: r
                .get("displayName")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
        .collect();
    ctx.state
        .xref
        .seen(&ctx.tenant.id, RESOURCE_TYPE, rows)
        .await?;
    Ok(())
}

/// Every member of a group as (legacy id, display), read through the legacy member pages.
/// Members met for the first time are recorded in the xref, so each has a SCIM id.
async fn read_members(
    ctx: &Ctx,
    gm: &GroupMapping,
    legacy_id: &LegacyId,
) -> Result<Vec<(LegacyId, Option<String>)>, ScimError> {
    let Some(call) = &gm.members else {
        return Ok(Vec::new());
    };
    let member_ptr = call.member_id.as_deref().unwrap_or("");
    let mut out = Vec::new();
    let mut known = HashSet::new();
    let mut pager = ctx.pager(call, Some(legacy_id), Vec::new());
    while let Some(items) = pager.next().await? {
        let mut rows = Vec::new();
        for item in items {
            let Some(uid) = pointer_text(&item, member_ptr).map(LegacyId::new) else {
                continue;
            };
            if !known.insert(uid.clone()) {
                continue;
            }
            let display = call
                .member_display
                .as_deref()
                .and_then(|p| pointer_text(&item, p));
            rows.push(Seen {
                scim_id: user_id(ctx, &uid),
                legacy_id: uid.clone(),
                external_id: None,
                user_name: display.clone(),
            });
            out.push((uid, display));
        }
        ctx.state
            .xref
            .seen(&ctx.tenant.id, users::RESOURCE_TYPE, rows)
            .await?;
    }
    Ok(out)
}

fn user_id(ctx: &Ctx, legacy_id: &LegacyId) -> ScimId {
    ScimId::derive(&ctx.tenant.id, users::RESOURCE_TYPE, legacy_id)
}

/// Adds `members` (SCIM user ids) read through the legacy member pages.
async fn with_members(
    ctx: &Ctx,
    gm: &GroupMapping,
    legacy_id: &LegacyId,
    mut group: Value,
) -> Result<Value, ScimError> {
    if gm.members.is_none() {
        return Ok(group);
    }
    let members: Vec<Value> = read_members(ctx, gm, legacy_id)
        .await?
        .into_iter()
        .map(|(uid, display)| {
            let sid = user_id(ctx, &uid);
            let mut m = Map::new();
            m.insert("value".into(), json!(sid.as_str()));
            if let Some(d) = display {
                m.insert("display".into(), json!(d));
            }
            m.insert(
                "$ref".into(),
                json!(format!("{}/Users/{}", ctx.base_url, sid)),
            );
            m.insert("type".into(), json!("User"));
            Value::Object(m)
        })
        .collect();
    if let Some(obj) = group.as_object_mut() {
        let meta = obj.remove("meta");
        obj.insert("members".into(), Value::Array(members));
        if let Some(meta) = meta {
            obj.insert("meta".into(), meta);
        }
    }
    Ok(group)
}

/// `GET /Groups` and `POST /Groups/.search`.
pub async fn list(ctx: &Ctx, p: ListParams) -> Result<Response<Full<Bytes>>, ScimError> {
    let (total, page) = search(ctx, &p).await?;
    Ok(list_response(total, p.start_index, page))
}

/// The groups matching a list request: (total, the requested window, projected).
pub async fn search(ctx: &Ctx, p: &ListParams) -> Result<(u64, Vec<Value>), ScimError> {
    let gm = groups(ctx)?;
    if let Some(f) = &p.filter {
        f.validate(&gm.schema)?;
    }
    let query = p
        .filter
        .as_ref()
        .and_then(|f| mapping::apply::push_down(&gm.filters, &gm.schema, f))
        .unwrap_or_default();
    let mut pager = ctx.pager(&gm.list, None, query);
    let (skip, mut matched, mut page) = (p.start_index - 1, 0u64, Vec::new());
    while let Some(items) = pager.next().await? {
        let built: Vec<(LegacyId, Value)> = items
            .iter()
            .map(|r| assemble(ctx, gm, r))
            .collect::<Result<_, _>>()?;
        record_seen(ctx, gm, &built).await?;
        for (lid, group) in built {
            if p.filter
                .as_ref()
                .is_some_and(|f| !f.matches(&group, &gm.schema))
            {
                continue;
            }
            if matched >= skip && (page.len() as u64) < p.count {
                page.push((lid, group));
            }
            matched += 1;
        }
    }
    let mut out = Vec::with_capacity(page.len());
    for (lid, group) in page {
        let group = if p.projection.wants("members") {
            with_members(ctx, gm, &lid, group).await?
        } else {
            group
        };
        out.push(p.projection.apply(group, &gm.schema));
    }
    Ok((matched, out))
}

/// Loads a group by SCIM id: (legacy id, legacy record).
async fn load(ctx: &Ctx, gm: &GroupMapping, id: &str) -> Result<(LegacyId, Value), ScimError> {
    let not_found = || ScimError::not_found("Group", id);
    if id.is_empty() || id == "." || id == ".." {
        return Err(not_found());
    }
    let legacy_id = match gm.scim_id {
        GroupIdSpec::Legacy => LegacyId::new(id),
        GroupIdSpec::Derived => ctx
            .state
            .xref
            .get(&ctx.tenant.id, RESOURCE_TYPE, &ScimId::new(id))
            .await?
            .map(|x| x.legacy_id)
            .ok_or_else(not_found)?,
    };
    match ctx.call(&gm.get, Some(&legacy_id), &[], None).await? {
        Ok(record) => Ok((legacy_id, record)),
        Err(f) if f.is_not_found() => Err(not_found()),
        Err(f) => Err(ctx.failure(&f)),
    }
}

/// The group as SCIM, with members when the projection wants them.
async fn render(
    ctx: &Ctx,
    gm: &GroupMapping,
    record: &Value,
    projection: &Projection,
) -> Result<Value, ScimError> {
    let (lid, group) = assemble(ctx, gm, record)?;
    let group = if projection.wants("members") {
        with_members(ctx, gm, &lid, group).await?
    } else {
        group
    };
    Ok(projection.apply(group, &gm.schema))
}

/// `GET /Groups/{id}`.
pub async fn get(
    ctx: &Ctx,
    id: &str,
    projection: &Projection,
) -> Result<Response<Full<Bytes>>, ScimError> {
    let gm = groups(ctx)?;
    let (_, record) = load(ctx, gm, id).await?;
    Ok(scim_json(
        StatusCode::OK,
        &render(ctx, gm, &record, projection).await?,
    ))
}

/// `PATCH /Groups/{id}`: membership push. `204 No Content`, or `200` with the group when the
/// request names `attributes` or `excludedAttributes`.
pub async fn patch(
    ctx: &Ctx,
    id: &str,
    body: Value,
    projection: &Projection,
) -> Result<Response<Full<Bytes>>, ScimError> {
    let gm = groups(ctx)?;
    let ops = scim::patch::parse_request(&body)?;
    let change = group_patch(&ops)?;
    let (legacy_id, record) = load(ctx, gm, id).await?;
    if let Some(name) = pointer_text(&record, &gm.display_name) {
        ctx.note.set_subject(&name);
    }
    check_unlocked(gm, &record)?;
    // Unknown members are refused before anything changes (a rename included).
    translate(ctx, &change.named_members()).await?;
    // A PATCH that only renames is an update, not a membership change.
    if !change.changes_members() {
        ctx.note.set_action("update");
    }
    let record = rename(ctx, gm, &legacy_id, record, &change.display_names).await?;
    push(ctx, gm, &legacy_id, &change).await?;
    if projection.is_empty() {
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::NO_CONTENT;
        return Ok(resp);
    }
    Ok(scim_json(
        StatusCode::OK,
        &render(ctx, gm, &record, projection).await?,
    ))
}

/// `PUT /Groups/{id}`: the members given (diffed against the legacy); `displayName`, if sent,
/// must be the current name.
pub async fn replace(
    ctx: &Ctx,
    id: &str,
    body: Value,
    projection: &Projection,
) -> Result<Response<Full<Bytes>>, ScimError> {
    let gm = groups(ctx)?;
    // displayName is read-only here: absent keeps the name, present must equal it.
    let name = match body
        .as_object()
        .and_then(|o| {
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("displayName"))
        })
        .map(|(_, v)| v)
    {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ScimError::invalid_value("displayName must be a string")),
    };
    let members = body
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("members")))
        .map(|(_, v)| v.clone());
    let (legacy_id, record) = load(ctx, gm, id).await?;
    if let Some(name) = pointer_text(&record, &gm.display_name) {
        ctx.note.set_subject(&name);
    }
    check_unlocked(gm, &record)?;
    let ops = [scim::patch::PatchOperation {
        op: scim::patch::PatchOpKind::Replace,
        path: None,
        value: Some(json!({"members": members.unwrap_or_else(|| json!([]))})),
    }];
    let change = group_patch(&ops)?;
    // Unknown members are refused before anything changes (a rename included).
    translate(ctx, &change.named_members()).await?;
    let record = rename(ctx, gm, &legacy_id, record, name.as_slice()).await?;
    push(ctx, gm, &legacy_id, &change).await?;
    Ok(scim_json(
        StatusCode::OK,
        &render(ctx, gm, &record, projection).await?,
    ))
}

/// A `displayName` equal to the current one is a no-op (Okta sends it after every push). Any
/// other is a rename: through the rename call when the mapping declares one, refused
/// otherwise (the legacy app owns group names). Answers the record as it now is.
async fn rename(
    ctx: &Ctx,
    gm: &GroupMapping,
    legacy_id: &LegacyId,
    record: Value,
    names: &[String],
) -> Result<Value, ScimError> {
    let current = pointer_text(&record, &gm.display_name).unwrap_or_default();
    let Some(new) = names.iter().rev().find(|n| **n != current) else {
        return Ok(record);
    };
    let Some(call) = &gm.rename else {
        return Err(ScimError::mutability(format!(
            "displayName is read-only: groups are renamed in {}, not through SCIM \
             (asked {new:?}, the group is {current:?}); {}",
            ctx.mapping.legacy.name, gm.link_only_hint
        )));
    };
    match ctx
        .call(call, Some(legacy_id), &[], name_body(gm, new))
        .await?
    {
        Ok(answer) if pointer_text(&answer, &gm.legacy_id).is_some() => Ok(answer),
        Ok(_) => match ctx.call(&gm.get, Some(legacy_id), &[], None).await? {
            Ok(record) => Ok(record),
            Err(f) => Err(ctx.failure(&f)),
        },
        Err(f) => Err(ctx.failure(&f)),
    }
}

/// Translates member SCIM ids to legacy ids; every unknown id is refused (before any legacy
/// call), naming the ids.
async fn translate(ctx: &Ctx, named: &[&str]) -> Result<HashMap<String, LegacyId>, ScimError> {
    let mut wanted: Vec<(String, Option<ScimId>)> = Vec::with_capacity(named.len());
    for id in named {
        let parsed = uuid::Uuid::parse_str(id)
            .ok()
            .filter(|u| u.get_version_num() == 5)
            .map(|u| ScimId::new(u.hyphenated().to_string()));
        wanted.push(((*id).to_owned(), parsed));
    }
    let mut found = HashMap::new();
    let mut missing: Vec<&(String, Option<ScimId>)> = wanted.iter().collect();
    // Ids the xref has never seen may still be ours (a lost database): one rescan, then again.
    for pass in 0..2 {
        if pass == 1
            && !(missing.iter().any(|(_, s)| s.is_some()) && users::rediscover(ctx).await?)
        {
            break;
        }
        let candidates = std::mem::take(&mut missing);
        let ids: Vec<ScimId> = candidates.iter().filter_map(|(_, s)| s.clone()).collect();
        let records = ctx
            .state
            .xref
            .get_many(&ctx.tenant.id, users::RESOURCE_TYPE, ids)
            .await?;
        let mut records = records.into_iter();
        for w in candidates {
            let rec = if w.1.is_some() {
                records.next().flatten()
            } else {
                None
            };
            match rec {
                Some(r) if r.tombstoned_at.is_none() => {
                    found.insert(w.0.clone(), r.legacy_id);
                }
                _ => missing.push(w),
            }
        }
    }
    if missing.is_empty() {
        return Ok(found);
    }
    let shown: Vec<String> = missing
        .iter()
        .take(5)
        .map(|(id, _)| format!("{id:?}"))
        .collect();
    let more = missing.len().saturating_sub(5);
    Err(ScimError::invalid_value(format!(
        "members: unknown user id{} {}{}",
        if missing.len() == 1 { "" } else { "s" },
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )))
}

/// One member call: for one member (`{member_legacy_id}`), or for a batch of them (the body
/// `{ <field>: [ids] }`). Answers the members with the outcome.
async fn member_call<'a>(
    ctx: &'a Ctx,
    call: &'a Call,
    group: &'a LegacyId,
    members: &'a [LegacyId],
) -> (&'a [LegacyId], Result<super::Answer, ScimError>) {
    let result = match (&call.batch, members) {
        (Some(b), _) => {
            let ids: Vec<&str> = members.iter().map(LegacyId::as_str).collect();
            let mut body = Map::new();
            body.insert(b.field.clone(), json!(ids));
            ctx.call(call, Some(group), &[], Some(Value::Object(body)))
                .await
        }
        (None, [member]) => {
            ctx.call_member(call, Some(group), Some(member), &[], None)
                .await
        }
        (None, _) => Err(ScimError::internal(
            "a one-member call was given several members",
        )),
    };
    (members, result)
}

/// Applies a membership change: the minimal add/remove calls, at most `member_concurrency`
/// in flight. An archived user (a `skip_member` code) is skipped and counted; any other
/// failure stops the push and is answered (member calls are idempotent: a retry is safe).
async fn push(
    ctx: &Ctx,
    gm: &GroupMapping,
    group: &LegacyId,
    patch: &GroupPatch,
) -> Result<(), ScimError> {
    if !patch.changes_members() {
        return Ok(());
    }
    let change = &patch.members;
    let (add_call, remove_call) = match (
        gm.add_member.as_ref().or(gm.add_members.as_ref()),
        gm.remove_member.as_ref().or(gm.remove_members.as_ref()),
    ) {
        (Some(a), Some(r)) => (a, r),
        _ => {
            return Err(ScimError::mutability(format!(
                "group members cannot be changed in {}: {}",
                ctx.mapping.legacy.name, gm.link_only_hint
            )));
        }
    };
    let ids = translate(ctx, &patch.named_members()).await?;
    let legacy = |scim: &String| ids.get(scim).cloned();
    let (adds, removes): (Vec<LegacyId>, Vec<LegacyId>) = match change {
        MemberChange::Delta { add, remove } => (
            add.iter().filter_map(legacy).collect(),
            remove.iter().filter_map(legacy).collect(),
        ),
        MemberChange::Replace(all) => {
            let target: HashSet<LegacyId> = all.iter().filter_map(legacy).collect();
            let current: HashSet<LegacyId> = read_members(ctx, gm, group)
                .await?
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            let mut adds: Vec<LegacyId> = target.difference(&current).cloned().collect();
            let mut removes: Vec<LegacyId> = current.difference(&target).cloned().collect();
            adds.sort();
            removes.sort();
            (adds, removes)
        }
    };
    // One call per member, or one per batch of members when the mapping batches.
    let batches = |call: &'_ Call, ids: &'_ [LegacyId]| -> Vec<Vec<LegacyId>> {
        match &call.batch {
            Some(b) => ids.chunks(b.max.max(1)).map(<[LegacyId]>::to_vec).collect(),
            None => ids.iter().map(|id| vec![id.clone()]).collect(),
        }
    };
    let add_batches = batches(add_call, &adds);
    let remove_batches = batches(remove_call, &removes);
    let mut calls = add_batches
        .iter()
        .map(|m| (add_call, m))
        .chain(remove_batches.iter().map(|m| (remove_call, m)));
    let limit = ctx.tenant.member_concurrency;
    let mut in_flight = FuturesUnordered::new();
    let (mut done, mut skipped) = (0u64, 0u64);
    loop {
        while in_flight.len() < limit {
            match calls.next() {
                Some((call, member)) => in_flight.push(member_call(ctx, call, group, member)),
                None => break,
            }
        }
        let Some((members, result)) = in_flight.next().await else {
            break;
        };
        match result? {
            Ok(_) => done += 1,
            Err(f) if f.rule.as_ref().is_some_and(|r| r.skip_member) => {
                skipped += members.len() as u64;
                tracing::warn!(
                    group = %group,
                    members = ?members.iter().map(LegacyId::as_str).collect::<Vec<_>>(),
                    code = f.code.as_deref().unwrap_or(""),
                    "member skipped"
                );
            }
            Err(f) => return Err(ctx.failure(&f)),
        }
    }
    tracing::info!(
        group = %group,
        added = adds.len(),
        removed = removes.len(),
        calls = done,
        skipped,
        "membership pushed"
    );
    Ok(())
}
