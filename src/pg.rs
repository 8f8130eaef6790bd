//! PostgreSQL, where several replicas of the sidecar keep one shared state (`[store]`): the
//! connection pool, TLS to the server, the versioned schema migrations (run under a migration
//! lock, so replicas starting at once apply each step once) and what a database error means.
//!
//! The stores built on it (`crate::xref`, `crate::provisioning`) own their SQL; this module
//! owns the connections. Nothing here logs or displays the password: the URL never holds one
//! (`check` refuses it) and the target is shown as `user@host:port/database`.
//!
//! Owns `tokio-postgres`, `deadpool-postgres` and the rustls client of the database; depends
//! on `crate::config` (the `[store]` table and its secret).

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use prometheus_client::metrics::histogram::Histogram;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;

use crate::config::StoreConfig;
use locks::LockSession;

pub(crate) mod coalesce;
mod locks;

/// How long opening one connection (TCP, TLS, authentication) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The advisory lock key every replica takes to migrate (any constant: it is shared by all
/// sidecars using the database, and by nothing else).
const MIGRATION_LOCK: i64 = 0x5c1d_5c1d_0001;
/// The seconds a client is told to wait (`Retry-After`) when the database is unavailable.
pub const RETRY_AFTER_SECS: u64 = 2;

/// An error of the PostgreSQL store. Displays never hold SQL text, row values or the
/// password: a server error shows its SQLSTATE and class.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// `store.url` (or another `[store]` key) cannot be used.
    #[error("store.{key}: {detail}")]
    Config {
        /// The key of `[store]`.
        key: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The database cannot be reached now: refused, restarting, every connection busy. The
    /// request may be retried (`503` with `Retry-After`).
    #[error("PostgreSQL at {target} is unavailable: {detail}")]
    Unavailable {
        /// `user@host:port/database`.
        target: String,
        /// What happened.
        detail: String,
    },
    /// The server refused a statement.
    #[error("PostgreSQL at {target} refused a statement: SQLSTATE {code} ({class})")]
    Refused {
        /// `user@host:port/database`.
        target: String,
        /// The SQLSTATE code.
        code: String,
        /// A description of the code's class.
        class: &'static str,
    },
    /// The database's schema was migrated by a newer sidecar.
    #[error(
        "PostgreSQL at {target}: the {component} schema is at version {found}, newer than the \
         {supported} this sidecar knows: run a newer sidecar"
    )]
    SchemaTooNew {
        /// `user@host:port/database`.
        target: String,
        /// Which schema (`xref`, `provisioning`).
        component: &'static str,
        /// The version found.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
}

impl PgError {
    /// Whether a retry later may succeed (the database was unreachable or restarting).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, PgError::Unavailable { .. })
    }

    /// The SQLSTATE of a refused statement.
    pub fn code(&self) -> Option<&str> {
        match self {
            PgError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// The shared PostgreSQL pool. Cheap to clone.
#[derive(Clone)]
pub struct Pg {
    pool: Pool,
    target: Arc<str>,
    max_size: usize,
    /// The session holding this replica's advisory locks (create claims): opened on first
    /// use, again after it broke. Its locks die with it, so a replica that is killed, or
    /// loses its connection, holds no claim any more.
    locks: Arc<tokio::sync::Mutex<Option<Arc<LockSession>>>>,
    connect_config: Arc<tokio_postgres::Config>,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// Where each statement's time goes (`/metrics`), once the sidecar hands its metrics.
    latency: Arc<std::sync::OnceLock<Histogram>>,
}

impl fmt::Debug for Pg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pg")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// How the pool is doing, for `/metrics` and `/readyz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections the pool may open.
    pub max_size: usize,
    /// Connections open now.
    pub open: usize,
    /// Open connections no request holds.
    pub idle: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
}

/// `[store]` as the driver takes it: the connection settings, the TLS mode and the target
/// shown in messages.
struct Target {
    config: tokio_postgres::Config,
    verify: Verify,
    shown: String,
}

/// How the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verify {
    /// No TLS (`sslmode=disable`, or a Unix socket).
    Plain,
    /// TLS, the certificate not checked (`sslmode=require`, as libpq does).
    Encrypt,
    /// TLS, the chain and the host name checked (`sslmode=verify-full`).
    Full,
}

impl Target {
    fn parse(store: &StoreConfig) -> Result<Target, PgError> {
        let url_err = |detail: String| PgError::Config { key: "url", detail };
        let (base, query) = match store.url.trim().split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (store.url.trim(), None),
        };
        let mut mode = None;
        let mut kept = Vec::new();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match key.as_ref() {
                "sslmode" => mode = Some(value.into_owned()),
                "password" => {
                    return Err(url_err(
                        "holds a password: give it as store.password instead".to_owned(),
                    ));
                }
                _ => kept.push((key.into_owned(), value.into_owned())),
            }
        }
        let mut url = base.to_owned();
        if !kept.is_empty() {
            url.push('?');
            url.push_str(
                &form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&kept)
                    .finish(),
            );
        }
        let mut config = tokio_postgres::Config::from_str(&url)
            .map_err(|e| url_err(format!("cannot be read ({e})")))?;
        if config.get_password().is_some() {
            return Err(url_err(
                "holds a password: give it as store.password instead".to_owned(),
            ));
        }
        let socket = config
            .get_hosts()
            .iter()
            .any(|h| matches!(h, Host::Unix(_)));
        let verify = match mode.as_deref() {
            None if socket => Verify::Plain,
            None | Some("verify-full") => Verify::Full,
            Some("require") => Verify::Encrypt,
            Some("disable") => Verify::Plain,
            Some(other) => {
                return Err(url_err(format!(
                    "sslmode={other} is not supported: use disable, require or verify-full"
                )));
            }
        };
        if socket && verify != Verify::Plain {
            return Err(url_err(
                "a Unix socket carries no TLS: use sslmode=disable with a socket directory"
                    .to_owned(),
            ));
        }
        config.ssl_mode(if verify == Verify::Plain {
            SslMode::Disable
        } else {
            SslMode::Require
        });
        if let Some(source) = &store.password {
            let secret = source.resolve().map_err(|e| PgError::Config {
                key: "password",
                detail: e.to_string(),
            })?;
            config.password(secret.expose());
        }
        // Notices ("relation already exists, skipping") are not worth a log line.
        let mut options = config.get_options().unwrap_or("").to_owned();
        options.push_str(" -c client_min_messages=warning");
        if !store.synchronous_commit {
            options.push_str(" -c synchronous_commit=off");
        }
        config.options(options.trim());
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("scim-sidecar");
        let shown = shown(&config);
        Ok(Target {
            config,
            verify,
            shown,
        })
    }
}

/// `user@host:port/database`, for messages.
fn shown(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        config.get_user().unwrap_or("?"),
        config.get_dbname().unwrap_or("?")
    )
}

/// Reads `[store]` as [`Pg::connect`] does — the URL, the TLS mode, the password, the roots
/// of `verify-full` — without connecting: `user@host:port/database`, or the first problem.
pub fn check(store: &StoreConfig) -> Result<String, PgError> {
    let target = Target::parse(store)?;
    client_tls(target.verify, store.ca_file.as_deref())?;
    Ok(target.shown)
}

impl Pg {
    /// Builds the pool from `[store]` and opens one connection, so that a wrong URL, password
    /// or certificate stops the sidecar at start rather than at the first request.
    pub async fn connect(store: &StoreConfig) -> Result<Pg, PgError> {
        let target = Target::parse(store)?;
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(client_tls(
            target.verify,
            store.ca_file.as_deref(),
        )?);
        let connect_config = Arc::new(target.config.clone());
        let manager = Manager::from_config(
            target.config,
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let wait = Duration::from_secs(store.acquire_timeout_secs.max(1));
        let pool = Pool::builder(manager)
            .max_size(store.pool_size.max(1))
            .wait_timeout(Some(wait))
            .create_timeout(Some(wait))
            .recycle_timeout(Some(wait))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| PgError::Config {
                key: "pool_size",
                detail: e.to_string(),
            })?;
        let pg = Pg {
            pool,
            target: Arc::from(target.shown),
            max_size: store.pool_size.max(1),
            locks: Arc::new(tokio::sync::Mutex::new(None)),
            connect_config,
            tls,
            latency: Arc::new(std::sync::OnceLock::new()),
        };
        drop(pg.client().await?);
        Ok(pg)
    }

    /// `user@host:port/database`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// A pooled connection; waits for one up to `acquire_timeout_secs`.
    pub async fn client(&self) -> Result<Object, PgError> {
        self.pool.get().await.map_err(|e| self.pool_error(e))
    }

    /// The pool's state now.
    pub fn status(&self) -> PoolStatus {
        let s = self.pool.status();
        PoolStatus {
            max_size: self.max_size,
            open: s.size,
            idle: s.available,
            waiting: s.waiting,
        }
    }

    /// Records each statement's time into `histogram` from now on (the first call wins).
    pub fn record_latency_into(&self, histogram: Histogram) {
        let _ = self.latency.set(histogram);
    }

    /// Runs `work` and records how long it took in the latency histogram.
    pub async fn timed<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        let started = Instant::now();
        let out = work.await;
        if let Some(h) = self.latency.get() {
            h.observe(started.elapsed().as_secs_f64());
        }
        out
    }

    /// Closes the pool (connections in use close when given back) and the lock session.
    pub async fn close(&self) {
        self.pool.close();
        self.locks.lock().await.take();
    }

    /// Takes the session-level advisory lock `key` on this replica's lock session unless
    /// another session holds it; `false` then. The caller makes sure one task of this process
    /// asks for a key at a time (the session's locks are re-entrant).
    pub async fn try_advisory_lock(&self, key: i64) -> Result<bool, PgError> {
        let session = self.lock_session().await?;
        match self.timed(session.try_lock(key)).await {
            Ok(locked) => Ok(locked),
            Err(e) => Err(self.session_broke(&e).await),
        }
    }

    /// Gives advisory lock `key` back (nothing when the session that took it is gone: so is
    /// the lock).
    pub async fn advisory_unlock(&self, key: i64) -> Result<(), PgError> {
        let session = self.lock_session().await?;
        match self.timed(session.unlock(key)).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.session_broke(&e).await),
        }
    }

    /// The lock session, opened when there is none or it closed.
    async fn lock_session(&self) -> Result<Arc<LockSession>, PgError> {
        let mut slot = self.locks.lock().await;
        if let Some(session) = slot.as_ref()
            && !session.client.is_closed()
        {
            return Ok(Arc::clone(session));
        }
        let (client, connection) = self
            .connect_config
            .connect(self.tls.clone())
            .await
            .map_err(|e| self.error(&e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "the PostgreSQL lock session ended");
            }
        });
        let session = Arc::new(
            LockSession::open(client)
                .await
                .map_err(|e| self.error(&e))?,
        );
        *slot = Some(Arc::clone(&session));
        Ok(session)
    }

    /// Classifies an error of the lock session and forgets the session when it broke.
    async fn session_broke(&self, e: &tokio_postgres::Error) -> PgError {
        let error = self.error(e);
        if error.is_unavailable() {
            self.locks.lock().await.take();
        }
        error
    }

    /// Classifies a driver error.
    pub fn error(&self, e: &tokio_postgres::Error) -> PgError {
        classify(&self.target, e)
    }

    fn pool_error(&self, e: PoolError) -> PgError {
        let unavailable = |detail: String| PgError::Unavailable {
            target: self.target.to_string(),
            detail,
        };
        match e {
            PoolError::Timeout(_) => unavailable(format!(
                "no connection came free or opened within the acquire timeout (pool of {})",
                self.max_size
            )),
            PoolError::Backend(e) => classify(&self.target, &e),
            PoolError::Closed => unavailable("the pool is closed".to_owned()),
            other => unavailable(other.to_string()),
        }
    }

    /// Brings the `component`'s schema to the last of `steps` (step `i` takes it from version
    /// `i` to `i + 1`). Holds an advisory lock meanwhile: a replica starting at the same time
    /// waits, then finds the steps applied. Each step commits together with its version.
    pub async fn migrate(&self, component: &'static str, steps: &[&str]) -> Result<(), PgError> {
        let client = self.client().await?;
        // Detached: if anything fails, the connection is closed rather than given back, which
        // also releases the session's advisory lock.
        let mut client = Object::take(client);
        let err = |e: tokio_postgres::Error| classify(&self.target, &e);
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(err)?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS scim_sidecar_schema (
                    component  TEXT PRIMARY KEY,
                    version    BIGINT NOT NULL,
                    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )",
            )
            .await
            .map_err(err)?;
        let found: i64 = client
            .query_opt(
                "SELECT version FROM scim_sidecar_schema WHERE component = $1",
                &[&component],
            )
            .await
            .map_err(err)?
            .map(|row| row.get(0))
            .unwrap_or(0);
        let supported = i64::try_from(steps.len()).unwrap_or(i64::MAX);
        if found > supported {
            return Err(PgError::SchemaTooNew {
                target: self.target.to_string(),
                component,
                found,
                supported,
            });
        }
        for (index, step) in steps
            .iter()
            .enumerate()
            .skip(usize::try_from(found).unwrap_or(0))
        {
            let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
            let tx = client.transaction().await.map_err(err)?;
            tx.batch_execute(step).await.map_err(err)?;
            tx.execute(
                "INSERT INTO scim_sidecar_schema (component, version) VALUES ($1, $2) \
                 ON CONFLICT (component) DO UPDATE SET version = $2, updated_at = now()",
                &[&component, &version],
            )
            .await
            .map_err(err)?;
            tx.commit().await.map_err(err)?;
            tracing::info!(component, version, "PostgreSQL schema migrated");
        }
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(err)?;
        Ok(())
    }
}

/// Whether an error means the database was unreachable, restarting or shut down.
fn classify(target: &str, e: &tokio_postgres::Error) -> PgError {
    let unavailable = |detail: String| PgError::Unavailable {
        target: target.to_owned(),
        detail,
    };
    let Some(db) = e.as_db_error() else {
        // No server answer: the connection failed or broke (closed, reset, timed out, TLS).
        let detail = std::error::Error::source(e)
            .map(|s| format!("{e}: {s}"))
            .unwrap_or_else(|| e.to_string());
        return unavailable(detail);
    };
    let code = db.code();
    let class = match &code.code()[..2] {
        "08" => return unavailable(format!("connection exception (SQLSTATE {})", code.code())),
        "57" if *code != SqlState::QUERY_CANCELED => {
            return unavailable(format!(
                "the server is shutting down or starting (SQLSTATE {})",
                code.code()
            ));
        }
        "53" => {
            return unavailable(format!(
                "the server is out of resources (SQLSTATE {})",
                code.code()
            ));
        }
        "40" => "transaction rollback",
        "23" => "integrity constraint violation",
        "42" => "syntax error or access rule violation",
        "28" => "invalid authorization",
        "3D" => "invalid catalog name",
        "22" => "data exception",
        "25" => "invalid transaction state",
        _ => "other",
    };
    PgError::Refused {
        target: target.to_owned(),
        code: code.code().to_owned(),
        class,
    }
}

/// The rustls client configuration for a TLS mode.
fn client_tls(verify: Verify, ca_file: Option<&Path>) -> Result<rustls::ClientConfig, PgError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Config {
            key: "url",
            detail: format!("TLS: {e}"),
        })?;
    let config = match verify {
        Verify::Encrypt | Verify::Plain => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
        Verify::Full => builder
            .with_root_certificates(roots(ca_file)?)
            .with_no_client_auth(),
    };
    Ok(config)
}

/// The certificate authorities for `verify-full`: `ca_file`, else the system's.
fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, PgError> {
    crate::tls::client_roots(ca_file).map_err(|detail| PgError::Config {
        key: "ca_file",
        detail: if ca_file.is_none() {
            format!("sslmode=verify-full needs trusted roots: {detail}; give store.ca_file")
        } else {
            detail
        },
    })
}

/// `sslmode=require`: the connection is encrypted and the handshake's signature checked
/// against the certificate the server shows, but the certificate itself is not (libpq's
/// meaning of `require`; use `verify-full` against a server an attacker could impersonate).
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(url: &str) -> StoreConfig {
        StoreConfig {
            url: url.to_owned(),
            password: None,
            ca_file: None,
            pool_size: 2,
            acquire_timeout_secs: 1,
            synchronous_commit: false,
        }
    }

    #[test]
    fn ssl_modes_and_sockets() {
        let t =
            Target::parse(&store("postgres://u@db.example:5433/x?sslmode=require")).expect("parse");
        assert_eq!(t.verify, Verify::Encrypt);
        assert_eq!(t.shown, "u@db.example:5433/x");
        let t = Target::parse(&store("postgres://u@db.example/x")).expect("parse");
        assert_eq!(
            t.verify,
            Verify::Full,
            "verify-full is the default over TCP"
        );
        let t = Target::parse(&store("postgres://u@%2Ftmp%2Fpg/x")).expect("parse");
        assert_eq!(t.verify, Verify::Plain, "a socket carries no TLS");
        let e = Target::parse(&store("postgres://u@%2Ftmp%2Fpg/x?sslmode=require"))
            .err()
            .expect("refused");
        assert!(e.to_string().contains("Unix socket"), "{e}");
        let e = Target::parse(&store("postgres://u@h/x?sslmode=verify-ca"))
            .err()
            .expect("refused");
        assert!(e.to_string().contains("verify-ca is not supported"), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commits_wait_for_the_disk_only_when_asked() {
        let mut cluster = pgtest::Cluster::start();
        let url = cluster.create_database().await;
        for (asked, shown) in [(false, "off"), (true, "on")] {
            let mut config = store(&url);
            config.synchronous_commit = asked;
            let pg = Pg::connect(&config).await.expect("connect");
            let client = pg.client().await.expect("client");
            let row = client
                .query_one("SHOW synchronous_commit", &[])
                .await
                .expect("show");
            assert_eq!(
                row.get::<_, String>(0),
                shown,
                "synchronous_commit = {asked}"
            );
        }
    }

    #[test]
    fn a_password_in_the_url_is_refused_without_being_shown() {
        for url in [
            "postgres://u:hunter2@h/x",
            "postgres://u@h/x?password=hunter2",
        ] {
            let e = Target::parse(&store(url)).err().expect("refused");
            let shown = e.to_string();
            assert!(shown.contains("store.password"), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }
}
