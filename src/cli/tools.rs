//! The tooling commands: `simulate` (the Marketing Center simulator as a process of its own),
//! `bench` and its hidden `forward`. Built with the `dev-tools` feature only.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use anyhow::{Context, bail};
use mapping::ids::TenantId;
use simulator::marketing_center::{DEFAULT_BASE_PATH, Knobs, MarketingCenter};
use tokio::net::TcpListener;

use crate::server::{Limits, Transport};
use crate::telemetry::{self, LogFormat};
use crate::xref::{Seen, Store};

/// `simulate` flags.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The API key callers must send.
    #[arg(long)]
    api_key: String,
    /// Customer ids the simulator serves.
    #[arg(long, required = true, num_args = 1..)]
    customer: Vec<String>,
    /// Seed every customer with the demo groups and users.
    #[arg(long)]
    seed_demo: bool,
    /// Seed every customer with this many benchmark users (`user000001@bench.example`…).
    #[arg(long, default_value_t = 0)]
    seed_users: u64,
    /// Seed a group `ID` holding the first `MEMBERS` benchmark users (`ID:MEMBERS`;
    /// repeatable).
    #[arg(long, value_parser = parse_seed_group)]
    seed_group: Vec<(String, u64)>,
    /// Added latency per call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Calls per second per customer before `429` (default: unlimited).
    #[arg(long)]
    rate_limit: Option<u32>,
}

fn parse_seed_group(text: &str) -> anyhow::Result<(String, u64)> {
    let Some((id, members)) = text.split_once(':') else {
        bail!("{text:?}: give ID:MEMBERS, e.g. G-BIG:2000");
    };
    let members = members
        .parse()
        .with_context(|| format!("{text:?}: MEMBERS must be a number"))?;
    if id.is_empty() {
        bail!("{text:?}: the group ID is empty");
    }
    Ok((id.to_owned(), members))
}

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

pub(super) async fn simulate(a: SimulateArgs) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Auto);
    let sim = MarketingCenter::new(a.api_key, a.customer.clone());
    for c in &a.customer {
        if a.seed_demo {
            sim.seed_demo(c);
        }
        if a.seed_users > 0 || !a.seed_group.is_empty() {
            sim.seed_bench(c, a.seed_users, &a.seed_group);
        }
    }
    sim.set_knobs(Knobs {
        latency: Duration::from_millis(a.latency_ms),
        rate_limit_per_second: a.rate_limit,
        maintenance_retry_after: None,
    });
    let listen = a.listen;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    println!("Marketing Center simulator: http://{addr}{DEFAULT_BASE_PATH}");
    let _ = std::io::stdout().flush();
    sim.serve(listener, DEFAULT_BASE_PATH, crate::signals::shutdown())
        .await?;
    Ok(())
}

pub(super) async fn forward(a: ForwardArgs) -> anyhow::Result<()> {
    let listen = a.listen;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let svc = bench::forward::service(&a.upstream)?;
    println!("{}", bench::forward::announce(addr));
    let _ = std::io::stdout().flush();
    crate::server::run(
        listener,
        Transport::Plain,
        svc,
        crate::signals::shutdown(),
        Limits::with_grace(Duration::from_secs(1)),
    )
    .await?;
    Ok(())
}

pub(super) async fn bench(opts: bench::Options) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Text);
    bench::run(opts, &XrefFiller).await
}

/// Fills the bench's cross-references through the real store.
struct XrefFiller;

impl bench::Host for XrefFiller {
    fn fill_xref<'a>(
        &'a self,
        db: &'a Path,
        tenant: &'a TenantId,
        rows: u64,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>> {
        Box::pin(async move {
            let store = Store::open(db).await?;
            let mut i = 0;
            while i < rows {
                let end = (i + 20_000).min(rows);
                let batch: Vec<Seen> = (i..end)
                    .map(|n| {
                        let row = bench::fill_row(tenant, n);
                        Seen {
                            scim_id: row.scim_id,
                            legacy_id: row.legacy_id,
                            external_id: Some(row.external_id),
                            user_name: Some(row.user_name),
                        }
                    })
                    .collect();
                store.seen(tenant, "User", batch).await?;
                i = end;
            }
            store.close().await?;
            Ok(())
        })
    }
}
