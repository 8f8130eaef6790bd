//! The provisioning log in PostgreSQL (`[store]`): one `operations` table every replica writes
//! and reads. The writer is a task: it takes queued entries in batches and inserts each batch
//! in one statement. While the database is unavailable (restarting) the entries wait and are
//! tried again every [`RETRY_PAUSE`] together with new ones, until [`GIVE_UP_AFTER`]; then,
//! or at close, they are counted as dropped. A flush never waits for the database to return.
//!
//! Owns the PostgreSQL schema and SQL of the log; depends on the parent and `crate::pg`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;

use super::{BATCH, Entry, LogError, Msg, PRUNE_EVERY, QUEUE, Query, escape_like, now_ms};
use crate::metrics::Metrics;
use crate::pg::Pg;

/// The schema steps of the `provisioning` component (append-only).
const MIGRATIONS: &[&str] = &[
    // 1: the operations, by time and by failure.
    "CREATE TABLE operations (
        id           BIGSERIAL PRIMARY KEY,
        at_ms        BIGINT  NOT NULL,
        tenant       TEXT    NOT NULL,
        resource     TEXT    NOT NULL,
        action       TEXT    NOT NULL,
        scim_id      TEXT,
        subject      TEXT,
        failed       BOOLEAN NOT NULL,
        status       INTEGER NOT NULL,
        scim_type    TEXT,
        detail       TEXT,
        request_id   TEXT,
        legacy_calls BIGINT  NOT NULL,
        duration_ms  BIGINT  NOT NULL
    );
    CREATE INDEX operations_at ON operations (at_ms);
    CREATE INDEX operations_failed ON operations (failed, at_ms);",
];

/// How long a batch is tried again while the database is unavailable.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);
/// The pause between two tries of a batch.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Migrates the table, prunes, and starts the writer task; returns its queue.
pub(super) async fn start(
    pg: &Pg,
    retention_ms: i64,
    metrics: Arc<Metrics>,
) -> Result<mpsc::Sender<Msg>, LogError> {
    pg.migrate("provisioning", MIGRATIONS).await?;
    prune(pg, retention_ms).await;
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(writer(pg.clone(), rx, retention_ms, metrics));
    Ok(tx)
}

async fn writer(pg: Pg, mut rx: mpsc::Receiver<Msg>, retention_ms: i64, metrics: Arc<Metrics>) {
    let mut next_prune = Instant::now() + PRUNE_EVERY;
    // Entries the database refused while unavailable, and since when: tried again every
    // RETRY_PAUSE, with whatever arrived meanwhile, until GIVE_UP_AFTER.
    let mut pending: Vec<Entry> = Vec::new();
    let mut failing_since: Option<Instant> = None;
    loop {
        let first = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => Some(m),
                None => return,
            },
            () = tokio::time::sleep_until(next_prune.into()) => {
                prune(&pg, retention_ms).await;
                next_prune = Instant::now() + PRUNE_EVERY;
                continue;
            }
            () = tokio::time::sleep(RETRY_PAUSE), if !pending.is_empty() => None,
        };
        let mut control = None;
        let mut next = first;
        while let Some(m) = next.take() {
            match m {
                Msg::Entry(e) => pending.push(*e),
                other => {
                    control = Some(other);
                    break;
                }
            }
            if pending.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !pending.is_empty() {
            let n = pending.len() as u64;
            match write_batch(&pg, &pending).await {
                Ok(()) => {
                    metrics.provisioning_entries(true, n);
                    pending.clear();
                    failing_since = None;
                }
                Err(e) => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    let closing = matches!(control, Some(Msg::Close(_)));
                    if !e.is_unavailable()
                        || closing
                        || since.elapsed() >= GIVE_UP_AFTER
                        || pending.len() >= QUEUE
                    {
                        metrics.provisioning_entries(false, n);
                        tracing::error!(error = %e, dropped = n, "provisioning log write failed");
                        pending.clear();
                        failing_since = None;
                    }
                }
            }
        }
        match control {
            Some(Msg::Flush(reply)) => {
                let _ = reply.send(());
            }
            Some(Msg::Close(reply)) => {
                rx.close();
                let mut late = 0u64;
                while let Ok(m) = rx.try_recv() {
                    if matches!(m, Msg::Entry(_)) {
                        late += 1;
                    }
                }
                if late > 0 {
                    metrics.provisioning_entries(false, late);
                    tracing::warn!(dropped = late, "provisioning log closed: entries dropped");
                }
                let _ = reply.send(());
                return;
            }
            Some(Msg::Entry(_)) | None => {}
        }
    }
}

/// Inserts a batch in one statement.
async fn write_batch(pg: &Pg, batch: &[Entry]) -> Result<(), crate::pg::PgError> {
    const COLUMNS: usize = 13;
    let mut sql = String::from(
        "INSERT INTO operations (at_ms, tenant, resource, action, scim_id, subject, failed, \
         status, scim_type, detail, request_id, legacy_calls, duration_ms) VALUES ",
    );
    let rows: Vec<[Box<dyn ToSql + Sync + Send>; COLUMNS]> = batch
        .iter()
        .map(|e| -> [Box<dyn ToSql + Sync + Send>; COLUMNS] {
            [
                Box::new(e.at_ms),
                Box::new(e.tenant.clone()),
                Box::new(e.resource.clone()),
                Box::new(e.action.clone()),
                Box::new(e.scim_id.clone()),
                Box::new(e.subject.clone()),
                Box::new(e.failed),
                Box::new(i32::from(e.status)),
                Box::new(e.scim_type.clone()),
                Box::new(e.detail.clone()),
                Box::new(e.request_id.clone()),
                Box::new(i64::from(e.legacy_calls)),
                Box::new(i64::try_from(e.duration_ms).unwrap_or(i64::MAX)),
            ]
        })
        .collect();
    for i in 0..batch.len() {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..COLUMNS {
            if c > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("${}", i * COLUMNS + c + 1));
        }
        sql.push(')');
    }
    let params: Vec<&(dyn ToSql + Sync)> = rows
        .iter()
        .flat_map(|row| row.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)))
        .collect();
    let mut client = pg.client().await?;
    let err = |e: tokio_postgres::Error| pg.error(&e);
    pg.timed(async {
        let tx = client.transaction().await.map_err(err)?;
        // The log is best-effort (a full queue drops entries): its commits need not wait for
        // the disk, which a create's answer does not wait for either.
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await
            .map_err(err)?;
        tx.execute(sql.as_str(), &params).await.map_err(err)?;
        tx.commit().await.map_err(err)
    })
    .await
}

/// Copies entries (`store migrate`): each one the table does not hold yet (same time,
/// tenant, resource, action, SCIM id and request id) is inserted, so a second copy adds only
/// what is new. Migrates the table first. Returns how many entries were inserted.
pub async fn import(pg: &Pg, entries: &[Entry]) -> Result<u64, LogError> {
    pg.migrate("provisioning", MIGRATIONS).await?;
    let mut client = pg.client().await?;
    let err = |e: tokio_postgres::Error| LogError::Pg(pg.error(&e));
    let tx = client.transaction().await.map_err(err)?;
    let stmt = tx
        .prepare(
            "INSERT INTO operations (at_ms, tenant, resource, action, scim_id, subject, failed, \
             status, scim_type, detail, request_id, legacy_calls, duration_ms) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 \
             WHERE NOT EXISTS (SELECT 1 FROM operations WHERE at_ms = $1 AND tenant = $2 \
             AND resource = $3 AND action = $4 AND scim_id IS NOT DISTINCT FROM $5 \
             AND request_id IS NOT DISTINCT FROM $11)",
        )
        .await
        .map_err(err)?;
    let mut inserted = 0;
    for e in entries {
        inserted += tx
            .execute(
                &stmt,
                &[
                    &e.at_ms,
                    &e.tenant,
                    &e.resource,
                    &e.action,
                    &e.scim_id,
                    &e.subject,
                    &e.failed,
                    &i32::from(e.status),
                    &e.scim_type,
                    &e.detail,
                    &e.request_id,
                    &i64::from(e.legacy_calls),
                    &i64::try_from(e.duration_ms).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map_err(err)?;
    }
    tx.commit().await.map_err(err)?;
    Ok(inserted)
}

async fn prune(pg: &Pg, retention_ms: i64) {
    let cutoff = now_ms().saturating_sub(retention_ms);
    let deleted = async {
        let client = pg.client().await?;
        client
            .execute("DELETE FROM operations WHERE at_ms < $1", &[&cutoff])
            .await
            .map_err(|e| pg.error(&e))
    }
    .await;
    match deleted {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "provisioning log pruned"),
        Err(e) => tracing::error!(error = %e, "provisioning log prune failed"),
    }
}

/// Reads entries newest first (see the parent's `read`): the same filters, case-insensitive
/// search included.
pub async fn read(pg: &Pg, q: &Query) -> Result<Vec<Entry>, LogError> {
    let search = q.search.as_ref().map(|s| format!("%{}%", escape_like(s)));
    let since = q.since_ms.unwrap_or(i64::MIN);
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let client = pg.client().await?;
    let rows = pg
        .timed(client.query(
            "SELECT id, at_ms, tenant, resource, action, scim_id, subject, failed, status, \
             scim_type, detail, request_id, legacy_calls, duration_ms FROM operations \
             WHERE (NOT $1 OR failed) AND at_ms >= $2 AND ($3::text IS NULL OR tenant = $3) \
             AND ($4::text IS NULL OR subject ILIKE $4 ESCAPE '\\' OR scim_id ILIKE $4 ESCAPE '\\') \
             ORDER BY at_ms DESC, id DESC LIMIT $5",
            &[&q.failed_only, &since, &q.tenant, &search, &limit],
        ))
        .await
        .map_err(|e| pg.error(&e))?;
    rows.iter()
        .map(|r| {
            let bad = |_| LogError::Writer("unexpected value in the operations table".to_owned());
            Ok(Entry {
                id: r.try_get(0).map_err(bad)?,
                at_ms: r.try_get(1).map_err(bad)?,
                tenant: r.try_get(2).map_err(bad)?,
                resource: r.try_get(3).map_err(bad)?,
                action: r.try_get(4).map_err(bad)?,
                scim_id: r.try_get(5).map_err(bad)?,
                subject: r.try_get(6).map_err(bad)?,
                failed: r.try_get(7).map_err(bad)?,
                status: u16::try_from(r.try_get::<_, i32>(8).map_err(bad)?).unwrap_or(0),
                scim_type: r.try_get(9).map_err(bad)?,
                detail: r.try_get(10).map_err(bad)?,
                request_id: r.try_get(11).map_err(bad)?,
                legacy_calls: u32::try_from(r.try_get::<_, i64>(12).map_err(bad)?).unwrap_or(0),
                duration_ms: u64::try_from(r.try_get::<_, i64>(13).map_err(bad)?).unwrap_or(0),
            })
        })
        .collect()
}
