#!/usr/bin/env bash
# Redmine, a real application nobody here wrote, provisioned through scim-sidecar with
# mappings/redmine.toml: Okta's SPEC test, the user lifecycle (create, read, duplicate,
# profile update, deactivate, reactivate, DELETE, re-assignment), a group push and Entra ID's
# dialect, with Redmine's own state checked after each step (tests/redmine.py).
#
# Installs what it needs on a clean Debian 12 machine: Debian's `redmine`, `redmine-sqlite`
# and `ruby-webrick` packages (apt-get, as root or through passwordless sudo). Redmine then
# runs from a copy of its tree in a temporary directory (its own SQLite database, secret and
# logs), under WEBrick on a free loopback port, and everything is removed afterwards.
#
# Env:
#   SCIM_SIDECAR_BIN          the binary to test (default: target/release/scim-sidecar, built)
#   REDMINE_STARTUP_TIMEOUT   seconds allowed for each setup step (default 180)
#   CARGO_TARGET_DIR          honoured as cargo does
# Exit: 0 every step held, 1 a step failed, 2 setup failed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
PACKAGES=(redmine redmine-sqlite ruby-webrick)

log() { printf '[redmine.sh] %s\n' "$*" >&2; }

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ "$(id -u)" == 0 ]]; then SUDO=(); elif sudo -n true 2>/dev/null; then SUDO=(sudo -n); else
        log "Debian packages missing (${missing[*]}) and this user cannot install packages:"
        log "  run 'apt-get install -y --no-install-recommends ${PACKAGES[*]}' as root"
        exit 2
    fi
    log "installing Debian's ${missing[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >/dev/null
fi

if [[ -n "${SCIM_SIDECAR_BIN:-}" ]]; then
    BIN="$SCIM_SIDECAR_BIN"
else
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet --bin scim-sidecar)
    BIN="$TARGET_DIR/release/scim-sidecar"
fi

exec python3 "$ROOT/tests/redmine.py" --bin "$BIN"
