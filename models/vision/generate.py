"""Seeded synthetic surface-defect generator on real photographs (scikit-image sample data).

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


# Every photograph ships in the scikit-image wheel (skimage/data/); licence text is quoted from the
# docstring of the matching skimage.data function. Images without a stated licence (moon, page,
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
}

SPLITS: dict[str, list[str]] = {
    "train": ["brick", "grass", "camera", "text", "astronaut", "coffee", "rocket", "immunohistochemistry"],
    "val": ["chelsea", "hubble_deep_field"],
    "test": ["gravel", "coins", "clock_motion"],
    "sim": ["retina", "cell"],
}
# chunk k of split s uses seed SEED_BASE[s] + k: seed ranges never overlap between splits.
SEED_BASE = {"train": 1_000_000, "val": 2_000_000, "test": 3_000_000, "sim": 4_000_000}
CHUNK = 600


def skimage_data_dir() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


@lru_cache(maxsize=None)
def load_background(name: str) -> np.ndarray:
    """Background photograph as uint8 grey [H, W] (colour converted like the model contract)."""
    bg = BACKGROUNDS[name]
    with Image.open(skimage_data_dir() / bg.file) as img:
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


RENDERERS = {
    "scratch": _scratch,
    "crack": _crack,
    "hole": _hole,
    "stain": _stain,
    "contamination": _contamination,
}


# ----------------------------------------------------------------------------- surface + sensor


def _surface(rng, names: list[str]) -> tuple[np.ndarray, str]:
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
    mean = s.mean()
    s = (s - mean) * rng.uniform(0.6, 1.2) + np.clip(mean + rng.uniform(-0.12, 0.12), 0.25, 0.8)
    return np.clip(s, 0.0, 1.0).astype(np.float32), name


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


def generate(seed: int, backgrounds: list[str], n: int) -> tuple[np.ndarray, list[dict]]:
    """n images (uint8 [n, 64, 64]) and labels; deterministic for (seed, backgrounds, n)."""
    rng = np.random.default_rng(seed)
    classes = np.resize(np.arange(len(CLASS_NAMES)), n)
    rng.shuffle(classes)
    images = np.empty((n, SIZE, SIZE), dtype=np.uint8)
    labels: list[dict] = []
    for i, cid in enumerate(classes):
        name = CLASS_NAMES[int(cid)]
        while True:
            surface, bg_name = _surface(rng, backgrounds)
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
        images[i] = _sensor(img, rng)
        labels.append({"type": name, "class_id": int(cid), "bbox": bbox, "background": bg_name})
    return images, labels


def make_split(split: str, n: int, workers: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """images uint8 [n,64,64], class ids int64 [n], bboxes float32 [n,4] (NaN for none),
    background ids int64 [n] (index into BACKGROUNDS order)."""
    names = SPLITS[split]
    order = list(BACKGROUNDS)
    jobs = [(SEED_BASE[split] + k, names, min(CHUNK, n - k * CHUNK)) for k in range((n + CHUNK - 1) // CHUNK)]
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
    bgs = np.array([order.index(lb["background"]) for lb in labels], dtype=np.int64)
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
