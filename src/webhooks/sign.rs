//! Standard Webhooks signatures: `webhook-signature` is `v1,<base64 HMAC-SHA256>` of
//! `{webhook-id}.{webhook-timestamp}.{body}` under each key, space-separated; a secret is
//! `whsec_` and the key's bytes in base64.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

/// The prefix of a secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// The fewest key bytes a secret may carry (Standard Webhooks asks for 24 to 64).
pub const MIN_KEY_BYTES: usize = 24;
/// The most.
pub const MAX_KEY_BYTES: usize = 64;

/// The key bytes of a `whsec_…` secret, or why it is not one.
pub fn key_of(secret: &str) -> Result<Vec<u8>, String> {
    let Some(b64) = secret.strip_prefix(SECRET_PREFIX) else {
        return Err(format!("a webhook secret starts with {SECRET_PREFIX}"));
    };
    let key = STANDARD
        .decode(b64.trim())
        .map_err(|_| format!("the part after {SECRET_PREFIX} is not base64"))?;
    if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
        return Err(format!(
            "the key is {} bytes; a webhook secret carries {MIN_KEY_BYTES} to {MAX_KEY_BYTES} \
             (`scim-sidecar events secret` makes one)",
            key.len()
        ));
    }
    Ok(key)
}

/// A new secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> String {
    let key: [u8; 32] = rand::random();
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// One signature, `v1,<base64>`.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("v1,{}", STANDARD.encode(ctx.sign().as_ref()))
}

/// The `webhook-signature` header: one signature per key.
pub fn header(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| signature(k, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `header` holds a valid signature of the message under `key`, and the timestamp is
/// within `tolerance_secs` of `now_secs` (what a receiver checks; the tests and the example
/// do it this way).
pub fn verify(
    key: &[u8],
    id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
    now_secs: i64,
    tolerance_secs: i64,
) -> bool {
    if (now_secs - timestamp).abs() > tolerance_secs {
        return false;
    }
    let hmac_key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let message = format!("{id}.{timestamp}.");
    header.split(' ').any(|sig| {
        let Some(b64) = sig.strip_prefix("v1,") else {
            return false;
        };
        let Ok(tag) = STANDARD.decode(b64) else {
            return false;
        };
        let mut signed = message.as_bytes().to_vec();
        signed.extend_from_slice(body);
        hmac::verify(&hmac_key, &signed, &tag).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn the_specifications_example_signs_the_same() {
        let key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("a secret");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn every_key_signs_and_a_receiver_verifies_with_any_of_them() {
        let (old, new) = (vec![7u8; 32], vec![9u8; 32]);
        let h = header(&[old.clone(), new.clone()], "msg_1", 100, b"{}");
        assert_eq!(h.split(' ').count(), 2);
        assert!(verify(&old, "msg_1", 100, b"{}", &h, 100, 300));
        assert!(verify(&new, "msg_1", 100, b"{}", &h, 100, 300));
        assert!(!verify(&[1u8; 32], "msg_1", 100, b"{}", &h, 100, 300));
        assert!(!verify(&new, "msg_1", 100, b"{} ", &h, 100, 300));
        assert!(!verify(&new, "msg_1", 100, b"{}", &h, 1000, 300));
    }

    #[test]
    fn secrets_are_checked() {
        assert!(key_of(&new_secret()).is_ok());
        assert!(key_of("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(key_of("whsec_!!!").is_err());
        assert!(key_of("whsec_c2hvcnQ=").is_err());
    }
}
