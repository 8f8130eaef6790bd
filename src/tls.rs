//! Optional TLS on the SCIM listener (`[server.tls]`; off by default).
//!
//! Owns the certificate and key files: loading them (a PEM chain; a PEM PKCS#8, PKCS#1 or
//! SEC1 key that must belong to the chain's first certificate), the rustls server
//! configuration (the `ring` provider, TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`), the
//! resolver every new handshake takes the pair in force from, and the watcher that puts a
//! changed pair in force (content polled, or on `SIGHUP`) or refuses it, logs why and keeps
//! the pair in force. Connections already open keep the certificate they started with.
//!
//! Knows nothing about SCIM, mappings or HTTP: `server` runs the handshake of each connection
//! with the acceptor made here.

#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

/// The ALPN protocols offered, in order of preference.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The two PEM files of the listener's identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate chain: the server's certificate first, then intermediates.
    pub cert: PathBuf,
    /// The private key of the first certificate.
    pub key: PathBuf,
}

/// Why a certificate chain and key cannot be used. Messages name files, never key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file is not well-formed PEM.
    #[error("{} is not valid PEM: {problem}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong (no content of the file is quoted).
        problem: &'static str,
    },
    /// The certificate file holds no certificate.
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key in a supported encoding.
    #[error(
        "{} holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or \
         EC PRIVATE KEY; encrypted keys are not supported)",
        path.display()
    )]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The key parses as PEM but is not a usable RSA, ECDSA or Ed25519 key.
    #[error("unusable private key in {}: {reason}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// rustls' reason.
        reason: String,
    },
    /// The first certificate of the chain cannot be parsed.
    #[error("unusable certificate in {}: {reason}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// rustls' reason.
        reason: String,
    },
    /// The key is not the key of the chain's first certificate.
    #[error(
        "the private key in {} does not belong to the first certificate in {}",
        key.display(),
        cert.display()
    )]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the server configuration.
    #[error("cannot build the TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// What one reload attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Neither file changed since the last attempt.
    Unchanged,
    /// The new pair is in force for new connections.
    Reloaded,
    /// The new pair could not be read or used; the pair in force stays.
    Refused(String),
}

/// The certificate and key new handshakes use; swapped whole on reload.
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver").finish_non_exhaustive()
    }
}

impl CertResolver {
    /// A resolver serving `key`.
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        Self {
            current: RwLock::new(key),
        }
    }

    /// The pair in force.
    pub fn current(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(k) => Arc::clone(&k),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Puts `key` in force for the handshakes that start from now on.
    pub fn set(&self, key: Arc<CertifiedKey>) {
        match self.current.write() {
            Ok(mut k) => *k = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The listener's TLS identity: its files, the pair in force and the acceptor serving it.
pub struct Tls {
    files: CertFiles,
    resolver: Arc<CertResolver>,
    acceptor: TlsAcceptor,
    /// Digest of the files' content at the last attempt.
    seen: [u8; 32],
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads and checks both files (for startup: an error here should stop the process).
    pub fn load(files: CertFiles) -> Result<Self, TlsError> {
        let cert = std::fs::read(&files.cert).map_err(|source| TlsError::Read {
            path: files.cert.clone(),
            source,
        })?;
        let key = std::fs::read(&files.key).map_err(|source| TlsError::Read {
            path: files.key.clone(),
            source,
        })?;
        let certified = parse(&files, &cert, &key)?;
        let resolver = Arc::new(CertResolver::new(Arc::new(certified)));
        let acceptor = TlsAcceptor::from(Arc::new(server_config(Arc::clone(&resolver))?));
        Ok(Self {
            seen: digest(&cert, &key),
            files,
            resolver,
            acceptor,
        })
    }

    /// The acceptor for `server::Transport::Tls`; it always serves the pair in force.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// The pair in force.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.resolver.current()
    }

    /// The files the pair is read from.
    pub fn files(&self) -> &CertFiles {
        &self.files
    }

    /// Puts the files' pair in force if their content changed (or always, when `forced`) and
    /// it is usable; otherwise logs why and keeps the pair in force.
    pub async fn reload(&mut self, forced: bool) -> Outcome {
        let read = |path: PathBuf| async move {
            tokio::fs::read(&path)
                .await
                .map_err(|source| TlsError::Read { path, source })
        };
        let pair = match read(self.files.cert.clone()).await {
            Ok(cert) => read(self.files.key.clone()).await.map(|key| (cert, key)),
            Err(e) => Err(e),
        };
        let result = pair.and_then(|(cert, key)| {
            let d = digest(&cert, &key);
            if !forced && d == self.seen {
                return Ok(None);
            }
            self.seen = d;
            parse(&self.files, &cert, &key).map(Some)
        });
        match result {
            Ok(None) => Outcome::Unchanged,
            Ok(Some(certified)) => {
                self.resolver.set(Arc::new(certified));
                tracing::info!(
                    cert_file = %self.files.cert.display(),
                    key_file = %self.files.key.display(),
                    "TLS certificate reloaded"
                );
                Outcome::Reloaded
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "TLS certificate reload refused; the certificate in force stays"
                );
                Outcome::Refused(e.to_string())
            }
        }
    }

    /// Watches the two files until `shutdown` resolves: every `poll` (zero: only on `SIGHUP`)
    /// and on every `SIGHUP`. The `SIGHUP` handler is installed when this is called, before
    /// the returned future is first polled.
    pub fn watch(
        mut self,
        poll: Duration,
        shutdown: impl Future<Output = ()>,
    ) -> impl Future<Output = ()> {
        let mut triggers = crate::signals::Triggers::new(poll);
        async move {
            tokio::pin!(shutdown);
            loop {
                let forced = tokio::select! {
                    () = &mut shutdown => return,
                    forced = triggers.next() => forced,
                };
                self.reload(forced).await;
            }
        }
    }
}

/// The crypto provider: `ring` (aws-lc-rs would need cmake and nasm to build).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS 1.2 and 1.3, no client certificates, ALPN `h2` and `http/1.1`, certificates from
/// `resolver`.
fn server_config(resolver: Arc<CertResolver>) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Parses a chain and a key and checks that the key belongs to the chain's first certificate.
fn parse(files: &CertFiles, cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(&files.cert, &e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: files.key.clone(),
        },
        e => pem_error(&files.key, &e),
    })?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key {
            path: files.key.clone(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::Mismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
            })
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Key {
            path: files.key.clone(),
            reason: "its public key cannot be compared with the certificate's".to_owned(),
        }),
        Err(e) => Err(TlsError::Certificate {
            path: files.cert.clone(),
            reason: e.to_string(),
        }),
    }
}

/// A PEM syntax error, described without quoting the file (a key file's lines are secret).
fn pem_error(path: &Path, e: &pem::Error) -> TlsError {
    let problem = match e {
        pem::Error::MissingSectionEnd { .. } => "a section has no -----END …----- line",
        pem::Error::IllegalSectionStart { .. } => "a -----BEGIN …----- line is malformed",
        pem::Error::Base64Decode(_) => "a section's base64 does not decode",
        pem::Error::SectionTooLarge => "a section is too large",
        _ => "it cannot be read as PEM",
    };
    TlsError::Pem {
        path: path.to_path_buf(),
        problem,
    }
}

/// Digest of both files' content, to see a change (a rename or symlink swap included).
fn digest(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((cert.len() as u64).to_le_bytes());
    h.update(cert);
    h.update(key);
    h.finalize().into()
}

/// The certificate authorities a client trusts: the PEM certificates of `ca_file`, else the
/// system's. An error names the file, or says the system has none.
pub fn client_roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "{} holds no usable PEM certificate",
                    path.display()
                ));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err("the system has no trusted certificate authorities".to_owned());
            }
        }
    }
    Ok(roots)
}
