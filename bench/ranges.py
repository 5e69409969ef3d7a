#!/usr/bin/env python3
"""Range-setting methods side by side (issue 15): ptq's calibration methods and onnxruntime's.

    python bench/ranges.py [--ptq target/release/ptq] [--only a,b] [--methods min-max,sqnr,...]
                           [--param-methods sqnr,mse] [--ort-methods MinMax,Entropy,Percentile]
                           [--extra "FLAGS"] [--timeout 900] [--python PY] [--anchors anchors.md]
                           [--work DIR] [--out FILE.json]

Run it with a Python that has onnxruntime and onnx (the interop venv of .ci/run). For every
shared model (../shared/models, or --only a,b), W8A8 with per-channel weights (anchors.md's `pc`),
calibrated on every sample of calib.txt:

  ptq <method>    `ptq quantize --use_per_channel_quantization --use_per_row_quantization
                  --act_quantizer_calibration <method>` (plus --input_dimensions for symbolic
                  inputs, and --extra's flags), for each of --methods (default: all five);
  ptq default     the same without a calibration flag: ptq's default method;
  ptq param <m>   with --param-methods: the default activations and
                  --param_quantizer_calibration <m>;
                  (--extra goes to every ptq row: a flag ptq accepts only with one method, such as
                  --percentile_calibration_value, fails the other rows; use --methods to narrow);
  ort <Method>    onnxruntime `quantize_static` with CalibrationMethod.<Method> at its defaults,
                  exactly anchors.md's `ort_<method> pc` (bench/corpus/evaluate.py's ort_quantize:
                  quant_pre_process, retried with skip_symbolic_shape=True; opset < 13 converted
                  to 13; QDQ, QUInt8 activations, QInt8 weights per channel).

Each quantization is its own process under GNU time (bench/quantize_bench.py's Run), killed after
--timeout seconds: wall and peak RSS cover the whole process (for onnxruntime: Python start-up,
imports, pre-processing, calibration, writing). Every model written is scored by
../shared/tools/score.py (its own process, not timed): SQNR of the main output over eval.txt and
the model's task metric. A step that fails or times out is a row with its first error line; the
script goes on.

Printed: one Markdown table per model, then a summary (ptq's default, best ptq row, best
onnxruntime row, and the best 8-bit anchors parsed from the summary table of
../shared/anchors.md). Everything, with each row's command, per-output SQNR, score.py's metric
record and ptq's `<model>_report.json` path, goes to --out (default
~/.cache/ptq-bench/ranges.json). Quantized models are kept only with --work.
"""
import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "interop"), str(REPO / "bench"), str(REPO / "bench" / "corpus")]
from corpus import SCORE  # noqa: E402
from evaluate import first_lines  # noqa: E402
from quantize_bench import CACHE, Run, fmt  # noqa: E402
from zoo import MODELS, dims_args, input_specs, model_dirs  # noqa: E402

PTQ_METHODS = ["min-max", "sqnr", "mse", "percentile", "entropy"]
ORT_METHODS = ["MinMax", "Entropy", "Percentile"]
PC_FLAGS = ["--use_per_channel_quantization", "--use_per_row_quantization"]
ANCHORS = REPO.parent / "shared" / "anchors.md"
KILLED = 128 + 9  # `timeout -s KILL`'s exit status

# One onnxruntime quantization in a process of its own: argv = model dir, output, method, bench/corpus.
ORT_SCRIPT = r'''
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from evaluate import ort_quantize
from zoo import input_specs
d, out = Path(sys.argv[1]), Path(sys.argv[2])
r = ort_quantize(d, input_specs(d), out.parent, out, sys.argv[3])
print("ORT_RESULT " + json.dumps(r, default=str))
sys.exit(0 if r["ok"] else 1)
'''


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def error_line(run):
    """The line that says what went wrong: an `error` line of the output, else the last line of a
    Python traceback, else Run's first line."""
    text = run.stderr + "\n" + run.stdout
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    for l in lines:
        if re.match(r"^(error|Error)\b", l):
            return l
    if "Traceback" in text:
        return lines[-1]
    return run.first_error()


def quantize(cmd, cwd, timeout):
    """Run `cmd` in `cwd` (killed after `timeout` s): its record without the scores."""
    cwd.mkdir(parents=True, exist_ok=True)
    run = Run(["timeout", "-s", "KILL", str(timeout), *cmd], cwd)
    rec = {"wall_s": round(run.wall, 2), "cpu_s": round(run.cpu, 2), "peak_mib": round(run.peak, 1),
           "exit": run.code}
    if run.code == KILLED and run.wall >= timeout - 1:
        rec.update(status="timeout", error=f"killed after {timeout} s")
    elif run.code != 0:
        rec.update(status="failed", error=error_line(run))
    else:
        rec["status"] = "ok"
    return rec, run


def score(python, d, model, timeout):
    """score.py's verdict on `model`: {sqnr_db, outputs, metric} or {status, error}."""
    out = model.with_suffix(".score.json")
    try:
        proc = subprocess.run([python, str(SCORE), str(d), str(model), "--out", str(out)], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "score timeout", "error": f"score.py killed after {timeout} s"}
    if proc.returncode != 0 or not out.is_file():
        lines = first_lines(proc.stderr, 1000) or [f"exit {proc.returncode}"]
        return {"status": "score failed", "error": lines[-1]}
    res = json.loads(out.read_text())
    return {"sqnr_db": res["sqnr_db"], "main_output": res["main_output"],
            "outputs": {k: v["sqnr_db"] for k, v in res["outputs"].items()}, "metric": res["metric"]}


def rows_for(d, args, work):
    """Every row of one model, quantized and scored one after the other."""
    specs = input_specs(d)
    ptq_base = [str(args.ptq), "quantize", "--input_model", str(d / "model.onnx"), "--input_list",
                str(d / "calib.txt"), *dims_args(specs), *PC_FLAGS, *args.extra]
    steps = [("ptq", "default", [])]
    steps += [("ptq", m, ["--act_quantizer_calibration", m]) for m in args.methods]
    steps += [("ptq", f"param {m}", ["--param_quantizer_calibration", m]) for m in args.param_methods]
    steps += [("ort", m, None) for m in args.ort_methods]
    rows = []
    for tool, method, flags in steps:
        cwd = work / d.name / f"{tool}-{method.replace(' ', '-')}"
        out = cwd / "model.onnx"
        if tool == "ptq":
            cmd = [*ptq_base, *flags, "--output_model", str(out)]
        else:
            cmd = [args.python, "-c", ORT_SCRIPT, str(d), str(out), method, str(REPO / "bench" / "corpus")]
        rec, run = quantize(cmd, cwd, args.timeout)
        row = {"tool": tool, "method": method, "label": f"{tool} {method}",
               "command": shlex.join(cmd) if tool == "ptq" else f"ORT_SCRIPT: evaluate.ort_quantize({d}, {out}, {method})",
               **rec}
        if tool == "ptq":
            report = cwd / "model_report.json"
            row["report"] = str(report) if report.is_file() else None
        else:
            found = [l for l in run.stdout.splitlines() if l.startswith("ORT_RESULT ")]
            if found:
                row["ort"] = json.loads(found[-1].split(" ", 1)[1])
                if row["ort"].get("error") and rec["status"] == "failed":
                    row["error"] = row["ort"]["error"][0]
        if rec["status"] == "ok":
            row.update(score(args.python, d, out, args.timeout))
            row.setdefault("status", "ok")
        log(f"{d.name}: {row['label']}: {row['status']}, {fmt(row.get('sqnr_db'))} dB, {rec['wall_s']:.1f} s, "
            f"{rec['peak_mib']:.0f} MiB" + (f" ({row['error']})" if row.get("error") else ""))
        rows.append(row)
    return rows


def parse_anchors(path):
    """{model: {column header: cell}} from the table between <!-- SUMMARY BEGIN/END --> in anchors.md."""
    if not path.is_file():
        return {}
    m = re.search(r"<!-- SUMMARY BEGIN -->(.*?)<!-- SUMMARY END -->", path.read_text(), re.S)
    if not m:
        return {}
    table = [[c.strip() for c in l.strip().strip("|").split("|")] for l in m.group(1).strip().splitlines()]
    header, body = table[0], [r for r in table[2:] if len(r) == len(table[0])]
    return {r[0]: dict(zip(header, r)) for r in body}


def anchor_cells(anchor):
    """(best 8-bit anchor: cell, dB), (best 8-bit with ≥ 70 % of ops quantized: cell, dB)."""
    def col(pred):
        return next((v for k, v in anchor.items() if pred(k)), None)

    def db(cell):
        m = re.search(r"(-?[0-9.]+) dB", cell or "")
        return float(m.group(1)) if m else None

    best = col(lambda k: k.startswith("best 8-bit anchor"))
    metric = col(lambda k: k == "its metric")
    cell = f"{best}, {metric}" if best and metric else best
    full = col(lambda k: "70 %" in k)
    return (cell, db(best)), (full, db(full))


def metric_cell(m):
    if not m or m.get("quant") is None:
        return "—"
    extra = []
    for key, name in (("top1_agreement", "agree"), ("min", "min"), ("iou", "IoU")):
        if key in m:
            extra.append(f"{name} {m[key]:.3f}")
    return f"{m['quant']:.4f}" + (f" ({', '.join(extra)})" if extra else "")


def row_cell(r):
    return "—" if r is None else f"`{r['label']}` {fmt(r['sqnr_db'])} dB, {metric_cell(r.get('metric'))}"


def best(rows, tool):
    scored = [r for r in rows if r["tool"] == tool and r.get("sqnr_db") is not None]
    return max(scored, key=lambda r: r["sqnr_db"], default=None)


def note(r):
    parts = []
    o = r.get("ort") or {}
    if o.get("converted_to_opset13"):
        parts.append("converted to opset 13")
    if o.get("pre_process") not in (None, "ok"):
        parts.append("quant_pre_process retried: " + str(o.get("pre_process_retry")).split(" (")[0])
    if r["status"] != "ok":
        parts.append(f"**{r['status']}**: {r.get('error', '')}")
    return "; ".join(parts)


def print_model(d, rows, seconds):
    info = json.loads((d / "float_reference.json").read_text())
    metric = next((r["metric"] for r in rows if r.get("metric")), {})
    fl = metric.get("float")
    print(f"### {d.name}\n")
    print(f"Main output `{info.get('main_output')}`; task metric `{info.get('task_metric')}`"
          + (f", float model {fl:.4f}" if isinstance(fl, float) else "") + f". All rows: {seconds:.0f} s.\n")
    print(f"| row | SQNR dB | {metric.get('name', 'metric')} | wall s | cpu s | peak RSS MiB | note |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| `{r['label']}` | {fmt(r.get('sqnr_db'))} | {metric_cell(r.get('metric'))} | {fmt(r['wall_s'])} | "
              f"{fmt(r['cpu_s'], 1)} | {fmt(r['peak_mib'], 0)} | {note(r)} |")
    print()


def print_summary(results, anchors):
    print("### Summary: best ptq against onnxruntime and the anchors\n")
    print("Best = highest SQNR of the main output among the rows that ran; anchors from the summary table "
          "of ../shared/anchors.md.\n")
    print("| model | ptq default | best ptq | best onnxruntime | best 8-bit anchor | best 8-bit anchor, ≥ 70 % of "
          "ops quantized | best ptq − anchor dB | best ptq − ≥ 70 % anchor dB |")
    print("|---|---|---|---|---|---|---:|---:|")
    for name, res in results.items():
        rows = res["rows"]
        default = next((r for r in rows if r["label"] == "ptq default" and r.get("sqnr_db") is not None), None)
        bp = best(rows, "ptq")
        (a_cell, a_db), (f_cell, f_db) = anchor_cells(anchors.get(name, {}))

        def delta(ref):
            return "—" if bp is None or ref is None else f"{bp['sqnr_db'] - ref:+.2f}"

        print(f"| {name} | {row_cell(default)} | {row_cell(bp)} | {row_cell(best(rows, 'ort'))} | {a_cell or '—'} | "
              f"{f_cell or '—'} | {delta(a_db)} | {delta(f_db)} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ptq", type=Path, default=REPO / "target" / "release" / "ptq")
    ap.add_argument("--only", help="comma-separated model names (default: every shared model)")
    ap.add_argument("--methods", default=",".join(PTQ_METHODS), help="ptq --act_quantizer_calibration values")
    ap.add_argument("--param-methods", default="", help="ptq --param_quantizer_calibration values to add")
    ap.add_argument("--ort-methods", default=",".join(ORT_METHODS), help="onnxruntime CalibrationMethod names")
    ap.add_argument("--extra", default="", help="flags added to every ptq row (one string)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per quantization and per scoring")
    ap.add_argument("--python", default=sys.executable, help="a Python with onnxruntime and onnx")
    ap.add_argument("--anchors", type=Path, default=ANCHORS)
    ap.add_argument("--work", type=Path, help="keep the quantized models and reports here (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=CACHE / "ranges.json")
    args = ap.parse_args()
    split = lambda s: [x for x in s.split(",") if x]  # noqa: E731
    args.methods, args.param_methods, args.ort_methods = map(split, (args.methods, args.param_methods, args.ort_methods))
    args.extra = shlex.split(args.extra)
    args.ptq = args.ptq.resolve()
    if not args.ptq.is_file():
        ap.error(f"no ptq binary at {args.ptq} (cargo build --release -p ptq-cli, or --ptq PATH)")
    dirs = [MODELS / n for n in args.only.split(",")] if args.only else model_dirs(MODELS)
    anchors = parse_anchors(args.anchors)
    results = {}
    with tempfile.TemporaryDirectory(prefix="ptq-ranges-") as tmp:
        work = (args.work or Path(tmp)).resolve()
        for d in dirs:
            t0 = time.monotonic()
            rows = rows_for(d, args, work)
            results[d.name] = {"rows": rows, "seconds": round(time.monotonic() - t0, 1)}
            print_model(d, rows, results[d.name]["seconds"])
            sys.stdout.flush()
    print_summary(results, anchors)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "ptq": str(args.ptq), "extra": args.extra, "timeout_s": args.timeout, "anchors": str(args.anchors),
        "anchor_summary": {n: anchors.get(n) for n in results}, "models": results}, indent=2, default=float) + "\n")
    log(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
