//! `reconcile`: compares the cross-reference with the legacy app and reports drift; with
//! `--fix`, repairs what can be repaired (safe while serving).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::reconcile::Report;
use crate::telemetry;
use crate::tenant;

/// `reconcile` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file of the running sidecar.
    #[arg(long, short)]
    config: PathBuf,
    /// Only this tenant (default: every tenant).
    #[arg(long)]
    tenant: Option<String>,
    /// Repair what can be repaired: record unrecorded users, refresh remembered
    /// externalIds, tombstone rows whose legacy user is gone.
    #[arg(long)]
    fix: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) async fn run(args: &Args) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    telemetry::init(config.server.log_format);
    config.validate()?;
    let only = args.tenant.as_deref();
    let settings = super::tenant_settings_of(&config, only)?;
    let xref = crate::run::open_xref(config.store.as_ref(), &config.server.data_dir).await?;
    let tenants = tenant::tenants(settings, &Arc::new(Metrics::new()))?;
    let mut remaining = 0;
    for tenant in &tenants.all {
        let report = crate::reconcile::reconcile(tenant, &xref, args.fix).await?;
        remaining += report.remaining();
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print_report(&report);
        }
    }
    xref.close().await?;
    if remaining > 0 {
        bail!("{remaining} drift item(s) remain");
    }
    Ok(())
}

fn print_report(r: &Report) {
    let verb = if r.fixed { "fixed" } else { "found" };
    println!(
        "tenant {}: {} legacy users, {} xref rows",
        r.tenant, r.legacy_users, r.xref_rows
    );
    println!("  vanished ({verb}): {}", r.vanished.join(", "));
    println!("  unrecorded ({verb}): {}", r.unrecorded.join(", "));
    for m in &r.external_id_mismatch {
        println!(
            "  externalId mismatch ({verb}): legacy {} has {:?}, xref remembered {:?}",
            m.legacy_id, m.legacy, m.xref
        );
    }
    for d in &r.duplicates {
        println!(
            "  duplicate (decide which to keep): externalId {:?} on legacy users {}",
            d.external_id,
            d.legacy_ids.join(", ")
        );
    }
}
