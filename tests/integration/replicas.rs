//! Several `serve` processes on one PostgreSQL (`[store]`), as the replicas of a storefront
//! Deployment: a throwaway cluster (`pgtest`), the Marketing Center simulator, three sidecars,
//! and requests sent to each replica in turn (round-robin, as a Service spreads them).
//!
//! What one replica writes (a create, a PATCH, a tombstone, the provisioning log) is what
//! every other reads next; a create retried onto several replicas at once makes one account;
//! the database restarting mid-stream answers `503` with `Retry-After` and loses nothing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use simulator::faults::Knobs;
use simulator::marketing_center::MarketingCenter;

use crate::process::{
    Served, assert_no_drift, call, mc_tenant, reconcile, server_section, try_call,
};
use crate::support::{okta_user, wait_for_every};

const KEY: &str = "replicas-api-key";
const TOKEN: &str = "replicas-token";
const CUSTOMER: &str = "ACME";
/// The OAuth client-credentials secret of the replicas' tenant.
const CLIENT_SECRET: &str = "replicas-client-secret";

/// The Marketing Center simulator, a PostgreSQL cluster, and N sidecars sharing it.
struct Replicas {
    sim: MarketingCenter,
    sim_handle: simulator::http::RunningSimulator,
    cluster: pgtest::Cluster,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    served: Vec<Served>,
    next: AtomicUsize,
    /// The database's name in the cluster.
    db: String,
}

impl Replicas {
    async fn start(n: usize) -> Replicas {
        Replicas::start_with(n, "pool_size = 4").await
    }

    /// `n` sidecars whose `[store]` table has `settings` besides the URL.
    async fn start_with(n: usize, settings: &str) -> Replicas {
        Replicas::start_full(n, settings, "").await
    }

    /// `n` sidecars, `settings` in `[store]`, `tail` at the end of the configuration.
    async fn start_full(n: usize, settings: &str, tail: &str) -> Replicas {
        let sim = MarketingCenter::new(KEY, [CUSTOMER]);
        let sim_handle = sim.clone().spawn().await.unwrap();
        let mut cluster = pgtest::Cluster::start();
        let url = cluster.create_database().await;
        let db = pgtest::database_of(&url).to_owned();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sidecar.toml");
        std::fs::write(
            &config,
            format!(
                r#"{server}[store]
url = "{url}"
{settings}

{tenant}
[[tenants.acme.oauth.clients]]
client_id = "entra-replicas"
client_secret_hash = "{secret_hash}"
grants = ["client_credentials"]
{tail}
"#,
                server = server_section(&dir.path().join("data")),
                tenant = mc_tenant(&sim_handle.base_url(), "REPLICAS_MC_KEY", TOKEN),
                secret_hash = crate::basic_auth::cheap_hash(CLIENT_SECRET),
            ),
        )
        .unwrap();
        let served = (0..n)
            .map(|_| Served::start(&config, &[("REPLICAS_MC_KEY", KEY)]))
            .collect();
        Replicas {
            sim,
            sim_handle,
            cluster,
            dir,
            config,
            served,
            next: AtomicUsize::new(0),
            db,
        }
    }

    /// The SCIM base URL of replica `i`.
    fn base(&self, i: usize) -> String {
        self.served[i % self.served.len()].base.clone()
    }

    /// One request to replica `i`, which must answer.
    async fn on(&self, i: usize, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        call(&self.base(i), method, path, TOKEN, body).await
    }

    /// One request to the next replica in turn.
    async fn next(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.on(i, method, path, body).await
    }

    /// `reconcile --json` with the shared configuration: the legacy app against the store.
    async fn reconcile(&self) -> Value {
        reconcile(&self.config, ("REPLICAS_MC_KEY", KEY)).await
    }

    async fn stop(self) {
        for served in self.served {
            served.stop();
        }
        assert!(
            !self.dir.path().join("data").exists(),
            "with [store], nothing is written to the data directory"
        );
        self.sim_handle.stop().await;
        drop(self.cluster);
    }
}

fn patch_title(title: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"title": title}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_one_postgresql() {
    let r = Replicas::start(3).await;
    r.sim.add_group(CUSTOMER, "G-SALES", "Sales");

    // Created through replica 0, read through 1 and 2.
    let (status, ada) = r
        .on(
            0,
            Method::POST,
            "/Users",
            Some(okta_user("ada@example.com", "Ada", "L", "00u-ada")),
        )
        .await;
    assert_eq!(status, 201, "{ada}");
    let id = ada["id"].as_str().unwrap().to_owned();
    for i in [1, 2] {
        let (status, got) = r.on(i, Method::GET, &format!("/Users/{id}"), None).await;
        assert_eq!(status, 200, "replica {i}: {got}");
        assert_eq!(
            got["externalId"], "00u-ada",
            "replica {i} knows the externalId"
        );
    }
    // PATCH through replica 1, seen through replica 2.
    let (status, patched) = r
        .on(
            1,
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(patch_title("Engineer")),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    let (_, got) = r.on(2, Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(got["title"], "Engineer");
    let etag_1 = got["meta"]["version"].clone();
    let (_, got) = r.on(0, Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(
        got["meta"]["version"], etag_1,
        "every replica answers the same version"
    );

    // Group membership through one replica, read through the others.
    let (_, groups) = r.on(2, Method::GET, "/Groups", None).await;
    let gid = groups["Resources"][0]["id"].as_str().unwrap().to_owned();
    let (_, bob) = r
        .on(
            1,
            Method::POST,
            "/Users",
            Some(okta_user("bob@example.com", "Bob", "M", "00u-bob")),
        )
        .await;
    let bob_id = bob["id"].as_str().unwrap().to_owned();
    let (status, _) = r
        .on(
            2,
            Method::PATCH,
            &format!("/Groups/{gid}"),
            Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": id}, {"value": bob_id}]}]})),
        )
        .await;
    assert!(status == 200 || status == 204, "{status}");
    let (_, group) = r.on(0, Method::GET, &format!("/Groups/{gid}"), None).await;
    let members: HashSet<&str> = group["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    assert_eq!(members, HashSet::from([id.as_str(), bob_id.as_str()]));

    // Two replicas replacing the members at once: the group ends with one request's whole
    // list, never a mix of both.
    let replace = |members: Vec<&str>| {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "members",
                "value": members.iter().map(|m| json!({"value": m})).collect::<Vec<_>>()}]})
    };
    let path = format!("/Groups/{gid}");
    // Legacy latency: without one change of a group at a time, both would remove the other's
    // member from the list each read, and the group would end empty.
    r.sim.set_knobs(Knobs {
        latency: Duration::from_millis(20),
        ..Knobs::default()
    });
    let (a, b) = tokio::join!(
        r.on(0, Method::PATCH, &path, Some(replace(vec![&id]))),
        r.on(1, Method::PATCH, &path, Some(replace(vec![&bob_id]))),
    );
    assert!(a.0 < 300 && b.0 < 300, "{a:?} {b:?}");
    let in_app: HashSet<u64> = r
        .sim
        .group_members(CUSTOMER, "G-SALES")
        .into_iter()
        .collect();
    assert_eq!(in_app.len(), 1, "one request's list, not both: {in_app:?}");
    r.sim.set_knobs(Knobs::default());
    // Sequential replaces: the last one wins.
    r.on(2, Method::PATCH, &path, Some(replace(vec![&id, &bob_id])))
        .await;
    r.on(0, Method::PATCH, &path, Some(replace(vec![&bob_id])))
        .await;
    let (_, group) = r.on(1, Method::GET, &path, None).await;
    assert_eq!(group["members"].as_array().unwrap().len(), 1);
    assert_eq!(group["members"][0]["value"], bob_id.as_str());

    // Every replica reads the user (and so knows its SCIM id's legacy id, which a read then
    // asks the legacy app for while it asks the store whether the id still stands).
    for i in 0..3 {
        let (status, got) = r.on(i, Method::GET, &format!("/Users/{id}"), None).await;
        assert_eq!(status, 200, "replica {i}: {got}");
    }
    // DELETE through replica 2: every replica answers 404 from then on (the tombstone is
    // shared, never cached), though the Marketing Center keeps the archived account.
    let (status, _) = r.on(2, Method::DELETE, &format!("/Users/{id}"), None).await;
    assert_eq!(status, 204);
    for i in 0..3 {
        let (status, got) = r.on(i, Method::GET, &format!("/Users/{id}"), None).await;
        assert_eq!(
            status, 404,
            "replica {i} after a DELETE through replica 2: {got}"
        );
    }

    // Every replica's writes are in the one provisioning log, read through any replica.
    let admin = &r.served[1].admin;
    let log = admin_log(admin).await;
    let actions: Vec<(&str, &str)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["resource"].as_str().unwrap(),
            )
        })
        .collect();
    for want in [
        ("create", "User"),
        ("update", "User"),
        ("delete", "User"),
        ("membership", "Group"),
    ] {
        assert!(actions.contains(&want), "{want:?} missing from {actions:?}");
    }
    // And /readyz names the shared store.
    let ready = admin_json(&format!("{}/readyz", r.served[0].admin)).await;
    assert_eq!(ready["ready"], true, "{ready}");
    assert!(
        ready["store"]["engine"] == "postgresql",
        "readiness reports the store: {ready}"
    );

    // A cursor walk spread over the replicas: each opens the cursors the others sealed (one
    // key, made once in the shared store), and the walk meets every user once.
    r.sim.seed_bench(CUSTOMER, 12, &[]);
    let (_, all) = r.on(0, Method::GET, "/Users?count=100", None).await;
    let total = all["totalResults"].as_u64().unwrap();
    let mut cursor = String::new();
    let mut met = HashSet::new();
    for i in 0.. {
        let (status, page) = r
            .on(
                i,
                Method::GET,
                &format!("/Users?count=4&cursor={cursor}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "replica {i}: {page}");
        for u in page["Resources"].as_array().unwrap() {
            assert!(met.insert(u["id"].as_str().unwrap().to_owned()), "{u}");
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(met.len() as u64, total);

    // An OAuth access token issued by replica 0 opens the tenant on every replica; revoked
    // with `tokens revoke` (one command against the shared store), it opens none.
    let (status, _, token) = crate::oauth_idp::send(
        r.base(0).trim_end_matches("/scim/v2"),
        Method::POST,
        "/oauth2/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(format!(
            "grant_type=client_credentials&client_id=entra-replicas&client_secret={CLIENT_SECRET}"
        )),
    )
    .await;
    assert_eq!(status, 200, "{token}");
    let token: Value = serde_json::from_str(&token).unwrap();
    let access = token["access_token"].as_str().unwrap();
    for i in 0..3 {
        let (status, _) = call(&r.base(i), Method::GET, "/Users?count=1", access, None).await;
        assert_eq!(status, 200, "replica {i}");
    }
    let mut revoke = crate::process::command();
    revoke
        .args(["tokens", "revoke", "--client", "entra-replicas", "--config"])
        .arg(&r.config)
        .env("REPLICAS_MC_KEY", KEY);
    crate::process::succeeded(revoke);
    for i in 0..3 {
        let (status, _) = call(&r.base(i), Method::GET, "/Users?count=1", access, None).await;
        assert_eq!(status, 401, "replica {i} after the revocation");
    }
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_duplicate_creates_over_three_replicas_make_one_account() {
    let r = Replicas::start(3).await;
    // Latency makes any overlap of two creates visible to the simulator.
    r.sim.set_knobs(Knobs {
        latency: Duration::from_millis(20),
        ..Knobs::default()
    });
    r.sim.reset_peak_in_flight();
    let body = okta_user("dup@example.com", "Dup", "Licate", "00u-dup");
    let answers = futures_util::future::join_all((0..20).map(|i| {
        let base = r.base(i);
        let body = body.clone();
        async move { call(&base, Method::POST, "/Users", TOKEN, Some(body)).await }
    }))
    .await;
    let mut ids = HashSet::new();
    for (status, answer) in &answers {
        assert_eq!(*status, 201, "Okta's retried create is adopted: {answer}");
        ids.insert(answer["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "one SCIM id for every answer: {ids:?}");
    let accounts = r
        .sim
        .users(CUSTOMER)
        .into_iter()
        .filter(|u| u["LogonName"] == "dup@example.com")
        .count();
    assert_eq!(accounts, 1, "one account in the legacy app");
    assert_eq!(
        r.sim.peak_in_flight(),
        1,
        "the creates ran one after another, on whichever replica they landed"
    );
    assert_no_drift(&r.reconcile().await, 1);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_mid_stream_answers_503_and_loses_nothing() {
    let mut r = Replicas::start(2).await;
    let users: Vec<Value> = (0..30)
        .map(|i| {
            okta_user(
                &format!("restart{i:02}@example.com"),
                "R",
                &format!("N{i}"),
                &format!("00u-restart-{i}"),
            )
        })
        .collect();
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut unavailable = 0usize;
    let mut pending: Vec<Value> = Vec::new();
    for (k, user) in users.iter().enumerate() {
        if k == 10 {
            r.cluster.stop();
        }
        if k == 20 {
            r.cluster.resume();
        }
        let base = r.base(k);
        let (status, answer) = try_call(&base, Method::POST, "/Users", TOKEN, Some(user.clone()))
            .await
            .unwrap();
        match status {
            201 => {
                ids.insert(
                    answer["userName"].as_str().unwrap().to_owned(),
                    answer["id"].as_str().unwrap().to_owned(),
                );
            }
            503 => {
                assert_eq!(answer["status"], "503", "a SCIM error: {answer}");
                unavailable += 1;
                pending.push(user.clone());
            }
            other => panic!("create {k} answered {other}: {answer}"),
        }
    }
    assert!(
        unavailable >= 10,
        "the creates sent while the database was down were answered 503 ({unavailable})"
    );
    // Okta retries each 503 (after its Retry-After) until it is answered.
    for user in pending {
        let name = user["userName"].as_str().unwrap().to_owned();
        let id = wait_for_every(
            &format!("the retried create of {name}"),
            Duration::from_millis(100),
            async || {
                let i = r.next.fetch_add(1, Ordering::Relaxed);
                let (status, answer) = try_call(
                    &r.base(i),
                    Method::POST,
                    "/Users",
                    TOKEN,
                    Some(user.clone()),
                )
                .await
                .ok()?;
                assert!(status == 201 || status == 503, "{status}: {answer}");
                (status == 201).then(|| answer["id"].as_str().unwrap().to_owned())
            },
        )
        .await;
        ids.insert(name, id);
    }
    assert_eq!(ids.len(), 30);
    let accounts = r.sim.users(CUSTOMER);
    assert_eq!(accounts.len(), 30, "no account lost, none duplicated");
    assert_no_drift(&r.reconcile().await, 30);
    // Every id the sidecar answered reads back, through either replica.
    for (k, id) in ids.values().enumerate() {
        let (status, _) = r.on(k, Method::GET, &format!("/Users/{id}"), None).await;
        assert_eq!(status, 200);
    }
    // The provisioning log kept what happened while the database was down (the 503s) and
    // after: 30 creates answered 201, and the refused ones, from both replicas.
    let admin = r.served[0].admin.clone();
    wait_for_every(
        "every create in the shared log",
        Duration::from_millis(50),
        async || {
            let log = admin_json(&format!("{admin}/admin/log?limit=1000")).await;
            let entries = log["entries"].as_array()?;
            let created = entries
                .iter()
                .filter(|e| e["action"] == "create" && e["status"] == 201)
                .count();
            let refused = entries
                .iter()
                .filter(|e| e["action"] == "create" && e["status"] == 503)
                .count();
            (created == 30 && refused >= unavailable).then_some(())
        },
    )
    .await;
    r.stop().await;
}

/// The retry advice of an unavailable store: `Retry-After` on a 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_store_says_when_to_retry() {
    let mut r = Replicas::start(1).await;
    r.cluster.stop();
    let (status, headers, body) = send(
        Method::POST,
        &format!("{}/Users", r.base(0)),
        Some(TOKEN),
        Some(okta_user("late@example.com", "L", "A", "00u-late")),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    assert!(
        body.contains("unavailable"),
        "the detail says the state store is unavailable: {body}"
    );
    let ready = admin_json(&format!("{}/readyz", r.served[0].admin)).await;
    assert_eq!(ready["ready"], false, "{ready}");
    r.cluster.resume();
    let (status, _) = r
        .next(
            Method::POST,
            "/Users",
            Some(okta_user("late@example.com", "L", "A", "00u-late")),
        )
        .await;
    assert_eq!(status, 201);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_queues_then_answers_503() {
    let r = Replicas::start_with(1, "pool_size = 1\nacquire_timeout_secs = 1").await;
    let (status, user) = r
        .next(
            Method::POST,
            "/Users",
            Some(okta_user("pool@example.com", "P", "L", "00u-pool")),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let path = format!("/Users/{}", user["id"].as_str().unwrap());
    // Another session locks the table: the next request holds the pool's one connection,
    // waiting for the lock.
    let mut admin_session = r.cluster.connect(&r.db).await;
    let lock = admin_session.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE xref IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let holder = {
        let (base, path) = (r.base(0), path.clone());
        tokio::spawn(async move { call(&base, Method::GET, &path, TOKEN, None).await })
    };
    let watcher = r.cluster.connect(&r.db).await;
    crate::support::wait_until("a request waiting for the lock", async || {
        let row = watcher
            .query_one("SELECT count(*) FROM pg_locks WHERE NOT granted", &[])
            .await
            .unwrap();
        row.get::<_, i64>(0) > 0
    })
    .await;
    // A second request queues for a connection, then is told to come back.
    let (status, headers, body) = send(
        Method::GET,
        &format!("{}{path}", r.base(0)),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    // The lock goes: the first request, queued behind it, is answered.
    lock.rollback().await.unwrap();
    let (status, got) = holder.await.unwrap();
    assert_eq!(status, 200, "{got}");
    let metrics = admin_text(&format!("{}/metrics", r.served[0].admin)).await;
    assert!(
        metrics.contains("scim_sidecar_store_pool_connections{state=\"max\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("scim_sidecar_store_query_duration_seconds_count"),
        "{metrics}"
    );
    r.stop().await;
}

/// One request: its status, headers and body text. `token`: a SCIM request (with a body,
/// SCIM JSON); none: the admin listener.
async fn send(
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, http::HeaderMap, String) {
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let mut req = http::Request::builder().method(method).uri(url);
    if let Some(token) = token {
        req = req
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/scim+json");
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = req
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

pub(crate) async fn admin_text(url: &str) -> String {
    send(Method::GET, url, None, None).await.2
}

async fn admin_json(url: &str) -> Value {
    serde_json::from_str(&admin_text(url).await).unwrap()
}

async fn admin_log(admin: &str) -> Value {
    admin_json(&format!("{admin}/admin/log?limit=100")).await
}

/// Three replicas and one webhook endpoint: every event is delivered, each exactly once
/// between them (the outbox lease), one user's events in their order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_is_delivered_once_between_replicas() {
    let receiver = crate::events::Receiver::start().await;
    let (secret, _) = crate::events::secrets();
    let hook = crate::events::hook_table("acme", "crm", &receiver.url, &secret);
    let r = Replicas::start_full(3, "pool_size = 4", &hook).await;
    let mut ids = Vec::new();
    for n in 0..15 {
        let (status, created) = r
            .next(
                Method::POST,
                "/Users",
                Some(okta_user(
                    &format!("rep{n}@example.com"),
                    "R",
                    "P",
                    &format!("00uR{n}"),
                )),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        let (status, _) = r
            .next(
                Method::PATCH,
                &format!("/Users/{id}"),
                Some(
                    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "value": {"active": false}}]}),
                ),
            )
            .await;
        assert_eq!(status, 200);
        ids.push(id);
    }
    let acked = receiver.wait_acknowledged(30).await;
    for d in &acked {
        crate::events::check_signed(d, &secret);
    }
    let got = receiver.got();
    let unique: HashSet<&str> = got.iter().map(|d| d.id.as_str()).collect();
    assert_eq!((got.len(), unique.len()), (30, 30), "each event sent once");
    for id in &ids {
        let types: Vec<&str> = (acked.iter())
            .filter(|d| d.body["resource_id"] == id.as_str())
            .map(|d| d.body["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["user.created", "user.deactivated"], "{id}");
    }
    r.stop().await;
}
