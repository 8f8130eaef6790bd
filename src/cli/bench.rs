//! `bench` and its hidden `forward`: the sidecar measured against the simulator and a bare
//! forwarder (the `bench` crate), served and hosted by this binary. Built with the
//! `dev-tools` feature only.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context;
use mapping::ids::TenantId;
use tokio::net::TcpListener;

use crate::server::{Limits, Transport};
use crate::telemetry::{self, LogFormat};
use crate::xref::{Seen, Store};

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

pub(super) async fn forward(a: ForwardArgs) -> anyhow::Result<()> {
    let shutdown = crate::signals::Shutdown::listen();
    let listen = a.listen;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let svc = ::bench::forward::service(&a.upstream)?;
    // A closed stdout is no reason to stop serving.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", ::bench::forward::announce(addr));
    let _ = out.flush();
    drop(out);
    crate::server::run(
        listener,
        Transport::Plain,
        svc,
        shutdown.wait(),
        Limits::with_grace(Duration::from_secs(1)),
    )
    .await?;
    Ok(())
}

pub(super) async fn run(opts: ::bench::Options) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Text);
    ::bench::run(opts, &XrefFiller).await
}

/// Fills the bench's cross-references through the real store.
struct XrefFiller;

impl ::bench::Host for XrefFiller {
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
                        let row = ::bench::fill_row(tenant, n);
                        Seen {
                            scim_id: row.scim_id,
                            legacy_id: row.legacy_id,
                            external_id: Some(row.external_id),
                            user_name: Some(row.user_name),
                            fingerprint: None,
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
