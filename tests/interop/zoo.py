"""The shared access to the model zoo for the interop checks and benchmarks.

The zoo is <repo>/../shared/models: one folder per model, complete when it holds a READY file,
with model.onnx, float_reference.json ("fed_shapes": the shape each input is fed at) and the
qnn-net-run input lists calib.txt and eval.txt. The scripts of tests/interop import this module
directly; those of bench/ put tests/interop on sys.path first.
"""
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO.parent / "shared" / "models"


def model_dirs(root):
    """The complete model folders (those with a READY file), by name."""
    return sorted(d for d in root.iterdir() if (d / "READY").is_file())


def input_specs(model_dir):
    """{input name: (numpy dtype, fed shape, declared shape is not fully fixed)}."""
    fed = json.loads((model_dir / "float_reference.json").read_text())["fed_shapes"]
    graph = onnx.load(str(model_dir / "model.onnx"), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    specs = {}
    for inp in graph.input:
        if inp.name in initializers:
            continue
        t = inp.type.tensor_type
        symbolic = not t.HasField("shape") or any(
            not d.HasField("dim_value") or d.dim_value <= 0 for d in t.shape.dim
        )
        specs[inp.name] = (onnx.helper.tensor_dtype_to_np_dtype(t.elem_type), fed[inp.name], symbolic)
    return specs


def dims_args(specs):
    """The `--input_dimensions name=d0,d1,...` arguments for every input with symbolic dims."""
    args = []
    for name, (_, shape, symbolic) in specs.items():
        if symbolic:
            args += ["--input_dimensions", f"{name}={','.join(map(str, shape))}"]
    return args


def read_list(list_path, names):
    """The samples of a qnn-net-run input list: one {input name: Path} per line."""
    samples = []
    for line in list_path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#%":  # blank, or a `#node` / `%tensor` output choice
            continue
        tokens = line.split()
        if len(names) == 1 and len(tokens) == 1 and ":=" not in tokens[0]:
            pairs = {names[0]: tokens[0]}
        else:
            pairs = dict(t.split(":=", 1) for t in tokens)
        samples.append({k: list_path.parent / v for k, v in pairs.items()})
    return samples


def load_input(path, dtype, shape):
    """.npy as stored; .raw as float32 of the fed shape, cast to the input's dtype."""
    if path.suffix == ".npy":
        return np.load(path)
    return np.fromfile(path, dtype="<f4").reshape(shape).astype(dtype)


def load_feeds(model_dir, specs, list_name="eval.txt"):
    """The samples of the model's input list `list_name` as onnxruntime feeds, in list order."""
    return [
        {name: load_input(p, specs[name][0], specs[name][1]) for name, p in sample.items()}
        for sample in read_list(model_dir / list_name, list(specs))
    ]


def session(path):
    """An onnxruntime CPU session: graph optimisations disabled, 1 intra-op thread."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_outputs(result_dir):
    """What `ptq run` wrote in one Result_N folder: {tensor name: float32 values} (outputs.json
    maps each file to its tensor)."""
    files = json.loads((result_dir / "outputs.json").read_text())
    return {name: np.fromfile(result_dir / f, dtype="<f4") for f, name in files.items()}
