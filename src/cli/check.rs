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
