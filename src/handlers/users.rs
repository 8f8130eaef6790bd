//! SCIM Users: list and search, get, create, replace, patch, delete.
//!
//! Every legacy record met on the way is recorded in the cross-reference on the spot. SCIM
//! ids are derived from (tenant, legacy id); the cross-reference indexes them, remembers
//! times and keeps tombstones.

use std::collections::HashSet;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use mapping::ids::{LegacyId, ScimId};
use mapping::plan::users::{self as plan, After, Listing, RESOURCE_TYPE, Row};
use mapping::plan::{Exchange, Pages, Refusal};
use mapping::resource::{Remembered, user_id};
use scim::list::{ListParams, Projection};
use serde_json::{Map, Value};

use super::{Ctx, list_response, no_content, resource_response};
use crate::error::Error;
use crate::xref::{Seen, XrefRecord};

/// `GET /Users` and `POST /Users/.search`.
pub async fn list(ctx: &Ctx, p: ListParams) -> Result<Response<Full<Bytes>>, Error> {
    let (total, page) = search(ctx, &p).await?;
    Ok(list_response(total, p.start_index, page))
}

/// The users matching a list request: (total, the requested window, projected).
pub async fn search(ctx: &Ctx, p: &ListParams) -> Result<(u64, Vec<Value>), Error> {
    let um = &ctx.mapping.users;
    if let Some(f) = &p.filter {
        f.validate(&um.schema)?;
    }
    let project = |page: Vec<Value>| -> Vec<Value> {
        page.into_iter()
            .map(|r| p.projection.apply(r, &um.schema))
            .collect()
    };
    if let Some(id) = p.filter.as_ref().and_then(plan::id_eq) {
        let mut window = p.window();
        match locate(ctx, id).await {
            Ok((_, record, x)) => {
                let r = resource(ctx, &record, x.as_ref())?;
                if p.filter.as_ref().is_none_or(|f| f.matches(&r, &um.schema)) {
                    window.push(r);
                }
            }
            Err(Error::Refused(Refusal::NotFound { .. })) => {}
            Err(e) => return Err(e),
        }
        let (total, page) = window.finish();
        return Ok((total, project(page)));
    }
    let tombstoned = match &p.filter {
        None => {
            ctx.state
                .xref
                .tombstoned(&ctx.tenant.id, RESOURCE_TYPE)
                .await?
        }
        Some(_) => HashSet::new(),
    };
    let mut listing = Listing::new(&ctx.mapping, p, tombstoned);
    let mut x = ctx.exchange();
    while let Some(call) = listing.next_call() {
        let answer = x.send(call).await?;
        let records = listing.read(answer)?;
        listing.accept(record_page(ctx, records).await?, p);
    }
    let (total, page) = listing.finish();
    Ok((total, project(page)))
}

/// The SCIM resources of a page of legacy records, recording them in the cross-reference:
/// one [`Row`] each (a record without an id is skipped).
async fn record_page(ctx: &Ctx, records: Vec<Value>) -> Result<Vec<Row>, Error> {
    let um = &ctx.mapping.users;
    let mut seen = Vec::with_capacity(records.len());
    let mut kept = Vec::with_capacity(records.len());
    for record in records {
        let Some(legacy_id) = um.legacy_id_of(&record) else {
            tracing::warn!("a legacy list item has no id; skipped");
            continue;
        };
        let attrs = um.read(&record);
        seen.push(seen_row(ctx, &legacy_id, &attrs));
        kept.push((legacy_id, record, attrs));
    }
    let xrefs = ctx
        .state
        .xref
        .seen(&ctx.tenant.id, RESOURCE_TYPE, seen)
        .await?;
    kept.into_iter()
        .zip(xrefs)
        .map(|((legacy_id, record, attrs), x)| {
            let r = um.resource(
                &ctx.tenant.id,
                &record,
                attrs,
                Some(remembered(&x)),
                &ctx.base_url,
            )?;
            Ok((legacy_id, r, x.tombstoned_at.is_some()))
        })
        .collect()
}

fn remembered(x: &XrefRecord) -> Remembered<'_> {
    Remembered {
        created: &x.created,
        last_modified: &x.last_modified,
    }
}

fn seen_row(ctx: &Ctx, legacy_id: &LegacyId, attrs: &Map<String, Value>) -> Seen {
    let keys = ctx.mapping.users.keys(attrs);
    Seen {
        scim_id: user_id(&ctx.tenant.id, legacy_id),
        legacy_id: legacy_id.clone(),
        external_id: keys.external_id,
        user_name: keys.user_name,
    }
}

/// The SCIM resource of a legacy record.
fn resource(ctx: &Ctx, record: &Value, x: Option<&XrefRecord>) -> Result<Value, Error> {
    let um = &ctx.mapping.users;
    Ok(um.resource(
        &ctx.tenant.id,
        record,
        um.read(record),
        x.map(remembered),
        &ctx.base_url,
    )?)
}

/// Finds the legacy record behind a SCIM id: (legacy id, record, cross-reference row).
async fn locate(ctx: &Ctx, id: &str) -> Result<(LegacyId, Value, Option<XrefRecord>), Error> {
    let not_found = || {
        Error::from(Refusal::NotFound {
            resource: RESOURCE_TYPE,
            id: id.to_owned(),
        })
    };
    let Some(scim_id) = ScimId::parse_derived(id) else {
        return Err(not_found());
    };
    let xref = &ctx.state.xref;
    let mut x = ctx.exchange();
    if let Some(row) = xref.get(&ctx.tenant.id, RESOURCE_TYPE, &scim_id).await? {
        if row.tombstoned_at.is_some() {
            return Err(not_found());
        }
        let record = plan::read(&ctx.mapping, &row.legacy_id, &mut x)
            .await?
            .ok_or_else(not_found)?;
        return Ok((row.legacy_id.clone(), record, Some(row)));
    }
    // Not in the xref (a lost database, another replica's user): the id is derived, so a scan
    // of the legacy users finds it, recording everyone met. Rate-limited per tenant.
    if !ctx.tenant.rescan_allowed() {
        return Err(not_found());
    }
    let um = &ctx.mapping.users;
    let mut pages = Pages::new(&um.calls.list, &ctx.mapping.legacy.paging, None, Vec::new());
    while let Some(records) = pages.next(&mut x, &ctx.mapping.legacy).await? {
        let found = records.iter().find_map(|r| {
            um.legacy_id_of(r)
                .filter(|lid| user_id(&ctx.tenant.id, lid) == scim_id)
                .map(|lid| (lid, r.clone()))
        });
        record_page(ctx, records).await?;
        if let Some((lid, record)) = found {
            let row = xref.get(&ctx.tenant.id, RESOURCE_TYPE, &scim_id).await?;
            return Ok((lid, record, row));
        }
    }
    Err(not_found())
}

/// Scans every legacy user, recording each in the cross-reference, when the tenant's rescan
/// limit allows. Returns whether a scan ran.
pub async fn rediscover(ctx: &Ctx) -> Result<bool, Error> {
    if !ctx.tenant.rescan_allowed() {
        return Ok(false);
    }
    let um = &ctx.mapping.users;
    let mut x = ctx.exchange();
    let mut pages = Pages::new(&um.calls.list, &ctx.mapping.legacy.paging, None, Vec::new());
    while let Some(records) = pages.next(&mut x, &ctx.mapping.legacy).await? {
        record_page(ctx, records).await?;
    }
    Ok(true)
}

/// `GET /Users/{id}`.
pub async fn get(
    ctx: &Ctx,
    id: &str,
    projection: &Projection,
) -> Result<Response<Full<Bytes>>, Error> {
    let (_, record, x) = locate(ctx, id).await?;
    let r = resource(ctx, &record, x.as_ref())?;
    let r = projection.apply(r, &ctx.mapping.users.schema);
    Ok(resource_response(StatusCode::OK, &r))
}

/// Records the record's SCIM id as gone (it is recorded first when never met).
async fn tombstone(ctx: &Ctx, legacy_id: &LegacyId) -> Result<(), Error> {
    let row = seen_row(ctx, legacy_id, &Map::new());
    let scim_id = row.scim_id.clone();
    let xref = &ctx.state.xref;
    xref.seen(&ctx.tenant.id, RESOURCE_TYPE, vec![row]).await?;
    xref.tombstone(&ctx.tenant.id, RESOURCE_TYPE, &scim_id)
        .await?;
    Ok(())
}

/// Records a successful write in the cross-reference (lifting any tombstone) and builds the
/// resource.
async fn finish(ctx: &Ctx, legacy_id: &LegacyId, record: &Value) -> Result<Value, Error> {
    let um = &ctx.mapping.users;
    let attrs = um.read(record);
    let row = seen_row(ctx, legacy_id, &attrs);
    let scim_id = row.scim_id.clone();
    let xref = &ctx.state.xref;
    let mut x = xref.upsert(&ctx.tenant.id, RESOURCE_TYPE, row).await?;
    if x.tombstoned_at.is_some() {
        xref.lift_tombstone(&ctx.tenant.id, RESOURCE_TYPE, &scim_id)
            .await?;
        if let Some(lifted) = xref.get(&ctx.tenant.id, RESOURCE_TYPE, &scim_id).await? {
            x = lifted;
        }
    }
    Ok(um.resource(
        &ctx.tenant.id,
        record,
        attrs,
        Some(remembered(&x)),
        &ctx.base_url,
    )?)
}

/// The answer to a write: the recorded resource; after a deletion, the last state with
/// `active: false`, and the id tombstoned (it answers 404 from now on).
async fn answer(
    ctx: &Ctx,
    legacy_id: &LegacyId,
    after: After,
    status: StatusCode,
) -> Result<Response<Full<Bytes>>, Error> {
    let resource = match after {
        After::Record(record) => finish(ctx, legacy_id, &record).await?,
        After::Deleted(record) => {
            tombstone(ctx, legacy_id).await?;
            ctx.mapping
                .users
                .deleted_resource(&ctx.tenant.id, &record, &ctx.base_url)?
        }
    };
    Ok(resource_response(status, &resource))
}

/// `POST /Users`.
pub async fn create(ctx: &Ctx, body: Value) -> Result<Response<Full<Bytes>>, Error> {
    note_user_name(ctx, &body);
    let created = plan::create(&ctx.mapping, &body, &mut ctx.exchange()).await?;
    if let Some(then) = created.adopted {
        tracing::info!(legacy_id = %created.legacy_id, action = then.as_str(), "create met an existing account");
    }
    let scim_id = user_id(&ctx.tenant.id, &created.legacy_id);
    ctx.note.set_scim_id(scim_id.as_str());
    answer(ctx, &created.legacy_id, created.after, StatusCode::CREATED).await
}

/// `PUT /Users/{id}`: full replace; mapped attributes absent from the body are cleared.
pub async fn replace(ctx: &Ctx, id: &str, body: Value) -> Result<Response<Full<Bytes>>, Error> {
    note_user_name(ctx, &body);
    let (legacy_id, current, _) = locate(ctx, id).await?;
    let written = plan::replace(
        &ctx.mapping,
        &legacy_id,
        current,
        &body,
        &mut ctx.exchange(),
    )
    .await?;
    if let Some(a) = written.activation {
        ctx.note.set_action(a.as_str());
    }
    answer(ctx, &legacy_id, written.after, StatusCode::OK).await
}

/// `PATCH /Users/{id}`: only changed fields go to the legacy app; `active` goes through the
/// lifecycle calls.
pub async fn patch(ctx: &Ctx, id: &str, body: Value) -> Result<Response<Full<Bytes>>, Error> {
    let (legacy_id, current, x) = locate(ctx, id).await?;
    let before = resource(ctx, &current, x.as_ref())?;
    note_user_name(ctx, &before);
    let written = plan::patch(
        &ctx.mapping,
        &legacy_id,
        current,
        before,
        &body,
        &mut ctx.exchange(),
    )
    .await?;
    if let Some(a) = written.activation {
        ctx.note.set_action(a.as_str());
    }
    answer(ctx, &legacy_id, written.after, StatusCode::OK).await
}

/// `DELETE /Users/{id}`: per the mapping, deactivate or delete; the id is tombstoned.
pub async fn delete(ctx: &Ctx, id: &str) -> Result<Response<Full<Bytes>>, Error> {
    let um = &ctx.mapping.users;
    let (legacy_id, record, _) = locate(ctx, id).await?;
    if let Some(name) = um.keys(&um.read(&record)).user_name {
        ctx.note.set_subject(&name);
    }
    plan::delete(&ctx.mapping, &legacy_id, record, &mut ctx.exchange()).await?;
    tombstone(ctx, &legacy_id).await?;
    Ok(no_content())
}

/// Notes the request's userName for the logs.
fn note_user_name(ctx: &Ctx, resource: &Value) {
    if let Some(name) = scim::request::member(resource, "userName").and_then(Value::as_str) {
        ctx.note.set_subject(name);
    }
}
