"""PPO training of twinline's dispatching policy on the Rust environment (twinline_rl_env).

The environment (Giffler-Thompson conflict sets, observations, lower-bound reward) is the Rust
crate twinline-solver, reached through the PyO3 binding in models/rl/pyenv: nothing of the
dynamics is written here. The policy scores each candidate operation from its features and a
masked mean of all candidates' embeddings, so one network serves any instance size.

PPO with the clipped surrogate objective and an entropy bonus. Advantages are group-relative:
every instance is rolled out `--copies` times with the current policy and each rollout's return
(the sum of the step rewards, i.e. (LB0 - Cmax) / LB0) is compared with the mean of its group,
which replaces a learned critic (no value network to fit). Seeded; one thread by default.

Usage: python train.py [--minutes 40] [--seed 1] [--out models/rl]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

import twinline_rl_env as E

HERE = Path(__file__).resolve().parent
F = E.N_FEATURES

# Training sizes (jobs, machines): small to large, drawn at random each iteration.
TRAIN_SIZES = [(6, 6), (10, 10), (15, 10), (15, 15), (20, 10), (20, 15), (20, 20), (30, 15)]
# Validation: generated instances from a seed range that training never draws.
VAL_SIZES = [(15, 15), (20, 15)]
VAL_COUNT = 16
VAL_SEED = 900_000


class Policy(nn.Module):
    """Per-candidate scorer: embed each candidate, pool the set, score [embedding, pool]."""

    def __init__(self, hidden: int = 64):
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(F, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.score = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # features [B, K, F], mask [B, K] (1 = candidate) -> logits [B, K], padding at -1e9.
        h = self.embed(features)
        m = mask.unsqueeze(-1)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        z = torch.cat([h, pooled.unsqueeze(1).expand_as(h)], dim=-1)
        logits = self.score(z).squeeze(-1)
        return logits * mask + (mask - 1.0) * 1e9


def as_tensors(obs, n: int):
    f, m, k = obs
    feats = torch.from_numpy(np.frombuffer(f, np.float32).reshape(n, k, F).copy())
    mask = torch.from_numpy(np.frombuffer(m, np.float32).reshape(n, k).copy())
    return feats, mask


def rollout(policy: Policy, batch, greedy: bool, gen: torch.Generator | None):
    """Runs every environment of `batch` to the end; returns the decision records and returns."""
    n = len(batch)
    records = []
    returns = np.array(batch.initial_rewards(), dtype=np.float64)
    while not batch.all_done():
        feats, mask = as_tensors(batch.observe(), n)
        active = mask.sum(1) > 0
        with torch.no_grad():
            logits = policy(feats, mask)
            if greedy:
                actions = logits.argmax(1)
                logp = torch.zeros(n)
            else:
                probs = torch.softmax(logits, 1)
                actions = torch.multinomial(probs, 1, generator=gen).squeeze(1)
                logp = torch.log(probs.gather(1, actions[:, None]).squeeze(1).clamp(min=1e-12))
        actions = torch.where(active, actions, torch.zeros_like(actions))
        returns += np.array(batch.step(actions.tolist()))
        if not greedy:
            # Only rows with a real choice train the policy.
            sel = active & (mask.sum(1) > 1)
            idx = sel.nonzero().squeeze(1)
            if len(idx):
                records.append((feats[idx], mask[idx], actions[idx], logp[idx], idx))
    return records, returns


def validate(policy: Policy) -> dict:
    out = {}
    policy.eval()
    for j, m in VAL_SIZES:
        b = E.Batch.random(j, m, VAL_COUNT, 1, VAL_SEED + 100 * j + m)
        rollout(policy, b, greedy=True, gen=None)
        mk = np.array(b.makespans(), dtype=np.float64)
        out[f"{j}x{m}"] = float(mk.mean())
    return out


def rule_baselines() -> dict:
    out = {}
    for j, m in VAL_SIZES:
        b = E.Batch.random(j, m, VAL_COUNT, 1, VAL_SEED + 100 * j + m)
        out[f"{j}x{m}"] = {r: float(np.mean(b.rule_makespans(r))) for r in ["SPT", "MWKR", "MOPNR", "FDD/MWKR"]}
    return out


def export(policy: Policy, path: Path) -> None:
    policy.eval()
    torch.onnx.export(
        policy,
        (torch.zeros(2, 3, F), torch.ones(2, 3)),
        str(path),
        input_names=["features", "mask"],
        output_names=["logits"],
        dynamic_axes={"features": {0: "B", 1: "K"}, "mask": {0: "B", 1: "K"}, "logits": {0: "B", 1: "K"}},
        opset_version=17,
        dynamo=False,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=40.0, help="training time budget (wall clock)")
    ap.add_argument("--max-iters", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--instances", type=int, default=8, help="instances per iteration")
    ap.add_argument("--copies", type=int, default=16, help="rollouts per instance (the advantage group)")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--epochs", type=int, default=3, help="PPO epochs per iteration")
    ap.add_argument("--minibatch", type=int, default=2048)
    ap.add_argument("--clip", type=float, default=0.2)
    ap.add_argument("--entropy", type=float, default=0.01)
    ap.add_argument("--val-every", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    policy = Policy(args.hidden)
    opt = torch.optim.Adam(policy.parameters(), lr=args.lr)

    rules = rule_baselines()
    log = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
           "rules_val": rules, "iters": []}
    best_val = math.inf
    best_state = None
    t0 = time.time()
    it = 0
    while it < args.max_iters and time.time() - t0 < args.minutes * 60:
        j, m = rng.choice(TRAIN_SIZES)
        batch = E.Batch.random(j, m, args.instances, args.copies, args.seed * 10_000_019 + it)
        policy.eval()
        records, returns = rollout(policy, batch, greedy=False, gen=gen)
        g = returns.reshape(args.instances, args.copies)
        adv = ((g - g.mean(1, keepdims=True)) / (g.std(1, keepdims=True) + 1e-6)).reshape(-1)
        adv_t = torch.from_numpy(adv).float()
        # Flatten decision rows, padding every row to the widest conflict set of the iteration.
        kmax = max(r[1].shape[1] for r in records)
        feats = torch.cat([nn.functional.pad(r[0], (0, 0, 0, kmax - r[0].shape[1])) for r in records])
        masks = torch.cat([nn.functional.pad(r[1], (0, kmax - r[1].shape[1])) for r in records])
        acts = torch.cat([r[2] for r in records])
        old_logp = torch.cat([r[3] for r in records])
        row_adv = torch.cat([adv_t[r[4]] for r in records])
        policy.train()
        n = len(acts)
        stats = []
        for _ in range(args.epochs):
            perm = torch.randperm(n, generator=gen)
            for s in range(0, n, args.minibatch):
                ix = perm[s:s + args.minibatch]
                logits = policy(feats[ix], masks[ix])
                logp_all = torch.log_softmax(logits, 1)
                logp = logp_all.gather(1, acts[ix][:, None]).squeeze(1)
                ratio = torch.exp(logp - old_logp[ix])
                a = row_adv[ix]
                surr = torch.min(ratio * a, ratio.clamp(1 - args.clip, 1 + args.clip) * a)
                p = torch.exp(logp_all) * masks[ix]
                ent = -(p * torch.where(masks[ix] > 0, logp_all, torch.zeros_like(logp_all))).sum(1)
                loss = -surr.mean() - args.entropy * ent.mean()
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
                opt.step()
                stats.append((loss.item(), ent.mean().item()))
        rec = {"iter": it, "t": round(time.time() - t0, 1), "size": f"{j}x{m}",
               "mean_return": float(returns.mean()), "decisions": n,
               "loss": float(np.mean([s[0] for s in stats])), "entropy": float(np.mean([s[1] for s in stats]))}
        if it % args.val_every == 0:
            v = validate(policy)
            rec["val"] = v
            score = float(np.mean([v[k] / min(rules[k].values()) for k in v]))
            rec["val_ratio_to_best_rule"] = score
            if score < best_val:
                best_val = score
                best_state = {k: t.clone() for k, t in policy.state_dict().items()}
                rec["best"] = True
            print(f"it {it:5d} t {rec['t']:7.1f}s {j}x{m} ret {rec['mean_return']:.4f} ent {rec['entropy']:.3f} "
                  f"val/best-rule {score:.4f} {'*' if rec.get('best') else ''}", flush=True)
        log["iters"].append(rec)
        it += 1

    if best_state is not None:
        policy.load_state_dict(best_state)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(policy.state_dict(), args.out / "policy.pt")
    export(policy, args.out / "policy.onnx")
    log["train_seconds"] = round(time.time() - t0, 1)
    log["iterations"] = it
    log["best_val_ratio_to_best_rule"] = best_val
    (args.out / "train_log.json").write_text(json.dumps(log, indent=1))
    meta = {"name": "twinline-dispatch-ppo", "version": time.strftime("%Y%m%d", time.gmtime()),
            "features": list(E.FEATURE_NAMES), "hidden": args.hidden,
            "inputs": {"features": "float32 [B, K, F]", "mask": "float32 [B, K]"}, "outputs": {"logits": "float32 [B, K]"}}
    (args.out / "policy.json").write_text(json.dumps(meta, indent=1))
    print(f"done: {it} iterations in {log['train_seconds']} s; best validation ratio to best rule {best_val:.4f}")


if __name__ == "__main__":
    main()
