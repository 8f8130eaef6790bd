//! Every failure becomes a clear SCIM error: client mistakes are 4xx naming SCIM attributes,
//! an unhappy legacy app is 429/502/503/504, and nothing internal leaks.

use std::time::Duration;

use http::Method;
use serde_json::json;
use simulator::marketing_center::{FailureKind, FailureRule, Knobs};

use crate::support::{Harness, TOKEN, okta_user, q};

fn assert_scim_error(a: &crate::support::Answer, status: u16, scim_type: Option<&str>) {
    assert_eq!(a.status, status, "{:?}", a.body);
    assert_eq!(a.headers["content-type"], "application/scim+json");
    assert_eq!(
        a.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(a.body["status"], status.to_string());
    assert_eq!(
        a.body.get("scimType").and_then(|t| t.as_str()),
        scim_type,
        "{:?}",
        a.body
    );
    let text = a.body.to_string();
    for leak in [
        "LogonName",
        "UserProfile",
        "ErrorCode",
        "VALIDATION_FAILED",
        "SELECT",
        "panicked",
    ] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
}

#[tokio::test]
async fn client_mistakes() {
    let h = Harness::start().await;
    let auth = format!("Bearer {TOKEN}");
    let json_ct = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/scim+json"),
    ];
    let a = h
        .raw(Method::POST, "/Users", &json_ct, Some("{not json".into()))
        .await;
    assert_scim_error(&a, 400, Some("invalidSyntax"));
    let a = h
        .raw(Method::POST, "/Users", &json_ct, Some("[1,2]".into()))
        .await;
    assert_scim_error(&a, 400, Some("invalidSyntax"));
    let dup = r#"{"userName": "a@example.com", "userName": "b@example.com"}"#;
    let a = h
        .raw(Method::POST, "/Users", &json_ct, Some(dup.into()))
        .await;
    assert_scim_error(&a, 400, Some("invalidSyntax"));
    assert!(
        a.body["detail"]
            .as_str()
            .unwrap()
            .contains("\"userName\" twice")
    );
    assert!(h.legacy_user("a@example.com").is_none() && h.legacy_user("b@example.com").is_none());
    let a = h
        .raw(
            Method::POST,
            "/Users",
            &[
                ("Authorization", auth.as_str()),
                ("Content-Type", "text/plain"),
            ],
            Some("{}".into()),
        )
        .await;
    assert_scim_error(&a, 415, None);
    let a = h
        .get(&format!("/Users?filter={}", q(r#"userName eq "x" and ("#)))
        .await;
    assert_scim_error(&a, 400, Some("invalidFilter"));
    assert!(
        a.body["detail"].as_str().unwrap().contains("position"),
        "{:?}",
        a.body
    );
    let a = h
        .get(&format!("/Users?filter={}", q(r#"active gt true"#)))
        .await;
    assert_scim_error(&a, 400, Some("invalidFilter"));
    let a = h.get("/Users?startIndex=abc").await;
    assert_scim_error(&a, 400, Some("invalidValue"));
    let a = h
        .post("/Users", json!({"name": {"givenName": "No user name"}}))
        .await;
    assert_scim_error(&a, 400, Some("invalidValue"));
    assert_eq!(a.body["detail"], "userName is required");
    let a = h
        .post(
            "/Users",
            json!({"schemas": ["urn:example:Nope"], "userName": "x"}),
        )
        .await;
    assert_scim_error(&a, 400, Some("invalidSyntax"));
    // Region: refused before any legacy call, naming the SCIM attribute.
    let before = h.sim().request_count();
    let mut body = okta_user("bav@example.com", "B", "V", "e1");
    body["addresses"] = json!([{"region": "Bavaria", "country": "DE"}]);
    let a = h.post("/Users", body).await;
    assert_scim_error(&a, 400, Some("invalidValue"));
    assert_eq!(
        a.body["detail"],
        "addresses[primary].region: \"Bavaria\" is not a US state or Canadian province"
    );
    assert_eq!(
        h.sim().request_count(),
        before,
        "checked before any legacy call"
    );
    // A length the mapping declares (the storefront's 100-character limit) is refused before
    // any legacy call, naming the SCIM attribute.
    let before = h.sim().request_count();
    let mut body = okta_user("long@example.com", "L", "T", "e2");
    body["title"] = json!("x".repeat(101));
    let a = h.post("/Users", body).await;
    assert_scim_error(&a, 400, Some("invalidValue"));
    assert_eq!(a.body["detail"], "title: is longer than 100 characters");
    assert_eq!(
        h.sim().request_count(),
        before,
        "checked before any legacy call"
    );
    // A value only the legacy app refuses (a 101-character street line): its 422 names the
    // SCIM attribute, never the legacy field.
    let mut body = okta_user("long@example.com", "L", "T", "e2");
    body["addresses"] = json!([{"streetAddress": format!("{}\nSuite 1", "x".repeat(101))}]);
    let a = h.post("/Users", body).await;
    assert_scim_error(&a, 400, Some("invalidValue"));
    assert!(
        a.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("addresses[primary].streetAddress: "),
        "{:?}",
        a.body
    );
    assert!(h.legacy_user("long@example.com").is_none());
    // PATCH mistakes.
    let id = h
        .post("/Users", okta_user("p@example.com", "P", "Q", "e3"))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let op = |o: serde_json::Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [o]});
    let a = h
        .patch(
            &format!("/Users/{id}"),
            op(json!({"op": "replace", "path": "emails[type eq", "value": "x"})),
        )
        .await;
    assert_scim_error(&a, 400, Some("invalidPath"));
    let a = h
        .patch(&format!("/Users/{id}"), op(json!({"op": "remove"})))
        .await;
    assert_scim_error(&a, 400, Some("noTarget"));
    let a = h
        .patch(
            &format!("/Users/{id}"),
            op(json!({"op": "replace", "path": "id", "value": "x"})),
        )
        .await;
    assert_scim_error(&a, 400, Some("mutability"));
    let a = h
        .patch(
            &format!("/Users/{id}"),
            op(json!({"op": "jump", "path": "title", "value": "x"})),
        )
        .await;
    assert_scim_error(&a, 400, Some("invalidSyntax"));
    let a = h
        .patch(
            &format!("/Users/{id}"),
            op(json!({"op": "remove", "path": "active"})),
        )
        .await;
    assert_scim_error(&a, 400, Some("mutability"));
    assert!(a.body["detail"].as_str().unwrap().contains("true or false"));
    let a = h
        .patch(&format!("/Users/{id}"), json!({"Operations": []}))
        .await;
    assert_scim_error(&a, 400, Some("invalidSyntax"));
    // A body over the limit (1 MiB in this harness) is 413; a header over hyper's buffer is
    // refused by the HTTP layer (431) and the server keeps serving.
    let big = format!("{{\"userName\": \"{}\"}}", "x".repeat(1024 * 1024 + 10));
    let a = h.raw(Method::POST, "/Users", &json_ct, Some(big)).await;
    assert_scim_error(&a, 413, None);
    let huge = "y".repeat(80 * 1024);
    let a = h
        .raw(
            Method::GET,
            "/Users",
            &[("Authorization", auth.as_str()), ("X-Huge", huge.as_str())],
            None,
        )
        .await;
    assert_eq!(a.status, 431);
    assert_eq!(h.get("/Users?count=1").await.status, 200);
    // Unknown endpoints and methods.
    assert_scim_error(&h.get("/Nope").await, 404, None);
    assert_scim_error(
        &h.send(Method::PUT, "/Schemas", Some(json!({}))).await,
        405,
        None,
    );
    assert_scim_error(&h.get("/Users/not-a-uuid").await, 404, None);
    h.stop().await;
}

#[tokio::test]
async fn legacy_rate_limit_and_maintenance_keep_retry_after() {
    let h = Harness::start().await;
    h.sim().set_knobs(Knobs {
        maintenance_retry_after: Some(120),
        ..Knobs::default()
    });
    let a = h.get("/Users").await;
    assert_scim_error(&a, 503, None);
    assert_eq!(a.headers["retry-after"], "120");
    h.sim().set_knobs(Knobs {
        rate_limit_per_second: Some(0),
        ..Knobs::default()
    });
    let a = h
        .post("/Users", okta_user("r@example.com", "R", "L", "e"))
        .await;
    assert_scim_error(&a, 429, None);
    assert_eq!(a.headers["retry-after"], "1");
    h.stop().await;
}

#[tokio::test]
async fn legacy_failures_are_502_and_timeouts_504() {
    let h = Harness::start().await;
    h.sim().inject_failure(FailureRule {
        method: None,
        path_contains: None,
        count: 1,
        kind: FailureKind::Status(500),
    });
    assert_scim_error(&h.get("/Users").await, 502, None);
    h.sim().inject_failure(FailureRule {
        method: None,
        path_contains: None,
        // Three: the GET is retried (it is idempotent) up to three attempts.
        count: 3,
        kind: FailureKind::DropBeforeCommit,
    });
    assert_scim_error(&h.get("/Users").await, 502, None);
    assert_eq!(h.get("/Users").await.status, 200, "recovers");
    h.sim().set_knobs(Knobs {
        latency: Duration::from_secs(8),
        ..Knobs::default()
    });
    assert_scim_error(&h.get("/Users").await, 504, None);
    h.stop().await;
}

/// The SCIM schema's types hold before any mapping rule or legacy call: a userName that is
/// an object, a title that is a number, are refused and nothing is sent.
#[tokio::test]
async fn values_of_the_wrong_scim_type_never_reach_the_legacy_app() {
    let h = Harness::start().await;
    h.clear_legacy_requests();
    for (body, attribute) in [
        (
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                   "userName": {"login": "x@example.com"}}),
            "userName: must be a string, not an object",
        ),
        (
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                   "userName": "typed@example.com", "title": 7}),
            "title: must be a string, not a number",
        ),
    ] {
        let a = h.post("/Users", body).await;
        assert_scim_error(&a, 400, Some("invalidValue"));
        assert_eq!(a.body["detail"], attribute, "{:?}", a.body);
    }
    assert!(
        h.legacy_requests().iter().all(|(m, _)| *m == Method::GET),
        "no write was sent: {:?}",
        h.legacy_requests()
    );
    h.stop().await;
}
