#!/usr/bin/env python3
"""Interop check: layer folding (ptq-algos) against onnxruntime.

For each model with layers to fold (digits_cnn, ppocr_cls, ppocr_det in <repo>/../shared/models:
BatchNormalizations, paddle2onnx's bias Adds, scale Muls), fold it with the `fold_bn` example of
ptq-algos, check the folded model with onnx.checker, and run the original and the folded model in
onnxruntime (CPU, graph optimisations disabled, 1 intra-op thread) on the first 4 samples of
eval.txt, fed at the shapes of float_reference.json "fed_shapes". Every output must agree:

    max|folded - original| / max|original| <= 1e-5   (max|folded - original| <= 1e-6 when max|original| is 0)

or, where the model is more sensitive than that to the rounding every fold must make (a folded
weight W·s is stored in float32, off by up to half a unit in the last place), no more than the
original's own change when every layer weight moves by one unit in the last place (up or down at
random, seed 0) — the "1-ulp floor" column. ppocr_det needs the floor: folding only its
BatchNormalizations already moves its output by 1.5e-5 relative, its 1-ulp floor is 1.9e-5.

The "folded" column counts the folds by follower kind, as the example prints them
(`fold LAYER <- KIND FOLLOWER`); a model where nothing folds fails, as does one whose node count
did not drop by the number of folds.

Prints one row per (model, output) and ends with the line `N passed, M failed`. Exits non-zero on
any failure.

Build the example first:
    cargo build -p ptq-algos --example fold_bn
Usage: check_fold.py --bin <target>/debug/examples/fold_bn [--models DIR]
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from zoo import MODELS, input_specs, load_input, read_list, session

MODEL_NAMES = ["digits_cnn", "ppocr_cls", "ppocr_det"]
N_SAMPLES = 4
REL_TOL = 1e-5
ABS_TOL_AT_ZERO = 1e-6


def node_count(path):
    return len(onnx.load(str(path), load_external_data=False).graph.node)


def fold_counts(stdout):
    """{kind: count} from the example's `fold LAYER <- KIND FOLLOWER` lines."""
    counts = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0] == "fold" and parts[2] == "<-":
            counts[parts[3]] = counts.get(parts[3], 0) + 1
    return counts


def weights_nudged(original, path):
    """Writes `original` with every float32 Conv/ConvTranspose/Gemm/MatMul weight one ulp off."""
    model = onnx.load(str(original))
    graph = model.graph
    weights = {n.input[1] for n in graph.node
               if n.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") and len(n.input) > 1}
    rng = np.random.default_rng(0)

    def nudged(t):
        a = numpy_helper.to_array(t)
        a = np.where(rng.random(a.shape) < 0.5, np.nextafter(a, np.inf), np.nextafter(a, -np.inf))
        return numpy_helper.from_array(a.astype(np.float32), t.name)

    for t in graph.initializer:
        if t.name in weights and t.data_type == onnx.TensorProto.FLOAT:
            t.CopyFrom(nudged(t))
    for n in graph.node:
        if n.op_type == "Constant" and n.output[0] in weights and n.attribute[0].t.data_type == onnx.TensorProto.FLOAT:
            n.attribute[0].t.CopyFrom(nudged(n.attribute[0].t))
    onnx.save(model, str(path))
    return path


def max_errors(a, b, outputs, feeds):
    """({output: max|b - a|}, {output: max|a|}) over the feeds, or a shape mismatch message."""
    max_err = dict.fromkeys(outputs, 0.0)
    max_ref = dict.fromkeys(outputs, 0.0)
    for feed in feeds:
        for name, ref, got in zip(outputs, a.run(None, feed), b.run(None, feed)):
            ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
            if ref.shape != got.shape:
                return f"{name}: shape {got.shape} vs {ref.shape}"
            max_err[name] = max(max_err[name], float(np.max(np.abs(got - ref), initial=0.0)))
            max_ref[name] = max(max_ref[name], float(np.max(np.abs(ref), initial=0.0)))
    return max_err, max_ref


def check_model(fold_bin, model_dir, tmp):
    """(rows, folded count) where rows = [(output, samples, max abs err, max rel err, 1-ulp floor, passed, note)]."""
    original = model_dir / "model.onnx"
    folded = Path(tmp) / f"{model_dir.name}.folded.onnx"
    proc = subprocess.run([str(fold_bin), str(original), str(folded)], capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        note = " | ".join([f"fold_bn exited {proc.returncode}", *proc.stderr.strip().splitlines()[-3:]])
        return [("-", 0, None, None, None, False, note)], "-"
    counts = fold_counts(proc.stdout)
    n_folded = " ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
    total = sum(counts.values())
    if total == 0:
        return [("-", 0, None, None, None, False, "nothing folded")], n_folded
    # Each fold removes the follower; a Constant weight becoming an initializer removes more.
    if node_count(original) - node_count(folded) < total:
        note = f"{node_count(original)} nodes before, {node_count(folded)} after {total} folds"
        return [("-", 0, None, None, None, False, note)], n_folded
    try:
        onnx.checker.check_model(str(folded))
    except Exception as e:  # noqa: BLE001 - any checker complaint is a failure
        return [("-", 0, None, None, None, False, f"onnx.checker: {e}")], n_folded

    specs = input_specs(model_dir)
    samples = read_list(model_dir / "eval.txt", list(specs))[:N_SAMPLES]
    feeds = [{k: load_input(p, specs[k][0], specs[k][1]) for k, p in s.items()} for s in samples]
    a, b = session(original), session(folded)
    outputs = [o.name for o in a.get_outputs()]
    if outputs != [o.name for o in b.get_outputs()]:
        return [("-", len(feeds), None, None, None, False, "the folded model's outputs differ in name")], n_folded
    measured = max_errors(a, b, outputs, feeds)
    if isinstance(measured, str):
        return [("-", len(feeds), None, None, None, False, measured)], n_folded
    max_err, max_ref = measured
    floor_err, _ = max_errors(a, session(weights_nudged(original, Path(tmp) / "nudged.onnx")), outputs, feeds)
    rows = []
    for name in outputs:
        err, scale = max_err[name], max_ref[name]
        rel = err / scale if scale > 0 else None
        floor = floor_err[name] / scale if scale > 0 else None
        passed = rel <= max(REL_TOL, floor) if scale > 0 else err <= ABS_TOL_AT_ZERO
        rows.append((name, len(feeds), err, rel, floor, bool(passed), ""))
    return rows, n_folded


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", type=Path, required=True, help="the fold_bn example binary")
    parser.add_argument("--models", type=Path, default=MODELS, help="the shared model zoo")
    args = parser.parse_args()
    ort.set_default_logger_severity(3)

    table = []
    with tempfile.TemporaryDirectory(prefix="ptq-check-fold-") as tmp:
        for name in MODEL_NAMES:
            d = args.models / name
            print(f"checking {name} ...", file=sys.stderr, flush=True)
            if not (d / "READY").is_file():
                table.append((name, "-", "-", "0", "-", "-", "-", "FAIL", f"no READY model in {d}"))
                continue
            rows, n_folded = check_model(args.bin.resolve(), d, tmp)
            for output, n, err, rel, floor, passed, note in rows:
                fmt = lambda v: "-" if v is None else f"{v:.3e}"
                table.append((name, n_folded, output, str(n), fmt(err), fmt(rel), fmt(floor),
                              "pass" if passed else "FAIL", note))

    header = ("model", "folded", "output", "samples", "max abs err", "max rel err", "1-ulp floor", "result")
    widths = [max(len(r[k]) for r in [header, *table]) for k in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *table]:
        cells = [c.ljust(w) if k in (0, 2) else c.rjust(w) for k, (c, w) in enumerate(zip(row, widths))]
        print("  ".join(cells).rstrip() + (f"  {row[8]}" if len(row) > 8 and row[8] else ""))

    passed = sum(r[7] == "pass" for r in table)
    failed = len(table) - passed
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
