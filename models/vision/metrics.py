"""Detection metrics of the defect model (the same definitions are quoted in MODEL_CARD.md)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from preprocess import CLASS_NAMES


def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of [N,4] normalised (x, y, w, h) boxes, row by row."""
    ax1, ay1 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return inter / np.maximum(union, 1e-12)


def compute(probs: np.ndarray, boxes: np.ndarray, cls: np.ndarray, true_box: np.ndarray) -> dict:
    """probs [N,6], predicted boxes [N,4], true class ids [N], true boxes [N,4] (NaN for none).

    - per-class precision/recall/F1 with the predicted class = argmax(probs)
    - macro_f1_defects: mean F1 over the 5 defect classes (none excluded)
    - auroc: image level defect vs none, score = 1 - p(none)
    - mean_iou: mean IoU over images whose true class is a defect and whose predicted class equals it
    """
    pred = probs.argmax(1)
    p, r, f, s = precision_recall_fscore_support(cls, pred, labels=list(range(len(CLASS_NAMES))), zero_division=0)
    per_class = {
        name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, name in enumerate(CLASS_NAMES)
    }
    is_defect = cls != 0
    auroc = float(roc_auc_score(is_defect, 1.0 - probs[:, 0])) if 0 < is_defect.sum() < len(cls) else float("nan")
    hit = is_defect & (pred == cls)
    ious = iou_xywh(boxes[hit], true_box[hit]) if hit.any() else np.array([np.nan])
    return {
        "n": int(len(cls)),
        "accuracy": float((pred == cls).mean()),
        "macro_f1_defects": float(np.mean(f[1:])),
        "auroc": auroc,
        "mean_iou": float(np.mean(ious)),
        "iou_at_0_5": float(np.mean(ious >= 0.5)),
        "per_class": per_class,
    }
