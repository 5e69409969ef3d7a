#!/usr/bin/env python3
"""The four figures of one corpus model (run by bench/corpus.py in the interop venv).

    evaluate.py MODEL_DIR --ptq PATH --score PATH/score.py --out RESULT.json

MODEL_DIR is a corpus folder in the zoo's layout (model.onnx, calib.txt, eval.txt,
float_reference.json). Every step is tried on its own; a failure is recorded, never raised:

  info       size (with external data), opset, producer, node count (and without Constant)
  run        `ptq run` on eval.txt vs onnxruntime (CPU, graph optimisations disabled):
             max|ptq - ort| / max|ort| per output over all samples (check_run.py's measure)
  ptq_pc     `ptq quantize` W8A8 per channel (check_quantize.py's `pc`: per-channel Conv weights,
             per-row Gemm/MatMul weights) on calib.txt -> onnx.checker (full_check) ->
             onnxruntime runs it -> SQNR per output vs float on eval.txt (../shared/tools/score.py)
  ort_pc     onnxruntime quantize_static, QDQ, QUInt8 activations, QInt8 weights, per channel,
             MinMax, after quant_pre_process (retried with skip_symbolic_shape=True), models
             below opset 13 converted to 13 first: anchors.md's `ort_minmax pc`; scored the same
"""
import argparse
import collections
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "interop"))
from zoo import dims_args, input_specs, load_feeds, run_outputs, session  # noqa: E402  (the interop helpers)

REL_TOL = 1e-4
PC_FLAGS = ["--use_per_channel_quantization", "--use_per_row_quantization"]
TIMEOUT_S = int(os.environ.get("PTQ_CORPUS_TIMEOUT", "3600"))


def first_lines(text, n=5):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[:n]


def error_of(e):
    msg = f"{type(e).__name__}: {e}"
    return first_lines(msg, 5)


def optimized_session(path):
    """onnxruntime with every graph optimisation on: its own other summation order."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def info(model_dir):
    path = model_dir / "model.onnx"
    m = onnx.load(str(path), load_external_data=False)
    size = path.stat().st_size
    external = sorted({e.value for t in m.graph.initializer for e in t.external_data if e.key == "location"})
    for loc in external:
        size += (model_dir / loc).stat().st_size
    ops = collections.Counter(n.op_type for n in m.graph.node)
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), None)
    return {"size_bytes": size, "opset": opset,
            "other_domains": [f"{o.domain}:{o.version}" for o in m.opset_import if o.domain not in ("", "ai.onnx")],
            "producer": f"{m.producer_name} {m.producer_version}".strip(), "ir_version": m.ir_version,
            "nodes": len(m.graph.node), "nodes_without_constant": len(m.graph.node) - ops.get("Constant", 0),
            "op_types": dict(ops.most_common()), "external_data": external,
            "inputs": {n: s[1] for n, s in input_specs(model_dir).items()},
            "outputs": [o.name for o in m.graph.output]}


def ptq_cmd(ptq, sub, *args):
    return [str(ptq), sub, *map(str, args)]


def run_step(ptq, model_dir, specs, work):
    """`ptq run` vs onnxruntime: {output: max rel err} or a failure.

    An output passes within REL_TOL of onnxruntime, or within onnxruntime's own spread: the
    difference between its optimised and unoptimised runs of the same model (two summation
    orders of one engine). An ill-conditioned model (a near-tie softmax after a long backbone)
    amplifies ordinary round-off beyond REL_TOL for every engine; DESIGN.md Decision 2 judges
    quantized outputs the same way."""
    out_dir = work / "ptq_run"
    cmd = ptq_cmd(ptq, "run", "--input_model", model_dir / "model.onnx", "--input_list", model_dir / "eval.txt",
                  "--output_dir", out_dir, *dims_args(specs))
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    seconds = round(time.monotonic() - t0, 1)
    if proc.returncode != 0:
        return {"ok": False, "seconds": seconds, "exit": proc.returncode, "error": first_lines(proc.stderr),
                "command": " ".join(cmd[1:2] + ["..."] + dims_args(specs))}
    sess = session(model_dir / "model.onnx")
    optimized = optimized_session(model_dir / "model.onnx")
    names = [o.name for o in sess.get_outputs()]
    feeds = load_feeds(model_dir, specs, "eval.txt")
    err = dict.fromkeys(names, 0.0)
    spread = dict.fromkeys(names, 0.0)
    ref = dict.fromkeys(names, 0.0)
    notes = {}
    for i, feed in enumerate(feeds):
        written = run_outputs(out_dir / f"Result_{i}")
        for name, expected, other in zip(names, sess.run(None, feed), optimized.run(None, feed)):
            if name in notes:
                continue
            if name not in written:
                notes[name] = f"not in Result_{i}/outputs.json"
                continue
            got = written[name].astype(np.float64)
            exp = np.asarray(expected, dtype=np.float64).ravel()
            if got.size != exp.size:
                notes[name] = f"Result_{i}: {got.size} values, onnxruntime gives {exp.size}"
                continue
            d = np.where(np.isnan(got) & np.isnan(exp), 0.0, np.abs(got - exp))
            err[name] = max(err[name], float(np.max(d, initial=0.0)))
            o = np.asarray(other, dtype=np.float64).ravel()
            if o.size == exp.size:
                self_d = np.where(np.isnan(o) & np.isnan(exp), 0.0, np.abs(o - exp))
                spread[name] = max(spread[name], float(np.max(self_d, initial=0.0)))
            ref[name] = max(ref[name], float(np.max(np.abs(exp), initial=0.0)))
    outputs = {}
    for name in names:
        if name in notes:
            outputs[name] = {"ok": False, "note": notes[name]}
            continue
        rel = err[name] / ref[name] if ref[name] > 0 else None
        ort_rel = spread[name] / ref[name] if ref[name] > 0 else None
        ok = rel <= max(REL_TOL, ort_rel) if rel is not None else err[name] <= 1e-6
        outputs[name] = {"ok": bool(ok), "max_abs_err": err[name], "max_rel_err": rel,
                         "ort_self_rel_err": ort_rel}
    rels = [o["max_rel_err"] for o in outputs.values() if o.get("max_rel_err") is not None]
    selves = [o["ort_self_rel_err"] for o in outputs.values() if o.get("ort_self_rel_err") is not None]
    return {"ok": all(o["ok"] for o in outputs.values()), "seconds": seconds, "outputs": outputs,
            "max_rel_err": max(rels) if rels else None, "ort_self_rel_err": max(selves) if selves else None}


def score_model(score_mod, model_dir, quantized):
    res = score_mod.score(str(model_dir), str(quantized), metric="none", threads=1)
    return {n: o["sqnr_db"] for n, o in res["outputs"].items()}, res["main_output"]


def checked_and_scored(score_mod, model_dir, quantized, result):
    try:
        onnx.checker.check_model(str(quantized), full_check=True)
        result["checker"] = "ok"
    except Exception as e:  # noqa: BLE001
        result["checker"] = error_of(e)
    try:
        sqnr, main = score_model(score_mod, model_dir, quantized)
        result["sqnr_db"] = sqnr
        result["main_output"] = main
        result["main_sqnr_db"] = sqnr.get(main)
        result["ort_runs"] = True
    except Exception as e:  # noqa: BLE001
        result["ort_runs"] = False
        result["error"] = error_of(e)
    result["ok"] = result.get("ort_runs", False) and result.get("checker") == "ok"
    return result


def ptq_pc_step(ptq, score_mod, model_dir, specs, work):
    quantized = work / "ptq_pc.onnx"
    cmd = ptq_cmd(ptq, "quantize", "--input_model", model_dir / "model.onnx", "--input_list", model_dir / "calib.txt",
                  "--output_model", quantized, *PC_FLAGS, *dims_args(specs))
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    result = {"seconds": round(time.monotonic() - t0, 1)}
    if proc.returncode != 0:
        result.update(ok=False, stage="quantize", exit=proc.returncode, error=first_lines(proc.stderr))
        return result
    return checked_and_scored(score_mod, model_dir, quantized, result)


class Reader:
    def __init__(self, feeds):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)


def ort_quantize(model_dir, specs, work, qdq, method="MinMax"):
    """anchors.md's `ort_<method> pc`: onnxruntime quantize_static of model_dir's model into `qdq`
    (QDQ, QUInt8 activations, QInt8 weights per channel, calibrated on all of calib.txt with
    CalibrationMethod.<method> at onnxruntime's defaults), after quant_pre_process (retried with
    skip_symbolic_shape=True), a model below opset 13 converted to 13 first. Temporary files go
    to `work`. Returns the record of each stage; `ok` False (with `stage` and `error`) where
    the model could not be written."""
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    result = {"method": method}
    t0 = time.monotonic()
    src = model_dir / "model.onnx"
    with contextlib.chdir(work):  # onnxruntime writes temporary files into the current folder
        try:
            m = onnx.load(str(src), load_external_data=False)
            opset = next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
            if opset < 13:
                conv = version_converter.convert_version(onnx.load(str(src)), 13)
                src = work / "float_opset13.onnx"
                onnx.save(conv, str(src))
                result["converted_to_opset13"] = True
        except Exception as e:  # noqa: BLE001
            result.update(ok=False, stage="version_converter", error=error_of(e))
            return result
        prepped = work / "ort_prep.onnx"
        try:
            quant_pre_process(str(src), str(prepped))
            result["pre_process"] = "ok"
        except Exception as e:  # noqa: BLE001
            result["pre_process"] = error_of(e)
            try:
                quant_pre_process(str(src), str(prepped), skip_symbolic_shape=True)
                result["pre_process_retry"] = "ok (skip_symbolic_shape=True)"
            except Exception as e2:  # noqa: BLE001
                result["pre_process_retry"] = error_of(e2)
                prepped = src
                if m.graph.initializer and any(t.external_data for t in m.graph.initializer):
                    # onnxruntime's pre-processing trips over external data: give it one file
                    try:
                        inlined = work / "float_inlined.onnx"
                        onnx.save(onnx.load(str(src)), str(inlined))
                        quant_pre_process(str(inlined), str(work / "ort_prep.onnx"), skip_symbolic_shape=True)
                        prepped = work / "ort_prep.onnx"
                        result["pre_process_retry"] = ("ok (skip_symbolic_shape=True, external data inlined "
                                                       "first; with it: " + " / ".join(error_of(e2)) + ")")
                    except Exception as e3:  # noqa: BLE001
                        result["pre_process_retry_inlined"] = error_of(e3)
        feeds = load_feeds(model_dir, specs, "calib.txt")
        try:
            quantize_static(str(prepped), str(qdq), Reader(feeds), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                            calibrate_method=getattr(CalibrationMethod, method))
        except Exception as e:  # noqa: BLE001
            result.update(ok=False, stage="quantize_static", error=error_of(e),
                          seconds=round(time.monotonic() - t0, 1))
            return result
    result.update(ok=True, seconds=round(time.monotonic() - t0, 1))
    return result


def ort_pc_step(score_mod, model_dir, specs, work):
    qdq = work / "ort_pc.onnx"
    result = ort_quantize(model_dir, specs, work, qdq)
    if not result["ok"]:
        return result
    del result["ok"], result["method"]
    return checked_and_scored(score_mod, model_dir, qdq, result)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--ptq", type=Path, required=True)
    ap.add_argument("--score", type=Path, required=True, help="../shared/tools/score.py")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", default="info,run,ptq_pc,ort_pc")
    a = ap.parse_args()
    ort.set_default_logger_severity(3)
    spec = importlib.util.spec_from_file_location("score", a.score)
    score_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(score_mod)
    steps = a.steps.split(",")
    result = {"id": a.model_dir.name}
    specs = None
    with tempfile.TemporaryDirectory(prefix=f"ptq-corpus-{a.model_dir.name}-") as tmp:
        work = Path(tmp)
        for step in steps:
            t0 = time.monotonic()
            print(f"[{a.model_dir.name}] {step} ...", file=sys.stderr, flush=True)
            try:
                specs = specs or input_specs(a.model_dir)
                if step == "info":
                    result["info"] = info(a.model_dir)
                elif step == "run":
                    result["run"] = run_step(a.ptq, a.model_dir, specs, work)
                elif step == "ptq_pc":
                    result["ptq_pc"] = ptq_pc_step(a.ptq, score_mod, a.model_dir, specs, work)
                elif step == "ort_pc":
                    result["ort_pc"] = ort_pc_step(score_mod, a.model_dir, specs, work)
            except Exception as e:  # noqa: BLE001 — one step's failure is a result
                result[step] = {"ok": False, "error": error_of(e), "trace": traceback.format_exc().splitlines()[-3:]}
            result.setdefault(step, {}).setdefault("wall_s", round(time.monotonic() - t0, 1))
    a.out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
