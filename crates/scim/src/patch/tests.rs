//! Tests for `scim::patch`: request parsing, path parsing, every apply form, the real request
//! bodies Okta and Microsoft Entra ID send, one test per error variant and a never-panic sweep.

use serde_json::{Value, json};

use super::*;
use crate::filter::parse_value_filter;
use crate::schema::{
    AttrType, AttributeDef, ENTERPRISE_USER, GROUP, Mutability, PATCH_OP, ResourceSchema,
    SchemaDef, USER,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const CUSTOM: &str = "urn:example:params:scim:schemas:extension:custom:1.0:User";

fn user_schema() -> ResourceSchema {
    ResourceSchema::user()
}

/// User + enterprise + a custom extension with the types the RFC User schema lacks.
fn custom_schema() -> ResourceSchema {
    let mut schema = ResourceSchema::user();
    schema.extensions.push(SchemaDef {
        id: CUSTOM.to_owned(),
        name: "Custom".to_owned(),
        description: "test extension".to_owned(),
        attributes: vec![
            AttributeDef::new("level", AttrType::Integer, "an integer"),
            AttributeDef::new("score", AttrType::Decimal, "a decimal"),
            AttributeDef::new("hiredAt", AttrType::DateTime, "a dateTime"),
            AttributeDef::new("tags", AttrType::String, "simple multi-valued").multi(),
            AttributeDef::new("badge", AttrType::String, "immutable")
                .mutability(Mutability::Immutable),
            AttributeDef::new("costCode", AttrType::String, "required").required(),
        ],
    });
    schema
}

fn user() -> Value {
    json!({
        "schemas": [USER],
        "id": "2819c223",
        "externalId": "00u1abc",
        "userName": "bjensen@example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Barbara Jensen"},
        "displayName": "Babs Jensen",
        "active": true,
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
        "meta": {"resourceType": "User", "created": "2024-01-01T00:00:00Z"}
    })
}

fn group() -> Value {
    json!({
        "schemas": [GROUP],
        "id": "g1",
        "displayName": "Engineering",
        "members": [{"value": "u1", "display": "Ann"}, {"value": "u2"}, {"value": "u3"}]
    })
}

fn body(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

fn run(resource: &Value, schema: &ResourceSchema, ops: Value) -> Result<Value, PatchError> {
    let ops = parse_request(&body(ops))?;
    let mut r = resource.clone();
    apply(&mut r, &ops, schema)?;
    Ok(r)
}

fn patch_user(ops: Value) -> Value {
    run(&user(), &user_schema(), ops).unwrap()
}

fn patch_user_err(ops: Value) -> PatchError {
    run(&user(), &user_schema(), ops).unwrap_err()
}

fn patch_group(ops: Value) -> Value {
    run(&group(), &ResourceSchema::group(), ops).unwrap()
}

fn member_ids(g: &Value) -> Vec<&str> {
    g["members"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["value"].as_str()).collect())
        .unwrap_or_default()
}

fn schemas_of(r: &Value) -> Vec<&str> {
    r["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// parse_request
// ---------------------------------------------------------------------------------------------

#[test]
fn request_parses_okta_deactivate() {
    let ops = parse_request(&body(
        json!([{"op": "replace", "value": {"active": false}}]),
    ))
    .unwrap();
    assert_eq!(
        ops,
        vec![PatchOperation {
            op: PatchOpKind::Replace,
            path: None,
            value: Some(json!({"active": false})),
        }]
    );
}

#[test]
fn request_accepts_any_op_case() {
    let ops = parse_request(&body(json!([
        {"op": "Add", "path": "title", "value": "x"},
        {"op": "REPLACE", "path": "title", "value": "y"},
        {"op": "remove", "path": "title"},
    ])))
    .unwrap();
    let kinds: Vec<PatchOpKind> = ops.iter().map(|o| o.op).collect();
    assert_eq!(
        kinds,
        [PatchOpKind::Add, PatchOpKind::Replace, PatchOpKind::Remove]
    );
}

#[test]
fn request_accepts_lowercase_operations_key() {
    let b = json!({"schemas": [PATCH_OP], "operations": [{"op": "Replace", "path": "active", "value": "False"}]});
    let ops = parse_request(&b).unwrap();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].path.as_ref().unwrap().attr, "active");
}

#[test]
fn request_empty_or_null_path_means_no_path() {
    let ops = parse_request(&body(json!([
        {"op": "replace", "path": "", "value": {"active": false}},
        {"op": "replace", "path": null, "value": {"active": true}},
    ])))
    .unwrap();
    assert!(ops.iter().all(|o| o.path.is_none()));
}

#[test]
fn request_requires_patch_schema() {
    for b in [
        json!({"Operations": [{"op": "remove", "path": "title"}]}),
        json!({"schemas": [USER], "Operations": [{"op": "remove", "path": "title"}]}),
        json!({"schemas": PATCH_OP, "Operations": [{"op": "remove", "path": "title"}]}),
    ] {
        let e = parse_request(&b).unwrap_err();
        assert_eq!(e.scim_type().as_str(), "invalidSyntax", "{b}");
        assert!(e.to_string().contains(PATCH_OP));
    }
}

#[test]
fn request_rejects_malformed_structure() {
    let cases = [
        json!([1, 2]),
        json!("x"),
        json!({"schemas": [PATCH_OP]}),
        json!({"schemas": [PATCH_OP], "Operations": {"op": "add"}}),
        json!({"schemas": [PATCH_OP], "Operations": []}),
        body(json!([42])),
        body(json!([{"path": "title", "value": "x"}])),
        body(json!([{"op": 1, "path": "title", "value": "x"}])),
        body(json!([{"op": "move", "path": "title", "value": "x"}])),
    ];
    for b in cases {
        let e = parse_request(&b).unwrap_err();
        assert!(matches!(e, PatchError::InvalidSyntax(_)), "{b}: {e:?}");
    }
}

#[test]
fn request_limits_operation_count() {
    let op = json!({"op": "replace", "path": "title", "value": "x"});
    let ok = body(Value::Array(vec![op.clone(); MAX_OPERATIONS]));
    assert_eq!(parse_request(&ok).unwrap().len(), MAX_OPERATIONS);
    let too_many = body(Value::Array(vec![op; MAX_OPERATIONS + 1]));
    let e = parse_request(&too_many).unwrap_err();
    assert!(
        matches!(&e, PatchError::InvalidSyntax(m) if m.contains("1000")),
        "{e:?}"
    );
}

#[test]
fn request_remove_needs_path() {
    let e = parse_request(&body(json!([{"op": "remove"}]))).unwrap_err();
    assert!(matches!(e, PatchError::NoTarget(_)), "{e:?}");
    assert_eq!(e.scim_type().as_str(), "noTarget");
}

#[test]
fn request_add_and_replace_need_value() {
    for op in ["add", "replace"] {
        let e = parse_request(&body(json!([{"op": op, "path": "title"}]))).unwrap_err();
        assert!(matches!(e, PatchError::InvalidValue(_)), "{e:?}");
        let e = parse_request(&body(json!([{"op": op, "value": "x"}]))).unwrap_err();
        assert!(
            matches!(&e, PatchError::InvalidValue(m) if m.contains("object")),
            "{e:?}"
        );
    }
}

#[test]
fn request_path_errors_name_the_operation() {
    let e = parse_request(&body(json!([
        {"op": "add", "path": "title", "value": "x"},
        {"op": "add", "path": "emails[type eq", "value": "x"},
    ])))
    .unwrap_err();
    assert!(
        matches!(&e, PatchError::InvalidPath(m) if m.starts_with("Operations[1]")),
        "{e:?}"
    );
    let e = parse_request(&body(json!([{"op": "add", "path": 7, "value": "x"}]))).unwrap_err();
    assert_eq!(e.scim_type().as_str(), "invalidPath");
}

#[test]
fn scim_types_match_rfc_names() {
    let pairs = [
        (PatchError::InvalidSyntax(String::new()), "invalidSyntax"),
        (PatchError::InvalidPath(String::new()), "invalidPath"),
        (PatchError::NoTarget(String::new()), "noTarget"),
        (PatchError::InvalidValue(String::new()), "invalidValue"),
        (PatchError::Mutability(String::new()), "mutability"),
    ];
    for (e, t) in pairs {
        assert_eq!(e.scim_type().as_str(), t);
    }
}

// ---------------------------------------------------------------------------------------------
// parse_path
// ---------------------------------------------------------------------------------------------

fn p(urn: Option<&str>, attr: &str, filter: Option<&str>, sub: Option<&str>) -> PatchPath {
    PatchPath {
        urn: urn.map(str::to_owned),
        attr: attr.to_owned(),
        filter: filter.map(|f| parse_value_filter(f).unwrap()),
        sub: sub.map(str::to_owned),
    }
}

#[test]
fn path_forms() {
    let ent = ENTERPRISE_USER;
    let cases = [
        ("userName", p(None, "userName", None, None)),
        (" name.givenName ", p(None, "name", None, Some("givenName"))),
        (
            &format!("{USER}:userName"),
            p(Some(USER), "userName", None, None),
        ),
        (
            &format!("{USER}:name.familyName"),
            p(Some(USER), "name", None, Some("familyName")),
        ),
        (
            &format!("{ent}:manager"),
            p(Some(ent), "manager", None, None),
        ),
        (
            &format!("{ent}:manager.value"),
            p(Some(ent), "manager", None, Some("value")),
        ),
        (
            &format!("{ent}:department"),
            p(Some(ent), "department", None, None),
        ),
        (
            "emails[type eq \"work\"]",
            p(None, "emails", Some("type eq \"work\""), None),
        ),
        (
            "emails[type eq \"work\"].value",
            p(None, "emails", Some("type eq \"work\""), Some("value")),
        ),
        (
            "addresses[type eq \"work\"].streetAddress",
            p(
                None,
                "addresses",
                Some("type eq \"work\""),
                Some("streetAddress"),
            ),
        ),
        (
            &format!("{USER}:emails[type eq \"work\" and primary eq true].value"),
            p(
                Some(USER),
                "emails",
                Some("type eq \"work\" and primary eq true"),
                Some("value"),
            ),
        ),
        (
            "members[value eq \"a]b[c\"]",
            p(None, "members", Some("value eq \"a]b[c\""), None),
        ),
        ("members.$ref", p(None, "members", None, Some("$ref"))),
    ];
    for (input, expected) in cases {
        assert_eq!(parse_path(input).unwrap(), expected, "{input}");
    }
}

#[test]
fn path_display_names_the_attribute() {
    let path = parse_path(&format!("{ENTERPRISE_USER}:manager.value")).unwrap();
    assert_eq!(path.to_string(), format!("{ENTERPRISE_USER}:manager.value"));
    assert_eq!(
        parse_path("emails[type eq \"work\"].value")
            .unwrap()
            .to_string(),
        "emails[…].value"
    );
}

#[test]
fn path_rejects_malformed() {
    let long = "a".repeat(crate::filter::MAX_FILTER_LEN + 1);
    let bad = [
        "",
        "   ",
        "name.givenName.x",
        "emails[type eq \"work\"",
        "emails[]",
        "emails[type eq \"work\"]value",
        "emails.value[type eq \"work\"]",
        "emails[type eq \"work\"][value eq \"x\"]",
        "emails[type eq \"work\" and [x]]",
        "emails[type eq]",
        "emails[type eq \"work\"].",
        "1name",
        "na me",
        "foo:bar",
        "urn::",
        ":name",
        "name.",
        ".name",
        long.as_str(),
    ];
    for input in bad {
        let e = parse_path(input).unwrap_err();
        assert!(matches!(e, PatchError::InvalidPath(_)), "{input:?}: {e:?}");
    }
}

#[test]
fn path_error_echo_is_bounded() {
    let input = format!("{}[", "x".repeat(3000));
    let e = parse_path(&input).unwrap_err();
    assert!(e.to_string().len() < 300, "{}", e.to_string().len());
}

// ---------------------------------------------------------------------------------------------
// Okta
// ---------------------------------------------------------------------------------------------

#[test]
fn okta_deactivate_user() {
    let r = patch_user(json!([{"op": "replace", "value": {"active": false}}]));
    assert_eq!(r["active"], json!(false));
    let mut expected = user();
    expected["active"] = json!(false);
    assert_eq!(r, expected, "nothing else changes");
}

#[test]
fn okta_profile_update_pathless_replace() {
    let r = patch_user(json!([{
        "op": "replace",
        "value": {
            "id": "someone-else",
            "schemas": ["urn:bogus"],
            "userName": "barbara@example.com",
            "name": {"givenName": "Barb", "familyName": "Jensen-Smith"},
            "emails": [{"primary": true, "value": "barb@example.com", "type": "work"}],
            "displayName": "Barb Jensen-Smith",
            "locale": "en-US",
            "externalId": "00u1abc",
            "active": true
        }
    }]));
    assert_eq!(r["id"], "2819c223", "id is read-only and ignored");
    assert_eq!(schemas_of(&r), [USER], "schemas in the value is ignored");
    assert_eq!(r["userName"], "barbara@example.com");
    assert_eq!(
        r["name"],
        json!({"givenName": "Barb", "familyName": "Jensen-Smith", "formatted": "Barbara Jensen"}),
        "replace on a complex attribute leaves unspecified sub-attributes (RFC 7644 §3.5.2.3)"
    );
    assert_eq!(
        r["emails"],
        json!([{"primary": true, "value": "barb@example.com", "type": "work"}])
    );
    assert_eq!(r["displayName"], "Barb Jensen-Smith");
    assert_eq!(r["locale"], "en-US");
    assert_eq!(r["meta"], user()["meta"]);
}

#[test]
fn okta_group_rename_sends_id() {
    let g = patch_group(json!([{
        "op": "replace",
        "value": {"id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b", "displayName": "Test SCIMv2"}
    }]));
    assert_eq!(g["id"], "g1");
    assert_eq!(g["displayName"], "Test SCIMv2");
    assert_eq!(member_ids(&g), ["u1", "u2", "u3"]);
}

#[test]
fn okta_group_add_members_skips_existing() {
    let g = patch_group(json!([{
        "op": "add",
        "path": "members",
        "value": [
            {"value": "u2", "display": "Bob"},
            {"value": "u4", "display": "Dee"}
        ]
    }]));
    assert_eq!(member_ids(&g), ["u1", "u2", "u3", "u4"]);
    assert_eq!(g["members"][3], json!({"value": "u4", "display": "Dee"}));
}

#[test]
fn okta_group_remove_member_by_filter() {
    let g = patch_group(json!([{"op": "remove", "path": "members[value eq \"u2\"]"}]));
    assert_eq!(member_ids(&g), ["u1", "u3"]);
}

#[test]
fn okta_group_replace_all_members() {
    let g = patch_group(json!([{
        "op": "replace",
        "path": "members",
        "value": [{"value": "u9", "display": "Zed"}]
    }]));
    assert_eq!(g["members"], json!([{"value": "u9", "display": "Zed"}]));
}

// ---------------------------------------------------------------------------------------------
// Microsoft Entra ID
// ---------------------------------------------------------------------------------------------

#[test]
fn entra_disable_user_with_string_boolean() {
    let r = patch_user(json!([{"op": "Replace", "path": "active", "value": "False"}]));
    assert_eq!(r["active"], json!(false));
    let r = run(
        &r,
        &user_schema(),
        json!([{"op": "Replace", "path": "active", "value": "True"}]),
    )
    .unwrap();
    assert_eq!(r["active"], json!(true));
    let r = patch_user(json!([{"op": "replace", "path": "active", "value": false}]));
    assert_eq!(r["active"], json!(false));
}

#[test]
fn entra_add_work_email_value_updates_existing_element() {
    let r = patch_user(json!([
        {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "babs@new.example.com"}
    ]));
    assert_eq!(
        r["emails"],
        json!([{"value": "babs@new.example.com", "type": "work", "primary": true}])
    );
}

#[test]
fn entra_replace_work_email_creates_element_when_missing() {
    let mut u = user();
    u.as_object_mut().unwrap().remove("emails");
    let r = run(
        &u,
        &user_schema(),
        json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "x@example.com"}]),
    )
    .unwrap();
    assert_eq!(
        r["emails"],
        json!([{"type": "work", "value": "x@example.com"}])
    );
}

#[test]
fn entra_add_work_email_next_to_home_email() {
    let mut u = user();
    u["emails"] = json!([{"value": "home@example.com", "type": "home"}]);
    let r = run(
        &u,
        &user_schema(),
        json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "w@example.com"}]),
    )
    .unwrap();
    assert_eq!(
        r["emails"],
        json!([
            {"value": "home@example.com", "type": "home"},
            {"type": "work", "value": "w@example.com"}
        ])
    );
}

#[test]
fn entra_replace_name_given_name() {
    let r = patch_user(json!([{"op": "Replace", "path": "name.givenName", "value": "Gtfd"}]));
    assert_eq!(
        r["name"],
        json!({"givenName": "Gtfd", "familyName": "Jensen", "formatted": "Barbara Jensen"})
    );
}

#[test]
fn entra_enterprise_department_creates_extension() {
    let r = patch_user(json!([{
        "op": "Add",
        "path": format!("{ENTERPRISE_USER}:department"),
        "value": "Sales"
    }]));
    assert_eq!(r[ENTERPRISE_USER], json!({"department": "Sales"}));
    assert_eq!(schemas_of(&r), [USER, ENTERPRISE_USER]);
    // A second write neither duplicates the URN nor loses the first attribute.
    let r = run(
        &r,
        &user_schema(),
        json!([{"op": "Replace", "path": format!("{ENTERPRISE_USER}:employeeNumber"), "value": "701984"}]),
    )
    .unwrap();
    assert_eq!(
        r[ENTERPRISE_USER],
        json!({"department": "Sales", "employeeNumber": "701984"})
    );
    assert_eq!(schemas_of(&r), [USER, ENTERPRISE_USER]);
}

#[test]
fn entra_work_address_parts_build_one_element() {
    let r = patch_user(json!([
        {"op": "Replace", "path": "addresses[type eq \"work\"].streetAddress", "value": "1 Main St"},
        {"op": "Replace", "path": "addresses[type eq \"work\"].locality", "value": "Redmond"},
        {"op": "Add", "path": "addresses[type eq \"work\"].postalCode", "value": "98052"}
    ]));
    assert_eq!(
        r["addresses"],
        json!([{"type": "work", "streetAddress": "1 Main St", "locality": "Redmond", "postalCode": "98052"}])
    );
}

#[test]
fn entra_remove_members_with_value_list() {
    let g = patch_group(json!([{
        "op": "Remove",
        "path": "members",
        "value": [{"value": "u1"}, {"$ref": null, "value": "u3"}]
    }]));
    assert_eq!(member_ids(&g), ["u2"]);
}

#[test]
fn entra_remove_member_by_filter_with_feature_flag() {
    let g = patch_group(json!([{"op": "remove", "path": "members[value eq \"u1\"]"}]));
    assert_eq!(member_ids(&g), ["u2", "u3"]);
}

#[test]
fn entra_add_members_with_null_ref() {
    let g = patch_group(json!([{
        "op": "Add",
        "path": "members",
        "value": [{"$ref": null, "value": "f648f8d5"}]
    }]));
    assert_eq!(g["members"][3], json!({"value": "f648f8d5"}));
}

#[test]
fn entra_replace_group_display_name() {
    let g = patch_group(json!([{"op": "Replace", "path": "displayName", "value": "1879db59"}]));
    assert_eq!(g["displayName"], "1879db59");
}

#[test]
fn entra_replace_multiple_attributes_without_feature_flag() {
    let r = patch_user(json!([
        {"op": "Replace", "path": "displayName", "value": "Pvlo"},
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "TestBcwqnm@test.microsoft.com"},
        {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
        {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
        {"op": "Replace", "path": "externalId", "value": "Eqpj"},
        {"op": "Replace", "path": format!("{ENTERPRISE_USER}:employeeNumber"), "value": "Eqpj"}
    ]));
    assert_eq!(r["displayName"], "Pvlo");
    assert_eq!(r["emails"][0]["value"], "TestBcwqnm@test.microsoft.com");
    assert_eq!(r["name"]["givenName"], "Gtfd");
    assert_eq!(r["name"]["familyName"], "Pkqf");
    assert_eq!(r["externalId"], "Eqpj");
    assert_eq!(r[ENTERPRISE_USER]["employeeNumber"], "Eqpj");
}

#[test]
fn entra_replace_multiple_attributes_with_feature_flag() {
    let r = patch_user(json!([
        {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "TestMhvaes@test.microsoft.com"},
        {"op": "replace", "value": {
            "displayName": "Bjfe",
            "name.givenName": "Kkom",
            "name.familyName": "Unua",
            format!("{ENTERPRISE_USER}:employeeNumber"): "Aklq"
        }}
    ]));
    assert_eq!(r["emails"][0]["value"], "TestMhvaes@test.microsoft.com");
    assert_eq!(r["displayName"], "Bjfe");
    assert_eq!(r["name"]["givenName"], "Kkom");
    assert_eq!(r["name"]["familyName"], "Unua");
    assert_eq!(r["name"]["formatted"], "Barbara Jensen");
    assert_eq!(r[ENTERPRISE_USER], json!({"employeeNumber": "Aklq"}));
    assert!(schemas_of(&r).contains(&ENTERPRISE_USER));
}

#[test]
fn entra_add_single_value_string_attribute() {
    let r = patch_user(json!([{"op": "Add", "path": "nickName", "value": "Babs"}]));
    assert_eq!(r["nickName"], "Babs");
    let r = patch_user(json!([{"op": "add", "value": {"nickName": "Babs"}}]));
    assert_eq!(r["nickName"], "Babs");
}

#[test]
fn entra_manager_as_bare_string() {
    let path = format!("{ENTERPRISE_USER}:manager");
    let r = patch_user(json!([{"op": "add", "path": path, "value": "2c2f6fb8"}]));
    assert_eq!(r[ENTERPRISE_USER]["manager"], json!({"value": "2c2f6fb8"}));
    let r = run(
        &r,
        &user_schema(),
        json!([{"op": "Replace", "path": format!("{path}.value"), "value": "99"}]),
    )
    .unwrap();
    assert_eq!(r[ENTERPRISE_USER]["manager"], json!({"value": "99"}));
    let r = run(&r, &user_schema(), json!([{"op": "Remove", "path": path}])).unwrap();
    assert!(
        r.get(ENTERPRISE_USER).is_none(),
        "empty extension dropped: {r}"
    );
    assert_eq!(schemas_of(&r), [USER]);
}

#[test]
fn entra_custom_multi_valued_strings_as_value_objects() {
    let r = run(
        &user(),
        &custom_schema(),
        json!([{"op": "Add", "path": format!("{CUSTOM}:tags"), "value": [{"value": "1"}]}]),
    )
    .unwrap();
    assert_eq!(r[CUSTOM]["tags"], json!(["1"]));
    let r = run(
        &r,
        &custom_schema(),
        json!([{"op": "Add", "path": format!("{CUSTOM}:tags"), "value": [{"value": "1"}, "2"]}]),
    )
    .unwrap();
    assert_eq!(r[CUSTOM]["tags"], json!(["1", "2"]));
}

#[test]
fn simple_multi_valued_filter_selects_the_element_itself() {
    let mut u = user();
    u[CUSTOM] = json!({"tags": ["a", "B", "c"], "costCode": "C1"});
    let s = custom_schema();
    let r = run(
        &u,
        &s,
        json!([{"op": "remove", "path": format!("{CUSTOM}:tags[value eq \"b\"]")}]),
    )
    .unwrap();
    assert_eq!(r[CUSTOM]["tags"], json!(["a", "c"]));
    let r = run(
        &u,
        &s,
        json!([{"op": "replace", "path": format!("{CUSTOM}:tags[value eq \"c\"]"), "value": "d"}]),
    )
    .unwrap();
    assert_eq!(r[CUSTOM]["tags"], json!(["a", "B", "d"]));
    let r = run(
        &u,
        &s,
        json!([{"op": "remove", "path": format!("{CUSTOM}:tags"), "value": ["A", {"value": "c"}]}]),
    )
    .unwrap();
    assert_eq!(r[CUSTOM]["tags"], json!(["B"]));
}

// ---------------------------------------------------------------------------------------------
// Path-less add / replace
// ---------------------------------------------------------------------------------------------

#[test]
fn pathless_extension_object() {
    let r = patch_user(json!([{
        "op": "add",
        "value": {ENTERPRISE_USER: {"department": "R&D", "manager": {"value": "m1", "displayName": "ro"}}}
    }]));
    assert_eq!(
        r[ENTERPRISE_USER],
        json!({"department": "R&D", "manager": {"value": "m1"}}),
        "manager.displayName is read-only and ignored"
    );
    assert_eq!(schemas_of(&r), [USER, ENTERPRISE_USER]);
}

#[test]
fn pathless_urn_qualified_keys() {
    let r = patch_user(json!([{
        "op": "replace",
        "value": {
            format!("{USER}:name.givenName"): "Bee",
            format!("{USER}:title"): "Boss",
            format!("{ENTERPRISE_USER}:department"): "Ops"
        }
    }]));
    assert_eq!(r["name"]["givenName"], "Bee");
    assert_eq!(r["title"], "Boss");
    assert_eq!(r[ENTERPRISE_USER]["department"], "Ops");
}

#[test]
fn pathless_keys_any_case_are_canonicalised() {
    let r = patch_user(json!([{
        "op": "replace",
        "value": {"DISPLAYNAME": "X", "NAME": {"GIVENNAME": "Y"}, "Active": "false"}
    }]));
    assert_eq!(r["displayName"], "X");
    assert_eq!(r["name"]["givenName"], "Y");
    assert_eq!(r["active"], json!(false));
    let obj = r.as_object().unwrap();
    assert!(!obj.contains_key("DISPLAYNAME") && !obj.contains_key("NAME"));
    assert!(!r["name"].as_object().unwrap().contains_key("GIVENNAME"));
}

#[test]
fn pathless_ignores_unknown_and_read_only_keys() {
    let r = patch_user(json!([{
        "op": "replace",
        "value": {
            "favouriteColour": "blue",
            "name.middle": "x",
            "urn:example:unknown:1.0:User:thing": 1,
            "urn:example:unknown:1.0:User": {"thing": 1},
            "meta": {"created": "2000-01-01T00:00:00Z"},
            "groups": [{"value": "g1"}],
            "id": "other",
            "not a path!": true
        }
    }]));
    assert_eq!(r, user());
}

#[test]
fn pathless_add_appends_multi_valued() {
    let r = patch_user(json!([{
        "op": "add",
        "value": {"emails": [{"value": "home@example.com", "type": "home"}]}
    }]));
    assert_eq!(r["emails"].as_array().unwrap().len(), 2);
    assert_eq!(
        r["emails"][1],
        json!({"value": "home@example.com", "type": "home"})
    );
}

#[test]
fn pathless_replace_replaces_multi_valued() {
    let r = patch_user(json!([{
        "op": "replace",
        "value": {"emails": [{"value": "only@example.com", "type": "home"}]}
    }]));
    assert_eq!(
        r["emails"],
        json!([{"value": "only@example.com", "type": "home"}])
    );
}

#[test]
fn pathless_value_path_key() {
    let r = patch_user(json!([{
        "op": "replace",
        "value": {"emails[type eq \"work\"].value": "new@example.com"}
    }]));
    assert_eq!(r["emails"][0]["value"], "new@example.com");
}

#[test]
fn pathless_extension_value_must_be_object() {
    let e = patch_user_err(json!([{"op": "add", "value": {ENTERPRISE_USER: "x"}}]));
    assert!(matches!(e, PatchError::InvalidValue(_)), "{e:?}");
}

#[test]
fn path_naming_whole_extension() {
    let r =
        patch_user(json!([{"op": "add", "path": ENTERPRISE_USER, "value": {"division": "EMEA"}}]));
    assert_eq!(r[ENTERPRISE_USER], json!({"division": "EMEA"}));
    assert_eq!(schemas_of(&r), [USER, ENTERPRISE_USER]);
    let r = run(
        &r,
        &user_schema(),
        json!([{"op": "remove", "path": ENTERPRISE_USER}]),
    )
    .unwrap();
    assert!(r.get(ENTERPRISE_USER).is_none());
    assert_eq!(schemas_of(&r), [USER]);
    let e = patch_user_err(json!([{"op": "remove", "path": USER}]));
    assert_eq!(e.scim_type().as_str(), "invalidPath");
}

// ---------------------------------------------------------------------------------------------
// Pathed add / replace
// ---------------------------------------------------------------------------------------------

#[test]
fn add_sets_single_valued_and_merges_complex() {
    let r = patch_user(json!([
        {"op": "add", "path": "title", "value": "CTO"},
        {"op": "add", "path": "name", "value": {"middleName": "Jane", "givenName": "Barb"}}
    ]));
    assert_eq!(r["title"], "CTO");
    assert_eq!(
        r["name"],
        json!({"givenName": "Barb", "familyName": "Jensen", "formatted": "Barbara Jensen", "middleName": "Jane"})
    );
}

#[test]
fn replace_complex_with_null_sub_unassigns_it() {
    let r = patch_user(json!([{"op": "replace", "path": "name", "value": {"formatted": null}}]));
    assert_eq!(
        r["name"],
        json!({"givenName": "Barbara", "familyName": "Jensen"})
    );
}

#[test]
fn add_appends_to_multi_valued() {
    let r = patch_user(json!([
        {"op": "add", "path": "phoneNumbers", "value": {"value": "+1 555", "type": "work"}},
        {"op": "add", "path": "phoneNumbers", "value": [{"value": "+1 666", "type": "mobile"}]}
    ]));
    assert_eq!(
        r["phoneNumbers"],
        json!([{"value": "+1 555", "type": "work"}, {"value": "+1 666", "type": "mobile"}])
    );
}

#[test]
fn add_does_not_duplicate_existing_element() {
    let r = patch_user(json!([
        {"op": "add", "path": "emails", "value": [{"value": "BJensen@Example.com", "type": "work", "primary": true}]},
        {"op": "add", "path": "emails", "value": [{"value": "bjensen@example.com"}]}
    ]));
    assert_eq!(r["emails"].as_array().unwrap().len(), 1, "{r}");
}

#[test]
fn replace_multi_valued_replaces_array() {
    let r = patch_user(json!([{
        "op": "replace",
        "path": "emails",
        "value": [{"value": "a@x.com", "type": "home"}, {"value": "b@x.com", "type": "other"}]
    }]));
    assert_eq!(
        r["emails"],
        json!([{"value": "a@x.com", "type": "home"}, {"value": "b@x.com", "type": "other"}])
    );
}

#[test]
fn replace_multi_valued_with_empty_array_unassigns() {
    let r = patch_user(json!([{"op": "replace", "path": "emails", "value": []}]));
    assert!(r.get("emails").is_none());
}

#[test]
fn replace_with_null_unassigns() {
    let r = patch_user(json!([{"op": "replace", "path": "displayName", "value": null}]));
    assert!(r.get("displayName").is_none());
}

#[test]
fn filter_without_sub_replaces_or_merges_matches() {
    let r = patch_user(json!([{
        "op": "replace",
        "path": "emails[type eq \"work\"]",
        "value": {"value": "new@x.com"}
    }]));
    assert_eq!(r["emails"], json!([{"type": "work", "value": "new@x.com"}]));
    let r = patch_user(json!([{
        "op": "add",
        "path": "emails[type eq \"work\"]",
        "value": {"display": "Work"}
    }]));
    assert_eq!(
        r["emails"],
        json!([{"value": "bjensen@example.com", "type": "work", "primary": true, "display": "Work"}])
    );
}

#[test]
fn filter_without_sub_creates_element_when_nothing_matches() {
    let r = patch_user(json!([{
        "op": "add",
        "path": "phoneNumbers[type eq \"mobile\"]",
        "value": {"value": "+1 777"}
    }]));
    assert_eq!(
        r["phoneNumbers"],
        json!([{"type": "mobile", "value": "+1 777"}])
    );
}

#[test]
fn filter_sub_updates_every_match() {
    let mut u = user();
    u["phoneNumbers"] = json!([
        {"value": "1", "type": "work"},
        {"value": "2", "type": "home"},
        {"value": "3", "type": "work"}
    ]);
    let r = run(
        &u,
        &user_schema(),
        json!([{"op": "replace", "path": "phoneNumbers[type eq \"work\"].display", "value": "W"}]),
    )
    .unwrap();
    assert_eq!(
        r["phoneNumbers"],
        json!([
            {"value": "1", "type": "work", "display": "W"},
            {"value": "2", "type": "home"},
            {"value": "3", "type": "work", "display": "W"}
        ])
    );
}

#[test]
fn filter_with_several_eq_conditions_builds_element() {
    let r = patch_user(json!([{
        "op": "replace",
        "path": "phoneNumbers[type eq \"work\" and primary eq true].value",
        "value": "+1 888"
    }]));
    assert_eq!(
        r["phoneNumbers"],
        json!([{"type": "work", "primary": true, "value": "+1 888"}])
    );
}

#[test]
fn sub_of_multi_valued_without_filter_sets_all() {
    let mut u = user();
    u["ims"] = json!([{"value": "a", "type": "aim"}, {"value": "b", "type": "xmpp"}]);
    let r = run(
        &u,
        &user_schema(),
        json!([{"op": "replace", "path": "ims.display", "value": "d"}]),
    )
    .unwrap();
    assert_eq!(r["ims"][0]["display"], "d");
    assert_eq!(r["ims"][1]["display"], "d");
}

#[test]
fn primary_true_clears_other_primaries() {
    let r = patch_user(json!([{
        "op": "add",
        "path": "emails",
        "value": [{"value": "home@x.com", "type": "home", "primary": true}]
    }]));
    assert_eq!(r["emails"][0]["primary"], json!(false));
    assert_eq!(r["emails"][1]["primary"], json!(true));

    let mut u = user();
    u["emails"] = json!([
        {"value": "w@x.com", "type": "work", "primary": true},
        {"value": "h@x.com", "type": "home"}
    ]);
    let r = run(
        &u,
        &user_schema(),
        json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": "True"}]),
    )
    .unwrap();
    assert_eq!(r["emails"][0]["primary"], json!(false));
    assert_eq!(r["emails"][1]["primary"], json!(true));

    let r = patch_user(json!([{
        "op": "replace",
        "path": "emails",
        "value": [
            {"value": "a@x.com", "primary": true},
            {"value": "b@x.com", "primary": true}
        ]
    }]));
    assert_eq!(r["emails"][0]["primary"], json!(true));
    assert_eq!(r["emails"][1]["primary"], json!(false));
}

#[test]
fn existing_keys_matched_case_insensitively() {
    let mut u = user();
    let obj = u.as_object_mut().unwrap();
    obj.remove("name");
    obj.insert(
        "Name".into(),
        json!({"GivenName": "Old", "familyName": "Jensen"}),
    );
    let r = run(
        &u,
        &user_schema(),
        json!([{"op": "replace", "path": "name.givenName", "value": "New"}]),
    )
    .unwrap();
    assert_eq!(
        r["name"],
        json!({"givenName": "New", "familyName": "Jensen"})
    );
    assert!(r.get("Name").is_none());
    // Position of the renamed key is kept.
    let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
    let before: Vec<String> = u
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.to_lowercase())
        .collect();
    let after: Vec<String> = keys.iter().map(|k| k.to_lowercase()).collect();
    assert_eq!(before, after);
}

#[test]
fn custom_types_are_checked() {
    let s = custom_schema();
    let ok = run(
        &user(),
        &s,
        json!([{"op": "add", "value": {CUSTOM: {
            "level": 3, "score": 2.5, "hiredAt": "2024-02-03T04:05:06Z", "costCode": "C1"
        }}}]),
    )
    .unwrap();
    assert_eq!(
        ok[CUSTOM],
        json!({"level": 3, "score": 2.5, "hiredAt": "2024-02-03T04:05:06Z", "costCode": "C1"})
    );
    let local = run(
        &user(),
        &s,
        json!([{"op": "add", "path": format!("{CUSTOM}:hiredAt"), "value": "2024-02-03T04:05:06"}]),
    );
    assert!(local.is_ok(), "{local:?}");
    for (attr, v) in [
        ("level", json!(2.5)),
        ("level", json!("3")),
        ("score", json!("2.5")),
        ("hiredAt", json!("yesterday")),
        ("hiredAt", json!(5)),
        ("tags", json!([{"a": 1, "b": 2}])),
    ] {
        let e = run(
            &user(),
            &s,
            json!([{"op": "add", "path": format!("{CUSTOM}:{attr}"), "value": v}]),
        )
        .unwrap_err();
        assert!(
            matches!(&e, PatchError::InvalidValue(m) if m.contains(attr)),
            "{attr} {v}: {e:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Remove
// ---------------------------------------------------------------------------------------------

#[test]
fn remove_attribute_and_sub_attribute() {
    let r = patch_user(json!([
        {"op": "remove", "path": "displayName"},
        {"op": "remove", "path": "name.formatted"}
    ]));
    assert!(r.get("displayName").is_none());
    assert_eq!(
        r["name"],
        json!({"givenName": "Barbara", "familyName": "Jensen"})
    );
}

#[test]
fn removing_every_sub_attribute_unassigns_complex() {
    let r = patch_user(json!([
        {"op": "remove", "path": "name.givenName"},
        {"op": "remove", "path": "name.familyName"},
        {"op": "remove", "path": "NAME.FORMATTED"}
    ]));
    assert!(r.get("name").is_none(), "{r}");
}

#[test]
fn remove_filtered_elements_and_last_element() {
    let mut u = user();
    u["emails"] = json!([
        {"value": "w@x.com", "type": "work"},
        {"value": "h@x.com", "type": "home"}
    ]);
    let r = run(
        &u,
        &user_schema(),
        json!([{"op": "remove", "path": "emails[type eq \"work\"]"}]),
    )
    .unwrap();
    assert_eq!(r["emails"], json!([{"value": "h@x.com", "type": "home"}]));
    let r = run(
        &r,
        &user_schema(),
        json!([{"op": "remove", "path": "emails[type eq \"home\"]"}]),
    )
    .unwrap();
    assert!(
        r.get("emails").is_none(),
        "the last element removes the attribute: {r}"
    );
}

#[test]
fn remove_filtered_sub_attribute() {
    let r = patch_user(json!([{"op": "remove", "path": "emails[type eq \"work\"].primary"}]));
    assert_eq!(
        r["emails"],
        json!([{"value": "bjensen@example.com", "type": "work"}])
    );
}

#[test]
fn remove_of_absent_things_is_a_noop() {
    let r = patch_user(json!([
        {"op": "remove", "path": "title"},
        {"op": "remove", "path": "emails[type eq \"home\"]"},
        {"op": "remove", "path": "addresses[type eq \"work\"].locality"},
        {"op": "remove", "path": format!("{ENTERPRISE_USER}:department")},
        {"op": "remove", "path": "x509Certificates"}
    ]));
    assert_eq!(r, user());
    let g =
        patch_group(json!([{"op": "remove", "path": "members", "value": [{"value": "nobody"}]}]));
    assert_eq!(member_ids(&g), ["u1", "u2", "u3"]);
}

#[test]
fn remove_all_members() {
    let g = patch_group(json!([{"op": "remove", "path": "members"}]));
    assert!(g.get("members").is_none());
    assert_eq!(g["displayName"], "Engineering");
}

#[test]
fn remove_last_extension_attribute_drops_extension() {
    let mut u = user();
    u["schemas"] = json!([USER, ENTERPRISE_USER]);
    u[ENTERPRISE_USER] = json!({"department": "Ops"});
    let r = run(
        &u,
        &user_schema(),
        json!([{"op": "remove", "path": format!("{ENTERPRISE_USER}:department")}]),
    )
    .unwrap();
    assert_eq!(r, user());
}

// ---------------------------------------------------------------------------------------------
// Errors, one family per variant
// ---------------------------------------------------------------------------------------------

#[test]
fn error_invalid_path_names_unknown_attribute() {
    for path in [
        "favouriteColour",
        "name.middle",
        "urn:example:unknown:1.0:User:thing",
        "title[value eq \"x\"]",
    ] {
        let e = patch_user_err(json!([{"op": "replace", "path": path, "value": "x"}]));
        assert_eq!(e.scim_type().as_str(), "invalidPath", "{path}: {e:?}");
        let name = path
            .split(['[', '.'])
            .next()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap();
        assert!(e.to_string().contains(name), "{path}: {e}");
    }
    let e = patch_user_err(json!([{"op": "remove", "path": "favouriteColour"}]));
    assert_eq!(e.scim_type().as_str(), "invalidPath");
}

#[test]
fn error_invalid_path_on_bad_filter_types() {
    let e = patch_user_err(
        json!([{"op": "replace", "path": "emails[primary gt true].value", "value": "x"}]),
    );
    assert_eq!(e.scim_type().as_str(), "invalidPath", "{e:?}");
}

#[test]
fn error_no_target_when_filter_cannot_build_an_element() {
    for path in [
        "emails[type ne \"work\"].value",
        "emails[type eq \"home\" or type eq \"other\"].value",
        "emails[display pr].value",
    ] {
        let e = patch_user_err(json!([{"op": "replace", "path": path, "value": "x@y.z"}]));
        assert!(
            matches!(&e, PatchError::NoTarget(m) if m.contains("emails")),
            "{path}: {e:?}"
        );
    }
    let op = PatchOperation {
        op: PatchOpKind::Remove,
        path: None,
        value: None,
    };
    let mut u = user();
    let e = apply(&mut u, &[op], &user_schema()).unwrap_err();
    assert_eq!(e.scim_type().as_str(), "noTarget");
}

#[test]
fn error_invalid_value_on_type_mismatch() {
    let cases = [
        ("active", json!("yes")),
        ("active", json!({"value": true})),
        ("active", json!(1)),
        ("displayName", json!({"x": 1})),
        ("userName", json!(5)),
        ("name", json!("Barbara Jensen")),
        ("name.givenName", json!(["a"])),
        ("emails", json!([["nested"]])),
        ("emails[type eq \"work\"].primary", json!("sometimes")),
    ];
    for (path, v) in cases {
        let e = patch_user_err(json!([{"op": "replace", "path": path, "value": v}]));
        let attr = path.split(['[', '.']).next().unwrap();
        assert!(
            matches!(&e, PatchError::InvalidValue(m) if m.contains(attr)),
            "{path}: {e:?}"
        );
    }
    let e = patch_user_err(json!([{"op": "replace", "value": {"active": "nope"}}]));
    assert!(
        matches!(&e, PatchError::InvalidValue(m) if m.contains("active")),
        "{e:?}"
    );
}

#[test]
fn error_invalid_value_when_removing_required() {
    let e = patch_user_err(json!([{"op": "remove", "path": "userName"}]));
    assert!(
        matches!(&e, PatchError::InvalidValue(m) if m.contains("userName")),
        "{e:?}"
    );
    let e = patch_user_err(json!([{"op": "replace", "path": "userName", "value": null}]));
    assert!(
        matches!(&e, PatchError::InvalidValue(m) if m.contains("userName")),
        "{e:?}"
    );
    let e = run(
        &group(),
        &ResourceSchema::group(),
        json!([{"op": "remove", "path": "displayName"}]),
    )
    .unwrap_err();
    assert!(
        matches!(&e, PatchError::InvalidValue(m) if m.contains("displayName")),
        "{e:?}"
    );
    // A required extension attribute is protected too, also against dropping the extension.
    let mut u = user();
    u[CUSTOM] = json!({"costCode": "C1"});
    let e = run(
        &u,
        &custom_schema(),
        json!([{"op": "remove", "path": CUSTOM}]),
    )
    .unwrap_err();
    assert!(
        matches!(&e, PatchError::InvalidValue(m) if m.contains("costCode")),
        "{e:?}"
    );
    // Replacing a required attribute is fine.
    let r = patch_user(json!([{"op": "replace", "path": "userName", "value": "b@x.com"}]));
    assert_eq!(r["userName"], "b@x.com");
}

#[test]
fn error_mutability_on_read_only_paths() {
    for path in [
        "id",
        "meta",
        "meta.created",
        "groups",
        format!("{ENTERPRISE_USER}:manager.displayName").as_str(),
    ] {
        for op in ["add", "replace", "remove"] {
            let mut o = json!({"op": op, "path": path});
            if op != "remove" {
                o["value"] = json!("x");
            }
            let e = patch_user_err(json!([o]));
            assert!(
                matches!(&e, PatchError::Mutability(m) if m.contains("read-only")),
                "{op} {path}: {e:?}"
            );
        }
    }
}

#[test]
fn error_mutability_on_immutable_values() {
    let s = custom_schema();
    let path = format!("{CUSTOM}:badge");
    let r = run(
        &user(),
        &s,
        json!([{"op": "add", "path": path, "value": "B1"}]),
    )
    .unwrap();
    assert_eq!(r[CUSTOM]["badge"], "B1");
    let same = run(
        &r,
        &s,
        json!([{"op": "replace", "path": path, "value": "B1"}]),
    );
    assert!(same.is_ok(), "{same:?}");
    for ops in [
        json!([{"op": "replace", "path": path, "value": "B2"}]),
        json!([{"op": "remove", "path": path}]),
    ] {
        let e = run(&r, &s, ops).unwrap_err();
        assert!(
            matches!(&e, PatchError::Mutability(m) if m.contains("badge")),
            "{e:?}"
        );
    }
    let e = run(
        &group(),
        &ResourceSchema::group(),
        json!([{"op": "replace", "path": "members[value eq \"u1\"].value", "value": "u9"}]),
    )
    .unwrap_err();
    assert!(
        matches!(&e, PatchError::Mutability(m) if m.contains("members.value")),
        "{e:?}"
    );
}

#[test]
fn failed_request_leaves_resource_unchanged() {
    let ops = parse_request(&body(json!([
        {"op": "replace", "path": "displayName", "value": "Changed"},
        {"op": "remove", "path": "emails"},
        {"op": "replace", "path": "active", "value": "maybe"}
    ])))
    .unwrap();
    let mut u = user();
    let e = apply(&mut u, &ops, &user_schema()).unwrap_err();
    assert!(e.to_string().starts_with("Operations[2]: "), "{e}");
    assert_eq!(u, user());
}

#[test]
fn apply_owned_answers_as_apply_does() {
    let good = parse_request(&body(json!([
        {"op": "replace", "path": "displayName", "value": "Changed"},
        {"op": "remove", "path": "emails"},
        {"op": "replace", "path": "active", "value": false}
    ])))
    .unwrap();
    let mut in_place = user();
    apply(&mut in_place, &good, &user_schema()).unwrap();
    assert_eq!(
        apply_owned(user(), &good, &user_schema()).unwrap(),
        in_place
    );
    assert_ne!(in_place, user());

    let bad = parse_request(&body(json!([
        {"op": "replace", "path": "displayName", "value": "Changed"},
        {"op": "replace", "path": "active", "value": "maybe"}
    ])))
    .unwrap();
    let e = apply_owned(user(), &bad, &user_schema()).unwrap_err();
    let mut u = user();
    assert_eq!(e, apply(&mut u, &bad, &user_schema()).unwrap_err());
    assert_eq!(
        apply_owned(json!([1]), &good, &user_schema())
            .unwrap_err()
            .scim_type()
            .as_str(),
        "invalidValue"
    );
}

#[test]
fn resource_must_be_an_object() {
    let ops = parse_request(&body(
        json!([{"op": "replace", "path": "title", "value": "x"}]),
    ))
    .unwrap();
    let mut r = json!([1]);
    let e = apply(&mut r, &ops, &user_schema()).unwrap_err();
    assert_eq!(e.scim_type().as_str(), "invalidValue");
    assert_eq!(r, json!([1]));
}

// ---------------------------------------------------------------------------------------------
// Never panic
// ---------------------------------------------------------------------------------------------

/// A small deterministic generator (no external crates in tests either).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let i = (self.next() as usize) % items.len();
        items[i]
    }
}

fn garbage_paths() -> Vec<String> {
    const FRAGMENTS: &[&str] = &[
        "emails",
        "name",
        "members",
        "urn:",
        "ietf:params:scim:schemas:core:2.0:User",
        ":",
        ".",
        "[",
        "]",
        "\"",
        "\\",
        " eq ",
        " and ",
        " or ",
        "not",
        "(",
        ")",
        "value",
        "type",
        "\"work\"",
        "primary",
        "true",
        "$ref",
        "é",
        "💥",
        "manager",
        ENTERPRISE_USER,
        "  ",
        "0",
        "-",
        "_",
        "null",
        "pr",
        "\u{0}",
    ];
    let mut rng = Lcg(42);
    let mut out: Vec<String> = (0..3000)
        .map(|_| {
            let n = 1 + (rng.next() % 9) as usize;
            (0..n).map(|_| rng.pick(FRAGMENTS)).collect()
        })
        .collect();
    out.extend([
        "[".repeat(5000),
        "(".repeat(3000),
        format!(
            "emails[{}type eq \"w\"{}].value",
            "(".repeat(200),
            ")".repeat(200)
        ),
        format!("emails[{}]", "not (".repeat(100)),
        "a.".repeat(2000),
        ":".repeat(100),
        "urn:".repeat(1000),
    ]);
    out
}

#[test]
fn never_panics_on_garbage_paths() {
    let schemas = [custom_schema(), ResourceSchema::group()];
    let values = [
        json!("x"),
        json!(null),
        json!(true),
        json!({"value": "x"}),
        json!([{"value": 1}]),
        json!([[[]]]),
    ];
    let mut applied = 0;
    for (i, path) in garbage_paths().iter().enumerate() {
        let Ok(parsed) = parse_path(path) else {
            continue;
        };
        for kind in [PatchOpKind::Add, PatchOpKind::Replace, PatchOpKind::Remove] {
            let op = PatchOperation {
                op: kind,
                path: Some(parsed.clone()),
                value: Some(values[i % values.len()].clone()),
            };
            for (schema, resource) in schemas.iter().zip([user(), group()]) {
                let mut r = resource.clone();
                if apply(&mut r, std::slice::from_ref(&op), schema).is_err() {
                    assert_eq!(r, resource, "failed apply must not change the resource");
                }
                applied += 1;
            }
        }
    }
    assert!(applied > 0);
}

#[test]
fn never_panics_on_garbage_bodies() {
    let mut nested = json!("deep");
    for _ in 0..100 {
        nested = json!([{"value": nested}]);
    }
    let ops_values = [
        json!(null),
        json!(1),
        json!("s"),
        json!([]),
        json!({}),
        json!({"value": {}}),
        json!({"emails": {"value": 1}, "name": [1, 2], "active": [true]}),
        json!({ENTERPRISE_USER: {"manager": [[{"value": 1}]]}}),
        json!({"members": nested}),
        nested.clone(),
    ];
    let paths = [
        json!(null),
        json!("members"),
        json!("emails"),
        json!("name"),
        json!(ENTERPRISE_USER),
        json!(3),
    ];
    let mut tried = 0;
    for v in &ops_values {
        for path in &paths {
            for op in [
                json!("add"),
                json!("replace"),
                json!("remove"),
                json!("Copy"),
                json!(null),
            ] {
                let b = body(json!([{"op": op, "path": path, "value": v}]));
                if let Ok(ops) = parse_request(&b) {
                    let mut u = user();
                    let _ = apply(&mut u, &ops, &user_schema());
                    let mut g = group();
                    let _ = apply(&mut g, &ops, &ResourceSchema::group());
                }
                tried += 1;
            }
        }
    }
    for b in [
        json!(null),
        json!({"schemas": [PATCH_OP], "Operations": [nested]}),
        json!({"schemas": [[PATCH_OP]], "Operations": []}),
    ] {
        assert!(parse_request(&b).is_err());
    }
    assert_eq!(tried, ops_values.len() * paths.len() * 5);
}

#[test]
fn large_group_add_and_remove() {
    let members: Vec<Value> = (0..5_000)
        .map(|i| json!({"value": format!("user-{i}")}))
        .collect();
    let g = json!({"schemas": [GROUP], "id": "g", "displayName": "big", "members": members});
    let add: Vec<Value> = (4_900..5_100)
        .map(|i| json!({"value": format!("USER-{i}"), "display": "x"}))
        .collect();
    let mut ops = vec![json!({"op": "add", "path": "members", "value": add})];
    ops.extend(
        (0..100)
            .map(|i| json!({"op": "remove", "path": format!("members[value eq \"user-{i}\"]")})),
    );
    ops.push(json!({"op": "remove", "path": "members", "value": [{"value": "user-100"}, {"value": "USER-5099"}]}));
    let r = run(&g, &ResourceSchema::group(), Value::Array(ops)).unwrap();
    let ids = member_ids(&r);
    assert_eq!(ids.len(), 5_000 + 100 - 100 - 2);
    assert_eq!(ids[0], "user-101");
    assert_eq!(r["members"][4_798], json!({"value": "user-4899"}));
    assert_eq!(
        r["members"][4_799],
        json!({"value": "USER-4900", "display": "x"}),
        "merged (incoming spelling wins), not duplicated"
    );
    assert_eq!(ids.last(), Some(&"USER-5098"));
}

#[test]
fn elements_without_value_compare_by_their_members() {
    let r = patch_user(json!([
        {"op": "add", "path": "addresses", "value": [{"type": "work", "locality": "Oslo"}]},
        {"op": "add", "path": "addresses", "value": [{"type": "WORK", "locality": "oslo"}, {"type": "home", "locality": "Bergen"}]}
    ]));
    assert_eq!(
        r["addresses"],
        json!([{"type": "WORK", "locality": "oslo"}, {"type": "home", "locality": "Bergen"}]),
        "the equal element is merged with the incoming spelling"
    );
    let r = run(
        &r,
        &user_schema(),
        json!([{"op": "remove", "path": "addresses", "value": {"type": "work"}}]),
    )
    .unwrap();
    assert_eq!(
        r["addresses"],
        json!([{"type": "home", "locality": "Bergen"}])
    );
}
