//! `POST /oauth2/token` (RFC 6749 §3.2, §4.1.3, §4.4, §6): the client authenticates (HTTP
//! Basic with its id and secret, or both in the body), then trades an authorization code, a
//! refresh token or its own credentials for tokens. Answers are JSON with `Cache-Control:
//! no-store`; errors are RFC 6749 §5.2's (`invalid_client` is `401`).

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};

use super::{
    ACCESS_PREFIX, Client, OAuth, PURGE_AFTER_SECS, REFRESH_PREFIX, digest, family_id, form, mint,
    now, pkce_text, s256,
};
use crate::config::oauth::GrantType;
use crate::credentials::{Found, Presented, presented};
use crate::xref::{Grant, GrantKind, Revoke, Spent};

/// An RFC 6749 §5.2 error.
struct Refused {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// The client authenticated with HTTP Basic: a `401` says `WWW-Authenticate: Basic`.
    basic: bool,
}

fn refused(error: &'static str, description: impl Into<String>) -> Refused {
    Refused {
        status: if error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        },
        error,
        description: description.into(),
        basic: false,
    }
}

/// Serves one token request.
pub(super) async fn serve(
    o: &OAuth,
    headers: &HeaderMap,
    body: &[u8],
    peer: Option<IpAddr>,
) -> Response<Full<Bytes>> {
    if let Some(wait) = o.blocked(peer) {
        o.metrics.sidecar_rate_limited();
        let mut resp = answer(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({"error": "invalid_request",
                    "error_description": "too many failed attempts from this address; retry later"}),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    match exchange(o, headers, body).await {
        Ok((grant, tokens)) => {
            o.metrics.oauth_issued("token", grant);
            answer(StatusCode::OK, &tokens)
        }
        Err(r) => {
            o.failed("token", r.error, peer);
            let mut resp = answer(
                r.status,
                &json!({"error": r.error, "error_description": r.description}),
            );
            if r.basic && r.status == StatusCode::UNAUTHORIZED {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Basic realm=\"scim-sidecar oauth\", charset=\"UTF-8\"",
                    ),
                );
            }
            resp
        }
    }
}

fn answer(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// The grant's name (for the metric) and the token answer.
async fn exchange(
    o: &OAuth,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(&'static str, Value), Refused> {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if form_type.as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(refused(
            "invalid_request",
            "send the parameters as application/x-www-form-urlencoded",
        ));
    }
    let params = form(body).map_err(|name| {
        refused(
            "invalid_request",
            format!("the parameter {name:?} is given more than once"),
        )
    })?;
    let client = authenticate(o, headers, &params).await?;
    let grant_type = params.get("grant_type").map(String::as_str);
    let now = now();
    match grant_type {
        Some("authorization_code") => {
            if !client.may(GrantType::AuthorizationCode) {
                return Err(unauthorized(&client, "authorization_code"));
            }
            let code = required(&params, "code")?;
            let row = spend(o, code, GrantKind::Code, &client, now).await?;
            if params.get("redirect_uri") != row.redirect_uri.as_ref() {
                return Err(refused(
                    "invalid_grant",
                    "redirect_uri differs from the authorization request's",
                ));
            }
            match (&row.challenge, params.get("code_verifier")) {
                (Some(challenge), Some(verifier)) => {
                    if !pkce_text(verifier) || s256(verifier) != *challenge {
                        return Err(refused(
                            "invalid_grant",
                            "code_verifier does not match the code_challenge",
                        ));
                    }
                }
                (Some(_), None) => {
                    return Err(refused(
                        "invalid_grant",
                        "code_verifier is required: the authorization sent a code_challenge",
                    ));
                }
                (None, Some(_)) => {
                    return Err(refused(
                        "invalid_grant",
                        "code_verifier given, but the authorization sent no code_challenge",
                    ));
                }
                (None, None) => {}
            }
            let tokens = issue(o, &client, &row.family, "authorization_code", true, now).await?;
            Ok(("authorization_code", with_scope(tokens, &params)))
        }
        Some("refresh_token") => {
            if !client.may(GrantType::AuthorizationCode) {
                return Err(unauthorized(&client, "refresh_token"));
            }
            let token = required(&params, "refresh_token")?;
            let row = spend(o, token, GrantKind::Refresh, &client, now).await?;
            let tokens = issue(o, &client, &row.family, &row.grant_type, true, now).await?;
            Ok(("refresh_token", with_scope(tokens, &params)))
        }
        Some("client_credentials") => {
            if !client.may(GrantType::ClientCredentials) {
                return Err(unauthorized(&client, "client_credentials"));
            }
            let tokens = issue(o, &client, &family_id(), "client_credentials", false, now).await?;
            Ok(("client_credentials", with_scope(tokens, &params)))
        }
        Some(other) => Err(refused(
            "unsupported_grant_type",
            format!(
                "grant_type {other:?} is not supported: use authorization_code, refresh_token \
                 or client_credentials"
            ),
        )),
        None => Err(refused("invalid_request", "grant_type is required")),
    }
}

fn unauthorized(client: &Client, grant: &str) -> Refused {
    refused(
        "unauthorized_client",
        format!(
            "client {:?} may not use the {grant} grant (its grants: {})",
            client.id,
            client
                .grants
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}

fn required<'p>(
    params: &'p std::collections::HashMap<String, String>,
    name: &str,
) -> Result<&'p str, Refused> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| refused("invalid_request", format!("{name} is required")))
}

/// A granted scope is the requested one (every token opens the tenant's SCIM API).
fn with_scope(mut tokens: Value, params: &std::collections::HashMap<String, String>) -> Value {
    if let Some(scope) = params.get("scope").filter(|s| !s.is_empty()) {
        tokens["scope"] = Value::String(scope.clone());
    }
    tokens
}

/// The client, authenticated by HTTP Basic or by `client_id` and `client_secret` in the
/// body (not both, RFC 6749 §2.3.1).
async fn authenticate(
    o: &OAuth,
    headers: &HeaderMap,
    params: &std::collections::HashMap<String, String>,
) -> Result<Arc<Client>, Refused> {
    let header = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    let in_body = (params.get("client_id"), params.get("client_secret"));
    let (id, secret, basic) = match (header, in_body) {
        (Some(value), (body_id, None)) => match presented(value) {
            Presented::Basic { username, password } => {
                // RFC 6749 §2.3.1: the id and secret are form-urlencoded inside Basic.
                let id = decoded(&username);
                if body_id.is_some_and(|b| *b != id) {
                    return Err(refused(
                        "invalid_request",
                        "client_id in the body differs from the Authorization header's",
                    ));
                }
                (id, decoded(&password), true)
            }
            _ => {
                return Err(Refused {
                    basic: true,
                    ..refused(
                        "invalid_client",
                        "authenticate the client with HTTP Basic (client_id:client_secret)",
                    )
                });
            }
        },
        (Some(_), (_, Some(_))) => {
            return Err(refused(
                "invalid_request",
                "authenticate the client one way: the Authorization header or client_secret, \
                 not both",
            ));
        }
        (None, (Some(id), Some(secret))) => (id.clone(), secret.clone(), false),
        (None, _) => {
            return Err(refused(
                "invalid_client",
                "client authentication is required: HTTP Basic, or client_id and client_secret",
            ));
        }
    };
    let wrong = || Refused {
        basic,
        ..refused("invalid_client", "unknown client or wrong client secret")
    };
    let client = match o.secrets.password(id.as_bytes(), secret.into_bytes()) {
        Found::Tenant(c) => c,
        Found::Check(check) => o.secrets.check(check).await.map_err(|_| wrong())?,
        Found::Refused(_) | Found::Issued(..) => return Err(wrong()),
    };
    Ok(client)
}

fn decoded(bytes: &[u8]) -> String {
    form_urlencoded::parse(&[b"x=", bytes].concat())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Spends a code or refresh token of `kind` for `client`: the row, or why not. A replay, or
/// a code or token presented by another client, revokes its whole family.
async fn spend(
    o: &OAuth,
    secret: &str,
    kind: GrantKind,
    client: &Client,
    now: i64,
) -> Result<Grant, Refused> {
    let what = match kind {
        GrantKind::Code => "authorization code",
        _ => "refresh token",
    };
    let unknown = || refused("invalid_grant", format!("the {what} is not valid"));
    let spent = o
        .store
        .grant_spend(&digest(secret.as_bytes()), now)
        .await
        .map_err(store_failed)?;
    let row = match spent {
        Spent::Unknown => return Err(unknown()),
        Spent::Again(row) => {
            if row.kind == kind {
                revoke(o, &row.family, now).await?;
                return Err(refused(
                    "invalid_grant",
                    format!(
                        "the {what} was already used: every token issued from it is revoked \
                         now; authorize again"
                    ),
                ));
            }
            return Err(unknown());
        }
        Spent::First(row) => row,
    };
    if row.kind != kind {
        return Err(unknown());
    }
    if row.client_id != client.id || row.tenant != client.tenant.id {
        revoke(o, &row.family, now).await?;
        return Err(refused(
            "invalid_grant",
            format!("the {what} was issued to another client"),
        ));
    }
    if row.revoked_at.is_some() {
        return Err(refused("invalid_grant", format!("the {what} was revoked")));
    }
    if now >= row.expires_at {
        return Err(refused(
            "invalid_grant",
            format!("the {what} expired; authorize again"),
        ));
    }
    Ok(row)
}

async fn revoke(o: &OAuth, family: &str, now: i64) -> Result<u64, Refused> {
    o.store
        .grant_revoke(Revoke::Family(family.to_owned()), now)
        .await
        .map_err(store_failed)
}

fn store_failed(e: crate::xref::StoreError) -> Refused {
    tracing::warn!(error = %e, "oauth: the state store failed");
    Refused {
        status: StatusCode::SERVICE_UNAVAILABLE,
        error: "temporarily_unavailable",
        description: "the sidecar's state store is unavailable; retry later".to_owned(),
        basic: false,
    }
}

/// Issues an access token (and a refresh token when `refresh`) in `family`.
async fn issue(
    o: &OAuth,
    client: &Client,
    family: &str,
    grant_type: &str,
    refresh: bool,
    now: i64,
) -> Result<Value, Refused> {
    let row = |kind: GrantKind, digest: String, expires_at: i64| Grant {
        digest,
        kind,
        tenant: client.tenant.id.clone(),
        client_id: client.id.clone(),
        family: family.to_owned(),
        grant_type: grant_type.to_owned(),
        issued_at: now,
        expires_at,
        used_at: None,
        revoked_at: None,
        redirect_uri: None,
        challenge: None,
    };
    let (access, access_digest) = mint(ACCESS_PREFIX);
    let mut rows = vec![row(
        GrantKind::Access,
        access_digest,
        now.saturating_add(client.access_secs),
    )];
    let mut out = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": client.access_secs,
    });
    if refresh {
        let (refresh, refresh_digest) = mint(REFRESH_PREFIX);
        rows.push(row(
            GrantKind::Refresh,
            refresh_digest,
            now.saturating_add(client.refresh_secs),
        ));
        out["refresh_token"] = Value::String(refresh);
    }
    o.store
        .grant_issue(rows, now - PURGE_AFTER_SECS)
        .await
        .map_err(store_failed)?;
    Ok(out)
}
