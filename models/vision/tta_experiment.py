"""Test-time augmentation experiment: does averaging the committed FP32 model's class
probabilities over rotated and flipped copies of each image raise macro F1?

Needs numpy, pillow, scikit-image, scikit-learn and onnxruntime only (no PyTorch). Chooses by the
validation split; the test split is reported. Writes tta_experiment.json.

    .venv/bin/python models/vision/tta_experiment.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from generate import make_split
from metrics import compute
from preprocess import batch_u8_to_tensor

HERE = Path(__file__).resolve().parent
SETS = {"identity": [0], "rot4": [0, 1, 2, 3], "flip2": [0, 4], "dihedral8": list(range(8))}


def view(images: np.ndarray, k: int) -> np.ndarray:
    """Dihedral transform k of uint8 [n, H, W]: rot90 k % 4 times, then a left-right flip if k >= 4."""
    y = np.rot90(images, k % 4, axes=(1, 2))
    return np.ascontiguousarray(y[:, :, ::-1] if k >= 4 else y)


def main() -> None:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(HERE / "defect_fp32.onnx"), so, providers=["CPUExecutionProvider"])

    def predict(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = [sess.run(["class_probs", "bbox"], {"image": batch_u8_to_tensor(images[i : i + 256])})
               for i in range(0, len(images), 256)]
        return np.concatenate([p for p, _ in out]), np.concatenate([b for _, b in out])

    results: dict = {"model": "defect_fp32.onnx", "average": "mean of class probabilities"}
    for split, n in (("val", 3000), ("test", 6000)):
        images, cls, box, _ = make_split(split, n)
        probs, boxes = zip(*(predict(view(images, k)) for k in range(8)))
        stacked = np.stack(probs)
        results[split] = {}
        for name, ks in SETS.items():
            r = compute(stacked[ks].mean(0), boxes[0], cls, box)
            results[split][name] = {k: r[k] for k in ("macro_f1_defects", "accuracy", "auroc")}
            print(split, name, json.dumps(results[split][name]), flush=True)
    best = max(SETS, key=lambda s: results["val"][s]["macro_f1_defects"])
    results["chosen_by_validation"] = best
    (HERE / "tta_experiment.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
