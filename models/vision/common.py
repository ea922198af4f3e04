"""Shared pieces of the vision scripts: model definitions, cached split data, ONNX helpers."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from generate import RANDOMISATION, SPLITS, make_split
from preprocess import CLASS_NAMES, INPUT_SIZE, batch_u8_to_tensor

HERE = Path(__file__).resolve().parent
CACHE = HERE.parent.parent / "data" / "vision"  # /data is gitignored at the repo root

# Split sizes used by train.py / evaluate.py (all balanced over the 6 classes).
N_TRAIN, N_VAL, N_TEST = 36_000, 3_000, 6_000


def split_data(split: str, n: int):
    """(images u8 [n,64,64], class ids, bboxes [n,4] NaN for none, background ids); cached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    proc, dist = RANDOMISATION.get(split, (0.0, 0.0))
    suffix = f"_p{proc}_d{dist}" if (proc, dist) != (0.0, 0.0) else ""
    # the split's backgrounds are part of the key: a cache made with another list is not reused
    backgrounds = hashlib.sha1(",".join(SPLITS[split]).encode()).hexdigest()[:8]
    f = CACHE / f"{split}_{n}{suffix}_{backgrounds}.npz"
    if f.exists():
        z = np.load(f)
        return z["images"], z["cls"], z["box"], z["bg"]
    images, cls, box, bg = make_split(split, n)
    np.savez_compressed(f, images=images, cls=cls, box=box, bg=bg)
    return images, cls, box, bg


def _block(cin: int, cout: int, convs: int, strided: bool) -> list[nn.Module]:
    """`strided`: one 3x3 stride-2 conv (+ convs-1 stride-1 convs); else convs x conv + maxpool 2."""
    layers: list[nn.Module] = []
    for i in range(convs):
        stride = 2 if (strided and i == 0) else 1
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, stride=stride, padding=1, bias=False),
                   nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    if not strided:
        layers.append(nn.MaxPool2d(2))
    return layers


class DefectNet(nn.Module):
    """4 stages that halve the resolution 64->4 px (stride-2 conv, or conv + maxpool), flatten, FC,
    two heads.

    Outputs `class_probs` (softmax over CLASS_NAMES) and `bbox` (sigmoid, x, y, w, h in 0..1).
    """

    def __init__(self, widths: tuple[int, ...], convs: tuple[int, ...], hidden: int = 128, strided: bool = True):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for w, k in zip(widths, convs):
            layers += _block(cin, w, k, strided)
            cin = w
        self.features = nn.Sequential(*layers)
        side = INPUT_SIZE // 2 ** len(widths)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(cin * side * side, hidden), nn.ReLU(inplace=True))
        self.cls = nn.Linear(hidden, len(CLASS_NAMES))
        self.box = nn.Linear(hidden, 4)

    def forward_logits(self, x):
        h = self.fc(self.features(x))
        return self.cls(h), torch.sigmoid(self.box(h))

    def forward(self, x):
        logits, box = self.forward_logits(x)
        return torch.softmax(logits, dim=1), box


ARCHS = {
    "tiny": dict(widths=(8, 16, 32, 64), convs=(1, 1, 1, 1), hidden=64, strided=True),
    "small": dict(widths=(16, 32, 64, 128), convs=(1, 1, 1, 1), hidden=128, strided=True),
    "pool": dict(widths=(16, 32, 64, 128), convs=(1, 1, 1, 1), hidden=128, strided=False),
    # pool with 1.5x the channels (2.25x the MACs): measured in the GPU and CPU rounds, not committed
    "pool_w24": dict(widths=(24, 48, 96, 192), convs=(1, 1, 1, 1), hidden=128, strided=False),
}


def build(arch: str) -> DefectNet:
    return DefectNet(**ARCHS[arch])


def export_onnx(model: nn.Module, path: Path) -> None:
    model.eval()
    dummy = torch.zeros(1, 1, INPUT_SIZE, INPUT_SIZE)
    torch.onnx.export(
        model,
        dummy,
        str(path),
        input_names=["image"],
        output_names=["class_probs", "bbox"],
        dynamic_axes={"image": {0: "N"}, "class_probs": {0: "N"}, "bbox": {0: "N"}},
        opset_version=17,
        dynamo=False,
    )


def ort_session(path: Path, threads: int = 2):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_predict(sess, images_u8: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    probs, boxes = [], []
    for i in range(0, len(images_u8), batch):
        p, b = sess.run(["class_probs", "bbox"], {"image": batch_u8_to_tensor(images_u8[i : i + batch])})
        probs.append(p)
        boxes.append(b)
    return np.concatenate(probs), np.concatenate(boxes)


def latency(sess, batch: int, seconds: float = 3.0, warmup: int = 5) -> dict:
    """Per-call latency (ms) p50/p99 and images/s for a fixed batch size."""
    x = np.random.default_rng(0).normal(size=(batch, 1, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
    for _ in range(warmup):
        sess.run(None, {"image": x})
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 20:
        t0 = time.perf_counter()
        sess.run(None, {"image": x})
        times.append(time.perf_counter() - t0)
    t = np.array(times) * 1000
    return {
        "batch": batch,
        "calls": len(t),
        "p50_ms": float(np.percentile(t, 50)),
        "p99_ms": float(np.percentile(t, 99)),
        "images_per_s": float(batch * len(t) / (t.sum() / 1000)),
    }
