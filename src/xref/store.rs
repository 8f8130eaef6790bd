//! The cross-reference store: one interface, two engines. SQLite (files in the data
//! directory, one replica; the default) or PostgreSQL (`[store]`, shared by every replica).
//! Both keep the same rows by the same rules (`rules`); the engines differ in SQL and in how
//! concurrent writers are ordered (one writer thread; row locks and retried transactions).
//!
//! Also the claims: a create of a key (a userName), a change of a group, runs while no other
//! request on the same key runs — in this process (a lock) and, on PostgreSQL, on any replica (an advisory
//! lock).
//!
//! Owns the choice of engine; depends on the sibling modules and `crate::pg`.

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, OwnedMutexGuard};

use super::grants::{Grant, GrantKind, Revoke};
use super::outbox::{
    Attempt, Change, Leased, NewEvent, OutboxFilter, OutboxRow, QueueStats, Replay,
};
use super::postgres::Postgres;
use super::sqlite::Sqlite;
use super::{Seen, StoreError, XrefRecord};
use crate::pg::Pg;
use mapping::ids::{ExternalId, LegacyId, ScimId, TenantId};

/// Locks of the create claims in this process: a key's lock is `LOCAL_CLAIMS[hash % len]`
/// (two keys may share one: their creates then run one after the other).
const LOCAL_CLAIMS: usize = 1024;
/// The first pause between two tries of a claim another replica holds; doubled up to
/// [`MAX_CLAIM_PAUSE`].
const FIRST_CLAIM_PAUSE: Duration = Duration::from_millis(5);
const MAX_CLAIM_PAUSE: Duration = Duration::from_millis(100);

/// The cross-reference store. Cheap to clone; all clones share one database.
#[derive(Clone, Debug)]
pub struct Store {
    engine: Engine,
    claims: Arc<Vec<Arc<Mutex<()>>>>,
    closed: Arc<AtomicBool>,
}

#[derive(Clone, Debug)]
enum Engine {
    Sqlite(Sqlite),
    Postgres(Postgres),
}

/// Runs the same call on whichever engine the store has.
macro_rules! on_engine {
    ($self:ident, $e:ident => $call:expr) => {
        match &$self.engine {
            Engine::Sqlite($e) => $call.await,
            // Boxed: a statement's future is kilobytes, and every future awaiting the store
            // (the SQLite one too) would carry that size and pay to move it.
            Engine::Postgres($e) => {
                $self.check_open()?;
                Box::pin($call).await
            }
        }
    };
}

/// A create claim: while it lives, no other create of its key runs (see
/// [`Store::claim`]). Give it back with [`Claim::release`]; dropped, it is given
/// back in the background.
#[derive(Debug)]
pub struct Claim {
    _local: OwnedMutexGuard<()>,
    shared: Option<SharedClaim>,
}

#[derive(Debug)]
struct SharedClaim {
    engine: Postgres,
    tenant: TenantId,
    resource_type: String,
    key: String,
}

impl SharedClaim {
    async fn release(self) {
        if let Err(e) = self
            .engine
            .release_claim(&self.tenant, &self.resource_type, &self.key)
            .await
        {
            tracing::warn!(error = %e, "a create claim could not be given back: it ends with the lock session");
        }
    }
}

impl Claim {
    /// Gives the claim back. On PostgreSQL the unlock is sent in the background: the answer
    /// does not wait for it, and a later claim of the same key by this replica is sent after
    /// it on the same session (whose locks count, so the order of the two does not matter).
    pub async fn release(self) {
        drop(self);
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(shared.release());
        }
    }
}

impl Store {
    /// Opens (creating if needed) the SQLite database file at `path`.
    ///
    /// Creates the parent directory with mode 0700 and the file with mode 0600 when they are
    /// missing, refuses a file that fails `PRAGMA quick_check` ([`StoreError::Corrupt`]),
    /// switches to WAL with `synchronous=NORMAL` and applies pending migrations. `path` must
    /// name a file (not `:memory:`).
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        Ok(Store::with(Engine::Sqlite(Sqlite::open(path).await?)))
    }

    /// [`Store::open`], asking for a WAL checkpoint once a commit leaves `frames` frames or
    /// more in the WAL (tests of the checkpointer).
    #[cfg(test)]
    pub(super) async fn open_checkpointing(path: &Path, frames: u32) -> Result<Store, StoreError> {
        Ok(Store::with(Engine::Sqlite(
            Sqlite::open_checkpointing(path, frames).await?,
        )))
    }

    /// Serves from PostgreSQL through `pg`, after migrating its schema (under the migration
    /// lock every replica takes).
    pub async fn open_postgres(pg: Pg) -> Result<Store, StoreError> {
        Ok(Store::with(Engine::Postgres(Postgres::open(pg).await?)))
    }

    fn with(engine: Engine) -> Store {
        Store {
            engine,
            claims: Arc::new(
                (0..LOCAL_CLAIMS)
                    .map(|_| Arc::new(Mutex::new(())))
                    .collect(),
            ),
            closed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Where the store is, for messages: the SQLite file, or `user@host:port/database`.
    pub fn location(&self) -> String {
        match &self.engine {
            Engine::Sqlite(s) => s.path().display().to_string(),
            Engine::Postgres(p) => format!("postgres://{}", p.pg().target()),
        }
    }

    /// The SQLite database file, when the store is one.
    pub fn path(&self) -> Option<&Path> {
        match &self.engine {
            Engine::Sqlite(s) => Some(s.path()),
            Engine::Postgres(_) => None,
        }
    }

    /// The PostgreSQL pool, when the store is there.
    pub fn pg(&self) -> Option<&Pg> {
        match &self.engine {
            Engine::Sqlite(_) => None,
            Engine::Postgres(p) => Some(p.pg()),
        }
    }

    /// The SQLite engine (tests of its threads and files).
    #[cfg(test)]
    pub(super) fn sqlite(&self) -> &Sqlite {
        match &self.engine {
            Engine::Sqlite(s) => s,
            Engine::Postgres(_) => panic!("not an SQLite store"),
        }
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// Records every `rows` entry that is absent, in one transaction; refreshes the
    /// `external_id` / `user_name` of present ones when the row carries a different value
    /// (bumping `version` and `last_modified`).
    ///
    /// `None` in a row means "the source did not say": the remembered value is kept. Nothing
    /// is tombstoned or lifted. Returns the current records in input order. A row whose
    /// ids disagree with the stored ones fails the whole call ([`StoreError::IdConflict`])
    /// and records nothing.
    pub async fn seen(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        rows: Vec<Seen>,
    ) -> Result<Vec<XrefRecord>, StoreError> {
        on_engine!(self, e => e.seen(tenant, resource_type, rows))
    }

    /// The record with SCIM id `id`, tombstoned or not.
    pub async fn get(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &ScimId,
    ) -> Result<Option<XrefRecord>, StoreError> {
        on_engine!(self, e => e.get(tenant, resource_type, id))
    }

    /// [`Self::get`], shared: on SQLite a row kept in memory is not copied.
    pub async fn get_shared(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &ScimId,
    ) -> Result<Option<Arc<XrefRecord>>, StoreError> {
        match &self.engine {
            Engine::Sqlite(e) => e.get_shared(tenant, resource_type, id).await,
            Engine::Postgres(_) => Ok(self.get(tenant, resource_type, id).await?.map(Arc::new)),
        }
    }

    /// The legacy id of SCIM id `id` when this process has met its record and a lookup is a
    /// round trip (PostgreSQL): a read may then ask the legacy app while [`Store::get`] says
    /// whether the id still stands. The link never changes; nothing else is kept. `None` on
    /// SQLite, whose lookup is in the process.
    pub fn known_link(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &ScimId,
    ) -> Option<LegacyId> {
        match &self.engine {
            Engine::Sqlite(_) => None,
            Engine::Postgres(e) => e.known_link(tenant, resource_type, id),
        }
    }

    /// The records of many SCIM ids at once (tombstoned ones included), in input order: one
    /// read job with one prepared statement, for translating thousands of group members.
    pub async fn get_many(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        ids: Vec<ScimId>,
    ) -> Result<Vec<Option<XrefRecord>>, StoreError> {
        on_engine!(self, e => e.get_many(tenant, resource_type, ids))
    }

    /// Every record of a tenant and resource type (tombstoned ones included), by legacy id.
    pub async fn all(
        &self,
        tenant: &TenantId,
        resource_type: &str,
    ) -> Result<Vec<XrefRecord>, StoreError> {
        on_engine!(self, e => e.all(tenant, resource_type))
    }

    /// The record of legacy id `id`: its live one, else the newest tombstoned one (an app
    /// that reuses ids leaves tombstones of the accounts that held it before).
    pub async fn get_by_legacy(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &LegacyId,
    ) -> Result<Option<XrefRecord>, StoreError> {
        on_engine!(self, e => e.get_by_legacy(tenant, resource_type, id))
    }

    /// The live records of many legacy ids at once, in input order (`None`: no live row).
    pub async fn live_by_legacy(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        ids: Vec<LegacyId>,
    ) -> Result<Vec<Option<XrefRecord>>, StoreError> {
        on_engine!(self, e => e.live_by_legacy(tenant, resource_type, ids))
    }

    /// Every record (tombstoned ones included) whose `externalId` is `id`, oldest first.
    pub async fn get_by_external(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &ExternalId,
    ) -> Result<Vec<XrefRecord>, StoreError> {
        on_engine!(self, e => e.get_by_external(tenant, resource_type, id))
    }

    /// Every record (tombstoned ones included) whose display key equals `user_name`,
    /// ignoring ASCII case (SQLite's `lower()`), oldest first.
    pub async fn get_by_user_name(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        user_name: &str,
    ) -> Result<Vec<XrefRecord>, StoreError> {
        on_engine!(self, e => e.get_by_user_name(tenant, resource_type, user_name))
    }

    /// Inserts or updates after a successful write (create / replace / patch): sets
    /// `external_id` and `user_name` exactly as given (`None` clears), bumps `version` and
    /// `last_modified`. Lifts no tombstone.
    pub async fn upsert(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        row: Seen,
    ) -> Result<XrefRecord, StoreError> {
        on_engine!(self, e => e.upsert(tenant, resource_type, row))
    }

    /// Marks the record deleted. `true` if it was live; `false` if it was already
    /// tombstoned or is unknown (record it with [`Store::seen`] or [`Store::upsert`] first).
    pub async fn tombstone(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &ScimId,
    ) -> Result<bool, StoreError> {
        on_engine!(self, e => e.tombstone(tenant, resource_type, id))
    }

    /// Lifts the tombstone of the record. `true` if it was tombstoned. A live row of another
    /// account holding the same legacy id (an app that reuses ids) is tombstoned: the legacy
    /// record is this account's.
    pub async fn lift_tombstone(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &ScimId,
    ) -> Result<bool, StoreError> {
        on_engine!(self, e => e.lift_tombstone(tenant, resource_type, id))
    }

    /// The legacy ids of every tombstoned record of the tenant and resource type, but those
    /// a live record holds now (an app that reuses ids gave it to another account).
    pub async fn tombstoned(
        &self,
        tenant: &TenantId,
        resource_type: &str,
    ) -> Result<std::collections::HashSet<LegacyId>, StoreError> {
        on_engine!(self, e => e.tombstoned(tenant, resource_type))
    }

    /// `(live, tombstoned)` record counts of the tenant and resource type.
    pub async fn counts(
        &self,
        tenant: &TenantId,
        resource_type: &str,
    ) -> Result<(u64, u64), StoreError> {
        on_engine!(self, e => e.counts(tenant, resource_type))
    }

    /// The key named `name`: the one already in the store, or `fresh`, stored now. Every
    /// replica sharing the store reads the same key; it stays across restarts.
    pub async fn shared_key(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        on_engine!(self, e => e.shared_key(name, fresh))
    }

    /// Stores OAuth grants just issued, and deletes the rows that expired before
    /// `purge_before` (Unix seconds).
    pub async fn grant_issue(&self, rows: Vec<Grant>, purge_before: i64) -> Result<(), StoreError> {
        on_engine!(self, e => e.grant_issue(rows, purge_before))
    }

    /// The grant whose secret has the SHA-256 `digest` (hex), if any; revoked when any grant of
    /// its family is.
    pub async fn grant_find(&self, digest: &str) -> Result<Option<Grant>, StoreError> {
        on_engine!(self, e => e.grant_find(digest))
    }

    /// Spends the code or refresh token `spend` (of `kind`) at `now` and stores `issue` (what
    /// is issued for it), in one transaction: `true` when this call spent it; `false` when it
    /// was spent before or by a concurrent exchange on any replica (then nothing is stored).
    pub async fn grant_exchange(
        &self,
        spend: &str,
        kind: GrantKind,
        now: i64,
        issue: Vec<Grant>,
        purge_before: i64,
    ) -> Result<bool, StoreError> {
        on_engine!(self, e => e.grant_exchange(spend, kind, now, issue, purge_before))
    }

    /// Revokes the grants `what` names that are not yet; how many.
    pub async fn grant_revoke(&self, what: Revoke, now: i64) -> Result<u64, StoreError> {
        on_engine!(self, e => e.grant_revoke(what, now))
    }

    /// Every stored grant, by tenant, client and issue time.
    pub async fn grant_list(&self) -> Result<Vec<Grant>, StoreError> {
        on_engine!(self, e => e.grant_list())
    }

    /// `(tenant, resource type, live, tombstoned)` record counts of every tenant.
    pub async fn all_counts(&self) -> Result<Vec<(TenantId, String, u64, u64)>, StoreError> {
        on_engine!(self, e => e.all_counts())
    }

    /// Copies `rows` into a PostgreSQL store as they are (`store migrate`): absent rows are
    /// inserted, present ones overwritten when the copy's version is newer. Returns how many
    /// rows were written. An SQLite store refuses ([`StoreError::Unsupported`]).
    pub async fn import(&self, rows: &[XrefRecord]) -> Result<u64, StoreError> {
        match &self.engine {
            Engine::Sqlite(_) => Err(StoreError::Unsupported(
                "rows are copied into a PostgreSQL store only".to_owned(),
            )),
            Engine::Postgres(p) => {
                self.check_open()?;
                p.import(rows).await
            }
        }
    }

    /// Writes `change` and puts `events` in the outbox, in one transaction: either both
    /// stand or neither does. The record as it is after the change.
    pub async fn change_with_events(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        change: Change,
        events: Vec<NewEvent>,
    ) -> Result<XrefRecord, StoreError> {
        on_engine!(self, e => e.change_with_events(tenant, resource_type, change, events))
    }

    /// Puts `events` in the outbox (one transaction): events of changes the store keeps no
    /// row of (a group member added or removed, a failure answered).
    pub async fn emit(&self, events: Vec<NewEvent>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        on_engine!(self, e => e.emit(events))
    }

    /// Leases up to `limit` rows of one endpoint due at `now` to `owner` until `until` (ms),
    /// oldest first, at most one per resource (see `outbox`).
    pub async fn outbox_lease(
        &self,
        tenant: &str,
        endpoint: &str,
        owner: &str,
        now: i64,
        until: i64,
        limit: u32,
    ) -> Result<Vec<Leased>, StoreError> {
        on_engine!(self, e => e.outbox_lease(tenant, endpoint, owner, now, until, limit))
    }

    /// Records how the attempt of row `seq` ended, and gives its lease back; `false` (and
    /// nothing recorded) when `owner` no longer holds the lease (it ran out and another took
    /// the row, or a replay reset it).
    pub async fn outbox_settle(
        &self,
        seq: i64,
        owner: &str,
        attempt: Attempt,
        now: i64,
    ) -> Result<bool, StoreError> {
        on_engine!(self, e => e.outbox_settle(seq, owner, attempt, now))
    }

    /// Gives back the leases of `owner` (every lease, with `None`). Returns how many.
    pub async fn outbox_release(&self, owner: Option<String>) -> Result<u64, StoreError> {
        on_engine!(self, e => e.outbox_release(owner))
    }

    /// Outbox rows, newest first.
    pub async fn outbox_list(&self, filter: OutboxFilter) -> Result<Vec<OutboxRow>, StoreError> {
        on_engine!(self, e => e.outbox_list(filter))
    }

    /// Every endpoint's row of the event `id`, with the body.
    pub async fn outbox_event(&self, id: &str) -> Result<Vec<OutboxRow>, StoreError> {
        on_engine!(self, e => e.outbox_event(id))
    }

    /// Makes the rows `what` names pending again, due now, with a new retry window, but
    /// those leased now (their delivery is in flight). Returns how many.
    pub async fn outbox_replay(&self, what: Replay, now: i64) -> Result<u64, StoreError> {
        on_engine!(self, e => e.outbox_replay(what, now))
    }

    /// The queue of every endpoint with rows not delivered.
    pub async fn outbox_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        on_engine!(self, e => e.outbox_stats())
    }

    /// Deletes rows delivered before `delivered_before` and dead before `dead_before` (ms).
    pub async fn outbox_purge(
        &self,
        delivered_before: i64,
        dead_before: i64,
    ) -> Result<u64, StoreError> {
        on_engine!(self, e => e.outbox_purge(delivered_before, dead_before))
    }

    /// Whether the store takes writes now (readiness). SQLite: the writer can take the
    /// database's write lock (an empty write transaction). PostgreSQL: the server answers and
    /// is not a read-only standby.
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        on_engine!(self, e => e.check_writable())
    }

    /// Claims the create of `key` (e.g. a lower-cased userName) in the tenant and resource
    /// type: waits while another create of the same key runs, in this process or (on
    /// PostgreSQL) on another replica, up to `wait`; then [`StoreError::Busy`]. A replica that
    /// dies holding a claim, or loses its database session, holds it no more.
    pub async fn claim(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        what: &'static str,
        key: &str,
        wait: Duration,
    ) -> Result<Claim, StoreError> {
        let deadline = Instant::now() + wait;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (tenant.as_str(), resource_type, key).hash(&mut hasher);
        let slot = usize::try_from(hasher.finish() % LOCAL_CLAIMS as u64).unwrap_or(0);
        let lock = Arc::clone(&self.claims[slot]);
        let local = tokio::time::timeout_at(deadline.into(), lock.lock_owned())
            .await
            .map_err(|_| StoreError::Busy { what })?;
        let Engine::Postgres(engine) = &self.engine else {
            self.check_open()?;
            return Ok(Claim {
                _local: local,
                shared: None,
            });
        };
        self.check_open()?;
        let mut pause = FIRST_CLAIM_PAUSE;
        while !engine.try_claim(tenant, resource_type, key).await? {
            if Instant::now() + pause > deadline {
                return Err(StoreError::Busy { what });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_CLAIM_PAUSE);
        }
        Ok(Claim {
            _local: local,
            shared: Some(SharedClaim {
                engine: engine.clone(),
                tenant: tenant.clone(),
                resource_type: resource_type.to_owned(),
                key: key.to_owned(),
            }),
        })
    }

    /// SQLite: waits for running reads and queued writes, checkpoints the WAL into the
    /// database file and closes every connection. PostgreSQL: closes the pool. Every later
    /// call, including another `close`, answers [`StoreError::Closed`].
    pub async fn close(&self) -> Result<(), StoreError> {
        match &self.engine {
            Engine::Sqlite(s) => s.close().await,
            Engine::Postgres(p) => {
                if self.closed.swap(true, Ordering::AcqRel) {
                    return Err(StoreError::Closed);
                }
                p.close().await;
                Ok(())
            }
        }
    }
}
