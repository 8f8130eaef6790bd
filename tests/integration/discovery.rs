//! `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`: generated from the mapping.

use http::Method;
use serde_json::json;

use crate::support::Harness;

#[tokio::test]
async fn discovery_documents() {
    let h = Harness::start().await;
    let a = h.get("/ServiceProviderConfig").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["patch"]["supported"], true);
    assert_eq!(a.body["bulk"]["supported"], false);
    assert_eq!(
        a.body["filter"],
        json!({"supported": true, "maxResults": 1000})
    );
    assert_eq!(
        a.body["authenticationSchemes"][0]["type"],
        "oauthbearertoken"
    );
    let a = h.get("/ResourceTypes").await;
    assert_eq!(a.body["totalResults"], 2);
    assert_eq!(
        h.get("/ResourceTypes/User").await.body["endpoint"],
        "/Users"
    );
    assert_eq!(h.get("/ResourceTypes/Nope").await.status, 404);

    let a = h.get("/Schemas").await;
    assert_eq!(a.status, 200);
    let user = h
        .get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
        .await
        .body;
    let names: Vec<&str> = user["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "userName",
            "name",
            "displayName",
            "title",
            "active",
            "emails",
            "phoneNumbers",
            "addresses"
        ],
        "only what the mapping maps"
    );
    let user_name = &user["attributes"][0];
    assert_eq!(
        (user_name["name"].clone(), user_name["required"].clone()),
        (json!("userName"), json!(true))
    );
    let addresses = user["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "addresses")
        .unwrap();
    let subs: Vec<&str> = addresses["subAttributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(
        subs.contains(&"region") && subs.contains(&"type") && !subs.contains(&"formatted"),
        "{subs:?}"
    );
    let region = addresses["subAttributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "region")
        .unwrap();
    assert!(
        region["canonicalValues"]
            .as_array()
            .unwrap()
            .contains(&json!("QC"))
    );
    assert_eq!(h.get("/Schemas/urn:nope").await.status, 404);
    for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        for p in ["/ServiceProviderConfig", "/Schemas", "/ResourceTypes"] {
            assert_eq!(
                h.send(m.clone(), p, Some(json!({}))).await.status,
                405,
                "{m} {p}"
            );
        }
    }
    h.stop().await;
}
