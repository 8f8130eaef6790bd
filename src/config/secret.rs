//! Secrets in the configuration: where a secret comes from ([`SecretSource`]) and the
//! resolved value ([`Secret`]), which never prints.
//!
//! Owns secret resolution (environment variable, file, inline value) and the parsing of
//! `sha256` token digests. Depends on nothing in the crate but the config error type.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::ConfigError;

/// Where a secret comes from.
///
/// In TOML: `{ env = "MC_API_KEY" }`, `{ file = "/run/secrets/mc-api-key" }`,
/// `{ value = "inline" }`; for bearer tokens also `{ sha256 = "<64 hex>" }`. Exactly one key.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawSecretSource")]
pub enum SecretSource {
    /// Read from the environment variable `env` when resolved.
    Env {
        /// The name of the environment variable.
        env: String,
    },
    /// Read from the file `file` when resolved (one trailing newline sequence trimmed).
    /// Relative paths are relative to the working directory.
    File {
        /// The file, typically a Kubernetes Secret mounted as a volume.
        file: PathBuf,
    },
    /// Given inline in the configuration (development only).
    Value {
        /// The secret itself.
        value: String,
    },
    /// The SHA-256 digest of a bearer token, as 64 hexadecimal characters: the sidecar can
    /// check the token without knowing it. Valid only for `tokens`.
    Sha256 {
        /// The digest in hexadecimal.
        sha256: String,
    },
}

/// The TOML shape of a secret source, before checking that exactly one key is set.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a secret source table: { env = \"VAR\" }, { file = \"/path\" }, \
                 { value = \"...\" } or { sha256 = \"<64 hex>\" }"
)]
struct RawSecretSource {
    env: Option<String>,
    file: Option<PathBuf>,
    value: Option<String>,
    sha256: Option<String>,
}

impl TryFrom<RawSecretSource> for SecretSource {
    type Error = String;

    fn try_from(raw: RawSecretSource) -> Result<Self, Self::Error> {
        let given: Vec<&str> = [
            raw.env.as_ref().map(|_| "`env`"),
            raw.file.as_ref().map(|_| "`file`"),
            raw.value.as_ref().map(|_| "`value`"),
            raw.sha256.as_ref().map(|_| "`sha256`"),
        ]
        .into_iter()
        .flatten()
        .collect();
        match (raw.env, raw.file, raw.value, raw.sha256) {
            (Some(env), None, None, None) => Ok(SecretSource::Env { env }),
            (None, Some(file), None, None) => Ok(SecretSource::File { file }),
            (None, None, Some(value), None) => Ok(SecretSource::Value { value }),
            (None, None, None, Some(sha256)) => Ok(SecretSource::Sha256 { sha256 }),
            _ if given.is_empty() => Err("a secret source needs one of `env`, `file`, `value` \
                                          or `sha256`; found none"
                .to_owned()),
            _ => Err(format!(
                "a secret source takes exactly one of `env`, `file`, `value` or `sha256`; \
                 found {}",
                given.join(" and ")
            )),
        }
    }
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env { env } => f.debug_struct("Env").field("env", env).finish(),
            SecretSource::File { file } => f.debug_struct("File").field("file", file).finish(),
            SecretSource::Value { .. } => {
                f.debug_struct("Value").field("value", &Redacted).finish()
            }
            // A well-formed digest is safe to show; anything else may be a pasted token.
            SecretSource::Sha256 { sha256 } if parse_digest(sha256).is_ok() => {
                f.debug_struct("Sha256").field("sha256", sha256).finish()
            }
            SecretSource::Sha256 { .. } => {
                f.debug_struct("Sha256").field("sha256", &Redacted).finish()
            }
        }
    }
}

impl fmt::Display for SecretSource {
    /// Where the secret comes from, without the secret: fit for error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env { env } => write!(f, "environment variable {env}"),
            SecretSource::File { file } => write!(f, "file {}", file.display()),
            SecretSource::Value { .. } => f.write_str("inline value"),
            SecretSource::Sha256 { .. } => f.write_str("sha256 digest"),
        }
    }
}

impl SecretSource {
    /// Reads the secret: the environment variable or the file (trailing `\n` / `\r\n`
    /// trimmed), or the inline value. An empty secret is an error, and so is a `sha256`
    /// digest, which stands for a token without being one. Errors name the variable or
    /// file, never the value.
    pub fn resolve(&self) -> Result<Secret, ConfigError> {
        let raw = match self {
            SecretSource::Env { env } => match std::env::var(env) {
                Ok(value) => value,
                Err(std::env::VarError::NotPresent) => {
                    return Err(ConfigError::EnvUnset { var: env.clone() });
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(ConfigError::EnvNotUnicode { var: env.clone() });
                }
            },
            SecretSource::File { file } => {
                std::fs::read_to_string(file).map_err(|source| ConfigError::SecretFile {
                    file: file.clone(),
                    source,
                })?
            }
            SecretSource::Value { value } => value.clone(),
            SecretSource::Sha256 { .. } => return Err(ConfigError::DigestNotSecret),
        };
        let trimmed = raw.trim_end_matches(['\n', '\r']);
        if trimmed.is_empty() {
            return Err(ConfigError::EmptySecret {
                origin: self.to_string(),
            });
        }
        Ok(Secret(trimmed.to_owned()))
    }

    /// The SHA-256 digest of the token this source stands for: the given digest for
    /// [`SecretSource::Sha256`], the digest of the resolved secret otherwise.
    pub fn token_digest(&self) -> Result<[u8; 32], ConfigError> {
        match self {
            SecretSource::Sha256 { sha256 } => parse_digest(sha256),
            other => Ok(Sha256::digest(other.resolve()?.expose().as_bytes()).into()),
        }
    }
}

/// Parses 64 hexadecimal characters (either case) into a digest.
fn parse_digest(hex: &str) -> Result<[u8; 32], ConfigError> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return Err(ConfigError::BadDigest);
    }
    let mut out = [0_u8; 32];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let [high, low] = pair else {
            return Err(ConfigError::BadDigest);
        };
        *slot = (nibble(*high)? << 4) | nibble(*low)?;
    }
    Ok(out)
}

fn nibble(c: u8) -> Result<u8, ConfigError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(ConfigError::BadDigest),
    }
}

/// A resolved secret. `Debug` and `Display` print `[redacted]`; only [`Secret::expose`]
/// gives the value.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The secret value. Use it where it is sent, never where it is logged.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Prints `"[redacted]"` in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"[redacted]\"")
    }
}
