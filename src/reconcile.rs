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

use mapping::ids::{ExternalId, LegacyId, ScimId};
use mapping::plan::Pages;
use mapping::plan::users::{self as plan, RESOURCE_TYPE};

use crate::gateway::PlanError;
use crate::telemetry::RequestNote;
use crate::tenant::Tenant;
use crate::xref::{Seen, Store, StoreError};

/// A legacy user as listed.
struct Listed {
    scim_id: ScimId,
    fingerprint: Option<String>,
    external_id: Option<String>,
    user_name: Option<String>,
}

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
    let mut legacy: BTreeMap<LegacyId, Listed> = BTreeMap::new();
    let mut pages = Pages::new(&um.calls.list, &mapping.legacy.paging, None, Vec::new());
    while let Some(items) = pages.next(&mut x, &mapping.legacy).await? {
        let items = plan::complete(&mapping, items, limit, &mut x).await?;
        for record in items {
            let Ok((id, scim_id)) = um.ids_of(tenant, &record) else {
                continue;
            };
            let keys = um.keys(&um.read(&record));
            legacy.insert(
                id,
                Listed {
                    scim_id,
                    fingerprint: um.fingerprint_of(&record),
                    external_id: keys.external_id.map(ExternalId::into_inner),
                    user_name: keys.user_name,
                },
            );
        }
    }
    let rows = xref.all(tenant, RESOURCE_TYPE).await?;
    let live: HashMap<&LegacyId, _> = rows
        .iter()
        .filter(|r| r.tombstoned_at.is_none())
        .map(|r| (&r.legacy_id, r))
        .collect();
    let known: HashSet<&ScimId> = rows.iter().map(|r| &r.scim_id).collect();
    let mut report = Report {
        tenant: tenant.to_string(),
        legacy_users: legacy.len(),
        xref_rows: live.len(),
        fixed: fix,
        ..Report::default()
    };
    for (id, row) in &live {
        // A legacy id the app gave to another account (a new fingerprint): this one vanished.
        let listed = legacy.get(*id).filter(|l| l.scim_id == row.scim_id);
        if listed.is_none() {
            report.vanished.push(id.to_string());
        } else if let Some(Listed {
            external_id: Some(ext),
            ..
        }) = listed
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
    for (id, listed) in &legacy {
        if !known.contains(&listed.scim_id) {
            report.unrecorded.push(id.to_string());
        }
        if let Some(ext) = &listed.external_id {
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
            .map(|(id, listed)| Seen {
                scim_id: listed.scim_id.clone(),
                legacy_id: id.clone(),
                external_id: listed.external_id.clone().map(ExternalId::new),
                user_name: listed.user_name.clone(),
                fingerprint: listed.fingerprint.clone(),
            })
            .collect();
        xref.seen(tenant, RESOURCE_TYPE, rows).await?;
        let mut gone = Vec::new();
        for id in &report.vanished {
            let id = LegacyId::new(id.clone());
            let Some(row) = live.get(&id) else {
                continue;
            };
            // A user created after the listing is not vanished: read it again first.
            let now = plan::read(&mapping, &id, &mut x).await?;
            let same = now
                .and_then(|r| um.ids_of(tenant, &r).ok())
                .is_some_and(|(_, sid)| sid == row.scim_id);
            if !same {
                xref.tombstone(tenant, RESOURCE_TYPE, &row.scim_id).await?;
                gone.push(id.to_string());
            }
        }
        report.vanished = gone;
    }
    Ok(report)
}
