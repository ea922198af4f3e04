"""Static INT8 quantisation of defect_fp32.onnx with onnxruntime.quantization.

Calibration: the first 600 images of the validation split (backgrounds chelsea, hubble_deep_field;
never test). Both QDQ and QOperator formats are built; the one with the higher batch-1 throughput
under onnxruntime (2 threads) on this CPU is kept as defect_int8.onnx. Both measurements are
returned (and recorded in train_log.json by train.py).

    .venv/bin/python models/vision/quantize.py
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from common import CACHE, HERE, N_VAL, latency, ort_predict, ort_session, split_data
from metrics import compute
from preprocess import batch_u8_to_tensor

N_CALIB = 600


class _Reader(CalibrationDataReader):
    def __init__(self, images: np.ndarray, batch: int = 50):
        self._batches = iter([batch_u8_to_tensor(images[i : i + batch]) for i in range(0, len(images), batch)])

    def get_next(self):
        b = next(self._batches, None)
        return None if b is None else {"image": b}


def quantize_best(fp32: Path, out: Path) -> dict:
    va_img, va_cls, va_box, _ = split_data("val", N_VAL)
    pre = CACHE / "defect_fp32_pre.onnx"
    quant_pre_process(str(fp32), str(pre))
    results = {}
    for fmt in (QuantFormat.QDQ, QuantFormat.QOperator):
        path = CACHE / f"defect_int8_{fmt.name}.onnx"
        quantize_static(
            str(pre), str(path), _Reader(va_img[:N_CALIB]),
            quant_format=fmt, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            per_channel=True,
        )
        sess = ort_session(path)
        m = compute(*ort_predict(sess, va_img), va_cls, va_box)
        results[fmt.name] = {
            "val_macro_f1": m["macro_f1_defects"], "val_mean_iou": m["mean_iou"],
            "b1": latency(sess, 1, seconds=2.0), "b32": latency(sess, 32, seconds=2.0),
            "bytes": path.stat().st_size,
        }
        print(fmt.name, json.dumps(results[fmt.name]), flush=True)
    best = max(results, key=lambda k: results[k]["b1"]["images_per_s"])
    shutil.copyfile(CACHE / f"defect_int8_{best}.onnx", out)
    return {"chosen": best, "calibration": f"val split, first {N_CALIB} images", "formats": results}


if __name__ == "__main__":
    r = quantize_best(HERE / "defect_fp32.onnx", HERE / "defect_int8.onnx")
    print(json.dumps({"chosen": r["chosen"]}))
