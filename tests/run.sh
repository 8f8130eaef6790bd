#!/usr/bin/env bash
# The whole test suite, as README.md names it: every Rust test (unit, integration over real
# loopback sockets, doc tests), the admin page in headless Chromium, the deploy files
# (Kubernetes schemas, systemd-analyze verify, hadolint), the scim2-tester conformance run
# against `dev`, then Okta's and Entra's flows against a real Redmine (Debian's packages).
# Needs cargo and python3 (>= 3.11); the scripts build their own venvs under target/ and the
# browser test and the Redmine test install Debian's chromium and redmine packages when they are
# missing (as root or with sudo). The PostgreSQL tests (the store on both engines, several
# sidecars on one database) start throwaway clusters from Debian's postgresql package, installed
# here when it is missing, as is valgrind (`bench --profile` counts with callgrind).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && [[ -z "${PG_BINDIR:-}" ]]; then
    echo "[run.sh] apt-get install -y postgresql (the PostgreSQL store's tests need its server)" >&2
    SUDO=""
    [[ $EUID -eq 0 ]] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
    echo "[run.sh] apt-get install -y valgrind (bench --profile's test counts with callgrind)" >&2
    SUDO=""
    [[ $EUID -eq 0 ]] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi
cargo test --locked
bash tests/admin_page.sh
bash tests/deploy_check.sh
bash tests/scim2_tester.sh
bash tests/redmine.sh
