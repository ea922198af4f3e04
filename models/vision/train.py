"""Train the defect classifier + box regressor on generated data, export ONNX FP32 and INT8.

    nice -n 10 .venv/bin/python models/vision/train.py --arch pool_pf --epochs 18 --n-train 72000 --precision fp32 --tta dihedral8   # the committed model
    nice -n 10 .venv/bin/python models/vision/train.py                 # defaults: arch "small", 12 epochs
    nice -n 10 .venv/bin/python models/vision/train.py --compare       # architecture comparison

Deterministic up to PyTorch CPU kernel non-determinism (torch.manual_seed, seeded data).
Writes defect_fp32.onnx, defect_int8.onnx (via quantize.py), train_log.json next to this file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common import (ARCHS, HERE, N_TRAIN, N_VAL, RotationAverage, build, export_onnx, from_bare_onnx,
                    keep_freed_memory, latency, ort_predict, ort_session, serving_form, split_data)
from metrics import compute
from preprocess import batch_u8_to_tensor

BOX_WEIGHT = 5.0


def augment(x: torch.Tensor, box: torch.Tensor, gen: torch.Generator):
    """Random per-sample horizontal flip, vertical flip and 90-degree rotation, boxes moved along.
    The random draws come from `gen` (CPU), so the sequence is the same on every device."""
    n = x.shape[0]
    box = box.clone()
    hf = (torch.rand(n, generator=gen) < 0.5).to(x.device)
    x[hf] = x[hf].flip(3)
    box[hf, 0] = 1 - box[hf, 0] - box[hf, 2]
    vf = (torch.rand(n, generator=gen) < 0.5).to(x.device)
    x[vf] = x[vf].flip(2)
    box[vf, 1] = 1 - box[vf, 1] - box[vf, 3]
    rot = (torch.rand(n, generator=gen) < 0.5).to(x.device)
    # rot90 counter-clockwise: pixel (row r, col c) -> (W-1-c, r)
    x[rot] = torch.rot90(x[rot], 1, dims=(2, 3))
    bx, by, bw, bh = box[rot].unbind(1)
    box[rot] = torch.stack([by, 1 - bx - bw, bh, bw], 1)
    return x, box


def predict_torch(model, images, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    probs, boxes = [], []
    with torch.no_grad():
        for i in range(0, len(images), 512):
            p, b = model(torch.from_numpy(batch_u8_to_tensor(images[i : i + 512])).to(device))
            probs.append(p.cpu().numpy())
            boxes.append(b.cpu().numpy())
    return np.concatenate(probs), np.concatenate(boxes)


def evaluate_torch(model, images, cls, box, device: str = "cpu") -> dict:
    return compute(*predict_torch(model, images, device), cls, box)


def fit(arch: str, epochs: int, train_data, val_data, seed: int = 0, lr: float = 3e-3, batch: int = 128,
        device: str = "cpu", log=print, precision: str = "fp32", ema: float = 0.0):
    """Train `arch` on (images u8, class ids, boxes) and keep the epoch with the best validation
    macro F1 + 0.1 x mean IoU. Returns (model on the CPU, per-epoch history, training seconds).

    `precision` "bf16": forward passes and losses under bfloat16 autocast, with channels-last
    tensors (weights, gradients and the optimiser stay float32; validation runs in float32). On a
    CPU with AVX-512 BF16 a training step takes about a third of the float32 time. In both precisions
    the tensors are channels-last: a float32 step on the AVX2-only CPU of 2026-11-29 took 1.4x to
    1.8x less time than in PyTorch's default layout (`step_bench.py`).

    `ema` > 0: an exponential moving average of the weights and batch-norm statistics
    (`torch.optim.swa_utils.AveragedModel`, this decay per step) is what each epoch validates and
    what is kept; the training itself is unchanged."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    tr_img, tr_cls, tr_box = train_data
    va_img, va_cls, va_box = val_data
    x_all = torch.from_numpy(batch_u8_to_tensor(tr_img)).to(device)
    y_all = torch.from_numpy(tr_cls).to(device)
    has_box = torch.from_numpy(~np.isnan(tr_box[:, 0])).to(device)
    b_all = torch.from_numpy(np.nan_to_num(tr_box, nan=0.0)).to(device)

    bf16 = precision == "bf16"
    layout = torch.channels_last
    model = build(arch).to(device).to(memory_format=layout)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(x_all) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    ce = nn.CrossEntropyLoss(label_smoothing=0.02)
    averaged = None
    if ema > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema), use_buffers=True)
    best, best_state, history = -1.0, None, []
    t_train = time.time()
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(x_all), generator=gen).to(device)
        tot, nb, te = 0.0, 0, time.time()
        for i in range(0, len(perm), batch):
            idx = perm[i : i + batch]
            x, bx = augment(x_all[idx].clone(), b_all[idx], gen)
            with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
                logits, pb = model.forward_logits(x.contiguous(memory_format=layout))
                m = has_box[idx]
                loss = ce(logits.float(), y_all[idx])
                if m.any():
                    loss = loss + BOX_WEIGHT * nn.functional.smooth_l1_loss(pb[m].float(), bx[m], beta=0.02)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if averaged is not None:
                averaged.update_parameters(model)
            tot += loss.item()
            nb += 1
        kept = averaged.module if averaged is not None else model
        val = evaluate_torch(kept, va_img, va_cls, va_box, device)
        # mean IoU is NaN when no defect image is classed right (an untrained network): count it as 0,
        # so that some epoch is always kept
        score = val["macro_f1_defects"] + 0.1 * float(np.nan_to_num(val["mean_iou"], nan=0.0))
        history.append({"epoch": ep + 1, "loss": tot / nb, "seconds": time.time() - te, **{k: val[k] for k in ("accuracy", "macro_f1_defects", "auroc", "mean_iou")}})
        log(json.dumps(history[-1]))
        if score > best:
            best, best_state = score, {k: v.detach().cpu().clone() for k, v in kept.state_dict().items()}
    model = model.cpu().to(memory_format=torch.contiguous_format)
    model.load_state_dict(best_state)
    model.eval()
    return model, history, time.time() - t_train


def train(arch: str, epochs: int, n_train: int, seed: int = 0, lr: float = 3e-3, batch: int = 128, log=print,
          precision: str = "fp32", ema: float = 0.0):
    t0 = time.time()
    # the split is generated in chunks of 600 with one seed each, so a larger split starts with the
    # images of the smaller one: --n-train above N_TRAIN adds images, below it takes a prefix
    tr_img, tr_cls, tr_box, _ = split_data("train", max(N_TRAIN, n_train))
    va_img, va_cls, va_box, _ = split_data("val", N_VAL)
    tr = (tr_img[:n_train], tr_cls[:n_train], tr_box[:n_train])
    log(f"data ready in {time.time() - t0:.1f}s: train {len(tr[0])}, val {len(va_img)}")
    return fit(arch, epochs, tr, (va_img, va_cls, va_box), seed=seed, lr=lr, batch=batch, log=log,
               precision=precision, ema=ema)


def compare(args) -> None:
    """Train each candidate briefly on the same data, measure val macro-F1 and ORT latency."""
    rows = []
    for arch in ARCHS:
        model, hist, secs = train(arch, args.compare_epochs, args.compare_n, log=lambda s: print(f"[{arch}] {s}", flush=True))
        path = HERE.parent.parent / "data" / "vision" / f"cand_{arch}.onnx"
        export_onnx(serving_form(model), path)
        sess = ort_session(path)
        va_img, va_cls, va_box, _ = split_data("val", N_VAL)
        m = compute(*ort_predict(sess, va_img), va_cls, va_box)
        lat = latency(sess, 1, seconds=2.0)
        params = sum(p.numel() for p in model.parameters())
        rows.append({
            "arch": arch, **ARCHS[arch], "params": params, "train_s": round(secs, 1),
            "val_macro_f1": m["macro_f1_defects"], "val_mean_iou": m["mean_iou"],
            "b1_p50_ms": lat["p50_ms"], "f1_per_ms": m["macro_f1_defects"] / lat["p50_ms"],
        })
        print(json.dumps(rows[-1]), flush=True)
    (HERE / "arch_comparison.json").write_text(json.dumps({
        "protocol": f"{args.compare_epochs} epochs on the first {args.compare_n} training images, val split, "
                    "onnxruntime FP32, 2 intra-op threads, batch 1",
        "rows": rows}, indent=2))


def cpu_has_native_bf16() -> bool:
    """True when /proc/cpuinfo lists a bfloat16 instruction set (AVX-512 BF16 or AMX); False when
    it does not or cannot be read (not Linux)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def export_served(model, arch: str, tta: str, path: Path) -> str:
    """Export the committed FP32 graph: the network in its serving form (`common.serving_form`),
    wrapped in the four-turn average when `tta` is "rot4" (the eight-view one for "dihedral8").
    Returns the architecture whose graph was exported ("pool" for a `pool_pf` network served in that
    form, else `arch`)."""
    served = serving_form(model)
    export_onnx(RotationAverage(served, mirror=tta == "dihedral8") if tta in ("rot4", "dihedral8") else served,
                path)
    return "pool" if served is not model else arch


def reexport(args) -> None:
    """`--reexport`: the export and quantisation steps of a run, on a network trained before."""
    import hashlib

    t0 = time.time()
    log = json.loads((HERE / "train_log.json").read_text())
    if log["arch"] != args.arch:
        raise SystemExit(f"train_log.json records arch {log['arch']}, not {args.arch}")
    model = from_bare_onnx(args.arch, args.reexport)
    fp32 = HERE / "defect_fp32.onnx"
    served_as = export_served(model, args.arch, args.tta, fp32)
    log["tta"] = args.tta
    log["served_as"] = served_as
    log["reexported_from"] = {"file": args.reexport.name,
                              "sha256": hashlib.sha256(args.reexport.read_bytes()).hexdigest()}
    if not args.no_quantize:
        from quantize import quantize_best

        log["quantization"] = quantize_best(fp32, HERE / "defect_int8.onnx")
    log["reexport_seconds"] = time.time() - t0
    (HERE / "train_log.json").write_text(json.dumps(log, indent=2))
    print(f"re-exported in {log['reexport_seconds']:.0f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="small", choices=list(ARCHS))
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--n-train", type=int, default=N_TRAIN)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compare", action="store_true")
    ap.add_argument("--compare-epochs", type=int, default=3)
    ap.add_argument("--compare-n", type=int, default=12_000)
    ap.add_argument("--no-quantize", action="store_true")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: bfloat16 autocast for training (fast on CPUs with AVX-512 BF16 or AMX, very slow "
                         "without them); fp32 (default, the committed model): float32")
    ap.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                    help="validate and keep an exponential moving average of the weights with this decay per "
                         "step (0: off, the raw weights)")
    ap.add_argument("--tta", choices=["none", "rot4", "dihedral8"], default="rot4",
                    help="rot4: the exported models average the network over the image's four 90-degree "
                         "turns (common.RotationAverage); dihedral8: over the four turns and their mirror "
                         "images (twice rot4's work); none: the bare network")
    ap.add_argument("--reexport", type=Path, metavar="BARE_ONNX",
                    help="no training: take the network of a bare export of an earlier run (the "
                         "data/vision/defect_fp32_plain.onnx it wrote) and redo the export with --tta and "
                         "the INT8 quantisation; train_log.json keeps that run's training record")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    if args.reexport:
        reexport(args)
        return
    if args.precision == "bf16" and not cpu_has_native_bf16():
        print("warning: this CPU reports neither avx512_bf16 nor amx_bf16; bfloat16 training will be "
              "slow here, --precision fp32 is the faster choice", flush=True)
    if args.compare:
        compare(args)
        return
    t0 = time.time()
    model, history, secs = train(args.arch, args.epochs, args.n_train, log=lambda s: print(s, flush=True),
                                 precision=args.precision, ema=args.ema)
    fp32 = HERE / "defect_fp32.onnx"
    torch.save(model.state_dict(), HERE.parent.parent / "data" / "vision" / f"defect_{args.arch}.pt")
    # the bare network too (not committed): what tta_experiment.py measures the augmentations on
    export_onnx(model, HERE.parent.parent / "data" / "vision" / "defect_fp32_plain.onnx")
    served_as = export_served(model, args.arch, args.tta, fp32)
    log = {"arch": args.arch, **ARCHS[args.arch], "epochs": args.epochs, "n_train": args.n_train,
           "precision": args.precision, "ema": args.ema, "tta": args.tta, "served_as": served_as,
           "train_loop_seconds": secs, "history": history}
    if not args.no_quantize:
        from quantize import quantize_best

        log["quantization"] = quantize_best(fp32, HERE / "defect_int8.onnx")
    log["total_seconds"] = time.time() - t0
    (HERE / "train_log.json").write_text(json.dumps(log, indent=2))
    print(f"done in {log['total_seconds']:.0f}s")


if __name__ == "__main__":
    main()
