#!/usr/bin/env bash
# Side by side: the real OpenClaw 2026.9.6 gateway and clawback, each started
# on loopback with a token and an empty state, measured by the same client
# (`clawback bench protocol --against`). Start time is taken the same way for
# both: from spawn until a connect handshake first succeeds.
#
# usage: tests/openclaw/bench-side-by-side.sh [CACHE_DIR]   (from the repo root,
#        after `cargo build --release`)
set -euo pipefail

cache="${1:-target/tmp/openclaw-cli}"
clawback="$(pwd)/target/release/clawback"
token="side-by-side-token"
eval "$(tests/openclaw/install.sh "$cache" | sed 's/^/export /')"
export PATH="$NODE_BIN_DIR:$PATH"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

measure() {
  local name="$1" port="$2" pid="$3" started="$4"
  echo "## $name"
  echo
  "$clawback" bench protocol --against "127.0.0.1:$port" --token "$token" --pid "$pid" \
    --spawned-at-ms "$started" | sed -n '/^| measure/,$p'
  echo
}

echo "# OpenClaw 2026.9.6 and clawback, side by side"
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo

started="$(date +%s%3N)"
HOME="$work/openclaw-home" OPENCLAW_STATE_DIR="$work/openclaw-home/.openclaw" \
  "$OPENCLAW" gateway run --allow-unconfigured --port 18931 --bind loopback \
  --auth token --token "$token" >"$work/openclaw.log" 2>&1 &
pids+=($!)
measure "OpenClaw 2026.9.6" 18931 "$(pgrep -n -f 'openclaw.*gateway' || echo $!)" "$started"
kill "${pids[0]}" 2>/dev/null || true
# Let OpenClaw finish exiting (it takes up to a few seconds) so that its
# shutdown does not share the CPU with clawback's start.
wait "${pids[0]}" 2>/dev/null || true
while pgrep -f 'openclaw.*gateway' >/dev/null; do sleep 0.1; done

started="$(date +%s%3N)"
"$clawback" --state-dir "$work/clawback" gateway run --bind 127.0.0.1:18932 \
  --token "$token" >"$work/clawback.log" 2>&1 &
pids+=($!)
measure "clawback" 18932 "$!" "$started"
