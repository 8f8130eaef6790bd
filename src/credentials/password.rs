//! Passwords of HTTP Basic: argon2id hashes in PHC form (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`),
//! made by `scim-sidecar hash-password`, checked off the tokio workers.
//!
//! An argon2 check costs tens of milliseconds and its memory parameter (19 MiB by default) on
//! purpose, and Okta sends the same username and password with every request. So a check that
//! passed is remembered: by the SHA-256 of a random per-process salt, the username and the
//! password, never the password itself; the next request with the same pair costs a digest
//! and a lookup. Checks run on the blocking pool, at most [`Verifier::new`]'s `permits` at
//! once (bounding their memory); a request that cannot start its check within
//! [`QUEUE_WAIT`] is answered as busy. An unknown username is checked against a dummy hash
//! with the same parameters, so the answer's time does not tell which usernames exist.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

/// Most memory one hash may ask for, in KiB (64 MiB): a configured hash above it is refused
/// at start, since every check allocates it.
pub const MAX_M_COST_KIB: u32 = 64 * 1024;
/// Most passes one hash may ask for.
pub const MAX_T_COST: u32 = 16;
/// Most lanes one hash may ask for.
pub const MAX_P_COST: u32 = 4;
/// How long a request waits for a check to start before it is answered as busy.
pub const QUEUE_WAIT: Duration = Duration::from_secs(5);
/// Passed checks remembered at most (each configured credential takes one).
const REMEMBERED_MAX: usize = 1024;

/// A new argon2id hash of `password` with the default parameters (m = 19 MiB, t = 2, p = 1)
/// and a random salt, in PHC form.
pub fn hash(password: &[u8]) -> Result<String, String> {
    Argon2::default()
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Parses a configured hash: an argon2 PHC string (`argon2id`, `argon2i` or `argon2d`) whose
/// costs are within the limits above. The message never repeats the hash.
pub fn parse(phc: &str) -> Result<PasswordHash, String> {
    let hash = PasswordHash::new(phc.trim()).map_err(|e| {
        format!("not a PHC hash string ({e}); make one with `scim-sidecar hash-password`")
    })?;
    let algorithm = hash.algorithm.as_str();
    if Algorithm::try_from(algorithm).is_err() {
        return Err(format!(
            "the hash is {algorithm:?}; only argon2id, argon2i and argon2d are taken \
             (make one with `scim-sidecar hash-password`)"
        ));
    }
    let params = Params::try_from(&hash)
        .map_err(|e| format!("the hash's argon2 parameters are not valid: {e}"))?;
    if hash.hash.is_none() {
        return Err("the PHC string has no hash part".to_owned());
    }
    let (m, t, p) = (params.m_cost(), params.t_cost(), params.p_cost());
    if m > MAX_M_COST_KIB || t > MAX_T_COST || p > MAX_P_COST {
        return Err(format!(
            "the hash asks for m={m} KiB, t={t}, p={p}; at most m={MAX_M_COST_KIB}, \
             t={MAX_T_COST}, p={MAX_P_COST} (every check costs that much)"
        ));
    }
    Ok(hash)
}

/// Whether `password` matches `hash` (runs the whole argon2 computation: call it off the
/// async workers).
fn matches(hash: &PasswordHash, password: &[u8]) -> bool {
    Argon2::default().verify_password(password, hash).is_ok()
}

/// Checks username/password pairs against configured hashes; remembers the pairs that passed.
pub struct Verifier {
    permits: Arc<Semaphore>,
    /// Random, per process: what the remembered digests are salted with.
    salt: [u8; 32],
    /// Digest of (salt, username, password) → index of the credential it passed.
    passed: RwLock<HashMap<[u8; 32], usize>>,
    /// The hash an unknown username is checked against, made at its first use (`None` if it
    /// could not be made: then an unknown username is refused at once).
    dummy: OnceLock<Option<PasswordHash>>,
    /// The parameters of that dummy: those of the first configured hash.
    dummy_params: Params,
    /// How long a check may wait to start ([`QUEUE_WAIT`]).
    queue_wait: Duration,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").finish_non_exhaustive()
    }
}

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// The password matched the credential at this index.
    Passed(usize),
    /// No credential of that username took that password (or the username is unknown).
    Failed,
    /// No check could start within [`QUEUE_WAIT`].
    Busy,
}

impl Verifier {
    /// A verifier running at most `permits` checks at once, whose dummy hash takes the
    /// parameters of `like` (the first configured hash) or the defaults.
    pub fn new(permits: usize, like: Option<&PasswordHash>) -> Self {
        let dummy_params = like
            .and_then(|h| Params::try_from(h).ok())
            .unwrap_or_default();
        Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            salt: rand::random(),
            passed: RwLock::default(),
            dummy: OnceLock::new(),
            dummy_params,
            queue_wait: QUEUE_WAIT,
        }
    }

    /// The digest a pair is remembered by.
    pub fn key(&self, username: &[u8], password: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update((username.len() as u64).to_be_bytes());
        h.update(username);
        h.update(password);
        h.finalize().into()
    }

    /// The credential a pair passed before, by its [`Verifier::key`].
    pub fn remembered(&self, key: &[u8; 32]) -> Option<usize> {
        self.passed
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .copied()
    }

    /// Checks `password` against each `(index, hash)` candidate in turn (the credentials of
    /// the username), or against the dummy hash when there is none; remembers a pass under
    /// `key`.
    pub async fn check(
        self: &Arc<Self>,
        key: [u8; 32],
        password: Vec<u8>,
        candidates: Vec<(usize, Arc<PasswordHash>)>,
    ) -> Checked {
        let Ok(Ok(permit)) =
            tokio::time::timeout(self.queue_wait, Arc::clone(&self.permits).acquire_owned()).await
        else {
            return Checked::Busy;
        };
        let this = Arc::clone(self);
        let found = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            if candidates.is_empty() {
                if let Some(dummy) = this.dummy.get_or_init(|| this.make_dummy()) {
                    let _ = matches(dummy, &password);
                }
                return None;
            }
            candidates
                .iter()
                .find(|(_, hash)| matches(hash, &password))
                .map(|(index, _)| *index)
        })
        .await
        .ok()
        .flatten();
        match found {
            Some(index) => {
                let mut passed = self
                    .passed
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if passed.len() < REMEMBERED_MAX {
                    passed.insert(key, index);
                }
                Checked::Passed(index)
            }
            None => Checked::Failed,
        }
    }

    fn make_dummy(&self) -> Option<PasswordHash> {
        let argon2 = Argon2::new(
            Algorithm::Argon2id,
            argon2::Version::V0x13,
            self.dummy_params.clone(),
        );
        let random: [u8; 16] = rand::random();
        argon2.hash_password(&random).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters, so the tests do not pay 19 MiB per check.
    fn cheap_hash(password: &[u8]) -> String {
        let params = Params::new(64, 1, 1, None).expect("params");
        Argon2::new(Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(password)
            .expect("hash")
            .to_string()
    }

    #[test]
    fn a_hash_made_here_parses_and_matches_only_its_password() {
        let made = hash(b"correct horse").expect("hash");
        assert!(
            made.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{made}"
        );
        let parsed = parse(&made).expect("parses");
        assert!(matches(&parsed, b"correct horse"));
        assert!(!matches(&parsed, b"correct horsf"));
    }

    #[test]
    fn parse_refuses_what_is_not_a_bounded_argon2_hash() {
        for (phc, says) in [
            ("hunter2", "not a PHC hash string"),
            (
                "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "only argon2id",
            ),
            (
                "$argon2id$v=19$m=1048576,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "at most m=65536",
            ),
            ("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ", "no hash part"),
        ] {
            let e = parse(phc).expect_err(phc);
            assert!(e.contains(says), "{phc}: {e}");
            assert!(!e.contains("hunter2"), "the message repeats the input: {e}");
        }
    }

    #[tokio::test]
    async fn a_passed_check_is_remembered_by_a_salted_digest_and_failures_are_not() {
        let hash = Arc::new(parse(&cheap_hash(b"s3cret")).expect("parse"));
        let v = Arc::new(Verifier::new(1, Some(&hash)));
        let key = v.key(b"okta", b"s3cret");
        assert_eq!(v.remembered(&key), None);
        let one = vec![(7, Arc::clone(&hash))];
        assert_eq!(
            v.check(key, b"s3cret".to_vec(), one.clone()).await,
            Checked::Passed(7)
        );
        assert_eq!(v.remembered(&key), Some(7));
        let wrong = v.key(b"okta", b"s3creT");
        assert_eq!(
            v.check(wrong, b"s3creT".to_vec(), one).await,
            Checked::Failed
        );
        assert_eq!(v.remembered(&wrong), None);
        // An unknown user is checked against the dummy, and fails.
        let nobody = v.key(b"nobody", b"s3cret");
        assert_eq!(
            v.check(nobody, b"s3cret".to_vec(), Vec::new()).await,
            Checked::Failed
        );
        // The key depends on where the username ends: ("ab", "c") is not ("a", "bc").
        assert_ne!(v.key(b"ab", b"c"), v.key(b"a", b"bc"));
        // Another process (another salt) remembers by other digests.
        assert_ne!(Verifier::new(1, None).key(b"okta", b"s3cret"), key);
    }

    #[tokio::test]
    async fn a_check_that_cannot_start_in_time_is_busy() {
        let hash = Arc::new(parse(&cheap_hash(b"pw")).expect("parse"));
        let mut v = Verifier::new(1, None);
        v.queue_wait = Duration::from_millis(1);
        let v = Arc::new(v);
        let held = Arc::clone(&v.permits)
            .acquire_owned()
            .await
            .expect("permit");
        let key = v.key(b"u", b"pw");
        let check = v.check(key, b"pw".to_vec(), vec![(0, hash)]);
        assert_eq!(check.await, Checked::Busy);
        drop(held);
    }
}
