//! Tests of loading and reloading the listener's certificate and key: every key encoding,
//! every way a pair can be unusable, and a refused reload keeping the pair in force.
//! Certificates are made at run time with rcgen; `testdata/` holds the two keys rcgen cannot
//! make with `ring` or write in these encodings (RSA PKCS#1, SEC1).

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PublicKeyData,
    SerialNumber, SignatureAlgorithm,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{CertFiles, Outcome, Tls, TlsError, provider};

const RSA_PKCS1: &str = include_str!("testdata/rsa-pkcs1.key");
const EC_SEC1: &str = include_str!("testdata/ec-sec1.key");

/// A test certificate authority.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca() -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "test CA");
    let key = KeyPair::generate().expect("key");
    let pem = params.self_signed(&key).expect("CA").pem();
    Ca {
        issuer: Issuer::new(params, key),
        pem,
    }
}

/// A public key rcgen cannot load with `ring` (RSA, SEC1): its algorithm and raw key bits.
struct PublicKey {
    alg: &'static SignatureAlgorithm,
    bits: Vec<u8>,
}

impl PublicKeyData for PublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.bits
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

/// One DER element: (content, what follows).
fn tlv(der: &[u8]) -> (&[u8], &[u8]) {
    let (len, header) = match der[1] {
        short if short < 0x80 => (usize::from(short), 2),
        long => {
            let n = usize::from(long & 0x7f);
            let len = der[2..2 + n]
                .iter()
                .fold(0, |len, b| (len << 8) | usize::from(*b));
            (len, 2 + n)
        }
    };
    (&der[header..header + len], &der[header + len..])
}

/// The public half of a PEM private key in any encoding rustls reads, as `alg` needs it.
fn public_key(key_pem: &str, alg: &'static SignatureAlgorithm) -> PublicKey {
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key");
    let signing = provider().key_provider.load_private_key(key).expect("load");
    let spki = signing.public_key().expect("public key");
    // SubjectPublicKeyInfo ::= SEQUENCE { algorithm, BIT STRING (unused-bits byte, key) }
    let (info, _) = tlv(&spki);
    let (_algorithm, rest) = tlv(info);
    let (bit_string, _) = tlv(rest);
    PublicKey {
        alg,
        bits: bit_string[1..].to_vec(),
    }
}

/// A leaf certificate for `localhost`, named `cn`, for `key`, signed by `ca`; PEM.
fn leaf(ca: &Ca, cn: &str, serial: u64, key: &impl PublicKeyData) -> String {
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.serial_number = Some(SerialNumber::from(serial));
    params.signed_by(key, &ca.issuer).expect("sign").pem()
}

/// A fresh ECDSA P-256 pair: (certificate chain PEM with the CA, PKCS#8 key PEM).
fn pair(ca: &Ca, cn: &str, serial: u64) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    (
        format!("{}{}", leaf(ca, cn, serial, &key), ca.pem),
        key.serialize_pem(),
    )
}

fn write(dir: &Path, cert: &str, key: &str) -> CertFiles {
    let files = CertFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
    };
    std::fs::write(&files.cert, cert).expect("write cert");
    std::fs::write(&files.key, key).expect("write key");
    files
}

fn der(cert_pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("certificate")
}

#[test]
fn loads_pkcs8_pkcs1_and_sec1_keys_with_their_chain() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = ca();
    let ed25519 = KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
    let cases = [
        ("PKCS#8 ECDSA", pair(&ca, "ecdsa", 1)),
        (
            "PKCS#8 Ed25519",
            (leaf(&ca, "ed25519", 2, &ed25519), ed25519.serialize_pem()),
        ),
        (
            "PKCS#1 RSA",
            (
                leaf(
                    &ca,
                    "rsa",
                    3,
                    &public_key(RSA_PKCS1, &rcgen::PKCS_RSA_SHA256),
                ),
                RSA_PKCS1.to_owned(),
            ),
        ),
        (
            "SEC1 ECDSA after EC PARAMETERS",
            (
                leaf(
                    &ca,
                    "sec1",
                    4,
                    &public_key(EC_SEC1, &rcgen::PKCS_ECDSA_P256_SHA256),
                ),
                EC_SEC1.to_owned(),
            ),
        ),
    ];
    for (name, (cert, key)) in cases {
        let tls =
            Tls::load(write(dir.path(), &cert, &key)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let chain = &tls.current().cert;
        assert_eq!(chain[0], der(&cert), "{name}: the leaf comes first");
        let expected = CertificateDer::pem_slice_iter(cert.as_bytes()).count();
        assert_eq!(chain.len(), expected, "{name}: the whole chain is served");
    }
    let config = Tls::load(write(
        dir.path(),
        &pair(&ca, "x", 5).0,
        &pair(&ca, "x", 5).1,
    ));
    assert!(
        matches!(config, Err(TlsError::Mismatch { .. })),
        "two fresh pairs do not match: {config:?}"
    );
}

#[test]
fn refuses_unusable_pairs_and_names_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = ca();
    let (cert, key) = pair(&ca, "good", 1);
    let (_, other_key) = pair(&ca, "other", 2);
    let truncated = cert.lines().take(3).collect::<Vec<_>>().join("\n");
    let bad_base64 = "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n";
    let not_a_key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    let not_a_cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let encrypted =
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
    // (certificate file content, key file content, which file is named, what is said)
    let cases: [(&str, &str, &str, &str); 9] = [
        ("", &key, "tls.crt", "holds no PEM certificate"),
        (&key, &key, "tls.crt", "holds no PEM certificate"),
        (&cert, &cert, "tls.key", "holds no PEM private key"),
        (
            &cert,
            encrypted,
            "tls.key",
            "encrypted keys are not supported",
        ),
        (&truncated, &key, "tls.crt", "has no -----END"),
        (&cert, bad_base64, "tls.key", "base64 does not decode"),
        (&cert, not_a_key, "tls.key", "unusable private key"),
        (not_a_cert, &key, "tls.crt", "unusable certificate"),
        (
            &cert,
            &other_key,
            "tls.key",
            "does not belong to the first certificate",
        ),
    ];
    for (cert_text, key_text, file, said) in cases {
        let err = Tls::load(write(dir.path(), cert_text, key_text)).expect_err(said);
        let shown = err.to_string();
        assert!(
            shown.contains(&dir.path().join(file).display().to_string()),
            "{shown}"
        );
        assert!(shown.contains(said), "{said}: {shown}");
        for line in key.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!shown.contains(line), "key material in {shown}");
        }
    }
    let files = write(dir.path(), &cert, &key);
    for missing in [&files.cert, &files.key] {
        let gone = CertFiles {
            cert: files.cert.clone(),
            key: files.key.clone(),
        };
        std::fs::rename(missing, dir.path().join("moved")).expect("move");
        let err = Tls::load(gone).expect_err("missing file");
        assert!(
            matches!(&err, TlsError::Read { path, .. } if path == missing),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("cannot read"), "{err}");
        std::fs::rename(dir.path().join("moved"), missing).expect("move back");
    }
}

#[tokio::test]
async fn reload_puts_a_changed_pair_in_force_and_keeps_the_old_on_a_bad_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = ca();
    let (first, first_key) = pair(&ca, "first", 1);
    let mut tls = Tls::load(write(dir.path(), &first, &first_key)).expect("load");
    assert_eq!(tls.reload(false).await, Outcome::Unchanged);
    assert_eq!(tls.current().cert[0], der(&first));

    let (second, second_key) = pair(&ca, "second", 2);
    write(dir.path(), &second, &second_key);
    assert_eq!(tls.reload(false).await, Outcome::Reloaded);
    assert_eq!(tls.current().cert[0], der(&second));
    assert_eq!(tls.reload(false).await, Outcome::Unchanged);

    // A broken key, a key of another certificate, a missing file: refused, naming the file;
    // the pair in force stays, polled or forced.
    let key_file = dir.path().join("tls.key").display().to_string();
    let cert_file = dir.path().join("tls.crt").display().to_string();
    let broken = second_key.replace("-----END PRIVATE KEY-----", "");
    let (_, stranger) = pair(&ca, "stranger", 3);
    for (key, named) in [(&broken, &key_file), (&stranger, &key_file)] {
        std::fs::write(dir.path().join("tls.key"), key).expect("write key");
        for forced in [false, true] {
            match tls.reload(forced).await {
                Outcome::Refused(why) => assert!(why.contains(named.as_str()), "{why}"),
                other => panic!("expected a refusal, got {other:?}"),
            }
            assert_eq!(tls.current().cert[0], der(&second));
        }
        assert_eq!(
            tls.reload(false).await,
            Outcome::Unchanged,
            "a refused pair is refused once, until it changes"
        );
    }
    std::fs::remove_file(dir.path().join("tls.crt")).expect("remove");
    match tls.reload(false).await {
        Outcome::Refused(why) => assert!(why.starts_with(&format!("cannot read {cert_file}"))),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(tls.current().cert[0], der(&second));

    // A good pair after the bad ones is taken; an unchanged one on SIGHUP is reloaded.
    let (third, third_key) = pair(&ca, "third", 4);
    write(dir.path(), &third, &third_key);
    assert_eq!(tls.reload(false).await, Outcome::Reloaded);
    assert_eq!(tls.current().cert[0], der(&third));
    assert_eq!(tls.reload(true).await, Outcome::Reloaded);
}

#[test]
fn the_acceptor_offers_h2_then_http11() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = pair(&ca(), "alpn", 1);
    let tls = Tls::load(write(dir.path(), &cert, &key)).expect("load");
    assert_eq!(
        tls.acceptor().config().alpn_protocols,
        [b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}
