//! Bearer-token authentication (HTTP Basic: `basic_auth.rs`).

use http::Method;

use crate::support::{Harness, TOKEN, TOKEN_2};

#[tokio::test]
async fn every_bad_credential_is_401_with_a_scim_body() {
    let h = Harness::start().await;
    let wrong_case = format!("Bearer {}", TOKEN.to_uppercase());
    let raw_wrong_case = TOKEN.to_uppercase();
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("Authorization", raw_wrong_case.as_str())],
        vec![("Authorization", wrong_case.as_str())],
        vec![("Authorization", "Bearer nope")],
        vec![("Authorization", "Basic dXNlcjpwdw==")],
        vec![("Authorization", "non-token")],
    ];
    for headers in cases {
        for (method, path) in [
            (Method::GET, "/Users"),
            (Method::GET, "/Schemas"),
            (Method::DELETE, "/Users/x"),
        ] {
            let a = h.raw(method.clone(), path, &headers, None).await;
            assert_eq!(a.status, 401, "{method} {path} {headers:?}");
            assert_eq!(a.headers["www-authenticate"], "Bearer");
            assert_eq!(
                a.body["schemas"][0],
                "urn:ietf:params:scim:api:messages:2.0:Error"
            );
            assert_eq!(a.body["status"], "401");
            assert!(!a.body.to_string().contains(TOKEN));
        }
    }
    assert_eq!(
        h.sim().request_count(),
        0,
        "no legacy call without authentication"
    );
    h.stop().await;
}

/// Both forms work for both tokens of a rotation: `Bearer <token>`, and the token alone, as
/// Okta's "HTTP Header" mode sends what its admin typed.
#[tokio::test]
async fn rotated_tokens_both_work_with_or_without_the_scheme() {
    let h = Harness::start().await;
    for auth in [
        format!("Bearer {TOKEN}"),
        format!("Bearer {TOKEN_2}"),
        TOKEN.to_owned(),
        TOKEN_2.to_owned(),
    ] {
        let a = h
            .raw(
                Method::GET,
                "/Users?count=1",
                &[("Authorization", auth.as_str())],
                None,
            )
            .await;
        assert_eq!(a.status, 200);
    }
    h.stop().await;
}

/// A tenant's token never reaches another tenant's users or groups: every id of tenant A is
/// `404` to tenant B on every endpoint and method, and B's lists and searches never show it.
#[tokio::test]
async fn tenants_are_isolated() {
    use crate::support::{TOKEN_OTHER, okta_user, q};
    use serde_json::json;
    let h = Harness::start().await;
    let user = h
        .post("/Users", okta_user("iso@example.com", "I", "So", "00u1iso"))
        .await
        .body;
    let uid = user["id"].as_str().unwrap().to_owned();
    let gid = h
        .get(&format!(
            "/Groups?filter={}",
            q(r#"displayName eq "Sales Ops""#)
        ))
        .await
        .body["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": false}}]});
    let members = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]});
    let requests: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (Method::GET, format!("/Users/{uid}"), None),
        (
            Method::PUT,
            format!("/Users/{uid}"),
            Some(okta_user("iso@example.com", "X", "Y", "x")),
        ),
        (Method::PATCH, format!("/Users/{uid}"), Some(patch)),
        (Method::DELETE, format!("/Users/{uid}"), None),
        (Method::GET, format!("/Groups/{gid}"), None),
        (
            Method::PUT,
            format!("/Groups/{gid}"),
            Some(json!({"displayName": "Sales Ops", "members": []})),
        ),
        (Method::PATCH, format!("/Groups/{gid}"), Some(members)),
    ];
    for (method, path, body) in requests {
        let a = h.send_as(TOKEN_OTHER, method.clone(), &path, body).await;
        assert_eq!(
            a.status, 404,
            "{method} {path} as the other tenant: {:?}",
            a.body
        );
    }
    for filter in [
        format!("id eq \"{uid}\""),
        "userName eq \"iso@example.com\"".to_owned(),
    ] {
        let a = h
            .send_as(
                TOKEN_OTHER,
                Method::GET,
                &format!("/Users?filter={}", q(&filter)),
                None,
            )
            .await;
        assert_eq!(
            (a.status.as_u16(), a.body["totalResults"].clone()),
            (200, json!(0)),
            "{filter}"
        );
    }
    let all = h
        .send_as(TOKEN_OTHER, Method::GET, "/Users?count=1000", None)
        .await;
    assert!(!all.body.to_string().contains(&uid));
    let search = h
        .send_as(
            TOKEN_OTHER,
            Method::POST,
            "/.search",
            Some(json!({"count": 1000})),
        )
        .await;
    assert!(!search.body.to_string().contains(&uid) && !search.body.to_string().contains(&gid));
    // Nothing of tenant A changed.
    let a = h.get(&format!("/Users/{uid}")).await;
    assert_eq!(
        (
            a.status.as_u16(),
            a.body["active"].clone(),
            a.body["name"]["givenName"].clone()
        ),
        (200, json!(true), json!("I"))
    );
    h.stop().await;
}

/// After a burst of failed authentications, the address gets `429` with `Retry-After` for
/// every request, a valid token included, until the bucket refills.
#[tokio::test]
async fn failed_authentication_is_throttled() {
    use scim_sidecar::middleware::auth::FAILURE_BURST;
    let h = Harness::start().await;
    for i in 0..FAILURE_BURST {
        let a = h
            .raw(
                Method::GET,
                "/Users",
                &[("Authorization", "Bearer guess")],
                None,
            )
            .await;
        assert_eq!(a.status, 401, "attempt {i}");
    }
    let a = h
        .raw(
            Method::GET,
            "/Users",
            &[("Authorization", "Bearer guess")],
            None,
        )
        .await;
    assert_eq!(a.status, 429);
    assert!(
        a.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(a.body["status"], "429");
    let auth = format!("Bearer {TOKEN}");
    let a = h
        .raw(
            Method::GET,
            "/Users",
            &[("Authorization", auth.as_str())],
            None,
        )
        .await;
    assert_eq!(
        a.status, 429,
        "a throttled address is refused before its token is checked"
    );
    h.stop().await;
}
