//! What the sidecar remembers of users, and finds through it: the cross-reference rows of
//! the records met (recorded on the spot), the legacy record behind a SCIM id (with one
//! rate-limited scan for an id the cross-reference lost), tombstones.

use bytes::Bytes;
use mapping::TranslateError;
use mapping::ids::{ExternalId, LegacyId, ScimId};
use mapping::plan::users::{self as plan, RESOURCE_TYPE, Row};
use mapping::plan::{Outbound, Pages, Refusal};
use mapping::resource::Remembered;
use scim::list::Projection;
use serde_json::{Map, Value};

use crate::answers::MadeOf;
use crate::error::Error;
use crate::handlers::Ctx;
use crate::handlers::announce::{UserWrite, committed, types_of, user_events};
use crate::xref::{Change, NewEvent, Seen, XrefRecord};

/// The SCIM resources of a page of legacy records, recording them in the cross-reference:
/// one [`Row`] each (a record without an id is skipped).
pub(crate) async fn record_page(ctx: &Ctx, records: Vec<Value>) -> Result<Vec<Row>, Error> {
    let um = &ctx.mapping.users;
    let mut seen = Vec::with_capacity(records.len());
    let mut kept = Vec::with_capacity(records.len());
    for record in records {
        let attrs = um.read(&record);
        let row = match seen_row(ctx, &record, &attrs) {
            Ok(row) => row,
            Err(e) => {
                tracing::warn!(error = %e, "a legacy list item is skipped");
                continue;
            }
        };
        kept.push((row.legacy_id.clone(), record, attrs));
        seen.push(row);
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
        external_id: x.external_id.as_ref().map(ExternalId::as_str),
    }
}

/// The cross-reference row of a legacy record whose attributes are `attrs`.
pub(super) fn seen_row(
    ctx: &Ctx,
    record: &Value,
    attrs: &Map<String, Value>,
) -> Result<Seen, TranslateError> {
    let um = &ctx.mapping.users;
    let (legacy_id, scim_id) = um.ids_of(&ctx.tenant.id, record)?;
    let keys = um.keys(attrs);
    Ok(Seen {
        scim_id,
        legacy_id,
        external_id: keys.external_id,
        user_name: keys.user_name,
        fingerprint: um.fingerprint_of(record),
    })
}

/// The SCIM resource of a legacy record; its id is the cross-reference row's when there is one.
pub(super) fn resource(ctx: &Ctx, record: &Value, x: Option<&XrefRecord>) -> Result<Value, Error> {
    let um = &ctx.mapping.users;
    let attrs = um.read(record);
    Ok(match x {
        Some(row) => um.resource_of(
            &row.scim_id,
            record,
            attrs,
            Some(remembered(row)),
            &ctx.base_url,
        ),
        None => um.resource(&ctx.tenant.id, record, attrs, None, &ctx.base_url)?,
    })
}

/// The JSON of `GET /Users/{id}` with every attribute a GET returns (`projection` selects
/// nothing and excludes nothing), through the kept answers (`crate::answers`): the legacy app
/// is asked as always, and when its bytes and every other input are those of a kept answer,
/// that answer is the JSON; else the record is translated and its answer kept.
///
/// `None` where this way does not apply: a `get` of several calls or a fingerprinted mapping
/// (a read may tombstone the id), before any legacy call; an id the cross-reference does not
/// know ([`locate`] scans for it), before any legacy call on SQLite, after the one read early
/// on PostgreSQL when the link was known but the row is gone (rare: the caller reads again).
/// The caller then goes the general way.
pub(super) async fn kept_answer(
    ctx: &Ctx,
    id: &str,
    projection: &Projection,
) -> Result<Option<Bytes>, Error> {
    let (m, um) = (&ctx.mapping, &ctx.mapping.users);
    if !plan::read_is_one_call(m) || um.fingerprint.is_some() {
        return Ok(None);
    }
    let not_found = || missing(id);
    let scim_id = ScimId::parse_derived(id).ok_or_else(not_found)?;
    let (xref, get) = (&ctx.state.xref, &um.calls.get);
    let mut x = ctx.exchange();
    // As in `locate`: a link the store knows is read while the store is asked.
    let (row, early) = match xref.known_link(&ctx.tenant.id, RESOURCE_TYPE, &scim_id) {
        Some(lid) => {
            let (row, resp) = tokio::join!(
                xref.get_shared(&ctx.tenant.id, RESOURCE_TYPE, &scim_id),
                x.raw(Outbound::about(get, &lid))
            );
            (row?, Some((lid, resp)))
        }
        None => (
            xref.get_shared(&ctx.tenant.id, RESOURCE_TYPE, &scim_id)
                .await?,
            None,
        ),
    };
    let Some(row) = row else {
        return Ok(None);
    };
    if row.tombstoned_at.is_some() {
        return Err(not_found());
    }
    let resp = match early {
        Some((lid, resp)) if lid == row.legacy_id => resp?,
        _ => x.raw(Outbound::about(get, &row.legacy_id)).await?,
    };
    let remembered = remembered(&row);
    let made_of = resp
        .status
        .is_success()
        .then(|| made_of(ctx, &resp.body, &remembered));
    if let Some(made_of) = made_of
        && let Some(json) = ctx.tenant.answers.get(m, &row.scim_id, made_of)
    {
        return Ok(Some(json));
    }
    let answer = m
        .legacy
        .decode(resp.status.as_u16(), &resp.body, resp.retry_after)?;
    let record = plan::read_answer(m, answer)?.ok_or_else(not_found)?;
    let resource = um.resource_of(
        &row.scim_id,
        &record,
        um.read(&record),
        Some(remembered),
        &ctx.base_url,
    );
    let resource = projection.apply(resource, &um.schema);
    // A `Value` always serialises (its map keys are strings).
    let json = Bytes::from(serde_json::to_vec(&resource).unwrap_or_default());
    if let Some(made_of) = made_of {
        ctx.tenant
            .answers
            .put(m, &row.scim_id, made_of, json.clone());
    }
    Ok(Some(json))
}

/// What a user's answer is made of besides the mapping (see `crate::answers`): the legacy
/// record's bytes, the base URL, and every remembered fact [`resource`] reads.
fn made_of(ctx: &Ctx, legacy_body: &[u8], r: &Remembered<'_>) -> u128 {
    MadeOf::new(legacy_body)
        .add(ctx.base_url.as_bytes())
        .add(r.created.as_bytes())
        .add(r.last_modified.as_bytes())
        .add_option(r.external_id.map(str::as_bytes))
        .finish()
}

/// `404` for the user `id`.
fn missing(id: &str) -> Error {
    Error::from(Refusal::NotFound {
        resource: RESOURCE_TYPE,
        id: id.to_owned(),
    })
}

/// Finds the legacy record behind a SCIM id: (legacy id, record, cross-reference row).
pub(super) async fn locate(
    ctx: &Ctx,
    id: &str,
) -> Result<(LegacyId, Value, Option<XrefRecord>), Error> {
    let not_found = || missing(id);
    let scim_id = ScimId::parse_derived(id).ok_or_else(not_found)?;
    let xref = &ctx.state.xref;
    let mut x = ctx.exchange();
    // A link the store already knows (it never changes): the legacy app is asked while the
    // store says whether the id still stands, rather than after.
    let (row, early) = match xref.known_link(&ctx.tenant.id, RESOURCE_TYPE, &scim_id) {
        Some(lid) => {
            let (row, record) = tokio::join!(
                xref.get(&ctx.tenant.id, RESOURCE_TYPE, &scim_id),
                plan::read(&ctx.mapping, &lid, &mut x)
            );
            (row?, Some((lid, record)))
        }
        None => (
            xref.get(&ctx.tenant.id, RESOURCE_TYPE, &scim_id).await?,
            None,
        ),
    };
    if let Some(row) = row {
        if row.tombstoned_at.is_some() {
            return Err(not_found());
        }
        let record = match early {
            Some((lid, record)) if lid == row.legacy_id => record?,
            _ => plan::read(&ctx.mapping, &row.legacy_id, &mut x).await?,
        }
        .ok_or_else(not_found)?;
        // An app that reuses ids may have given this one to another account since: the
        // fingerprint tells (the record is then that account's, and this id is gone).
        if ctx.mapping.users.fingerprint.is_some() {
            let (_, now) = ctx.mapping.users.ids_of(&ctx.tenant.id, &record)?;
            if now != scim_id {
                xref.seen(
                    &ctx.tenant.id,
                    RESOURCE_TYPE,
                    vec![seen_row(ctx, &record, &ctx.mapping.users.read(&record))?],
                )
                .await?;
                xref.tombstone(&ctx.tenant.id, RESOURCE_TYPE, &scim_id)
                    .await?;
                return Err(not_found());
            }
        }
        return Ok((row.legacy_id.clone(), record, Some(row)));
    }
    // Not in the xref (a lost database, another replica's user): the id is derived, so a scan
    // of the legacy users finds it, recording everyone met. Rate-limited per tenant. Out of
    // line: the scan's state is most of this future's size, and every lookup would pay to
    // move it.
    if !ctx.tenant.rescan_allowed() {
        return Err(not_found());
    }
    Box::pin(rescan(ctx, &scim_id, &mut x))
        .await?
        .ok_or_else(not_found)
}

/// The legacy users paged through for `scim_id`, recording everyone met; the record, when
/// one has that id.
async fn rescan(
    ctx: &Ctx,
    scim_id: &ScimId,
    x: &mut crate::gateway::Exchanger<'_>,
) -> Result<Option<(LegacyId, Value, Option<XrefRecord>)>, Error> {
    let um = &ctx.mapping.users;
    let mut pages = Pages::new(&um.calls.list, &ctx.mapping.legacy.paging, None, Vec::new());
    let limit = ctx.tenant.member_concurrency;
    while let Some(records) = pages.next(x, &ctx.mapping.legacy).await? {
        let records = plan::complete(&ctx.mapping, records, limit, x).await?;
        let found = records.iter().find_map(|r| {
            um.ids_of(&ctx.tenant.id, r)
                .ok()
                .filter(|(_, sid)| sid == scim_id)
                .map(|(lid, _)| (lid, r.clone()))
        });
        record_page(ctx, records).await?;
        if let Some((lid, record)) = found {
            let row = ctx
                .state
                .xref
                .get(&ctx.tenant.id, RESOURCE_TYPE, scim_id)
                .await?;
            return Ok(Some((lid, record, row)));
        }
    }
    Ok(None)
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

/// Records the SCIM id of a legacy record as gone (it is recorded first when never met),
/// with `events` in the same transaction.
pub(super) async fn tombstone(
    ctx: &Ctx,
    record: &Value,
    events: Vec<NewEvent>,
) -> Result<(), Error> {
    let row = seen_row(ctx, record, &Map::new())?;
    let scim_id = row.scim_id.clone();
    let xref = &ctx.state.xref;
    if !events.is_empty() {
        let types = types_of(&events);
        xref.change_with_events(
            &ctx.tenant.id,
            RESOURCE_TYPE,
            Change::Tombstone(row),
            events,
        )
        .await?;
        committed(ctx, &types);
        return Ok(());
    }
    xref.seen(&ctx.tenant.id, RESOURCE_TYPE, vec![row]).await?;
    xref.tombstone(&ctx.tenant.id, RESOURCE_TYPE, &scim_id)
        .await?;
    Ok(())
}

/// Records a successful write in the cross-reference (lifting any tombstone) and builds the
/// resource. `external_id` is the one the request leaves the user with: the cross-reference
/// keeps it when the mapping has no field for it. The write's events (`what`), when an
/// endpoint takes them, go in the same transaction.
pub(super) async fn finish(
    ctx: &Ctx,
    legacy_id: &LegacyId,
    record: &Value,
    external_id: Option<String>,
    what: &UserWrite,
) -> Result<Value, Error> {
    let um = &ctx.mapping.users;
    // A write's answer without the fingerprint the SCIM id needs: the record as `get` reads it.
    let reread;
    let record = if um.fingerprint.is_some() && um.fingerprint_of(record).is_none() {
        reread = plan::read(&ctx.mapping, legacy_id, &mut ctx.exchange()).await?;
        reread.as_ref().unwrap_or(record)
    } else {
        record
    };
    let attrs = um.read(record);
    let mut row = seen_row(ctx, record, &attrs)?;
    if um.keeps_external_id() {
        row.external_id = external_id.map(ExternalId::new);
    }
    if what.wanted(ctx) {
        // The resource is made before the write (its events go with it); the store's times
        // are stamped on it after.
        let unwritten = Remembered {
            created: "",
            last_modified: "",
            external_id: row.external_id.as_ref().map(ExternalId::as_str),
        };
        let mut resource =
            um.resource_of(&row.scim_id, record, attrs, Some(unwritten), &ctx.base_url);
        let events = match resource.as_object_mut().and_then(|o| o.remove("meta")) {
            Some(meta) => {
                let events = user_events(ctx, what, &resource);
                if let Some(o) = resource.as_object_mut() {
                    o.insert("meta".into(), meta);
                }
                events
            }
            None => user_events(ctx, what, &resource),
        };
        let x = if events.is_empty() {
            write(ctx, row).await?
        } else {
            let types = types_of(&events);
            let x = (ctx.state.xref)
                .change_with_events(&ctx.tenant.id, RESOURCE_TYPE, Change::Upsert(row), events)
                .await?;
            committed(ctx, &types);
            x
        };
        if let Some(meta) = resource.get_mut("meta").and_then(Value::as_object_mut) {
            for (key, stored) in [("created", &x.created), ("lastModified", &x.last_modified)] {
                if meta.get(key).and_then(Value::as_str) == Some("") {
                    meta.insert(key.into(), Value::String(stored.clone()));
                }
            }
        }
        return Ok(resource);
    }
    let x = write(ctx, row).await?;
    Ok(um.resource(
        &ctx.tenant.id,
        record,
        attrs,
        Some(remembered(&x)),
        &ctx.base_url,
    )?)
}

/// Records a written user (lifting any tombstone): its row as it now is.
async fn write(ctx: &Ctx, row: Seen) -> Result<XrefRecord, Error> {
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
    Ok(x)
}
