#!/usr/bin/env bash
# All tests: installs and starts everything they need, then runs the Rust tests (unit,
# integration, end to end), the Python checks and the browser tests. Exits non-zero on failure.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_rust
ensure_python
ensure_web
# psql (Debian) for the Postgres wire-protocol tests
apt_install psql postgresql-client
# Java and Maven (Debian) to fetch and run the real Kafka of the distributed-mode tests
apt_install java openjdk-17-jre-headless
apt_install mvn maven
cd "$ROOT"
log "building the workspace"
# The JSON messages name every unit the tests use (.ci/run prunes the shared cache down to them);
# diagnostics and progress still go to the terminal.
units="$CARGO_TARGET_DIR/units-debug.jsonl"
rm -f "$units"
cargo build --workspace --bins --tests --message-format=json-render-diagnostics > "$units.part"
cargo test --workspace --no-run --message-format=json-render-diagnostics >> "$units.part"
mv "$units.part" "$units"
# The real servers of the distributed-mode tests (docker/local/up: Apache Kafka and Apache
# Cassandra, fetched from Maven Central once, started on 127.0.0.1), unless the caller already
# points at some (TWINLINE_KAFKA, TWINLINE_SCYLLA); the ones started here are stopped at exit.
servers=()
[ -n "${TWINLINE_KAFKA:-}" ] || servers+=(kafka)
[ -n "${TWINLINE_SCYLLA:-}" ] || servers+=(cassandra)
if [ ${#servers[@]} -gt 0 ]; then
    only=$(IFS=,; echo "${servers[*]}")
    log "starting $only for the distributed-mode tests (docker/local/up)"
    servers_t0=$(date +%s)
    servers_env="$(bash "$ROOT/docker/local/up" --only "$only")"
    eval "$servers_env"
    # Only the tests that start `twinline registry` use a registry (a set URL would send every
    # `twinline run` of the other tests to it).
    unset TWINLINE_SCHEMA_REGISTRY
    export TWINLINE_KAFKA TWINLINE_SCYLLA
    trap 'bash "$ROOT/docker/local/down" >/dev/null 2>&1 || true' EXIT
    log "servers answer: Kafka $TWINLINE_KAFKA, Cassandra $TWINLINE_SCYLLA ($(( $(date +%s) - servers_t0 )) s)"
fi
log "running the Rust tests"
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$CARGO_TARGET_DIR/cargo-test.log"
status=${PIPESTATUS[0]}
set -e
log "building the dispatching environment's Python binding (maturin) and checking it"
(
    set -e
    wheels="$(mktemp -d)"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$(grep '^maturin' "$ROOT/models/rl/requirements.txt")"
    "$VENV/bin/python" -m maturin build --quiet --release -m "$ROOT/models/rl/pyenv/Cargo.toml" -o "$wheels"
    "$VENV/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$wheels"/twinline_rl_env-*.whl
    rm -rf "$wheels"
    "$VENV/bin/python" "$ROOT/models/rl/test_env.py"
) || status=1
log "running the dashboard unit tests (vitest)"
(cd "$ROOT/queries/web" && npm test --silent) || status=1
log "running the browser tests against a live twinline (headless chromium)"
bash "$ROOT/tests/browser/run_real.sh" "$CARGO_TARGET_DIR/debug/twinline" || status=1
log "running the browser tests against the mock server (stream drops, missing endpoints, SPA fallback)"
bash "$ROOT/tests/browser/run.sh" || status=1
exit $status
