#!/usr/bin/env python3
"""Interop check: `ptq run` on QDQ models computes what onnxruntime computes.

For digits_cnn, ppocr_cls and silero_vad_16k from <repo>/../shared/models, quantize the float
model with onnxruntime's `quantize_static` (QDQ format, MinMax, activations QUInt8, weights
QInt8, per tensor and per channel; ppocr_cls is converted to opset 13 first, since per-channel
QDQ needs it), calibrating on the first 16 samples of calib.txt. Then run the QDQ model through
`ptq run` (which lowers QuantizeLinear→DequantizeLinear to ptq's FakeQuant) and through
onnxruntime (CPU, graph optimisations disabled, 1 intra-op thread) on the first 16 samples of
eval.txt, and compare every output with DESIGN.md Decision 2's 1-step rule:

  - an output written by a DequantizeLinear of scale s: at least 99.9 % of the elements satisfy
    |ort − ptq| ≤ s and all satisfy |ort − ptq| ≤ 4·s;
  - any other (float) output: max|ort − ptq| ≤ 1e-3 · max|ort|.

Prints one row per (model, configuration, output) and ends with the line `N passed, M failed`.
Exits non-zero when any row fails.

Usage: check_qdq_run.py [--ptq PATH] [--models DIR] [--keep DIR]
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
from onnx import numpy_helper, version_converter
from onnxruntime.quantization.shape_inference import quant_pre_process
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)

from zoo import MODELS, REPO, dims_args, input_specs, load_input, read_list, session

MODEL_NAMES = ["digits_cnn", "ppocr_cls", "silero_vad_16k"]
N_CALIB = 16
N_EVAL = 16
MIN_OPSET = 13
# Rounding slack when comparing a difference of two f32 products with a step s.
STEP_SLACK = 1e-5
FLOAT_REL_TOL = 1e-3
# (per channel, quant_pre_process first): the plain runs, then the pre-processed ones.
CONFIGS = [(False, False), (True, False), (False, True), (True, True)]


def feeds(samples, specs):
    return [{name: load_input(p, specs[name][0], specs[name][1]) for name, p in s.items()} for s in samples]


class Reader(CalibrationDataReader):
    def __init__(self, feeds):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)


def float_model(model_dir, work):
    """The float model, converted to opset 13 when older (as anchors.md does for ppocr_cls)."""
    model = onnx.load(str(model_dir / "model.onnx"))
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset >= MIN_OPSET:
        return model_dir / "model.onnx", opset
    converted = version_converter.convert_version(model, MIN_OPSET)
    path = work / "float_opset13.onnx"
    onnx.save(converted, str(path))
    return path, opset


def output_steps(graph):
    """{graph output: scale of the DequantizeLinear that writes it} (absent for float outputs)."""
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    constants[n.output[0]] = numpy_helper.to_array(a.t)
    producer = {o: n for n in graph.node for o in n.output}
    steps = {}
    for out in graph.output:
        n = producer.get(out.name)
        if n is not None and n.op_type == "DequantizeLinear" and n.input[1] in constants:
            # A per-channel output would need per-element steps; the largest one bounds them all.
            steps[out.name] = float(np.max(constants[n.input[1]]))
    return steps


def ptq_run(ptq, qdq_path, samples, specs, work):
    """Runs `ptq run -v` on the samples; returns (output dir, detail line, error note)."""
    list_path = work / "eval16.txt"
    lines = [" ".join(f"{k}:={v}" for k, v in s.items()) for s in samples]
    list_path.write_text("\n".join(lines) + "\n")
    out_dir = work / "ptq_out"
    cmd = [str(ptq), "run", "-v", "--input_model", str(qdq_path), "--input_list", str(list_path),
           "--output_dir", str(out_dir), *dims_args(specs)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, "", f"ptq run failed: {e}"
    detail = next((l for l in proc.stderr.splitlines() if l.startswith("QDQ model:")), "")
    if proc.returncode != 0:
        return None, detail, " | ".join([f"ptq run exited {proc.returncode}", *proc.stderr.strip().splitlines()[-3:]])
    return out_dir, detail, ""


def compare(expected, got, step):
    """(passed, summary) for one output over all samples."""
    diff = np.abs(np.concatenate(got) - np.concatenate(expected))
    if step is None:
        ref = float(np.max(np.abs(np.concatenate(expected)), initial=0.0))
        err = float(np.max(diff, initial=0.0))
        passed = err <= FLOAT_REL_TOL * ref if ref > 0 else err <= 1e-6
        return passed, f"float: max|d| {err:.3e}, max|ort| {ref:.3e}"
    within = float(np.mean(diff <= step * (1 + STEP_SLACK))) if diff.size else 1.0
    worst = float(np.max(diff, initial=0.0)) / step
    passed = within >= 0.999 and worst <= 4 * (1 + STEP_SLACK)
    return passed, f"s={step:.4g}: ≤1 step {100 * within:.2f} %, max {worst:.2f} steps"


def check(ptq, model_dir, per_channel, preprocess, keep):
    """[(output, passed, summary)] for one model and configuration."""
    # onnxruntime leaves temporary files in the current folder: keep them in the temporary one.
    with tempfile.TemporaryDirectory(prefix="ptq-check-qdq-") as tmp, contextlib.chdir(tmp):
        work = Path(tmp)
        src, opset = float_model(model_dir, work)
        if preprocess:
            # Constant-node weights become initializers, so they get int8 (per-channel) weights
            # and int32 biases behind DequantizeLinear, as in anchors.md's rows.
            prepped = work / "float_prep.onnx"
            try:
                quant_pre_process(str(src), str(prepped))
            except Exception:
                quant_pre_process(str(src), str(prepped), skip_symbolic_shape=True)
            src = prepped
        specs = input_specs(model_dir)
        calib = feeds(read_list(model_dir / "calib.txt", list(specs))[:N_CALIB], specs)
        # Absolute paths: ptq_run writes them into a list of its own, in the work folder.
        eval_samples = [{k: p.resolve() for k, p in s.items()}
                        for s in read_list(model_dir / "eval.txt", list(specs))[:N_EVAL]]
        qdq_path = work / "qdq.onnx"
        quantize_static(
            str(src), str(qdq_path), Reader(calib),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            calibrate_method=CalibrationMethod.MinMax,
        )
        if keep:
            keep.mkdir(parents=True, exist_ok=True)
            (keep / f"{model_dir.name}_{config_name(per_channel, preprocess)}.onnx").write_bytes(qdq_path.read_bytes())
        qdq = onnx.load(str(qdq_path))
        steps = output_steps(qdq.graph)
        qdq_session = session(qdq_path)
        outputs = [o.name for o in qdq_session.get_outputs()]
        eval_feeds = feeds(eval_samples, specs)
        ort_values = {name: [] for name in outputs}
        for feed in eval_feeds:
            for name, v in zip(outputs, qdq_session.run(None, feed)):
                ort_values[name].append(np.asarray(v, dtype=np.float64).ravel())

        out_dir, detail, note = ptq_run(ptq, qdq_path, eval_samples, specs, work)
        if note:
            return [(name, False, note) for name in outputs], detail, opset
        ptq_values = {name: [] for name in outputs}
        for i in range(len(eval_feeds)):
            result = out_dir / f"Result_{i}"
            if not result.is_dir():
                return [(name, False, f"no {result.name}") for name in outputs], detail, opset
            files = {name: f for f, name in json.loads((result / "outputs.json").read_text()).items()}
            for name in outputs:
                if name not in files:
                    return [(name, False, f"{name} not in {result.name}/outputs.json")], detail, opset
                ptq_values[name].append(np.fromfile(result / files[name], dtype="<f4").astype(np.float64))
        rows = []
        for name in outputs:
            sizes = [(a.size, b.size) for a, b in zip(ort_values[name], ptq_values[name])]
            if any(a != b for a, b in sizes):
                rows.append((name, False, f"sizes differ (ort, ptq): {sizes[0]}"))
                continue
            passed, summary = compare(ort_values[name], ptq_values[name], steps.get(name))
            rows.append((name, passed, summary))
        return rows, detail, opset


def config_name(per_channel, preprocess):
    return ("pc" if per_channel else "pt") + ("+prep" if preprocess else "")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ptq", type=Path, default=REPO / "target" / "release" / "ptq", help="the ptq binary")
    parser.add_argument("--models", type=Path, default=MODELS, help="the shared model zoo")
    parser.add_argument("--keep", type=Path, help="also save the QDQ models here")
    args = parser.parse_args()
    ort.set_default_logger_severity(3)

    table = []
    for name in MODEL_NAMES:
        model_dir = args.models.resolve() / name
        for per_channel, preprocess in CONFIGS:
            config = config_name(per_channel, preprocess)
            print(f"checking {name} {config} ...", file=sys.stderr, flush=True)
            if not (model_dir / "model.onnx").is_file():
                table.append((name, config, "-", "FAIL", f"no model at {model_dir}"))
                continue
            try:
                rows, detail, opset = check(args.ptq.resolve(), model_dir, per_channel, preprocess, args.keep)
            except Exception as e:  # a quantize_static or onnxruntime failure is a failed row
                table.append((name, config, "-", "FAIL", f"{type(e).__name__}: {e}"))
                continue
            if detail:
                print(f"  {name} {config} (opset {opset}): {detail}", file=sys.stderr)
            for output, passed, summary in rows:
                table.append((name, config, output, "pass" if passed else "FAIL", summary))

    header = ("model", "config", "output", "result", "comparison (1-step rule / float rule)")
    widths = [max(len(r[k]) for r in [header, *table]) for k in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *table]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    passed = sum(r[3] == "pass" for r in table)
    failed = len(table) - passed
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
