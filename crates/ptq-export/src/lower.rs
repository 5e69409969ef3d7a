//! Lowering a QDQ model to what ptq's engine runs (DESIGN.md "Engine").
//!
//! tract executes QuantizeLinear/DequantizeLinear with integer kernels and its own rounding, so a
//! QDQ model (ptq's own output, onnxruntime's `quantize_static`, a QAT export) does not give
//! onnxruntime's numbers on it. [`lower_qdq`] rewrites the model into the arithmetic onnxruntime
//! performs, with ptq's FakeQuant:
//!
//! - `x → QuantizeLinear → DequantizeLinear → y` with the same scale and zero point (compared by
//!   value) becomes `x → FakeQuant → y`, `[qmin, qmax]` the full range of the integer type;
//! - `DequantizeLinear(integer constant)` becomes a float initializer holding
//!   `(q − zero_point) · scale` computed in f32, as onnxruntime computes it;
//! - everything else (a DequantizeLinear of a tensor computed at run time, a QuantizeLinear whose
//!   output no matching DequantizeLinear reads) is left as it is.

use std::collections::BTreeSet;

use ptq_ir::{DataType, Graph, Node, Patch, int_attribute};
use ptq_onnx::proto::{ModelProto, NodeProto};
use ptq_quant::Encoding;

use crate::Error;
use crate::qdq::remove_constant;
use crate::qlinear::{
    Arithmetic, Names, block_size, dequantize, encoding, integers, is_op, node_error, normalise, params,
    range,
};
use crate::simulate::FAKE_QUANT_DOMAIN;
use crate::values::float_tensor;

/// A lowered model and what was lowered.
pub struct Lowered {
    pub model: ModelProto,
    /// FakeQuant nodes written, one per DequantizeLinear that read a matching QuantizeLinear.
    pub pairs: usize,
    /// Each of those FakeQuant nodes, in node order.
    pub fake_quants: Vec<LoweredPair>,
    /// DequantizeLinear nodes of integer constants replaced by float initializers.
    pub constants: usize,
}

/// One QuantizeLinear→DequantizeLinear pair that runs as FakeQuant.
#[derive(Debug, Clone, PartialEq)]
pub struct LoweredPair {
    /// The float tensor the QuantizeLinear reads.
    pub input: String,
    /// The DequantizeLinear's output, which the FakeQuant writes now: what the pair's readers see.
    pub output: String,
    /// The QuantizeLinear node (its name, or its output where it has none).
    pub node: String,
    /// The pair's scale, zero point, integer type and, per channel, axis (origin QAT). The axis is
    /// `None` for a per-channel pair whose negative axis cannot be resolved (the rank is unknown).
    pub encoding: Encoding,
}

/// Whether the model has any QuantizeLinear or DequantizeLinear node (default ONNX domain).
pub fn has_qdq(graph: &Graph) -> bool {
    graph.nodes().any(|n| is_op(n, "QuantizeLinear") || is_op(n, "DequantizeLinear"))
}

/// `model` (whose view is `graph`) with its Q→DQ pairs replaced by FakeQuant and its
/// dequantized integer constants replaced by their float values (see the module doc).
///
/// Fails on blocked quantization (`block_size > 0`), which ptq does not simulate, naming the
/// node, and on constants whose data do not match their declared shape and type.
pub fn lower_qdq(model: &ModelProto, graph: &Graph) -> Result<Lowered, Error> {
    let mut patch = Patch::new();
    let mut names = Names::new(graph);
    let mut removed: BTreeSet<usize> = BTreeSet::new();
    // Constants whose readers may all be gone once the rewrite is done.
    let mut orphans: BTreeSet<String> = BTreeSet::new();
    let (mut pairs, mut constants) = (0, 0);
    let mut fake_quants = Vec::new();

    for q in graph.nodes().filter(|n| is_op(n, "QuantizeLinear")) {
        let Some(q_out) = q.outputs.first().filter(|o| !o.is_empty()) else { continue };
        let dqs: Vec<&Node> = graph
            .consumers(q_out)
            .filter(|n| is_op(n, "DequantizeLinear") && n.inputs.first() == Some(q_out))
            .collect();
        if dqs.is_empty() {
            continue;
        }
        refuse_blocks(graph, q)?;
        let Ok(qp) = params(graph, q, None)? else { continue };
        let x = &q.inputs[0];
        let x_info = graph.tensor(x);
        if x_info.and_then(|t| t.dtype).is_some_and(|d| d != DataType::Float) {
            continue;
        }
        let rank = x_info.and_then(|t| t.shape.as_ref()).map(Vec::len);
        let axis = normalise(qp.axis, rank);
        for d in dqs {
            if block_size(graph, d) > 0 {
                continue;
            }
            let Ok(dp) = params(graph, d, Some(qp.dtype))? else { continue };
            if !qp.same_grid(&dp, rank) {
                continue;
            }
            let y = &d.outputs[0];
            let scale = float_tensor(&names.fresh(&format!("{y}_ptq_scale")), &qp.scale_shape, &qp.scale);
            let zp: Vec<f32> = qp.zero_points().iter().map(|&z| z as f32).collect();
            let zp = float_tensor(&names.fresh(&format!("{y}_ptq_zero_point")), &qp.scale_shape, &zp);
            let (lo, hi) = range(qp.dtype).expect("params() accepts only integer types with a range");
            let node = NodeProto {
                // The FakeQuant takes the DequantizeLinear's place: its name, its output.
                name: Some(if d.name.is_empty() {
                    names.fresh(&format!("{y}_ptq_fq"))
                } else {
                    d.name.clone()
                }),
                op_type: Some("FakeQuant".into()),
                domain: Some(FAKE_QUANT_DOMAIN.into()),
                input: vec![x.clone(), scale.name().to_owned(), zp.name().to_owned()],
                output: vec![y.clone()],
                attribute: vec![
                    int_attribute("qmin", lo),
                    int_attribute("qmax", hi),
                    int_attribute("axis", axis),
                ],
                ..Default::default()
            };
            patch.remove_node(d.index).insert_after(Some(d.index), node);
            patch.add_initializer(scale).add_initializer(zp);
            removed.insert(d.index);
            orphans.extend(d.inputs.iter().skip(1).cloned());
            pairs += 1;
            let per_channel = usize::try_from(axis).ok().filter(|_| qp.scale.len() > 1);
            fake_quants.push(LoweredPair {
                input: x.clone(),
                output: y.clone(),
                node: q.display_name(),
                encoding: encoding(&qp, per_channel),
            });
        }
        let unread =
            graph.consumers(q_out).all(|n| removed.contains(&n.index)) && !graph.outputs.contains(q_out);
        if unread {
            patch.remove_node(q.index);
            removed.insert(q.index);
            orphans.extend(q.inputs.iter().skip(1).cloned());
        }
    }

    let pending: Vec<&Node> =
        graph.nodes().filter(|n| is_op(n, "DequantizeLinear") && !removed.contains(&n.index)).collect();
    for d in pending {
        let (Some(x), Some(y)) = (d.inputs.first(), d.outputs.first()) else { continue };
        // A graph output stays computed by a node.
        if !graph.tensor(x).is_some_and(|t| t.is_constant()) || graph.outputs.contains(y) {
            continue;
        }
        let Some(dtype) = graph.tensor(x).and_then(|t| t.dtype).filter(|&d| range(d).is_some()) else {
            continue;
        };
        refuse_blocks(graph, d)?;
        let Ok(p) = params(graph, d, Some(dtype))? else { continue };
        let (shape, q) = integers(graph, x, dtype)?;
        let values = dequantize(d, &p, &shape, &q, Arithmetic::Runtime)?;
        patch.remove_node(d.index).add_initializer(float_tensor(y, &shape, &values));
        removed.insert(d.index);
        orphans.extend(d.inputs.iter().cloned());
        constants += 1;
    }

    for name in orphans.iter().filter(|n| !n.is_empty()) {
        let constant = graph.tensor(name).is_some_and(|t| t.is_constant());
        let read = graph.consumers(name).any(|n| !removed.contains(&n.index)) || graph.outputs.contains(name);
        if constant && !read {
            remove_constant(graph, &mut patch, name);
        }
    }
    if pairs > 0 {
        patch.set_opset(FAKE_QUANT_DOMAIN, 1);
    }
    Ok(Lowered { model: patch.apply(model)?, pairs, fake_quants, constants })
}

fn refuse_blocks(graph: &Graph, node: &Node) -> Result<(), Error> {
    match block_size(graph, node) {
        b if b > 0 => Err(node_error(
            node,
            format!("block_size {b}: blocked quantization is not supported by ptq's simulation"),
        )),
        _ => Ok(()),
    }
}
