#!/usr/bin/env bash
# Prints the figures the issues ask for, on this machine: builds the release binary, installs the
# HTTP load tool (wrk, from Debian) if missing, then runs `twinline bench` (pipeline, replay,
# freshness, read API, WebSocket fan-out) and `twinline bench --vision` (defect model). Extra
# arguments go to the first `twinline bench`.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_rust
ensure_python
apt_install wrk wrk
log "building the release binary"
cargo build --release -p twinline --quiet
"$CARGO_TARGET_DIR/release/twinline" --log warn bench "$@"
exec "$CARGO_TARGET_DIR/release/twinline" --log warn bench --vision
