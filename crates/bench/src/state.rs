//! Where the sidecars a benchmark starts keep their state: SQLite files in each sidecar's data
//! directory (the default), or with `--store` a PostgreSQL database of each sidecar's own on
//! the given server, created before the sidecar starts and dropped when the bench ends.
//!
//! A database per sidecar rather than one database whose tables are emptied between
//! scenarios: the two sidecars of the scale run serve side by side with different
//! cross-references (1,000 and 1,000,000 rows) under the same tenant, which one set of tables
//! cannot hold; and a new database starts as a new SQLite file does, with no table, no
//! statistics and no dead rows left by an earlier scenario.

use serde_json::{Value, json};

use super::Host;

/// A PostgreSQL database the bench uses: its URL, as `[store] url` takes it (never with a
/// password), and the environment variable holding the password, if the server wants one.
#[derive(Clone, Debug)]
pub struct PgDatabase {
    /// `postgres://USER@HOST:PORT/DATABASE?sslmode=…`.
    pub url: String,
    /// The variable the password is read from (`password = { env = … }`).
    pub password_env: Option<String>,
}

/// Where one sidecar the bench starts keeps its state.
#[derive(Clone, Debug)]
pub enum State {
    /// `xref.sqlite3` and `provisioning.sqlite3` in this data directory.
    Sqlite(std::path::PathBuf),
    /// A database of its own.
    Postgres(PgDatabase),
}

/// The states of one bench run, and the databases to drop at its end.
pub(super) struct States<'h> {
    /// Creates and drops the databases.
    host: &'h dyn Host,
    /// The server of `--store`; `None`: SQLite.
    server: Option<PgDatabase>,
    /// Part of every database name, so that two benches on one server do not collide.
    run: String,
    /// The databases created so far, dropped at the end.
    created: Vec<String>,
    /// The bench's temporary directory (the sidecars' homes).
    dir: std::path::PathBuf,
}

impl<'h> States<'h> {
    /// SQLite files under `dir`, or databases on `server`.
    pub(super) fn new(
        server: Option<PgDatabase>,
        dir: &std::path::Path,
        host: &'h dyn Host,
    ) -> States<'h> {
        States {
            host,
            server,
            run: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
            created: Vec::new(),
            dir: dir.to_owned(),
        }
    }

    /// What the report says of the store.
    pub(super) fn describe(&self) -> Value {
        match &self.server {
            None => json!({"engine": "sqlite"}),
            Some(server) => json!({"engine": "postgresql", "server": server.url}),
        }
    }

    /// The engine's name, for the printed header.
    pub(super) fn engine(&self) -> &'static str {
        if self.server.is_some() {
            "postgresql"
        } else {
            "sqlite"
        }
    }

    /// The bench's temporary directory.
    pub(super) fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// SQLite files for the sidecar `name`, whatever the store of the run.
    pub(super) fn sqlite(&self, name: &str) -> State {
        State::Sqlite(self.dir.join(name).join("data"))
    }

    /// A fresh, empty state for the sidecar `name` (its directory is `dir/name`).
    pub(super) async fn fresh(&mut self, name: &str) -> anyhow::Result<State> {
        let Some(server) = &self.server else {
            return Ok(self.sqlite(name));
        };
        let suffix: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let database = format!("scim_bench_{}_{suffix}", self.run);
        let url = with_database(&server.url, &database)?;
        self.host
            .create_database(server, &database)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot create the database {database} through --store (its user needs \
                     CREATEDB): {e:#}"
                )
            })?;
        self.created.push(database);
        Ok(State::Postgres(PgDatabase {
            url,
            password_env: server.password_env.clone(),
        }))
    }

    /// Drops every database this run created. Called once every sidecar has stopped; a
    /// database that cannot be dropped is named on standard error, and the bench goes on.
    pub(super) async fn drop_all(&mut self) {
        let Some(server) = &self.server else {
            return;
        };
        for database in self.created.drain(..) {
            if let Err(e) = self.host.drop_database(server, &database).await {
                eprintln!("bench: cannot drop the database {database}: {e:#}");
            }
        }
    }
}

/// `url` with its database (the path) replaced by `database`. The query (`sslmode`, a socket
/// host) is kept; a database given as a `dbname` parameter is refused, since it would win
/// over the path.
fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let scheme_end = url
        .find("://")
        .map(|i| i + 3)
        .ok_or_else(|| anyhow::anyhow!("--store must be a postgres:// URL"))?;
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    if query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("dbname="))) {
        return Err(anyhow::anyhow!(
            "--store: give the database in the URL's path, not as dbname="
        ));
    }
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{database}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}
