#!/usr/bin/env python3
"""Prune a cargo target directory shared between CI runs down to what the last run used.

A target cache that lives across runs keeps every unit it ever built: each change of a dependency,
a feature set, a flag or a checkout path leaves a new `name-<hash>` copy beside the old ones, and
the cache grows until the disk is full (the linker then dies with SIGBUS). Cargo has no garbage
collection for target directories, so this does it from cargo's own record of the run:

    prune_target.py <target-dir> <profile> <units.jsonl>... [--since EPOCH]

`units.jsonl` are the JSON messages of the run's cargo commands (`--message-format=json...`):
every `compiler-artifact` (fresh or rebuilt) and `build-script-executed` message names files whose
`-<16 hex>` hash marks a unit in use. In `<target-dir>/<profile>`, entries of `deps/`, `build/`,
`examples/` and `.fingerprint/` with a hash outside that set are removed; with `--since`,
`incremental/` sessions not written since that time are removed too. Nothing is removed when the
message files hold no artifact at all (a failed or missing capture), so a bad call cannot wipe
the cache.
"""

import argparse
import json
import os
import re
import shutil
import sys

HASH = re.compile(r"-([0-9a-f]{16})(?:\.|/|$)")


def used_hashes(paths):
    hashes = set()
    for path in paths:
        try:
            lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            if not line.startswith("{"):
                continue
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            reason = msg.get("reason")
            names = []
            if reason == "compiler-artifact":
                names = list(msg.get("filenames") or [])
                if msg.get("executable"):
                    names.append(msg["executable"])
            elif reason == "build-script-executed":
                names = [msg.get("out_dir") or ""]
            for name in names:
                hashes.update(HASH.findall(name + "/"))
    return hashes


def size_of(path):
    if os.path.islink(path) or not os.path.isdir(path):
        try:
            return os.lstat(path).st_size
        except OSError:
            return 0
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def remove(path):
    size = size_of(path)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.remove(path)
        except OSError:
            return 0
    return size


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("target")
    ap.add_argument("profile")
    ap.add_argument("units", nargs="+")
    ap.add_argument("--since", type=float, help="keep incremental sessions written after this epoch")
    args = ap.parse_args()

    keep = used_hashes(args.units)
    base = os.path.join(args.target, args.profile)
    if not keep:
        print(f"prune_target: no artifacts in {args.units}; nothing removed", file=sys.stderr)
        return 0
    if not os.path.isdir(base):
        return 0

    freed, removed = 0, 0
    for sub in ("deps", "build", "examples", ".fingerprint"):
        d = os.path.join(base, sub)
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            m = HASH.search(name + "/")
            if m and m.group(1) not in keep:
                freed += remove(os.path.join(d, name))
                removed += 1
    if args.since is not None:
        d = os.path.join(base, "incremental")
        if os.path.isdir(d):
            for name in os.listdir(d):
                p = os.path.join(d, name)
                newest = max(
                    (os.lstat(os.path.join(r, x)).st_mtime for r, _, fs in os.walk(p) for x in fs),
                    default=os.lstat(p).st_mtime,
                )
                if newest < args.since:
                    freed += remove(p)
                    removed += 1
    print(
        f"prune_target: {args.profile}: kept {len(keep)} units, removed {removed} entries, "
        f"freed {freed / 2**30:.1f} GiB",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
