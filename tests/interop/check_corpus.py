#!/usr/bin/env python3
"""Interop check: the CI subset of the real-model corpus (bench/corpus/models.json, `ci: true`).

Runs bench/corpus.py --subset ci (models and data cached in $PTQ_CORPUS_CACHE, default
~/.cache/ptq-corpus; a few MB) and judges, per model:

1. `ptq run`: every output within 1e-4 relative of onnxruntime (check_run.py's rule);
2. `ptq quantize` W8A8 per channel writes a model that passes onnx.checker and onnxruntime runs;
3. its SQNR on the main output is at least onnxruntime MinMax per channel's minus 0.5 dB
   (issue 13), where onnxruntime quantizes the model at all.

Prints one row per check and ends with `N passed, M failed`; exits non-zero on any failure.

Usage: check_corpus.py [--ptq PATH] [--only ID,...]
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SQNR_SLACK_DB = 0.5


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ptq", type=Path, default=REPO / "target" / "release" / "ptq")
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ptq-check-corpus-") as tmp:
        out = Path(tmp) / "results.json"
        cmd = [sys.executable, str(REPO / "bench" / "corpus.py"), "--subset", "ci", "--ptq", str(a.ptq.resolve()),
               "--out", str(out)] + (["--only", a.only] if a.only else [])
        proc = subprocess.run(cmd, text=True, capture_output=True)
        print(proc.stdout)
        if proc.returncode != 0 or not out.is_file():
            print(proc.stderr[-3000:])
            print("0 passed, 1 failed")
            return 1
        results = json.loads(out.read_text())["models"]
    rows = []
    for r in results:
        mid = r["id"]
        if "setup" in r:
            rows.append((mid, "setup", False, " / ".join(r["setup"].get("error", []))))
            continue
        run = r.get("run", {})
        rows.append((mid, "ptq run vs onnxruntime", bool(run.get("ok")),
                     f"max rel err {run['max_rel_err']:.2e}" if run.get("max_rel_err") is not None
                     else " / ".join(run.get("error", [])) or json.dumps(run.get("outputs"))))
        q = r.get("ptq_pc", {})
        rows.append((mid, "ptq quantize pc: checker + onnxruntime", bool(q.get("ok")),
                     " / ".join(q.get("error", [])) if q.get("error") else f"checker {q.get('checker')}"))
        o = r.get("ort_pc", {})
        if q.get("main_sqnr_db") is not None and o.get("main_sqnr_db") is not None:
            rows.append((mid, "SQNR vs ort_minmax pc", q["main_sqnr_db"] >= o["main_sqnr_db"] - SQNR_SLACK_DB,
                         f"{q['main_sqnr_db']:.2f} dB vs {o['main_sqnr_db']:.2f} dB"))
    for mid, what, ok, detail in rows:
        print(f"{mid:24} {what:40} {'pass' if ok else 'FAIL'}  {detail}")
    passed = sum(ok for _, _, ok, _ in rows)
    failed = len(rows) - passed
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
