//! TLS on the SCIM listener over real sockets: SCIM requests over HTTPS (h2 and HTTP/1.1
//! through ALPN, TLS 1.3 and 1.2), a rotated certificate reaching new connections only, a bad
//! new pair refused while the old one keeps serving, plain-HTTP and stalled clients cut off
//! without stopping the listener, and `serve` / `check` refusing unusable files. Certificates
//! are made by rcgen at run time, issued by a test CA the clients trust.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SerialNumber};
use rustix::process::Signal;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ProtocolVersion, SupportedProtocolVersion};
use scim_sidecar::tls::{CertFiles, Tls};
use serde_json::Value;
use simulator::marketing_center::MarketingCenter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::process::Served;
use crate::serve::{API_KEY, FILE_TOKEN, write_config};
use crate::support::{Harness, TOKEN, wait_until};

/// A test certificate authority; the clients trust it and nothing else.
pub(crate) struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub(crate) pem: String,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A fresh certificate for `localhost` and its key, PEM: `(chain with the CA, key)`.
    pub(crate) fn issue_pem(&self, cn: &str) -> (String, String) {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (format!("{}{}", cert.pem(), self.pem), key.serialize_pem())
    }

    /// Writes a fresh certificate for `localhost` (subject `cn`, serial `serial`) and its key
    /// into `files`, the chain with the CA; returns the certificate.
    fn issue(&self, cn: &str, serial: u64, files: &CertFiles) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serial_number = Some(SerialNumber::from(serial));
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(&files.cert, format!("{}{}", cert.pem(), self.pem)).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        cert.der().clone()
    }

    /// A client trusting this CA, offering `alpn`, speaking only `versions`, never resuming.
    fn client(&self, alpn: &[&[u8]], versions: &[&'static SupportedProtocolVersion]) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.pem.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        // Every connection makes a full handshake: a resumed session would show the
        // certificate of the session it resumes, not the one in force.
        config.resumption = rustls::client::Resumption::disabled();
        Client(TlsConnector::from(Arc::new(config)))
    }

    /// A client offering h2 and http/1.1 over TLS 1.3 or 1.2.
    fn h2(&self) -> Client {
        self.client(&[b"h2", b"http/1.1"], rustls::DEFAULT_VERSIONS)
    }
}

fn files(dir: &Path) -> CertFiles {
    std::fs::create_dir_all(dir).unwrap();
    CertFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
    }
}

/// A TLS client configuration.
struct Client(TlsConnector);

/// An HTTPS connection: what the handshake settled, and a sender for requests.
struct Https {
    cert: CertificateDer<'static>,
    alpn: Option<Vec<u8>>,
    version: Option<ProtocolVersion>,
    authority: String,
    sender: Sender,
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Client {
    /// Connects to `addr` as `localhost`; HTTP/2 if ALPN chose it, HTTP/1.1 otherwise.
    async fn connect(&self, addr: std::net::SocketAddr) -> std::io::Result<Https> {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").unwrap();
        let tls = self.0.connect(name, tcp).await?;
        let (_, session) = tls.get_ref();
        let cert = session.peer_certificates().unwrap()[0].clone();
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        let version = session.protocol_version();
        let io = TokioIo::new(tls);
        let sender = if alpn.as_deref() == Some(b"h2") {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io).await.unwrap();
            tokio::spawn(conn);
            Sender::H2(sender)
        } else {
            let (sender, conn) = http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            Sender::H1(sender)
        };
        Ok(Https {
            cert,
            alpn,
            version,
            authority: format!("localhost:{}", addr.port()),
            sender,
        })
    }
}

impl Https {
    /// `GET path`, with a bearer token if given.
    async fn get(&mut self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = Request::get(format!("https://{}{path}", self.authority));
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let resp = match &mut self.sender {
            Sender::H1(s) => {
                let req = req
                    .uri(path)
                    .header("host", &self.authority)
                    .body(Full::default())
                    .unwrap();
                s.send_request(req).await
            }
            Sender::H2(s) => s.send_request(req.body(Full::default()).unwrap()).await,
        }
        .unwrap_or_else(|e| panic!("no answer: {e}"));
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

/// Reads until the server closes the connection (a reset counts as closed); panics after 10 s.
async fn read_until_closed(mut stream: TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the connection was left open");
    out
}

/// Opens new connections until one presents `expected` (the watcher polls every 20 ms).
async fn wait_for_certificate(client: &Client, addr: std::net::SocketAddr, expected: &[u8]) {
    wait_until("the new certificate to be served", async || {
        client.connect(addr).await.unwrap().cert.as_ref() == expected
    })
    .await;
}

#[tokio::test]
async fn scim_over_https_with_h2_http11_and_tls12() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let files = files(dir.path());
    let cert = ca.issue("sidecar", 1, &files);
    let tls = Tls::load(files).unwrap();
    let h = Harness::start_tls(tls.acceptor(), Duration::from_secs(30)).await;
    let spc = "/scim/v2/ServiceProviderConfig";

    // h2 through ALPN, TLS 1.3; a real authenticated request through the whole app.
    let mut h2 = ca.h2().connect(h.addr).await.unwrap();
    assert_eq!(
        (h2.alpn.as_deref(), h2.version),
        (Some(&b"h2"[..]), Some(ProtocolVersion::TLSv1_3))
    );
    assert_eq!(h2.cert, cert);
    let (status, body) = h2.get(spc, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["meta"]["location"],
        format!("https://localhost:{}{spc}", h.addr.port()),
        "locations say https when the sidecar terminates TLS"
    );
    let (status, body) = h2.get("/scim/v2/Users?count=1", Some(TOKEN)).await;
    assert_eq!((status, &body["itemsPerPage"]), (StatusCode::OK, &1.into()));
    assert_eq!(h2.get(spc, None).await.0, StatusCode::UNAUTHORIZED);

    // HTTP/1.1 through ALPN, two requests on one connection.
    let mut h1 = ca
        .client(&[b"http/1.1"], rustls::DEFAULT_VERSIONS)
        .connect(h.addr)
        .await
        .unwrap();
    assert_eq!(h1.alpn.as_deref(), Some(&b"http/1.1"[..]));
    for _ in 0..2 {
        assert_eq!(h1.get(spc, Some(TOKEN)).await.0, StatusCode::OK);
    }

    // TLS 1.2 without ALPN.
    let mut tls12 = ca
        .client(&[], &[&rustls::version::TLS12])
        .connect(h.addr)
        .await
        .unwrap();
    assert_eq!(
        (tls12.alpn.as_deref(), tls12.version),
        (None, Some(ProtocolVersion::TLSv1_2))
    );
    assert_eq!(tls12.get(spc, Some(TOKEN)).await.0, StatusCode::OK);
    h.stop().await;
}

#[tokio::test]
async fn plain_http_and_stalled_handshakes_are_cut_off_and_the_listener_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let files = files(dir.path());
    ca.issue("sidecar", 1, &files);
    let tls = Tls::load(files).unwrap();
    let h = Harness::start_tls(tls.acceptor(), Duration::from_secs(1)).await;
    let spc = "/scim/v2/ServiceProviderConfig";

    // A client that connects and says nothing does not hold up the others.
    let silent = TcpStream::connect(h.addr).await.unwrap();
    let mut served = ca.h2().connect(h.addr).await.unwrap();
    assert_eq!(served.get(spc, Some(TOKEN)).await.0, StatusCode::OK);

    // Plain HTTP on the TLS port: no HTTP answer, the connection is closed.
    let mut plain = TcpStream::connect(h.addr).await.unwrap();
    let request =
        format!("GET {spc} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    plain.write_all(request.as_bytes()).await.unwrap();
    let answer = read_until_closed(plain).await;
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");

    // The silent client is cut off once the handshake timeout (1 s) is over.
    assert_eq!(read_until_closed(silent).await, b"");

    // Failed handshakes: a client offering only a protocol the server does not speak, and
    // one that does not trust the server's CA.
    let spdy = ca.client(&[b"spdy/3"], rustls::DEFAULT_VERSIONS);
    assert!(spdy.connect(h.addr).await.is_err());
    let stranger = Ca::new("another CA").h2();
    assert!(stranger.connect(h.addr).await.is_err());

    // The listener still serves, on new connections and on the old one.
    let mut next = ca.h2().connect(h.addr).await.unwrap();
    assert_eq!(next.get(spc, Some(TOKEN)).await.0, StatusCode::OK);
    assert_eq!(served.get(spc, Some(TOKEN)).await.0, StatusCode::OK);
    h.stop().await;
}

#[tokio::test]
async fn a_rotated_certificate_reaches_new_connections_only() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let files = files(dir.path());
    let first = ca.issue("sidecar-1", 1, &files);
    let tls = Tls::load(files.clone()).unwrap();
    let h = Harness::start_tls(tls.acceptor(), Duration::from_secs(30)).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn(tls.watch(Duration::from_millis(20), async {
        let _ = stopped.await;
    }));
    let client = ca.client(&[b"http/1.1"], rustls::DEFAULT_VERSIONS);
    let mut old = client.connect(h.addr).await.unwrap();
    assert_eq!(old.cert, first);
    let spc = "/scim/v2/ServiceProviderConfig";
    assert_eq!(old.get(spc, Some(TOKEN)).await.0, StatusCode::OK);

    // A new certificate (another subject, another serial) and key, over the old files.
    let second = ca.issue("sidecar-2", 2, &files);
    assert_ne!(first, second);
    wait_for_certificate(&client, h.addr, &second).await;
    let mut new = client.connect(h.addr).await.unwrap();
    assert_eq!(new.cert, second);
    assert_eq!(new.get(spc, Some(TOKEN)).await.0, StatusCode::OK);
    // The connection opened before the rotation goes on as it was.
    assert_eq!(old.get(spc, Some(TOKEN)).await.0, StatusCode::OK);

    // And again, over HTTP/2.
    let third = ca.issue("sidecar-3", 3, &files);
    wait_for_certificate(&ca.h2(), h.addr, &third).await;
    let _ = stop.send(());
    watcher.await.unwrap();
    h.stop().await;
}

/// `serve` with `[server.tls]` from the environment: SCIM over HTTPS; `SIGHUP` puts a new pair
/// in force (and still reloads the mapping); a broken key is refused, logged with its file,
/// and the pair in force keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_over_tls_reloads_on_sighup_and_keeps_the_old_pair_on_a_bad_one() {
    let sim = MarketingCenter::new(API_KEY, ["ACME"]);
    sim.seed_demo("ACME");
    let sim_handle = sim.clone().spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim_handle.base_url());
    let ca = Ca::new("test CA");
    let files = files(&dir.path().join("tls"));
    let first = ca.issue("serve-1", 1, &files);
    let cert_file = files.cert.display().to_string();
    let key_file = files.key.display().to_string();
    let mut served = Served::start(
        &config,
        &[
            ("TEST_SERVE_MC_KEY", API_KEY),
            ("SCIM_SIDECAR_SERVER__LISTEN", "127.0.0.1:0"),
            ("SCIM_SIDECAR_SERVER__MAPPING_POLL_SECS", "0"),
            ("SCIM_SIDECAR_SERVER__TLS__CERT_FILE", &cert_file),
            ("SCIM_SIDECAR_SERVER__TLS__KEY_FILE", &key_file),
            ("SCIM_SIDECAR_SERVER__TLS__POLL_SECS", "0"),
        ],
    );
    assert!(served.base.starts_with("https://"), "{}", served.base);
    let addr = served.addr();
    let mut conn = ca.h2().connect(addr).await.unwrap();
    assert_eq!(conn.cert, first);
    let (status, body) = conn.get("/scim/v2/Users?count=2", Some(FILE_TOKEN)).await;
    assert_eq!((status, &body["totalResults"]), (StatusCode::OK, &2.into()));

    let second = ca.issue("serve-2", 2, &files);
    served.signal(Signal::HUP);
    let line = tokio::task::block_in_place(|| served.wait_for_log("TLS certificate reloaded"));
    assert_eq!(line["cert_file"], cert_file.as_str());
    assert_eq!(ca.h2().connect(addr).await.unwrap().cert, second);
    assert_eq!(
        conn.get("/scim/v2/Users?count=2", Some(FILE_TOKEN)).await.0,
        StatusCode::OK,
        "the connection opened before the reload goes on"
    );

    let broken = "-----BEGIN PRIVATE KEY-----\nhunter2 is not a key\n-----END PRIVATE KEY-----\n";
    std::fs::write(&files.key, broken).unwrap();
    served.signal(Signal::HUP);
    let line = tokio::task::block_in_place(|| {
        served.wait_for_log("TLS certificate reload refused; the certificate in force stays")
    });
    let error = line["error"].as_str().unwrap();
    assert!(error.contains(&key_file), "the file is named: {error}");
    let mut after = ca.h2().connect(addr).await.unwrap();
    assert_eq!(after.cert, second, "the pair in force stays");
    let (status, _) = after.get("/scim/v2/Users?count=2", Some(FILE_TOKEN)).await;
    assert_eq!(status, StatusCode::OK);

    let log = served.stop();
    let mapping_reloads = log
        .iter()
        .filter(|l| l.contains("mapping reloaded"))
        .count();
    assert_eq!(mapping_reloads, 2, "each SIGHUP still reloads the mapping");
    assert!(
        !log.iter().any(|l| l.contains("hunter2")),
        "key content logged"
    );
    sim_handle.stop().await;
}

/// `serve` stops with a clear message on unusable TLS files; `check` runs the same checks.
#[test]
fn serve_and_check_refuse_unusable_tls_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9/api/v1");
    let ca = Ca::new("test CA");
    let good = files(&dir.path().join("good"));
    ca.issue("good", 1, &good);
    let other = files(&dir.path().join("other"));
    ca.issue("other", 2, &other);
    let run = |command: &str, cert: Option<&Path>, key: Option<&Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_scim-sidecar"));
        cmd.args([command, "--config"])
            .arg(&config)
            .env("TEST_SERVE_MC_KEY", API_KEY)
            .env("SCIM_SIDECAR_SERVER__LISTEN", "127.0.0.1:0");
        if let Some(cert) = cert {
            cmd.env("SCIM_SIDECAR_SERVER__TLS__CERT_FILE", cert);
        }
        if let Some(key) = key {
            cmd.env("SCIM_SIDECAR_SERVER__TLS__KEY_FILE", key);
        }
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };

    let (ok, err) = run("serve", Some(&good.cert), None);
    assert!(!ok);
    assert!(err.contains("server.tls.key_file is missing"), "{err}");

    let absent = dir.path().join("absent.key");
    let (ok, err) = run("serve", Some(&good.cert), Some(&absent));
    assert!(!ok);
    let expected = format!("server.tls.key_file: cannot read {}", absent.display());
    assert!(err.contains(&expected), "{err}");

    let mismatch = format!(
        "server.tls: the private key in {} does not belong to the first certificate in {}",
        other.key.display(),
        good.cert.display()
    );
    let (ok, err) = run("serve", Some(&good.cert), Some(&other.key));
    assert!(!ok);
    assert!(
        err.contains(&format!("refusing to start: {mismatch}")),
        "{err}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "refused before opening anything"
    );

    let (ok, out) = run("check", Some(&good.cert), Some(&other.key));
    assert!(!ok);
    assert!(out.contains(&mismatch), "{out}");
    let (ok, out) = run("check", Some(&good.cert), Some(&good.key));
    assert!(ok, "{out}");
    let expected = format!("{} and {}: ok", good.cert.display(), good.key.display());
    assert!(out.contains(&expected), "{out}");
}
