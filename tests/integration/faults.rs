//! Talking to a struggling legacy app: idempotent calls are retried, others never; the
//! legacy app's retry hints are honoured; a failing legacy app opens the circuit and the
//! sidecar answers 503 with Retry-After at once instead of piling up calls.

use http::Method;
use simulator::marketing_center::{FailureKind, FailureRule};

use crate::support::{Harness, okta_user, wait_for_every};

fn rule(method: Option<Method>, path: &str, count: u32, kind: FailureKind) -> FailureRule {
    FailureRule {
        method,
        path_contains: Some(path.to_owned()),
        count,
        kind,
    }
}

fn calls(h: &Harness, method: &Method, path: &str) -> usize {
    h.sim()
        .requests()
        .iter()
        .filter(|(m, p)| m == method && p.contains(path))
        .count()
}

#[tokio::test]
async fn idempotent_calls_are_retried() {
    let h = Harness::start().await;
    let id = h
        .post(
            "/Users",
            okta_user("retry@example.com", "Re", "Try", "00u1re"),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A GET after a 503 and after a dropped connection.
    h.sim().clear_requests();
    h.sim().inject_failure(rule(
        Some(Method::GET),
        "/users/",
        1,
        FailureKind::Status(503),
    ));
    h.sim().inject_failure(rule(
        Some(Method::GET),
        "/users/",
        1,
        FailureKind::DropBeforeCommit,
    ));
    let a = h.get(&format!("/Users/{id}")).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(
        calls(&h, &Method::GET, "/users/"),
        3,
        "two failures, then the answer"
    );
    // The archive call is declared idempotent in the mapping: retried after a 429.
    h.sim().clear_requests();
    h.sim().inject_failure(rule(
        Some(Method::POST),
        "/archive",
        1,
        FailureKind::Status(429),
    ));
    let off = serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": false}}]});
    let a = h.patch(&format!("/Users/{id}"), off).await;
    assert_eq!(
        (a.status.as_u16(), a.body["active"].clone()),
        (200, serde_json::json!(false)),
        "{:?}",
        a.body
    );
    assert_eq!(calls(&h, &Method::POST, "/archive"), 2);
    assert_eq!(
        h.legacy_user("retry@example.com").unwrap()["IsArchived"],
        true
    );
    // The metrics say the same: two retries of the GET, one of the archive, after a 429.
    let retries = |call: &str| {
        format!("scim_sidecar_legacy_retries_total{{tenant=\"acme\",call=\"{call}\"}}")
    };
    assert_eq!(h.metric(&retries("users.get")).await, 2.0);
    assert_eq!(h.metric(&retries("users.deactivate")).await, 1.0);
    assert_eq!(
        h.metric("scim_sidecar_rate_limited_total{tenant=\"acme\",source=\"legacy\"}")
            .await,
        1.0
    );
    h.stop().await;
}

#[tokio::test]
async fn creates_are_never_repeated() {
    let h = Harness::start().await;
    h.sim().clear_requests();
    h.sim().inject_failure(rule(
        Some(Method::POST),
        "/users",
        1,
        FailureKind::Status(503),
    ));
    let a = h
        .post(
            "/Users",
            okta_user("once@example.com", "On", "Ce", "00u1on"),
        )
        .await;
    assert_eq!(a.status, 503, "{:?}", a.body);
    assert!(a.headers.contains_key("retry-after"));
    assert_eq!(
        calls(&h, &Method::POST, "/users"),
        1,
        "a create is not idempotent: one call"
    );
    assert!(h.legacy_user("once@example.com").is_none());
    // Okta retries later: exactly one account.
    let a = h
        .post(
            "/Users",
            okta_user("once@example.com", "On", "Ce", "00u1on"),
        )
        .await;
    assert_eq!(a.status, 201);
    assert_eq!(h.legacy_count("once@example.com"), 1);
    h.stop().await;
}

/// A create whose answer was lost after the legacy app committed it is looked for and
/// answered 201 at once — with or without an externalId — instead of a 502 that leaves the
/// identity provider to retry into a conflict. A retry anyway is adopted, never duplicated;
/// a create lost before the app did anything is still a 502, and nothing is created.
#[tokio::test]
async fn a_lost_create_answer_is_found_before_answering() {
    let h = Harness::start().await;
    h.sim().inject_failure(rule(
        Some(Method::POST),
        "/users",
        1,
        FailureKind::DropAfterCommit,
    ));
    let a = h
        .post(
            "/Users",
            okta_user("lost@example.com", "Lo", "St", "00u1lost"),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_eq!(a.body["userName"], "lost@example.com");
    assert_eq!(h.legacy_count("lost@example.com"), 1);
    let again = h
        .post(
            "/Users",
            okta_user("lost@example.com", "Lo", "St", "00u1lost"),
        )
        .await;
    assert_eq!(again.status, 201, "a retry is adopted: {:?}", again.body);
    assert_eq!(again.body["id"], a.body["id"]);
    assert_eq!(h.legacy_count("lost@example.com"), 1);
    let listed = h
        .get("/Users?filter=userName%20eq%20%22lost@example.com%22")
        .await;
    assert_eq!(listed.body["totalResults"], 1);

    // Without an externalId (Okta's variant, the SPEC test's body): found all the same.
    h.sim().inject_failure(rule(
        Some(Method::POST),
        "/users",
        1,
        FailureKind::DropAfterCommit,
    ));
    let mut bare = okta_user("bare@example.com", "Ba", "Re", "unused");
    bare.as_object_mut().unwrap().remove("externalId");
    let a = h.post("/Users", bare).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_eq!(h.legacy_count("bare@example.com"), 1);

    // Lost before the app did anything: nothing to find, the failure is told.
    h.sim().inject_failure(rule(
        Some(Method::POST),
        "/users",
        1,
        FailureKind::DropBeforeCommit,
    ));
    let a = h
        .post(
            "/Users",
            okta_user("never@example.com", "Ne", "Ver", "00u1never"),
        )
        .await;
    assert_eq!(a.status, 502, "{:?}", a.body);
    assert_eq!(h.legacy_count("never@example.com"), 0);
    h.stop().await;
}

/// A legacy app that keeps failing opens the circuit: the sidecar answers 503 with
/// Retry-After without calling it, until the cooldown is over.
#[tokio::test]
async fn a_failing_legacy_app_opens_the_circuit() {
    let h = Harness::start().await;
    h.sim()
        .inject_failure(rule(None, "/users", 1000, FailureKind::Status(500)));
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(h.get("/Users").await.status.as_u16());
    }
    assert!(statuses.iter().take(8).all(|s| *s == 502), "{statuses:?}");
    assert!(
        statuses.iter().skip(8).all(|s| *s == 503),
        "the circuit opened: {statuses:?}"
    );
    let before = h.sim().request_count();
    let a = h.get("/Users").await;
    assert_eq!(a.status, 503);
    assert!(
        a.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(
        h.sim().request_count(),
        before,
        "no call while the circuit is open"
    );
    // The metrics show the open circuit and the calls it refused.
    assert_eq!(
        h.metric("scim_sidecar_legacy_circuit_open{tenant=\"acme\"}")
            .await,
        1.0
    );
    let refused = "scim_sidecar_legacy_calls_total{tenant=\"acme\",call=\"users.list\",\
                   status=\"circuit_open\"}";
    assert_eq!(h.metric(refused).await, 5.0);
    h.stop().await;
}

/// Sends like Okta: answers 429 / 502 / 503 / 504 are retried, 100 ms apart, until the
/// expected status comes (bounded by the harness's wait limit).
async fn okta(
    h: &Harness,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
    want: u16,
) -> serde_json::Value {
    let retry = std::time::Duration::from_millis(100);
    wait_for_every(
        &format!("{method} {path} to answer {want}"),
        retry,
        async || {
            let a = h.send(method.clone(), path, body.clone()).await;
            if a.status == want {
                return Some(a.body);
            }
            assert!(
                matches!(a.status.as_u16(), 429 | 502..=504),
                "{method} {path}: {} {:?}",
                a.status,
                a.body
            );
            None
        },
    )
    .await
}

/// The Okta flows through every kind of legacy fault: injected 429s and 503s, answers
/// dropped after the legacy app committed, added latency, and legacy restarts. The final
/// legacy state and the cross-reference are exactly right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_flows_through_faults() {
    use crate::support::CUSTOMER;
    use serde_json::json;
    use simulator::marketing_center::Knobs;
    let mut h = Harness::start_with(|sim| sim.add_group(CUSTOMER, "G-F", "Faulty")).await;
    let mut seed = 0x00c0_ffee_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut faults = [0usize; 6];
    for i in 0..24usize {
        let name = format!("fault{i:02}@example.com");
        let mut id = String::new();
        for step in 0..5 {
            let fault = (next() % 6) as usize;
            faults[fault] += 1;
            match fault {
                1 => h.sim().inject_failure(FailureRule {
                    method: None,
                    path_contains: None,
                    count: 1,
                    kind: FailureKind::Status(429),
                }),
                2 => h.sim().inject_failure(FailureRule {
                    method: None,
                    path_contains: None,
                    count: 1,
                    kind: FailureKind::Status(503),
                }),
                3 => h.sim().inject_failure(FailureRule {
                    method: None,
                    path_contains: None,
                    count: 1,
                    kind: FailureKind::DropAfterCommit,
                }),
                4 => h.sim().set_knobs(Knobs {
                    latency: std::time::Duration::from_millis(30),
                    ..Knobs::default()
                }),
                5 => h.restart_legacy().await,
                _ => {}
            }
            let patch = |v: serde_json::Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [v]});
            match step {
                0 => {
                    let body = okta(
                        &h,
                        Method::POST,
                        "/Users",
                        Some(okta_user(
                            &name,
                            "F",
                            &format!("U{i}"),
                            &format!("00u-f-{i}"),
                        )),
                        201,
                    )
                    .await;
                    id = body["id"].as_str().unwrap().to_owned();
                }
                1 => {
                    okta(&h, Method::GET, &format!("/Users/{id}"), None, 200).await;
                }
                2 => {
                    okta(
                        &h,
                        Method::PATCH,
                        &format!("/Users/{id}"),
                        Some(patch(
                            json!({"op": "replace", "value": {"title": format!("T{i}")}}),
                        )),
                        200,
                    )
                    .await;
                }
                3 => {
                    okta(
                        &h,
                        Method::PATCH,
                        "/Groups/G-F",
                        Some(patch(
                            json!({"op": "add", "path": "members", "value": [{"value": id}]}),
                        )),
                        204,
                    )
                    .await;
                }
                _ => {
                    let active = i % 2 == 1;
                    okta(
                        &h,
                        Method::PATCH,
                        &format!("/Users/{id}"),
                        Some(patch(json!({"op": "replace", "value": {"active": active}}))),
                        200,
                    )
                    .await;
                }
            }
            h.sim().set_knobs(Knobs::default());
        }
    }
    assert!(
        faults.iter().all(|n| *n > 0),
        "every kind of fault happened: {faults:?}"
    );
    // The legacy state is exact.
    let users = h.sim().users(CUSTOMER);
    assert_eq!(users.len(), 24, "no user lost or duplicated");
    let mut odd = std::collections::HashSet::new();
    for u in &users {
        let n: usize = u["LogonName"]
            .as_str()
            .unwrap()
            .trim_start_matches("fault")
            .trim_end_matches("@example.com")
            .parse()
            .unwrap();
        assert_eq!(u["UserProfileTitle"], format!("T{n}"));
        assert_eq!(u["ExternalIdentityProviderID"], format!("00u-f-{n}"));
        assert_eq!(u["IsArchived"], json!(n % 2 == 0));
        if n % 2 == 1 {
            odd.insert(u["UserID"].as_u64().unwrap());
        }
    }
    let members: std::collections::HashSet<u64> =
        h.sim().group_members(CUSTOMER, "G-F").into_iter().collect();
    assert_eq!(members, odd);
    // And the cross-reference agrees: zero drift.
    let dir = tempfile::tempdir().unwrap();
    let (ok, report) = crate::reconcile::run(&h, dir.path(), false).await;
    assert!(ok, "{report}");
    assert_eq!(report["xref_rows"], 24);
    println!(
        "fault suite: faults by kind (none, 429, 503, dropped after commit, latency, restart) = {faults:?}"
    );
    h.stop().await;
}

/// Concurrent creates of the same user (Okta retrying, or two workers racing) end with exactly
/// one legacy user and one xref row; a different person with the same userName gets 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_make_one_account() {
    use crate::support::CUSTOMER;
    let h = std::sync::Arc::new(Harness::start().await);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let h = std::sync::Arc::clone(&h);
        tasks.push(tokio::spawn(async move {
            h.post(
                "/Users",
                okta_user("race@example.com", "Ra", "Ce", "00u1race"),
            )
            .await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let a = t.await.unwrap();
        assert_eq!(a.status, 201, "{:?}", a.body);
        ids.insert(a.body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "one SCIM id");
    assert_eq!(h.legacy_count("race@example.com"), 1, "one legacy user");
    let tenant = mapping::ids::TenantId::new("acme");
    let rows = h
        .xref
        .get_by_user_name(&tenant, "User", "race@example.com")
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one xref row");
    let other = h
        .post(
            "/Users",
            okta_user("race@example.com", "Other", "Person", "00u1other"),
        )
        .await;
    assert_eq!(other.status, 409);
    assert_eq!(
        h.sim()
            .users(CUSTOMER)
            .iter()
            .filter(|u| u["LogonName"] == "race@example.com")
            .count(),
        1
    );
    std::sync::Arc::try_unwrap(h).ok().unwrap().stop().await;
}
