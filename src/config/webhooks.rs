//! `[[tenants.<name>.webhooks]]`: where a tenant's directory-sync events are delivered, signed
//! with which secrets, which types, and how patiently.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, SecretSource};
use crate::webhooks::{Endpoint, EventType, sign};

/// One `[[tenants.<name>.webhooks]]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The endpoint's name: 1 to 64 letters, digits, `-` or `_`, unique in the tenant. The
    /// outbox rows name it, so renaming it leaves its undelivered events behind.
    pub name: String,
    /// Where events are POSTed: `https://`, or `http://` with `allow_http` to a loopback or
    /// cluster-internal host.
    pub url: String,
    /// The signing secrets, each `whsec_` and 24 to 64 bytes in base64
    /// (`scim-sidecar events secret` makes one), as `{ env = … }`, `{ file = … }` or
    /// `{ value = … }`. Every one signs each delivery: list the new one beside the old during
    /// a rotation.
    pub secrets: Vec<SecretSource>,
    /// The event types it takes: names (`user.created`), families (`user.*`, `group.*`) or
    /// `*`. Default: every type.
    #[serde(default)]
    pub events: Vec<String>,
    /// Allows `http://` to a loopback address, a private (RFC 1918 / ULA) address, `localhost`,
    /// a one-label name or a Kubernetes service name (`*.svc`, `*.cluster.local`). Default
    /// false.
    #[serde(default)]
    pub allow_http: bool,
    /// PEM certificate authorities to trust for this endpoint instead of the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Time limit of one delivery (connect, send, answer), in seconds. Default 10.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Deliveries in flight at most (events of one resource go one at a time whatever
    /// this says). Default 4.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// How long an event is retried before it is dead-lettered, in seconds. Default 86400.
    #[serde(default = "default_max_age")]
    pub max_age_secs: u64,
    /// The pause before the first retry, in milliseconds; doubled at each failure.
    /// Default 5000.
    #[serde(default = "default_first_retry")]
    pub first_retry_ms: u64,
    /// The longest pause between two attempts, in seconds. Default 3600.
    #[serde(default = "default_max_retry")]
    pub max_retry_secs: u64,
}

fn default_timeout() -> u64 {
    10
}
fn default_concurrency() -> usize {
    4
}
fn default_max_age() -> u64 {
    86_400
}
fn default_first_retry() -> u64 {
    5000
}
fn default_max_retry() -> u64 {
    3600
}

impl WebhookConfig {
    /// Everything wrong with it, each prefixed with `at` (`tenants.acme.webhooks[0]`).
    pub fn problems(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if !valid_name(&self.name) {
            problems.push(format!(
                "{at}.name {:?}: 1 to 64 letters, digits, `-` or `_`",
                self.name
            ));
        }
        if let Err(e) = self.uri() {
            problems.push(format!("{at}.url: {e}"));
        }
        if self.secrets.is_empty() {
            problems.push(format!(
                "{at}.secrets is empty: give at least one `whsec_` secret (`scim-sidecar events \
                 secret` makes one)"
            ));
        }
        for (index, s) in self.secrets.iter().enumerate() {
            match s.resolve() {
                Err(e) => problems.push(format!("{at}.secrets[{index}]: {e}")),
                Ok(secret) => {
                    if let Err(e) = sign::key_of(secret.expose()) {
                        problems.push(format!("{at}.secrets[{index}]: {e}"));
                    }
                }
            }
        }
        for name in &self.events {
            if EventType::select(name).is_none() {
                let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                problems.push(format!(
                    "{at}.events: {name:?} is no event type; the types are {}, or `user.*`, \
                     `group.*`, `*`",
                    known.join(", ")
                ));
            }
        }
        for (key, value, most) in [
            ("timeout_secs", self.timeout_secs, 3600),
            ("concurrency", self.concurrency as u64, 256),
            ("max_age_secs", self.max_age_secs, 30 * 86_400),
            ("first_retry_ms", self.first_retry_ms, 3_600_000),
            ("max_retry_secs", self.max_retry_secs, 86_400),
        ] {
            if !(1..=most).contains(&value) {
                problems.push(format!("{at}.{key} must be from 1 to {most}"));
            }
        }
        if let Some(path) = &self.ca_file
            && let Err(e) = crate::tls::client_roots(Some(path))
        {
            problems.push(format!("{at}.ca_file: {e}"));
        }
        problems
    }

    /// The URL, checked: an absolute `https://` URL, or `http://` where `allow_http` lets it.
    fn uri(&self) -> Result<http::Uri, String> {
        // The URL is never echoed: its path or query may hold a token.
        let uri: http::Uri = self.url.parse().map_err(|e| format!("is not a URL: {e}"))?;
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(
                "holds credentials (user@): the endpoint authenticates the sidecar by the \
                 signature; put a token in a secret, not in the URL"
                    .to_owned(),
            );
        }
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| "names no host".to_owned())?;
        match uri.scheme_str() {
            Some("https") => Ok(uri),
            Some("http") if self.allow_http && internal_host(host) => Ok(uri),
            Some("http") if self.allow_http => Err(format!(
                "http:// is allowed only to a loopback, private or cluster-internal host, not \
                 {host}: use https://"
            )),
            Some("http") => Err(
                "events are delivered over https:// only; set allow_http = true for an \
                 endpoint on loopback or inside the cluster"
                    .to_owned(),
            ),
            _ => Err("is not an http(s):// URL".to_owned()),
        }
    }

    /// The endpoint the delivery task serves (call after [`WebhookConfig::problems`] found
    /// none).
    pub fn endpoint(&self) -> Result<Endpoint, ConfigError> {
        let bad = |detail: String| ConfigError::Invalid {
            problems: vec![format!("webhook {}: {detail}", self.name)],
        };
        let url = self.uri().map_err(bad)?;
        let keys = self
            .secrets
            .iter()
            .map(|s| sign::key_of(s.resolve()?.expose()).map_err(bad))
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let types = if self.events.is_empty() {
            EventType::ALL.to_vec()
        } else {
            let mut types: Vec<EventType> = self
                .events
                .iter()
                .filter_map(|n| EventType::select(n))
                .flatten()
                .collect();
            types.sort_by_key(|t| t.as_str());
            types.dedup();
            types
        };
        let roots = match url.scheme_str() {
            Some("https") => crate::tls::client_roots(self.ca_file.as_deref()).map_err(bad)?,
            _ => rustls::RootCertStore::empty(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Endpoint {
            name: self.name.clone(),
            url,
            keys,
            types,
            timeout: Duration::from_secs(self.timeout_secs),
            concurrency: self.concurrency,
            max_age: Duration::from_secs(self.max_age_secs),
            first_retry: Duration::from_millis(self.first_retry_ms),
            max_retry: Duration::from_secs(self.max_retry_secs),
            tls: Arc::new(tls),
        })
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `host` is one `http://` may go to: loopback, private, `localhost`, one label, or a
/// Kubernetes service name.
fn internal_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return match ip {
            IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
            IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
        };
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    // A one-label name of digits (or 0x…) is an address in disguise: the resolver reads
    // `134744072` as 8.8.8.8.
    let numeric = !host.contains('.')
        && (host.bytes().all(|b| b.is_ascii_digit())
            || host.starts_with("0x") && host[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    if numeric {
        return false;
    }
    host == "localhost"
        || !host.contains('.')
        || host.ends_with(".svc")
        || host.ends_with(".cluster.local")
        || host.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(url: &str, allow_http: bool) -> WebhookConfig {
        WebhookConfig {
            name: "crm".into(),
            url: url.into(),
            secrets: vec![SecretSource::Value {
                value: sign::new_secret(),
            }],
            events: vec![],
            allow_http,
            ca_file: None,
            timeout_secs: 10,
            concurrency: 4,
            max_age_secs: 86_400,
            first_retry_ms: 5000,
            max_retry_secs: 3600,
        }
    }

    #[test]
    fn http_only_when_allowed_and_internal() {
        assert!(
            hook("https://hooks.example.com/scim", false)
                .problems("w")
                .is_empty()
        );
        let plain = hook("http://127.0.0.1:9/hook", false).problems("w");
        assert!(plain[0].contains("allow_http"), "{plain:?}");
        for ok in [
            "http://127.0.0.1:9/hook",
            "http://[::1]:9/",
            "http://10.1.2.3/",
            "http://crm/",
            "http://crm.shop.svc/",
            "http://crm.shop.svc.cluster.local:8080/x",
            "http://localhost:1/",
        ] {
            assert!(hook(ok, true).problems("w").is_empty(), "{ok}");
        }
        for bad in [
            "http://hooks.example.com/",
            "http://8.8.8.8/",
            "http://134744072/",
            "http://0x8080808/",
            "http://127.0.0.1.evil.com/",
        ] {
            let p = hook(bad, true).problems("w");
            assert!(p[0].contains("use https://"), "{bad}: {p:?}");
        }
        assert!(!hook("ftp://x/", true).problems("w").is_empty());
        let creds = hook("https://user:pw@h.example.com/?token=t0k3n", false).problems("w");
        assert!(creds[0].contains("credentials"), "{creds:?}");
        assert!(
            !creds
                .iter()
                .any(|p| p.contains("pw") || p.contains("t0k3n"))
        );
        assert!(!hook("/relative", true).problems("w").is_empty());
    }

    #[test]
    fn secrets_types_and_numbers_are_checked_and_every_problem_named() {
        let mut h = hook("https://h.example.com/", false);
        h.name = "bad name".into();
        h.secrets = vec![
            SecretSource::Value {
                value: "not-a-secret".into(),
            },
            SecretSource::Env {
                env: "SCIM_SIDECAR_TEST_NO_SUCH_VARIABLE".into(),
            },
        ];
        h.events = vec!["user.created".into(), "user.renamed".into()];
        h.concurrency = 0;
        let p = h.problems("tenants.acme.webhooks[0]");
        assert_eq!(p.len(), 5, "{p:#?}");
        assert!(p.iter().all(|l| l.starts_with("tenants.acme.webhooks[0].")));
        assert!(
            !p.iter().any(|l| l.contains("not-a-secret")),
            "no secret echoed: {p:?}"
        );
    }

    #[test]
    fn the_endpoint_takes_the_selected_types() {
        let mut h = hook("http://127.0.0.1:9/", true);
        h.events = vec!["group.*".into(), "user.deleted".into()];
        let e = h.endpoint().expect("an endpoint");
        assert!(e.takes(EventType::GroupUserAdded) && e.takes(EventType::UserDeleted));
        assert!(!e.takes(EventType::UserCreated));
        let all = hook("http://127.0.0.1:9/", true)
            .endpoint()
            .expect("an endpoint");
        assert_eq!(all.types.len(), EventType::ALL.len());
    }
}
