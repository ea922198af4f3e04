"""Export the simulator's image library: 200 grey 64x64 PNGs + labels.json under simset/.

Backgrounds: the "sim" split (retina, cell), held out from training, validation and test; seeds
SEED_BASE["sim"] + k, disjoint from every other split. The simulator (Rust) picks images from this
library by label, so a simulated camera produces images whose ground truth is known.

labels.json: {"size": 64, "class_order": [...], "images": [{"file", "type", "class_id",
"bbox": [x, y, w, h] normalised | null, "background"}]}

    .venv/bin/python models/vision/export_sim_set.py
"""

from __future__ import annotations

import json

from PIL import Image

from common import HERE
from generate import SEED_BASE, SPLITS, generate
from preprocess import CLASS_NAMES, INPUT_SIZE

N = 200


def main() -> None:
    out = HERE / "simset"
    out.mkdir(exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    images, labels = generate(SEED_BASE["sim"], SPLITS["sim"], N)
    entries = []
    for i, (im, lb) in enumerate(zip(images, labels)):
        name = f"sim_{i:03d}_{lb['type']}.png"
        Image.fromarray(im, mode="L").save(out / name, optimize=True)
        entries.append({"file": name, **lb})
    (out / "labels.json").write_text(json.dumps(
        {"size": INPUT_SIZE, "class_order": CLASS_NAMES, "backgrounds": SPLITS["sim"],
         "seed": SEED_BASE["sim"], "images": entries}, indent=1))
    total = sum(p.stat().st_size for p in out.iterdir())
    print(f"{len(entries)} images, {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
