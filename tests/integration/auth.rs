//! Bearer-token authentication.

use http::Method;

use crate::support::{Harness, TOKEN, TOKEN_2};

#[tokio::test]
async fn every_bad_credential_is_401_with_a_scim_body() {
    let h = Harness::start().await;
    let wrong_case = format!("Bearer {}", TOKEN.to_uppercase());
    let raw = TOKEN.to_owned();
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("Authorization", raw.as_str())],
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

#[tokio::test]
async fn rotated_tokens_both_work() {
    let h = Harness::start().await;
    for t in [TOKEN, TOKEN_2] {
        let auth = format!("Bearer {t}");
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
