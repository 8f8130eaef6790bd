//! `dev`: the one-command demo. A legacy app's simulator (the Marketing Center by default, or
//! the Partner Directory) and the sidecar in front of it, through the mapping shipped for that
//! app, with demo data that is wiped at every start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use mapping::ids::TenantId;
use mapping::{Mapping, TenantValues};
use sha2::{Digest, Sha256};
use simulator::http::RunningSimulator;
use simulator::marketing_center::{self, MarketingCenter};
use simulator::partner_directory::{self, PartnerDirectory};
use tokio::net::TcpListener;

use crate::run::{Launch, Sidecar};
use crate::server::{Limits, Transport};
use crate::telemetry::{self, LogFormat};
use crate::tenant::TenantSettings;

/// The demo customer id of `dev` (its tenant's `{tenant.customer_id}`).
pub(crate) const DEV_CUSTOMER: &str = "DEMO";

/// The legacy apps `dev` can put the sidecar in front of: every shipped mapping that has a
/// simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum App {
    /// The Marketing Center storefront (`mappings/marketing-center.toml`).
    MarketingCenter,
    /// The Partner Directory (`mappings/partner-directory.toml`).
    PartnerDirectory,
}

/// `dev` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which legacy app to simulate (and which shipped mapping fronts it).
    #[arg(long, value_enum, default_value = "marketing-center")]
    app: App,
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
}

/// A demo legacy app, running.
struct Demo {
    running: RunningSimulator,
    /// What the banner calls it.
    label: String,
    mapping: &'static str,
    mapping_path: &'static str,
}

/// Starts the simulator of `app`, seeded with its demo data, answering to `api_key`.
async fn start_app(app: App, api_key: &str) -> anyhow::Result<Demo> {
    let demo = match app {
        App::MarketingCenter => {
            let sim = MarketingCenter::new(api_key.to_owned(), [DEV_CUSTOMER]);
            sim.seed_demo(DEV_CUSTOMER);
            Demo {
                running: sim.spawn().await.context("cannot start the simulator")?,
                label: format!("Marketing Center simulator (customer {DEV_CUSTOMER})"),
                mapping: marketing_center::MAPPING,
                mapping_path: marketing_center::MAPPING_PATH,
            }
        }
        App::PartnerDirectory => {
            let sim = PartnerDirectory::new(api_key.to_owned());
            sim.seed_demo();
            Demo {
                running: sim.spawn().await.context("cannot start the simulator")?,
                label: "Partner Directory simulator".to_owned(),
                mapping: partner_directory::MAPPING,
                mapping_path: partner_directory::MAPPING_PATH,
            }
        }
    };
    Ok(demo)
}

/// Demo data only: the databases start empty (the store creates the directory, 0700).
fn wipe(data_dir: &Path) {
    for name in ["xref.sqlite3", crate::provisioning::FILE_NAME] {
        let db = data_dir.join(name);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
    }
}

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    // Before the banner: a SIGTERM right after it stops the demo cleanly.
    let shutdown = crate::signals::Shutdown::listen();
    telemetry::init(LogFormat::Text);
    let api_key = uuid::Uuid::new_v4().simple().to_string();
    let token = args
        .token
        .unwrap_or_else(|| format!("dev-{}", uuid::Uuid::new_v4().simple()));
    let demo = start_app(args.app, &api_key).await?;
    wipe(&args.data_dir);
    let mapping = Mapping::from_toml(demo.mapping, demo.mapping_path)?;
    let tenant = TenantSettings {
        id: TenantId::new("demo"),
        values: TenantValues {
            customer_id: DEV_CUSTOMER.to_owned(),
            api_key,
            ..TenantValues::default()
        },
        legacy_base_url: demo.running.base_url(),
        token_digests: vec![Sha256::digest(token.as_bytes()).into()],
        basic: Vec::new(),
        oauth: None,
        mapping,
        mapping_path: None,
        legacy_timeout: Duration::from_secs(30),
        legacy_concurrency: 64,
        member_concurrency: 16,
        webhooks: Vec::new(),
    };
    let listen = args.listen;
    let scim = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let admin_listen = args.admin_listen;
    let admin = TcpListener::bind(admin_listen)
        .await
        .with_context(|| format!("cannot listen on {admin_listen} (--admin-listen)"))?;
    let sidecar = Sidecar::start(Launch {
        tenants: vec![tenant],
        data_dir: args.data_dir.clone(),
        store: None,
        scim,
        transport: Transport::Plain,
        admin: Some(admin),
        limits: Limits::with_grace(Duration::from_secs(5)),
        max_body_bytes: crate::config::DEFAULT_MAX_BODY_BYTES,
        request_timeout: Duration::from_secs(55),
        cursor_timeout: Duration::from_secs(crate::cursor::DEFAULT_TIMEOUT_SECS),
        public_base_url: None,
        mapping_poll: None,
        provisioning_log_days: 7,
        ready_window: Duration::from_secs(30),
        admin_token_digest: None,
    })
    .await?;
    banner(&demo, &sidecar, &token);
    let stopped = sidecar.run_until(shutdown.wait()).await;
    demo.running.stop().await;
    Ok(stopped?)
}

/// What `dev` prints once it serves: the addresses, the token and requests to paste. A
/// closed stdout (`dev | head`) is no reason to stop serving: write errors are ignored.
fn banner(demo: &Demo, sidecar: &Sidecar, token: &str) {
    use std::io::Write;
    let base = format!("http://{}/scim/v2", sidecar.scim_addr());
    let admin = sidecar
        .admin_addr()
        .map(|a| format!("http://{a}"))
        .unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let lines = [
        format!(
            "scim-sidecar dev: {} at {}, through {}",
            demo.label,
            demo.running.base_url(),
            demo.mapping_path
        ),
        format!("SCIM base URL: {base}"),
        format!("Bearer token: {token}"),
        format!("Admin: {admin}/admin/ (provisioning log), {admin}/metrics, {admin}/readyz"),
        "Try:".to_owned(),
        format!("  curl -s -H 'Authorization: Bearer {token}' '{base}/Users?startIndex=1&count=2'"),
        format!(
            "  curl -s -H 'Authorization: Bearer {token}' -H 'Content-Type: application/scim+json' \
             -d '{{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"ada@example.com\",\
             \"name\":{{\"givenName\":\"Ada\",\"familyName\":\"Lovelace\"}},\"emails\":[{{\"value\":\"ada@example.com\",\"primary\":true}}],\"active\":true}}' \
             '{base}/Users'"
        ),
        format!(
            "  curl -s -H 'Authorization: Bearer {token}' '{base}/Groups?filter=displayName%20eq%20%22Sales%20Ops%22'"
        ),
    ];
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
}
