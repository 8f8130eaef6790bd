#!/usr/bin/env bash
# The admin page in headless Chromium (tests/admin_page.py): after a flow with one forced
# failure, the rendered page shows that failure first with its SCIM error. Then the OAuth 2.0
# consent page (tests/consent_page.py): wrong password, deny and approve, as Okta's admin
# meets them, and the code traded for a token.
#
# Installs what it needs on a clean Debian machine: Debian's `chromium` package (apt-get, as
# root or through passwordless sudo) and Playwright from PyPI in a venv under target/ (the
# browser Playwright drives is Debian's; Playwright's own browser download is not used).
#
# Env:
#   SCIM_SIDECAR_BIN   the binary to test (default: target/debug/scim-sidecar, built if needed)
#   CHROMIUM           the browser (default /usr/bin/chromium)
#   CARGO_TARGET_DIR   honoured as cargo does
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
VENV="$TARGET_DIR/admin-page-venv"
PINS="playwright==1.65.2
greenlet==3.5.6"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

log() { printf '[admin_page.sh] %s\n' "$*" >&2; }

if [[ ! -x "$CHROMIUM" ]]; then
    if [[ "$(id -u)" == 0 ]]; then SUDO=(); elif sudo -n true 2>/dev/null; then SUDO=(sudo -n); else
        log "Chromium is missing at $CHROMIUM and this user cannot install packages:"
        log "  run 'apt-get install -y chromium' as root, or set CHROMIUM=/path/to/chromium"
        exit 2
    fi
    log "installing Debian's chromium package"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
fi

stamp="$VENV/.pins"
if ! [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$PINS" ]]; then
    log "creating $VENV"
    rm -rf "$VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check $PINS
    printf '%s' "$PINS" >"$stamp"
fi

BIN="${SCIM_SIDECAR_BIN:-}"
if [[ -z "$BIN" ]]; then
    (cd "$ROOT" && cargo build --locked -q)
    BIN="$TARGET_DIR/debug/scim-sidecar"
fi
"$VENV/bin/python" "$ROOT/tests/admin_page.py" "$BIN"
"$VENV/bin/python" "$ROOT/tests/consent_page.py" "$BIN"
