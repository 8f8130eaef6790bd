//! Starts and stops a whole sidecar: the xref and provisioning log files, the tenants, the
//! SCIM listener, the admin listener and the mapping reloader, in that order, and stops them
//! in the reverse order so that nothing in flight is lost.
//!
//! `serve`, `dev` and the tests all go through [`Sidecar::start`]; they differ only in the
//! [`Launch`] they build. Knows nothing about mappings beyond handing them to `app`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::admin::{Admin, AdminService};
use crate::app;
use crate::config::StoreConfig;
use crate::cursor;
use crate::gateway::GatewayError;
use crate::metrics::Metrics;
use crate::pg::Pg;
use crate::provisioning::{self, LogError, ProvisioningLog};
use crate::server::{Limits, Transport};
use crate::tenant::{self, State, Tenant, TenantSettings};
use crate::xref::{Store, StoreError};

/// After the grace period, how long shutdown still waits for requests that outlived their
/// connection (HTTP/2 streams) before it closes the databases under them.
pub const STRAGGLER_WAIT: Duration = Duration::from_secs(2);

/// Everything a sidecar is started from.
pub struct Launch {
    /// The tenants, mappings compiled and secrets resolved.
    pub tenants: Vec<TenantSettings>,
    /// Where `xref.sqlite3` and `provisioning.sqlite3` live (without `store`).
    pub data_dir: PathBuf,
    /// `[store]`: the state in PostgreSQL, shared by every replica; `None`: SQLite files in
    /// `data_dir`.
    pub store: Option<StoreConfig>,
    /// The bound SCIM listener.
    pub scim: TcpListener,
    /// Plain HTTP or TLS on the SCIM listener.
    pub transport: Transport,
    /// The bound admin listener, if any.
    pub admin: Option<TcpListener>,
    /// HTTP limits of the SCIM listener (the drain grace among them).
    pub limits: Limits,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Time limit of one SCIM request.
    pub request_timeout: Duration,
    /// How long an RFC 9865 cursor stays valid.
    pub cursor_timeout: Duration,
    /// The configured SCIM base URL, if any.
    pub public_base_url: Option<String>,
    /// How often mapping files are polled (zero: SIGHUP only); `None`: no reloader.
    pub mapping_poll: Option<Duration>,
    /// Days the provisioning log keeps entries.
    pub provisioning_log_days: u32,
    /// A legacy answer this recent makes the legacy app count as up for readiness.
    pub ready_window: Duration,
    /// SHA-256 of the admin token protecting `/admin/`.
    pub admin_token_digest: Option<[u8; 32]>,
}

/// The file name of the SQLite cross-reference in the data directory.
pub const XREF_FILE: &str = "xref.sqlite3";

/// Opens the cross-reference where the configuration keeps it: PostgreSQL with `[store]`,
/// else the SQLite file in `data_dir` (for the commands that read or repair it).
pub async fn open_xref(store: Option<&StoreConfig>, data_dir: &Path) -> Result<Store, StoreError> {
    match store {
        None => Store::open(&data_dir.join(XREF_FILE)).await,
        Some(config) => Store::open_postgres(Pg::connect(config).await?).await,
    }
}

/// Why a sidecar could not start, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The cross-reference database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The provisioning log.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A tenant's gateway could not be built.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// A listener.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A listener task panicked or was cancelled.
    #[error("a listener task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

struct Stoppable {
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Stoppable {
    async fn stop(self) -> Result<(), RunError> {
        let _ = self.stop.send(());
        Ok(self.task.await??)
    }
}

/// A running sidecar.
pub struct Sidecar {
    state: Arc<State>,
    tenants: Vec<Arc<Tenant>>,
    scim_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    scim: Stoppable,
    admin: Option<Stoppable>,
    reloader: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    deliverer: Option<crate::events::Deliverer>,
}

impl std::fmt::Debug for Sidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sidecar")
            .field("scim_addr", &self.scim_addr)
            .field("admin_addr", &self.admin_addr)
            .finish_non_exhaustive()
    }
}

fn serve_until_stopped<S, B>(
    listener: TcpListener,
    transport: Transport,
    svc: S,
    limits: Limits,
) -> Stoppable
where
    S: tower::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(crate::server::run(
        listener,
        transport,
        svc,
        async {
            let _ = stopped.await;
        },
        limits,
    ));
    Stoppable { stop, task }
}

impl Sidecar {
    /// Opens the files, builds the tenants and starts serving.
    pub async fn start(l: Launch) -> Result<Sidecar, RunError> {
        let metrics = Arc::new(Metrics::new());
        let (xref, log) = match &l.store {
            None => (
                Store::open(&l.data_dir.join(XREF_FILE)).await?,
                ProvisioningLog::open(
                    &l.data_dir.join(provisioning::FILE_NAME),
                    l.provisioning_log_days,
                    Arc::clone(&metrics),
                )
                .await?,
            ),
            Some(config) => {
                let pg = Pg::connect(config).await.map_err(StoreError::from)?;
                pg.record_latency_into(metrics.store_query());
                tracing::info!(target = pg.target(), "state in PostgreSQL");
                (
                    Store::open_postgres(pg.clone()).await?,
                    ProvisioningLog::open_postgres(
                        &pg,
                        l.provisioning_log_days,
                        Arc::clone(&metrics),
                    )
                    .await?,
                )
            }
        };
        let tenants = tenant::tenants(l.tenants, &metrics)?;
        let fresh: [u8; cursor::KEY_LEN] = rand::random();
        let key = xref.shared_key(cursor::KEY_NAME, &fresh).await?;
        let mut state = State::new(xref, l.max_body_bytes, l.request_timeout);
        state.cursors = cursor::Cursors::new(&key, l.cursor_timeout);
        state.public_base_url = l.public_base_url;
        state.metrics = metrics;
        state.provisioning = Some(log);
        let state = Arc::new(state);
        let targets: Vec<crate::events::Target> = (tenants.all.iter())
            .flat_map(|t| {
                (t.webhooks.0.iter()).map(|e| crate::events::Target {
                    tenant: t.id.clone(),
                    endpoint: Arc::clone(e),
                })
            })
            .collect();
        let configured = (targets.iter())
            .map(|t| (t.tenant.as_str().to_owned(), t.endpoint.name.clone()))
            .collect();
        tokio::spawn(crate::events::warn_of_unconfigured(
            state.xref.clone(),
            configured,
        ));
        let deliverer = (!targets.is_empty()).then(|| {
            crate::events::Deliverer::start(
                state.xref.clone(),
                targets,
                Arc::clone(&state.metrics),
                Arc::clone(&state.events_committed),
                state.xref.path().is_some(),
            )
        });
        let scim_addr = l.scim.local_addr()?;
        let reloader = l.mapping_poll.map(|poll| {
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(crate::reload::watch(tenants.all.clone(), poll, async {
                let _ = stopped.await;
            }));
            (stop, task)
        });
        let admin_addr = match &l.admin {
            Some(a) => Some(a.local_addr()?),
            None => None,
        };
        let admin = l.admin.map(|listener| {
            let svc = AdminService::new(Arc::new(Admin::new(
                Arc::clone(&state),
                tenants.all.clone(),
                l.ready_window,
                l.admin_token_digest,
            )));
            serve_until_stopped(
                listener,
                Transport::Plain,
                svc,
                Limits::with_grace(Duration::from_secs(1)),
            )
        });
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let oauth = (!tenants.oauth.is_empty()).then(|| {
            Arc::new(crate::oauth::OAuth::new(
                tenants.oauth,
                state.xref.clone(),
                Arc::clone(&state.metrics),
                (cores / 2).max(1),
            ))
        });
        let credentials = match &oauth {
            Some(o) => tenants.credentials.with_issued(Arc::clone(o) as _),
            None => tenants.credentials,
        };
        let svc = app::service(Arc::clone(&state), Arc::new(credentials), oauth);
        let scim = serve_until_stopped(l.scim, l.transport, svc, l.limits);
        Ok(Sidecar {
            state,
            tenants: tenants.all,
            scim_addr,
            admin_addr,
            scim,
            admin,
            reloader,
            deliverer,
        })
    }

    /// The SCIM listener's address.
    pub fn scim_addr(&self) -> SocketAddr {
        self.scim_addr
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The shared state (xref, metrics, provisioning log).
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Every tenant.
    pub fn tenants(&self) -> &[Arc<Tenant>] {
        &self.tenants
    }

    /// Runs until `signal` resolves, then stops (see [`Sidecar::stop`]).
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Result<(), RunError> {
        signal.await;
        self.stop().await
    }

    /// Drains and stops: readiness turns 503, the SCIM listener stops accepting and lets
    /// requests in flight finish within the grace period (connections still open then are
    /// closed and their requests recorded as dropped), then the reloader and the admin
    /// listener stop, event delivery stops (giving its leases back), the provisioning log
    /// writes what it holds and the xref closes. HTTP/2
    /// streams run as tasks of their own: the files stay open until they end too, for at most
    /// [`STRAGGLER_WAIT`] more.
    pub async fn stop(self) -> Result<(), RunError> {
        self.state.draining.store(true, Ordering::Release);
        let served = self.scim.stop().await;
        let left = self.state.in_flight.wait_idle(STRAGGLER_WAIT).await;
        if left > 0 {
            tracing::warn!(
                requests = left,
                "closing the databases with requests still running"
            );
        }
        if let Some((stop, task)) = self.reloader {
            let _ = stop.send(());
            let _ = task.await;
        }
        let admin = match self.admin {
            Some(a) => a.stop().await,
            None => Ok(()),
        };
        if let Some(d) = self.deliverer {
            d.stop().await;
        }
        if let Some(log) = &self.state.provisioning {
            log.close().await;
        }
        let closed = self.state.xref.close().await;
        served?;
        admin?;
        Ok(closed?)
    }
}
