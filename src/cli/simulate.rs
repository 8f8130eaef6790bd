//! `simulate`: the Marketing Center simulator as a process of its own (deploy examples, the
//! bench). Built with the `dev-tools` feature only.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use simulator::marketing_center::{DEFAULT_BASE_PATH, Knobs, MarketingCenter};
use tokio::net::TcpListener;

use crate::telemetry::{self, LogFormat};

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

pub(super) async fn run(a: SimulateArgs) -> anyhow::Result<()> {
    let shutdown = crate::signals::Shutdown::listen();
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
    // A closed stdout is no reason to stop serving.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "Marketing Center simulator: http://{addr}{DEFAULT_BASE_PATH}"
    );
    let _ = out.flush();
    drop(out);
    sim.serve(listener, DEFAULT_BASE_PATH, shutdown.wait())
        .await?;
    Ok(())
}
