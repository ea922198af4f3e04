"""Ablation of training-set domain randomisation (procedural surfaces, distractor structures).

Trains the same architecture on training sets generated with different RANDOMISATION settings
and reports validation and test macro F1 (test per background). The choice of the committed
setting is made on the validation split; the test columns are reported, not used to choose.

    python models/vision/domain_experiment.py --device cuda --out results.json

Runs on a CPU too (slowly: each variant is a full training run). Data generation uses every core.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from common import N_TRAIN, N_VAL, N_TEST
from generate import BACKGROUNDS, make_split
from metrics import compute
from train import fit, predict_torch

VARIANTS = {
    "photos": (0.0, 0.0),
    "procedural": (0.5, 0.0),
    "distractors": (0.0, 0.5),
    "both": (0.5, 0.5),
    "both_heavy": (0.3, 0.8),
    "distractors_heavy": (0.0, 0.8),
    "mixed": (0.15, 0.65),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--long-epochs", type=int, default=16)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--runs", help="instead of the default plan: VARIANT:ARCH:EPOCHS[:BATCH:LR],...")
    ap.add_argument("--budget-s", type=float, default=1e9, help="skip the follow-up runs past this")
    ap.add_argument("--out", default="domain_experiment.json")
    ap.add_argument("--n", type=int, nargs=3, default=[N_TRAIN, N_VAL, N_TEST], metavar=("TRAIN", "VAL", "TEST"))
    args = ap.parse_args()
    t_start = time.time()
    workers = os.cpu_count() or 2
    n_train, n_val, n_test = args.n
    va = make_split("val", n_val, workers)
    te = make_split("test", n_test, workers)
    names = list(BACKGROUNDS)
    rows = []
    cache = {}

    def run(variant: str, arch: str, epochs: int, batch: int = 128, lr: float = 3e-3) -> dict:
        if variant not in cache:
            t0 = time.time()
            cache[variant] = make_split("train", n_train, workers, randomisation=VARIANTS[variant])
            print(f"[{variant}] data {time.time() - t0:.1f}s", flush=True)
        tr = cache[variant]
        model, hist, secs = fit(arch, epochs, tr[:3], va[:3], device=args.device, batch=batch, lr=lr,
                                log=lambda s: print(f"[{variant}/{arch}/{epochs}] {s}", flush=True))
        model = model.to(args.device)
        vm = compute(*predict_torch(model, va[0], args.device), va[1], va[2])
        tp, tb = predict_torch(model, te[0], args.device)
        tm = compute(tp, tb, te[1], te[2])
        per_bg = {names[b]: compute(tp[te[3] == b], tb[te[3] == b], te[1][te[3] == b], te[2][te[3] == b])["macro_f1_defects"]
                  for b in np.unique(te[3])}
        row = {"variant": variant, "randomisation": VARIANTS[variant], "arch": arch, "epochs": epochs,
               "batch": batch, "lr": lr, "val_history": [h["macro_f1_defects"] for h in hist],
               "train_s": round(secs, 1), "val_macro_f1": vm["macro_f1_defects"], "val_iou": vm["mean_iou"],
               "test_macro_f1": tm["macro_f1_defects"], "test_auroc": tm["auroc"], "test_iou": tm["mean_iou"],
               "test_per_background": per_bg,
               "test_per_class_f1": {c: v["f1"] for c, v in tm["per_class"].items()}}
        print(json.dumps(row), flush=True)
        rows.append(row)
        with open(args.out, "w") as f:
            json.dump({"device": args.device, "protocol": "train split 36 000 images per variant, val 3 000, "
                       "test 6 000; best epoch by val macro F1 + 0.1 x IoU", "rows": rows}, f, indent=2)
        return row

    if args.runs:
        for spec in args.runs.split(","):
            v, arch, ep, *rest = spec.split(":")
            if time.time() - t_start > args.budget_s:
                print("budget spent, skipping", spec, flush=True)
                continue
            run(v, arch, int(ep), *(int(rest[0]), float(rest[1])) if rest else ())
        return
    for v in args.variants.split(","):
        run(v, "pool", args.epochs)
    best = max((r for r in rows if r["variant"] != "photos"), key=lambda r: r["val_macro_f1"], default=rows[0])
    print(f"best by validation: {best['variant']}", flush=True)
    for arch, epochs in (("pool", args.long_epochs), ("pool_w24", args.epochs)):
        if time.time() - t_start > args.budget_s:
            print("budget spent, skipping", arch, epochs, flush=True)
            continue
        run(best["variant"], arch, epochs)


if __name__ == "__main__":
    main()
