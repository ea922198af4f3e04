"""Exact preprocessing contract of the defect model, mirrored by the Rust serving code.

The Rust side does (image 0.25.10):

    let img = image::load_from_memory(bytes)?;          // PNG or JPEG
    let grey = img.to_luma8();                            // step 1
    let grey = if grey.dimensions() != (64, 64) {         // step 2
        image::imageops::resize(&grey, 64, 64, FilterType::Triangle)
    } else { grey };
    x[i] = (grey[i] as f32 / 255.0 - MEAN) / STD          // step 3, row-major, NCHW [1,1,64,64]

This module reproduces steps 1-3 bit for bit (verified against a Rust build of image 0.25.10,
see MODEL_CARD.md "Preprocessing"):

* step 1, `to_luma8`: an 8-bit grey image (L8) is kept as is; LA8 drops alpha; RGB8/RGBA8 are
  converted in f32 as  c_f = u8 * (1/255)  and  Y = ((0 + R_f*KR) + G_f*KG) + B_f*KB  (no FMA,
  the default x86_64 build), then  round_half_away_from_zero(Y * 255)  saturated to u8.
  KR, KG, KB are the Y row of the BT.709/sRGB primaries->XYZ matrix with the D65 white point as
  moxcms 0.8.1 computes it in f32: 0.21264784, 0.7151792, 0.07217304 (f32 bits 0x3e59c05b,
  0x3f3715fc, 0x3d93cf75) -- not the textbook 0.2126/0.7152/0.0722, which mismatch ~0.5 % of pixels. Alpha is ignored, not
  composited. No gamma linearisation.
* step 2, `imageops::resize` with `FilterType::Triangle`: separable, vertical pass first into f32
  (values 0..255, not rounded), then horizontal pass, clamp to [0,255], round half away from zero.
  Both passes use the triangle kernel widened by the scale ratio when downsampling.
* step 3: float32  (u8 / 255 - MEAN) / STD  with MEAN = 0.5, STD = 0.25.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

INPUT_SIZE = 64
MEAN = np.float32(0.5)
STD = np.float32(0.25)

# Y row of moxcms::ColorPrimaries::BT_709.transform_to_xyz(Chromaticity::D65) (f32), as image
# 0.25.10's `derived_luminance` uses them. Exact f32 values printed by the Rust check program.
KR = np.frombuffer(bytes.fromhex("5bc0593e"), dtype="<f4")[0]  # 0.21264784
KG = np.frombuffer(bytes.fromhex("fc15373f"), dtype="<f4")[0]  # 0.7151792
KB = np.frombuffer(bytes.fromhex("75cf933d"), dtype="<f4")[0]  # 0.07217304

CLASS_NAMES = ["none", "scratch", "crack", "hole", "stain", "contamination"]


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """Rust's f32::round (half away from zero); numpy's round is half-to-even."""
    return np.sign(x) * np.floor(np.abs(x) + np.float32(0.5))


def _clamp_u8(y: np.ndarray) -> np.ndarray:
    # Rust `as u8` on a float saturates (NaN -> 0).
    return np.clip(np.nan_to_num(y, nan=0.0), 0, 255).astype(np.uint8)


def rgb_to_luma_u8(rgb: np.ndarray) -> np.ndarray:
    """image 0.25.10 `to_luma8` for an [H, W, 3|4] uint8 array (alpha ignored)."""
    inv = np.float32(1.0) / np.float32(255.0)
    c = rgb[..., :3].astype(np.float32) * inv
    y = np.float32(0.0) + c[..., 0] * KR
    y = (y + c[..., 1] * KG).astype(np.float32)
    y = (y + c[..., 2] * KB).astype(np.float32)
    y = (y * np.float32(255.0)).astype(np.float32)
    return _clamp_u8(_round_half_away(y))


def to_luma8(img: Image.Image) -> np.ndarray:
    """Decoded PIL image -> uint8 [H, W] exactly as image 0.25.10 `DynamicImage::to_luma8`."""
    mode = img.mode
    if mode == "L":
        return np.asarray(img, dtype=np.uint8).copy()
    if mode == "LA":
        return np.asarray(img, dtype=np.uint8)[..., 0].copy()
    if mode in ("RGB", "RGBA"):
        return rgb_to_luma_u8(np.asarray(img, dtype=np.uint8))
    if mode == "P":
        # image decodes palette PNGs to RGB(A) before any conversion.
        conv = img.convert("RGBA" if "transparency" in img.info else "RGB")
        return rgb_to_luma_u8(np.asarray(conv, dtype=np.uint8))
    if mode == "1":
        return np.asarray(img.convert("L"), dtype=np.uint8).copy()
    raise ValueError(f"unsupported image mode {mode!r} (model contract covers 8-bit L/LA/RGB/RGBA)")


def _triangle_weights(src: int, dst: int) -> list[tuple[int, np.ndarray]]:
    """Per output index: (left, normalised weights) exactly as image's `*_sample` computes them."""
    ratio = np.float32(src) / np.float32(dst)
    sratio = ratio if ratio >= 1.0 else np.float32(1.0)
    support = np.float32(1.0) * sratio
    out = []
    for o in range(dst):
        centre = (np.float32(o) + np.float32(0.5)) * ratio
        left = int(np.floor(centre - support))
        left = min(max(left, 0), src - 1)
        right = int(np.ceil(centre + support))
        right = min(max(right, left + 1), src)
        centre = centre - np.float32(0.5)
        ws = []
        total = np.float32(0.0)
        for i in range(left, right):
            x = (np.float32(i) - centre) / sratio
            w = np.float32(1.0) - np.float32(abs(x)) if abs(x) < 1.0 else np.float32(0.0)
            ws.append(np.float32(w))
            total = np.float32(total + np.float32(w))
        out.append((left, np.array([np.float32(w / total) for w in ws], dtype=np.float32)))
    return out


def resize_triangle(grey: np.ndarray, width: int, height: int) -> np.ndarray:
    """image 0.25.10 `imageops::resize(&GrayImage, width, height, FilterType::Triangle)`."""
    h, w = grey.shape
    if (w, h) == (width, height):
        return grey.copy()
    src = grey.astype(np.float32)
    tmp = np.zeros((height, w), dtype=np.float32)
    for oy, (left, ws) in enumerate(_triangle_weights(h, height)):
        acc = np.zeros(w, dtype=np.float32)
        for k, wk in enumerate(ws):
            acc = (acc + src[left + k] * wk).astype(np.float32)
        tmp[oy] = acc
    out = np.zeros((height, width), dtype=np.float32)
    for ox, (left, ws) in enumerate(_triangle_weights(w, width)):
        acc = np.zeros(height, dtype=np.float32)
        for k, wk in enumerate(ws):
            acc = (acc + tmp[:, left + k] * wk).astype(np.float32)
        out[:, ox] = acc
    out = np.clip(out, np.float32(0.0), np.float32(255.0))
    return _clamp_u8(_round_half_away(out))


def grey_u8_to_tensor(grey: np.ndarray) -> np.ndarray:
    """uint8 [H, W] (already INPUT_SIZE square) -> float32 [1, 1, H, W] model input."""
    x = grey.astype(np.float32) / np.float32(255.0)
    x = (x - MEAN) / STD
    return x.astype(np.float32)[None, None]


def batch_u8_to_tensor(greys: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W] -> float32 [N, 1, H, W]."""
    x = greys.astype(np.float32) / np.float32(255.0)
    return ((x - MEAN) / STD).astype(np.float32)[:, None]


def load_grey(data: bytes | str | Path) -> np.ndarray:
    """Decode PNG/JPEG bytes or a path, apply steps 1-2, return uint8 [64, 64]."""
    if isinstance(data, (str, Path)):
        data = Path(data).read_bytes()
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        grey = to_luma8(img)
    if grey.shape != (INPUT_SIZE, INPUT_SIZE):
        grey = resize_triangle(grey, INPUT_SIZE, INPUT_SIZE)
    return grey


def preprocess(data: bytes | str | Path) -> np.ndarray:
    """Full contract: encoded PNG/JPEG -> float32 [1, 1, 64, 64]."""
    return grey_u8_to_tensor(load_grey(data))
