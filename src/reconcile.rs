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

use mapping::ids::{ExternalId, LegacyId};
use mapping::plan::Pages;
use mapping::plan::users::{self as plan, RESOURCE_TYPE};
use mapping::resource::user_id;

use crate::gateway::PlanError;
use crate::telemetry::RequestNote;
use crate::tenant::Tenant;
use crate::xref::{Seen, Store, StoreError};

/// Why a reconciliation stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Reading the legacy users failed.
    #[error(transparent)]
    Legacy(#[from] PlanError),
    /// The cross-reference failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

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

/// Reconciles the users of `tenant` against `xref`; with `fix`, repairs vanished, unrecorded
/// and mismatched rows.
pub async fn reconcile(tenant: &Tenant, xref: &Store, fix: bool) -> Result<Report, ReconcileError> {
    let mapping = tenant.mapping();
    let um = &mapping.users;
    let note = RequestNote::default();
    let request_id = format!("reconcile-{}", uuid::Uuid::new_v4().simple());
    let mut x = tenant.gateway.exchange(&mapping, Some(&request_id), &note);
    let limit = tenant.member_concurrency;
    let tenant = &tenant.id;
    let mut legacy: BTreeMap<LegacyId, (Option<String>, Option<String>)> = BTreeMap::new();
    let mut pages = Pages::new(&um.calls.list, &mapping.legacy.paging, None, Vec::new());
    while let Some(items) = pages.next(&mut x, &mapping.legacy).await? {
        let items = plan::complete(&mapping, items, limit, &mut x).await?;
        for record in items {
            let Some(id) = um.legacy_id_of(&record) else {
                continue;
            };
            let keys = um.keys(&um.read(&record));
            legacy.insert(
                id,
                (keys.external_id.map(ExternalId::into_inner), keys.user_name),
            );
        }
    }
    let rows = xref.all(tenant, RESOURCE_TYPE).await?;
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
                scim_id: user_id(tenant, id),
                legacy_id: id.clone(),
                external_id: ext.clone().map(ExternalId::new),
                user_name: user_name.clone(),
            })
            .collect();
        xref.seen(tenant, RESOURCE_TYPE, rows).await?;
        let mut gone = Vec::new();
        for id in &report.vanished {
            // A user created after the listing is not vanished: read it again first.
            let id = LegacyId::new(id.clone());
            if plan::read(&mapping, &id, &mut x).await?.is_none() {
                xref.tombstone(tenant, RESOURCE_TYPE, &user_id(tenant, &id))
                    .await?;
                gone.push(id.to_string());
            }
        }
        report.vanished = gone;
    }
    Ok(report)
}
