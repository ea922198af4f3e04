#!/usr/bin/env bash
# The main job: installs what is missing, builds, and starts twinline in embedded mode with the
# plant simulator, the read API and the dashboard on http://127.0.0.1:8080/.
# Extra arguments go to `twinline run` (e.g. --machines 100 --speed 10).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_rust
ensure_python
ensure_web
log "building twinline (release)"
cargo build --release -p twinline --bin twinline --manifest-path "$ROOT/Cargo.toml"
cd "$ROOT"
exec "$CARGO_TARGET_DIR/release/twinline" run --data "${TWINLINE_DATA:-$ROOT/data}" --simulate --listen 127.0.0.1:8080 "$@"
