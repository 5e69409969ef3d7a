#!/usr/bin/env python3
"""Time `ptq quantize` against onnxruntime's `quantize_static` on the shared models.

Both quantize `model.onnx` per tensor (uint8 asymmetric activations, int8 symmetric weights,
MinMax on every sample of calib.txt) and write a QDQ model; onnxruntime runs after
`quant_pre_process`, as ../shared/anchors.md's `ort_minmax pt` rows do. Each command runs as a
whole process (Python start-up and imports count for onnxruntime, as they do for its users),
alternating ptq / onnxruntime, RUNS times; the table gives the median wall time, the largest
peak RSS, and the ratio of the medians.

Usage: quantize_vs_ort.py [--ptq PATH] [--python PATH] [--runs N] [MODEL ...]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "interop"))
from zoo import MODELS, dims_args, input_specs, model_dirs  # noqa: E402

ORT_SCRIPT = r'''
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from zoo import input_specs, load_feeds
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
d, out = Path(sys.argv[1]), sys.argv[2]
specs = input_specs(d)
feeds = load_feeds(d, specs, "calib.txt")
class R(CalibrationDataReader):
    def __init__(self): self.it = iter(feeds)
    def get_next(self): return next(self.it, None)
pre = out + ".pre.onnx"
try:
    quant_pre_process(str(d / "model.onnx"), pre)
except Exception:
    quant_pre_process(str(d / "model.onnx"), pre, skip_symbolic_shape=True)
quantize_static(pre, out, R(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8, per_channel=False)
'''


def timed(cmd, cwd):
    """(wall seconds, peak RSS MiB) of one child process."""
    start = time.monotonic()
    # In `cwd`: onnxruntime leaves temporary files in the current folder.
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}")
    return wall, usage.ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ptq", type=Path, default=REPO / "target" / "release" / "ptq")
    parser.add_argument("--python", default=sys.executable, help="a Python with onnxruntime")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("names", nargs="*")
    args = parser.parse_args()
    dirs = [MODELS / n for n in args.names] if args.names else model_dirs(MODELS)
    print("| model | ptq s | onnxruntime s | ptq / onnxruntime | ptq peak MiB | onnxruntime peak MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="ptq-bench-") as tmp:
        for d in dirs:
            ptq = [str(args.ptq), "quantize", "--input_model", str(d / "model.onnx"), "--input_list",
                   str(d / "calib.txt"), "--output_model", f"{tmp}/ptq.onnx", "-q", *dims_args(input_specs(d))]
            ort = [args.python, "-c", ORT_SCRIPT, str(d), f"{tmp}/ort.onnx", str(REPO / "tests" / "interop")]
            ours, theirs = [], []
            for _ in range(args.runs):
                ours.append(timed(ptq, tmp))
                theirs.append(timed(ort, tmp))
            a, b = statistics.median(w for w, _ in ours), statistics.median(w for w, _ in theirs)
            print(f"| {d.name} | {a:.2f} | {b:.2f} | {a / b:.3f} | {max(m for _, m in ours):.0f} | "
                  f"{max(m for _, m in theirs):.0f} |", flush=True)


if __name__ == "__main__":
    main()
