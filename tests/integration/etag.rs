//! A group's whole member list written back under its `ETag`, over real sockets: `serve` in
//! front of a small API whose groups answer an `ETag`, whose members are the users list
//! filtered by group, and which takes only the whole list with `If-Match` — and refuses a
//! stale one with `412`, as when another writer got there first.

use std::sync::{Arc, Mutex};

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::local_api::{self, Reply, json_answer};
use crate::process::{Served, call, server_section};

const TOKEN: &str = "etag-token-4c4c";

/// The API's group 5: its members, its version, and the writes it saw.
#[derive(Default)]
struct Group {
    members: Vec<u64>,
    version: u64,
    /// Another writer changes the group just before the next write arrives (once).
    interfere: bool,
    /// Every `PUT`: (its `If-Match`, the status answered).
    writes: Vec<(Option<String>, u16)>,
}

type Shared = Arc<Mutex<Group>>;

async fn answer(req: Request<Incoming>, state: &Shared) -> Reply {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let method = req.method().clone();
    let if_match = (req.headers().get(http::header::IF_MATCH))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let mut g = state.lock().unwrap();
    let etag = |v: u64| format!("\"v{v}\"");
    let user = |id: u64| json!({"id": id, "login": format!("user{id}")});
    match (method, path.as_str()) {
        (Method::GET, "/api/users") if query.contains("group_id=5") => json_answer(
            StatusCode::OK,
            json!({"users": g.members.iter().map(|id| user(*id)).collect::<Vec<_>>()}),
        ),
        (Method::GET, "/api/users") => json_answer(
            StatusCode::OK,
            json!({"users": (1..=4).map(user).collect::<Vec<_>>()}),
        ),
        (Method::GET, p) if p.starts_with("/api/users/") => {
            let id: u64 = p.trim_start_matches("/api/users/").parse().unwrap_or(0);
            json_answer(StatusCode::OK, user(id))
        }
        (Method::GET, "/api/groups") => json_answer(
            StatusCode::OK,
            json!({"groups": [{"id": 5, "name": "Staff"}]}),
        ),
        (Method::GET, "/api/groups/5") => {
            let mut resp = json_answer(StatusCode::OK, json!({"id": 5, "name": "Staff"}));
            resp.headers_mut()
                .insert(http::header::ETAG, etag(g.version).parse().unwrap());
            resp
        }
        (Method::PUT, "/api/groups/5") => {
            if g.interfere {
                g.interfere = false;
                g.members.push(4);
                g.version += 1;
            }
            if if_match.as_deref() != Some(etag(g.version).as_str()) {
                g.writes.push((if_match, 412));
                return json_answer(StatusCode::PRECONDITION_FAILED, json!({"error": "stale"}));
            }
            let sent: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            g.members = (sent["user_ids"].as_array().into_iter().flatten())
                .filter_map(Value::as_u64)
                .collect();
            g.version += 1;
            g.writes.push((if_match, 204));
            json_answer(StatusCode::NO_CONTENT, Value::Null)
        }
        _ => json_answer(StatusCode::NOT_FOUND, json!({"error": "not_found"})),
    }
}

fn config(dir: &std::path::Path, legacy: &str) -> std::path::PathBuf {
    let mapping = dir.join("roster.toml");
    std::fs::write(
        &mapping,
        concat!(
        r#"[legacy]
name = "Roster"

[legacy.paging]
style = "offset"
offset_param = "offset"
size_param = "limit"
max_page_size = 100
items = "/users"

"#,
        local_api::users_block!(),
        r#"
[groups]
legacy_id = "/id"
display_name = "/name"
etag = true

[groups.calls]
get = { method = "GET", path = "/groups/{legacy_id}" }
list = { method = "GET", path = "/groups", items = "/groups", paging = "none" }
members = { method = "GET", path = "/users", query = { group_id = "{legacy_id}" }, member_id = "/id", member_display = "/login" }
set_members = { method = "PUT", path = "/groups/{legacy_id}", batch = { field = "user_ids", max = 100, ids = "number" } }
"#
    ),
    )
    .unwrap();
    let config = dir.join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            "{server}[tenants.roster]\nlegacy_base_url = \"{legacy}/api\"\nmapping = \"{mapping}\"\n\
             tokens = [{{ value = \"{TOKEN}\" }}]\n",
            server = server_section(&dir.join("data")),
            mapping = mapping.display(),
        ),
    )
    .unwrap();
    config
}

#[tokio::test]
async fn the_whole_list_goes_back_under_the_groups_etag() {
    let state: Shared = Arc::new(Mutex::new(Group {
        members: vec![1],
        version: 12,
        ..Group::default()
    }));
    let shared = state.clone();
    let legacy = local_api::serve(move |_: &str| {
        move |req: Request<Incoming>| {
            let state = shared.clone();
            async move { answer(req, &state).await }
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(&config(dir.path(), &legacy), &[]);

    // The users get their SCIM ids by being listed.
    let (status, users) = call(&served.base, Method::GET, "/Users?count=10", TOKEN, None).await;
    assert_eq!(status, 200, "{users}");
    let id_of = |login: &str| {
        (users["Resources"].as_array().unwrap().iter())
            .find(|u| u["userName"] == login)
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let patch = |value: &str| {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": value}]}]})
    };

    // An add: the list now plus the new member, under the ETag just read.
    let (status, body) = call(
        &served.base,
        Method::PATCH,
        "/Groups/5",
        TOKEN,
        Some(patch(&id_of("user2"))),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    {
        let g = state.lock().unwrap();
        assert_eq!(g.members, [1, 2]);
        assert_eq!(g.writes, [(Some("\"v12\"".to_owned()), 204)]);
    }

    // Another writer adds user 4 just before our write: 412, read again, sent once more with
    // the new ETag, and user 4 is kept.
    state.lock().unwrap().interfere = true;
    let (status, body) = call(
        &served.base,
        Method::PATCH,
        "/Groups/5",
        TOKEN,
        Some(patch(&id_of("user3"))),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let g = state.lock().unwrap();
    assert_eq!(g.members, [1, 2, 4, 3]);
    assert_eq!(
        g.writes[1..],
        [
            (Some("\"v13\"".to_owned()), 412),
            (Some("\"v14\"".to_owned()), 204)
        ]
    );
    drop(g);
    served.stop();
}
