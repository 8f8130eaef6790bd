//! Group members and the cross-reference: member SCIM ids translated to legacy ids (an id
//! never met refused, after one rescan), members read and recorded, a push logged.

use std::collections::{HashMap, HashSet};

use mapping::GroupMapping;
use mapping::ids::{LegacyId, ScimId};
use mapping::plan::groups::{Changed, Member, MemberPages};
use mapping::plan::{Refusal, users};
use mapping::resource::user_id;

use crate::error::Error;
use crate::handlers::Ctx;
use crate::handlers::announce::{committed, member_events, types_of};
use crate::webhooks::EventType;
use crate::xref::Seen;

/// Every member of a group with its SCIM id, read page by page; members met for the first
/// time are recorded in the cross-reference.
pub(super) async fn read_members(
    ctx: &Ctx,
    gm: &GroupMapping,
    legacy_id: &LegacyId,
) -> Result<Vec<(ScimId, Member)>, Error> {
    let mut pages = MemberPages::new(&ctx.mapping, gm, legacy_id);
    let mut x = ctx.exchange();
    let mut out = Vec::new();
    while let Some(members) = pages.next(&mut x).await? {
        out.extend(record_members(ctx, members).await?);
    }
    Ok(out)
}

/// Records users met as group members (SCIM id, legacy id, display): each with its SCIM id.
///
/// A member list names legacy ids only. Where the mapping names a fingerprint, the SCIM id
/// needs it: the live cross-reference row of the legacy id tells, else the user's record is
/// read (and recorded whole); a member whose record is gone is dropped.
async fn record_members(ctx: &Ctx, members: Vec<Member>) -> Result<Vec<(ScimId, Member)>, Error> {
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let xref = &ctx.state.xref;
    let tenant = &ctx.tenant.id;
    if ctx.mapping.users.fingerprint.is_none() {
        let rows = members
            .iter()
            .map(|m| Seen {
                scim_id: user_id(tenant, &m.legacy_id),
                legacy_id: m.legacy_id.clone(),
                external_id: None,
                user_name: m.display.clone(),
                fingerprint: None,
            })
            .collect();
        let rows = xref.seen(tenant, users::RESOURCE_TYPE, rows).await?;
        return Ok(rows.into_iter().map(|r| r.scim_id).zip(members).collect());
    }
    let ids = members.iter().map(|m| m.legacy_id.clone()).collect();
    let live = xref
        .live_by_legacy(tenant, users::RESOURCE_TYPE, ids)
        .await?;
    let unknown: Vec<LegacyId> = (members.iter().zip(&live))
        .filter(|(_, row)| row.is_none())
        .map(|(m, _)| m.legacy_id.clone())
        .collect();
    let limit = ctx.tenant.member_concurrency;
    let read = users::read_many(&ctx.mapping, &unknown, limit, &mut ctx.exchange()).await?;
    let met =
        crate::handlers::users::record_records(ctx, read.into_iter().flatten().collect()).await?;
    let met: HashMap<LegacyId, ScimId> = met.into_iter().collect();
    Ok(members
        .into_iter()
        .zip(live)
        .filter_map(|(m, row)| {
            let id = match row {
                Some(row) => row.scim_id,
                None => met.get(&m.legacy_id)?.clone(),
            };
            Some((id, m))
        })
        .collect())
}

/// Records the members a change read, logs its push and puts its events (a member added or
/// removed, each) in the outbox. `ids` translated the request's member SCIM ids.
///
/// The store keeps no membership, so these events are written on their own once the legacy
/// app has answered, not in a transaction with a change of the store.
pub(super) async fn recorded(
    ctx: &Ctx,
    gm: &GroupMapping,
    changed: &Changed,
    ids: &HashMap<String, LegacyId>,
) -> Result<(), Error> {
    let read = record_members(ctx, changed.members_read.clone()).await?;
    let Some(pushed) = &changed.pushed else {
        return Ok(());
    };
    let hooks = &ctx.tenant.webhooks;
    if hooks.wants(EventType::GroupUserAdded) || hooks.wants(EventType::GroupUserRemoved) {
        let skipped: HashSet<&LegacyId> = pushed.skipped.iter().flat_map(|(m, _)| m).collect();
        let done = |all: &[LegacyId]| -> Vec<LegacyId> {
            all.iter()
                .filter(|m| !skipped.contains(m))
                .cloned()
                .collect()
        };
        let mut scim_ids: HashMap<LegacyId, ScimId> = (ids.iter())
            .map(|(scim, legacy)| (legacy.clone(), ScimId::new(scim.clone())))
            .collect();
        scim_ids.extend(read.into_iter().map(|(scim, m)| (m.legacy_id, scim)));
        let (_, group) = gm.resource(&ctx.tenant.id, &changed.record, None, &ctx.base_url)?;
        let events = member_events(
            ctx,
            &group,
            &done(&pushed.added),
            &done(&pushed.removed),
            &scim_ids,
        );
        if !events.is_empty() {
            let types = types_of(&events);
            ctx.state.xref.emit(events).await?;
            committed(ctx, &types);
        }
    }
    let group = &changed.legacy_id;
    for (members, code) in &pushed.skipped {
        tracing::warn!(
            group = %group,
            members = ?members.iter().map(LegacyId::as_str).collect::<Vec<_>>(),
            code = code.as_str(),
            "member skipped"
        );
    }
    tracing::info!(
        group = %group,
        added = pushed.added.len(),
        removed = pushed.removed.len(),
        calls = pushed.calls,
        skipped = pushed.skipped.iter().map(|(m, _)| m.len()).sum::<usize>(),
        "membership pushed"
    );
    Ok(())
}

/// Translates member SCIM ids to legacy ids; every unknown id is refused (before any legacy
/// call), naming the ids.
pub(super) async fn translate(
    ctx: &Ctx,
    named: &[&str],
) -> Result<HashMap<String, LegacyId>, Error> {
    let wanted: Vec<(&str, Option<ScimId>)> = named
        .iter()
        .map(|id| (*id, ScimId::parse_derived(id)))
        .collect();
    let mut found = HashMap::new();
    let mut missing: Vec<&(&str, Option<ScimId>)> = wanted.iter().collect();
    // Ids the xref has never seen may still be ours (a lost database): one rescan, then again.
    for pass in 0..2 {
        if pass == 1
            && !(missing.iter().any(|(_, s)| s.is_some())
                && crate::handlers::users::rediscover(ctx).await?)
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
            let row = if w.1.is_some() {
                records.next().flatten()
            } else {
                None
            };
            match row {
                Some(r) if r.tombstoned_at.is_none() => {
                    found.insert(w.0.to_owned(), r.legacy_id);
                }
                _ => missing.push(w),
            }
        }
    }
    if missing.is_empty() {
        return Ok(found);
    }
    let ids = missing.iter().map(|(id, _)| (*id).to_owned()).collect();
    Err(Refusal::UnknownMembers(ids).into())
}
