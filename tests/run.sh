#!/usr/bin/env bash
# The whole test suite, as README.md names it: every Rust test (unit, integration over real
# loopback sockets, doc tests), then the scim2-tester conformance run against `dev`.
# Needs only cargo and python3 (>= 3.11); the conformance script builds its own venv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo test --locked
bash tests/scim2_tester.sh
