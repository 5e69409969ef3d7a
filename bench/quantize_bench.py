#!/usr/bin/env python3
"""Time and memory of `ptq quantize` against onnxruntime, quantize-rs and plain tract inference.

On every shared model (or --models a,b), configuration `pt` (W8A8 per tensor, min-max, every
sample of calib.txt), one run times, as whole processes:

  ptq       `ptq quantize -v` (its `calibrate: X s` stage line gives the calibration seconds;
            its time includes the closing SQNR simulation of 16 samples);
  ort       a fresh Python process running onnxruntime's `quant_pre_process` + `quantize_static`
            MinMax, QDQ, uint8 activations, int8 weights (../shared/anchors.md's `ort_minmax pt`);
            Python start-up and imports count, as they do for its users;
  qrs       the Rust peer quantize-rs 0.10.0: `quantize-rs calibrate MODEL --data calib.npy
            --method minmax --symmetric` (int8 per-tensor symmetric weights, asymmetric int8
            activations), fed the same samples stacked into one [N, ...] float32 .npy, its one
            data format (of the first input: it takes no more; cached in ~/.cache/ptq-bench/data);
            where it refuses a model, the table gives the first line of its error;
  infer     the limit: `examples/infer` of ptq-engine, tract's float inference of every sample
            with nothing observed (the graph outputs only, samples in parallel as calibration);
  ptq×10    `ptq quantize` on the calibration list repeated 10 times (flatness).

Runs alternate (ptq, ort, qrs, infer, ptq×10, ptq, ort, …), RUNS rounds per model. Wall is the
median; CPU is user + system (median) and peak the largest peak RSS over the runs, both the
kernel's accounting of the whole process tree (wait4; the peak through GNU time's %M). The tables
give each group, then which of issue 14's targets hold.

quantize-rs is installed when missing with
  cargo install --locked quantize-rs --version 0.10.0 --root ~/.cache/ptq-bench/quantize-rs
(--locked: its newest dependencies need a newer rustc). The infer example is built with
  cargo build --release -p ptq-engine --example infer

Usage: quantize_bench.py [--ptq PATH] [--infer PATH] [--quantize-rs PATH] [--python PATH]
                         [--runs N] [--models a,b] [--repeat 10]
"""
import argparse
import hashlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "interop"))
from zoo import MODELS, dims_args, input_specs, load_input, model_dirs, read_list  # noqa: E402

CACHE = Path.home() / ".cache" / "ptq-bench"
QRS_VERSION = "0.10.0"
TIME = "/usr/bin/time"  # GNU time

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


class Run:
    """One finished process tree: wall s, cpu s (user + sys), peak RSS MiB, exit code, stdout, stderr.

    The command runs under GNU time (`/usr/bin/time`), which reports the tree's peak RSS: a child
    forked from this Python would start its peak at this interpreter's own RSS (the kernel keeps
    the pre-exec high-water mark), ~70 MiB with numpy and onnxruntime imported. CPU is the
    kernel's user + system microseconds for GNU time and everything it waited for (wait4).
    """

    def __init__(self, cmd, cwd):
        out, err, usage = (Path(cwd) / f for f in ("stdout.txt", "stderr.txt", "usage.txt"))
        with open(out, "wb") as o, open(err, "wb") as e:
            start = time.monotonic()
            # In `cwd`: onnxruntime leaves temporary files in the current folder.
            proc = subprocess.Popen([TIME, "-o", str(usage), "-f", "%x %M", *map(str, cmd)],
                                    stdout=o, stderr=e, stdin=subprocess.DEVNULL, cwd=cwd)
            _, _, rusage = os.wait4(proc.pid, 0)
            self.wall = time.monotonic() - start
            proc.returncode = 0  # reaped above
        text = usage.read_text()
        code, kib = text.strip().splitlines()[-1].split()
        # GNU time gives %x = 0 for a process killed by a signal: 128 + N, as a shell would.
        signal = re.search(r"terminated by signal (\d+)", text)
        self.code = 128 + int(signal.group(1)) if signal else int(code)
        self.cpu = rusage.ru_utime + rusage.ru_stime
        self.peak = int(kib) / 1024
        self.stdout = out.read_text(errors="replace")
        self.stderr = err.read_text(errors="replace")

    def first_error(self):
        """The first line of the error it printed (stderr first), without ANSI colours."""
        for text in (self.stderr, self.stdout):
            for line in text.splitlines():
                line = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
                if line and not line.startswith("quantize-rs v"):
                    return re.sub(r"^(Error|error): *", "", line)
        return f"exit {self.code}"


def stage_seconds(text, name):
    m = re.search(rf"^{re.escape(name)}: ([0-9.]+) s$", text, re.M)
    return float(m.group(1)) if m else None


def repeated_list(d, times, path):
    """`d`/calib.txt repeated `times` times, its relative paths made absolute, written to `path`."""
    lines = []
    for line in (d / "calib.txt").read_text().splitlines():
        tokens = line.split()
        if not tokens or tokens[0][0] in "#%":
            continue
        fixed = []
        for t in tokens:
            name, sep, p = t.rpartition(":=")
            fixed.append(f"{name}{sep}{(d / p).resolve()}")
        lines.append(" ".join(fixed))
    path.write_text("\n".join(lines * times) + "\n")
    return len(lines) * times


def qrs_data(d, specs):
    """quantize-rs's calibration data: the first input's calib samples stacked as one float32
    [N, ...] .npy (its one format), cached by the list's contents."""
    name, (dtype, shape, _) = next(iter(specs.items()))
    samples = read_list(d / "calib.txt", list(specs))
    key = hashlib.sha256((d / "calib.txt").read_bytes())
    for s in samples:
        st = s[name].stat()
        key.update(f"{st.st_size} {st.st_mtime_ns}".encode())
    path = CACHE / "data" / f"{d.name}-{key.hexdigest()[:12]}.npy"
    if not path.is_file():
        arrays = [load_input(s[name], dtype, shape).astype(np.float32) for s in samples]
        stacked = np.concatenate([a.reshape(1, *a.shape[1:]) for a in arrays])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, stacked)
        tmp.replace(path)
    return path


def ensure_qrs(path):
    if path.is_file():
        return path
    root = CACHE / "quantize-rs"
    print(f"installing quantize-rs {QRS_VERSION} into {root} (several minutes, once)", file=sys.stderr)
    subprocess.run(["cargo", "install", "--locked", "quantize-rs", "--version", QRS_VERSION, "--root", str(root)],
                   check=True)
    return path


def med(xs):
    return statistics.median(xs) if xs else None


def fmt(x, digits=2):
    return "—" if x is None else f"{x:.{digits}f}"


def ratio(a, b, digits=2):
    return "—" if a is None or b is None or b == 0 else f"{a / b:.{digits}f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ptq", type=Path, default=REPO / "target" / "release" / "ptq")
    parser.add_argument("--infer", type=Path, default=REPO / "target" / "release" / "examples" / "infer")
    parser.add_argument("--quantize-rs", type=Path, default=CACHE / "quantize-rs" / "bin" / "quantize-rs")
    parser.add_argument("--python", default=sys.executable, help="a Python with onnxruntime")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--models", help="comma-separated model names (default: every shared model)")
    parser.add_argument("--repeat", type=int, default=10, help="the flatness run's list repetitions")
    args = parser.parse_args()
    for p in (args.ptq, args.infer):
        if not p.is_file():
            raise SystemExit(f"{p} is missing: build it (see --help)")
    qrs = ensure_qrs(args.quantize_rs)
    dirs = [MODELS / n for n in args.models.split(",")] if args.models else model_dirs(MODELS)

    rows = []
    with tempfile.TemporaryDirectory(prefix="ptq-bench-") as tmp:
        tmp = Path(tmp)
        for d in dirs:
            specs = input_specs(d)
            dims = dims_args(specs)
            n = repeated_list(d, 1, tmp / "x1.txt")
            n10 = repeated_list(d, args.repeat, tmp / "x10.txt")
            # Min-max like the onnxruntime and quantize-rs rows (bench/ranges.py times the methods).
            ptq = [str(args.ptq), "quantize", "-v", "--input_model", str(d / "model.onnx"), "--output_model",
                   str(tmp / "ptq.onnx"), "--act_quantizer_calibration", "min-max",
                   "--param_quantizer_calibration", "min-max", *dims, "--input_list"]
            infer_dims = [a for a in dims if a != "--input_dimensions"]
            cmds = {
                "ptq": ptq + [str(d / "calib.txt")],
                "ort": [args.python, "-c", ORT_SCRIPT, str(d), str(tmp / "ort.onnx"), str(REPO / "tests" / "interop")],
                "qrs": [str(qrs), "calibrate", str(d / "model.onnx"), "--data", str(qrs_data(d, specs)),
                        "-o", str(tmp / "qrs.onnx"), "--method", "minmax", "--symmetric"],
                "infer": [str(args.infer), str(d / "model.onnx"), str(d / "calib.txt"), *infer_dims],
                "ptq10": ptq + [str(tmp / "x10.txt")],
            }
            runs = {k: [] for k in cmds}
            refused = {}
            for _ in range(args.runs):
                for k, cmd in cmds.items():
                    if k in refused:
                        continue
                    r = Run(cmd, tmp)
                    if r.code != 0:
                        if k != "qrs":
                            raise SystemExit(f"{d.name}: {' '.join(cmd)} failed: {r.first_error()}")
                        refused[k] = r.first_error()
                        continue
                    runs[k].append(r)
            row = {"model": d.name, "samples": n, "samples10": n10, "qrs_error": refused.get("qrs")}
            for k, rs in runs.items():
                row[k] = {
                    "wall": med([r.wall for r in rs]),
                    "cpu": med([r.cpu for r in rs]),
                    "peak": max((r.peak for r in rs), default=None),
                }
            row["ptq"]["calibrate"] = med([stage_seconds(r.stderr, "calibrate") for r in runs["ptq"]])
            row["ptq10"]["calibrate"] = med([stage_seconds(r.stderr, "calibrate") for r in runs["ptq10"]])
            for s in ("prepare", "run"):
                row["infer"][s] = med([stage_seconds(r.stdout, s) for r in runs["infer"]])
            rows.append(row)
            print(f"{d.name}: done", file=sys.stderr, flush=True)

    def qrs_cell(r, key, digits=2, why=False):
        if r["qrs_error"]:
            return f"cannot: {r['qrs_error']}" if why else "cannot"
        return fmt(r["qrs"][key], digits)

    print(f"### Wall time (median of {args.runs})\n")
    print("| model | samples | ptq s | onnxruntime s | ptq / onnxruntime | quantize-rs s | ptq / quantize-rs |")
    print("|---|---:|---:|---:|---:|---|---:|")
    for r in rows:
        q = None if r["qrs_error"] else r["qrs"]["wall"]
        print(f"| {r['model']} | {r['samples']} | {fmt(r['ptq']['wall'])} | {fmt(r['ort']['wall'])} | "
              f"{ratio(r['ptq']['wall'], r['ort']['wall'], 3)} | {qrs_cell(r, 'wall', why=True)} | "
              f"{ratio(r['ptq']['wall'], q)} |")

    print(f"\n### CPU time, user + system (median of {args.runs})\n")
    print("| model | ptq cpu s | onnxruntime cpu s | quantize-rs cpu s | ptq / quantize-rs |")
    print("|---|---:|---:|---|---:|")
    for r in rows:
        q = None if r["qrs_error"] else r["qrs"]["cpu"]
        print(f"| {r['model']} | {fmt(r['ptq']['cpu'], 3)} | {fmt(r['ort']['cpu'], 3)} | {qrs_cell(r, 'cpu', 3)} | "
              f"{ratio(r['ptq']['cpu'], q)} |")

    print("\n### Calibration against its limit: tract's plain float inference of the same samples\n")
    print("| model | samples | ptq calibrate s | tract infer prepare + run s | calibrate / infer | "
          "infer process s | infer process cpu s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        i = r["infer"]
        limit = i["prepare"] + i["run"]
        print(f"| {r['model']} | {r['samples']} | {fmt(r['ptq']['calibrate'], 3)} | {fmt(limit, 3)} | "
              f"{ratio(r['ptq']['calibrate'], limit)} | {fmt(i['wall'])} | {fmt(i['cpu'])} |")

    print(f"\n### Peak RSS (largest of {args.runs})\n")
    print("| model | ptq MiB | onnxruntime MiB | ptq / onnxruntime | quantize-rs MiB | tract infer MiB |")
    print("|---|---:|---:|---:|---|---:|")
    for r in rows:
        print(f"| {r['model']} | {fmt(r['ptq']['peak'], 0)} | {fmt(r['ort']['peak'], 0)} | "
              f"{ratio(r['ptq']['peak'], r['ort']['peak'])} | {qrs_cell(r, 'peak', 0)} | "
              f"{fmt(r['infer']['peak'], 0)} |")

    print(f"\n### Flatness: ptq on the calibration list repeated {args.repeat}×\n")
    k = f"{args.repeat}×"
    print(f"| model | samples 1× | samples {k} | wall 1× s | wall {k} s | wall {k} / 1× | calibrate {k} / 1× | "
          f"peak 1× MiB | peak {k} MiB | peak {k} / 1× |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        a, b = r["ptq"], r["ptq10"]
        print(f"| {r['model']} | {r['samples']} | {r['samples10']} | {fmt(a['wall'])} | {fmt(b['wall'])} | "
              f"{ratio(b['wall'], a['wall'])} | {ratio(b['calibrate'], a['calibrate'])} | {fmt(a['peak'], 0)} | "
              f"{fmt(b['peak'], 0)} | {ratio(b['peak'], a['peak'], 3)} |")

    print("\n### Issue 14's targets\n")
    print(f"| model | peak ≤ onnxruntime | peak {k} ≤ 1.10 × 1× | wall ≤ 0.5 × onnxruntime (where it takes ≥ 1 s) "
          "| cpu ≤ quantize-rs | calibrate ≤ 1.5 × infer |")
    print("|---|---|---|---|---|---|")

    def verdict(ok, detail):
        return f"{'yes' if ok else '**no**'} ({detail})"

    for r in rows:
        p, o, p10, i = r["ptq"], r["ort"], r["ptq10"], r["infer"]
        limit = i["prepare"] + i["run"]
        cells = [
            verdict(p["peak"] <= o["peak"], f"{p['peak']:.0f} vs {o['peak']:.0f}"),
            verdict(p10["peak"] <= 1.10 * p["peak"], f"×{p10['peak'] / p['peak']:.3f}"),
            verdict(p["wall"] <= 0.5 * o["wall"], f"×{p['wall'] / o['wall']:.2f}") if o["wall"] >= 1
            else f"n/a (onnxruntime {o['wall']:.2f} s)",
            "n/a (quantize-rs cannot)" if r["qrs_error"]
            else verdict(p["cpu"] <= r["qrs"]["cpu"], f"{p['cpu'] * 1e3:.1f} vs {r['qrs']['cpu'] * 1e3:.1f} ms"),
            verdict(p["calibrate"] <= 1.5 * limit, f"×{p['calibrate'] / limit:.2f}"),
        ]
        print(f"| {r['model']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
