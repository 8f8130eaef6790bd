//! What only the Partner Directory does, through `mappings/partner-directory.toml`: take-over
//! of local accounts, groups created, renamed and deleted from SCIM, reserved teams, member
//! changes in batches of 100, a rate limit that says when it resets.

use http::Method;
use serde_json::{Value, json};
use simulator::partner_directory::Knobs;

use crate::support::{Harness, okta_user, q};

fn ops(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

fn account<'a>(accounts: &'a [Value], login: &str) -> &'a Value {
    accounts.iter().find(|a| a["login"] == login).unwrap()
}

/// Assigning a user who has a hand-made ("local") account with the same login takes it over
/// with the claim call instead of failing or duplicating it.
#[tokio::test]
async fn local_accounts_are_claimed() {
    let h = Harness::start_partner().await;
    let before = h.pd().accounts();
    let local = account(&before, "john.smith@example.com").clone();
    assert_eq!(local["origin"], "local");
    let a = h
        .post(
            "/Users",
            okta_user("john.smith@example.com", "John", "Smith-Okta", "00u1js"),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let after = h.pd().accounts();
    assert_eq!(after.len(), before.len(), "no second account");
    let claimed = account(&after, "john.smith@example.com");
    assert_eq!(
        (claimed["uid"].clone(), claimed["origin"].clone()),
        (local["uid"].clone(), json!("idp"))
    );
    assert_eq!(claimed["last_name"], "Smith-Okta");
    assert!(
        h.pd()
            .requests()
            .iter()
            .any(|(m, p)| *m == Method::POST && p.ends_with("/claim"))
    );
    // An idp account with the same e-mail is a real conflict: 409, nothing changed.
    let mut other = okta_user("someone.else@example.com", "S", "E", "00u1se");
    other["emails"] = json!([{"value": "jane.doe@example.com", "primary": true}]);
    let a = h.post("/Users", other).await;
    assert_eq!(
        (a.status.as_u16(), a.body["scimType"].clone()),
        (409, json!("uniqueness"))
    );
    h.stop().await;
}

/// Times are Unix seconds in the Partner Directory, RFC 3339 in SCIM.
#[tokio::test]
async fn unix_times_become_rfc3339() {
    let h = Harness::start_partner().await;
    let a = h
        .get(&format!(
            "/Users?filter={}",
            q(r#"userName eq "jane.doe@example.com""#)
        ))
        .await;
    let meta = &a.body["Resources"][0]["meta"];
    for key in ["created", "lastModified"] {
        let t = meta[key].as_str().unwrap();
        assert!(
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_ok(),
            "{t}"
        );
    }
    h.stop().await;
}

/// Groups are created, renamed and deleted from SCIM; reserved teams are refused.
#[tokio::test]
async fn teams_from_scim() {
    let h = Harness::start_partner().await;
    let u1 = h
        .post("/Users", okta_user("t1@example.com", "T", "One", "00u1t1"))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = h
        .post("/Groups", json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Partners", "members": [{"value": u1}]}))
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let gid = a.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        a.headers["location"],
        format!("{}/Groups/{gid}", h.base).as_str()
    );
    assert_eq!(a.body["members"][0]["value"], u1.as_str());
    let team: u64 = gid.parse().unwrap();
    assert_eq!(h.pd().team_members(team).len(), 1);
    let a = h.post("/Groups", json!({"displayName": "partners"})).await;
    assert_eq!(
        (a.status.as_u16(), a.body["scimType"].clone()),
        (409, json!("uniqueness"))
    );
    // Rename through PATCH (Okta) and PUT.
    let a = h
        .patch(
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "replace", "value": {"id": gid, "displayName": "Partners EU"}}])),
        )
        .await;
    assert_eq!(a.status, 204, "{:?}", a.body);
    assert!(h.pd().teams().iter().any(|t| t["title"] == "Partners EU"));
    let a = h
        .put(
            &format!("/Groups/{gid}"),
            json!({"displayName": "Partners EMEA", "members": []}),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.body["displayName"].clone()),
        (200, json!("Partners EMEA"))
    );
    assert!(h.pd().team_members(team).is_empty());
    // Delete.
    assert_eq!(h.delete(&format!("/Groups/{gid}")).await.status, 204);
    assert_eq!(h.get(&format!("/Groups/{gid}")).await.status, 404);
    // The reserved teams are listed but never linked or changed.
    let a = h
        .get(&format!(
            "/Groups?filter={}",
            q(r#"displayName eq "everyone""#)
        ))
        .await;
    assert_eq!(
        a.body["totalResults"], 1,
        "titles compare case-insensitively: {:?}",
        a.body
    );
    let everyone = a.body["Resources"][0]["id"].as_str().unwrap().to_owned();
    let link =
        ops(json!([{"op": "replace", "value": {"id": everyone, "displayName": "Everyone"}}]));
    let a = h.patch(&format!("/Groups/{everyone}"), link).await;
    assert_eq!(a.status, 403);
    assert!(a.body["detail"].as_str().unwrap().contains("reserved"));
    assert_eq!(h.delete(&format!("/Groups/{everyone}")).await.status, 403);
    h.stop().await;
}

/// Member changes go out in batches of at most 100.
#[tokio::test]
async fn members_in_batches_of_100() {
    let h = Harness::start_partner().await;
    h.seed_users(250);
    let listed = h.get("/Users?count=1000").await.body;
    let ids: Vec<Value> = listed["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["userName"].as_str().unwrap().starts_with("user"))
        .map(|r| json!({"value": r["id"]}))
        .collect();
    assert_eq!(ids.len(), 250);
    let gid = h
        .get(&format!(
            "/Groups?filter={}",
            q(r#"displayName eq "Sales Ops""#)
        ))
        .await
        .body["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.pd().clear_requests();
    let a = h
        .patch(
            &format!("/Groups/{gid}"),
            ops(json!([{"op": "replace", "path": "members", "value": ids}])),
        )
        .await;
    assert_eq!(a.status, 204, "{:?}", a.body);
    let writes: Vec<_> = h
        .pd()
        .requests()
        .into_iter()
        .filter(|(m, _)| *m == Method::POST)
        .collect();
    let adds = writes
        .iter()
        .filter(|(_, p)| p.ends_with("/members"))
        .count();
    let removes = writes
        .iter()
        .filter(|(_, p)| p.ends_with("/members/remove"))
        .count();
    assert_eq!(
        (adds, removes),
        (3, 1),
        "250 adds in 3 calls, the seeded member removed in 1: {writes:?}"
    );
    assert_eq!(h.pd().team_members(gid.parse().unwrap()).len(), 250);
    h.stop().await;
}

/// `X-RateLimit-Reset` (a Unix time) becomes SCIM's `Retry-After` (seconds).
#[tokio::test]
async fn rate_limit_reset_becomes_retry_after() {
    let h = Harness::start_partner().await;
    h.pd().set_knobs(Knobs {
        rate_limit_per_second: Some(0),
        ..Knobs::default()
    });
    let a = h.get("/Users").await;
    assert_eq!(a.status, 429, "{:?}", a.body);
    let secs: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&secs), "{secs}");
    h.stop().await;
}

/// The Partner Directory has no field for Okta's `externalId`: the sidecar keeps it in the
/// cross-reference, shows it on every read, finds users by it, and follows PUT and PATCH.
#[tokio::test]
async fn external_ids_are_kept_by_the_sidecar() {
    let h = Harness::start_partner().await;
    let a = h
        .post(
            "/Users",
            okta_user("kept.ext@example.com", "Kept", "Ext", "00u1kept"),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_eq!(a.body["externalId"], "00u1kept", "{:?}", a.body);
    let id = a.body["id"].as_str().unwrap().to_owned();
    let stored = account(&h.pd().accounts(), "kept.ext@example.com").clone();
    assert!(
        !stored.to_string().contains("00u1kept"),
        "the app holds no externalId: {stored}"
    );
    let got = h.get(&format!("/Users/{id}")).await;
    assert_eq!(got.body["externalId"], "00u1kept");
    let listed = h.get("/Users?count=200").await;
    let row = (listed.body["Resources"].as_array().unwrap().iter())
        .find(|r| r["id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(row["externalId"], "00u1kept");
    let found = h
        .get(&format!(
            "/Users?filter={}",
            q("externalId eq \"00u1kept\"")
        ))
        .await;
    assert_eq!(found.body["totalResults"], 1, "{:?}", found.body);
    assert_eq!(found.body["Resources"][0]["id"], id.as_str());
    let none = h
        .get(&format!(
            "/Users?filter={}",
            q("externalId eq \"00U1KEPT\"")
        ))
        .await;
    assert_eq!(none.body["totalResults"], 0, "externalId is case-exact");

    // PATCH replaces it; the old value finds nobody.
    let p = h
        .patch(
            &format!("/Users/{id}"),
            ops(json!([{"op": "replace", "path": "externalId", "value": "00u2kept"}])),
        )
        .await;
    assert_eq!(
        (p.status.as_u16(), p.body["externalId"].clone()),
        (200, json!("00u2kept"))
    );
    let old = h
        .get(&format!(
            "/Users?filter={}",
            q("externalId eq \"00u1kept\"")
        ))
        .await;
    assert_eq!(old.body["totalResults"], 0);
    // A PATCH of another attribute keeps it.
    let p = h
        .patch(
            &format!("/Users/{id}"),
            ops(json!([{"op": "replace", "path": "name.familyName", "value": "Kept2"}])),
        )
        .await;
    assert_eq!(p.body["externalId"], "00u2kept", "{:?}", p.body);
    // A PUT without it clears it (a full replace).
    let mut body = h.get(&format!("/Users/{id}")).await.body;
    body.as_object_mut().unwrap().remove("externalId");
    let put = h.put(&format!("/Users/{id}"), body).await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    assert!(put.body.get("externalId").is_none(), "{:?}", put.body);
    let got = h.get(&format!("/Users/{id}")).await;
    assert!(got.body.get("externalId").is_none(), "{:?}", got.body);
    h.stop().await;
}
