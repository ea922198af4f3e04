#!/usr/bin/env bash
# Quality at a fixed iteration budget (load-independent): mean gap over ta11-ta20.
# usage: bench/iters.sh MAX_ITERATIONS_PER_THREAD [THREADS] [SEED]
B=${B:-/work/targets/solver/release/examples/schedule}
D=/work/shared/benchmarks/jssp
IT=${1:-50000}; TH=${2:-2}; SEED=${3:-0}
for i in 11 12 13 14 15 16 17 18 19 20; do
  bk=$(awk -F'\t' -v n=ta$i '$1==n{print $6}' $D/INDEX.tsv)
  $B --instance $D/ta$i.txt --time-limit 1000 --threads $TH --seed $SEED --max-iterations $IT \
   | python3 -c "import json,sys; d=json.load(sys.stdin); print('ta$i', d['makespan'], $bk, round(100*(d['makespan']-$bk)/$bk,2), d['solver_time_ms'], d['restarts'])"
done | awk '{print; s+=$4; n++} END {printf "mean gap %.3f%%\n", s/n}'
