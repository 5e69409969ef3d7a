#!/usr/bin/env python3
"""Interop check: `ptq run` against onnxruntime on every shared model.

For every folder of <repo>/../shared/models that holds a READY file, run `ptq run` on its
eval.txt and onnxruntime (CPU, graph optimisations disabled, 1 intra-op thread) on the same
inputs, and compare every output over all samples:

    max|ptq - ort| / max|ort| <= 1e-4        (max|ptq - ort| <= 1e-6 when max|ort| is 0)

Prints one row per (model, output) and ends with the line `N passed, M failed`, which CI reads.
Exits non-zero when any output fails or when fewer than 5 models were found.

Usage: check_run.py [--ptq PATH] [--models DIR]
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from zoo import MODELS, REPO, dims_args, input_specs, load_feeds, model_dirs, run_outputs, session

REL_TOL = 1e-4
ABS_TOL_AT_ZERO = 1e-6
MIN_MODELS = 5


def ptq_run_command(ptq, model_dir, specs, out_dir):
    """`ptq run` on eval.txt, with --input_dimensions for every input with symbolic dims."""
    return [str(ptq), "run", "--input_model", str(model_dir / "model.onnx"),
            "--input_list", str(model_dir / "eval.txt"), "--output_dir", str(out_dir), *dims_args(specs)]


def check_model(ptq, model_dir):
    """[(output, samples, max abs err, max rel err, passed, note)] for one model."""
    specs = input_specs(model_dir)
    ort_session = session(model_dir / "model.onnx")
    outputs = [o.name for o in ort_session.get_outputs()]
    feeds = load_feeds(model_dir, specs)

    with tempfile.TemporaryDirectory(prefix="ptq-check-run-") as tmp:
        out_dir = Path(tmp) / "out"
        try:
            proc = subprocess.run(ptq_run_command(ptq, model_dir, specs, out_dir),
                                  capture_output=True, text=True, timeout=1800)
            note = "" if proc.returncode == 0 else " | ".join(
                [f"ptq run exited {proc.returncode}", *proc.stderr.strip().splitlines()[-3:]])
        except (OSError, subprocess.TimeoutExpired) as e:
            note = f"ptq run failed: {e}"
        if note:
            return [(name, len(feeds), None, None, False, note) for name in outputs]
        n_results = sum(1 for d in out_dir.iterdir() if d.name.startswith("Result_"))
        if n_results != len(feeds):
            note = f"ptq wrote {n_results} Result_N folders for {len(feeds)} samples"
            return [(name, len(feeds), None, None, False, note) for name in outputs]

        max_err = dict.fromkeys(outputs, 0.0)
        max_ort = dict.fromkeys(outputs, 0.0)
        notes = {}
        for i, feed in enumerate(feeds):
            result = out_dir / f"Result_{i}"
            written = run_outputs(result)
            for name, expected in zip(outputs, ort_session.run(None, feed)):
                if name in notes:
                    continue
                if name not in written:
                    notes[name] = f"not in {result.name}/outputs.json"
                    continue
                got = written[name]
                expected = np.asarray(expected, dtype=np.float64).ravel()
                if got.size != expected.size:
                    notes[name] = f"{result.name}: {got.size} values, onnxruntime gives {expected.size}"
                    continue
                max_err[name] = max(max_err[name], float(np.max(np.abs(got - expected), initial=0.0)))
                max_ort[name] = max(max_ort[name], float(np.max(np.abs(expected), initial=0.0)))

    rows = []
    for name in outputs:
        if name in notes:
            rows.append((name, len(feeds), None, None, False, notes[name]))
            continue
        err, scale = max_err[name], max_ort[name]
        rel = err / scale if scale > 0 else None
        passed = rel <= REL_TOL if scale > 0 else err <= ABS_TOL_AT_ZERO
        rows.append((name, len(feeds), err, rel, bool(passed), ""))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ptq", type=Path, default=REPO / "target" / "release" / "ptq", help="the ptq binary")
    parser.add_argument("--models", type=Path, default=MODELS, help="the shared model zoo")
    args = parser.parse_args()
    ort.set_default_logger_severity(3)

    dirs = model_dirs(args.models) if args.models.is_dir() else []
    table = []
    for d in dirs:
        print(f"checking {d.name} ...", file=sys.stderr, flush=True)
        for name, n, err, rel, passed, note in check_model(args.ptq.resolve(), d):
            fmt = lambda v: "-" if v is None else f"{v:.3e}"
            table.append((d.name, name, str(n), fmt(err), fmt(rel), "pass" if passed else "FAIL", note))

    header = ("model", "output", "samples", "max abs err", "max rel err", "result")
    widths = [max(len(r[k]) for r in [header, *table]) for k in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *table]:
        cells = [c.ljust(w) if k < 2 else c.rjust(w) for k, (c, w) in enumerate(zip(row, widths))]
        print("  ".join(cells).rstrip() + (f"  {row[6]}" if len(row) > 6 and row[6] else ""))

    passed = sum(r[5] == "pass" for r in table)
    failed = len(table) - passed
    if len(dirs) < MIN_MODELS:
        print(f"error: found {len(dirs)} model(s) with READY in {args.models}, expected at least {MIN_MODELS}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and len(dirs) >= MIN_MODELS else 1


if __name__ == "__main__":
    sys.exit(main())
