//! `[tenants.<name>.oauth]`: the OAuth 2.0 clients an identity provider signs in as (Okta's
//! authorization-code grant, Entra ID's client-credentials grant), who may approve on the
//! consent page, and how long tokens live.

use std::time::Duration;

use argon2::password_hash::phc::PasswordHash;
use serde::Deserialize;

use super::{BasicConfig, ConfigError, HashSource};

/// Default of `access_token_secs`: one hour.
pub const DEFAULT_ACCESS_TOKEN_SECS: u64 = 3600;
/// Default of `refresh_token_secs`: 30 days.
pub const DEFAULT_REFRESH_TOKEN_SECS: u64 = 30 * 24 * 3600;

/// `[tenants.<name>.oauth]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// How long an access token is valid, in seconds. Default 3600.
    #[serde(default = "default_access")]
    pub access_token_secs: u64,
    /// How long a refresh token is valid, in seconds; each refresh gives a new one with a new
    /// lifetime (the old one is spent). Default 2592000 (30 days).
    #[serde(default = "default_refresh")]
    pub refresh_token_secs: u64,
    /// Who may approve an authorization on the consent page: a `username` and an argon2
    /// `password_hash`, like `basic`. Required when a client takes `authorization_code`.
    #[serde(default)]
    pub approvers: Vec<BasicConfig>,
    /// The registered clients (`[[tenants.<name>.oauth.clients]]`).
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
}

fn default_access() -> u64 {
    DEFAULT_ACCESS_TOKEN_SECS
}

fn default_refresh() -> u64 {
    DEFAULT_REFRESH_TOKEN_SECS
}

/// A grant a client may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// RFC 6749 §4.1, with PKCE (RFC 7636) when the client sends a challenge; its refresh
    /// tokens too (Okta's "OAuth 2" mode).
    AuthorizationCode,
    /// RFC 6749 §4.4 (Entra ID's "OAuth2 client credentials grant", scripts).
    ClientCredentials,
}

impl GrantType {
    /// The `grant_type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::ClientCredentials => "client_credentials",
        }
    }
}

/// One `[[tenants.<name>.oauth.clients]]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The client id the identity provider is given; identifies this tenant (unique across
    /// tenants); no `:`, no control characters.
    pub client_id: String,
    /// The client secret's argon2 hash (`scim-sidecar hash-password`), inline or
    /// `{ env = … }` / `{ file = … }`.
    pub client_secret_hash: HashSource,
    /// The grants it may use: `authorization_code`, `client_credentials` or both.
    pub grants: Vec<GrantType>,
    /// Where the authorization may send the browser back, compared exactly: `https://`, or
    /// `http://` to a loopback address. Required with `authorization_code`. Okta's is
    /// `https://system-admin.<your-okta-domain>/admin/app/cpc/<appName>/oauth/callback`.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
}

/// A tenant's OAuth settings, hashes parsed.
#[derive(Clone, Debug)]
pub struct OAuthSettings {
    /// Access tokens' lifetime.
    pub access_token: Duration,
    /// Refresh tokens' lifetime.
    pub refresh_token: Duration,
    /// (username, hash) of the approvers.
    pub approvers: Vec<(String, PasswordHash)>,
    /// The clients.
    pub clients: Vec<ClientSettings>,
}

/// A client, its secret's hash parsed.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// The client id.
    pub client_id: String,
    /// The secret's hash.
    pub secret_hash: PasswordHash,
    /// Its grants.
    pub grants: Vec<GrantType>,
    /// Its redirect URIs.
    pub redirect_uris: Vec<String>,
}

impl OAuthSettings {
    /// Whether some client may use `grant`.
    pub fn grants(&self, grant: GrantType) -> bool {
        self.clients.iter().any(|c| c.grants.contains(&grant))
    }
}

impl OAuthConfig {
    /// The settings, hashes parsed.
    pub fn settings(&self) -> Result<OAuthSettings, ConfigError> {
        let approvers = self
            .approvers
            .iter()
            .enumerate()
            .map(|(index, a)| {
                let bad = |reason: String| ConfigError::BadOAuthHash {
                    what: format!("oauth.approvers[{index}].password_hash"),
                    reason,
                };
                let phc = a.password_hash.phc().map_err(|e| bad(e.to_string()))?;
                let hash = crate::credentials::password::parse(&phc).map_err(bad)?;
                Ok((a.username.clone(), hash))
            })
            .collect::<Result<_, ConfigError>>()?;
        let clients = self
            .clients
            .iter()
            .enumerate()
            .map(|(index, c)| {
                let bad = |reason: String| ConfigError::BadOAuthHash {
                    what: format!("oauth.clients[{index}].client_secret_hash"),
                    reason,
                };
                let phc = c.client_secret_hash.phc().map_err(|e| bad(e.to_string()))?;
                let secret_hash = crate::credentials::password::parse(&phc).map_err(bad)?;
                Ok(ClientSettings {
                    client_id: c.client_id.clone(),
                    secret_hash,
                    grants: c.grants.clone(),
                    redirect_uris: c.redirect_uris.clone(),
                })
            })
            .collect::<Result<_, ConfigError>>()?;
        Ok(OAuthSettings {
            access_token: Duration::from_secs(self.access_token_secs),
            refresh_token: Duration::from_secs(self.refresh_token_secs),
            approvers,
            clients,
        })
    }

    /// Every problem of the table, each prefixed with `at` (`tenants.<name>`); client ids
    /// are checked for uniqueness across tenants by the caller.
    pub fn problems(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.access_token_secs == 0 || self.refresh_token_secs == 0 {
            problems.push(format!(
                "{at}.oauth: access_token_secs and refresh_token_secs must be greater than 0"
            ));
        }
        if self.clients.is_empty() {
            problems.push(format!(
                "{at}.oauth: no clients: add [[{at}.oauth.clients]]"
            ));
        }
        for (index, a) in self.approvers.iter().enumerate() {
            if let Some(p) = a.username_problem() {
                problems.push(format!("{at}.oauth.approvers[{index}]: {p}"));
            }
        }
        for (index, c) in self.clients.iter().enumerate() {
            let here = format!("{at}.oauth.clients[{index}]");
            if let Some(p) = id_problem(&c.client_id) {
                problems.push(format!("{here}: {p}"));
            }
            if c.grants.is_empty() {
                problems.push(format!(
                    "{here}: grants is empty: give \"authorization_code\" (Okta), \
                     \"client_credentials\" (Entra ID) or both"
                ));
            }
            let code = c.grants.contains(&GrantType::AuthorizationCode);
            if code && c.redirect_uris.is_empty() {
                problems.push(format!(
                    "{here}: authorization_code needs redirect_uris (Okta's is \
                     https://system-admin.<okta-domain>/admin/app/cpc/<appName>/oauth/callback)"
                ));
            }
            if code && self.approvers.is_empty() {
                problems.push(format!(
                    "{here}: authorization_code needs {at}.oauth.approvers: who may approve on \
                     the consent page"
                ));
            }
            for uri in &c.redirect_uris {
                if !redirect_uri_allowed(uri) {
                    problems.push(format!(
                        "{here}: redirect URI {uri:?} must be https:// (or http:// to a \
                         loopback address), without a fragment"
                    ));
                }
            }
        }
        if let Err(e) = self.settings() {
            problems.push(format!("{at}.{e}"));
        }
        problems
    }
}

fn id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("client_id must not be empty")
    } else if id.contains(':') {
        Some("client_id must not contain ':' (HTTP Basic ends the client id there)")
    } else if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Some("client_id must not contain spaces or control characters")
    } else {
        None
    }
}

/// `https://…`, or `http://` to `127.0.0.1`, `[::1]` or `localhost`; never a fragment.
fn redirect_uri_allowed(uri: &str) -> bool {
    if uri.contains('#') || uri.chars().any(char::is_whitespace) {
        return false;
    }
    let lower = uri.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("https://") {
        return !rest.is_empty() && !rest.starts_with('/');
    }
    lower.strip_prefix("http://").is_some_and(|rest| {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => authority.split(':').next().unwrap_or(""),
        };
        host == "127.0.0.1" || host == "::1" || host == "localhost"
    })
}

#[cfg(test)]
mod tests {
    use super::redirect_uri_allowed;

    #[test]
    fn redirect_uris_are_https_or_loopback() {
        for ok in [
            "https://system-admin.okta.com/admin/app/cpc/x/oauth/callback",
            "http://127.0.0.1:8080/cb",
            "http://localhost/cb",
            "http://[::1]:9/cb?x=1",
        ] {
            assert!(redirect_uri_allowed(ok), "{ok}");
        }
        for bad in [
            "http://okta.com/cb",
            "https://x/cb#frag",
            "ftp://x",
            "https://",
            "http://127.0.0.1.evil.com/cb",
            "javascript:alert(1)",
        ] {
            assert!(!redirect_uri_allowed(bad), "{bad}");
        }
    }
}
