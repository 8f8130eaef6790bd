//! `ConfigError` and the rewording of figment's errors so that no configured value — and so
//! no secret — ever reaches a message.
//!
//! Owns the error type; depends on nothing in the crate.

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;

use figment::error::{Actual, Kind};

/// An error of loading, validating or resolving the configuration. No message contains a
/// configured value: secrets are named by their variable or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file or the `SCIM_SIDECAR_*` environment did not parse or did not match the schema.
    #[error("cannot load configuration {}:{}", path.display(), bullets(problems))]
    Load {
        /// The configuration file.
        path: PathBuf,
        /// One line per problem (key, kind of problem, where it was set).
        problems: Vec<String>,
    },
    /// A secret's environment variable is not set.
    #[error("environment variable {var} is not set")]
    EnvUnset {
        /// The variable's name.
        var: String,
    },
    /// A secret's environment variable is not valid UTF-8.
    #[error("environment variable {var} is not valid UTF-8")]
    EnvNotUnicode {
        /// The variable's name.
        var: String,
    },
    /// A secret's file could not be read.
    #[error("cannot read secret file {}: {source}", file.display())]
    SecretFile {
        /// The file.
        file: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A secret resolved to nothing.
    #[error("the secret from {origin} is empty")]
    EmptySecret {
        /// Where it came from (variable, file or "inline value").
        origin: String,
    },
    /// A `sha256` digest was used where the secret itself is needed.
    #[error(
        "a `sha256` digest can only stand for a bearer token, not for a secret the sidecar sends"
    )]
    DigestNotSecret,
    /// A `sha256` digest is not 64 hexadecimal characters.
    #[error("`sha256` must be 64 hexadecimal characters (the SHA-256 digest of the token)")]
    BadDigest,
    /// A tenant has no way in: no bearer token, no Basic credential.
    #[error("no credentials configured: give `tokens` or `basic`")]
    NoCredentials,
    /// A Basic credential's `password_hash` is not a hash the sidecar takes.
    #[error("basic[{index}].password_hash: {reason}")]
    BadPasswordHash {
        /// The credential's place in `basic`.
        index: usize,
        /// What is wrong (never the hash).
        reason: String,
    },
    /// An OAuth approver's or client's hash is not a hash the sidecar takes.
    #[error("{what}: {reason}")]
    BadOAuthHash {
        /// Which hash (`oauth.clients[0].client_secret_hash`).
        what: String,
        /// What is wrong (never the hash).
        reason: String,
    },
    /// [`Config::validate`](super::Config::validate) found problems; all are listed.
    #[error("invalid configuration:{}", bullets(problems))]
    Invalid {
        /// One line per problem.
        problems: Vec<String>,
    },
}

/// Formats problems as an indented bullet list, one per line.
fn bullets(problems: &[String]) -> String {
    let mut out = String::new();
    for problem in problems {
        let _ = write!(out, "\n  - {problem}");
    }
    out
}

/// One line per figment error, with every configured value left out.
///
/// figment's own `Display` quotes offending values (`found string "…"`) and TOML parse
/// errors quote the offending line: either may be a secret.
pub(super) fn figment_problems(error: figment::Error, env_prefix: &str) -> Vec<String> {
    error
        .into_iter()
        .map(|e| describe(&e, env_prefix))
        .collect()
}

fn describe(e: &figment::Error, env_prefix: &str) -> String {
    let mut out = String::new();
    if !e.path.is_empty() {
        let _ = write!(out, "`{}`: ", e.path.join("."));
    }
    out.push_str(&kind_text(&e.kind));
    let Some(md) = e.metadata.as_ref() else {
        return out;
    };
    let from_env = md.source.is_none() && md.name.contains("environment variable");
    if from_env {
        let var: Vec<String> = e.path.iter().map(|k| k.to_ascii_uppercase()).collect();
        let _ = write!(
            out,
            " (environment variable {env_prefix}{})",
            var.join("__")
        );
    } else if let Some(source) = &md.source {
        let _ = write!(out, " (in {source})");
    } else {
        let _ = write!(out, " (in {})", md.name);
    }
    out
}

fn kind_text(kind: &Kind) -> String {
    match kind {
        Kind::Message(message) => strip_source_lines(message),
        Kind::InvalidType(actual, expected) => {
            format!(
                "invalid type: found {}, expected {expected}{}",
                noun(actual),
                hint(actual, expected)
            )
        }
        Kind::InvalidValue(actual, expected) => {
            format!("invalid value: found {}, expected {expected}", noun(actual))
        }
        Kind::InvalidLength(len, expected) => format!("invalid length {len}, expected {expected}"),
        Kind::UnknownVariant(variant, expected) => {
            format!("unknown variant `{variant}`, expected {}", one_of(expected))
        }
        Kind::UnknownField(_, expected) => format!("unknown key, expected {}", one_of(expected)),
        Kind::MissingField(field) => format!("missing key `{field}`"),
        Kind::DuplicateField(field) => format!("duplicate key `{field}`"),
        Kind::ISizeOutOfRange(_) | Kind::USizeOutOfRange(_) => "integer out of range".to_owned(),
        Kind::Unsupported(actual) => format!("unsupported type: {}", noun(actual)),
        Kind::UnsupportedKey(actual, expected) => {
            format!("unsupported key type {}, expected {expected}", noun(actual))
        }
    }
}

/// What kind of value was found, without the value.
fn noun(actual: &Actual) -> &'static str {
    match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) => "a character",
        Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Unit | Actual::Option => "an empty value",
        Actual::Seq => "an array",
        Actual::Map => "a table",
        _ => "a value of another type",
    }
}

/// Environment values that look like numbers are parsed as numbers.
fn hint(actual: &Actual, expected: &str) -> &'static str {
    let numeric = matches!(
        actual,
        Actual::Unsigned(_) | Actual::Signed(_) | Actual::Float(_)
    );
    if numeric && expected.contains("string") {
        " (in an environment variable, quote a value that looks like a number: VAR='\"0042\"')"
    } else {
        ""
    }
}

fn one_of(expected: &[&str]) -> String {
    let names: Vec<String> = expected.iter().map(|e| format!("`{e}`")).collect();
    match names.len() {
        0 => "nothing".to_owned(),
        1 => names.join(""),
        _ => format!("one of {}", names.join(", ")),
    }
}

/// Drops the quoted source lines (`N | …`, `  | ^`) of a TOML parse error, which can hold
/// a secret, and joins what is left on one line.
fn strip_source_lines(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| {
            let rest = line
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .trim_start();
            !line.is_empty() && !rest.starts_with('|')
        })
        .collect::<Vec<_>>()
        .join(": ")
}
