"""Shared pieces of the vision scripts: model definitions, cached split data, ONNX helpers."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from generate import DISTRACTOR_VERSION, RANDOMISATION, SPLITS, TWINS, make_split
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
    suffix += f"v{DISTRACTOR_VERSION}" if dist > 0 and DISTRACTOR_VERSION != 1 else ""
    suffix += "_twins" if TWINS.get(split, False) else ""
    # the split's backgrounds are part of the key: a cache made with another list is not reused
    backgrounds = hashlib.sha1(",".join(SPLITS[split]).encode()).hexdigest()[:8]
    f = CACHE / f"{split}_{n}{suffix}_{backgrounds}.npz"
    if f.exists():
        z = np.load(f)
        return z["images"], z["cls"], z["box"], z["bg"]
    images, cls, box, bg = make_split(split, n)
    np.savez_compressed(f, images=images, cls=cls, box=box, bg=bg)
    return images, cls, box, bg


def keep_freed_memory() -> bool:
    """Ask glibc to serve large blocks from the heap instead of fresh mmap()s and to keep freed memory
    (mallopt M_MMAP_MAX 0, M_TRIM_THRESHOLD 2 GiB). A training step allocates and frees the same
    activation and gradient tensors (up to 32 MiB each) every time; with glibc's defaults each of
    them is a new mapping whose pages fault in again on first touch. On the AVX2-only AMD EPYC
    (2026-11-29, `step_bench.py --archs pool_pf` with and without `--malloc-defaults`, alternated
    twice): a channels-last pool_pf step 122.9 / 126.1 ms -> 104.9 / 107.9 ms; minor page faults of
    a 45-step run 620 000-660 000 -> 156 000-158 000. Returns False where there is no glibc (nothing
    changed)."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return libc.mallopt(m_mmap_max, 0) == 1 and libc.mallopt(m_trim_threshold, 2**31 - 1) == 1


def _block(cin: int, cout: int, convs: int, strided: bool, pool_first: bool = False) -> list[nn.Module]:
    """`strided`: one 3x3 stride-2 conv (+ convs-1 stride-1 convs); else convs x conv + maxpool 2.
    `pool_first` (one conv, not strided): conv, maxpool 2, then batch norm and ReLU on the pooled map,
    so the normalisation and activation run on a quarter of the pixels."""
    if pool_first:
        if strided or convs != 1:
            raise ValueError("pool_first blocks have one convolution and no stride")
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True)]
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

    def __init__(self, widths: tuple[int, ...], convs: tuple[int, ...], hidden: int = 128, strided: bool = True,
                 pool_first: bool = False):
        super().__init__()
        self.config = dict(widths=widths, convs=convs, hidden=hidden, strided=strided, pool_first=pool_first)
        layers: list[nn.Module] = []
        cin = 1
        for w, k in zip(widths, convs):
            layers += _block(cin, w, k, strided, pool_first)
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
    # pool with the max-pool moved before batch norm and ReLU (cheaper to train on CPUs)
    "pool_pf": dict(widths=(16, 32, 64, 128), convs=(1, 1, 1, 1), hidden=128, strided=False, pool_first=True),
}


def build(arch: str) -> DefectNet:
    return DefectNet(**ARCHS[arch])


def serving_form(net: DefectNet) -> DefectNet:
    """The network to export for serving. A `pool_first` network (conv → max-pool → batch norm → ReLU)
    whose batch norms all scale by a positive factor (gamma > 0) computes, in eval mode, the same
    function as the conv → batch norm → ReLU → max-pool network with the same weights: an increasing
    per-channel affine map commutes with the max-pool, and so does the ReLU. That form's export
    folds each batch norm into its convolution and lets ONNX Runtime fuse the ReLU, and its INT8
    graph has no float batch norm between quantised operators. Any other network, or a `pool_first`
    one with a scale <= 0, is returned unchanged."""
    if not net.config["pool_first"]:
        return net
    norms = [m for m in net.features if isinstance(m, nn.BatchNorm2d)]
    if not all(bool((m.weight > 0).all()) for m in norms):
        return net
    out = DefectNet(**{**net.config, "pool_first": False})
    src = [m for m in net.features if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    dst = [m for m in out.features if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    with torch.no_grad():
        for a, b in zip(src, dst, strict=True):
            if type(a) is not type(b):
                raise ValueError("pool_first network and its serving form differ in layer order")
            b.load_state_dict(a.state_dict())
            if isinstance(a, nn.BatchNorm2d):
                b.eps = a.eps
        for name in ("fc", "cls", "box"):
            getattr(out, name).load_state_dict(getattr(net, name).state_dict())
    return out.eval()


def _box_back(box: torch.Tensor, k: int) -> torch.Tensor:
    """A box [x, y, w, h] (normalised, top-left corner) found on an image turned k times by 90 degrees
    counter-clockwise (`torch.rot90(image, k, dims=(2, 3))`, numpy's `rot90(image, k)`), in the
    frame of the unturned image."""
    for _ in range(k):
        box = torch.stack([1.0 - box[:, 1] - box[:, 3], box[:, 0], box[:, 3], box[:, 2]], dim=1)
    return box


def _turn(x: torch.Tensor, k: int) -> torch.Tensor:
    """`torch.rot90(x, k, dims=(2, 3))` written with flips and transposes, which the ONNX exporter
    supports (it has no rot90)."""
    if k == 1:
        return x.flip(3).transpose(2, 3)
    if k == 2:
        return x.flip(2).flip(3)
    if k == 3:
        return x.transpose(2, 3).flip(3)
    return x


def _clip_box(box: torch.Tensor) -> torch.Tensor:
    """A box [x, y, w, h] cut to the image (0..1): a turned-back box can start left of or above the
    image when the network's box ran past the edge of the turned image."""
    x0, y0 = box[:, 0].clamp(0.0, 1.0), box[:, 1].clamp(0.0, 1.0)
    x1, y1 = (box[:, 0] + box[:, 2]).clamp(0.0, 1.0), (box[:, 1] + box[:, 3]).clamp(0.0, 1.0)
    return torch.stack([x0, y0, x1 - x0, y1 - y0], dim=1)


class RotationAverage(nn.Module):
    """Test-time augmentation inside the exported graph (`train.py --tta rot4`): the network sees each
    image and its three 90-degree turns in one batch; the four class-probability vectors are
    averaged, and the four boxes, each turned back to the image's frame and cut to the image, are
    averaged (so the output box lies inside the image). Same inputs and outputs as the bare network,
    four times its work. Chosen on the validation split (tta_experiment.py).

    `mirror` (`--tta dihedral8`): the four turns and their left-right mirror images, eight views
    (tta_experiment.py's `dihedral8`: view k + 4 is view k flipped), eight times the work."""

    def __init__(self, net: nn.Module, mirror: bool = False):
        super().__init__()
        self.net = net
        self.mirror = mirror

    def forward(self, x):
        n = x.shape[0]
        views = [_turn(x, k) for k in range(4)]
        if self.mirror:
            views += [v.flip(3) for v in views]
        v = len(views)
        probs, box = self.net(torch.cat(views, dim=0))
        probs = probs.reshape(v, n, probs.shape[1]).mean(dim=0)
        box = box.reshape(v, n, 4)
        backs = []
        for k in range(v):
            b = box[k]
            if k >= 4:  # undo the mirror first: x -> 1 - x - w
                b = torch.stack([1.0 - b[:, 0] - b[:, 2], b[:, 1], b[:, 2], b[:, 3]], dim=1)
            backs.append(_clip_box(_box_back(b, k % 4)))
        return probs, torch.stack(backs).mean(dim=0)


def from_bare_onnx(arch: str, path: Path) -> DefectNet:
    """The network of a bare ONNX export of `arch` (`train.py` writes one to
    data/vision/defect_fp32_plain.onnx), as a module whose export has the same weights. The export
    folds a batch norm that directly follows its convolution into it: such a convolution here takes
    the folded weight and bias and its batch norm becomes the identity. A batch norm the export kept
    (after a max-pool, `pool_first`) takes the exported scale, shift, mean and variance."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    ops = [n for n in graph.node if n.op_type in ("Conv", "BatchNormalization")]
    net = build(arch)
    layers = list(net.features)
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d):
            if not ops or ops[0].op_type != "Conv":
                raise ValueError(f"{path}: no convolution where {arch} has layer {i}")
            node = ops.pop(0)
            folded = len(node.input) > 2
            conv = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                             padding=layer.padding, bias=folded)
            with torch.no_grad():
                conv.weight.copy_(weights[node.input[1]])
                if folded:
                    conv.bias.copy_(weights[node.input[2]])
            layers[i] = conv
            if folded:
                if i + 1 >= len(layers) or not isinstance(layers[i + 1], nn.BatchNorm2d):
                    raise ValueError(f"{path}: convolution {i} has a bias, {arch} has no batch norm after it")
                layers[i + 1] = nn.Identity()
        elif isinstance(layer, nn.BatchNorm2d):
            if not ops or ops[0].op_type != "BatchNormalization":
                raise ValueError(f"{path}: no batch norm where {arch} has layer {i}")
            node = ops.pop(0)
            with torch.no_grad():
                for name, j in (("weight", 1), ("bias", 2), ("running_mean", 3), ("running_var", 4)):
                    getattr(layer, name).copy_(weights[node.input[j]])
            layer.eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
    if ops:
        raise ValueError(f"{path}: {len(ops)} convolutions or batch norms more than {arch} has")
    net.features = nn.Sequential(*layers)
    with torch.no_grad():
        for name, param in net.named_parameters():
            if not name.startswith("features."):
                param.copy_(weights[name])
    return net.eval()


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
