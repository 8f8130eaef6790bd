//! The SQLite engine of the cross-reference store (one replica; the default): rusqlite kept
//! off the async runtime.
//!
//! # Threads
//!
//! * **One writer connection** lives on a dedicated OS thread (`xref-writer`). Writes are
//!   boxed closures sent through a bounded channel and answered through oneshot channels.
//!   **Group commit**: the writer takes every write queued when it is free (up to
//!   [`BATCH`]) into one transaction, each write in a savepoint of its own, so a write that
//!   fails is rolled back alone; the callers are answered once that transaction has
//!   committed, so an answered write is committed and a read that follows sees it. Under
//!   load, one commit (its WAL frames, their checksums, the `recent` sync) serves many
//!   creates. A caller that stops waiting does not tear a write: the closure still runs to
//!   its end.
//! * **Reads** run on a few dedicated OS threads (`xref-reader`), each with its own read-only
//!   connection, taking boxed closures from one shared queue in order. Fixed threads rather
//!   than tokio's blocking pool: that pool starts a thread whenever a task arrives while none
//!   is idle, and a steady stream of short reads made it grow to dozens of threads, each
//!   with its own stack and allocator arena, over the first half hour of a load (the
//!   bench's soak). The database is in WAL mode, so a read sees the last committed state and
//!   never waits for the writer, even in the middle of a long write transaction. A read
//!   that follows a completed write sees it.
//!
//! * **Checkpoints** are mostly done on a thread of their own (`xref-checkpoint`, one more
//!   read-write connection). SQLite's automatic checkpoint would copy the WAL into the
//!   database file inside the writer's `COMMIT`, `fsync`s included, while every write queued
//!   behind it waits (a quarter of the create throughput, measured). Here, when a commit
//!   leaves [`CHECKPOINT_FRAMES`] or more frames in the WAL, the writer wakes the
//!   checkpointer, which copies what is there (`PASSIVE`: it blocks neither the writer nor a
//!   reader) and again what was committed meanwhile, until little is left. The writer then
//!   copies the rest itself, after its next commit (and, [`FINISH_TRIES`] times at most,
//!   the ones after while a reader's snapshot holds frames back): the WAL restarts only when
//!   a write transaction begins with every frame copied, and under load only the writer can
//!   see to that.
//! * **Lookups by SCIM id** are answered from memory when the row was read before and no
//!   connection has written since (`recent`: one `pread` of the WAL-index header tells);
//!   otherwise they are reads as above.
//!
//! No blocking call happens on a tokio worker thread, including in [`Store::open`] (the
//! header's `pread` reads a page SQLite keeps mapped in memory).
//!
//! Owns the connections and the SQL of the queries; depends only on `crate::ids` and the
//! sibling modules.

use std::cell::Cell;
use std::ffi::c_int;
use std::fmt;
use std::fs;
use std::io;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row};
use tokio::sync::{mpsc, oneshot};

use super::recent::{Look, Recent};
use super::rules::{check_same_legacy, now, seen_names};
use super::{Seen, StoreError, XrefRecord, migrations};
use mapping::ids::{ExternalId, LegacyId, ScimId, TenantId};

/// Read-only connections in the pool (the machine has few cores; reads are index lookups).
pub(super) const READERS: usize = 4;
/// How long SQLite retries a locked database before answering `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Writes that may wait for the writer thread before senders wait in turn.
const WRITE_QUEUE: usize = 256;
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 32;
/// Read-only connections a lookup by SCIM id borrows to query on its own thread (see
/// [`Sqlite::get_shared`]), at most; fewer when the machine has fewer cores.
const INLINE: usize = 4;
/// Page cache of each read-only connection and of the checkpointer, in KiB (SQLite's
/// `cache_size`, negative: KiB). SQLite's default, 2,000 KiB, is per connection: the seven of
/// them would hold up to 14 MiB of copies of the same pages as the database grows, pages
/// that every commit elsewhere makes them read again anyway. The writer keeps the default.
const READ_CACHE_KIB: i64 = 256;
/// Writes committed together at most (see the module documentation).
const BATCH: usize = 64;
/// WAL frames (pages, 4 KiB each) that make the writer ask for a checkpoint: about 16 MiB of
/// WAL. Four times SQLite's default; a page written many times between two checkpoints is
/// copied into the database file once.
pub(super) const CHECKPOINT_FRAMES: u32 = 4000;
/// Copies the checkpointer makes of what was committed during its previous one, at most,
/// before it leaves the rest to the writer.
const CATCH_UP_PASSES: u32 = 4;
/// Commits after which the writer tries to copy the last frames, at most, per checkpoint
/// (each try that copies something syncs the WAL and the database file; readers on older
/// snapshots can keep every try short of the end).
const FINISH_TRIES: u32 = 8;

thread_local! {
    /// The frames in the WAL after the last commit of the connection whose WAL hook is
    /// [`note_wal_frames`] (the writer's: the hook runs on the committing thread).
    static WAL_FRAMES: Cell<u32> = const { Cell::new(0) };
}

/// The columns of an [`XrefRecord`], in the order [`record`] reads them.
macro_rules! select_record {
    ($($rest:literal)*) => {
        concat!(
            "SELECT tenant, resource_type, scim_id, legacy_id, external_id, user_name, created, \
             last_modified, version, tombstoned_at, fingerprint FROM xref ",
            $($rest),*
        )
    };
}

type Job = Box<dyn WriteJob>;

/// A write waiting for the writer thread.
trait WriteJob: Send {
    /// Runs the write on the writer connection, inside the writer's transaction and a
    /// savepoint of its own (or a transaction of its own when alone). `true` when its
    /// changes are to stand.
    fn run(&mut self, conn: &Connection) -> bool;

    /// Answers the caller once the transaction is over: with the write's own result when it
    /// committed (`failed` is `None`) or when the write itself failed, else with `failed`.
    fn answer(self: Box<Self>, failed: Option<StoreError>);
}

/// A write and its caller's reply channel.
struct Pending<F, T> {
    write: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> WriteJob for Pending<F, T>
where
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
    T: Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(write) = self.write.take() else {
            return false;
        };
        let result = write(conn);
        let stands = result.is_ok();
        self.result = Some(result);
        stands
    }

    fn answer(self: Box<Self>, failed: Option<StoreError>) {
        let answer = match (self.result, failed) {
            (Some(Err(own)), _) => Err(own),
            (Some(Ok(_)), Some(failed)) => Err(failed),
            (Some(Ok(value)), None) => Ok(value),
            // Never ran to its end (it panicked): the dropped reply says `WorkerLost`.
            (None, _) => return,
        };
        let _ = self.reply.send(answer);
    }
}

/// A read, run on whichever reader thread takes it.
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// A message to the reader threads (each message is taken by one of them).
enum ReadMsg {
    /// Run a closure on the thread's read-only connection.
    Run(ReadJob),
    /// Close the thread's connection, answer and stop.
    Stop(oneshot::Sender<()>),
}

/// A message to the writer thread.
enum Msg {
    /// Run a closure on the writer connection.
    Run(Job),
    /// Check whether another connection wrote (see `recent`).
    Sync,
    /// Checkpoint the WAL, close the writer and stop.
    Close {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// The SQLite engine. Cheap to clone; all clones share one database.
#[derive(Clone)]
pub(super) struct Sqlite {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    closed: AtomicBool,
    writer: mpsc::Sender<Msg>,
    /// The reader threads' queue; they stop when it closes (the store dropped) or at `Stop`.
    readers: std::sync::mpsc::Sender<ReadMsg>,
    recent: Arc<Recent>,
    /// Write transactions the writer has ended (committed or not).
    transactions: Arc<AtomicU64>,
    /// Wake-ups the checkpointer thread has served (its copies made, `copied` told).
    checkpoints: Arc<AtomicU64>,
    /// The connections lookups by SCIM id borrow (see [`Sqlite::get_shared`]).
    inline: Mutex<Vec<Connection>>,
    /// Those borrowed now: `close` waits for them.
    lent: AtomicUsize,
    /// Lookups answered on the caller's thread (tests prove the path is taken).
    #[cfg(test)]
    inline_reads: AtomicU64,
}

impl fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sqlite")
            .field("path", &self.inner.path)
            .field("closed", &self.inner.closed.load(Ordering::Acquire))
            .field(
                "transactions",
                &self.inner.transactions.load(Ordering::Relaxed),
            )
            .field(
                "checkpoints",
                &self.inner.checkpoints.load(Ordering::Relaxed),
            )
            .finish()
    }
}

impl Sqlite {
    /// Opens (creating if needed) the database file at `path`.
    ///
    /// Creates the parent directory with mode 0700 and the file with mode 0600 when they are
    /// missing, refuses a file that fails `PRAGMA quick_check` ([`StoreError::Corrupt`]),
    /// switches to WAL with `synchronous=NORMAL` and applies pending migrations. `path` must
    /// name a file (not `:memory:`).
    pub(super) async fn open(path: &Path) -> Result<Sqlite, StoreError> {
        Sqlite::open_checkpointing(path, CHECKPOINT_FRAMES).await
    }

    /// [`Sqlite::open`], asking for a checkpoint once a commit leaves `every` frames or more
    /// in the WAL.
    pub(super) async fn open_checkpointing(path: &Path, every: u32) -> Result<Sqlite, StoreError> {
        let path = path.to_path_buf();
        let for_open = path.clone();
        let (writer, readers, checkpointer, inline) =
            tokio::task::spawn_blocking(move || open_blocking(&for_open))
                .await
                .map_err(|_| StoreError::WorkerLost)??;
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let recent = Arc::new(Recent::open(&path));
        let transactions = Arc::new(AtomicU64::new(0));
        let checkpoints = Arc::new(AtomicU64::new(0));
        let for_writer = (Arc::clone(&recent), Arc::clone(&transactions));
        let spawn_failed = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        // One wake-up waits at most: a checkpoint copies everything committed before it.
        let (wake, woken) = std::sync::mpsc::sync_channel(1);
        let copied = Arc::new(AtomicBool::new(false));
        let (counted, tell) = (Arc::clone(&checkpoints), Arc::clone(&copied));
        let thread = std::thread::Builder::new()
            .name("xref-checkpoint".to_owned())
            .spawn(move || checkpointer_loop(&checkpointer, &woken, &tell, &counted, every))
            .map_err(spawn_failed)?;
        let asks = Checkpoints {
            wake: Some(wake),
            thread: Some(thread),
            copied,
            stage: Stage::Idle,
            every,
            next_at: every,
            last: 0,
        };
        let (read_tx, read_rx) = std::sync::mpsc::channel();
        let read_rx = Arc::new(Mutex::new(read_rx));
        for conn in readers {
            let queue = Arc::clone(&read_rx);
            std::thread::Builder::new()
                .name("xref-reader".to_owned())
                .spawn(move || reader_loop(conn, &queue))
                .map_err(spawn_failed)?;
        }
        drop(read_rx);
        std::thread::Builder::new()
            .name("xref-writer".to_owned())
            .spawn(move || writer_loop(writer, rx, &for_writer.0, &for_writer.1, asks))
            .map_err(spawn_failed)?;
        Ok(Sqlite {
            inner: Arc::new(Inner {
                path,
                closed: AtomicBool::new(false),
                writer: tx,
                readers: read_tx,
                recent,
                transactions,
                checkpoints,
                inline: Mutex::new(inline),
                lent: AtomicUsize::new(0),
                #[cfg(test)]
                inline_reads: AtomicU64::new(0),
            }),
        })
    }

    /// The database file this store was opened on.
    pub(super) fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Records every `rows` entry that is absent, in one transaction; refreshes the
    /// `external_id` / `user_name` of present ones when the row carries a different value
    /// (bumping `version` and `last_modified`).
    ///
    /// `None` in a row means "the source did not say": the remembered value is kept. Nothing
    /// is tombstoned or lifted. Returns the current records in input order. A row whose
    /// ids disagree with the stored ones fails the whole call ([`StoreError::IdConflict`])
    /// and records nothing.
    pub(super) async fn seen(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        rows: Vec<Seen>,
    ) -> Result<Vec<XrefRecord>, StoreError> {
        if rows.is_empty() {
            return if self.inner.closed.load(Ordering::Acquire) {
                Err(StoreError::Closed)
            } else {
                Ok(Vec::new())
            };
        }
        let tenant = tenant.clone();
        let resource_type = resource_type.to_owned();
        // Most pages hold records the store already knows unchanged: answer those from a
        // reader and leave the writer (one thread, one transaction at a time) to real changes.
        let (read_tenant, read_type) = (tenant.clone(), resource_type.clone());
        let (rows, known) = self
            .read(move |conn| {
                let mut known = Vec::with_capacity(rows.len());
                for row in &rows {
                    match find(conn, &read_tenant, &read_type, &row.scim_id)? {
                        Some(current) if seen_names(&current, row)?.is_none() => {
                            known.push(current);
                        }
                        _ => return Ok((rows, None)),
                    }
                }
                Ok((rows, Some(known)))
            })
            .await?;
        if let Some(known) = known {
            return Ok(known);
        }
        self.write(move |tx| {
            let now = now()?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let record = match find(tx, &tenant, &resource_type, &row.scim_id)? {
                    None => insert(tx, &tenant, &resource_type, row, &now)?,
                    Some(mut current) => {
                        if let Some((external_id, user_name)) = seen_names(&current, &row)? {
                            current.external_id = external_id;
                            current.user_name = user_name;
                            update_names(tx, &mut current, &now)?;
                        }
                        current
                    }
                };
                out.push(record);
            }
            Ok(out)
        })
        .await
    }

    /// The record with SCIM id `id`, tombstoned or not.
    pub(super) async fn get(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &ScimId,
    ) -> Result<Option<XrefRecord>, StoreError> {
        Ok(self
            .get_shared(tenant, resource_type, id)
            .await?
            .map(Arc::unwrap_or_clone))
    }

    /// [`Self::get`], shared: a row kept in memory is not copied.
    pub(super) async fn get_shared(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &ScimId,
    ) -> Result<Option<Arc<XrefRecord>>, StoreError> {
        let ticket = match self.inner.recent.look(tenant, resource_type, id) {
            Look::Hit(record) => {
                return if self.inner.closed.load(Ordering::Acquire) {
                    Err(StoreError::Closed)
                } else {
                    Ok(Some(record))
                };
            }
            Look::Miss(ticket) => Some(ticket),
            Look::Stale(ask) => {
                // A full queue holds jobs, and a sync follows each.
                if ask {
                    let _ = self.inner.writer.try_send(Msg::Sync);
                }
                None
            }
        };
        let found = match self.find_inline(tenant, resource_type, id) {
            Some(Ok(found)) => found,
            Some(Err(StoreError::Closed)) => return Err(StoreError::Closed),
            // Every connection lent, or SQLite busy or failing: a reader thread waits for
            // the lock, or says what fails.
            _ => {
                let (tenant, resource_type, id) =
                    (tenant.clone(), resource_type.to_owned(), id.clone());
                self.read(move |conn| find(conn, &tenant, &resource_type, &id))
                    .await?
            }
        };
        if let (Some(ticket), Some(record)) = (ticket, &found) {
            self.inner.recent.keep(ticket, record);
        }
        Ok(found.map(Arc::new))
    }

    /// The record of `id` read on this thread, through a borrowed connection that never waits
    /// for a lock (`busy_timeout` 0): a lookup by primary key in WAL mode takes microseconds,
    /// less than handing it to a reader thread and being woken with the answer. `None` when
    /// every connection is lent.
    fn find_inline(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &ScimId,
    ) -> Option<Result<Option<XrefRecord>, StoreError>> {
        let inner = &*self.inner;
        // Counted before the check, so `close` sees either the loan or the flag (SeqCst on
        // both sides: each writes one and reads the other).
        inner.lent.fetch_add(1, Ordering::SeqCst);
        let mut loan = Loan(inner, None);
        if inner.closed.load(Ordering::SeqCst) {
            return Some(Err(StoreError::Closed));
        }
        loan.1 = inner
            .inline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = loan.1.as_ref()?;
        #[cfg(test)]
        inner.inline_reads.fetch_add(1, Ordering::Relaxed);
        Some(find(conn, tenant, resource_type, id))
    }

    /// Lookups answered on the caller's thread so far.
    #[cfg(test)]
    pub(super) fn inline_reads(&self) -> u64 {
        self.inner.inline_reads.load(Ordering::Relaxed)
    }

    /// Takes every borrowable connection away (tests of the reader threads' path).
    #[cfg(test)]
    pub(super) fn take_inline(&self) -> Vec<Connection> {
        std::mem::take(
            &mut *self
                .inner
                .inline
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Write transactions ended so far, committed or not (tests of group commit).
    #[cfg(test)]
    pub(super) fn transactions(&self) -> u64 {
        self.inner.transactions.load(Ordering::Relaxed)
    }

    /// Wake-ups the checkpointer thread has served so far (once one is counted, the writer
    /// copies the last frames after its next commit).
    #[cfg(test)]
    pub(super) fn checkpoints(&self) -> u64 {
        self.inner.checkpoints.load(Ordering::Acquire)
    }

    /// The recent records (tests of what is kept).
    #[cfg(test)]
    pub(super) fn recent(&self) -> &Recent {
        &self.inner.recent
    }

    /// The records of many SCIM ids at once (tombstoned ones included), in input order: one
    /// read job with one prepared statement, for translating thousands of group members.
    pub(super) async fn get_many(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        ids: Vec<ScimId>,
    ) -> Result<Vec<Option<XrefRecord>>, StoreError> {
        let (tenant, resource_type) = (tenant.clone(), resource_type.to_owned());
        self.read(move |conn| {
            ids.iter()
                .map(|id| find(conn, &tenant, &resource_type, id))
                .collect()
        })
        .await
    }

    /// Every record of a tenant and resource type (tombstoned ones included), by legacy id.
    pub(super) async fn all(
        &self,
        tenant: &TenantId,
        resource_type: &str,
    ) -> Result<Vec<XrefRecord>, StoreError> {
        let (tenant, resource_type) = (tenant.clone(), resource_type.to_owned());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(select_record!(
                "WHERE tenant = ?1 AND resource_type = ?2 ORDER BY legacy_id"
            ))?;
            let rows = stmt.query_map((tenant.as_str(), resource_type.as_str()), record)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// The record of legacy id `id`: its live one, else the newest tombstoned one (an app
    /// that reuses ids leaves tombstones of the accounts that held it before).
    pub(super) async fn get_by_legacy(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &LegacyId,
    ) -> Result<Option<XrefRecord>, StoreError> {
        let (tenant, resource_type, id) = (tenant.clone(), resource_type.to_owned(), id.clone());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(select_record!(
                "WHERE tenant = ?1 AND resource_type = ?2 AND legacy_id = ?3 "
                "ORDER BY tombstoned_at IS NOT NULL, tombstoned_at DESC LIMIT 1"
            ))?;
            let found = stmt
                .query_row(
                    (tenant.as_str(), resource_type.as_str(), id.as_str()),
                    record,
                )
                .optional()?;
            Ok(found)
        })
        .await
    }

    /// The live records of many legacy ids at once, in input order (`None`: no live row).
    pub(super) async fn live_by_legacy(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        ids: Vec<LegacyId>,
    ) -> Result<Vec<Option<XrefRecord>>, StoreError> {
        let (tenant, resource_type) = (tenant.clone(), resource_type.to_owned());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(select_record!(
                "WHERE tenant = ?1 AND resource_type = ?2 AND legacy_id = ?3 "
                "AND tombstoned_at IS NULL"
            ))?;
            ids.iter()
                .map(|id| {
                    Ok(stmt
                        .query_row(
                            (tenant.as_str(), resource_type.as_str(), id.as_str()),
                            record,
                        )
                        .optional()?)
                })
                .collect()
        })
        .await
    }

    /// Every record (tombstoned ones included) whose `externalId` is `id`, oldest first.
    pub(super) async fn get_by_external(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &ExternalId,
    ) -> Result<Vec<XrefRecord>, StoreError> {
        let (tenant, resource_type, id) = (tenant.clone(), resource_type.to_owned(), id.clone());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(select_record!(
                "WHERE tenant = ?1 AND resource_type = ?2 AND external_id = ?3 "
                "ORDER BY created, scim_id"
            ))?;
            let rows = stmt.query_map(
                (tenant.as_str(), resource_type.as_str(), id.as_str()),
                record,
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Every record (tombstoned ones included) whose display key equals `user_name`,
    /// ignoring ASCII case (SQLite's `lower()`), oldest first.
    pub(super) async fn get_by_user_name(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        user_name: &str,
    ) -> Result<Vec<XrefRecord>, StoreError> {
        let (tenant, resource_type, name) = (
            tenant.clone(),
            resource_type.to_owned(),
            user_name.to_owned(),
        );
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(select_record!(
                "WHERE tenant = ?1 AND resource_type = ?2 AND lower(user_name) = lower(?3) "
                "ORDER BY created, scim_id"
            ))?;
            let rows = stmt.query_map((tenant.as_str(), resource_type.as_str(), name), record)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Inserts or updates after a successful write (create / replace / patch): sets
    /// `external_id` and `user_name` exactly as given (`None` clears), bumps `version` and
    /// `last_modified`. Lifts no tombstone.
    pub(super) async fn upsert(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        row: Seen,
    ) -> Result<XrefRecord, StoreError> {
        let tenant = tenant.clone();
        let resource_type = resource_type.to_owned();
        self.write(move |tx| upsert_row(tx, &tenant, &resource_type, row, &now()?))
            .await
    }

    /// Marks the record deleted. `true` if it was live; `false` if it was already
    /// tombstoned or is unknown (record it with [`Store::seen`] or [`Store::upsert`] first).
    pub(super) async fn tombstone(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &ScimId,
    ) -> Result<bool, StoreError> {
        let (tenant, resource_type, id) = (tenant.clone(), resource_type.to_owned(), id.clone());
        self.write(move |conn| tombstone_row(conn, &tenant, &resource_type, &id, &now()?))
            .await
    }

    /// Lifts the tombstone of the record. `true` if it was tombstoned. A live row of another
    /// account holding the same legacy id (an app that reuses ids) is tombstoned: the legacy
    /// record is this account's.
    pub(super) async fn lift_tombstone(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &ScimId,
    ) -> Result<bool, StoreError> {
        let (tenant, resource_type, id) = (tenant.clone(), resource_type.to_owned(), id.clone());
        self.write(move |tx| {
            let now = now()?;
            let Some(current) = find(tx, &tenant, &resource_type, &id)? else {
                return Ok(false);
            };
            if current.tombstoned_at.is_none() {
                return Ok(false);
            }
            lift_row(tx, &current, &now)
        })
        .await
    }

    /// The legacy ids of every tombstoned record of the tenant and resource type, but those
    /// a live record holds now (an app that reuses ids gave it to another account).
    pub(super) async fn tombstoned(
        &self,
        tenant: &TenantId,
        resource_type: &str,
    ) -> Result<std::collections::HashSet<LegacyId>, StoreError> {
        let (tenant, resource_type) = (tenant.clone(), resource_type.to_owned());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                // Named, so the planner never walks the tenant's rows instead: without
                // statistics it rates the primary key as good as the partial index.
                "SELECT t.legacy_id FROM xref AS t INDEXED BY xref_tombstoned \
                 WHERE t.tenant = ?1 AND t.resource_type = ?2 AND t.tombstoned_at IS NOT NULL \
                 AND NOT EXISTS (SELECT 1 FROM xref AS l WHERE l.tenant = ?1 \
                 AND l.resource_type = ?2 AND l.legacy_id = t.legacy_id \
                 AND l.tombstoned_at IS NULL)",
            )?;
            let rows = stmt.query_map((tenant.as_str(), resource_type.as_str()), |row| {
                row.get::<_, String>(0).map(LegacyId::new)
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// `(live, tombstoned)` record counts of the tenant and resource type.
    pub(super) async fn counts(
        &self,
        tenant: &TenantId,
        resource_type: &str,
    ) -> Result<(u64, u64), StoreError> {
        let (tenant, resource_type) = (tenant.clone(), resource_type.to_owned());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT COALESCE(SUM(tombstoned_at IS NULL), 0), \
                 COALESCE(SUM(tombstoned_at IS NOT NULL), 0) \
                 FROM xref WHERE tenant = ?1 AND resource_type = ?2",
            )?;
            let (live, dead): (i64, i64) = stmt
                .query_row((tenant.as_str(), resource_type.as_str()), |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?;
            Ok((
                u64::try_from(live).unwrap_or(0),
                u64::try_from(dead).unwrap_or(0),
            ))
        })
        .await
    }

    /// `(tenant, resource type, live, tombstoned)` record counts of every tenant.
    pub(super) async fn all_counts(&self) -> Result<Vec<(TenantId, String, u64, u64)>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT tenant, resource_type, SUM(tombstoned_at IS NULL), \
                 SUM(tombstoned_at IS NOT NULL) FROM xref GROUP BY tenant, resource_type \
                 ORDER BY tenant, resource_type",
            )?;
            let rows = stmt.query_map([], |row| {
                Ok((
                    TenantId::new(row.get::<_, String>(0)?),
                    row.get::<_, String>(1)?,
                    u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                    u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
                ))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// See [`Store::shared_key`](super::Store::shared_key).
    pub(super) async fn shared_key(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        let (name, fresh) = (name.to_owned(), fresh.to_vec());
        self.write(move |conn| {
            conn.execute(
                "INSERT OR IGNORE INTO sidecar_keys (name, value) VALUES (?1, ?2)",
                (name.as_str(), fresh.as_slice()),
            )?;
            Ok(conn.query_row(
                "SELECT value FROM sidecar_keys WHERE name = ?1",
                [name.as_str()],
                |row| row.get::<_, Vec<u8>>(0),
            )?)
        })
        .await
    }

    /// Whether the writer can take the database's write lock now (readiness): an empty
    /// write on the writer thread, whose transaction takes that lock.
    pub(super) async fn check_writable(&self) -> Result<(), StoreError> {
        self.write(|_| Ok(())).await
    }

    /// Waits for running reads and queued writes, checkpoints the WAL into the database file
    /// and closes every connection. Every later call, including another `close`, answers
    /// [`StoreError::Closed`].
    pub(super) async fn close(&self) -> Result<(), StoreError> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        // Each reader takes one `Stop` after the reads queued before it, and stops. An answer
        // that never comes (a reader already gone) resolves when the last one stops.
        let mut stopped = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let (reply, done) = oneshot::channel();
            if self.inner.readers.send(ReadMsg::Stop(reply)).is_ok() {
                stopped.push(done);
            }
        }
        for done in stopped {
            let _ = done.await;
        }
        // A borrowed connection is back within microseconds (its lookup never waits for a
        // lock); then all are closed, so the writer's connection is the last one and its
        // close checkpoints the WAL and removes it.
        while self.inner.lent.load(Ordering::SeqCst) > 0 {
            tokio::task::yield_now().await;
        }
        self.inner
            .inline
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let (reply, answer) = oneshot::channel();
        self.inner
            .writer
            .send(Msg::Close { reply })
            .await
            .map_err(|_| StoreError::WorkerLost)?;
        answer.await.map_err(|_| StoreError::WorkerLost)?
    }

    /// Runs `f` on the writer connection, on the writer thread, inside a write transaction
    /// (`f` starts none of its own); answers once that transaction has committed. An `Err`
    /// from `f` rolls back what `f` changed, and only that.
    pub(super) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let (reply, answer) = oneshot::channel();
        // The caller may stop waiting; the write itself runs to its end either way.
        let job: Job = Box::new(Pending {
            write: Some(f),
            result: None,
            reply,
        });
        self.inner
            .writer
            .send(Msg::Run(job))
            .await
            .map_err(|_| self.gone())?;
        answer.await.map_err(|_| self.gone())?
    }

    /// Runs `f` on a read-only connection, on a reader thread.
    pub(super) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let (reply, answer) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let _ = reply.send(f(conn));
        });
        self.inner
            .readers
            .send(ReadMsg::Run(job))
            .map_err(|_| self.gone())?;
        answer.await.map_err(|_| self.gone())?
    }

    /// The error for a writer that no longer answers.
    fn gone(&self) -> StoreError {
        if self.inner.closed.load(Ordering::Acquire) {
            StoreError::Closed
        } else {
            StoreError::WorkerLost
        }
    }
}

/// A reader thread: runs the reads it takes from the shared queue until it takes a `Stop`
/// or the queue closes.
fn reader_loop(conn: Connection, queue: &Mutex<std::sync::mpsc::Receiver<ReadMsg>>) {
    loop {
        // The lock is held while waiting: the one thread waiting takes the next message.
        let msg = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        match msg {
            Ok(ReadMsg::Run(job)) => {
                // A panicking read drops its reply (its caller sees `WorkerLost`); the
                // connection holds no transaction between statements and keeps serving.
                if std::panic::catch_unwind(AssertUnwindSafe(|| job(&conn))).is_err() {
                    tracing::error!("a cross-reference read panicked");
                }
            }
            Ok(ReadMsg::Stop(reply)) => {
                drop(conn);
                let _ = reply.send(());
                return;
            }
            Err(_) => return,
        }
    }
}

/// The writer thread: runs jobs in order, those queued together in one transaction, until
/// told to close or every sender is gone.
fn writer_loop(
    conn: Connection,
    mut rx: mpsc::Receiver<Msg>,
    recent: &Recent,
    transactions: &AtomicU64,
    mut checkpoints: Checkpoints,
) {
    recent.sync(&conn, false);
    let mut batch: Vec<Job> = Vec::with_capacity(BATCH);
    // The jobs of the open transaction, waiting for its end (kept for the next batch).
    let mut ran: Vec<Job> = Vec::with_capacity(BATCH);
    let mut next = rx.blocking_recv();
    while let Some(msg) = next.take() {
        match msg {
            Msg::Run(job) => {
                batch.push(job);
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(Msg::Run(job)) => batch.push(job),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let before = conn.total_changes();
                commit_together(&conn, &mut batch, &mut ran, transactions);
                recent.sync(&conn, conn.total_changes() != before);
                checkpoints.after_commit(&conn);
            }
            Msg::Sync => recent.sync(&conn, false),
            Msg::Close { reply } => {
                checkpoints.stop();
                let result = checkpoint(&conn)
                    .and_then(|()| conn.close().map_err(|(_, e)| StoreError::Sqlite(e)));
                let _ = reply.send(result);
                return;
            }
        }
        if next.is_none() {
            next = rx.blocking_recv();
        }
    }
}

/// Runs `batch` (emptied) in one `BEGIN IMMEDIATE` transaction, each job in a savepoint (a
/// job must not end the transaction itself), and answers every job once the transaction is
/// over. A job that fails or panics is rolled back to its savepoint; the others stand.
/// Should SQLite roll the whole transaction back on its own (a full disk, an I/O error), or
/// a savepoint fail to end, the jobs run in the transaction so far are answered with an
/// error (it is rolled back) and the rest go on in a new one. A `BEGIN` or `COMMIT` that
/// fails (another process holding the write lock past the busy timeout) fails every job it
/// covers.
///
/// `ran` (empty, left empty) holds the jobs run in the open transaction until its end;
/// `transactions` counts the transactions ended, before their jobs are answered.
fn commit_together(
    conn: &Connection,
    batch: &mut Vec<Job>,
    ran: &mut Vec<Job>,
    transactions: &AtomicU64,
) {
    if batch.len() == 1
        && let Some(job) = batch.pop()
    {
        commit_alone(conn, job, transactions);
        return;
    }
    let mut jobs = batch.drain(..);
    loop {
        if let Err(e) = step(conn, "BEGIN IMMEDIATE") {
            for job in jobs {
                job.answer(Some(copy_failure(&e)));
            }
            return;
        }
        let mut restart = false;
        for mut job in jobs.by_ref() {
            if let Err(e) = step(conn, "SAVEPOINT job") {
                job.answer(Some(copy_failure(&e)));
                continue;
            }
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| job.run(conn)));
            let panicked = outcome.is_err();
            let stands = match outcome {
                Ok(stands) => stands,
                Err(_) => {
                    tracing::error!("a cross-reference write panicked; it was rolled back");
                    false
                }
            };
            let ended = if conn.is_autocommit() {
                // SQLite ended the transaction: nothing run in it stands.
                Err(rolled_back())
            } else if stands {
                step(conn, "RELEASE job")
            } else {
                step(conn, "ROLLBACK TO job").and_then(|()| step(conn, "RELEASE job"))
            };
            if let Err(e) = ended {
                if !conn.is_autocommit() {
                    let _ = step(conn, "ROLLBACK");
                }
                transactions.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %copy_failure(&e),
                    "a cross-reference write transaction was rolled back; its writes failed");
                for job in ran.drain(..) {
                    job.answer(Some(copy_failure(&e)));
                }
                // A panicked job's dropped reply tells its caller.
                if !panicked {
                    job.answer(Some(copy_failure(&e)));
                }
                restart = true;
                break;
            }
            if panicked {
                drop(job);
            } else {
                ran.push(job);
            }
        }
        if restart {
            continue;
        }
        let committed = step(conn, "COMMIT");
        transactions.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = &committed
            && !conn.is_autocommit()
        {
            let _ = step(conn, "ROLLBACK");
            tracing::error!(error = %copy_failure(e),
                "a cross-reference commit failed; its writes were rolled back");
        }
        for job in ran.drain(..) {
            job.answer(committed.as_ref().err().map(copy_failure));
        }
        return;
    }
}

/// [`commit_together`] for a batch of one job (a lone writer's every write): its transaction
/// is its savepoint, so SQLite copies no page it changes to a savepoint's journal (some
/// 20,000 instructions of a create). Rolled back whole when the job fails or panics.
fn commit_alone(conn: &Connection, mut job: Job, transactions: &AtomicU64) {
    if let Err(e) = step(conn, "BEGIN IMMEDIATE") {
        job.answer(Some(copy_failure(&e)));
        return;
    }
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| job.run(conn)));
    let panicked = outcome.is_err();
    if panicked {
        tracing::error!("a cross-reference write panicked; it was rolled back");
    }
    let stands = outcome.unwrap_or(false);
    let ended = if conn.is_autocommit() {
        // SQLite ended the transaction: nothing run in it stands.
        Err(rolled_back())
    } else if stands {
        step(conn, "COMMIT")
    } else {
        step(conn, "ROLLBACK")
    };
    transactions.fetch_add(1, Ordering::Relaxed);
    if let Err(e) = &ended {
        if !conn.is_autocommit() {
            let _ = step(conn, "ROLLBACK");
        }
        tracing::error!(error = %copy_failure(e),
            "a cross-reference write transaction was rolled back; its writes failed");
    }
    // A panicked job's dropped reply tells its caller.
    if !panicked {
        job.answer(ended.err().as_ref().map(copy_failure));
    }
}

/// Runs one statement of the writer's transaction control (prepared once).
fn step(conn: &Connection, sql: &str) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// The same failure again, for each job a failed `BEGIN` or `COMMIT` covered (errors are
/// not `Clone`; their code is what the caller sees).
fn copy_failure(e: &rusqlite::Error) -> StoreError {
    StoreError::Sqlite(match e {
        rusqlite::Error::SqliteFailure(code, _) => rusqlite::Error::SqliteFailure(*code, None),
        _ => rolled_back(),
    })
}

/// The error of writes whose transaction SQLite rolled back.
fn rolled_back() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT_ROLLBACK),
        None,
    )
}

/// Copies the whole WAL into the database file and truncates it.
fn checkpoint(conn: &Connection) -> Result<(), StoreError> {
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
    if busy != 0 {
        tracing::warn!(
            "cross-reference WAL checkpoint was blocked; SQLite will finish it on close"
        );
    }
    Ok(())
}

/// Records the WAL's frame count after each commit of the writer (its WAL hook). Replaces
/// SQLite's automatic checkpoint on that connection.
fn note_wal_frames(_: &rusqlite::hooks::Wal, frames: c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.set(u32::try_from(frames).unwrap_or(0));
    Ok(())
}

/// The writer's side of the checkpointer thread.
struct Checkpoints {
    /// Wakes the checkpointer; `None` once stopped, or gone (the writer then checkpoints).
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Set by the checkpointer when it has copied all but the last few frames.
    copied: Arc<AtomicBool>,
    stage: Stage,
    /// Frames in the WAL that call for a checkpoint.
    every: u32,
    /// The frame count at which the next checkpoint is due (later than `every` while those
    /// run could not restart the WAL: a reader still on an older snapshot).
    next_at: u32,
    /// The frame count after the previous commit (fewer now: the WAL restarted).
    last: u32,
}

/// Where a checkpoint stands, as the writer sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stage {
    /// None under way: the next is due when the WAL has grown to `next_at`.
    Idle,
    /// The checkpointer was woken and has not said `copied` yet.
    Copying,
    /// The checkpointer has copied what it could; the writer copies the rest after each of
    /// its commits until nothing is left (a reader's snapshot may hold some back), this many
    /// more times at most; then the WAL's growth wakes the checkpointer again.
    Finishing(u32),
}

impl Checkpoints {
    /// After each of the writer's transactions (its callers already answered): wakes the
    /// checkpointer when the WAL has grown enough, and copies the last frames once it has
    /// copied the rest, so that the next write transaction restarts the WAL.
    fn after_commit(&mut self, conn: &Connection) {
        let frames = WAL_FRAMES.take();
        if frames != 0 {
            if frames < self.last {
                self.next_at = self.every;
            }
            self.last = frames;
        }
        if self.stage == Stage::Copying && self.copied.swap(false, Ordering::Acquire) {
            self.stage = Stage::Finishing(FINISH_TRIES);
        }
        match self.stage {
            Stage::Copying => return,
            Stage::Finishing(tries) => {
                let done = matches!(checkpoint_passive(conn), Some((log, copied)) if copied >= log);
                self.stage = if done || tries <= 1 {
                    Stage::Idle
                } else {
                    Stage::Finishing(tries - 1)
                };
                return;
            }
            Stage::Idle => {}
        }
        if frames < self.next_at.max(1) {
            return;
        }
        self.next_at = frames.saturating_add(self.every / 4).max(self.every);
        let Some(wake) = &self.wake else {
            checkpoint_passive(conn);
            return;
        };
        match wake.try_send(()) {
            Ok(()) => self.stage = Stage::Copying,
            // Unreachable while idle; the wake-up waiting will do.
            Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => {
                tracing::error!(
                    "the cross-reference checkpointer thread is gone; the writer checkpoints"
                );
                self.wake = None;
                checkpoint_passive(conn);
            }
        }
    }

    /// Stops the checkpointer thread, after the checkpoint it is running.
    fn stop(&mut self) {
        drop(self.wake.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the cross-reference checkpointer thread panicked");
        }
    }
}

/// A `PASSIVE` checkpoint: copies the frames no reader still needs, waits for no one.
/// `(frames in the WAL, frames copied)` when it ran.
fn checkpoint_passive(conn: &Connection) -> Option<(u32, u32)> {
    let counts = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    });
    match counts {
        Ok((log, copied)) => Some((
            u32::try_from(log).unwrap_or(0),
            u32::try_from(copied).unwrap_or(0),
        )),
        Err(e) => {
            tracing::warn!(error = %e, "a cross-reference WAL checkpoint failed; the next will retry");
            None
        }
    }
}

/// The checkpointer thread: on each wake-up, copies the WAL into the database file, then
/// what was committed meanwhile while that is more than a few frames (at most
/// [`CATCH_UP_PASSES`] times), and tells the writer (`copied`). Stops with the writer.
fn checkpointer_loop(
    conn: &Connection,
    woken: &Receiver<()>,
    copied: &AtomicBool,
    done: &AtomicU64,
    every: u32,
) {
    let few = (every / 16).max(1);
    while woken.recv().is_ok() {
        let mut before = 0;
        for _ in 0..=CATCH_UP_PASSES {
            let Some((log, _)) = checkpoint_passive(conn) else {
                break;
            };
            let committed_meanwhile = log.saturating_sub(before);
            before = log;
            if committed_meanwhile < few {
                break;
            }
        }
        copied.store(true, Ordering::Release);
        done.fetch_add(1, Ordering::Release);
    }
}

/// A connection borrowed by [`Sqlite::find_inline`]: given back (or closed, once the store
/// is) when the lookup ends, however it ends.
struct Loan<'a>(&'a Inner, Option<Connection>);

impl Drop for Loan<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.1.take()
            && !self.0.closed.load(Ordering::Acquire)
        {
            self.0
                .inline
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
        }
        self.0.lent.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connections of the engine: the writer's, the readers', the checkpointer's, those
/// lookups borrow.
type Connections = (Connection, Vec<Connection>, Connection, Vec<Connection>);

/// Prepares the files, opens and checks the writer connection, migrates, opens the readers
/// and the checkpointer's connection.
fn open_blocking(path: &Path) -> Result<Connections, StoreError> {
    prepare_files(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(|e| classify(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    quick_check(&conn, path)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| classify(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unsupported(format!(
            "cross-reference database {} cannot use WAL journaling (SQLite kept `{mode}`): \
             put the data directory on a local file system",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    migrations::migrate(&mut conn, path)?;
    // A job's savepoint keeps the pages it must restore in memory (a few pages for most
    // jobs; one job's worth at most, dropped at its RELEASE). Else SQLite spills them past
    // 64 KiB to a temporary file in /var/tmp: a second write of every page the rest of the
    // transaction touches, and a directory a read-only root file system does not have.
    // After the migrations, whose index builds may sort more than memory should hold.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.wal_hook(Some(note_wal_frames));

    let read_flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut readers = Vec::with_capacity(READERS);
    for _ in 0..READERS {
        let reader = Connection::open_with_flags(path, read_flags)?;
        reader.busy_timeout(BUSY_TIMEOUT)?;
        reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        reader.pragma_update(None, "cache_size", -READ_CACHE_KIB)?;
        readers.push(reader);
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut inline = Vec::with_capacity(INLINE);
    for _ in 0..cores.clamp(1, INLINE) {
        let reader = Connection::open_with_flags(path, read_flags)?;
        reader.busy_timeout(Duration::ZERO)?;
        reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        reader.pragma_update(None, "cache_size", -READ_CACHE_KIB)?;
        inline.push(reader);
    }
    let checkpointer = Connection::open_with_flags(path, flags)?;
    checkpointer.busy_timeout(BUSY_TIMEOUT)?;
    // Only the writer's commits ask for checkpoints.
    checkpointer.pragma_update(None, "wal_autocheckpoint", 0)?;
    checkpointer.pragma_update(None, "cache_size", -READ_CACHE_KIB)?;
    Ok((conn, readers, checkpointer, inline))
}

/// Creates the data directory (0700) and a database file (0600) when missing; warns when an
/// existing one is open to group or others. Also used for the provisioning log's file.
pub fn prepare_files(path: &Path) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source: io::Error| StoreError::Io { path: p, source }
    };
    if !dir.exists() {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(io_err(dir))?;
    } else {
        warn_if_open_to_others(dir);
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            warn_if_open_to_others(path);
            Ok(())
        }
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Logs a warning when group or others may access `path`.
fn warn_if_open_to_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{mode:o}"),
                    "database path is accessible to group or others"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Runs `PRAGMA quick_check`; anything but `ok` is [`StoreError::Corrupt`].
fn quick_check(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let problems = (|| -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare("PRAGMA quick_check(5)")?;
        let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
        rows.collect()
    })()
    .map_err(|e| classify(path, e))?;
    if problems.len() == 1 && problems.first().is_some_and(|p| p == "ok") {
        return Ok(());
    }
    Err(corrupt(path, &problems.join("; ")))
}

/// Turns corruption-class SQLite errors into [`StoreError::Corrupt`].
fn classify(path: &Path, error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt) => corrupt(path, "SQLite reports the file corrupt"),
        Some(ErrorCode::NotADatabase) => corrupt(path, "the file is not an SQLite database"),
        _ => StoreError::Sqlite(error),
    }
}

fn corrupt(path: &Path, detail: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "cross-reference database {} failed its integrity check ({detail}). Stop the sidecar, \
         move the file and any -wal/-shm files beside it aside (or restore it from a backup), \
         then start again: SCIM ids are derived from legacy ids, so a fresh file loses only \
         remembered externalIds, userNames, timestamps and tombstones",
        path.display()
    ))
}

/// Reads one [`XrefRecord`] from a row of [`select_record!`].
fn record(row: &Row<'_>) -> rusqlite::Result<XrefRecord> {
    Ok(XrefRecord {
        tenant: TenantId::new(row.get::<_, String>(0)?),
        resource_type: row.get(1)?,
        scim_id: ScimId::new(row.get::<_, String>(2)?),
        legacy_id: LegacyId::new(row.get::<_, String>(3)?),
        external_id: row.get::<_, Option<String>>(4)?.map(ExternalId::new),
        user_name: row.get(5)?,
        created: row.get(6)?,
        last_modified: row.get(7)?,
        version: row.get(8)?,
        tombstoned_at: row.get(9)?,
        fingerprint: row.get(10)?,
    })
}

/// The record with SCIM id `id`, on any connection.
pub(super) fn find(
    conn: &Connection,
    tenant: &TenantId,
    resource_type: &str,
    id: &ScimId,
) -> Result<Option<XrefRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(select_record!(
        "WHERE tenant = ?1 AND resource_type = ?2 AND scim_id = ?3"
    ))?;
    Ok(stmt
        .query_row((tenant.as_str(), resource_type, id.as_str()), record)
        .optional()?)
}

/// Inserts a new live record at version 1.
pub(super) fn insert(
    conn: &Connection,
    tenant: &TenantId,
    resource_type: &str,
    row: Seen,
    now: &str,
) -> Result<XrefRecord, StoreError> {
    if row.fingerprint.is_some() {
        retire_others(
            conn,
            tenant,
            resource_type,
            &row.legacy_id,
            &row.scim_id,
            now,
        )?;
    } else {
        // Without a fingerprint a legacy id has one SCIM id for ever, tombstoned or not.
        let mut held = conn.prepare_cached(
            "SELECT 1 FROM xref WHERE tenant = ?1 AND resource_type = ?2 AND legacy_id = ?3",
        )?;
        if held.exists((tenant.as_str(), resource_type, row.legacy_id.as_str()))? {
            return Err(StoreError::IdConflict {
                scim_id: row.scim_id,
                legacy_id: row.legacy_id,
            });
        }
    }
    let mut stmt = conn.prepare_cached(
        "INSERT INTO xref (tenant, resource_type, scim_id, legacy_id, external_id, user_name, \
         created, last_modified, version, fingerprint) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 1, ?8)",
    )?;
    let inserted = stmt.execute((
        tenant.as_str(),
        resource_type,
        row.scim_id.as_str(),
        row.legacy_id.as_str(),
        row.external_id.as_ref().map(ExternalId::as_str),
        row.user_name.as_deref(),
        now,
        row.fingerprint.as_deref(),
    ));
    match inserted {
        Ok(_) => Ok(XrefRecord {
            tenant: tenant.clone(),
            resource_type: resource_type.to_owned(),
            scim_id: row.scim_id,
            legacy_id: row.legacy_id,
            external_id: row.external_id,
            user_name: row.user_name,
            created: now.to_owned(),
            last_modified: now.to_owned(),
            version: 1,
            tombstoned_at: None,
            fingerprint: row.fingerprint,
        }),
        // The SCIM id is new, so the unique legacy id index refused: another SCIM id
        // already stands for this legacy id.
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
            Err(StoreError::IdConflict {
                scim_id: row.scim_id,
                legacy_id: row.legacy_id,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The upsert of [`Sqlite::upsert`], inside the caller's transaction.
pub(super) fn upsert_row(
    tx: &Connection,
    tenant: &TenantId,
    resource_type: &str,
    row: Seen,
    now: &str,
) -> Result<XrefRecord, StoreError> {
    Ok(match find(tx, tenant, resource_type, &row.scim_id)? {
        None => insert(tx, tenant, resource_type, row, now)?,
        Some(mut current) => {
            check_same_legacy(&current, &row)?;
            current.external_id = row.external_id;
            current.user_name = row.user_name;
            update_names(tx, &mut current, now)?;
            current
        }
    })
}

/// Tombstones the live record `id`; `true` if it was live.
pub(super) fn tombstone_row(
    conn: &Connection,
    tenant: &TenantId,
    resource_type: &str,
    id: &ScimId,
    now: &str,
) -> Result<bool, StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE xref SET tombstoned_at = ?4, last_modified = ?4, version = version + 1 \
         WHERE tenant = ?1 AND resource_type = ?2 AND scim_id = ?3 AND tombstoned_at IS NULL",
    )?;
    let changed = stmt.execute((tenant.as_str(), resource_type, id.as_str(), now))?;
    Ok(changed == 1)
}

/// Lifts the tombstone of `current` (tombstoned), retiring a live row of another account that
/// holds its legacy id; `true` if it was lifted.
pub(super) fn lift_row(
    tx: &Connection,
    current: &XrefRecord,
    now: &str,
) -> Result<bool, StoreError> {
    retire_others(
        tx,
        &current.tenant,
        &current.resource_type,
        &current.legacy_id,
        &current.scim_id,
        now,
    )?;
    let mut stmt = tx.prepare_cached(
        "UPDATE xref SET tombstoned_at = NULL, last_modified = ?4, version = version + 1 \
         WHERE tenant = ?1 AND resource_type = ?2 AND scim_id = ?3 \
         AND tombstoned_at IS NOT NULL",
    )?;
    let changed = stmt.execute((
        current.tenant.as_str(),
        current.resource_type.as_str(),
        current.scim_id.as_str(),
        now,
    ))?;
    Ok(changed == 1)
}

/// Tombstones the live rows of `legacy_id` other than `keep`: accounts that held the legacy
/// id before the app gave it to another (their fingerprints differ).
fn retire_others(
    conn: &Connection,
    tenant: &TenantId,
    resource_type: &str,
    legacy_id: &LegacyId,
    keep: &ScimId,
    now: &str,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE xref SET tombstoned_at = ?5, last_modified = ?5, version = version + 1 \
         WHERE tenant = ?1 AND resource_type = ?2 AND legacy_id = ?3 AND scim_id <> ?4 \
         AND tombstoned_at IS NULL",
    )?;
    let retired = stmt.execute((
        tenant.as_str(),
        resource_type,
        legacy_id.as_str(),
        keep.as_str(),
        now,
    ))?;
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
fn update_names(conn: &Connection, record: &mut XrefRecord, now: &str) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE xref SET external_id = ?4, user_name = ?5, last_modified = ?6, \
         version = version + 1 WHERE tenant = ?1 AND resource_type = ?2 AND scim_id = ?3",
    )?;
    stmt.execute((
        record.tenant.as_str(),
        record.resource_type.as_str(),
        record.scim_id.as_str(),
        record.external_id.as_ref().map(ExternalId::as_str),
        record.user_name.as_deref(),
        now,
    ))?;
    record.version += 1;
    record.last_modified = now.to_owned();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer keeps SQLite's default page cache; every other connection a small one, so
    /// that memory does not grow with the database times the connections.
    #[test]
    fn only_the_writer_has_a_full_page_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (writer, readers, checkpointer, inline) =
            open_blocking(&dir.path().join("xref.sqlite3")).expect("open");
        let cache = |conn: &Connection| -> i64 {
            conn.query_row("PRAGMA cache_size", [], |row| row.get(0))
                .expect("cache_size")
        };
        assert_eq!(cache(&writer), -2000, "SQLite's default");
        assert_eq!(readers.len(), READERS);
        assert!(!inline.is_empty());
        for conn in readers.iter().chain(&inline).chain([&checkpointer]) {
            assert_eq!(cache(conn), -READ_CACHE_KIB);
        }
    }
}
