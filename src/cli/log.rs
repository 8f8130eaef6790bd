//! `log`: prints the provisioning log, newest first (safe while serving).

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;

use crate::config::Config;
use crate::pg::Pg;
use crate::provisioning;

/// `log` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file of the sidecar (its `[store]`, else its `server.data_dir`,
    /// holds the log).
    #[arg(long, short, required_unless_present = "data_dir")]
    config: Option<PathBuf>,
    /// The data directory, instead of a configuration file.
    #[arg(long, conflicts_with = "config")]
    data_dir: Option<PathBuf>,
    /// Only failed operations.
    #[arg(long)]
    failed: bool,
    /// Only operations since: a duration back from now (90s, 15m, 24h, 7d) or an
    /// RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Only operations whose userName, group name or SCIM id contains this text.
    #[arg(long)]
    search: Option<String>,
    /// At most this many entries.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

pub(super) async fn run(f: &Args) -> anyhow::Result<()> {
    let store = match &f.config {
        Some(path) => Config::load(path)?.store,
        None => None,
    };
    let now = provisioning::now_ms();
    let query = provisioning::Query {
        failed_only: f.failed,
        since_ms: f
            .since
            .as_deref()
            .map(|s| provisioning::parse_since(s, now))
            .transpose()?,
        tenant: f.tenant.clone(),
        search: f.search.clone(),
        limit: f.limit,
    };
    let entries = match store {
        // The shared log of every replica.
        Some(store) => provisioning::read_postgres(&Pg::connect(&store).await?, &query).await?,
        None => {
            let dir = super::data_dir(f.config.as_deref(), f.data_dir.clone())?;
            let path = dir.join(provisioning::FILE_NAME);
            if !path.exists() {
                bail!(
                    "no provisioning log at {}: the sidecar has not run with this data directory",
                    path.display()
                );
            }
            tokio::task::spawn_blocking(move || provisioning::read(&path, &query)).await??
        }
    };
    let mut out = std::io::stdout().lock();
    if f.json {
        for e in &entries {
            writeln!(out, "{}", serde_json::to_string(e)?)?;
        }
        return Ok(());
    }
    if entries.is_empty() {
        writeln!(out, "no operation matches")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<24} {:<12} {:<17} {:<32} {:<12} SCIM ERROR / SCIM ID",
        "TIME (UTC)", "TENANT", "OPERATION", "USERNAME / GROUP", "OUTCOME"
    )?;
    for e in &entries {
        let outcome = format!("{} {}", if e.failed { "FAILED" } else { "ok" }, e.status);
        let last = match (&e.scim_type, &e.detail) {
            (Some(t), Some(d)) => format!("{t}: {d}"),
            (None, Some(d)) => d.clone(),
            _ => e.scim_id.clone().unwrap_or_default(),
        };
        writeln!(
            out,
            "{:<24} {:<12} {:<17} {:<32} {:<12} {}",
            provisioning::format_ms(e.at_ms),
            e.tenant,
            format!("{} {}", e.action, e.resource),
            e.subject.as_deref().unwrap_or("-"),
            outcome,
            last
        )?;
    }
    Ok(())
}
