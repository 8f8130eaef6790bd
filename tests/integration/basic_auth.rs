//! Okta's "Basic Auth" and "HTTP Header" modes end to end: `scim-sidecar serve` from a
//! configuration with `[[tenants.<name>.basic]]` credentials (an argon2 hash inline and one
//! from the environment, as during a rotation), driven the way Okta drives it.

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::{BodyExt as _, Full};
use serde_json::{Value, json};
use simulator::marketing_center::MarketingCenter;

use crate::process::Served;
use crate::support::okta_user;

const API_KEY: &str = "basic-api-key-7a7a";
const PASSWORD: &str = "Okta-Basic-pw-1f2e3d";
const PASSWORD_NEXT: &str = "Okta-Basic-pw-next-9c8b";
const OTHER_TOKEN: &str = "other-tenant-token-4b4b";

/// A PHC string with cheap parameters (a debug build would take seconds per default check).
pub(crate) fn cheap_hash(password: &str) -> String {
    use argon2::password_hash::PasswordHasher;
    let params = argon2::Params::new(256, 1, 1, None).unwrap();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes())
        .unwrap()
        .to_string()
}

pub(crate) fn basic(user: &str, password: &str) -> String {
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {pair}")
}

/// One request with `authorization` as given (none when empty): status, headers, JSON body.
async fn send(
    base: &str,
    method: Method,
    path: &str,
    authorization: &str,
    body: Option<Value>,
) -> (u16, HeaderMap, Value) {
    let mut headers = vec![("Content-Type", "application/scim+json")];
    if !authorization.is_empty() {
        headers.push(("Authorization", authorization));
    }
    let (status, headers, text) =
        crate::oauth_idp::send(base, method, path, &headers, body.map(|b| b.to_string())).await;
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

pub(crate) async fn text(url: &str) -> String {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let resp = client
        .request(http::Request::get(url).body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn okta_basic_auth_and_http_header_modes_end_to_end() {
    let sim = MarketingCenter::new(API_KEY, ["ACME", "OTHER"]);
    sim.seed_demo("ACME");
    let sim_handle = sim.clone().spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mapping = format!(
        "{}/mappings/marketing-center.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let config = dir.path().join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            "{server}[tenants.acme]\ncustomer_id = \"ACME\"\nlegacy_base_url = \"{legacy}\"\n\
             mapping = \"{mapping}\"\napi_key = {{ env = \"TEST_BASIC_MC_KEY\" }}\n\n\
             [[tenants.acme.basic]]\nusername = \"okta-acme\"\npassword_hash = \"{hash}\"\n\n\
             [[tenants.acme.basic]]\nusername = \"okta-acme\"\n\
             password_hash = {{ env = \"TEST_BASIC_NEXT_HASH\" }}\n\n\
             [tenants.other]\ncustomer_id = \"OTHER\"\nlegacy_base_url = \"{legacy}\"\n\
             mapping = \"{mapping}\"\napi_key = {{ env = \"TEST_BASIC_MC_KEY\" }}\n\
             tokens = [{{ value = \"{OTHER_TOKEN}\" }}]\n\n\
             [[tenants.other.basic]]\nusername = \"okta-other\"\npassword_hash = \"{other}\"\n",
            server = crate::process::server_section(&dir.path().join("data")),
            legacy = sim_handle.base_url(),
            hash = cheap_hash(PASSWORD),
            other = cheap_hash(PASSWORD),
        ),
    )
    .unwrap();
    let next_hash = cheap_hash(PASSWORD_NEXT);
    let served = Served::start(
        &config,
        &[
            ("TEST_BASIC_MC_KEY", API_KEY),
            ("TEST_BASIC_NEXT_HASH", next_hash.as_str()),
        ],
    );
    let base = served.base.clone();
    let acme = basic("okta-acme", PASSWORD);

    // Okta's Basic Auth mode: the connection test, a create, a read, a deactivation; each
    // request carries the credentials again.
    let (status, _, body) = send(&base, Method::GET, "/Users?count=1", &acme, None).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, created) = send(
        &base,
        Method::POST,
        "/Users",
        &acme,
        Some(okta_user("basic@example.com", "Ba", "Sic", "00ubasic")),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, _, got) = send(&base, Method::GET, &format!("/Users/{id}"), &acme, None).await;
    assert_eq!(
        (status, &got["userName"]),
        (200, &json!("basic@example.com"))
    );
    let deactivate = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": false}}]
    });
    let path = format!("/Users/{id}");
    let (status, _, patched) = send(&base, Method::PATCH, &path, &acme, Some(deactivate)).await;
    assert_eq!(
        (status, &patched["active"]),
        (200, &json!(false)),
        "{patched}"
    );

    // The next password of a rotation, from the environment, works beside the first.
    let next = basic("okta-acme", PASSWORD_NEXT);
    let (status, _, _) = send(&base, Method::GET, &path, &next, None).await;
    assert_eq!(status, 200);

    // The other tenant's credentials, by Basic and by its token alone (Okta's HTTP Header
    // mode) or with the scheme: its own users only.
    for auth in [
        basic("okta-other", PASSWORD),
        OTHER_TOKEN.to_owned(),
        format!("Bearer {OTHER_TOKEN}"),
    ] {
        let (status, _, body) = send(&base, Method::GET, &path, &auth, None).await;
        assert_eq!(status, 404, "{auth:?} reached acme's user: {body}");
        let (status, _, list) = send(&base, Method::GET, "/Users", &auth, None).await;
        assert_eq!(status, 200);
        assert_eq!(list["totalResults"], 0, "{list}");
    }

    // Every failure: 401, a SCIM error, both challenges, the password never echoed.
    let failures = [
        basic("okta-acme", "wrong"),
        basic("okta-acme", &PASSWORD.to_uppercase()),
        basic("nobody", PASSWORD),
        basic("OKTA-ACME", PASSWORD),
        "Basic not-base64!".to_owned(),
        String::new(),
    ];
    for auth in &failures {
        let (status, headers, body) = send(&base, Method::GET, "/Users", auth, None).await;
        assert_eq!(status, 401, "{auth:?}");
        let challenges: Vec<&str> = headers
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            challenges,
            ["Bearer", "Basic realm=\"scim-sidecar\", charset=\"UTF-8\""]
        );
        assert_eq!(body["status"], "401");
        assert!(!body.to_string().contains(PASSWORD), "{body}");
    }

    // Failures are counted by what was presented; the admin page shows each tenant's modes.
    let metrics = text(&format!("{}/metrics", served.admin)).await;
    for line in [
        "scim_sidecar_auth_failures_total{scheme=\"basic\"} 4",
        "scim_sidecar_auth_failures_total{scheme=\"malformed\"} 1",
        "scim_sidecar_auth_failures_total{scheme=\"missing\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
    let page = text(&format!("{}/admin/", served.admin)).await;
    assert!(
        page.contains(
            "<td>acme</td><td>Marketing Center</td><td>HTTP Basic (Okta: Basic Auth)</td>"
        ),
        "{page}"
    );
    assert!(page.contains(
        "<td>other</td><td>Marketing Center</td><td>Bearer token (Okta: HTTP Header; Entra ID: \
         Secret Token) · HTTP Basic (Okta: Basic Auth)</td>"
    ));
    let status: Value =
        serde_json::from_str(&text(&format!("{}/readyz", served.admin)).await).unwrap();
    assert_eq!(
        status["tenants"]["acme"]["auth"],
        json!(["basic"]),
        "{status}"
    );
    assert_eq!(
        status["tenants"]["other"]["auth"],
        json!(["bearer", "basic"])
    );

    // Failed Basic attempts feed the address's throttle like failed tokens do.
    let wrong = basic("okta-acme", "guess");
    let mut throttled = None;
    for _ in 0..=scim_sidecar::middleware::auth::FAILURE_BURST {
        let (status, headers, _) = send(&base, Method::GET, "/Users", &wrong, None).await;
        if status == 429 {
            throttled = Some(headers);
            break;
        }
        assert_eq!(status, 401);
    }
    let headers = throttled.expect("429 after a burst of wrong passwords");
    assert!(headers.contains_key("retry-after"));

    let log = served.stop();
    assert!(!log.is_empty());
    for line in &log {
        for secret in [PASSWORD, PASSWORD_NEXT, OTHER_TOKEN, next_hash.as_str()] {
            assert!(!line.contains(secret), "a secret in the log: {line}");
        }
    }
    sim_handle.stop().await;
}
