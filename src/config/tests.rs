//! Tests of configuration loading, layering, validation and secret handling.
//!
//! Everything that reads the process environment or the working directory runs inside a
//! `figment::Jail`, which serialises those tests and restores the environment afterwards.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Jail;
use sha2::{Digest, Sha256};

use super::{
    BasicConfig, Config, ConfigError, DEFAULT_TLS_POLL_SECS, HashSource, LogFormat, SecretSource,
    ServerConfig, TenantConfig, TlsConfig,
};

const MINIMAL: &str = r#"
[tenants.acme]
customer_id = "acme-corp"
legacy_base_url = "http://mc.example.com/api"
mapping = "mappings/mc.toml"
api_key = { value = "inline-api-key-value" }
tokens = [{ value = "inline-token-value-1" }]
"#;

/// Runs `f` in a jail with an empty environment.
// `Jail` requires a closure returning `Result<(), figment::Error>`, a large error type.
#[allow(clippy::result_large_err)]
fn jail(f: impl FnOnce(&mut Jail)) {
    Jail::expect_with(|jail| {
        jail.clear_env();
        f(jail);
        Ok(())
    });
}

/// Writes `toml` as `sidecar.toml` in the jail and loads it by absolute path.
fn load(jail: &Jail, toml: &str) -> Result<Config, ConfigError> {
    jail.create_file("sidecar.toml", toml)
        .expect("write config");
    Config::load(&jail.directory().join("sidecar.toml"))
}

fn load_problems(jail: &Jail, toml: &str) -> Vec<String> {
    match load(jail, toml) {
        Err(ConfigError::Load { problems, .. }) => problems,
        other => panic!("expected a load error, got {other:?}"),
    }
}

fn value(secret: &str) -> SecretSource {
    SecretSource::Value {
        value: secret.to_owned(),
    }
}

fn tenant(token: &str) -> TenantConfig {
    TenantConfig {
        customer_id: Some("c-1".to_owned()),
        legacy_base_url: "http://127.0.0.1:9000".to_owned(),
        mapping: PathBuf::from("/etc/scim-sidecar/mc.toml"),
        api_key: Some(value("api-key-value")),
        vars: std::collections::BTreeMap::new(),
        secrets: std::collections::BTreeMap::new(),
        tokens: vec![value(token)],
        basic: Vec::new(),
        oauth: None,
        webhooks: Vec::new(),
        legacy_timeout_secs: 30,
        legacy_concurrency: 32,
        member_concurrency: 16,
    }
}

fn config(tenants: Vec<(&str, TenantConfig)>) -> Config {
    Config {
        server: ServerConfig::default(),
        tenants: tenants
            .into_iter()
            .map(|(n, t)| (n.to_owned(), t))
            .collect(),
        store: None,
    }
}

fn problems(config: &Config) -> Vec<String> {
    match config.validate() {
        Err(ConfigError::Invalid { problems }) => problems,
        other => panic!("expected validation problems, got {other:?}"),
    }
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn defaults_fill_everything_optional() {
    jail(|jail| {
        let config = load(jail, MINIMAL).expect("load");
        let server = &config.server;
        assert_eq!(
            server.listen,
            "127.0.0.1:8787".parse::<SocketAddr>().expect("addr")
        );
        assert_eq!(server.data_dir, Path::new("/var/lib/scim-sidecar"));
        assert_eq!(server.max_body_bytes, 4 * 1024 * 1024);
        assert_eq!(server.request_timeout_secs, 55);
        assert_eq!(server.shutdown_grace_secs, 25);
        assert_eq!(server.log_format, LogFormat::Auto);
        assert_eq!(server.tls, None, "TLS is off by default");
        assert_eq!(config.server, ServerConfig::default());
        let acme = &config.tenants["acme"];
        assert_eq!(acme.legacy_timeout_secs, 30);
        assert_eq!(acme.legacy_concurrency, 32);
        assert_eq!(acme.member_concurrency, 16);
        assert_eq!(acme.customer_id.as_deref(), Some("acme-corp"));
        config.validate().expect("valid");
    });
}

#[test]
fn an_empty_file_loads_and_fails_validation_for_want_of_tenants() {
    jail(|jail| {
        let config = load(jail, "").expect("load");
        assert_eq!(config, Config::default());
        let problems = problems(&config);
        assert!(
            problems.iter().any(|p| p.contains("no tenants")),
            "{problems:?}"
        );
    });
}

#[test]
fn file_values_replace_defaults() {
    jail(|jail| {
        let toml = format!(
            "[server]\nlisten = \"0.0.0.0:9999\"\nlog_format = \"json\"\nmax_body_bytes = 2048\n\
             {MINIMAL}legacy_concurrency = 4\n"
        );
        let config = load(jail, &toml).expect("load");
        assert_eq!(config.server.listen.port(), 9999);
        assert_eq!(config.server.log_format, LogFormat::Json);
        assert_eq!(config.server.max_body_bytes, 2048);
        assert_eq!(
            config.server.request_timeout_secs, 55,
            "untouched keys keep defaults"
        );
        assert_eq!(config.tenants["acme"].legacy_concurrency, 4);
    });
}

#[test]
fn environment_overrides_the_file() {
    jail(|jail| {
        jail.set_env("SCIM_SIDECAR_SERVER__LISTEN", "0.0.0.0:8080");
        jail.set_env("SCIM_SIDECAR_SERVER__REQUEST_TIMEOUT_SECS", "20");
        jail.set_env("SCIM_SIDECAR_SERVER__LOG_FORMAT", "text");
        jail.set_env(
            "SCIM_SIDECAR_TENANTS__ACME__LEGACY_BASE_URL",
            "http://other.example/api",
        );
        jail.set_env("SCIM_SIDECAR_TENANTS__ACME__CUSTOMER_ID", "\"0042\"");
        jail.set_env(
            "SCIM_SIDECAR_TENANTS__ACME__API_KEY__VALUE",
            "from-env-inline",
        );
        jail.set_env(
            "SCIM_SIDECAR_TENANTS__ACME__TOKENS",
            "[{env=\"OKTA_TOKEN\"}, {file=\"/run/secrets/t\"}]",
        );
        // The command line's own variable is not a configuration key.
        jail.set_env("SCIM_SIDECAR_CONFIG", "/etc/scim-sidecar/sidecar.toml");
        let config = load(jail, MINIMAL).expect("load");
        assert_eq!(
            config.server.listen,
            "0.0.0.0:8080".parse::<SocketAddr>().expect("addr")
        );
        assert_eq!(config.server.request_timeout_secs, 20);
        assert_eq!(config.server.log_format, LogFormat::Text);
        let acme = &config.tenants["acme"];
        assert_eq!(acme.legacy_base_url, "http://other.example/api");
        assert_eq!(acme.customer_id.as_deref(), Some("0042"));
        assert_eq!(acme.api_key, Some(value("from-env-inline")));
        assert_eq!(
            acme.tokens,
            [
                SecretSource::Env {
                    env: "OKTA_TOKEN".to_owned()
                },
                SecretSource::File {
                    file: PathBuf::from("/run/secrets/t")
                },
            ]
        );
        assert_eq!(
            acme.mapping,
            jail.directory().join("mappings/mc.toml"),
            "file value kept"
        );
    });
}

#[test]
fn environment_cannot_change_the_kind_of_a_secret_set_in_the_file() {
    // Tables merge key by key: `{ value = … }` from the file plus `{ env = … }` from the
    // environment is two sources, refused with a message naming the variable.
    jail(|jail| {
        jail.set_env("SCIM_SIDECAR_TENANTS__ACME__API_KEY", "{env=\"MC_KEY\"}");
        let problems = load_problems(jail, MINIMAL);
        assert_eq!(
            problems,
            [
                "`tenants.acme.api_key`: a secret source takes exactly one of `env`, `file`, \
              `value` or `sha256`; found `env` and `value` (environment variable \
              SCIM_SIDECAR_TENANTS__ACME__API_KEY)"
            ]
        );
    });
}

#[test]
fn environment_can_add_a_whole_tenant() {
    jail(|jail| {
        for (key, val) in [
            ("CUSTOMER_ID", "globex"),
            ("LEGACY_BASE_URL", "http://globex.internal"),
            ("MAPPING", "/etc/m.toml"),
            ("API_KEY__ENV", "GLOBEX_KEY"),
            ("TOKENS", "[{env=\"GLOBEX_TOKEN\"}]"),
        ] {
            jail.set_env(format!("SCIM_SIDECAR_TENANTS__GLOBEX__{key}"), val);
        }
        jail.set_env("GLOBEX_KEY", "k");
        jail.set_env("GLOBEX_TOKEN", "t");
        let config = load(jail, MINIMAL).expect("load");
        assert_eq!(
            config.tenants.keys().collect::<Vec<_>>(),
            ["acme", "globex"]
        );
        assert_eq!(config.tenants["globex"].mapping, Path::new("/etc/m.toml"));
        config.validate().expect("valid");
    });
}

#[test]
fn relative_mapping_paths_are_resolved_against_the_config_directory() {
    jail(|jail| {
        jail.create_dir("conf").expect("jail file");
        let toml = MINIMAL.replace("mappings/mc.toml", "../mappings/mc.toml");
        let extra = "[tenants.abs]\ncustomer_id = \"x\"\nlegacy_base_url = \"http://x\"\n\
                     mapping = \"/opt/m.toml\"\napi_key = { value = \"k\" }\n\
                     tokens = [{ value = \"t2\" }]\n";
        jail.create_file("conf/sidecar.toml", &format!("{toml}{extra}"))
            .expect("jail file");
        // A relative configuration path: resolution does not depend on the working directory.
        let config = Config::load(Path::new("conf/sidecar.toml")).expect("load");
        assert_eq!(
            config.tenants["acme"].mapping,
            Path::new("conf/../mappings/mc.toml")
        );
        assert_eq!(config.tenants["abs"].mapping, Path::new("/opt/m.toml"));
    });
}

#[test]
fn missing_file_is_an_error() {
    jail(|jail| {
        let path = jail.directory().join("absent.toml");
        match Config::load(&path) {
            Err(ConfigError::Read { path: p, .. }) => assert_eq!(p, path),
            other => panic!("expected Read, got {other:?}"),
        }
    });
}

#[test]
fn unknown_keys_in_the_file_are_rejected() {
    jail(|jail| {
        let cases = [
            ("servre = 1\n", "servre"),
            ("[server]\nlisen = \"0.0.0.0:1\"\n", "server.lisen"),
            (
                "[tenants.acme]\nlegacy_concurency = 3\n",
                "tenants.acme.legacy_concurency",
            ),
        ];
        for (extra, key) in cases {
            let toml = if extra.starts_with("[tenants.acme]") {
                format!("{MINIMAL}{}", extra.trim_start_matches("[tenants.acme]\n"))
            } else {
                format!("{extra}{MINIMAL}")
            };
            let problems = load_problems(jail, &toml);
            assert!(
                problems
                    .iter()
                    .any(|p| p.contains("unknown key") && p.contains(key)),
                "{key}: {problems:?}"
            );
            assert!(
                problems.iter().any(|p| p.contains("sidecar.toml")),
                "{problems:?}"
            );
        }
        // Inside a secret table too.
        let toml = MINIMAL.replace("{ value = \"inline-api-key-value\" }", "{ evn = \"X\" }");
        let problems = load_problems(jail, &toml);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("tenants.acme.api_key.evn")),
            "{problems:?}"
        );
    });
}

#[test]
fn unknown_environment_variables_under_the_prefix_are_rejected() {
    jail(|jail| {
        jail.set_env("SCIM_SIDECAR_SERVER__LISTN", "0.0.0.0:1");
        let problems = load_problems(jail, MINIMAL);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("unknown key") && p.contains("server.listn")),
            "{problems:?}"
        );
    });
    jail(|jail| {
        jail.set_env("SCIM_SIDECAR_TENANTS__ACME__TOKEN", "[]");
        let problems = load_problems(jail, MINIMAL);
        assert!(
            problems.iter().any(|p| p.contains("tenants.acme.token")),
            "{problems:?}"
        );
    });
    jail(|jail| {
        jail.set_env("SCIM_SIDECAR_LISTEN", "0.0.0.0:1");
        let problems = load_problems(jail, MINIMAL);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("SCIM_SIDECAR_LISTEN") && p.contains("unknown")),
            "{problems:?}"
        );
    });
}

#[test]
fn a_secret_source_takes_exactly_one_key() {
    jail(|jail| {
        let both = MINIMAL.replace(
            "{ value = \"inline-api-key-value\" }",
            "{ env = \"A\", file = \"/b\" }",
        );
        let problems = load_problems(jail, &both);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("exactly one") && p.contains("`env` and `file`")),
            "{problems:?}"
        );
        let none = MINIMAL.replace("{ value = \"inline-api-key-value\" }", "{}");
        let problems = load_problems(jail, &none);
        assert!(
            problems.iter().any(|p| p.contains("found none")),
            "{problems:?}"
        );
        // No api_key at all is fine here: it is needed only by a mapping that uses
        // {secret.api_key}, which `serve` and `check --config` verify with the mapping.
        let missing = MINIMAL.replace("api_key = { value = \"inline-api-key-value\" }\n", "");
        let config = load(jail, &missing).expect("loads");
        assert_eq!(config.tenants["acme"].api_key, None);
        assert_eq!(config.tenants["acme"].values().expect("values").api_key, "");
    });
}

#[test]
fn a_valid_configuration_validates() {
    config(vec![
        ("acme", tenant("token-a")),
        ("globex", tenant("token-b")),
    ])
    .validate()
    .expect("valid");
}

#[test]
fn validate_reports_every_problem_at_once() {
    let mut bad = tenant("token-a");
    bad.customer_id = Some("  ".to_owned());
    bad.legacy_base_url = "ftp://mc.example.com".to_owned();
    bad.legacy_concurrency = 0;
    bad.member_concurrency = 0;
    bad.legacy_timeout_secs = 0;
    let mut config = config(vec![("acme", bad)]);
    config.server.request_timeout_secs = 0;
    config.server.cursor_timeout_secs = 0;
    config.server.max_body_bytes = 0;
    let problems = problems(&config);
    for expected in [
        "tenants.acme.customer_id must not be empty",
        "tenants.acme.legacy_base_url must start with http://",
        "tenants.acme.legacy_concurrency must be greater than 0",
        "tenants.acme.member_concurrency must be greater than 0",
        "tenants.acme.legacy_timeout_secs must be greater than 0",
        "server.request_timeout_secs must be greater than 0",
        "server.cursor_timeout_secs must be greater than 0",
        "server.max_body_bytes must be greater than 0",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(expected)),
            "{expected}: {problems:?}"
        );
    }
    assert_eq!(problems.len(), 8, "{problems:?}");
}

#[test]
fn validate_requires_tenants() {
    let problems = problems(&config(vec![]));
    assert_eq!(
        problems,
        ["no tenants configured: add a [tenants.<name>] table"]
    );
}

#[test]
fn validate_checks_base_urls() {
    for good in [
        "http://x",
        "http://mc.example.com/api",
        "HTTP://MC.example.com",
    ] {
        let mut t = tenant("tok");
        t.legacy_base_url = good.to_owned();
        config(vec![("acme", t)])
            .validate()
            .unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for bad in [
        "",
        "mc.example.com",
        "ftp://x",
        "https://",
        "http:///path",
        "https://a b",
        "https://mc.example.com/api",
    ] {
        let mut t = tenant("tok");
        t.legacy_base_url = bad.to_owned();
        let problems = problems(&config(vec![("acme", t)]));
        assert!(
            problems[0].contains("legacy_base_url"),
            "{bad}: {problems:?}"
        );
    }
}

#[test]
fn validate_checks_tenant_names() {
    for bad in ["Acme", "ac me", "acme.eu", ""] {
        let problems = problems(&config(vec![(bad, tenant("tok"))]));
        assert!(problems[0].contains("tenant name"), "{bad:?}: {problems:?}");
    }
    config(vec![("acme-eu_2", tenant("tok"))])
        .validate()
        .expect("valid name");
}

#[test]
fn validate_requires_tokens_and_checks_digests() {
    let mut t = tenant("tok");
    t.tokens.clear();
    let empty = problems(&config(vec![("acme", t)]));
    assert!(
        empty[0].contains("tenants.acme: none of tokens, basic and oauth is given"),
        "{empty:?}"
    );

    for bad in ["abc", &"g".repeat(64), &"a".repeat(63), &"a".repeat(65)] {
        let mut t = tenant("tok");
        t.tokens.push(SecretSource::Sha256 {
            sha256: bad.to_owned(),
        });
        let problems = problems(&config(vec![("acme", t)]));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("tenants.acme.tokens[1]:"),
            "{problems:?}"
        );
        assert!(problems[0].contains("64 hexadecimal"), "{problems:?}");
    }
}

#[test]
fn validate_refuses_one_token_for_two_tenants() {
    // The same token, inline in one tenant and as a digest in the other.
    let digest = hex(&Sha256::digest(b"shared-token"));
    let mut other = tenant("token-b");
    other.tokens.push(SecretSource::Sha256 {
        sha256: digest.to_uppercase(),
    });
    let problems = problems(&config(vec![
        ("acme", tenant("shared-token")),
        ("globex", other),
    ]));
    assert_eq!(
        problems,
        [
            "tenants.globex.tokens[1] is the same token as tenants.acme.tokens[0]: a token must \
          identify one tenant"
        ]
    );
    // Listing a token twice within one tenant is harmless.
    let mut t = tenant("tok");
    t.tokens.push(value("tok"));
    config(vec![("acme", t)]).validate().expect("valid");
}

/// A PHC string with cheap parameters (a test pays no 19 MiB per check).
fn cheap_hash(password: &str) -> String {
    use argon2::password_hash::PasswordHasher;
    let params = argon2::Params::new(64, 1, 1, None).expect("params");
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes())
        .expect("hash")
        .to_string()
}

fn basic(username: &str, hash: HashSource) -> BasicConfig {
    BasicConfig {
        username: username.to_owned(),
        password_hash: hash,
    }
}

#[test]
fn basic_credentials_load_from_toml_inline_or_from_a_secret_source() {
    jail(|jail| {
        let (one, two) = (cheap_hash("pw-1"), cheap_hash("pw-2"));
        jail.set_env("TEST_BASIC_HASH", &two);
        jail.create_file(
            "sidecar.toml",
            &format!(
                r#"
                [tenants.acme]
                legacy_base_url = "http://127.0.0.1:9000"
                mapping = "mc.toml"
                [[tenants.acme.basic]]
                username = "okta"
                password_hash = "{one}"
                [[tenants.acme.basic]]
                username = "okta"
                password_hash = {{ env = "TEST_BASIC_HASH" }}
                "#
            ),
        )
        .expect("write config");
        let config = Config::load(Path::new("sidecar.toml")).expect("load");
        config.validate().expect("basic alone is a way in");
        let acme = &config.tenants["acme"];
        assert!(acme.tokens.is_empty());
        assert_eq!(
            acme.token_digests().expect("no tokens is fine"),
            Vec::<[u8; 32]>::new()
        );
        let hashes = acme.basic_hashes().expect("hashes");
        assert_eq!(hashes.len(), 2);
        assert!(hashes.iter().all(|(u, _)| u == "okta"));
    });
}

#[test]
fn validate_refuses_bad_basic_credentials() {
    let good = || HashSource::Inline(cheap_hash("pw"));
    let mut t = tenant("tok");
    t.basic = vec![
        basic("", good()),
        basic("ok:ta", good()),
        basic("okta\n", good()),
        basic("okta", HashSource::Inline("hunter2".into())),
        basic(
            "okta",
            HashSource::From(SecretSource::Env {
                env: "TEST_BASIC_UNSET".into(),
            }),
        ),
    ];
    let mut other = tenant("tok-2");
    other.basic = vec![basic("okta", good())];
    let found = problems(&config(vec![("acme", t), ("globex", other)]));
    let want = [
        "tenants.acme.basic[0]: username must not be empty",
        "tenants.acme.basic[1]: username must not contain ':'",
        "tenants.acme.basic[2]: username must not contain control characters",
        "tenants.acme.basic[3].password_hash: not a PHC hash string",
        "tenants.globex.basic[0]: username \"okta\" is also tenants.acme's",
    ];
    for w in want {
        assert!(found.iter().any(|p| p.starts_with(w)), "{w}: {found:?}");
    }
    assert!(!found.iter().any(|p| p.contains("hunter2")), "{found:?}");
    // Only the first bad hash of a tenant is reported; the unset variable comes after it.
    let mut t = tenant("tok");
    t.basic = vec![basic(
        "okta",
        HashSource::From(SecretSource::Env {
            env: "TEST_BASIC_UNSET".into(),
        }),
    )];
    let found = problems(&config(vec![("acme", t)]));
    assert_eq!(
        found,
        ["tenants.acme.basic[0].password_hash: environment variable TEST_BASIC_UNSET is not set"]
    );
}

#[test]
fn validate_names_unresolvable_secrets() {
    jail(|_jail| {
        let mut t = tenant("tok");
        t.api_key = Some(SecretSource::Env {
            env: "MC_API_KEY_UNSET".to_owned(),
        });
        t.tokens = vec![
            SecretSource::File {
                file: PathBuf::from("/nonexistent/okta-token"),
            },
            SecretSource::Sha256 {
                sha256: "0".repeat(64),
            },
        ];
        let mut digest_as_key = tenant("tok2");
        digest_as_key.api_key = Some(SecretSource::Sha256 {
            sha256: "1".repeat(64),
        });
        let problems = problems(&config(vec![("acme", t), ("globex", digest_as_key)]));
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert_eq!(
            problems[0],
            "tenants.acme.api_key: environment variable MC_API_KEY_UNSET is not set"
        );
        assert!(
            problems[1].starts_with(
                "tenants.acme.tokens[0]: cannot read secret file /nonexistent/okta-token"
            ),
            "{problems:?}"
        );
        assert!(problems[2].starts_with("tenants.globex.api_key: a `sha256` digest"));
    });
}

#[test]
fn secrets_resolve_from_env_file_and_value() {
    jail(|jail| {
        jail.set_env("MC_KEY", "from-env");
        jail.set_env("EMPTY_KEY", "");
        jail.create_file("lf", "from-file\n").expect("jail file");
        jail.create_file("crlf", "from-crlf\r\n")
            .expect("jail file");
        jail.create_file("empty", "\n").expect("jail file");
        let dir = jail.directory().to_path_buf();
        let file = |name: &str| SecretSource::File {
            file: dir.join(name),
        };

        let resolved = |s: SecretSource| s.resolve().map(|v| v.expose().to_owned());
        assert_eq!(
            resolved(SecretSource::Env {
                env: "MC_KEY".into()
            })
            .expect("env"),
            "from-env"
        );
        assert_eq!(resolved(file("lf")).expect("file"), "from-file");
        assert_eq!(resolved(file("crlf")).expect("file"), "from-crlf");
        assert_eq!(resolved(value("inline")).expect("value"), "inline");

        assert!(matches!(
            resolved(SecretSource::Env { env: "EMPTY_KEY".into() }),
            Err(ConfigError::EmptySecret { origin }) if origin == "environment variable EMPTY_KEY"
        ));
        assert!(matches!(
            resolved(file("empty")),
            Err(ConfigError::EmptySecret { .. })
        ));
        assert!(matches!(
            resolved(value("")),
            Err(ConfigError::EmptySecret { .. })
        ));
        assert!(matches!(
            resolved(SecretSource::Env { env: "NOPE".into() }),
            Err(ConfigError::EnvUnset { var }) if var == "NOPE"
        ));
        assert!(matches!(
            resolved(file("absent")),
            Err(ConfigError::SecretFile { .. })
        ));
        assert!(matches!(
            resolved(SecretSource::Sha256 {
                sha256: "0".repeat(64)
            }),
            Err(ConfigError::DigestNotSecret)
        ));
    });
}

#[test]
fn token_digests_hash_secrets_and_take_digests_as_given() {
    jail(|jail| {
        jail.create_file("token", "file-token\n")
            .expect("jail file");
        let given = "A".repeat(64);
        let t = TenantConfig {
            tokens: vec![
                value("abc"),
                SecretSource::File {
                    file: jail.directory().join("token"),
                },
                SecretSource::Sha256 { sha256: given },
            ],
            ..tenant("unused")
        };
        let digests = t.token_digests().expect("digests");
        assert_eq!(
            hex(&digests[0]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(digests[1], <[u8; 32]>::from(Sha256::digest(b"file-token")));
        assert_eq!(digests[2], [0xaa; 32]);

        let none = TenantConfig {
            tokens: vec![],
            ..tenant("unused")
        };
        assert!(matches!(
            none.token_digests(),
            Err(ConfigError::NoCredentials)
        ));
        let bad = TenantConfig {
            tokens: vec![SecretSource::Sha256 {
                sha256: "xyz".into(),
            }],
            ..tenant("unused")
        };
        assert!(matches!(bad.token_digests(), Err(ConfigError::BadDigest)));
    });
}

#[test]
fn secrets_are_redacted_in_debug_and_display() {
    let secret = value("hunter2-api-key").resolve().expect("resolve");
    assert_eq!(secret.expose(), "hunter2-api-key");
    assert_eq!(format!("{secret:?}"), "[redacted]");
    assert_eq!(format!("{secret}"), "[redacted]");

    let source = value("hunter2-api-key");
    assert!(!format!("{source:?}").contains("hunter2"), "{source:?}");
    assert!(!format!("{source}").contains("hunter2"));
    // A malformed digest may be a pasted token: not shown either.
    let pasted = SecretSource::Sha256 {
        sha256: "hunter2-raw-token".into(),
    };
    assert!(!format!("{pasted:?}").contains("hunter2"), "{pasted:?}");

    let config = config(vec![("acme", tenant("hunter2-token"))]);
    let shown = format!("{config:?} {config:#?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains("api-key-value"), "{shown}");
}

#[test]
fn errors_never_contain_secret_values() {
    jail(|jail| {
        // A secret where a table was expected.
        let toml = MINIMAL.replace(
            "{ value = \"inline-api-key-value\" }",
            "\"hunter2-literal\"",
        );
        let err = load(jail, &toml).expect_err("wrong type");
        let shown = err.to_string();
        assert!(shown.contains("tenants.acme.api_key"), "{shown}");
        assert!(shown.contains("found a string"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!format!("{err:?}").contains("hunter2"));

        // A TOML syntax error on the line holding a secret.
        let toml = MINIMAL.replace("\"inline-api-key-value\" }", "\"hunter2-unterminated }");
        let err = load(jail, &toml).expect_err("syntax");
        let shown = err.to_string();
        assert!(shown.contains("TOML parse error at line"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");

        // A numeric secret from the environment, parsed as a number.
        jail.set_env(
            "SCIM_SIDECAR_TENANTS__ACME__API_KEY",
            "{value=918273645501}",
        );
        let err = load(jail, MINIMAL).expect_err("number");
        let shown = err.to_string();
        assert!(shown.contains("found an integer"), "{shown}");
        assert!(shown.contains("quote a value"), "{shown}");
        assert!(!shown.contains("918273645501"), "{shown}");
    });
    jail(|jail| {
        // Validation: a raw token pasted as a digest; a secret file holding only a newline.
        jail.create_file("empty", "\n").expect("jail file");
        let mut t = tenant("tok");
        t.tokens = vec![
            SecretSource::Sha256 {
                sha256: "hunter2-pasted-token".into(),
            },
            SecretSource::File {
                file: jail.directory().join("empty"),
            },
        ];
        t.api_key = Some(value("hunter2-key"));
        let mut dup = tenant("hunter2-shared");
        dup.api_key = Some(value(""));
        let config = config(vec![
            ("acme", t),
            ("b", tenant("hunter2-shared")),
            ("c", dup),
        ]);
        let err = config.validate().expect_err("invalid");
        let shown = err.to_string();
        assert!(shown.contains("64 hexadecimal"), "{shown}");
        assert!(shown.contains("is empty"), "{shown}");
        assert!(shown.contains("same token"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!format!("{err:?}").contains("hunter2"));
    });
}

#[test]
fn the_redmine_example_loads_and_validates_with_its_two_variables() {
    jail(|jail| {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/redmine-sidecar.toml");
        jail.set_env("REDMINE_API_KEY", "redmine-admin-key");
        jail.set_env("SCIM_TOKEN", "a-long-random-bearer-token");
        let config = Config::load(&example).expect("example loads");
        config.validate().expect("example validates");
        let redmine = &config.tenants["redmine"];
        assert_eq!(redmine.legacy_base_url, "http://127.0.0.1:3300");
        assert_eq!(
            redmine.mapping,
            example.with_file_name("../mappings/redmine.toml")
        );
        assert_eq!(
            redmine.api_key,
            Some(SecretSource::Env {
                env: "REDMINE_API_KEY".to_owned()
            })
        );
        // Without the token variable, validation names it.
        jail.clear_env();
        jail.set_env("REDMINE_API_KEY", "redmine-admin-key");
        let config = Config::load(&example).expect("example loads");
        let problems = problems(&config);
        assert!(
            problems.iter().any(|p| p.contains("SCIM_TOKEN")),
            "{problems:?}"
        );
    });
}

#[test]
fn the_annotated_example_loads_and_validates() {
    jail(|jail| {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sidecar.toml");
        jail.set_env("MC_API_KEY", "example-api-key");
        let config = Config::load(&example).expect("example loads");
        assert_eq!(
            config.server,
            ServerConfig::default(),
            "the example shows the defaults"
        );
        assert_eq!(config.tenants.keys().collect::<Vec<_>>(), ["acme"]);
        let acme = &config.tenants["acme"];
        assert_eq!(
            acme.api_key,
            Some(SecretSource::Env {
                env: "MC_API_KEY".to_owned()
            })
        );
        assert_eq!(
            acme.mapping,
            example.with_file_name("../mappings/marketing-center.toml")
        );
        assert!(acme.legacy_base_url.starts_with("http://"));
        assert_eq!(
            (acme.legacy_timeout_secs, acme.legacy_concurrency),
            (30, 32)
        );

        // Everything checks out but the mounted token file, absent on this machine.
        let token_file = "/run/secrets/okta-scim-token";
        if !Path::new(token_file).exists() {
            let problems = problems(&config);
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].contains(token_file), "{problems:?}");
        }

        // Mount the token elsewhere through the environment, as an operator could.
        jail.create_file("okta-token", "a-long-random-bearer-token\n")
            .expect("jail file");
        let tokens = format!(
            "[{{file=\"{}\"}}]",
            jail.directory().join("okta-token").display()
        );
        jail.set_env("SCIM_SIDECAR_TENANTS__ACME__TOKENS", tokens);
        let config = Config::load(&example).expect("example loads");
        config.validate().expect("example validates");
        let digests = config.tenants["acme"].token_digests().expect("digests");
        assert_eq!(
            digests,
            [<[u8; 32]>::from(Sha256::digest(
                b"a-long-random-bearer-token"
            ))]
        );

        // Without the API key variable, validation names it.
        jail.clear_env();
        jail.set_env("SCIM_SIDECAR_TENANTS__ACME__TOKENS", "[{value=\"t\"}]");
        let config = Config::load(&example).expect("example loads");
        let problems = problems(&config);
        assert_eq!(
            problems,
            ["tenants.acme.api_key: environment variable MC_API_KEY is not set"]
        );
    });
}

#[test]
fn admin_listener_and_provisioning_log_settings_are_checked() {
    let mut c = config(vec![("acme", tenant("t"))]);
    c.validate().expect("valid");
    c.server.provisioning_log_days = 0;
    c.server.admin_listen = c.server.listen;
    c.server.admin_token = Some(SecretSource::Sha256 {
        sha256: "not-hex".to_owned(),
    });
    let p = problems(&c);
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(p[0].contains("provisioning_log_days"), "{p:?}");
    assert!(
        p[1].contains("admin_listen") && p[1].contains("own port"),
        "{p:?}"
    );
    assert!(p[2].starts_with("server.admin_token"), "{p:?}");
    // Beyond loopback, the admin pages need a token.
    let mut c = config(vec![("acme", tenant("t"))]);
    c.server.admin_listen = "0.0.0.0:9464".parse().unwrap();
    let p = problems(&c);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("admin_token is not set"), "{p:?}");
    c.server.admin_token = Some(value("admin-secret"));
    c.validate().expect("valid with a token");
    // Port 0 on both (tests) picks two free ports: allowed.
    let mut c = config(vec![("acme", tenant("t"))]);
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.server.admin_listen = c.server.listen;
    c.server.admin_token = Some(value("admin-secret"));
    c.validate().expect("valid");
}

fn tls(cert: Option<&Path>, key: Option<&Path>) -> TlsConfig {
    TlsConfig {
        cert_file: cert.map(Path::to_path_buf),
        key_file: key.map(Path::to_path_buf),
        poll_secs: DEFAULT_TLS_POLL_SECS,
    }
}

#[test]
fn tls_table_loads_with_relative_paths_and_a_default_poll() {
    jail(|jail| {
        let toml = format!(
            "[server.tls]\ncert_file = \"certs/tls.crt\"\nkey_file = \"/run/secrets/tls.key\"\n\
             {MINIMAL}"
        );
        let config = load(jail, &toml).expect("load");
        assert_eq!(
            config.server.tls,
            Some(TlsConfig {
                cert_file: Some(jail.directory().join("certs/tls.crt")),
                key_file: Some(PathBuf::from("/run/secrets/tls.key")),
                poll_secs: 10,
            })
        );
        let tls = config.server.tls.as_ref().expect("tls");
        assert_eq!(
            tls.files(),
            Some((
                jail.directory().join("certs/tls.crt").as_path(),
                Path::new("/run/secrets/tls.key")
            ))
        );
    });
}

#[test]
fn tls_can_be_set_and_overridden_from_the_environment() {
    jail(|jail| {
        jail.create_file("tls.crt", "cert").expect("jail file");
        jail.create_file("tls.key", "key").expect("jail file");
        // No table in the file: the environment alone turns TLS on.
        jail.set_env("SCIM_SIDECAR_SERVER__TLS__CERT_FILE", "tls.crt");
        jail.set_env(
            "SCIM_SIDECAR_SERVER__TLS__KEY_FILE",
            jail.directory().join("tls.key").display().to_string(),
        );
        jail.set_env("SCIM_SIDECAR_SERVER__TLS__POLL_SECS", "0");
        let config = load(jail, MINIMAL).expect("load");
        assert_eq!(
            config.server.tls,
            Some(TlsConfig {
                cert_file: Some(jail.directory().join("tls.crt")),
                key_file: Some(jail.directory().join("tls.key")),
                poll_secs: 0,
            })
        );
        config.validate().expect("valid");
    });
    jail(|jail| {
        // The file's table, one key replaced from the environment.
        jail.set_env("SCIM_SIDECAR_SERVER__TLS__KEY_FILE", "/run/other/tls.key");
        let toml = format!(
            "[server.tls]\ncert_file = \"/c.pem\"\nkey_file = \"/k.pem\"\npoll_secs = 3\n{MINIMAL}"
        );
        let tls = load(jail, &toml).expect("load").server.tls.expect("tls");
        assert_eq!(
            tls,
            TlsConfig {
                cert_file: Some(PathBuf::from("/c.pem")),
                key_file: Some(PathBuf::from("/run/other/tls.key")),
                poll_secs: 3,
            }
        );
    });
}

#[test]
fn tls_unknown_keys_are_rejected() {
    jail(|jail| {
        let toml = format!("[server.tls]\ncert = \"/c.pem\"\n{MINIMAL}");
        let problems = load_problems(jail, &toml);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("unknown key") && p.contains("server.tls.cert")),
            "{problems:?}"
        );
        let toml = format!("[server.tls]\npoll_secs = \"often\"\n{MINIMAL}");
        let problems = load_problems(jail, &toml);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("server.tls.poll_secs") && p.contains("invalid type")),
            "{problems:?}"
        );
    });
}

#[test]
fn validate_requires_both_tls_files() {
    let with_tls = |tls: TlsConfig| {
        let mut config = config(vec![("acme", tenant("tok"))]);
        config.server.tls = Some(tls);
        config
    };
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    assert_eq!(
        problems(&with_tls(tls(Some(&here), None))),
        [
            "server.tls.key_file is missing: [server.tls] needs both cert_file and key_file \
          (leave the table out to serve plain HTTP)"
        ]
    );
    let only_key = problems(&with_tls(tls(None, Some(&here))));
    assert_eq!(only_key.len(), 1, "{only_key:?}");
    assert!(
        only_key[0].starts_with("server.tls.cert_file is missing"),
        "{only_key:?}"
    );
    let empty = problems(&with_tls(tls(None, None)));
    assert_eq!(empty.len(), 2, "{empty:?}");
    with_tls(tls(Some(&here), Some(&here)))
        .validate()
        .expect("readable files validate (their content is checked by `tls`)");
}

#[test]
fn validate_names_unreadable_tls_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = config(vec![("acme", tenant("tok"))]);
    let missing = dir.path().join("absent.crt");
    // A directory opens but cannot be read.
    config.server.tls = Some(tls(Some(&missing), Some(dir.path())));
    let problems = problems(&config);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with(&format!(
            "server.tls.cert_file: cannot read {}: ",
            missing.display()
        )),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with(&format!(
            "server.tls.key_file: cannot read {}: ",
            dir.path().display()
        )),
        "{problems:?}"
    );
}

#[test]
fn the_annotated_example_tls_block_loads_when_uncommented() {
    jail(|jail| {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sidecar.toml");
        let text = std::fs::read_to_string(&example).expect("example");
        let mut uncommented = 0;
        let text: String = text
            .lines()
            .map(|line| {
                let key = ["[server.tls]", "cert_file =", "key_file =", "poll_secs ="]
                    .iter()
                    .any(|k| line.strip_prefix("# ").is_some_and(|l| l.starts_with(k)));
                if key {
                    uncommented += 1;
                    format!("{}\n", &line[2..])
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        assert_eq!(
            uncommented, 4,
            "the example shows the table and its three keys"
        );
        let config = load(jail, &text).expect("the uncommented example loads");
        assert_eq!(
            config.server.tls,
            Some(TlsConfig {
                cert_file: Some(PathBuf::from("/etc/scim-sidecar/tls/tls.crt")),
                key_file: Some(PathBuf::from("/etc/scim-sidecar/tls/tls.key")),
                poll_secs: DEFAULT_TLS_POLL_SECS,
            })
        );
    });
}

#[test]
fn oauth_tables_load_and_every_bad_value_is_reported() {
    use super::oauth::{ClientConfig, GrantType, OAuthConfig};
    jail(|jail| {
        let secret = cheap_hash("client-secret");
        jail.set_env("TEST_OAUTH_APPROVER_HASH", cheap_hash("approver-pw"));
        jail.create_file(
            "sidecar.toml",
            &format!(
                r#"
                [tenants.acme]
                legacy_base_url = "http://127.0.0.1:9000"
                mapping = "mc.toml"
                [tenants.acme.oauth]
                access_token_secs = 600
                [[tenants.acme.oauth.approvers]]
                username = "admin"
                password_hash = {{ env = "TEST_OAUTH_APPROVER_HASH" }}
                [[tenants.acme.oauth.clients]]
                client_id = "okta-acme"
                client_secret_hash = "{secret}"
                grants = ["authorization_code", "client_credentials"]
                redirect_uris = ["https://system-admin.okta.com/admin/app/cpc/x/oauth/callback"]
                "#
            ),
        )
        .expect("write config");
        let config = Config::load(Path::new("sidecar.toml")).expect("load");
        config.validate().expect("oauth alone is a way in");
        let settings = config.tenants["acme"]
            .oauth
            .as_ref()
            .expect("oauth")
            .settings()
            .expect("settings");
        assert_eq!(settings.access_token.as_secs(), 600);
        assert_eq!(settings.refresh_token.as_secs(), 30 * 24 * 3600);
        assert!(settings.grants(GrantType::ClientCredentials));
        assert_eq!(settings.approvers[0].0, "admin");
    });

    let good = || HashSource::Inline(cheap_hash("pw"));
    let client = |id: &str, grants: Vec<GrantType>, uris: &[&str]| ClientConfig {
        client_id: id.to_owned(),
        client_secret_hash: good(),
        grants,
        redirect_uris: uris.iter().map(|u| (*u).to_owned()).collect(),
    };
    let mut t = tenant("tok");
    t.oauth = Some(OAuthConfig {
        access_token_secs: 0,
        refresh_token_secs: 60,
        approvers: Vec::new(),
        clients: vec![
            client("", vec![GrantType::ClientCredentials], &[]),
            client("a:b", Vec::new(), &[]),
            client("okta", vec![GrantType::AuthorizationCode], &[]),
            client(
                "okta-2",
                vec![GrantType::AuthorizationCode],
                &["http://okta.example/cb"],
            ),
            ClientConfig {
                client_secret_hash: HashSource::Inline("hunter2".into()),
                ..client("entra", vec![GrantType::ClientCredentials], &[])
            },
        ],
    });
    let mut other = tenant("tok-2");
    other.oauth = Some(OAuthConfig {
        access_token_secs: 60,
        refresh_token_secs: 60,
        approvers: vec![basic("admin", good())],
        clients: vec![client("entra", vec![GrantType::ClientCredentials], &[])],
    });
    let mut third = tenant("tok-3");
    third.oauth = Some(OAuthConfig {
        access_token_secs: 60,
        refresh_token_secs: 60,
        approvers: vec![basic("admin", good())],
        clients: vec![client("third", vec![GrantType::ClientCredentials], &[])],
    });
    let found = problems(&config(vec![
        ("acme", t),
        ("globex", other),
        ("initech", third),
    ]));
    for w in [
        "tenants.acme.oauth: access_token_secs and refresh_token_secs must be greater than 0",
        "tenants.acme.oauth.clients[0]: client_id must not be empty",
        "tenants.acme.oauth.clients[1]: client_id must not contain ':'",
        "tenants.acme.oauth.clients[1]: grants is empty",
        "tenants.acme.oauth.clients[2]: authorization_code needs redirect_uris",
        "tenants.acme.oauth.clients[2]: authorization_code needs tenants.acme.oauth.approvers",
        "tenants.acme.oauth.clients[3]: redirect URI \"http://okta.example/cb\" must be https://",
        "tenants.acme.oauth.clients[4].client_secret_hash: not a PHC hash string",
        "tenants.globex.oauth.clients[0]: client_id \"entra\" is also tenants.acme's",
        "tenants.initech.oauth.approvers[0]: username \"admin\" is also tenants.globex's",
    ] {
        assert!(found.iter().any(|p| p.starts_with(w)), "{w}: {found:?}");
    }
    assert!(!found.iter().any(|p| p.contains("hunter2")), "{found:?}");
}

#[test]
fn webhooks_load_from_toml_and_every_problem_is_named() {
    jail(|jail| {
        let secret = crate::webhooks::sign::new_secret();
        let toml = format!(
            "{MINIMAL}\n[[tenants.acme.webhooks]]\nname = \"crm\"\n\
             url = \"https://crm.example.com/hooks\"\nsecrets = [{{ value = \"{secret}\" }}]\n\
             events = [\"user.*\"]\n\n\
             [[tenants.acme.webhooks]]\nname = \"crm\"\nurl = \"http://crm.example.com/\"\n\
             secrets = [{{ value = \"whsec_short\" }}]\nevents = [\"user.renamed\"]\n\
             timeout_secs = 0\n"
        );
        let config = load(jail, &toml).expect("load");
        let hooks = &config.tenants["acme"].webhooks;
        assert_eq!(hooks.len(), 2);
        assert_eq!(hooks[0].max_age_secs, 86_400, "defaults fill the rest");
        assert_eq!((hooks[0].concurrency, hooks[0].first_retry_ms), (4, 5000));
        let problems = problems(&config);
        let at = |p: &&String| p.starts_with("tenants.acme.webhooks[1]");
        assert_eq!(problems.iter().filter(at).count(), 5, "{problems:#?}");
        for needle in [
            "https://",
            "base64",
            "user.renamed",
            "timeout_secs must be from 1",
            "another endpoint",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle}: {problems:#?}"
            );
        }
        assert!(!problems.iter().any(|p| p.contains(&secret)));
        assert!(
            !problems
                .iter()
                .any(|p| p.starts_with("tenants.acme.webhooks[0]"))
        );
    });
}
