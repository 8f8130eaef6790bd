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
use crate::xref::{Grant, GrantKind, Revoke};

/// An RFC 6749 §5.2 error.
struct Refused {
    status: StatusCode,
    error: &'static str,
    description: String,
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
            // A 401 always names the scheme the client may authenticate with.
            if r.status == StatusCode::UNAUTHORIZED {
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
            let row = redeemable(o, code, GrantKind::Code, &client, now).await?;
            if let Err(why) = check_code(&row, &params) {
                // One try per code: a wrong verifier or redirect URI spends it.
                o.store
                    .grant_exchange(&row.digest, GrantKind::Code, now, Vec::new(), now)
                    .await
                    .map_err(store_failed)?;
                return Err(refused("invalid_grant", why));
            }
            let tokens = exchange_for(o, &client, &row, now).await?;
            Ok(("authorization_code", tokens))
        }
        Some("refresh_token") => {
            if !client.may(GrantType::AuthorizationCode) {
                return Err(unauthorized(&client, "refresh_token"));
            }
            let token = required(&params, "refresh_token")?;
            let row = redeemable(o, token, GrantKind::Refresh, &client, now).await?;
            let tokens = exchange_for(o, &client, &row, now).await?;
            Ok(("refresh_token", tokens))
        }
        Some("client_credentials") => {
            if !client.may(GrantType::ClientCredentials) {
                return Err(unauthorized(&client, "client_credentials"));
            }
            let (rows, tokens) =
                mint_tokens(&client, &family_id(), "client_credentials", false, now);
            o.store
                .grant_issue(rows, now - PURGE_AFTER_SECS)
                .await
                .map_err(store_failed)?;
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

/// The client-credentials grant's scope is the requested one (every token opens the
/// tenant's SCIM API); the other grants leave it out (as asked at authorization).
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
    let (id, secret) = match (header, in_body) {
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
                (id, decoded(&password))
            }
            _ => {
                return Err(refused(
                    "invalid_client",
                    "authenticate the client with HTTP Basic (client_id:client_secret)",
                ));
            }
        },
        (Some(_), (_, Some(_))) => {
            return Err(refused(
                "invalid_request",
                "authenticate the client one way: the Authorization header or client_secret, \
                 not both",
            ));
        }
        (None, (Some(id), Some(secret))) => (id.clone(), secret.clone()),
        (None, _) => {
            return Err(refused(
                "invalid_client",
                "client authentication is required: HTTP Basic, or client_id and client_secret",
            ));
        }
    };
    let wrong = || refused("invalid_client", "unknown client or wrong client secret");
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

/// The code or refresh token `secret` of `kind`, issued to `client`, unspent, unrevoked and
/// unexpired: the row (nothing is changed). A replay, or a code or token presented by another
/// client, revokes its whole family.
async fn redeemable(
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
    let row = o
        .store
        .grant_find(&digest(secret.as_bytes()))
        .await
        .map_err(store_failed)?
        .ok_or_else(unknown)?;
    if row.kind != kind {
        return Err(unknown());
    }
    if row.used_at.is_some() {
        revoke(o, &row.family, now).await?;
        return Err(replayed(what));
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

fn replayed(what: &str) -> Refused {
    refused(
        "invalid_grant",
        format!(
            "the {what} was already used: every token issued from it is revoked now; authorize \
             again"
        ),
    )
}

/// Why a code does not redeem with these parameters (RFC 6749 §4.1.3, RFC 7636 §4.6).
fn check_code(
    row: &Grant,
    params: &std::collections::HashMap<String, String>,
) -> Result<(), &'static str> {
    // The redirect URI must be the authorization request's, when that request named one.
    if let Some(uri) = &row.redirect_uri
        && params.get("redirect_uri") != Some(uri)
    {
        return Err("redirect_uri differs from the authorization request's");
    }
    match (&row.challenge, params.get("code_verifier")) {
        (Some(challenge), Some(verifier))
            if pkce_text(verifier) && s256(verifier) == *challenge =>
        {
            Ok(())
        }
        (Some(_), Some(_)) => Err("code_verifier does not match the code_challenge"),
        (Some(_), None) => {
            Err("code_verifier is required: the authorization sent a code_challenge")
        }
        (None, Some(_)) => Err("code_verifier given, but the authorization sent no code_challenge"),
        (None, None) => Ok(()),
    }
}

/// Spends `row` (a code or refresh token) and stores a new access and refresh token of its
/// family, in one transaction: the token answer. Spent meanwhile (a concurrent replay on any
/// replica): the family is revoked.
async fn exchange_for(o: &OAuth, client: &Client, row: &Grant, now: i64) -> Result<Value, Refused> {
    let (rows, tokens) = mint_tokens(client, &row.family, &row.grant_type, true, now);
    let spent = o
        .store
        .grant_exchange(&row.digest, row.kind, now, rows, now - PURGE_AFTER_SECS)
        .await
        .map_err(store_failed)?;
    if !spent {
        revoke(o, &row.family, now).await?;
        return Err(replayed(match row.kind {
            GrantKind::Code => "authorization code",
            _ => "refresh token",
        }));
    }
    Ok(tokens)
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
    }
}

/// A new access token (and a refresh token when `refresh`) of `family`: the rows to store and
/// the token answer.
fn mint_tokens(
    client: &Client,
    family: &str,
    grant_type: &str,
    refresh: bool,
    now: i64,
) -> (Vec<Grant>, Value) {
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
    (rows, out)
}
