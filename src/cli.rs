//! The command line: `serve`, `dev`, `simulate`, `check`, `reconcile`, `log`, and what each
//! one runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use crate::app::{self, State, TenantSettings};
use crate::config::Config;
use crate::ids::TenantId;
use crate::mapping::Mapping;
use crate::run::{Launch, Sidecar};
use crate::server::Transport;
use crate::simulator::marketing_center::{Knobs, MarketingCenter};
use crate::telemetry::{self, LogFormat};
use crate::tls::{CertFiles, Tls};
use crate::xref::Store;

/// The mapping the `dev` command uses (the file shipped in `mappings/`).
pub const MARKETING_CENTER_MAPPING: &str = include_str!("../mappings/marketing-center.toml");

/// scim-sidecar: SCIM 2.0 for legacy applications, through a declarative mapping.
#[derive(Debug, Parser)]
#[command(name = "scim-sidecar", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// `simulate`: the Marketing Center simulator as a process of its own.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The API key callers must send.
    #[arg(long)]
    pub api_key: String,
    /// Customer ids the simulator serves.
    #[arg(long, required = true, num_args = 1..)]
    pub customer: Vec<String>,
    /// Seed every customer with the demo groups and users.
    #[arg(long)]
    pub seed_demo: bool,
    /// Seed every customer with this many benchmark users (`user000001@bench.example`…).
    #[arg(long, default_value_t = 0)]
    pub seed_users: u64,
    /// Seed a group `ID` holding the first `MEMBERS` benchmark users (`ID:MEMBERS`;
    /// repeatable).
    #[arg(long, value_parser = parse_seed_group)]
    pub seed_group: Vec<(String, u64)>,
    /// Added latency per call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Calls per second per customer before `429` (default: unlimited).
    #[arg(long)]
    pub rate_limit: Option<u32>,
}

fn parse_seed_group(text: &str) -> Result<(String, u64), String> {
    let (id, members) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: give ID:MEMBERS, e.g. G-BIG:2000"))?;
    let members = members
        .parse()
        .map_err(|_| format!("{text:?}: MEMBERS must be a number"))?;
    if id.is_empty() {
        return Err(format!("{text:?}: the group ID is empty"));
    }
    Ok((id.to_owned(), members))
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the sidecar in production from a configuration file.
    Serve {
        /// The configuration file (TOML); `SCIM_SIDECAR_*` variables override it.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// One-command demo: a Marketing Center simulator and the sidecar in front of it.
    Dev {
        /// Address of the SCIM listener (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: SocketAddr,
        /// Address of the admin listener: health, metrics, the provisioning log page.
        #[arg(long, default_value = "127.0.0.1:9464")]
        admin_listen: SocketAddr,
        /// The bearer token to accept (default: a random one, printed).
        #[arg(long)]
        token: Option<String>,
        /// Where the cross-reference database goes (wiped at start: demo data only).
        #[arg(long, default_value = ".dev-data")]
        data_dir: PathBuf,
    },
    /// Run the Marketing Center simulator alone (deploy examples, benchmarks).
    Simulate(SimulateArgs),
    /// Measure the sidecar against the simulator and a bare forwarder (see README,
    /// "Performance").
    Bench(crate::bench::Options),
    /// The benchmark's bare pass-through forwarder (used by `bench`).
    #[command(hide = true)]
    Forward {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Where to forward: `http://host:port`.
        #[arg(long)]
        upstream: String,
    },
    /// Compare the cross-reference with the legacy app and report drift (safe while serving).
    Reconcile {
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
    },
    /// Print the provisioning log: every write operation, newest first (safe while serving).
    Log {
        /// The configuration file of the sidecar (its `server.data_dir` holds the log).
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
    },
    /// Validate mapping files (given, or those of a configuration) without starting anything.
    Check {
        /// Check the mappings of this configuration file, and the configuration itself.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Mapping files to check.
        mappings: Vec<PathBuf>,
    },
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        // Reading files only: no runtime.
        Command::Check { config, mappings } => check(config.as_deref(), &mappings),
        Command::Log {
            config,
            data_dir,
            failed,
            since,
            tenant,
            search,
            limit,
            json,
        } => {
            let filter = LogFilter {
                failed,
                since,
                tenant,
                search,
                limit,
                json,
            };
            log(config.as_deref(), data_dir, &filter)
        }
        command => in_runtime(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scim-sidecar: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a command that serves or calls over the network, on a multi-thread runtime.
fn in_runtime(command: Command) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        match command {
            Command::Serve { config } => serve(&config).await,
            Command::Dev {
                listen,
                admin_listen,
                token,
                data_dir,
            } => dev(listen, admin_listen, token, &data_dir).await,
            Command::Simulate(args) => simulate(args).await,
            Command::Bench(opts) => crate::bench::run(opts).await,
            Command::Forward { listen, upstream } => forward(listen, &upstream).await,
            Command::Reconcile {
                config,
                tenant,
                fix,
                json,
            } => reconcile(&config, tenant.as_deref(), fix, json).await,
            Command::Check { .. } | Command::Log { .. } => {
                Err("this command runs without a runtime".to_owned())
            }
        }
    })
}

fn load_mapping(path: &Path) -> Result<Mapping, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read mapping {}: {e}", path.display()))?;
    Mapping::from_toml(&text, &path.display().to_string()).map_err(|e| e.to_string())
}

/// The TLS identity of a validated configuration, if `[server.tls]` is set.
fn load_tls(config: &Config) -> Result<Option<(Tls, Duration)>, String> {
    let Some(tls) = &config.server.tls else {
        return Ok(None);
    };
    let (cert, key) = tls
        .files()
        .ok_or("[server.tls] needs both cert_file and key_file")?;
    let files = CertFiles {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
    };
    let loaded = Tls::load(files).map_err(|e| format!("server.tls: {e}"))?;
    Ok(Some((loaded, Duration::from_secs(tls.poll_secs))))
}

async fn serve(config_path: &Path) -> Result<(), String> {
    // SIGHUP reloads mappings and certificates. Registering it first thing means one that
    // arrives during startup (a `systemctl reload`, say) is never the default action, which
    // would end the process; the reload watchers register their own streams later.
    #[cfg(unix)]
    let _early_hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    let config = Config::load(config_path).map_err(|e| e.to_string())?;
    telemetry::init(config.server.log_format);
    config.validate().map_err(|e| e.to_string())?;
    let server = &config.server;
    let settings = tenant_settings(&config)?;
    let tls = load_tls(&config).map_err(|e| format!("refusing to start: {e}"))?;
    let scim = TcpListener::bind(server.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", server.listen))?;
    let admin = TcpListener::bind(server.admin_listen).await.map_err(|e| {
        format!(
            "cannot listen on {} (server.admin_listen): {e}",
            server.admin_listen
        )
    })?;
    let admin_token_digest = match &server.admin_token {
        Some(t) => Some(t.token_digest().map_err(|e| e.to_string())?),
        None => None,
    };
    // The certificate watcher installs its SIGHUP handler before the "serving" line.
    let (stop_tls, tls_stopped) = tokio::sync::oneshot::channel::<()>();
    let (transport, tls_watcher) = match tls {
        None => (Transport::Plain, None),
        Some((tls, poll)) => {
            let acceptor = tls.acceptor();
            let watch = tls.watch(poll, async {
                let _ = tls_stopped.await;
            });
            (Transport::Tls(acceptor), Some(tokio::spawn(watch)))
        }
    };
    let is_tls = transport.is_tls();
    let sidecar = Sidecar::start(Launch {
        tenants: settings,
        data_dir: server.data_dir.clone(),
        scim,
        transport,
        admin: Some(admin),
        limits: crate::server::Limits {
            grace: Duration::from_secs(server.shutdown_grace_secs),
            header_read_timeout: Duration::from_secs(server.header_read_timeout_secs),
        },
        max_body_bytes: server.max_body_bytes,
        request_timeout: Duration::from_secs(server.request_timeout_secs),
        public_base_url: server.public_base_url.clone(),
        mapping_poll: Some(Duration::from_secs(server.mapping_poll_secs)),
        provisioning_log_days: server.provisioning_log_days,
        ready_window: Duration::from_secs(server.legacy_ready_window_secs),
        admin_token_digest,
    })
    .await?;
    tracing::info!(
        addr = %sidecar.scim_addr(),
        tls = is_tls,
        admin = %sidecar.admin_addr().map(|a| a.to_string()).unwrap_or_default(),
        tenants = config.tenants.len(),
        "scim-sidecar serving"
    );
    let stopped = sidecar.run_until(crate::signals::shutdown()).await;
    let _ = stop_tls.send(());
    if let Some(watcher) = tls_watcher {
        let _ = watcher.await;
    }
    stopped
}

/// The tenants of a validated configuration: mappings compiled, secrets resolved; every
/// problem at once.
fn tenant_settings(config: &Config) -> Result<Vec<TenantSettings>, String> {
    let mut settings = Vec::new();
    let mut problems = Vec::new();
    for (name, t) in &config.tenants {
        let mapping = load_mapping(&t.mapping);
        let api_key = t.api_key.resolve();
        let tokens = t.token_digests();
        match (mapping, api_key, tokens) {
            (Ok(mapping), Ok(api_key), Ok(token_digests)) => settings.push(TenantSettings {
                id: TenantId::new(name.clone()),
                customer_id: t.customer_id.clone(),
                legacy_base_url: t.legacy_base_url.clone(),
                api_key: api_key.expose().to_owned(),
                token_digests,
                mapping,
                mapping_path: Some(t.mapping.clone()),
                legacy_timeout: Duration::from_secs(t.legacy_timeout_secs),
                legacy_concurrency: t.legacy_concurrency,
                member_concurrency: t.member_concurrency,
            }),
            (m, k, tk) => {
                problems.extend(m.err());
                problems.extend(k.err().map(|e| e.to_string()));
                problems.extend(tk.err().map(|e| e.to_string()));
            }
        }
    }
    if !problems.is_empty() {
        return Err(format!("refusing to start:\n{}", problems.join("\n")));
    }
    Ok(settings)
}

async fn reconcile(
    config_path: &Path,
    only: Option<&str>,
    fix: bool,
    json: bool,
) -> Result<(), String> {
    let config = Config::load(config_path).map_err(|e| e.to_string())?;
    telemetry::init(config.server.log_format);
    config.validate().map_err(|e| e.to_string())?;
    let settings: Vec<TenantSettings> = tenant_settings(&config)?
        .into_iter()
        .filter(|t| only.is_none_or(|o| t.id.as_str() == o))
        .collect();
    if settings.is_empty() {
        return Err(format!(
            "no tenant {:?} in the configuration",
            only.unwrap_or("")
        ));
    }
    let xref = Store::open(&config.server.data_dir.join("xref.sqlite3"))
        .await
        .map_err(|e| e.to_string())?;
    let state = Arc::new(State::new(xref.clone(), 0, Duration::from_secs(0)));
    let tenants = app::tenants(settings, &state.metrics).map_err(|e| e.to_string())?;
    let mut remaining = 0;
    for tenant in &tenants.all {
        let ctx = crate::handlers::Ctx {
            mapping: tenant.mapping(),
            tenant: Arc::clone(tenant),
            state: Arc::clone(&state),
            base_url: String::new(),
            request_id: Some(format!("reconcile-{}", uuid::Uuid::new_v4().simple())),
            note: Default::default(),
        };
        let report = crate::reconcile::reconcile(&ctx, fix)
            .await
            .map_err(|e| e.detail)?;
        remaining += report.remaining();
        if json {
            println!(
                "{}",
                serde_json::to_string(&report).map_err(|e| e.to_string())?
            );
        } else {
            print_report(&report);
        }
    }
    xref.close().await.map_err(|e| e.to_string())?;
    if remaining > 0 {
        return Err(format!("{remaining} drift item(s) remain"));
    }
    Ok(())
}

fn print_report(r: &crate::reconcile::Report) {
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

/// The demo customer id of `dev`.
pub const DEV_CUSTOMER: &str = "DEMO";

async fn dev(
    listen: SocketAddr,
    admin_listen: SocketAddr,
    token: Option<String>,
    data_dir: &Path,
) -> Result<(), String> {
    telemetry::init(LogFormat::Text);
    let api_key = uuid::Uuid::new_v4().simple().to_string();
    let token = token.unwrap_or_else(|| format!("dev-{}", uuid::Uuid::new_v4().simple()));
    let sim = MarketingCenter::new(api_key.clone(), [DEV_CUSTOMER]);
    sim.seed_demo(DEV_CUSTOMER);
    sim.set_knobs(Knobs::default());
    let sim = sim
        .spawn()
        .await
        .map_err(|e| format!("cannot start the simulator: {e}"))?;
    // Demo data only: the databases start empty (the store creates the directory, 0700).
    for name in ["xref.sqlite3", crate::provisioning::FILE_NAME] {
        let db = data_dir.join(name);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
    }
    let mapping = Mapping::from_toml(MARKETING_CENTER_MAPPING, "mappings/marketing-center.toml")
        .map_err(|e| e.to_string())?;
    let tenant = TenantSettings {
        id: TenantId::new("demo"),
        customer_id: DEV_CUSTOMER.to_owned(),
        legacy_base_url: sim.base_url(),
        api_key,
        token_digests: vec![Sha256::digest(token.as_bytes()).into()],
        mapping,
        mapping_path: None,
        legacy_timeout: Duration::from_secs(30),
        legacy_concurrency: 64,
        member_concurrency: 16,
    };
    let scim = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let admin = TcpListener::bind(admin_listen)
        .await
        .map_err(|e| format!("cannot listen on {admin_listen} (--admin-listen): {e}"))?;
    let sidecar = Sidecar::start(Launch {
        tenants: vec![tenant],
        data_dir: data_dir.to_path_buf(),
        scim,
        transport: Transport::Plain,
        admin: Some(admin),
        limits: crate::server::Limits::with_grace(Duration::from_secs(5)),
        max_body_bytes: crate::config::DEFAULT_MAX_BODY_BYTES,
        request_timeout: Duration::from_secs(55),
        public_base_url: None,
        mapping_poll: None,
        provisioning_log_days: 7,
        ready_window: Duration::from_secs(30),
        admin_token_digest: None,
    })
    .await?;
    let base = format!("http://{}/scim/v2", sidecar.scim_addr());
    let admin = sidecar
        .admin_addr()
        .map(|a| format!("http://{a}"))
        .unwrap_or_default();
    println!(
        "scim-sidecar dev: Marketing Center simulator at {} (customer {DEV_CUSTOMER})",
        sim.base_url()
    );
    println!("SCIM base URL: {base}");
    println!("Bearer token: {token}");
    println!("Admin: {admin}/admin/ (provisioning log), {admin}/metrics, {admin}/readyz");
    println!("Try:");
    println!("  curl -s -H 'Authorization: Bearer {token}' '{base}/Users?startIndex=1&count=2'");
    println!(
        "  curl -s -H 'Authorization: Bearer {token}' -H 'Content-Type: application/scim+json' \
         -d '{{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"ada@example.com\",\
         \"name\":{{\"givenName\":\"Ada\",\"familyName\":\"Lovelace\"}},\"emails\":[{{\"value\":\"ada@example.com\",\"primary\":true}}],\"active\":true}}' \
         '{base}/Users'"
    );
    println!(
        "  curl -s -H 'Authorization: Bearer {token}' '{base}/Groups?filter=displayName%20eq%20%22Sales%20Ops%22'"
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let stopped = sidecar.run_until(crate::signals::shutdown()).await;
    sim.stop().await;
    stopped
}

async fn simulate(a: SimulateArgs) -> Result<(), String> {
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
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!(
        "Marketing Center simulator: http://{addr}{}",
        crate::simulator::marketing_center::DEFAULT_BASE_PATH
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    sim.serve(
        listener,
        crate::simulator::marketing_center::DEFAULT_BASE_PATH,
        crate::signals::shutdown(),
    )
    .await
    .map_err(|e| e.to_string())
}

async fn forward(listen: SocketAddr, upstream: &str) -> Result<(), String> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("{}", crate::bench::forward::announce(addr));
    use std::io::Write;
    let _ = std::io::stdout().flush();
    crate::bench::forward::serve(listener, upstream, crate::signals::shutdown()).await
}

fn check(config: Option<&Path>, mappings: &[PathBuf]) -> Result<(), String> {
    let mut files: Vec<PathBuf> = mappings.to_vec();
    let mut problems = Vec::new();
    if let Some(path) = config {
        match Config::load(path).and_then(|c| c.validate().map(|()| c)) {
            Ok(c) => {
                match load_tls(&c) {
                    Ok(Some((tls, _))) => println!(
                        "{} and {}: ok",
                        tls.files().cert.display(),
                        tls.files().key.display()
                    ),
                    Ok(None) => {}
                    Err(e) => problems.push(e),
                }
                files.extend(c.tenants.values().map(|t| t.mapping.clone()));
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    if files.is_empty() && problems.is_empty() {
        return Err("nothing to check: name mapping files or --config FILE".into());
    }
    for f in &files {
        match load_mapping(f) {
            Ok(_) => println!("{}: ok", f.display()),
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        for p in &problems {
            println!("{p}");
        }
        Err(format!(
            "{} problem(s) found",
            problems.iter().map(|p| p.lines().count()).sum::<usize>()
        ))
    }
}

/// The filters of the `log` command.
struct LogFilter {
    failed: bool,
    since: Option<String>,
    tenant: Option<String>,
    search: Option<String>,
    limit: usize,
    json: bool,
}

fn log(config: Option<&Path>, data_dir: Option<PathBuf>, f: &LogFilter) -> Result<(), String> {
    let dir = match (config, data_dir) {
        (_, Some(dir)) => dir,
        (Some(path), None) => {
            Config::load(path)
                .map_err(|e| e.to_string())?
                .server
                .data_dir
        }
        (None, None) => return Err("give --config FILE or --data-dir DIR".into()),
    };
    let path = dir.join(crate::provisioning::FILE_NAME);
    if !path.exists() {
        return Err(format!(
            "no provisioning log at {}: the sidecar has not run with this data directory",
            path.display()
        ));
    }
    let now = crate::provisioning::now_ms();
    let query = crate::provisioning::Query {
        failed_only: f.failed,
        since_ms: f
            .since
            .as_deref()
            .map(|s| crate::provisioning::parse_since(s, now))
            .transpose()?,
        tenant: f.tenant.clone(),
        search: f.search.clone(),
        limit: f.limit,
    };
    let entries = crate::provisioning::read(&path, &query).map_err(|e| e.to_string())?;
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let mut emit = |line: String| writeln!(out, "{line}").map_err(|e| e.to_string());
    if f.json {
        for e in &entries {
            emit(serde_json::to_string(e).map_err(|e| e.to_string())?)?;
        }
        return Ok(());
    }
    if entries.is_empty() {
        return emit("no operation matches".into());
    }
    emit(format!(
        "{:<24} {:<12} {:<17} {:<32} {:<12} {}",
        "TIME (UTC)", "TENANT", "OPERATION", "USERNAME / GROUP", "OUTCOME", "SCIM ERROR / SCIM ID"
    ))?;
    for e in &entries {
        let outcome = format!("{} {}", if e.failed { "FAILED" } else { "ok" }, e.status);
        let last = match (&e.scim_type, &e.detail) {
            (Some(t), Some(d)) => format!("{t}: {d}"),
            (None, Some(d)) => d.clone(),
            _ => e.scim_id.clone().unwrap_or_default(),
        };
        emit(format!(
            "{:<24} {:<12} {:<17} {:<32} {:<12} {}",
            crate::provisioning::format_ms(e.at_ms),
            e.tenant,
            format!("{} {}", e.action, e.resource),
            e.subject.as_deref().unwrap_or("-"),
            outcome,
            last
        ))?;
    }
    Ok(())
}
