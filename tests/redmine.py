#!/usr/bin/env python3
"""Okta's and Entra ID's flows through scim-sidecar against a real Redmine (Debian's packages).

Called by tests/redmine.sh, which installs the packages and builds the binary. Everything
runs in a temporary directory on loopback and is torn down afterwards: a copy of Debian's
Redmine tree (15 MB) with its own instance (SQLite database, secret, logs), Redmine under
WEBrick on port 0, and `scim-sidecar serve` on port 0 with mappings/redmine.toml. The flows
speak SCIM to the sidecar and check Redmine's own state through its REST API after each
step. Standard library only.

Usage: tests/redmine.py --bin target/release/scim-sidecar [--keep]
Exit: 0 every step held, 1 a step failed (named), 2 setup failed.
"""

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REDMINE_TREE = "/usr/share/redmine"
STARTUP_LIMIT = float(os.environ.get("REDMINE_STARTUP_TIMEOUT", "180"))
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"

STEPS = 0


def log(msg):
    print(f"[redmine.py] {msg}", file=sys.stderr, flush=True)


class SetupError(Exception):
    pass


class StepFailed(Exception):
    pass


def check(cond, what):
    """One asserted step; the message names what should have held."""
    global STEPS
    if not cond:
        raise StepFailed(what)
    STEPS += 1


def wait_until(probe, what, limit=STARTUP_LIMIT):
    """Polls `probe` until it returns a true value, at most `limit` seconds."""
    deadline = time.monotonic() + limit
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SetupError(f"gave up waiting for {what} after {limit:.0f} s")
        time.sleep(0.1)


def http(method, url, body=None, headers=None):
    """(status, parsed JSON or text or None, headers) of one request."""
    data = None
    h = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, raw, rh = resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as e:
        status, raw, rh = e.code, e.read(), e.headers
    text = raw.decode("utf-8", "replace")
    try:
        parsed = json.loads(text) if text.strip() else None
    except ValueError:
        parsed = text
    return status, parsed, rh


class Redmine:
    """A Redmine instance in `tmp`, under WEBrick on a free loopback port."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.tree = os.path.join(tmp, "redmine")
        self.proc = None
        self.env = dict(os.environ, REDMINE_INSTANCE="scim", RAILS_ENV="production")

    def prepare(self):
        if not os.path.isdir(REDMINE_TREE):
            raise SetupError(f"{REDMINE_TREE} is missing: install Debian's redmine package")
        shutil.copytree(REDMINE_TREE, self.tree, symlinks=True)
        # The copy's instance lives here, not under /var/lib/redmine.
        os.unlink(os.path.join(self.tree, "instances"))
        lock = os.path.join(self.tree, "Gemfile.lock")
        os.unlink(lock)
        shutil.copyfile("/var/lib/redmine/Gemfile.lock", lock)
        inst = os.path.join(self.tree, "instances", "scim")
        for d in ("config", "tmp", "log", "files"):
            os.makedirs(os.path.join(inst, d))
        with open(os.path.join(inst, "config", "database.yml"), "w") as f:
            f.write(
                "production:\n  adapter: sqlite3\n"
                f"  database: {self.tmp}/redmine.sqlite3\n  encoding: utf8\n"
            )
        with open(os.path.join(inst, "config", "secret_key.txt"), "w") as f:
            f.write(secrets.token_hex(32))
        self.run(["bin/rake", "db:migrate"], "the database migration")
        setup = os.path.join(self.tmp, "setup.rb")
        with open(setup, "w") as f:
            f.write(
                "Setting.rest_api_enabled = '1'\n"
                "admin = User.find_by_login('admin')\n"
                "puts \"KEY=#{admin.api_key}\"\n"
                "%w[Support Engineering].each { |n| g = Group.create!(lastname: n); "
                "puts \"GROUP=#{g.id}=#{n}\" }\n"
                "cf = UserCustomField.create!(name: 'Okta ID', field_format: 'string', "
                "editable: true, visible: true)\n"
                "puts \"FIELD=#{cf.id}\"\n"
                # Redmine makes its built-in Anonymous user and groups on first need (the
                # first user deletion): made now, deleting the newest account frees its id.
                "User.anonymous; Group.anonymous; Group.non_member\n"
            )
        out = self.run(["bin/rails", "runner", setup], "the setup (REST API, groups, field)")
        self.api_key = re.search(r"^KEY=(\w+)$", out, re.M).group(1)
        self.groups = {
            name: gid for gid, name in re.findall(r"^GROUP=(\d+)=(\w+)$", out, re.M)
        }
        self.field = re.search(r"^FIELD=(\d+)$", out, re.M).group(1)

    def run(self, argv, what):
        p = subprocess.run(
            argv, cwd=self.tree, env=self.env, capture_output=True, text=True,
            timeout=STARTUP_LIMIT,
        )
        if p.returncode != 0:
            raise SetupError(f"{what} failed ({p.returncode}):\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
        return p.stdout

    def start(self):
        self.log_path = os.path.join(self.tmp, "webrick.log")
        logf = open(self.log_path, "w")
        # Debian's Gemfile lacks webrick (Ruby 3 no longer bundles it): load it first.
        self.proc = subprocess.Popen(
            ["ruby", "-rwebrick", "/usr/bin/rackup", "-s", "webrick", "-o", "127.0.0.1",
             "-p", "0", "config.ru"],
            cwd=self.tree, env=self.env, stdout=logf, stderr=subprocess.STDOUT,
        )

        def port():
            if self.proc.poll() is not None:
                raise SetupError(f"Redmine exited:\n{open(self.log_path).read()[-3000:]}")
            m = re.search(r"HTTPServer#start: pid=\d+ port=(\d+)", open(self.log_path).read())
            return m and m.group(1)

        self.url = f"http://127.0.0.1:{wait_until(port, 'Redmine to listen')}"
        log(f"Redmine at {self.url}")

    def api(self, method, path, body=None):
        return http(method, self.url + path, body, {"X-Redmine-API-Key": self.api_key})

    def user(self, legacy_id):
        status, body, _ = self.api("GET", f"/users/{legacy_id}.json")
        return body["user"] if status == 200 else None

    def by_login(self, login):
        _, body, _ = self.api("GET", "/users.json?status=&name=" + urllib.parse.quote(login))
        ids = [u["id"] for u in body["users"] if u["login"] == login]
        return self.user(ids[0]) if ids else None

    def members(self, gid):
        _, body, _ = self.api("GET", f"/groups/{gid}.json?include=users")
        return sorted(u["id"] for u in body["group"]["users"])

    def okta_id(self, user):
        for cf in user.get("custom_fields", []):
            if str(cf["id"]) == self.field:
                return cf.get("value")
        return None

    def stop(self):
        stop(self.proc)


class Sidecar:
    """`scim-sidecar serve` on a free loopback port, fronting `redmine`."""

    def __init__(self, binary, tmp, redmine):
        self.binary, self.tmp, self.redmine = binary, tmp, redmine
        self.token = secrets.token_urlsafe(24)
        # A second tenant on the same Redmine: members read from the users list filtered by
        # group, written back as the whole list (PUT /groups/N.json {"group": {"user_ids"}}).
        self.whole_list_token = secrets.token_urlsafe(24)

    def start(self):
        # The shipped mapping, with this Redmine's custom field id.
        with open(os.path.join(ROOT, "mappings", "redmine.toml")) as f:
            mapping = f.read().replace("/custom_fields[id=1]/value",
                                       f"/custom_fields[id={self.redmine.field}]/value")
        mpath = os.path.join(self.tmp, "redmine.toml")
        with open(mpath, "w") as f:
            f.write(mapping)
        members_line = next(l for l in mapping.splitlines() if l.startswith("members = "))
        whole = mapping.replace(members_line, (
            'members = { method = "GET", path = "/users.json", query = { group_id = '
            '"{legacy_id}", status = "" }, items = "/users", total = "/total_count", '
            'member_id = "/id", member_display = "/login" }\n'
            'set_members = { method = "PUT", path = "/groups/{legacy_id}.json", '
            'envelope = "/group", batch = { field = "user_ids", max = 1000, ids = "number" } }'))
        whole = "\n".join(l for l in whole.splitlines()
                          if not l.startswith(("add_member = ", "remove_member = ")))
        wpath = os.path.join(self.tmp, "redmine-whole-list.toml")
        with open(wpath, "w") as f:
            f.write(whole)
        cpath = self.config = os.path.join(self.tmp, "sidecar.toml")
        with open(cpath, "w") as f:
            f.write(
                "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n"
                f"data_dir = \"{self.tmp}/sidecar-data\"\nlog_format = \"json\"\n\n"
                "[tenants.redmine]\ncustomer_id = \"redmine\"\n"
                f"legacy_base_url = \"{self.redmine.url}\"\nmapping = \"{mpath}\"\n"
                f"api_key = {{ value = \"{self.redmine.api_key}\" }}\n"
                f"tokens = [{{ value = \"{self.token}\" }}]\n\n"
                "[tenants.redmine_whole_list]\ncustomer_id = \"redmine\"\n"
                f"legacy_base_url = \"{self.redmine.url}\"\nmapping = \"{wpath}\"\n"
                f"api_key = {{ value = \"{self.redmine.api_key}\" }}\n"
                f"tokens = [{{ value = \"{self.whole_list_token}\" }}]\n"
            )
        self.log_path = os.path.join(self.tmp, "sidecar.log")
        logf = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--config", cpath], stdout=logf, stderr=subprocess.STDOUT,
            env=dict(os.environ, SCIM_SIDECAR_LOG="info"),
        )

        def addr():
            if self.proc.poll() is not None:
                raise SetupError(f"the sidecar exited:\n{open(self.log_path).read()[-3000:]}")
            for line in open(self.log_path):
                try:
                    v = json.loads(line)
                except ValueError:
                    continue
                if v.get("message") == "scim-sidecar serving":
                    return v["addr"]
            return None

        self.base = f"http://{wait_until(addr, 'the sidecar to serve')}/scim/v2"
        log(f"sidecar at {self.base}")

    def scim(self, method, path, body=None, token=None):
        headers = {"Authorization": f"Bearer {token or self.token}",
                   "Accept": "application/scim+json"}
        return http(method, self.base + path, body, headers)

    def stop(self):
        stop(self.proc)


def stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def q(filter_text):
    return urllib.parse.quote(filter_text)


def okta_user(login, given, family, external_id):
    return {
        "schemas": [USER], "userName": login,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": True, "value": login, "type": "work"}],
        "displayName": f"{given} {family}", "locale": "en-US", "externalId": external_id,
        "groups": [], "password": secrets.token_urlsafe(8), "active": True,
    }


def create(sc, body):
    status, user, _ = sc.scim("POST", "/Users", body)
    check(status == 201, f"POST /Users {body['userName']} answers 201 (got {status}: {user})")
    return user


# ------------------------------------------------------------------------------- the flows
def spec_test(sc, rm):
    """Okta's SPEC test and "Test API Credentials"."""
    status, body, _ = sc.scim("GET", "/Users?startIndex=1&count=2")
    check(status == 200 and LIST in body["schemas"], f"GET /Users is a ListResponse ({status})")
    check(any(r["userName"] == "admin" for r in body["Resources"]),
          "Redmine's admin is listed as a SCIM user")
    check(all(r["active"] is True for r in body["Resources"]),
          "listed users read active (their state is completed with get)")
    status, body, _ = sc.scim("GET", "/Groups?startIndex=1&count=100")
    names = sorted(r["displayName"] for r in body["Resources"])
    check(status == 200 and names == ["Engineering", "Support"],
          f"GET /Groups lists Redmine's groups ({status}, {names})")
    status, body, _ = sc.scim("GET", "/Users?filter=" + q('userName eq "abcdefgh@atko.com"'))
    check(status == 200 and body["totalResults"] == 0, "an unknown userName finds nobody")
    status, body, _ = sc.scim("GET", "/Users/010101001010101011001010101011")
    check(status == 404 and body["detail"], "an unknown id is 404 with a detail")
    status, _, _ = sc.scim("GET", "/Users?count=1", token="not-the-token")
    check(status == 401, "a wrong token is 401")


def okta_lifecycle(sc, rm):
    """Assign (lookup, create), read, duplicate, profile update (GET + PUT), deactivate,
    reassign (lookup, reactivate), unassign by DELETE."""
    login = f"jane.doe.{secrets.token_hex(3)}@example.com"
    status, body, _ = sc.scim(
        "GET", "/Users?filter=" + q(f'userName eq "{login}"') + "&startIndex=1&count=100")
    check(status == 200 and body["totalResults"] == 0, "the lookup before a create finds nobody")
    ext = "00u" + secrets.token_hex(8)
    user = create(sc, okta_user(login, "Jane", "Doe", ext))
    check(user["active"] is True and user["externalId"] == ext and "password" not in user,
          f"the created user is active, keeps externalId, hides password: {user}")
    r = rm.by_login(login)
    check(r is not None and (r["firstname"], r["lastname"], r["mail"], r["status"]) ==
          ("Jane", "Doe", login, 1), f"Redmine has the user, active: {r}")
    check(rm.okta_id(r) == ext, f"Redmine's Okta ID field holds externalId: {r}")
    sid = user["id"]
    status, got, _ = sc.scim("GET", f"/Users/{sid}")
    check(status == 200 and got["name"] == {"givenName": "Jane", "familyName": "Doe"}
          and got["emails"][0]["value"] == login, f"GET /Users/{{id}} reads it back: {got}")
    dup = okta_user(login, "Jane", "Doe", None)
    del dup["externalId"]
    status, body, _ = sc.scim("POST", "/Users", dup)
    check(status == 409 and body["scimType"] == "uniqueness",
          f"a second create of the login is 409 uniqueness ({status}: {body})")
    status, body, _ = sc.scim(
        "GET", "/Users?filter=" + q(f'userName eq "{login}"') + "&startIndex=1&count=100")
    check(status == 200 and body["totalResults"] == 1 and body["Resources"][0]["id"] == sid
          and body["Resources"][0]["active"] is True, f"the lookup finds the user, active: {body}")
    # Profile update: Okta copies the GET answer, changes it, PUTs it back.
    got["name"]["familyName"] = "Doe-Smith"
    status, put, _ = sc.scim("PUT", f"/Users/{sid}", got)
    check(status == 200 and put["name"]["familyName"] == "Doe-Smith", f"PUT answers 200 ({status})")
    check(rm.user(r["id"])["lastname"] == "Doe-Smith", "Redmine has the new last name")
    # Deactivate (OIN: PATCH, path-less).
    status, body, _ = sc.scim("PATCH", f"/Users/{sid}", {
        "schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]})
    check(status == 200 and body["active"] is False, f"deactivation answers active false ({status})")
    check(rm.user(r["id"])["status"] == 3, "Redmine locked the account (status 3)")
    status, body, _ = sc.scim("GET", f"/Users/{sid}")
    check(status == 200 and body["active"] is False, "a deactivated user reads inactive")
    # Reassign: the lookup finds the inactive user, Okta reactivates it.
    status, body, _ = sc.scim(
        "GET", "/Users?filter=" + q(f'userName eq "{login}"') + "&startIndex=1&count=100")
    check(body["totalResults"] == 1 and body["Resources"][0]["active"] is False,
          "the lookup finds the locked user as inactive")
    status, body, _ = sc.scim("PATCH", f"/Users/{sid}", {
        "schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": True}}]})
    check(status == 200 and body["active"] is True, "reactivation answers active true")
    check(rm.user(r["id"])["status"] == 1, "Redmine unlocked the account (status 1)")
    # DELETE locks the account (history kept) and the SCIM id is gone.
    status, _, _ = sc.scim("DELETE", f"/Users/{sid}")
    check(status == 204, f"DELETE answers 204 ({status})")
    check(rm.user(r["id"])["status"] == 3, "Redmine keeps the deleted user, locked")
    status, _, _ = sc.scim("GET", f"/Users/{sid}")
    check(status == 404, "the deleted id answers 404")
    # Assigned again: the create meets the locked account, which is unlocked and updated.
    again = create(sc, okta_user(login, "Jane", "Doe", ext))
    check(again["active"] is True, "a create meeting the locked account takes it over")
    r2 = rm.by_login(login)
    check(r2["id"] == r["id"] and r2["status"] == 1 and r2["lastname"] == "Doe",
          f"Redmine unlocked and updated the same account: {r2}")


def okta_group_push(sc, rm):
    """Link an existing group, push members (add, repeat, remove, replace), refusals."""
    tag = secrets.token_hex(3)
    u1 = create(sc, okta_user(f"ann.{tag}@example.com", "Ann", "One", "00ua" + tag))
    u2 = create(sc, okta_user(f"bob.{tag}@example.com", "Bob", "Two", "00ub" + tag))
    id1 = rm.by_login(u1["userName"])["id"]
    id2 = rm.by_login(u2["userName"])["id"]
    status, body, _ = sc.scim("GET", "/Groups?filter=" + q('displayName eq "Support"'))
    check(status == 200 and body["totalResults"] == 1, f"the group is found by name ({body})")
    gid = body["Resources"][0]["id"]
    legacy_gid = int(rm.groups["Support"])
    status, body, _ = sc.scim("GET", f"/Groups/{gid}")
    check(status == 200 and body["displayName"] == "Support", "GET /Groups/{id} reads it")

    def patch(ops):
        return sc.scim("PATCH", f"/Groups/{gid}", {"schemas": [PATCH_OP], "Operations": ops})

    status, _, _ = patch([{"op": "add", "path": "members",
                           "value": [{"value": u1["id"]}, {"value": u2["id"]}]}])
    check(status in (200, 204), f"adding two members answers 2xx ({status})")
    check(rm.members(legacy_gid) == sorted([id1, id2]), "Redmine's group has both")
    status, _, _ = patch([{"op": "add", "path": "members", "value": [{"value": u1["id"]}]}])
    check(status in (200, 204), f"adding a member again is done, not an error ({status})")
    status, _, _ = patch([{"op": "remove", "path": f'members[value eq "{u2["id"]}"]'}])
    check(status in (200, 204) and rm.members(legacy_gid) == [id1],
          f"removing one leaves the other ({status})")
    status, _, _ = sc.scim("PUT", f"/Groups/{gid}", {
        "schemas": [GROUP], "displayName": "Support", "members": [{"value": u2["id"]}]})
    check(status == 200 and rm.members(legacy_gid) == [id2],
          f"a PUT replaces the members ({status}, {rm.members(legacy_gid)})")
    status, body, _ = patch([{"op": "replace", "path": "displayName", "value": "Helpdesk"}])
    check(status == 400 and body["scimType"] == "mutability",
          f"a rename is refused: Redmine owns group names ({status})")
    status, _, _ = sc.scim("POST", "/Groups", {"schemas": [GROUP], "displayName": "New"})
    check(status == 405, f"creating a group is 405 ({status})")


def entra(sc, rm):
    """Entra ID's dialect: Test Connection, create, lookups, capitalised ops, string booleans,
    filtered paths, the path-less dotted form."""
    status, body, _ = sc.scim("GET", "/Users?filter=" + q(f'userName eq "{uuid.uuid4()}"'))
    check(status == 200 and body["totalResults"] == 0, "Test Connection: nobody")
    ext = str(uuid.uuid4())
    login = f"test_user_{secrets.token_hex(3)}@testuser.com"
    status, user, _ = sc.scim("POST", "/Users", {
        "schemas": [USER, ENTERPRISE], "externalId": ext, "userName": login, "active": True,
        "emails": [{"primary": True, "type": "work", "value": login}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Test User", "familyName": "User", "givenName": "Test"},
        "roles": []})
    check(status == 201, f"Entra's create answers 201 ({status}: {user})")
    sid = user["id"]
    r = rm.by_login(login)
    check(r and rm.okta_id(r) == ext, "Redmine keeps Entra's externalId in the field")
    status, body, _ = sc.scim("GET", "/Users?filter=" + q(f'externalId eq "{ext}"'))
    check(status == 200 and body["totalResults"] == 1 and body["Resources"][0]["id"] == sid,
          f"a lookup by externalId finds it ({body})")
    status, _, _ = sc.scim("PATCH", f"/Users/{sid}", {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}]})
    check(status in (200, 204) and rm.user(r["id"])["status"] == 3,
          f"Replace active \"False\" locks the account ({status})")
    new_mail = f"updated_{secrets.token_hex(3)}@testuser.com"
    status, _, _ = sc.scim("PATCH", f"/Users/{sid}", {
        "schemas": [PATCH_OP], "Operations": [
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": new_mail},
            {"op": "Replace", "path": "name.familyName", "value": "Updated"}]})
    got = rm.user(r["id"])
    check(status in (200, 204) and got["mail"] == new_mail and got["lastname"] == "Updated",
          f"filtered-path and sub-attribute replaces reach Redmine ({status}, {got})")
    status, _, _ = sc.scim("PATCH", f"/Users/{sid}", {
        "schemas": [PATCH_OP], "Operations": [
            {"op": "replace", "value": {"name.givenName": "Kkom", "active": True}}]})
    got = rm.user(r["id"])
    check(status in (200, 204) and got["firstname"] == "Kkom" and got["status"] == 1,
          f"the path-less dotted form renames and unlocks ({status}, {got})")


def redmine_refusals(sc, rm):
    """Redmine's own validation told in SCIM terms."""
    status, body, _ = sc.scim("POST", "/Users", {
        "schemas": [USER], "userName": f"bad.{secrets.token_hex(3)}@example.com",
        "name": {"givenName": "No", "familyName": "Mail"},
        "emails": [{"primary": True, "value": "not-an-address"}]})
    check(status == 400 and body["scimType"] == "invalidValue",
          f"an address Redmine refuses is 400 invalidValue ({status}: {body})")
    check(body["detail"] == "emails[primary].value: is invalid",
          f"the detail names the SCIM attribute, not Redmine's label: {body['detail']!r}")
    status, body, _ = sc.scim("POST", "/Users", {
        "schemas": [USER], "userName": f"noname.{secrets.token_hex(3)}@example.com",
        "emails": [{"primary": True, "value": f"noname.{secrets.token_hex(3)}@example.com"}]})
    check(status == 400 and "name.givenName: cannot be blank" in body["detail"]
          and "name.familyName: cannot be blank" in body["detail"],
          f"Redmine's required names are told by SCIM name ({status}: {body})")


def check_live(sc, rm):
    """`scim-sidecar check --live`: the mapping reads this Redmine, every pointer resolves."""
    p = subprocess.run([sc.binary, "check", "--live", "--config", sc.config],
                       capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, f"check --live passes:\n{p.stdout}{p.stderr}")
    for expected in [
        "tenant redmine: users.calls.get: reads user",
        "tenant redmine: users.active.field: /status is 1: active",
        "tenant redmine: users.fingerprint: /created_on reads",
        "tenant redmine: users.filters.username: name=",
        "tenant redmine: groups.calls.get: group",
    ]:
        check(any(l.startswith(expected) and l.endswith(": ok") for l in p.stdout.splitlines()),
              f"check --live says {expected!r}:\n{p.stdout}")


def reused_ids(sc, rm):
    """Redmine on SQLite gives a deleted account's id to the next one: the new account gets
    a new SCIM id (users.fingerprint = created_on), the old SCIM id stays gone."""

    def redmine_deletes(legacy_id):
        status, _, _ = rm.api("DELETE", f"/users/{legacy_id}.json")
        check(status in (200, 204) and rm.user(legacy_id) is None,
              f"an administrator deletes user {legacy_id} in Redmine ({status})")

    def next_second(created_on):
        # Redmine's times have whole seconds: the next account is created in a later one.
        wait_until(lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) > created_on,
                   "the clock to pass the deleted account's creation second", limit=5)

    def reused(old_id, login):
        user = create(sc, okta_user(login, "Re", "Used", "00u" + secrets.token_hex(8)))
        r = rm.by_login(login)
        check(r is not None and r["id"] == old_id,
              f"Redmine gave the new account the deleted account's id {old_id}: {r}")
        return user

    tag = secrets.token_hex(3)
    # Deleted through SCIM (locked), then deleted in Redmine: the tombstone stays.
    ann = create(sc, okta_user(f"ann.reused.{tag}@example.com", "Ann", "Old", "00ua" + tag))
    ann_r = rm.by_login(ann["userName"])
    status, _, _ = sc.scim("DELETE", f"/Users/{ann['id']}")
    check(status == 204, f"DELETE answers 204 ({status})")
    redmine_deletes(ann_r["id"])
    next_second(ann_r["created_on"])
    bob = reused(ann_r["id"], f"bob.reused.{tag}@example.com")
    check(bob["id"] != ann["id"], f"the new account has a new SCIM id ({bob['id']})")
    status, _, _ = sc.scim("GET", f"/Users/{ann['id']}")
    check(status == 404, f"the deleted account's SCIM id still answers 404 ({status})")
    status, got, _ = sc.scim("GET", f"/Users/{bob['id']}")
    check(status == 200 and got["userName"] == bob["userName"],
          f"the new account reads under its own id ({status})")
    status, body, _ = sc.scim("GET", "/Users?filter=" + q(f'userName eq "{bob["userName"]}"'))
    check(status == 200 and [u["id"] for u in body["Resources"]] == [bob["id"]],
          f"the lookup finds the new account under its new id: {body}")
    # Deleted in Redmine only (the sidecar never told): the id is found to be someone else's.
    cy = create(sc, okta_user(f"cy.reused.{tag}@example.com", "Cy", "Old", "00uc" + tag))
    cy_r = rm.by_login(cy["userName"])
    redmine_deletes(cy_r["id"])
    next_second(cy_r["created_on"])
    dee = reused(cy_r["id"], f"dee.reused.{tag}@example.com")
    check(dee["id"] != cy["id"], f"the next account has a new SCIM id ({dee['id']})")
    status, _, _ = sc.scim("GET", f"/Users/{cy['id']}")
    check(status == 404, f"the vanished account's SCIM id answers 404, not Dee ({status})")
    status, body, _ = sc.scim("PATCH", f"/Users/{cy['id']}", {
        "schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]})
    check(status == 404 and rm.user(cy_r["id"])["status"] == 1,
          f"a deactivation of the vanished account leaves Dee alone ({status})")


def whole_list_membership(sc, rm):
    """The same Redmine through a mapping whose members come from the users list filtered by
    group and go back as the whole list: Okta's adds, removes and replace, Redmine's group
    asserted after each."""
    tok = sc.whole_list_token
    tag = secrets.token_hex(3)
    users = [create_as(sc, tok, okta_user(f"{n}.list.{tag}@example.com", n.title(), "List",
                                           f"00ul{n}{tag}")) for n in ("ann", "bob", "cy")]
    ids = [rm.by_login(u["userName"])["id"] for u in users]
    status, body, _ = sc.scim("GET", "/Groups?filter=" + q('displayName eq "Engineering"'),
                              token=tok)
    check(status == 200 and body["totalResults"] == 1, f"Engineering is found ({body})")
    gid, legacy_gid = body["Resources"][0]["id"], int(rm.groups["Engineering"])

    def patch(ops):
        return sc.scim("PATCH", f"/Groups/{gid}", {"schemas": [PATCH_OP], "Operations": ops},
                       token=tok)[0]

    status = patch([{"op": "add", "path": "members",
                     "value": [{"value": users[0]["id"]}, {"value": users[1]["id"]}]}])
    check(status in (200, 204) and rm.members(legacy_gid) == sorted(ids[:2]),
          f"two adds: Redmine's group holds both ({status}, {rm.members(legacy_gid)})")
    status = patch([{"op": "remove", "path": f'members[value eq "{users[0]["id"]}"]'}])
    check(status in (200, 204) and rm.members(legacy_gid) == [ids[1]],
          f"a removal: the rest of the list stays ({status}, {rm.members(legacy_gid)})")
    status, got, _ = sc.scim("GET", f"/Groups/{gid}", token=tok)
    check(status == 200 and [m["value"] for m in got.get("members", [])] == [users[1]["id"]],
          f"the members read from the filtered user list: {got}")
    status, _, _ = sc.scim("PUT", f"/Groups/{gid}", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering",
        "members": [{"value": users[2]["id"]}]}, token=tok)
    check(status == 200 and rm.members(legacy_gid) == [ids[2]],
          f"a PUT: Redmine's group is exactly the list given ({status}, {rm.members(legacy_gid)})")


def create_as(sc, token, body):
    status, user, _ = sc.scim("POST", "/Users", body, token=token)
    check(status == 201, f"POST /Users {body['userName']} answers 201 (got {status}: {user})")
    return user


FLOWS = [spec_test, check_live, okta_lifecycle, reused_ids, okta_group_push, entra,
         redmine_refusals, whole_list_membership]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="scim-redmine-")
    rm, sc = Redmine(tmp), None
    failed = None
    try:
        t0 = time.monotonic()
        rm.prepare()
        rm.start()
        sc = Sidecar(os.path.abspath(args.bin), tmp, rm)
        sc.start()
        log(f"set up in {time.monotonic() - t0:.1f} s")
        for flow in FLOWS:
            before = STEPS
            try:
                flow(sc, rm)
            except StepFailed as e:
                failed = f"{flow.__name__}: {e}"
                break
            log(f"{flow.__name__}: {STEPS - before} steps held")
    except SetupError as e:
        log(f"setup failed: {e}")
        return 2
    finally:
        if sc:
            sc.stop()
        rm.stop()
        if failed:
            for name in ("sidecar.log", "webrick.log"):
                path = os.path.join(tmp, name)
                if os.path.exists(path):
                    log(f"--- last lines of {name}")
                    sys.stderr.write("".join(open(path).readlines()[-40:]))
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if failed:
        log(f"FAILED after {STEPS} steps: {failed}")
        return 1
    log(f"{len(FLOWS)} flows, {STEPS} steps held against Redmine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
