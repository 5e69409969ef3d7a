#!/usr/bin/env python3
"""Interop check: `ptq quantize` writes byte-for-byte what it wrote before a refactor.

For every shared model and configuration (`pt` W8A8 per tensor, `pc` per-channel/per-row
weights, `a16w8`, `w4a8` — check_quantize.py's), ptq quantizes the model on its calib.txt with
`--dump_encoding_json`, and the sha256 of the QDQ model, the encodings JSON and the report are
compared with tests/interop/golden.json. A change that is meant to change encodings regenerates
that file (`--update`) in the same commit and says so; any other difference is a bug.

Prints one row per (model, config) and ends with `N passed, M failed`; exits non-zero on any
failure.

Usage: check_golden.py [--ptq PATH] [--update]
"""
import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from zoo import MODELS, dims_args, input_specs, model_dirs

GOLDEN = Path(__file__).resolve().parent / "golden.json"
CONFIGS = {
    "pt": [],
    "pc": ["--use_per_channel_quantization", "--use_per_row_quantization"],
    "a16w8": ["--act_bitwidth", "16", "--use_per_channel_quantization", "--use_per_row_quantization"],
    "w4a8": ["--weights_bitwidth", "4", "--use_per_channel_quantization", "--use_per_row_quantization"],
}
FILES = {"model": "q.onnx", "encodings": "q_encoding.json", "report": "q_report.json"}


def digests(ptq, model_dir, flags, tmp):
    out = Path(tmp) / "q.onnx"
    cmd = [str(ptq), "quantize", "--quiet", "--input_model", str(model_dir / "model.onnx"), "--input_list",
           str(model_dir / "calib.txt"), "--output_model", str(out), "--dump_encoding_json",
           *dims_args(input_specs(model_dir)), *flags]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return None, proc.stderr.strip().splitlines()[-1:]
    return {k: hashlib.sha256((Path(tmp) / f).read_bytes()).hexdigest() for k, f in FILES.items()}, []


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ptq", type=Path, default=Path(__file__).resolve().parents[2] / "target" / "release" / "ptq")
    ap.add_argument("--update", action="store_true", help="write golden.json from this binary")
    a = ap.parse_args()
    golden = {} if a.update else json.loads(GOLDEN.read_text())
    found = {}
    passed = failed = 0
    for model_dir in model_dirs(MODELS):
        for config, flags in CONFIGS.items():
            key = f"{model_dir.name}/{config}"
            with tempfile.TemporaryDirectory(prefix="ptq-golden-") as tmp:
                got, error = digests(a.ptq, model_dir, flags, tmp)
            found[key] = got
            if a.update:
                ok, note = got is not None, "written" if got else f"quantize failed: {error}"
            elif got is None:
                ok, note = False, f"quantize failed: {error}"
            else:
                differ = [k for k in FILES if golden.get(key, {}).get(k) != got[k]]
                ok, note = not differ, "identical" if not differ else "differs: " + ", ".join(differ)
            print(f"{key:28} {'pass' if ok else 'FAIL'}  {note}")
            passed += ok
            failed += not ok
    if a.update and failed == 0:
        GOLDEN.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
