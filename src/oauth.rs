//! OAuth 2.0 for the identity provider (RFC 6749, RFC 6750, PKCE RFC 7636): the sidecar is
//! the authorization server of its own SCIM API.
//!
//! - `/oauth2/authorize` ([`authorize`]): Okta's "OAuth 2" mode sends the admin's browser
//!   here; a consent page on the SCIM host asks one of the tenant's approvers to approve, and
//!   the browser goes back to the client's registered redirect URI with a one-time code.
//! - `/oauth2/token` ([`token`]): the client trades the code (and its PKCE verifier) for an
//!   access token and a refresh token; a refresh token for a new pair (rotation: the old one
//!   is spent, and presenting it again revokes its whole family); or, with the
//!   client-credentials grant (Entra ID, scripts), its id and secret for an access token.
//!
//! Codes and tokens are opaque random strings with a prefix (`scscd_`, `scsat_`, `scsrt_`,
//! so secret scanners and the auth layer know them), kept in the state store by their
//! SHA-256 only ([`crate::xref::Grant`]): every replica honours and revokes what any replica
//! issued. Client secrets and approvers' passwords are argon2 hashes, checked like HTTP Basic
//! ([`crate::credentials`]). Failures are counted in `scim_sidecar_oauth_failures_total` and
//! throttled per client address like failed SCIM authentications; nothing presented is logged.

pub mod authorize;
mod page;
pub mod token;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use sha2::{Digest, Sha256};

use crate::config::oauth::{GrantType, OAuthSettings};
use crate::credentials::{BasicCredential, Credentials, IssuedTokens, LookupError};
use crate::metrics::Metrics;
use crate::middleware::auth::FailureThrottle;
use crate::tenant::Tenant;
use crate::xref::{GrantKind, Store, StoreError};

/// The prefix of an access token.
pub const ACCESS_PREFIX: &str = "scsat_";
/// The prefix of a refresh token.
pub const REFRESH_PREFIX: &str = "scsrt_";
/// The prefix of an authorization code.
pub const CODE_PREFIX: &str = "scscd_";
/// Seconds an authorization code is valid.
pub const CODE_SECS: i64 = 300;
/// Rows that expired this long ago are deleted when new ones are issued (a spent refresh
/// token stays until then, so that its replay is recognised).
const PURGE_AFTER_SECS: i64 = 24 * 3600;
/// Largest request body of the OAuth endpoints.
const FORM_LIMIT: usize = 16 * 1024;

/// A registered client.
#[derive(Debug)]
pub struct Client {
    /// Its id.
    pub id: String,
    /// The tenant its tokens open.
    pub tenant: Arc<Tenant>,
    /// The grants it may use.
    pub grants: Vec<GrantType>,
    /// Where an authorization may send the browser back (exact match).
    pub redirect_uris: Vec<String>,
    /// Access tokens' lifetime, seconds.
    pub access_secs: i64,
    /// Refresh tokens' lifetime, seconds.
    pub refresh_secs: i64,
}

impl Client {
    fn may(&self, grant: GrantType) -> bool {
        self.grants.contains(&grant)
    }
}

/// The OAuth 2.0 authorization server of every tenant that has an `oauth` table.
pub struct OAuth {
    store: Store,
    clients: HashMap<String, Arc<Client>>,
    secrets: Credentials<Arc<Client>>,
    approvers: Credentials<Arc<Tenant>>,
    metrics: Arc<Metrics>,
    throttle: FailureThrottle,
}

impl std::fmt::Debug for OAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth")
            .field("clients", &self.clients.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl OAuth {
    /// The server of these tenants' settings, over `store`; at most `checks` argon2 checks
    /// at once.
    pub fn new(
        entries: Vec<(Arc<Tenant>, OAuthSettings)>,
        store: Store,
        metrics: Arc<Metrics>,
        checks: usize,
    ) -> Self {
        let mut clients = HashMap::new();
        let mut secrets = Vec::new();
        let mut approvers = Vec::new();
        for (tenant, s) in entries {
            for (username, hash) in s.approvers {
                approvers.push(BasicCredential {
                    username,
                    hash: Arc::new(hash),
                    tenant: Arc::clone(&tenant),
                });
            }
            for c in s.clients {
                let client = Arc::new(Client {
                    id: c.client_id.clone(),
                    tenant: Arc::clone(&tenant),
                    grants: c.grants,
                    redirect_uris: c.redirect_uris,
                    access_secs: secs(s.access_token),
                    refresh_secs: secs(s.refresh_token),
                });
                secrets.push(BasicCredential {
                    username: c.client_id.clone(),
                    hash: Arc::new(c.secret_hash),
                    tenant: Arc::clone(&client),
                });
                clients.insert(c.client_id, client);
            }
        }
        OAuth {
            store,
            clients,
            secrets: Credentials::new(Vec::new(), secrets, checks),
            approvers: Credentials::new(Vec::new(), approvers, checks),
            metrics,
            throttle: FailureThrottle::default(),
        }
    }

    /// Whether no tenant has OAuth clients.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Serves `/oauth2/authorize` and `/oauth2/token`; anything else under `/oauth2/` is
    /// `404`. `peer`: the client's address, for the failure throttle.
    pub async fn serve<B>(&self, req: Request<B>, peer: Option<IpAddr>) -> Response<Full<Bytes>>
    where
        B: Body + Send,
        B::Error: Into<tower::BoxError>,
    {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_owned();
        let endpoint = match path.as_str() {
            "/oauth2/authorize" => "authorize",
            "/oauth2/token" => "token",
            _ => {
                return plain(StatusCode::NOT_FOUND, "no such OAuth endpoint");
            }
        };
        let allowed: &[Method] = match endpoint {
            "authorize" => &[Method::GET, Method::POST],
            _ => &[Method::POST],
        };
        if !allowed.contains(&parts.method) {
            let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here");
            let allow = if endpoint == "token" {
                "POST"
            } else {
                "GET, POST"
            };
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            return resp;
        }
        let body = match Limited::new(body, FORM_LIMIT).collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => {
                return plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large or unreadable",
                );
            }
        };
        match endpoint {
            "authorize" => authorize::serve(self, &parts, &body, peer).await,
            _ => token::serve(self, &parts.headers, &body, peer).await,
        }
    }

    /// The tenant of a live access token.
    async fn tenant_of(&self, token: &[u8]) -> Result<Option<Arc<Tenant>>, StoreError> {
        let Some(row) = self.store.grant_find(&digest(token)).await? else {
            return Ok(None);
        };
        if row.kind != GrantKind::Access || !row.live(now()) {
            return Ok(None);
        }
        // A client removed from the configuration opens nothing any more.
        Ok(self
            .clients
            .get(&row.client_id)
            .filter(|c| c.tenant.id == row.tenant)
            .map(|c| Arc::clone(&c.tenant)))
    }

    /// Seconds to wait when `peer` has used up its failures.
    fn blocked(&self, peer: Option<IpAddr>) -> Option<u64> {
        peer.and_then(|ip| self.throttle.blocked(ip, Instant::now()))
    }

    /// Counts a failure at `endpoint` and takes one from `peer`'s bucket.
    fn failed(&self, endpoint: &str, error: &str, peer: Option<IpAddr>) {
        self.metrics.oauth_failed(endpoint, error);
        if let Some(ip) = peer {
            self.throttle.failed(ip, Instant::now());
        }
    }
}

impl IssuedTokens<Arc<Tenant>> for OAuth {
    fn claims(&self, token: &[u8]) -> bool {
        token.starts_with(ACCESS_PREFIX.as_bytes())
    }

    fn tenant(&self, token: Vec<u8>) -> BoxFuture<'_, Result<Option<Arc<Tenant>>, LookupError>> {
        Box::pin(async move { Ok(self.tenant_of(&token).await?) })
    }
}

/// A new secret with `prefix`, and its digest.
fn mint(prefix: &str) -> (String, String) {
    let raw: [u8; 32] = rand::random();
    let secret = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(raw));
    let d = digest(secret.as_bytes());
    (secret, d)
}

/// Hex SHA-256: how the store keeps a code or token.
pub fn digest(secret: &[u8]) -> String {
    Sha256::digest(secret)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new family id (not secret: `tokens list` shows it). Hex, so that it never begins with
/// `-` and an operator can paste it after `tokens revoke` as it is.
fn family_id() -> String {
    let raw: [u8; 12] = rand::random();
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// Unix seconds now.
fn now() -> i64 {
    crate::cursor::now()
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The answer under `/oauth2/` when no tenant has OAuth clients.
pub fn not_offered() -> Response<Full<Bytes>> {
    plain(
        StatusCode::NOT_FOUND,
        "OAuth 2.0 is not configured: no tenant has [tenants.<name>.oauth] clients",
    )
}

/// A short plain-text answer (no client to tell in RFC 6749's terms).
fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The pairs of a form body or query; `Err(name)` when a parameter comes twice (RFC 6749
/// §3.1, §3.2: each at most once).
fn form(bytes: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(bytes) {
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(k.into_owned());
        }
    }
    Ok(out)
}

/// The PKCE S256 transform of a verifier (RFC 7636 §4.2).
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A PKCE verifier or challenge: 43 to 128 unreserved characters (RFC 7636 §4.1).
fn pkce_text(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_ids_never_begin_with_a_hyphen() {
        for _ in 0..500 {
            let id = family_id();
            assert_eq!(id.len(), 24, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        }
    }

    #[test]
    fn pkce_follows_rfc_7636_appendix_b() {
        // The RFC's own example.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            s256(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(pkce_text(verifier));
        assert!(!pkce_text("short"));
        assert!(!pkce_text(&"a".repeat(129)));
        assert!(!pkce_text(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn secrets_are_prefixed_random_and_kept_by_digest() {
        let (a, da) = mint(ACCESS_PREFIX);
        let (b, db) = mint(ACCESS_PREFIX);
        assert!(a.starts_with("scsat_") && a.len() == 6 + 43);
        assert_ne!(a, b);
        assert_ne!(da, db);
        assert_eq!(da, digest(a.as_bytes()));
        assert_eq!(da.len(), 64);
        assert!(!da.contains(&a[6..]));
    }

    #[test]
    fn a_parameter_sent_twice_is_refused() {
        let f = form(b"grant_type=client_credentials&scope=a+b").unwrap();
        assert_eq!(f["scope"], "a b");
        assert_eq!(form(b"code=1&code=2").unwrap_err(), "code");
    }
}
