//! Tests of the cross-reference store: schema, every method, files, concurrency.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

use super::migrations::{MIGRATIONS, latest};
use super::{
    Attempt, Change, Leased, NewEvent, OutboxFilter, Replay, RowState, Seen, Store, StoreError,
};
use mapping::ids::{ExternalId, LegacyId, ScimId, TenantId};

const USER: &str = "User";

fn acme() -> TenantId {
    TenantId::new("acme")
}

fn seen(legacy: &str, external: Option<&str>, user_name: Option<&str>) -> Seen {
    seen_in(&acme(), USER, legacy, external, user_name)
}

fn seen_in(
    tenant: &TenantId,
    resource_type: &str,
    legacy: &str,
    external: Option<&str>,
    user_name: Option<&str>,
) -> Seen {
    let legacy_id = LegacyId::new(legacy);
    Seen {
        scim_id: ScimId::derive(tenant, resource_type, &legacy_id),
        legacy_id,
        external_id: external.map(ExternalId::new),
        user_name: user_name.map(str::to_owned),
        fingerprint: None,
    }
}

fn sid(legacy: &str) -> ScimId {
    ScimId::derive(&acme(), USER, &LegacyId::new(legacy))
}

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("data").join("xref.sqlite3")
}

async fn open_temp() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&db_path(&dir)).await.expect("open");
    (dir, store)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn open_creates_private_directory_and_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a").join("b").join("xref.sqlite3");
    let store = Store::open(&path).await.expect("open");
    assert_eq!(mode(&dir.path().join("a")), 0o700);
    assert_eq!(mode(&dir.path().join("a").join("b")), 0o700);
    assert_eq!(mode(&path), 0o600);
    store
        .upsert(&acme(), USER, seen("1", None, None))
        .await
        .expect("upsert");
    // SQLite gives the WAL and shared-memory files the database file's mode.
    let wal = path.with_file_name("xref.sqlite3-wal");
    assert_eq!(mode(&wal), 0o600);
    assert_eq!(mode(&path.with_file_name("xref.sqlite3-shm")), 0o600);
    store.close().await.expect("close");
}

#[tokio::test]
async fn open_sets_wal_and_schema_version_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let store = Store::open(&path).await.expect("first open");
    store
        .seen(&acme(), USER, vec![seen("7", Some("ext-7"), Some("ann"))])
        .await
        .expect("seen");
    store.close().await.expect("close");

    for _ in 0..2 {
        // A migration step that ran again would fail: `CREATE TABLE xref` already exists.
        let store = Store::open(&path).await.expect("reopen");
        let rec = store
            .get(&acme(), USER, &sid("7"))
            .await
            .expect("get")
            .expect("kept");
        assert_eq!(rec.user_name.as_deref(), Some("ann"));
        assert_eq!(rec.version, 1);
        store.close().await.expect("close");
    }

    let conn = Connection::open(&path).expect("raw open");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, latest());
    assert_eq!(version, MIGRATIONS.len() as i64);
    let journal: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(journal, "wal");
    let indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'xref' ORDER BY name")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        indexes,
        [
            "xref_external",
            "xref_legacy",
            "xref_legacy_any",
            "xref_tombstoned",
            "xref_user_name"
        ]
    );
    // Listing the tombstones reads the partial index, not every row of the tenant (a user
    // list asks for them on every call; a scan made an initial push quadratic).
    let plan: Vec<String> = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT t.legacy_id FROM xref AS t INDEXED BY xref_tombstoned \
             WHERE t.tenant = ?1 AND t.resource_type = ?2 AND t.tombstoned_at IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM xref AS l WHERE l.tenant = ?1 \
             AND l.resource_type = ?2 AND l.legacy_id = t.legacy_id \
             AND l.tombstoned_at IS NULL)",
        )
        .expect("prepare")
        .query_map(("acme", "User"), |r| r.get::<_, String>(3))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert!(
        plan.iter().any(|p| p.contains("xref_tombstoned")),
        "{plan:?}"
    );
}

/// A database file every migration ran on, closed: its directory (kept while it lives) and
/// its path.
async fn migrated() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    Store::open(&path)
        .await
        .expect("open")
        .close()
        .await
        .expect("close");
    (dir, path)
}

/// The outbox's queue counts (read at every `/metrics` scrape) go through the partial
/// indexes of pending and dead rows, never a scan of the table and its delivered rows.
#[tokio::test]
async fn outbox_queue_counts_read_the_partial_indexes_only() {
    let (_dir, path) = migrated().await;
    let conn = Connection::open(&path).expect("raw open");
    let plan: Vec<String> = conn
        .prepare(&format!(
            "EXPLAIN QUERY PLAN {}",
            super::outbox::STATS_SQLITE
        ))
        .expect("prepare")
        .query_map([], |r| r.get::<_, String>(3))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let reads: Vec<&String> = plan
        .iter()
        .filter(|p| p.contains("webhook_outbox"))
        .collect();
    assert_eq!(reads.len(), 2, "{plan:?}");
    assert!(
        reads
            .iter()
            .all(|p| p.contains("USING INDEX webhook_outbox_pending")
                || p.contains("USING INDEX webhook_outbox_dead")),
        "{plan:?}"
    );
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let (_dir, path) = migrated().await;
    Connection::open(&path)
        .expect("raw")
        .pragma_update(None, "user_version", 99)
        .expect("bump");
    match Store::open(&path).await {
        Err(StoreError::SchemaTooNew {
            found: 99,
            supported,
            ..
        }) => assert_eq!(supported, latest()),
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn garbage_file_is_refused_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("xref.sqlite3");
    std::fs::write(&path, vec![0x5a_u8; 8192]).expect("write garbage");
    match Store::open(&path).await {
        Err(StoreError::Corrupt(message)) => {
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains("move the file"), "{message}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Nothing was written over it.
    assert_eq!(std::fs::read(&path).expect("read"), vec![0x5a_u8; 8192]);
}

#[tokio::test]
async fn damaged_pages_are_refused_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let store = Store::open(&path).await.expect("open");
    let rows = (0..2000)
        .map(|i| seen(&i.to_string(), Some("e"), Some("a long enough name")))
        .collect();
    store.seen(&acme(), USER, rows).await.expect("seen");
    store.close().await.expect("close");

    let mut bytes = std::fs::read(&path).expect("read");
    assert!(
        bytes.len() > 16 * 4096,
        "database too small to damage: {}",
        bytes.len()
    );
    // Keep the header page, scribble over the rest.
    for byte in bytes.iter_mut().skip(4096) {
        *byte = 0xa5;
    }
    std::fs::write(&path, bytes).expect("write");
    assert!(matches!(
        Store::open(&path).await,
        Err(StoreError::Corrupt(_))
    ));
}

async fn seen_inserts_absent_rows_in_input_order(store: Store) {
    let rows = vec![
        seen("3", Some("ext-3"), Some("carol")),
        seen("1", None, Some("alice")),
        seen("2", Some("ext-2"), None),
    ];
    let out = store.seen(&acme(), USER, rows).await.expect("seen");
    let legacy: Vec<&str> = out.iter().map(|r| r.legacy_id.as_str()).collect();
    assert_eq!(legacy, ["3", "1", "2"]);
    for rec in &out {
        assert_eq!(rec.tenant, acme());
        assert_eq!(rec.resource_type, USER);
        assert_eq!(rec.scim_id, sid(rec.legacy_id.as_str()));
        assert_eq!(rec.version, 1);
        assert_eq!(rec.created, rec.last_modified);
        assert!(rec.tombstoned_at.is_none());
        time::OffsetDateTime::parse(&rec.created, &time::format_description::well_known::Rfc3339)
            .expect("created is RFC 3339");
        assert!(rec.created.ends_with('Z'));
    }
    assert_eq!(out[0].external_id, Some(ExternalId::new("ext-3")));
    assert_eq!(out[1].user_name.as_deref(), Some("alice"));
    // What `seen` answered is what is stored.
    for rec in &out {
        assert_eq!(
            store
                .get(&acme(), USER, &rec.scim_id)
                .await
                .expect("get")
                .as_ref(),
            Some(rec)
        );
    }
    assert_eq!(store.counts(&acme(), USER).await.expect("counts"), (3, 0));
}

async fn seen_refreshes_changed_rows_and_keeps_remembered_values(store: Store) {
    let first = store
        .seen(&acme(), USER, vec![seen("1", Some("ext-1"), Some("alice"))])
        .await;
    let first = first.expect("seen").remove(0);

    // Same data: no change, no version bump.
    let same = store
        .seen(&acme(), USER, vec![seen("1", Some("ext-1"), Some("alice"))])
        .await;
    assert_eq!(same.expect("seen").remove(0), first);

    // The page did not say: remembered values are kept.
    let silent = store.seen(&acme(), USER, vec![seen("1", None, None)]).await;
    assert_eq!(silent.expect("seen").remove(0), first);

    // A new userName: refreshed, version bumped, externalId kept.
    let renamed = store
        .seen(&acme(), USER, vec![seen("1", None, Some("alice2"))])
        .await;
    let renamed = renamed.expect("seen").remove(0);
    assert_eq!(renamed.user_name.as_deref(), Some("alice2"));
    assert_eq!(renamed.external_id, Some(ExternalId::new("ext-1")));
    assert_eq!(renamed.version, 2);
    assert_eq!(renamed.created, first.created);
    assert!(renamed.last_modified >= first.last_modified);
    assert_eq!(
        store.get(&acme(), USER, &sid("1")).await.expect("get"),
        Some(renamed)
    );
}

async fn seen_with_duplicate_rows_in_one_call_records_once(store: Store) {
    let out = store
        .seen(
            &acme(),
            USER,
            vec![seen("1", None, Some("a")), seen("1", None, Some("b"))],
        )
        .await
        .expect("seen");
    assert_eq!(out[0].version, 1);
    assert_eq!(out[1].version, 2);
    assert_eq!(out[1].user_name.as_deref(), Some("b"));
    assert_eq!(store.counts(&acme(), USER).await.expect("counts"), (1, 0));
}

async fn seen_of_a_thousand_rows_in_one_call(store: Store) {
    let rows: Vec<Seen> = (0..1000)
        .map(|i| {
            seen(
                &format!("L{i}"),
                Some(&format!("E{i}")),
                Some(&format!("user{i}")),
            )
        })
        .collect();
    let out = store.seen(&acme(), USER, rows).await.expect("seen");
    assert_eq!(out.len(), 1000);
    assert!(
        out.iter()
            .enumerate()
            .all(|(i, r)| r.legacy_id.as_str() == format!("L{i}"))
    );
    // One transaction: every row carries the same timestamp.
    assert!(out.iter().all(|r| r.created == out[0].created));
    assert_eq!(
        store.counts(&acme(), USER).await.expect("counts"),
        (1000, 0)
    );
    let rec = store
        .get_by_legacy(&acme(), USER, &LegacyId::new("L999"))
        .await
        .expect("get");
    assert_eq!(rec.and_then(|r| r.user_name).as_deref(), Some("user999"));
}

async fn seen_is_atomic_and_refuses_ids_that_disagree(store: Store) {
    store
        .seen(&acme(), USER, vec![seen("1", None, None)])
        .await
        .expect("seen");

    // A SCIM id that is not the one derived for legacy id "1" but says it is that record.
    let mut bad = seen("1", None, None);
    bad.scim_id = ScimId::new("not-derived");
    let batch = vec![seen("2", None, None), seen("3", None, None), bad];
    match store.seen(&acme(), USER, batch).await {
        Err(StoreError::IdConflict { scim_id, legacy_id }) => {
            assert_eq!(scim_id.as_str(), "not-derived");
            assert_eq!(legacy_id.as_str(), "1");
        }
        other => panic!("expected IdConflict, got {other:?}"),
    }
    // Rows 2 and 3 were rolled back with the rest of the call.
    assert_eq!(store.counts(&acme(), USER).await.expect("counts"), (1, 0));

    // A stored SCIM id offered with another legacy id.
    let mut moved = seen("9", None, None);
    moved.scim_id = sid("1");
    let err = store
        .upsert(&acme(), USER, moved)
        .await
        .expect_err("conflict");
    assert!(matches!(err, StoreError::IdConflict { .. }), "{err:?}");
}

/// A row of a fingerprinted mapping: legacy id `legacy` held by the account `fingerprint`.
fn held(legacy: &str, fingerprint: &str) -> Seen {
    let legacy_id = LegacyId::new(legacy);
    Seen {
        scim_id: ScimId::derive_fingerprinted(&acme(), USER, &legacy_id, fingerprint),
        legacy_id,
        external_id: None,
        user_name: Some(format!("{legacy}@{fingerprint}")),
        fingerprint: Some(fingerprint.to_owned()),
    }
}

async fn a_reused_legacy_id_gets_a_new_row_and_the_old_stays_gone(store: Store) {
    let (ann, bob, cy) = (held("7", "t1"), held("7", "t2"), held("7", "t3"));
    store
        .seen(&acme(), USER, vec![ann.clone()])
        .await
        .expect("ann");
    assert!(
        store
            .tombstone(&acme(), USER, &ann.scim_id)
            .await
            .expect("gone")
    );
    let tombstoned = store.tombstoned(&acme(), USER).await.expect("tombstoned");
    assert!(tombstoned.contains(&LegacyId::new("7")));

    // The app gives id 7 to Bob: a row of his own; Ann's tombstone stays.
    let rows = store
        .seen(&acme(), USER, vec![bob.clone()])
        .await
        .expect("bob");
    assert_eq!(rows[0].scim_id, bob.scim_id);
    assert_eq!(rows[0].fingerprint.as_deref(), Some("t2"));
    assert!(rows[0].tombstoned_at.is_none());
    let old = store.get(&acme(), USER, &ann.scim_id).await.expect("get");
    assert!(old.expect("kept").tombstoned_at.is_some());
    // Id 7 is live again (Bob's), so list totals no longer hide it.
    let tombstoned = store.tombstoned(&acme(), USER).await.expect("tombstoned");
    assert!(!tombstoned.contains(&LegacyId::new("7")));
    let by_legacy = store
        .get_by_legacy(&acme(), USER, &LegacyId::new("7"))
        .await;
    assert_eq!(by_legacy.expect("get").expect("live").scim_id, bob.scim_id);
    let live = store
        .live_by_legacy(&acme(), USER, vec![LegacyId::new("7"), LegacyId::new("8")])
        .await
        .expect("live");
    assert_eq!(live[0].as_ref().map(|r| &r.scim_id), Some(&bob.scim_id));
    assert!(live[1].is_none());

    // Bob deleted outside the sidecar (his row still live), id 7 given to Cy: Bob's row is
    // tombstoned as Cy's is recorded. Lifting Ann's tombstone (her account back) ends Cy's.
    store.upsert(&acme(), USER, cy.clone()).await.expect("cy");
    let bob_now = store.get(&acme(), USER, &bob.scim_id).await.expect("get");
    assert!(bob_now.expect("kept").tombstoned_at.is_some());
    assert_eq!(store.counts(&acme(), USER).await.expect("counts"), (1, 2));
    assert!(
        store
            .lift_tombstone(&acme(), USER, &ann.scim_id)
            .await
            .expect("lift")
    );
    let cy_now = store.get(&acme(), USER, &cy.scim_id).await.expect("get");
    assert!(
        cy_now.expect("kept").tombstoned_at.is_some(),
        "one live row per legacy id"
    );
    assert_eq!(store.counts(&acme(), USER).await.expect("counts"), (1, 2));

    // Without a fingerprint a legacy id keeps its one SCIM id, tombstoned or not.
    store
        .seen(&acme(), USER, vec![seen("9", None, None)])
        .await
        .expect("9");
    assert!(
        store
            .tombstone(&acme(), USER, &sid("9"))
            .await
            .expect("gone")
    );
    let mut other = seen("9", None, None);
    other.scim_id = ScimId::new("not-derived");
    let err = store
        .seen(&acme(), USER, vec![other])
        .await
        .expect_err("conflict");
    assert!(matches!(err, StoreError::IdConflict { .. }), "{err:?}");
}

async fn lookups_by_each_key(store: Store) {
    let rows = vec![
        seen("1", Some("okta-1"), Some("Alice@Example.com")),
        seen("2", Some("okta-shared"), Some("bob")),
        seen("3", Some("okta-shared"), Some("ALICE@example.COM")),
    ];
    store.seen(&acme(), USER, rows).await.expect("seen");

    let got = store
        .get(&acme(), USER, &sid("1"))
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got.legacy_id.as_str(), "1");
    assert!(
        store
            .get(&acme(), USER, &sid("404"))
            .await
            .expect("get")
            .is_none()
    );

    let got = store
        .get_by_legacy(&acme(), USER, &LegacyId::new("2"))
        .await
        .expect("legacy");
    assert_eq!(got.map(|r| r.scim_id), Some(sid("2")));
    assert!(
        store
            .get_by_legacy(&acme(), USER, &LegacyId::new("x"))
            .await
            .expect("l")
            .is_none()
    );

    let shared = store
        .get_by_external(&acme(), USER, &ExternalId::new("okta-shared"))
        .await;
    let mut legacy: Vec<String> = shared
        .expect("external")
        .into_iter()
        .map(|r| r.legacy_id.into_inner())
        .collect();
    legacy.sort();
    assert_eq!(legacy, ["2", "3"]);
    let none = store
        .get_by_external(&acme(), USER, &ExternalId::new("nobody"))
        .await;
    assert!(none.expect("external").is_empty());

    let by_name = store
        .get_by_user_name(&acme(), USER, "alice@EXAMPLE.com")
        .await;
    let mut legacy: Vec<String> = by_name
        .expect("name")
        .into_iter()
        .map(|r| r.legacy_id.into_inner())
        .collect();
    legacy.sort();
    assert_eq!(legacy, ["1", "3"]);
}

async fn tenants_and_resource_types_are_kept_apart(store: Store) {
    let other = TenantId::new("globex");
    store
        .seen(&acme(), USER, vec![seen("1", Some("x"), Some("u"))])
        .await
        .expect("acme user");
    store
        .seen(
            &other,
            USER,
            vec![seen_in(&other, USER, "1", Some("x"), Some("u"))],
        )
        .await
        .expect("globex user");
    store
        .seen(
            &acme(),
            "Group",
            vec![seen_in(&acme(), "Group", "1", Some("x"), Some("u"))],
        )
        .await
        .expect("acme group");

    assert_eq!(store.counts(&acme(), USER).await.expect("c"), (1, 0));
    assert_eq!(store.counts(&other, USER).await.expect("c"), (1, 0));
    assert_eq!(store.counts(&acme(), "Group").await.expect("c"), (1, 0));
    assert_eq!(store.counts(&other, "Group").await.expect("c"), (0, 0));
    let ext = store
        .get_by_external(&other, USER, &ExternalId::new("x"))
        .await
        .expect("ext");
    assert_eq!(ext.len(), 1);
    assert_eq!(ext[0].tenant, other);
    // The acme user's SCIM id is unknown to globex.
    assert!(
        store
            .get(&other, USER, &sid("1"))
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        !store
            .tombstone(&other, USER, &sid("1"))
            .await
            .expect("tombstone")
    );
    assert_eq!(store.counts(&acme(), USER).await.expect("c"), (1, 0));
    store
        .tombstone(&acme(), USER, &sid("1"))
        .await
        .expect("tombstone");
    let all = store.all_counts().await.expect("all counts");
    assert_eq!(
        all,
        vec![
            (acme(), "Group".to_owned(), 1, 0),
            (acme(), USER.to_owned(), 0, 1),
            (other.clone(), USER.to_owned(), 1, 0),
        ]
    );
    store.check_writable().await.expect("writable");
    store.close().await.expect("close");
    assert!(matches!(
        store.check_writable().await,
        Err(StoreError::Closed)
    ));
}

async fn upsert_inserts_then_sets_fields_and_bumps_version(store: Store) {
    let created = store
        .upsert(&acme(), USER, seen("5", Some("okta-5"), Some("eve")))
        .await;
    let created = created.expect("insert");
    assert_eq!(created.version, 1);
    assert_eq!(created.external_id, Some(ExternalId::new("okta-5")));

    // Same values: an update after a write still bumps the version.
    let again = store
        .upsert(&acme(), USER, seen("5", Some("okta-5"), Some("eve")))
        .await;
    assert_eq!(again.expect("update").version, 2);

    // `None` clears (unlike `seen`).
    let cleared = store
        .upsert(&acme(), USER, seen("5", None, Some("eve2")))
        .await
        .expect("update");
    assert_eq!(cleared.version, 3);
    assert_eq!(cleared.external_id, None);
    assert_eq!(cleared.user_name.as_deref(), Some("eve2"));
    assert_eq!(cleared.created, created.created);
    assert_eq!(
        store.get(&acme(), USER, &sid("5")).await.expect("get"),
        Some(cleared)
    );
}

async fn tombstones_are_set_listed_counted_and_lifted(store: Store) {
    let rows = (1..=4).map(|i| seen(&i.to_string(), None, None)).collect();
    store.seen(&acme(), USER, rows).await.expect("seen");

    assert!(store.tombstone(&acme(), USER, &sid("2")).await.expect("t2"));
    assert!(store.tombstone(&acme(), USER, &sid("4")).await.expect("t4"));
    assert!(
        !store
            .tombstone(&acme(), USER, &sid("4"))
            .await
            .expect("t4 again"),
        "already dead"
    );
    assert!(
        !store
            .tombstone(&acme(), USER, &sid("404"))
            .await
            .expect("unknown")
    );

    let dead = store.tombstoned(&acme(), USER).await.expect("tombstoned");
    assert_eq!(
        dead,
        HashSet::from([LegacyId::new("2"), LegacyId::new("4")])
    );
    assert_eq!(store.counts(&acme(), USER).await.expect("counts"), (2, 2));
    let rec = store
        .get(&acme(), USER, &sid("2"))
        .await
        .expect("get")
        .expect("kept");
    assert!(rec.tombstoned_at.is_some());
    assert_eq!(rec.version, 2);

    // Neither `seen` nor `upsert` lifts a tombstone.
    store
        .seen(&acme(), USER, vec![seen("2", Some("e"), Some("n"))])
        .await
        .expect("seen");
    store
        .upsert(&acme(), USER, seen("4", Some("e"), Some("n")))
        .await
        .expect("upsert");
    assert_eq!(store.counts(&acme(), USER).await.expect("counts"), (2, 2));

    assert!(
        store
            .lift_tombstone(&acme(), USER, &sid("2"))
            .await
            .expect("lift")
    );
    assert!(
        !store
            .lift_tombstone(&acme(), USER, &sid("2"))
            .await
            .expect("lift again")
    );
    assert!(
        !store
            .lift_tombstone(&acme(), USER, &sid("1"))
            .await
            .expect("live")
    );
    let rec = store
        .get(&acme(), USER, &sid("2"))
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(rec.tombstoned_at, None);
    assert_eq!(rec.user_name.as_deref(), Some("n"));
    assert_eq!(rec.version, 4);
    assert_eq!(
        store.tombstoned(&acme(), USER).await.expect("tombstoned"),
        HashSet::from([LegacyId::new("4")])
    );
    assert_eq!(store.counts(&acme(), USER).await.expect("counts"), (3, 1));
}

/// The WAL header's checkpoint sequence number (bytes 12..16, big-endian): it moves each
/// time the WAL restarts.
fn wal_sequence(wal: &Path) -> u32 {
    let bytes = std::fs::read(wal).expect("WAL");
    u32::from_be_bytes(bytes[12..16].try_into().expect("4 bytes"))
}

/// Records user `i` (legacy id and name from `i`), one write transaction.
async fn record_user(store: &Store, i: u32) {
    let user_name = format!("user-{i}");
    store
        .seen(
            &acme(),
            USER,
            vec![seen(&i.to_string(), None, Some(&user_name))],
        )
        .await
        .expect("seen");
}

/// Once commits have left enough frames in the WAL, the checkpointer thread copies it into
/// the database file while the store serves (the writer's commits no longer do it
/// themselves), and the WAL restarts: its header's checkpoint sequence number moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grown_wal_is_checkpointed_by_its_own_thread_and_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let store = Store::open_checkpointing(&path, 16).await.expect("open");
    let db_len = || std::fs::metadata(&path).expect("database file").len();
    let wal = path.with_file_name("xref.sqlite3-wal");
    let sequence = || wal_sequence(&wal);
    let write = |i: u32| record_user(&store, i);
    write(0).await;
    let (db_before, sequence_before) = (db_len(), sequence());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut written = 1;
    while store.sqlite().checkpoints() == 0 || sequence() == sequence_before {
        assert!(
            std::time::Instant::now() < deadline,
            "no restart after {written} writes: {} checkpoints, WAL sequence {}",
            store.sqlite().checkpoints(),
            sequence()
        );
        write(written).await;
        written += 1;
    }
    assert!(
        db_len() > db_before,
        "the checkpoints reached the database file"
    );
    assert_eq!(
        store.counts(&acme(), USER).await.expect("counts").0,
        u64::from(written)
    );
    store.close().await.expect("close");
}

/// Under continuous writes, the checkpointer's copy misses what was committed while it
/// ran (here: what a reader's snapshot kept it from copying); the writer copies that after
/// its next commits, until nothing is left, so the write after restarts the WAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_copies_what_the_checkpointer_could_not_so_the_wal_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let store = Store::open_checkpointing(&path, 64).await.expect("open");
    let wal = path.with_file_name("xref.sqlite3-wal");
    let sequence = || wal_sequence(&wal);
    let write = |i: u32| record_user(&store, i);
    write(0).await;
    let pin = Connection::open(&path).expect("open a reader");
    pin.execute_batch("BEGIN").expect("begin");
    let pinned: i64 = pin
        .query_row("SELECT count(*) FROM xref", [], |r| r.get(0))
        .expect("read");
    assert_eq!(pinned, 1);
    let sequence_before = sequence();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut written = 1;
    while store.sqlite().checkpoints() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the checkpointer never ran"
        );
        if written < 200 {
            write(written).await;
            written += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(
        sequence(),
        sequence_before,
        "a pinned snapshot keeps the WAL"
    );
    pin.execute_batch("COMMIT").expect("release the snapshot");
    drop(pin);
    write(written).await;
    write(written + 1).await;
    assert_ne!(
        sequence(),
        sequence_before,
        "the WAL restarted at the second write after the reader left"
    );
    store.close().await.expect("close");
}

/// After a close, the WAL beside the database at `path` is gone or empty.
fn assert_wal_flushed(path: &Path) {
    let wal = path.with_file_name("xref.sqlite3-wal");
    assert!(
        std::fs::metadata(&wal)
            .map(|m| m.len() == 0)
            .unwrap_or(true),
        "WAL not flushed"
    );
}

#[tokio::test]
async fn close_checkpoints_and_later_calls_answer_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let store = Store::open(&path).await.expect("open");
    let clone = store.clone();
    store
        .seen(&acme(), USER, vec![seen("1", None, Some("a"))])
        .await
        .expect("seen");
    store.close().await.expect("close");

    assert_wal_flushed(&path);
    assert!(matches!(
        clone.get(&acme(), USER, &sid("1")).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(
        clone.seen(&acme(), USER, vec![]).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(
        clone.tombstone(&acme(), USER, &sid("1")).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(
        clone.counts(&acme(), USER).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(clone.close().await, Err(StoreError::Closed)));

    // Everything reached the main database file.
    let conn = Connection::open(&path).expect("raw");
    let n: i64 = conn
        .query_row("SELECT count(*) FROM xref", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 1);
}

async fn many_tasks_at_once(store: Store) {
    let mut tasks = Vec::new();
    for t in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..10 {
                let rows: Vec<Seen> = (0..5)
                    .map(|i| {
                        seen(
                            &format!("{t}-{i}"),
                            None,
                            Some(&format!("u{t}-{i}-{round}")),
                        )
                    })
                    .collect();
                let out = store.seen(&acme(), USER, rows).await.expect("seen");
                assert_eq!(out.len(), 5);
                for rec in out {
                    let got = store.get(&acme(), USER, &rec.scim_id).await.expect("get");
                    let got = got.expect("visible after write");
                    assert!(got.version >= rec.version);
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(store.counts(&acme(), USER).await.expect("counts"), (160, 0));
    // Each row was renamed in every round after the first.
    let rec = store
        .get(&acme(), USER, &sid("7-3"))
        .await
        .expect("get")
        .expect("present");
    assert_eq!(rec.version, 10);
    assert_eq!(rec.user_name.as_deref(), Some("u7-3-9"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_do_not_wait_for_a_long_write_transaction() {
    let (_dir, store) = open_temp().await;
    store
        .seen(&acme(), USER, vec![seen("1", None, Some("before"))])
        .await
        .expect("seen");

    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let writer = store.clone();
    let long_write = tokio::spawn(async move {
        writer
            .sqlite()
            .write(move |conn| {
                conn.execute("UPDATE xref SET user_name = 'after'", [])?;
                let _ = started_tx.send(());
                // Holds the write transaction open until the test has read.
                let _ = release_rx.recv();
                Ok(())
            })
            .await
    });
    started_rx.await.expect("write started");

    let read = tokio::time::timeout(Duration::from_secs(10), store.get(&acme(), USER, &sid("1")))
        .await
        .expect("a read queued behind the write transaction");
    let rec = read.expect("get").expect("present");
    assert_eq!(
        rec.user_name.as_deref(),
        Some("before"),
        "read saw uncommitted data"
    );

    release_tx.send(()).expect("release");
    long_write.await.expect("join").expect("write");
    let rec = store
        .get(&acme(), USER, &sid("1"))
        .await
        .expect("get")
        .expect("present");
    assert_eq!(rec.user_name.as_deref(), Some("after"));
}

#[tokio::test]
async fn a_panicking_write_loses_only_itself() {
    let (_dir, store) = open_temp().await;
    store
        .seen(&acme(), USER, vec![seen("0", None, None)])
        .await
        .expect("seen");
    let err = store
        .sqlite()
        .write(|conn| -> Result<(), StoreError> {
            conn.execute("DELETE FROM xref", [])?;
            panic!("boom");
        })
        .await
        .expect_err("panicked");
    assert!(matches!(err, StoreError::WorkerLost), "{err:?}");
    let out = store
        .seen(&acme(), USER, vec![seen("1", None, None)])
        .await
        .expect("still serving");
    assert_eq!(out.len(), 1);
    assert!(
        store
            .get(&acme(), USER, &sid("0"))
            .await
            .expect("get")
            .is_some(),
        "the panicking write's DELETE was rolled back"
    );
}

/// A write alone in its transaction (no savepoint) that fails after changing rows: its
/// changes are rolled back, its own error answers it, the writer goes on.
#[tokio::test]
async fn a_lone_write_that_fails_loses_only_itself() {
    let (_dir, store) = open_temp().await;
    store
        .seen(&acme(), USER, vec![seen("0", None, Some("zero"))])
        .await
        .expect("seen");
    let before = store.sqlite().transactions();
    let err = store
        .sqlite()
        .write(|conn| -> Result<(), StoreError> {
            conn.execute("UPDATE xref SET user_name = 'clobbered'", [])?;
            Err(StoreError::Busy { what: "test" })
        })
        .await
        .expect_err("failed");
    assert!(matches!(err, StoreError::Busy { .. }), "{err:?}");
    assert_eq!(
        store.sqlite().transactions() - before,
        1,
        "one transaction, ended"
    );
    let rec = store.get(&acme(), USER, &sid("0")).await.expect("get");
    assert_eq!(
        rec.expect("present").user_name.as_deref(),
        Some("zero"),
        "the failed write's UPDATE was rolled back"
    );
    let rolled: Result<(), StoreError> = store
        .sqlite()
        .write(|conn| Ok(conn.execute_batch("ROLLBACK")?))
        .await;
    let err = rolled.expect_err("a write that ends its transaction does not stand");
    assert!(err.to_string().contains("Error code 516"), "{err}");
    store
        .seen(&acme(), USER, vec![seen("1", None, None)])
        .await
        .expect("still serving");
}

/// A write waiting for the writer, polled once so it is queued; boxed to one type.
type Queued = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send>>;

/// Holds the writer in a write of its own until the returned sender is dropped or sent to.
async fn hold_the_writer(
    store: &Store,
) -> (
    std::sync::mpsc::Sender<()>,
    tokio::task::JoinHandle<Result<(), StoreError>>,
) {
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let sqlite = store.sqlite().clone();
    let held = tokio::spawn(async move {
        sqlite
            .write(move |_| {
                let _ = started_tx.send(());
                let _ = release_rx.recv();
                Ok(())
            })
            .await
    });
    started_rx.await.expect("the writer took the holding write");
    (release_tx, held)
}

/// Polls each write once: each is then in the writer's queue, in this order.
async fn queue(writes: &mut [Queued]) {
    for w in writes.iter_mut() {
        let pending =
            std::future::poll_fn(|cx| std::task::Poll::Ready(w.as_mut().poll(cx).is_pending()))
                .await;
        assert!(pending, "a queued write waits for the writer");
    }
}

/// Writes queued while the writer is busy are committed in one transaction when it is free,
/// and answered after that commit (a read right after sees them); one that fails is rolled
/// back alone, one that panics loses only itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_queued_together_commit_together_and_fail_alone() {
    let (_dir, store) = open_temp().await;
    store
        .seen(&acme(), USER, vec![seen("kept", None, Some("kept"))])
        .await
        .expect("seen");
    let (release, held) = hold_the_writer(&store).await;
    let before = store.sqlite().transactions();

    let create = |i: u32| -> Queued {
        let store = store.clone();
        Box::pin(async move {
            store
                .upsert(
                    &acme(),
                    USER,
                    seen(&i.to_string(), None, Some(&format!("u{i}"))),
                )
                .await
                .map(drop)
        })
    };
    let mut writes: Vec<Queued> = (0..20).map(create).collect();
    let sqlite = store.sqlite().clone();
    writes.push(Box::pin(async move {
        sqlite
            .write(|conn| {
                conn.execute("UPDATE xref SET user_name = 'clobbered'", [])?;
                Err(StoreError::Busy { what: "test" })
            })
            .await
    }));
    let sqlite = store.sqlite().clone();
    writes.push(Box::pin(async move {
        sqlite
            .write(|conn| -> Result<(), StoreError> {
                conn.execute("DELETE FROM xref", [])?;
                panic!("boom");
            })
            .await
    }));
    writes.extend((20..40).map(create));
    queue(&mut writes).await;
    release.send(()).expect("release");
    held.await.expect("join").expect("the holding write");

    let answers = futures_util::future::join_all(writes).await;
    for (i, answer) in answers.iter().enumerate() {
        match i {
            20 => assert!(matches!(answer, Err(StoreError::Busy { .. })), "{answer:?}"),
            21 => assert!(matches!(answer, Err(StoreError::WorkerLost)), "{answer:?}"),
            _ => assert!(answer.is_ok(), "write {i}: {answer:?}"),
        }
    }
    assert_eq!(
        store.sqlite().transactions() - before,
        2,
        "the holding write, then the 42 queued behind it in one transaction"
    );
    for i in (0..40).map(|i| i.to_string()).chain(["kept".to_owned()]) {
        let rec = store
            .get(&acme(), USER, &sid(&i))
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("{i} committed"));
        assert_ne!(rec.user_name.as_deref(), Some("clobbered"));
    }
}

/// Should SQLite end the batch's transaction on its own (here: a write that rolls it back,
/// as a full disk would), the writes run in it so far are answered with an error, since
/// none of them stands, and the writes after it go on in a new transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_in_a_transaction_sqlite_rolled_back_are_answered_with_an_error() {
    let (_dir, store) = open_temp().await;
    let (release, held) = hold_the_writer(&store).await;
    let create = |i: &'static str| -> Queued {
        let store = store.clone();
        Box::pin(async move {
            store
                .upsert(&acme(), USER, seen(i, None, None))
                .await
                .map(drop)
        })
    };
    let sqlite = store.sqlite().clone();
    let rollback: Queued = Box::pin(async move {
        sqlite
            .write(|conn| Ok(conn.execute_batch("ROLLBACK")?))
            .await
    });
    let mut writes = vec![create("1"), rollback, create("3")];
    queue(&mut writes).await;
    release.send(()).expect("release");
    held.await.expect("join").expect("the holding write");
    let answers = futures_util::future::join_all(writes).await;
    for answer in &answers[..2] {
        let err = answer.as_ref().expect_err("rolled back");
        assert!(err.to_string().contains("Error code 516"), "{err}");
    }
    answers[2].as_ref().expect("after the rollback");
    assert!(
        store
            .get(&acme(), USER, &sid("1"))
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        store
            .get(&acme(), USER, &sid("3"))
            .await
            .expect("get")
            .is_some()
    );
    // The writer still serves.
    store
        .seen(&acme(), USER, vec![seen("4", None, None)])
        .await
        .expect("seen");
}

#[tokio::test]
async fn a_panicking_read_loses_only_itself() {
    let (_dir, store) = open_temp().await;
    store
        .seen(&acme(), USER, vec![seen("1", None, None)])
        .await
        .expect("seen");
    let err = store
        .sqlite()
        .read(|_| -> Result<(), StoreError> { panic!("boom") })
        .await
        .expect_err("panicked");
    assert!(matches!(err, StoreError::WorkerLost), "{err:?}");
    // Every reader still serves: more reads than readers, all answered.
    for _ in 0..=super::sqlite::READERS * 2 {
        let n: i64 = store
            .sqlite()
            .read(|conn| Ok(conn.query_row("SELECT count(*) FROM xref", [], |r| r.get(0))?))
            .await
            .expect("read after the panic");
        assert_eq!(n, 1);
    }
    store.close().await.expect("close");
}

/// Reads run on the store's own reader threads, never more of them than `READERS`, however
/// many arrive at once (tokio's blocking pool, used before, grew a thread for each read that
/// found none idle, and the soak's memory grew with them). Reads queued before `close` are
/// answered; those after are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_run_on_a_fixed_set_of_reader_threads() {
    let (_dir, store) = open_temp().await;
    let reads = (0..400).map(|_| {
        store.sqlite().read(|conn| {
            conn.query_row("SELECT count(*) FROM xref", [], |r| r.get::<_, i64>(0))?;
            let me = std::thread::current();
            Ok((me.id(), me.name().map(str::to_owned)))
        })
    });
    let ran = futures_util::future::join_all(reads).await;
    let mut threads = std::collections::HashSet::new();
    for r in ran {
        let (id, name) = r.expect("read");
        assert_eq!(name.as_deref(), Some("xref-reader"));
        threads.insert(id);
    }
    assert!(threads.len() <= super::sqlite::READERS, "{threads:?}");

    let sqlite = store.sqlite().clone();
    let queued: Vec<_> = (0..50)
        .map(|_| {
            let s = sqlite.clone();
            tokio::spawn(async move { s.read(|_| Ok(())).await })
        })
        .collect();
    store.close().await.expect("close");
    for q in queued {
        match q.await.expect("join") {
            Ok(()) | Err(StoreError::Closed) => {}
            Err(e) => panic!("a read during close: {e:?}"),
        }
    }
    assert!(matches!(
        sqlite.read(|_| Ok(())).await,
        Err(StoreError::Closed)
    ));
}

#[tokio::test]
async fn sqlite_errors_do_not_display_sql() {
    let (_dir, store) = open_temp().await;
    let err = store
        .sqlite()
        .write(|conn| {
            conn.execute(
                "INSERT INTO no_such_table_xyz (secret_column) VALUES (1)",
                [],
            )?;
            Ok(())
        })
        .await
        .expect_err("bad SQL");
    let shown = err.to_string();
    assert!(matches!(err, StoreError::Sqlite(_)));
    assert!(!shown.contains("no_such_table_xyz"), "{shown}");
    assert!(!shown.contains("secret_column"), "{shown}");
    assert!(!shown.contains("INSERT"), "{shown}");
    assert!(
        shown.starts_with("cross-reference database error: Error code 1"),
        "{shown}"
    );
}

async fn get_many_answers_in_input_order(store: Store) {
    let rows: Vec<Seen> = (0..1500)
        .map(|i| seen(&i.to_string(), None, None))
        .collect();
    store.seen(&acme(), USER, rows).await.expect("seen");
    let ids = vec![sid("1499"), sid("nope"), sid("0"), sid("0")];
    let found = store.get_many(&acme(), USER, ids).await.expect("get_many");
    let legacy: Vec<Option<&str>> = found
        .iter()
        .map(|r| r.as_ref().map(|r| r.legacy_id.as_str()))
        .collect();
    assert_eq!(legacy, [Some("1499"), None, Some("0"), Some("0")]);
    let other = store
        .get_many(&TenantId::new("other"), USER, vec![sid("0")])
        .await
        .expect("get");
    assert_eq!(other, [None], "tenant isolation");
}

async fn upsert_refuses_ids_that_disagree(store: Store) {
    store
        .upsert(&acme(), USER, seen("1", Some("e1"), Some("ada")))
        .await
        .expect("insert");
    store
        .tombstone(&acme(), USER, &sid("1"))
        .await
        .expect("tombstone");
    // A SCIM id stored for legacy id 1, said to be legacy id 2.
    let mut moved = seen("2", None, None);
    moved.scim_id = sid("1");
    assert!(matches!(
        store.upsert(&acme(), USER, moved).await,
        Err(StoreError::IdConflict { .. })
    ));
    // Legacy id 1, held (tombstoned) by its own SCIM id, claimed by another one.
    let mut other = seen("1", None, None);
    other.scim_id = ScimId::new("not-derived");
    assert!(matches!(
        store.upsert(&acme(), USER, other).await,
        Err(StoreError::IdConflict { .. })
    ));
    // Nothing changed; the row of SCIM id 1 still updates, tombstone kept.
    let row = store
        .upsert(&acme(), USER, seen("1", Some("e2"), Some("ada")))
        .await
        .expect("update");
    assert_eq!(row.version, 3, "insert, tombstone, update");
    assert_eq!(row.external_id, Some(ExternalId::new("e2")));
    assert!(row.tombstoned_at.is_some(), "an upsert lifts no tombstone");
    assert_eq!(store.counts(&acme(), USER).await.expect("counts"), (0, 1));
}

/// How long a test's claim waits for one that is held (it is never given back in time).
const SHORT_WAIT: Duration = Duration::from_millis(50);

async fn create_claims_exclude_each_other(store: Store) {
    let claim = |key: &'static str, wait: Duration| {
        let store = store.clone();
        async move { store.claim(&acme(), USER, "userName", key, wait).await }
    };
    let held = claim("ada", SHORT_WAIT).await.expect("the first claim");
    match claim("ada", SHORT_WAIT).await {
        Err(e @ StoreError::Busy { .. }) => {
            assert!(e.is_unavailable(), "a busy claim is retryable");
            assert!(e.to_string().contains("userName"), "{e}");
        }
        other => panic!("a held claim must refuse a second one: {other:?}"),
    }
    let other = claim("bob", SHORT_WAIT).await.expect("another key is free");
    // Another tenant's or resource type's key of the same text is another claim.
    let group = store
        .claim(&acme(), "Group", "displayName", "ada", SHORT_WAIT)
        .await
        .expect("a group of the same name");
    // A waiting claim goes on when the holder gives it back.
    let waiting = tokio::spawn(claim("ada", Duration::from_secs(30)));
    held.release().await;
    waiting
        .await
        .expect("join")
        .expect("the claim given back")
        .release()
        .await;
    // A claim dropped without `release` is given back too.
    drop(other);
    claim("bob", Duration::from_secs(30))
        .await
        .expect("a dropped claim is given back")
        .release()
        .await;
    group.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_claims_hold_across_replicas_and_end_with_the_session() {
    let mut cluster = pgtest::Cluster::start();
    let url = cluster.create_database().await;
    let (one, two) = (open_postgres(&url).await, open_postgres(&url).await);
    let claim = |store: &Store, wait: Duration| {
        let store = store.clone();
        async move { store.claim(&acme(), USER, "userName", "ada", wait).await }
    };
    let held = claim(&one, SHORT_WAIT).await.expect("claim on replica one");
    assert!(
        matches!(claim(&two, SHORT_WAIT).await, Err(StoreError::Busy { .. })),
        "replica two must wait for replica one's claim"
    );
    let waiting = tokio::spawn(claim(&two, Duration::from_secs(30)));
    held.release().await;
    let taken = waiting
        .await
        .expect("join")
        .expect("given back on replica one");
    // A replica that goes away holding a claim (its lock session ends): another takes it.
    std::mem::forget(taken);
    two.close().await.expect("replica two goes away");
    claim(&one, Duration::from_secs(30))
        .await
        .expect("the claim of a replica that went away")
        .release()
        .await;
}

/// Runs each case on a fresh store of each engine: one `#[tokio::test]` per case on SQLite,
/// and one on PostgreSQL that runs every case, each in a new database of one throwaway
/// cluster (`pgtest`), so that the suite starts one server rather than one per case.
/// `n` tasks of `f` on the store, at once.
fn spawn_all<F, T>(
    store: &Store,
    n: usize,
    f: impl Fn(Store, usize) -> F,
) -> Vec<tokio::task::JoinHandle<T>>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    (0..n).map(|i| tokio::spawn(f(store.clone(), i))).collect()
}

/// Upserts and lookups from many tasks at once: on PostgreSQL those arriving while others
/// run go together in one statement; each still gets its own row, a SCIM id written twice in
/// one batch is written twice, and two new SCIM ids of one legacy id make one row.
async fn concurrent_upserts_and_lookups_go_together(store: Store) {
    let statements = prometheus_client::metrics::histogram::Histogram::new([0.001]);
    if let Some(pg) = store.pg() {
        pg.record_latency_into(statements.clone());
    }
    // 64 new rows, each read back at once.
    let tasks = spawn_all(&store, 64, |store, i| async move {
        let row = seen(
            &format!("n{i}"),
            Some(&format!("e{i}")),
            Some(&format!("u{i}")),
        );
        let written = store.upsert(&acme(), USER, row).await?;
        let read = store.get(&acme(), USER, &sid(&format!("n{i}"))).await?;
        Ok::<_, StoreError>((i, written, read))
    });
    for task in tasks {
        let (i, written, read) = task.await.expect("task").expect("upsert and get");
        assert_eq!(written.legacy_id.as_str(), format!("n{i}"));
        assert_eq!(written.user_name.as_deref(), Some(format!("u{i}").as_str()));
        let read = read.expect("read back");
        assert_eq!(read.scim_id, sid(&format!("n{i}")));
        assert_eq!(
            read.external_id.as_ref().map(ExternalId::as_str),
            Some(format!("e{i}").as_str())
        );
    }
    // One SCIM id from 16 tasks: 16 writes, one row.
    let tasks = spawn_all(&store, 16, |store, i| async move {
        store
            .upsert(&acme(), USER, seen("same", None, Some(&format!("s{i}"))))
            .await
    });
    for task in tasks {
        task.await.expect("task").expect("upsert");
    }
    let same = store
        .get(&acme(), USER, &sid("same"))
        .await
        .expect("get")
        .expect("row");
    assert_eq!(same.version, 16);
    // Eight new SCIM ids for one legacy id: one row, the others refused as conflicts.
    let tasks = spawn_all(&store, 8, |store, i| async move {
        let mut row = seen("shared", None, None);
        row.scim_id = ScimId::new(format!("claimant-{i}"));
        store.upsert(&acme(), USER, row).await
    });
    let mut won = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => won += 1,
            Err(StoreError::IdConflict { .. }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(store.counts(&acme(), USER).await.expect("counts"), (66, 0));
    if store.pg().is_some() {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("statements", "", statements);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        let count: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("statements_count "))
            .and_then(|n| n.trim().parse().ok())
            .expect("a count");
        // 64 + 64 + 16 + 8 calls (and a statement or two more for each refused one).
        assert!(
            count < 120,
            "{count} statements: the calls did not go together"
        );
    }
}

/// The shared key is made once: the first fresh key stays, a later one is ignored.
async fn a_shared_key_is_made_once(store: Store) {
    let first = store.shared_key("cursor", &[1; 32]).await.expect("first");
    assert_eq!(first, vec![1; 32]);
    let again = store.shared_key("cursor", &[2; 32]).await.expect("again");
    assert_eq!(again, first, "the key already stored wins");
    let other = store.shared_key("other", &[3; 32]).await.expect("other");
    assert_eq!(other, vec![3; 32]);
}

fn grant(digest: &str, kind: super::GrantKind, family: &str, expires_at: i64) -> super::Grant {
    super::Grant {
        digest: digest.to_owned(),
        kind,
        tenant: acme(),
        client_id: "okta".to_owned(),
        family: family.to_owned(),
        grant_type: "authorization_code".to_owned(),
        issued_at: 100,
        expires_at,
        used_at: None,
        revoked_at: None,
        redirect_uri: (kind == super::GrantKind::Code).then(|| "https://x/cb".to_owned()),
        challenge: None,
    }
}

/// Grants: a code or refresh token is exchanged once (of many concurrent exchanges on one
/// row, one spends it and stores what it issues; the others store nothing); a row counts as
/// revoked when its family is, rows issued later included; revocation by family, client or
/// tenant; expired rows are purged on the next issue.
async fn grants_are_spent_once_revoked_and_purged(store: Store) {
    use super::{GrantKind, Revoke};
    let code = grant("c1", GrantKind::Code, "f1", 400);
    store
        .grant_issue(
            vec![code.clone(), grant("a2", GrantKind::Access, "f2", 3_700)],
            0,
        )
        .await
        .expect("issue");
    assert_eq!(
        store.grant_find("c1").await.expect("find"),
        Some(code.clone())
    );
    assert_eq!(store.grant_find("nope").await.expect("find"), None);

    let exchanges: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let issued = vec![
                    grant(&format!("a1-{i}"), GrantKind::Access, "f1", 3_700),
                    grant(&format!("r1-{i}"), GrantKind::Refresh, "f1", 10_000),
                ];
                store
                    .grant_exchange("c1", GrantKind::Code, 150, issued, 0)
                    .await
                    .expect("exchange")
            })
        })
        .collect();
    let mut won = 0;
    for e in exchanges {
        won += usize::from(e.await.expect("join"));
    }
    assert_eq!(won, 1, "one exchange spends the code");
    let rows = store.grant_list().await.expect("list");
    assert_eq!(
        rows.len(),
        4,
        "the code, the winner's two tokens, a2: {rows:?}"
    );
    assert_eq!(
        store
            .grant_find("c1")
            .await
            .expect("find")
            .expect("c1")
            .used_at,
        Some(150)
    );
    // Another kind, or an unknown row, spends nothing.
    assert!(
        !store
            .grant_exchange("a2", GrantKind::Refresh, 150, Vec::new(), 0)
            .await
            .expect("x")
    );
    assert!(
        !store
            .grant_exchange("zz", GrantKind::Code, 150, Vec::new(), 0)
            .await
            .expect("x")
    );
    assert_eq!(
        store
            .grant_find("a2")
            .await
            .expect("find")
            .expect("a2")
            .used_at,
        None
    );

    assert_eq!(
        store
            .grant_revoke(Revoke::Family("f1".into()), 200)
            .await
            .expect("revoke"),
        3
    );
    assert_eq!(
        store
            .grant_revoke(Revoke::Family("f1".into()), 201)
            .await
            .expect("again"),
        0
    );
    // A token of the family stored after the revocation counts as revoked too.
    store
        .grant_issue(vec![grant("late", GrantKind::Access, "f1", 3_700)], 0)
        .await
        .expect("issue");
    let late = store.grant_find("late").await.expect("find").expect("late");
    assert_eq!(late.revoked_at, Some(200));
    assert!(!late.live(300));
    assert!(
        store
            .grant_find("a2")
            .await
            .expect("f")
            .expect("a2")
            .live(300)
    );
    assert_eq!(
        store
            .grant_revoke(Revoke::Client("okta".into()), 210)
            .await
            .expect("c"),
        2
    );
    let other = super::Grant {
        tenant: TenantId::new("globex"),
        ..grant("g1", GrantKind::Access, "f3", 3_700)
    };
    store.grant_issue(vec![other], 0).await.expect("issue");
    assert_eq!(
        store
            .grant_revoke(Revoke::Tenant(acme()), 220)
            .await
            .expect("t"),
        0
    );
    assert_eq!(store.grant_list().await.expect("list").len(), 6);
    // Issued later: rows that expired before the purge time go.
    store
        .grant_issue(vec![grant("a9", GrantKind::Access, "f9", 9_000)], 3_800)
        .await
        .expect("issue");
    let left: Vec<String> = store
        .grant_list()
        .await
        .expect("list")
        .into_iter()
        .map(|g| g.digest)
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&"a9".to_owned()) && left.iter().any(|d| d.starts_with("r1-")));
}

fn event(id: &str, key: &str, endpoints: &[&str]) -> NewEvent {
    NewEvent {
        id: id.to_owned(),
        tenant: acme(),
        event_type: "user.updated".to_owned(),
        ordering_key: key.to_owned(),
        body: format!("{{\"id\":\"{id}\"}}"),
        at_ms: 1_000,
        endpoints: endpoints.iter().map(|e| (*e).to_owned()).collect(),
    }
}

/// The ids of the rows leased, in order.
fn ids(leased: &[Leased]) -> Vec<&str> {
    leased.iter().map(|l| l.event_id.as_str()).collect()
}

/// A change and its events stand or fall together; a refused change writes no event.
async fn changes_and_their_events_are_one_transaction(store: Store) {
    let row = store
        .change_with_events(
            &acme(),
            USER,
            Change::Upsert(seen("1", Some("e1"), Some("ann"))),
            vec![event("m1", "User/1", &["crm", "audit"])],
        )
        .await
        .expect("upsert with events");
    assert_eq!((row.version, row.tombstoned_at.is_none()), (1, true));
    // The same legacy id under another SCIM id is refused: no row, no event.
    let mut other = seen("1", None, None);
    other.scim_id = ScimId::new("not-derived");
    assert!(matches!(
        store
            .change_with_events(
                &acme(),
                USER,
                Change::Upsert(other),
                vec![event("m2", "User/x", &["crm"])]
            )
            .await,
        Err(StoreError::IdConflict { .. })
    ));
    let dead = store
        .change_with_events(
            &acme(),
            USER,
            Change::Tombstone(seen("1", None, None)),
            vec![event("m3", "User/1", &["crm"])],
        )
        .await
        .expect("tombstone with events");
    assert!(dead.tombstoned_at.is_some());
    assert_eq!(dead.version, 2);
    let back = store
        .change_with_events(
            &acme(),
            USER,
            Change::Upsert(seen("1", Some("e1"), Some("ann"))),
            vec![event("m4", "User/1", &["crm"])],
        )
        .await
        .expect("lifted with events");
    assert!(back.tombstoned_at.is_none());
    let read = store
        .get(&acme(), USER, &sid("1"))
        .await
        .expect("get")
        .expect("row");
    assert_eq!((read.version, read.tombstoned_at), (back.version, None));
    // A row never met, tombstoned at once.
    let gone = store
        .change_with_events(
            &acme(),
            USER,
            Change::Tombstone(seen("2", None, None)),
            vec![event("m5", "User/2", &["crm"])],
        )
        .await
        .expect("new and tombstoned");
    assert!(gone.tombstoned_at.is_some());
    let rows = store
        .outbox_list(OutboxFilter {
            limit: 100,
            ..OutboxFilter::default()
        })
        .await
        .expect("list");
    let mut listed: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.event_id.clone(), r.endpoint.clone()))
        .collect();
    listed.sort();
    let want = [
        ("m1", "audit"),
        ("m1", "crm"),
        ("m3", "crm"),
        ("m4", "crm"),
        ("m5", "crm"),
    ];
    assert_eq!(listed, want.map(|(a, b)| (a.to_owned(), b.to_owned())));
}

/// Leases: oldest first, one row per resource while an earlier one is on its way, never the
/// same row to two owners; retries, dead letters, replays, stats and the purge.
async fn the_outbox_leases_in_order_per_resource(store: Store) {
    store
        .emit(vec![
            event("a1", "User/a", &["crm"]),
            event("b1", "User/b", &["crm"]),
            event("a2", "User/a", &["crm"]),
            event("c1", "User/c", &["other"]),
        ])
        .await
        .expect("emit");
    let first = store
        .outbox_lease("acme", "crm", "r1", 1_000, 5_000, 10)
        .await
        .expect("lease");
    assert_eq!(ids(&first), ["a1", "b1"], "a2 waits for a1");
    assert!(
        store
            .outbox_lease("acme", "crm", "r2", 1_000, 5_000, 10)
            .await
            .expect("lease")
            .is_empty()
    );
    // a1 fails: retried later; a2 still waits for it.
    store
        .outbox_settle(
            first[0].seq,
            "r1",
            Attempt::Retry {
                status: Some(500),
                error: "HTTP 500".into(),
                next_ms: 3_000,
            },
            1_100,
        )
        .await
        .expect("settle");
    store
        .outbox_settle(
            first[1].seq,
            "r1",
            Attempt::Delivered { status: 204 },
            1_100,
        )
        .await
        .expect("settle");
    assert!(
        store
            .outbox_lease("acme", "crm", "r2", 2_000, 6_000, 10)
            .await
            .expect("lease")
            .is_empty()
    );
    let again = store
        .outbox_lease("acme", "crm", "r2", 3_000, 7_000, 10)
        .await
        .expect("lease");
    assert_eq!(ids(&again), ["a1"]);
    assert_eq!(again[0].attempts, 1);
    // r2 dies holding it: the lease ends and r3 takes it.
    assert!(
        store
            .outbox_lease("acme", "crm", "r3", 6_999, 9_000, 10)
            .await
            .expect("lease")
            .is_empty()
    );
    let taken = store
        .outbox_lease("acme", "crm", "r3", 7_000, 9_000, 10)
        .await
        .expect("lease");
    assert_eq!(ids(&taken), ["a1"]);
    store
        .outbox_settle(
            taken[0].seq,
            "r3",
            Attempt::Dead {
                status: None,
                error: "refused".into(),
            },
            7_100,
        )
        .await
        .expect("dead");
    // r2 comes back and settles late: its lease is gone, nothing is recorded.
    assert!(
        !store
            .outbox_settle(
                taken[0].seq,
                "r2",
                Attempt::Delivered { status: 200 },
                7_150
            )
            .await
            .expect("late settle")
    );
    // A dead row no longer holds its resource up.
    let next = store
        .outbox_lease("acme", "crm", "r3", 7_200, 9_000, 10)
        .await
        .expect("lease");
    assert_eq!(ids(&next), ["a2"]);
    let stats = store.outbox_stats().await.expect("stats");
    let crm = stats.iter().find(|q| q.endpoint == "crm").expect("crm");
    assert_eq!(
        (crm.pending, crm.dead, crm.oldest_pending_ms),
        (1, 1, Some(1_000))
    );
    let other = stats.iter().find(|q| q.endpoint == "other").expect("other");
    assert_eq!((other.pending, other.dead), (1, 0));
    let dead = store
        .outbox_list(OutboxFilter {
            state: Some(RowState::Dead),
            limit: 10,
            ..OutboxFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(dead.len(), 1);
    // Two attempts recorded: the one r2 leased never ended (r2 "died").
    assert_eq!(
        (
            dead[0].event_id.as_str(),
            dead[0].attempts,
            dead[0].last_error.as_deref()
        ),
        ("a1", 2, Some("refused"))
    );
    // Replay: due at once, a new window; a release gives every lease back.
    assert_eq!(
        store
            .outbox_replay(
                Replay::Dead {
                    tenant: None,
                    endpoint: Some("crm".into())
                },
                8_000
            )
            .await
            .expect("replay"),
        1
    );
    // a2 is leased (its delivery in flight): a replay leaves it alone.
    let a2 = Replay::Event {
        id: "a2".into(),
        endpoint: None,
    };
    assert_eq!(store.outbox_replay(a2, 8_000).await.expect("replay"), 0);
    assert_eq!(
        store
            .outbox_release(Some("r3".into()))
            .await
            .expect("release"),
        1
    );
    let replayed = store
        .outbox_lease("acme", "crm", "r4", 8_000, 9_000, 10)
        .await
        .expect("lease");
    assert_eq!(ids(&replayed), ["a1"], "a1 before a2 again");
    assert_eq!(
        (replayed[0].attempts, replayed[0].window_start_ms),
        (0, 8_000)
    );
    let shown = store.outbox_event("a1").await.expect("show");
    assert_eq!(shown[0].body.as_deref(), Some("{\"id\":\"a1\"}"));
    assert_eq!(
        store
            .outbox_replay(
                Replay::Event {
                    id: "zz".into(),
                    endpoint: None
                },
                8_000
            )
            .await
            .expect("replay"),
        0
    );
    // The purge deletes delivered and dead rows past their time, nothing pending.
    assert_eq!(store.outbox_purge(2_000, 0).await.expect("purge"), 1, "b1");
    assert_eq!(
        store
            .outbox_list(OutboxFilter {
                limit: 10,
                ..OutboxFilter::default()
            })
            .await
            .expect("list")
            .len(),
        3
    );
}

/// Eight owners leasing at once take every row exactly once.
async fn concurrent_leases_take_each_row_once(store: Store) {
    let events: Vec<NewEvent> = (0..200)
        .map(|i| event(&format!("m{i}"), &format!("User/{i}"), &["crm"]))
        .collect();
    store.emit(events).await.expect("emit");
    let tasks = spawn_all(&store, 8, |store, i| async move {
        let mut mine = Vec::new();
        loop {
            let got = store
                .outbox_lease("acme", "crm", &format!("o{i}"), 1_000, 60_000, 7)
                .await
                .expect("lease");
            if got.is_empty() {
                return mine;
            }
            for l in got {
                store
                    .outbox_settle(
                        l.seq,
                        &format!("o{i}"),
                        Attempt::Delivered { status: 200 },
                        1_000,
                    )
                    .await
                    .expect("settle");
                mine.push(l.event_id);
            }
        }
    });
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!((before, all.len()), (200, 200));
}

macro_rules! on_both_engines {
    ($($case:ident),* $(,)?) => {
        mod sqlite_engine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (_dir, store) = super::open_temp().await;
                    super::$case(store).await;
                }
            )*
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn every_case_on_postgresql() {
            let mut cluster = pgtest::Cluster::start();
            $(
                let url = cluster.create_database().await;
                let store = open_postgres(&url).await;
                eprintln!("case {} on PostgreSQL", stringify!($case));
                $case(store.clone()).await;
                let _ = store.close().await;
            )*
        }
    };
}

/// A PostgreSQL store on `url` (a database of a test cluster).
async fn open_postgres(url: &str) -> Store {
    let config = crate::config::StoreConfig {
        url: url.to_owned(),
        password: None,
        ca_file: None,
        pool_size: 4,
        acquire_timeout_secs: 5,
        synchronous_commit: false,
    };
    let pg = crate::pg::Pg::connect(&config).await.expect("connect");
    Store::open_postgres(pg).await.expect("open on PostgreSQL")
}

on_both_engines!(
    create_claims_exclude_each_other,
    upsert_refuses_ids_that_disagree,
    seen_inserts_absent_rows_in_input_order,
    seen_refreshes_changed_rows_and_keeps_remembered_values,
    seen_with_duplicate_rows_in_one_call_records_once,
    seen_of_a_thousand_rows_in_one_call,
    seen_is_atomic_and_refuses_ids_that_disagree,
    a_reused_legacy_id_gets_a_new_row_and_the_old_stays_gone,
    lookups_by_each_key,
    tenants_and_resource_types_are_kept_apart,
    upsert_inserts_then_sets_fields_and_bumps_version,
    tombstones_are_set_listed_counted_and_lifted,
    many_tasks_at_once,
    get_many_answers_in_input_order,
    concurrent_upserts_and_lookups_go_together,
    a_shared_key_is_made_once,
    grants_are_spent_once_revoked_and_purged,
    changes_and_their_events_are_one_transaction,
    the_outbox_leases_in_order_per_resource,
    concurrent_leases_take_each_row_once,
);

/// Polls `f` until it holds, for at most ten seconds.
async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Lookups by SCIM id are answered from memory once read, and a row another connection
/// writes (another process: `reconcile --fix`, a second store on the file) is seen by the very
/// next lookup; this store's own writes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_rows_give_way_to_any_write_at_once() {
    use std::sync::atomic::Ordering::Relaxed;
    let (dir, store) = open_temp().await;
    let rows = (1..=3)
        .map(|i| seen(&i.to_string(), None, Some("a")))
        .collect();
    store.seen(&acme(), USER, rows).await.expect("seen");
    let recent = store.sqlite().recent();
    let hits = || recent.hits.load(Relaxed);

    // Read until answered from memory (the first read keeps the row once the writer thread
    // has taken the header after the `seen` above).
    eventually("a lookup answered from memory", async || {
        let before = hits();
        let rec = store.get(&acme(), USER, &sid("1")).await.expect("get");
        assert!(rec.expect("present").tombstoned_at.is_none());
        hits() > before
    })
    .await;

    // Another store on the same file: its own connections and writer thread, as another
    // process has.
    let other = Store::open(&db_path(&dir)).await.expect("open again");
    assert!(other.tombstone(&acme(), USER, &sid("1")).await.expect("t1"));
    let rec = store.get(&acme(), USER, &sid("1")).await.expect("get");
    assert!(
        rec.expect("present").tombstoned_at.is_some(),
        "the tombstone another connection wrote is seen by the next lookup"
    );

    // A plain SQL write, as any tool could make.
    eventually("a lookup answered from memory again", async || {
        let before = hits();
        store.get(&acme(), USER, &sid("2")).await.expect("get");
        hits() > before
    })
    .await;
    let conn = Connection::open(db_path(&dir)).expect("sqlite");
    conn.execute(
        "UPDATE xref SET user_name = 'renamed' WHERE scim_id = ?1",
        [sid("2").as_str()],
    )
    .expect("update");
    let rec = store.get(&acme(), USER, &sid("2")).await.expect("get");
    assert_eq!(rec.expect("present").user_name.as_deref(), Some("renamed"));

    // This store's own write.
    eventually("a lookup answered from memory once more", async || {
        let before = hits();
        store.get(&acme(), USER, &sid("3")).await.expect("get");
        hits() > before
    })
    .await;
    assert!(store.tombstone(&acme(), USER, &sid("3")).await.expect("t3"));
    let rec = store.get(&acme(), USER, &sid("3")).await.expect("get");
    assert!(rec.expect("present").tombstoned_at.is_some());
    assert!(recent.len() <= 3);
    other.close().await.expect("close other");
}

/// A lookup by SCIM id that memory cannot answer queries on the caller's thread through a
/// borrowed connection (no hand-off to a reader thread); with every connection lent, a reader
/// thread answers the same; and `close` still leaves no WAL behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_by_scim_id_query_on_the_callers_thread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let store = Store::open(&path).await.expect("open");
    let rows = (1..=2)
        .map(|i| seen(&i.to_string(), None, Some("a")))
        .collect();
    store.seen(&acme(), USER, rows).await.expect("seen");
    let sqlite = store.sqlite();

    let before = sqlite.inline_reads();
    let rec = store.get(&acme(), USER, &sid("1")).await.expect("get");
    assert_eq!(rec.expect("present").legacy_id.as_str(), "1");
    assert_eq!(sqlite.inline_reads(), before + 1, "read on this thread");
    assert!(
        store
            .get(&acme(), USER, &sid("9"))
            .await
            .expect("get")
            .is_none(),
        "an unknown id is absent"
    );
    assert_eq!(sqlite.inline_reads(), before + 2);

    let lent = sqlite.take_inline();
    assert!(!lent.is_empty());
    let rec = store.get(&acme(), USER, &sid("2")).await.expect("get");
    assert_eq!(rec.expect("present").legacy_id.as_str(), "2");
    assert_eq!(sqlite.inline_reads(), before + 2, "read by a reader thread");
    drop(lent);

    store.close().await.expect("close");
    assert_wal_flushed(&path);
    assert!(matches!(
        store.get(&acme(), USER, &sid("1")).await,
        Err(StoreError::Closed)
    ));
}

/// The SQLite temporary files open in this process (`etilqs_…`, unlinked once open: their
/// descriptors still name them).
#[cfg(target_os = "linux")]
fn sqlite_temp_files() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|target| target.display().to_string())
        .filter(|target| target.contains("etilqs_"))
        .collect()
}

/// A write that changes many pages keeps what its savepoint must restore in memory: no
/// temporary file (another directory, `/var/tmp`, that a read-only root file system lacks),
/// no second write of every page it touches.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_large_write_journals_its_savepoint_in_memory() {
    let (_dir, store) = open_temp().await;
    let rows: Vec<Seen> = (0..3000)
        .map(|i| {
            seen(
                &i.to_string(),
                Some(&format!("ext-{i}")),
                Some(&format!("user-{i}")),
            )
        })
        .collect();
    store.seen(&acme(), USER, rows).await.expect("seen");
    let during = store
        .sqlite()
        .write(|conn| {
            // Every page of the table and of its user-name index changes in this job's
            // savepoint: far over what SQLite keeps in memory before spilling to a file. A
            // spilled journal stays open to the transaction's end, so it is seen after both
            // statements; another test's passing temporary file (`cargo test` runs tests on
            // threads of one process) would not be.
            let changed =
                conn.execute("UPDATE xref SET user_name = user_name || '-renamed'", [])?;
            let first = sqlite_temp_files();
            conn.execute("UPDATE xref SET version = version + 1", [])?;
            let both: Vec<String> = sqlite_temp_files()
                .into_iter()
                .filter(|f| first.contains(f))
                .collect();
            Ok((changed, both))
        })
        .await
        .expect("write");
    assert_eq!(during.0, 3000);
    assert_eq!(
        during.1,
        Vec::<String>::new(),
        "temporary files during the write"
    );
    let rec = store
        .get(&acme(), USER, &sid("7"))
        .await
        .expect("get")
        .expect("present");
    assert_eq!(rec.user_name.as_deref(), Some("user-7-renamed"));
}
