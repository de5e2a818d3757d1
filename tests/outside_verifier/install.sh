#!/usr/bin/env bash
# Installs what the outside verifier needs (PyPI `blake3` and
# `cryptography`) into a virtualenv in a cache dir, from PyPI only.
# Idempotent: a second run only checks.
#
# usage: tests/outside_verifier/install.sh CACHE_DIR
# prints: PYTHON=<the venv's python, which imports blake3 and cryptography>
set -euo pipefail

BLAKE3_VERSION="1.0.11"
CRYPTOGRAPHY_VERSION="50.0.2"

cache="${1:?usage: install.sh CACHE_DIR}"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd)"
python="$cache/venv/bin/python"

if ! command -v python3 >/dev/null 2>&1; then
  echo "python3 (with venv) is required for the outside verifier (apt-get install python3-venv)" >&2
  exit 1
fi

installed() {
  "$python" -c 'import blake3, cryptography; print(blake3.__version__, cryptography.__version__)' 2>/dev/null || true
}

if [ ! -x "$python" ] || [ "$(installed)" != "$BLAKE3_VERSION $CRYPTOGRAPHY_VERSION" ]; then
  python3 -m venv "$cache/venv" >&2
  "$python" -m pip install --quiet --disable-pip-version-check \
    "blake3==$BLAKE3_VERSION" "cryptography==$CRYPTOGRAPHY_VERSION" >&2
fi

echo "PYTHON=$python"
