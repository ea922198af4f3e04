"""Write the preprocessing fixtures for the Rust serving code.

* testdata/sample_rgb_96x80.png: RGB PNG, 96x80 (exercises to_luma8 on RGB and the Triangle resize)
* testdata/sample_rgb_64.jpg:    RGB JPEG 64x64, 4:4:4, quality 92 (exercises JPEG decode + luma)
* preprocess_reference.json:     per image the decoded luma, the 64x64 grey bytes (hex), the float
                                 tensor's first 32 values / sum / sum of squares, and the FP32 and
                                 INT8 model outputs (when the .onnx files exist).

    .venv/bin/python models/vision/make_reference.py
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
from PIL import Image

from common import HERE
from generate import skimage_data_dir
from preprocess import CLASS_NAMES, INPUT_SIZE, MEAN, STD, grey_u8_to_tensor, load_grey, to_luma8

TESTDATA = HERE / "testdata"


def write_samples() -> list:
    TESTDATA.mkdir(exist_ok=True)
    with Image.open(skimage_data_dir() / "coffee.png") as im:
        png = im.convert("RGB").crop((300, 150, 396, 230))  # 96x80
    png_path = TESTDATA / "sample_rgb_96x80.png"
    png.save(png_path, optimize=False)
    with Image.open(skimage_data_dir() / "chelsea.png") as im:
        jpg = im.convert("RGB").crop((150, 100, 214, 164))  # 64x64
    jpg_path = TESTDATA / "sample_rgb_64.jpg"
    jpg.save(jpg_path, quality=92, subsampling=0)
    return [png_path, jpg_path]


def describe(path) -> dict:
    data = path.read_bytes()
    with Image.open(path) as im:
        im.load()
        luma = to_luma8(im)
        mode = im.mode
    grey = load_grey(data)
    x = grey_u8_to_tensor(grey)
    flat = x.reshape(-1).astype(np.float64)
    return {
        "file": f"testdata/{path.name}",
        "file_sha256": hashlib.sha256(data).hexdigest(),
        "decoded_mode": mode,
        "decoded_width": int(luma.shape[1]),
        "decoded_height": int(luma.shape[0]),
        "luma8_sha256": hashlib.sha256(luma.tobytes()).hexdigest(),
        "luma8_sum": int(luma.astype(np.int64).sum()),
        "resized": luma.shape != (INPUT_SIZE, INPUT_SIZE),
        "grey64_hex": grey.tobytes().hex(),
        "grey64_sha256": hashlib.sha256(grey.tobytes()).hexdigest(),
        "tensor_shape": list(x.shape),
        "tensor_first32": [float(v) for v in x.reshape(-1)[:32]],
        "tensor_sum": float(flat.sum()),
        "tensor_sum_sq": float((flat**2).sum()),
    }


def main() -> None:
    paths = write_samples()
    ref = {
        "contract": {
            "input": "image", "input_shape": [None, 1, INPUT_SIZE, INPUT_SIZE], "dtype": "float32",
            "luma": "image 0.25.10 DynamicImage::to_luma8 (BT.709 Y row from moxcms, f32, round half away)",
            "resize": f"only when not {INPUT_SIZE}x{INPUT_SIZE}: image::imageops::resize(&luma8, 64, 64, FilterType::Triangle)",
            "normalise": f"(u8 as f32 / 255.0 - {float(MEAN)}) / {float(STD)}",
            "class_order": CLASS_NAMES,
            "verified": "PNG paths (RGB, RGBA, L8, Triangle resize) byte-identical to a Rust build of image 0.25.10; "
                        "the JPEG differs in 42 of 4096 grey pixels by 1 (libjpeg-turbo here vs zune-jpeg in Rust)",
            "tolerances": {"png_grey64": "exact", "jpeg_grey64": "max abs diff 1, at most 64 pixels differ",
                           "tensor": "1e-6 abs when grey64 matches", "model_outputs": "1e-4 abs FP32, 1e-3 INT8"},
        },
        "images": [],
    }
    sessions = {}
    for name in ("fp32", "int8"):
        p = HERE / f"defect_{name}.onnx"
        if p.exists():
            from common import ort_session

            sessions[name] = ort_session(p)
    for p in paths:
        d = describe(p)
        x = grey_u8_to_tensor(np.frombuffer(bytes.fromhex(d["grey64_hex"]), dtype=np.uint8).reshape(INPUT_SIZE, INPUT_SIZE))
        for name, sess in sessions.items():
            probs, box = sess.run(["class_probs", "bbox"], {"image": x})
            d[f"{name}_class_probs"] = [float(v) for v in probs[0]]
            d[f"{name}_bbox"] = [float(v) for v in box[0]]
        ref["images"].append(d)
    (HERE / "preprocess_reference.json").write_text(json.dumps(ref, indent=1))
    print(json.dumps([{k: v for k, v in d.items() if k != "grey64_hex"} for d in ref["images"]], indent=1)[:3000])


if __name__ == "__main__":
    main()
