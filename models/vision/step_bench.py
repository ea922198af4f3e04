"""Training-step time of the candidate networks on this CPU: a table of ms per step.

    .venv/bin/python models/vision/step_bench.py [--archs pool,pool_pf] [--steps 20] [--repeats 3]

One step = forward, the training loss (cross-entropy + smooth-L1 on boxes), backward and an AdamW
update on a batch of 128 random 64x64 images, as in train.py, on 2 threads. Each cell is the median
over `--repeats` medians of `--steps` timed steps (after 5 warm-up steps); the layouts are PyTorch's
default (NCHW) and channels-last (NHWC, what train.py uses). bf16 rows only on request: on CPUs
without bfloat16 instructions they are very slow.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from common import ARCHS, INPUT_SIZE, build, keep_freed_memory


def step_ms(arch: str, layout: torch.memory_format, bf16: bool, steps: int, batch: int = 128) -> float:
    torch.manual_seed(0)
    model = build(arch).to(memory_format=layout)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ce = nn.CrossEntropyLoss()
    x = torch.randn(batch, 1, INPUT_SIZE, INPUT_SIZE).contiguous(memory_format=layout)
    y = torch.randint(0, 6, (batch,))
    target = torch.rand(batch, 4)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, box = model.forward_logits(x)
            loss = ce(logits.float(), y) + nn.functional.smooth_l1_loss(box.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="pool,pool_pf")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bf16", action="store_true", help="also time bfloat16 autocast steps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--malloc-defaults", action="store_true",
                    help="keep glibc's allocation defaults (train.py changes them: common.keep_freed_memory)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not args.malloc_defaults:
        keep_freed_memory()
    archs = args.archs.split(",")
    for a in archs:
        if a not in ARCHS:
            raise SystemExit(f"unknown arch {a}; known: {', '.join(ARCHS)}")
    modes = [("fp32", "NCHW", torch.contiguous_format, False), ("fp32", "NHWC", torch.channels_last, False)]
    if args.bf16:
        modes.append(("bf16", "NHWC", torch.channels_last, True))
    print(f"| arch | precision | layout | ms per step (batch 128, {args.threads} threads), median of {args.repeats} |")
    print("|---|---|---|---|")
    for arch in archs:
        for prec, name, layout, bf16 in modes:
            runs = sorted(step_ms(arch, layout, bf16, args.steps) for _ in range(args.repeats))
            print(f"| {arch} | {prec} | {name} | {statistics.median(runs):.1f} (runs {', '.join(f'{r:.1f}' for r in runs)}) |",
                  flush=True)


if __name__ == "__main__":
    main()
