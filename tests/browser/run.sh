#!/usr/bin/env bash
# Browser tests for the web UI. Installs Debian's chromium if missing (root),
# installs npm deps, builds queries/web/dist, then runs node's test runner.
# TWINLINE_URL (+ TWINLINE_WRITE_TOKEN) targets a running server; without it
# the tests start mock_server.mjs themselves.
set -euo pipefail
cd "$(dirname "$0")"

if [[ ! -x /usr/bin/chromium ]]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
fi
if [[ ! -d node_modules/playwright-core || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi
../../queries/web/build.sh
exec node --test --test-concurrency=1 dashboard.test.mjs
