#!/usr/bin/env bash
# Installs what the control UI's browser test needs: Debian's `chromium`
# (through apt, when missing) and npm `playwright-core` (which drives it;
# it downloads no browser of its own) into a cache dir. Idempotent: a
# second run only checks. Every network step is time-bounded, and a
# failure says what is missing and how to get it.
#
# usage: tests/ui/install.sh CACHE_DIR
# prints: CHROMIUM=<chromium binary>  NODE=<node binary>  PLAYWRIGHT_DIR=<node_modules dir>
set -euo pipefail

PLAYWRIGHT_VERSION="1.65.1"
APT_SECONDS=900
NPM_SECONDS=300

cache="${1:?usage: install.sh CACHE_DIR}"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd)"

apt_install() {
  # Only root on a Debian-like machine can do this; say so otherwise.
  if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != "0" ]; then
    echo "cannot install $* (needs root and apt-get): install Debian's $* by hand" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! timeout "$APT_SECONDS" apt-get install -y --no-install-recommends "$@" >&2; then
    # A fresh machine may have no package lists yet.
    timeout "$APT_SECONDS" apt-get update >&2 || true
    if ! timeout "$APT_SECONDS" apt-get install -y --no-install-recommends "$@" >&2; then
      echo "apt-get could not install $* within ${APT_SECONDS}s (no network or no such package?)" >&2
      return 1
    fi
  fi
}

chromium_bin() {
  command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null || true
}

if [ -z "$(chromium_bin)" ]; then
  apt_install chromium
fi
chromium="$(chromium_bin)"
if [ -z "$chromium" ]; then
  echo "chromium is still not on PATH after installing it" >&2
  exit 1
fi

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  apt_install nodejs npm
fi
node="$(command -v node)"
node_major="$("$node" -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 18 ]; then
  echo "playwright-core $PLAYWRIGHT_VERSION needs Node >= 18; $node is $("$node" --version)" >&2
  exit 1
fi

installed_version() {
  "$node" -p "require('$cache/node_modules/playwright-core/package.json').version" 2>/dev/null || true
}
if [ "$(installed_version)" != "$PLAYWRIGHT_VERSION" ]; then
  # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: the system chromium is used; no
  # browser build is fetched from anywhere.
  if ! PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout "$NPM_SECONDS" npm install --prefix "$cache" \
      --no-audit --no-fund --loglevel=error "playwright-core@$PLAYWRIGHT_VERSION" >&2; then
    echo "npm could not install playwright-core@$PLAYWRIGHT_VERSION within ${NPM_SECONDS}s" >&2
    exit 1
  fi
fi

echo "CHROMIUM=$chromium"
echo "NODE=$node"
echo "PLAYWRIGHT_DIR=$cache/node_modules"
