#!/usr/bin/env bash
# Installs the Synapse Matrix homeserver (PyPI `matrix-synapse`) into a
# virtualenv in a cache dir, from PyPI only. Idempotent: a second run only
# checks the installed version.
#
# usage: tests/matrix/install.sh CACHE_DIR
# prints: PYTHON=<the venv's python, which runs synapse.app.homeserver>
set -euo pipefail

SYNAPSE_VERSION="1.163.2"

cache="${1:?usage: install.sh CACHE_DIR}"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd)"
python="$cache/venv/bin/python"

# One install at a time across processes (two test runs sharing a target
# dir): the second waits and then finds Synapse installed.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache/.install.lock"
  flock 9
fi

if ! command -v python3 >/dev/null 2>&1; then
  echo "python3 (with venv) is required to install Synapse (apt-get install python3-venv)" >&2
  exit 1
fi

# The package's own metadata: `synapse.__version__` appends git details
# when the venv lies inside a git checkout (as target/ does).
installed_version() {
  "$python" -c 'import importlib.metadata as m; print(m.version("matrix-synapse"))' 2>/dev/null || true
}

if [ ! -x "$python" ] || [ "$(installed_version)" != "$SYNAPSE_VERSION" ]; then
  rm -rf "$cache/venv"
  python3 -m venv "$cache/venv" >&2 || {
    echo "python3 -m venv failed: the venv module is missing (apt-get install python3-venv)" >&2
    exit 1
  }
  # A bounded install: a hung index must fail the test, not stall CI.
  timeout 300 "$python" -m pip install --quiet --disable-pip-version-check \
    --default-timeout 60 "matrix-synapse==$SYNAPSE_VERSION" >&2
  if [ "$(installed_version)" != "$SYNAPSE_VERSION" ]; then
    echo "matrix-synapse $SYNAPSE_VERSION did not install into $cache/venv" >&2
    exit 1
  fi
fi

echo "PYTHON=$python"
