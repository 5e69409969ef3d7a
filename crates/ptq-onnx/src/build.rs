//! Each builder fills the fields it names and leaves the rest at their defaults; a caller that
//! needs more (a node's domain, a model's producer) sets those fields on the result.
//!
//! ```
//! use ptq_onnx::build::{FLOAT, f32_tensor, model, node, tensor_value};
//! let m = model(
//!     13,
//!     vec![node("Add", "add", &["x", "b"], &["y"])],
//!     vec![tensor_value("x", FLOAT, &[1, 2])],
//!     vec![tensor_value("y", FLOAT, &[1, 2])],
//!     vec![f32_tensor("b", &[2], &[0.5, -1.0])],
//! );
//! assert_eq!((m.ir_version, m.graph.unwrap().node[0].op_type()), (Some(8), "Add"));
//! ```

use bytes::Bytes;

use crate::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto, attribute_proto::AttributeType, tensor_proto,
    tensor_shape_proto, type_proto,
};

/// The ONNX element type FLOAT (`TensorProto.DataType.FLOAT`, 1).
pub const FLOAT: i32 = tensor_proto::DataType::Float as i32;
/// The ONNX element type INT64 (7).
pub const INT64: i32 = tensor_proto::DataType::Int64 as i32;

/// A tensor type of element type `elem_type` (a `TensorProto.DataType` value) with the fixed
/// dimensions `dims`; `&[]` is a scalar.
pub fn tensor_type(elem_type: i32, dims: &[i64]) -> TypeProto {
    let dim = dims
        .iter()
        .map(|&d| tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
            ..Default::default()
        })
        .collect();
    typed(elem_type, dim)
}

fn typed(elem_type: i32, dim: Vec<tensor_shape_proto::Dimension>) -> TypeProto {
    TypeProto {
        value: Some(type_proto::Value::TensorType(type_proto::Tensor {
            elem_type: Some(elem_type),
            shape: Some(TensorShapeProto { dim }),
        })),
        ..Default::default()
    }
}

/// A graph input, output or value info `name` of type [`tensor_type`]`(elem_type, dims)`.
pub fn tensor_value(name: &str, elem_type: i32, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(tensor_type(elem_type, dims)),
        ..Default::default()
    }
}

/// A graph input, output or value info `name` whose dims are written as exporters write them:
/// digits are a `dim_value`, `""` is a dim with neither value nor name, anything else a
/// `dim_param` (a symbol like `batch`, or an expression like `floor(height/2 - 1/2) + 1`).
pub fn symbolic_value(name: &str, elem_type: i32, dims: &[&str]) -> ValueInfoProto {
    use tensor_shape_proto::dimension::Value;
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: match d.parse::<i64>() {
                Ok(v) => Some(Value::DimValue(v)),
                Err(_) if d.is_empty() => None,
                Err(_) => Some(Value::DimParam((*d).to_owned())),
            },
            ..Default::default()
        })
        .collect();
    ValueInfoProto { name: Some(name.into()), r#type: Some(typed(elem_type, dim)), ..Default::default() }
}

/// A graph input or output known by its name alone, without a type.
pub fn untyped_value(name: &str) -> ValueInfoProto {
    ValueInfoProto { name: Some(name.into()), ..Default::default() }
}

/// A node of the default domain, without attributes.
pub fn node(op_type: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        op_type: Some(op_type.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// An INTS attribute `name` holding `values`.
pub fn ints_attribute(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: values.to_vec(),
        ..Default::default()
    }
}

/// A FLOAT attribute `name` holding `value`.
pub fn float_attribute(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(value),
        ..Default::default()
    }
}

/// A little-endian INT64 initializer `name` of shape `dims`.
pub fn i64_tensor(name: &str, dims: &[i64], values: &[i64]) -> TensorProto {
    raw_tensor(name, INT64, dims, values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// `node` with `attributes` added after those it has.
pub fn with_attributes(
    mut node: NodeProto,
    attributes: impl IntoIterator<Item = AttributeProto>,
) -> NodeProto {
    node.attribute.extend(attributes);
    node
}

/// A `Constant` node `name` writing `output`, its `value` attribute holding `value` (whose own
/// name is kept as it is).
pub fn constant_node(name: &str, output: &str, value: TensorProto) -> NodeProto {
    let attribute = AttributeProto {
        name: Some("value".into()),
        r#type: Some(AttributeType::Tensor as i32),
        t: Some(value),
        ..Default::default()
    };
    with_attributes(node("Constant", name, &[], &[output]), [attribute])
}

/// A tensor of `data_type` (a `TensorProto.DataType` value) whose values are `bytes`, stored in
/// `raw_data` as ONNX lays them out (little-endian, sub-byte types packed).
pub fn raw_tensor(name: &str, data_type: i32, dims: &[i64], bytes: Vec<u8>) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        data_type: Some(data_type),
        dims: dims.to_vec(),
        raw_data: Some(Bytes::from(bytes)),
        ..Default::default()
    }
}

/// A FLOAT tensor with `values` in `raw_data` (little-endian), as most exporters write them.
pub fn f32_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    raw_tensor(name, FLOAT, dims, values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// A FLOAT tensor with `values` in the typed field `float_data` instead of `raw_data`: the
/// other way a model may hold them, which readers must take too.
pub fn f32_tensor_float_data(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        data_type: Some(FLOAT),
        dims: dims.to_vec(),
        float_data: values.to_vec(),
        ..Default::default()
    }
}

/// A FLOAT tensor of shape `dims` whose values are external data: `length` bytes at `offset`
/// of the file `location`, relative to the model's folder (the caller writes that file).
pub fn f32_external_tensor(
    name: &str,
    dims: &[i64],
    location: &str,
    offset: u64,
    length: u64,
) -> TensorProto {
    let kv = |k: &str, v: String| StringStringEntryProto { key: Some(k.into()), value: Some(v) };
    TensorProto {
        name: Some(name.into()),
        data_type: Some(FLOAT),
        dims: dims.to_vec(),
        data_location: Some(tensor_proto::DataLocation::External as i32),
        external_data: vec![
            kv("location", location.into()),
            kv("offset", offset.to_string()),
            kv("length", length.to_string()),
        ],
        ..Default::default()
    }
}

/// An opset import: `version` of the operator set `domain` (`""` for the default ONNX domain).
pub fn opset(domain: &str, version: i64) -> OperatorSetIdProto {
    OperatorSetIdProto { domain: Some(domain.into()), version: Some(version) }
}

/// The IR version [`model`] declares for a default-domain `opset`: 8 (ONNX 1.10 to 1.13) below
/// opset 21, 10 (ONNX 1.16, the first with int4 and uint4) from opset 21 on.
pub fn ir_version(opset: i64) -> i64 {
    if opset >= 21 { 10 } else { 8 }
}

/// A graph named `g`.
pub fn graph(
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    initializers: Vec<TensorProto>,
) -> GraphProto {
    GraphProto {
        name: Some("g".into()),
        node: nodes,
        initializer: initializers,
        input: inputs,
        output: outputs,
        ..Default::default()
    }
}

/// A model of [`graph`]`(nodes, inputs, outputs, initializers)` importing the default domain at
/// `opset`, at [`ir_version`]`(opset)`. Other domains go in `opset_import` afterwards.
pub fn model(
    opset: i64,
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    initializers: Vec<TensorProto>,
) -> ModelProto {
    ModelProto {
        ir_version: Some(ir_version(opset)),
        opset_import: vec![self::opset("", opset)],
        graph: Some(graph(nodes, inputs, outputs, initializers)),
        ..Default::default()
    }
}
