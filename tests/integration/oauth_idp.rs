//! OAuth 2.0 towards the identity provider, end to end against `scim-sidecar serve`: Okta's
//! "OAuth 2" mode (authorization code with PKCE, consent by an approver, refresh with
//! rotation, revocation with `tokens revoke`) and Entra ID's client-credentials grant, driven
//! the way those providers drive them, with every failure RFC 6749/6750 name.
//! (tests/integration/oauth.rs is the other direction: the sidecar as an OAuth client of the
//! legacy app.)

use std::collections::HashMap;

use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::{BodyExt as _, Full};
use serde_json::{Value, json};
use simulator::marketing_center::MarketingCenter;

use crate::basic_auth::{basic, cheap_hash};
use crate::process::Served;
use crate::support::okta_user;

const API_KEY: &str = "oauth-idp-api-key";
const OKTA_SECRET: &str = "okta-client-secret-5d5d5d";
const ENTRA_SECRET: &str = "entra-client-secret-6e6e6e";
const OTHER_SECRET: &str = "other-client-secret-7f7f7f";
const APPROVER_PW: &str = "approver-password-8a8a";
const OTHER_TOKEN: &str = "other-static-token-9b9b";
const REDIRECT: &str = "https://system-admin.okta.example/admin/app/cpc/mc_1/oauth/callback";
const OTHER_REDIRECT: &str = "http://127.0.0.1:9/callback";
/// RFC 7636 appendix B's verifier and challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// One HTTP request to the sidecar's root: status, headers, body text.
pub(crate) async fn send(
    root: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> (u16, HeaderMap, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("{root}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(
            req.body(Full::new(Bytes::from(body.unwrap_or_default())))
                .unwrap(),
        )
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status.as_u16(),
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn encode(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The sidecar under test: its root URL, its SCIM base, the process.
struct Idp {
    root: String,
    served: Served,
    config: std::path::PathBuf,
    entra_hash: String,
}

impl Idp {
    /// A SCIM request with `Authorization: Bearer <token>`.
    async fn scim(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let auth = format!("Bearer {token}");
        let (status, _, text) = send(
            &self.root,
            method,
            &format!("/scim/v2{path}"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/scim+json"),
            ],
            body.map(|b| b.to_string()),
        )
        .await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `POST /oauth2/token` with `pairs`, the client authenticated by `auth` (a header value)
    /// or not: status, headers, JSON.
    async fn token(&self, auth: Option<&str>, pairs: &[(&str, &str)]) -> (u16, HeaderMap, Value) {
        let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        let (status, h, text) = send(
            &self.root,
            Method::POST,
            "/oauth2/token",
            &headers,
            Some(encode(pairs)),
        )
        .await;
        (
            status,
            h,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    /// Okta's authorization: the consent page, then the approver's approval; the code the
    /// browser is sent back with (checking `state`).
    async fn authorize(&self, client: &str, redirect: &str, approver: (&str, &str)) -> String {
        self.authorize_with(client, Some(redirect), redirect, approver)
            .await
    }

    /// [`Idp::authorize`], naming the redirect URI in the request or not (`sent`); the
    /// browser must come back to `target`.
    async fn authorize_with(
        &self,
        client: &str,
        sent: Option<&str>,
        target: &str,
        approver: (&str, &str),
    ) -> String {
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", client),
            ("state", "st-42"),
            ("scope", "okta.users.manage"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ];
        if let Some(uri) = sent {
            pairs.push(("redirect_uri", uri));
        }
        let query = encode(&pairs);
        let (status, headers, page) = send(
            &self.root,
            Method::GET,
            &format!("/oauth2/authorize?{query}"),
            &[],
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("Authorize provisioning"), "{page}");
        assert_eq!(headers["x-frame-options"], "DENY");
        let mut form = hidden_fields(&page);
        form.push(("username".into(), approver.0.into()));
        form.push(("password".into(), approver.1.into()));
        form.push(("decision".into(), "approve".into()));
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (status, headers, page) = send(
            &self.root,
            Method::POST,
            "/oauth2/authorize",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(encode(&pairs)),
        )
        .await;
        assert_eq!(status, 303, "{page}");
        let location = headers["location"].to_str().unwrap().to_owned();
        let (back_at, query) = location.split_once('?').unwrap();
        assert_eq!(back_at, target);
        let q: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(q["state"], "st-42");
        q["code"].clone()
    }

    /// The authorization's code traded for tokens (Okta: client authenticated by Basic).
    async fn redeem(&self, code: &str) -> (String, String) {
        let (status, headers, t) = self
            .token(
                Some(&basic("okta-acme", OKTA_SECRET)),
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", VERIFIER),
                ],
            )
            .await;
        assert_eq!(status, 200, "{t}");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(t["token_type"], "Bearer");
        assert_eq!(t["expires_in"], 3600);
        assert_eq!(
            t["scope"],
            Value::Null,
            "no scope was asked at the token endpoint"
        );
        (
            t["access_token"].as_str().unwrap().to_owned(),
            t["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    async fn refresh(&self, refresh: &str) -> (u16, Value) {
        let (status, _, t) = self
            .token(
                Some(&basic("okta-acme", OKTA_SECRET)),
                &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
            )
            .await;
        (status, t)
    }

    /// `scim-sidecar tokens ARGS --config CONFIG`: its standard output (it must succeed).
    async fn tokens_cli(&self, args: &[&str]) -> String {
        let mut cmd = crate::process::command();
        cmd.arg("tokens")
            .args(args)
            .arg("--config")
            .arg(&self.config);
        cmd.env("TEST_OAUTH_MC_KEY", API_KEY);
        cmd.env("TEST_OAUTH_ENTRA_HASH", &self.entra_hash);
        tokio::task::spawn_blocking(move || crate::process::succeeded(cmd))
            .await
            .unwrap()
    }
}

/// The consent form's hidden fields.
fn hidden_fields(page: &str) -> Vec<(String, String)> {
    page.split("<input type=\"hidden\" ")
        .skip(1)
        .map(|rest| {
            let name = rest
                .split("name=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let value = rest
                .split("value=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            (
                name.to_owned(),
                value.replace("&amp;", "&").replace("&quot;", "\""),
            )
        })
        .collect()
}

fn error_of(v: &Value) -> (&str, &str) {
    (
        v["error"].as_str().unwrap_or_else(|| panic!("{v}")),
        v["error_description"].as_str().unwrap_or(""),
    )
}

async fn start(sim_url: &str, dir: &std::path::Path) -> Idp {
    let mapping = format!(
        "{}/mappings/marketing-center.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let config = dir.join("sidecar.toml");
    let tenant = |name: &str, customer: &str| {
        format!(
            "[tenants.{name}]\ncustomer_id = \"{customer}\"\nlegacy_base_url = \"{sim_url}\"\n\
             mapping = \"{mapping}\"\napi_key = {{ env = \"TEST_OAUTH_MC_KEY\" }}\n"
        )
    };
    std::fs::write(
        &config,
        format!(
            "{server}{acme}\n[tenants.acme.oauth]\n\n\
             [[tenants.acme.oauth.approvers]]\nusername = \"approver\"\npassword_hash = \"{approver}\"\n\n\
             [[tenants.acme.oauth.clients]]\nclient_id = \"okta-acme\"\n\
             client_secret_hash = \"{okta}\"\ngrants = [\"authorization_code\"]\n\
             redirect_uris = [\"{REDIRECT}\"]\n\n\
             [[tenants.acme.oauth.clients]]\nclient_id = \"entra-acme\"\n\
             client_secret_hash = {{ env = \"TEST_OAUTH_ENTRA_HASH\" }}\n\
             grants = [\"client_credentials\"]\n\n\
             {other}tokens = [{{ value = \"{OTHER_TOKEN}\" }}]\n\n[tenants.other.oauth]\n\n\
             [[tenants.other.oauth.approvers]]\nusername = \"other-approver\"\n\
             password_hash = \"{other_approver}\"\n\n\
             [[tenants.other.oauth.clients]]\nclient_id = \"other-client\"\n\
             client_secret_hash = \"{other_secret}\"\n\
             grants = [\"authorization_code\", \"client_credentials\"]\n\
             redirect_uris = [\"{OTHER_REDIRECT}\"]\n\n\
             {brief}\n[tenants.brief.oauth]\naccess_token_secs = 1\nrefresh_token_secs = 1\n\n\
             [[tenants.brief.oauth.approvers]]\nusername = \"brief-approver\"\n\
             password_hash = \"{other_approver}\"\n\n\
             [[tenants.brief.oauth.clients]]\nclient_id = \"brief-client\"\n\
             client_secret_hash = \"{other_secret}\"\n\
             grants = [\"client_credentials\", \"authorization_code\"]\n\
             redirect_uris = [\"{OTHER_REDIRECT}\"]\n",
            brief = tenant("brief", "OTHER"),
            server = crate::process::server_section(&dir.join("data")),
            acme = tenant("acme", "ACME"),
            other = tenant("other", "OTHER"),
            approver = cheap_hash(APPROVER_PW),
            okta = cheap_hash(OKTA_SECRET),
            other_approver = cheap_hash(APPROVER_PW),
            other_secret = cheap_hash(OTHER_SECRET),
        ),
    )
    .unwrap();
    let entra_hash = cheap_hash(ENTRA_SECRET);
    let served = Served::start(
        &config,
        &[
            ("TEST_OAUTH_MC_KEY", API_KEY),
            ("TEST_OAUTH_ENTRA_HASH", entra_hash.as_str()),
        ],
    );
    Idp {
        root: served.base.trim_end_matches("/scim/v2").to_owned(),
        served,
        config,
        entra_hash,
    }
}

#[tokio::test]
async fn okta_oauth2_mode_and_entra_client_credentials_end_to_end() {
    let sim = MarketingCenter::new(API_KEY, ["ACME", "OTHER"]);
    sim.seed_demo("ACME");
    let sim_handle = sim.clone().spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let idp = start(&sim_handle.base_url(), dir.path()).await;
    let mut secrets: Vec<String> = vec![
        OKTA_SECRET.into(),
        ENTRA_SECRET.into(),
        OTHER_SECRET.into(),
        APPROVER_PW.into(),
        VERIFIER.into(),
    ];

    // Okta: "Authenticate with <app>" → consent → code → tokens → SCIM calls.
    let code = idp
        .authorize("okta-acme", REDIRECT, ("approver", APPROVER_PW))
        .await;
    assert!(code.starts_with("scscd_"));
    let (access, refresh) = idp.redeem(&code).await;
    secrets.extend([code.clone(), access.clone(), refresh.clone()]);
    let (status, list) = idp
        .scim(&access, Method::GET, "/Users?startIndex=1&count=2", None)
        .await;
    assert_eq!(status, 200, "{list}");
    let (status, ada) = idp
        .scim(
            &access,
            Method::POST,
            "/Users",
            Some(okta_user(
                "ada.oauth@example.com",
                "Ada",
                "Lovelace",
                "00u-oauth-ada",
            )),
        )
        .await;
    assert_eq!(status, 201, "{ada}");
    let ada_id = ada["id"].as_str().unwrap().to_owned();
    // The bare token works too (Okta's HTTP Header habit); the other tenant's static token
    // does not see acme's user.
    let (status, _, _) = send(
        &idp.root,
        Method::GET,
        &format!("/scim/v2/Users/{ada_id}"),
        &[("Authorization", &access)],
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = idp
        .scim(OTHER_TOKEN, Method::GET, &format!("/Users/{ada_id}"), None)
        .await;
    assert_eq!(status, 404, "a tenant's token never reaches another tenant");

    // The same code again: refused, and the tokens issued from it are revoked (RFC 6749 §4.1.2).
    let (status, _, t) = idp
        .token(
            Some(&basic("okta-acme", OKTA_SECRET)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(error_of(&t).0, "invalid_grant");
    assert!(error_of(&t).1.contains("already used"), "{t}");
    let (status, body) = idp.scim(&access, Method::GET, "/Users?count=1", None).await;
    assert_eq!(status, 401, "{body}");
    let (status, t) = idp.refresh(&refresh).await;
    assert_eq!((status, error_of(&t).0), (400, "invalid_grant"));

    // A fresh authorization; refresh rotates: the new pair works, the spent refresh token
    // replayed revokes the family.
    let code = idp
        .authorize("okta-acme", REDIRECT, ("approver", APPROVER_PW))
        .await;
    let (access, refresh) = idp.redeem(&code).await;
    let (status, t) = idp.refresh(&refresh).await;
    assert_eq!(status, 200, "{t}");
    let access2 = t["access_token"].as_str().unwrap().to_owned();
    let refresh2 = t["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);
    secrets.extend([
        code,
        access.clone(),
        refresh.clone(),
        access2.clone(),
        refresh2.clone(),
    ]);
    assert_eq!(
        idp.scim(&access2, Method::GET, &format!("/Users/{ada_id}"), None)
            .await
            .0,
        200
    );
    let (status, t) = idp.refresh(&refresh).await;
    assert_eq!((status, error_of(&t).0), (400, "invalid_grant"), "{t}");
    assert_eq!(
        idp.scim(&access2, Method::GET, "/Users?count=1", None)
            .await
            .0,
        401
    );
    assert_eq!(
        idp.refresh(&refresh2).await.0,
        400,
        "the whole family is revoked"
    );

    // `tokens list` shows the families; `tokens revoke` ends one at once.
    let code = idp
        .authorize("okta-acme", REDIRECT, ("approver", APPROVER_PW))
        .await;
    let (access, refresh) = idp.redeem(&code).await;
    secrets.extend([code, access.clone(), refresh.clone()]);
    let listed = idp.tokens_cli(&["list", "--json"]).await;
    let families: Vec<Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let active: Vec<&Value> = families.iter().filter(|f| f["state"] == "active").collect();
    assert_eq!(active.len(), 1, "{listed}");
    assert_eq!(active[0]["client_id"], "okta-acme");
    assert_eq!(active[0]["tenant"], "acme");
    assert_eq!(
        families.iter().filter(|f| f["state"] == "revoked").count(),
        2,
        "{listed}"
    );
    for s in &secrets {
        assert!(!listed.contains(s.as_str()), "tokens list shows no secret");
    }
    let table = idp.tokens_cli(&["list"]).await;
    assert!(table.starts_with("FAMILY"), "{table}");
    let family = active[0]["family"].as_str().unwrap();
    let said = idp.tokens_cli(&["revoke", family]).await;
    assert!(
        said.contains("revoked 3"),
        "access, refresh and the code: {said}"
    );
    assert_eq!(
        idp.scim(&access, Method::GET, "/Users?count=1", None)
            .await
            .0,
        401
    );
    assert_eq!(idp.refresh(&refresh).await.0, 400);

    // Entra ID: client credentials in the body; an access token, no refresh token.
    let (status, headers, t) = idp
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "entra-acme"),
                ("client_secret", ENTRA_SECRET),
            ],
        )
        .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(headers["pragma"], "no-cache");
    assert!(
        t.get("refresh_token").is_none(),
        "RFC 6749 §4.4.3: no refresh token"
    );
    let entra = t["access_token"].as_str().unwrap().to_owned();
    secrets.push(entra.clone());
    let filter = crate::support::q("userName eq \"ada.oauth@example.com\"");
    let (status, found) = idp
        .scim(
            &entra,
            Method::GET,
            &format!("/Users?filter={filter}"),
            None,
        )
        .await;
    assert_eq!(
        (status, found["totalResults"].clone()),
        (200, json!(1)),
        "{found}"
    );

    // Another tenant's OAuth token does not reach acme's users.
    let (status, _, t) = idp
        .token(
            Some(&basic("other-client", OTHER_SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(status, 200, "{t}");
    let other = t["access_token"].as_str().unwrap().to_owned();
    secrets.push(other.clone());
    let (status, _) = idp
        .scim(&other, Method::GET, &format!("/Users/{ada_id}"), None)
        .await;
    assert_eq!(status, 404, "another tenant's token never reaches acme");
    let (status, found) = idp
        .scim(
            &other,
            Method::GET,
            &format!("/Users?filter={filter}"),
            None,
        )
        .await;
    assert_eq!(
        (status, found["totalResults"].clone()),
        (200, json!(0)),
        "{found}"
    );

    // An access token past its lifetime (the brief tenant's live one second) is refused.
    let (status, _, t) = idp
        .token(
            Some(&basic("brief-client", OTHER_SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(status, 200, "{t}");
    let short = t["access_token"].as_str().unwrap().to_owned();
    secrets.push(short.clone());
    let mut last = 0;
    crate::support::wait_until("the one-second token to expire", async || {
        last = idp
            .scim(&short, Method::GET, "/Users?count=1", None)
            .await
            .0;
        last == 401
    })
    .await;
    assert_eq!(last, 401);

    // An authorization that leaves redirect_uri out (the client has one): the token request
    // leaves it out too (RFC 6749 §4.1.3). A refresh token past its lifetime is refused.
    let code = idp
        .authorize_with(
            "brief-client",
            None,
            OTHER_REDIRECT,
            ("brief-approver", APPROVER_PW),
        )
        .await;
    let (status, _, t) = idp
        .token(
            Some(&basic("brief-client", OTHER_SECRET)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(status, 200, "{t}");
    let mut brief_refresh = t["refresh_token"].as_str().unwrap().to_owned();
    secrets.extend([
        code,
        brief_refresh.clone(),
        t["access_token"].as_str().unwrap().to_owned(),
    ]);
    let mut said = Value::Null;
    crate::support::wait_until("the one-second refresh token to expire", async || {
        let (status, _, t) = idp
            .token(
                Some(&basic("brief-client", OTHER_SECRET)),
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &brief_refresh),
                ],
            )
            .await;
        if status == 200 {
            // Refreshed before it expired: go on with the new one.
            brief_refresh = t["refresh_token"].as_str().unwrap().to_owned();
            return false;
        }
        said = t;
        true
    })
    .await;
    assert_eq!(
        error_of(&said),
        (
            "invalid_grant",
            "the refresh token expired; authorize again"
        )
    );

    // The discovery document names the mode; the admin page and /readyz show the modes.
    let (_, spc) = idp
        .scim(&entra, Method::GET, "/ServiceProviderConfig", None)
        .await;
    let schemes: Vec<&str> = spc["authenticationSchemes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["type"].as_str().unwrap())
        .collect();
    assert!(schemes.contains(&"oauth2"), "{spc}");
    let ready = crate::basic_auth::text(&format!("{}/readyz", idp.served.admin)).await;
    assert!(
        ready.contains("oauth2-code") && ready.contains("oauth2-client"),
        "{ready}"
    );
    let metrics = crate::basic_auth::text(&format!("{}/metrics", idp.served.admin)).await;
    for line in [
        "scim_sidecar_oauth_issued_total{endpoint=\"authorize\",outcome=\"authorization_code\"}",
        "scim_sidecar_oauth_issued_total{endpoint=\"token\",outcome=\"client_credentials\"} 3",
        "scim_sidecar_oauth_failures_total{endpoint=\"token\",outcome=\"invalid_grant\"}",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }

    let log = idp.served.stop();
    for line in &log {
        for s in &secrets {
            assert!(!line.contains(s.as_str()), "a secret in the log: {line}");
        }
    }
    sim_handle.stop().await;
}

/// Every refusal the RFCs name, each answered as they say, on a sidecar of its own (the
/// failures take from one address's bucket of 20: the last ones meet the throttle).
#[tokio::test]
async fn every_refusal_is_answered_as_rfc_6749_and_6750_say() {
    let sim = MarketingCenter::new(API_KEY, ["ACME", "OTHER"]);
    let sim_handle = sim.clone().spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let idp = start(&sim_handle.base_url(), dir.path()).await;

    // Another tenant's approver cannot approve acme's client.
    let query = encode(&[
        ("response_type", "code"),
        ("client_id", "okta-acme"),
        ("redirect_uri", REDIRECT),
        ("state", "s"),
        ("username", "other-approver"),
        ("password", APPROVER_PW),
        ("decision", "approve"),
    ]);
    let (status, headers, page) = send(
        &idp.root,
        Method::POST,
        "/oauth2/authorize",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(query),
    )
    .await;
    assert_eq!(status, 401, "{page}");
    assert!(headers.get("location").is_none());
    assert!(page.contains("not an approver of this tenant"), "{page}");

    // At the authorize endpoint: an unregistered redirect URI or unknown client is told to
    // the browser, never redirected to; other errors go back with state.
    for (client, redirect, says) in [
        (
            "okta-acme",
            "https://attacker.example/cb",
            "is not registered for the client",
        ),
        ("nobody", REDIRECT, "is not registered with this sidecar"),
    ] {
        let query = encode(&[
            ("response_type", "code"),
            ("client_id", client),
            ("redirect_uri", redirect),
        ]);
        let (status, headers, page) = send(
            &idp.root,
            Method::GET,
            &format!("/oauth2/authorize?{query}"),
            &[],
            None,
        )
        .await;
        assert_eq!(status, 400, "{page}");
        assert!(
            headers.get("location").is_none(),
            "no redirect to an unknown URI"
        );
        assert!(page.contains(says), "{page}");
    }
    for (extra, error) in [
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (
            vec![
                ("response_type", "code"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
        ),
        (
            vec![("response_type", "code"), ("decision", "deny")],
            "access_denied",
        ),
    ] {
        let mut pairs = vec![
            ("client_id", "okta-acme"),
            ("redirect_uri", REDIRECT),
            ("state", "s9"),
        ];
        pairs.extend(extra);
        let method = if error == "access_denied" {
            Method::POST
        } else {
            Method::GET
        };
        let (status, headers, _) = if method == Method::POST {
            send(
                &idp.root,
                method,
                "/oauth2/authorize",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                Some(encode(&pairs)),
            )
            .await
        } else {
            send(
                &idp.root,
                method,
                &format!("/oauth2/authorize?{}", encode(&pairs)),
                &[],
                None,
            )
            .await
        };
        assert_eq!(status, 303);
        let location = headers["location"].to_str().unwrap();
        assert!(
            location.starts_with(&format!("{REDIRECT}?error={error}")),
            "{location}"
        );
        assert!(location.ends_with("&state=s9"), "{location}");
    }
    // A refresh token sent as a code is not a code, and stays usable as what it is.
    let code = idp
        .authorize("okta-acme", REDIRECT, ("approver", APPROVER_PW))
        .await;
    let (_, refresh) = idp.redeem(&code).await;
    let (status, _, t) = idp
        .token(
            Some(&basic("okta-acme", OKTA_SECRET)),
            &[
                ("grant_type", "authorization_code"),
                ("code", refresh.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(
        (status, error_of(&t)),
        (
            400,
            ("invalid_grant", "the authorization code is not valid")
        )
    );
    assert_eq!(
        idp.refresh(&refresh).await.0,
        200,
        "the refresh token still refreshes"
    );
    // Wrong client secret (Basic): 401 invalid_client with a Basic challenge.
    let (status, headers, t) = idp
        .token(
            Some(&basic("okta-acme", "not-the-secret")),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", "scsrt_x"),
            ],
        )
        .await;
    assert_eq!((status, error_of(&t).0), (401, "invalid_client"), "{t}");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    // Unknown client in the body; both ways at once; none.
    let (status, headers, t) = idp
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
                ("client_secret", "x"),
            ],
        )
        .await;
    assert_eq!((status, error_of(&t).0), (401, "invalid_client"));
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let (status, _, t) = idp
        .token(
            Some(&basic("entra-acme", ENTRA_SECRET)),
            &[
                ("grant_type", "client_credentials"),
                ("client_secret", ENTRA_SECRET),
            ],
        )
        .await;
    assert_eq!((status, error_of(&t).0), (400, "invalid_request"));
    let (status, _, t) = idp
        .token(None, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!((status, error_of(&t).0), (401, "invalid_client"));
    // A grant the client may not use; an unknown grant; a parameter twice.
    let (status, _, t) = idp
        .token(
            Some(&basic("okta-acme", OKTA_SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!((status, error_of(&t).0), (400, "unauthorized_client"));
    let (status, _, t) = idp
        .token(
            Some(&basic("okta-acme", OKTA_SECRET)),
            &[("grant_type", "password")],
        )
        .await;
    assert_eq!((status, error_of(&t).0), (400, "unsupported_grant_type"));
    let (status, _, t) = idp
        .token(
            Some(&basic("entra-acme", ENTRA_SECRET)),
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
            ],
        )
        .await;
    assert_eq!((status, error_of(&t).0), (400, "invalid_request"));

    // PKCE: a wrong verifier, and none, each spend the code (one try per code).
    for verifier in [Some("x".repeat(43)), None] {
        let code = idp
            .authorize("okta-acme", REDIRECT, ("approver", APPROVER_PW))
            .await;
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ];
        if let Some(v) = &verifier {
            pairs.push(("code_verifier", v.as_str()));
        }
        let (status, _, t) = idp
            .token(Some(&basic("okta-acme", OKTA_SECRET)), &pairs)
            .await;
        assert_eq!((status, error_of(&t).0), (400, "invalid_grant"), "{t}");
        assert!(error_of(&t).1.contains("code_verifier"), "{t}");
        // One try per code: the right verifier afterwards is too late.
        let (status, _, t) = idp
            .token(
                Some(&basic("okta-acme", OKTA_SECRET)),
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", VERIFIER),
                ],
            )
            .await;
        assert_eq!((status, error_of(&t).0), (400, "invalid_grant"), "{t}");
        assert!(error_of(&t).1.contains("already used"), "{t}");
    }
    // A code redeemed by another tenant's client (cross-tenant), or with another
    // redirect_uri.
    let code = idp
        .authorize("okta-acme", REDIRECT, ("approver", APPROVER_PW))
        .await;
    let (status, _, t) = idp
        .token(
            Some(&basic("other-client", OTHER_SECRET)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!((status, error_of(&t).0), (400, "invalid_grant"));
    assert!(error_of(&t).1.contains("another client"), "{t}");
    let code = idp
        .authorize("okta-acme", REDIRECT, ("approver", APPROVER_PW))
        .await;
    let (status, _, t) = idp
        .token(
            Some(&basic("okta-acme", OKTA_SECRET)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "https://elsewhere.example/cb"),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!((status, error_of(&t).0), (400, "invalid_grant"));
    // A made-up access token is 401 with RFC 6750's challenge.
    let (status, headers, _) = send(
        &idp.root,
        Method::GET,
        "/scim/v2/Users",
        &[("Authorization", "Bearer scsat_made-up")],
        None,
    )
    .await;
    assert_eq!(status, 401);
    let challenges: Vec<&str> = headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        challenges[0].starts_with("Bearer error=\"invalid_token\""),
        "RFC 6750 §3.1: {challenges:?}"
    );
    // Too many failures from one address: 429 at the token endpoint, with Retry-After.
    let mut throttled = None;
    for _ in 0..25 {
        let (status, headers, _) = idp
            .token(
                Some(&basic("okta-acme", "wrong")),
                &[("grant_type", "refresh_token")],
            )
            .await;
        if status == 429 {
            throttled = Some(headers);
            break;
        }
    }
    let headers = throttled.expect("failures are throttled");
    assert!(headers.contains_key("retry-after"));

    let metrics = crate::basic_auth::text(&format!("{}/metrics", idp.served.admin)).await;
    for line in [
        "scim_sidecar_oauth_failures_total{endpoint=\"token\",outcome=\"invalid_grant\"}",
        "scim_sidecar_oauth_failures_total{endpoint=\"token\",outcome=\"invalid_client\"}",
        "scim_sidecar_oauth_failures_total{endpoint=\"token\",outcome=\"unauthorized_client\"} 1",
        "scim_sidecar_oauth_failures_total{endpoint=\"authorize\",outcome=\"wrong_approver\"} 1",
        "scim_sidecar_oauth_failures_total{endpoint=\"authorize\",outcome=\"access_denied\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    let log = idp.served.stop();
    for line in &log {
        for secret in [
            OKTA_SECRET,
            ENTRA_SECRET,
            OTHER_SECRET,
            APPROVER_PW,
            VERIFIER,
        ] {
            assert!(!line.contains(secret), "a secret in the log: {line}");
        }
    }
    sim_handle.stop().await;
}
