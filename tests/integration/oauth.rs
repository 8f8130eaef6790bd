//! OAuth 2.0 client credentials over real sockets: `serve` in front of a small API whose
//! calls want a bearer token from its own token endpoint (RFC 6749 §4.4). The sidecar asks
//! for a token once, keeps it while it is valid, asks again once when a call is refused
//! with 401 and when the token is due, and never writes a token or the client secret to its
//! logs. A token endpoint that refuses the client is a 502 that says so.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::local_api::{self, Reply, json_answer};
use crate::process::{Served, call, server_section};

const CLIENT_ID: &str = "scim-sidecar";
const CLIENT_SECRET: &str = "client-secret-9d9d9d";
const TOKEN: &str = "oauth-scim-token-1e1e";
const OTHER_TOKEN: &str = "oauth-scim-token-2f2f";

/// The API's state: what it issued and saw.
#[derive(Default)]
struct Api {
    /// The token the API accepts now (`None`: revoked or never issued).
    valid: Option<String>,
    /// Tokens issued so far.
    issued: u32,
    /// `expires_in` of the next token.
    lifetime: u64,
    /// Every token request: (Authorization header, form body).
    token_requests: Vec<(Option<String>, String)>,
    /// Every API call: (path and query, Authorization header, status answered).
    calls: Vec<(String, Option<String>, u16)>,
}

type Shared = Arc<Mutex<Api>>;

async fn api() -> (String, Shared) {
    let state: Shared = Arc::new(Mutex::new(Api {
        lifetime: 3600,
        ..Api::default()
    }));
    let shared = state.clone();
    let base = local_api::serve(move |_: &str| {
        move |req: Request<Incoming>| {
            let state = shared.clone();
            async move { answer(req, &state).await }
        }
    })
    .await;
    (base, state)
}

async fn answer(req: Request<Incoming>, state: &Shared) -> Reply {
    let path = req
        .uri()
        .path_and_query()
        .map_or("", |p| p.as_str())
        .to_owned();
    let auth = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let method = req.method().clone();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let mut api = state.lock().unwrap();
    if path == "/api/oauth/token" && method == Method::POST {
        let form = String::from_utf8_lossy(&body).into_owned();
        api.token_requests.push((auth.clone(), form.clone()));
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
        );
        let pairs: Vec<(String, String)> = form_urlencoded::parse(form.as_bytes())
            .into_owned()
            .collect();
        let has = |k: &str, v: &str| pairs.iter().any(|(a, b)| a == k && b == v);
        if auth.as_deref() != Some(basic.as_str()) {
            return json_answer(
                StatusCode::UNAUTHORIZED,
                json!({"error": "invalid_client", "error_description": "client authentication failed"}),
            );
        }
        if !has("grant_type", "client_credentials") || !has("scope", "users:read users:write") {
            return json_answer(StatusCode::BAD_REQUEST, json!({"error": "invalid_request"}));
        }
        api.issued += 1;
        let token = format!("tok-{}-{}", api.issued, TOKEN);
        api.valid = Some(token.clone());
        return json_answer(
            StatusCode::OK,
            json!({"access_token": token, "token_type": "Bearer", "expires_in": api.lifetime}),
        );
    }
    let ok = match (&auth, &api.valid) {
        (Some(a), Some(v)) => *a == format!("Bearer {v}"),
        _ => false,
    };
    if !ok {
        api.calls.push((path, auth, 401));
        let mut resp = json_answer(
            StatusCode::UNAUTHORIZED,
            json!({"message": "invalid token"}),
        );
        resp.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            "Bearer error=\"invalid_token\"".parse().unwrap(),
        );
        return resp;
    }
    api.calls.push((path.clone(), auth, 200));
    let users: Vec<Value> = (1..=3)
        .map(|i| json!({"id": i, "login": format!("user{i}")}))
        .collect();
    if let Some(id) = path.strip_prefix("/api/users/") {
        return match users
            .iter()
            .find(|u| u["id"].as_u64().is_some_and(|n| n.to_string() == id))
        {
            Some(u) => json_answer(StatusCode::OK, u.clone()),
            None => json_answer(StatusCode::NOT_FOUND, json!({"message": "not found"})),
        };
    }
    json_answer(StatusCode::OK, json!({"users": users}))
}

fn config(dir: &std::path::Path, legacy: &str) -> std::path::PathBuf {
    let mapping = dir.join("tokens.toml");
    std::fs::write(
        &mapping,
        concat!(
            r#"[legacy]
name = "Tokens"

[legacy.auth]
type = "oauth2_client_credentials"
token_url = "/oauth/token"
client_id = "{var.client_id}"
client_secret = "{secret.client_secret}"
scope = "users:read users:write"

[legacy.paging]
style = "offset"
offset_param = "offset"
size_param = "limit"
max_page_size = 100
items = "/users"

"#,
            local_api::users_block!(),
            r#""#
        ),
    )
    .unwrap();
    let config = dir.join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            r#"{server}[tenants.good]
legacy_base_url = "{legacy}/api"
mapping = "{mapping}"
vars = {{ client_id = "{CLIENT_ID}" }}
secrets = {{ client_secret = {{ value = "{CLIENT_SECRET}" }} }}
tokens = [{{ value = "{TOKEN}" }}]

[tenants.wrong]
legacy_base_url = "{legacy}/api"
mapping = "{mapping}"
vars = {{ client_id = "{CLIENT_ID}" }}
secrets = {{ client_secret = {{ value = "not-the-client-secret" }} }}
tokens = [{{ value = "{OTHER_TOKEN}" }}]
"#,
            server = server_section(&dir.join("data")),
            mapping = mapping.display(),
        ),
    )
    .unwrap();
    config
}

fn counts(state: &Shared) -> (usize, usize) {
    let api = state.lock().unwrap();
    let refused = api.calls.iter().filter(|c| c.2 == 401).count();
    (api.token_requests.len(), refused)
}

#[tokio::test]
async fn client_credentials_tokens_are_fetched_kept_and_renewed() {
    let (legacy, state) = api().await;
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(&config(dir.path(), &legacy), &[]);
    let list = |token: &'static str| {
        let base = served.base.clone();
        async move { call(&base, Method::GET, "/Users?count=100", token, None).await }
    };

    // The first call asks for a token (Basic client credentials, the scope), then uses it.
    let (status, body) = list(TOKEN).await;
    assert_eq!(
        (status, body["totalResults"].clone()),
        (200, json!(3)),
        "{body}"
    );
    assert_eq!(counts(&state), (1, 0));
    {
        let api = state.lock().unwrap();
        let (auth, form) = &api.token_requests[0];
        assert!(auth.as_deref().is_some_and(|a| a.starts_with("Basic ")));
        assert_eq!(
            form,
            "grant_type=client_credentials&scope=users%3Aread+users%3Awrite"
        );
        let bearer = format!("Bearer tok-1-{TOKEN}");
        assert!(
            api.calls
                .iter()
                .all(|c| c.1.as_deref() == Some(bearer.as_str()))
        );
    }
    // Kept while valid: more calls, no new token.
    let id = body["Resources"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &served.base,
        Method::GET,
        &format!("/Users/{id}"),
        TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list(TOKEN).await.0, 200);
    assert_eq!(counts(&state), (1, 0), "one token for every call");

    // Revoked by the app: the refused call gets a new token and is sent once more.
    state.lock().unwrap().valid = None;
    let (status, body) = list(TOKEN).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(counts(&state), (2, 1));

    // A token that is due (expires_in 0) is renewed before the next call, not after a 401.
    state.lock().unwrap().lifetime = 0;
    state.lock().unwrap().valid = None;
    assert_eq!(list(TOKEN).await.0, 200);
    assert_eq!(counts(&state), (3, 2));
    assert_eq!(list(TOKEN).await.0, 200);
    assert_eq!(counts(&state), (4, 2), "renewed before use: no 401");

    // A client the token endpoint refuses: 502 saying so; the app's API is never called
    // without a token.
    let calls_before = state.lock().unwrap().calls.len();
    let (status, body) = list(OTHER_TOKEN).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("could not authenticate to the legacy app")),
        "{body}"
    );
    assert_eq!(state.lock().unwrap().calls.len(), calls_before);

    // Nothing secret in the logs (debug level): no token, no client secret.
    let log = served.stop().join("\n");
    assert!(log.contains("invalid_client"), "the refusal is logged");
    for secret in [
        "tok-1-",
        "tok-2-",
        "tok-3-",
        "tok-4-",
        CLIENT_SECRET,
        "not-the-client-secret",
    ] {
        assert!(!log.contains(secret), "{secret} is in the log");
    }
}
