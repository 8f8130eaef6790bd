//! The discovery documents (`/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`,
//! RFC 7644 §4), generated from the mapping so that they announce only what the sidecar really
//! maps: the attributes and sub-attributes with a row, the extensions used, the canonical
//! values a transform accepts, the Group members only where members are read.

use scim::list::{DEFAULT_COUNT, MAX_RESULTS};
use scim::schema::{self, AttributeDef, SchemaDef};
use serde_json::{Value, json};

use crate::{AttrMap, Mapping, UserMapping};

/// What `/ServiceProviderConfig` says beyond the mapping: the tenant's ways in and the
/// sidecar's cursor timeout.
#[derive(Clone, Copy, Debug)]
pub struct Provider {
    /// The tenant takes bearer tokens.
    pub bearer: bool,
    /// The tenant takes HTTP Basic.
    pub basic: bool,
    /// The tenant has OAuth 2.0 clients (the sidecar's `/oauth2/token` issues its tokens).
    pub oauth: bool,
    /// Seconds an RFC 9865 cursor stays valid.
    pub cursor_timeout_secs: u64,
}

/// `GET /ServiceProviderConfig`, with RFC 9865's `pagination`: index paging by default,
/// cursors on request.
pub fn service_provider_config(base_url: &str, provider: Provider) -> Value {
    let mut schemes = Vec::new();
    if provider.oauth {
        schemes.push(json!({
            "type": "oauth2",
            "name": "OAuth 2.0",
            "description": "Access tokens from the sidecar's /oauth2/token: the authorization-code grant with PKCE (consent at /oauth2/authorize) or the client-credentials grant; 'Authorization: Bearer <access token>'",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6749",
            "primary": !provider.bearer && !provider.basic
        }));
    }
    if provider.bearer || (!provider.basic && !provider.oauth) {
        schemes.push(json!({
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a bearer token issued for the tenant: 'Authorization: Bearer <token>'",
            "primary": true
        }));
    }
    if provider.basic {
        schemes.push(json!({
            "type": "httpbasic",
            "name": "HTTP Basic",
            "description": "Authentication with the tenant's username and password (RFC 7617)",
            "primary": !provider.bearer
        }));
    }
    json!({
        "schemas": [schema::SERVICE_PROVIDER_CONFIG],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "pagination": {
            "cursor": true,
            "index": true,
            "defaultPaginationMethod": "index",
            "defaultPageSize": DEFAULT_COUNT,
            "maxPageSize": MAX_RESULTS,
            "cursorTimeout": provider.cursor_timeout_secs
        },
        "authenticationSchemes": schemes,
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base_url}/ServiceProviderConfig")
        }
    })
}

/// `GET /ResourceTypes`: User, and Group when the mapping has groups.
pub fn resource_types(m: &Mapping, base_url: &str) -> Vec<Value> {
    let um = &m.users;
    let mut out = vec![json!({
        "schemas": [schema::RESOURCE_TYPE],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": format!("Users of {}", m.legacy.name),
        "schema": schema::USER,
        "schemaExtensions": used_extensions(um).map(|e| json!({"schema": e.id, "required": false})).collect::<Vec<_>>(),
        "meta": {"resourceType": "ResourceType", "location": format!("{base_url}/ResourceTypes/User")}
    })];
    if m.groups.is_some() {
        out.push(json!({
            "schemas": [schema::RESOURCE_TYPE],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": format!("Groups of {}", m.legacy.name),
            "schema": schema::GROUP,
            "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": format!("{base_url}/ResourceTypes/Group")}
        }));
    }
    out
}

/// `GET /ResourceTypes/{name}`.
pub fn resource_type(m: &Mapping, base_url: &str, name: &str) -> Option<Value> {
    resource_types(m, base_url)
        .into_iter()
        .find(|d| d["id"] == name)
}

/// The schema extensions the mapping maps at least one attribute of.
fn used_extensions(um: &UserMapping) -> impl Iterator<Item = &SchemaDef> {
    um.schema.extensions.iter().filter(|ext| {
        um.attributes
            .iter()
            .any(|a| a.target.extension.as_deref() == Some(ext.id.as_str()))
    })
}

/// The schemas the mapping really serves: only mapped attributes and sub-attributes.
pub fn served_schemas(m: &Mapping) -> Vec<SchemaDef> {
    let um = &m.users;
    let mut out = vec![trim_schema(&um.schema.core, um, None)];
    for ext in used_extensions(um) {
        out.push(trim_schema(ext, um, Some(&ext.id)));
    }
    if let Some(gm) = &m.groups {
        let mut g = gm.schema.core.clone();
        g.attributes
            .retain(|a| a.name == "displayName" || (a.name == "members" && gm.members.is_some()));
        for a in &mut g.attributes {
            if a.name == "displayName" && gm.rename.is_none() {
                a.mutability = schema::Mutability::ReadOnly;
            }
        }
        out.push(g);
    }
    out
}

fn trim_schema(def: &SchemaDef, um: &UserMapping, extension: Option<&str>) -> SchemaDef {
    let mut out = def.clone();
    out.attributes = def
        .attributes
        .iter()
        .filter_map(|a| {
            let rows: Vec<_> = um
                .attributes
                .iter()
                .filter(|r| r.target.extension.as_deref() == extension && r.target.attr == a.name)
                .collect();
            // Every user answers `active` (true without an active flag in the legacy app).
            let active = extension.is_none() && a.name == "active";
            if rows.is_empty() && !active {
                return None;
            }
            let mut a: AttributeDef = a.clone();
            // Shown but never written: announced so, and identity providers send nothing.
            if !rows.is_empty() && rows.iter().all(|r| r.read_only) {
                a.mutability = schema::Mutability::ReadOnly;
            }
            if rows.iter().any(|r| r.required && r.target.sub.is_none()) {
                a.required = true;
            }
            for s in &mut a.sub_attributes {
                if rows
                    .iter()
                    .any(|r| r.required && r.target.sub.as_deref() == Some(s.name.as_str()))
                {
                    s.required = true;
                }
            }
            if !a.sub_attributes.is_empty() {
                let emitted = um.multi_valued.get(&a.name);
                a.sub_attributes.retain(|s| {
                    rows.iter()
                        .any(|r| r.target.sub.as_deref() == Some(s.name.as_str()))
                        || emitted.is_some_and(|mv| {
                            (s.name == "type" && mv.r#type.is_some())
                                || (s.name == "primary" && mv.primary)
                        })
                });
                for s in &mut a.sub_attributes {
                    if let Some(values) = canonical(&rows, Some(&s.name)) {
                        s.canonical_values = values;
                    } else if s.name == "type"
                        && let Some(t) = emitted.and_then(|mv| mv.r#type.clone())
                    {
                        // One slot, always emitted with this type: announce only it.
                        s.canonical_values = vec![t];
                    }
                }
            } else if let Some(values) = canonical(&rows, None) {
                a.canonical_values = values;
            }
            Some(a)
        })
        .collect();
    out
}

/// The fixed set of values a mapped (sub-)attribute accepts, from its value map or transform.
fn canonical(rows: &[&AttrMap], sub: Option<&str>) -> Option<Vec<String>> {
    rows.iter()
        .find(|r| r.target.sub.as_deref() == sub)
        .and_then(|r| match &r.values {
            Some(map) => Some(map.scim_values()),
            None => r.transform.canonical_values(),
        })
}

/// `GET /Schemas/{urn}`: one served schema as JSON (the URN matched case-insensitively).
pub fn schema(m: &Mapping, base_url: &str, urn: &str) -> Option<Value> {
    served_schemas(m)
        .iter()
        .find(|s| s.id.eq_ignore_ascii_case(urn))
        .map(|s| s.to_json(base_url))
}

/// `GET /Schemas`: the served schemas as JSON.
pub fn schemas(m: &Mapping, base_url: &str) -> Vec<Value> {
    served_schemas(m)
        .iter()
        .map(|s| s.to_json(base_url))
        .collect()
}
