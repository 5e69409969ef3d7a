//! Builders for small hand-made models, and readers of the results (shared by the test files).
#![allow(dead_code)]

use ptq_ir::{DataType, Graph, int_attribute};
use ptq_onnx::build::{self, FLOAT, f32_tensor, node, raw_tensor, tensor_value, with_attributes};
use ptq_onnx::proto::{ModelProto, NodeProto, TensorProto, ValueInfoProto};

// ---- building models -------------------------------------------------------------------------

pub fn u8s(name: &str, dims: &[i64], v: &[u8]) -> TensorProto {
    raw_tensor(name, DataType::Uint8.to_onnx(), dims, v.to_vec())
}

pub fn u16s(name: &str, dims: &[i64], v: &[u16]) -> TensorProto {
    raw_tensor(name, DataType::Uint16.to_onnx(), dims, v.iter().flat_map(|x| x.to_le_bytes()).collect())
}

pub fn i8s(name: &str, dims: &[i64], v: &[i8]) -> TensorProto {
    raw_tensor(name, DataType::Int8.to_onnx(), dims, v.iter().map(|&x| x as u8).collect())
}

pub fn i32s(name: &str, dims: &[i64], v: &[i32]) -> TensorProto {
    raw_tensor(name, DataType::Int32.to_onnx(), dims, v.iter().flat_map(|x| x.to_le_bytes()).collect())
}

/// int4 values packed two per byte, the first in the low nibble.
pub fn i4s(name: &str, dims: &[i64], v: &[i8]) -> TensorProto {
    let bytes =
        v.chunks(2).map(|p| (p[0] as u8 & 0x0f) | ((p.get(1).copied().unwrap_or(0) as u8 & 0x0f) << 4));
    raw_tensor(name, DataType::Int4.to_onnx(), dims, bytes.collect())
}

/// A QuantizeLinear node without attributes.
pub fn q(name: &str, inputs: &[&str], output: &str) -> NodeProto {
    node("QuantizeLinear", name, inputs, &[output])
}

/// A DequantizeLinear node, with an `axis` attribute when one is given.
pub fn dq(name: &str, inputs: &[&str], output: &str, axis: Option<i64>) -> NodeProto {
    with_attributes(node("DequantizeLinear", name, inputs, &[output]), axis.map(|a| int_attribute("axis", a)))
}

/// A Cast node to `to`.
pub fn cast(name: &str, input: &str, output: &str, to: DataType) -> NodeProto {
    with_attributes(node("Cast", name, &[input], &[output]), [int_attribute("to", to.to_onnx() as i64)])
}

/// [`build::model`] with the graph outputs given by name, each declared a FLOAT scalar.
pub fn model(
    opset: i64,
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: &[&str],
    initializers: Vec<TensorProto>,
) -> ModelProto {
    let outputs = outputs.iter().map(|o| tensor_value(o, FLOAT, &[])).collect();
    build::model(opset, nodes, inputs, outputs, initializers)
}

/// `x` [2, 4] → QuantizeLinear `blocked_q` → DequantizeLinear `dq` → `y` at opset 21, both
/// blocked (axis 1, block size 2) with scale `s` and the uint8 zero point `zero_point`, [2, 2].
pub fn blocked_pair(zero_point: &str) -> ModelProto {
    let blocked = || [int_attribute("axis", 1), int_attribute("block_size", 2)];
    model(
        21,
        vec![
            with_attributes(q("blocked_q", &["x", "s", zero_point], "xq"), blocked()),
            with_attributes(dq("dq", &["xq", "s", zero_point], "y", None), blocked()),
        ],
        vec![tensor_value("x", FLOAT, &[2, 4])],
        &["y"],
        vec![f32_tensor("s", &[2, 2], &[0.1, 0.2, 0.3, 0.4]), u8s(zero_point, &[2, 2], &[0, 0, 0, 0])],
    )
}

// ---- reading the result ----------------------------------------------------------------------

pub fn ops(g: &Graph) -> Vec<String> {
    g.nodes().map(|n| n.op_type.clone()).collect()
}

pub fn initializers(m: &ModelProto) -> Vec<String> {
    let mut names: Vec<String> =
        m.graph.as_ref().unwrap().initializer.iter().map(|t| t.name().to_owned()).collect();
    names.sort();
    names
}

pub fn floats(g: &Graph, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = g.constant(name).unwrap();
    assert_eq!(t.dtype, DataType::Float, "{name}");
    (t.shape.clone(), t.to_f32().unwrap())
}
