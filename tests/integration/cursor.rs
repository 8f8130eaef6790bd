//! RFC 9865 cursor paging over real sockets: a deep walk costs one legacy list call per SCIM
//! page (the legacy position travels inside the cursor), pages skip tombstoned and unmatched
//! records, and a cursor that is made up, altered, or used for another tenant, resource type,
//! filter or count is refused with RFC 9865's `scimType`, before any legacy call.

use std::collections::HashSet;

use http::Method;
use serde_json::{Value, json};

use crate::support::{Answer, CUSTOMER, Harness, TOKEN_OTHER, q};

/// The ids of a list page's resources.
fn ids(a: &Answer) -> Vec<String> {
    a.body["Resources"]
        .as_array()
        .unwrap_or_else(|| panic!("no Resources: {}", a.body))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

fn next(a: &Answer) -> Option<String> {
    a.body["nextCursor"].as_str().map(str::to_owned)
}

/// Asserts a 400 with `scim_type`, its detail containing `says`.
fn refused(a: &Answer, scim_type: &str, says: &str) {
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["scimType"], scim_type, "{}", a.body);
    let detail = a.body["detail"].as_str().unwrap();
    assert!(detail.contains(says), "{detail:?} should say {says:?}");
}

/// Walks `path` (with `?` parameters, no cursor) by cursor: every page's answer, each
/// checked to have cost exactly one legacy call, a list call.
async fn walk(h: &Harness, path: &str, list_path: &str) -> Vec<Answer> {
    let mut pages = Vec::new();
    let mut cursor = String::new();
    loop {
        h.clear_legacy_requests();
        let a = h.get(&format!("{path}&cursor={cursor}")).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let calls = h.legacy_requests();
        assert_eq!(calls.len(), 1, "page {}: {calls:?}", pages.len() + 1);
        assert_eq!(calls[0].0, Method::GET);
        assert!(calls[0].1.starts_with(list_path), "{calls:?}");
        let more = next(&a);
        pages.push(a);
        match more {
            Some(c) => {
                assert!(
                    c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)),
                    "a cursor is URL-safe as it is: {c}"
                );
                cursor = c;
            }
            None => return pages,
        }
        assert!(pages.len() <= 10_000, "the walk does not end");
    }
}

#[tokio::test]
async fn a_10000_user_walk_by_cursor_costs_one_legacy_list_call_per_page() {
    let h = Harness::start_with(|sim| {
        sim.seed_bench(CUSTOMER, 10_000, &[]);
    })
    .await;
    let list_path = "/api/v1/users?";
    let pages = walk(&h, "/Users?count=200", list_path).await;
    assert_eq!(pages.len(), 50, "10,000 users in pages of 200");
    let mut seen = HashSet::new();
    for (i, p) in pages.iter().enumerate() {
        assert_eq!(p.body["totalResults"], 10_000, "page {i}: {}", p.body);
        assert_eq!(p.body["itemsPerPage"], 200);
        assert!(p.body.get("startIndex").is_none());
        assert_eq!(p.body["previousCursor"].is_string(), i > 0, "page {i}");
        for id in ids(p) {
            assert!(seen.insert(id), "page {i} repeats a user");
        }
    }
    assert_eq!(seen.len(), 10_000);
    // The users are the ones a full index-paged read answers.
    assert_eq!(
        h.get("/Users?startIndex=9801&count=200").await.body["Resources"],
        pages[49].body["Resources"]
    );

    // A previous cursor leads back one page; its next cursor forward again.
    let third = &pages[2];
    let back = h
        .get(&format!(
            "/Users?count=200&cursor={}",
            third.body["previousCursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(ids(&back), ids(&pages[1]));
    let forward = h
        .get(&format!("/Users?cursor={}", next(&back).unwrap()))
        .await;
    assert_eq!(ids(&forward), ids(third), "count is kept by the cursor");

    // POST .search takes a cursor in the body; its cursor continues by GET as well.
    let a = h
        .post(
            "/Users/.search",
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                   "cursor": "", "count": 200}),
        )
        .await;
    assert_eq!(ids(&a), ids(&pages[0]));
    let b = h.get(&format!("/Users?cursor={}", next(&a).unwrap())).await;
    assert_eq!(ids(&b), ids(&pages[1]));
    h.stop().await;
}

#[tokio::test]
async fn cursor_pages_leave_out_deleted_and_unmatched_users() {
    let h = Harness::start_with(|_| {}).await;
    h.seed_users(30);
    let all = h.get("/Users?count=100").await;
    let users: Vec<(String, String)> = all.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["userName"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(users.len(), 30);
    // DELETE archives in the Marketing Center: the archived stay in its list, not in SCIM's.
    for (id, _) in users.iter().take(3) {
        assert_eq!(h.delete(&format!("/Users/{id}")).await.status, 204);
    }
    let pages = walk(&h, "/Users?count=7", "/api/v1/users?").await;
    assert_eq!(pages.len(), 5, "30 legacy records in pages of 7");
    let listed: Vec<String> = pages.iter().flat_map(ids).collect();
    let live: Vec<String> = users.iter().skip(3).map(|(id, _)| id.clone()).collect();
    assert_eq!(listed, live);
    for p in &pages {
        assert_eq!(p.body["totalResults"], 27, "{}", p.body);
    }
    assert_eq!(
        pages[0].body["itemsPerPage"], 4,
        "a page may hold fewer than count"
    );

    // A filter is matched on each page; the walk does not know a total.
    let filter = q("userName sw \"user001\"");
    let pages = walk(
        &h,
        &format!("/Users?count=10&filter={filter}&attributes=userName"),
        "/api/v1/users?",
    )
    .await;
    let names: Vec<String> = pages
        .iter()
        .flat_map(|p| p.body["Resources"].as_array().unwrap().clone())
        .map(|r| {
            assert!(r.get("emails").is_none(), "projected: {r}");
            r["userName"].as_str().unwrap().to_owned()
        })
        .collect();
    let expected: Vec<String> = users
        .iter()
        .map(|(_, n)| n.clone())
        .filter(|n| n.starts_with("user001"))
        .collect();
    assert_eq!(names, expected);
    assert!(pages.iter().all(|p| p.body.get("totalResults").is_none()));

    // `id eq` is a lookup: one page, no next cursor.
    let id = &users[5].0;
    let a = h
        .get(&format!(
            "/Users?cursor&filter={}",
            q(&format!("id eq \"{id}\""))
        ))
        .await;
    assert_eq!(ids(&a), vec![id.clone()]);
    assert!(next(&a).is_none());

    // count=0: only the total, and no walk to follow.
    let a = h.get("/Users?cursor&count=0").await;
    assert_eq!(
        (
            a.body["totalResults"].clone(),
            a.body["itemsPerPage"].clone()
        ),
        (json!(27), json!(0))
    );
    assert!(next(&a).is_none());
    h.stop().await;
}

#[tokio::test]
async fn groups_walk_by_cursor_too() {
    let h = Harness::start_with(|sim| {
        for i in 0..25 {
            sim.add_group(CUSTOMER, &format!("grp-{i:02}"), &format!("Group {i:02}"));
        }
    })
    .await;
    let pages = walk(
        &h,
        "/Groups?count=10&excludedAttributes=members",
        "/api/v1/groups?",
    )
    .await;
    assert_eq!(pages.len(), 3);
    let names: Vec<String> = pages
        .iter()
        .flat_map(|p| p.body["Resources"].as_array().unwrap().clone())
        .map(|g| g["displayName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 25);
    assert_eq!(names.iter().collect::<HashSet<_>>().len(), 25);
    let spc = h.get("/ServiceProviderConfig").await.body;
    assert_eq!(
        spc["pagination"],
        json!({"cursor": true, "index": true, "defaultPaginationMethod": "index",
               "defaultPageSize": 100, "maxPageSize": 1000, "cursorTimeout": 3600})
    );
    h.stop().await;
}

#[tokio::test]
async fn made_up_altered_and_misused_cursors_are_refused_before_any_legacy_call() {
    let h = Harness::start().await;
    h.seed_users(12);
    let first = h.get("/Users?count=5&cursor").await;
    let cursor = next(&first).unwrap();
    let filter = q("userName sw \"user\"");
    let filtered = next(
        &h.get(&format!("/Users?count=5&cursor&filter={filter}"))
            .await,
    )
    .unwrap();
    h.clear_legacy_requests();

    let mut altered = cursor.clone().into_bytes();
    let mid = altered.len() / 2;
    altered[mid] = if altered[mid] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    for made_up in [
        "abc".to_owned(),
        "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        "%21%21".to_owned(),
        altered,
    ] {
        let a = h.get(&format!("/Users?cursor={made_up}")).await;
        refused(
            &a,
            "invalidCursor",
            "not one this service provider gave out",
        );
    }
    // Another tenant, another resource type.
    let a = h
        .send_as(
            TOKEN_OTHER,
            Method::GET,
            &format!("/Users?cursor={cursor}"),
            None,
        )
        .await;
    refused(
        &a,
        "invalidCursor",
        "not one this service provider gave out",
    );
    let a = h.get(&format!("/Groups?cursor={cursor}")).await;
    refused(
        &a,
        "invalidCursor",
        "not one this service provider gave out",
    );
    // Another filter, or none where there was one.
    let a = h
        .get(&format!("/Users?cursor={cursor}&filter={filter}"))
        .await;
    refused(&a, "invalidCursor", "another filter");
    let a = h.get(&format!("/Users?cursor={filtered}")).await;
    refused(&a, "invalidCursor", "another filter");
    // Another count; startIndex beside a cursor; a cursor across resource types.
    let a = h.get(&format!("/Users?cursor={cursor}&count=6")).await;
    refused(&a, "invalidCount", "count must stay 5");
    let a = h.get(&format!("/Users?cursor={cursor}&startIndex=6")).await;
    refused(
        &a,
        "invalidValue",
        "cursor and startIndex cannot be combined",
    );
    let a = h.post("/Users/.search", json!({"cursor": 5})).await;
    refused(&a, "invalidSyntax", "cursor must be a string");
    let a = h.post("/.search", json!({"cursor": ""})).await;
    refused(&a, "invalidValue", "not across resource types");
    assert_eq!(
        h.legacy_requests(),
        Vec::new(),
        "no refused cursor reached the app"
    );

    // The same cursor, unaltered, still works: a refusal spends nothing.
    let a = h.get(&format!("/Users?cursor={cursor}&count=5")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(ids(&a).len(), 5);
    let _: Value = a.body;
    h.stop().await;
}

#[tokio::test]
async fn an_offset_paged_app_without_totals_walks_by_cursor() {
    let h = Harness::start_partner().await;
    h.seed_users(25);
    let all = h.get("/Users?count=1000").await;
    let every = ids(&all);
    let path = h.legacy_requests()[0]
        .1
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let pages = walk(&h, "/Users?count=10", &format!("{path}?")).await;
    let listed: Vec<String> = pages.iter().flat_map(ids).collect();
    assert_eq!(listed, every, "the walk meets every account once, in order");
    assert_eq!(pages.len(), every.len().div_ceil(10));
    assert!(pages.iter().all(|p| p.body.get("totalResults").is_none()));
    // An offset is addressable: the previous page is a cursor away.
    let back = h
        .get(&format!(
            "/Users?cursor={}",
            pages[1].body["previousCursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(ids(&back), ids(&pages[0]));
    h.stop().await;
}

#[tokio::test]
async fn an_unpaged_list_is_answered_count_by_count_and_a_mapping_reload_ends_old_cursors() {
    // The group list as a call that is not paged: the app answers every group at once.
    let mapping = simulator::marketing_center::MAPPING.replace(
        "list = { method = \"GET\", path = \"/groups\" }",
        "list = { method = \"GET\", path = \"/groups\", paging = \"none\" }",
    );
    assert_ne!(mapping, simulator::marketing_center::MAPPING);
    let h = Harness::start_with_mapping(&mapping).await;
    for i in 0..25 {
        h.sim()
            .add_group(CUSTOMER, &format!("grp-{i:02}"), &format!("Group {i:02}"));
    }
    let all = h.get("/Groups?count=100&excludedAttributes=members").await;
    let every = ids(&all);
    let pages = walk(
        &h,
        "/Groups?count=10&excludedAttributes=members",
        "/api/v1/groups",
    )
    .await;
    let sizes: Vec<usize> = pages.iter().map(|p| ids(p).len()).collect();
    assert_eq!(sizes.iter().sum::<usize>(), every.len());
    assert!(sizes.iter().all(|&n| n <= 10), "count is kept: {sizes:?}");
    let listed: Vec<String> = pages.iter().flat_map(ids).collect();
    assert_eq!(listed, every, "every group once, in order");
    // Back within the same legacy answer.
    let back = h
        .get(&format!(
            "/Groups?excludedAttributes=members&cursor={}",
            pages[2].body["previousCursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(ids(&back), ids(&pages[1]));
    h.stop().await;
}

#[tokio::test]
async fn a_cursor_from_before_a_page_size_change_is_refused() {
    let h = Harness::start_reloadable(std::time::Duration::from_millis(10)).await;
    h.seed_users(30);
    let first = h.get("/Users?count=7&cursor").await;
    assert_eq!(ids(&first).len(), 7);
    let cursor = next(&first).unwrap();
    // The mapping's page size changes under the walk: page numbers would land elsewhere.
    let text = std::fs::read_to_string(&h.mapping_file).unwrap();
    let changed = text.replace("max_page_size = 200", "max_page_size = 5");
    assert_ne!(text, changed);
    let tmp = h.mapping_file.with_extension("tmp");
    std::fs::write(&tmp, changed).unwrap();
    std::fs::rename(&tmp, &h.mapping_file).unwrap();
    let reloaded = "scim_sidecar_mapping_reloads_total{tenant=\"acme\",outcome=\"reloaded\"}";
    crate::support::wait_until("the mapping to reload", async || {
        h.metric(reloaded).await > 0.0
    })
    .await;
    let a = h.get(&format!("/Users?cursor={cursor}")).await;
    refused(&a, "invalidCursor", "paging changed");
    // A new walk pages by 5 at most.
    let a = h.get("/Users?count=7&cursor").await;
    assert_eq!(ids(&a).len(), 5);
    h.stop().await;
}
