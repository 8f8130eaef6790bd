//! The admin listener over real sockets: metrics that move by exactly the requests made,
//! the provisioning log (JSON and page), readiness, and the request id sent to the legacy app.

use std::collections::BTreeMap;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Harness, TOKEN, wait_until};

/// Every sample line of an OpenMetrics text: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse::<f64>().unwrap())
        })
        .collect()
}

/// What moved between two scrapes (series that appeared count from zero).
fn moved(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d != 0.0).then(|| (k.clone(), d))
        })
        .collect()
}

async fn scrape(h: &Harness) -> BTreeMap<String, f64> {
    let (status, ctype, body) = h.admin_get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    samples(&body)
}

fn new_user(login: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": login,
        "externalId": format!("00u-{login}"),
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": login, "primary": true, "type": "work"}],
        "active": true
    })
}

fn deactivate(active: bool) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": active}}]
    })
}

fn scim_series(tenant: &str, resource: &str, operation: &str, status: u16) -> String {
    format!(
        "scim_sidecar_scim_requests_total{{tenant=\"{tenant}\",resource=\"{resource}\",\
         operation=\"{operation}\",status=\"{status}\"}}"
    )
}

/// The Done-when line: after an Okta flow, the counters moved by exactly the requests made.
#[tokio::test]
async fn metrics_move_by_exactly_the_requests_made() {
    let h = Harness::start().await;
    let before = scrape(&h).await;
    h.clear_legacy_requests();

    // Okta's user lifecycle, a group push, an unauthenticated call and a refused create.
    let login = "ada.metrics@example.com";
    let filter = format!("/Users?filter=userName%20eq%20%22{login}%22&startIndex=1&count=100");
    assert_eq!(h.get(&filter).await.status, StatusCode::OK);
    let created = h.post("/Users", new_user(login)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(h.get(&format!("/Users/{id}")).await.status, StatusCode::OK);
    let mut replaced = new_user(login);
    replaced["name"]["givenName"] = json!("Augusta");
    assert_eq!(
        h.put(&format!("/Users/{id}"), replaced).await.status,
        StatusCode::OK
    );
    for active in [false, true] {
        let r = h.patch(&format!("/Users/{id}"), deactivate(active)).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    let groups = h
        .get("/Groups?filter=displayName%20eq%20%22Sales%20Ops%22")
        .await;
    assert_eq!(groups.status, StatusCode::OK);
    let gid = groups.body["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let add = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": id}]}]
    });
    assert_eq!(
        h.patch(&format!("/Groups/{gid}"), add).await.status,
        StatusCode::NO_CONTENT
    );
    let anonymous = h.raw(Method::GET, "/Users", &[], None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let mut taken = new_user(login);
    taken["externalId"] = json!("00u-someone-else");
    let refused = h.post("/Users", taken).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.body);

    let after = scrape(&h).await;
    let delta = moved(&before, &after);
    let requests: BTreeMap<String, f64> = delta
        .iter()
        .filter(|(k, _)| k.starts_with("scim_sidecar_scim_requests_total"))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let expected: BTreeMap<String, f64> = [
        (scim_series("acme", "User", "list", 200), 1.0),
        (scim_series("acme", "User", "create", 201), 1.0),
        (scim_series("acme", "User", "get", 200), 1.0),
        (scim_series("acme", "User", "replace", 200), 1.0),
        (scim_series("acme", "User", "patch", 200), 2.0),
        (scim_series("acme", "Group", "list", 200), 1.0),
        (scim_series("acme", "Group", "patch", 204), 1.0),
        (scim_series("none", "User", "list", 401), 1.0),
        (scim_series("acme", "User", "create", 409), 1.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(requests, expected);
    let timed: f64 = delta
        .iter()
        .filter(|(k, _)| k.starts_with("scim_sidecar_scim_request_duration_seconds_count"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(timed, 10.0);

    // Legacy calls: exactly the requests the simulator saw, and each timed once.
    let seen = h.legacy_requests();
    let counted: f64 = delta
        .iter()
        .filter(|(k, _)| k.starts_with("scim_sidecar_legacy_calls_total"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(counted as usize, seen.len(), "{delta:#?}\n{seen:#?}");
    let timed_legacy: f64 = delta
        .iter()
        .filter(|(k, _)| k.starts_with("scim_sidecar_legacy_call_duration_seconds_count"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(timed_legacy as usize, seen.len());
    let by_call = |call: &str| -> f64 {
        delta
            .iter()
            .filter(|(k, _)| {
                k.starts_with("scim_sidecar_legacy_calls_total")
                    && k.contains(&format!("call=\"{call}\""))
            })
            .map(|(_, v)| v)
            .sum()
    };
    let sim_count = |method: &Method, suffix: &str| {
        seen.iter()
            .filter(|(m, p)| m == method && p.split('?').next().unwrap().ends_with(suffix))
            .count() as f64
    };
    assert_eq!(
        by_call("users.deactivate"),
        sim_count(&Method::POST, "/archive")
    );
    assert_eq!(
        by_call("users.reactivate"),
        sim_count(&Method::POST, "/restore")
    );
    assert_eq!(by_call("users.deactivate"), 1.0);
    assert_eq!(by_call("groups.add_member"), 1.0);
    assert_eq!(by_call("users.create"), 2.0, "one created, one refused");

    // Nothing else moved: no retry, no reload, no rate limit, no open circuit.
    for prefix in [
        "scim_sidecar_legacy_retries",
        "scim_sidecar_mapping_reloads",
        "scim_sidecar_rate_limited",
        "scim_sidecar_legacy_circuit_open",
    ] {
        assert!(
            !delta.keys().any(|k| k.starts_with(prefix)),
            "{prefix} moved: {delta:#?}"
        );
    }
    // xref rows are read at scrape time and agree with the store.
    let (live, dead) = h
        .xref
        .counts(&mapping::ids::TenantId::new("acme"), "User")
        .await
        .unwrap();
    assert_eq!(
        after["scim_sidecar_xref_rows{tenant=\"acme\",resource=\"User\",state=\"live\"}"],
        live as f64
    );
    assert_eq!(
        after["scim_sidecar_xref_rows{tenant=\"acme\",resource=\"User\",state=\"tombstoned\"}"],
        dead as f64
    );
    // Writes were logged: create, replace, deactivate, reactivate, membership, refused create.
    assert_eq!(
        after["scim_sidecar_provisioning_log_entries_total{outcome=\"written\"}"]
            - before
                .get("scim_sidecar_provisioning_log_entries_total{outcome=\"written\"}")
                .copied()
                .unwrap_or(0.0),
        6.0
    );
    h.stop().await;
}

/// Every write lands in the provisioning log with its outcome; reads do not.
#[tokio::test]
async fn provisioning_log_records_each_write_and_its_scim_error() {
    let h = Harness::start().await;
    let login = "grace.log@example.com";
    let created = h.post("/Users", new_user(login)).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    h.get(&format!("/Users/{id}")).await;
    h.patch(&format!("/Users/{id}"), deactivate(false)).await;
    h.patch(&format!("/Users/{id}"), deactivate(true)).await;
    // The same userName for another Okta user: refused with 409 uniqueness.
    let mut taken = new_user(login);
    taken["externalId"] = json!("00u-another-person");
    let refused = h.post("/Users", taken).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.body);
    let detail = refused.body["detail"].as_str().unwrap().to_owned();
    h.delete(&format!("/Users/{id}")).await;

    let (status, ctype, body) = h.admin_get("/admin/log").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ctype, "application/json");
    let entries: Value = serde_json::from_str(&body).unwrap();
    let entries = entries["entries"].as_array().unwrap();
    let actions: Vec<(&str, bool)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["failed"].as_bool().unwrap(),
            )
        })
        .collect();
    // Newest first.
    assert_eq!(
        actions,
        [
            ("delete", false),
            ("create", true),
            ("reactivate", false),
            ("deactivate", false),
            ("create", false)
        ]
    );
    let ok = &entries[4];
    assert_eq!(ok["scimId"], id.as_str());
    assert_eq!(ok["subject"], login);
    assert_eq!(ok["status"], 201);
    assert!(ok["legacyCalls"].as_u64().unwrap() >= 1);
    assert!(ok["requestId"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(entries[3]["subject"], login);
    let failed = &entries[1];
    assert_eq!(failed["subject"], login);
    assert_eq!(failed["status"], 409);
    assert_eq!(failed["detail"], detail.as_str());
    assert_eq!(failed["scimType"], refused.body["scimType"]);

    let (_, _, only_failed) = h.admin_get("/admin/log?failed=true").await;
    let only_failed: Value = serde_json::from_str(&only_failed).unwrap();
    assert_eq!(only_failed["entries"].as_array().unwrap().len(), 1);
    let (_, _, searched) = h.admin_get("/admin/log?q=GRACE.LOG&limit=2").await;
    let searched: Value = serde_json::from_str(&searched).unwrap();
    assert_eq!(searched["entries"].as_array().unwrap().len(), 2);
    let (bad_status, _, bad_body) = h.admin_get("/admin/log?since=someday").await;
    assert_eq!(bad_status, StatusCode::BAD_REQUEST);
    assert!(bad_body.contains("24h"), "{bad_body}");
    h.stop().await;
}

/// `/admin/` needs the admin token (a browser's Basic prompt works); probes and metrics do not.
#[tokio::test]
async fn admin_pages_need_the_token_and_probes_do_not() {
    let h = Harness::start().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let get = |path: &str, auth: Option<String>| {
        let mut req = http::Request::get(format!("{}{path}", h.admin));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        client.request(req.body(Default::default()).unwrap())
    };
    for path in ["/admin/", "/admin/log"] {
        let r = get(path, None).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
        let wrong = get(path, Some("Bearer nope".into())).await.unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("admin:{}", crate::support::ADMIN_TOKEN));
    let page = get("/admin/", Some(format!("Basic {basic}")))
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    for open in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            get(open, None).await.unwrap().status(),
            StatusCode::OK,
            "{open}"
        );
    }
    let post = client
        .request(
            http::Request::post(format!("{}/healthz", h.admin))
                .body(Default::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        get("/nope", None).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    h.stop().await;
}

/// Readiness follows the legacy app, the xref and the drain.
#[tokio::test]
async fn readiness_follows_the_legacy_app_the_xref_and_the_drain() {
    let mut h = Harness::start().await;
    let (status, _, body) = h.admin_get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["ready"], true);
    assert_eq!(report["tenants"]["acme"]["legacy"]["ok"], true);
    assert_eq!(report["xref"]["detail"], "writable");

    // The legacy app goes away: the probe gets no answer (the harness's window is zero, so
    // every check probes).
    h.stop_legacy().await;
    let (status, _, body) = h.admin_get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["tenants"]["acme"]["legacy"]["ok"], false);
    assert!(
        report["tenants"]["acme"]["legacy"]["detail"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{body}"
    );
    h.restart_legacy().await;
    let (status, _, body) = h.admin_get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Draining (SIGTERM received): 503 while in-flight requests finish.
    h.sidecar()
        .state()
        .draining
        .store(true, std::sync::atomic::Ordering::Release);
    let (status, _, body) = h.admin_get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("\"draining\":true"), "{body}");
    h.sidecar()
        .state()
        .draining
        .store(false, std::sync::atomic::Ordering::Release);

    // The xref cannot be written: 503, named.
    h.xref.close().await.unwrap();
    let (status, _, body) = h.admin_get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["xref"]["ok"], false, "{body}");
    // Liveness is the process alone.
    assert_eq!(h.admin_get("/healthz").await.0, StatusCode::OK);
}

/// The SCIM request's id reaches the legacy app as `X-Request-Id` on every call it makes.
#[tokio::test]
async fn the_request_id_is_sent_to_the_legacy_app() {
    let h = Harness::start().await;
    h.clear_legacy_requests();
    let r = h
        .raw(
            Method::POST,
            "/Users",
            &[
                ("authorization", &format!("Bearer {TOKEN}")),
                ("content-type", "application/scim+json"),
                ("x-request-id", "okta-req-7f3a"),
            ],
            Some(new_user("req.id@example.com").to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.headers["x-request-id"], "okta-req-7f3a");
    let ids = h.sim().request_ids();
    assert!(!ids.is_empty());
    assert!(
        ids.iter().all(|i| i.as_deref() == Some("okta-req-7f3a")),
        "{ids:?}"
    );
    // Without one from the client, the sidecar makes one and still sends it.
    h.clear_legacy_requests();
    let r = h.get("/Users?count=1").await;
    let made = r.headers["x-request-id"].to_str().unwrap().to_owned();
    assert!(!made.is_empty());
    assert!(
        h.sim()
            .request_ids()
            .iter()
            .all(|i| i.as_deref() == Some(made.as_str()))
    );
    h.stop().await;
}

/// A request refused inside authentication (415) still carries its tenant into the metrics
/// and the provisioning log.
#[tokio::test]
async fn a_refused_write_is_counted_and_logged_under_its_tenant() {
    let h = Harness::start().await;
    let r = h
        .raw(
            Method::POST,
            "/Users",
            &[
                ("authorization", &format!("Bearer {TOKEN}")),
                ("content-type", "text/plain"),
            ],
            Some("userName=x".into()),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        h.metric(&scim_series("acme", "User", "create", 415)).await,
        1.0
    );
    let (_, _, body) = h.admin_get("/admin/log?failed=true").await;
    let entries: Value = serde_json::from_str(&body).unwrap();
    let entry = &entries["entries"][0];
    assert_eq!(entry["tenant"], "acme");
    assert_eq!(entry["status"], 415);
    assert_eq!(entry["action"], "create");
    assert_eq!(entry["detail"], r.body["detail"]);
    h.stop().await;
}

/// A write still running when the grace period is over: its connection is closed, and the
/// provisioning log records it as dropped (499) before the files close.
#[tokio::test]
async fn a_write_cut_off_by_shutdown_is_recorded_as_dropped() {
    use simulator::marketing_center::Knobs;
    let h = Harness::start_with_grace(std::time::Duration::from_millis(200)).await;
    h.sim().set_knobs(Knobs {
        latency: std::time::Duration::from_secs(3),
        ..Knobs::default()
    });
    let before = h.sim().request_count();
    let url = format!("{}/Users", h.base);
    let body = new_user("cut.off@example.com").to_string();
    let client = tokio::spawn(async move {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<bytes::Bytes>>();
        let req = http::Request::post(url)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/scim+json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        client.request(req).await.map(|r| r.status())
    });
    // Wait until the create has reached the legacy app (a deadline, not a sleep).
    wait_until("the create to reach the legacy app", async || {
        h.sim().request_count() != before
    })
    .await;
    let dir = h.stop_keeping_files().await;
    let answer = client.await.unwrap();
    assert!(answer.is_err(), "the client got an answer: {answer:?}");
    let entries = scim_sidecar::provisioning::read(
        &dir.path()
            .join("data")
            .join(scim_sidecar::provisioning::FILE_NAME),
        &scim_sidecar::provisioning::Query {
            limit: 10,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(
        (e.action.as_str(), e.status, e.failed),
        ("create", 499, true)
    );
    assert_eq!(e.subject.as_deref(), Some("cut.off@example.com"));
    assert!(
        e.detail.as_deref().unwrap().contains("no answer was sent"),
        "{e:?}"
    );
    assert_eq!(e.legacy_calls, 1);
}
