//! The request sequences Okta sends, replayed as Okta sends them.

use http::Method;
use serde_json::{Value, json};

use crate::support::{Harness, okta_user, q};

/// "Test API Credentials", then the To App save.
#[tokio::test]
async fn test_api_credentials() {
    let h = Harness::start().await;
    let a = h.get("/Users?startIndex=1&count=2").await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.headers["content-type"], "application/scim+json");
    assert_eq!(
        a.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    );
    assert_eq!(a.body["totalResults"], 2, "the two seeded users");
    assert_eq!(a.body["startIndex"], 1);
    assert_eq!(a.body["itemsPerPage"], 2);
    assert_eq!(a.body["Resources"].as_array().unwrap().len(), 2);
    let g = h.get("/Groups?startIndex=1&count=100").await;
    assert_eq!(g.status, 200, "{:?}", g.body);
    assert_eq!(g.body["totalResults"], 3);
    let names: Vec<&str> = g.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Brand Team", "Regional Marketing", "Sales Ops"]);
    h.stop().await;
}

/// Assign: lookup by userName, create, read back; the password never reaches the legacy app.
#[tokio::test]
async fn assign_lookup_then_create() {
    let h = Harness::start().await;
    let lookup = h
        .get(&format!(
            "/Users?filter={}&startIndex=1&count=100",
            q(r#"userName eq "ada@example.com""#)
        ))
        .await;
    assert_eq!(lookup.status, 200);
    assert_eq!(lookup.body["totalResults"], 0);
    assert_eq!(lookup.body["Resources"], json!([]));

    let created = h
        .post(
            "/Users",
            okta_user("ada@example.com", "Ada", "Lovelace", "00u1ada"),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.headers["location"],
        format!("{}/Users/{id}", h.base).as_str()
    );
    assert_eq!(created.body["userName"], "ada@example.com");
    assert_eq!(
        created.body["name"],
        json!({"givenName": "Ada", "familyName": "Lovelace"})
    );
    assert_eq!(created.body["active"], true);
    assert_eq!(created.body["externalId"], "00u1ada");
    assert_eq!(
        created.body["emails"],
        json!([{"type": "work", "primary": true, "value": "ada@example.com"}])
    );
    assert!(created.body.get("password").is_none());
    assert_eq!(created.body["meta"]["resourceType"], "User");
    assert!(
        created.body["meta"]["version"]
            .as_str()
            .unwrap()
            .starts_with("W/\"")
    );

    let legacy = h
        .legacy_user("ada@example.com")
        .expect("created in the legacy app");
    assert_eq!(legacy["UserProfileFirstName"], "Ada");
    assert_eq!(legacy["ExternalIdentityProviderID"], "00u1ada");
    assert!(!legacy.to_string().contains("never-stored"));
    let creates: Vec<_> = h
        .sim()
        .requests()
        .into_iter()
        .filter(|(m, p)| *m == Method::POST && p.ends_with("/users"))
        .collect();
    assert_eq!(creates.len(), 1);

    let got = h.get(&format!("/Users/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, created.body);
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
    assert_eq!(again.body["Resources"][0]["id"], id.as_str());
    h.stop().await;
}

async fn create(h: &Harness, user: &str, ext: &str) -> Value {
    let a = h
        .post("/Users", okta_user(user, "Grace", "Hopper", ext))
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    a.body
}

/// Profile push by PUT: Okta sends back our GET body with its changes.
#[tokio::test]
async fn profile_update_by_put() {
    let h = Harness::start().await;
    let user = create(&h, "grace@example.com", "00u1gr").await;
    let id = user["id"].as_str().unwrap();
    let mut body = user.clone();
    body["name"]["givenName"] = json!("Amazing Grace");
    body["title"] = json!("Rear Admiral");
    body["addresses"] = json!([{"type": "work", "primary": true, "streetAddress": "1 Navy Way\nBuilding 4",
        "locality": "Arlington", "region": "virginia", "postalCode": "22202", "country": "us"}]);
    body.as_object_mut().unwrap().remove("emails");
    h.sim().clear_requests();
    let a = h.put(&format!("/Users/{id}"), body).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["name"]["givenName"], "Amazing Grace");
    assert_eq!(a.body["addresses"][0]["region"], "VA");
    assert_eq!(
        a.body["addresses"][0]["streetAddress"],
        "1 Navy Way\nBuilding 4"
    );
    assert!(
        a.body.get("emails").is_none(),
        "PUT clears mapped attributes absent from the body"
    );
    let legacy = h.legacy_user("grace@example.com").unwrap();
    assert_eq!(legacy["UserProfileAddress1"], "1 Navy Way");
    assert_eq!(legacy["UserProfileAddress2"], "Building 4");
    assert_eq!(legacy["UserProfileState"], "VA");
    assert_eq!(legacy["UserProfileCountry"], "US");
    assert_eq!(legacy["UserProfileEmailAddress"], "");
    let writes: Vec<_> = h
        .sim()
        .requests()
        .into_iter()
        .filter(|(m, _)| *m != Method::GET)
        .collect();
    assert_eq!(
        writes.len(),
        1,
        "one PATCH with the changed fields: {writes:?}"
    );
    h.stop().await;
}

/// Profile push by PATCH (path-less replace): only changed fields go to the legacy app.
#[tokio::test]
async fn profile_update_by_patch_sends_only_changes() {
    let h = Harness::start().await;
    let user = create(&h, "alan@example.com", "00u1al").await;
    let id = user["id"].as_str().unwrap();
    h.sim().clear_requests();
    let a = h
        .patch(
            &format!("/Users/{id}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "value": {"name": {"givenName": "Alan", "familyName": "Turing"}, "title": "Codebreaker"}}]}),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(
        a.body["name"],
        json!({"givenName": "Alan", "familyName": "Turing"})
    );
    let writes: Vec<_> = h
        .sim()
        .requests()
        .into_iter()
        .filter(|(m, _)| *m == Method::PATCH)
        .collect();
    assert_eq!(writes.len(), 1);
    let legacy = h.legacy_user("alan@example.com").unwrap();
    assert_eq!(legacy["UserProfileTitle"], "Codebreaker");
    assert_eq!(legacy["UserProfileLastName"], "Turing");
    h.stop().await;
}

fn deactivate() -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": false}}]})
}

fn reactivate() -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": true}}]})
}

/// Deactivate archives; the user still answers 200 with active false; reactivate restores.
#[tokio::test]
async fn deactivate_and_reactivate() {
    let h = Harness::start().await;
    let user = create(&h, "kathy@example.com", "00u1ka").await;
    let id = user["id"].as_str().unwrap();
    let groups = h.sim().groups(crate::support::CUSTOMER);
    let gid = groups[0]["IdentityID"].as_str().unwrap().to_owned();
    let uid = h.legacy_user("kathy@example.com").unwrap()["UserID"]
        .as_u64()
        .unwrap();
    assert!(h.sim().add_member(crate::support::CUSTOMER, &gid, uid));

    let a = h.patch(&format!("/Users/{id}"), deactivate()).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["active"], false);
    let legacy = h.legacy_user("kathy@example.com").unwrap();
    assert_eq!(
        (legacy["IsArchived"].clone(), legacy["IsActive"].clone()),
        (json!(true), json!(false))
    );
    assert!(
        !h.sim()
            .group_members(crate::support::CUSTOMER, &gid)
            .contains(&uid)
    );
    assert!(
        h.sim()
            .requests()
            .iter()
            .any(|(m, p)| *m == Method::POST && p.ends_with("/archive"))
    );

    let got = h.get(&format!("/Users/{id}")).await;
    assert_eq!(
        (got.status.as_u16(), got.body["active"].clone()),
        (200, json!(false))
    );
    let listed = h
        .get(&format!(
            "/Users?filter={}",
            q(r#"userName eq "kathy@example.com""#)
        ))
        .await;
    assert_eq!(
        listed.body["Resources"][0]["active"], false,
        "archived users are listed"
    );

    let a = h.patch(&format!("/Users/{id}"), reactivate()).await;
    assert_eq!(
        (a.status.as_u16(), a.body["active"].clone()),
        (200, json!(true))
    );
    assert_eq!(
        h.legacy_user("kathy@example.com").unwrap()["IsArchived"],
        false
    );
    assert!(
        h.sim()
            .requests()
            .iter()
            .any(|(m, p)| *m == Method::POST && p.ends_with("/restore"))
    );
    h.stop().await;
}

/// Unassign in an AIW app: GET then PUT with active false; reassign: PUT active true.
#[tokio::test]
async fn unassign_and_reassign_by_put() {
    let h = Harness::start().await;
    let user = create(&h, "mary@example.com", "00u1ma").await;
    let id = user["id"].as_str().unwrap();
    let mut body = h.get(&format!("/Users/{id}")).await.body;
    body["active"] = json!(false);
    let a = h.put(&format!("/Users/{id}"), body.clone()).await;
    assert_eq!(
        (a.status.as_u16(), a.body["active"].clone()),
        (200, json!(false))
    );
    assert_eq!(
        h.legacy_user("mary@example.com").unwrap()["IsArchived"],
        true
    );
    body["active"] = json!(true);
    let a = h.put(&format!("/Users/{id}"), body).await;
    assert_eq!(
        (a.status.as_u16(), a.body["active"].clone()),
        (200, json!(true))
    );
    assert_eq!(a.body["id"], id);
    assert_eq!(
        h.legacy_user("mary@example.com").unwrap()["IsArchived"],
        false
    );
    h.stop().await;
}

/// Reassign after the link was lost: the lookup finds the archived user, POST restores it.
#[tokio::test]
async fn reassign_by_post_restores_the_archived_account() {
    let h = Harness::start().await;
    let user = create(&h, "hedy@example.com", "00u1he").await;
    let id = user["id"].as_str().unwrap().to_owned();
    assert_eq!(
        h.patch(&format!("/Users/{id}"), deactivate()).await.status,
        200
    );
    let mut again = okta_user("hedy@example.com", "Hedy", "Lamarr", "00u1he-new");
    again["title"] = json!("Inventor");
    let a = h.post("/Users", again).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_eq!(
        a.body["id"],
        id.as_str(),
        "the same account, the same SCIM id"
    );
    assert_eq!(a.body["active"], true);
    assert_eq!(a.body["title"], "Inventor");
    assert_eq!(a.body["externalId"], "00u1he-new");
    let all = h.sim().users(crate::support::CUSTOMER);
    assert_eq!(
        all.iter()
            .filter(|u| u["LogonName"] == "hedy@example.com")
            .count(),
        1
    );
    h.stop().await;
}
