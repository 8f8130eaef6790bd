//! Groups discovery (the full group push is its own issue): list, filter, get with members,
//! and the link-only answers for create and delete.

use serde_json::json;

use crate::support::{CUSTOMER, Harness, q};

#[tokio::test]
async fn list_filter_get() {
    let h = Harness::start().await;
    let a = h
        .get(&format!(
            "/Groups?filter={}",
            q(r#"displayName eq "Sales Ops""#)
        ))
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["totalResults"], 1);
    let g = &a.body["Resources"][0];
    let gid = g["id"].as_str().unwrap();
    assert_eq!(g["displayName"], "Sales Ops");
    let members = g["members"].as_array().unwrap();
    assert_eq!(members.len(), h.sim().group_members(CUSTOMER, gid).len());
    let a = h
        .get(&format!(
            "/Groups?filter={}",
            q(r#"displayName eq "sales ops""#)
        ))
        .await;
    assert_eq!(
        a.body["totalResults"], 0,
        "group names are exact, as the storefront defines them"
    );
    let a = h
        .get(&format!("/Groups/{gid}?excludedAttributes=members"))
        .await;
    assert_eq!(a.status, 200);
    assert!(a.body.get("members").is_none());
    let member = h.get(&format!("/Groups/{gid}")).await.body["members"][0]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        h.get(&format!("/Users/{member}")).await.status,
        200,
        "member ids are SCIM user ids"
    );
    assert_eq!(h.get("/Groups/G-NOPE").await.status, 404);
    for odd in ["%2E", "%2E%2E"] {
        assert_eq!(h.get(&format!("/Groups/{odd}")).await.status, 404, "{odd}");
    }
    // The root search covers every resource type.
    let a = h
        .post(
            "/.search",
            json!({"filter": "displayName eq \"Sales Ops\""}),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["totalResults"], 1);
    assert_eq!(
        a.body["Resources"][0]["schemas"][0],
        "urn:ietf:params:scim:schemas:core:2.0:Group"
    );
    let all = h
        .post("/.search", json!({"startIndex": 2, "count": 3}))
        .await
        .body;
    assert_eq!(all["totalResults"], 5, "two users and three groups");
    let kinds: Vec<&str> = all["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["meta"]["resourceType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["User", "Group", "Group"]);
    let a = h.post("/Groups", json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "New"})).await;
    assert_eq!(a.status, 405);
    assert_eq!(
        a.headers["allow"], "GET",
        "the collection takes only GET here"
    );
    assert!(a.body["detail"].as_str().unwrap().contains("Link Group"));
    let a = h.delete(&format!("/Groups/{gid}")).await;
    assert_eq!(a.status, 405);
    assert_eq!(a.headers["allow"], "GET, PUT, PATCH");
    h.stop().await;
}
