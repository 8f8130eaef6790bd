//! `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`: the documents the mapping
//! generates (`mapping::discovery`), answered.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use mapping::discovery;

use super::{Ctx, list_response};
use crate::error::{Error, RequestError, scim_json};

/// `GET /ServiceProviderConfig`.
pub fn service_provider_config(ctx: &Ctx) -> Response<Full<Bytes>> {
    scim_json(
        StatusCode::OK,
        &discovery::service_provider_config(
            &ctx.base_url,
            discovery::Provider {
                bearer: ctx.tenant.auth_modes.contains(&"bearer"),
                basic: ctx.tenant.auth_modes.contains(&"basic"),
                oauth: ctx
                    .tenant
                    .auth_modes
                    .iter()
                    .any(|m| m.starts_with("oauth2")),
                cursor_timeout_secs: ctx.state.cursors.timeout().as_secs(),
            },
        ),
    )
}

/// `GET /ResourceTypes`.
pub fn resource_types(ctx: &Ctx) -> Response<Full<Bytes>> {
    let docs = discovery::resource_types(&ctx.mapping, &ctx.base_url);
    list_response(docs.len() as u64, 1, docs)
}

/// `GET /ResourceTypes/{name}`.
pub fn resource_type(ctx: &Ctx, name: &str) -> Result<Response<Full<Bytes>>, Error> {
    discovery::resource_type(&ctx.mapping, &ctx.base_url, name)
        .map(|d| scim_json(StatusCode::OK, &d))
        .ok_or_else(|| {
            RequestError::UnknownDocument {
                kind: "ResourceType",
                id: name.to_owned(),
            }
            .into()
        })
}

/// `GET /Schemas`.
pub fn schemas(ctx: &Ctx) -> Response<Full<Bytes>> {
    let docs = discovery::schemas(&ctx.mapping, &ctx.base_url);
    list_response(docs.len() as u64, 1, docs)
}

/// `GET /Schemas/{urn}`.
pub fn schema(ctx: &Ctx, urn: &str) -> Result<Response<Full<Bytes>>, Error> {
    discovery::schema(&ctx.mapping, &ctx.base_url, urn)
        .map(|s| scim_json(StatusCode::OK, &s))
        .ok_or_else(|| {
            RequestError::UnknownDocument {
                kind: "Schema",
                id: urn.to_owned(),
            }
            .into()
        })
}
