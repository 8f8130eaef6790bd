//! Tests of the Marketing Center simulator over real sockets, through a small hyper-util
//! client: every rule of the contract, the knobs and the injected failures.

use std::time::{Duration, Instant};

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

const KEY: &str = "test-key";
const ACME: &str = "acme";
const GLOBEX: &str = "globex";

/// One answer: status, headers and the JSON body (`Null` when empty).
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["ErrorCode"].as_str().unwrap_or("")
    }

    fn items(&self) -> Vec<Value> {
        self.body["Items"].as_array().cloned().unwrap_or_default()
    }

    fn ids(&self) -> Vec<u64> {
        self.items()
            .iter()
            .map(|u| u["UserID"].as_u64().unwrap())
            .collect()
    }

    fn field_names(&self) -> Vec<String> {
        self.body["Fields"]
            .as_array()
            .map(|f| {
                f.iter()
                    .map(|p| p["Field"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

struct Harness {
    sim: MarketingCenter,
    running: RunningSimulator,
    client: Client<HttpConnector, Full<Bytes>>,
}

async fn start() -> Harness {
    let sim = MarketingCenter::new(KEY, [ACME, GLOBEX]);
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
        customer: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Reply, hyper_util::client::legacy::Error> {
        let headers = [("X-MC-Api-Key", KEY), ("X-MC-Customer", customer)];
        self.raw(method, path, &headers, body.map(|b| b.to_string()))
            .await
    }

    async fn call(&self, customer: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.try_call(customer, method, path, body).await.unwrap()
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(ACME, Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(ACME, Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call(ACME, Method::PATCH, path, Some(body)).await
    }

    async fn put(&self, path: &str) -> Reply {
        self.call(ACME, Method::PUT, path, None).await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.call(ACME, Method::DELETE, path, None).await
    }

    /// Creates a user of `customer` over HTTP and answers its id.
    async fn create(&self, customer: &str, body: Value) -> u64 {
        let reply = self
            .call(customer, Method::POST, "/users", Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply.body["UserID"].as_u64().unwrap()
    }

    async fn create_named(&self, logon: &str) -> u64 {
        self.create(ACME, json!({ "LogonName": logon })).await
    }
}

fn full_user() -> Value {
    json!({
        "LogonName": "jane.doe@example.com",
        "UserProfileFirstName": "Jane",
        "UserProfileLastName": "Doe",
        "UserProfileFullName": "Jane Doe",
        "UserProfileTitle": "Field Marketing Lead",
        "UserProfileEmailAddress": "jane.doe@example.com",
        "UserProfilePhone": "+1 555 0100",
        "UserProfileAddress1": "100 Main St",
        "UserProfileAddress2": "Suite 4",
        "UserProfileCity": "Springfield",
        "UserProfileState": "IL",
        "UserProfilePostalCode": "62701",
        "UserProfileCountry": "US",
        "ExternalIdentityProviderID": "00u1f2e3d4c5b6a7Z8x9"
    })
}

// ---------------------------------------------------------------- transport and auth

#[tokio::test]
async fn every_request_needs_the_key_and_a_configured_customer() {
    let h = start().await;
    let cases: [&[(&str, &str)]; 5] = [
        &[],
        &[("X-MC-Customer", ACME)],
        &[("X-MC-Api-Key", "wrong"), ("X-MC-Customer", ACME)],
        &[("X-MC-Api-Key", KEY)],
        &[("X-MC-Api-Key", KEY), ("X-MC-Customer", "initech")],
    ];
    for headers in cases {
        for path in ["/users", "/groups", "/no-such-route"] {
            let reply = h.raw(Method::GET, path, headers, None).await.unwrap();
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{headers:?} {path}");
            assert_eq!(reply.code(), "UNAUTHORIZED");
            assert!(!reply.body["Message"].as_str().unwrap().is_empty());
        }
    }
    let ok = [("x-mc-api-key", KEY), ("x-mc-customer", ACME)];
    let reply = h.raw(Method::GET, "/users", &ok, None).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        h.sim.users(ACME).is_empty(),
        "refused requests change nothing"
    );
}

#[tokio::test]
async fn customers_are_fully_separate() {
    let h = start().await;
    let id = h.create_named("jane@example.com").await;
    h.sim.add_group(ACME, "G-ACME01", "Sales");
    h.sim.add_group(GLOBEX, "G-GLBX01", "Sales");
    let other = h
        .create(GLOBEX, json!({ "LogonName": "jane@example.com" }))
        .await;
    assert_ne!(id, other, "ids are never shared between customers");

    let path = format!("/users/{id}");
    assert_eq!(
        h.call(GLOBEX, Method::GET, &path, None).await.code(),
        "USER_NOT_FOUND"
    );
    let city = Some(json!({ "UserProfileCity": "X" }));
    let patch = h.call(GLOBEX, Method::PATCH, &path, city).await;
    assert_eq!(
        (patch.status, patch.code()),
        (StatusCode::NOT_FOUND, "USER_NOT_FOUND")
    );
    let archive = h
        .call(GLOBEX, Method::POST, &format!("{path}/archive"), None)
        .await;
    assert_eq!(archive.code(), "USER_NOT_FOUND");
    let restore = h
        .call(GLOBEX, Method::POST, &format!("{path}/restore"), None)
        .await;
    assert_eq!(restore.code(), "USER_NOT_FOUND");
    let all = h
        .call(GLOBEX, Method::GET, "/users?IncludeArchived=true", None)
        .await;
    assert_eq!(all.ids(), vec![other]);
    let group = h.call(GLOBEX, Method::GET, "/groups/G-ACME01", None).await;
    assert_eq!(group.code(), "GROUP_NOT_FOUND");
    let member = format!("/groups/G-GLBX01/members/{id}");
    let put = h.call(GLOBEX, Method::PUT, &member, None).await;
    assert_eq!(
        (put.status, put.code()),
        (StatusCode::NOT_FOUND, "USER_NOT_FOUND")
    );
    assert!(h.sim.user(ACME, id).unwrap()["IsActive"].as_bool().unwrap());
    assert_eq!(h.sim.user(ACME, id).unwrap()["UserProfileCity"], "");
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods() {
    let h = start().await;
    let id = h.create_named("a@example.com").await;
    for path in [
        "/nothing",
        "/users/1/delete",
        "/users/",
        "/groups/G/members/1/x",
        "/users//1",
    ] {
        let reply = h.get(path).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::NOT_FOUND, "NOT_FOUND"),
            "{path}"
        );
    }
    // Outside the base path.
    let url = format!("http://{}/users", h.running.addr());
    let request = Request::get(url)
        .header("X-MC-Api-Key", KEY)
        .header("X-MC-Customer", ACME)
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        h.client.request(request).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    let cases = [
        (Method::DELETE, format!("/users/{id}"), "GET, PATCH"),
        (Method::PUT, "/users".to_owned(), "GET, POST"),
        (Method::GET, format!("/users/{id}/archive"), "POST"),
        (Method::POST, "/groups".to_owned(), "GET"),
        (Method::GET, "/groups/G/members/1".to_owned(), "PUT, DELETE"),
    ];
    for (method, path, allow) in cases {
        let reply = h.call(ACME, method.clone(), &path, None).await;
        assert_eq!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(reply.code(), "METHOD_NOT_ALLOWED");
        assert_eq!(reply.headers[header::ALLOW], allow);
    }
    for path in ["/users/abc", "/users/0", &format!("/users/0{id}")] {
        let reply = h.get(path).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::NOT_FOUND, "USER_NOT_FOUND")
        );
    }
}

#[tokio::test]
async fn bodies_must_be_json_objects_of_known_writable_fields() {
    let h = start().await;
    for bad in ["{", "", "[]", "\"x\"", "{\"LogonName\": \"a\",}"] {
        let headers = [("X-MC-Api-Key", KEY), ("X-MC-Customer", ACME)];
        let reply = h
            .raw(Method::POST, "/users", &headers, Some(bad.to_owned()))
            .await
            .unwrap();
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            "{bad}"
        );
    }
    let reply = h
        .post(
            "/users",
            json!({ "LogonName": "a", "Nickname": "x", "logonName": "b" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.code(), "VALIDATION_FAILED");
    assert_eq!(reply.field_names(), ["Nickname", "logonName"]);
    for read_only in [
        "UserID",
        "IsActive",
        "IsArchived",
        "CreatedUtc",
        "ModifiedUtc",
    ] {
        let mut body = json!({ "LogonName": "a" });
        body[read_only] = json!(true);
        let reply = h.post("/users", body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{read_only}"
        );
        assert_eq!(reply.field_names(), [read_only]);
        assert_eq!(reply.body["Fields"][0]["Problem"], "is read-only");
    }
    let id = h.create_named("a").await;
    let reply = h
        .patch(&format!("/users/{id}"), json!({ "IsArchived": true }))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.field_names(), ["IsArchived"]);
    assert_eq!(h.sim.users(ACME).len(), 1, "nothing refused was created");

    let huge = json!({ "LogonName": "x".repeat(2 * 1024 * 1024) });
    let reply = h.post("/users", huge).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE")
    );
}

// ---------------------------------------------------------------- users

#[tokio::test]
async fn create_answers_the_whole_user_in_contract_order() {
    let h = start().await;
    h.sim.set_clock(Some(datetime!(2026-03-01 10:00:00.75 UTC)));
    let reply = h.post("/users", full_user()).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let user = reply.body;
    let keys: Vec<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "UserID",
            "LogonName",
            "UserProfileFirstName",
            "UserProfileLastName",
            "UserProfileFullName",
            "UserProfileTitle",
            "UserProfileEmailAddress",
            "UserProfilePhone",
            "UserProfileAddress1",
            "UserProfileAddress2",
            "UserProfileCity",
            "UserProfileState",
            "UserProfilePostalCode",
            "UserProfileCountry",
            "IsActive",
            "IsArchived",
            "ExternalIdentityProviderID",
            "CreatedUtc",
            "ModifiedUtc",
        ]
    );
    for (name, value) in full_user().as_object().unwrap() {
        assert_eq!(&user[name], value, "{name}");
    }
    assert_eq!(user["IsActive"], true);
    assert_eq!(user["IsArchived"], false);
    assert_eq!(user["CreatedUtc"], "2026-03-01T10:00:00Z");
    assert_eq!(user["ModifiedUtc"], "2026-03-01T10:00:00Z");
    let id = user["UserID"].as_u64().unwrap();
    assert_eq!(h.get(&format!("/users/{id}")).await.body, user);

    h.sim.set_clock(None);
    let minimal = h.post("/users", json!({ "LogonName": "min" })).await.body;
    for field in validate::Field::ALL.into_iter().skip(1) {
        assert_eq!(
            minimal[field.name()],
            "",
            "{} is empty, not null",
            field.name()
        );
    }
    let created = minimal["CreatedUtc"].as_str().unwrap();
    assert_eq!(created.len(), 20);
    assert!(created.ends_with('Z'));
    time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339).unwrap();
}

#[tokio::test]
async fn user_ids_increase_and_are_never_reused() {
    let h = start().await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let customer = if i % 2 == 0 { ACME } else { GLOBEX };
        ids.push(
            h.create(customer, json!({ "LogonName": format!("u{i}") }))
                .await,
        );
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    // A refused create consumes nothing visible and renaming frees no id.
    let first = ids[0];
    h.patch(
        &format!("/users/{first}"),
        json!({ "LogonName": "renamed" }),
    )
    .await;
    let next = h.create_named("u0").await;
    assert!(next > ids[5]);
}

#[tokio::test]
async fn logon_names_are_unique_case_insensitively_archived_included() {
    let h = start().await;
    let jane = h.create_named("Jane.Doe@Example.com").await;
    for attempt in [
        "jane.doe@example.com",
        "JANE.DOE@EXAMPLE.COM",
        "Jane.Doe@Example.com",
    ] {
        let reply = h.post("/users", json!({ "LogonName": attempt })).await;
        assert_eq!(reply.status, StatusCode::CONFLICT);
        assert_eq!(reply.code(), "LOGON_NAME_TAKEN");
        assert_eq!(reply.body["ExistingUserID"], jane);
    }
    assert_eq!(
        h.post(&format!("/users/{jane}/archive"), json!({}))
            .await
            .status,
        StatusCode::OK
    );
    let reply = h
        .post("/users", json!({ "LogonName": "jane.doe@example.com" }))
        .await;
    assert_eq!(
        (reply.status, reply.body["ExistingUserID"].as_u64()),
        (StatusCode::CONFLICT, Some(jane))
    );
    // Another customer may use it.
    h.create(GLOBEX, json!({ "LogonName": "jane.doe@example.com" }))
        .await;

    // PATCH: taking another user's name is a conflict, changing one's own case is not.
    let john = h.create_named("john@example.com").await;
    let reply = h
        .patch(
            &format!("/users/{john}"),
            json!({ "LogonName": "JANE.doe@example.com" }),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "LOGON_NAME_TAKEN")
    );
    assert_eq!(reply.body["ExistingUserID"], jane);
    let reply = h
        .patch(
            &format!("/users/{john}"),
            json!({ "LogonName": "John@Example.com" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["LogonName"], "John@Example.com");
    // The old spelling is still John's, case-insensitively.
    let reply = h
        .post("/users", json!({ "LogonName": "john@example.com" }))
        .await;
    assert_eq!(reply.body["ExistingUserID"], john);
    // A renamed-away name is free again.
    h.patch(
        &format!("/users/{john}"),
        json!({ "LogonName": "johnny@example.com" }),
    )
    .await;
    h.create_named("john@example.com").await;
}

#[tokio::test]
async fn patch_changes_only_what_is_sent_and_bumps_modified() {
    let h = start().await;
    h.sim.set_clock(Some(datetime!(2026-03-01 10:00:00 UTC)));
    let id = h.create(ACME, full_user()).await;
    h.sim.set_clock(Some(datetime!(2026-03-04 08:15:30 UTC)));
    let path = format!("/users/{id}");
    let reply = h
        .patch(
            &path,
            json!({
                "UserProfileTitle": "VP Marketing",
                "UserProfileCity": null,
                "ExternalIdentityProviderID": null
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let user = reply.body;
    assert_eq!(user["UserProfileTitle"], "VP Marketing");
    assert_eq!(user["UserProfileCity"], "");
    assert_eq!(user["ExternalIdentityProviderID"], "");
    for untouched in [
        "LogonName",
        "UserProfileFirstName",
        "UserProfileState",
        "UserProfileCountry",
    ] {
        assert_eq!(user[untouched], full_user()[untouched], "{untouched}");
    }
    assert_eq!(user["CreatedUtc"], "2026-03-01T10:00:00Z");
    assert_eq!(user["ModifiedUtc"], "2026-03-04T08:15:30Z");
    assert_eq!(h.get(&path).await.body, user);

    // An empty PATCH is valid and still a modification.
    h.sim.set_clock(Some(datetime!(2026-03-05 00:00:00 UTC)));
    let reply = h.patch(&path, json!({})).await;
    assert_eq!(reply.body["ModifiedUtc"], "2026-03-05T00:00:00Z");

    // Archived users can be patched and stay archived.
    h.post(&format!("{path}/archive"), json!({})).await;
    let reply = h
        .patch(&path, json!({ "UserProfileCity": "Chicago" }))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["UserProfileCity"], "Chicago");
    assert_eq!(reply.body["IsArchived"], true);

    let reply = h
        .patch("/users/999999", json!({ "UserProfileCity": "X" }))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "USER_NOT_FOUND")
    );
    let reply = h.patch(&path, json!({ "LogonName": null })).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.field_names(), ["LogonName"]);
}

#[tokio::test]
async fn validation_reports_every_rule_and_every_problem() {
    let h = start().await;
    let single = [
        (json!({ "LogonName": "" }), "LogonName"),
        (json!({ "LogonName": "a".repeat(257) }), "LogonName"),
        (json!({ "LogonName": 42 }), "LogonName"),
        (json!({ "UserProfileFirstName": "a" }), "LogonName"),
        (
            json!({ "LogonName": "a", "UserProfileTitle": "t".repeat(101) }),
            "UserProfileTitle",
        ),
        (
            json!({ "LogonName": "a", "UserProfileState": "California" }),
            "UserProfileState",
        ),
        (
            json!({ "LogonName": "a", "UserProfileState": "il" }),
            "UserProfileState",
        ),
        (
            json!({ "LogonName": "a", "UserProfileState": "PR" }),
            "UserProfileState",
        ),
        (
            json!({ "LogonName": "a", "UserProfileCountry": "USA" }),
            "UserProfileCountry",
        ),
        (
            json!({ "LogonName": "a", "UserProfileCountry": "us" }),
            "UserProfileCountry",
        ),
        (
            json!({ "LogonName": "a", "UserProfileCountry": "XK" }),
            "UserProfileCountry",
        ),
        (
            json!({ "LogonName": "a", "UserProfilePhone": 5550100 }),
            "UserProfilePhone",
        ),
        (
            json!({ "LogonName": "a", "UserProfileCity": ["x"] }),
            "UserProfileCity",
        ),
        (
            json!({ "LogonName": "a", "ExternalIdentityProviderID": 7 }),
            "ExternalIdentityProviderID",
        ),
    ];
    for (body, field) in single {
        let reply = h.post("/users", body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(reply.code(), "VALIDATION_FAILED");
        assert_eq!(reply.field_names(), [field], "{body}");
        assert!(
            !reply.body["Fields"][0]["Problem"]
                .as_str()
                .unwrap()
                .is_empty()
        );
    }
    let all = json!({
        "LogonName": "a".repeat(300),
        "UserProfileFirstName": "f".repeat(101),
        "UserProfileState": "Ontario",
        "UserProfileCountry": "Canada",
        "UserProfileCity": false,
        "Extra": 1,
        "UserID": 5
    });
    let reply = h.post("/users", all).await;
    assert_eq!(
        reply.field_names(),
        [
            "LogonName",
            "UserProfileFirstName",
            "UserProfileState",
            "UserProfileCountry",
            "UserProfileCity",
            "Extra",
            "UserID"
        ]
    );
    assert!(h.sim.users(ACME).is_empty());

    let edges = json!({
        "LogonName": "é".repeat(256),
        "UserProfileTitle": "ü".repeat(100),
        "UserProfileState": "DC",
        "UserProfileCountry": "GB",
        "UserProfilePhone": null,
        "ExternalIdentityProviderID": "x".repeat(500)
    });
    let id = h.create(ACME, edges).await;
    for (state, country) in [
        ("QC", "CA"),
        ("YT", "CA"),
        ("WY", "US"),
        ("", ""),
        ("NU", "AX"),
    ] {
        let body = json!({ "UserProfileState": state, "UserProfileCountry": country });
        let reply = h.patch(&format!("/users/{id}"), body).await;
        assert_eq!(reply.status, StatusCode::OK, "{state} {country}");
        assert_eq!(reply.body["UserProfileState"], state);
    }
}

#[tokio::test]
async fn list_filters_are_exact_combinable_and_skip_archived() {
    let h = start().await;
    let alice = h
        .create(
            ACME,
            json!({
                "LogonName": "Alice@Example.com",
                "UserProfileEmailAddress": "alice@example.com",
                "ExternalIdentityProviderID": "00uA"
            }),
        )
        .await;
    let bob = h
        .create(
            ACME,
            json!({
                "LogonName": "bob@example.com",
                "UserProfileEmailAddress": "Shared@Example.com",
                "ExternalIdentityProviderID": "00uB"
            }),
        )
        .await;
    let carol = h
        .create(
            ACME,
            json!({
                "LogonName": "carol+mkt@example.com",
                "UserProfileEmailAddress": "shared@example.com",
                "ExternalIdentityProviderID": "00uB"
            }),
        )
        .await;
    assert!(h.sim.archive(ACME, carol));
    let cases: [(&str, Vec<u64>); 17] = [
        ("", vec![alice, bob]),
        ("?IncludeArchived=true", vec![alice, bob, carol]),
        ("?IncludeArchived=TRUE", vec![alice, bob, carol]),
        ("?IncludeArchived=False", vec![alice, bob]),
        ("?LogonName=ALICE@example.COM", vec![alice]),
        ("?LogonName=alice", vec![]),
        ("?LogonName=carol%2Bmkt@example.com", vec![]),
        (
            "?LogonName=carol%2Bmkt@example.com&IncludeArchived=true",
            vec![carol],
        ),
        (
            "?LogonName=carol+mkt@example.com&IncludeArchived=true",
            vec![],
        ),
        ("?EmailAddress=SHARED@example.com", vec![bob]),
        (
            "?EmailAddress=shared@EXAMPLE.com&IncludeArchived=true",
            vec![bob, carol],
        ),
        ("?ExternalIdentityProviderID=00uA", vec![alice]),
        ("?ExternalIdentityProviderID=00ua", vec![]),
        (
            "?ExternalIdentityProviderID=00uB&IncludeArchived=true",
            vec![bob, carol],
        ),
        (
            "?LogonName=alice@example.com&EmailAddress=shared@example.com",
            vec![],
        ),
        (
            "?LogonName=bob@example.com&EmailAddress=shared@example.com&ExternalIdentityProviderID=00uB",
            vec![bob],
        ),
        (
            "?EmailAddress=alice@example.com&ExternalIdentityProviderID=00uB",
            vec![],
        ),
    ];
    for (query, expected) in cases {
        let reply = h.get(&format!("/users{query}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{query}");
        assert_eq!(reply.ids(), expected, "{query}");
        assert_eq!(reply.body["Total"], expected.len(), "{query}");
    }
    for bad in [
        "?IncludeArchived=yes",
        "?logonName=a",
        "?LogonName=a&LogonName=b",
        "?Sort=Name",
    ] {
        let reply = h.get(&format!("/users{bad}")).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            "{bad}"
        );
    }
    // GET by id answers archived users.
    let reply = h.get(&format!("/users/{carol}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["IsArchived"], true);
}

#[tokio::test]
async fn lists_are_paged() {
    let h = start().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(h.create_named(&format!("user{i}@example.com")).await);
    }
    let reply = h.get("/users").await;
    assert_eq!(
        (reply.body["Page"].as_u64(), reply.body["PageSize"].as_u64()),
        (Some(1), Some(50))
    );
    assert_eq!(reply.body["Total"], 7);
    assert_eq!(reply.ids(), ids);
    let keys: Vec<&String> = reply.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["Items", "Page", "PageSize", "Total"]);

    assert_eq!(h.get("/users?PageSize=3&Page=1").await.ids(), ids[0..3]);
    assert_eq!(h.get("/users?PageSize=3&Page=2").await.ids(), ids[3..6]);
    let last = h.get("/users?PageSize=3&Page=3").await;
    assert_eq!(last.ids(), ids[6..]);
    assert_eq!(
        (last.body["Page"].as_u64(), last.body["PageSize"].as_u64()),
        (Some(3), Some(3))
    );
    let beyond = h.get("/users?PageSize=3&Page=4").await;
    assert_eq!(
        (beyond.status, beyond.ids(), beyond.body["Total"].as_u64()),
        (StatusCode::OK, vec![], Some(7))
    );
    let far = h.get("/users?Page=18446744073709551615&PageSize=200").await;
    assert_eq!((far.status, far.ids()), (StatusCode::OK, vec![]));
    assert_eq!(h.get("/users?PageSize=200").await.ids(), ids);

    for bad in [
        "Page=0",
        "Page=abc",
        "Page=-1",
        "Page=",
        "PageSize=0",
        "PageSize=ten",
    ] {
        let reply = h.get(&format!("/users?{bad}")).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            "{bad}"
        );
    }
    for path in [
        "/users?PageSize=201",
        "/groups?PageSize=1000",
        "/groups/G-1/members?PageSize=201",
    ] {
        let reply = h.get(path).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "PAGE_SIZE_TOO_LARGE")
        );
    }
}

#[tokio::test]
async fn archive_and_restore_are_idempotent_and_drop_memberships_for_good() {
    let h = start().await;
    h.sim.set_clock(Some(datetime!(2026-03-01 10:00:00 UTC)));
    let id = h.create_named("jane@example.com").await;
    let other = h.create_named("john@example.com").await;
    h.sim.add_group(ACME, "G-1", "Sales");
    h.sim.add_group(ACME, "G-2", "Brand");
    for g in ["G-1", "G-2"] {
        assert_eq!(
            h.put(&format!("/groups/{g}/members/{id}")).await.status,
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(
        h.put(&format!("/groups/G-1/members/{other}")).await.status,
        StatusCode::NO_CONTENT
    );

    h.sim.set_clock(Some(datetime!(2026-03-02 10:00:00 UTC)));
    let archived = h.post(&format!("/users/{id}/archive"), json!({})).await;
    assert_eq!(archived.status, StatusCode::OK);
    assert_eq!(
        (
            archived.body["IsActive"].as_bool(),
            archived.body["IsArchived"].as_bool()
        ),
        (Some(false), Some(true))
    );
    assert_eq!(archived.body["ModifiedUtc"], "2026-03-02T10:00:00Z");
    assert_eq!(h.sim.group_members(ACME, "G-1"), vec![other]);
    assert!(h.sim.group_members(ACME, "G-2").is_empty());
    assert_eq!(h.get("/groups/G-1").await.body["MemberCount"], 1);

    h.sim.set_clock(Some(datetime!(2026-03-03 10:00:00 UTC)));
    let again = h.post(&format!("/users/{id}/archive"), json!({})).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, archived.body, "archiving twice changes nothing");

    let restored = h.post(&format!("/users/{id}/restore"), json!({})).await;
    assert_eq!(restored.status, StatusCode::OK);
    assert_eq!(
        (
            restored.body["IsActive"].as_bool(),
            restored.body["IsArchived"].as_bool()
        ),
        (Some(true), Some(false))
    );
    assert_eq!(restored.body["ModifiedUtc"], "2026-03-03T10:00:00Z");
    let again = h.post(&format!("/users/{id}/restore"), json!({})).await;
    assert_eq!(again.body, restored.body);
    assert_eq!(
        h.sim.group_members(ACME, "G-1"),
        vec![other],
        "memberships are not restored"
    );
    assert!(h.sim.group_members(ACME, "G-2").is_empty());
    assert_eq!(
        h.get("/users?LogonName=jane@example.com").await.ids(),
        vec![id]
    );

    for action in ["archive", "restore"] {
        let reply = h.post(&format!("/users/424242/{action}"), json!({})).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::NOT_FOUND, "USER_NOT_FOUND")
        );
    }
}

// ---------------------------------------------------------------- groups

#[tokio::test]
async fn groups_are_listed_by_name_filtered_case_sensitively_and_paged() {
    let h = start().await;
    h.sim.add_group(ACME, "G-Z", "Zeta");
    h.sim.add_group(ACME, "G-a", "alpha");
    h.sim.add_group(ACME, "G-B", "Beta");
    h.sim.add_group(ACME, "G/1 x", "Slash");
    let names = |r: &Reply| -> Vec<String> {
        r.items()
            .iter()
            .map(|g| g["Name"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = h.get("/groups").await;
    assert_eq!(names(&all), ["Beta", "Slash", "Zeta", "alpha"]);
    assert_eq!(all.body["Total"], 4);
    assert_eq!(
        all.items()[0],
        json!({ "IdentityID": "G-B", "Name": "Beta", "MemberCount": 0 })
    );
    assert_eq!(names(&h.get("/groups?Name=Beta").await), ["Beta"]);
    assert!(names(&h.get("/groups?Name=beta").await).is_empty());
    assert!(names(&h.get("/groups?Name=Bet").await).is_empty());
    let page = h.get("/groups?PageSize=2&Page=2").await;
    assert_eq!(
        (names(&page), page.body["Total"].as_u64()),
        (vec!["Zeta".to_owned(), "alpha".to_owned()], Some(4))
    );
    assert_eq!(
        h.get("/groups?name=Beta").await.status,
        StatusCode::BAD_REQUEST
    );

    let reply = h.get("/groups/G-B").await;
    assert_eq!(
        (reply.status, reply.body.clone()),
        (
            StatusCode::OK,
            json!({ "IdentityID": "G-B", "Name": "Beta", "MemberCount": 0 })
        )
    );
    assert_eq!(h.get("/groups/G%2F1%20x").await.body["Name"], "Slash");
    let reply = h.get("/groups/g-b").await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "GROUP_NOT_FOUND")
    );
}

#[tokio::test]
async fn memberships_are_idempotent_and_checked() {
    let h = start().await;
    h.sim.add_group(ACME, "G-1", "Sales");
    let a = h.create_named("a@example.com").await;
    let b = h.create_named("b@example.com").await;
    let c = h.create_named("c@example.com").await;
    for user in [c, a, b, a] {
        let reply = h.put(&format!("/groups/G-1/members/{user}")).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert_eq!(reply.body, Value::Null);
    }
    let members = h.get("/groups/G-1/members").await;
    assert_eq!(
        members.items(),
        vec![
            json!({ "UserID": a, "LogonName": "a@example.com" }),
            json!({ "UserID": b, "LogonName": "b@example.com" }),
            json!({ "UserID": c, "LogonName": "c@example.com" }),
        ]
    );
    assert_eq!(members.body["Total"], 3);
    assert_eq!(h.get("/groups/G-1").await.body["MemberCount"], 3);
    let page = h.get("/groups/G-1/members?PageSize=2&Page=2").await;
    assert_eq!(
        (page.ids(), page.body["Total"].as_u64()),
        (vec![c], Some(3))
    );
    assert_eq!(
        h.get("/groups/G-1/members?Page=0").await.status,
        StatusCode::BAD_REQUEST
    );
    // Members show the current logon name.
    h.patch(
        &format!("/users/{a}"),
        json!({ "LogonName": "A@Example.com" }),
    )
    .await;
    assert_eq!(
        h.get("/groups/G-1/members").await.items()[0]["LogonName"],
        "A@Example.com"
    );

    assert_eq!(
        h.delete(&format!("/groups/G-1/members/{b}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.delete(&format!("/groups/G-1/members/{b}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.sim.group_members(ACME, "G-1"), vec![a, c]);

    let cases = [
        (
            Method::PUT,
            "/groups/G-1/members/999999".to_owned(),
            "USER_NOT_FOUND",
        ),
        (
            Method::DELETE,
            "/groups/G-1/members/999999".to_owned(),
            "USER_NOT_FOUND",
        ),
        (
            Method::PUT,
            "/groups/G-1/members/abc".to_owned(),
            "USER_NOT_FOUND",
        ),
        (
            Method::PUT,
            format!("/groups/G-404/members/{a}"),
            "GROUP_NOT_FOUND",
        ),
        (
            Method::DELETE,
            format!("/groups/G-404/members/{a}"),
            "GROUP_NOT_FOUND",
        ),
        (
            Method::PUT,
            "/groups/G-404/members/abc".to_owned(),
            "GROUP_NOT_FOUND",
        ),
        (
            Method::GET,
            "/groups/G-404/members".to_owned(),
            "GROUP_NOT_FOUND",
        ),
    ];
    for (method, path, code) in cases {
        let reply = h.call(ACME, method.clone(), &path, None).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::NOT_FOUND, code),
            "{method} {path}"
        );
    }

    assert!(h.sim.archive(ACME, c));
    let reply = h.put(&format!("/groups/G-1/members/{c}")).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "USER_ARCHIVED")
    );
    assert_eq!(
        h.delete(&format!("/groups/G-1/members/{c}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.sim.group_members(ACME, "G-1"), vec![a]);
}

// ---------------------------------------------------------------- knobs and failures

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_per_customer() {
    let h = start().await;
    h.sim.set_knobs(Knobs {
        rate_limit_per_second: Some(1),
        ..Knobs::default()
    });
    assert_eq!(h.get("/users").await.status, StatusCode::OK);
    let limited = h.get("/users").await;
    assert_eq!(
        (limited.status, limited.code()),
        (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED")
    );
    let retry: u64 = limited.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let other = h.call(GLOBEX, Method::GET, "/users", None).await;
    assert_eq!(
        other.status,
        StatusCode::OK,
        "each customer has its own budget"
    );
    // A refused request creates nothing.
    let refused = h.post("/users", json!({ "LogonName": "x" })).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(h.sim.users(ACME).is_empty());

    h.sim.set_knobs(Knobs::default());
    assert_eq!(h.get("/users").await.status, StatusCode::OK);
}

#[tokio::test]
async fn maintenance_answers_503_with_retry_after() {
    let h = start().await;
    h.sim.set_knobs(Knobs {
        maintenance_retry_after: Some(120),
        ..Knobs::default()
    });
    for headers in [
        &[][..],
        &[("X-MC-Api-Key", KEY), ("X-MC-Customer", ACME)][..],
    ] {
        let reply = h.raw(Method::GET, "/users", headers, None).await.unwrap();
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::SERVICE_UNAVAILABLE, "MAINTENANCE")
        );
        assert_eq!(reply.headers[header::RETRY_AFTER], "120");
    }
    h.sim.set_knobs(Knobs::default());
    assert_eq!(h.get("/users").await.status, StatusCode::OK);
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
    assert_eq!(h.get("/users").await.status, StatusCode::OK);
    assert!(started.elapsed() >= latency, "{:?}", started.elapsed());
}

#[tokio::test]
async fn injected_statuses_fire_count_times_before_doing_anything() {
    let h = start().await;
    h.sim.inject_failure(FailureRule {
        method: Some(Method::POST),
        path_contains: Some("/users".into()),
        count: 2,
        kind: FailureKind::Status(500),
    });
    h.sim.inject_failure(FailureRule {
        method: None,
        path_contains: Some("/groups?Name=Flaky".into()),
        count: 1,
        kind: FailureKind::Status(503),
    });
    assert_eq!(
        h.get("/users").await.status,
        StatusCode::OK,
        "method must match"
    );
    for _ in 0..2 {
        let reply = h.post("/users", json!({ "LogonName": "a" })).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR")
        );
        assert!(h.sim.users(ACME).is_empty(), "nothing was done");
    }
    assert_eq!(
        h.post("/users", json!({ "LogonName": "a" })).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        h.get("/groups").await.status,
        StatusCode::OK,
        "path must match"
    );
    let reply = h.get("/groups?Name=Flaky").await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "INTERNAL_ERROR")
    );
    assert_eq!(h.get("/groups?Name=Flaky").await.status, StatusCode::OK);
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
    let result = h
        .try_call(
            ACME,
            Method::POST,
            "/users",
            Some(json!({ "LogonName": "before" })),
        )
        .await;
    assert!(result.is_err(), "{result:?}");
    assert!(h.sim.users(ACME).is_empty());

    h.sim.inject_failure(FailureRule {
        method: Some(Method::POST),
        path_contains: Some("/users".into()),
        count: 1,
        kind: FailureKind::DropAfterCommit,
    });
    let result = h
        .try_call(
            ACME,
            Method::POST,
            "/users",
            Some(json!({ "LogonName": "after" })),
        )
        .await;
    assert!(result.is_err(), "{result:?}");
    let users = h.sim.users(ACME);
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["LogonName"], "after");
    // The retry a client would make now meets the committed user.
    let retry = h.post("/users", json!({ "LogonName": "after" })).await;
    assert_eq!(retry.status, StatusCode::CONFLICT);
    assert_eq!(retry.body["ExistingUserID"], users[0]["UserID"]);
}

#[tokio::test]
async fn requests_are_counted_and_logged() {
    let h = start().await;
    h.get("/users?Page=2").await;
    h.raw(Method::GET, "/groups", &[], None).await.unwrap();
    h.post("/users", json!({ "LogonName": "a" })).await;
    assert_eq!(h.sim.request_count(), 3);
    assert_eq!(
        h.sim.requests(),
        vec![
            (Method::GET, "/api/v1/users?Page=2".to_owned()),
            (Method::GET, "/api/v1/groups".to_owned()),
            (Method::POST, "/api/v1/users".to_owned()),
        ]
    );
    h.sim.clear_requests();
    assert!(h.sim.requests().is_empty());
    h.get("/groups").await;
    assert_eq!(h.sim.requests().len(), 1);
    assert_eq!(h.sim.request_count(), 4);
}

// ---------------------------------------------------------------- lifecycle and direct API

#[tokio::test]
async fn serve_uses_the_base_path_and_stops_on_shutdown() {
    let sim = MarketingCenter::new(KEY, [ACME]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let base = String::from("mc/");
    let task = tokio::spawn(sim.clone().serve(listener, &base, async move {
        let _ = rx.await;
    }));
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let get = |path: &str| {
        let request = Request::get(format!("http://{addr}{path}"))
            .header("X-MC-Api-Key", KEY)
            .header("X-MC-Customer", ACME)
            .body(Full::new(Bytes::new()))
            .unwrap();
        client.request(request)
    };
    assert_eq!(get("/mc/users").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        get("/api/v1/users").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn stop_lets_in_flight_requests_finish() {
    let h = start().await;
    h.sim.set_knobs(Knobs {
        latency: Duration::from_millis(300),
        ..Knobs::default()
    });
    let addr = h.running.addr();
    assert!(
        h.running
            .base_url()
            .starts_with(&format!("http://{addr}/api/v1"))
    );
    let Harness {
        sim,
        running,
        client,
    } = h;
    let in_flight = tokio::spawn(async move {
        let request = Request::get(format!("http://{addr}/api/v1/users"))
            .header("X-MC-Api-Key", KEY)
            .header("X-MC-Customer", ACME)
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
async fn dropping_the_handle_stops_the_simulator() {
    let h = start().await;
    let addr = h.running.addr();
    assert_eq!(h.get("/users").await.status, StatusCode::OK);
    drop(h);
    wait_until("the listener to refuse connections", async || {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
}

#[tokio::test]
async fn http2_prior_knowledge_is_served() {
    let h = start().await;
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new());
    let request = Request::get(format!("{}/users", h.running.base_url()))
        .header("X-MC-Api-Key", KEY)
        .header("X-MC-Customer", ACME)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(
        (response.status(), response.version()),
        (StatusCode::OK, http::Version::HTTP_2)
    );
}

#[tokio::test]
async fn seed_demo_is_stable_and_idempotent() {
    let h = start().await;
    h.sim.seed_demo(ACME);
    h.sim.seed_demo(ACME);
    h.sim.seed_demo("initech");
    let groups = h.get("/groups").await.items();
    let names: Vec<&str> = groups.iter().map(|g| g["Name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Brand Team", "Regional Marketing", "Sales Ops"]);
    for group in &groups {
        let id = group["IdentityID"].as_str().unwrap();
        assert!(id.len() == 8 && id.starts_with("G-"), "{id}");
        assert!(
            id[2..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
            "{id}"
        );
    }
    let counts: Vec<u64> = groups
        .iter()
        .map(|g| g["MemberCount"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [1, 1, 1]);
    let users = h.sim.users(ACME);
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["UserProfileFullName"], "Jane Doe");

    let twin = MarketingCenter::new(KEY, [ACME, GLOBEX]);
    twin.seed_demo(ACME);
    twin.seed_demo(GLOBEX);
    assert_eq!(
        twin.groups(ACME),
        h.sim.groups(ACME),
        "ids are stable per customer"
    );
    let ids = |sim: &MarketingCenter, c: &str| -> Vec<Value> {
        sim.groups(c)
            .iter()
            .map(|g| g["IdentityID"].clone())
            .collect()
    };
    assert_ne!(ids(&twin, ACME), ids(&twin, GLOBEX));
}

#[tokio::test]
async fn direct_api_applies_the_same_rules() {
    let sim = MarketingCenter::new(KEY, [ACME]);
    let id = sim
        .insert_user(ACME, json!({ "LogonName": "Jane" }))
        .unwrap();
    let err = sim
        .insert_user(ACME, json!({ "LogonName": "jane" }))
        .unwrap_err();
    assert!(err.starts_with("LOGON_NAME_TAKEN"), "{err}");
    let err = sim
        .insert_user(ACME, json!({ "UserProfileState": "California" }))
        .unwrap_err();
    assert!(
        err.starts_with("VALIDATION_FAILED") && err.contains("UserProfileState"),
        "{err}"
    );
    assert!(err.contains("LogonName"), "{err}");
    assert!(
        sim.insert_user("initech", json!({ "LogonName": "x" }))
            .is_err()
    );
    assert!(sim.insert_user(ACME, json!(["LogonName"])).is_err());

    sim.add_group(ACME, "G-1", "Sales");
    sim.add_group(ACME, "G-2", "Sales");
    assert!(sim.try_add_group(ACME, "G-2", "Sales").is_err());
    assert_eq!(sim.groups(ACME).len(), 1);
    assert!(sim.add_member(ACME, "G-1", id));
    assert!(!sim.add_member(ACME, "G-404", id));
    assert!(!sim.add_member(ACME, "G-1", 999_999));
    assert!(sim.archive(ACME, id));
    assert!(sim.group_members(ACME, "G-1").is_empty());
    assert!(
        !sim.add_member(ACME, "G-1", id),
        "archived users cannot join"
    );
    assert_eq!(sim.users(ACME).len(), 1, "users() includes archived users");
    assert!(sim.restore(ACME, id));
    assert!(sim.add_member(ACME, "G-1", id));
    assert!(sim.remove_member(ACME, "G-1", id));
    assert!(!sim.archive(ACME, 999_999));
    let patched = sim
        .patch_user(ACME, id, json!({ "UserProfileCity": "Oslo" }))
        .unwrap();
    assert_eq!(patched["UserProfileCity"], "Oslo");
    assert_eq!(sim.user(ACME, id).unwrap()["UserProfileCity"], "Oslo");
    assert!(sim.user("initech", id).is_none());
    assert!(sim.users("initech").is_empty());
}

#[tokio::test]
async fn large_tenants_stay_indexed() {
    let h = start().await;
    h.sim.add_group(ACME, "G-BIG", "Everyone");
    let mut last = 0;
    for i in 0..20_000 {
        let body = json!({
            "LogonName": format!("user{i}@example.com"),
            "UserProfileEmailAddress": format!("User{i}@Example.com"),
            "ExternalIdentityProviderID": format!("okta-{i}"),
        });
        last = h.sim.insert_user(ACME, body).unwrap();
        if i < 10_000 {
            assert!(h.sim.add_member(ACME, "G-BIG", last));
        }
    }
    let reply = h.get("/users?LogonName=USER19999@example.com").await;
    assert_eq!(reply.ids(), vec![last]);
    let reply = h.get("/users?EmailAddress=user19999@example.com").await;
    assert_eq!(reply.ids(), vec![last]);
    let reply = h.get("/users?ExternalIdentityProviderID=okta-19999").await;
    assert_eq!(reply.ids(), vec![last]);
    let reply = h.get("/users?PageSize=200&Page=100").await;
    assert_eq!(
        (reply.ids().len(), reply.body["Total"].as_u64()),
        (200, Some(20_000))
    );
    assert_eq!(reply.ids().last(), Some(&last));
    let members = h.get("/groups/G-BIG/members?PageSize=200&Page=50").await;
    assert_eq!(
        (members.ids().len(), members.body["Total"].as_u64()),
        (200, Some(10_000))
    );
    assert_eq!(h.get("/groups/G-BIG").await.body["MemberCount"], 10_000);
}

/// The calls `client` builds (the bench's direct and forwarded requests) are ones the
/// simulator answers as the bench expects.
#[tokio::test]
async fn client_calls_are_answered() {
    let h = start().await;
    h.sim.add_group(ACME, "G-1", "Group one");
    async fn send(h: &Harness, c: client::Call) -> Reply {
        let headers = client::headers(KEY, ACME);
        h.raw(c.method, &c.path, &headers, c.body.map(|b| b.to_string()))
            .await
            .unwrap()
    }
    let created = send(
        &h,
        client::create_user("ada@example.com", "Ada", "Lovelace", "00uada"),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.body["UserProfileFullName"], "Ada Lovelace");
    assert_eq!(created.body["ExternalIdentityProviderID"], "00uada");
    let id = created.body["UserID"].to_string();

    let page = send(&h, client::list_users(1, 200)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        client::listed_users(&page.body),
        [client::Listed {
            id: id.clone(),
            login: "ada@example.com".into()
        }]
    );
    assert_eq!(send(&h, client::get_user(&id)).await.status, StatusCode::OK);
    let found = send(&h, client::find_by_logon_name("ada@example.com")).await;
    assert_eq!(client::listed_users(&found.body).len(), 1);
    assert_eq!(
        send(&h, client::set_active(&id, false)).await.body["IsArchived"],
        true
    );
    assert_eq!(
        send(&h, client::set_active(&id, true)).await.body["IsArchived"],
        false
    );
    let added = send(&h, client::membership("G-1", &id, true)).await;
    assert_eq!(added.status, StatusCode::NO_CONTENT, "{:?}", added.body);
    let removed = send(&h, client::membership("G-1", &id, false)).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{:?}", removed.body);
}
