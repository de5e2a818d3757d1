#!/usr/bin/env bash
# Installs OpenAI's official Python client (PyPI `openai`) into a virtualenv
# in a cache dir, from PyPI only. Idempotent: a second run only checks.
#
# usage: tests/openai/install.sh CACHE_DIR
# prints: PYTHON=<the venv's python, which imports openai>
set -euo pipefail

OPENAI_VERSION="3.57.0"

cache="${1:?usage: install.sh CACHE_DIR}"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd)"
python="$cache/venv/bin/python"

if ! command -v python3 >/dev/null 2>&1; then
  echo "python3 (with venv) is required to install the openai client (apt-get install python3-venv)" >&2
  exit 1
fi

installed_version() {
  "$python" -c 'import openai; print(openai.__version__)' 2>/dev/null || true
}

if [ ! -x "$python" ] || [ "$(installed_version)" != "$OPENAI_VERSION" ]; then
  python3 -m venv "$cache/venv" >&2
  "$python" -m pip install --quiet --disable-pip-version-check "openai==$OPENAI_VERSION" >&2
fi

echo "PYTHON=$python"
