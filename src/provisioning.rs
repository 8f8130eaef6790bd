//! The provisioning log: every SCIM write (create, update, deactivate, reactivate, delete,
//! membership change) with its time, tenant, SCIM id, userName (or group name), outcome and,
//! on failure, the SCIM error the identity provider received.
//!
//! It lives in its own SQLite file (`provisioning.sqlite3` beside the xref database), so it
//! can be pruned, copied or deleted without touching the cross-reference; with `[store]`, in
//! the shared PostgreSQL database (table `operations`), where every replica writes and the
//! `log` command, the admin page and every replica read the same entries (`postgres`).
//! Entries are written off the request path: [`ProvisioningLog::record`] only queues; a
//! dedicated thread (`provisioning-log`; a task on PostgreSQL) writes queued entries in
//! batches, one transaction each (on SQLite gathered for up to 10 ms: another process reading
//! the file sees an entry that much later), and deletes entries older than the retention every hour. A
//! full queue drops the entry (counted in the metrics and logged) rather than slowing a
//! request.
//!
//! Readers ([`read`]) open their own read-only connection: the `log` command reads the file
//! of a running sidecar, the admin listener reads through the same function.
//!
//! Owns the file's schema and SQL; depends on `crate::metrics`, `crate::pg` and `crate::xref`
//! (for creating files with safe permissions); knows nothing about SCIM payloads.

mod postgres;
#[cfg(test)]
mod tests;

pub use postgres::{import as import_postgres, read as read_postgres};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::metrics::Metrics;
use crate::pg::Pg;

/// The file name of the provisioning log in the data directory.
pub const FILE_NAME: &str = "provisioning.sqlite3";
/// Entries that may wait for the writer before new ones are dropped.
const QUEUE: usize = 8192;
/// Entries written per transaction at most.
const BATCH: usize = 512;
/// How long the writer lets entries gather after the first of a transaction. Under load, one
/// commit (its locks, its WAL frames of the same last pages) serves a few hundred entries
/// instead of a handful. The writer sleeps meanwhile rather than waiting on the queue, so an
/// entry queued then wakes no thread. A flush or a close queued meanwhile is served after it
/// (a reader flushes first: it waits at most this long).
const LINGER: Duration = Duration::from_millis(10);
/// How often old entries are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
const MS_PER_DAY: i64 = 86_400_000;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS operations (
        id INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        tenant TEXT NOT NULL,
        resource TEXT NOT NULL,
        action TEXT NOT NULL,
        scim_id TEXT,
        subject TEXT,
        failed INTEGER NOT NULL,
        status INTEGER NOT NULL,
        scim_type TEXT,
        detail TEXT,
        request_id TEXT,
        legacy_calls INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS operations_at ON operations (at_ms);
    CREATE INDEX IF NOT EXISTS operations_failed ON operations (failed, at_ms);";

/// Errors of the provisioning log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// SQLite failed.
    #[error("provisioning log {path}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The file or its directory could not be created.
    #[error(transparent)]
    Files(#[from] crate::xref::StoreError),
    /// PostgreSQL failed (`[store]`).
    #[error("provisioning log: {0}")]
    Pg(#[from] crate::pg::PgError),
    /// The writer thread could not start or has stopped.
    #[error("provisioning log writer: {0}")]
    Writer(String),
}

/// One recorded operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Row id (0 before it is written).
    pub id: i64,
    /// When the answer was sent, in milliseconds since the Unix epoch.
    #[serde(rename = "at", serialize_with = "rfc3339")]
    pub at_ms: i64,
    /// Tenant name.
    pub tenant: String,
    /// `User` or `Group`.
    pub resource: String,
    /// `create`, `update`, `deactivate`, `reactivate`, `delete` or `membership`.
    pub action: String,
    /// The SCIM id, when one was known.
    #[serde(rename = "scimId")]
    pub scim_id: Option<String>,
    /// The userName (of a User) or displayName (of a Group), when known.
    pub subject: Option<String>,
    /// Whether the identity provider received an error.
    pub failed: bool,
    /// HTTP status of the answer.
    pub status: u16,
    /// The answer's `scimType`, on failure.
    #[serde(rename = "scimType")]
    pub scim_type: Option<String>,
    /// The answer's `detail`, on failure.
    pub detail: Option<String>,
    /// The request id (also sent to the legacy app as `X-Request-Id`).
    #[serde(rename = "requestId")]
    pub request_id: Option<String>,
    /// Legacy calls the operation made.
    #[serde(rename = "legacyCalls")]
    pub legacy_calls: u32,
    /// Time to answer, in milliseconds.
    #[serde(rename = "durationMs")]
    pub duration_ms: u64,
}

fn rfc3339<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_ms(*ms))
}

/// Milliseconds since the epoch as RFC 3339 UTC with milliseconds.
pub fn format_ms(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&fmt).unwrap_or_default()
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let ns = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    i64::try_from(ns).unwrap_or(i64::MAX)
}

/// Which entries to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// Only failed operations.
    pub failed_only: bool,
    /// Only entries at or after this time (milliseconds since the epoch).
    pub since_ms: Option<i64>,
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only entries whose subject or SCIM id contains this text (case-insensitive).
    pub search: Option<String>,
    /// At most this many entries (newest first).
    pub limit: usize,
}

/// Reads entries from the log file at `path`, newest first. Blocking: call it from a
/// blocking thread. A missing file reads as empty.
pub fn read(path: &Path, q: &Query) -> Result<Vec<Entry>, LogError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let err = |source| LogError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
    let search = q.search.as_ref().map(|s| format!("%{}%", escape_like(s)));
    let mut stmt = conn
        .prepare(
            "SELECT id, at_ms, tenant, resource, action, scim_id, subject, failed, status, \
             scim_type, detail, request_id, legacy_calls, duration_ms FROM operations \
             WHERE (?1 = 0 OR failed = 1) AND at_ms >= ?2 AND (?3 IS NULL OR tenant = ?3) \
             AND (?4 IS NULL OR subject LIKE ?4 ESCAPE '\\' OR scim_id LIKE ?4 ESCAPE '\\') \
             ORDER BY at_ms DESC, id DESC LIMIT ?5",
        )
        .map_err(err)?;
    let rows = stmt
        .query_map(
            params![
                q.failed_only,
                q.since_ms.unwrap_or(i64::MIN),
                q.tenant,
                search,
                i64::try_from(q.limit).unwrap_or(i64::MAX)
            ],
            |r| {
                Ok(Entry {
                    id: r.get(0)?,
                    at_ms: r.get(1)?,
                    tenant: r.get(2)?,
                    resource: r.get(3)?,
                    action: r.get(4)?,
                    scim_id: r.get(5)?,
                    subject: r.get(6)?,
                    failed: r.get(7)?,
                    status: r.get(8)?,
                    scim_type: r.get(9)?,
                    detail: r.get(10)?,
                    request_id: r.get(11)?,
                    legacy_calls: r.get(12)?,
                    duration_ms: r.get::<_, i64>(13)?.max(0) as u64,
                })
            },
        )
        .map_err(err)?;
    rows.collect::<Result<_, _>>().map_err(err)
}

/// `s` with the `LIKE` wildcards `%`, `_` and the escape `\\` escaped.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

enum Msg {
    Entry(Box<Entry>),
    Flush(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

/// The writing end of the log. Cheap to clone.
#[derive(Clone)]
pub struct ProvisioningLog {
    at: At,
    tx: Sink,
    metrics: Arc<Metrics>,
}

/// Where the entries are kept (cloned with the log, so with every request's service: the
/// path is shared, not copied).
#[derive(Clone, Debug)]
enum At {
    File(Arc<Path>),
    Postgres(Pg),
}

/// The queue to the writer: a thread (SQLite) or a task (PostgreSQL).
#[derive(Clone)]
enum Sink {
    Thread(SyncSender<Msg>),
    Task(tokio::sync::mpsc::Sender<Msg>),
}

impl std::fmt::Debug for ProvisioningLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvisioningLog")
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

impl ProvisioningLog {
    /// Opens (creating, mode 0600 in a 0700 directory) the log file at `path`, deletes
    /// entries older than `retention_days` and starts the writer thread.
    pub async fn open(
        path: &Path,
        retention_days: u32,
        metrics: Arc<Metrics>,
    ) -> Result<Self, LogError> {
        let for_open = path.to_path_buf();
        let conn = tokio::task::spawn_blocking(move || open_writer(&for_open))
            .await
            .map_err(|e| LogError::Writer(e.to_string()))??;
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let retention_ms = i64::from(retention_days.max(1)) * MS_PER_DAY;
        let writer_metrics = Arc::clone(&metrics);
        let writer_path = path.to_path_buf();
        std::thread::Builder::new()
            .name("provisioning-log".to_owned())
            .spawn(move || writer_loop(conn, &writer_path, rx, retention_ms, &writer_metrics))
            .map_err(|e| LogError::Writer(e.to_string()))?;
        Ok(Self {
            at: At::File(Arc::from(path)),
            tx: Sink::Thread(tx),
            metrics,
        })
    }

    /// Keeps the log in PostgreSQL: migrates its table (under the migration lock), deletes
    /// entries older than `retention_days` and starts the writer task.
    pub async fn open_postgres(
        pg: &Pg,
        retention_days: u32,
        metrics: Arc<Metrics>,
    ) -> Result<Self, LogError> {
        let retention_ms = i64::from(retention_days.max(1)) * MS_PER_DAY;
        let tx = postgres::start(pg, retention_ms, Arc::clone(&metrics)).await?;
        Ok(Self {
            at: At::Postgres(pg.clone()),
            tx: Sink::Task(tx),
            metrics,
        })
    }

    /// Queues an entry; never waits. A full queue drops it (counted and logged).
    pub fn record(&self, entry: Entry) {
        let msg = Msg::Entry(Box::new(entry));
        let refused = match &self.tx {
            Sink::Thread(tx) => match tx.try_send(msg) {
                Ok(()) => None,
                Err(TrySendError::Full(_)) => Some("queue full"),
                Err(TrySendError::Disconnected(_)) => Some("writer stopped"),
            },
            Sink::Task(tx) => match tx.try_send(msg) {
                Ok(()) => None,
                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => Some("queue full"),
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => Some("writer stopped"),
            },
        };
        if let Some(why) = refused {
            self.metrics.provisioning_entries(false, 1);
            tracing::warn!("provisioning log {why}: an entry was dropped");
        }
    }

    /// Waits until every entry queued before this call is written (or failed).
    pub async fn flush(&self) {
        let (reply, done) = oneshot::channel();
        if self.send_control(Msg::Flush(reply)).await {
            let _ = done.await;
        }
    }

    /// Writes what is queued and stops the writer; later entries are dropped.
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.send_control(Msg::Close(reply)).await {
            let _ = done.await;
        }
    }

    /// Sends a control message, waiting (off the runtime) while the queue is full.
    async fn send_control(&self, msg: Msg) -> bool {
        match &self.tx {
            Sink::Thread(tx) => {
                let tx = tx.clone();
                tokio::task::spawn_blocking(move || tx.send(msg).is_ok())
                    .await
                    .unwrap_or(false)
            }
            Sink::Task(tx) => tx.send(msg).await.is_ok(),
        }
    }

    /// Reads entries (see [`read`]) after writing what is queued.
    pub async fn read(&self, q: Query) -> Result<Vec<Entry>, LogError> {
        self.flush().await;
        match &self.at {
            At::File(path) => {
                let path = Arc::clone(path);
                tokio::task::spawn_blocking(move || read(&path, &q))
                    .await
                    .map_err(|e| LogError::Writer(e.to_string()))?
            }
            At::Postgres(pg) => postgres::read(pg, &q).await,
        }
    }
}

fn open_writer(path: &Path) -> Result<Connection, LogError> {
    crate::xref::prepare_files(path)?;
    let err = |source| LogError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(err)?;
    conn.execute_batch(SCHEMA).map_err(err)?;
    Ok(conn)
}

fn writer_loop(
    mut conn: Connection,
    path: &Path,
    rx: Receiver<Msg>,
    retention_ms: i64,
    metrics: &Metrics,
) {
    prune(&conn, path, retention_ms);
    let mut next_prune = std::time::Instant::now() + PRUNE_EVERY;
    let mut batch: Vec<Entry> = Vec::new();
    loop {
        // Due pruning happens even while entries keep arriving.
        if std::time::Instant::now() >= next_prune {
            prune(&conn, path, retention_ms);
            next_prune = std::time::Instant::now() + PRUNE_EVERY;
        }
        let wait = next_prune.saturating_duration_since(std::time::Instant::now());
        let first = match rx.recv_timeout(wait) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if matches!(first, Msg::Entry(_)) {
            std::thread::sleep(LINGER);
        }
        let mut control = None;
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                Msg::Entry(e) => batch.push(*e),
                other => {
                    control = Some(other);
                    break;
                }
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            let n = batch.len() as u64;
            match write_batch(&mut conn, &batch) {
                Ok(()) => metrics.provisioning_entries(true, n),
                Err(e) => {
                    metrics.provisioning_entries(false, n);
                    tracing::error!(path = %path.display(), error = %e, dropped = n, "provisioning log write failed");
                }
            }
            batch.clear();
        }
        match control {
            Some(Msg::Flush(reply)) => {
                let _ = reply.send(());
            }
            Some(Msg::Close(reply)) => {
                let _ = conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
                drop(conn);
                // Entries queued after the close are not written: count them as dropped.
                let late = rx.try_iter().filter(|m| matches!(m, Msg::Entry(_))).count() as u64;
                if late > 0 {
                    metrics.provisioning_entries(false, late);
                    tracing::warn!(dropped = late, "provisioning log closed: entries dropped");
                }
                // Closed before the reply: from the reply on, every entry is refused (and
                // counted as dropped) at once.
                drop(rx);
                let _ = reply.send(());
                return;
            }
            Some(Msg::Entry(_)) | None => {}
        }
    }
}

fn write_batch(conn: &mut Connection, batch: &[Entry]) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO operations (at_ms, tenant, resource, action, scim_id, subject, failed, \
             status, scim_type, detail, request_id, legacy_calls, duration_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?;
        for e in batch {
            stmt.execute(params![
                e.at_ms,
                e.tenant,
                e.resource,
                e.action,
                e.scim_id,
                e.subject,
                e.failed,
                e.status,
                e.scim_type,
                e.detail,
                e.request_id,
                e.legacy_calls,
                i64::try_from(e.duration_ms).unwrap_or(i64::MAX),
            ])?;
        }
    }
    tx.commit()
}

fn prune(conn: &Connection, path: &Path, retention_ms: i64) {
    let cutoff = now_ms().saturating_sub(retention_ms);
    match conn.execute("DELETE FROM operations WHERE at_ms < ?1", [cutoff]) {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "provisioning log pruned"),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "provisioning log prune failed")
        }
    }
}

/// A `since` that is neither a duration nor an RFC 3339 time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinceError {
    /// Not a duration or a time.
    #[error(
        "since {0:?}: give a duration back from now (90s, 15m, 24h, 7d) or an RFC 3339 time \
         (2026-11-23T08:00:00Z)"
    )]
    Unreadable(String),
    /// A time too far from the epoch for milliseconds in an `i64`.
    #[error("{0:?} is out of range")]
    OutOfRange(String),
}

/// Parses `--since`: a duration back from now (`90s`, `15m`, `24h`, `7d`) or an RFC 3339
/// time. Returns milliseconds since the epoch.
pub fn parse_since(text: &str, now_ms: i64) -> Result<i64, SinceError> {
    let t = text.trim();
    if let Ok(at) = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339) {
        let ms = at.unix_timestamp_nanos() / 1_000_000;
        return i64::try_from(ms).map_err(|_| SinceError::OutOfRange(t.to_owned()));
    }
    let unreadable = || SinceError::Unreadable(t.to_owned());
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: i64 = n.parse().map_err(|_| unreadable())?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => MS_PER_DAY,
        _ => return Err(unreadable()),
    };
    Ok(now_ms.saturating_sub(n.saturating_mul(unit_ms)))
}
