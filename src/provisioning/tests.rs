//! Unit tests of the provisioning log: writing off the request path, reading with filters,
//! pruning, and the `--since` syntax.

use std::sync::Arc;

use super::*;

fn entry(tenant: &str, action: &str, subject: &str, failed: bool, at_ms: i64) -> Entry {
    Entry {
        id: 0,
        at_ms,
        tenant: tenant.into(),
        resource: "User".into(),
        action: action.into(),
        scim_id: Some(format!("id-{subject}")),
        subject: Some(subject.into()),
        failed,
        status: if failed { 409 } else { 201 },
        scim_type: failed.then(|| "uniqueness".into()),
        detail: failed.then(|| format!("userName {subject:?} is already taken")),
        request_id: Some("req-1".into()),
        legacy_calls: 2,
        duration_ms: 3,
    }
}

fn all() -> Query {
    Query {
        limit: 100,
        ..Query::default()
    }
}

#[tokio::test]
async fn records_are_written_off_the_request_path_and_read_back_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join(FILE_NAME);
    let metrics = Arc::new(Metrics::new());
    let log = ProvisioningLog::open(&path, 30, Arc::clone(&metrics))
        .await
        .unwrap();
    written_and_read_back(log, &metrics).await;
    // The file is readable by a separate reader (the `log` command) after the writer stopped.
    assert_eq!(read(&path, &all()).unwrap().len(), 3);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

/// The same cases with the log in PostgreSQL (`[store]`), on a throwaway cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_the_same_entries_are_written_read_and_pruned() {
    let mut cluster = pgtest::Cluster::start();
    let pg = pg(&cluster.create_database().await).await;
    let metrics = Arc::new(Metrics::new());
    let log = ProvisioningLog::open_postgres(&pg, 30, Arc::clone(&metrics))
        .await
        .unwrap();
    written_and_read_back(log, &metrics).await;
    // A separate reader (the `log` command, another replica) reads the same entries.
    assert_eq!(read_postgres(&pg, &all()).await.unwrap().len(), 3);

    let pg = self::pg(&cluster.create_database().await).await;
    pruned_at_open(async |days| {
        ProvisioningLog::open_postgres(&pg, days, Arc::new(Metrics::new()))
            .await
            .unwrap()
    })
    .await;
}

async fn pg(url: &str) -> Pg {
    Pg::connect(&crate::config::StoreConfig {
        url: url.to_owned(),
        password: None,
        ca_file: None,
        pool_size: 2,
        acquire_timeout_secs: 5,
        synchronous_commit: false,
    })
    .await
    .unwrap()
}

/// Entries recorded, read back with every filter, counted; an entry after `close` dropped.
async fn written_and_read_back(log: ProvisioningLog, metrics: &Metrics) {
    let now = now_ms();
    log.record(entry(
        "acme",
        "create",
        "ada@example.com",
        false,
        now - 3_000,
    ));
    log.record(entry(
        "acme",
        "create",
        "bob_1@example.com",
        true,
        now - 2_000,
    ));
    log.record(entry(
        "other",
        "deactivate",
        "cy@example.com",
        false,
        now - 1_000,
    ));
    let newest_first = log.read(all()).await.unwrap();
    let subjects: Vec<_> = newest_first
        .iter()
        .map(|e| e.subject.clone().unwrap())
        .collect();
    assert_eq!(
        subjects,
        ["cy@example.com", "bob_1@example.com", "ada@example.com"]
    );
    assert!(newest_first.iter().all(|e| e.id > 0));

    let failed = log
        .read(Query {
            failed_only: true,
            ..all()
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].scim_type.as_deref(), Some("uniqueness"));
    assert_eq!(
        failed[0].detail.as_deref(),
        Some("userName \"bob_1@example.com\" is already taken")
    );

    let other = log
        .read(Query {
            tenant: Some("other".into()),
            ..all()
        })
        .await
        .unwrap();
    assert_eq!(other.len(), 1);
    let recent = log
        .read(Query {
            since_ms: Some(now - 1_500),
            ..all()
        })
        .await
        .unwrap();
    assert_eq!(recent.len(), 1);
    // `_` is a literal in a search, not SQL's one-character wildcard.
    let searched = log
        .read(Query {
            search: Some("B_1".into()),
            ..all()
        })
        .await
        .unwrap();
    assert_eq!(searched.len(), 1);
    let none = log
        .read(Query {
            search: Some("b_".into()),
            tenant: Some("other".into()),
            ..all()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    let limited = log.read(Query { limit: 2, ..all() }).await.unwrap();
    assert_eq!(limited.len(), 2);

    // The JSON form names fields like SCIM does and prints the time as RFC 3339.
    let json = serde_json::to_value(&failed[0]).unwrap();
    assert_eq!(json["scimType"], "uniqueness");
    assert!(json["at"].as_str().unwrap().ends_with('Z'));
    assert!(
        metrics
            .encode()
            .contains("scim_sidecar_provisioning_log_entries_total{outcome=\"written\"} 3")
    );

    log.close().await;
    // After close, an entry is dropped and counted, never blocks.
    log.record(entry("acme", "update", "late@example.com", false, now));
    assert!(
        metrics
            .encode()
            .contains("scim_sidecar_provisioning_log_entries_total{outcome=\"dropped\"} 1")
    );
}

#[tokio::test]
async fn entries_older_than_the_retention_are_pruned_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    pruned_at_open(async |days| {
        ProvisioningLog::open(&path, days, Arc::new(Metrics::new()))
            .await
            .unwrap()
    })
    .await;
}

/// Two entries, one past a 7-day retention: a log opened again keeps the other only.
async fn pruned_at_open(open: impl AsyncFn(u32) -> ProvisioningLog) {
    let log = open(7).await;
    let now = now_ms();
    log.record(entry(
        "acme",
        "create",
        "old@example.com",
        false,
        now - 8 * MS_PER_DAY,
    ));
    log.record(entry(
        "acme",
        "create",
        "new@example.com",
        false,
        now - 6 * MS_PER_DAY,
    ));
    assert_eq!(log.read(all()).await.unwrap().len(), 2);
    log.close().await;
    let reopened = open(7).await;
    let left = reopened.read(all()).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].subject.as_deref(), Some("new@example.com"));
    reopened.close().await;
}

#[test]
fn a_missing_file_reads_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        read(&dir.path().join("nope.sqlite3"), &all())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn since_takes_durations_and_rfc3339() {
    let now = 1_800_000_000_000;
    assert_eq!(parse_since("90s", now), Ok(now - 90_000));
    assert_eq!(parse_since("15m", now), Ok(now - 900_000));
    assert_eq!(parse_since("24h", now), Ok(now - 86_400_000));
    assert_eq!(parse_since("7d", now), Ok(now - 7 * 86_400_000));
    assert_eq!(
        parse_since("2026-11-23T08:00:00Z", now),
        Ok(1_795_420_800_000)
    );
    for bad in ["", "h", "3w", "-1d", "yesterday"] {
        let e = parse_since(bad, now).unwrap_err();
        assert!(e.to_string().contains("24h"), "{bad}: {e}");
    }
    assert_eq!(format_ms(1_795_420_800_123), "2026-11-23T08:00:00.123Z");
}
