//! Users: paging, filters evaluated by the sidecar, projections, DELETE and tombstones,
//! create conflicts, ids that outlive the xref.

use std::collections::HashSet;

use serde_json::json;

use crate::support::{CUSTOMER, Harness, okta_user, q};

fn seed(h: &Harness, n: usize) {
    for i in 0..n {
        h.sim()
            .insert_user(
                CUSTOMER,
                json!({"LogonName": format!("user{i:04}@example.com"), "UserProfileFirstName": format!("F{i}"),
                    "UserProfileLastName": if i % 10 == 0 { "Tenth" } else { "Other" },
                    "UserProfileEmailAddress": format!("user{i:04}@example.com")}),
            )
            .unwrap();
    }
}

/// Okta imports page through every user: 1,000 users, no duplicates, none missing.
#[tokio::test]
async fn paging_through_1000_users() {
    let h = Harness::start_with(|_| {}).await;
    seed(&h, 1000);
    let mut ids = HashSet::new();
    let mut start = 1;
    loop {
        let a = h.get(&format!("/Users?startIndex={start}&count=70")).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.body["totalResults"], 1000);
        let page = a.body["Resources"].as_array().unwrap();
        if page.is_empty() {
            break;
        }
        assert_eq!(a.body["itemsPerPage"], page.len());
        for r in page {
            assert!(
                ids.insert(r["id"].as_str().unwrap().to_owned()),
                "duplicate {}",
                r["id"]
            );
        }
        start += page.len();
    }
    assert_eq!(ids.len(), 1000);
    let (live, tomb) = h
        .xref
        .counts(&mapping::ids::TenantId::new("acme"), "User")
        .await
        .unwrap();
    assert_eq!((live, tomb), (1000, 0), "every user met is recorded");
    let a = h.get("/Users?count=0").await;
    assert_eq!(
        (a.body["totalResults"].clone(), a.body["Resources"].clone()),
        (json!(1000), json!([]))
    );
    h.stop().await;
}

/// Filters the legacy app cannot answer are evaluated by the sidecar over every page.
#[tokio::test]
async fn filters_evaluated_by_the_sidecar() {
    let h = Harness::start_with(|_| {}).await;
    seed(&h, 450);
    let a = h
        .get(&format!(
            "/Users?filter={}&count=10&startIndex=41",
            q(r#"name.familyName eq "tenth""#)
        ))
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["totalResults"], 45);
    assert_eq!(a.body["startIndex"], 41);
    assert_eq!(a.body["Resources"].as_array().unwrap().len(), 5);
    assert_eq!(
        a.body["Resources"][0]["userName"], "user0400@example.com",
        "stable legacy order"
    );
    let a = h
        .get(&format!(
            "/Users?filter={}",
            q(r#"userName sw "user000" and not (name.givenName eq "F3")"#)
        ))
        .await;
    assert_eq!(a.body["totalResults"], 9);
    let a = h
        .get(&format!(
            "/Users?filter={}",
            q(r#"emails[type eq "work" and value co "0449"]"#)
        ))
        .await;
    assert_eq!(a.body["totalResults"], 1);
    // `+` and `%20` both stand for spaces.
    let a = h
        .get("/Users?filter=userName+eq+%22user0007@example.com%22")
        .await;
    assert_eq!(a.body["totalResults"], 1);
    let a = h
        .get(&format!(
            "/Users?filter={}",
            q(r#"emails.value eq "USER0008@example.com""#)
        ))
        .await;
    assert_eq!(a.body["totalResults"], 1, "pushed down, case-insensitive");
    h.stop().await;
}

#[tokio::test]
async fn projections_and_search() {
    let h = Harness::start().await;
    let user = h
        .post(
            "/Users",
            okta_user("proj@example.com", "Pro", "Jection", "00u1pr"),
        )
        .await
        .body;
    let id = user["id"].as_str().unwrap();
    let a = h
        .get(&format!("/Users/{id}?attributes=userName,name.givenName"))
        .await;
    assert_eq!(
        a.body,
        json!({"schemas": user["schemas"], "id": id, "userName": "proj@example.com", "name": {"givenName": "Pro"}})
    );
    let a = h
        .get(&format!("/Users/{id}?excludedAttributes=emails,meta,name"))
        .await;
    assert!(
        a.body.get("emails").is_none()
            && a.body.get("meta").is_none()
            && a.body.get("name").is_none()
    );
    assert_eq!(a.body["userName"], "proj@example.com");
    let a = h
        .post(
            "/Users/.search",
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": "userName eq \"proj@example.com\"", "attributes": ["externalId"], "startIndex": 1, "count": 5}),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["totalResults"], 1);
    assert_eq!(
        a.body["Resources"][0],
        json!({"schemas": user["schemas"], "id": id, "externalId": "00u1pr"})
    );
    let a = h
        .post("/.search", json!({"filter": "externalId eq \"00u1pr\""}))
        .await;
    assert_eq!(
        (a.status.as_u16(), a.body["totalResults"].clone()),
        (200, json!(1))
    );
    let a = h
        .get(&format!("/Users?filter={}", q(&format!("id eq \"{id}\""))))
        .await;
    assert_eq!(a.body["totalResults"], 1);
    h.stop().await;
}

/// DELETE archives and tombstones: 404 everywhere, left out of lists, never re-adopted on
/// sight; a later POST with the same userName restores it and lifts the tombstone.
#[tokio::test]
async fn delete_tombstones_and_post_restores() {
    let h = Harness::start().await;
    let user = h
        .post(
            "/Users",
            okta_user("gone@example.com", "Gone", "Girl", "00u1go"),
        )
        .await
        .body;
    let id = user["id"].as_str().unwrap().to_owned();
    let before = h.get("/Users").await.body["totalResults"].as_u64().unwrap();
    let a = h.delete(&format!("/Users/{id}")).await;
    assert_eq!(a.status, 204);
    assert_eq!(a.body, serde_json::Value::Null);
    let legacy = h.legacy_user("gone@example.com").unwrap();
    assert_eq!(legacy["IsArchived"], true, "archived, never deleted");
    for path in [format!("/Users/{id}")] {
        assert_eq!(h.get(&path).await.status, 404);
        assert_eq!(h.patch(&path, json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "value": {"active": true}}]})).await.status, 404);
        assert_eq!(
            h.put(&path, okta_user("gone@example.com", "G", "G", "x"))
                .await
                .status,
            404
        );
        assert_eq!(h.delete(&path).await.status, 404);
    }
    assert_eq!(
        h.get("/Users").await.body["totalResults"].as_u64().unwrap(),
        before - 1
    );
    let a = h
        .get(&format!(
            "/Users?filter={}",
            q(r#"userName eq "gone@example.com""#)
        ))
        .await;
    assert_eq!(a.body["totalResults"], 0);
    let a = h
        .get(&format!("/Users?filter={}", q(&format!("id eq \"{id}\""))))
        .await;
    assert_eq!(a.body["totalResults"], 0);
    let a = h
        .post(
            "/Users",
            okta_user("gone@example.com", "Back", "Again", "00u1go"),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_eq!(a.body["id"], id.as_str());
    assert_eq!(a.body["name"]["givenName"], "Back");
    assert_eq!(h.get(&format!("/Users/{id}")).await.status, 200);
    assert_eq!(
        h.get("/Users").await.body["totalResults"].as_u64().unwrap(),
        before
    );
    h.stop().await;
}

/// A retried POST whose first answer was lost adopts the account it created.
#[tokio::test]
async fn create_conflicts_adopt_or_refuse() {
    let h = Harness::start().await;
    h.sim()
        .insert_user(
            CUSTOMER,
            json!({"LogonName": "lost@example.com", "ExternalIdentityProviderID": "00u1lo"}),
        )
        .unwrap();
    let a = h
        .post(
            "/Users",
            okta_user("lost@example.com", "Lost", "Answer", "00u1lo"),
        )
        .await;
    assert_eq!(a.status, 201, "same externalId: adopted");
    assert_eq!(a.body["name"]["givenName"], "Lost");
    assert_eq!(
        h.sim()
            .users(CUSTOMER)
            .iter()
            .filter(|u| u["LogonName"] == "lost@example.com")
            .count(),
        1
    );
    let a = h
        .post(
            "/Users",
            okta_user("LOST@example.com", "Other", "Person", "00u1other"),
        )
        .await;
    assert_eq!(a.status, 409);
    assert_eq!(a.body["scimType"], "uniqueness");
    assert!(
        !a.body.to_string().contains("LOGON_NAME"),
        "no legacy code in the answer"
    );
    h.stop().await;
}

/// SCIM ids are derived: a user the xref has never seen is still found by its id.
#[tokio::test]
async fn ids_outlive_the_xref() {
    let h = Harness::start().await;
    let legacy_id = h
        .sim()
        .insert_user(CUSTOMER, json!({"LogonName": "late@example.com"}))
        .unwrap();
    let id = mapping::ids::ScimId::derive(
        &mapping::ids::TenantId::new("acme"),
        "User",
        &mapping::ids::LegacyId::new(legacy_id.to_string()),
    );
    let a = h.get(&format!("/Users/{id}")).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["userName"], "late@example.com");
    h.stop().await;
}

/// Tombstones do not turn every list into a full scan: the first page still costs one legacy
/// page, totals stay right, and paging skips exactly the deleted users.
#[tokio::test]
async fn paging_with_tombstones() {
    let h = Harness::start_with(|_| {}).await;
    seed(&h, 450);
    let first = h.get("/Users?startIndex=1&count=450").await.body;
    let all: Vec<String> = first["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(all.len(), 450);
    let deleted: HashSet<String> = [3usize, 4, 250, 449]
        .iter()
        .map(|i| all[*i].clone())
        .collect();
    for id in &deleted {
        assert_eq!(h.delete(&format!("/Users/{id}")).await.status, 204);
    }
    h.sim().clear_requests();
    let a = h.get("/Users?startIndex=1&count=2").await;
    assert_eq!(a.body["totalResults"], 446);
    let list_calls = h
        .sim()
        .requests()
        .iter()
        .filter(|(_, p)| p.contains("/users?"))
        .count();
    assert_eq!(list_calls, 1, "Test API Credentials reads one legacy page");
    let mut seen = Vec::new();
    let mut start = 1;
    loop {
        let a = h.get(&format!("/Users?startIndex={start}&count=60")).await;
        assert_eq!(a.body["totalResults"], 446);
        let page = a.body["Resources"].as_array().unwrap();
        if page.is_empty() {
            break;
        }
        seen.extend(page.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        start += page.len();
    }
    let expected: Vec<String> = all
        .iter()
        .filter(|id| !deleted.contains(*id))
        .cloned()
        .collect();
    assert_eq!(
        seen, expected,
        "same order, no duplicates, deleted users left out"
    );
    h.stop().await;
}

#[tokio::test]
async fn ids_are_read_in_any_uuid_spelling() {
    let h = Harness::start().await;
    let user = h
        .post("/Users", okta_user("case@example.com", "C", "D", "00u1cd"))
        .await
        .body;
    let id = user["id"].as_str().unwrap();
    let a = h.get(&format!("/Users/{}", id.to_uppercase())).await;
    assert_eq!((a.status.as_u16(), a.body["id"].clone()), (200, json!(id)));
    // A random (v4) UUID is not one of ours: 404 without scanning the legacy app.
    h.sim().clear_requests();
    let a = h.get("/Users/3f2b8c1e-9d4a-4c6b-8e2f-1a2b3c4d5e6f").await;
    assert_eq!(a.status, 404);
    assert!(
        h.sim().requests().is_empty(),
        "no legacy call for an id we never handed out"
    );
    h.stop().await;
}

/// A GET's answer is kept by what it was made of (`answers`); whatever changes (a field in
/// the legacy app, the host asked, a deletion), the next GET answers what the full
/// translation answers, never the kept one.
#[tokio::test]
async fn a_kept_answer_is_never_a_stale_one() {
    let h = Harness::start_with(|_| {}).await;
    let created = h
        .post(
            "/Users",
            okta_user("kept@example.com", "Kept", "Answer", "00u1ka"),
        )
        .await;
    assert_eq!(created.status, 201);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let path = format!("/Users/{id}");
    let first = h.get(&path).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        h.get(&path).await.body,
        first.body,
        "same record, same answer"
    );

    // Changed in the legacy app behind the sidecar's back.
    let legacy_id = h
        .sim()
        .users(CUSTOMER)
        .iter()
        .find(|u| u["LogonName"] == "kept@example.com")
        .and_then(|u| u["UserID"].as_u64())
        .unwrap();
    h.sim()
        .patch_user(
            CUSTOMER,
            legacy_id,
            json!({"UserProfileTitle": "Night Admin"}),
        )
        .unwrap();
    let changed = h.get(&path).await;
    assert_eq!(changed.body["title"], "Night Admin");
    assert_ne!(
        changed.body["meta"]["version"],
        first.body["meta"]["version"]
    );
    // The same answer as a projection (the general way) gives, attribute for attribute.
    let general = h.get(&format!("{path}?excludedAttributes=groups")).await;
    assert_eq!(general.body, changed.body);

    // Another host: the locations are its own.
    let auth = format!("Bearer {}", crate::support::TOKEN);
    let other = h
        .raw(
            http::Method::GET,
            &path,
            &[
                ("Authorization", auth.as_str()),
                ("Host", "other.example:8787"),
            ],
            None,
        )
        .await;
    assert_eq!(other.status, 200);
    assert_eq!(
        other.body["meta"]["location"],
        format!("http://other.example:8787/scim/v2/Users/{id}")
    );
    assert_ne!(
        h.get(&path).await.body["meta"]["location"],
        other.body["meta"]["location"]
    );

    // Deleted: 404 from then on, though the record's bytes did not change.
    assert_eq!(h.delete(&path).await.status, 204);
    assert_eq!(h.get(&path).await.status, 404);
    h.stop().await;
}
