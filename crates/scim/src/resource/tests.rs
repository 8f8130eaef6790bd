//! `attributes` / `excludedAttributes` parsing and projection tests.

use serde_json::{Value, json};

use super::*;
use crate::schema::{AttrType, ENTERPRISE_USER, SchemaDef, USER};

fn user() -> Value {
    json!({
        "schemas": [USER, ENTERPRISE_USER],
        "id": "u1",
        "externalId": "ext-1",
        "userName": "bjensen",
        "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Barbara Jensen"},
        "password": "hunter2",
        "emails": [
            {"value": "b@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "department": "Tour Operations",
            "manager": {"value": "m1", "displayName": "John Smith"}
        },
        "loginCount": 3,
        "urn:example:custom": {"level": 3, "tier": "gold"}
    })
}

fn list(s: &str) -> Vec<AttrPath> {
    parse_attr_list(s).unwrap()
}

/// Projects the sample user with `attributes=attrs` and `excludedAttributes=excl`.
fn proj(attrs: &str, excl: &str) -> Value {
    project(&user(), &ResourceSchema::user(), &list(attrs), &list(excl))
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

#[test]
fn parse_attr_list_trims_skips_empties_and_reports_positions() {
    let l = list(" userName, name.givenName ,,urn:ietf:params:scim:schemas:core:2.0:User:title");
    assert_eq!(l.len(), 3);
    assert_eq!(l[0], AttrPath::simple("userName"));
    assert_eq!(l[1].sub.as_deref(), Some("givenName"));
    assert_eq!(l[2].urn.as_deref(), Some(USER));
    assert!(list("").is_empty());
    assert!(list(" , ").is_empty());
    let e = parse_attr_list("userName,na*me").unwrap_err();
    assert_eq!(e.position, 11);
    // Positions count characters, not bytes.
    let e = parse_attr_list("urn:é:x, 1x").unwrap_err();
    assert_eq!(e.position, 9);
}

#[test]
fn no_parameters_keeps_everything_but_password() {
    let v = proj("", "");
    let mut expected = user();
    expected.as_object_mut().unwrap().remove("password");
    assert_eq!(v, expected);
}

#[test]
fn attributes_select_plus_always_and_schemas() {
    let v = proj("userName", "");
    assert_eq!(
        v,
        json!({"schemas": [USER, ENTERPRISE_USER], "id": "u1", "userName": "bjensen"})
    );
    assert_eq!(proj("USERNAME", ""), v);
    assert_eq!(proj(&format!("{USER}:userName"), ""), v);
    assert_eq!(
        proj("password,userName", ""),
        v,
        "returned never even when requested"
    );
    assert_eq!(proj("id", "")["id"], "u1");
    assert_eq!(keys(&proj("id", "")), ["schemas", "id"]);
}

#[test]
fn sub_attribute_selection() {
    let v = proj("name.givenName", "");
    assert_eq!(v["name"], json!({"givenName": "Barbara"}));
    let v = proj("name.givenName,NAME.familyName", "");
    assert_eq!(
        v["name"],
        json!({"givenName": "Barbara", "familyName": "Jensen"})
    );
    let v = proj("emails.value", "");
    assert_eq!(
        v["emails"],
        json!([{"value": "b@example.com"}, {"value": "babs@jensen.org"}])
    );
    let v = proj("emails.value,emails", "");
    assert_eq!(v["emails"], user()["emails"]);
    let v = proj("emails.display", "");
    assert!(v.get("emails").is_none(), "nothing selected in any element");
    let v = proj("meta.created", "");
    assert_eq!(v["meta"], json!({"created": "2010-01-23T04:56:22Z"}));
    let v = proj("userName.x", "");
    assert!(v.get("userName").is_none());
}

#[test]
fn extension_selection() {
    let ent = ENTERPRISE_USER;
    let v = proj(&format!("{ent}:department"), "");
    assert_eq!(
        v,
        json!({
            "schemas": [USER, ENTERPRISE_USER],
            "id": "u1",
            ENTERPRISE_USER: {"department": "Tour Operations"}
        })
    );
    assert_eq!(proj("department", ""), v, "unqualified extension attribute");
    assert_eq!(proj(&format!("{}:DEPARTMENT", ent.to_uppercase()), ""), v);
    let v = proj(&format!("{ent}:manager.displayName"), "");
    assert_eq!(v[ent], json!({"manager": {"displayName": "John Smith"}}));
    let v = proj(ent, "");
    assert_eq!(v[ent], user()[ent], "whole extension");
    let v = proj("userName", "");
    assert!(
        v.get(ent).is_none(),
        "extension dropped when nothing of it is selected"
    );
    assert_eq!(
        v["schemas"],
        json!([USER, ENTERPRISE_USER]),
        "schemas unchanged"
    );
    let v = proj("urn:example:custom:level", "");
    assert_eq!(v["urn:example:custom"], json!({"level": 3}));
}

#[test]
fn excluded_attributes() {
    let v = proj("", "emails");
    assert!(v.get("emails").is_none());
    assert_eq!(v["userName"], "bjensen");
    assert!(v.get("password").is_none());
    let v = proj("", "name.givenName,Emails.Type");
    assert_eq!(
        v["name"],
        json!({"familyName": "Jensen", "formatted": "Barbara Jensen"})
    );
    assert_eq!(
        v["emails"],
        json!([{"value": "b@example.com", "primary": true}, {"value": "babs@jensen.org"}])
    );
    let v = proj("", "id,schemas");
    assert_eq!(v["id"], "u1", "returned always cannot be excluded");
    assert!(v.get("schemas").is_some());
    let v = proj("", "meta,loginCount");
    assert!(v.get("meta").is_none() && v.get("loginCount").is_none());
    assert_eq!(v["externalId"], "ext-1");
}

#[test]
fn excluded_extension_attributes() {
    let ent = ENTERPRISE_USER;
    let v = proj("", ent);
    assert!(v.get(ent).is_none());
    assert_eq!(v["schemas"], json!([USER, ENTERPRISE_USER]));
    assert_eq!(v["userName"], "bjensen");
    let v = proj("", &format!("{ent}:manager"));
    assert_eq!(v[ent], json!({"department": "Tour Operations"}));
    let v = proj("", &format!("{ent}:manager.value"));
    assert_eq!(v[ent]["manager"], json!({"displayName": "John Smith"}));
    let v = proj("", &format!("{ent}:manager,{ent}:department"));
    assert!(v.get(ent).is_none(), "empty extension object dropped");
    let v = proj("", "department");
    assert_eq!(
        v[ent],
        json!({"manager": {"value": "m1", "displayName": "John Smith"}})
    );
    let v = proj("", "urn:example:custom");
    assert!(v.get("urn:example:custom").is_none());
    let v = proj("", "urn:example:custom:tier");
    assert_eq!(v["urn:example:custom"], json!({"level": 3}));
    let v = proj("", "department");
    assert_eq!(v["urn:example:custom"], user()["urn:example:custom"]);
}

#[test]
fn attributes_take_precedence_over_excluded() {
    let v = proj("userName,emails", "emails");
    assert_eq!(keys(&v), ["schemas", "id", "userName", "emails"]);
}

#[test]
fn returned_request_and_never_from_the_schema() {
    let mut secret = AttributeDef::new("secretLevel", AttrType::Integer, "Requested only.");
    secret.returned = Returned::Request;
    let mut hidden = AttributeDef::new("hidden", AttrType::String, "Never returned.");
    hidden.returned = Returned::Never;
    let mut badge = AttributeDef::new("badge", AttrType::Complex, "A badge.");
    badge.sub_attributes = vec![
        AttributeDef::new("number", AttrType::String, "Badge number."),
        hidden.clone(),
        AttributeDef::new("kind", AttrType::String, "Kind.").returned(Returned::Always),
    ];
    let schema = ResourceSchema {
        core: SchemaDef {
            id: "urn:example:core".into(),
            name: "Thing".into(),
            description: "A thing.".into(),
            attributes: vec![secret, hidden, badge],
        },
        extensions: Vec::new(),
    };
    let r = json!({
        "id": "t1",
        "secretLevel": 7,
        "hidden": "x",
        "badge": {"number": "42", "hidden": "y", "kind": "staff"},
        "color": "blue"
    });
    let all = project(&r, &schema, &[], &[]);
    assert_eq!(
        all,
        json!({"id": "t1", "badge": {"number": "42", "kind": "staff"}, "color": "blue"})
    );
    let v = project(&r, &schema, &list("secretLevel"), &[]);
    assert_eq!(v, json!({"id": "t1", "secretLevel": 7}));
    let v = project(&r, &schema, &list("badge.hidden,hidden"), &[]);
    assert_eq!(v, json!({"id": "t1", "badge": {"kind": "staff"}}));
    let v = project(&r, &schema, &list("badge.number"), &[]);
    assert_eq!(
        v["badge"],
        json!({"number": "42", "kind": "staff"}),
        "always sub kept"
    );
    let v = project(&r, &schema, &[], &list("badge.kind,badge.number"));
    assert_eq!(v["badge"], json!({"kind": "staff"}));
}

#[test]
fn group_members() {
    let g = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "g1",
        "displayName": "Tour Guides",
        "members": [{"value": "u1", "display": "Babs", "$ref": "https://x/Users/u1"}],
        "meta": {"resourceType": "Group"}
    });
    let schema = ResourceSchema::group();
    let v = project(&g, &schema, &[], &list("members"));
    assert_eq!(keys(&v), ["schemas", "id", "displayName", "meta"]);
    let v = project(&g, &schema, &list("members.value,members.$REF"), &[]);
    assert_eq!(
        v["members"],
        json!([{"value": "u1", "$ref": "https://x/Users/u1"}])
    );
    assert_eq!(keys(&v), ["schemas", "id", "members"]);
}

#[test]
fn non_objects_and_odd_shapes_are_left_alone() {
    let schema = ResourceSchema::user();
    for v in [json!(null), json!([1, 2]), json!("x")] {
        assert_eq!(project(&v, &schema, &list("userName"), &[]), v);
    }
    let r = json!({"id": "u1", "emails": "not-an-array", "name": "flat"});
    assert_eq!(project(&r, &schema, &[], &list("emails.value")), r);
    assert_eq!(
        project(&r, &schema, &list("name.givenName"), &[]),
        json!({"id": "u1"})
    );
    let r = json!({"id": "u1", "emails": []});
    assert_eq!(project(&r, &schema, &list("emails.value"), &[]), r);
}

#[test]
fn assembled_resources_carry_meta_and_a_stable_etag() {
    let mut attrs = serde_json::Map::new();
    attrs.insert("userName".into(), json!("ada"));
    let v1 = super::version(&attrs);
    assert!(v1.starts_with("W/\"") && v1.len() == 4 + 16, "{v1}");
    assert_eq!(v1, super::version(&attrs.clone()));
    let r = super::assemble(
        &[crate::schema::USER],
        "u1",
        attrs.clone(),
        super::Meta {
            resource_type: "User",
            created: Some("2026-01-01T00:00:00Z".into()),
            last_modified: None,
            location: super::location("http://h/scim/v2", "Users", "u1"),
            version: Some(v1.clone()),
        },
    );
    let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["schemas", "id", "userName", "meta"]);
    assert_eq!(r["meta"]["location"], "http://h/scim/v2/Users/u1");
    assert_eq!(r["meta"]["version"], json!(v1));
    assert!(r["meta"].get("lastModified").is_none());
    attrs.insert("userName".into(), json!("ada2"));
    assert_ne!(super::version(&attrs), v1);
}

#[test]
fn text_at_reads_primary_elements_and_sub_attributes() {
    let r = json!({"UserName": "ada", "emails": [{"value": "a@x"}, {"value": "b@x", "primary": true}],
        "name": {"givenName": ""}});
    let at = |p: &str| super::text_at(&r, &AttrPath::parse(p).unwrap());
    assert_eq!(at("userName").as_deref(), Some("ada"));
    assert_eq!(at("emails.value").as_deref(), Some("b@x"));
    assert_eq!(at("name.givenName"), None);
    assert_eq!(at("title"), None);
}

#[test]
fn version_is_the_xxh3_of_the_attributes_json_and_kept_across_releases() {
    let attrs = user().as_object().unwrap().clone();
    // What every earlier release computed: the attributes' JSON fed to a streaming xxh3.
    let mut streaming = xxhash_rust::xxh3::Xxh3::new();
    streaming.update(&serde_json::to_vec(&attrs).unwrap());
    assert_eq!(
        version(&attrs),
        format!("W/\"{:016x}\"", streaming.digest())
    );
    // A change to any attribute changes it; a second call on the thread gives the same.
    let mut changed = attrs.clone();
    changed.insert("userName".into(), json!("someone-else"));
    assert_ne!(version(&changed), version(&attrs));
    assert_eq!(version(&attrs), version(&attrs));
    // A large resource's buffer is not kept, and the answer is the same after.
    let mut big = attrs;
    big.insert("x".into(), json!("y".repeat(100_000)));
    let first = version(&big);
    assert_eq!(version(&big), first);
}
