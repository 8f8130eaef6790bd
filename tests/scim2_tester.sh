#!/usr/bin/env bash
# SCIM 2.0 conformance run with the independent checker scim2-tester (PyPI, python-scim project).
#
# Builds scim-sidecar (release), starts `scim-sidecar dev` on free loopback ports (SCIM and admin
# listeners both on port 0, so it runs beside a `dev` on the default ports) with a random
# bearer token and a throwaway data dir, reads the "SCIM base URL: ..." line from its stdout,
# runs scim2-tester restricted to the User resource type (tests/scim2_tester.py), prints a
# summary and exits non-zero when a check fails that is not in the driver's EXPECTED_FAILURES.
#
# Usage: tests/scim2_tester.sh [--verbose]
# Env:
#   PYTHON                 interpreter for the venv (default python3; needs >= 3.11)
#   SCIM_SIDECAR_BIN       use this binary instead of building target/release/scim-sidecar
#   SCIM_STARTUP_TIMEOUT   seconds to wait for the base URL line (default 60)
#   CARGO_TARGET_DIR       honoured as cargo does (default: <repo>/target)
# Exit: 0 all checks passed (or expected), 1 unexpected failures, 2+ setup/infrastructure error.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
VENV="$TARGET_DIR/scim2-venv"
PYTHON="${PYTHON:-python3}"
STARTUP_TIMEOUT="${SCIM_STARTUP_TIMEOUT:-60}"
DRIVER_ARGS=("$@")

# Exact versions this script was verified with (full transitive set, so a new upstream release
# cannot change what is checked). Bump deliberately, re-run, and review the allow-list.
PINS="scim2-tester==0.5.2
scim2-cli==0.6.0
scim2-client[httpx2]==0.13.2
scim2-models==0.12.3
httpx2==2.16.2
httpcore2==2.16.2
pydantic==2.14.3
pydantic_core==2.50.4
lark==1.3.1
email-validator==2.4.0
dnspython==2.9.2
idna==3.20
anyio==4.16.0
h11==0.16.0
truststore==0.10.5
annotated-types==0.8.0
typing_extensions==4.16.0
typing-inspection==0.4.5
click==8.5.1
pydanclick==0.5.1
Pygments==2.21.0
sphinx-click-rst-to-ansi-formatter==0.2.0
docutils==0.23
colorama==0.4.6"

log() { printf '[scim2_tester.sh] %s\n' "$*" >&2; }

# --- 1. checker venv (reused when it holds exactly these pins) ---------------------------------
ensure_venv() {
    local stamp="$VENV/.scim2-pins"
    if [[ -x "$VENV/bin/python" && -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$PINS" ]]; then
        return 0
    fi
    if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
        log "scim2-tester needs Python >= 3.11; set PYTHON to one"
        exit 2
    fi
    log "creating checker venv in $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    local req="$VENV/requirements.txt"
    printf '%s\n' "$PINS" >"$req"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r "$req"
    printf '%s' "$PINS" >"$stamp"
}
ensure_venv

# --- 2. the server binary ------------------------------------------------------------------------
if [[ -n "${SCIM_SIDECAR_BIN:-}" ]]; then
    BIN="$SCIM_SIDECAR_BIN"
else
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet --bin scim-sidecar)
    BIN="$TARGET_DIR/release/scim-sidecar"
fi
if [[ ! -x "$BIN" ]]; then
    log "server binary not found or not executable: $BIN"
    exit 2
fi

# --- 3. start `dev` ------------------------------------------------------------------------------
TOKEN="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/scim2-tester.XXXXXX")"
DATA_DIR="$WORK/data"
OUT="$WORK/server.stdout"
ERR="$WORK/server.stderr"
mkdir -p "$DATA_DIR"
SERVER_PID=""

# shellcheck disable=SC2329  # invoked through the EXIT trap
cleanup() {
    local rc=$?
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        # Wait for a graceful stop until a deadline, then force.
        local stop_deadline=$((SECONDS + 10))
        while kill -0 "$SERVER_PID" 2>/dev/null && ((SECONDS < stop_deadline)); do
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            log "server did not stop on SIGTERM within 10 s; sending SIGKILL"
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ $rc -ne 0 ]]; then
        log "server stdout (last 40 lines):"
        tail -n 40 "$OUT" >&2 2>/dev/null || true
        log "server stderr (last 40 lines):"
        tail -n 40 "$ERR" >&2 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap 'exit 141' PIPE

log "starting $BIN dev (data dir $DATA_DIR)"
# The background job opens its redirections only once it runs: create the files first so the
# poll below never reads a file that does not exist yet.
: >"$OUT"
: >"$ERR"
"$BIN" dev --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --token "$TOKEN" --data-dir "$DATA_DIR" \
    >"$OUT" 2>"$ERR" &
SERVER_PID=$!

BASE_URL=""
startup_deadline=$((SECONDS + STARTUP_TIMEOUT))
while [[ -z "$BASE_URL" ]]; do
    # Only complete (newline-terminated) lines count, so a half-written line is never read.
    complete="$(wc -l <"$OUT")"
    line="$(head -n "$complete" "$OUT" | grep -m1 -E '^SCIM base URL: http://[^[:space:]]+$' || true)"
    if [[ -n "$line" ]]; then
        BASE_URL="${line#SCIM base URL: }"
        break
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "server exited before printing its base URL"
        exit 3
    fi
    if ((SECONDS >= startup_deadline)); then
        log "no 'SCIM base URL:' line within ${STARTUP_TIMEOUT}s"
        exit 3
    fi
    sleep 0.1
done
if [[ "$(grep -c -E '^SCIM base URL: ' "$OUT" || true)" != "1" ]]; then
    log "expected exactly one 'SCIM base URL:' line, got: $(grep -c -E '^SCIM base URL: ' "$OUT" || true)"
    exit 3
fi
log "server is up at $BASE_URL"

# --- 4. run the checker --------------------------------------------------------------------------
REPORT="$TARGET_DIR/scim2-tester-report.json"
set +e
SCIM_TOKEN="$TOKEN" "$VENV/bin/python" -P "$ROOT/tests/scim2_tester.py" \
    --url "$BASE_URL" --resource-type User --resource-type Group --link-only Group --json-report "$REPORT" ${DRIVER_ARGS[@]+"${DRIVER_ARGS[@]}"}
rc=$?
set -e
log "full report: $REPORT"
if [[ $rc -eq 0 ]] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "server died during the run"
    rc=3
fi
exit "$rc"
