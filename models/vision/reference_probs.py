"""Class probabilities of a defect model on the committed evaluation subset, from Python's ONNX
Runtime on this machine (numpy and onnxruntime only).

Usage: reference_probs.py <fp32|int8>   prints a JSON list of per-image probability lists.

INT8 kernels differ between CPU instruction sets (AVX2, AVX-512 VNNI, AMX), so the probabilities
stored in eval_subset.json by evaluate.py hold for the machine that ran it; the Rust test compares
its own outputs with this script's, run on the same machine.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
MEAN, STD = np.float32(0.5), np.float32(0.25)  # preprocess.py

variant = sys.argv[1]
meta = json.loads((HERE / "eval_subset.json").read_text())
n, size = meta["n"], meta["size"]
images = np.frombuffer((HERE / meta["images_file"]).read_bytes(), dtype=np.uint8).reshape(n, size, size)
so = ort.SessionOptions()
so.intra_op_num_threads = 1
sess = ort.InferenceSession(str(HERE / f"defect_{variant}.onnx"), so, providers=["CPUExecutionProvider"])
probs = []
for i in range(0, n, 64):
    x = ((images[i : i + 64].astype(np.float32) / np.float32(255.0) - MEAN) / STD).astype(np.float32)[:, None]
    probs.append(sess.run(["class_probs"], {"image": x})[0])
print(json.dumps(np.concatenate(probs).astype(float).tolist()))
