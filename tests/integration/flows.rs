//! The Okta flows, written once and run against both legacy apps: the Marketing Center
//! (`mappings/marketing-center.toml`) and the Partner Directory
//! (`mappings/partner-directory.toml`). Only the lifecycle expectations that differ by
//! contract differ: the Marketing Center archives and restores, the Partner Directory deletes.

use std::collections::HashSet;

use http::Method;
use serde_json::{Value, json};

use crate::support::{Harness, okta_user, q};

/// Runs a flow against both legacy apps.
macro_rules! both {
    ($flow:ident, $mc:ident, $pd:ident) => {
        #[tokio::test]
        async fn $mc() {
            let h = Harness::start().await;
            $flow(&h).await;
            h.stop().await;
        }

        #[tokio::test]
        async fn $pd() {
            let h = Harness::start_partner().await;
            $flow(&h).await;
            h.stop().await;
        }
    };
}

both!(
    test_api_credentials,
    credentials_marketing_center,
    credentials_partner_directory
);
both!(assign, assign_marketing_center, assign_partner_directory);
both!(
    profile_updates,
    updates_marketing_center,
    updates_partner_directory
);
both!(
    deactivate_and_reassign,
    deactivate_marketing_center,
    deactivate_partner_directory
);
both!(
    unassign_by_delete,
    delete_marketing_center,
    delete_partner_directory
);
both!(spec_test, spec_marketing_center, spec_partner_directory);
both!(
    group_push,
    groups_marketing_center,
    groups_partner_directory
);
both!(paging, paging_marketing_center, paging_partner_directory);

fn ops(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

async fn create(h: &Harness, user: &str, given: &str, family: &str) -> String {
    let a = h
        .post(
            "/Users",
            okta_user(user, given, family, &format!("00u-{user}")),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    a.body["id"].as_str().unwrap().to_owned()
}

async fn test_api_credentials(h: &Harness) {
    let a = h.get("/Users?startIndex=1&count=2").await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["totalResults"], 2, "the two seeded users");
    assert_eq!(a.body["Resources"].as_array().unwrap().len(), 2);
    let g = h.get("/Groups?startIndex=1&count=100").await;
    assert_eq!(g.status, 200, "{:?}", g.body);
    assert!(!g.body["Resources"].as_array().unwrap().is_empty());
}

async fn assign(h: &Harness) {
    let lookup = h
        .get(&format!(
            "/Users?filter={}&startIndex=1&count=100",
            q(r#"userName eq "ada@example.com""#)
        ))
        .await;
    assert_eq!(
        (lookup.status.as_u16(), lookup.body["totalResults"].clone()),
        (200, json!(0))
    );
    let created = h
        .post(
            "/Users",
            okta_user("ada@example.com", "Ada", "Lovelace", "00u1ada"),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(
        created.headers["location"],
        format!("{}/Users/{id}", h.base).as_str()
    );
    assert_eq!(created.body["userName"], "ada@example.com");
    assert_eq!(created.body["active"], true);
    assert!(created.body.get("password").is_none());
    assert!(
        created.body["meta"]["created"]
            .as_str()
            .unwrap()
            .ends_with('Z'),
        "RFC 3339 times"
    );
    assert_eq!(
        h.legacy_names("ada@example.com"),
        Some(("Ada".into(), "Lovelace".into()))
    );
    assert_eq!(h.legacy_count("ada@example.com"), 1);
    let got = h.get(&format!("/Users/{id}")).await;
    assert_eq!((got.status.as_u16(), &got.body), (200, &created.body));
    let again = h
        .get(&format!(
            "/Users?filter={}",
            q(r#"userName eq "ADA@example.com""#)
        ))
        .await;
    assert_eq!(
        again.body["totalResults"], 1,
        "userName lookups are case-insensitive"
    );
    // Okta's retried create (same body) never makes a second account.
    let retry = h
        .post(
            "/Users",
            okta_user("ada@example.com", "Ada", "Lovelace", "00u1ada"),
        )
        .await;
    assert!(
        retry.status == 201 || retry.status == 409,
        "{:?}",
        retry.body
    );
    assert_eq!(h.legacy_count("ada@example.com"), 1);
}

async fn profile_updates(h: &Harness) {
    let id = create(h, "grace@example.com", "Grace", "Hopper").await;
    let mut body = h.get(&format!("/Users/{id}")).await.body;
    body["name"]["givenName"] = json!("Amazing Grace");
    let a = h.put(&format!("/Users/{id}"), body).await;
    assert_eq!(
        (a.status.as_u16(), a.body["name"]["givenName"].clone()),
        (200, json!("Amazing Grace"))
    );
    let a = h
        .patch(
            &format!("/Users/{id}"),
            ops(json!([{"op": "replace", "value": {"name": {"familyName": "Murray Hopper"}}}])),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(
        h.legacy_names("grace@example.com"),
        Some(("Amazing Grace".into(), "Murray Hopper".into()))
    );
    // Nothing changed: no legacy write.
    h.clear_legacy_requests();
    let a = h
        .patch(
            &format!("/Users/{id}"),
            ops(json!([{"op": "replace", "value": {"name": {"familyName": "Murray Hopper"}}}])),
        )
        .await;
    assert_eq!(a.status, 200);
    assert!(
        h.legacy_requests().iter().all(|(m, _)| *m == Method::GET),
        "{:?}",
        h.legacy_requests()
    );
}

async fn deactivate_and_reassign(h: &Harness) {
    let id = create(h, "kathy@example.com", "Kathy", "Johnson").await;
    let a = h
        .patch(
            &format!("/Users/{id}"),
            ops(json!([{"op": "replace", "value": {"active": false}}])),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.body["active"].clone()),
        (200, json!(false)),
        "{:?}",
        a.body
    );
    if h.is_partner() {
        // The Partner Directory deletes on deactivation: the id is gone, a re-assignment
        // (lookup, then create) makes a new account.
        assert_eq!(h.get(&format!("/Users/{id}")).await.status, 404);
        assert_eq!(h.legacy_count("kathy@example.com"), 0);
        let lookup = h
            .get(&format!(
                "/Users?filter={}",
                q(r#"userName eq "kathy@example.com""#)
            ))
            .await;
        assert_eq!(lookup.body["totalResults"], 0);
        let again = create(h, "kathy@example.com", "Kathy", "Johnson").await;
        assert_ne!(again, id);
    } else {
        // The Marketing Center archives: the user still reads, inactive, and comes back.
        let got = h.get(&format!("/Users/{id}")).await;
        assert_eq!(
            (got.status.as_u16(), got.body["active"].clone()),
            (200, json!(false))
        );
        let a = h
            .patch(
                &format!("/Users/{id}"),
                ops(json!([{"op": "replace", "value": {"active": true}}])),
            )
            .await;
        assert_eq!(
            (a.status.as_u16(), a.body["active"].clone()),
            (200, json!(true))
        );
    }
    assert_eq!(h.legacy_count("kathy@example.com"), 1);
}

async fn unassign_by_delete(h: &Harness) {
    let id = create(h, "gone@example.com", "Gone", "Girl").await;
    let before = h.get("/Users").await.body["totalResults"].as_u64().unwrap();
    assert_eq!(h.delete(&format!("/Users/{id}")).await.status, 204);
    assert_eq!(h.get(&format!("/Users/{id}")).await.status, 404);
    assert_eq!(h.delete(&format!("/Users/{id}")).await.status, 404);
    assert_eq!(
        h.get("/Users").await.body["totalResults"].as_u64().unwrap(),
        before - 1
    );
    // Archived (kept) in the Marketing Center, deleted in the Partner Directory.
    assert_eq!(
        h.legacy_count("gone@example.com"),
        usize::from(!h.is_partner())
    );
    let again = create(h, "gone@example.com", "Back", "Again").await;
    assert_eq!(
        again == id,
        !h.is_partner(),
        "restored under its id, or created anew"
    );
    assert_eq!(h.legacy_count("gone@example.com"), 1);
}

/// Okta's SPEC test (the Runscope/BlazeMeter suite), step by step, with its assertions.
async fn spec_test(h: &Harness) {
    // 1-2: a user exists and reads back with the required attributes.
    let a = h.get("/Users?count=1&startIndex=1").await;
    assert_eq!(a.status, 200);
    let first = &a.body["Resources"][0];
    for key in ["id", "userName", "active"] {
        assert!(!first[key].is_null(), "{key} in {first}");
    }
    assert!(first["name"]["familyName"].is_string() && first["name"]["givenName"].is_string());
    assert!(first["emails"][0]["value"].is_string());
    let one = h
        .get(&format!("/Users/{}", first["id"].as_str().unwrap()))
        .await;
    assert_eq!((one.status.as_u16(), &one.body["id"]), (200, &first["id"]));
    // 3: invalid user by username; 4: invalid id; 5: random user does not exist.
    let a = h
        .get(&format!(
            "/Users?filter={}",
            q(r#"userName eq "abcdefgh@atko.com""#)
        ))
        .await;
    assert_eq!(
        (a.status.as_u16(), a.body["totalResults"].clone()),
        (200, json!(0))
    );
    let a = h.get("/Users/010101001010101011001010101011").await;
    assert_eq!(a.status, 404);
    assert_eq!(
        a.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert!(!a.body["detail"].as_str().unwrap().is_empty());
    let a = h
        .get(&format!(
            "/Users?filter={}",
            q(r#"userName eq "Runscope-rnd-4711@atko.com""#)
        ))
        .await;
    assert_eq!(a.body["totalResults"], 0);
    // 6-7: create with realistic values and read back.
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "Runscope4711@atko.com", "name": {"givenName": "Runscope", "familyName": "Fourseventeen"},
        "emails": [{"primary": true, "value": "Runscope4711@atko.com", "type": "work"}],
        "displayName": "Runscope Fourseventeen", "active": true});
    let a = h.post("/Users", body.clone()).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_eq!(a.body["active"], true);
    assert_eq!(a.body["userName"], "Runscope4711@atko.com");
    assert_eq!(a.body["name"], body["name"]);
    let id = a.body["id"].as_str().unwrap().to_owned();
    let a = h.get(&format!("/Users/{id}")).await;
    assert_eq!(
        (a.body["userName"].clone(), a.body["name"].clone()),
        (body["userName"].clone(), body["name"].clone())
    );
    // 8: re-create → 409.
    let mut again = body.clone();
    again["emails"][0]["value"] = json!("Runscope4711@atko.com");
    let a = h.post("/Users", again).await;
    assert_eq!(a.status, 409, "{:?}", a.body);
    assert_eq!(a.body["scimType"], "uniqueness");
    // 9: case-insensitive lookup.
    let a = h
        .get(&format!(
            "/Users?filter={}",
            q(r#"userName eq "RUNSCOPE4711@ATKO.COM""#)
        ))
        .await;
    assert_eq!(
        (a.status.as_u16(), a.body["totalResults"].clone()),
        (200, json!(1))
    );
    // 10: groups.
    let a = h.get("/Groups").await;
    assert_eq!(a.status, 200);
    assert!(a.body["Resources"].is_array());
    // 11: a non-bearer Authorization header.
    let a = h
        .raw(
            Method::GET,
            &format!("/Users?filter={}", q(r#"userName eq "x""#)),
            &[("Authorization", "non-token")],
            None,
        )
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body["status"], "401");
    assert!(!a.body["detail"].as_str().unwrap().is_empty());
    // 12: 404 with a SCIM error.
    let a = h.get("/Users/00919288221112222").await;
    assert_eq!(
        (a.status.as_u16(), a.body["status"].clone()),
        (404, json!("404"))
    );
}

async fn group_push(h: &Harness) {
    let a = h
        .get(&format!(
            "/Groups?filter={}&excludedAttributes=members",
            q(r#"displayName eq "Sales Ops""#)
        ))
        .await;
    assert_eq!(a.body["totalResults"], 1, "{:?}", a.body);
    let gid = a.body["Resources"][0]["id"].as_str().unwrap().to_owned();
    let u1 = create(h, "m1@example.com", "M", "One").await;
    let u2 = create(h, "m2@example.com", "M", "Two").await;
    let a = h
        .patch(
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "replace", "value": {"id": gid, "displayName": "Sales Ops"}}])),
        )
        .await;
    assert_eq!(a.status, 204, "link: {:?}", a.body);
    let a = h
        .patch(
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "add", "path": "members", "value": [{"value": u1}, {"value": u2}]}])),
        )
        .await;
    assert_eq!(a.status, 204, "{:?}", a.body);
    assert!(
        members(h, &gid)
            .await
            .is_superset(&HashSet::from([u1.clone(), u2.clone()]))
    );
    let a = h
        .patch(
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "remove", "path": format!("members[value eq \"{u1}\"]")}])),
        )
        .await;
    assert_eq!(a.status, 204);
    assert!(!members(h, &gid).await.contains(&u1));
    let a = h
        .patch(
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "replace", "path": "members", "value": [{"value": u1}]}])),
        )
        .await;
    assert_eq!(a.status, 204);
    assert_eq!(members(h, &gid).await, HashSet::from([u1.clone()]));
    let a = h
        .patch(
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "replace", "path": "members", "value": []}])),
        )
        .await;
    assert_eq!(a.status, 204);
    assert!(members(h, &gid).await.is_empty());
    let a = h
        .patch(
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "add", "path": "members", "value": [{"value": "nobody"}]}])),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.body["scimType"].clone()),
        (400, json!("invalidValue"))
    );
}

async fn paging(h: &Harness) {
    h.seed_users(230);
    let mut ids = HashSet::new();
    let mut start = 1;
    loop {
        let a = h.get(&format!("/Users?startIndex={start}&count=70")).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.body["totalResults"], 232, "seeded + the two demo users");
        let page = a.body["Resources"].as_array().unwrap();
        if page.is_empty() {
            break;
        }
        for r in page {
            assert!(
                ids.insert(r["id"].as_str().unwrap().to_owned()),
                "duplicate {}",
                r["id"]
            );
        }
        start += page.len();
    }
    assert_eq!(ids.len(), 232);
}

async fn members(h: &Harness, gid: &str) -> HashSet<String> {
    let g = h.get(&format!("/Groups/{gid}")).await.body;
    g["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap().to_owned())
        .collect()
}
