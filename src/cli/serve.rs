//! `serve`: the sidecar in production, from a configuration file.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::run::{Launch, Sidecar};
use crate::server::{Limits, Transport};
use crate::telemetry;

/// `serve` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file (TOML); `SCIM_SIDECAR_*` variables override it.
    #[arg(long, short)]
    config: PathBuf,
}

pub(super) async fn run(args: &Args) -> anyhow::Result<()> {
    // SIGHUP reloads mappings and certificates. Registering it first thing means one that
    // arrives during startup (a `systemctl reload`, say) is never the default action, which
    // would end the process; the reload watchers register their own streams later.
    #[cfg(unix)]
    let _early_hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    // Likewise SIGTERM and SIGINT: one right after the "serving" line drains, never kills.
    let shutdown = crate::signals::Shutdown::listen();
    let config = Config::load(&args.config)?;
    telemetry::init(config.server.log_format);
    config.validate()?;
    let server = &config.server;
    let settings = super::tenant_settings(&config)?;
    let tls = super::load_tls(&config).context("refusing to start")?;
    let scim = TcpListener::bind(server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", server.listen))?;
    let admin = TcpListener::bind(server.admin_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (server.admin_listen)",
                server.admin_listen
            )
        })?;
    let admin_token_digest = match &server.admin_token {
        Some(t) => Some(t.token_digest()?),
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
        store: config.store.clone(),
        scim,
        transport,
        admin: Some(admin),
        limits: Limits {
            grace: Duration::from_secs(server.shutdown_grace_secs),
            header_read_timeout: Duration::from_secs(server.header_read_timeout_secs),
        },
        max_body_bytes: server.max_body_bytes,
        request_timeout: Duration::from_secs(server.request_timeout_secs),
        cursor_timeout: Duration::from_secs(server.cursor_timeout_secs),
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
    let stopped = sidecar.run_until(shutdown.wait()).await;
    let _ = stop_tls.send(());
    if let Some(watcher) = tls_watcher {
        let _ = watcher.await;
    }
    Ok(stopped?)
}
