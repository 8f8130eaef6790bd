//! Group push: Okta's and Entra's membership requests against a link-only group, and a
//! 10,000-member replace at scale.

use std::collections::HashSet;
use std::time::Duration;

use http::Method;
use mapping::ids::{LegacyId, ScimId, TenantId};
use serde_json::{Value, json};
use simulator::marketing_center::Knobs;

use crate::support::{CUSTOMER, Harness, okta_user, q};

fn ops(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

async fn group(h: &Harness, name: &str) -> String {
    let a = h
        .get(&format!(
            "/Groups?filter={}&excludedAttributes=members",
            q(&format!("displayName eq \"{name}\""))
        ))
        .await;
    assert_eq!(a.body["totalResults"], 1, "{name}: {:?}", a.body);
    a.body["Resources"][0]["id"].as_str().unwrap().to_owned()
}

async fn user(h: &Harness, name: &str) -> (String, u64) {
    let a = h
        .post("/Users", okta_user(name, "G", "P", &format!("ext-{name}")))
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let legacy = h.legacy_user(name).unwrap()["UserID"].as_u64().unwrap();
    (a.body["id"].as_str().unwrap().to_owned(), legacy)
}

fn members(h: &Harness, gid: &str) -> HashSet<u64> {
    h.sim().group_members(CUSTOMER, gid).into_iter().collect()
}

fn writes(h: &Harness) -> Vec<(Method, String)> {
    h.sim()
        .requests()
        .into_iter()
        .filter(|(m, _)| *m == Method::PUT || *m == Method::DELETE)
        .collect()
}

/// Okta's push of "Sales Ops": link, add, remove one op per member, replace, the rename
/// no-op after every push, an empty group, reads without members, and the refusals.
#[tokio::test]
async fn okta_push_sequence() {
    let h = Harness::start().await;
    let gid = group(&h, "Sales Ops").await;
    let seeded = members(&h, &gid);
    assert_eq!(
        seeded.len(),
        1,
        "the demo seed puts John Smith in Sales Ops"
    );
    let (u1, l1) = user(&h, "u1@example.com").await;
    let (u2, l2) = user(&h, "u2@example.com").await;
    let (u3, l3) = user(&h, "u3@example.com").await;

    // Link: Okta asserts the name (and sends the id) — a no-op.
    h.sim().clear_requests();
    let a = h
        .patch(
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "replace", "value": {"id": gid, "displayName": "Sales Ops"}}])),
        )
        .await;
    assert_eq!(a.status, 204, "{:?}", a.body);
    assert_eq!(a.body, Value::Null);
    assert!(writes(&h).is_empty());

    // Add members, with display as Okta sends it.
    let a = h
        .patch(&format!("/Groups/{gid}"), ops(json!([{"op": "add", "path": "members", "value": [
            {"value": u1, "display": "u1@example.com"}, {"value": u2, "display": "u2@example.com"}]}])))
        .await;
    assert_eq!(a.status, 204, "{:?}", a.body);
    assert_eq!(
        members(&h, &gid),
        seeded.iter().copied().chain([l1, l2]).collect()
    );
    assert_eq!(writes(&h).len(), 2);

    // Remove, one operation per member.
    let a = h
        .patch(
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "remove", "path": format!("members[value eq \"{u1}\"]")}])),
        )
        .await;
    assert_eq!(a.status, 204);
    assert!(!members(&h, &gid).contains(&l1));

    // Full replace: exactly the requested set, with only the calls the diff needs.
    h.sim().clear_requests();
    let a = h.patch(&format!("/Groups/{gid}"), ops(json!([{"op": "replace", "path": "members", "value": [{"value": u2}, {"value": u3}]}]))).await;
    assert_eq!(a.status, 204);
    assert_eq!(members(&h, &gid), HashSet::from([l2, l3]));
    assert_eq!(writes(&h).len(), 2, "add u3, remove John: {:?}", writes(&h));

    // Okta re-asserts the name after the push; a different name is refused.
    let a = h
        .patch(
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "replace", "value": {"displayName": "Sales Ops"}}])),
        )
        .await;
    assert_eq!(a.status, 204);
    let a = h
        .patch(
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "replace", "value": {"displayName": "Sales Operations"}}])),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.body["scimType"].clone()),
        (400, json!("mutability"))
    );
    assert!(
        a.body["detail"]
            .as_str()
            .unwrap()
            .contains("renamed in Marketing Center"),
        "{:?}",
        a.body
    );

    // The response carries the group when asked for.
    let a = h
        .send(
            Method::PATCH,
            &format!("/Groups/{gid}?excludedAttributes=members"),
            Some(ops(
                json!([{"op": "add", "path": "members", "value": [{"value": u1}]}]),
            )),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["displayName"], "Sales Ops");
    assert!(a.body.get("members").is_none());

    // Push of an empty group.
    let a = h
        .patch(
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "replace", "path": "members", "value": []}])),
        )
        .await;
    assert_eq!(a.status, 204);
    assert!(members(&h, &gid).is_empty());
    let got = h.get(&format!("/Groups/{gid}")).await;
    assert_eq!(got.body["members"], json!([]));

    // Reads without members do not read the member pages.
    h.sim().clear_requests();
    assert_eq!(
        h.get(&format!("/Groups/{gid}?excludedAttributes=members"))
            .await
            .status,
        200
    );
    assert!(
        !h.sim()
            .requests()
            .iter()
            .any(|(_, p)| p.contains("/members"))
    );

    // An unknown member id is refused by name before any legacy call.
    h.sim().clear_requests();
    let a = h
        .patch(&format!("/Groups/{gid}"), ops(json!([{"op": "add", "path": "members", "value": [{"value": u1}, {"value": "not-a-user"}]}])))
        .await;
    assert_eq!(
        (a.status.as_u16(), a.body["scimType"].clone()),
        (400, json!("invalidValue"))
    );
    assert!(
        a.body["detail"]
            .as_str()
            .unwrap()
            .contains("\"not-a-user\""),
        "{:?}",
        a.body
    );
    assert!(writes(&h).is_empty());

    // 405s with guidance.
    let a = h.post("/Groups", json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "New"})).await;
    assert_eq!(a.status, 405);
    assert!(
        a.body["detail"]
            .as_str()
            .unwrap()
            .contains("account manager")
    );
    assert_eq!(h.delete(&format!("/Groups/{gid}")).await.status, 405);
    assert_eq!(
        h.patch(
            "/Groups/G-NOPE",
            ops(json!([{"op": "add", "path": "members", "value": [{"value": u1}]}]))
        )
        .await
        .status,
        404
    );
    h.stop().await;
}

/// Adding an archived user is skipped and counted; the rest of the push goes through.
#[tokio::test]
async fn archived_members_are_skipped() {
    let h = Harness::start().await;
    let gid = group(&h, "Brand Team").await;
    let (u1, l1) = user(&h, "a1@example.com").await;
    let (u2, l2) = user(&h, "a2@example.com").await;
    let off = ops(json!([{"op": "replace", "value": {"active": false}}]));
    assert_eq!(h.patch(&format!("/Users/{u2}"), off).await.status, 200);
    let a = h
        .patch(
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "add", "path": "members", "value": [{"value": u1}, {"value": u2}]}])),
        )
        .await;
    assert_eq!(a.status, 204, "{:?}", a.body);
    let now = members(&h, &gid);
    assert!(now.contains(&l1) && !now.contains(&l2));
    h.stop().await;
}

/// A member the xref has never met (a lost database, a user made in the storefront) is
/// found by one rescan of the legacy users; an id that rescan does not find is refused.
#[tokio::test]
async fn unmet_members_are_found_by_a_rescan() {
    let h = Harness::start().await;
    let gid = group(&h, "Brand Team").await;
    let legacy = h
        .sim()
        .insert_user(CUSTOMER, json!({"LogonName": "unmet@example.com"}))
        .unwrap();
    let tenant = TenantId::new("acme");
    let id = |l: u64| ScimId::derive(&tenant, "User", &LegacyId::new(l.to_string()));
    let a = h
        .patch(
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "add", "path": "members", "value": [{"value": id(legacy).as_str()}]}])),
        )
        .await;
    assert_eq!(a.status, 204, "{:?}", a.body);
    assert!(members(&h, &gid).contains(&legacy));
    let ghost = id(legacy + 1_000_000);
    let a = h
        .patch(
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "add", "path": "members", "value": [{"value": ghost.as_str()}]}])),
        )
        .await;
    assert_eq!(a.status, 400, "{:?}", a.body);
    assert_eq!(a.body["scimType"], "invalidValue");
    let detail = a.body["detail"].as_str().unwrap();
    assert!(detail.contains(ghost.as_str()), "{detail}");
    h.stop().await;
}

/// Entra's forms: add and remove with value lists, `Replace` of displayName.
#[tokio::test]
async fn entra_forms_and_put() {
    let h = Harness::start().await;
    let gid = group(&h, "Regional Marketing").await;
    let (u1, l1) = user(&h, "e1@example.com").await;
    let (u2, l2) = user(&h, "e2@example.com").await;
    let a = h
        .patch(
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "Add", "path": "members", "value": [{"value": u1}, {"value": u2}]}])),
        )
        .await;
    assert_eq!(a.status, 204, "{:?}", a.body);
    let a = h
        .patch(
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "Remove", "path": "members", "value": [{"value": u1}]}])),
        )
        .await;
    assert_eq!(a.status, 204);
    assert!(!members(&h, &gid).contains(&l1) && members(&h, &gid).contains(&l2));
    let a = h
        .patch(
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "Replace", "path": "displayName", "value": "Regional Marketing"}])),
        )
        .await;
    assert_eq!(a.status, 204);
    // PUT (Okta AIW apps): same name, members diffed.
    let a = h
        .put(&format!("/Groups/{gid}"), json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Regional Marketing", "members": [{"value": u1}]}))
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(members(&h, &gid), HashSet::from([l1]));
    assert_eq!(a.body["members"][0]["value"], u1.as_str());
    let a = h
        .put(
            &format!("/Groups/{gid}"),
            json!({"members": [{"value": u2}]}),
        )
        .await;
    assert_eq!(
        a.status, 200,
        "displayName is read-only: absent keeps the name"
    );
    assert_eq!(members(&h, &gid), HashSet::from([l2]));
    let a = h
        .put(
            &format!("/Groups/{gid}"),
            json!({"displayName": "Other", "members": []}),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.body["scimType"].clone()),
        (400, json!("mutability"))
    );
    h.stop().await;
}

/// A 10,000-member `replace` with 20 ms added to every legacy call: it completes, the legacy
/// state is exactly the requested set, and the only writes are the diff's.
#[tokio::test]
async fn replace_of_a_10000_member_group() {
    const USERS: u64 = 11_000;
    let h = Harness::start_with(|sim| {
        sim.add_group(CUSTOMER, "G-BIG", "Everyone Big");
    })
    .await;
    let mut legacy_ids = Vec::new();
    for i in 0..USERS {
        let id = h
            .sim()
            .insert_user(
                CUSTOMER,
                json!({"LogonName": format!("big{i:05}@example.com")}),
            )
            .unwrap();
        legacy_ids.push(id);
    }
    for id in &legacy_ids[..2000] {
        assert!(h.sim().add_member(CUSTOMER, "G-BIG", *id));
    }
    // The sidecar meets the users the way Okta's imports and lookups make it meet them.
    for start in (1..=USERS).step_by(1000) {
        assert_eq!(
            h.get(&format!("/Users?startIndex={start}&count=1000"))
                .await
                .status,
            200
        );
    }
    let tenant = TenantId::new("acme");
    let target: Vec<u64> = legacy_ids[1000..].to_vec();
    let value: Vec<Value> = target
        .iter()
        .map(|id| json!({"value": ScimId::derive(&tenant, "User", &LegacyId::new(id.to_string())).as_str()}))
        .collect();
    assert_eq!(value.len(), 10_000);
    h.sim().set_knobs(Knobs {
        latency: Duration::from_millis(20),
        ..Knobs::default()
    });
    let before = h.sim().request_count();
    let a = h
        .patch(
            "/Groups/G-BIG",
            ops(json!([{"op": "replace", "path": "members", "value": value}])),
        )
        .await;
    assert_eq!(a.status, 204, "{:?}", a.body);
    assert_eq!(members(&h, "G-BIG"), target.iter().copied().collect());
    // 1 group read + 10 member pages (2,000 / 200) + 9,000 adds + 1,000 removes.
    assert_eq!(h.sim().request_count() - before, 1 + 10 + 9_000 + 1_000);
    h.stop().await;
}
