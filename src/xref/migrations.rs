//! Schema migrations of the cross-reference database, versioned by `PRAGMA user_version`.
//!
//! Owns the SQL schema. Each step runs in its own transaction together with the bump of
//! `user_version`, so a crash leaves the file at a whole version. Steps are append-only:
//! never edit or reorder a released step, add a new one.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

/// The schema steps; step `i` takes the database from version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the cross-reference table and its lookup indexes.
    "CREATE TABLE xref (
        tenant        TEXT    NOT NULL,
        resource_type TEXT    NOT NULL,
        scim_id       TEXT    NOT NULL,
        legacy_id     TEXT    NOT NULL,
        external_id   TEXT,
        user_name     TEXT,
        created       TEXT    NOT NULL,
        last_modified TEXT    NOT NULL,
        version       INTEGER NOT NULL DEFAULT 1,
        tombstoned_at TEXT,
        PRIMARY KEY (tenant, resource_type, scim_id)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX xref_legacy ON xref (tenant, resource_type, legacy_id);
    CREATE INDEX xref_external ON xref (tenant, resource_type, external_id);
    CREATE INDEX xref_user_name ON xref (tenant, resource_type, lower(user_name));",
    // 2: a partial index of the tombstoned rows, so listing them costs what there is to list
    // rather than a walk over every row of the tenant (a user list asks on every call).
    "CREATE INDEX xref_tombstoned ON xref (tenant, resource_type, legacy_id)
        WHERE tombstoned_at IS NOT NULL;",
    // 3: the fingerprint of a record (a value that never changes for one account, named by
    // the mapping) and, for apps that reuse ids, room for one live row per legacy id beside
    // the tombstones of the accounts that held it before.
    "ALTER TABLE xref ADD COLUMN fingerprint TEXT;
    DROP INDEX xref_legacy;
    CREATE UNIQUE INDEX xref_legacy ON xref (tenant, resource_type, legacy_id)
        WHERE tombstoned_at IS NULL;
    CREATE INDEX xref_legacy_any ON xref (tenant, resource_type, legacy_id);",
    // 4: keys the sidecar makes once and keeps (the key that seals RFC 9865 cursors).
    "CREATE TABLE sidecar_keys (
        name  TEXT NOT NULL PRIMARY KEY,
        value BLOB NOT NULL
    ) WITHOUT ROWID;",
    // 5: OAuth 2.0 codes and tokens, by the SHA-256 of their secret (xref/grants.rs).
    "CREATE TABLE oauth_grants (
        digest       TEXT    NOT NULL PRIMARY KEY,
        kind         TEXT    NOT NULL,
        tenant       TEXT    NOT NULL,
        client_id    TEXT    NOT NULL,
        family       TEXT    NOT NULL,
        grant_type   TEXT    NOT NULL,
        issued_at    INTEGER NOT NULL,
        expires_at   INTEGER NOT NULL,
        used_at      INTEGER,
        revoked_at   INTEGER,
        redirect_uri TEXT,
        challenge    TEXT
    ) WITHOUT ROWID;
    CREATE INDEX oauth_grants_family ON oauth_grants (family);
    CREATE INDEX oauth_grants_client ON oauth_grants (client_id);
    CREATE INDEX oauth_grants_tenant ON oauth_grants (tenant);
    CREATE INDEX oauth_grants_expiry ON oauth_grants (expires_at);",
    // 6: the outbox of directory-sync events, one row per event and endpoint
    // (xref/outbox.rs), written in the transaction of the change it tells of. No index by
    // event id: the single writer pays for every index on every create, and only
    // `events show|replay <id>` look an event up (a scan of the rows kept).
    "CREATE TABLE webhook_outbox (
        seq             INTEGER PRIMARY KEY,
        event_id        TEXT    NOT NULL,
        tenant          TEXT    NOT NULL,
        endpoint        TEXT    NOT NULL,
        event_type      TEXT    NOT NULL,
        ordering_key    TEXT    NOT NULL,
        order_hash      INTEGER NOT NULL,
        body            TEXT    NOT NULL,
        created_ms      INTEGER NOT NULL,
        window_start_ms INTEGER NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL,
        lease_owner     TEXT,
        lease_until_ms  INTEGER,
        last_status     INTEGER,
        last_error      TEXT,
        last_attempt_ms INTEGER,
        delivered_ms    INTEGER,
        dead_ms         INTEGER
    );
    CREATE INDEX webhook_outbox_pending
        ON webhook_outbox (tenant, endpoint, seq, order_hash, next_attempt_ms)
        WHERE delivered_ms IS NULL AND dead_ms IS NULL;
    CREATE INDEX webhook_outbox_delivered ON webhook_outbox (delivered_ms)
        WHERE delivered_ms IS NOT NULL;
    CREATE INDEX webhook_outbox_dead ON webhook_outbox (dead_ms) WHERE dead_ms IS NOT NULL;",
];

/// The schema version this build migrates to.
pub(super) fn latest() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// Brings the database at `path` (open as `conn`) to the latest schema version.
///
/// Refuses a file whose version is newer than this build knows.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if current > latest() {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found: current,
            supported: latest(),
        });
    }
    let done = usize::try_from(current).unwrap_or(0);
    for (index, step) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction()?;
        tx.execute_batch(step)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(index + 1).unwrap_or(i64::MAX),
        )?;
        tx.commit()?;
    }
    Ok(())
}
