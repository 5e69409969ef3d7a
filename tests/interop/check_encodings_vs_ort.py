#!/usr/bin/env python3
"""Interop check: ptq's min-max encodings against onnxruntime's `quantize_static`.

For each model (default: digits_cnn and ppocr_cls), quantize with ptq (per tensor, activations
uint8 asymmetric, weights int8 symmetric, `--dump_encoding_json`) and with onnxruntime's
`quantize_static` (QDQ, MinMax, QUInt8 activations, QInt8 symmetric weights, per tensor) on the
model after `quant_pre_process`, both calibrated on every sample of calib.txt. Then compare the
encodings of the tensors both quantize (same ONNX name): zero points equal, scales within
1e-4 relative. The scale of an activation is its observed range over 255, and the two engines
(tract, onnxruntime) sum in different orders, so ranges — hence scales — differ by a few ulp;
1e-4 is the bound `check_run.py` holds the engines' float outputs to. How many scales are
within 1 ulp is printed too, and every scale further apart is listed.

Ends with `N passed, M failed` over the compared tensors; exits non-zero when one fails.

Usage: check_encodings_vs_ort.py [--ptq PATH] [--models DIR] [MODEL ...]
"""
import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo import MODELS, REPO, dims_args, input_specs, load_feeds  # noqa: E402

DEFAULT_MODELS = ["digits_cnn", "ppocr_cls"]
REL_TOL = 1e-4


class Reader(CalibrationDataReader):
    def __init__(self, feeds):
        self.it = iter(feeds)

    def get_next(self):
        return next(self.it, None)


def ort_encodings(model_dir, specs, tmp):
    """{tensor: (scale, zero point)} of onnxruntime's per-tensor QDQ model."""
    pre = tmp / "pre.onnx"
    out = tmp / "ort.onnx"
    calib = load_feeds(model_dir, specs, "calib.txt")
    # onnxruntime leaves temporary files in the current folder: keep them in the temporary one.
    with contextlib.chdir(tmp):
        try:
            quant_pre_process(str(model_dir / "model.onnx"), str(pre))
        except Exception:  # symbolic shape inference fails on some models (anchors.md)
            quant_pre_process(str(model_dir / "model.onnx"), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), Reader(calib), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=False)
    graph = onnx.load(str(out)).graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    found = {}
    for node in graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 2:
            continue
        scale = consts.get(node.input[1])
        zp = consts.get(node.input[2]) if len(node.input) > 2 else np.zeros((), np.uint8)
        if scale is None or scale.size != 1:
            continue
        source = node.input[0]
        if node.op_type == "QuantizeLinear":
            tensor = source
        elif source in consts and source.endswith("_quantized"):  # weight: int initializer → DQ
            tensor = source[: -len("_quantized")]
        else:
            continue
        found[tensor] = (np.float32(scale.reshape(())), int(zp.reshape(())))
    return found


def ptq_encodings(ptq, model_dir, specs, tmp):
    out = tmp / "ptq.onnx"
    cmd = [str(ptq), "quantize", "--input_model", str(model_dir / "model.onnx"),
           "--input_list", str(model_dir / "calib.txt"), "--output_model", str(out), "--dump_encoding_json",
           "--act_quantizer_calibration", "min-max", "--param_quantizer_calibration", "min-max",
           *dims_args(specs)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    doc = json.loads((tmp / "ptq_encoding.json").read_text())
    found = {}
    for entry in doc["activation_encodings"] + doc["param_encodings"]:
        if entry.get("dtype") != "INT" or len(entry["scale"]) != 1:
            continue
        bw, offset = entry["bw"], entry["offset"][0]
        # 1.0.0 offsets are on the unsigned grid: symmetric (signed) storage has zero point 0.
        zp = 0 if entry["is_sym"] and (offset == -(1 << (bw - 1)) or bw == 32) else -offset
        found[entry["name"]] = (np.float32(entry["scale"][0]), zp)
    return found


def ulps(a, b):
    return abs(float(a) - float(b)) / float(np.spacing(np.float32(max(abs(a), abs(b)))))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ptq", type=Path, default=REPO / "target" / "release" / "ptq")
    parser.add_argument("--models", type=Path, default=MODELS)
    parser.add_argument("names", nargs="*", default=DEFAULT_MODELS)
    args = parser.parse_args()
    ort.set_default_logger_severity(3)
    passed = failed = 0
    for name in args.names:
        model_dir = args.models / name
        specs = input_specs(model_dir)
        with tempfile.TemporaryDirectory(prefix="ptq-enc-") as tmp:
            theirs = ort_encodings(model_dir, specs, Path(tmp))
            ours = ptq_encodings(args.ptq.resolve(), model_dir, specs, Path(tmp))
        common = sorted(set(theirs) & set(ours))
        rel = {t: abs(float(ours[t][0]) - float(theirs[t][0])) / float(theirs[t][0]) for t in common}
        bad = [t for t in common if rel[t] > REL_TOL or ours[t][1] != theirs[t][1]]
        one_ulp = sum(ulps(ours[t][0], theirs[t][0]) <= 1 for t in common)
        worst = max(rel.values(), default=0.0)
        print(f"{name}: {len(common)} tensors in both (ptq {len(ours)}, onnxruntime {len(theirs)}): "
              f"zero points equal {sum(ours[t][1] == theirs[t][1] for t in common)}, scales within 1 ulp "
              f"{one_ulp}, worst scale difference {worst:.2e} relative; {len(bad)} fail")
        for t in common:
            if ulps(ours[t][0], theirs[t][0]) > 1 or t in bad:
                (s1, z1), (s2, z2) = ours[t], theirs[t]
                print(f"  {t}: ptq {float(s1):.9g} zp {z1}, onnxruntime {float(s2):.9g} zp {z2} "
                      f"({ulps(s1, s2):.0f} ulp){'  FAIL' if t in bad else ''}")
        passed += len(common) - len(bad)
        failed += len(bad)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
