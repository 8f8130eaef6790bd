"""The OAuth 2.0 consent page in a real browser (Debian's headless Chromium, Playwright).

Starts `scim-sidecar serve` on free loopback ports with a tenant whose OAuth client has a
redirect URI on a small loopback HTTP server this script runs (it plays Okta's callback).
Then, the way an Okta admin clicks "Authenticate with <app>":

- the browser opens /oauth2/authorize (code + PKCE S256 + state); the rendered page shows the
  tenant, the client and where it will return, and carries no script, loads nothing else, and
  may not be framed (CSP frame-ancestors 'none', X-Frame-Options DENY);
- a wrong approver password keeps the browser on the page with an alert, no redirect;
- "Deny" brings the browser to the callback with error=access_denied and the state;
- "Approve" with the right password brings it to the callback with a code and the state;
- the callback's code, traded at /oauth2/token with the verifier, gives an access token that
  opens the tenant's SCIM API.

A screenshot is left in target/consent-page.png. Usage: consent_page.py BINARY
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from playwright.sync_api import sync_playwright

from admin_page import CHROMIUM, CHROMIUM_ARGS

APPROVER_PASSWORD = "consent-approver-pw-3c3c"
CLIENT_SECRET = "consent-client-secret-4d4d"


def fail(message: str) -> None:
    print(f"consent_page.py: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


class Callback(http.server.BaseHTTPRequestHandler):
    """Okta's callback: records each query it is sent to, answers a small page."""

    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/callback":  # the browser's /favicon.ico
            self.send_response(404)
            self.end_headers()
            return
        Callback.seen.append(dict(urllib.parse.parse_qsl(url.query)))
        body = b"<!doctype html><title>callback</title><p id=done>back at the client</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def hash_password(binary: str, password: str) -> str:
    out = subprocess.run(
        [binary, "hash-password"], input=password, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def start_serve(binary: str, config: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [binary, "serve", "--config", config],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SCIM_SIDECAR_LOG": "info"},
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("message") == "scim-sidecar serving":
            # Keep draining standard error so the process never blocks on a full pipe.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, f"http://{entry['addr']}"
    proc.kill()
    fail("serve did not start")
    raise AssertionError


def token_request(root: str, pairs: dict[str, str]) -> tuple[int, dict]:
    data = urllib.parse.urlencode(pairs).encode()
    req = urllib.request.Request(root + "/oauth2/token", data=data, method="POST")
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    basic = base64.b64encode(f"okta-consent:{CLIENT_SECRET}".encode()).decode()
    req.add_header("Authorization", f"Basic {basic}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def check(root: str, redirect: str, screenshot: str) -> None:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    )
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": "okta-consent",
            "redirect_uri": redirect,
            "state": "okta-state-77",
            "scope": "okta.users.manage",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    authorize = f"{root}/oauth2/authorize?{query}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 900, "height": 800})
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        response = page.goto(authorize)
        if response is None or response.status != 200:
            fail(f"/oauth2/authorize answered {response.status if response else 'nothing'}")
        headers = response.headers
        if "frame-ancestors 'none'" not in headers.get("content-security-policy", ""):
            fail(f"the page may be framed: {headers}")
        if headers.get("x-frame-options") != "DENY":
            fail(f"no X-Frame-Options: {headers}")
        shown = {k: page.locator(f"#{k}").inner_text().strip() for k in ("tenant", "client", "redirect")}
        if shown != {"tenant": "acme", "client": "okta-consent", "redirect": redirect}:
            fail(f"the page shows {shown}")
        if page.evaluate("document.scripts.length") != 0:
            fail("the consent page carries a script")
        if [u for u in requests if not u.startswith(root)]:
            fail(f"the page loaded other resources: {requests}")
        page.screenshot(path=screenshot, full_page=True)

        # A wrong password: the page again, with an alert; nothing reaches the callback.
        page.fill("#username", "approver")
        page.fill("#password", "not-the-password")
        page.click("button[value=approve]")
        page.wait_for_load_state()
        alert = page.locator("[role=alert]")
        if alert.count() != 1 or "wrong" not in alert.inner_text():
            fail("a wrong password does not show an alert on the page")
        if Callback.seen:
            fail(f"the callback was reached after a wrong password: {Callback.seen}")

        # Deny: back at the client with access_denied.
        page.click("button[value=deny]")
        page.wait_for_url(lambda url: url.startswith(redirect + "?"))
        denied = Callback.seen.pop()
        if denied != {
            "error": "access_denied",
            "error_description": "the approver denied the request",
            "state": "okta-state-77",
        }:
            fail(f"deny sent {denied}")

        # Approve: back at the client with a code and the state.
        page.goto(authorize)
        page.fill("#username", "approver")
        page.fill("#password", APPROVER_PASSWORD)
        page.click("button[value=approve]")
        page.wait_for_url(lambda url: url.startswith(redirect + "?"))
        if page.locator("#done").inner_text() != "back at the client":
            fail("the browser did not land on the callback page")
        approved = Callback.seen.pop()
        if approved.get("state") != "okta-state-77" or not approved.get("code", "").startswith("scscd_"):
            fail(f"approve sent {approved}")
        browser.close()

    status, tokens = token_request(
        root,
        {
            "grant_type": "authorization_code",
            "code": approved["code"],
            "redirect_uri": redirect,
            "code_verifier": verifier,
        },
    )
    if status != 200 or tokens.get("token_type") != "Bearer":
        fail(f"the code was not traded for tokens: {status} {tokens}")
    req = urllib.request.Request(root + "/scim/v2/ServiceProviderConfig")
    req.add_header("Authorization", f"Bearer {tokens['access_token']}")
    with urllib.request.urlopen(req, timeout=30) as resp:
        spc = json.loads(resp.read())
    types = [s["type"] for s in spc["authenticationSchemes"]]
    if "oauth2" not in types:
        fail(f"ServiceProviderConfig does not name oauth2: {types}")


def main() -> None:
    if len(sys.argv) != 2:
        fail("usage: consent_page.py BINARY")
    binary = os.path.abspath(sys.argv[1])
    root_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    screenshot = os.path.normpath(os.path.join(os.path.dirname(binary), "..", "consent-page.png"))
    callback = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Callback)
    threading.Thread(target=callback.serve_forever, daemon=True).start()
    redirect = f"http://127.0.0.1:{callback.server_address[1]}/callback"
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "sidecar.toml")
        with open(config, "w") as f:
            f.write(
                f"""[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
data_dir = "{tmp}/data"
log_format = "json"

[tenants.acme]
customer_id = "ACME"
legacy_base_url = "http://127.0.0.1:9"
mapping = "{root_dir}/mappings/marketing-center.toml"
api_key = {{ value = "unused-by-this-test" }}

[[tenants.acme.oauth.approvers]]
username = "approver"
password_hash = "{hash_password(binary, APPROVER_PASSWORD)}"

[[tenants.acme.oauth.clients]]
client_id = "okta-consent"
client_secret_hash = "{hash_password(binary, CLIENT_SECRET)}"
grants = ["authorization_code"]
redirect_uris = ["{redirect}"]
"""
            )
        proc, root = start_serve(binary, config)
        try:
            check(root, redirect, screenshot)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            callback.shutdown()
    print(f"consent_page.py: ok: consent, deny, approve and the token exchange (screenshot {screenshot})")


if __name__ == "__main__":
    main()
