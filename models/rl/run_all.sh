#!/usr/bin/env bash
# The dispatching policy from scratch: build the environment binding, train (PPO, 45 minutes of
# wall clock by default on this 2-core machine), plot the training curve, then benchmark the
# policy with the release binary. Arguments go to train.py (e.g. --minutes 20 --seed 3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="$here/../../.venv/bin/python"
bash "$here/build_env.sh"
cd "$here"
nice -n 5 "$py" train.py "$@"
"$py" plot.py
cargo build --release -p twinline --quiet
"$py" benchmark.py
