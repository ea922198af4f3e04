#!/usr/bin/env bash
# Full pipeline (after the venv exists): train + quantise, sim set, evaluate (which scores the sim set
# too), fixtures.
# Usage: bash models/vision/run_all.sh [train.py args...]
set -euo pipefail
cd "$(dirname "$0")"
PY=../../.venv/bin/python
nice -n 10 "$PY" train.py "$@"
"$PY" export_sim_set.py
nice -n 10 "$PY" evaluate.py
"$PY" make_reference.py
