#!/usr/bin/env python3
"""Float inference speed: `ptq run` vs onnxruntime, on every shared model's eval list.

Per model, on this machine, the best of --repeat runs of each:

* ptq ms/sample: from ptq's own summary line ("… ms per sample on N threads"): the wall time
  of its parallel section (rayon over samples, one tract state per worker: reading the input
  files, running, writing the .raw outputs) divided by the number of samples.
* ORT ms/sample, two ways of giving onnxruntime ptq's N threads (default session options
  otherwise, i.e. all graph optimisations on):
    - "N×1": N sessions with intra_op_num_threads=1, samples spread over a ThreadPoolExecutor
      of N workers, one session each: the same parallelism as ptq (samples in parallel);
    - "1×N": one session with intra_op_num_threads=N, samples one after another.
  Timed like ptq's figure: wall time of the loop over samples (reading the input files, running,
  writing Result_i/*.raw and outputs.json as ptq does) divided by the number of samples.
  Sessions are created before that loop.
* end-to-end: wall time of the whole `ptq run` process (start-up, model load and optimisation,
  all samples) vs ORT "N×1" session creation + all samples, in this process (no interpreter
  start-up).

Both write their outputs under the system temporary folder; on a slow disk that can dominate the
small models, so TMPDIR=/dev/shm (or another RAM disk) measures compute rather than file system.

Usage: run_vs_ort.py [--ptq PATH] [--models DIR] [--repeat R]
"""
import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "interop"))
from check_run import ptq_run_command  # noqa: E402
from zoo import MODELS, input_specs, load_input, model_dirs, read_list  # noqa: E402

SUMMARY = re.compile(r"\(([0-9.]+) ms per sample on ([0-9]+) threads?\)")


def time_ptq(ptq, model_dir, specs):
    """(ms per sample, threads, end-to-end seconds) of one `ptq run` on eval.txt."""
    with tempfile.TemporaryDirectory(prefix="ptq-bench-") as tmp:
        cmd = ptq_run_command(ptq, model_dir, specs, Path(tmp) / "out")
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - start
    match = SUMMARY.search(proc.stderr)
    if proc.returncode != 0 or not match:
        raise RuntimeError(f"{model_dir.name}: ptq run exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return float(match.group(1)), int(match.group(2)), wall


def new_session(model_dir, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(model_dir / "model.onnx"), opts, providers=["CPUExecutionProvider"])


def time_ort(model_dir, specs, samples, sessions, threads_per_session):
    """(ms per sample, end-to-end seconds): `sessions` sessions, one per worker thread."""
    start = time.perf_counter()
    free = [new_session(model_dir, threads_per_session) for _ in range(sessions)]
    names = [o.name for o in free[0].get_outputs()]
    mapping = json.dumps({f"output_{k}.raw": name for k, name in enumerate(names)}, indent=2)
    lock = threading.Lock()
    local = threading.local()

    def run(i, out_dir):
        if not hasattr(local, "session"):
            with lock:
                local.session = free.pop()
        feed = {name: load_input(p, specs[name][0], specs[name][1]) for name, p in samples[i].items()}
        result = out_dir / f"Result_{i}"
        result.mkdir()
        for k, value in enumerate(local.session.run(None, feed)):
            np.asarray(value, dtype="<f4").tofile(result / f"output_{k}.raw")
        (result / "outputs.json").write_text(mapping)

    with tempfile.TemporaryDirectory(prefix="ort-bench-") as tmp:
        loop_start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=sessions) as executor:
            list(executor.map(run, range(len(samples)), [Path(tmp)] * len(samples)))
        end = time.perf_counter()
    return (end - loop_start) * 1e3 / len(samples), end - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ptq", type=Path, default=REPO / "target" / "release" / "ptq", help="the ptq binary")
    parser.add_argument("--models", type=Path, default=MODELS, help="the shared model zoo")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, the best is reported")
    args = parser.parse_args()
    ort.set_default_logger_severity(3)

    rows = []
    for d in model_dirs(args.models):
        print(f"timing {d.name} ...", file=sys.stderr, flush=True)
        specs = input_specs(d)
        samples = read_list(d / "eval.txt", list(specs))
        ptq, par, seq = [], [], []
        for _ in range(args.repeat):  # interleaved, so that a busy spell hits all three alike
            ptq.append(time_ptq(args.ptq.resolve(), d, specs))
            threads = ptq[0][1]
            par.append(time_ort(d, specs, samples, threads, 1))
            seq.append(time_ort(d, specs, samples, 1, threads))
        ptq_ms, ptq_wall = min(r[0] for r in ptq), min(r[2] for r in ptq)
        par_ms, par_wall = min(r[0] for r in par), min(r[1] for r in par)
        seq_ms = min(r[0] for r in seq)
        rows.append((d.name, len(samples), threads, f"{ptq_ms:.3f}", f"{par_ms:.3f}", f"{seq_ms:.3f}",
                     f"{ptq_ms / min(par_ms, seq_ms):.2f}", f"{ptq_wall:.2f}", f"{par_wall:.2f}"))

    print(f"ort {ort.__version__}, best of {args.repeat}; N = ptq's thread count; "
          "ORT N×1 = N sessions × 1 intra-op thread in parallel, 1×N = one session × N intra-op threads\n")
    print("| model | samples | N | ptq ms/sample | ORT N×1 ms/sample | ORT 1×N ms/sample "
          "| ptq ÷ best ORT | ptq end-to-end s | ORT N×1 end-to-end s |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for row in rows:
        print("| " + " | ".join(map(str, row)) + " |")


if __name__ == "__main__":
    main()
