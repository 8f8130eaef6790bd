//! SCIM Groups: discovery (list, filter, get with members). Groups belong to the legacy app;
//! creating and deleting them through SCIM is refused with guidance for the admin.

use std::collections::HashSet;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Map, Value, json};

use super::{Ctx, ListParams, Projection, list_response};
use crate::app::scim_json;
use crate::error::ScimError;
use crate::ids::{LegacyId, ScimId};
use crate::mapping::apply::pointer_text;
use crate::mapping::{GroupIdSpec, GroupMapping, MappingError};
use crate::scim::schema;
use crate::xref::Seen;

/// The xref resource type of groups.
pub const RESOURCE_TYPE: &str = "Group";

fn groups(ctx: &Ctx) -> Result<&GroupMapping, ScimError> {
    ctx.tenant
        .mapping
        .groups
        .as_ref()
        .ok_or_else(ScimError::no_endpoint)
}

/// The answer to creating, replacing, patching or deleting a group.
pub fn refused() -> ScimError {
    ScimError::groups_link_only("GET")
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

/// Adds `members` (SCIM user ids) read through the legacy member pages.
async fn with_members(
    ctx: &Ctx,
    gm: &GroupMapping,
    legacy_id: &LegacyId,
    mut group: Value,
) -> Result<Value, ScimError> {
    let Some(call) = &gm.members else {
        return Ok(group);
    };
    let member_ptr = call.member_id.as_deref().unwrap_or("");
    let mut members = Vec::new();
    let mut seen = HashSet::new();
    let mut pager = ctx.pager(call, Some(legacy_id), Vec::new());
    while let Some(items) = pager.next().await? {
        for item in items {
            if let Some(uid) = pointer_text(&item, member_ptr) {
                let sid = ScimId::derive(
                    &ctx.tenant.id,
                    super::users::RESOURCE_TYPE,
                    &LegacyId::new(uid),
                );
                if seen.insert(sid.clone()) {
                    members.push(json!({
                        "value": sid.as_str(),
                        "$ref": format!("{}/Users/{}", ctx.base_url, sid),
                        "type": "User",
                    }));
                }
            }
        }
    }
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
        .and_then(|f| crate::mapping::apply::push_down(&gm.filters, &gm.schema, f))
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

/// `GET /Groups/{id}`.
pub async fn get(
    ctx: &Ctx,
    id: &str,
    projection: &Projection,
) -> Result<Response<Full<Bytes>>, ScimError> {
    let gm = groups(ctx)?;
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
    let record = match ctx.call(&gm.get, Some(&legacy_id), &[], None).await? {
        Ok(r) => r,
        Err(f) if f.rule.as_ref().map_or(f.status, |r| r.status) == 404 => return Err(not_found()),
        Err(f) => return Err(ctx.failure(&f)),
    };
    let (lid, group) = assemble(ctx, gm, &record)?;
    let group = if projection.wants("members") {
        with_members(ctx, gm, &lid, group).await?
    } else {
        group
    };
    Ok(scim_json(
        StatusCode::OK,
        &projection.apply(group, &gm.schema),
    ))
}
