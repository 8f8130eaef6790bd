//! The PostgreSQL store over TCP with TLS and a password, as in production: `verify-full`
//! against the CA of `ca_file`, `require`, and every way it can be refused — each refusal
//! says why, and no message or log line holds the password.

use http::Method;
use scim_sidecar::config::{SecretSource, StoreConfig};
use scim_sidecar::pg::Pg;
use simulator::marketing_center::MarketingCenter;

use crate::process::{Served, call, server_section};
use crate::support::okta_user;
use crate::tls::Ca;

const PASSWORD: &str = "s3cret-Pa55-for-the-store";
const TOKEN: &str = "store-tls-token";
const KEY: &str = "store-tls-api-key";

fn store(url: String, password: &str, ca_file: Option<std::path::PathBuf>) -> StoreConfig {
    StoreConfig {
        url,
        password: Some(SecretSource::Value {
            value: password.to_owned(),
        }),
        ca_file,
        pool_size: 2,
        acquire_timeout_secs: 5,
        synchronous_commit: false,
    }
}

/// What `Pg::connect` says, which must never hold the password.
async fn refusal(config: &StoreConfig) -> String {
    let e = Pg::connect(config).await.expect_err("refused");
    let text = format!("{e} / {e:?}");
    assert!(!text.contains(PASSWORD), "the password leaked: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_a_password_to_postgresql() {
    let ca = Ca::new("store test CA");
    let (chain, key) = ca.issue_pem("localhost");
    let mut cluster = pgtest::Cluster::start_with(&pgtest::Options {
        password: Some(PASSWORD.to_owned()),
        tls: Some((chain, key)),
    });
    let port = cluster.port().unwrap();
    let socket_url = cluster.create_database().await;
    let db = pgtest::database_of(&socket_url).to_owned();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("db-ca.crt");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let url = |host: &str, mode: &str| format!("postgres://scim@{host}:{port}/{db}?sslmode={mode}");

    // verify-full against the CA of ca_file: connects.
    let pg = Pg::connect(&store(
        url("localhost", "verify-full"),
        PASSWORD,
        Some(ca_file.clone()),
    ))
    .await
    .expect("verify-full with the CA");
    drop(pg);
    // require: encrypted, the certificate not checked.
    Pg::connect(&store(url("localhost", "require"), PASSWORD, None))
        .await
        .expect("require");

    // Refusals, each saying why.
    let text = refusal(&store(url("localhost", "verify-full"), PASSWORD, None)).await;
    assert!(
        text.contains("unavailable") && text.to_lowercase().contains("certificate"),
        "{text}"
    );
    let text = refusal(&store(
        url("127.0.0.1", "verify-full"),
        PASSWORD,
        Some(ca_file.clone()),
    ))
    .await;
    assert!(
        text.to_lowercase().contains("certificate"),
        "a name the certificate lacks: {text}"
    );
    let text = refusal(&store(url("localhost", "disable"), PASSWORD, None)).await;
    assert!(
        text.contains("28000") || text.contains("pg_hba"),
        "plain TCP is refused: {text}"
    );
    let text = refusal(&store(
        url("localhost", "verify-full"),
        "wrong-password",
        Some(ca_file.clone()),
    ))
    .await;
    assert!(text.contains("28P01"), "a wrong password: {text}");

    // A sidecar with the password from a file and the CA: serves, and logs no secret.
    let sim = MarketingCenter::new(KEY, ["ACME"]);
    let sim_handle = sim.clone().spawn().await.unwrap();
    let password_file = dir.path().join("db-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let config = dir.path().join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            r#"{server}[store]
url = "{url}"
password = {{ file = "{password}" }}
ca_file = "{ca}"

[tenants.acme]
customer_id = "ACME"
legacy_base_url = "{legacy}"
mapping = "{mapping}"
api_key = {{ value = "{KEY}" }}
tokens = [{{ value = "{TOKEN}" }}]
"#,
            server = server_section(&dir.path().join("data")),
            url = url("localhost", "verify-full"),
            password = password_file.display(),
            ca = ca_file.display(),
            legacy = sim_handle.base_url(),
            mapping = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/mappings/marketing-center.toml"
            ),
        ),
    )
    .unwrap();
    let served = Served::start(&config, &[]);
    let (status, user) = call(
        &served.base,
        Method::POST,
        "/Users",
        TOKEN,
        Some(okta_user("tls@example.com", "T", "LS", "00u-tls")),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    // The database goes away: the 503s and their log lines hold no password either.
    cluster.stop();
    let (status, _) = call(
        &served.base,
        Method::GET,
        &format!("/Users/{}", user["id"].as_str().unwrap()),
        TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 503);
    let log = served.stop();
    assert!(log.len() > 5, "debug logs were read: {log:?}");
    for line in &log {
        assert!(
            !line.contains(PASSWORD),
            "a log line holds the password: {line}"
        );
    }
    assert!(
        log.iter()
            .any(|l| l.contains("state in PostgreSQL")
                && l.contains(&format!("scim@localhost:{port}"))),
        "the start names the server without the password: {log:?}"
    );
    sim_handle.stop().await;
}
