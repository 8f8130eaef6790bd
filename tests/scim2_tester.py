#!/usr/bin/env python3
"""Run the scim2-tester conformance checks against a running SCIM server.

Driven by tests/scim2_tester.sh, which starts `scim-sidecar dev` and passes the base URL.
The bearer token is read from the SCIM_TOKEN environment variable (never from argv, which
other users of the machine can read).

Uses scim2_tester.check_server() directly rather than the `scim2 test` CLI command because the
CLI cannot restrict the run to one resource type (it would also exercise Groups, which this
server cannot create) and counts every non-SUCCESS status, SKIPPED included, as a failure.

Exit status: 0 when every check passed or is an expected failure listed below; 1 when any
other check failed (status ERROR or CRITICAL); 2 when the run itself could not be made
(bad arguments, no token, or the requested resource types produced no checks at all).
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
import json
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass

# This file is named like the package it drives; keep its own folder off the import path so
# `import scim2_tester` finds the installed checker, not this script.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

from httpx2 import Client  # noqa: E402
from scim2_client.engines.httpx2 import SyncSCIMClient  # noqa: E402
from scim2_tester import CheckResult, Status, check_server  # noqa: E402
from scim2_tester.utils import ResourceManager  # noqa: E402


@dataclass(frozen=True)
class ExpectedFailure:
    """A check that is allowed to fail, and why."""

    title: str
    """The check's name as printed in the report (the scim2-tester checker function name)."""
    reason: str | None
    r"""A regular expression searched in "<label> <reason>" as printed on the FAIL line (the
    label carries the attribute path of per-attribute PATCH checks, e.g. r"\[addresses\]");
    None matches every failure of that check."""
    why: str
    """Why this failure is expected. Required: no entry without a justification."""


# Expected failures. Empty on purpose: every check must pass until someone proves otherwise.
#
# To add one, run the script, copy the failing line's check name (and, for the per-attribute
# PATCH checks, a regex matching the attribute in its reason), and add an entry with a one-line
# justification tied to a real constraint of the legacy app or a deliberate design choice, e.g.
#
#   ExpectedFailure(
#       "check_add_attribute", r"\[addresses\]",
#       "legacy app rejects addresses.region values that are not US/CA codes; scim2-tester "
#       "sends random UUIDs there",
#   ),
#
# Entries that match nothing are reported as STALE so the list can be pruned.
EXPECTED_FAILURES: list[ExpectedFailure] = [
    ExpectedFailure(
        "object_creation",
        r"^Group/.*Link Group",
        "groups are owned by the Marketing Center: POST /Groups answers 405 with guidance to "
        "link an existing group (Okta: Push Groups → Link Group)",
    ),
    ExpectedFailure(
        "object_deletion",
        r"^Group/.*Link Group",
        "groups are owned by the Marketing Center: the check first creates a group, which "
        "answers 405 (and DELETE /Groups/{id} answers 405 too)",
    ),
] + [
    ExpectedFailure(
        title,
        r"^Group/.*\[members\].*display=",
        "a member's display is the user's logon name as the Marketing Center reports it; the "
        "display a client sends with a member is not stored",
    )
    for title in ("check_add_attribute", "check_replace_attribute")
] + [
    ExpectedFailure(
        title,
        r"^Group/.*externalId",
        "groups are linked, never created, by the identity provider, so an existing group has "
        "no externalId and the sidecar keeps none for groups (neither Okta's nor Entra's link "
        "sends one); the read checks run on existing groups and ask for it",
    )
    for title in (
        "object_query_with_attributes",
        "object_list_with_attributes",
        "search_with_attributes",
        "check_add_attribute",
        "check_replace_attribute",
    )
] + [
    ExpectedFailure(
        title,
        r"\[(emails|phoneNumbers|addresses)\].*primary=False",
        "the Marketing Center keeps one e-mail, one phone and one address per user; the sidecar "
        "always reports that value as the primary work element (primary: true, type: work), so a "
        "value sent with primary: false reads back with primary: true. Only fires when the "
        "checker happens to draw primary=False",
    )
    for title in ("check_add_attribute", "check_replace_attribute")
] + [
    ExpectedFailure(
        "check_remove_attribute",
        r"\[active\]",
        "active is the Marketing Center's archive state (IsActive/IsArchived): an account is "
        "either active or archived and cannot be neither, so `remove active` is refused with "
        "400 mutability instead of being silently ignored",
    ),
]

FAILING = (Status.ERROR, Status.CRITICAL)
PASSING = (Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE)


def result_label(result: CheckResult) -> str:
    """One identifying label per result: resource type, check name and attribute if any."""
    label = result.title or "?"
    if result.resource_type:
        label = f"{result.resource_type}/{label}"
    data = result.data
    if isinstance(data, dict) and isinstance(data.get("urn"), str):
        label = f"{label} [{data['urn']}]"
    return label


def one_line(text: str | None, limit: int = 400) -> str:
    """Collapse a reason to one printable line."""
    if not text:
        return ""
    flat = " | ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def expected_for(result: CheckResult) -> ExpectedFailure | None:
    """The allow-list entry covering a failed result, if any."""
    haystack = f"{result_label(result)} {result.reason or ''}"
    for entry in EXPECTED_FAILURES:
        if entry.title != result.title:
            continue
        if entry.reason is None or re.search(entry.reason, haystack, re.DOTALL):
            return entry
    return None


@contextmanager
def existing_resources(resource_type: str):
    """While active, checks that would create a `resource_type` resource to read it get an
    existing one the server lists instead (and nothing is deleted afterwards): the read checks
    of a link-only resource type then exercise GET, list, projections and search on real
    resources. Checks of other resource types are unaffected."""
    original = ResourceManager.create_and_register
    taken: Counter[str] = Counter()

    def create_and_register(self, model, fill_all=False):
        name = getattr(model, "__name__", "")
        if name != resource_type:
            return original(self, model, fill_all)
        listed = self.context.client.query(model)
        found = list(getattr(listed, "resources", None) or [])
        if not found:
            raise ValueError(f"the server lists no {resource_type} to read")
        obj = found[taken[name] % len(found)]
        taken[name] += 1
        return obj

    ResourceManager.create_and_register = create_and_register
    try:
        yield
    finally:
        ResourceManager.create_and_register = original


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", required=True, help="SCIM base URL, e.g. http://127.0.0.1:8080/scim/v2"
    )
    parser.add_argument(
        "--resource-type",
        action="append",
        dest="resource_types",
        help="resource type name to exercise (repeatable; default: User)",
    )
    parser.add_argument(
        "--link-only",
        action="append",
        default=[],
        help="resource type the server does not create or delete (repeatable): its read "
        "checks run against existing resources listed by the server instead of created ones; "
        "its create, update and delete checks run as usual",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    parser.add_argument(
        "--verbose", action="store_true", help="print passing checks and debug data"
    )
    parser.add_argument("--json-report", help="write every result as JSON to this file")
    args = parser.parse_args()
    resource_types = args.resource_types or ["User"]

    token = os.environ.get("SCIM_TOKEN")
    if not token:
        print("scim2_tester.py: SCIM_TOKEN is not set", file=sys.stderr)
        return 2

    http = Client(
        base_url=args.url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=args.timeout,
    )
    client = SyncSCIMClient(http)
    plain = [rt for rt in resource_types if rt not in args.link_only]
    linked = [rt for rt in resource_types if rt in args.link_only]
    results = check_server(client, resource_types=plain)
    for rt in linked:
        # Reads, replacement and PATCH checks run against resources the server lists; create
        # and delete checks run as usual (and meet the server's refusal). Discovery already
        # ran above, and checks left out by a run's tag filter are not results of that run.
        with existing_resources(rt):
            existing = check_server(
                client,
                resource_types=[rt],
                include_tags={
                    "crud:read",
                    "crud:read:attributes",
                    "crud:update",
                    "patch:add",
                    "patch:remove",
                    "patch:replace",
                },
            )
        created = check_server(
            client, resource_types=[rt], include_tags={"crud:create", "crud:delete"}
        )
        results.extend(
            r
            for r in existing + created
            if r.resource_type == rt
            and not (r.status == Status.SKIPPED and "tag filtering" in (r.reason or ""))
        )

    counts: Counter[str] = Counter()
    unexpected: list[CheckResult] = []
    matched: set[ExpectedFailure] = set()
    report = []
    print(f"scim2-tester checks against {args.url} (resource types: {', '.join(resource_types)})")
    for result in results:
        label = result_label(result)
        entry = None
        if result.status in FAILING:
            entry = expected_for(result)
            if entry is None:
                verdict = "FAIL"
                unexpected.append(result)
            else:
                verdict = "XFAIL"
                matched.add(entry)
        elif result.status in PASSING:
            verdict = "PASS"
        elif result.status == Status.SKIPPED:
            verdict = "SKIP"
        else:  # DEVIATION: a SHOULD-level departure, reported but not fatal
            verdict = "WARN"
        counts[verdict] += 1
        report.append(
            {
                "verdict": verdict,
                "status": result.status.name,
                "check": result.title,
                "resource_type": result.resource_type,
                "label": label,
                "reason": result.reason,
                "expected_because": entry.why if entry else None,
                "data": repr(result.data) if result.data is not None else None,
            }
        )
        if verdict == "PASS" and not args.verbose:
            continue
        print(f"{verdict:5} {label}")
        if result.reason and (verdict != "PASS" or args.verbose):
            print(f"        {one_line(result.reason)}")
        if entry is not None:
            print(f"        expected: {entry.why}")
        if args.verbose and verdict == "FAIL" and result.data is not None:
            print(f"        data: {one_line(repr(result.data), 2000)}")

    stale = [e for e in EXPECTED_FAILURES if e not in matched]
    for entry in stale:
        print(f"STALE expected-failure entry matched nothing: {entry.title} {entry.reason!r}")

    if args.json_report:
        with open(args.json_report, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1)

    ran = {r.resource_type for r in results if r.resource_type}
    missing = [rt for rt in resource_types if rt not in ran]

    print("")
    print(
        "summary: "
        + ", ".join(f"{counts[k]} {k.lower()}" for k in ("PASS", "FAIL", "XFAIL", "SKIP", "WARN"))
    )
    if missing:
        print(
            f"error: no checks ran for resource type(s) {', '.join(missing)} "
            "(discovery failed or the server does not publish them)"
        )
    # The plain closing line: 'N passed, N failed'. Expected failures (listed above with their
    # reasons) are neither passes nor failures and are counted on a line of their own.
    failed = counts["FAIL"] + len(missing)
    print(f"scim2-tester: {counts['XFAIL']} expected failures (documented in README.md)")
    print(f"scim2-tester: {counts['PASS']} passed, {failed} failed, {counts['SKIP']} skipped")
    if counts["FAIL"]:
        return 1
    if missing:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
