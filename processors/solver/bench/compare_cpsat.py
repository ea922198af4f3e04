#!/usr/bin/env python3
"""Compare twinline's job-shop solver with OR-Tools CP-SAT on OR-Library instances.

Both solvers get the same time limit and thread count and run one after the other (never at the
same time). Every plan is verified here, independently of both solvers: each job's operations
in order on their machines, no overlap on any machine, and the makespan recomputed from the
starts. A plan that fails verification is reported as INVALID and counts as a failure.

Usage (from the repository root):
    /work/.venv-solver/bin/python processors/solver/bench/compare_cpsat.py \
        --time-limit 10 --threads 2 --instances 'ta1*' --instances 'la*'
"""

import argparse
import fnmatch
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_FOLDER = (REPO_ROOT / ".." / "shared" / "benchmarks" / "jssp").resolve()
DEFAULT_CMD = "cargo run --quiet --release -p twinline-solver --example schedule --"


def parse_orlib(path):
    toks_lines = [l.split() for l in Path(path).read_text().splitlines()]
    toks_lines = [t for t in toks_lines if t and not t[0].startswith("#")]
    n, m = int(toks_lines[0][0]), int(toks_lines[0][1])
    jobs = []
    for line in toks_lines[1 : n + 1]:
        vals = list(map(int, line))
        jobs.append([(vals[i], vals[i + 1]) for i in range(0, len(vals), 2)])
    if len(jobs) != n:
        raise ValueError(f"{path}: expected {n} jobs, found {len(jobs)}")
    return n, m, jobs


def verify(jobs, n_machines, starts):
    """Returns the makespan recomputed from `starts`, or raises ValueError."""
    if len(starts) != len(jobs):
        raise ValueError(f"{len(starts)} start lists for {len(jobs)} jobs")
    per_machine = [[] for _ in range(n_machines)]
    makespan = 0
    for j, (ops, st) in enumerate(zip(jobs, starts)):
        if len(st) != len(ops):
            raise ValueError(f"job {j}: {len(st)} starts for {len(ops)} operations")
        prev_end = 0
        for k, ((mach, dur), s) in enumerate(zip(ops, st)):
            if s < prev_end:
                raise ValueError(f"job {j} op {k} starts at {s} before its predecessor ends at {prev_end}")
            prev_end = s + dur
            per_machine[mach].append((s, s + dur, j, k))
            makespan = max(makespan, s + dur)
    for mach, ivs in enumerate(per_machine):
        ivs.sort()
        for a, b in zip(ivs, ivs[1:]):
            if b[0] < a[1] and a[0] < b[1]:
                raise ValueError(f"machine {mach}: job {a[2]} op {a[3]} overlaps job {b[2]} op {b[3]}")
    return makespan


def run_twinline(cmd, path, time_limit, threads, seed):
    full = shlex.split(cmd) + [
        "--instance", str(path), "--time-limit", str(time_limit), "--threads", str(threads),
        "--seed", str(seed), "--format", "json",
    ]
    t0 = time.monotonic()
    out = subprocess.run(full, capture_output=True, text=True, cwd=REPO_ROOT, timeout=time_limit * 10 + 600)
    wall = time.monotonic() - t0
    if out.returncode != 0:
        raise RuntimeError(f"twinline failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    doc = json.loads(out.stdout)
    return doc, wall


def run_cpsat(jobs, n_machines, time_limit, threads, seed):
    from ortools.sat.python import cp_model

    horizon = sum(d for ops in jobs for _, d in ops)
    model = cp_model.CpModel()
    starts, ends, per_machine = [], [], [[] for _ in range(n_machines)]
    for j, ops in enumerate(jobs):
        js, je = [], []
        for k, (mach, dur) in enumerate(ops):
            s = model.new_int_var(0, horizon, f"s{j}_{k}")
            e = model.new_int_var(0, horizon, f"e{j}_{k}")
            iv = model.new_interval_var(s, dur, e, f"i{j}_{k}")
            per_machine[mach].append(iv)
            if k > 0:
                model.add(s >= je[-1])
            js.append(s)
            je.append(e)
        starts.append(js)
        ends.append(je)
    for ivs in per_machine:
        model.add_no_overlap(ivs)
    mk = model.new_int_var(0, horizon, "makespan")
    model.add_max_equality(mk, [je[-1] for je in ends if je])
    model.minimize(mk)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit)
    solver.parameters.num_workers = threads
    solver.parameters.random_seed = seed
    t0 = time.monotonic()
    status = solver.solve(model)
    wall = time.monotonic() - t0
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise RuntimeError(f"CP-SAT status {solver.status_name(status)}")
    plan = [[solver.value(s) for s in js] for js in starts]
    return {
        "makespan": int(solver.objective_value),
        "lower_bound": int(solver.best_objective_bound),
        "optimal": status == cp_model.OPTIMAL,
        "starts": plan,
    }, wall


def load_index(folder):
    best = {}
    idx = folder / "INDEX.tsv"
    if idx.exists():
        lines = idx.read_text().splitlines()
        header = lines[0].split("\t")
        for line in lines[1:]:
            row = dict(zip(header, line.split("\t")))
            ub = row.get("upper_bound") or row.get("optimum")
            if ub:
                best[row["name"]] = int(ub)
    return best


def gap(value, bk):
    if value is None or bk is None:
        return None
    return 100.0 * (value - bk) / bk


def fmt(x, spec=".2f"):
    return "—" if x is None else format(x, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", default=str(DEFAULT_FOLDER), help="folder of NAME.txt instances (and INDEX.tsv)")
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--instances", action="append", default=None,
                    help="glob on instance names (repeatable); default all")
    ap.add_argument("--twinline-cmd", default=DEFAULT_CMD,
                    help="command taking --instance/--time-limit/--threads/--seed/--format json")
    ap.add_argument("--skip-cpsat", action="store_true")
    ap.add_argument("--json-out", help="also write per-instance results to this JSON file")
    args = ap.parse_args()

    folder = Path(args.folder)
    best = load_index(folder)
    globs = args.instances or ["*"]
    files = sorted(p for p in folder.glob("*.txt") if any(fnmatch.fnmatch(p.stem, g) for g in globs))
    if not files:
        sys.exit(f"no instances match {globs} in {folder}")

    print(f"# twinline vs CP-SAT: time limit {args.time_limit}s, threads {args.threads}, seed {args.seed}")
    print(f"# host {platform.node()}, {os.cpu_count()} CPUs, load average {os.getloadavg()}")
    print(f"# twinline command: {args.twinline_cmd}")
    cols = ["instance", "size", "best-known", "twinline", "gap%", "t_best ms", "wall s",
            "CP-SAT", "gap%", "wall s"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    rows = []
    for path in files:
        n, m, jobs = parse_orlib(path)
        bk = best.get(path.stem)
        row = {"instance": path.stem, "size": f"{n}x{m}", "best_known": bk}
        try:
            doc, wall = run_twinline(args.twinline_cmd, path, args.time_limit, args.threads, args.seed)
            mk = verify(jobs, m, doc["starts"])
            if mk != doc["makespan"]:
                raise ValueError(f"reported makespan {doc['makespan']} but plan gives {mk}")
            row.update(tw=mk, tw_wall=wall, tw_best_ms=doc.get("time_to_best_ms"), tw_lb=doc.get("lower_bound"))
        except Exception as e:  # noqa: BLE001 - report and keep going
            row.update(tw=None, tw_error=str(e))
            print(f"# {path.stem}: twinline INVALID/FAILED: {e}", file=sys.stderr)
        if not args.skip_cpsat:
            try:
                doc, wall = run_cpsat(jobs, m, args.time_limit, args.threads, args.seed)
                mk = verify(jobs, m, doc["starts"])
                if mk != doc["makespan"]:
                    raise ValueError(f"reported makespan {doc['makespan']} but plan gives {mk}")
                row.update(cp=mk, cp_wall=wall, cp_lb=doc["lower_bound"])
            except Exception as e:  # noqa: BLE001
                row.update(cp=None, cp_error=str(e))
                print(f"# {path.stem}: CP-SAT INVALID/FAILED: {e}", file=sys.stderr)
        rows.append(row)
        print("| " + " | ".join([
            row["instance"], row["size"], fmt(bk, "d"),
            fmt(row.get("tw"), "d"), fmt(gap(row.get("tw"), bk)), fmt(row.get("tw_best_ms"), "d"),
            fmt(row.get("tw_wall")),
            fmt(row.get("cp"), "d"), fmt(gap(row.get("cp"), bk)), fmt(row.get("cp_wall")),
        ]) + " |", flush=True)

    def summary(label, subset):
        tw = [gap(r.get("tw"), r["best_known"]) for r in subset]
        cp = [gap(r.get("cp"), r["best_known"]) for r in subset]
        tw_ok = [g for g in tw if g is not None]
        cp_ok = [g for g in cp if g is not None]
        wins = sum(1 for r in subset if r.get("tw") is not None and r.get("cp") is not None and r["tw"] < r["cp"])
        losses = sum(1 for r in subset if r.get("tw") is not None and r.get("cp") is not None and r["tw"] > r["cp"])
        print(f"{label}: n={len(subset)}  twinline mean gap {fmt(sum(tw_ok) / len(tw_ok) if tw_ok else None)}% "
              f"({len(subset) - len(tw_ok)} failed)  CP-SAT mean gap "
              f"{fmt(sum(cp_ok) / len(cp_ok) if cp_ok else None)}% ({len(subset) - len(cp_ok)} failed)  "
              f"twinline better on {wins}, worse on {losses}")

    print()
    summary("ALL", [r for r in rows if r["best_known"] is not None])
    ta = [r for r in rows if r["instance"] in {f"ta{i}" for i in range(11, 21)} and r["best_known"] is not None]
    if ta:
        summary("Taillard 20x15 (ta11-ta20)", ta)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=1))
    failed = any(r.get("tw") is None for r in rows)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
