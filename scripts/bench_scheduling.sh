#!/usr/bin/env bash
# Scheduling figures: builds the release binary, installs OR-Tools (PyPI, into .venv-bench), runs
# `twinline schedule` and CP-SAT side by side on ../shared/benchmarks/jssp (same time limit and
# threads, every plan verified by the script), then the rescheduling latency bench (200 open jobs
# on 20 machines). Arguments go to compare_cpsat.py (default: every instance, 10 s, 2 threads).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_rust
BENCH_VENV="$ROOT/.venv-bench"
if [ ! -x "$BENCH_VENV/bin/python" ]; then
    log "creating Python venv in .venv-bench"
    python3 -m venv "$BENCH_VENV"
fi
"$BENCH_VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/processors/solver/bench/requirements.txt"
log "building the release binary"
cargo build --release -p twinline --quiet
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--instances '*' --time-limit 10 --threads 2)
"$BENCH_VENV/bin/python" "$ROOT/processors/solver/bench/compare_cpsat.py" \
    --twinline-cmd "$CARGO_TARGET_DIR/release/twinline --log warn schedule" "${args[@]}"
log "rescheduling latency"
cargo bench -q -p twinline-processors --bench reschedule
