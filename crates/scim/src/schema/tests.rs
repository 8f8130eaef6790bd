//! Schema definition, JSON shape and path resolution tests.

use serde_json::json;

use super::*;

fn names(attrs: &[AttributeDef]) -> Vec<&str> {
    attrs.iter().map(|a| a.name.as_str()).collect()
}

#[test]
fn user_schema_has_every_rfc_attribute() {
    let user = user_schema();
    assert_eq!(user.id, USER);
    assert_eq!(
        names(&user.attributes),
        [
            "userName",
            "name",
            "displayName",
            "nickName",
            "profileUrl",
            "title",
            "userType",
            "preferredLanguage",
            "locale",
            "timezone",
            "active",
            "password",
            "emails",
            "phoneNumbers",
            "ims",
            "photos",
            "addresses",
            "groups",
            "entitlements",
            "roles",
            "x509Certificates"
        ]
    );
    let multi: Vec<&str> = user
        .attributes
        .iter()
        .filter(|a| a.multi_valued)
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(
        multi,
        [
            "emails",
            "phoneNumbers",
            "ims",
            "photos",
            "addresses",
            "groups",
            "entitlements",
            "roles",
            "x509Certificates"
        ]
    );
    let name = user.attribute("NAME").unwrap();
    assert_eq!(
        names(&name.sub_attributes),
        [
            "formatted",
            "familyName",
            "givenName",
            "middleName",
            "honorificPrefix",
            "honorificSuffix"
        ]
    );
    let addresses = user.attribute("addresses").unwrap();
    assert_eq!(
        names(&addresses.sub_attributes),
        [
            "formatted",
            "streetAddress",
            "locality",
            "region",
            "postalCode",
            "country",
            "type",
            "primary"
        ]
    );
}

#[test]
fn user_characteristics() {
    let user = user_schema();
    let user_name = user.attribute("username").unwrap();
    assert_eq!(user_name.name, "userName");
    assert!(user_name.required && !user_name.case_exact);
    assert_eq!(user_name.uniqueness, Uniqueness::Server);
    let password = user.attribute("password").unwrap();
    assert_eq!(password.mutability, Mutability::WriteOnly);
    assert_eq!(password.returned, Returned::Never);
    let groups = user.attribute("groups").unwrap();
    assert_eq!(groups.mutability, Mutability::ReadOnly);
    assert_eq!(
        groups.sub("$REF").unwrap().reference_types,
        ["User", "Group"]
    );
    assert_eq!(
        groups.sub("type").unwrap().canonical_values,
        ["direct", "indirect"]
    );
    let emails = user.attribute("emails").unwrap();
    assert_eq!(
        names(&emails.sub_attributes),
        ["value", "display", "type", "primary"]
    );
    assert_eq!(
        emails.sub("Type").unwrap().canonical_values,
        ["work", "home", "other"]
    );
    assert_eq!(emails.sub("primary").unwrap().kind, AttrType::Boolean);
    let phones = user.attribute("phoneNumbers").unwrap();
    assert!(
        phones
            .sub("type")
            .unwrap()
            .canonical_values
            .contains(&"mobile".to_owned())
    );
    let photos = user.attribute("photos").unwrap().sub("value").unwrap();
    assert_eq!(
        (photos.kind, photos.reference_types.clone()),
        (AttrType::Reference, vec!["external".to_owned()])
    );
    let cert = user
        .attribute("x509Certificates")
        .unwrap()
        .sub("value")
        .unwrap();
    assert_eq!(cert.kind, AttrType::Binary);
    assert_eq!(user.attribute("active").unwrap().kind, AttrType::Boolean);
    assert!(
        user.attribute("ims")
            .unwrap()
            .sub("type")
            .unwrap()
            .canonical_values
            .len()
            == 8
    );
    assert!(user.attribute("nope").is_none());
}

#[test]
fn enterprise_group_and_common_attributes() {
    let ent = enterprise_user_schema();
    assert_eq!(ent.id, ENTERPRISE_USER);
    assert_eq!(
        names(&ent.attributes),
        [
            "employeeNumber",
            "costCenter",
            "organization",
            "division",
            "department",
            "manager"
        ]
    );
    let manager = ent.attribute("manager").unwrap();
    assert_eq!(
        names(&manager.sub_attributes),
        ["value", "$ref", "displayName"]
    );
    assert_eq!(manager.sub("$ref").unwrap().reference_types, ["User"]);
    assert_eq!(
        manager.sub("displayname").unwrap().mutability,
        Mutability::ReadOnly
    );

    let group = group_schema();
    assert_eq!(group.id, GROUP);
    assert!(group.attribute("displayName").unwrap().required);
    let members = group.attribute("members").unwrap();
    assert!(members.multi_valued);
    assert_eq!(
        names(&members.sub_attributes),
        ["value", "$ref", "display", "type"]
    );
    assert_eq!(
        members.sub("value").unwrap().mutability,
        Mutability::Immutable
    );

    let common = common_attributes();
    assert_eq!(names(&common), ["id", "externalId", "meta"]);
    let id = &common[0];
    assert!(id.case_exact);
    assert_eq!(
        (id.mutability, id.returned, id.uniqueness),
        (Mutability::ReadOnly, Returned::Always, Uniqueness::Server)
    );
    assert!(common[1].case_exact);
    assert_eq!(common[1].mutability, Mutability::ReadWrite);
    let meta = &common[2];
    assert_eq!(meta.mutability, Mutability::ReadOnly);
    assert_eq!(
        names(&meta.sub_attributes),
        [
            "resourceType",
            "created",
            "lastModified",
            "location",
            "version"
        ]
    );
    assert_eq!(meta.sub("created").unwrap().kind, AttrType::DateTime);
    assert_eq!(meta.sub("lastmodified").unwrap().kind, AttrType::DateTime);
    assert!(meta.sub("location").unwrap().case_exact);
}

#[test]
fn attribute_json_shape() {
    let user = user_schema();
    assert_eq!(
        user.attribute("userName").unwrap().to_json(),
        json!({
            "name": "userName",
            "type": "string",
            "multiValued": false,
            "description": user.attribute("userName").unwrap().description,
            "required": true,
            "caseExact": false,
            "mutability": "readWrite",
            "returned": "default",
            "uniqueness": "server"
        })
    );
    let emails = user.attribute("emails").unwrap().to_json();
    assert_eq!(emails["type"], "complex");
    assert_eq!(emails["multiValued"], true);
    assert!(emails.get("caseExact").is_none());
    assert_eq!(emails["subAttributes"][2]["name"], "type");
    assert_eq!(
        emails["subAttributes"][2]["canonicalValues"],
        json!(["work", "home", "other"])
    );
    assert_eq!(emails["subAttributes"][3]["type"], "boolean");
    let password = user.attribute("password").unwrap().to_json();
    assert_eq!(
        (&password["mutability"], &password["returned"]),
        (&json!("writeOnly"), &json!("never"))
    );
    let profile = user.attribute("profileUrl").unwrap().to_json();
    assert_eq!(profile["type"], "reference");
    assert_eq!(profile["referenceTypes"], json!(["external"]));
    assert!(
        user.attribute("title")
            .unwrap()
            .to_json()
            .get("referenceTypes")
            .is_none()
    );
    let meta = common_attributes()[2].to_json();
    assert_eq!(meta["subAttributes"][1]["type"], "dateTime");
    assert_eq!(meta["mutability"], "readOnly");
}

#[test]
fn schema_json_shape() {
    let v = enterprise_user_schema().to_json("https://sidecar.example/scim/v2/");
    assert_eq!(v["schemas"], json!([SCHEMA]));
    assert_eq!(v["id"], ENTERPRISE_USER);
    assert_eq!(v["name"], "EnterpriseUser");
    assert_eq!(v["attributes"].as_array().unwrap().len(), 6);
    assert_eq!(
        v["meta"],
        json!({
            "resourceType": "Schema",
            "location": format!("https://sidecar.example/scim/v2/Schemas/{ENTERPRISE_USER}")
        })
    );
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["schemas", "id", "name", "description", "attributes", "meta"]
    );
}

#[test]
fn resolve_paths() {
    let s = ResourceSchema::user();
    let r = |p: &str| s.resolve(&AttrPath::parse(p).unwrap());
    let user_name = r("USERNAME").unwrap();
    assert_eq!(
        (user_name.extension, user_name.attr.name.as_str()),
        (None, "userName")
    );
    assert!(user_name.sub.is_none());
    assert_eq!(
        r(&format!("{USER}:userName")).unwrap().attr.name,
        "userName"
    );
    assert_eq!(r(&format!("{USER}:id")).unwrap().leaf().name, "id");
    let dept = r(&format!("{ENTERPRISE_USER}:department")).unwrap();
    assert_eq!(dept.extension, Some(ENTERPRISE_USER));
    let dept = r(&format!("{}:Department", ENTERPRISE_USER.to_lowercase())).unwrap();
    assert_eq!(
        dept.extension,
        Some(ENTERPRISE_USER),
        "canonical URN returned"
    );
    assert_eq!(r("department").unwrap().extension, Some(ENTERPRISE_USER));
    let mv = r(&format!("{ENTERPRISE_USER}:manager.value")).unwrap();
    assert_eq!(
        (mv.attr.name.as_str(), mv.leaf().name.as_str()),
        ("manager", "value")
    );
    assert_eq!(r("meta.created").unwrap().leaf().kind, AttrType::DateTime);
    assert_eq!(r("name.givenname").unwrap().leaf().name, "givenName");
    assert!(r("emails.nope").is_none());
    assert!(r("userName.x").is_none());
    assert!(r("unknown").is_none());
    assert!(r("urn:bad:x").is_none());
    assert!(r(&format!("{ENTERPRISE_USER}:userName")).is_none());
    assert!(r(&format!("{USER}:department")).is_none());
    let g = ResourceSchema::group();
    let md = g
        .resolve(&AttrPath::parse("members.display").unwrap())
        .unwrap();
    assert_eq!(md.leaf().name, "display");
    assert!(g.resolve(&AttrPath::parse("userName").unwrap()).is_none());
}
