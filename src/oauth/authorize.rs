//! `/oauth2/authorize` (RFC 6749 §4.1.1–§4.1.2, PKCE RFC 7636 §4.3): `GET` shows the consent
//! page; `POST` (the page's form) takes the approver's decision. An unknown client or a
//! redirect URI that is not registered is told to the browser and never redirected to
//! (§4.1.2.1); any other error, and the code, go back to the redirect URI with `state`.

use std::net::IpAddr;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;

use super::page::{self, Consent};
use super::{
    CODE_PREFIX, CODE_SECS, Client, OAuth, PURGE_AFTER_SECS, family_id, form, mint, now, pkce_text,
};
use crate::config::oauth::GrantType;
use crate::credentials::Found;
use crate::xref::{Grant, GrantKind};

/// A validated authorization request.
struct Asked<'a> {
    client: std::sync::Arc<Client>,
    redirect_uri: String,
    /// The request's parameters as sent (for the form's hidden fields).
    params: &'a std::collections::HashMap<String, String>,
}

/// Serves one authorize request.
pub(super) async fn serve(
    o: &OAuth,
    parts: &Parts,
    body: &Bytes,
    peer: Option<IpAddr>,
) -> Response<Full<Bytes>> {
    let post = parts.method == Method::POST;
    let raw: &[u8] = if post {
        body
    } else {
        parts.uri.query().unwrap_or("").as_bytes()
    };
    let params = match form(raw) {
        Ok(p) => p,
        Err(name) => {
            o.failed("authorize", "invalid_request", peer);
            return page::error(
                StatusCode::BAD_REQUEST,
                "Invalid authorization request",
                &format!("The parameter {name:?} is given more than once."),
            );
        }
    };
    let asked = match validate(o, &params) {
        Ok(a) => a,
        Err(Invalid::Page(detail)) => {
            o.failed("authorize", "invalid_request", peer);
            return page::error(
                StatusCode::BAD_REQUEST,
                "Invalid authorization request",
                &detail,
            );
        }
        Err(Invalid::Redirect(uri, error, detail)) => {
            o.failed("authorize", error, peer);
            return back(
                &uri,
                &[("error", error), ("error_description", &detail)],
                &params,
            );
        }
    };
    if !post {
        return page::consent(&consent(&asked, None), StatusCode::OK);
    }
    if params.get("decision").map(String::as_str) != Some("approve") {
        o.failed("authorize", "access_denied", peer);
        return back(
            &asked.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "the approver denied the request"),
            ],
            &params,
        );
    }
    if let Some(wait) = o.blocked(peer) {
        o.metrics.sidecar_rate_limited();
        let mut resp = page::error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            &format!("Too many failed attempts from this address; retry in {wait} s."),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    let username = params.get("username").cloned().unwrap_or_default();
    let password = params.get("password").cloned().unwrap_or_default();
    let approver = match o
        .approvers
        .password(username.as_bytes(), password.into_bytes())
    {
        Found::Tenant(t) => Some(t),
        Found::Check(check) => o.approvers.check(check).await.ok(),
        Found::Refused(_) | Found::Issued(..) => None,
    };
    if approver.is_none_or(|t| t.id != asked.client.tenant.id) {
        o.failed("authorize", "wrong_approver", peer);
        let notice = "The username or password is wrong, or is not an approver of this tenant.";
        return page::consent(&consent(&asked, Some(notice)), StatusCode::UNAUTHORIZED);
    }
    let (code, digest) = mint(CODE_PREFIX);
    let now = now();
    let challenge = params
        .get("code_challenge")
        .filter(|c| !c.is_empty())
        .cloned();
    let row = Grant {
        digest,
        kind: GrantKind::Code,
        tenant: asked.client.tenant.id.clone(),
        client_id: asked.client.id.clone(),
        family: family_id(),
        grant_type: GrantType::AuthorizationCode.as_str().to_owned(),
        issued_at: now,
        expires_at: now + CODE_SECS,
        used_at: None,
        revoked_at: None,
        // RFC 6749 §4.1.3: the token request repeats it only when this request named it.
        redirect_uri: params
            .get("redirect_uri")
            .filter(|r| !r.is_empty())
            .cloned(),
        challenge,
    };
    if let Err(e) = o.store.grant_issue(vec![row], now - PURGE_AFTER_SECS).await {
        tracing::warn!(error = %e, "oauth: the state store failed");
        return page::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again later",
            "The sidecar's state store is unavailable; approve again in a moment.",
        );
    }
    o.metrics.oauth_issued("authorize", "authorization_code");
    back(&asked.redirect_uri, &[("code", &code)], &params)
}

enum Invalid {
    /// Told to the browser: no redirect URI to trust.
    Page(String),
    /// Sent back to the redirect URI: (URI, error, description).
    Redirect(String, &'static str, String),
}

fn validate<'a>(
    o: &OAuth,
    params: &'a std::collections::HashMap<String, String>,
) -> Result<Asked<'a>, Invalid> {
    let Some(client_id) = params.get("client_id").filter(|c| !c.is_empty()) else {
        return Err(Invalid::Page("client_id is missing.".to_owned()));
    };
    let Some(client) = o.clients.get(client_id).cloned() else {
        return Err(Invalid::Page(format!(
            "The client {client_id:?} is not registered with this sidecar."
        )));
    };
    let redirect_uri = match params.get("redirect_uri").filter(|r| !r.is_empty()) {
        Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => uri.clone(),
        Some(uri) => {
            return Err(Invalid::Page(format!(
                "The redirect URI {uri:?} is not registered for the client {client_id:?}; an \
                 operator adds it to the client's redirect_uris."
            )));
        }
        None => match client.redirect_uris.as_slice() {
            [only] => only.clone(),
            _ => {
                return Err(Invalid::Page(
                    "redirect_uri is missing, and the client has several.".to_owned(),
                ));
            }
        },
    };
    let redirect = |error: &'static str, detail: String| {
        Invalid::Redirect(redirect_uri.clone(), error, detail)
    };
    if !client.may(GrantType::AuthorizationCode) {
        return Err(redirect(
            "unauthorized_client",
            "the client may not use the authorization_code grant".to_owned(),
        ));
    }
    match params.get("response_type").map(String::as_str) {
        Some("code") => {}
        Some(_) => {
            return Err(redirect(
                "unsupported_response_type",
                "only response_type=code is supported".to_owned(),
            ));
        }
        None => {
            return Err(redirect(
                "invalid_request",
                "response_type is required".to_owned(),
            ));
        }
    }
    let challenge = params.get("code_challenge").filter(|c| !c.is_empty());
    let method = params.get("code_challenge_method").map(String::as_str);
    match (challenge, method) {
        (None, None) => {}
        (None, Some(_)) => {
            return Err(redirect(
                "invalid_request",
                "code_challenge_method without code_challenge".to_owned(),
            ));
        }
        (Some(c), Some("S256")) if pkce_text(c) => {}
        (Some(_), Some("S256")) => {
            return Err(redirect(
                "invalid_request",
                "code_challenge must be 43 to 128 unreserved characters".to_owned(),
            ));
        }
        (Some(_), _) => {
            return Err(redirect(
                "invalid_request",
                "code_challenge_method must be S256 (plain is not accepted)".to_owned(),
            ));
        }
    }
    Ok(Asked {
        client,
        redirect_uri,
        params,
    })
}

fn consent<'a>(asked: &'a Asked<'a>, notice: Option<&'a str>) -> Consent<'a> {
    let hidden = [
        "response_type",
        "client_id",
        "redirect_uri",
        "state",
        "scope",
        "code_challenge",
        "code_challenge_method",
    ]
    .into_iter()
    .filter_map(|name| Some((name, asked.params.get(name)?.as_str())))
    .collect();
    Consent {
        tenant: asked.client.tenant.id.as_str(),
        client_id: &asked.client.id,
        redirect_uri: &asked.redirect_uri,
        hidden,
        notice,
    }
}

/// `303 See Other` to `uri` with `pairs` and the request's `state` added to its query.
fn back(
    uri: &str,
    pairs: &[(&str, &str)],
    params: &std::collections::HashMap<String, String>,
) -> Response<Full<Bytes>> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        query.append_pair(k, v);
    }
    if let Some(state) = params.get("state") {
        query.append_pair("state", state);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    let location = format!("{uri}{sep}{}", query.finish());
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SEE_OTHER;
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            h.insert(header::LOCATION, v);
            resp
        }
        Err(_) => page::error(
            StatusCode::BAD_REQUEST,
            "Invalid authorization request",
            "The redirect cannot be built from these parameters.",
        ),
    }
}
