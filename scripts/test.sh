#!/usr/bin/env bash
# All tests: installs and starts everything they need, then runs the Rust tests (unit,
# integration, end to end), the Python checks and the browser tests. Exits non-zero on failure.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_rust
ensure_python
ensure_web
cd "$ROOT"
log "building the workspace"
cargo build --workspace --bins --tests
log "running the Rust tests"
cargo test --workspace --no-fail-fast 2>&1 | tee "$CARGO_TARGET_DIR/cargo-test.log"
status=${PIPESTATUS[0]}
if [ -x "$ROOT/tests/browser/run.sh" ]; then
    log "running the browser tests"
    bash "$ROOT/tests/browser/run.sh" || status=1
fi
exit $status
