//! Reading and writing node attributes (the INT ones every rewrite needs).

use ptq_onnx::proto::{AttributeProto, NodeProto, attribute_proto::AttributeType};

/// An INT attribute `name = value`.
pub fn int_attribute(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(value),
        ..Default::default()
    }
}

/// The INT attribute `name` of `node`, when it has one.
pub fn get_int(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name() == name).map(|a| a.i())
}
