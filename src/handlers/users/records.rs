//! What the sidecar remembers of users, and finds through it: the cross-reference rows of
//! the records met (recorded on the spot), the legacy record behind a SCIM id (with one
//! rate-limited scan for an id the cross-reference lost), tombstones.

use mapping::ids::{LegacyId, ScimId};
use mapping::plan::users::{self as plan, RESOURCE_TYPE, Row};
use mapping::plan::{Pages, Refusal};
use mapping::resource::{Remembered, user_id};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::handlers::Ctx;
use crate::xref::{Seen, XrefRecord};

/// The SCIM resources of a page of legacy records, recording them in the cross-reference:
/// one [`Row`] each (a record without an id is skipped).
pub(crate) async fn record_page(ctx: &Ctx, records: Vec<Value>) -> Result<Vec<Row>, Error> {
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

pub(super) fn seen_row(ctx: &Ctx, legacy_id: &LegacyId, attrs: &Map<String, Value>) -> Seen {
    let keys = ctx.mapping.users.keys(attrs);
    Seen {
        scim_id: user_id(&ctx.tenant.id, legacy_id),
        legacy_id: legacy_id.clone(),
        external_id: keys.external_id,
        user_name: keys.user_name,
    }
}

/// The SCIM resource of a legacy record.
pub(super) fn resource(ctx: &Ctx, record: &Value, x: Option<&XrefRecord>) -> Result<Value, Error> {
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
pub(super) async fn locate(
    ctx: &Ctx,
    id: &str,
) -> Result<(LegacyId, Value, Option<XrefRecord>), Error> {
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
    let limit = ctx.tenant.member_concurrency;
    while let Some(records) = pages.next(&mut x, &ctx.mapping.legacy).await? {
        let records = plan::complete(&ctx.mapping, records, limit, &mut x).await?;
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
pub(crate) async fn rediscover(ctx: &Ctx) -> Result<bool, Error> {
    if !ctx.tenant.rescan_allowed() {
        return Ok(false);
    }
    let um = &ctx.mapping.users;
    let mut x = ctx.exchange();
    let mut pages = Pages::new(&um.calls.list, &ctx.mapping.legacy.paging, None, Vec::new());
    let limit = ctx.tenant.member_concurrency;
    while let Some(records) = pages.next(&mut x, &ctx.mapping.legacy).await? {
        let records = plan::complete(&ctx.mapping, records, limit, &mut x).await?;
        record_page(ctx, records).await?;
    }
    Ok(true)
}

/// Records the record's SCIM id as gone (it is recorded first when never met).
pub(super) async fn tombstone(ctx: &Ctx, legacy_id: &LegacyId) -> Result<(), Error> {
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
pub(super) async fn finish(
    ctx: &Ctx,
    legacy_id: &LegacyId,
    record: &Value,
) -> Result<Value, Error> {
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
