#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into corpus/<target>/ (run from anywhere).

Seeds are small valid inputs of each format, so that libFuzzer starts from deep inside the
parsers instead of guessing the syntax. The ONNX seeds need the `onnx` package (the CI venv of
tests/interop/requirements.txt has it); the other seeds need only the standard library.
"""
import json
import pathlib
import struct
import sys

HERE = pathlib.Path(__file__).resolve().parent


def write(target, name, data):
    folder = HERE / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def npy(shape, dtype, payload):
    """A version-1.0 .npy file: magic, header padded to 64 bytes, data."""
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        dtype, "".join(f"{d}," for d in shape))
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload


def input_list_seeds():
    # Layout (fuzz_targets/input_list.rs): flags byte, list text, NUL, data file contents.
    floats = struct.pack("<8f", *range(8))
    cases = {
        "bare": (0, "d.npy d.raw\n", npy((4, 2), "<f4", floats)),
        "named": (0, "y:=d.raw x:=d.npy\n\nx:=d.npy y:=d.raw\n", npy((1, 2), "<f4", floats[:8])),
        "headers": (0, "#conv fc\r\n%out1 out2\r\nx:=d.npy y:=d.raw\r\n", npy((2, 2), "<f4", floats[:16])),
        "native": (1, "x:=d.npy y:=d.raw\n", npy((1, 2), "<f4", floats[:8])),
        "nonfinite": (2, "x:=d.npy y:=d.raw\n", npy((2, 2), "<f4", struct.pack("<4f", 1, float("nan"), 3, 4))),
        "int_npy": (0, "d.npy d.npy\n", npy((4,), "|u1", bytes([1, 2, 3, 4]))),
    }
    for name, (flags, text, data) in cases.items():
        write("input_list", name, bytes([flags]) + text.encode() + b"\0" + data)


def encodings_seeds():
    v061 = {
        "version": "0.6.1",
        "activation_encodings": {
            "input": [{"bitwidth": 8, "dtype": "int", "is_symmetric": "False", "min": -1.8039215686274508,
                       "max": 0.49607843137254903, "offset": -200, "scale": 0.009019607843137253}],
            "conv2_out": [{"bitwidth": 16, "dtype": "float"}],
        },
        "param_encodings": {
            "conv.weight": [
                {"bitwidth": 8, "dtype": "int", "is_symmetric": "True", "min": -12.8, "max": 12.7,
                 "offset": -128, "scale": 0.1},
                {"bitwidth": 8, "dtype": "int", "is_symmetric": "True", "min": -6.4, "max": 6.35,
                 "offset": -128.0, "scale": 0.05},
            ],
        },
        "quantizer_args": {"activation_bitwidth": 8, "dtype": "int", "is_symmetric": "True"},
    }
    v040 = {k: v for k, v in v061.items() if k in ("activation_encodings", "param_encodings")}
    bitwidth_only = {"activation_encodings": {"input": [{"bitwidth": 16}]}, "param_encodings": {}}
    v100 = {
        "version": "1.0.0",
        "activation_encodings": [
            {"name": "input", "dtype": "INT", "enc_type": "PER_TENSOR", "is_sym": False, "bw": 8,
             "scale": [0.009019607843137253], "offset": [-200]},
            {"name": "conv2_out", "dtype": "FLOAT", "enc_type": "PER_TENSOR", "bw": 16},
        ],
        "param_encodings": [
            {"name": "conv.weight", "dtype": "INT", "enc_type": "PER_CHANNEL", "is_sym": True, "bw": 8,
             "scale": [0.1, 0.05], "offset": [-128, -128]},
            {"name": "fc.weight", "dtype": "INT", "enc_type": "PER_BLOCK", "is_sym": True, "bw": 4,
             "block_size": 32, "scale": [0.01, 0.02, 0.03, 0.04], "offset": [-8, -8, -8, -8]},
        ],
        "quantizer_args": {"activation_bitwidth": 8, "per_channel_quantization": True},
        "excluded_layers": [],
    }
    v200 = {
        "version": "2.0.0",
        "encodings": [
            {"name": "input", "output_dtype": "uint8", "y_scale": 0.009019607843137253, "y_zero_point": 200},
            {"name": "conv.weight", "output_dtype": "int8", "y_scale": [0.1, 0.05], "axis": 0},
            {"name": "conv.bias", "output_dtype": "int32",
             "y_scale": [0.0009019607843137253, 0.00045098039215686267], "axis": 0},
            {"name": "fc.weight", "output_dtype": "int4", "axis": 1, "block_size": 32,
             "y_scale": [[0.01, 0.02], [0.03, 0.04]]},
        ],
        "quantizer_args": {},
    }
    for name, doc in [("v0.6.1", v061), ("v0.4.0", v040), ("bitwidth_only", bitwidth_only),
                      ("v1.0.0", v100), ("v2.0.0", v200)]:
        write("encodings_json", name + ".json", json.dumps(doc, indent=1))


def onnx_seeds():
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    import numpy as np

    def save(name, nodes, inputs, outputs, inits, opset=13):
        graph = helper.make_graph(nodes, name, inputs, outputs, inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        write("onnx_graph", name + ".onnx", model.SerializeToString())

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = numpy_helper.from_array(np.arange(18, dtype=np.float32).reshape(2, 1, 3, 3), "w")
    b = helper.make_tensor("b", TensorProto.FLOAT, [2], [0.5, -0.5])  # typed float_data
    save("conv_relu", [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
                       helper.make_node("Relu", ["c"], ["y"])], [x], [y], [w, b])

    # External data in w.bin, which the target writes beside the model (64 bytes).
    ext = TensorProto(name="e", data_type=TensorProto.FLOAT, dims=[4, 4])
    ext.data_location = TensorProto.EXTERNAL
    for k, v in [("location", "w.bin"), ("offset", "0"), ("length", "64")]:
        ext.external_data.add(key=k, value=v)
    m = helper.make_tensor_value_info("m", TensorProto.FLOAT, [4, 4])
    save("external_matmul", [helper.make_node("MatMul", ["m", "e"], ["y"])], [m], [y], [ext])

    # A Constant node, int64 values, a subgraph (If) and a Gemm.
    k = helper.make_node("Constant", [], ["k"], value=helper.make_tensor("kv", TensorProto.INT64, [2], [1, 4]))
    cond = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
    branch = lambda out, v: helper.make_graph(
        [helper.make_node("Constant", [], [out], value_float=v)], "branch", [],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [])])
    g = numpy_helper.from_array(np.ones((4, 3), dtype=np.float32), "g")
    v = helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, 2, 2])
    save("reshape_if_gemm", [
        k,
        helper.make_node("Reshape", ["v", "k"], ["r"]),
        helper.make_node("If", ["cond"], ["s"], then_branch=branch("t", 1.0), else_branch=branch("f", 2.0)),
        helper.make_node("Gemm", ["r", "g"], ["q"]),
        helper.make_node("Mul", ["q", "s"], ["y"]),
    ], [v], [y], [cond, g])


if __name__ == "__main__":
    input_list_seeds()
    encodings_seeds()
    if "--no-onnx" not in sys.argv[1:]:
        onnx_seeds()
