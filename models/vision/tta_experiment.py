"""Test-time augmentation experiment: does averaging the FP32 network's outputs over rotated and
flipped copies of each image raise macro F1 (and box IoU)?

Runs on the bare network that train.py exports next to the committed model
(data/vision/defect_fp32_plain.onnx; the committed defect_fp32.onnx already averages the four
rotations when trained with `--tta rot4`, the default). Needs numpy, pillow, scikit-image,
scikit-learn and onnxruntime only (no PyTorch). Chooses by the validation split; the test split is
reported. Writes tta_experiment.json.

    .venv/bin/python models/vision/tta_experiment.py [--model PATH]
"""

from __future__ import annotations

import argparse
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


def box_back(box: np.ndarray, k: int) -> np.ndarray:
    """Boxes [n, 4] = (x, y, w, h) found on `view(images, k)`, in the frame of the images, cut to
    the image (common.RotationAverage does the same for the four turns)."""
    box = box.astype(np.float64)
    if k >= 4:
        box = np.stack([1.0 - box[:, 0] - box[:, 2], box[:, 1], box[:, 2], box[:, 3]], axis=1)
    for _ in range(k % 4):
        box = np.stack([1.0 - box[:, 1] - box[:, 3], box[:, 0], box[:, 3], box[:, 2]], axis=1)
    x0, y0 = np.clip(box[:, 0], 0, 1), np.clip(box[:, 1], 0, 1)
    x1, y1 = np.clip(box[:, 0] + box[:, 2], 0, 1), np.clip(box[:, 1] + box[:, 3], 0, 1)
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=HERE.parent.parent / "data" / "vision" / "defect_fp32_plain.onnx")
    args = ap.parse_args()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(args.model), so, providers=["CPUExecutionProvider"])

    def predict(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = [sess.run(["class_probs", "bbox"], {"image": batch_u8_to_tensor(images[i : i + 256])})
               for i in range(0, len(images), 256)]
        return np.concatenate([p for p, _ in out]), np.concatenate([b for _, b in out])

    results: dict = {"model": args.model.name,
                     "average": "mean of class probabilities; mean of the boxes turned back and cut to the image"}
    for split, n in (("val", 3000), ("test", 6000)):
        images, cls, box, _ = make_split(split, n)
        probs, boxes = zip(*(predict(view(images, k)) for k in range(8)))
        stacked = np.stack(probs)
        back = np.stack([box_back(b, k) for k, b in enumerate(boxes)])
        results[split] = {}
        for name, ks in SETS.items():
            r = compute(stacked[ks].mean(0), back[ks].mean(0), cls, box)
            results[split][name] = {k: r[k] for k in ("macro_f1_defects", "accuracy", "auroc", "mean_iou")}
            print(split, name, json.dumps(results[split][name]), flush=True)
    best = max(SETS, key=lambda s: results["val"][s]["macro_f1_defects"])
    results["chosen_by_validation"] = best
    (HERE / "tta_experiment.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
