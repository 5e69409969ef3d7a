//! The QDQ ONNX model (DESIGN.md Decisions 3, 4, 8).

use ptq_ir::{DataType, Graph, Patch, Source, int_attribute};
use ptq_onnx::proto::{ModelProto, NodeProto};
use ptq_quant::{Encoding, Kind};

use crate::values::{float_constant, int_tensor, quantized, scale_and_zero_point};
use crate::{Encodings, Error};

/// The opset a QDQ model with these bitwidths needs: 13 for per-axis DequantizeLinear, 21 for
/// 16-bit and 4-bit integers (Decision 3); never lower than the model's own.
pub fn required_opset(bitwidths: impl IntoIterator<Item = u8>, model_opset: i64) -> i64 {
    let wide = bitwidths.into_iter().any(|b| matches!(b, 4 | 16));
    model_opset.max(if wide { 21 } else { 13 })
}

pub(crate) fn node(name: &str, op: &str, inputs: &[&str], output: &str, axis: Option<usize>) -> NodeProto {
    NodeProto {
        name: Some(name.to_owned()),
        op_type: Some(op.to_owned()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_owned()],
        attribute: axis.map(|a| int_attribute("axis", a as i64)).into_iter().collect(),
        ..Default::default()
    }
}

/// Where to put nodes that compute `tensor`'s replacement: right after its producer, or first.
pub(crate) fn after_producer(graph: &Graph, tensor: &str) -> Option<usize> {
    match graph.tensor(tensor).map(|t| t.source) {
        Some(Source::Node(i)) => Some(i),
        _ => None,
    }
}

/// Removes a constant's definition (initializer or `Constant` node) so a new node can write it.
pub(crate) fn remove_constant(graph: &Graph, patch: &mut Patch, tensor: &str) {
    match graph.tensor(tensor).map(|t| t.source) {
        Some(Source::ConstantNode(i)) => {
            patch.remove_node(i);
        }
        _ => {
            patch.remove_initializer(tensor);
        }
    }
}

/// `model` with every encoding of `encodings` written as QDQ; `graph` is its view, and the
/// model must already be at [`required_opset`].
pub fn qdq_model(model: &ModelProto, graph: &Graph, encodings: &Encodings) -> Result<ModelProto, Error> {
    let opset = graph.opsets.get("").or(graph.opsets.get("ai.onnx")).copied().unwrap_or(1);
    let needed = required_opset(encodings.tensors.values().map(|t| t.encoding.bitwidth), opset);
    if needed > opset {
        return Err(Error::Opset { have: opset, need: needed });
    }
    let mut patch = Patch::new();
    for (name, t) in &encodings.tensors {
        let e = &t.encoding;
        if t.kind == Kind::Param || graph.tensor(name).is_some_and(|i| i.is_constant()) {
            constant(graph, &mut patch, name, e)?;
        } else {
            activation(graph, &mut patch, name, e);
        }
    }
    for (name, f) in &encodings.floats {
        if f.bitwidth == 16 {
            float16(graph, &mut patch, name);
        }
    }
    if encodings.tensors.values().any(|t| matches!(t.encoding.bitwidth, 4 | 16)) && graph.ir_version < 10 {
        patch.set_ir_version(10);
    }
    Ok(patch.apply(model)?)
}

/// A float-16 tensor as DESIGN.md Decision 9's marked Cast pair, `T → Cast(FLOAT16) →
/// Cast(FLOAT)`: onnxruntime computes in f32 with f16 rounding, and ptq reads it back. Returns
/// the name T's readers now read.
pub(crate) fn float16(graph: &Graph, patch: &mut Patch, name: &str) -> String {
    let cast = |node: &str, input: &str, output: &str, to: DataType| NodeProto {
        name: Some(node.to_owned()),
        op_type: Some("Cast".into()),
        input: vec![input.to_owned()],
        output: vec![output.to_owned()],
        attribute: vec![int_attribute("to", i64::from(to.to_onnx()))],
        ..Default::default()
    };
    let half = format!("{name}_ptq_fp16");
    let at = after_producer(graph, name);
    let (source, result) = if graph.outputs.iter().any(|o| o == name) {
        // Graph outputs keep their names: the producer writes a new one, the last Cast the old.
        let float = format!("{name}_ptq_float");
        if let Some(p) = graph.producer(name) {
            let slot = p.outputs.iter().position(|o| o == name).unwrap_or(0);
            patch.set_output(p.index, slot, &float);
        }
        (float, name.to_owned())
    } else {
        let back = format!("{name}_ptq_fp32");
        patch.replace_uses(graph, name, &back);
        (name.to_owned(), back)
    };
    patch.insert_after(at, cast(&format!("{name}_ptq_fp16_cast"), &source, &half, DataType::Float16));
    patch.insert_after(at, cast(&format!("{name}_ptq_fp16_uncast"), &half, &result, DataType::Float));
    result
}

fn activation(graph: &Graph, patch: &mut Patch, name: &str, e: &Encoding) {
    let (scale, zp) = scale_and_zero_point(name, e, false);
    let (scale_name, zp_name) = (scale.name().to_owned(), zp.name().to_owned());
    patch.add_initializer(scale).add_initializer(zp);
    let q = format!("{name}_ptq_q");
    let at = after_producer(graph, name);
    if graph.outputs.iter().any(|o| o == name) {
        // Graph outputs keep their names: the producer writes a new name, DequantizeLinear the old.
        let float = format!("{name}_ptq_float");
        if let Some(p) = graph.producer(name) {
            let slot = p.outputs.iter().position(|o| o == name).unwrap_or(0);
            patch.set_output(p.index, slot, &float);
        }
        patch.insert_after(at, node(&q, "QuantizeLinear", &[&float, &scale_name, &zp_name], &q, e.axis));
        patch.insert_after(
            at,
            node(&format!("{name}_ptq_dq"), "DequantizeLinear", &[&q, &scale_name, &zp_name], name, e.axis),
        );
    } else {
        let dq = format!("{name}_ptq_dq");
        patch.replace_uses(graph, name, &dq);
        patch.insert_after(at, node(&q, "QuantizeLinear", &[name, &scale_name, &zp_name], &q, e.axis));
        patch.insert_after(at, node(&dq, "DequantizeLinear", &[&q, &scale_name, &zp_name], &dq, e.axis));
    }
}

fn constant(graph: &Graph, patch: &mut Patch, name: &str, e: &Encoding) -> Result<(), Error> {
    let (values, shape) = float_constant(graph, name)?;
    let q = quantized(&values, &shape, e);
    let q_name = format!("{name}_ptq_q");
    let (scale, zp) = scale_and_zero_point(name, e, false);
    let (scale_name, zp_name) = (scale.name().to_owned(), zp.name().to_owned());
    remove_constant(graph, patch, name);
    patch
        .add_initializer(int_tensor(&q_name, e.storage_type(), &shape, &q))
        .add_initializer(scale)
        .add_initializer(zp)
        // The dequantized weight keeps the constant's name, so its readers are untouched.
        .insert_after(
            None,
            node(
                &format!("{name}_ptq_dq"),
                "DequantizeLinear",
                &[&q_name, &scale_name, &zp_name],
                name,
                e.axis,
            ),
        );
    Ok(())
}
