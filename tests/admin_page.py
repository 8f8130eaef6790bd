"""The admin page in a real browser (Debian's headless Chromium, driven by Playwright).

Starts `scim-sidecar dev` on free loopback ports, runs an Okta-shaped flow over SCIM with one
forced failure (a create whose userName another Okta user holds: 409 uniqueness), a success
after it, then opens /admin/ in Chromium and asserts from the rendered page (DOM queries and
the laid-out boxes, not the HTML source):

- the first section of the page is "Failed operations", and it holds exactly the failure;
- that row shows the userName, "failed (409)" and the SCIM error: scimType and the very
  detail the identity provider received;
- the failure is drawn above every row of "Recent operations", which lists the successes
  newest first, the failure among them;
- the cross-reference table shows the tenant's users;
- the page loaded no external resource and ran no script.

A screenshot is left in target/admin-page.png. Usage: admin_page.py BINARY
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium tries to reach Google's hosts, which this
# machine's closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def fail(message: str) -> None:
    print(f"admin_page.py: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def start_dev(binary: str, data_dir: str) -> tuple[subprocess.Popen, dict[str, str]]:
    proc = subprocess.Popen(
        [
            binary,
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    found: dict[str, str] = {}
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline and len(found) < 3:
        line = proc.stdout.readline()
        if not line:
            break
        for key, pattern in [
            ("base", r"^SCIM base URL: (\S+)"),
            ("token", r"^Bearer token: (\S+)"),
            ("admin", r"^Admin: (http://\S+?)/admin/"),
        ]:
            m = re.match(pattern, line)
            if m:
                found[key] = m.group(1)
    if len(found) < 3:
        proc.kill()
        fail(f"dev did not print its addresses (got {found})")
    return proc, found


def scim(env: dict[str, str], method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(env["base"] + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {env['token']}")
    if data is not None:
        req.add_header("Content-Type", "application/scim+json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else {}


def user(login: str, external_id: str) -> dict:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": login,
        "externalId": external_id,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": login, "primary": True, "type": "work"}],
        "active": True,
    }


def expect(status: int, want: int, body: dict, what: str) -> None:
    if status != want:
        fail(f"{what}: expected {want}, got {status}: {body}")


def run_flow(env: dict[str, str]) -> tuple[str, dict]:
    login = "ada.browser@example.com"
    status, body = scim(env, "GET", f"/Users?filter=userName%20eq%20%22{login}%22")
    expect(status, 200, body, "lookup")
    status, created = scim(env, "POST", "/Users", user(login, "00u-ada"))
    expect(status, 201, created, "create")
    uid = created["id"]
    patch = lambda active: {  # noqa: E731
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": active}}],
    }
    for active in (False, True):
        status, body = scim(env, "PATCH", f"/Users/{uid}", patch(active))
        expect(status, 200, body, f"active={active}")
    # The forced failure: another Okta user with the same userName.
    status, refused = scim(env, "POST", "/Users", user(login, "00u-someone-else"))
    expect(status, 409, refused, "conflicting create")
    # A success after the failure, so "newest first" alone would not put the failure on top.
    status, body = scim(env, "POST", "/Users", user("grace.browser@example.com", "00u-grace"))
    expect(status, 201, body, "second create")
    return login, refused


def check_page(env: dict[str, str], login: str, refused: dict, screenshot: str) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        response = page.goto(env["admin"] + "/admin/")
        if response is None or response.status != 200:
            fail(f"/admin/ answered {response.status if response else 'nothing'}")
        page.screenshot(path=screenshot, full_page=True)

        headings = page.locator("main h2").all_inner_texts()
        if not headings or not headings[0].startswith("Failed operations"):
            fail(f"the page does not open with the failures: headings {headings}")

        failures = page.locator("#failures tbody tr")
        if failures.count() != 1:
            fail(f"expected exactly one failed operation, found {failures.count()}")
        row = failures.first
        cell = lambda cls: row.locator(f"td.{cls}").inner_text().strip()  # noqa: E731
        if cell("subject") != login:
            fail(f"failure row names {cell('subject')!r}, not {login!r}")
        if cell("outcome") != "failed (409)":
            fail(f"failure row outcome {cell('outcome')!r}")
        want_detail = f"{refused['scimType']}: {refused['detail']}"
        if cell("detail") != want_detail:
            fail(f"failure row shows {cell('detail')!r}, the client got {want_detail!r}")
        if not row.is_visible():
            fail("the failure row is not visible")

        recent = page.locator("#recent tbody tr")
        if recent.count() != 5:
            fail(f"expected 5 recent operations, found {recent.count()}")
        fail_box = row.bounding_box()
        assert fail_box is not None
        for i in range(recent.count()):
            box = recent.nth(i).bounding_box()
            assert box is not None
            if box["y"] <= fail_box["y"]:
                fail(f"recent row {i} is drawn above the failure")
        actions = [
            recent.nth(i).locator("td.action").inner_text().strip() for i in range(recent.count())
        ]
        if actions != ["create User", "create User", "reactivate User", "deactivate User", "create User"]:
            fail(f"recent operations out of order: {actions}")
        if "failed" not in (recent.nth(1).get_attribute("class") or ""):
            fail("the failure is not marked among the recent operations")

        xref = page.locator("#xref tbody tr").first.locator("td").all_inner_texts()
        if xref[:3] != ["demo", "User", xref[2]] or int(xref[2]) < 2:
            fail(f"cross-reference counts look wrong: {xref}")

        scripts = page.evaluate("document.scripts.length")
        if scripts != 0:
            fail(f"the page carries {scripts} script(s)")
        others = [u for u in requests if not u.startswith(env["admin"])]
        if others or len(requests) != 1:
            fail(f"the page loaded other resources: {requests}")
        browser.close()


def main() -> None:
    if len(sys.argv) != 2:
        fail("usage: admin_page.py BINARY")
    binary = sys.argv[1]
    screenshot = os.path.join(os.path.dirname(os.path.abspath(binary)), "..", "admin-page.png")
    with tempfile.TemporaryDirectory() as data_dir:
        proc, env = start_dev(binary, os.path.join(data_dir, "data"))
        try:
            login, refused = run_flow(env)
            check_page(env, login, refused, os.path.normpath(screenshot))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(
        "admin_page.py: ok: the failure is first on the rendered page with its SCIM error "
        f"(screenshot {os.path.normpath(screenshot)})"
    )


if __name__ == "__main__":
    main()
