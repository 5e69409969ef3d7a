#!/usr/bin/env python3
"""Interop check: given encodings (overrides files, QAT/QDQ models) survive `ptq`, against onnxruntime.

Three parts, on the model folders with READY in <repo>/../shared/models:

1. Round trip, every model, configurations pt and pc (pc = per-channel + per-row weights):
   `ptq quantize --dump_encoding_json` on calib.txt → `ptq convert` of the ORIGINAL float model
   with that JSON as overrides → `ptq quantize --enable_float_fallback` of the converted model.
   The last model's bytes must equal the first one's.
2. QAT keeps its encodings, for digits_cnn, ppocr_cls (converted from opset 11 to 13 first; that
   float model is the input of both quantizers) and silero_vad_16k: onnxruntime's
   `quantize_static` (QDQ, MinMax, QUInt8 activations, QInt8 weights, per tensor, the first 16
   samples of calib.txt) → `ptq quantize --input_list calib.txt --dump_encoding_json` of that QDQ
   model. Every tensor onnxruntime quantized (the input of each QuantizeLinear; each weight or
   bias `W` behind a DequantizeLinear of an initializer `W_quantized`) has in ptq's JSON exactly
   onnxruntime's scale (as f32), zero point and bitwidth (JSON offset = −zero point for unsigned
   grids, −2^(b−1) for symmetric signed ones, 0 for 32-bit biases). ptq's model passes
   `onnx.checker`, runs in onnxruntime, and agrees with `ptq run` on eval.txt by DESIGN.md
   Decision 2's 1-step rule (check_quantize.agree, with its fallback to onnxruntime's own spread);
   and the SQNR of its main output against the float model (eval.txt) is at most
   check_quantize.SQNR_SLACK_DB below that of onnxruntime's QDQ model: a kept scale that now
   quantizes a different tensor (a weight folded with a BatchNormalization) keeps the number
   but not its meaning.
3. Mixed models, for digits_cnn and ppocr_cls: an overrides file built from a ptq JSON dump
   (calibrated on eval.txt, so that a given encoding differs from what calib.txt would give):
   every other activation encoding as is, one activation FLOAT 16 bit, one FLOAT 32 bit and one
   INT 16 bit without scale/offset ("calibrate it at 16 bit"); then `ptq quantize --input_list
   calib.txt --quantization_overrides ... --dump_encoding_json`:
   (a) the given integer tensors keep exactly the given scale, offset and bitwidth;
   (b) the FLOAT 16 tensor has a `<T>_ptq_fp16_cast` Cast node; the FLOAT 32 one has no
       QuantizeLinear reading it; both are FLOAT in the JSON;
   (c) the bitwidth-only tensor is INT at 16 bit in the JSON;
   (d) the model passes `onnx.checker`, runs in onnxruntime and agrees with `ptq run` on
       eval.txt by the 1-step rule.

Prints one row per (model, config, check) and ends with the line `N passed, M failed`.
Exits non-zero when any row fails.

Usage: check_given.py [--ptq PATH] [--models DIR] [--parts 1,2,3] [MODEL ...]
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
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_qdq_run import MIN_OPSET, Reader, feeds, float_model  # noqa: E402
from check_quantize import CONFIGS, SQNR_SLACK_DB, agree, output_scales, run_ptq, sqnr  # noqa: E402
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static  # noqa: E402
from zoo import MODELS, REPO, dims_args, input_specs, load_feeds, model_dirs, read_list, session  # noqa: E402

ROUND_TRIP_CONFIGS = ("pt", "pc")
QAT_MODELS = ("digits_cnn", "ppocr_cls", "silero_vad_16k")
MIXED_MODELS = ("digits_cnn", "ppocr_cls")
N_CALIB = 16


def ptq_cmd(ptq, *args):
    """Runs ptq; returns (ok, last stderr line)."""
    proc = subprocess.run([str(ptq), *map(str, args)], capture_output=True, text=True)
    lines = proc.stderr.strip().splitlines()
    return proc.returncode == 0, (lines[-1] if lines else f"exit {proc.returncode}")


def quantize(ptq, model, out, specs, *extra):
    return ptq_cmd(ptq, "quantize", "--input_model", model, "--output_model", out, *extra, *dims_args(specs))


def encoding_path(model_path):
    return model_path.with_name(model_path.stem + "_encoding.json")


def entries(doc):
    """{name: entry} over activation and param encodings."""
    return {e["name"]: e for key in ("activation_encodings", "param_encodings") for e in doc.get(key, [])}


def checker_row(path):
    try:
        onnx.checker.check_model(str(path), full_check=True)
        return ("onnx.checker", True, "")
    except Exception as e:  # noqa: BLE001 — any checker complaint is a failure to report
        return ("onnx.checker", False, str(e).splitlines()[0])


def agreement_rows(ptq, quantized, model_dir, specs, out_dir):
    """1-step rows (one per output) between onnxruntime and `ptq run` on eval.txt, as check_quantize."""
    try:
        feeds_ = load_feeds(model_dir, specs)
        quant_session = session(quantized)
        names = [o.name for o in quant_session.get_outputs()]
        ort_outputs = [quant_session.run(names, f) for f in feeds_]
        nudged = [{k: np.nextafter(v, np.inf).astype(v.dtype) if v.dtype.kind == "f" else v for k, v in f.items()}
                  for f in feeds_]
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        kernels = ort.InferenceSession(str(quantized), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 — onnxruntime refusing the model is a failed row
        return [("runs in onnxruntime", False, f"{type(e).__name__}: {str(e).splitlines()[0]}")]
    rows = [("runs in onnxruntime", True, f"{len(feeds_)} samples")]
    try:
        ptq_outputs = run_ptq(ptq, quantized, model_dir / "eval.txt", specs, out_dir)
    except subprocess.CalledProcessError as e:
        return rows + [("ptq run", False, (e.stderr or "").strip().splitlines()[-1:])]
    scales = output_scales(onnx.load(str(quantized)))
    for k, name in enumerate(names):
        a = np.concatenate([o[k].ravel() for o in ort_outputs])
        b = np.concatenate([r[name].ravel() for r in ptq_outputs])
        if a.size != b.size:
            rows.append((f"1-step {name}", False, f"sizes differ (ort {a.size}, ptq {b.size})"))
            continue
        moved = np.concatenate([quant_session.run([name], f)[0].ravel() for f in nudged])
        fused = np.concatenate([kernels.run([name], f)[0].ravel() for f in feeds_])
        passed, detail = agree(a, b, scales.get(name), (moved, fused))
        rows.append((f"1-step {name}", passed, detail))
    return rows


# ---------------------------------------------------------------- 1. round trip


def round_trip(ptq, model_dir, config, tmp):
    specs = input_specs(model_dir)
    first = tmp / f"{model_dir.name}_{config}_q.onnx"
    ok, note = quantize(ptq, model_dir / "model.onnx", first, specs, "--input_list", model_dir / "calib.txt",
                        "--dump_encoding_json", *CONFIGS[config])
    if not ok:
        return [("round trip", False, f"quantize: {note}")]
    encodings = encoding_path(first)
    converted = tmp / f"{model_dir.name}_{config}_c.onnx"
    ok, note = ptq_cmd(ptq, "convert", "--input_network", model_dir / "model.onnx",
                       "--quantization_overrides", encodings, "--output_path", converted)
    if not ok:
        return [("round trip", False, f"convert: {note}")]
    final = tmp / f"{model_dir.name}_{config}_r.onnx"
    ok, note = quantize(ptq, converted, final, specs, "--enable_float_fallback")
    if not ok:
        return [("round trip", False, f"float fallback: {note}")]
    a, b = first.read_bytes(), final.read_bytes()
    n = len(entries(json.loads(encodings.read_text())))
    if a == b:
        return [("round trip", True, f"byte-identical, {len(a)} bytes, {n} encodings")]
    at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return [("round trip", False, f"bytes differ: {len(a)} vs {len(b)}, first at offset {at}")]


# ---------------------------------------------------------------- 2. QAT


def ort_encodings(qdq):
    """{tensor: (scale f32, zero point, zero-point dtype)} of what onnxruntime quantized."""
    graph = qdq.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    readers = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    found = {}
    for n in graph.node:
        if n.op_type == "QuantizeLinear":
            name = n.input[0]
            # onnxruntime renames a graph output's producer to `<out>_QuantizeLinear_Input` and
            # has the DequantizeLinear write `<out>`: to ptq that is the tensor `<out>`.
            written = [o for dq in readers.get(n.output[0], []) if dq.op_type == "DequantizeLinear"
                       for o in dq.output if o in outputs]
            if written:
                name = written[0]
        elif n.op_type == "DequantizeLinear" and n.input[0] in consts and n.input[0].endswith("_quantized"):
            name = n.input[0][: -len("_quantized")]
        else:
            continue
        scale = consts[n.input[1]].astype(np.float32)
        if len(n.input) > 2 and n.input[2]:
            zp = consts[n.input[2]]
        else:  # no zero point: 0 in the quantized input's dtype
            zp = np.zeros((), dtype=consts[n.input[0]].dtype)
        found[name] = (scale.ravel(), zp.ravel().astype(np.int64), zp.dtype)
    return found


def expected_offset(zp, dtype):
    """The JSON offset of onnxruntime's zero point `zp` in `dtype` (the rule of the docstring)."""
    bits = np.iinfo(dtype).bits
    if bits == 32:
        return 0 if zp == 0 else None  # ptq's 32-bit grids are symmetric, offset 0
    return -(zp + 2 ** (bits - 1)) if np.iinfo(dtype).min < 0 else -zp


def qat(ptq, model_dir, tmp):
    work = tmp / f"qat_{model_dir.name}"
    work.mkdir()
    specs = input_specs(model_dir)
    # onnxruntime leaves temporary files in the current folder: keep them in the temporary one.
    with contextlib.chdir(work):
        src, opset = float_model(model_dir, work)
        calib = feeds(read_list(model_dir / "calib.txt", list(specs))[:N_CALIB], specs)
        qdq_path = work / "ort_qdq.onnx"
        quantize_static(str(src), str(qdq_path), Reader(calib), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        per_channel=False, calibrate_method=CalibrationMethod.MinMax)
    given = ort_encodings(onnx.load(str(qdq_path)))
    ours = work / "ptq.onnx"
    ok, note = quantize(ptq, qdq_path, ours, specs, "--input_list", model_dir / "calib.txt", "--dump_encoding_json")
    if not ok:
        return [("quantize", False, note)]
    got = entries(json.loads(encoding_path(ours).read_text()))
    bad, missing = [], []
    for name, (scale, zp, dtype) in sorted(given.items()):
        e = got.get(name)
        bits = np.iinfo(dtype).bits
        if e is None:
            missing.append(name)
        elif e.get("dtype") != "INT" or e.get("bw") != bits:
            bad.append(f"{name}: {e.get('dtype')} bw {e.get('bw')}, onnxruntime {dtype.name}")
        elif list(np.float32(e["scale"])) != list(scale):
            bad.append(f"{name}: scale {e['scale']} vs onnxruntime {scale.tolist()}")
        elif list(e["offset"]) != [expected_offset(int(z), dtype) for z in zp]:
            bad.append(f"{name}: offset {e['offset']} (is_sym {e.get('is_sym')}) vs zero point {zp.tolist()} {dtype.name}")
    kinds = {}
    for _, _, dtype in given.values():
        kinds[dtype.name] = kinds.get(dtype.name, 0) + 1
    mix = ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))
    detail = (f"{len(given) - len(bad) - len(missing)}/{len(given)} exact ({mix}; opset {opset}"
              f"{f'→{MIN_OPSET}' if opset < MIN_OPSET else ''})")
    if missing:
        detail += f"; {len(missing)} not in ptq's JSON: {', '.join(missing[:4])}{', …' if len(missing) > 4 else ''}"
    if bad:
        detail += f"; {len(bad)} differ, first: {bad[0]}"
    rows = [("onnxruntime encodings kept", not bad and not missing and bool(given), detail)]
    rows.append(checker_row(ours))
    rows += agreement_rows(ptq, ours, model_dir, specs, work / "run")
    rows.append(sqnr_row(model_dir, specs, qdq_path, ours))
    return rows


def sqnr_row(model_dir, specs, theirs, ours):
    """Keeping the numbers is not enough: the encodings must still mean what they meant. ptq's
    model may not be worse than onnxruntime's QDQ model (main output against the float model,
    eval.txt) by more than SQNR_SLACK_DB."""
    main = json.loads((model_dir / "float_reference.json").read_text())["main_output"]
    feeds_ = load_feeds(model_dir, specs)
    try:
        figures = []
        for path in (model_dir / "model.onnx", theirs, ours):
            s = session(path)
            figures.append([s.run([main], f)[0] for f in feeds_])
    except Exception as e:  # noqa: BLE001 — reported in the agreement rows already
        return (f"SQNR {main}", False, f"{type(e).__name__}")
    ort_db, ptq_db = sqnr(figures[0], figures[1]), sqnr(figures[0], figures[2])
    return (f"SQNR {main}", ptq_db >= ort_db - SQNR_SLACK_DB,
            f"ptq {ptq_db:.2f} dB, onnxruntime's QDQ model {ort_db:.2f} dB (vs float, eval.txt)")


# ---------------------------------------------------------------- 3. mixed


def producer_order(model_path):
    """{tensor: position of the node that writes it} (graph inputs first)."""
    graph = onnx.load(str(model_path)).graph
    order = {i.name: -1 for i in graph.input}
    for k, n in enumerate(graph.node):
        for o in n.output:
            order.setdefault(o, k)
    return order, {o.name for o in graph.output}, {i.name for i in graph.input}


def mixed(ptq, model_dir, tmp):
    work = tmp / f"mixed_{model_dir.name}"
    work.mkdir()
    specs = input_specs(model_dir)
    model = model_dir / "model.onnx"
    dump = work / "dump.onnx"
    ok, note = quantize(ptq, model, dump, specs, "--input_list", model_dir / "eval.txt", "--dump_encoding_json")
    if not ok:
        return [("dump", False, note)]
    doc = json.loads(encoding_path(dump).read_text())
    order, outputs, inputs = producer_order(model)
    acts = sorted((e for e in doc["activation_encodings"] if e["dtype"] == "INT"),
                  key=lambda e: (order.get(e["name"], 1 << 30), e["name"]))
    inner = [e for e in acts if e["name"] not in outputs and e["name"] not in inputs]
    if len(inner) < 4:
        return [("overrides", False, f"only {len(inner)} inner activations")]
    fp16, fp32, int16 = (inner[len(inner) * k // 4]["name"] for k in (1, 2, 3))
    special = {fp16, fp32, int16}
    kept = [e for e in acts if e["name"] not in special][::2]
    overrides = {
        "version": "1.0.0",
        "activation_encodings": [
            *kept,
            {"name": fp16, "dtype": "FLOAT", "enc_type": "PER_TENSOR", "bw": 16},
            {"name": fp32, "dtype": "FLOAT", "enc_type": "PER_TENSOR", "bw": 32},
            {"name": int16, "dtype": "INT", "enc_type": "PER_TENSOR", "is_sym": False, "bw": 16},
        ],
        "param_encodings": [],
    }
    over_path = work / "overrides.json"
    over_path.write_text(json.dumps(overrides, indent=1))
    ours = work / "mixed.onnx"
    ok, note = quantize(ptq, model, ours, specs, "--input_list", model_dir / "calib.txt",
                        "--quantization_overrides", over_path, "--dump_encoding_json")
    if not ok:
        return [("quantize", False, note)]
    got = entries(json.loads(encoding_path(ours).read_text()))
    graph = onnx.load(str(ours)).graph
    rows = []

    bad = []
    for e in kept:
        g = got.get(e["name"])
        if g is None:
            bad.append(f"{e['name']}: not in the JSON")
        elif (g["dtype"], g["bw"], list(np.float32(g["scale"])), list(g["offset"])) != \
                (e["dtype"], e["bw"], list(np.float32(e["scale"])), list(e["offset"])):
            bad.append(f"{e['name']}: {g['dtype']} bw {g['bw']} {g.get('scale')} {g.get('offset')}, "
                       f"given {e['bw']} {e['scale']} {e['offset']}")
    rows.append(("(a) given int encodings kept", not bad,
                 f"{len(kept) - len(bad)}/{len(kept)} exact" + (f"; first: {bad[0]}" if bad else "")))

    casts = [n for n in graph.node if n.op_type == "Cast" and n.name == f"{fp16}_ptq_fp16_cast"]
    e16 = got.get(fp16, {})
    rows.append(("(b) FLOAT 16", bool(casts) and e16.get("dtype") == "FLOAT",
                 f"{fp16}: {len(casts)} `{fp16}_ptq_fp16_cast` node(s), JSON {e16.get('dtype')} bw {e16.get('bw')}"))
    readers = [n.name or n.op_type for n in graph.node if n.op_type == "QuantizeLinear" and fp32 in n.input]
    e32 = got.get(fp32, {})
    rows.append(("(b) FLOAT 32", not readers and e32.get("dtype") == "FLOAT",
                 f"{fp32}: {len(readers)} QuantizeLinear reading it, JSON {e32.get('dtype')} bw {e32.get('bw')}"))
    ei = got.get(int16, {})
    rows.append(("(c) INT 16 bitwidth only", ei.get("dtype") == "INT" and ei.get("bw") == 16 and bool(ei.get("scale")),
                 f"{int16}: JSON {ei.get('dtype')} bw {ei.get('bw')} scale {ei.get('scale')} offset {ei.get('offset')}"))
    rows.append(checker_row(ours))
    return rows + agreement_rows(ptq, ours, model_dir, specs, work / "run")


# ---------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ptq", type=Path, default=REPO / "target" / "release" / "ptq", help="the ptq binary")
    parser.add_argument("--models", type=Path, default=MODELS, help="the shared model zoo")
    parser.add_argument("--parts", default="1,2,3", help="which parts to run (comma-separated)")
    parser.add_argument("names", nargs="*", help="only these models")
    args = parser.parse_args()
    ort.set_default_logger_severity(3)
    ptq = args.ptq.resolve()
    root = args.models.resolve()
    dirs = [root / n for n in args.names] if args.names else model_dirs(root)
    names = {d.name for d in dirs}
    parts = set(args.parts.split(","))

    jobs = []
    if "1" in parts:
        jobs += [(d, c, round_trip) for d in dirs for c in ROUND_TRIP_CONFIGS]
    if "2" in parts:
        jobs += [(root / n, "qat", qat) for n in QAT_MODELS if n in names]
    if "3" in parts:
        jobs += [(root / n, "mixed", mixed) for n in MIXED_MODELS if n in names]

    table = []
    with tempfile.TemporaryDirectory(prefix="ptq-check-given-") as tmp:
        for model_dir, config, fn in jobs:
            print(f"checking {model_dir.name} {config} ...", file=sys.stderr, flush=True)
            try:
                if fn is round_trip:
                    rows = fn(ptq, model_dir, config, Path(tmp))
                else:
                    rows = fn(ptq, model_dir, Path(tmp))
            except Exception as e:  # an onnxruntime or file failure is a failed row
                rows = [("-", False, f"{type(e).__name__}: {e}")]
            for what, ok, detail in rows:
                table.append((model_dir.name, config, what, "pass" if ok else "FAIL", str(detail)))

    header = ("model", "config", "check", "result", "detail")
    widths = [max(len(r[k]) for r in [header, *table]) for k in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *table]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    passed = sum(r[3] == "pass" for r in table)
    failed = len(table) - passed
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
