"""Training curve of the dispatching policy from train.py's log.

Two panels against training time (minutes): the mean return of each PPO iteration (raw, light,
with a rolling mean), and the validation greedy mean makespan of each validation size as a ratio
to that size's best classic dispatching rule (below 1.0: better than every rule).

Usage: python models/rl/plot.py [--log models/rl/train_log.json] [--out models/rl/training_curve.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
WINDOW = 20


def rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last `window` values at each point (fewer at the start)."""
    sums = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    idx = np.arange(1, len(values) + 1)
    return (sums[idx] - sums[idx - counts]) / counts


def plot(log: dict, out: Path) -> None:
    iters = log["iters"]
    minutes = np.array([it["t"] for it in iters]) / 60.0
    returns = np.array([it["mean_return"] for it in iters], dtype=np.float64)

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    top.plot(minutes, returns, color="tab:blue", alpha=0.3, linewidth=0.8, label="per iteration")
    top.plot(minutes, rolling_mean(returns, WINDOW), color="tab:blue", label=f"rolling mean ({WINDOW})")
    top.set_ylabel("training mean return\n(LB - makespan) / LB")
    top.set_title("PPO training")
    top.legend(loc="lower right")
    top.grid(alpha=0.3)

    validated = [it for it in iters if "val" in it]
    for size, rules in log["rules_val"].items():
        rule = min(rules, key=rules.get)
        points = [(it["t"] / 60.0, it["val"][size] / rules[rule]) for it in validated if size in it["val"]]
        if points:
            x, y = zip(*points)
            bottom.plot(x, y, marker="o", markersize=3, label=f"{size} greedy / {rule}")
    bottom.axhline(1.0, color="black", linestyle="--", linewidth=1, label="best classic rule")
    bottom.set_ylabel("validation mean makespan\n(greedy / best rule)")
    bottom.set_xlabel("training time (minutes)")
    bottom.margins(y=0.15)
    bottom.legend(loc="best")
    bottom.grid(alpha=0.3)

    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log", type=Path, default=HERE / "train_log.json", help="train.py's log (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=HERE / "training_curve.png", help="PNG to write (default: %(default)s)")
    args = ap.parse_args()
    plot(json.loads(args.log.read_text()), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
