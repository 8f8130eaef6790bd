//! Link-header paging and HTTP Basic authentication over real sockets: `serve` in front of a
//! small API that answers bare arrays, says where the next page is only in an RFC 8288 `Link`
//! header (as GitHub's and GitLab's APIs do) and wants Basic credentials made of a tenant
//! `vars` value and a tenant secret. The sidecar follows the links on the legacy app, with its
//! credentials, and refuses a link that leaves it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::local_api::{self, Reply, json_answer};
use crate::process::{Served, call, server_section};

const KEY: &str = "forge-key-7c7c";
/// `Basic base64("forge-bot:forge-key-7c7c")`: the mapping's `[legacy.auth]`, from the tenant's
/// `vars.api_user` and `secrets.api_password`.
const BASIC: &str = "Basic Zm9yZ2UtYm90OmZvcmdlLWtleS03Yzdj";
const TOKEN: &str = "paging-token-3b3b3b";

/// What the API saw: (path and query, the API key header).
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// Serves `/api/users` (7 users, pages of `per_page` linked by `Link` headers whose targets
/// are `next_base` + path) and `/api/users/{id}`, recording every request.
async fn forge(next_base: Arc<Mutex<Option<String>>>) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let recorded = seen.clone();
    let base = local_api::serve(move |own: &str| {
        let own = own.to_owned();
        move |req: Request<Incoming>| {
            let answer = answer(&req, &own, &recorded, &next_base);
            async move { answer }
        }
    })
    .await;
    (base, seen)
}

fn answer(
    req: &Request<Incoming>,
    own: &str,
    seen: &Seen,
    next_base: &Mutex<Option<String>>,
) -> Reply {
    let pq = req
        .uri()
        .path_and_query()
        .map_or("", |p| p.as_str())
        .to_owned();
    let key = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    seen.lock().unwrap().push((pq, key.clone()));
    if key.as_deref() != Some(BASIC) {
        return json_answer(
            StatusCode::UNAUTHORIZED,
            json!({"message": "Bad credentials"}),
        );
    }
    let users: Vec<Value> = (1..=7)
        .map(|i| json!({"id": i, "login": format!("user{i}"), "email": format!("user{i}@example.com")}))
        .collect();
    let path = req.uri().path();
    if let Some(id) = path.strip_prefix("/api/users/") {
        return match users
            .iter()
            .find(|u| u["id"].as_u64().is_some_and(|n| n.to_string() == id))
        {
            Some(u) => json_answer(StatusCode::OK, u.clone()),
            None => json_answer(StatusCode::NOT_FOUND, json!({"message": "Not Found"})),
        };
    }
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let param = |name: &str, default: usize| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(default)
    };
    let (per_page, page) = (param("per_page", 30), param("page", 1));
    let page_items: Vec<Value> = users
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    let mut resp = json_answer(StatusCode::OK, Value::Array(page_items));
    if page * per_page < users.len() {
        let base = next_base
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| own.to_owned());
        let link = format!(
            "<{base}/api/users?per_page={per_page}&page={}>; rel=\"next\", <{base}/api/users?per_page={per_page}&page=1>; rel=\"first\"",
            page + 1
        );
        resp.headers_mut()
            .insert(http::header::LINK, link.parse().unwrap());
    }
    resp
}

fn config(dir: &std::path::Path, legacy: &str) -> std::path::PathBuf {
    config_with(dir, legacy, "")
}

/// The configuration, with `server_extra` lines in its `[server]` table.
fn config_with(dir: &std::path::Path, legacy: &str, server_extra: &str) -> std::path::PathBuf {
    let mapping = dir.join("forge.toml");
    std::fs::write(
        &mapping,
        concat!(
            r#"[legacy]
name = "Forge"

[legacy.auth]
type = "basic"
username = "{var.api_user}"
password = "{secret.api_password}"

[legacy.paging]
style = "link_header"
size_param = "per_page"
max_page_size = 3

"#,
            local_api::users_block!(),
            r#"
[[users.attributes]]
scim = "emails[primary].value"
legacy = "email"
"#
        ),
    )
    .unwrap();
    let config = dir.join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            r#"{server}[tenants.forge]
legacy_base_url = "{legacy}/api"
mapping = "{mapping}"
vars = {{ api_user = "forge-bot" }}
secrets = {{ api_password = {{ value = "{KEY}" }} }}
tokens = [{{ value = "{TOKEN}" }}]
"#,
            server = server_section(&dir.join("data")).replacen(
                "\n\n",
                &format!("\n{server_extra}\n"),
                1
            ),
            mapping = mapping.display(),
        ),
    )
    .unwrap();
    config
}

#[tokio::test]
async fn link_header_pages_are_followed_on_the_legacy_app_only() {
    let next_base = Arc::new(Mutex::new(None));
    let (legacy, seen) = forge(next_base.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(&config(dir.path(), &legacy), &[]);

    // Seven users in pages of three: the first page asks for the size, the next two are the
    // Link header's targets, each sent with the API key.
    let (status, body) = call(
        &served.base,
        Method::GET,
        "/Users?startIndex=1&count=100",
        TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalResults"], 7, "{body}");
    let names: Vec<&str> = body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["userName"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "user1", "user2", "user3", "user4", "user5", "user6", "user7"
        ]
    );
    let calls: VecDeque<(String, Option<String>)> = seen.lock().unwrap().drain(..).collect();
    let key = Some(BASIC.to_owned());
    assert_eq!(
        Vec::from(calls),
        [
            ("/api/users?per_page=3".to_owned(), key.clone()),
            ("/api/users?per_page=3&page=2".to_owned(), key.clone()),
            ("/api/users?per_page=3&page=3".to_owned(), key.clone()),
        ]
    );

    // A next link to another host is not followed: the API key stays home, the list fails.
    let (elsewhere, elsewhere_seen) = forge(Arc::new(Mutex::new(None))).await;
    *next_base.lock().unwrap() = Some(elsewhere);
    let (status, body) = call(&served.base, Method::GET, "/Users?count=100", TOKEN, None).await;
    assert!(
        status >= 500,
        "a link off the legacy app fails the list: {status} {body}"
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "only the first page was asked"
    );
    assert!(
        elsewhere_seen.lock().unwrap().is_empty(),
        "nothing was sent to the other host"
    );
    served.stop();
}

/// The names of a list answer's users.
fn user_names(body: &Value) -> Vec<String> {
    body["Resources"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|r| r["userName"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_cursor_walk_carries_the_apps_next_link_across_a_restart() {
    let (legacy, seen) = forge(Arc::new(Mutex::new(None))).await;
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(&config(dir.path(), &legacy), &[]);
    let page = async |served: &Served, cursor: &str| {
        let path = format!("/Users?count=3&cursor={cursor}");
        let (status, body) = call(&served.base, Method::GET, &path, TOKEN, None).await;
        assert_eq!(status, 200, "{body}");
        let calls: Vec<String> = seen.lock().unwrap().drain(..).map(|c| c.0).collect();
        (body, calls)
    };
    let (first, calls) = page(&served, "").await;
    assert_eq!(user_names(&first), ["user1", "user2", "user3"]);
    assert_eq!(calls, ["/api/users?per_page=3"]);
    assert!(
        first.get("totalResults").is_none(),
        "the app reports no total"
    );
    assert!(
        first.get("previousCursor").is_none(),
        "links lead forward only"
    );
    let second_cursor = first["nextCursor"].as_str().unwrap().to_owned();

    // Another process on the same data directory opens the cursor (the key is in the store)
    // and asks for the page at the app's own next link: one call per page.
    served.stop();
    let served = Served::start(&config(dir.path(), &legacy), &[]);
    let (second, calls) = page(&served, &second_cursor).await;
    assert_eq!(user_names(&second), ["user4", "user5", "user6"]);
    assert_eq!(calls, ["/api/users?per_page=3&page=2"]);
    let (third, calls) = page(&served, second["nextCursor"].as_str().unwrap()).await;
    assert_eq!(user_names(&third), ["user7"]);
    assert_eq!(calls, ["/api/users?per_page=3&page=3"]);
    assert!(
        third.get("nextCursor").is_none(),
        "the last page has no link"
    );
    served.stop();

    // With a one-second timeout, the same cursor expires: 400 expiredCursor, no call made.
    let short = config_with(dir.path(), &legacy, "cursor_timeout_secs = 1");
    let served = Served::start(&short, &[]);
    let path = format!("/Users?count=3&cursor={second_cursor}");
    let mut answer = Value::Null;
    crate::support::wait_until("the cursor to expire", async || {
        let (status, body) = call(&served.base, Method::GET, &path, TOKEN, None).await;
        answer = body;
        status == 400
    })
    .await;
    assert_eq!(answer["scimType"], "expiredCursor", "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("within 1 s"),
        "{answer}"
    );
    // (It was served while it was valid.) Now it calls nothing.
    seen.lock().unwrap().clear();
    let (status, _) = call(&served.base, Method::GET, &path, TOKEN, None).await;
    assert_eq!(status, 400);
    assert!(
        seen.lock().unwrap().is_empty(),
        "an expired cursor calls nothing"
    );
    let (_, spc) = call(
        &served.base,
        Method::GET,
        "/ServiceProviderConfig",
        TOKEN,
        None,
    )
    .await;
    assert_eq!(spc["pagination"]["cursorTimeout"], 1, "{spc}");
    served.stop();
}

#[tokio::test]
async fn a_cursor_walk_over_an_app_that_ignores_paging_stops_with_an_error() {
    // Every request answers the first three users and a Link to "page 2".
    let base = local_api::serve(move |own: &str| {
        let own = own.to_owned();
        move |req: Request<Incoming>| {
            let users: Vec<Value> = (1..=3)
                .map(|i| json!({"id": i, "login": format!("user{i}"), "email": format!("u{i}@x")}))
                .collect();
            let mut resp = if req
                .headers()
                .get(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes())
                == Some(BASIC.as_bytes())
            {
                json_answer(StatusCode::OK, Value::Array(users))
            } else {
                json_answer(
                    StatusCode::UNAUTHORIZED,
                    json!({"message": "Bad credentials"}),
                )
            };
            let link = format!("<{own}/api/users?per_page=3&page=2>; rel=\"next\"");
            resp.headers_mut()
                .insert(http::header::LINK, link.parse().unwrap());
            async move { resp }
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(&config(dir.path(), &base), &[]);
    let (status, first) = call(
        &served.base,
        Method::GET,
        "/Users?count=3&cursor",
        TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(user_names(&first), ["user1", "user2", "user3"]);
    let path = format!("/Users?cursor={}", first["nextCursor"].as_str().unwrap());
    let (status, again) = call(&served.base, Method::GET, &path, TOKEN, None).await;
    assert_eq!(
        status, 502,
        "the same page again is an error, not an endless walk: {again}"
    );
    served.stop();
}
