//! `StoreError`: everything that can go wrong in the cross-reference store.
//!
//! Owns the error type and its wording; depends on `crate::ids` and `crate::pg` (whose errors
//! it carries). Messages never contain SQL text: an SQLite error is summarised by its result
//! code, a PostgreSQL one by its SQLSTATE.

use std::io;
use std::path::PathBuf;

use mapping::ids::{LegacyId, ScimId};

/// An error of the cross-reference store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory or database file could not be prepared.
    #[error("cannot prepare the cross-reference database at {}: {source}", path.display())]
    Io {
        /// The directory or file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// SQLite reported an error (displayed by result code only, never with SQL text).
    #[error("cross-reference database error: {}", sqlite_summary(.0))]
    Sqlite(#[from] rusqlite::Error),
    /// The database file failed its integrity check or is not an SQLite database; the
    /// message names the file and what to do.
    #[error("{0}")]
    Corrupt(String),
    /// The database was written by a newer sidecar whose schema this one does not know.
    #[error(
        "cross-reference database {} has schema version {found}, newer than the {supported} \
         this sidecar knows: run a newer sidecar or point it at another file",
        path.display()
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// The newest schema version this build can migrate to.
        supported: i64,
    },
    /// The database cannot run in the mode the store needs (for example no WAL support on
    /// a network file system).
    #[error("{0}")]
    Unsupported(String),
    /// A SCIM id and a legacy id disagree with what the cross-reference already holds
    /// (the caller did not derive the SCIM id with `ScimId::derive`).
    #[error(
        "SCIM id {scim_id} and legacy id {legacy_id} disagree with the cross-reference: \
         SCIM ids must be derived from the legacy id"
    )]
    IdConflict {
        /// The SCIM id given.
        scim_id: ScimId,
        /// The legacy id given.
        legacy_id: LegacyId,
    },
    /// PostgreSQL failed (`[store]`): unavailable (answered `503` with `Retry-After`) or a
    /// refused statement.
    #[error(transparent)]
    Pg(#[from] crate::pg::PgError),
    /// A stored value has an unexpected type (a column of another schema).
    #[error("cross-reference database error: unexpected value in result column {0}")]
    Column(usize),
    /// Another request holds the claim of the same key (a create of the same userName, a
    /// change of the same group's members) and did not finish in time.
    #[error(
        "another request writing the same {what} is still running (on this or another \
         replica): retry in a moment"
    )]
    Busy {
        /// What the claim is on, e.g. `userName`.
        what: &'static str,
    },
    /// The clock could not be formatted as RFC 3339.
    #[error("cannot format the current time: {0}")]
    Clock(#[from] time::error::Format),
    /// [`Store::close`](super::Store::close) was called: the store answers nothing more.
    #[error("the cross-reference store is closed")]
    Closed,
    /// The store's worker thread or task stopped unexpectedly (a bug).
    #[error("the cross-reference store's worker stopped unexpectedly")]
    WorkerLost,
}

/// A description of an SQLite error that leaves out SQL text and SQLite's free-form
/// message (which can name tables and columns).
fn sqlite_summary(error: &rusqlite::Error) -> String {
    use rusqlite::Error as E;
    match error {
        // `ffi::Error` displays "Error code N: <generic description of the code>".
        E::SqliteFailure(code, _) => code.to_string(),
        E::QueryReturnedNoRows => "query returned no rows".to_owned(),
        E::QueryReturnedMoreThanOneRow => "query returned more than one row".to_owned(),
        E::FromSqlConversionFailure(column, ..)
        | E::InvalidColumnType(column, ..)
        | E::IntegralValueOutOfRange(column, _) => {
            format!("unexpected value in result column {column}")
        }
        E::Utf8Error(_) => "invalid UTF-8 in a stored text".to_owned(),
        _ => "unexpected use of the database API".to_owned(),
    }
}

impl StoreError {
    /// Whether the store could not be reached now and a retry later may succeed: the client
    /// is answered `503` with `Retry-After`.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Pg(e) => e.is_unavailable(),
            StoreError::Busy { .. } => true,
            _ => false,
        }
    }
}
