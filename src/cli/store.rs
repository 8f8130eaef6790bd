//! `store migrate`: copies a single-replica installation's state (the SQLite cross-reference
//! and provisioning log in its data directory) into PostgreSQL, for `[store]`.
//!
//! Safe to run while the old sidecar serves, and to run again: rows are copied with every
//! column as it is, a row already copied is overwritten only by a newer version of itself,
//! and a log entry already copied is skipped. After the copy every source row is read back
//! from PostgreSQL and compared. The way to move without losing a write: copy while serving,
//! stop the old sidecar, copy again (only what changed meanwhile), start the replicas.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::config::{SecretSource, StoreConfig};
use crate::pg::Pg;
use crate::provisioning::{self, Query};
use crate::run::XREF_FILE;
use crate::xref::{Store, XrefRecord};

/// Rows copied per transaction.
const CHUNK: usize = 5_000;

/// `store` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do with the store.
    #[command(subcommand)]
    command: StoreCommand,
}

/// The `store` subcommands.
#[derive(Debug, clap::Subcommand)]
enum StoreCommand {
    /// Copy the SQLite state of a data directory into PostgreSQL, then verify the copy.
    Migrate(MigrateArgs),
}

/// `store migrate` flags.
#[derive(Debug, clap::Args)]
struct MigrateArgs {
    /// The data directory of the installation (its `server.data_dir`, holding
    /// `xref.sqlite3` and `provisioning.sqlite3`).
    #[arg(long)]
    from: PathBuf,
    /// The PostgreSQL database, as `[store] url` takes it, without the password:
    /// `postgres://USER@HOST:5432/DATABASE?sslmode=verify-full`.
    #[arg(long)]
    to: String,
    /// The environment variable holding the user's password.
    #[arg(long, conflicts_with = "password_file")]
    password_env: Option<String>,
    /// The file holding the user's password.
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// The certificate authorities of the server's certificate (PEM), for `verify-full`.
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

pub(super) async fn run(args: &Args) -> anyhow::Result<()> {
    match &args.command {
        StoreCommand::Migrate(m) => migrate(m).await,
    }
}

async fn migrate(a: &MigrateArgs) -> anyhow::Result<()> {
    let source_file = a.from.join(XREF_FILE);
    if !source_file.exists() {
        bail!(
            "no cross-reference at {}: give the data directory of the installation (--from)",
            source_file.display()
        );
    }
    let password = match (&a.password_env, &a.password_file) {
        (Some(env), _) => Some(SecretSource::Env { env: env.clone() }),
        (None, Some(file)) => Some(SecretSource::File { file: file.clone() }),
        (None, None) => None,
    };
    let config = StoreConfig {
        url: a.to.clone(),
        password,
        ca_file: a.ca_file.clone(),
        pool_size: 2,
        acquire_timeout_secs: 30,
        synchronous_commit: false,
    };
    let pg = Pg::connect(&config).await?;
    let target = Store::open_postgres(pg.clone()).await?;
    let source = Store::open(&source_file).await?;
    println!("copying {} to postgres://{}", a.from.display(), pg.target());

    let mut differ = 0usize;
    for (tenant, resource_type, live, tombstoned) in source.all_counts().await? {
        let rows = source.all(&tenant, &resource_type).await?;
        let mut written = 0;
        for chunk in rows.chunks(CHUNK) {
            written += target.import(chunk).await?;
        }
        let (same, newer) = verify(&target, &rows).await?;
        let wrong = rows.len() - same - newer;
        differ += wrong;
        println!(
            "xref {tenant}/{resource_type}: {} rows ({live} live, {tombstoned} tombstoned), \
             {written} written, {same} verified{}{}",
            rows.len(),
            if newer > 0 {
                format!(", {newer} newer in PostgreSQL (kept)")
            } else {
                String::new()
            },
            if wrong > 0 {
                format!(", {wrong} DIFFER")
            } else {
                String::new()
            },
        );
    }
    source.close().await?;

    let log_file = a.from.join(provisioning::FILE_NAME);
    if log_file.exists() {
        let all = Query {
            limit: usize::MAX,
            ..Query::default()
        };
        let entries = tokio::task::spawn_blocking(move || provisioning::read(&log_file, &all))
            .await
            .context("reading the provisioning log")??;
        let inserted = provisioning::import_postgres(&pg, &entries).await?;
        let copied = provisioning::read_postgres(
            &pg,
            &Query {
                limit: usize::MAX,
                ..Query::default()
            },
        )
        .await?;
        let key = |e: &provisioning::Entry| {
            (
                e.at_ms,
                e.tenant.clone(),
                e.action.clone(),
                e.scim_id.clone(),
                e.request_id.clone(),
            )
        };
        let there: HashSet<_> = copied.iter().map(key).collect();
        let missing = entries.iter().filter(|e| !there.contains(&key(e))).count();
        differ += missing;
        println!(
            "provisioning log: {} entries, {inserted} inserted, {} verified{}",
            entries.len(),
            entries.len() - missing,
            if missing > 0 {
                format!(", {missing} MISSING")
            } else {
                String::new()
            }
        );
    }
    target.close().await?;
    if differ > 0 {
        bail!("{differ} rows or entries differ after the copy: see above");
    }
    println!("done: every row and entry is in PostgreSQL");
    Ok(())
}

/// Reads every source row back from the target: `(same, newer in the target)`.
async fn verify(target: &Store, rows: &[XrefRecord]) -> anyhow::Result<(usize, usize)> {
    let (mut same, mut newer) = (0, 0);
    for chunk in rows.chunks(CHUNK) {
        let Some(first) = chunk.first() else {
            continue;
        };
        let ids = chunk.iter().map(|r| r.scim_id.clone()).collect();
        let copied = target
            .get_many(&first.tenant, &first.resource_type, ids)
            .await?;
        for (row, copy) in chunk.iter().zip(copied) {
            match copy {
                Some(c) if c == *row => same += 1,
                Some(c) if c.version > row.version => newer += 1,
                _ => {}
            }
        }
    }
    Ok((same, newer))
}
