//! The PostgreSQL engine of the cross-reference store: the state every replica shares.
//!
//! Every call is one statement or one short transaction on a pooled connection; nothing is
//! cached, so a tombstone, an adoption or a remembered externalId written through one replica
//! is what every other reads next. Concurrent writers are ordered by row locks
//! (`SELECT … FOR UPDATE`) and the unique indexes; a transaction that loses a race (a
//! serialization failure, a deadlock, a unique key taken meanwhile) runs again, reading what
//! the winner wrote.
//!
//! Create claims make a create exactly-once across replicas: a replica holds the claim on
//! `(tenant, resource type, key)` — an advisory lock of its lock session — while it creates;
//! others wait for it. A replica that dies holding one loses it with its session.
//!
//! Owns the SQL and the PostgreSQL schema of the cross-reference; depends on `crate::pg`
//! (the pool) and the sibling modules.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::links::Links;
use super::rules::{check_same_legacy, now, seen_names};
use super::{Seen, StoreError, XrefRecord};
use crate::pg::coalesce::{Coalescer, Runner};
use crate::pg::{Pg, PgError};
use mapping::ids::{ExternalId, LegacyId, ScimId, TenantId};

/// The schema steps of the `xref` component; step `i` takes it from version `i` to `i + 1`.
/// Append-only, like the SQLite steps. The indexes are the SQLite ones; `lower(… COLLATE
/// "C")` lowers ASCII only, as SQLite's `lower()` does.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the cross-reference and its lookup indexes.
    "CREATE TABLE xref (
        tenant        TEXT   NOT NULL,
        resource_type TEXT   NOT NULL,
        scim_id       TEXT   NOT NULL,
        legacy_id     TEXT   NOT NULL,
        external_id   TEXT,
        user_name     TEXT,
        created       TEXT   NOT NULL,
        last_modified TEXT   NOT NULL,
        version       BIGINT NOT NULL DEFAULT 1,
        tombstoned_at TEXT,
        fingerprint   TEXT,
        PRIMARY KEY (tenant, resource_type, scim_id)
    );
    CREATE UNIQUE INDEX xref_legacy ON xref (tenant, resource_type, legacy_id)
        WHERE tombstoned_at IS NULL;
    CREATE INDEX xref_legacy_any ON xref (tenant, resource_type, legacy_id);
    CREATE INDEX xref_external ON xref (tenant, resource_type, external_id);
    CREATE INDEX xref_user_name ON xref (tenant, resource_type, lower(user_name COLLATE \"C\"));
    CREATE INDEX xref_tombstoned ON xref (tenant, resource_type, legacy_id)
        WHERE tombstoned_at IS NOT NULL;",
    // 2: keys made once and shared by every replica (the key that seals RFC 9865 cursors).
    "CREATE TABLE sidecar_keys (
        name  TEXT  NOT NULL PRIMARY KEY,
        value BYTEA NOT NULL
    );",
    // 3: OAuth 2.0 codes and tokens, by the SHA-256 of their secret (xref/grants.rs).
    "CREATE TABLE oauth_grants (
        digest       TEXT   NOT NULL PRIMARY KEY,
        kind         TEXT   NOT NULL,
        tenant       TEXT   NOT NULL,
        client_id    TEXT   NOT NULL,
        family       TEXT   NOT NULL,
        grant_type   TEXT   NOT NULL,
        issued_at    BIGINT NOT NULL,
        expires_at   BIGINT NOT NULL,
        used_at      BIGINT,
        revoked_at   BIGINT,
        redirect_uri TEXT,
        challenge    TEXT
    );
    CREATE INDEX oauth_grants_family ON oauth_grants (family);
    CREATE INDEX oauth_grants_client ON oauth_grants (client_id);
    CREATE INDEX oauth_grants_tenant ON oauth_grants (tenant);
    CREATE INDEX oauth_grants_expiry ON oauth_grants (expires_at);",
    // 4: the outbox of directory-sync events (xref/outbox.rs).
    "CREATE TABLE webhook_outbox (
        seq             BIGSERIAL PRIMARY KEY,
        event_id        TEXT   NOT NULL,
        tenant          TEXT   NOT NULL,
        endpoint        TEXT   NOT NULL,
        event_type      TEXT   NOT NULL,
        ordering_key    TEXT   NOT NULL,
        order_hash      BIGINT NOT NULL,
        body            TEXT   NOT NULL,
        created_ms      BIGINT NOT NULL,
        window_start_ms BIGINT NOT NULL,
        attempts        BIGINT NOT NULL DEFAULT 0,
        next_attempt_ms BIGINT NOT NULL,
        lease_owner     TEXT,
        lease_until_ms  BIGINT,
        last_status     BIGINT,
        last_error      TEXT,
        last_attempt_ms BIGINT,
        delivered_ms    BIGINT,
        dead_ms         BIGINT,
        UNIQUE (event_id, endpoint)
    );
    CREATE INDEX webhook_outbox_pending
        ON webhook_outbox (tenant, endpoint, seq, order_hash, next_attempt_ms)
        WHERE delivered_ms IS NULL AND dead_ms IS NULL;
    CREATE INDEX webhook_outbox_delivered ON webhook_outbox (delivered_ms)
        WHERE delivered_ms IS NOT NULL;
    CREATE INDEX webhook_outbox_dead ON webhook_outbox (dead_ms) WHERE dead_ms IS NOT NULL;",
];

/// Times a transaction that lost a race runs again before its error is answered.
pub(super) const RACE_RETRIES: u32 = 5;

/// The columns of an [`XrefRecord`], in the order [`record`] reads them.
macro_rules! record_columns {
    () => {
        "tenant, resource_type, scim_id, legacy_id, external_id, user_name, created, \
         last_modified, version, tombstoned_at, fingerprint"
    };
}
const RECORD_COLUMNS: &str = record_columns!();
/// The records of the rows of `xref` a `WHERE` clause that follows names.
const SELECT_RECORD: &str = concat!("SELECT ", record_columns!(), " FROM xref ");

/// The PostgreSQL engine. Cheap to clone.
#[derive(Clone, Debug)]
pub(super) struct Postgres {
    pub(super) pg: Pg,
    /// The SCIM id → legacy id links met (they never change; see `links`).
    pub(super) links: Arc<Links>,
    /// Lookups by SCIM id running and waiting (see [`Postgres::get`]).
    lookups: Arc<Coalescer<Lookup, Option<XrefRecord>>>,
    /// One-statement upserts running and waiting (see [`Postgres::upsert`]).
    upserts: Arc<Coalescer<Upsert, Option<XrefRecord>>>,
}

/// Lookups by SCIM id sent as statements of their own at once; more wait and go together.
const DIRECT_LOOKUPS: usize = 2;

/// A lookup waiting for the next shared statement.
type Lookup = (TenantId, String, ScimId);

/// One-statement upserts sent on their own at once; more wait and go together.
const DIRECT_UPSERTS: usize = 2;

/// An upsert waiting for the next shared statement.
type Upsert = (TenantId, String, Seen);

/// The statement of the upserts that waited: one per tenant and resource type. A SCIM id
/// twice in the batch (a statement may change a row once) is left out after its first.
struct Upserts(Postgres);

impl Runner<Upsert, Option<XrefRecord>> for Upserts {
    async fn run(&self, batch: Vec<Upsert>) -> Vec<Option<Option<XrefRecord>>> {
        let mut answers = vec![None; batch.len()];
        let mut ids = HashSet::new();
        for ((tenant, resource_type), mut at) in groups(&batch) {
            at.retain(|&i| ids.insert((tenant, resource_type, &batch[i].2.scim_id)));
            let rows: Vec<&Seen> = at.iter().map(|&i| &batch[i].2).collect();
            if let Ok(mut written) = self.0.upsert_many(tenant, resource_type, &rows).await {
                for i in at {
                    answers[i] = Some(written.remove(&batch[i].2.scim_id));
                }
            }
        }
        answers
    }
}

/// The positions of a batch's entries, by tenant and resource type.
fn groups<T>(batch: &[(TenantId, String, T)]) -> HashMap<(&TenantId, &str), Vec<usize>> {
    let mut groups: HashMap<_, Vec<usize>> = HashMap::new();
    for (i, (tenant, resource_type, _)) in batch.iter().enumerate() {
        groups
            .entry((tenant, resource_type.as_str()))
            .or_default()
            .push(i);
    }
    groups
}

/// The statement of the lookups that waited: one per tenant and resource type.
struct Lookups(Postgres);

impl Runner<Lookup, Option<XrefRecord>> for Lookups {
    async fn run(&self, batch: Vec<Lookup>) -> Vec<Option<Option<XrefRecord>>> {
        let mut answers = vec![None; batch.len()];
        for ((tenant, resource_type), at) in groups(&batch) {
            let ids: Vec<ScimId> = at.iter().map(|&i| batch[i].2.clone()).collect();
            if let Ok(found) = self.0.fetch_many(tenant, resource_type, &ids).await {
                for (i, f) in at.into_iter().zip(found) {
                    answers[i] = Some(f);
                }
            }
        }
        answers
    }
}

/// Runs `$body` (an async block using `$tx`) in a transaction, again when it lost a race.
macro_rules! in_transaction {
    ($self:ident, $tx:ident => $body:expr) => {{
        let mut attempt = 0u32;
        loop {
            let result: Result<_, StoreError> = async {
                let mut client = $self.pg.client().await?;
                let $tx = client.transaction().await.map_err(|e| $self.pg.error(&e))?;
                let out = $body.await?;
                $tx.commit().await.map_err(|e| $self.pg.error(&e))?;
                Ok(out)
            }
            .await;
            match result {
                Err(StoreError::Pg(e)) if lost_race(&e) && attempt < RACE_RETRIES => {
                    attempt += 1;
                }
                other => break other,
            }
        }
    }};
}

/// A serialization failure, a deadlock or a unique key taken by a concurrent transaction.
pub(super) fn lost_race(e: &PgError) -> bool {
    matches!(e.code(), Some("40001" | "40P01" | "23505"))
}

impl Postgres {
    /// Migrates the `xref` schema (under the migration lock) and serves from `pg`.
    pub(super) async fn open(pg: Pg) -> Result<Postgres, StoreError> {
        pg.migrate("xref", MIGRATIONS).await?;
        // Planner statistics now, rather than at autovacuum's first pass: without them the
        // planner rates every index of the table alike and may read a lookup by SCIM id
        // through the userName index, row by row. A sample: quick on a large table too.
        // Best effort: a user that may not analyse the table (not its owner) still serves.
        let client = pg.client().await?;
        if let Err(e) = client.batch_execute("ANALYZE xref").await {
            tracing::warn!(error = %pg.error(&e), "cannot ANALYZE xref; autovacuum will");
        }
        Ok(Postgres {
            pg,
            links: Arc::default(),
            lookups: Coalescer::new(DIRECT_LOOKUPS),
            upserts: Coalescer::new(DIRECT_UPSERTS),
        })
    }

    /// The pool.
    pub(super) fn pg(&self) -> &Pg {
        &self.pg
    }

    /// Runs one query on a pooled connection, timed.
    pub(super) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.pg.client().await?;
        let rows = self
            .pg
            .timed(async {
                let stmt = client.prepare_cached(sql).await?;
                client.query(&stmt, params).await
            })
            .await
            .map_err(|e| self.pg.error(&e))?;
        Ok(rows)
    }

    async fn records(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<XrefRecord>, StoreError> {
        self.query(sql, params).await?.iter().map(record).collect()
    }

    /// See [`Store::seen`](super::Store::seen).
    pub(super) async fn seen(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        rows: Vec<Seen>,
    ) -> Result<Vec<XrefRecord>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        // Most pages hold records already known unchanged: one read answers those.
        let ids = rows.iter().map(|r| r.scim_id.clone()).collect();
        let known = self.get_many(tenant, resource_type, ids).await?;
        let mut unchanged = Vec::with_capacity(rows.len());
        for (row, current) in rows.iter().zip(known) {
            match current {
                Some(current) if seen_names(&current, row)?.is_none() => unchanged.push(current),
                _ => break,
            }
        }
        if unchanged.len() == rows.len() {
            return Ok(unchanged);
        }
        let this = self;
        in_transaction!(this, tx => async {
            let now = now()?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let record = match this.find_for_update(&tx, tenant, resource_type, &row.scim_id).await? {
                    None => match this.insert(&tx, tenant, resource_type, row, &now).await? {
                        Some(inserted) => inserted,
                        None => {
                            let current = this.find_for_update(&tx, tenant, resource_type, &row.scim_id).await?;
                            this.refresh(&tx, current, row, &now).await?
                        }
                    },
                    current @ Some(_) => this.refresh(&tx, current, row, &now).await?,
                };
                out.push(record);
            }
            Ok::<_, StoreError>(out)
        })
    }

    /// Applies a `seen` row to the stored record (`None`: another SCIM id holds the legacy id).
    async fn refresh(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        current: Option<XrefRecord>,
        row: &Seen,
        now: &str,
    ) -> Result<XrefRecord, StoreError> {
        let Some(mut current) = current else {
            return Err(conflict(row));
        };
        if let Some((external_id, user_name)) = seen_names(&current, row)? {
            current.external_id = external_id;
            current.user_name = user_name;
            self.update_names(tx, &mut current, now).await?;
        }
        Ok(current)
    }

    /// See [`Store::get`](super::Store::get). Up to [`DIRECT_LOOKUPS`] lookups run at once,
    /// each its own statement; lookups arriving meanwhile wait and then go together, one
    /// statement for all of them (under load, many GETs cost the server one statement).
    pub(super) async fn get(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &ScimId,
    ) -> Result<Option<XrefRecord>, StoreError> {
        let found = self
            .lookups
            .call(
                || (tenant.clone(), resource_type.to_owned(), id.clone()),
                Lookups(self.clone()),
                || self.fetch_one(tenant, resource_type, id),
            )
            .await?;
        if let Some(r) = &found {
            self.links
                .put(tenant, resource_type, &r.scim_id, &r.legacy_id);
        }
        Ok(found)
    }

    /// The row of one SCIM id: one statement.
    async fn fetch_one(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &ScimId,
    ) -> Result<Option<XrefRecord>, StoreError> {
        let sql =
            format!("{SELECT_RECORD} WHERE tenant = $1 AND resource_type = $2 AND scim_id = $3");
        Ok(self
            .records(&sql, &[&tenant.as_str(), &resource_type, &id.as_str()])
            .await?
            .pop())
    }

    /// See [`Store::known_link`](super::Store::known_link).
    pub(super) fn known_link(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &ScimId,
    ) -> Option<LegacyId> {
        self.links.get(tenant, resource_type, id)
    }

    /// See [`Store::get_many`](super::Store::get_many): one statement for every id.
    pub(super) async fn get_many(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        ids: Vec<ScimId>,
    ) -> Result<Vec<Option<XrefRecord>>, StoreError> {
        // One id (a record read or written alone): the single-row statement, whose plan is
        // made once, rather than `= ANY`, planned at every execution.
        if let [id] = ids.as_slice() {
            return Ok(vec![self.get(tenant, resource_type, id).await?]);
        }
        self.fetch_many(tenant, resource_type, &ids).await
    }

    /// The rows of many SCIM ids, in input order: one statement.
    async fn fetch_many(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        ids: &[ScimId],
    ) -> Result<Vec<Option<XrefRecord>>, StoreError> {
        let wanted: Vec<&str> = ids.iter().map(ScimId::as_str).collect();
        let sql = format!(
            "{SELECT_RECORD} WHERE tenant = $1 AND resource_type = $2 AND scim_id = ANY($3)"
        );
        let found = self
            .records(&sql, &[&tenant.as_str(), &resource_type, &wanted])
            .await?;
        Ok(in_order(found, &wanted, |r| r.scim_id.as_str()))
    }

    /// See [`Store::all`](super::Store::all).
    pub(super) async fn all(
        &self,
        tenant: &TenantId,
        resource_type: &str,
    ) -> Result<Vec<XrefRecord>, StoreError> {
        let sql = format!(
            "{SELECT_RECORD} WHERE tenant = $1 AND resource_type = $2 ORDER BY legacy_id COLLATE \"C\""
        );
        self.records(&sql, &[&tenant.as_str(), &resource_type])
            .await
    }

    /// See [`Store::get_by_legacy`](super::Store::get_by_legacy).
    pub(super) async fn get_by_legacy(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &LegacyId,
    ) -> Result<Option<XrefRecord>, StoreError> {
        let sql = format!(
            "{SELECT_RECORD} WHERE tenant = $1 AND resource_type = $2 AND legacy_id = $3 \
             ORDER BY tombstoned_at IS NOT NULL, tombstoned_at DESC LIMIT 1"
        );
        let found = self
            .records(&sql, &[&tenant.as_str(), &resource_type, &id.as_str()])
            .await?
            .pop();
        if let Some(r) = &found {
            self.links
                .put(tenant, resource_type, &r.scim_id, &r.legacy_id);
        }
        Ok(found)
    }

    /// See [`Store::live_by_legacy`](super::Store::live_by_legacy): one statement.
    pub(super) async fn live_by_legacy(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        ids: Vec<LegacyId>,
    ) -> Result<Vec<Option<XrefRecord>>, StoreError> {
        let wanted: Vec<&str> = ids.iter().map(LegacyId::as_str).collect();
        let sql = format!(
            "{SELECT_RECORD} WHERE tenant = $1 AND resource_type = $2 AND legacy_id = ANY($3) \
             AND tombstoned_at IS NULL"
        );
        let found = self
            .records(&sql, &[&tenant.as_str(), &resource_type, &wanted])
            .await?;
        Ok(in_order(found, &wanted, |r| r.legacy_id.as_str()))
    }

    /// See [`Store::get_by_external`](super::Store::get_by_external).
    pub(super) async fn get_by_external(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &ExternalId,
    ) -> Result<Vec<XrefRecord>, StoreError> {
        let sql = format!(
            "{SELECT_RECORD} WHERE tenant = $1 AND resource_type = $2 AND external_id = $3 \
             ORDER BY created, scim_id"
        );
        self.records(&sql, &[&tenant.as_str(), &resource_type, &id.as_str()])
            .await
    }

    /// See [`Store::get_by_user_name`](super::Store::get_by_user_name).
    pub(super) async fn get_by_user_name(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        user_name: &str,
    ) -> Result<Vec<XrefRecord>, StoreError> {
        let sql = format!(
            "{SELECT_RECORD} WHERE tenant = $1 AND resource_type = $2 \
             AND lower(user_name COLLATE \"C\") = lower($3 COLLATE \"C\") ORDER BY created, scim_id"
        );
        self.records(&sql, &[&tenant.as_str(), &resource_type, &user_name])
            .await
    }

    /// See [`Store::upsert`](super::Store::upsert).
    pub(super) async fn upsert(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        row: Seen,
    ) -> Result<XrefRecord, StoreError> {
        if row.fingerprint.is_none()
            && let Some(record) = self.upsert_at_once(tenant, resource_type, &row).await?
        {
            self.links
                .put(tenant, resource_type, &record.scim_id, &record.legacy_id);
            return Ok(record);
        }
        let this = self;
        let row = &row;
        in_transaction!(this, tx => async {
            let now = now()?;
            let current = match this.find_for_update(&tx, tenant, resource_type, &row.scim_id).await? {
                None => match this.insert(&tx, tenant, resource_type, row, &now).await? {
                    Some(inserted) => return Ok(inserted),
                    None => this.find_for_update(&tx, tenant, resource_type, &row.scim_id).await?,
                },
                current => current,
            };
            let Some(mut current) = current else {
                return Err(conflict(row));
            };
            check_same_legacy(&current, row)?;
            current.external_id = row.external_id.clone();
            current.user_name = row.user_name.clone();
            this.update_names(&tx, &mut current, &now).await?;
            Ok::<_, StoreError>(current)
        })
    }

    /// The usual upsert in one statement (see [`Postgres::upsert_one`]). Up to
    /// [`DIRECT_UPSERTS`] run at once; those arriving meanwhile go together, one statement
    /// and one commit for all of them.
    async fn upsert_at_once(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        row: &Seen,
    ) -> Result<Option<XrefRecord>, StoreError> {
        self.upserts
            .call(
                || (tenant.clone(), resource_type.to_owned(), row.clone()),
                Upserts(self.clone()),
                || self.upsert_one(tenant, resource_type, row),
            )
            .await
    }

    /// The usual upsert in one statement: a new row when no row holds the SCIM id or the legacy
    /// id, or the new names of the row of this SCIM id and legacy id when no other row holds
    /// the legacy id. `None` in every other case (the legacy id is another SCIM id's, the SCIM
    /// id another legacy id's, a concurrent insert won), which the transaction then decides
    /// as the SQLite engine does. One round trip instead of five for a create or an update.
    async fn upsert_one(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        row: &Seen,
    ) -> Result<Option<XrefRecord>, StoreError> {
        match self.upsert_many(tenant, resource_type, &[row]).await {
            Ok(mut written) => Ok(written.remove(&row.scim_id)),
            // A concurrent insert of this legacy id won the race: the transaction decides.
            Err(StoreError::Pg(e)) if lost_race(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`Postgres::upsert_one`] for many rows of one tenant and resource type (distinct SCIM
    /// ids): one statement. Each written row's record, by SCIM id; a row the statement did
    /// not write is absent (the transaction decides it).
    async fn upsert_many(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        rows: &[&Seen],
    ) -> Result<HashMap<ScimId, XrefRecord>, StoreError> {
        let now = now()?;
        let column = |f: fn(&Seen) -> Option<&str>| -> Vec<Option<&str>> {
            rows.iter().map(|r| f(r)).collect()
        };
        let scim_ids = column(|r| Some(r.scim_id.as_str()));
        let legacy_ids = column(|r| Some(r.legacy_id.as_str()));
        let external_ids = column(|r| r.external_id.as_ref().map(ExternalId::as_str));
        let user_names = column(|r| r.user_name.as_deref());
        let sql = format!(
            "INSERT INTO xref AS x (tenant, resource_type, scim_id, legacy_id, external_id, \
             user_name, created, last_modified, version) \
             SELECT $1, $2, u.scim_id, u.legacy_id, u.external_id, u.user_name, $3, $3, 1 \
             FROM unnest($4::text[], $5::text[], $6::text[], $7::text[]) \
             AS u(scim_id, legacy_id, external_id, user_name) \
             WHERE NOT EXISTS (SELECT 1 FROM xref WHERE tenant = $1 AND resource_type = $2 \
             AND legacy_id = u.legacy_id AND scim_id <> u.scim_id) \
             ON CONFLICT (tenant, resource_type, scim_id) DO UPDATE SET \
             external_id = EXCLUDED.external_id, user_name = EXCLUDED.user_name, \
             last_modified = EXCLUDED.last_modified, version = x.version + 1 \
             WHERE x.legacy_id = EXCLUDED.legacy_id \
             RETURNING {RECORD_COLUMNS}"
        );
        let written = self
            .records(
                &sql,
                &[
                    &tenant.as_str(),
                    &resource_type,
                    &now,
                    &scim_ids,
                    &legacy_ids,
                    &external_ids,
                    &user_names,
                ],
            )
            .await?;
        for r in &written {
            self.links
                .put(tenant, resource_type, &r.scim_id, &r.legacy_id);
        }
        Ok(written
            .into_iter()
            .map(|r| (r.scim_id.clone(), r))
            .collect())
    }

    /// See [`Store::tombstone`](super::Store::tombstone).
    pub(super) async fn tombstone(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &ScimId,
    ) -> Result<bool, StoreError> {
        let now = now()?;
        let client = self.pg.client().await?;
        let changed = self
            .pg
            .timed(async {
                let stmt = client
                    .prepare_cached(
                        "UPDATE xref SET tombstoned_at = $4, last_modified = $4, \
                         version = version + 1 WHERE tenant = $1 AND resource_type = $2 \
                         AND scim_id = $3 AND tombstoned_at IS NULL",
                    )
                    .await?;
                client
                    .execute(
                        &stmt,
                        &[&tenant.as_str(), &resource_type, &id.as_str(), &now],
                    )
                    .await
            })
            .await
            .map_err(|e| self.pg.error(&e))?;
        Ok(changed == 1)
    }

    /// See [`Store::lift_tombstone`](super::Store::lift_tombstone).
    pub(super) async fn lift_tombstone(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &ScimId,
    ) -> Result<bool, StoreError> {
        let this = self;
        in_transaction!(this, tx => async {
            let now = now()?;
            let Some(current) = this.find_for_update(&tx, tenant, resource_type, id).await? else {
                return Ok(false);
            };
            if current.tombstoned_at.is_none() {
                return Ok(false);
            }
            this.retire_others(&tx, tenant, resource_type, &current.legacy_id, id, &now).await?;
            let changed = tx
                .execute(
                    "UPDATE xref SET tombstoned_at = NULL, last_modified = $4, \
                     version = version + 1 WHERE tenant = $1 AND resource_type = $2 \
                     AND scim_id = $3 AND tombstoned_at IS NOT NULL",
                    &[&tenant.as_str(), &resource_type, &id.as_str(), &now],
                )
                .await
                .map_err(|e| this.pg.error(&e))?;
            Ok::<_, StoreError>(changed == 1)
        })
    }

    /// See [`Store::tombstoned`](super::Store::tombstoned).
    pub(super) async fn tombstoned(
        &self,
        tenant: &TenantId,
        resource_type: &str,
    ) -> Result<HashSet<LegacyId>, StoreError> {
        let rows = self
            .query(
                "SELECT t.legacy_id FROM xref AS t WHERE t.tenant = $1 AND t.resource_type = $2 \
                 AND t.tombstoned_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM xref AS l \
                 WHERE l.tenant = $1 AND l.resource_type = $2 AND l.legacy_id = t.legacy_id \
                 AND l.tombstoned_at IS NULL)",
                &[&tenant.as_str(), &resource_type],
            )
            .await?;
        rows.iter()
            .map(|row| text(row, 0).map(LegacyId::new))
            .collect()
    }

    /// See [`Store::counts`](super::Store::counts).
    pub(super) async fn counts(
        &self,
        tenant: &TenantId,
        resource_type: &str,
    ) -> Result<(u64, u64), StoreError> {
        let rows = self
            .query(
                "SELECT count(*) FILTER (WHERE tombstoned_at IS NULL), \
                 count(*) FILTER (WHERE tombstoned_at IS NOT NULL) \
                 FROM xref WHERE tenant = $1 AND resource_type = $2",
                &[&tenant.as_str(), &resource_type],
            )
            .await?;
        let row = rows.first().ok_or(StoreError::Column(0))?;
        Ok((count(row, 0)?, count(row, 1)?))
    }

    /// See [`Store::shared_key`](super::Store::shared_key). Two statements: the insert that
    /// loses a race waits for the winner's commit, and the select after it sees that row.
    pub(super) async fn shared_key(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.query(
            "INSERT INTO sidecar_keys (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &fresh],
        )
        .await?;
        let rows = self
            .query("SELECT value FROM sidecar_keys WHERE name = $1", &[&name])
            .await?;
        let row = rows.first().ok_or(StoreError::Column(0))?;
        row.try_get::<_, Vec<u8>>(0)
            .map_err(|_| StoreError::Column(0))
    }

    /// See [`Store::all_counts`](super::Store::all_counts).
    pub(super) async fn all_counts(&self) -> Result<Vec<(TenantId, String, u64, u64)>, StoreError> {
        let rows = self
            .query(
                "SELECT tenant, resource_type, count(*) FILTER (WHERE tombstoned_at IS NULL), \
                 count(*) FILTER (WHERE tombstoned_at IS NOT NULL) FROM xref \
                 GROUP BY tenant, resource_type ORDER BY tenant COLLATE \"C\", resource_type COLLATE \"C\"",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    TenantId::new(text(row, 0)?),
                    text(row, 1)?,
                    count(row, 2)?,
                    count(row, 3)?,
                ))
            })
            .collect()
    }

    /// Whether the database takes writes now: reachable, and not a read-only standby.
    pub(super) async fn check_writable(&self) -> Result<(), StoreError> {
        let rows = self
            .query(
                "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'",
                &[],
            )
            .await?;
        let read_only: bool = rows
            .first()
            .and_then(|r| r.try_get(0).ok())
            .ok_or(StoreError::Column(0))?;
        if read_only {
            return Err(StoreError::Unsupported(format!(
                "PostgreSQL at {} is read-only (a standby, or default_transaction_read_only): \
                 point store.url at the primary",
                self.pg.target()
            )));
        }
        Ok(())
    }

    /// Takes the create claim on `key` unless another replica holds it (`false` then): an
    /// advisory lock of this replica's lock session, so that a replica that dies or loses its
    /// connection holds none. One task of this process asks for a key at a time.
    pub(super) async fn try_claim(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        key: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .pg
            .try_advisory_lock(claim_key(tenant, resource_type, key))
            .await?)
    }

    /// Gives a claim back.
    pub(super) async fn release_claim(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        key: &str,
    ) -> Result<(), StoreError> {
        Ok(self
            .pg
            .advisory_unlock(claim_key(tenant, resource_type, key))
            .await?)
    }

    /// Copies `rows` (every column, as they are) in one transaction: a row absent here is
    /// inserted; a present one is overwritten when the copy's version is newer (the source
    /// changed since an earlier copy). Returns how many rows were written.
    pub(super) async fn import(&self, rows: &[XrefRecord]) -> Result<u64, StoreError> {
        let this = self;
        in_transaction!(this, tx => async {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO xref (tenant, resource_type, scim_id, legacy_id, external_id, \
                     user_name, created, last_modified, version, tombstoned_at, fingerprint) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (tenant, resource_type, scim_id) DO UPDATE SET \
                     legacy_id = EXCLUDED.legacy_id, external_id = EXCLUDED.external_id, \
                     user_name = EXCLUDED.user_name, created = EXCLUDED.created, \
                     last_modified = EXCLUDED.last_modified, version = EXCLUDED.version, \
                     tombstoned_at = EXCLUDED.tombstoned_at, fingerprint = EXCLUDED.fingerprint \
                     WHERE xref.version < EXCLUDED.version",
                )
                .await
                .map_err(|e| this.pg.error(&e))?;
            let mut written = 0;
            for r in rows {
                written += tx
                    .execute(
                        &stmt,
                        &[
                            &r.tenant.as_str(),
                            &r.resource_type,
                            &r.scim_id.as_str(),
                            &r.legacy_id.as_str(),
                            &r.external_id.as_ref().map(ExternalId::as_str),
                            &r.user_name,
                            &r.created,
                            &r.last_modified,
                            &r.version,
                            &r.tombstoned_at,
                            &r.fingerprint,
                        ],
                    )
                    .await
                    .map_err(|e| this.pg.error(&e))?;
            }
            Ok::<_, StoreError>(written)
        })
    }

    /// Closes the pool and the lock session.
    pub(super) async fn close(&self) {
        self.pg.close().await;
    }

    /// The record with SCIM id `id`, its row locked until the transaction ends.
    pub(super) async fn find_for_update(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        tenant: &TenantId,
        resource_type: &str,
        id: &ScimId,
    ) -> Result<Option<XrefRecord>, StoreError> {
        let sql = format!(
            "{SELECT_RECORD} WHERE tenant = $1 AND resource_type = $2 AND scim_id = $3 FOR UPDATE"
        );
        let stmt = tx
            .prepare_cached(&sql)
            .await
            .map_err(|e| self.pg.error(&e))?;
        let rows = self
            .pg
            .timed(tx.query(&stmt, &[&tenant.as_str(), &resource_type, &id.as_str()]))
            .await
            .map_err(|e| self.pg.error(&e))?;
        rows.first().map(record).transpose()
    }

    /// Inserts a new live record at version 1; `None` when a concurrent transaction took the
    /// SCIM id (or, with a fingerprint, the legacy id) first.
    pub(super) async fn insert(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        tenant: &TenantId,
        resource_type: &str,
        row: &Seen,
        now: &str,
    ) -> Result<Option<XrefRecord>, StoreError> {
        let err = |e: tokio_postgres::Error| self.pg.error(&e);
        if row.fingerprint.is_some() {
            self.retire_others(tx, tenant, resource_type, &row.legacy_id, &row.scim_id, now)
                .await?;
        } else {
            // Without a fingerprint a legacy id has one SCIM id for ever, tombstoned or not.
            let held = tx
                .query_opt(
                    "SELECT 1 FROM xref WHERE tenant = $1 AND resource_type = $2 \
                     AND legacy_id = $3 LIMIT 1",
                    &[&tenant.as_str(), &resource_type, &row.legacy_id.as_str()],
                )
                .await
                .map_err(err)?;
            if held.is_some() {
                return Err(conflict(row));
            }
        }
        let stmt = tx
            .prepare_cached(
                "INSERT INTO xref (tenant, resource_type, scim_id, legacy_id, external_id, \
                 user_name, created, last_modified, version, fingerprint) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 1, $8) ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(err)?;
        let inserted = self
            .pg
            .timed(tx.execute(
                &stmt,
                &[
                    &tenant.as_str(),
                    &resource_type,
                    &row.scim_id.as_str(),
                    &row.legacy_id.as_str(),
                    &row.external_id.as_ref().map(ExternalId::as_str),
                    &row.user_name.as_deref(),
                    &now,
                    &row.fingerprint.as_deref(),
                ],
            ))
            .await
            .map_err(err)?;
        if inserted == 0 {
            return Ok(None);
        }
        Ok(Some(XrefRecord {
            tenant: tenant.clone(),
            resource_type: resource_type.to_owned(),
            scim_id: row.scim_id.clone(),
            legacy_id: row.legacy_id.clone(),
            external_id: row.external_id.clone(),
            user_name: row.user_name.clone(),
            created: now.to_owned(),
            last_modified: now.to_owned(),
            version: 1,
            tombstoned_at: None,
            fingerprint: row.fingerprint.clone(),
        }))
    }

    /// Tombstones the live rows of `legacy_id` other than `keep` (see the SQLite engine).
    pub(super) async fn retire_others(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        tenant: &TenantId,
        resource_type: &str,
        legacy_id: &LegacyId,
        keep: &ScimId,
        now: &str,
    ) -> Result<(), StoreError> {
        let retired = tx
            .execute(
                "UPDATE xref SET tombstoned_at = $5, last_modified = $5, version = version + 1 \
                 WHERE tenant = $1 AND resource_type = $2 AND legacy_id = $3 AND scim_id <> $4 \
                 AND tombstoned_at IS NULL",
                &[
                    &tenant.as_str(),
                    &resource_type,
                    &legacy_id.as_str(),
                    &keep.as_str(),
                    &now,
                ],
            )
            .await
            .map_err(|e| self.pg.error(&e))?;
        if retired > 0 {
            tracing::info!(
                tenant = %tenant,
                resource_type,
                legacy_id = %legacy_id,
                "the legacy app reused an id: the account that held it before is gone"
            );
        }
        Ok(())
    }

    /// Stores `record`'s external id and display key, bumping its version and last-modified.
    pub(super) async fn update_names(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        record: &mut XrefRecord,
        now: &str,
    ) -> Result<(), StoreError> {
        let stmt = tx
            .prepare_cached(
                "UPDATE xref SET external_id = $4, user_name = $5, last_modified = $6, \
                 version = version + 1 WHERE tenant = $1 AND resource_type = $2 \
                 AND scim_id = $3 RETURNING version",
            )
            .await
            .map_err(|e| self.pg.error(&e))?;
        let rows = self
            .pg
            .timed(tx.query(
                &stmt,
                &[
                    &record.tenant.as_str(),
                    &record.resource_type.as_str(),
                    &record.scim_id.as_str(),
                    &record.external_id.as_ref().map(ExternalId::as_str),
                    &record.user_name.as_deref(),
                    &now,
                ],
            ))
            .await
            .map_err(|e| self.pg.error(&e))?;
        record.version = rows
            .first()
            .and_then(|r| r.try_get(0).ok())
            .unwrap_or(record.version + 1);
        record.last_modified = now.to_owned();
        Ok(())
    }
}

/// The advisory lock key of a claim: 64 bits of a hash of the tenant, the resource type and
/// the key (a collision makes two creates wait for each other, nothing worse). The lock space
/// is the database's: the sidecar's database should be its own.
fn claim_key(tenant: &TenantId, resource_type: &str, key: &str) -> i64 {
    let text = format!(
        "scim-sidecar claim\0{}\0{resource_type}\0{key}",
        tenant.as_str()
    );
    i64::from_ne_bytes(xxhash_rust::xxh3::xxh3_64(text.as_bytes()).to_ne_bytes())
}

/// The error of a SCIM id and legacy id that disagree with the stored rows.
pub(super) fn conflict(row: &Seen) -> StoreError {
    StoreError::IdConflict {
        scim_id: row.scim_id.clone(),
        legacy_id: row.legacy_id.clone(),
    }
}

/// Reads one [`XrefRecord`] from a row of [`SELECT_RECORD`].
fn record(row: &Row) -> Result<XrefRecord, StoreError> {
    let opt = |i: usize| -> Result<Option<String>, StoreError> {
        row.try_get(i).map_err(|_| StoreError::Column(i))
    };
    Ok(XrefRecord {
        tenant: TenantId::new(text(row, 0)?),
        resource_type: text(row, 1)?,
        scim_id: ScimId::new(text(row, 2)?),
        legacy_id: LegacyId::new(text(row, 3)?),
        external_id: opt(4)?.map(ExternalId::new),
        user_name: opt(5)?,
        created: text(row, 6)?,
        last_modified: text(row, 7)?,
        version: row.try_get(8).map_err(|_| StoreError::Column(8))?,
        tombstoned_at: opt(9)?,
        fingerprint: opt(10)?,
    })
}

/// The records `found` by an `= ANY` statement, in the order of the keys `wanted` (`None`
/// where none was found; a key asked twice gets its record twice).
fn in_order(
    found: Vec<XrefRecord>,
    wanted: &[&str],
    key: fn(&XrefRecord) -> &str,
) -> Vec<Option<XrefRecord>> {
    let by_key: HashMap<&str, &XrefRecord> = found.iter().map(|r| (key(r), r)).collect();
    wanted
        .iter()
        .map(|k| by_key.get(k).map(|r| (*r).clone()))
        .collect()
}

fn text(row: &Row, i: usize) -> Result<String, StoreError> {
    row.try_get(i).map_err(|_| StoreError::Column(i))
}

fn count(row: &Row, i: usize) -> Result<u64, StoreError> {
    let n: i64 = row.try_get(i).map_err(|_| StoreError::Column(i))?;
    Ok(u64::try_from(n).unwrap_or(0))
}
