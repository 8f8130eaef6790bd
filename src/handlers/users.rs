//! SCIM Users: list and search, get, create, replace, patch, delete.
//!
//! Every legacy record met on the way is recorded in the cross-reference on the spot. SCIM
//! ids are derived from (tenant, legacy id); the cross-reference indexes them, remembers
//! times and keeps tombstones.

mod records;

use std::collections::HashSet;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use mapping::ids::{ExternalId, LegacyId, ScimId};
use mapping::plan::users::{self as plan, After, Listing, RESOURCE_TYPE, Written};
use mapping::plan::{CursorPage, Exchange, Refusal};
use scim::list::{ListParams, Projection};
use serde_json::Value;

pub(crate) use self::records::rediscover;
use self::records::{finish, kept_answer, locate, record_page, resource, tombstone};
use super::announce::{UserWrite, user_events};
use super::{
    Ctx, cursor_list_response, cursor_page, cursor_walk, list_response, no_content,
    resource_response,
};
use crate::error::{Error, scim_json_bytes};
use crate::events::without_meta;
use crate::webhooks::EventType;
use crate::xref::{NewEvent, XrefRecord};

/// `GET /Users` and `POST /Users/.search`.
pub async fn list(ctx: &Ctx, p: ListParams) -> Result<Response<Full<Bytes>>, Error> {
    if p.cursor.is_some() {
        return cursor_list(ctx, &p).await;
    }
    let (total, page) = search(ctx, &p).await?;
    Ok(list_response(total, p.start_index, page))
}

/// One page of an RFC 9865 cursor walk over the users: exactly one legacy list call, from
/// where the cursor says (the app's record index, or its own cursor or next URL). The
/// page's records that are tombstoned or do not match the filter are left out, so a page
/// may hold fewer than `count`; `totalResults` only where the app's total says it.
async fn cursor_list(ctx: &Ctx, p: &ListParams) -> Result<Response<Full<Bytes>>, Error> {
    let um = &ctx.mapping.users;
    if let Some(f) = &p.filter {
        f.validate(&um.schema)?;
    }
    let walk = cursor_walk(ctx, RESOURCE_TYPE, p)?;
    if let Some(found) = lookup(ctx, p).await? {
        // `id eq` and `externalId eq` are answered by lookups: one page, the whole answer.
        let resources = found.into_iter().take(walk.count as usize).collect();
        let done = CursorPage::done(plan::list_pages(&ctx.mapping, p));
        return Ok(cursor_list_response(
            ctx,
            RESOURCE_TYPE,
            p,
            &walk,
            None,
            done,
            resources,
        ));
    }
    let tombstoned = tombstoned_if_unfiltered(ctx, p).await?;
    let mut page = cursor_page(plan::list_pages(&ctx.mapping, p), &walk)?;
    let mut resources = Vec::new();
    let mut x = ctx.exchange();
    if let Some(call) = page.call() {
        let (answer, link_next) = x.send_page(call).await?;
        let records = page.read(answer, link_next.as_deref(), &ctx.mapping.legacy)?;
        let limit = ctx.tenant.member_concurrency;
        let records = plan::complete(&ctx.mapping, records, limit, &mut x).await?;
        for (_, r, tombstoned) in record_page(ctx, records).await? {
            let matched = p.filter.as_ref().is_none_or(|f| f.matches(&r, &um.schema));
            if !tombstoned && matched && walk.count > 0 {
                resources.push(p.projection.apply(r, &um.schema));
            }
        }
    }
    let total = match &p.filter {
        None => plan::unfiltered_total(&ctx.mapping, page.total(), &tombstoned),
        Some(_) => None,
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

/// The users matching a list request: (total, the requested window, projected).
pub async fn search(ctx: &Ctx, p: &ListParams) -> Result<(u64, Vec<Value>), Error> {
    let um = &ctx.mapping.users;
    if let Some(f) = &p.filter {
        f.validate(&um.schema)?;
    }
    if let Some(found) = lookup(ctx, p).await? {
        let mut window = p.window();
        for r in found {
            window.push(r);
        }
        return Ok(window.finish());
    }
    let tombstoned = tombstoned_if_unfiltered(ctx, p).await?;
    let mut listing = Listing::new(&ctx.mapping, p, tombstoned);
    let mut x = ctx.exchange();
    while let Some(call) = listing.next_call() {
        let (answer, link_next) = x.send_page(call).await?;
        let records = listing.read(answer, link_next.as_deref())?;
        let limit = ctx.tenant.member_concurrency;
        let records = plan::complete(&ctx.mapping, records, limit, &mut x).await?;
        listing.accept(record_page(ctx, records).await?, p);
    }
    let (total, page) = listing.finish();
    Ok((
        total,
        page.into_iter()
            .map(|r| p.projection.apply(r, &um.schema))
            .collect(),
    ))
}

/// The tombstoned legacy ids of the tenant's users, for an unfiltered list (a filtered one
/// meets them in its pages and leaves them out there).
async fn tombstoned_if_unfiltered(ctx: &Ctx, p: &ListParams) -> Result<HashSet<LegacyId>, Error> {
    Ok(match &p.filter {
        None => {
            ctx.state
                .xref
                .tombstoned(&ctx.tenant.id, RESOURCE_TYPE)
                .await?
        }
        Some(_) => HashSet::new(),
    })
}

/// The users of a filter answered by lookups rather than a list, projected: `id eq`, and
/// `externalId eq` where the sidecar keeps externalId itself (the legacy app has no field
/// to search). `None` for any other filter.
async fn lookup(ctx: &Ctx, p: &ListParams) -> Result<Option<Vec<Value>>, Error> {
    let um = &ctx.mapping.users;
    let lookups = if let Some(id) = p.filter.as_ref().and_then(plan::id_eq) {
        Some(vec![id.to_owned()])
    } else if let Some(ext) = p.filter.as_ref().and_then(plan::external_id_eq)
        && um.keeps_external_id()
    {
        let rows = ctx
            .state
            .xref
            .get_by_external(&ctx.tenant.id, RESOURCE_TYPE, &ExternalId::new(ext))
            .await?;
        Some(
            rows.into_iter()
                .filter(|r| r.tombstoned_at.is_none())
                .map(|r| r.scim_id.into_inner())
                .collect(),
        )
    } else {
        None
    };
    let Some(ids) = lookups else {
        return Ok(None);
    };
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        match locate(ctx, &id).await {
            Ok((_, record, x)) => {
                let r = resource(ctx, &record, x.as_ref())?;
                if p.filter.as_ref().is_none_or(|f| f.matches(&r, &um.schema)) {
                    found.push(p.projection.apply(r, &um.schema));
                }
            }
            Err(Error::Refused(Refusal::NotFound { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(found))
}

/// Records whole user records met outside a listing (group members read one by one): the
/// legacy id and SCIM id of each (a record without them is skipped).
pub(crate) async fn record_records(
    ctx: &Ctx,
    records: Vec<Value>,
) -> Result<Vec<(LegacyId, ScimId)>, Error> {
    Ok(record_page(ctx, records)
        .await?
        .into_iter()
        .filter_map(|(lid, r, _)| Some((lid, ScimId::new(r.get("id")?.as_str()?))))
        .collect())
}

/// `GET /Users/{id}`.
pub async fn get(
    ctx: &Ctx,
    id: &str,
    projection: &Projection,
) -> Result<Response<Full<Bytes>>, Error> {
    if projection.attributes.is_empty()
        && projection.excluded.is_empty()
        && let Some(json) = kept_answer(ctx, id, projection).await?
    {
        return Ok(scim_json_bytes(StatusCode::OK, json));
    }
    let (_, record, x) = locate(ctx, id).await?;
    let r = resource(ctx, &record, x.as_ref())?;
    let r = projection.apply(r, &ctx.mapping.users.schema);
    Ok(resource_response(StatusCode::OK, &r))
}

/// The answer to a write: the recorded resource; after a deletion, the last state with
/// `active: false`, and the id tombstoned (it answers 404 from now on).
async fn answer(
    ctx: &Ctx,
    legacy_id: &LegacyId,
    after: After,
    external_id: Option<String>,
    status: StatusCode,
    what: UserWrite,
) -> Result<Response<Full<Bytes>>, Error> {
    let resource = match after {
        After::Record(record) => finish(ctx, legacy_id, &record, external_id, &what).await?,
        After::Deleted(record) => {
            let resource =
                ctx.mapping
                    .users
                    .deleted_resource(&ctx.tenant.id, &record, &ctx.base_url)?;
            tombstone(ctx, &record, deleted_events(ctx, &resource, None)).await?;
            resource
        }
    };
    if let Some(id) = resource.get("id").and_then(Value::as_str) {
        ctx.note.set_scim_id(id);
    }
    Ok(resource_response(status, &resource))
}

/// The answer to a replace or a PATCH; a change of `active` is the write's action in the
/// logs (deactivate / reactivate).
async fn answer_written(
    ctx: &Ctx,
    legacy_id: &LegacyId,
    written: Written,
    before: Option<Value>,
) -> Result<Response<Full<Bytes>>, Error> {
    if let Some(a) = written.activation {
        ctx.note.set_action(a.as_str());
    }
    let what = UserWrite::Changed {
        before,
        activation: written.activation,
    };
    answer(
        ctx,
        legacy_id,
        written.after,
        written.external_id,
        StatusCode::OK,
        what,
    )
    .await
}

/// Whether the record a create adopted is a user the cross-reference knows live (a create
/// sent again), when an endpoint wants `user.created` (else: `false`, unasked).
async fn already_provisioned(ctx: &Ctx, after: &After) -> Result<bool, Error> {
    let After::Record(record) = after else {
        return Ok(false);
    };
    if !ctx.tenant.webhooks.wants(EventType::UserCreated) {
        return Ok(false);
    }
    let (_, scim_id) = ctx.mapping.users.ids_of(&ctx.tenant.id, record)?;
    let row = ctx
        .state
        .xref
        .get(&ctx.tenant.id, RESOURCE_TYPE, &scim_id)
        .await?;
    Ok(row.is_some_and(|r| r.tombstoned_at.is_none()))
}

/// The `user.deleted` event of a user whose last state is `resource` (its remembered
/// `externalId` when the resource has none).
fn deleted_events(ctx: &Ctx, resource: &Value, external_id: Option<&str>) -> Vec<NewEvent> {
    let what = UserWrite::Deleted;
    if !what.wanted(ctx) {
        return Vec::new();
    }
    let mut user = without_meta(resource.clone());
    if let (Some(o), Some(ext)) = (user.as_object_mut(), external_id)
        && !o.contains_key("externalId")
    {
        o.insert("externalId".into(), Value::String(ext.to_owned()));
    }
    user_events(ctx, &what, &user)
}

/// The user before a replace or PATCH, when an endpoint wants `user.updated` (the changed
/// attributes are named by comparing).
fn before_if_wanted(
    ctx: &Ctx,
    current: &Value,
    x: Option<&XrefRecord>,
) -> Result<Option<Value>, Error> {
    if ctx.tenant.webhooks.wants(EventType::UserUpdated) {
        Ok(Some(resource(ctx, current, x)?))
    } else {
        Ok(None)
    }
}

/// `POST /Users`.
pub async fn create(ctx: &Ctx, body: Value) -> Result<Response<Full<Bytes>>, Error> {
    note_user_name(ctx, &body);
    let user_name = scim::request::member(&body, "userName").and_then(Value::as_str);
    ctx.one_at_a_time(RESOURCE_TYPE, "userName", user_name, async {
        let created = plan::create(&ctx.mapping, &body, &mut ctx.exchange()).await?;
        if let Some(then) = created.adopted {
            tracing::info!(legacy_id = %created.legacy_id, action = then.as_str(), "create met an existing account");
        }
        let what = match created.adopted {
            // Okta sending a create again meets the user it made: nothing new to tell.
            Some(_) if already_provisioned(ctx, &created.after).await? => UserWrite::Changed {
                before: None,
                activation: None,
            },
            adopted => UserWrite::Created {
                adopted: adopted.map(|then| then.as_str()),
            },
        };
        answer(
            ctx,
            &created.legacy_id,
            created.after,
            plan::external_id_of(&body),
            StatusCode::CREATED,
            what,
        )
        .await
    })
    .await
}

/// `PUT /Users/{id}`: full replace; mapped attributes absent from the body are cleared.
pub async fn replace(ctx: &Ctx, id: &str, body: Value) -> Result<Response<Full<Bytes>>, Error> {
    note_user_name(ctx, &body);
    let (legacy_id, current, x) = locate(ctx, id).await?;
    let before = before_if_wanted(ctx, &current, x.as_ref())?;
    let written = plan::replace(
        &ctx.mapping,
        &legacy_id,
        current,
        &body,
        &mut ctx.exchange(),
    )
    .await?;
    answer_written(ctx, &legacy_id, written, before).await
}

/// `PATCH /Users/{id}`: only changed fields go to the legacy app; `active` goes through the
/// lifecycle calls.
pub async fn patch(ctx: &Ctx, id: &str, body: Value) -> Result<Response<Full<Bytes>>, Error> {
    let (legacy_id, current, x) = locate(ctx, id).await?;
    let before = resource(ctx, &current, x.as_ref())?;
    note_user_name(ctx, &before);
    let kept = ctx
        .tenant
        .webhooks
        .wants(EventType::UserUpdated)
        .then(|| before.clone());
    let written = plan::patch(
        &ctx.mapping,
        &legacy_id,
        current,
        before,
        &body,
        &mut ctx.exchange(),
    )
    .await?;
    answer_written(ctx, &legacy_id, written, kept).await
}

/// `DELETE /Users/{id}`: per the mapping, deactivate or delete; the id is tombstoned.
pub async fn delete(ctx: &Ctx, id: &str) -> Result<Response<Full<Bytes>>, Error> {
    let um = &ctx.mapping.users;
    let (legacy_id, record, x) = locate(ctx, id).await?;
    if let Some(name) = um.keys(&um.read(&record)).user_name {
        ctx.note.set_subject(&name);
    }
    plan::delete(
        &ctx.mapping,
        &legacy_id,
        record.clone(),
        &mut ctx.exchange(),
    )
    .await?;
    let events = if UserWrite::Deleted.wanted(ctx) {
        let last = um.deleted_resource(&ctx.tenant.id, &record, &ctx.base_url)?;
        let ext = x.as_ref().and_then(|x| x.external_id.as_ref());
        deleted_events(ctx, &last, ext.map(ExternalId::as_str))
    } else {
        Vec::new()
    };
    tombstone(ctx, &record, events).await?;
    Ok(no_content())
}

/// Notes the request's userName for the logs.
fn note_user_name(ctx: &Ctx, resource: &Value) {
    if let Some(name) = scim::request::member(resource, "userName").and_then(Value::as_str) {
        ctx.note.set_subject(name);
    }
}
