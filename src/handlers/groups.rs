//! SCIM Groups: list, filter, get with members, the membership push (PATCH, PUT), and
//! create, rename and delete where the mapping declares those calls (otherwise they are
//! refused with the mapping's advice for the admin).

mod members;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use mapping::GroupMapping;
use mapping::ids::{LegacyId, ScimId};
use mapping::plan::groups::{self as plan, RESOURCE_TYPE};
use mapping::plan::{Exchange as _, Refusal};
use scim::list::{ListParams, Projection};
use scim::patch::members::GroupPatch;
use serde_json::Value;

use self::members::{read_members, recorded, translate};
use super::{
    Ctx, cursor_list_response, cursor_page, cursor_walk, list_response, no_content,
    resource_response,
};
use crate::error::{Error, RequestError};
use crate::xref::Seen;

fn groups(ctx: &Ctx) -> Result<&GroupMapping, Error> {
    plan::mapping(&ctx.mapping).ok_or_else(|| RequestError::NoEndpoint.into())
}

/// `GET /Groups` and `POST /Groups/.search`.
pub async fn list(ctx: &Ctx, p: ListParams) -> Result<Response<Full<Bytes>>, Error> {
    if p.cursor.is_some() {
        return cursor_list(ctx, &p).await;
    }
    let (total, page) = search(ctx, &p).await?;
    Ok(list_response(total, p.start_index, page))
}

/// One page of an RFC 9865 cursor walk over the groups: exactly one legacy list call (and
/// the member lists of its groups, when the answer shows members), from where the cursor
/// says; the groups that do not match the filter are left out.
async fn cursor_list(ctx: &Ctx, p: &ListParams) -> Result<Response<Full<Bytes>>, Error> {
    let gm = groups(ctx)?;
    if let Some(f) = &p.filter {
        f.validate(&gm.schema)?;
    }
    let walk = cursor_walk(ctx, RESOURCE_TYPE, p)?;
    let pages = plan::list_pages(&ctx.mapping, gm, p);
    let mut page = cursor_page(pages, &walk)?;
    let mut resources = Vec::new();
    let mut x = ctx.exchange();
    if let Some(call) = page.call() {
        let (answer, link_next) = x.send_page(call).await?;
        let records = page.read(answer, link_next.as_deref(), &ctx.mapping.legacy)?;
        record_seen(ctx, gm, &records).await?;
        for record in records {
            let (_, group) = gm.resource(&ctx.tenant.id, &record, None, &ctx.base_url)?;
            if walk.count == 0
                || p.filter
                    .as_ref()
                    .is_some_and(|f| !f.matches(&group, &gm.schema))
            {
                continue;
            }
            resources.push(if p.projection.wants("members") {
                render(ctx, gm, &record, &p.projection).await?
            } else {
                p.projection.apply(group, &gm.schema)
            });
        }
    }
    let total = if p.filter.is_none() {
        page.total()
    } else {
        None
    };
    Ok(cursor_list_response(
        ctx,
        RESOURCE_TYPE,
        p,
        &walk,
        total,
        page,
        resources,
    ))
}

/// The groups matching a list request: (total, the requested window, projected).
pub async fn search(ctx: &Ctx, p: &ListParams) -> Result<(u64, Vec<Value>), Error> {
    let gm = groups(ctx)?;
    if let Some(f) = &p.filter {
        f.validate(&gm.schema)?;
    }
    let mut pages = plan::list_pages(&ctx.mapping, gm, p);
    let mut window = p.window();
    let mut x = ctx.exchange();
    while let Some(records) = pages.next(&mut x, &ctx.mapping.legacy).await? {
        let built = records
            .iter()
            .map(|r| gm.resource(&ctx.tenant.id, r, None, &ctx.base_url))
            .collect::<Result<Vec<_>, _>>()?;
        record_seen(ctx, gm, &records).await?;
        for (record, (_, group)) in records.into_iter().zip(built) {
            if p.filter
                .as_ref()
                .is_none_or(|f| f.matches(&group, &gm.schema))
            {
                window.push((record, group));
            }
        }
    }
    let (total, page) = window.finish();
    let mut out = Vec::with_capacity(page.len());
    for (record, group) in page {
        out.push(if p.projection.wants("members") {
            render(ctx, gm, &record, &p.projection).await?
        } else {
            p.projection.apply(group, &gm.schema)
        });
    }
    Ok((total, out))
}

/// Records groups met (SCIM id, legacy id, display name), from their legacy records.
async fn record_seen(ctx: &Ctx, gm: &GroupMapping, records: &[Value]) -> Result<(), Error> {
    let rows = records
        .iter()
        .map(|record| {
            let legacy_id = gm.legacy_id_of(record)?;
            Ok(Seen {
                scim_id: gm.scim_id(&ctx.tenant.id, &legacy_id),
                legacy_id,
                external_id: None,
                user_name: gm.display_name_of(record),
                fingerprint: None,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    ctx.state
        .xref
        .seen(&ctx.tenant.id, RESOURCE_TYPE, rows)
        .await?;
    Ok(())
}

/// The group as SCIM, with members when the projection wants them (and the mapping reads
/// them).
async fn render(
    ctx: &Ctx,
    gm: &GroupMapping,
    record: &Value,
    projection: &Projection,
) -> Result<Value, Error> {
    let legacy_id = gm.legacy_id_of(record)?;
    let members = if projection.wants("members") && gm.members.is_some() {
        Some(read_members(ctx, gm, &legacy_id).await?)
    } else {
        None
    };
    let (_, group) = gm.resource(&ctx.tenant.id, record, members.as_deref(), &ctx.base_url)?;
    Ok(projection.apply(group, &gm.schema))
}

/// Loads a group by SCIM id: (legacy id, legacy record).
async fn load(ctx: &Ctx, gm: &GroupMapping, id: &str) -> Result<(LegacyId, Value), Error> {
    let not_found = || {
        Error::from(Refusal::NotFound {
            resource: RESOURCE_TYPE,
            id: id.to_owned(),
        })
    };
    if id.is_empty() || id == "." || id == ".." {
        return Err(not_found());
    }
    let legacy_id = match gm.scim_id {
        mapping::GroupIdSpec::Legacy => LegacyId::new(id),
        mapping::GroupIdSpec::Derived => ctx
            .state
            .xref
            .get(&ctx.tenant.id, RESOURCE_TYPE, &ScimId::new(id))
            .await?
            .map(|x| x.legacy_id)
            .ok_or_else(not_found)?,
    };
    let record = plan::read(&ctx.mapping, gm, &legacy_id, id, &mut ctx.exchange()).await?;
    Ok((legacy_id, record))
}

/// `GET /Groups/{id}`.
pub async fn get(
    ctx: &Ctx,
    id: &str,
    projection: &Projection,
) -> Result<Response<Full<Bytes>>, Error> {
    let gm = groups(ctx)?;
    let (_, record) = load(ctx, gm, id).await?;
    let group = render(ctx, gm, &record, projection).await?;
    Ok(resource_response(StatusCode::OK, &group))
}

/// `POST /Groups`: creates the group when the mapping declares a create call, then adds the
/// members given; otherwise `405` with the mapping's hint.
pub async fn create(ctx: &Ctx, body: Value) -> Result<Response<Full<Bytes>>, Error> {
    let gm = groups(ctx)?;
    plan::check_creatable(gm)?;
    let (name, members) = plan::create_request(&body)?;
    // Unknown members are refused before the group is created.
    let ids = translate(ctx, &members.named_members()).await?;
    let concurrency = ctx.tenant.member_concurrency;
    ctx.one_at_a_time(RESOURCE_TYPE, "displayName", Some(&name), async {
        let mut x = ctx.exchange();
        let created =
            plan::create(&ctx.mapping, gm, &name, &members, &ids, concurrency, &mut x).await?;
        record_seen(ctx, gm, std::slice::from_ref(&created.record)).await?;
        recorded(ctx, gm, &created, &ids).await?;
        let group = render(ctx, gm, &created.record, &Projection::default()).await?;
        Ok(resource_response(StatusCode::CREATED, &group))
    })
    .await
}

/// `DELETE /Groups/{id}`: deletes the group when the mapping declares a delete call;
/// otherwise `405` with the mapping's hint.
pub async fn delete(ctx: &Ctx, id: &str) -> Result<Response<Full<Bytes>>, Error> {
    let gm = groups(ctx)?;
    if gm.delete.is_none() {
        return Err(plan::link_only(gm, "GET, PUT, PATCH").into());
    }
    let (legacy_id, record) = load(ctx, gm, id).await?;
    note_name(ctx, gm, &record);
    plan::delete(&ctx.mapping, gm, &legacy_id, &record, &mut ctx.exchange()).await?;
    Ok(no_content())
}

/// `PATCH /Groups/{id}`: membership push. `204 No Content`, or `200` with the group when the
/// request names `attributes` or `excludedAttributes`.
pub async fn patch(
    ctx: &Ctx,
    id: &str,
    body: Value,
    projection: &Projection,
) -> Result<Response<Full<Bytes>>, Error> {
    let gm = groups(ctx)?;
    let change = plan::patch_request(&body)?;
    let record = change_group(ctx, gm, id, &change, &change.display_names).await?;
    if projection.is_empty() {
        return Ok(no_content());
    }
    let group = render(ctx, gm, &record, projection).await?;
    Ok(resource_response(StatusCode::OK, &group))
}

/// `PUT /Groups/{id}`: the members given (diffed against the legacy); `displayName`, if sent,
/// is a rename where the mapping allows one.
pub async fn replace(
    ctx: &Ctx,
    id: &str,
    body: Value,
    projection: &Projection,
) -> Result<Response<Full<Bytes>>, Error> {
    let gm = groups(ctx)?;
    let (name, change) = plan::replace_request(&body)?;
    let record = change_group(ctx, gm, id, &change, name.as_slice()).await?;
    let group = render(ctx, gm, &record, projection).await?;
    Ok(resource_response(StatusCode::OK, &group))
}

/// A PATCH or PUT: the group loaded and checked, unknown members refused before anything
/// changes, then the plan (rename, membership push). Answers the record as it now is. One
/// change of a group at a time, on any replica: each reads the members the last one left.
async fn change_group(
    ctx: &Ctx,
    gm: &GroupMapping,
    id: &str,
    change: &GroupPatch,
    names: &[String],
) -> Result<Value, Error> {
    ctx.one_at_a_time(RESOURCE_TYPE, "group", Some(id), async {
        let (legacy_id, record) = load(ctx, gm, id).await?;
        note_name(ctx, gm, &record);
        plan::check_unlocked(gm, &record)?;
        let ids = translate(ctx, &change.named_members()).await?;
        // A PATCH that only renames is an update, not a membership change.
        if !change.changes_members() {
            ctx.note.set_action("update");
        }
        let concurrency = ctx.tenant.member_concurrency;
        let mut x = ctx.exchange();
        let changed = plan::change(
            &ctx.mapping,
            gm,
            &legacy_id,
            record,
            change,
            names,
            &ids,
            concurrency,
            &mut x,
        )
        .await?;
        recorded(ctx, gm, &changed, &ids).await?;
        Ok(changed.record)
    })
    .await
}

fn note_name(ctx: &Ctx, gm: &GroupMapping, record: &Value) {
    if let Some(name) = gm.display_name_of(record) {
        ctx.note.set_subject(&name);
    }
}
