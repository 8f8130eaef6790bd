//! RFC 9865 cursors: where a list walk stands on the legacy app (its record index, and its
//! own cursor or next page's URL), sealed so that an identity provider can hand it back but
//! neither read it nor make one up.
//!
//! A cursor is `base64url(version ‖ nonce ‖ ChaCha20-Poly1305(position))`, with the tenant
//! and the resource type as associated data: a cursor altered by one bit, made up, or handed
//! to another tenant or resource type does not open (`invalidCursor`), and the legacy app's
//! URLs and cursors inside it stay unread. Inside: the walk's page size (`count`), a digest of
//! its filter (a cursor serves the query it came from), the position and when it was given
//! out (`expiredCursor` after the timeout). The key is made once and kept in the state store,
//! so every replica and every restart opens the cursors of the others.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mapping::plan::Position;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use scim::filter::Filter;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The key's name in the state store.
pub const KEY_NAME: &str = "cursor";
/// Bytes of key.
pub const KEY_LEN: usize = 32;
/// Default of `server.cursor_timeout_secs`.
pub const DEFAULT_TIMEOUT_SECS: u64 = 3600;

/// Version of the sealed layout (its first byte).
const VERSION: u8 = 1;
/// A longer `cursor` parameter is refused before decoding (a legacy next URL fits well).
const MAX_TEXT: usize = 8 * 1024;
/// How far in the future an issue time may be (replicas' clocks differ a little).
const CLOCK_SKEW_SECS: i64 = 300;

/// Why a cursor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Damaged, made up, or sealed for another tenant or resource type.
    #[error(
        "the cursor is not one this service provider gave out for this list; start again \
         with an empty cursor"
    )]
    Invalid,
    /// Sealed for another filter.
    #[error(
        "the cursor belongs to a list with another filter: send the first page's filter with \
         every page, or start again with an empty cursor"
    )]
    OtherQuery,
    /// Older than the timeout.
    #[error(
        "the cursor expired: pages of a cursor walk must be asked for within {timeout_secs} s \
         of each other (cursorTimeout); start again with an empty cursor"
    )]
    Expired {
        /// The timeout, in seconds.
        timeout_secs: u64,
    },
    /// The legacy page size changed since the cursor was given out (the mapping was
    /// reloaded): positions on page-numbered apps would land elsewhere.
    #[error(
        "the legacy app's paging changed since this cursor was given out (the mapping was \
         reloaded); start again with an empty cursor"
    )]
    Stale,
    /// `count` changed during the walk.
    #[error("count must stay {walk} during a cursor walk (RFC 9865); got {sent}")]
    CountChanged {
        /// The walk's.
        walk: u64,
        /// The request's.
        sent: u64,
    },
}

/// What a cursor says: the walk's page size and where its next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    /// Records per page (the first page's `count`).
    pub count: u64,
    /// Where the page starts on the legacy app.
    pub at: Position,
    /// Records per legacy page when the cursor was given out (`None`: the first page).
    pub legacy_size: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    /// The walk's `count`.
    c: u64,
    /// Digest of the filter's canonical text (empty without a filter).
    q: String,
    /// The legacy record index.
    i: u64,
    /// The legacy app's cursor or next URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    a: Option<String>,
    /// Records of that legacy page already answered.
    #[serde(default, skip_serializing_if = "is_zero")]
    k: u64,
    /// Fingerprint of the previous legacy page's first record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    f: Option<u64>,
    /// Records per legacy page when the cursor was given out.
    s: u64,
    /// Issued at, Unix seconds.
    t: i64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Seals and opens the cursors of one sidecar (one key, one timeout).
pub struct Cursors {
    key: LessSafeKey,
    timeout: Duration,
}

impl std::fmt::Debug for Cursors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursors")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Cursors {
    /// Cursors sealed with `key` ([`KEY_LEN`] bytes; a shorter or longer one is hashed to
    /// that length), valid for `timeout` after they are given out.
    pub fn new(key: &[u8], timeout: Duration) -> Self {
        let key: [u8; KEY_LEN] = if key.len() == KEY_LEN {
            let mut k = [0; KEY_LEN];
            k.copy_from_slice(key);
            k
        } else {
            Sha256::digest(key).into()
        };
        // ring refuses a key of another length only, and this one is KEY_LEN bytes.
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &key)
            .expect("a 32-byte key is a ChaCha20-Poly1305 key");
        Cursors {
            key: LessSafeKey::new(unbound),
            timeout,
        }
    }

    /// Cursors with a key of this process only (tests, and state built without a store).
    pub fn ephemeral(timeout: Duration) -> Self {
        Self::new(&rand::random::<[u8; KEY_LEN]>(), timeout)
    }

    /// The timeout (`cursorTimeout`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The cursor of the page at `at`, of a walk of `count` records per page (legacy pages
    /// of `legacy_size`) over `resource` of `tenant` with `filter`, given out at `now` (Unix
    /// seconds).
    #[allow(clippy::too_many_arguments)]
    pub fn seal(
        &self,
        tenant: &str,
        resource: &str,
        filter: Option<&Filter>,
        count: u64,
        legacy_size: u64,
        at: &Position,
        now: i64,
    ) -> String {
        let payload = Payload {
            c: count,
            q: digest(filter),
            i: at.index,
            a: at.after.clone(),
            k: at.skip,
            f: at.first,
            s: legacy_size,
            t: now,
        };
        let mut data = serde_json::to_vec(&payload).unwrap_or_default();
        let nonce: [u8; NONCE_LEN] = rand::random();
        let aad = associated(tenant, resource);
        // Sealing fails only for inputs of gigabytes.
        if self
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut data,
            )
            .is_err()
        {
            data.clear();
        }
        let mut out = Vec::with_capacity(1 + NONCE_LEN + data.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens `text`, a cursor given back for `resource` of `tenant` with `filter` and
    /// (when the client sent one) `count`, at `now` (Unix seconds).
    pub fn open(
        &self,
        text: &str,
        tenant: &str,
        resource: &str,
        filter: Option<&Filter>,
        count: Option<u64>,
        now: i64,
    ) -> Result<Walk, CursorError> {
        if text.len() > MAX_TEXT {
            return Err(CursorError::Invalid);
        }
        let mut raw = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| CursorError::Invalid)?;
        if raw.len() < 1 + NONCE_LEN || raw[0] != VERSION {
            return Err(CursorError::Invalid);
        }
        let mut nonce = [0; NONCE_LEN];
        nonce.copy_from_slice(&raw[1..=NONCE_LEN]);
        let aad = associated(tenant, resource);
        let sealed = &mut raw[1 + NONCE_LEN..];
        let plain = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(&aad), sealed)
            .map_err(|_| CursorError::Invalid)?;
        let p: Payload = serde_json::from_slice(plain).map_err(|_| CursorError::Invalid)?;
        if p.q != digest(filter) {
            return Err(CursorError::OtherQuery);
        }
        let timeout_secs = self.timeout.as_secs();
        let age = now.saturating_sub(p.t);
        if age < -CLOCK_SKEW_SECS {
            return Err(CursorError::Invalid);
        }
        if u64::try_from(age).is_ok_and(|age| age > timeout_secs) {
            return Err(CursorError::Expired { timeout_secs });
        }
        if let Some(sent) = count
            && sent != p.c
        {
            return Err(CursorError::CountChanged { walk: p.c, sent });
        }
        Ok(Walk {
            count: p.c,
            at: Position {
                index: p.i,
                after: p.a,
                skip: p.k,
                first: p.f,
            },
            legacy_size: Some(p.s),
        })
    }
}

/// The associated data: a cursor opens for the tenant and resource type it was sealed for.
fn associated(tenant: &str, resource: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(tenant.len() + resource.len() + 24);
    aad.extend_from_slice(b"scim-sidecar cursor\0");
    aad.extend_from_slice(&(tenant.len() as u64).to_be_bytes());
    aad.extend_from_slice(tenant.as_bytes());
    aad.extend_from_slice(resource.as_bytes());
    aad
}

/// 16 hex digits of SHA-256 over the filter's canonical text; empty without a filter.
fn digest(filter: Option<&Filter>) -> String {
    let Some(f) = filter else {
        return String::new();
    };
    let d = Sha256::digest(f.to_string().as_bytes());
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Seconds since the Unix epoch now.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(index: u64, after: Option<&str>) -> Position {
        Position {
            index,
            after: after.map(str::to_owned),
            skip: 3,
            first: Some(99),
        }
    }

    #[test]
    fn a_cursor_opens_for_its_list_only() {
        let c = Cursors::new(&[7; KEY_LEN], Duration::from_secs(60));
        let f = scim::filter::parse("userName sw \"a\"").unwrap();
        let pos = at(
            400,
            Some("https://legacy.internal/api/users?page_token=xyz"),
        );
        let text = c.seal("acme", "User", Some(&f), 200, 100, &pos, 1_000);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)),
            "unreserved characters only: {text}"
        );
        assert!(!text.contains("legacy"), "the legacy URL is not readable");
        let walk = c
            .open(&text, "acme", "User", Some(&f), None, 1_030)
            .unwrap();
        assert_eq!(
            walk,
            Walk {
                count: 200,
                at: pos,
                legacy_size: Some(100)
            }
        );
        assert!(
            c.open(&text, "acme", "User", Some(&f), Some(200), 1_030)
                .is_ok()
        );

        let refused = |t: &str, tenant: &str, resource: &str, filter: Option<&Filter>| {
            c.open(t, tenant, resource, filter, None, 1_030)
                .unwrap_err()
        };
        assert_eq!(
            refused(&text, "globex", "User", Some(&f)),
            CursorError::Invalid
        );
        assert_eq!(
            refused(&text, "acme", "Group", Some(&f)),
            CursorError::Invalid
        );
        assert_eq!(
            refused(&text, "acme", "User", None),
            CursorError::OtherQuery
        );
        let other = Cursors::new(&[8; KEY_LEN], Duration::from_secs(60));
        assert_eq!(
            other.open(&text, "acme", "User", Some(&f), None, 1_030),
            Err(CursorError::Invalid)
        );
        // Every single-character change is refused.
        let bytes = text.as_bytes();
        for i in 0..bytes.len() {
            let mut t = bytes.to_vec();
            t[i] = if t[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(t).unwrap();
            assert!(refused(&t, "acme", "User", Some(&f)) == CursorError::Invalid);
        }
        for t in [
            "",
            "x",
            "AQ",
            "!!!",
            &"A".repeat(MAX_TEXT + 1),
            &text[..text.len() - 2],
        ] {
            assert_eq!(refused(t, "acme", "User", Some(&f)), CursorError::Invalid);
        }
    }

    #[test]
    fn random_and_truncated_cursors_are_refused_without_a_panic() {
        let c = Cursors::new(&[9; KEY_LEN], Duration::from_secs(60));
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~%+/= ";
        for _ in 0..5_000 {
            let len = rand::random_range(0..300);
            let text: String = (0..len)
                .map(|_| char::from(alphabet[rand::random_range(0..alphabet.len())]))
                .collect();
            assert!(
                c.open(&text, "acme", "User", None, None, 1_000).is_err(),
                "{text}"
            );
        }
        // Every prefix of a good cursor, and the good one with bytes appended.
        let good = c.seal("acme", "User", None, 10, 10, &at(5, Some("next")), 1_000);
        for end in 0..good.len() {
            assert_eq!(
                c.open(&good[..end], "acme", "User", None, None, 1_000),
                Err(CursorError::Invalid)
            );
        }
        assert!(
            c.open(&format!("{good}AA"), "acme", "User", None, None, 1_000)
                .is_err()
        );
        assert!(c.open(&good, "acme", "User", None, None, 1_000).is_ok());
    }

    #[test]
    fn a_cursor_expires_and_keeps_its_count() {
        let c = Cursors::new(b"a key of another length", Duration::from_secs(60));
        let text = c.seal("acme", "Group", None, 50, 50, &at(0, None), 1_000);
        assert!(c.open(&text, "acme", "Group", None, None, 1_060).is_ok());
        assert_eq!(
            c.open(&text, "acme", "Group", None, None, 1_061),
            Err(CursorError::Expired { timeout_secs: 60 })
        );
        assert!(
            c.open(&text, "acme", "Group", None, None, 1_000 - CLOCK_SKEW_SECS)
                .is_ok()
        );
        assert_eq!(
            c.open(
                &text,
                "acme",
                "Group",
                None,
                None,
                1_000 - CLOCK_SKEW_SECS - 1
            ),
            Err(CursorError::Invalid)
        );
        assert_eq!(
            c.open(&text, "acme", "Group", None, Some(10), 1_001),
            Err(CursorError::CountChanged { walk: 50, sent: 10 })
        );
        assert!(
            CursorError::Expired { timeout_secs: 60 }
                .to_string()
                .contains("60 s")
        );
    }
}
