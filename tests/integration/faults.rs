//! Talking to a struggling legacy app: idempotent calls are retried, others never; the
//! legacy app's retry hints are honoured; a failing legacy app opens the circuit and the
//! sidecar answers 503 with Retry-After at once instead of piling up calls.

use http::Method;
use scim_sidecar::simulator::marketing_center::{FailureKind, FailureRule};

use crate::support::{Harness, okta_user};

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

/// A create whose answer was lost after the legacy app committed it: Okta's retry adopts the
/// account (same externalId) instead of duplicating it or failing.
#[tokio::test]
async fn a_lost_create_answer_is_adopted_on_retry() {
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
    assert_eq!(a.status, 502, "{:?}", a.body);
    assert_eq!(
        h.legacy_count("lost@example.com"),
        1,
        "the legacy app did create it"
    );
    let a = h
        .post(
            "/Users",
            okta_user("lost@example.com", "Lo", "St", "00u1lost"),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_eq!(h.legacy_count("lost@example.com"), 1);
    let listed = h
        .get("/Users?filter=userName%20eq%20%22lost@example.com%22")
        .await;
    assert_eq!(listed.body["totalResults"], 1);
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
    h.stop().await;
}
