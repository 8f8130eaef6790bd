//! What the identity provider presents in `Authorization`, and which tenant that makes it.
//!
//! Three forms, any of them per tenant:
//! - `Bearer <token>`: Okta's and Entra's bearer token;
//! - `<token>` alone: Okta's "HTTP Header" mode sends the value its admin typed, which is often
//!   the bare token;
//! - `Basic <base64(username:password)>` (RFC 7617): Okta's "Basic Auth" mode; the password is
//!   checked against an argon2 hash ([`password`]).
//!
//! Tokens are compared as SHA-256 digests in constant time against every configured token of
//! every tenant (no early exit). A username belongs to one tenant (the configuration refuses it
//! twice); it may have several passwords during a rotation. Nothing presented ever reaches a
//! log line, an error or a panic message. Knows nothing about HTTP beyond the header's bytes.

pub mod password;

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use password::{Checked, Verifier};

/// The form of credential a request presented: the label of the failures metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Bearer <token>`.
    Bearer,
    /// A token with no scheme (Okta's "HTTP Header" mode).
    Header,
    /// `Basic <base64(username:password)>`.
    Basic,
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header in no form above (another scheme, bad base64, no `:`).
    Malformed,
}

impl Scheme {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Bearer => "bearer",
            Scheme::Header => "header",
            Scheme::Basic => "basic",
            Scheme::Missing => "missing",
            Scheme::Malformed => "malformed",
        }
    }
}

/// One configured username and password hash, and the tenant it opens.
#[derive(Debug)]
pub struct BasicCredential<T> {
    /// The username, compared exactly.
    pub username: String,
    /// Its argon2 hash (see [`password::parse`]).
    pub hash: Arc<PasswordHash>,
    /// The tenant.
    pub tenant: T,
}

/// What [`Credentials::authenticate`] found.
#[derive(Debug)]
pub enum Found<T> {
    /// The tenant of a valid token, or of a username and password that passed before.
    Tenant(T),
    /// Nothing valid was presented, in this form.
    Refused(Scheme),
    /// A username and password to check against their hashes ([`Credentials::check`]).
    Check(PasswordCheck),
    /// A token the sidecar issued (OAuth 2.0), to look up in the store
    /// ([`Credentials::issued`]), presented in this form.
    Issued(Scheme, Vec<u8>),
}

/// Where tokens the sidecar issued are looked up (the OAuth 2.0 access tokens).
pub trait IssuedTokens<T>: Send + Sync {
    /// Whether `token` has the form of an issued token (checked before any lookup).
    fn claims(&self, token: &[u8]) -> bool;
    /// The tenant of a valid, unexpired, unrevoked issued `token`; `None` if it is not one;
    /// an error when the tokens' store cannot answer.
    fn tenant(
        &self,
        token: Vec<u8>,
    ) -> futures_util::future::BoxFuture<'_, Result<Option<T>, LookupError>>;
}

/// Why an issued token could not be looked up (the store's error, boxed: this module knows
/// no store).
pub type LookupError = Box<dyn std::error::Error + Send + Sync>;

/// A username and password awaiting an argon2 check. `Debug` shows neither.
pub struct PasswordCheck {
    key: [u8; 32],
    password: Vec<u8>,
    candidates: Vec<(usize, Arc<PasswordHash>)>,
}

impl std::fmt::Debug for PasswordCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordCheck").finish_non_exhaustive()
    }
}

/// Every tenant's credentials.
#[derive(Debug)]
pub struct Credentials<T> {
    tokens: Vec<([u8; 32], T)>,
    basic: Vec<BasicCredential<T>>,
    verifier: Arc<Verifier>,
    issued: Option<Arc<dyn IssuedTokens<T>>>,
}

impl<T> std::fmt::Debug for dyn IssuedTokens<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IssuedTokens")
    }
}

impl<T: Clone> Credentials<T> {
    /// Credentials from (SHA-256 digest of a token, tenant) pairs and Basic credentials;
    /// at most `checks` argon2 checks run at once.
    pub fn new(tokens: Vec<([u8; 32], T)>, basic: Vec<BasicCredential<T>>, checks: usize) -> Self {
        let verifier = Arc::new(Verifier::new(checks, basic.first().map(|b| &*b.hash)));
        Self {
            tokens,
            basic,
            verifier,
            issued: None,
        }
    }

    /// These credentials, and the tokens `issued` knows.
    pub fn with_issued(mut self, issued: Arc<dyn IssuedTokens<T>>) -> Self {
        self.issued = Some(issued);
        self
    }

    /// The tenant of an issued token ([`Found::Issued`]), if it is valid now.
    pub async fn issued(&self, token: Vec<u8>) -> Result<Option<T>, LookupError> {
        match &self.issued {
            Some(issued) => issued.tenant(token).await,
            None => Ok(None),
        }
    }

    /// Bearer tokens only (tests, `dev`).
    pub fn tokens(tokens: Vec<([u8; 32], T)>) -> Self {
        Self::new(tokens, Vec::new(), 1)
    }

    /// Whether some tenant takes HTTP Basic (the `401` then offers it too).
    pub fn takes_basic(&self) -> bool {
        !self.basic.is_empty()
    }

    /// The tenant of an `Authorization` header value (`None`: no header), or what it takes
    /// to know it.
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Found<T> {
        let Some(value) = authorization else {
            return Found::Refused(Scheme::Missing);
        };
        match presented(value) {
            Presented::Token(scheme, token) => match self.token_tenant(token) {
                Some(t) => Found::Tenant(t),
                None if self.issued.as_ref().is_some_and(|i| i.claims(token)) => {
                    Found::Issued(scheme, token.to_vec())
                }
                None => Found::Refused(scheme),
            },
            Presented::Basic { username, password } => self.basic(&username, password),
            Presented::Malformed => Found::Refused(Scheme::Malformed),
        }
    }

    fn token_tenant(&self, token: &[u8]) -> Option<T> {
        let digest: [u8; 32] = Sha256::digest(token).into();
        let mut found = None;
        for (d, tenant) in &self.tokens {
            if bool::from(d.ct_eq(&digest)) && found.is_none() {
                found = Some(tenant.clone());
            }
        }
        found
    }

    /// The tenant of a username and password (OAuth client ids and secrets, approvers), or
    /// what it takes to know it: as HTTP Basic would.
    pub fn password(&self, username: &[u8], password: Vec<u8>) -> Found<T> {
        self.basic(username, password)
    }

    fn basic(&self, username: &[u8], password: Vec<u8>) -> Found<T> {
        if self.basic.is_empty() {
            return Found::Refused(Scheme::Basic);
        }
        let key = self.verifier.key(username, &password);
        if let Some(index) = self.verifier.remembered(&key)
            && let Some(c) = self.basic.get(index)
        {
            return Found::Tenant(c.tenant.clone());
        }
        let candidates = self
            .basic
            .iter()
            .enumerate()
            .filter(|(_, c)| c.username.as_bytes() == username)
            .map(|(i, c)| (i, Arc::clone(&c.hash)))
            .collect();
        Found::Check(PasswordCheck {
            key,
            password,
            candidates,
        })
    }

    /// Runs the argon2 check of a [`Found::Check`]: the tenant, or why not.
    pub async fn check(&self, c: PasswordCheck) -> Result<T, Checked> {
        match self.verifier.check(c.key, c.password, c.candidates).await {
            Checked::Passed(index) => self
                .basic
                .get(index)
                .map(|b| b.tenant.clone())
                .ok_or(Checked::Failed),
            other => Err(other),
        }
    }
}

/// An `Authorization` value taken apart (the admin listener reads its token the same way).
pub enum Presented<'a> {
    /// A token, with the scheme it came in ([`Scheme::Bearer`] or [`Scheme::Header`]).
    Token(Scheme, &'a [u8]),
    /// HTTP Basic's pair (the username may be empty; no tenant has an empty one).
    Basic {
        /// The username.
        username: Vec<u8>,
        /// The password.
        password: Vec<u8>,
    },
    /// Nothing readable.
    Malformed,
}

/// `Bearer <token>` and `Basic <credentials>` (schemes in any case, one space), or a token
/// alone (no space in it).
pub fn presented(value: &[u8]) -> Presented<'_> {
    let no_space = |t: &[u8]| !t.is_empty() && !t.iter().any(u8::is_ascii_whitespace);
    match value.iter().position(|&b| b == b' ') {
        None if no_space(value) => Presented::Token(Scheme::Header, value),
        None => Presented::Malformed,
        Some(at) => {
            let (scheme, rest) = (&value[..at], &value[at + 1..]);
            if scheme.eq_ignore_ascii_case(b"bearer") && no_space(rest) {
                Presented::Token(Scheme::Bearer, rest)
            } else if scheme.eq_ignore_ascii_case(b"basic") && no_space(rest) {
                basic_pair(rest).map_or(Presented::Malformed, |(username, password)| {
                    Presented::Basic { username, password }
                })
            } else {
                Presented::Malformed
            }
        }
    }
}

/// The username and password of RFC 7617's `base64(username ":" password)`; padding optional.
fn basic_pair(encoded: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let mut decoded = engine.decode(encoded).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let password = decoded.split_off(colon + 1);
    decoded.truncate(colon);
    Some((decoded, password))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHasher;
    use argon2::{Algorithm, Argon2, Params};

    fn digest(t: &str) -> [u8; 32] {
        Sha256::digest(t.as_bytes()).into()
    }

    fn cheap(password: &str) -> Arc<PasswordHash> {
        let params = Params::new(64, 1, 1, None).expect("params");
        let made = Argon2::new(Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(password.as_bytes())
            .expect("hash");
        Arc::new(password::parse(&made.to_string()).expect("parse"))
    }

    fn basic_header(pair: &str) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(pair);
        format!("Basic {b64}").into_bytes()
    }

    fn table() -> Credentials<&'static str> {
        Credentials::new(
            vec![
                (digest("tok-A1"), "a"),
                (digest("tok-A2"), "a"),
                (digest("tok-B"), "b"),
            ],
            vec![
                BasicCredential {
                    username: "okta".into(),
                    hash: cheap("old-pw"),
                    tenant: "b",
                },
                BasicCredential {
                    username: "okta".into(),
                    hash: cheap("new:pw"),
                    tenant: "b",
                },
            ],
            1,
        )
    }

    fn tenant(found: Found<&'static str>) -> Option<&'static str> {
        match found {
            Found::Tenant(t) => Some(t),
            _ => None,
        }
    }

    #[test]
    fn tokens_select_their_tenant_with_or_without_the_bearer_scheme() {
        let t = table();
        let auth = |v: &[u8]| tenant(t.authenticate(Some(v)));
        assert_eq!(auth(b"Bearer tok-A1"), Some("a"));
        assert_eq!(
            auth(b"Bearer tok-A2"),
            Some("a"),
            "rotation: both tokens work"
        );
        assert_eq!(auth(b"bearer tok-B"), Some("b"), "scheme in any case");
        assert_eq!(
            auth(b"tok-A1"),
            Some("a"),
            "Okta's HTTP Header mode: the token alone"
        );
        for bad in [
            &b"Bearer TOK-A1"[..],
            b"Bearer tok-a1",
            b"Bearer ",
            b"Bearer  tok-A1",
            b"Bearer tok-A1 ",
            b"Token tok-A1",
            b"tok-A1 ",
            b"non-token",
            b"",
        ] {
            assert_eq!(auth(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(matches!(
            t.authenticate(None),
            Found::Refused(Scheme::Missing)
        ));
        assert!(matches!(
            t.authenticate(Some(b"Bearer nope")),
            Found::Refused(Scheme::Bearer)
        ));
        assert!(matches!(
            t.authenticate(Some(b"nope")),
            Found::Refused(Scheme::Header)
        ));
        assert!(matches!(
            t.authenticate(Some(b"Digest x=y")),
            Found::Refused(Scheme::Malformed)
        ));
    }

    #[test]
    fn basic_values_are_taken_apart_as_rfc_7617_says() {
        let pair = |v: &[u8]| match presented(v) {
            Presented::Basic { username, password } => Some((username, password)),
            _ => None,
        };
        let (u, p) = pair(&basic_header("okta:pa:ss word")).expect("pair");
        assert_eq!((&u[..], &p[..]), (&b"okta"[..], &b"pa:ss word"[..]));
        let (u, p) = pair(b"basic b2t0YTo").expect("unpadded, lower-case scheme");
        assert_eq!((&u[..], &p[..]), (&b"okta"[..], &b""[..]));
        let (u, p) = pair(&basic_header(":only-password")).expect("no username");
        assert_eq!((&u[..], &p[..]), (&b""[..], &b"only-password"[..]));
        for bad in [&basic_header("no colon")[..], b"Basic !!!", b"Basic "] {
            assert!(pair(bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[tokio::test]
    async fn basic_passwords_are_checked_once_then_remembered() {
        let t = table();
        for (pair, ok) in [
            ("okta:new:pw", true),
            ("okta:old-pw", true),
            ("okta:wrong", false),
            ("nobody:old-pw", false),
            ("OKTA:old-pw", false),
            (":old-pw", false),
        ] {
            let header = basic_header(pair);
            let Found::Check(check) = t.authenticate(Some(&header)) else {
                panic!("{pair}: a first sight needs a check");
            };
            assert_eq!(t.check(check).await.ok(), ok.then_some("b"), "{pair}");
            let again = t.authenticate(Some(&header));
            if ok {
                assert_eq!(tenant(again), Some("b"), "{pair}: remembered");
            } else {
                assert!(
                    matches!(again, Found::Check(_)),
                    "{pair}: a failure is not kept"
                );
            }
        }
        let bearer_only = Credentials::tokens(vec![(digest("tok"), "a")]);
        assert!(!bearer_only.takes_basic());
        assert!(matches!(
            bearer_only.authenticate(Some(&basic_header("okta:old-pw"))),
            Found::Refused(Scheme::Basic)
        ));
    }
}
