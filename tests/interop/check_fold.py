#!/usr/bin/env python3
"""Interop check: BatchNormalization folding (ptq-algos) against onnxruntime.

For each model with BatchNormalizations (digits_cnn, ppocr_cls, ppocr_det in
<repo>/../shared/models), fold it with the `fold_bn` example of ptq-algos, check the folded model
with onnx.checker, and run the original and the folded model in onnxruntime (CPU, graph
optimisations disabled, 1 intra-op thread) on the first 4 samples of eval.txt, fed at the shapes
of float_reference.json "fed_shapes". Every output must agree:

    max|folded - original| / max|original| <= 1e-4   (max|folded - original| <= 1e-6 when max|original| is 0)

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

from zoo import MODELS, input_specs, load_input, read_list, session

MODEL_NAMES = ["digits_cnn", "ppocr_cls", "ppocr_det"]
N_SAMPLES = 4
REL_TOL = 1e-4
ABS_TOL_AT_ZERO = 1e-6


def bn_count(path):
    return sum(n.op_type == "BatchNormalization" for n in onnx.load(str(path)).graph.node)


def check_model(fold_bin, model_dir, tmp):
    """(rows, folded count) where rows = [(output, samples, max abs err, max rel err, passed, note)]."""
    original = model_dir / "model.onnx"
    folded = Path(tmp) / f"{model_dir.name}.folded.onnx"
    proc = subprocess.run([str(fold_bin), str(original), str(folded)], capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        note = " | ".join([f"fold_bn exited {proc.returncode}", *proc.stderr.strip().splitlines()[-3:]])
        return [("-", 0, None, None, False, note)], "-"
    n_folded = f"{bn_count(original) - bn_count(folded)}/{bn_count(original)}"
    try:
        onnx.checker.check_model(str(folded))
    except Exception as e:  # noqa: BLE001 - any checker complaint is a failure
        return [("-", 0, None, None, False, f"onnx.checker: {e}")], n_folded

    specs = input_specs(model_dir)
    samples = read_list(model_dir / "eval.txt", list(specs))[:N_SAMPLES]
    feeds = [{k: load_input(p, specs[k][0], specs[k][1]) for k, p in s.items()} for s in samples]
    a, b = session(original), session(folded)
    outputs = [o.name for o in a.get_outputs()]
    if outputs != [o.name for o in b.get_outputs()]:
        return [("-", len(feeds), None, None, False, "the folded model's outputs differ in name")], n_folded
    max_err = dict.fromkeys(outputs, 0.0)
    max_ref = dict.fromkeys(outputs, 0.0)
    for feed in feeds:
        for name, ref, got in zip(outputs, a.run(None, feed), b.run(None, feed)):
            ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
            if ref.shape != got.shape:
                return [(name, len(feeds), None, None, False, f"shape {got.shape} vs {ref.shape}")], n_folded
            max_err[name] = max(max_err[name], float(np.max(np.abs(got - ref), initial=0.0)))
            max_ref[name] = max(max_ref[name], float(np.max(np.abs(ref), initial=0.0)))
    rows = []
    for name in outputs:
        err, scale = max_err[name], max_ref[name]
        rel = err / scale if scale > 0 else None
        passed = rel <= REL_TOL if scale > 0 else err <= ABS_TOL_AT_ZERO
        rows.append((name, len(feeds), err, rel, bool(passed), ""))
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
                table.append((name, "-", "-", "0", "-", "-", "FAIL", f"no READY model in {d}"))
                continue
            rows, n_folded = check_model(args.bin.resolve(), d, tmp)
            for output, n, err, rel, passed, note in rows:
                fmt = lambda v: "-" if v is None else f"{v:.3e}"
                table.append((name, n_folded, output, str(n), fmt(err), fmt(rel), "pass" if passed else "FAIL", note))

    header = ("model", "BN folded", "output", "samples", "max abs err", "max rel err", "result")
    widths = [max(len(r[k]) for r in [header, *table]) for k in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *table]:
        cells = [c.ljust(w) if k in (0, 2) else c.rjust(w) for k, (c, w) in enumerate(zip(row, widths))]
        print("  ".join(cells).rstrip() + (f"  {row[7]}" if len(row) > 7 and row[7] else ""))

    passed = sum(r[6] == "pass" for r in table)
    failed = len(table) - passed
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
