#!/usr/bin/env python3
"""Interop check: ptq's opset conversion (`ptq_ir::upgrade_opset`) against onnxruntime.

For every folder of <repo>/../shared/models that holds a READY file, convert model.onnx to opset
13 (when it is below) and to opset 21 with the `upgrade_opset` example binary, run
`onnx.checker.check_model` (full check) on the result, check its opset and IR version, and compare
onnxruntime's outputs (CPU, graph optimisations disabled) before and after on the first 8 samples
of eval.txt:

    max|after - before| / max|before| <= 1e-6      (exact equality is expected)

The same is done for small hand-built models at old opsets, one per rewrite ptq knows (Squeeze
axes, Reduce* axes, Split, Softmax axis semantics, Clip/Pad attributes, Upsample, Resize-10,
tf_half_pixel_for_nn, Slice/TopK/Dropout attributes, Scatter, Split num_outputs), each fed random
inputs.

Prints one row per (model, target) and ends with the line `N passed, M failed`; exits non-zero on
any failure or when fewer than 5 shared models were found.

Build the binary first:
    CARGO_TARGET_DIR=/tmp/target-opset cargo build --release -p ptq-ir --example upgrade_opset
Usage: check_opset.py --bin /tmp/target-opset/release/examples/upgrade_opset [--models DIR]
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from zoo import MODELS, input_specs, load_input, model_dirs, read_list, session

REL_TOL = 1e-6
SAMPLES = 8
MIN_MODELS = 5


def default_opset(model):
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def shared_feeds(model_dir):
    """The first SAMPLES feeds of eval.txt ({input name: array})."""
    specs = input_specs(model_dir)
    return [
        {name: load_input(p, specs[name][0], specs[name][1]) for name, p in sample.items()}
        for sample in read_list(model_dir / "eval.txt", list(specs))[:SAMPLES]
    ]


def compare(before_path, after_path, feeds):
    """The largest max|after - before| / max|before| over outputs and samples."""
    a, b = session(before_path), session(after_path)
    names = [o.name for o in a.get_outputs()]
    assert names == [o.name for o in b.get_outputs()], "the outputs changed"
    worst, exact = 0.0, True
    for feed in feeds:
        for name, x, y in zip(names, a.run(names, feed), b.run(names, feed)):
            x, y = np.asarray(x), np.asarray(y)
            assert x.shape == y.shape and x.dtype == y.dtype, f"{name}: {x.shape}/{x.dtype} vs {y.shape}/{y.dtype}"
            if x.dtype == bool or not np.issubdtype(x.dtype, np.number):
                diff = float(np.any(x != y))
                scale = 1.0
            else:
                diff = float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)), initial=0.0))
                scale = float(np.max(np.abs(x.astype(np.float64)), initial=0.0))
            exact &= bool(np.array_equal(x, y))
            worst = max(worst, diff / scale if scale > 0 else diff)
    return worst, exact


def convert(binary, src, dst, target):
    proc = subprocess.run([str(binary), str(src), str(dst), str(target)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip())


def check_case(binary, name, src, feeds, target, tmp):
    """One row: converts `src` to `target`, checks and compares it. Returns (row, ok)."""
    before = onnx.load(str(src), load_external_data=False)
    start = default_opset(before)
    dst = tmp / f"{name}_opset{target}.onnx"
    row = {"model": name, "conv": f"{start} -> {target}", "nodes": "", "checker": "", "diff": "", "result": "FAIL"}
    try:
        convert(binary, src, dst, target)
        after = onnx.load(str(dst), load_external_data=False)
        row["nodes"] = f"{len(before.graph.node)} -> {len(after.graph.node)}"
        assert default_opset(after) == target, f"opset is {default_opset(after)}"
        if target >= 21:
            assert after.ir_version >= 10, f"IR version {after.ir_version}"
        onnx.checker.check_model(str(dst), full_check=True)
        row["checker"] = "ok"
        worst, exact = compare(src, dst, feeds)
        row["diff"] = "exact" if exact else f"{worst:.2e}"
        if worst <= REL_TOL:
            row["result"] = "ok"
    except Exception as e:  # noqa: BLE001 - every failure becomes a row
        row["checker"] = row["checker"] or "-"
        row["result"] = f"FAIL: {str(e).splitlines()[0][:160]}"
    return row, row["result"] == "ok"


# ---- hand-built models at old opsets, one per rewrite ----

def f32(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def const(name, values, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def build(nodes, inputs, outputs, opset, initializers=(), ir=None):
    """A model; outputs given as bare names get the type onnx's shape inference finds for them."""
    declared = [o for o in outputs if not isinstance(o, str)]
    graph = helper.make_graph(nodes, "g", inputs, declared, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir or {7: 3, 9: 4, 10: 5, 11: 6, 12: 7, 13: 7}.get(opset, 8)
    inferred = onnx.shape_inference.infer_shapes(model).graph
    types = {v.name: v for v in list(inferred.value_info) + list(inferred.output)}
    del model.graph.output[:]
    for o in outputs:
        model.graph.output.append(types[o] if isinstance(o, str) else o)
    return model


def synthetic_models():
    """[(name, model, {input: shape}, targets)]."""
    n = helper.make_node
    cases = []
    cases.append(("syn_squeeze_unsqueeze_11", build(
        [n("Unsqueeze", ["x"], ["u"], axes=[0, 3]), n("Squeeze", ["u"], ["s"], axes=[0]),
         n("Squeeze", ["u"], ["s_all"])],
        [f32("x", [2, 3])], ["s", "s_all"], 11), {"x": [2, 3]}, [13, 21]))
    cases.append(("syn_reduce_11", build(
        [n("ReduceSum", ["x"], ["sum"], axes=[1], keepdims=0), n("ReduceMean", ["x"], ["mean"], axes=[-1]),
         n("ReduceMax", ["x"], ["max"]), n("ReduceL2", ["x"], ["l2"], axes=[0, 2], keepdims=0),
         n("ReduceLogSumExp", ["x"], ["lse"], axes=[1])],
        [f32("x", [2, 3, 4])], ["sum", "mean", "max", "l2", "lse"], 11),
        {"x": [2, 3, 4]}, [13, 21]))
    cases.append(("syn_split_11", build(
        [n("Split", ["x"], ["a", "b"], axis=1, split=[1, 3]), n("Split", ["x"], ["c", "d"], axis=1)],
        [f32("x", [2, 4])], list("abcd"), 11), {"x": [2, 4]}, [13, 21]))
    cases.append(("syn_softmax_11", build(
        [n("Softmax", ["x"], ["sm1"], axis=1), n("LogSoftmax", ["x"], ["lsm"]),
         n("Hardmax", ["x"], ["hm0"], axis=0), n("Softmax", ["x"], ["sm_last"], axis=-1),
         n("Softmax", ["x"], ["sm2"], axis=2),
         # a Softmax whose rank the model does not declare (behind and before a Reshape)
         n("Reshape", ["y", "shape3"], ["r"]), n("Softmax", ["r"], ["sm_r"], axis=1),
         n("Reshape", ["sm_r", "shape2"], ["sm_dyn"])],
        [f32("x", [2, 3, 4]), f32("y", [2, 3, 2, 2])],
        ["sm1", "lsm", "hm0", "sm_last", "sm2", f32("sm_dyn", [2, 12])], 11,
        [const("shape3", [2, 3, 4], np.int64), const("shape2", [2, 12], np.int64)]),
        {"x": [2, 3, 4], "y": [2, 3, 2, 2]}, [13, 21]))
    cases.append(("syn_clip_pad_10", build(
        [n("Clip", ["x"], ["c1"], min=-0.5, max=0.5), n("Clip", ["x"], ["c2"], max=0.2),
         n("Clip", ["x"], ["c3"], min=-0.1), n("Pad", ["x"], ["p1"], pads=[0, 1, 1, 0, 2, 0], value=1.5),
         n("Pad", ["x"], ["p2"], pads=[0, 0, 1, 0, 0, 1], mode="reflect"), n("Pad", ["x"], ["p3"], pads=[1, 0, 0, 0, 0, 1])],
        [f32("x", [2, 3, 4])], ["c1", "c2", "c3", "p1", "p2", "p3"], 10),
        {"x": [2, 3, 4]}, [13, 21]))
    cases.append(("syn_upsample_9", build(
        [n("Upsample", ["x", "scales"], ["near"]), n("Upsample", ["x", "scales"], ["lin"], mode="linear")],
        [f32("x", [1, 2, 3, 4])], ["near", "lin"], 9,
        [const("scales", [1, 1, 2, 3])]), {"x": [1, 2, 3, 4]}, [13, 21]))
    cases.append(("syn_upsample_7", build(
        [n("Upsample", ["x"], ["near"], scales=[1.0, 1.0, 2.0, 2.0]),
         n("Upsample", ["x"], ["lin"], scales=[1.0, 1.0, 3.0, 2.0], mode="linear")],
        [f32("x", [1, 2, 3, 4])], ["near", "lin"], 7), {"x": [1, 2, 3, 4]}, [13, 21]))
    cases.append(("syn_resize_10", build(
        [n("Resize", ["x", "up"], ["near_up"]), n("Resize", ["x", "down"], ["near_down"]),
         n("Resize", ["x", "up"], ["lin_up"], mode="linear"), n("Resize", ["x", "down"], ["lin_down"], mode="linear"),
         n("Resize", ["x", "odd"], ["near_odd"])],
        [f32("x", [1, 2, 6, 8])], ["near_up", "near_down", "lin_up", "lin_down", "near_odd"],
        10, [const("up", [1, 1, 2, 1.5]), const("down", [1, 1, 0.5, 0.75]), const("odd", [1, 1, 0.6, 0.7])]),
        {"x": [1, 2, 6, 8]}, [11, 13, 21]))
    cases.append(("syn_resize_tfnn_12", build(
        [n("Resize", ["x", "roi", "s_up"], ["floor_up"], coordinate_transformation_mode="tf_half_pixel_for_nn",
           nearest_mode="floor"),
         n("Resize", ["x", "roi", "s_dn"], ["floor_dn"], coordinate_transformation_mode="tf_half_pixel_for_nn",
           nearest_mode="floor"),
         n("Resize", ["x", "roi", "s_up"], ["rpf_up"], coordinate_transformation_mode="tf_half_pixel_for_nn"),
         n("Resize", ["x", "roi", "s_dn"], ["rpf_dn"], coordinate_transformation_mode="tf_half_pixel_for_nn")],
        [f32("x", [1, 1, 5, 7])], ["floor_up", "floor_dn", "rpf_up", "rpf_dn"], 12,
        [const("roi", []), const("s_up", [1, 1, 1.5, 2.5]), const("s_dn", [1, 1, 0.6, 0.43])]),
        {"x": [1, 1, 5, 7]}, [13, 21]))
    cases.append(("syn_slice_topk_dropout_9", build(
        [n("Slice", ["x"], ["sl"], starts=[1, 0], ends=[3, -1], axes=[0, 2]), n("Slice", ["x"], ["sl2"], starts=[0, 1],
           ends=[1, 3]),
         n("TopK", ["x"], ["tv", "ti"], k=2, axis=1), n("Dropout", ["x"], ["dr", "mask"], ratio=0.3)],
        [f32("x", [4, 3, 5])], ["sl", "sl2", "tv", "ti", "dr"], 9),
        {"x": [4, 3, 5]}, [13, 21]))
    cases.append(("syn_scatter_9", build(
        [n("Scatter", ["x", "idx", "upd"], ["y"], axis=1)],
        [f32("x", [3, 4])], ["y"], 9,
        [const("idx", [[1, 0], [3, 2], [0, 1]], np.int64), const("upd", [[9, 8], [7, 6], [5, 4]])]),
        {"x": [3, 4]}, [13, 21]))
    cases.append(("syn_split_reduce_13", build(
        [n("Split", ["x"], ["a", "b"], axis=1), n("ReduceMax", ["x"], ["m"], axes=[1], keepdims=1),
         n("ReduceProd", ["x"], ["p"], axes=[0])],
        [f32("x", [2, 4])], list("abmp"), 13), {"x": [2, 4]}, [18, 21]))
    return cases


def print_table(rows):
    cols = ["model", "conv", "nodes", "checker", "diff", "result"]
    heads = {"model": "model", "conv": "opset", "nodes": "nodes", "checker": "checker", "diff": "max rel diff",
             "result": "result"}
    widths = {c: max(len(heads[c]), *(len(r[c]) for r in rows)) for c in cols}
    print("  ".join(heads[c].ljust(widths[c]) for c in cols))
    print("  ".join("-" * widths[c] for c in cols))
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) for c in cols))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, type=Path, help="the upgrade_opset example binary")
    ap.add_argument("--models", type=Path, default=MODELS)
    args = ap.parse_args()
    rows, passed, failed = [], 0, 0
    dirs = model_dirs(args.models)
    with tempfile.TemporaryDirectory(prefix="ptq-opset-") as tmp:
        tmp = Path(tmp)
        for d in dirs:
            src = d / "model.onnx"
            model = onnx.load(str(src), load_external_data=False)
            feeds = shared_feeds(d)
            start = default_opset(model)
            for target in [t for t in (13, 21) if t > start]:
                row, ok = check_case(args.bin, d.name, src, feeds, target, tmp)
                rows.append(row)
                passed, failed = passed + ok, failed + (not ok)
        rng = np.random.default_rng(0)
        for name, model, shapes, targets in synthetic_models():
            src = tmp / f"{name}.onnx"
            onnx.save(model, str(src))
            feeds = [{k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()} for _ in range(3)]
            for target in targets:
                row, ok = check_case(args.bin, name, src, feeds, target, tmp)
                rows.append(row)
                passed, failed = passed + ok, failed + (not ok)
    print_table(rows)
    if len(dirs) < MIN_MODELS:
        print(f"only {len(dirs)} shared models found in {args.models} (expected {MIN_MODELS})")
        failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
