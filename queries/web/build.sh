#!/usr/bin/env bash
# Build the dashboard + 3D view into queries/web/dist (served by the read API
# at / and /3d, assets under /assets/). Idempotent: `npm ci` only when the
# lockfile changed, `vite build` only when sources changed. --force rebuilds.
set -euo pipefail
cd "$(dirname "$0")"

force=0
[[ "${1:-}" == "--force" ]] && force=1

hash_of() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

lock_hash=$(hash_of package.json package-lock.json)
if [[ $force == 1 || ! -f node_modules/.twinline-lock-hash || "$(cat node_modules/.twinline-lock-hash)" != "$lock_hash" ]]; then
  npm ci --no-audit --no-fund
  echo "$lock_hash" > node_modules/.twinline-lock-hash
fi

src_hash=$(hash_of package-lock.json index.html 3d.html vite.config.ts tsconfig.json $(find src -type f | LC_ALL=C sort))
if [[ $force == 0 && -f dist/index.html && -f dist/3d.html && -f node_modules/.twinline-build-hash && "$(cat node_modules/.twinline-build-hash)" == "$src_hash" ]]; then
  echo "queries/web/dist is up to date"
  exit 0
fi
npm run build
echo "$src_hash" > node_modules/.twinline-build-hash
