//! `bench` and its hidden `forward`: the sidecar measured against the simulator and a bare
//! forwarder (the `bench` crate), served and hosted by this binary. Built with the
//! `dev-tools` feature only.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use mapping::ids::TenantId;
use tokio::net::TcpListener;

use crate::config::{DEFAULT_ACQUIRE_TIMEOUT_SECS, SecretSource, StoreConfig};
use crate::pg::Pg;
use crate::run::XREF_FILE;
use crate::server::{Limits, Transport};
use crate::telemetry::{self, LogFormat};
use crate::xref::{Seen, Store};

/// `forward` flags.
#[derive(Debug, clap::Args)]
pub struct ForwardArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to forward: `http://host:port`.
    #[arg(long)]
    upstream: String,
}

pub(super) async fn forward(a: ForwardArgs) -> anyhow::Result<()> {
    let shutdown = crate::signals::Shutdown::listen();
    let listen = a.listen;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let svc = ::bench::forward::service(&a.upstream)?;
    // A closed stdout is no reason to stop serving.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", ::bench::forward::announce(addr));
    let _ = out.flush();
    drop(out);
    crate::server::run(
        listener,
        Transport::Plain,
        svc,
        shutdown.wait(),
        Limits::with_grace(Duration::from_secs(1)),
    )
    .await?;
    Ok(())
}

pub(super) async fn run(opts: ::bench::Options) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Text);
    ::bench::run(opts, &XrefFiller).await
}

/// The bench's access to the sidecar's storage: fills cross-references through the real store,
/// counts what a sidecar left, and creates and drops the databases of `--store`.
struct XrefFiller;

/// Rows per `Store::seen` call, as a listing records a large page.
const FILL_BATCH: u64 = 20_000;
/// Rows filled through `Store::seen` on PostgreSQL; the rest go in by the bulk path.
const PG_SEEN_ROWS: u64 = 1_000;

/// The `[store]` a bench connection uses: `db`'s URL and password variable, one connection.
fn store_config(db: &::bench::PgDatabase) -> StoreConfig {
    StoreConfig {
        url: db.url.clone(),
        password: db.password_env.clone().map(|env| SecretSource::Env { env }),
        ca_file: None,
        pool_size: 1,
        acquire_timeout_secs: DEFAULT_ACQUIRE_TIMEOUT_SECS,
        synchronous_commit: false,
    }
}

/// The store of `state`, opened (and migrated) as a sidecar opens it.
async fn open(state: &::bench::State) -> anyhow::Result<Store> {
    Ok(match state {
        ::bench::State::Sqlite(data) => Store::open(&data.join(XREF_FILE)).await?,
        ::bench::State::Postgres(db) => {
            Store::open_postgres(Pg::connect(&store_config(db)).await?).await?
        }
    })
}

/// Rows `from..to` of the fill, as `Store::seen` takes them.
fn fill_rows(tenant: &TenantId, from: u64, to: u64) -> Vec<Seen> {
    (from..to)
        .map(|n| {
            let row = ::bench::fill_row(tenant, n);
            Seen {
                scim_id: row.scim_id,
                legacy_id: row.legacy_id,
                external_id: Some(row.external_id),
                user_name: Some(row.user_name),
                fingerprint: None,
            }
        })
        .collect()
}

impl ::bench::Host for XrefFiller {
    fn fill_xref<'a>(
        &'a self,
        state: &'a ::bench::State,
        tenant: &'a TenantId,
        rows: u64,
    ) -> ::bench::HostFuture<'a, ()> {
        Box::pin(async move {
            let store = open(state).await?;
            // SQLite takes every row through `seen`. PostgreSQL takes the first
            // `PG_SEEN_ROWS` through it, then the bulk path: `seen` makes several round trips
            // per new row there.
            let through_seen = match store.pg() {
                None => rows,
                Some(_) => rows.min(PG_SEEN_ROWS),
            };
            let mut i = 0;
            let mut created = None;
            while i < through_seen {
                let end = (i + FILL_BATCH).min(through_seen);
                let recorded = store
                    .seen(tenant, "User", fill_rows(tenant, i, end))
                    .await?;
                created = created.or_else(|| recorded.first().map(|r| r.created.clone()));
                i = end;
            }
            if let (Some(pg), Some(created)) = (store.pg(), created) {
                bulk_fill(pg, tenant, i, rows, &created).await?;
            }
            store.close().await?;
            Ok(())
        })
    }

    fn xref_rows<'a>(&'a self, state: &'a ::bench::State) -> ::bench::HostFuture<'a, u64> {
        Box::pin(async move {
            let store = open(state).await?;
            let rows = store
                .all_counts()
                .await?
                .iter()
                .map(|(_, _, live, tombstoned)| live + tombstoned)
                .sum();
            store.close().await?;
            Ok(rows)
        })
    }

    fn analyze<'a>(&'a self, state: &'a ::bench::State) -> ::bench::HostFuture<'a, ()> {
        Box::pin(async move {
            let ::bench::State::Postgres(db) = state else {
                return Ok(());
            };
            on_server(db, "ANALYZE".to_owned()).await
        })
    }

    fn create_database<'a>(
        &'a self,
        server: &'a ::bench::PgDatabase,
        name: &'a str,
    ) -> ::bench::HostFuture<'a, ()> {
        // `name` is the bench's own (ASCII letters, digits, `_`): quoting it is enough.
        Box::pin(on_server(server, format!("CREATE DATABASE \"{name}\"")))
    }

    fn drop_database<'a>(
        &'a self,
        server: &'a ::bench::PgDatabase,
        name: &'a str,
    ) -> ::bench::HostFuture<'a, ()> {
        // FORCE (PostgreSQL 13 and later): a stopped sidecar's sessions may not have ended
        // on the server yet.
        Box::pin(on_server(
            server,
            format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        ))
    }
}

/// Runs one statement on `server`'s database outside a transaction (`CREATE DATABASE` cannot
/// run in one).
async fn on_server(server: &::bench::PgDatabase, sql: String) -> anyhow::Result<()> {
    let pg = Pg::connect(&store_config(server)).await?;
    let client = pg.client().await?;
    let done = client.batch_execute(&sql).await.map_err(|e| pg.error(&e));
    drop(client);
    pg.close().await;
    Ok(done?)
}

/// The bulk path of a PostgreSQL fill, for the bench only: rows `from..to` inserted
/// `FILL_BATCH` at a time with one statement each, as `Store::seen` would record new users
/// (version 1, live, no fingerprint; `created`, the time of the rows `seen` recorded, as
/// their creation and last modification). `Store::seen` makes four round trips per new row
/// on PostgreSQL (the row lock, the legacy id check, prepared anew each time, and the
/// insert): 1,000 rows took 0.7 to 3.4 s in the README's runs, so 1,000,000 would take 12
/// minutes or more, against 20 to 35 s this way.
async fn bulk_fill(
    pg: &Pg,
    tenant: &TenantId,
    from: u64,
    to: u64,
    created: &str,
) -> anyhow::Result<()> {
    let client = pg.client().await?;
    let insert = client
        .prepare(
            "INSERT INTO xref (tenant, resource_type, scim_id, legacy_id, external_id, \
             user_name, created, last_modified, version) \
             SELECT $1, 'User', s, l, e, u, $2, $2, 1 \
             FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) AS r (s, l, e, u)",
        )
        .await
        .map_err(|e| pg.error(&e))?;
    let mut i = from;
    while i < to {
        let end = (i + FILL_BATCH).min(to);
        let rows: Vec<::bench::FillRow> = (i..end).map(|n| ::bench::fill_row(tenant, n)).collect();
        let column = |f: fn(&::bench::FillRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
        let scim_ids = column(|r| r.scim_id.as_str());
        let legacy_ids = column(|r| r.legacy_id.as_str());
        let external_ids = column(|r| r.external_id.as_str());
        let user_names = column(|r| r.user_name.as_str());
        client
            .execute(
                &insert,
                &[
                    &tenant.as_str(),
                    &created,
                    &scim_ids,
                    &legacy_ids,
                    &external_ids,
                    &user_names,
                ],
            )
            .await
            .map_err(|e| pg.error(&e))?;
        i = end;
    }
    Ok(())
}
