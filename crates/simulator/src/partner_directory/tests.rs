//! Tests of the Partner Directory simulator over real sockets, through a small hyper-util
//! client: every rule of the contract, the knobs and the injected failures.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use time::macros::datetime;

use super::*;
use crate::test_wait::wait_until;

const TOKEN: &str = "test-token";
const AUTH: &str = "Token test-token";
const EVERYONE: u64 = 50;
const ADMINS: u64 = 51;

/// One answer: status, headers and the JSON body (`Null` when empty).
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }

    fn data(&self) -> Vec<Value> {
        self.body["data"].as_array().cloned().unwrap_or_default()
    }

    /// The `uid`s of a page of accounts or members.
    fn uids(&self) -> Vec<String> {
        self.data()
            .iter()
            .map(|a| a["uid"].as_str().unwrap().to_owned())
            .collect()
    }

    fn titles(&self) -> Vec<String> {
        self.data()
            .iter()
            .map(|t| t["title"].as_str().unwrap().to_owned())
            .collect()
    }

    fn has_more(&self) -> bool {
        self.body["has_more"].as_bool().unwrap()
    }

    fn status_code(&self) -> (StatusCode, &str) {
        (self.status, self.code())
    }
}

struct Harness {
    sim: PartnerDirectory,
    running: RunningSimulator,
    client: Client<HttpConnector, Full<Bytes>>,
}

async fn start() -> Harness {
    let sim = PartnerDirectory::new(TOKEN);
    let running = sim.clone().spawn().await.unwrap();
    let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    Harness {
        sim,
        running,
        client,
    }
}

impl Harness {
    /// Sends a request with exactly `headers`; `path` is relative to the base URL.
    async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<Reply, hyper_util::client::legacy::Error> {
        let url = format!("{}{path}", self.running.base_url());
        let (status, headers, body) =
            crate::http::testing::send(&self.client, url, method, headers, body).await?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    async fn try_call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Reply, hyper_util::client::legacy::Error> {
        let headers = [("Authorization", AUTH)];
        self.raw(method, path, &headers, body.map(|b| b.to_string()))
            .await
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.try_call(method, path, body).await.unwrap()
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates an account over HTTP and answers its uid.
    async fn create(&self, login: &str) -> String {
        let body = json!({ "login": login, "email": format!("{login}@example.com") });
        let reply = self.post("/accounts", body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply.body["uid"].as_str().unwrap().to_owned()
    }

    /// Creates a team over HTTP and answers its id.
    async fn create_team(&self, title: &str) -> u64 {
        let reply = self.post("/teams", json!({ "title": title })).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply.body["team_id"].as_u64().unwrap()
    }

    async fn add(&self, team: u64, uids: &[&str]) -> Reply {
        self.post(&format!("/teams/{team}/members"), json!({ "uids": uids }))
            .await
    }

    async fn remove(&self, team: u64, uids: &[&str]) -> Reply {
        self.post(
            &format!("/teams/{team}/members/remove"),
            json!({ "uids": uids }),
        )
        .await
    }

    /// Every member uid of a team, over HTTP.
    async fn member_list(&self, team: u64) -> Vec<String> {
        let reply = self.get(&format!("/teams/{team}/members?limit=100")).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        reply.uids()
    }
}

/// Inserts `n` accounts `user{i}` directly and answers their uids in creation order.
fn insert_many(sim: &PartnerDirectory, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            sim.insert_account(json!({
                "login": format!("user{i}"),
                "email": format!("user{i}@example.com"),
            }))
            .unwrap()
        })
        .collect()
}

fn epoch_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------- transport and auth

#[tokio::test]
async fn every_request_needs_exactly_token_authorization() {
    let h = start().await;
    let wrong: [&[(&str, &str)]; 8] = [
        &[],
        &[("Authorization", "Token wrong")],
        &[("Authorization", "token test-token")],
        &[("Authorization", "Bearer test-token")],
        &[("Authorization", "Token  test-token")],
        &[("Authorization", "test-token")],
        &[("X-Api-Token", "test-token")],
        &[("Authorization", AUTH), ("Authorization", AUTH)],
    ];
    for headers in wrong {
        for path in ["/accounts", "/teams", "/no-such-route"] {
            let reply = h.raw(Method::GET, path, headers, None).await.unwrap();
            assert_eq!(
                reply.status_code(),
                (StatusCode::UNAUTHORIZED, "unauthorized"),
                "{headers:?} {path}"
            );
            assert!(!reply.message().is_empty());
        }
        let body = Some(json!({ "login": "x", "email": "x@example.com" }).to_string());
        let reply = h
            .raw(Method::POST, "/accounts", headers, body)
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    assert!(
        h.sim.accounts().is_empty(),
        "refused requests change nothing"
    );
    let reply = h
        .raw(Method::GET, "/accounts", &[("authorization", AUTH)], None)
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "header names are case-insensitive"
    );
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods() {
    let h = start().await;
    let uid = h.create("a").await;
    for path in [
        "/nothing",
        "/accounts/",
        "/accounts//x",
        &format!("/accounts/{uid}/unclaim"),
        "/teams/50/members/remove/x",
        "/teams/50/owners",
        "/users",
    ] {
        let reply = h.get(path).await;
        assert_eq!(
            reply.status_code(),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
    // Outside the base path.
    let url = format!("http://{}/accounts", h.running.addr());
    let request = Request::get(url)
        .header("Authorization", AUTH)
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        h.client.request(request).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    let cases = [
        (Method::DELETE, "/accounts".to_owned(), "GET, POST"),
        (
            Method::PATCH,
            format!("/accounts/{uid}"),
            "GET, PUT, DELETE",
        ),
        (Method::POST, format!("/accounts/{uid}"), "GET, PUT, DELETE"),
        (Method::GET, format!("/accounts/{uid}/claim"), "POST"),
        (Method::PUT, "/teams".to_owned(), "GET, POST"),
        (Method::PUT, "/teams/50".to_owned(), "GET, PATCH, DELETE"),
        (Method::DELETE, "/teams/50/members".to_owned(), "GET, POST"),
        (Method::GET, "/teams/50/members/remove".to_owned(), "POST"),
    ];
    for (method, path, allow) in cases {
        let reply = h.call(method.clone(), &path, None).await;
        assert_eq!(
            reply.status_code(),
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            "{method} {path}"
        );
        assert_eq!(reply.headers[header::ALLOW], allow);
    }
    assert_eq!(
        h.sim.accounts().len(),
        1,
        "the account survived the DELETE on /accounts"
    );
}

#[tokio::test]
async fn bodies_are_json_objects_and_unknown_fields_are_ignored() {
    let h = start().await;
    for bad in ["{", "", "[]", "\"x\"", "null", "{\"login\": \"a\",}"] {
        let headers = [("Authorization", AUTH)];
        let reply = h
            .raw(Method::POST, "/accounts", &headers, Some(bad.to_owned()))
            .await
            .unwrap();
        assert_eq!(
            reply.status_code(),
            (StatusCode::BAD_REQUEST, "bad_request"),
            "{bad}"
        );
    }
    let reply = h
        .post(
            "/accounts",
            json!({
                "login": "a",
                "email": "a@example.com",
                "uid": "acc_chosen",
                "origin": "local",
                "created_at": 1,
                "nickname": ["anything"],
                "Login": 42,
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_ne!(reply.body["uid"], "acc_chosen");
    assert_eq!(reply.body["origin"], "idp");
    assert_ne!(reply.body["created_at"], 1);
    assert!(reply.body.get("nickname").is_none());
    let team = h
        .post(
            "/teams",
            json!({ "title": "T", "reserved": true, "team_id": 1 }),
        )
        .await;
    assert_eq!(team.status, StatusCode::CREATED);
    assert_eq!(team.body["reserved"], false);
    assert_ne!(team.body["team_id"], 1);

    let huge = json!({ "login": "x".repeat(2 * 1024 * 1024), "email": "x@example.com" });
    let reply = h.post("/accounts", huge).await;
    assert_eq!(
        reply.status_code(),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    assert_eq!(h.sim.accounts().len(), 1);
}

// ---------------------------------------------------------------- paging

#[tokio::test]
async fn pages_have_offset_limit_and_has_more_but_no_total() {
    let h = start().await;
    let uids = insert_many(&h.sim, 30);

    let first = h.get("/accounts").await;
    assert_eq!(first.status, StatusCode::OK);
    let keys: Vec<&str> = first
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["data", "offset", "limit", "has_more"],
        "no total count"
    );
    assert_eq!(
        (first.body["offset"].as_u64(), first.body["limit"].as_u64()),
        (Some(0), Some(25))
    );
    assert_eq!(first.uids(), uids[..25]);
    assert!(first.has_more());

    let rest = h.get("/accounts?offset=25").await;
    assert_eq!(rest.uids(), uids[25..]);
    assert!(!rest.has_more());
    assert_eq!(rest.body["offset"], 25);

    let exact = h.get("/accounts?offset=20&limit=10").await;
    assert_eq!(exact.uids(), uids[20..]);
    assert!(!exact.has_more(), "the last item exactly ends the page");
    let one_short = h.get("/accounts?offset=19&limit=10").await;
    assert_eq!(one_short.uids(), uids[19..29]);
    assert!(one_short.has_more());

    let past = h.get("/accounts?offset=30").await;
    assert!(past.data().is_empty());
    assert!(!past.has_more());
    let far = h.get("/accounts?offset=99999999999999999999999").await;
    assert_eq!(far.status, StatusCode::OK);
    assert!(far.data().is_empty());

    // Walking the pages visits every account once, in creation order.
    let mut walked = Vec::new();
    let mut offset = 0;
    loop {
        let page = h.get(&format!("/accounts?offset={offset}&limit=7")).await;
        walked.extend(page.uids());
        offset += 7;
        if !page.has_more() {
            break;
        }
    }
    assert_eq!(walked, uids);
}

#[tokio::test]
async fn limits_above_100_are_clamped_not_refused() {
    let h = start().await;
    let uids = insert_many(&h.sim, 130);
    for limit in ["101", "500", "99999999999999999999999"] {
        let reply = h.get(&format!("/accounts?limit={limit}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{limit}");
        assert_eq!(reply.body["limit"], 100);
        assert_eq!(reply.uids(), uids[..100]);
        assert!(reply.has_more());
    }
    let reply = h.get("/accounts?limit=100&offset=100").await;
    assert_eq!(reply.uids(), uids[100..]);
    assert!(!reply.has_more());
    let team = h.sim.add_team("Big", false);
    for uid in &uids {
        assert!(h.sim.add_member(team, uid));
    }
    let members = h.get(&format!("/teams/{team}/members?limit=1000")).await;
    assert_eq!(members.body["limit"], 100);
    assert_eq!(members.uids(), uids[..100]);
    assert!(members.has_more());
    for i in 0..120 {
        h.sim.add_team(&format!("team {i}"), false);
    }
    let teams = h.get("/teams?limit=101").await;
    assert_eq!((teams.data().len(), teams.has_more()), (100, true));
}

#[tokio::test]
async fn bad_paging_and_unknown_parameters_answer_400() {
    let h = start().await;
    for path in ["/accounts", "/teams", "/teams/50/members"] {
        for query in [
            "offset=-1",
            "offset=abc",
            "offset=1.5",
            "offset=",
            "limit=0",
            "limit=-3",
            "limit=x",
            "limit=",
            "limit=10&limit=10",
            "page=2",
            "Offset=1",
        ] {
            let reply = h.get(&format!("{path}?{query}")).await;
            assert_eq!(
                reply.status_code(),
                (StatusCode::BAD_REQUEST, "bad_request"),
                "{path}?{query}"
            );
        }
    }
    for (path, query) in [
        ("/accounts", "title=x"),
        ("/teams", "login=x"),
        ("/teams/50/members", "uid=x"),
        ("/accounts", "login=a&login=b"),
    ] {
        let reply = h.get(&format!("{path}?{query}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}?{query}");
    }
}

// ---------------------------------------------------------------- accounts

#[tokio::test]
async fn create_answers_the_account_with_origin_idp_and_unix_timestamps() {
    let h = start().await;
    h.sim.set_clock(Some(datetime!(2026-01-01 00:00:00.75 UTC)));
    let body = json!({
        "login": "jane.doe@example.com",
        "email": "Jane.Doe@Example.com",
        "first_name": "Jane",
        "last_name": "Doe",
    });
    let reply = h.post("/accounts", body).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let account = reply.body;
    let keys: Vec<&str> = account
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "uid",
            "login",
            "email",
            "first_name",
            "last_name",
            "origin",
            "created_at",
            "updated_at"
        ]
    );
    let uid = account["uid"].as_str().unwrap();
    let hex = uid.strip_prefix("acc_").unwrap();
    assert!(
        hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{uid}"
    );
    assert_eq!(account["login"], "jane.doe@example.com");
    assert_eq!(account["email"], "Jane.Doe@Example.com", "stored as sent");
    assert_eq!(account["first_name"], "Jane");
    assert_eq!(account["origin"], "idp");
    assert_eq!(account["created_at"], 1_767_225_600);
    assert_eq!(account["updated_at"], 1_767_225_600);
    assert_eq!(h.get(&format!("/accounts/{uid}")).await.body, account);
    assert_eq!(h.sim.account(uid), Some(account.clone()));

    h.sim.set_clock(None);
    let minimal = h
        .post(
            "/accounts",
            json!({ "login": "min", "email": "min@example.com", "last_name": null }),
        )
        .await
        .body;
    assert_eq!(
        (&minimal["first_name"], &minimal["last_name"]),
        (&json!(""), &json!(""))
    );
    let created = minimal["created_at"].as_u64().unwrap();
    assert!(created.abs_diff(epoch_now()) <= 5, "{created}");
}

#[tokio::test]
async fn create_requires_login_and_email_as_non_empty_strings() {
    let h = start().await;
    let cases = [
        (json!({ "email": "a@example.com" }), "login"),
        (json!({ "login": "a" }), "email"),
        (json!({ "login": "", "email": "a@example.com" }), "login"),
        (json!({ "login": "a", "email": "" }), "email"),
        (json!({ "login": 7, "email": "a@example.com" }), "login"),
        (json!({ "login": null, "email": "a@example.com" }), "login"),
        (
            json!({ "login": "a", "email": "a@example.com", "first_name": 1 }),
            "first_name",
        ),
        (
            json!({ "login": "a", "email": "a@example.com", "last_name": {} }),
            "last_name",
        ),
    ];
    for (body, field) in cases {
        let reply = h.post("/accounts", body.clone()).await;
        assert_eq!(
            reply.status_code(),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            "{body}"
        );
        assert!(
            reply.message().contains(field),
            "{body}: {}",
            reply.message()
        );
    }
    let reply = h.post("/accounts", json!({})).await;
    assert!(reply.message().contains("login") && reply.message().contains("email"));
    assert!(h.sim.accounts().is_empty(), "nothing refused was created");
}

#[tokio::test]
async fn login_and_email_are_each_unique_case_insensitively() {
    let h = start().await;
    let jane = h
        .post(
            "/accounts",
            json!({ "login": "Jane", "email": "jane@example.com" }),
        )
        .await;
    let jane_uid = jane.body["uid"].as_str().unwrap();
    let cases = [
        (
            json!({ "login": "JANE", "email": "other@example.com" }),
            "login_taken",
        ),
        (
            json!({ "login": "other", "email": "JANE@EXAMPLE.COM" }),
            "email_taken",
        ),
        (
            json!({ "login": "jane", "email": "Jane@Example.com" }),
            "login_taken",
        ),
    ];
    for (body, code) in cases {
        let reply = h.post("/accounts", body.clone()).await;
        assert_eq!(reply.status_code(), (StatusCode::CONFLICT, code), "{body}");
        assert!(reply.message().contains(jane_uid), "{}", reply.message());
    }
    // A login may equal another account's email: they are separate namespaces.
    let reply = h
        .post(
            "/accounts",
            json!({ "login": "jane@example.com", "email": "j2@example.com" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(h.sim.accounts().len(), 2);
}

#[tokio::test]
async fn filters_login_and_email_are_exact_case_insensitive_and_combinable() {
    let h = start().await;
    let a = h
        .sim
        .insert_account(json!({ "login": "Ann", "email": "Ann@X.com" }))
        .unwrap();
    let b = h
        .sim
        .insert_account(json!({ "login": "bob", "email": "bob@x.com" }))
        .unwrap();
    let cases = [
        ("login=ANN", vec![a.as_str()]),
        ("email=ann%40x.COM", vec![a.as_str()]),
        ("login=ann&email=ANN@x.com", vec![a.as_str()]),
        ("login=ann&email=bob@x.com", vec![]),
        ("login=an", vec![]),
        ("email=x.com", vec![]),
        ("login=", vec![]),
        ("email=BOB@X.COM&limit=1", vec![b.as_str()]),
        ("", vec![a.as_str(), b.as_str()]),
    ];
    for (query, expected) in cases {
        let reply = h.get(&format!("/accounts?{query}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{query}");
        assert_eq!(reply.uids(), expected, "{query}");
        assert!(!reply.has_more(), "{query}");
    }
    let offset = h.get("/accounts?login=ann&offset=1").await;
    assert!(offset.data().is_empty());
}

#[tokio::test]
async fn uids_are_unique_and_never_reused() {
    let h = start().await;
    let mut seen = Vec::new();
    for i in 0..5 {
        let uid = h.create(&format!("u{i}")).await;
        assert!(!seen.contains(&uid));
        seen.push(uid);
    }
    for uid in seen.clone() {
        assert_eq!(
            h.delete(&format!("/accounts/{uid}")).await.status,
            StatusCode::NO_CONTENT
        );
    }
    for i in 0..5 {
        let uid = h.create(&format!("u{i}")).await;
        assert!(!seen.contains(&uid), "{uid} was handed out before");
        seen.push(uid);
    }
}

#[tokio::test]
async fn unknown_accounts_answer_404() {
    let h = start().await;
    for (method, path) in [
        (Method::GET, "/accounts/acc_000000"),
        (Method::DELETE, "/accounts/acc_000000"),
        (Method::POST, "/accounts/acc_000000/claim"),
        (Method::GET, "/accounts/nobody%20here"),
    ] {
        let reply = h.call(method.clone(), path, None).await;
        assert_eq!(
            reply.status_code(),
            (StatusCode::NOT_FOUND, "not_found"),
            "{method} {path}"
        );
    }
    let body = json!({ "login": "a", "email": "a@example.com" });
    let reply = h.put("/accounts/acc_000000", body).await;
    assert_eq!(reply.status_code(), (StatusCode::NOT_FOUND, "not_found"));
    let reply = h.put("/accounts/acc_000000", json!({})).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "404 comes before 422");
    assert!(h.sim.accounts().is_empty());
}

#[tokio::test]
async fn put_replaces_all_four_fields() {
    let h = start().await;
    h.sim.set_clock(Some(datetime!(2026-01-01 00:00:00 UTC)));
    let uid = h
        .sim
        .insert_account(json!({
            "login": "jane",
            "email": "jane@example.com",
            "first_name": "Jane",
            "last_name": "Doe",
            "origin": "local",
        }))
        .unwrap();
    let other = h.create("other").await;
    h.sim.set_clock(Some(datetime!(2026-01-02 00:00:00 UTC)));
    let path = format!("/accounts/{uid}");

    let reply = h
        .put(
            &path,
            json!({ "login": "jane.d", "email": "jane.doe@example.com", "extra": 1 }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let expected = json!({
        "uid": uid,
        "login": "jane.d",
        "email": "jane.doe@example.com",
        "first_name": "",
        "last_name": "",
        "origin": "local",
        "created_at": 1_767_225_600,
        "updated_at": 1_767_312_000,
    });
    assert_eq!(
        reply.body, expected,
        "absent fields become empty; origin is untouched"
    );
    assert_eq!(h.get(&path).await.body, expected);

    let reply = h
        .put(
            &path,
            json!({ "login": "JANE.D", "email": "Jane.Doe@example.com", "first_name": null }),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "its own login and email are not taken"
    );
    assert_eq!(reply.body["login"], "JANE.D");
    let expected = reply.body;

    for body in [
        json!({ "login": "jane" }),
        json!({ "email": "jane@example.com" }),
        json!({ "login": "", "email": "jane@example.com" }),
        json!({ "login": "jane", "email": "j@example.com", "last_name": 5 }),
    ] {
        let reply = h.put(&path, body.clone()).await;
        assert_eq!(
            reply.status_code(),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            "{body}"
        );
    }
    let taken = h
        .put(
            &path,
            json!({ "login": "OTHER", "email": "other@example.com" }),
        )
        .await;
    assert_eq!(taken.status_code(), (StatusCode::CONFLICT, "login_taken"));
    assert!(taken.message().contains(&other));
    let taken = h
        .put(
            &path,
            json!({ "login": "jane", "email": "Other@Example.com" }),
        )
        .await;
    assert_eq!(taken.status_code(), (StatusCode::CONFLICT, "email_taken"));
    assert_eq!(
        h.get(&path).await.body,
        expected,
        "refused replaces change nothing"
    );

    // The old login and email are free again; the new ones are found by the filters.
    h.create("jane").await;
    let by_email = h.get("/accounts?email=JANE.DOE@example.com").await;
    assert_eq!(by_email.uids(), [uid.as_str()]);
}

#[tokio::test]
async fn claim_takes_a_local_account_over_idempotently() {
    let h = start().await;
    h.sim.set_clock(Some(datetime!(2026-01-01 00:00:00 UTC)));
    let local = h
        .sim
        .insert_account(json!({ "login": "l", "email": "l@example.com", "origin": "local" }))
        .unwrap();
    assert_eq!(h.sim.account(&local).unwrap()["origin"], "local");
    h.sim.set_clock(Some(datetime!(2026-01-02 00:00:00 UTC)));
    let path = format!("/accounts/{local}/claim");
    let first = h.call(Method::POST, &path, None).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body["origin"], "idp");
    assert_eq!(first.body["uid"], local.as_str());
    assert_eq!(first.body["updated_at"], 1_767_312_000);
    assert_eq!(first.body["created_at"], 1_767_225_600);

    h.sim.set_clock(Some(datetime!(2026-01-03 00:00:00 UTC)));
    let again = h
        .call(Method::POST, &path, Some(json!({ "ignored": true })))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, first.body, "a second claim changes nothing");
    assert_eq!(h.sim.account(&local), Some(first.body));

    let idp = h.create("i").await;
    let before = h.sim.account(&idp).unwrap();
    let claimed = h
        .call(Method::POST, &format!("/accounts/{idp}/claim"), None)
        .await;
    assert_eq!((claimed.status, claimed.body), (StatusCode::OK, before));
}

#[tokio::test]
async fn delete_removes_the_account_and_its_memberships_for_good() {
    let h = start().await;
    let a = h.create("a").await;
    let b = h.create("b").await;
    let t1 = h.create_team("One").await;
    let t2 = h.create_team("Two").await;
    assert_eq!(h.add(t1, &[&a, &b]).await.status, StatusCode::NO_CONTENT);
    assert_eq!(h.add(t2, &[&a]).await.status, StatusCode::NO_CONTENT);
    assert!(h.sim.add_member(EVERYONE, &a));

    let path = format!("/accounts/{a}");
    let reply = h.delete(&path).await;
    assert_eq!(
        (reply.status, reply.body),
        (StatusCode::NO_CONTENT, Value::Null)
    );
    assert_eq!(
        h.get(&path).await.status_code(),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert_eq!(h.delete(&path).await.status, StatusCode::NOT_FOUND);
    let claim = h.call(Method::POST, &format!("{path}/claim"), None).await;
    assert_eq!(claim.status, StatusCode::NOT_FOUND);
    let put = h
        .put(&path, json!({ "login": "a", "email": "a@example.com" }))
        .await;
    assert_eq!(
        put.status,
        StatusCode::NOT_FOUND,
        "a deleted account is not re-created"
    );

    assert_eq!(h.member_list(t1).await, [b.as_str()]);
    assert!(h.member_list(t2).await.is_empty());
    assert!(h.sim.team_members(EVERYONE).is_empty());
    assert_eq!(h.get("/accounts").await.uids(), [b.as_str()]);
    assert!(h.get("/accounts?login=a").await.data().is_empty());
    // Adding the deleted uid again is an unknown account.
    let reply = h.add(t1, &[&a]).await;
    assert_eq!(reply.status_code(), (StatusCode::NOT_FOUND, "not_found"));
    // Its login and email are free; the new account has a new uid.
    let again = h.create("a").await;
    assert_ne!(again, a);
}

// ---------------------------------------------------------------- teams

#[tokio::test]
async fn the_reserved_teams_always_exist() {
    let h = start().await;
    let reply = h.get("/teams").await;
    assert_eq!(
        reply.data(),
        [
            json!({ "team_id": 50, "title": "Everyone", "reserved": true }),
            json!({ "team_id": 51, "title": "Admin Center Administrators", "reserved": true }),
        ]
    );
    assert!(!reply.has_more());
    let everyone = h.get("/teams/50").await;
    assert_eq!(everyone.body["title"], "Everyone");
    let admins = h.get("/teams?title=admin%20center%20ADMINISTRATORS").await;
    assert_eq!(admins.data()[0]["team_id"], ADMINS);
    assert_eq!(h.sim.teams().len(), 2);
}

#[tokio::test]
async fn teams_are_created_with_unique_titles_and_fresh_ids() {
    let h = start().await;
    h.sim.set_clock(Some(datetime!(2026-01-01 00:00:00 UTC)));
    let reply = h
        .post("/teams", json!({ "title": "Regional Marketing" }))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(
        reply.body,
        json!({ "team_id": 52, "title": "Regional Marketing", "reserved": false })
    );
    assert_eq!(h.get("/teams/52").await.body, reply.body);
    for title in [
        "regional MARKETING",
        "everyone",
        "ADMIN CENTER ADMINISTRATORS",
    ] {
        let reply = h.post("/teams", json!({ "title": title })).await;
        assert_eq!(
            reply.status_code(),
            (StatusCode::CONFLICT, "title_taken"),
            "{title}"
        );
    }
    for body in [
        json!({}),
        json!({ "title": "" }),
        json!({ "title": 5 }),
        json!({ "name": "x" }),
    ] {
        let reply = h.post("/teams", body.clone()).await;
        assert_eq!(
            reply.status_code(),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            "{body}"
        );
        assert!(reply.message().contains("title"));
    }
    let second = h.create_team("Sales Ops").await;
    assert_eq!(second, 53);
    assert_eq!(h.delete("/teams/53").await.status, StatusCode::NO_CONTENT);
    let third = h.create_team("Sales Ops").await;
    assert_eq!(third, 54, "team ids are never reused");
    for path in [
        "/teams/53",
        "/teams/999",
        "/teams/abc",
        "/teams/052",
        "/teams/-1",
    ] {
        let reply = h.get(path).await;
        assert_eq!(
            reply.status_code(),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn teams_filter_by_title_and_page_like_accounts() {
    let h = start().await;
    for i in 0..30 {
        h.create_team(&format!("Team {i:02}")).await;
    }
    let page = h.get("/teams?offset=2&limit=3").await;
    assert_eq!(page.titles(), ["Team 00", "Team 01", "Team 02"]);
    assert!(page.has_more());
    assert_eq!(
        (page.body["offset"].as_u64(), page.body["limit"].as_u64()),
        (Some(2), Some(3))
    );
    let last = h.get("/teams?offset=30").await;
    assert_eq!(last.titles(), ["Team 28", "Team 29"]);
    assert!(!last.has_more());
    let found = h.get("/teams?title=team+07").await;
    assert_eq!(found.titles(), ["Team 07"]);
    assert!(h.get("/teams?title=Team").await.data().is_empty());
    assert!(
        h.get("/teams?title=team+07&offset=1")
            .await
            .data()
            .is_empty()
    );
    assert!(h.get("/teams").await.body.get("total").is_none());
}

#[tokio::test]
async fn patch_renames_with_unique_titles() {
    let h = start().await;
    let a = h.create_team("Alpha").await;
    h.create_team("Beta").await;
    let path = format!("/teams/{a}");
    let reply = h
        .patch(&path, json!({ "title": "Gamma", "reserved": true }))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({ "team_id": a, "title": "Gamma", "reserved": false })
    );
    let reply = h.patch(&path, json!({ "title": "GAMMA" })).await;
    assert_eq!(
        reply.body["title"], "GAMMA",
        "a team may change the case of its own title"
    );
    for title in ["beta", "Everyone"] {
        let reply = h.patch(&path, json!({ "title": title })).await;
        assert_eq!(
            reply.status_code(),
            (StatusCode::CONFLICT, "title_taken"),
            "{title}"
        );
    }
    for body in [json!({}), json!({ "title": "" }), json!({ "title": null })] {
        let reply = h.patch(&path, body.clone()).await;
        assert_eq!(
            reply.status_code(),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            "{body}"
        );
    }
    assert_eq!(h.get(&path).await.body["title"], "GAMMA");
    // The old title is free again and the new one is indexed.
    h.create_team("Alpha").await;
    assert_eq!(h.get("/teams?title=gamma").await.data()[0]["team_id"], a);
    let reply = h.patch("/teams/999", json!({ "title": "x" })).await;
    assert_eq!(reply.status_code(), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn deleting_a_team_keeps_its_members_accounts() {
    let h = start().await;
    let uid = h.create("a").await;
    let team = h.create_team("Doomed").await;
    h.add(team, &[&uid]).await;
    let reply = h.delete(&format!("/teams/{team}")).await;
    assert_eq!(
        (reply.status, reply.body),
        (StatusCode::NO_CONTENT, Value::Null)
    );
    assert_eq!(
        h.get(&format!("/teams/{team}")).await.status,
        StatusCode::NOT_FOUND
    );
    let members = h.get(&format!("/teams/{team}/members")).await;
    assert_eq!(members.status_code(), (StatusCode::NOT_FOUND, "not_found"));
    assert_eq!(
        h.delete(&format!("/teams/{team}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(h.sim.account(&uid).is_some());
    // The title is free; deleting the account later touches no stale team.
    h.create_team("doomed").await;
    assert_eq!(
        h.delete(&format!("/accounts/{uid}")).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn members_are_added_and_removed_idempotently_in_insertion_order() {
    let h = start().await;
    let [a, b, c] = [
        h.create("a").await,
        h.create("b").await,
        h.create("c").await,
    ];
    let team = h.create_team("Team").await;
    let reply = h.add(team, &[&b, &a]).await;
    assert_eq!(
        (reply.status, reply.body),
        (StatusCode::NO_CONTENT, Value::Null)
    );
    assert_eq!(h.member_list(team).await, [b.clone(), a.clone()]);
    assert_eq!(
        h.add(team, &[&a, &c, &c, &b]).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.member_list(team).await, [b.clone(), a.clone(), c.clone()]);
    assert_eq!(h.sim.team_members(team), [b.clone(), a.clone(), c.clone()]);

    let page = h.get(&format!("/teams/{team}/members?limit=2")).await;
    assert_eq!(page.data(), [json!({ "uid": b }), json!({ "uid": a })]);
    assert!(page.has_more());
    let rest = h
        .get(&format!("/teams/{team}/members?offset=2&limit=2"))
        .await;
    assert_eq!(rest.uids(), [c.as_str()]);
    assert!(!rest.has_more());

    let other = h.create("other").await;
    let reply = h.remove(team, &[&a, &other, "acc_unknown", &a]).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "non-members are fine");
    assert_eq!(h.member_list(team).await, [b.clone(), c.clone()]);
    assert_eq!(h.remove(team, &[&a]).await.status, StatusCode::NO_CONTENT);
    assert_eq!(h.add(team, &[]).await.status, StatusCode::NO_CONTENT);
    assert_eq!(h.add(team, &[&a]).await.status, StatusCode::NO_CONTENT);
    assert_eq!(
        h.member_list(team).await,
        [b, c, a],
        "a re-added member goes last"
    );
}

#[tokio::test]
async fn adding_an_unknown_uid_names_it_and_adds_nothing() {
    let h = start().await;
    let a = h.create("a").await;
    let team = h.create_team("Team").await;
    let reply = h.add(team, &[&a, "acc_nope00"]).await;
    assert_eq!(reply.status_code(), (StatusCode::NOT_FOUND, "not_found"));
    assert!(
        reply.message().contains("acc_nope00"),
        "{}",
        reply.message()
    );
    assert!(h.member_list(team).await.is_empty(), "all or nothing");
    for path in [
        "/teams/999/members",
        "/teams/x/members",
        "/teams/999/members/remove",
    ] {
        let reply = h.post(path, json!({ "uids": [a] })).await;
        assert_eq!(
            reply.status_code(),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
    assert_eq!(
        h.get("/teams/999/members").await.status,
        StatusCode::NOT_FOUND
    );
    for body in [
        json!({}),
        json!({ "uids": a }),
        json!({ "uids": [1] }),
        json!({ "uid": [a] }),
    ] {
        let reply = h
            .post(&format!("/teams/{team}/members"), body.clone())
            .await;
        assert_eq!(
            reply.status_code(),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn at_most_100_uids_per_membership_call() {
    let h = start().await;
    let uids = insert_many(&h.sim, 101);
    let refs: Vec<&str> = uids.iter().map(String::as_str).collect();
    let team = h.create_team("Team").await;
    let reply = h.add(team, &refs).await;
    assert_eq!(
        reply.status_code(),
        (StatusCode::UNPROCESSABLE_ENTITY, "too_many")
    );
    assert!(reply.message().contains("100"));
    assert!(h.sim.team_members(team).is_empty());
    assert_eq!(
        h.add(team, &refs[..100]).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.sim.team_members(team), uids[..100]);
    let reply = h.remove(team, &refs).await;
    assert_eq!(
        reply.status_code(),
        (StatusCode::UNPROCESSABLE_ENTITY, "too_many")
    );
    assert_eq!(h.sim.team_members(team).len(), 100);
    assert_eq!(
        h.remove(team, &refs[1..]).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.sim.team_members(team), uids[..1]);
}

#[tokio::test]
async fn reserved_teams_refuse_every_change_from_the_api() {
    let h = start().await;
    let uid = h.create("a").await;
    assert!(
        h.sim.add_member(ADMINS, &uid),
        "the application's administrators may"
    );
    for team in [EVERYONE, ADMINS] {
        let cases = [
            (
                Method::PATCH,
                format!("/teams/{team}"),
                Some(json!({ "title": "Renamed" })),
            ),
            (Method::PATCH, format!("/teams/{team}"), Some(json!({}))),
            (Method::DELETE, format!("/teams/{team}"), None),
            (
                Method::POST,
                format!("/teams/{team}/members"),
                Some(json!({ "uids": [uid] })),
            ),
            (
                Method::POST,
                format!("/teams/{team}/members"),
                Some(json!({ "uids": [] })),
            ),
            (
                Method::POST,
                format!("/teams/{team}/members/remove"),
                Some(json!({ "uids": [uid] })),
            ),
        ];
        for (method, path, body) in cases {
            let reply = h.call(method.clone(), &path, body).await;
            assert_eq!(
                reply.status_code(),
                (StatusCode::FORBIDDEN, "reserved"),
                "{method} {path}"
            );
        }
        let members = h.get(&format!("/teams/{team}/members")).await;
        assert_eq!(members.status, StatusCode::OK, "reading is allowed");
    }
    assert_eq!(h.member_list(ADMINS).await, [uid.as_str()]);
    assert!(h.member_list(EVERYONE).await.is_empty());
    assert_eq!(h.get("/teams").await.titles(), RESERVED_TEAMS);
    // A plain team cannot be renamed to a reserved title either.
    let team = h.create_team("Plain").await;
    let reply = h
        .patch(&format!("/teams/{team}"), json!({ "title": "EVERYONE" }))
        .await;
    assert_eq!(reply.status_code(), (StatusCode::CONFLICT, "title_taken"));
}

// ---------------------------------------------------------------- knobs and failures

#[tokio::test]
async fn rate_limit_answers_429_with_a_future_reset_epoch() {
    let h = start().await;
    h.sim.set_knobs(Knobs {
        rate_limit_per_second: Some(1),
        ..Knobs::default()
    });
    assert_eq!(h.get("/accounts").await.status, StatusCode::OK);
    let before = epoch_now();
    let limited = h.get("/accounts").await;
    assert_eq!(
        limited.status_code(),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    assert!(
        limited.headers.get(header::RETRY_AFTER).is_none(),
        "not Retry-After"
    );
    let reset: u64 = limited.headers["X-RateLimit-Reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset > before, "{reset} is not after {before}");
    assert!(reset <= epoch_now() + 2, "{reset} is too far");
    let refused = h
        .post(
            "/accounts",
            json!({ "login": "x", "email": "x@example.com" }),
        )
        .await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        h.sim.accounts().is_empty(),
        "a refused request does nothing"
    );

    h.sim.set_knobs(Knobs::default());
    assert_eq!(h.get("/accounts").await.status, StatusCode::OK);
    h.sim.set_knobs(Knobs {
        rate_limit_per_second: Some(0),
        ..Knobs::default()
    });
    assert_eq!(h.get("/teams").await.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn maintenance_answers_503_with_a_json_error() {
    let h = start().await;
    h.sim.set_knobs(Knobs {
        maintenance_retry_after: Some(120),
        ..Knobs::default()
    });
    for headers in [&[][..], &[("Authorization", AUTH)][..]] {
        let reply = h
            .raw(Method::GET, "/accounts", headers, None)
            .await
            .unwrap();
        assert_eq!(
            reply.status_code(),
            (StatusCode::SERVICE_UNAVAILABLE, "maintenance")
        );
        assert!(!reply.message().is_empty());
        assert!(reply.headers.get(header::RETRY_AFTER).is_none());
    }
    h.sim.set_knobs(Knobs::default());
    assert_eq!(h.get("/accounts").await.status, StatusCode::OK);
}

#[tokio::test]
async fn latency_is_added_to_every_answer() {
    let h = start().await;
    let latency = Duration::from_millis(60);
    h.sim.set_knobs(Knobs {
        latency,
        ..Knobs::default()
    });
    let started = Instant::now();
    assert_eq!(h.get("/teams").await.status, StatusCode::OK);
    assert!(started.elapsed() >= latency, "{:?}", started.elapsed());
}

#[tokio::test]
async fn injected_statuses_fire_count_times_before_doing_anything() {
    let h = start().await;
    h.sim.inject_failure(FailureRule {
        method: Some(Method::POST),
        path_contains: Some("/accounts".into()),
        count: 2,
        kind: FailureKind::Status(500),
    });
    h.sim.inject_failure(FailureRule {
        method: None,
        path_contains: Some("/teams?title=Flaky".into()),
        count: 1,
        kind: FailureKind::Status(502),
    });
    assert_eq!(
        h.get("/accounts").await.status,
        StatusCode::OK,
        "method must match"
    );
    let body = json!({ "login": "a", "email": "a@example.com" });
    for _ in 0..2 {
        let reply = h.post("/accounts", body.clone()).await;
        assert_eq!(
            reply.status_code(),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
        );
        assert!(h.sim.accounts().is_empty(), "nothing was done");
    }
    assert_eq!(h.post("/accounts", body).await.status, StatusCode::CREATED);
    assert_eq!(
        h.get("/teams").await.status,
        StatusCode::OK,
        "path must match"
    );
    let reply = h.get("/teams?title=Flaky").await;
    assert_eq!(
        reply.status_code(),
        (StatusCode::BAD_GATEWAY, "internal_error")
    );
    assert_eq!(h.get("/teams?title=Flaky").await.status, StatusCode::OK);
}

#[tokio::test]
async fn dropped_connections_before_and_after_commit() {
    let h = start().await;
    h.sim.inject_failure(FailureRule {
        method: Some(Method::POST),
        path_contains: None,
        count: 1,
        kind: FailureKind::DropBeforeCommit,
    });
    let body = json!({ "login": "before", "email": "before@example.com" });
    let result = h.try_call(Method::POST, "/accounts", Some(body)).await;
    assert!(result.is_err(), "{result:?}");
    assert!(h.sim.accounts().is_empty());

    h.sim.inject_failure(FailureRule {
        method: Some(Method::POST),
        path_contains: Some("/accounts".into()),
        count: 1,
        kind: FailureKind::DropAfterCommit,
    });
    let body = json!({ "login": "after", "email": "after@example.com" });
    let result = h
        .try_call(Method::POST, "/accounts", Some(body.clone()))
        .await;
    assert!(result.is_err(), "{result:?}");
    let accounts = h.sim.accounts();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["login"], "after");
    // The retry a client would make now meets the committed account.
    let retry = h.post("/accounts", body).await;
    assert_eq!(retry.status_code(), (StatusCode::CONFLICT, "login_taken"));
    let found = h.get("/accounts?email=AFTER@example.com").await;
    assert_eq!(found.data(), accounts);
}

#[tokio::test]
async fn requests_are_counted_and_logged() {
    let h = start().await;
    h.get("/accounts?offset=2").await;
    h.raw(Method::GET, "/teams", &[], None).await.unwrap();
    h.post("/teams", json!({ "title": "T" })).await;
    assert_eq!(h.sim.request_count(), 3);
    assert_eq!(
        h.sim.requests(),
        vec![
            (Method::GET, "/v2/accounts?offset=2".to_owned()),
            (Method::GET, "/v2/teams".to_owned()),
            (Method::POST, "/v2/teams".to_owned()),
        ]
    );
    h.sim.clear_requests();
    assert!(h.sim.requests().is_empty());
    h.get("/teams").await;
    assert_eq!(h.sim.requests().len(), 1);
    assert_eq!(h.sim.request_count(), 4);
}

// ---------------------------------------------------------------- lifecycle and direct API

#[tokio::test]
async fn serve_uses_the_base_path_and_stops_on_shutdown() {
    let sim = PartnerDirectory::new(TOKEN);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let base = String::from("partner/api/");
    let task = tokio::spawn(sim.clone().serve(listener, &base, async move {
        let _ = rx.await;
    }));
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let get = |path: &str| {
        let request = Request::get(format!("http://{addr}{path}"))
            .header("Authorization", AUTH)
            .body(Full::new(Bytes::new()))
            .unwrap();
        client.request(request)
    };
    assert_eq!(
        get("/partner/api/teams").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        get("/v2/teams").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn spawn_serves_under_v2_and_stop_lets_in_flight_requests_finish() {
    let h = start().await;
    let addr = h.running.addr();
    assert_eq!(h.running.base_url(), format!("http://{addr}/v2"));
    h.sim.set_knobs(Knobs {
        latency: Duration::from_millis(300),
        ..Knobs::default()
    });
    let Harness {
        sim,
        running,
        client,
    } = h;
    let in_flight = tokio::spawn(async move {
        let request = Request::get(format!("http://{addr}/v2/accounts"))
            .header("Authorization", AUTH)
            .body(Full::new(Bytes::new()))
            .unwrap();
        client.request(request).await.map(|r| r.status())
    });
    wait_until("the request to reach the simulator", async || {
        sim.request_count() > 0
    })
    .await;
    running.stop().await;
    assert_eq!(in_flight.await.unwrap().unwrap(), StatusCode::OK);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn http2_prior_knowledge_is_served() {
    let h = start().await;
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new());
    let request = Request::get(format!("{}/teams", h.running.base_url()))
        .header("Authorization", AUTH)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(
        (response.status(), response.version()),
        (StatusCode::OK, http::Version::HTTP_2)
    );
}

#[tokio::test]
async fn seed_demo_is_idempotent() {
    let h = start().await;
    h.sim.seed_demo();
    h.sim.seed_demo();
    let teams = h.get("/teams").await;
    assert_eq!(
        teams.titles(),
        [
            "Everyone",
            "Admin Center Administrators",
            "Regional Marketing",
            "Sales Ops"
        ]
    );
    let reserved: Vec<bool> = teams
        .data()
        .iter()
        .map(|t| t["reserved"].as_bool().unwrap())
        .collect();
    assert_eq!(reserved, [true, true, false, false]);
    let accounts = h.sim.accounts();
    assert_eq!(accounts.len(), 2);
    assert_eq!(
        (&accounts[0]["login"], &accounts[0]["origin"]),
        (&json!("jane.doe@example.com"), &json!("idp"))
    );
    assert_eq!(
        (&accounts[1]["login"], &accounts[1]["origin"]),
        (&json!("john.smith@example.com"), &json!("local"))
    );
    assert_eq!(
        h.sim.team_members(52),
        [accounts[0]["uid"].as_str().unwrap()]
    );
    assert_eq!(
        h.sim.team_members(53),
        [accounts[1]["uid"].as_str().unwrap()]
    );
    // The take-over the contract describes: find by email, claim.
    let found = h.get("/accounts?email=JOHN.SMITH@example.com").await;
    let uid = found.uids()[0].clone();
    let claimed = h
        .call(Method::POST, &format!("/accounts/{uid}/claim"), None)
        .await;
    assert_eq!(claimed.body["origin"], "idp");
}

#[tokio::test]
async fn direct_api_applies_the_same_rules() {
    let sim = PartnerDirectory::new(TOKEN);
    let uid = sim
        .insert_account(json!({ "login": "Jane", "email": "jane@example.com" }))
        .unwrap();
    assert_eq!(
        sim.account(&uid).unwrap()["origin"],
        "idp",
        "idp by default"
    );
    let err = sim
        .insert_account(json!({ "login": "JANE", "email": "x@example.com" }))
        .unwrap_err();
    assert!(err.starts_with("login_taken"), "{err}");
    let err = sim
        .insert_account(json!({ "login": "x", "email": "JANE@example.com" }))
        .unwrap_err();
    assert!(err.starts_with("email_taken"), "{err}");
    let err = sim.insert_account(json!({ "login": "x" })).unwrap_err();
    assert!(err.starts_with("invalid") && err.contains("email"), "{err}");
    let err = sim
        .insert_account(json!({ "login": "x", "email": "x@x", "origin": "ldap" }))
        .unwrap_err();
    assert!(
        err.starts_with("invalid") && err.contains("origin"),
        "{err}"
    );
    assert!(sim.insert_account(json!(["login"])).is_err());
    assert_eq!(sim.accounts().len(), 1);
    assert!(sim.account("acc_none").is_none());

    let team = sim.add_team("Sales", false);
    assert_eq!(team, 52);
    assert_eq!(
        sim.add_team("SALES", true),
        team,
        "an existing title answers its team"
    );
    let locked = sim.add_team("Locked", true);
    assert_eq!(
        sim.teams().last(),
        Some(&json!({ "team_id": locked, "title": "Locked", "reserved": true }))
    );
    assert!(sim.add_member(team, &uid));
    assert!(sim.add_member(team, &uid));
    assert!(!sim.add_member(team, "acc_none"));
    assert!(!sim.add_member(999, &uid));
    assert_eq!(sim.team_members(team), [uid.as_str()]);
    assert!(sim.team_members(999).is_empty());
    assert!(sim.remove_member(team, &uid));
    assert!(sim.team_members(team).is_empty());
    assert!(!sim.remove_member(999, &uid));
}

#[tokio::test]
async fn large_directories_stay_indexed() {
    let h = start().await;
    let team = h.sim.add_team("Big", false);
    let mut last = String::new();
    for i in 0..20_000 {
        last = h
            .sim
            .insert_account(json!({
                "login": format!("user{i}@example.com"),
                "email": format!("User{i}@Example.com"),
            }))
            .unwrap();
        if i < 10_000 {
            assert!(h.sim.add_member(team, &last));
        }
    }
    let started = Instant::now();
    for _ in 0..50 {
        let reply = h.get("/accounts?login=USER19999@example.com").await;
        assert_eq!(reply.uids(), [last.as_str()]);
        let reply = h.get("/accounts?email=user19999@example.com").await;
        assert_eq!(reply.uids(), [last.as_str()]);
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let reply = h.get("/accounts?offset=19990&limit=100").await;
    assert_eq!((reply.data().len(), reply.has_more()), (10, false));
    assert_eq!(reply.uids().last(), Some(&last));
    let members = h
        .get(&format!("/teams/{team}/members?offset=9950&limit=100"))
        .await;
    assert_eq!((members.data().len(), members.has_more()), (50, false));
}
