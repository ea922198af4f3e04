#!/usr/bin/env bash
# Browser tests against the real thing: starts `twinline run --simulate` on a free port with a
# write token, waits until it is ready, runs the browser tests against it, stops it.
# Usage: tests/browser/run_real.sh [path/to/twinline]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="${1:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/twinline}"
[ -x "$BIN" ] || { echo "twinline binary not found at $BIN" >&2; exit 1; }
WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
TOKEN="browser-test-write-token-$RANDOM$RANDOM"
cat > "$WORK/twinline.toml" <<TOML
[api]
tokens = [{ token = "$TOKEN", role = "write" }]
TOML
"$BIN" run --config "$WORK/twinline.toml" --data "$WORK/data" --simulate --machines 24 --speed 60 \
    --listen "127.0.0.1:$PORT" --web-dir "$ROOT/queries/web/dist" > "$WORK/server.log" 2>&1 &
PID=$!
cleanup() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
ready=0
for _ in $(seq 1 300); do
    if curl -fsS "http://127.0.0.1:$PORT/health/ready" >/dev/null 2>&1; then ready=1; break; fi
    if ! kill -0 "$PID" 2>/dev/null; then echo "twinline exited:"; cat "$WORK/server.log"; exit 1; fi
    sleep 0.2
done
if [ "$ready" != 1 ]; then echo "twinline was not ready after 60 s:"; tail -40 "$WORK/server.log"; exit 1; fi
cd "$HERE"
if [[ ! -x /usr/bin/chromium ]]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
fi
if [[ ! -d node_modules/playwright-core || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
status=0
TWINLINE_URL="http://127.0.0.1:$PORT" TWINLINE_WRITE_TOKEN="$TOKEN" \
    node --test --test-concurrency=1 dashboard.test.mjs || status=$?
if [ $status -ne 0 ]; then echo "--- server log tail ---"; tail -40 "$WORK/server.log"; fi
exit $status
