//! The sidecar's configuration: defaults ← TOML file ← `SCIM_SIDECAR_*` environment
//! variables (figment), then [`Config::validate`] as its own step.
//!
//! Every key is documented on its field below: these comments are the operators' reference
//! (`examples/sidecar.toml` shows them in use). Unknown keys are errors, in the file and
//! under the environment prefix alike.
//!
//! Environment variables: `SCIM_SIDECAR_` + the key path in upper case with `__` between
//! levels, e.g. `SCIM_SIDECAR_SERVER__LISTEN=0.0.0.0:8787` or
//! `SCIM_SIDECAR_TENANTS__ACME__LEGACY_BASE_URL=https://mc.internal`. Names are matched in
//! lower case, so tenant names are lower case. Values are parsed: quote a string that looks
//! like a number (`'"0042"'`); arrays and tables are written inline
//! (`SCIM_SIDECAR_TENANTS__ACME__TOKENS='[{file="/run/secrets/okta"}]'`). An array replaces
//! the file's whole array, but tables merge key by key: a secret set in the file can be
//! changed from the environment only within its kind (`…__API_KEY__ENV=OTHER_VAR`); giving
//! another kind makes a source with two keys, which is refused.
//!
//! Owns configuration types, loading and validation; depends on nothing else in the crate.
//! It does not read mapping files: `mapping` is only a path here.

mod error;
pub mod oauth;
mod secret;
#[cfg(test)]
mod tests;
pub mod webhooks;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use mapping::TenantValues;
use serde::Deserialize;

pub use error::ConfigError;
pub use secret::{Secret, SecretSource};

/// The prefix of environment variables that override the configuration file.
pub const ENV_PREFIX: &str = "SCIM_SIDECAR_";

/// Variables under [`ENV_PREFIX`] that belong to the command line, not to the configuration
/// (`SCIM_SIDECAR_CONFIG`: the configuration file; `SCIM_SIDECAR_LOG`: the log filter).
/// They are skipped when loading; any other unknown `SCIM_SIDECAR_*` variable is an error.
pub const ENV_NOT_CONFIG: &[&str] = &["CONFIG", "LOG"];

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`: listener, limits, timeouts and logging. Every key has a default.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[tenants.<name>]`: one table per customer whose identity provider provisions through
    /// this sidecar. The name (lower-case letters, digits, `-`, `_`) is the tenant's id in
    /// logs, metrics and the cross-reference database: renaming a tenant orphans its
    /// remembered data.
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantConfig>,
    /// `[store]`: where the sidecar keeps its state when several replicas share it
    /// (PostgreSQL). Absent: SQLite files in `server.data_dir`, for one replica.
    #[serde(default)]
    pub store: Option<StoreConfig>,
}

/// Default of `store.pool_size`.
pub const DEFAULT_POOL_SIZE: usize = 8;
/// Default of `store.acquire_timeout_secs`.
pub const DEFAULT_ACQUIRE_TIMEOUT_SECS: u64 = 5;

/// `[store]`: the cross-reference, the create claims and the provisioning log in PostgreSQL,
/// shared by every replica of the sidecar.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The server, database and user, as a URL without the password:
    /// `postgres://USER@HOST:5432/DATABASE?sslmode=verify-full`. `sslmode` is `disable`,
    /// `require` (encrypted, the certificate not checked) or `verify-full` (the certificate
    /// chain and the host name checked; the default). A Unix socket directory is given as a
    /// percent-encoded host: `postgres://USER@%2Frun%2Fpostgresql/DATABASE?sslmode=disable`.
    /// Required.
    pub url: String,
    /// The user's password: `{ env = … }`, `{ file = … }` or `{ value = … }`. Optional (a
    /// server that trusts the socket's peer needs none); never in `url`.
    #[serde(default)]
    pub password: Option<SecretSource>,
    /// PEM file of the certificate authorities that may sign the server's certificate, for
    /// `sslmode=verify-full`. Default: the system's trusted roots. A relative path is
    /// relative to the directory of this configuration file.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Connections each replica keeps at most. Default 8.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// How long a request waits for a free connection (or for a new one to open) before it
    /// is answered `503` with `Retry-After`, in seconds. Default 5.
    #[serde(default = "default_acquire_timeout_secs")]
    pub acquire_timeout_secs: u64,
    /// Whether each commit waits until the server has flushed it to disk (and to synchronous
    /// standbys). Default `false`: the durability of the SQLite store (WAL, `synchronous =
    /// NORMAL`): a crash of the database server may lose the last fraction of a second of
    /// commits, never their consistency; a crash of the sidecar loses nothing. `true` for
    /// every commit on disk before the answer, at the cost of a flush per write.
    #[serde(default)]
    pub synchronous_commit: bool,
}

fn default_pool_size() -> usize {
    DEFAULT_POOL_SIZE
}

fn default_acquire_timeout_secs() -> u64 {
    DEFAULT_ACQUIRE_TIMEOUT_SECS
}

/// The problems of a `[store]` table: the URL's form (the driver parses the rest when the
/// sidecar starts), a password written in it, zero sizes, secrets and files out of reach.
fn store_problems(store: &StoreConfig, problems: &mut Vec<String>) {
    let url = store.url.trim();
    let lower = url.to_ascii_lowercase();
    let Some(rest) = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|scheme| lower.starts_with(scheme).then(|| &url[scheme.len()..]))
    else {
        problems.push(
            "store.url must be a postgres:// URL, e.g. \
             postgres://scim_sidecar@db.example.com:5432/scim_sidecar?sslmode=verify-full"
                .to_owned(),
        );
        return;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if let Some((user_info, _)) = authority.rsplit_once('@')
        && user_info.contains(':')
    {
        problems.push(
            "store.url holds a password: remove it from the URL and give it as \
             store.password = { file = … } (or { env = … })"
                .to_owned(),
        );
    }
    if store.pool_size == 0 {
        problems.push("store.pool_size must be greater than 0".to_owned());
    }
    if store.acquire_timeout_secs == 0 {
        problems.push("store.acquire_timeout_secs must be greater than 0".to_owned());
    }
    if let Some(Err(e)) = store.password.as_ref().map(SecretSource::resolve) {
        problems.push(format!("store.password: {e}"));
    }
    if let Some(path) = &store.ca_file
        && let Err(e) = std::fs::read(path)
    {
        problems.push(format!(
            "store.ca_file: cannot read {}: {e}",
            path.display()
        ));
    }
}

/// Default of `server.max_body_bytes`.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// `[server]`: how the sidecar listens and behaves as a process.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on. Default `127.0.0.1:8787`; use `0.0.0.0:8787` in a
    /// container behind a TLS-terminating ingress.
    pub listen: SocketAddr,
    /// Directory of the cross-reference database (created with mode 0700 if missing).
    /// Default `/var/lib/scim-sidecar`; give it a persistent volume.
    pub data_dir: PathBuf,
    /// Largest request body accepted, in bytes; larger requests get `413`. Default 4 MiB
    /// (4194304): a group push replacing 10,000 members is about 1 MiB.
    pub max_body_bytes: usize,
    /// Time limit for answering one SCIM request, in seconds. Default 55: under Okta's 60 s
    /// so that Okta gets an answer rather than a dropped connection.
    pub request_timeout_secs: u64,
    /// On SIGTERM / Ctrl-C, how long in-flight requests may finish before the process exits,
    /// in seconds. Default 25 (Kubernetes waits 30 s before killing).
    pub shutdown_grace_secs: u64,
    /// Log output: `auto` (JSON when standard error is not a terminal, text otherwise),
    /// `json` or `text`. Default `auto`.
    pub log_format: LogFormat,
    /// The SCIM base URL identity providers use, e.g. `https://scim.example.com/scim/v2`:
    /// used for `Location` and `meta.location`. Default: built from each request's `Host`
    /// (and `X-Forwarded-Proto`), which is right unless a proxy rewrites the host.
    pub public_base_url: Option<String>,
    /// How often each tenant's mapping file is checked for changes, in seconds; a changed
    /// file is compiled and put in force, or refused and logged (the old mapping stays).
    /// `0` disables polling: then only `SIGHUP` reloads. Default 2.
    pub mapping_poll_secs: u64,
    /// How long a client may take to send a request's headers, in seconds; a slower one is
    /// disconnected (slow-client protection). A slow body is bounded by
    /// `request_timeout_secs`. Default 30.
    pub header_read_timeout_secs: u64,
    /// Address of the admin listener: `/healthz`, `/readyz`, `/metrics` (Prometheus),
    /// `/admin/` (the provisioning log page) and `/admin/log` (the same as JSON). Default
    /// `127.0.0.1:9464`, so it is not reachable from outside the host; in Kubernetes bind it
    /// on the pod address (`0.0.0.0:9464`) for the kubelet's probes and Prometheus, expose
    /// only the SCIM port through the Service, and set `admin_token`.
    pub admin_listen: SocketAddr,
    /// The token `/admin/` and `/admin/log` require (they show userNames), as a bearer token
    /// or as the password of HTTP Basic authentication (any user name), which a browser asks
    /// for: `{ env = … }`, `{ file = … }`, `{ value = … }` or `{ sha256 = … }`. Default: none,
    /// allowed only while `admin_listen` is a loopback address. Probes and metrics never need
    /// it.
    pub admin_token: Option<SecretSource>,
    /// Days the provisioning log (`provisioning.sqlite3` in `data_dir`) keeps entries; older
    /// ones are deleted at start and every hour. Default 30.
    pub provisioning_log_days: u32,
    /// Readiness: the legacy app counts as up when it answered a call (any status below 500)
    /// within this many seconds; otherwise `/readyz` probes it with one small list call.
    /// Default 30.
    pub legacy_ready_window_secs: u64,
    /// RFC 9865 cursor paging: how long a `nextCursor` stays valid, in seconds (advertised
    /// as `cursorTimeout`); an older one is answered `400 expiredCursor`. Default 3600.
    pub cursor_timeout_secs: u64,
    /// `[server.tls]`: serve HTTPS on `listen` instead of plain HTTP, for hosts without a
    /// TLS-terminating ingress. Absent by default (plain HTTP).
    pub tls: Option<TlsConfig>,
}

/// Default of `server.tls.poll_secs`.
pub const DEFAULT_TLS_POLL_SECS: u64 = 10;

/// `[server.tls]`: TLS on the SCIM listener (rustls: TLS 1.2 and 1.3, ALPN `h2` and
/// `http/1.1`). The certificate and key are read at startup (a bad pair stops the sidecar) and
/// again whenever their content changes or on `SIGHUP`: a new pair that parses and matches is
/// used for new connections (connections already open keep theirs); one that does not is
/// logged and the pair in force stays.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM: the server's certificate first, then any intermediates
    /// (e.g. cert-manager's or Let's Encrypt's `fullchain.pem`). A relative path is relative
    /// to the directory of this configuration file. Required.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// The certificate's private key, PEM, unencrypted: PKCS#8 (`BEGIN PRIVATE KEY`), PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`); RSA, ECDSA P-256/P-384 or
    /// Ed25519. A relative path is relative to the directory of this configuration file.
    /// Required.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// How often the two files are checked for a change of content, in seconds (a Kubernetes
    /// Secret's symlink swap is seen too). `0` disables polling: then only `SIGHUP` reloads.
    /// Default 10.
    #[serde(default = "default_tls_poll_secs")]
    pub poll_secs: u64,
}

fn default_tls_poll_secs() -> u64 {
    DEFAULT_TLS_POLL_SECS
}

impl TlsConfig {
    /// The certificate chain file and the key file, when both are given (as
    /// [`Config::validate`] requires).
    pub fn files(&self) -> Option<(&Path, &Path)> {
        Some((self.cert_file.as_deref()?, self.key_file.as_deref()?))
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8787)),
            data_dir: PathBuf::from("/var/lib/scim-sidecar"),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout_secs: 55,
            shutdown_grace_secs: 25,
            log_format: LogFormat::Auto,
            public_base_url: None,
            mapping_poll_secs: 2,
            header_read_timeout_secs: 30,
            admin_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 9464)),
            admin_token: None,
            cursor_timeout_secs: crate::cursor::DEFAULT_TIMEOUT_SECS,
            provisioning_log_days: 30,
            legacy_ready_window_secs: 30,
            tls: None,
        }
    }
}

/// The format of log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON when standard output is not a terminal, text otherwise.
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// `[tenants.<name>]`: one customer of the legacy application and its identity provider.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// The customer's id in the legacy application (available to the mapping as
    /// `{tenant.customer_id}` or `{var.customer_id}`). Optional: needed when the mapping
    /// uses it; non-empty when given.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// Base URL of the legacy application's API, `http://` (the sidecar runs on the same
    /// host or in the same pod as the legacy app; TLS to it is not supported). Required.
    pub legacy_base_url: String,
    /// The mapping file (TOML) describing the legacy API. A relative path is relative to
    /// the directory of this configuration file. Required.
    pub mapping: PathBuf,
    /// The legacy application's API key (available to the mapping as `{secret.api_key}`):
    /// `{ env = "VAR" }`, `{ file = "/path" }` or `{ value = "..." }`. Optional: needed when
    /// the mapping uses it.
    #[serde(default)]
    pub api_key: Option<SecretSource>,
    /// Values the mapping names as `{var.NAME}` (a region, a user name, an organisation id).
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Secrets the mapping names as `{secret.NAME}` (passwords, tokens), each
    /// `{ env = … }`, `{ file = … }` or `{ value = … }`; never logged.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSource>,
    /// The bearer tokens the identity provider presents (`Authorization: Bearer …`, or the
    /// token alone as Okta's "HTTP Header" mode sends it); a token identifies this tenant and
    /// must not be shared with another one. Each is `{ env = … }`, `{ file = … }`,
    /// `{ value = … }` or `{ sha256 = "<64 hex>" }` (the digest of the token, so the sidecar
    /// never holds it). List two during a rotation. `tokens`, `basic` or both must be given.
    #[serde(default)]
    pub tokens: Vec<SecretSource>,
    /// HTTP Basic credentials the identity provider presents (Okta's "Basic Auth"): each a
    /// `username` and the argon2 `password_hash` that `scim-sidecar hash-password` prints
    /// (inline, or `{ env = … }` / `{ file = … }`). A username identifies this tenant; list
    /// it twice, with two hashes, during a password rotation.
    #[serde(default)]
    pub basic: Vec<BasicConfig>,
    /// `[tenants.<name>.oauth]`: OAuth 2.0 clients (Okta's authorization-code grant, Entra
    /// ID's client-credentials grant), the consent page's approvers, token lifetimes.
    #[serde(default)]
    pub oauth: Option<oauth::OAuthConfig>,
    /// `[[tenants.<name>.webhooks]]`: endpoints the tenant's directory-sync events are
    /// delivered to (signed, per the Standard Webhooks specification).
    #[serde(default)]
    pub webhooks: Vec<webhooks::WebhookConfig>,
    /// Time limit for one call to the legacy application, in seconds. Default 30.
    #[serde(default = "default_legacy_timeout_secs")]
    pub legacy_timeout_secs: u64,
    /// Most calls in flight to the legacy application for this tenant. Default 32.
    #[serde(default = "default_legacy_concurrency")]
    pub legacy_concurrency: usize,
    /// Most group-membership calls in flight for one group request (within
    /// `legacy_concurrency`). Default 16.
    #[serde(default = "default_member_concurrency")]
    pub member_concurrency: usize,
}

/// One `[[tenants.<name>.basic]]` credential.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicConfig {
    /// The username, compared exactly: no `:`, no control characters, not empty.
    pub username: String,
    /// The password's argon2 hash in PHC form (`$argon2id$v=19$…`).
    pub password_hash: HashSource,
}

/// Where a password hash comes from: the PHC string inline, or a secret source.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(
    untagged,
    expecting = "a PHC string (\"$argon2id$v=19$…\", from `scim-sidecar hash-password`) or \
                 { env = \"VAR\" } / { file = \"/path\" }"
)]
pub enum HashSource {
    /// The hash itself.
    Inline(String),
    /// Read from the environment, a file or a `value`.
    From(SecretSource),
}

impl HashSource {
    fn phc(&self) -> Result<String, ConfigError> {
        match self {
            HashSource::Inline(phc) => Ok(phc.clone()),
            HashSource::From(source) => Ok(source.resolve()?.expose().to_owned()),
        }
    }
}

impl BasicConfig {
    /// The username's problem, if it is not one a Basic header can carry.
    fn username_problem(&self) -> Option<&'static str> {
        if self.username.is_empty() {
            Some("username must not be empty")
        } else if self.username.contains(':') {
            Some("username must not contain ':' (HTTP Basic ends the username there)")
        } else if self.username.chars().any(char::is_control) {
            Some("username must not contain control characters")
        } else {
            None
        }
    }
}

fn default_legacy_timeout_secs() -> u64 {
    30
}

fn default_legacy_concurrency() -> usize {
    32
}

fn default_member_concurrency() -> usize {
    16
}

impl TenantConfig {
    /// SHA-256 digests of every token: resolved secrets are hashed, `sha256` digests are
    /// taken as given (after checking the hex). Empty only when `basic` is not.
    pub fn token_digests(&self) -> Result<Vec<[u8; 32]>, ConfigError> {
        if self.tokens.is_empty() && self.basic.is_empty() && self.oauth.is_none() {
            return Err(ConfigError::NoCredentials);
        }
        self.tokens.iter().map(SecretSource::token_digest).collect()
    }

    /// Every Basic credential's username and parsed password hash.
    pub fn basic_hashes(
        &self,
    ) -> Result<Vec<(String, argon2::password_hash::phc::PasswordHash)>, ConfigError> {
        self.basic
            .iter()
            .enumerate()
            .map(|(index, b)| {
                let bad = |reason: String| ConfigError::BadPasswordHash { index, reason };
                let phc = b.password_hash.phc().map_err(|e| bad(e.to_string()))?;
                let hash = crate::credentials::password::parse(&phc).map_err(bad)?;
                Ok((b.username.clone(), hash))
            })
            .collect()
    }

    /// The values the mapping's placeholders take for this tenant, secrets resolved.
    pub fn values(&self) -> Result<TenantValues, ConfigError> {
        let mut secrets = BTreeMap::new();
        for (name, secret) in &self.secrets {
            secrets.insert(name.clone(), secret.resolve()?.expose().to_owned());
        }
        let api_key = match &self.api_key {
            Some(key) => key.resolve()?.expose().to_owned(),
            None => String::new(),
        };
        Ok(TenantValues {
            customer_id: self.customer_id.clone().unwrap_or_default(),
            api_key,
            vars: self.vars.clone(),
            secrets,
        })
    }
}

impl Config {
    /// Loads defaults ← the TOML file at `path` ← `SCIM_SIDECAR_*` environment variables,
    /// then resolves relative `mapping`, `cert_file` and `key_file` paths against the file's
    /// directory. Does not validate: call [`Config::validate`].
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        std::fs::metadata(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let env = Env::prefixed(ENV_PREFIX).split("__").ignore(ENV_NOT_CONFIG);
        let mut config: Config = Figment::new()
            .merge(Toml::file_exact(path))
            .merge(env)
            .extract()
            .map_err(|e| ConfigError::Load {
                path: path.to_path_buf(),
                problems: error::figment_problems(e, ENV_PREFIX),
            })?;
        let dir = path.parent().unwrap_or(Path::new(""));
        for tenant in config.tenants.values_mut() {
            if tenant.mapping.is_relative() {
                tenant.mapping = dir.join(&tenant.mapping);
            }
        }
        if let Some(ca) = config.store.as_mut().and_then(|s| s.ca_file.as_mut())
            && ca.is_relative()
        {
            *ca = dir.join(&*ca);
        }
        if let Some(tls) = &mut config.server.tls {
            for file in [&mut tls.cert_file, &mut tls.key_file]
                .into_iter()
                .flatten()
            {
                if file.is_relative() {
                    *file = dir.join(&*file);
                }
            }
        }
        Ok(config)
    }

    /// Checks everything at once and reports every problem: no tenants, a tenant name that
    /// environment variables cannot address, empty `customer_id`, a `legacy_base_url` that is
    /// not `http(s)://…`, no tokens, a malformed `sha256`, the same token in two tenants,
    /// zero limits or timeouts, secrets that cannot be resolved, a `[server.tls]` table
    /// without both files or with a file that cannot be read. Messages name variables and
    /// files, never a secret. Mapping files are not read here, and TLS files are only read,
    /// not parsed (`tls` parses them).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let server = &self.server;
        if let Some(url) = &server.public_base_url {
            let lower = url.to_ascii_lowercase();
            if !(lower.starts_with("https://") || lower.starts_with("http://"))
                || url.ends_with('/')
            {
                problems.push(
                    "server.public_base_url must be an http(s):// URL without a trailing '/', \
                     e.g. https://scim.example.com/scim/v2"
                        .to_owned(),
                );
            }
        }
        if server.header_read_timeout_secs == 0 {
            problems.push("server.header_read_timeout_secs must be greater than 0".to_owned());
        }
        if server.provisioning_log_days == 0 {
            problems.push("server.provisioning_log_days must be at least 1".to_owned());
        }
        if server.admin_listen == server.listen && server.listen.port() != 0 {
            problems.push(format!(
                "server.admin_listen and server.listen are both {}: the admin listener needs \
                 its own port",
                server.listen
            ));
        }
        if let Some(token) = &server.admin_token
            && let Err(e) = token.token_digest()
        {
            problems.push(format!("server.admin_token: {e}"));
        }
        if server.admin_token.is_none() && !server.admin_listen.ip().is_loopback() {
            problems.push(format!(
                "server.admin_listen is {} but server.admin_token is not set: /admin/ shows who \
                 was provisioned, so beyond loopback it needs a token",
                server.admin_listen
            ));
        }
        if server.max_body_bytes == 0 {
            problems.push("server.max_body_bytes must be greater than 0".to_owned());
        }
        if server.cursor_timeout_secs == 0 {
            problems.push("server.cursor_timeout_secs must be greater than 0".to_owned());
        }
        if server.request_timeout_secs == 0 {
            problems.push("server.request_timeout_secs must be greater than 0".to_owned());
        }
        if let Some(tls) = &server.tls {
            for (key, file) in [("cert_file", &tls.cert_file), ("key_file", &tls.key_file)] {
                match file {
                    None => problems.push(format!(
                        "server.tls.{key} is missing: [server.tls] needs both cert_file and \
                         key_file (leave the table out to serve plain HTTP)"
                    )),
                    Some(path) => {
                        if let Err(e) = std::fs::read(path) {
                            problems.push(format!(
                                "server.tls.{key}: cannot read {}: {e}",
                                path.display()
                            ));
                        }
                    }
                }
            }
        }
        if let Some(store) = &self.store {
            store_problems(store, &mut problems);
        }
        if self.tenants.is_empty() {
            problems.push("no tenants configured: add a [tenants.<name>] table".to_owned());
        }

        let mut token_owner: HashMap<[u8; 32], (&str, usize)> = HashMap::new();
        let mut basic_owner: HashMap<&str, &str> = HashMap::new();
        let mut client_owner: HashMap<&str, String> = HashMap::new();
        let mut approver_owner: HashMap<&str, &str> = HashMap::new();
        for (name, tenant) in &self.tenants {
            let at = format!("tenants.{name}");
            if !valid_tenant_name(name) {
                problems.push(format!(
                    "{at}: a tenant name is 1 to 64 lower-case ASCII letters, digits, `-` or `_` \
                     (environment variables address it in lower case)"
                ));
            }
            if tenant
                .customer_id
                .as_deref()
                .is_some_and(|c| c.trim().is_empty())
            {
                problems.push(format!("{at}.customer_id must not be empty"));
            }
            for name in tenant.vars.keys().chain(tenant.secrets.keys()) {
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    problems.push(format!(
                        "{at}: {name:?} is not a name a mapping can use ({{var.NAME}}, \
                         {{secret.NAME}}: letters, digits and _)"
                    ));
                }
            }
            for (name, secret) in &tenant.secrets {
                if let Err(e) = secret.resolve() {
                    problems.push(format!("{at}.secrets.{name}: {e}"));
                }
            }
            if !valid_base_url(&tenant.legacy_base_url) {
                problems.push(format!(
                    "{at}.legacy_base_url must start with http:// and name a host (the sidecar reaches \
                     the legacy app on the same host or pod; https:// is not supported)"
                ));
            }
            for (key, is_zero) in [
                ("legacy_timeout_secs", tenant.legacy_timeout_secs == 0),
                ("legacy_concurrency", tenant.legacy_concurrency == 0),
                ("member_concurrency", tenant.member_concurrency == 0),
            ] {
                if is_zero {
                    problems.push(format!("{at}.{key} must be greater than 0"));
                }
            }
            if let Some(Err(e)) = tenant.api_key.as_ref().map(SecretSource::resolve) {
                problems.push(format!("{at}.api_key: {e}"));
            }
            if tenant.tokens.is_empty() && tenant.basic.is_empty() && tenant.oauth.is_none() {
                problems.push(format!(
                    "{at}: none of tokens, basic and oauth is given: the identity provider \
                     could not authenticate"
                ));
            }
            let mut hook_names = HashSet::new();
            for (index, hook) in tenant.webhooks.iter().enumerate() {
                let hat = format!("{at}.webhooks[{index}]");
                problems.extend(hook.problems(&hat));
                if !hook_names.insert(hook.name.as_str()) {
                    problems.push(format!(
                        "{hat}.name {:?} is another endpoint's: each endpoint of a tenant has its                          own name",
                        hook.name
                    ));
                }
            }
            if let Some(oauth) = &tenant.oauth {
                problems.extend(oauth.problems(&at));
                for (index, a) in oauth.approvers.iter().enumerate() {
                    match approver_owner.get(a.username.as_str()) {
                        Some(&other) if other != name.as_str() => problems.push(format!(
                            "{at}.oauth.approvers[{index}]: username {:?} is also \
                             tenants.{other}'s approver: an approver's username must identify \
                             one tenant",
                            a.username
                        )),
                        _ => {
                            approver_owner.insert(a.username.as_str(), name.as_str());
                        }
                    }
                }
                for (index, c) in oauth.clients.iter().enumerate() {
                    match client_owner.get(c.client_id.as_str()) {
                        Some(other) => problems.push(format!(
                            "{at}.oauth.clients[{index}]: client_id {:?} is also {other}'s: a \
                             client id must identify one client of one tenant",
                            c.client_id
                        )),
                        None => {
                            client_owner.insert(c.client_id.as_str(), format!("tenants.{name}"));
                        }
                    }
                }
            }
            for (index, basic) in tenant.basic.iter().enumerate() {
                if let Some(problem) = basic.username_problem() {
                    problems.push(format!("{at}.basic[{index}]: {problem}"));
                } else {
                    match basic_owner.get(basic.username.as_str()) {
                        Some(&other) if other != name.as_str() => problems.push(format!(
                            "{at}.basic[{index}]: username {:?} is also tenants.{other}'s: a \
                             username must identify one tenant",
                            basic.username
                        )),
                        _ => {
                            basic_owner.insert(basic.username.as_str(), name.as_str());
                        }
                    }
                }
            }
            if let Err(e) = tenant.basic_hashes() {
                problems.push(format!("{at}.{e}"));
            }
            for (index, token) in tenant.tokens.iter().enumerate() {
                match token.token_digest() {
                    Ok(digest) => match token_owner.get(&digest) {
                        Some(&(other, other_index)) if other != name.as_str() => {
                            problems.push(format!(
                                "{at}.tokens[{index}] is the same token as \
                                 tenants.{other}.tokens[{other_index}]: a token must identify \
                                 one tenant"
                            ));
                        }
                        Some(_) => {}
                        None => {
                            token_owner.insert(digest, (name.as_str(), index));
                        }
                    },
                    Err(e) => problems.push(format!("{at}.tokens[{index}]: {e}")),
                }
            }
        }

        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid { problems })
        }
    }
}

fn valid_tenant_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn valid_base_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let rest = lower.strip_prefix("http://");
    rest.is_some_and(|rest| {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !host.contains(char::is_whitespace)
    })
}
