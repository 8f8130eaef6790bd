//! `check`: validates mapping files (and a configuration) without starting anything.

use std::path::PathBuf;

use anyhow::bail;

use crate::config::Config;

/// `check` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Check the mappings of this configuration file, and the configuration itself.
    #[arg(long)]
    config: Option<PathBuf>,
    /// With --config: also make read-only calls to each tenant's legacy app (a list page,
    /// one record, each filter, the groups) and report whether every pointer resolves and
    /// every value decodes. Writes nothing.
    #[arg(long, requires = "config")]
    live: bool,
    /// With --live: only this tenant.
    #[arg(long, requires = "live")]
    tenant: Option<String>,
    /// Mapping files to check.
    mappings: Vec<PathBuf>,
}

pub(super) fn run(args: &Args) -> anyhow::Result<()> {
    let mut files: Vec<PathBuf> = args.mappings.clone();
    let mut problems = Vec::new();
    if let Some(path) = &args.config {
        match Config::load(path).and_then(|c| c.validate().map(|()| c)) {
            Ok(c) => {
                match super::load_tls(&c) {
                    Ok(Some((tls, _))) => println!(
                        "{} and {}: ok",
                        tls.files().cert.display(),
                        tls.files().key.display()
                    ),
                    Ok(None) => {}
                    Err(e) => problems.push(format!("{e:#}")),
                }
                // The store's URL as the driver reads it, and its TLS roots (nothing is sent).
                if let Some(store) = &c.store {
                    match crate::pg::check(store) {
                        Ok(target) => println!("store: postgres://{target}: ok"),
                        Err(e) => problems.push(e.to_string()),
                    }
                }
                files.extend(c.tenants.values().map(|t| t.mapping.clone()));
                // Every placeholder a tenant's mapping uses has a value in its configuration.
                for (name, t) in &c.tenants {
                    if let (Ok(mapping), Ok(values)) = (super::load_mapping(&t.mapping), t.values())
                    {
                        problems.extend(super::missing_values(name, &mapping, &values));
                    }
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    if files.is_empty() && problems.is_empty() {
        bail!("nothing to check: name mapping files or --config FILE");
    }
    for f in &files {
        match super::load_mapping(f) {
            Ok(_) => println!("{}: ok", f.display()),
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    if args.live
        && problems.is_empty()
        && let Some(path) = &args.config
    {
        problems.extend(live(path, args.tenant.as_deref())?);
    }
    if problems.is_empty() {
        return Ok(());
    }
    for p in &problems {
        println!("{p}");
    }
    bail!(
        "{} problem(s) found",
        problems.iter().map(|p| p.lines().count()).sum::<usize>()
    )
}

/// `--live`: each tenant's read-only calls; prints every finding, returns the problems.
fn live(config: &std::path::Path, only: Option<&str>) -> anyhow::Result<Vec<String>> {
    use crate::live::Level;
    let config = Config::load(config)?;
    let settings = super::tenant_settings_of(&config, only)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let tenants = crate::tenant::tenants(
        settings,
        &std::sync::Arc::new(crate::metrics::Metrics::new()),
    )?;
    let mut problems = Vec::new();
    for t in &tenants.all {
        for f in runtime.block_on(crate::live::check(t)) {
            let line = format!("tenant {}: {}", t.id, f.text);
            match f.level {
                Level::Ok => println!("{line}: ok"),
                Level::Note => println!("{line} (note)"),
                Level::Problem => problems.push(line),
            }
        }
    }
    Ok(problems)
}
