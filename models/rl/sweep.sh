#!/usr/bin/env bash
# Hyper-parameter sweep of train.py: several trainings side by side, one per configuration, each
# on its own CPU threads and output folder, for the same wall-clock budget. Used on the lent
# 16-core machine; the validation ratio each run reports (generated instances, never Taillard)
# picks the configuration. Usage: bash models/rl/sweep.sh OUT_DIR MINUTES [PYTHON]
set -euo pipefail
out=${1:?output folder}
minutes=${2:?minutes per run}
py=${3:-python3}
cd "$(dirname "$0")"
mkdir -p "$out"
declare -A runs=(
  [base]="--seed 2"
  [ent03]="--seed 2 --entropy 0.03"
  [lr1e3]="--seed 2 --lr 1e-3"
  [h128]="--seed 2 --hidden 128 --entropy 0.02"
  [wide]="--seed 2 --instances 4 --copies 32 --entropy 0.02"
  [lr1e4]="--seed 2 --lr 1e-4 --minibatch 1024"
)
for name in "${!runs[@]}"; do
  # shellcheck disable=SC2086
  "$py" train.py --minutes "$minutes" --threads 2 --out "$out/$name" ${runs[$name]} \
    > "$out/$name.log" 2>&1 &
done
wait
for name in "${!runs[@]}"; do
  echo "$name: $(tail -1 "$out/$name.log")"
done
