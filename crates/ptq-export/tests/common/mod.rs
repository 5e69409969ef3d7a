//! Builders for small hand-made models, and readers of the results (shared by the test files).
#![allow(dead_code)]

use bytes::Bytes;
use ptq_ir::{DataType, Graph};
use ptq_onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto, attribute_proto::AttributeType, tensor_shape_proto, type_proto,
};

// ---- building models -------------------------------------------------------------------------

pub fn value(name: &str, shape: &[i64]) -> ValueInfoProto {
    let dim = shape
        .iter()
        .map(|&d| tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float.to_onnx()),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

pub fn node(name: &str, op: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        name: Some(name.into()),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attrs,
        ..Default::default()
    }
}

pub fn raw(name: &str, dtype: DataType, dims: &[i64], bytes: Vec<u8>) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        data_type: Some(dtype.to_onnx()),
        dims: dims.to_vec(),
        raw_data: Some(Bytes::from(bytes)),
        ..Default::default()
    }
}

pub fn f32s(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    raw(name, DataType::Float, dims, v.iter().flat_map(|x| x.to_le_bytes()).collect())
}

pub fn u8s(name: &str, dims: &[i64], v: &[u8]) -> TensorProto {
    raw(name, DataType::Uint8, dims, v.to_vec())
}

pub fn u16s(name: &str, dims: &[i64], v: &[u16]) -> TensorProto {
    raw(name, DataType::Uint16, dims, v.iter().flat_map(|x| x.to_le_bytes()).collect())
}

pub fn i8s(name: &str, dims: &[i64], v: &[i8]) -> TensorProto {
    raw(name, DataType::Int8, dims, v.iter().map(|&x| x as u8).collect())
}

pub fn i32s(name: &str, dims: &[i64], v: &[i32]) -> TensorProto {
    raw(name, DataType::Int32, dims, v.iter().flat_map(|x| x.to_le_bytes()).collect())
}

/// int4 values packed two per byte, the first in the low nibble.
pub fn i4s(name: &str, dims: &[i64], v: &[i8]) -> TensorProto {
    let bytes =
        v.chunks(2).map(|p| (p[0] as u8 & 0x0f) | ((p.get(1).copied().unwrap_or(0) as u8 & 0x0f) << 4));
    raw(name, DataType::Int4, dims, bytes.collect())
}

pub fn model(
    inputs: Vec<ValueInfoProto>,
    outputs: &[&str],
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    opset: i64,
) -> ModelProto {
    ModelProto {
        ir_version: Some(if opset >= 21 { 10 } else { 8 }),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(opset) }],
        graph: Some(GraphProto {
            name: Some("g".into()),
            node: nodes,
            initializer: initializers,
            input: inputs,
            output: outputs.iter().map(|o| value(o, &[])).collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
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
