//! The consent page of `/oauth2/authorize`: one HTML form, every value escaped, no script,
//! not frameable.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::html::escape;

/// What the page shows and sends back.
pub(super) struct Consent<'a> {
    /// The tenant the client asks for.
    pub tenant: &'a str,
    /// The client id.
    pub client_id: &'a str,
    /// Where the browser goes afterwards.
    pub redirect_uri: &'a str,
    /// The authorization request's parameters, sent back as hidden fields.
    pub hidden: Vec<(&'static str, &'a str)>,
    /// A message above the form (a wrong password).
    pub notice: Option<&'a str>,
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;\
padding:0 1rem;color:#1d1d1f}h1{font-size:1.3rem}dl{display:grid;grid-template-columns:auto 1fr;\
gap:.3rem 1rem}dt{color:#555}dd{margin:0;word-break:break-all}label{display:block;\
margin:.8rem 0 .2rem}input[type=text],input[type=password]{width:100%;padding:.4rem;\
box-sizing:border-box}.notice{background:#fde8e8;border:1px solid #e0a0a0;padding:.6rem}\
.buttons{margin-top:1.2rem;display:flex;gap:.8rem}button{padding:.5rem 1.2rem}";

/// The consent form.
pub(super) fn consent(c: &Consent<'_>, status: StatusCode) -> Response<Full<Bytes>> {
    let hidden: String = c
        .hidden
        .iter()
        .map(|(name, value)| {
            format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                escape(value)
            )
        })
        .collect();
    let notice = c
        .notice
        .map(|n| format!("<p class=\"notice\" role=\"alert\">{}</p>", escape(n)))
        .unwrap_or_default();
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>Authorize provisioning · scim-sidecar</title><style>{STYLE}</style></head><body>\
<h1>Authorize provisioning</h1>\
<p>The client below asks for a token to provision users and groups of this tenant through \
SCIM, for as long as its refresh tokens are renewed or until an operator revokes them \
(<code>scim-sidecar tokens revoke</code>).</p>\
<dl><dt>Tenant</dt><dd id=\"tenant\">{tenant}</dd><dt>Client</dt><dd id=\"client\">{client}</dd>\
<dt>Returns to</dt><dd id=\"redirect\">{redirect}</dd></dl>{notice}\
<form method=\"post\" action=\"/oauth2/authorize\">{hidden}\
<label for=\"username\">Approver username</label>\
<input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" required>\
<label for=\"password\">Password</label>\
<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" \
required>\
<div class=\"buttons\"><button type=\"submit\" name=\"decision\" value=\"approve\">Approve\
</button><button type=\"submit\" name=\"decision\" value=\"deny\" formnovalidate>Deny</button>\
</div></form></body></html>",
        tenant = escape(c.tenant),
        client = escape(c.client_id),
        redirect = escape(c.redirect_uri),
    );
    html(status, body, Some(c.redirect_uri))
}

/// An error page: the request cannot go back to the client (unknown client, redirect URI not
/// registered), so it is told to the person at the browser.
pub(super) fn error(status: StatusCode, title: &str, detail: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>{title} · scim-sidecar</title><style>{STYLE}</style></head><body>\
<h1>{title}</h1><p class=\"notice\" role=\"alert\" id=\"error\">{detail}</p></body></html>",
        title = escape(title),
        detail = escape(detail),
    );
    html(status, body, None)
}

/// An HTML answer that no frame may show, no cache may keep, and whose form may post only
/// here (and be redirected to `redirect_to`'s origin).
fn html(status: StatusCode, body: String, redirect_to: Option<&str>) -> Response<Full<Bytes>> {
    let form_action = match redirect_to.and_then(origin) {
        Some(o) => format!("'self' {o}"),
        None => "'self'".to_owned(),
    };
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

/// `scheme://authority` of an absolute URI.
fn origin(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty() && !authority.contains(['\'', ';', ' ', '"']))
        .then(|| format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_the_page_is_locked_down() {
        let c = Consent {
            tenant: "acme",
            client_id: "<script>alert(1)</script>",
            redirect_uri: "https://okta.example/cb?a=1&b=\"2\"",
            hidden: vec![("state", "x\"><img src=x>")],
            notice: None,
        };
        let resp = consent(&c, StatusCode::OK);
        let csp = resp.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("form-action 'self' https://okta.example;"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(resp.headers()[header::X_FRAME_OPTIONS], "DENY");
        let body = futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(
            resp.into_body(),
        ))
        .unwrap()
        .unwrap()
        .to_bytes();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            !body.contains("<script>") && !body.contains("<img"),
            "{body}"
        );
        assert!(body.contains("&lt;script&gt;") && body.contains("x&quot;&gt;&lt;img"));
        assert_eq!(
            origin("http://127.0.0.1:9/cb"),
            Some("http://127.0.0.1:9".into())
        );
        assert_eq!(origin("https://a';b/x"), None);
    }
}
