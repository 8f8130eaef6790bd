//! Test harness: a Marketing Center simulator and a sidecar on ephemeral loopback ports, a
//! temp SQLite file each, and a small SCIM client over real sockets.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mapping::Mapping;
use mapping::ids::TenantId;
use scim_sidecar::run::{Launch, Sidecar};
use scim_sidecar::server::{Limits, Transport};
use scim_sidecar::tenant::TenantSettings;
use scim_sidecar::webhooks::Endpoint;
use scim_sidecar::xref::Store;
use serde_json::Value;
use sha2::{Digest, Sha256};
use simulator::marketing_center::{MarketingCenter, RunningSimulator};
use simulator::partner_directory::PartnerDirectory;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

/// The customer id the harness tenant uses.
pub(crate) const CUSTOMER: &str = "ACME";
/// The legacy API key of the harness.
pub(crate) const API_KEY: &str = "sim-api-key-7f1c";
/// The SCIM bearer token of the harness tenant.
pub(crate) const TOKEN: &str = "scim-token-acme-5b2e9d";
/// The token of a second tenant ("other", customer `OTHER`) on the same legacy app.
pub(crate) const TOKEN_OTHER: &str = "scim-token-other-91aa3c";
/// A second valid token of the same tenant (rotation).
pub(crate) const TOKEN_2: &str = "scim-token-acme-rotated-0c44";
/// The admin token of the harness's admin listener.
pub(crate) const ADMIN_TOKEN: &str = "admin-token-3e8a61";

/// How long a test waits for a state it expects before it fails. Generous on purpose: a
/// loaded machine makes a test slower, never red.
pub(crate) const WAIT_LIMIT: Duration = Duration::from_secs(30);
/// How often [`wait_until`] looks again.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// Polls `done` every 10 ms until it returns `true`; panics naming `what` if it has not
/// within [`WAIT_LIMIT`]. The synchronisation of the tests: wait on a state, never a sleep.
pub(crate) async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    wait_for_every(what, POLL_EVERY, async || done().await.then_some(())).await;
}

/// Polls `ready` every `every` (a client's pause between retries, say) until it returns
/// `Some`, and hands back its value; panics naming `what` if it has not within [`WAIT_LIMIT`].
pub(crate) async fn wait_for_every<T>(
    what: &str,
    every: Duration,
    mut ready: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        if let Some(value) = ready().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {} s waiting for {what}",
            WAIT_LIMIT.as_secs()
        );
        tokio::time::sleep(every).await;
    }
}

/// The Partner Directory mapping as shipped.
pub(crate) const PARTNER_DIRECTORY_MAPPING: &str =
    include_str!("../../mappings/partner-directory.toml");

/// The simulator behind a harness.
pub(crate) enum Legacy {
    /// The Marketing Center.
    Mc(MarketingCenter),
    /// The Partner Directory.
    Pd(PartnerDirectory),
}

/// A running simulator + sidecar pair.
pub(crate) struct Harness {
    /// The mapping file (watched when started with `start_reloadable`).
    pub(crate) mapping_file: std::path::PathBuf,
    /// The second tenant's (`other`) own mapping file, watched like `mapping_file`.
    pub(crate) other_mapping_file: std::path::PathBuf,
    restarted: Option<(
        oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    )>,
    restarted_addr: Option<std::net::SocketAddr>,
    /// The legacy app's simulator, for direct inspection and knobs.
    pub(crate) legacy: Legacy,
    sim_handle: Option<RunningSimulator>,
    /// `http://127.0.0.1:PORT/scim/v2` (`https://…` when started with `start_tls`).
    pub(crate) base: String,
    /// `http://127.0.0.1:PORT` of the admin listener.
    pub(crate) admin: String,
    /// The sidecar's address.
    pub(crate) addr: std::net::SocketAddr,
    /// The xref store the sidecar uses.
    pub(crate) xref: Store,
    client: Client<HttpConnector, Full<Bytes>>,
    sidecar: Option<Sidecar>,
    _dir: tempfile::TempDir,
}

/// A SCIM answer.
#[derive(Debug)]
pub(crate) struct Answer {
    /// Status.
    pub(crate) status: StatusCode,
    /// Headers.
    pub(crate) headers: HeaderMap,
    /// JSON body (`Null` when empty).
    pub(crate) body: Value,
}

impl Harness {
    /// Starts a simulator (customer ACME, demo seed) and a sidecar in front of it.
    pub(crate) async fn start() -> Harness {
        Self::start_with(|sim| sim.seed_demo(CUSTOMER)).await
    }

    /// Starts with a custom simulator setup.
    pub(crate) async fn start_with(setup: impl FnOnce(&MarketingCenter)) -> Harness {
        Self::build(setup, None).await
    }

    /// Starts with the mapping in a file (`mapping_file`) that is watched for changes every
    /// `poll`.
    pub(crate) async fn start_reloadable(poll: Duration) -> Harness {
        Self::build(|sim| sim.seed_demo(CUSTOMER), Some(poll)).await
    }

    /// Starts a Partner Directory simulator (demo seed) and a sidecar in front of it, through
    /// `mappings/partner-directory.toml`.
    pub(crate) async fn start_partner() -> Harness {
        let pd = PartnerDirectory::new(API_KEY);
        pd.seed_demo();
        let handle = pd.clone().spawn().await.unwrap();
        let plain = (Transport::Plain, Limits::with_grace(Duration::from_secs(5)));
        Self::with_legacy(
            Legacy::Pd(pd),
            handle,
            PARTNER_DIRECTORY_MAPPING,
            None,
            plain,
            Vec::new(),
        )
        .await
    }

    /// Starts with the sidecar serving TLS through `acceptor`, and `header_read_timeout` for
    /// TLS handshakes and request headers. The harness's own client speaks plain HTTP: talk to
    /// `addr` with a TLS client.
    pub(crate) async fn start_tls(acceptor: TlsAcceptor, header_read_timeout: Duration) -> Harness {
        let limits = Limits {
            header_read_timeout,
            ..Limits::with_grace(Duration::from_secs(5))
        };
        Self::build_on(
            |sim| sim.seed_demo(CUSTOMER),
            None,
            Transport::Tls(acceptor),
            limits,
        )
        .await
    }

    /// Starts with a shutdown grace period of `grace`.
    pub(crate) async fn start_with_grace(grace: Duration) -> Harness {
        Self::build_on(
            |sim| sim.seed_demo(CUSTOMER),
            None,
            Transport::Plain,
            Limits::with_grace(grace),
        )
        .await
    }

    /// Starts a Marketing Center simulator (demo seed) and a sidecar in front of it, through
    /// the mapping `mapping_text` (a variant of the shipped one).
    pub(crate) async fn start_with_mapping(mapping_text: &str) -> Harness {
        let sim = MarketingCenter::new(API_KEY, [CUSTOMER, "OTHER"]);
        sim.seed_demo(CUSTOMER);
        let handle = sim.clone().spawn().await.unwrap();
        let plain = (Transport::Plain, Limits::with_grace(Duration::from_secs(5)));
        Self::with_legacy(
            Legacy::Mc(sim),
            handle,
            mapping_text,
            None,
            plain,
            Vec::new(),
        )
        .await
    }

    /// Starts a Marketing Center simulator (demo seed) and a sidecar whose tenant `acme`
    /// delivers its events to `webhooks`.
    pub(crate) async fn start_with_webhooks(webhooks: Vec<Endpoint>) -> Harness {
        let sim = MarketingCenter::new(API_KEY, [CUSTOMER, "OTHER"]);
        sim.seed_demo(CUSTOMER);
        let handle = sim.clone().spawn().await.unwrap();
        let plain = (Transport::Plain, Limits::with_grace(Duration::from_secs(5)));
        let mapping = simulator::marketing_center::MAPPING;
        Self::with_legacy(Legacy::Mc(sim), handle, mapping, None, plain, webhooks).await
    }

    async fn build(setup: impl FnOnce(&MarketingCenter), reload: Option<Duration>) -> Harness {
        let limits = Limits::with_grace(Duration::from_secs(5));
        Self::build_on(setup, reload, Transport::Plain, limits).await
    }

    async fn build_on(
        setup: impl FnOnce(&MarketingCenter),
        reload: Option<Duration>,
        transport: Transport,
        limits: Limits,
    ) -> Harness {
        let sim = MarketingCenter::new(API_KEY, [CUSTOMER, "OTHER"]);
        setup(&sim);
        let handle = sim.clone().spawn().await.unwrap();
        Self::with_legacy(
            Legacy::Mc(sim),
            handle,
            simulator::marketing_center::MAPPING,
            reload,
            (transport, limits),
            Vec::new(),
        )
        .await
    }

    async fn with_legacy(
        legacy: Legacy,
        handle: RunningSimulator,
        mapping_text: &str,
        reload: Option<Duration>,
        (transport, limits): (Transport, Limits),
        webhooks: Vec<Endpoint>,
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let mapping = Mapping::from_toml(mapping_text, "mapping.toml").unwrap();
        let mapping_file = dir.path().join("mapping.toml");
        std::fs::write(&mapping_file, mapping_text).unwrap();
        let other_mapping_file = dir.path().join("mapping-other.toml");
        std::fs::write(&other_mapping_file, mapping_text).unwrap();
        let tenant = |id: &str,
                      customer: &str,
                      tokens: &[&str],
                      mapping,
                      mapping_path,
                      webhooks|
         -> TenantSettings {
            TenantSettings {
                id: TenantId::new(id),
                values: mapping::TenantValues {
                    customer_id: customer.into(),
                    api_key: API_KEY.into(),
                    ..mapping::TenantValues::default()
                },
                legacy_base_url: handle.base_url(),
                token_digests: tokens
                    .iter()
                    .map(|t| Sha256::digest(t.as_bytes()).into())
                    .collect(),
                basic: Vec::new(),
                oauth: None,
                mapping,
                mapping_path,
                legacy_timeout: Duration::from_secs(5),
                legacy_concurrency: 32,
                member_concurrency: 16,
                webhooks,
            }
        };
        let other = Mapping::from_toml(mapping_text, "mapping.toml").unwrap();
        let tenants = vec![
            tenant(
                "acme",
                CUSTOMER,
                &[TOKEN, TOKEN_2],
                mapping,
                reload.map(|_| mapping_file.clone()),
                webhooks,
            ),
            tenant(
                "other",
                "OTHER",
                &[TOKEN_OTHER],
                other,
                reload.map(|_| other_mapping_file.clone()),
                Vec::new(),
            ),
        ];
        let scheme = if transport.is_tls() { "https" } else { "http" };
        let sidecar = Sidecar::start(Launch {
            tenants,
            data_dir: dir.path().join("data"),
            store: None,
            scim: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            transport,
            admin: Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
            limits,
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(55),
            cursor_timeout: Duration::from_secs(3600),
            public_base_url: None,
            mapping_poll: reload,
            provisioning_log_days: 30,
            // Zero: every readiness check probes the legacy app.
            ready_window: Duration::ZERO,
            admin_token_digest: Some(Sha256::digest(ADMIN_TOKEN.as_bytes()).into()),
        })
        .await
        .unwrap();
        let client = Client::builder(TokioExecutor::new()).build_http();
        Harness {
            mapping_file,
            other_mapping_file,
            restarted: None,
            restarted_addr: None,
            legacy,
            sim_handle: Some(handle),
            base: format!("{scheme}://{}/scim/v2", sidecar.scim_addr()),
            addr: sidecar.scim_addr(),
            admin: format!("http://{}", sidecar.admin_addr().unwrap()),
            xref: sidecar.state().xref.clone(),
            client,
            sidecar: Some(sidecar),
            _dir: dir,
        }
    }

    /// The sidecar's data directory (its SQLite files).
    pub(crate) fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }

    /// The running sidecar.
    pub(crate) fn sidecar(&self) -> &Sidecar {
        self.sidecar.as_ref().expect("the sidecar is running")
    }

    /// Stops like `stop` and hands back the temporary directory, whose `data/` holds the
    /// sidecar's files.
    pub(crate) async fn stop_keeping_files(mut self) -> tempfile::TempDir {
        let kept = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
        self.stop().await;
        kept
    }

    /// Stops the sidecar and the simulator.
    pub(crate) async fn stop(mut self) {
        if let Some(s) = self.sidecar.take() {
            s.stop().await.unwrap();
        }
        if let Some(h) = self.sim_handle.take() {
            h.stop().await;
        }
        if let Some((tx, task)) = self.restarted.take() {
            let _ = tx.send(());
            let _ = task.await;
        }
    }

    /// The value of one series of `/metrics` (0 when absent).
    pub(crate) async fn metric(&self, series: &str) -> f64 {
        let (_, _, text) = self.admin_get("/metrics").await;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    /// GETs a path of the admin listener with the admin token: (status, content type, body).
    pub(crate) async fn admin_get(&self, path: &str) -> (StatusCode, String, String) {
        let req = Request::get(format!("{}{}", self.admin, path))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = self.client.request(req).await.unwrap();
        let status = resp.status();
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, ctype, String::from_utf8(body.to_vec()).unwrap())
    }

    /// Sends a request with raw headers; `path` is relative to the SCIM base URL.
    pub(crate) async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let resp = self.client.request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// An authenticated request with a JSON body.
    pub(crate) async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send_as(TOKEN, method, path, body).await
    }

    /// A request with another tenant's token.
    pub(crate) async fn send_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let auth = format!("Bearer {token}");
        let mut headers = vec![("Authorization", auth.as_str())];
        if body.is_some() {
            headers.push(("Content-Type", "application/scim+json"));
        }
        self.raw(method, path, &headers, body.map(|b| b.to_string()))
            .await
    }

    /// `GET`.
    pub(crate) async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    /// `POST`.
    pub(crate) async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(body)).await
    }

    /// `PUT`.
    pub(crate) async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PUT, path, Some(body)).await
    }

    /// `PATCH`.
    pub(crate) async fn patch(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PATCH, path, Some(body)).await
    }

    /// `DELETE`.
    pub(crate) async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, None).await
    }

    /// The Marketing Center simulator (panics for another legacy app).
    pub(crate) fn sim(&self) -> &MarketingCenter {
        match &self.legacy {
            Legacy::Mc(sim) => sim,
            Legacy::Pd(_) => panic!("this harness fronts the Partner Directory"),
        }
    }

    /// The Partner Directory simulator (panics for another legacy app).
    pub(crate) fn pd(&self) -> &PartnerDirectory {
        match &self.legacy {
            Legacy::Pd(pd) => pd,
            Legacy::Mc(_) => panic!("this harness fronts the Marketing Center"),
        }
    }

    /// The legacy app's base URL.
    pub(crate) fn legacy_base_url(&self) -> String {
        match (&self.sim_handle, self.restarted_addr) {
            (Some(h), _) => h.base_url(),
            (None, Some(addr)) => format!(
                "http://{addr}{}",
                simulator::marketing_center::DEFAULT_BASE_PATH
            ),
            (None, None) => String::new(),
        }
    }

    /// Stops the legacy app's simulator (its data and address kept for `restart_legacy`).
    pub(crate) async fn stop_legacy(&mut self) {
        let addr = match &self.sim_handle {
            Some(h) => h.addr(),
            None => self.restarted_addr.expect("the legacy app was started"),
        };
        if let Some(h) = self.sim_handle.take() {
            h.stop().await;
        }
        if let Some((tx, task)) = self.restarted.take() {
            let _ = tx.send(());
            let _ = task.await;
        }
        self.restarted_addr = Some(addr);
    }

    /// Stops the Marketing Center simulator and starts it again on the same address, its
    /// data kept (a legacy app restart).
    pub(crate) async fn restart_legacy(&mut self) {
        self.stop_legacy().await;
        let addr = self.restarted_addr.expect("the legacy app was started");
        let listener = TcpListener::bind(addr).await.unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let serve = self.sim().clone().serve(
            listener,
            simulator::marketing_center::DEFAULT_BASE_PATH,
            async {
                let _ = rx.await;
            },
        );
        self.restarted = Some((tx, tokio::spawn(serve)));
        self.restarted_addr = Some(addr);
    }

    /// Which legacy app this harness fronts.
    pub(crate) fn is_partner(&self) -> bool {
        matches!(self.legacy, Legacy::Pd(_))
    }

    /// The legacy app's record of the user with this login (any legacy app), as
    /// (given name, family name), if it exists.
    pub(crate) fn legacy_names(&self, login: &str) -> Option<(String, String)> {
        let text = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_owned();
        match &self.legacy {
            Legacy::Mc(_) => self.legacy_user(login).map(|u| {
                (
                    text(&u, "UserProfileFirstName"),
                    text(&u, "UserProfileLastName"),
                )
            }),
            Legacy::Pd(pd) => pd
                .accounts()
                .into_iter()
                .find(|a| {
                    a["login"]
                        .as_str()
                        .is_some_and(|l| l.eq_ignore_ascii_case(login))
                })
                .map(|a| (text(&a, "first_name"), text(&a, "last_name"))),
        }
    }

    /// How many legacy users have this login (any legacy app).
    pub(crate) fn legacy_count(&self, login: &str) -> usize {
        let same =
            |v: &Value, k: &str| v[k].as_str().is_some_and(|l| l.eq_ignore_ascii_case(login));
        match &self.legacy {
            Legacy::Mc(sim) => sim
                .users(CUSTOMER)
                .iter()
                .filter(|u| same(u, "LogonName"))
                .count(),
            Legacy::Pd(pd) => pd.accounts().iter().filter(|a| same(a, "login")).count(),
        }
    }

    /// The legacy requests seen since the last clear (any legacy app).
    pub(crate) fn legacy_requests(&self) -> Vec<(Method, String)> {
        match &self.legacy {
            Legacy::Mc(sim) => sim.requests(),
            Legacy::Pd(pd) => pd.requests(),
        }
    }

    /// Clears the legacy request log (any legacy app).
    pub(crate) fn clear_legacy_requests(&self) {
        match &self.legacy {
            Legacy::Mc(sim) => sim.clear_requests(),
            Legacy::Pd(pd) => pd.clear_requests(),
        }
    }

    /// Puts `n` users straight into the legacy app (`user0000@example.com` …).
    pub(crate) fn seed_users(&self, n: usize) {
        for i in 0..n {
            let login = format!("user{i:04}@example.com");
            match &self.legacy {
                Legacy::Mc(sim) => {
                    sim.insert_user(
                        CUSTOMER,
                        serde_json::json!({"LogonName": login, "UserProfileEmailAddress": login}),
                    )
                    .unwrap();
                }
                Legacy::Pd(pd) => {
                    pd.insert_account(
                        serde_json::json!({"login": login, "email": login, "origin": "idp"}),
                    )
                    .unwrap();
                }
            }
        }
    }

    /// The simulator's record of the user with this LogonName, if any (archived included).
    pub(crate) fn legacy_user(&self, logon_name: &str) -> Option<Value> {
        self.sim().users(CUSTOMER).into_iter().find(|u| {
            u["LogonName"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(logon_name))
        })
    }
}

/// Percent-encodes a filter for a query string.
pub(crate) fn q(filter: &str) -> String {
    form_urlencoded::byte_serialize(filter.as_bytes()).collect()
}

/// Okta's create body for a user.
pub(crate) fn okta_user(user_name: &str, given: &str, family: &str, external_id: &str) -> Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": format!("{given} {family}"),
        "locale": "en-US",
        "externalId": external_id,
        "groups": [],
        "password": "Xq7!pw0rd-never-stored",
        "active": true
    })
}
