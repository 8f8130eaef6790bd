//! The command line: one file per command under `cli/`, and what they share (compiling a
//! configuration's tenants). The shell of the program: errors here are `anyhow`, printed once
//! by [`run`].

#[cfg(feature = "dev-tools")]
pub mod bench;
pub mod check;
#[cfg(feature = "dev-tools")]
pub mod dev;
pub mod events;
pub mod hash_password;
pub mod log;
pub mod plan;
pub mod reconcile;
pub mod serve;
#[cfg(feature = "dev-tools")]
pub mod simulate;
pub mod store;
pub mod tokens;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::{Parser, Subcommand};
use mapping::Mapping;
use mapping::ids::TenantId;

use crate::config::Config;
use crate::tenant::TenantSettings;
use crate::tls::{CertFiles, Tls};

/// scim-sidecar: SCIM 2.0 for legacy applications, through a declarative mapping.
#[derive(Debug, Parser)]
#[command(name = "scim-sidecar", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the sidecar in production from a configuration file.
    Serve(serve::Args),
    /// One-command demo: a legacy app's simulator and the sidecar in front of it.
    #[cfg(feature = "dev-tools")]
    Dev(dev::Args),
    /// Run the Marketing Center simulator alone (deploy examples, benchmarks).
    #[cfg(feature = "dev-tools")]
    Simulate(simulate::SimulateArgs),
    /// Measure the sidecar against the simulator and a bare forwarder (see README,
    /// "Performance").
    #[cfg(feature = "dev-tools")]
    Bench(::bench::Options),
    /// The benchmark's bare pass-through forwarder (used by `bench`).
    #[cfg(feature = "dev-tools")]
    #[command(hide = true)]
    Forward(bench::ForwardArgs),
    /// Compare the cross-reference with the legacy app and report drift (safe while serving).
    Reconcile(reconcile::Args),
    /// Print the provisioning log: every write operation, newest first (safe while serving).
    Log(log::Args),
    /// Validate mapping files (given, or those of a configuration) without starting anything.
    Check(check::Args),
    /// Show what one SCIM request would do through a mapping: every legacy call and the
    /// SCIM answer, from canned legacy answers. Sends nothing.
    Plan(plan::Args),
    /// Print the argon2 hash of a password read from standard input, for a tenant's `basic`
    /// credentials (HTTP Basic).
    HashPassword(hash_password::Args),
    /// OAuth 2.0 tokens the sidecar issued: `tokens list`, `tokens revoke` (safe while
    /// serving).
    Tokens(tokens::Args),
    /// Directory-sync events: `events list`, `events show`, `events replay` (safe while
    /// serving), `events secret` (a new signing secret).
    Events(events::Args),
    /// The state store: `store migrate` copies a data directory's SQLite state into
    /// PostgreSQL (for `[store]`, several replicas).
    Store(store::Args),
}

/// Runs a parsed command line; a failure is printed once, with its causes.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        // Reading files only: no runtime.
        Command::Check(args) => check::run(&args),
        Command::HashPassword(args) => hash_password::run(&args),
        command => in_runtime(command),
    };
    // Log lines still buffered go out before the program's last words.
    crate::telemetry::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scim-sidecar: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a command that serves or calls over the network, on a multi-thread runtime.
fn in_runtime(command: Command) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        match command {
            Command::Serve(args) => serve::run(&args).await,
            #[cfg(feature = "dev-tools")]
            Command::Dev(args) => dev::run(args).await,
            #[cfg(feature = "dev-tools")]
            Command::Simulate(args) => simulate::run(args).await,
            #[cfg(feature = "dev-tools")]
            Command::Bench(opts) => bench::run(opts).await,
            #[cfg(feature = "dev-tools")]
            Command::Forward(args) => bench::forward(args).await,
            Command::Reconcile(args) => reconcile::run(&args).await,
            Command::Plan(args) => plan::run(&args).await,
            Command::Log(args) => log::run(&args).await,
            Command::Store(args) => store::run(&args).await,
            Command::Tokens(args) => tokens::run(&args).await,
            Command::Events(args) => events::run(&args).await,
            Command::Check(_) | Command::HashPassword(_) => {
                Err(anyhow!("this command runs without a runtime"))
            }
        }
    })
}

/// Reads and compiles a mapping file.
fn load_mapping(path: &Path) -> anyhow::Result<Mapping> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read mapping {}", path.display()))?;
    Ok(Mapping::from_toml(&text, &path.display().to_string())?)
}

/// The TLS identity of a validated configuration, if `[server.tls]` is set.
fn load_tls(config: &Config) -> anyhow::Result<Option<(Tls, Duration)>> {
    let Some(tls) = &config.server.tls else {
        return Ok(None);
    };
    let Some((cert, key)) = tls.files() else {
        bail!("[server.tls] needs both cert_file and key_file");
    };
    let files = CertFiles {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
    };
    let loaded = Tls::load(files).context("server.tls")?;
    Ok(Some((loaded, Duration::from_secs(tls.poll_secs))))
}

/// Where the state store is, for the commands that read or change it while the sidecar
/// serves (`tokens`, `events`).
#[derive(Debug, clap::Args)]
pub(crate) struct StoreAt {
    /// The configuration file of the sidecar (its `[store]`, else its `server.data_dir`,
    /// holds the state).
    #[arg(long, short, required_unless_present = "data_dir")]
    config: Option<PathBuf>,
    /// The data directory, instead of a configuration file.
    #[arg(long, conflicts_with = "config")]
    data_dir: Option<PathBuf>,
}

impl StoreAt {
    /// Opens the store; an SQLite data directory the sidecar never ran with is refused.
    async fn open(&self) -> anyhow::Result<crate::xref::Store> {
        let (store_config, data_dir) = match &self.config {
            Some(path) => {
                let c = Config::load(path)?;
                (c.store, c.server.data_dir)
            }
            None => (None, data_dir(None, self.data_dir.clone())?),
        };
        if store_config.is_none() && !data_dir.join(crate::run::XREF_FILE).exists() {
            bail!(
                "no state at {}: the sidecar has not run with this data directory",
                data_dir.display()
            );
        }
        Ok(crate::run::open_xref(store_config.as_ref(), &data_dir).await?)
    }
}

/// The tenants of a validated configuration: mappings compiled, secrets resolved; every
/// problem at once.
fn tenant_settings(config: &Config) -> anyhow::Result<Vec<TenantSettings>> {
    let mut settings = Vec::new();
    let mut problems = Vec::new();
    for (name, t) in &config.tenants {
        let mapping = load_mapping(&t.mapping);
        let values = t.values();
        let tokens = t.token_digests();
        let basic = t
            .basic_hashes()
            .map_err(|e| anyhow::anyhow!("tenants.{name}.{e}"));
        let oauth = t
            .oauth
            .as_ref()
            .map(crate::config::oauth::OAuthConfig::settings)
            .transpose()
            .map_err(|e| anyhow::anyhow!("tenants.{name}.{e}"));
        if let (Ok(mapping), Ok(values)) = (&mapping, &values) {
            problems.extend(missing_values(name, mapping, values));
        }
        let mut webhooks = Vec::new();
        for hook in &t.webhooks {
            match hook.endpoint() {
                Ok(e) => webhooks.push(e),
                Err(e) => problems.push(format!("tenants.{name}: {e}")),
            }
        }
        match (mapping, values, tokens, basic.and_then(|b| Ok((b, oauth?)))) {
            (Ok(mapping), Ok(values), Ok(token_digests), Ok((basic, oauth))) => {
                settings.push(TenantSettings {
                    id: TenantId::new(name.clone()),
                    values,
                    legacy_base_url: t.legacy_base_url.clone(),
                    token_digests,
                    basic,
                    oauth,
                    mapping,
                    mapping_path: Some(t.mapping.clone()),
                    legacy_timeout: Duration::from_secs(t.legacy_timeout_secs),
                    legacy_concurrency: t.legacy_concurrency,
                    member_concurrency: t.member_concurrency,
                    webhooks,
                });
            }
            (m, k, tk, b) => {
                problems.extend(m.err().map(|e| format!("{e:#}")));
                problems.extend(k.err().map(|e| e.to_string()));
                problems.extend(tk.err().map(|e| e.to_string()));
                problems.extend(b.err().map(|e| e.to_string()));
            }
        }
    }
    if !problems.is_empty() {
        bail!("refusing to start:\n{}", problems.join("\n"));
    }
    Ok(settings)
}

/// [`tenant_settings`] of every tenant, or of `only` that one (which must exist).
fn tenant_settings_of(config: &Config, only: Option<&str>) -> anyhow::Result<Vec<TenantSettings>> {
    let settings: Vec<_> = tenant_settings(config)?
        .into_iter()
        .filter(|t| only.is_none_or(|o| t.id.as_str() == o))
        .collect();
    if settings.is_empty() {
        bail!("no tenant {:?} in the configuration", only.unwrap_or(""));
    }
    Ok(settings)
}

/// One line per placeholder the mapping of tenant `name` uses and its configuration does not
/// give (`customer_id`, `api_key`, `vars.NAME`, `secrets.NAME`).
pub(crate) fn missing_values(
    name: &str,
    mapping: &Mapping,
    values: &mapping::TenantValues,
) -> Vec<String> {
    mapping
        .missing_values(values)
        .iter()
        .map(|v| {
            let key = match v {
                mapping::Var::CustomerId => "customer_id".to_owned(),
                mapping::Var::ApiKey => "api_key".to_owned(),
                mapping::Var::Named(n) => format!("vars.{n}"),
                mapping::Var::Secret(n) => format!("secrets.{n}"),
                other => other.name(),
            };
            format!(
                "tenants.{name}: the mapping uses {{{}}}, and tenants.{name}.{key} is not set",
                v.name()
            )
        })
        .collect()
}

/// The data directory's path of a configuration file, or the one given.
fn data_dir(config: Option<&Path>, data_dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match (config, data_dir) {
        (_, Some(dir)) => Ok(dir),
        (Some(path), None) => Ok(Config::load(path)?.server.data_dir),
        (None, None) => bail!("give --config FILE or --data-dir DIR"),
    }
}
