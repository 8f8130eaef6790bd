//! Reconciliation: compares the cross-reference with the legacy app for one tenant and
//! reports drift — and, asked to fix, repairs what can be repaired safely.
//!
//! Drift kinds: xref rows whose legacy user vanished; legacy users the xref never recorded;
//! an `externalId` the xref remembers differently from the legacy app; several legacy users
//! carrying one `externalId` (duplicates: reported, never merged automatically — which account
//! to keep is a person's decision). Safe to run while the sidecar serves: the database is in
//! WAL mode, the fixes are the same writes a request makes, and a row is tombstoned as
//! vanished only after a fresh read of its legacy user says it is gone.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use crate::error::ScimError;
use crate::handlers::Ctx;
use crate::handlers::users::RESOURCE_TYPE;
use crate::xref::Seen;
use mapping::ids::{ExternalId, LegacyId, ScimId};

/// One `externalId` disagreement.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Mismatch {
    /// The legacy id.
    pub legacy_id: String,
    /// What the xref remembers.
    pub xref: Option<String>,
    /// What the legacy app has.
    pub legacy: String,
}

/// One `externalId` carried by several legacy users.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Duplicate {
    /// The shared `externalId`.
    pub external_id: String,
    /// The legacy users carrying it.
    pub legacy_ids: Vec<String>,
}

/// What a reconciliation found (and fixed).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The tenant.
    pub tenant: String,
    /// Legacy users seen.
    pub legacy_users: usize,
    /// Live xref rows before the run.
    pub xref_rows: usize,
    /// Live xref rows whose legacy user is gone (legacy ids).
    pub vanished: Vec<String>,
    /// Legacy users without an xref row (legacy ids).
    pub unrecorded: Vec<String>,
    /// `externalId` disagreements.
    pub external_id_mismatch: Vec<Mismatch>,
    /// Several legacy users with one `externalId`.
    pub duplicates: Vec<Duplicate>,
    /// Whether fixes were applied.
    pub fixed: bool,
}

impl Report {
    /// Drift that remains after the run: everything when not fixing, duplicates otherwise.
    pub fn remaining(&self) -> usize {
        if self.fixed {
            self.duplicates.len()
        } else {
            self.vanished.len()
                + self.unrecorded.len()
                + self.external_id_mismatch.len()
                + self.duplicates.len()
        }
    }
}

/// Reconciles the users of `ctx`'s tenant; with `fix`, repairs vanished, unrecorded and
/// mismatched rows.
pub async fn reconcile(ctx: &Ctx, fix: bool) -> Result<Report, ScimError> {
    let um = &ctx.mapping.users;
    let tenant = &ctx.tenant.id;
    let mut legacy: BTreeMap<LegacyId, (Option<String>, Option<String>)> = BTreeMap::new();
    let mut pager = ctx.pager(&um.calls.list, None, Vec::new());
    while let Some(items) = pager.next().await? {
        for record in items {
            let Some(id) = um.legacy_id_of(&record) else {
                continue;
            };
            let attrs = um.read(&record);
            let text = |k: &str| attrs.get(k).and_then(Value::as_str).map(str::to_owned);
            legacy.insert(id, (text("externalId"), text("userName")));
        }
    }
    let rows = ctx.state.xref.all(tenant, RESOURCE_TYPE).await?;
    let live: HashMap<&LegacyId, _> = rows
        .iter()
        .filter(|r| r.tombstoned_at.is_none())
        .map(|r| (&r.legacy_id, r))
        .collect();
    let known: HashSet<&LegacyId> = rows.iter().map(|r| &r.legacy_id).collect();
    let mut report = Report {
        tenant: tenant.to_string(),
        legacy_users: legacy.len(),
        xref_rows: live.len(),
        fixed: fix,
        ..Report::default()
    };
    for (id, row) in &live {
        if !legacy.contains_key(*id) {
            report.vanished.push(id.to_string());
        } else if let Some((Some(ext), _)) = legacy.get(*id)
            && row.external_id.as_ref().map(ExternalId::as_str) != Some(ext.as_str())
        {
            report.external_id_mismatch.push(Mismatch {
                legacy_id: id.to_string(),
                xref: row.external_id.as_ref().map(|e| e.to_string()),
                legacy: ext.clone(),
            });
        }
    }
    let mut by_external: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (id, (ext, _)) in &legacy {
        if !known.contains(id) {
            report.unrecorded.push(id.to_string());
        }
        if let Some(ext) = ext {
            by_external
                .entry(ext.as_str())
                .or_default()
                .push(id.to_string());
        }
    }
    report.duplicates = by_external
        .into_iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(ext, legacy_ids)| Duplicate {
            external_id: ext.to_owned(),
            legacy_ids,
        })
        .collect();
    if fix {
        let rows: Vec<Seen> = legacy
            .iter()
            .filter(|(id, _)| {
                let id = id.to_string();
                report.unrecorded.contains(&id)
                    || report
                        .external_id_mismatch
                        .iter()
                        .any(|m| m.legacy_id == id)
            })
            .map(|(id, (ext, user_name))| Seen {
                scim_id: ScimId::derive(tenant, RESOURCE_TYPE, id),
                legacy_id: id.clone(),
                external_id: ext.clone().map(ExternalId::new),
                user_name: user_name.clone(),
            })
            .collect();
        ctx.state.xref.seen(tenant, RESOURCE_TYPE, rows).await?;
        let mut gone = Vec::new();
        for id in &report.vanished {
            // A user created after the listing is not vanished: read it again first.
            let id = LegacyId::new(id.clone());
            match ctx.call(&um.calls.get, Some(&id), &[], None).await? {
                Ok(_) => {}
                Err(f) if f.is_not_found() => {
                    let scim_id = ScimId::derive(tenant, RESOURCE_TYPE, &id);
                    ctx.state
                        .xref
                        .tombstone(tenant, RESOURCE_TYPE, &scim_id)
                        .await?;
                    gone.push(id.to_string());
                }
                Err(f) => return Err(ctx.failure(&f)),
            }
        }
        report.vanished = gone;
    }
    Ok(report)
}
