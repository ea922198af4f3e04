"""Seeded synthetic surface-defect generator on real photographs (scikit-image and scikit-learn sample data).

`generate(seed, backgrounds, n)` returns `n` grey 64x64 uint8 images and one label per image:
`{"type": <class name>, "class_id": int, "bbox": [x, y, w, h] | None, "background": name}`.
The bbox is normalised to 0..1 of the image (x, y = top-left corner) and is the exact tight box of
the pixels where the rendered defect's opacity is >= BBOX_ALPHA (it is computed from the rendered
mask, never from the drawing parameters, so it is exact for the pixels that changed).

How an image is made (all randomness from `numpy.random.default_rng(seed)`):
1. Surface: a random square crop (side 64..192 px) of one background photograph, scaled to 64x64
   (PIL bilinear with antialiasing), random flip / 90-degree rotation, random contrast, brightness
   and gamma.
2. Defect (class drawn so that each chunk is balanced over the 6 classes):
   - scratch: thin (0.7-1.8 px) smooth curved line 22-58 px long, mostly bright (specular), sometimes
     dark, anti-aliased, with intensity fading along its length.
   - crack: dark jagged random-walk polyline (20-45 px) with 0-2 branches, tapered width.
   - hole: small dark elliptical pit (radius 2.5-7 px) with a sharp edge and a lit rim on one side.
   - stain: large soft irregular blob (radius 7-17 px) that darkens (or, 25 %, lightens) the surface
     multiplicatively, texture kept, sometimes with a darker drying ring.
   - contamination: cluster of 6-20 small particles (radius 0.6-1.8 px) within 4-12 px.
   - none: surface only.
3. Sensor: optional slight blur, Gaussian noise, quantisation to uint8.

Splits are disjoint by background photograph AND by generator seed range (see SPLITS, SEED_BASE);
every background's source and licence is in BACKGROUNDS and in MODEL_CARD.md.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

try:  # run as a script from this folder or imported as a module
    from preprocess import CLASS_NAMES, INPUT_SIZE, rgb_to_luma_u8
except ImportError:  # pragma: no cover
    from .preprocess import CLASS_NAMES, INPUT_SIZE, rgb_to_luma_u8

BBOX_ALPHA = 0.3
MIN_VISIBLE = {"scratch": 0.2, "crack": 0.2, "hole": 0.25, "stain": 0.12, "contamination": 0.2}
SIZE = INPUT_SIZE


@dataclass(frozen=True)
class Background:
    file: str
    source: str
    licence: str
    # the wheel the file ships in: "skimage" (skimage/data/) or "sklearn" (sklearn/datasets/images/)
    package: str = "skimage"


# Every photograph ships in a PyPI wheel: scikit-image's (skimage/data/; licence text quoted from the
# docstring of the matching skimage.data function) or scikit-learn's (sklearn/datasets/images/;
# licence and credits from the README.txt next to the files: CC BY 2.0, so MODEL_CARD.md credits the
# photographers and says what was changed). Images without a stated licence (moon, page,
# motorcycle) are deliberately not used.
BACKGROUNDS: dict[str, Background] = {
    "brick": Background("brick.png", "CC0Textures Bricks25", "CC0"),
    "grass": Background("grass.png", "DeviantArt linolafett 'Grass 01'", "CC0"),
    "gravel": Background("gravel.png", "CC0Textures Gravel04", "CC0"),
    "camera": Background("camera.png", "photographer Lav Varshney", "CC0"),
    "text": Background("text.png", "Wikipedia File:Corner.png", "public domain"),
    "astronaut": Background("astronaut.png", "NASA Great Images (Eileen Collins)", "public domain"),
    "coffee": Background("coffee.png", "photographer Rachel Michetti (Pikolo Espresso Bar)", "CC0"),
    "rocket": Background("rocket.jpg", "SpaceX photos (Flickr)", "public domain"),
    "immunohistochemistry": Background("ihc.png", "Center for Microscopy And Molecular Imaging", "no known copyright restrictions"),
    "chelsea": Background("chelsea.png", "photographer Stefan van der Walt", "CC0"),
    "hubble_deep_field": Background("hubble_deep_field.jpg", "NASA HubbleSite", "public domain"),
    "coins": Background("coins.png", "Brooklyn Museum Collection", "no known copyright restrictions"),
    "clock_motion": Background("clock_motion.png", "photographer Stefan van der Walt", "public domain"),
    "retina": Background("retina.jpg", "Wikimedia Commons, Mikael Haggstrom", "CC0"),
    "cell": Background("cell.png", "qpformat hologram (Paul Mueller et al.)", "CC0"),
    "china": Background("china.jpg", "Flickr, danielbuechele, photo 6061409035", "CC BY 2.0", "sklearn"),
    "flower": Background("flower.jpg", "Flickr, vultilion, photo 6056698931", "CC BY 2.0", "sklearn"),
}

SPLITS: dict[str, list[str]] = {
    "train": ["brick", "grass", "camera", "text", "astronaut", "coffee", "rocket", "immunohistochemistry",
              "china", "flower"],
    "val": ["chelsea", "hubble_deep_field"],
    "test": ["gravel", "coins", "clock_motion"],
    "sim": ["retina", "cell"],
}
# chunk k of split s uses seed SEED_BASE[s] + k: seed ranges never overlap between splits.
SEED_BASE = {"train": 1_000_000, "val": 2_000_000, "test": 3_000_000, "sim": 4_000_000}
CHUNK = 600


def skimage_data_dir() -> Path:
    """scikit-image's sample-data folder; TWINLINE_SKIMAGE_DATA points elsewhere (a copy of the
    same files, for machines whose scikit-image differs)."""
    import os

    if os.environ.get("TWINLINE_SKIMAGE_DATA"):
        return Path(os.environ["TWINLINE_SKIMAGE_DATA"])
    import skimage

    return Path(skimage.__file__).parent / "data"


@lru_cache(maxsize=None)
def load_background(name: str) -> np.ndarray:
    """Background photograph as uint8 grey [H, W] (colour converted like the model contract)."""
    bg = BACKGROUNDS[name]
    if bg.package == "sklearn":
        import sklearn

        folder = Path(sklearn.__file__).parent / "datasets" / "images"
    else:
        folder = skimage_data_dir()
    with Image.open(folder / bg.file) as img:
        img.load()
        if img.mode in ("RGB", "RGBA"):
            return rgb_to_luma_u8(np.asarray(img))
        return np.asarray(img.convert("L"), dtype=np.uint8)


# ----------------------------------------------------------------------------- geometry helpers

_YY, _XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + np.float32(0.5)


def _window(xmin, xmax, ymin, ymax, margin):
    """Slices of the pixel grid covering [xmin-margin, xmax+margin] x [ymin-margin, ymax+margin]."""
    x0 = int(np.clip(np.floor(xmin - margin), 0, SIZE))
    x1 = int(np.clip(np.ceil(xmax + margin) + 1, 0, SIZE))
    y0 = int(np.clip(np.floor(ymin - margin), 0, SIZE))
    y1 = int(np.clip(np.ceil(ymax + margin) + 1, 0, SIZE))
    return slice(y0, y1), slice(x0, x1)


def _polyline_distance(points: np.ndarray, margin: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Distance of every pixel centre to a polyline given as [K, 2] (x, y) points, and the
    arc-length parameter t in 0..1 of the nearest point. Pixels further than `margin` from the
    polyline's bounding box get distance inf (computed only inside that window, for speed)."""
    dist_full = np.full((SIZE, SIZE), np.inf, dtype=np.float32)
    t_full = np.zeros((SIZE, SIZE), dtype=np.float32)
    sy, sx = _window(points[:, 0].min(), points[:, 0].max(), points[:, 1].min(), points[:, 1].max(), margin)
    xx, yy = _XX[sy, sx], _YY[sy, sx]
    if xx.size == 0:
        return dist_full, t_full
    p0 = points[:-1, :, None, None]
    p1 = points[1:, :, None, None]
    d = p1 - p0
    seg_len2 = np.maximum((d**2).sum(axis=1), 1e-6)
    px = xx[None] - p0[:, 0]
    py = yy[None] - p0[:, 1]
    u = np.clip((px * d[:, 0] + py * d[:, 1]) / seg_len2, 0.0, 1.0)
    dist = np.sqrt((px - u * d[:, 0]) ** 2 + (py - u * d[:, 1]) ** 2)
    k = dist.argmin(axis=0)
    seg_lengths = np.sqrt(seg_len2[:, 0, 0])
    cum = np.concatenate([[0.0], np.cumsum(seg_lengths)])
    u_best = np.take_along_axis(u, k[None], axis=0)[0]
    dist_full[sy, sx] = dist.min(axis=0)
    t_full[sy, sx] = (cum[k] + u_best * seg_lengths[k]) / max(cum[-1], 1e-6)
    return dist_full, t_full


def _line_alpha(dist: np.ndarray, half_width: np.ndarray | float) -> np.ndarray:
    return np.clip(half_width + 0.5 - dist, 0.0, 1.0)


def _blend(img: np.ndarray, alpha: np.ndarray, target: float | np.ndarray) -> np.ndarray:
    return img * (1.0 - alpha) + alpha * target


# ----------------------------------------------------------------------------- defect renderers
# Each returns (image, opacity mask); the mask defines the bbox.


def _scratch(img, rng):
    length = rng.uniform(22, 58)
    theta = rng.uniform(0, np.pi)
    cx, cy = rng.uniform(14, SIZE - 14, size=2)
    dx, dy = np.cos(theta) * length / 2, np.sin(theta) * length / 2
    p0, p2 = np.array([cx - dx, cy - dy]), np.array([cx + dx, cy + dy])
    bend = rng.uniform(-0.18, 0.18) * length
    p1 = (p0 + p2) / 2 + bend * np.array([-np.sin(theta), np.cos(theta)])
    t = np.linspace(0, 1, 24)[:, None]
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    dist, tt = _polyline_distance(pts.astype(np.float32))
    alpha = _line_alpha(dist, rng.uniform(0.35, 0.9))
    fade = 1.0 - rng.uniform(0.0, 0.5) * np.abs(tt - rng.uniform(0, 1))
    strength = rng.uniform(0.55, 0.95)
    a = alpha * fade * strength
    target = rng.uniform(0.88, 1.0) if rng.random() < 0.75 else rng.uniform(0.0, 0.1)
    return _blend(img, a, target), a


def _walk(rng, start, theta, length, step=2.5, jitter=0.55):
    pts = [np.asarray(start, dtype=np.float64)]
    travelled = 0.0
    while travelled < length:
        theta += rng.uniform(-jitter, jitter)
        s = rng.uniform(0.6, 1.4) * step
        pts.append(pts[-1] + s * np.array([np.cos(theta), np.sin(theta)]))
        travelled += s
    return np.array(pts, dtype=np.float32)


def _crack(img, rng):
    length = rng.uniform(20, 45)
    theta = rng.uniform(0, 2 * np.pi)
    start = rng.uniform(16, SIZE - 16, size=2) - 0.5 * length * np.array([np.cos(theta), np.sin(theta)])
    start = np.clip(start, 4, SIZE - 4)
    main = _walk(rng, start, theta, length)
    dist, tt = _polyline_distance(main)
    hw = rng.uniform(0.5, 1.2) * (1.0 - 0.6 * tt)  # tapers towards the end
    alpha = _line_alpha(dist, hw)
    for _ in range(rng.integers(0, 3)):
        k = rng.integers(1, len(main))
        br = _walk(rng, main[k], theta + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2), rng.uniform(6, 16))
        d2, t2 = _polyline_distance(br)
        alpha = np.maximum(alpha, _line_alpha(d2, rng.uniform(0.35, 0.7) * (1.0 - 0.7 * t2)))
    a = alpha * rng.uniform(0.7, 0.95)
    return _blend(img, a, rng.uniform(0.0, 0.12)), a


def _hole(img, rng):
    r = rng.uniform(2.5, 7.0)
    aspect = rng.uniform(0.75, 1.3)
    cx, cy = rng.uniform(r + 3, SIZE - r - 3, size=2)
    phi = rng.uniform(0, np.pi)
    x, y = _XX - cx, _YY - cy
    xr = x * np.cos(phi) + y * np.sin(phi)
    yr = (-x * np.sin(phi) + y * np.cos(phi)) * aspect
    rad = np.sqrt(xr**2 + yr**2)
    alpha = np.clip(r + 0.5 - rad, 0.0, 1.0)
    out = _blend(img, alpha * rng.uniform(0.85, 1.0), rng.uniform(0.0, 0.08))
    # lit rim on the side facing the light
    light = rng.uniform(0, 2 * np.pi)
    facing = np.clip((x * np.cos(light) + y * np.sin(light)) / np.maximum(rad, 1e-3), 0, 1)
    rim = np.clip(1.0 - np.abs(rad - (r + 0.9)) / 0.9, 0, 1) * facing * rng.uniform(0.3, 0.7)
    out = _blend(out, rim, 1.0)
    return out, np.maximum(alpha, rim)


def _stain(img, rng):
    base = rng.uniform(7, 17)
    cx, cy = rng.uniform(base * 0.6, SIZE - base * 0.6, size=2)
    x, y = _XX - cx, _YY - cy
    ang = np.arctan2(y, x)
    radius = np.full_like(ang, base)
    for k in (2, 3, 4):
        radius = radius * (1 + rng.uniform(0, 0.14) * np.cos(k * ang + rng.uniform(0, 2 * np.pi)))
    rad = np.sqrt(x**2 + y**2)
    soft = rng.uniform(1.5, 4.0)
    alpha = np.clip((radius - rad) / soft + 0.5, 0.0, 1.0)
    alpha = alpha * alpha * (3 - 2 * alpha)  # smoothstep edge
    strength = rng.uniform(0.3, 0.55)
    if rng.random() < 0.3:  # drying ring: darker edge
        ring = np.clip(1.0 - np.abs(rad - radius + 1.5) / 1.5, 0, 1) * rng.uniform(0.2, 0.4)
        alpha_eff = np.clip(alpha * strength + ring, 0, 1)
    else:
        alpha_eff = alpha * strength
    if rng.random() < 0.25:
        out = img + alpha_eff * (1.0 - img)  # lighter stain (e.g. dried residue)
    else:
        out = img * (1.0 - alpha_eff)
    return out, alpha


def _contamination(img, rng):
    m = rng.integers(6, 21)
    spread = rng.uniform(4, 12)
    cx, cy = rng.uniform(spread + 2, SIZE - spread - 2, size=2)
    alpha_total = np.zeros((SIZE, SIZE), dtype=np.float32)
    out = img.copy()
    dark = rng.random() < 0.7
    for _ in range(m):
        px, py = rng.normal([cx, cy], spread / 2)
        pr = rng.uniform(0.6, 1.8)
        sy, sx = _window(px, px, py, py, pr + 2)
        rad = np.sqrt((_XX[sy, sx] - px) ** 2 + (_YY[sy, sx] - py) ** 2)
        a = np.clip(pr + 0.5 - rad, 0.0, 1.0) * rng.uniform(0.7, 1.0)
        target = rng.uniform(0.0, 0.12) if dark else rng.uniform(0.88, 1.0)
        out[sy, sx] = _blend(out[sy, sx], a, target)
        alpha_total[sy, sx] = np.maximum(alpha_total[sy, sx], a)
    return out, alpha_total


# ----------------------------------------------------------------------------- domain randomisation
# Training-split only (RANDOMISATION below): surfaces that are not photographs, and structures on the
# surface that are not defects. The test split's photographs are never seen in training, so the
# model has to learn "what a defect looks like on any surface", not "what these 8 photos look like".


def _norm01(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return ((a - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def _fbm(rng, size: int, sigmas, persistence: float) -> np.ndarray:
    """Fractal noise: white noise low-passed at several scales, coarse scales weighted most."""
    from scipy.ndimage import gaussian_filter

    out = np.zeros((size, size), dtype=np.float32)
    amp = 1.0
    for s in sigmas:
        layer = gaussian_filter(rng.normal(size=(size, size)).astype(np.float32), s, mode="wrap")
        out += amp * layer / max(float(layer.std()), 1e-6)
        amp *= persistence
    return out


def _procedural_surface(rng) -> tuple[np.ndarray, str]:
    """One procedural 64x64 surface in 0..1 and its kind: cast/sand-blasted metal (fractal noise),
    brushed metal (anisotropic noise), turned or milled metal (concentric or parallel tool marks),
    knurled/woven (crossed gratings), wood-like grain (warped stripes)."""
    from scipy.ndimage import gaussian_filter, rotate

    kind = ("cast", "brushed", "turned", "knurled", "grain")[int(rng.integers(0, 5))]
    shade = _fbm(rng, SIZE, (24, 12), 0.5)  # low-frequency illumination / colour variation
    if kind == "cast":
        n = int(rng.integers(3, 6))
        tex = _fbm(rng, SIZE, (16, 8, 4, 2, 1, 0.5)[-n:], rng.uniform(0.5, 1.1))
    elif kind == "brushed":
        big = rng.normal(size=(2 * SIZE, 2 * SIZE)).astype(np.float32)
        big = gaussian_filter(big, (rng.uniform(0.4, 1.0), rng.uniform(5, 25)), mode="wrap")
        big = rotate(big, rng.uniform(0, 180), reshape=False, order=1, mode="wrap")
        tex = big[SIZE // 2 : SIZE // 2 + SIZE, SIZE // 2 : SIZE // 2 + SIZE]
        tex = tex / max(float(tex.std()), 1e-6)
    elif kind == "turned":
        period = rng.uniform(1.6, 6.0)
        if rng.random() < 0.5:  # turning: rings around a centre far off the crop
            ang = rng.uniform(0, 2 * np.pi)
            dist = rng.uniform(40, 400)
            cx, cy = SIZE / 2 + dist * np.cos(ang), SIZE / 2 + dist * np.sin(ang)
            coord = np.sqrt((_XX - cx) ** 2 + (_YY - cy) ** 2)
        else:  # milling / grinding: parallel marks
            th = rng.uniform(0, np.pi)
            coord = _XX * np.cos(th) + _YY * np.sin(th)
        tex = np.sin(2 * np.pi * coord / period + 0.8 * _fbm(rng, SIZE, (6, 3), 0.5))
        tex = tex + rng.uniform(0.2, 0.8) * _fbm(rng, SIZE, (1.0, 0.5), 0.7)
    elif kind == "knurled":
        th = rng.uniform(0, np.pi)
        d = rng.uniform(np.pi / 4, np.pi / 2)
        p1, p2 = rng.uniform(3.0, 9.0, size=2)
        a = _XX * np.cos(th) + _YY * np.sin(th)
        b = _XX * np.cos(th + d) + _YY * np.sin(th + d)
        tex = np.sin(2 * np.pi * a / p1) + np.sin(2 * np.pi * b / p2)
        tex = tex + rng.uniform(0.2, 0.8) * _fbm(rng, SIZE, (1.0, 0.5), 0.7)
    else:  # grain
        th = rng.uniform(0, np.pi)
        coord = _XX * np.cos(th) + _YY * np.sin(th)
        warp = rng.uniform(2, 8) * _fbm(rng, SIZE, (12, 6), 0.5)
        tex = np.sin(2 * np.pi * (coord + warp) / rng.uniform(3, 10))
        tex = tex + rng.uniform(0.2, 0.6) * _fbm(rng, SIZE, (1.5, 0.7), 0.6)
    s = _norm01(tex) * rng.uniform(0.3, 1.0) + _norm01(shade) * rng.uniform(0.0, 0.5)
    return _norm01(s), "procedural_" + kind


# Version of the distractor set, part of the training cache's name: 1 = discs, arrays, steps, bars,
# light (domain_experiment.json); 2 = the same plus concentric rings (`_rings`).
DISTRACTOR_VERSION = 2
_DISTRACTOR_KINDS = {
    1: (("disc", "array", "step", "bar", "light"), (0.2, 0.35, 0.15, 0.15, 0.15)),
    2: (("disc", "array", "step", "bar", "light", "rings"), (0.15, 0.3, 0.12, 0.11, 0.12, 0.2)),
}


def _distractors(img, rng) -> np.ndarray:
    """1-3 structures that belong to the part, not defects: embossed discs (bolts, bosses; larger
    and harder-edged than holes and stains), arrays of round features (rivet rows, bolt circles,
    perforated or dimpled sheet, pads), panel seams / steps, bars and labels, illumination
    gradients, and (version 2) concentric rings: washers, O-rings, grommets, chamfered bores."""
    out = img.copy()
    kinds, probs = _DISTRACTOR_KINDS[DISTRACTOR_VERSION]
    for _ in range(int(rng.integers(1, 4))):
        kind = kinds[int(rng.choice(len(kinds), p=probs))]
        if kind == "array":
            out = _disc_array(out, rng)
        elif kind == "rings":
            out = _rings(out, rng)
        elif kind == "disc":
            r = rng.uniform(8, 30)
            cx, cy = rng.uniform(-r / 2, SIZE + r / 2, size=2)
            x, y = _XX - cx, _YY - cy
            rad = np.sqrt(x**2 + y**2)
            inside = np.clip(r + 0.5 - rad, 0.0, 1.0)
            fill = np.clip(out * rng.uniform(0.5, 1.5) + rng.uniform(-0.25, 0.25)
                           + 0.08 * _fbm(rng, SIZE, (2, 1), 0.6), 0, 1)
            out = _blend(out, inside, fill)
            light = rng.uniform(0, 2 * np.pi)
            facing = (x * np.cos(light) + y * np.sin(light)) / np.maximum(rad, 1e-3)
            w = rng.uniform(0.8, 2.5)
            rim = np.clip(1.0 - np.abs(rad - r + w) / w, 0, 1) * rng.uniform(0.2, 0.6)
            out = _blend(out, rim * np.clip(facing, 0, 1), 1.0)
            out = _blend(out, rim * np.clip(-facing, 0, 1), 0.0)
        elif kind == "step":
            th = rng.uniform(0, 2 * np.pi)
            off = rng.uniform(-20, 20)
            d = (_XX - SIZE / 2) * np.cos(th) + (_YY - SIZE / 2) * np.sin(th) - off
            side = np.clip(d / rng.uniform(0.5, 2.0) + 0.5, 0, 1)
            out = out + side * rng.uniform(-0.2, 0.2)
            if rng.random() < 0.5:  # seam groove along the whole edge
                out = _blend(out, np.clip(1.2 - np.abs(d), 0, 1) * rng.uniform(0.3, 0.7), rng.uniform(0.0, 0.3))
        elif kind == "bar":
            w, h = rng.uniform(6, 40, size=2)
            cx, cy = rng.uniform(0, SIZE, size=2)
            th = rng.uniform(0, np.pi)
            u = (_XX - cx) * np.cos(th) + (_YY - cy) * np.sin(th)
            v = -(_XX - cx) * np.sin(th) + (_YY - cy) * np.cos(th)
            inside = np.clip(w / 2 + 0.5 - np.abs(u), 0, 1) * np.clip(h / 2 + 0.5 - np.abs(v), 0, 1)
            out = _blend(out, inside, np.clip(out * rng.uniform(0.6, 1.4) + rng.uniform(-0.2, 0.2), 0, 1))
        else:
            th = rng.uniform(0, 2 * np.pi)
            ramp = ((_XX - SIZE / 2) * np.cos(th) + (_YY - SIZE / 2) * np.sin(th)) / SIZE
            out = out * (1.0 + rng.uniform(-0.5, 0.5) * ramp)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _rings(img, rng) -> np.ndarray:
    """Concentric elliptical bands (outer radius 7-24 px, seen at an angle: axis ratio 0.6-1): a
    washer, O-ring, grommet or chamfered bore. 2-3 sharp edges (0.4-1.5 px), bands alternately
    lighter and darker than the surface (texture kept), the innermost at least 5 px in radius
    (larger than a hole defect) or the surface itself (a washer's hole), and a highlight on the rim
    facing a light direction. Regular and hard-edged, unlike a stain. Returns a new image; `img`
    is left as it is (its texture fills the bands)."""
    out = img
    r = rng.uniform(7, 24)
    cx, cy = rng.uniform(r * 0.3, SIZE - r * 0.3, size=2)
    th = rng.uniform(0, np.pi)
    aspect = rng.uniform(0.6, 1.0)
    x, y = _XX - cx, _YY - cy
    u = x * np.cos(th) + y * np.sin(th)
    v = (-x * np.sin(th) + y * np.cos(th)) / aspect
    rad = np.sqrt(u**2 + v**2)
    edges = int(rng.integers(2, 4))
    radii = np.sort(np.concatenate([[r], r * rng.uniform(0.35, 0.9, size=edges - 1)]))[::-1]
    if radii[-1] < 5.0:
        radii[-1] = 5.0
    light = rng.uniform(0.0, 1.0) < 0.5
    for k, rk in enumerate(radii):
        inside = np.clip((rk - rad) / rng.uniform(0.4, 1.5) + 0.5, 0.0, 1.0)
        innermost = k == len(radii) - 1
        if innermost and rng.random() < 0.4:
            continue  # the surface shows through (washer, grommet)
        gain = rng.uniform(1.1, 1.6) if light else rng.uniform(0.35, 0.8)
        fill = np.clip(img * gain + (rng.uniform(0.0, 0.25) if light else rng.uniform(-0.25, 0.0)), 0, 1)
        out = _blend(out, inside, fill)
        light = not light
    facing = (x * np.cos(th + 1.0) + y * np.sin(th + 1.0)) / np.maximum(np.sqrt(x**2 + y**2), 1e-3)
    w = rng.uniform(0.8, 2.0)
    rim = np.clip(1.0 - np.abs(rad - radii[0] + w) / w, 0, 1) * rng.uniform(0.2, 0.5)
    out = _blend(out, rim * np.clip(facing, 0, 1), 1.0)
    return out


def _disc_array(img, rng) -> np.ndarray:
    """A jittered lattice of similar textured discs (radius 4-14 px), mostly raised and lit,
    sometimes recessed and dark, with some missing; each disc shaded from one light direction.
    Draws into `img` (the caller's copy) and returns it."""
    out = img
    r0 = rng.uniform(4, 14)
    pitch = 2 * r0 * rng.uniform(1.1, 1.9)
    th = rng.uniform(0, np.pi)
    u = np.array([np.cos(th), np.sin(th)]) * pitch
    v = np.array([-np.sin(th), np.cos(th)]) * pitch * rng.uniform(0.9, 1.3)
    origin = rng.uniform(0, pitch, size=2)
    bright = rng.random() < 0.7
    gain = rng.uniform(1.0, 1.6) if bright else rng.uniform(0.3, 0.8)
    offset = rng.uniform(0.0, 0.3) if bright else rng.uniform(-0.3, 0.0)
    texture = rng.uniform(0.02, 0.15) * _fbm(rng, SIZE, (1.5, 0.7), 0.6)
    light = rng.uniform(0, 2 * np.pi)
    soft = rng.uniform(0.5, 2.0)
    keep = rng.uniform(0.7, 1.0)
    n = int(np.ceil(SIZE * 1.5 / pitch)) + 1
    for i in range(-n, n + 1):
        for j in range(-n, n + 1):
            c = origin + i * u + j * v + rng.normal(0, 0.06 * pitch, size=2)
            r = r0 * rng.uniform(0.85, 1.15)
            if not (-r < c[0] < SIZE + r and -r < c[1] < SIZE + r) or rng.random() > keep:
                continue
            sy, sx = _window(c[0], c[0], c[1], c[1], r + 3)
            x, y = _XX[sy, sx] - c[0], _YY[sy, sx] - c[1]
            rad = np.sqrt(x**2 + y**2)
            inside = np.clip((r - rad) / soft + 0.5, 0.0, 1.0)
            facing = (x * np.cos(light) + y * np.sin(light)) / np.maximum(rad, 1e-3)
            shade = 1.0 + (0.25 if bright else -0.25) * facing * np.clip(rad / r, 0, 1)
            fill = np.clip((out[sy, sx] * gain + offset + texture[sy, sx]) * shade, 0, 1)
            out[sy, sx] = _blend(out[sy, sx], inside, fill)
    return out


# (share of images on procedural surfaces, probability of distractors on a surface) per split.
# Only training uses them: validation, test and the simulator set stay plain photographs.
RANDOMISATION: dict[str, tuple[float, float]] = {"train": (0.0, 0.5)}  # chosen in domain_experiment.json
# Splits whose `none` images are clean twins of defect images of the same chunk (same surface,
# distractors included, fresh sensor noise) instead of surfaces of their own; see `generate`.
TWINS: dict[str, bool] = {}


RENDERERS = {
    "scratch": _scratch,
    "crack": _crack,
    "hole": _hole,
    "stain": _stain,
    "contamination": _contamination,
}


# ----------------------------------------------------------------------------- surface + sensor


def _surface(rng, names: list[str], procedural: float = 0.0, distractors: float = 0.0) -> tuple[np.ndarray, str]:
    # the extra draws happen only when randomisation is on, so plain splits keep their exact stream
    if procedural > 0 and rng.random() < procedural:
        s, name = _procedural_surface(rng)
        s = np.clip(s, 0, 1) ** rng.uniform(0.7, 1.4)
    else:
        s, name = _photo_surface(rng, names)
    mean = s.mean()
    s = (s - mean) * rng.uniform(0.6, 1.2) + np.clip(mean + rng.uniform(-0.12, 0.12), 0.25, 0.8)
    s = np.clip(s, 0.0, 1.0).astype(np.float32)
    if distractors > 0 and rng.random() < distractors:
        s = _distractors(s, rng)
    return s, name


def _photo_surface(rng, names: list[str]) -> tuple[np.ndarray, str]:
    name = names[rng.integers(0, len(names))]
    bg = load_background(name)
    h, w = bg.shape
    side = int(rng.integers(SIZE, min(192, h, w) + 1))
    y0 = int(rng.integers(0, h - side + 1))
    x0 = int(rng.integers(0, w - side + 1))
    crop = Image.fromarray(bg[y0 : y0 + side, x0 : x0 + side])
    if side != SIZE:
        crop = crop.resize((SIZE, SIZE), Image.BILINEAR)
    s = np.asarray(crop, dtype=np.float32) / 255.0
    s = np.rot90(s, int(rng.integers(0, 4)))
    if rng.random() < 0.5:
        s = s[:, ::-1]
    s = np.clip(s, 0, 1) ** rng.uniform(0.7, 1.4)
    return s, name


def _sensor(img, rng) -> np.ndarray:
    if rng.random() < 0.3:
        from scipy.ndimage import gaussian_filter

        img = gaussian_filter(img, rng.uniform(0.3, 0.7))
    img = img + rng.normal(0, rng.uniform(0.0, 0.025), size=img.shape)
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def _bbox(alpha: np.ndarray) -> list[float] | None:
    ys, xs = np.nonzero(alpha >= BBOX_ALPHA)
    if len(xs) == 0:
        return None
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    return [x0 / SIZE, y0 / SIZE, (x1 - x0) / SIZE, (y1 - y0) / SIZE]


def generate(seed: int, backgrounds: list[str], n: int, procedural: float = 0.0,
             distractors: float = 0.0, twins: bool = False) -> tuple[np.ndarray, list[dict]]:
    """n images (uint8 [n, 64, 64]) and labels; deterministic for the arguments.

    `twins`: the defect images are drawn first, then each `none` image is the surface of a different
    defect image of this call (chosen at random) with its own sensor noise, so every clean surface
    is also seen with a defect on it."""
    rng = np.random.default_rng(seed)
    classes = np.resize(np.arange(len(CLASS_NAMES)), n)
    rng.shuffle(classes)
    images = np.empty((n, SIZE, SIZE), dtype=np.uint8)
    labels: list[dict | None] = [None] * n
    order = list(range(n))
    if twins:
        order = [i for i in order if classes[i] != 0] + [i for i in order if classes[i] == 0]
        surfaces: list[tuple[np.ndarray, str]] = []
        n_none = int((classes == 0).sum())
        if n_none > n - n_none:
            raise ValueError("twins need at least as many defect images as none images")
        picks: list[int] = []
    for i in order:
        cid = classes[i]
        name = CLASS_NAMES[int(cid)]
        if twins and name == "none":
            if not picks:
                picks = [int(j) for j in rng.choice(len(surfaces), size=n_none, replace=False)]
            surface, bg_name = surfaces[picks.pop()]
            images[i] = _sensor(surface, rng)
            labels[i] = {"type": name, "class_id": int(cid), "bbox": None, "background": bg_name}
            continue
        while True:
            surface, bg_name = _surface(rng, backgrounds, procedural, distractors)
            if name == "none":
                img, bbox = surface, None
                break
            img, alpha = RENDERERS[name](surface, rng)
            bbox = _bbox(alpha)
            core = alpha >= 0.5
            # a defect must be visible: mean change over its core pixels >= MIN_VISIBLE,
            # otherwise (e.g. dark crack on a black region) draw a new surface and defect.
            visible = core.any() and float(np.abs(img - surface)[core].mean()) >= MIN_VISIBLE[name]
            if bbox is not None and bbox[2] * SIZE >= 2 and bbox[3] * SIZE >= 2 and visible:
                break
        if twins:
            surfaces.append((surface, bg_name))
        images[i] = _sensor(img, rng)
        labels[i] = {"type": name, "class_id": int(cid), "bbox": bbox, "background": bg_name}
    return images, labels


def make_split(split: str, n: int, workers: int = 4, randomisation: tuple[float, float] | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """images uint8 [n,64,64], class ids int64 [n], bboxes float32 [n,4] (NaN for none),
    background ids int64 [n] (index into BACKGROUNDS order; -1 for a procedural surface).
    `randomisation` overrides RANDOMISATION[split] (experiments)."""
    names = SPLITS[split]
    order = list(BACKGROUNDS)
    proc, dist = randomisation if randomisation is not None else RANDOMISATION.get(split, (0.0, 0.0))
    jobs = [(SEED_BASE[split] + k, names, min(CHUNK, n - k * CHUNK), proc, dist, TWINS.get(split, False))
            for k in range((n + CHUNK - 1) // CHUNK)]
    # chunks are independent (one seed each), so a process pool gives the same result as a loop
    if len(jobs) > 1 and workers > 1:
        from multiprocessing import Pool

        with Pool(workers) as pool:
            parts = pool.starmap(generate, jobs)
    else:
        parts = [generate(*j) for j in jobs]
    imgs, labels = [], []
    for im, lb in parts:
        imgs.append(im)
        labels.extend(lb)
    cls = np.array([lb["class_id"] for lb in labels], dtype=np.int64)
    box = np.array([lb["bbox"] if lb["bbox"] is not None else [np.nan] * 4 for lb in labels], dtype=np.float32)
    bgs = np.array([order.index(lb["background"]) if lb["background"] in order else -1 for lb in labels],
                   dtype=np.int64)
    return np.concatenate(imgs), cls, box, bgs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=list(SPLITS), default="train")
    ap.add_argument("--n", type=int, default=36)
    ap.add_argument("--preview", type=Path, help="write a contact sheet PNG")
    args = ap.parse_args()
    images, cls, box, bgs = make_split(args.split, args.n)
    print(json.dumps({"n": len(images), "class_counts": np.bincount(cls, minlength=6).tolist()}))
    if args.preview:
        from PIL import ImageDraw

        cols = 8
        rows = (len(images) + cols - 1) // cols
        sheet = Image.new("RGB", (cols * 130, rows * 145), "white")
        draw = ImageDraw.Draw(sheet)
        for i, (im, c, b) in enumerate(zip(images, cls, box)):
            tile = Image.fromarray(im).resize((128, 128), Image.NEAREST).convert("RGB")
            td = ImageDraw.Draw(tile)
            if not np.isnan(b[0]):
                x, y, w, h = (b * 128).tolist()
                td.rectangle([x, y, x + w - 1, y + h - 1], outline=(255, 0, 0))
            ox, oy = (i % cols) * 130, (i // cols) * 145
            sheet.paste(tile, (ox, oy))
            draw.text((ox, oy + 129), CLASS_NAMES[c], fill=(0, 0, 0))
        sheet.save(args.preview)


if __name__ == "__main__":
    main()
