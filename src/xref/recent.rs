//! The SQLite engine's recent records: the rows read by SCIM id, kept in memory so that a
//! read of a known id needs neither a thread hand-off nor a query, and still sees at once what
//! any other connection wrote (`reconcile --fix` in another process, a second sidecar on the
//! same file by mistake).
//!
//! # Why a kept row is never stale
//!
//! Every commit to a database in WAL mode rewrites the *WAL-index header*: the first 48 bytes
//! of the `-shm` file, which SQLite keeps mapped in every connection's memory (its format is
//! documented, <https://sqlite.org/walformat.html>, and a commit always changes it: a change
//! counter, the frame count and a checksum are in it). A lookup reads those bytes (one
//! `pread` of a page that is always resident; no lock, no query) and answers from memory only
//! when they equal the *stamp*, the header as it was when the kept rows were last known good.
//!
//! The stamp moves only on the writer thread, in [`Recent::sync`], after each write
//! transaction and when a lookup saw a header that differs: it reads the header, then
//! `PRAGMA data_version` on the writer's own connection (whose value changes only when
//! *another* connection committed). When this process wrote, or another connection did,
//! every kept row is dropped; then the stamp becomes the header read. A lookup that finds a
//! header newer than the stamp reads from the database as before and asks for a sync.
//!
//! A row read from the database is kept only if no sync dropped rows since the lookup began
//! (the *epoch*), so a read that started before a write cannot put back what the write changed.
//!
//! Owns the kept rows, the stamp and the `-shm` file handle; used by `sqlite`.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;

use super::XrefRecord;
use super::links::Kept;
use mapping::ids::{ScimId, TenantId};

/// Rows kept (in two generations; see `links::Kept`). A row takes a few hundred bytes, so at
/// most about 3 MiB.
const CAPACITY: usize = 8_192;
/// The bytes of one copy of the WAL-index header; the file starts with two copies.
const HEADER: usize = 48;
/// The offset of the header's `isInit` byte (1 once the header is valid).
const IS_INIT: usize = 12;

type Header = [u8; HEADER];

/// See the module documentation.
#[derive(Debug)]
pub(super) struct Recent {
    /// The database's `-shm` file, read-only; `None` when it could not be opened (every
    /// lookup then reads from the database).
    wal_index: Option<File>,
    state: Mutex<State>,
    /// A sync was asked for and has not started yet.
    sync_asked: AtomicBool,
    /// Lookups answered from memory (tests prove the path is taken).
    #[cfg(test)]
    pub(super) hits: std::sync::atomic::AtomicU64,
}

#[derive(Debug)]
struct State {
    /// The header as it was when `records` were last known good; `None` before the first
    /// sync, or when the header cannot be read.
    stamp: Option<Header>,
    /// Grows by one whenever `records` are dropped.
    epoch: u64,
    /// The writer connection's `PRAGMA data_version` at the last sync.
    data_version: Option<i64>,
    records: Kept<Arc<XrefRecord>>,
}

/// What a lookup found.
pub(super) enum Look {
    /// The row, as the database holds it now.
    Hit(Arc<XrefRecord>),
    /// Not kept: read it from the database, then give it to [`Recent::keep`] with the ticket.
    Miss(Ticket),
    /// The kept rows may be stale (or there is no header to tell): read from the database and
    /// keep nothing. `true` when the writer thread should be asked for a sync.
    Stale(bool),
}

/// When a lookup missed: what the kept rows were then.
pub(super) struct Ticket {
    stamp: Header,
    epoch: u64,
}

impl Recent {
    /// Watches the database at `db` (in WAL mode, opened by the caller: its `-shm` exists).
    pub(super) fn open(db: &Path) -> Recent {
        let mut shm = db.as_os_str().to_owned();
        shm.push("-shm");
        let wal_index = match File::open(&shm) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(file = %Path::new(&shm).display(), error = %e,
                    "the WAL index cannot be read: every cross-reference lookup will query the database");
                None
            }
        };
        Recent {
            wal_index,
            state: Mutex::new(State {
                stamp: None,
                epoch: 0,
                data_version: None,
                records: Kept::new(CAPACITY),
            }),
            sync_asked: AtomicBool::new(false),
            #[cfg(test)]
            hits: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current WAL-index header, when both copies agree (they differ only while a commit
    /// writes them) and it is initialised.
    #[cfg(unix)]
    fn header(&self) -> Option<Header> {
        use std::os::unix::fs::FileExt;
        let mut both = [0u8; 2 * HEADER];
        self.wal_index.as_ref()?.read_exact_at(&mut both, 0).ok()?;
        let (first, second) = both.split_at(HEADER);
        if first != second || first[IS_INIT] != 1 {
            return None;
        }
        first.try_into().ok()
    }

    /// Without `pread`, no header: every lookup queries the database.
    #[cfg(not(unix))]
    fn header(&self) -> Option<Header> {
        None
    }

    /// The row of `id`, when kept and still good.
    pub(super) fn look(&self, tenant: &TenantId, resource_type: &str, id: &ScimId) -> Look {
        let Some(now) = self.header() else {
            return Look::Stale(false);
        };
        let mut state = self.state();
        if state.stamp != Some(now) {
            drop(state);
            return Look::Stale(!self.sync_asked.swap(true, Ordering::AcqRel));
        }
        match state.records.get(tenant, resource_type, id) {
            Some(record) => {
                #[cfg(test)]
                self.hits.fetch_add(1, Ordering::Relaxed);
                Look::Hit(record)
            }
            None => Look::Miss(Ticket {
                stamp: now,
                epoch: state.epoch,
            }),
        }
    }

    /// Keeps `record`, read from the database after a [`Look::Miss`], unless rows were
    /// dropped since.
    pub(super) fn keep(&self, ticket: Ticket, record: &XrefRecord) {
        let mut state = self.state();
        if state.epoch == ticket.epoch && state.stamp == Some(ticket.stamp) {
            state.records.put(
                &record.tenant,
                &record.resource_type,
                &record.scim_id,
                Arc::new(record.clone()),
            );
        }
    }

    /// On the writer thread, on its connection: after a write transaction (`wrote`: it
    /// changed rows) or when asked. Drops every kept row if this process or another
    /// connection wrote since the last sync, and moves the stamp to the header now.
    pub(super) fn sync(&self, conn: &Connection, wrote: bool) {
        self.sync_asked.store(false, Ordering::Release);
        // The header first: a commit after it changes `data_version` below or the header
        // lookups see, so it is never taken for good.
        let now = self.header();
        let data_version = conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |row| row.get::<_, i64>(0)))
            .ok();
        let mut state = self.state();
        if wrote || data_version.is_none() || data_version != state.data_version {
            state.records.clear();
            state.epoch += 1;
        }
        state.stamp = data_version.and(now);
        state.data_version = data_version;
    }

    /// Rows kept now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.state().records.len()
    }
}
