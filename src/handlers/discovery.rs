//! `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`: generated from the mapping, so
//! they announce only what the sidecar really maps.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use super::{Ctx, MAX_RESULTS, list_response};
use crate::error::ScimError;
use crate::error::scim_json;
use mapping::UserMapping;
use scim::schema::{self, AttributeDef, SchemaDef};

/// `GET /ServiceProviderConfig`.
pub fn service_provider_config(ctx: &Ctx) -> Response<Full<Bytes>> {
    let body = json!({
        "schemas": [schema::SERVICE_PROVIDER_CONFIG],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a bearer token issued for the tenant: 'Authorization: Bearer <token>'",
            "primary": true
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{}/ServiceProviderConfig", ctx.base_url)
        }
    });
    scim_json(StatusCode::OK, &body)
}

fn resource_type_docs(ctx: &Ctx) -> Vec<Value> {
    let um = &ctx.mapping.users;
    let mut out = vec![json!({
        "schemas": [schema::RESOURCE_TYPE],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": format!("Users of {}", ctx.mapping.legacy.name),
        "schema": schema::USER,
        "schemaExtensions": used_extensions(um).map(|e| json!({"schema": e.id, "required": false})).collect::<Vec<_>>(),
        "meta": {"resourceType": "ResourceType", "location": format!("{}/ResourceTypes/User", ctx.base_url)}
    })];
    if ctx.mapping.groups.is_some() {
        out.push(json!({
            "schemas": [schema::RESOURCE_TYPE],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": format!("Groups of {}", ctx.mapping.legacy.name),
            "schema": schema::GROUP,
            "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": format!("{}/ResourceTypes/Group", ctx.base_url)}
        }));
    }
    out
}

/// `GET /ResourceTypes`.
pub fn resource_types(ctx: &Ctx) -> Response<Full<Bytes>> {
    let docs = resource_type_docs(ctx);
    list_response(docs.len() as u64, 1, docs)
}

/// `GET /ResourceTypes/{name}`.
pub fn resource_type(ctx: &Ctx, name: &str) -> Result<Response<Full<Bytes>>, ScimError> {
    resource_type_docs(ctx)
        .into_iter()
        .find(|d| d["id"] == name)
        .map(|d| scim_json(StatusCode::OK, &d))
        .ok_or_else(|| ScimError::not_found("ResourceType", name))
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
fn served_schemas(ctx: &Ctx) -> Vec<SchemaDef> {
    let um = &ctx.mapping.users;
    let mut out = vec![trim_schema(&um.schema.core, um, None)];
    for ext in used_extensions(um) {
        out.push(trim_schema(ext, um, Some(&ext.id)));
    }
    if let Some(gm) = &ctx.mapping.groups {
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

/// The fixed set of values a mapped (sub-)attribute accepts, from its transform.
fn canonical(rows: &[&mapping::AttrMap], sub: Option<&str>) -> Option<Vec<String>> {
    rows.iter()
        .find(|r| r.target.sub.as_deref() == sub)
        .and_then(|r| r.transform.canonical_values())
}

/// `GET /Schemas`.
pub fn schemas(ctx: &Ctx) -> Response<Full<Bytes>> {
    let docs: Vec<Value> = served_schemas(ctx)
        .iter()
        .map(|s| s.to_json(&ctx.base_url))
        .collect();
    list_response(docs.len() as u64, 1, docs)
}

/// `GET /Schemas/{urn}`.
pub fn schema(ctx: &Ctx, urn: &str) -> Result<Response<Full<Bytes>>, ScimError> {
    served_schemas(ctx)
        .iter()
        .find(|s| s.id.eq_ignore_ascii_case(urn))
        .map(|s| scim_json(StatusCode::OK, &s.to_json(&ctx.base_url)))
        .ok_or_else(|| ScimError::not_found("Schema", urn))
}
