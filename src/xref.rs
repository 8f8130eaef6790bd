//! The cross-reference of ids (SQLite by default, PostgreSQL with `[store]`): per tenant and resource type ("User" / "Group"),
//! SCIM id ⇄ legacy id ⇄ externalId ⇄ userName, plus `created` / `lastModified` / version
//! and tombstones.
//!
//! SCIM ids are name-based UUIDs ([`ScimId::derive`](mapping::ids::ScimId::derive)) computed
//! by the caller: the cross-reference indexes and remembers, it is never the only place an id
//! exists. Losing the database file loses remembered externalIds, timestamps and tombstones,
//! never an id.
//!
//! Owns the store (`store`: one interface, two engines), the SQLite file, its schema
//! (`migrations`) and the threads that touch it (`sqlite`), and the PostgreSQL schema and SQL
//! (`postgres`). Depends only on `crate::ids` and `crate::pg` (the pool); knows nothing about
//! SCIM JSON, mappings or the legacy application.

mod error;
mod grants;
mod links;
mod migrations;
mod outbox;
mod postgres;
mod recent;
mod rules;
mod sqlite;
mod store;
#[cfg(test)]
mod tests;

pub use error::StoreError;
pub use grants::{Grant, GrantKind, Revoke};
pub use outbox::{
    Attempt, Change, Leased, NewEvent, OutboxFilter, OutboxRow, QueueStats, Replay, RowState,
};
pub use sqlite::prepare_files;
pub use store::{Claim, Store};

use mapping::ids::{ExternalId, LegacyId, ScimId, TenantId};

/// One row of the cross-reference: everything remembered about one legacy record.
#[derive(Clone, Debug, PartialEq)]
pub struct XrefRecord {
    /// The tenant the record belongs to.
    pub tenant: TenantId,
    /// The SCIM resource type: `"User"` or `"Group"`.
    pub resource_type: String,
    /// The SCIM id handed to the identity provider.
    pub scim_id: ScimId,
    /// The legacy application's primary key.
    pub legacy_id: LegacyId,
    /// The identity provider's `externalId`, when known.
    pub external_id: Option<ExternalId>,
    /// The display key (`userName` of a User, `displayName` of a Group), when known.
    pub user_name: Option<String>,
    /// The record's fingerprint, when the mapping names one (it joined the SCIM id).
    pub fingerprint: Option<String>,
    /// When the sidecar first saw the record (RFC 3339, UTC, millisecond precision).
    pub created: String,
    /// When the remembered data last changed (RFC 3339, UTC, millisecond precision).
    pub last_modified: String,
    /// Starts at 1 and grows by one with every change of this row (usable for ETags).
    pub version: i64,
    /// When the resource was deleted through SCIM, if it was (RFC 3339, UTC).
    pub tombstoned_at: Option<String>,
}

/// What a list page or a lookup told us about a legacy record.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The SCIM id, as computed by `ScimId::derive(tenant, resource_type, legacy_id)`.
    pub scim_id: ScimId,
    /// The legacy application's primary key.
    pub legacy_id: LegacyId,
    /// The `externalId`, if the source knows it.
    pub external_id: Option<ExternalId>,
    /// The display key, if the source knows it.
    pub user_name: Option<String>,
    /// The record's fingerprint, when the mapping names one. A row with a fingerprint takes
    /// its legacy id over from a live row of another fingerprint: that account is gone (the
    /// app reused its id), so its row is tombstoned.
    pub fingerprint: Option<String>,
}
