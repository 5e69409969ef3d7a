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

use ptq_ir::{DataType, Graph, Node, Patch, Source, int_attribute};
use ptq_onnx::proto::{ModelProto, NodeProto, TensorProto};

use crate::Error;
use crate::qdq::remove_constant;
use crate::simulate::FAKE_QUANT_DOMAIN;
use crate::values::float_tensor;

/// A lowered model and what was lowered.
pub struct Lowered {
    pub model: ModelProto,
    /// FakeQuant nodes written, one per DequantizeLinear that read a matching QuantizeLinear.
    pub pairs: usize,
    /// DequantizeLinear nodes of integer constants replaced by float initializers.
    pub constants: usize,
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
        let Some(qp) = params(graph, q, None)? else { continue };
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
            let Some(dp) = params(graph, d, Some(qp.dtype))? else { continue };
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
        let Some(p) = params(graph, d, Some(dtype))? else { continue };
        let (shape, q) = integers(graph, x, dtype)?;
        let values = dequantize(d, &p, &shape, &q)?;
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
    Ok(Lowered { model: patch.apply(model)?, pairs, constants })
}

fn is_op(n: &Node, op: &str) -> bool {
    n.op_type == op && (n.domain.is_empty() || n.domain == "ai.onnx")
}

fn block_size(graph: &Graph, node: &Node) -> i64 {
    graph.int_attr(node, "block_size").unwrap_or(0)
}

fn node_error(node: &Node, reason: String) -> Error {
    Error::Graph(ptq_ir::Error::BadNode { node: node.display_name(), op: node.op_type.clone(), reason })
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

/// A negative axis counted from the end when the rank is known; otherwise as given.
fn normalise(axis: i64, rank: Option<usize>) -> i64 {
    match rank {
        Some(r) if axis < 0 => axis + r as i64,
        _ => axis,
    }
}

/// The full range of an integer type that QuantizeLinear/DequantizeLinear use.
fn range(dtype: DataType) -> Option<(i64, i64)> {
    use DataType::*;
    Some(match dtype {
        Uint8 => (0, 255),
        Int8 => (-128, 127),
        Uint16 => (0, 65535),
        Int16 => (-32768, 32767),
        Int32 => (i32::MIN as i64, i32::MAX as i64),
        Uint4 => (0, 15),
        Int4 => (-8, 7),
        _ => return None,
    })
}

/// Scale, zero point, integer type and axis of one QuantizeLinear/DequantizeLinear node.
struct Params {
    scale: Vec<f32>,
    scale_shape: Vec<usize>,
    /// Empty when the node has no zero-point input.
    zero_point: Vec<i64>,
    dtype: DataType,
    /// As written (default 1).
    axis: i64,
}

impl Params {
    /// The zero points, zeros when the node has none.
    fn zero_points(&self) -> Vec<i64> {
        if self.zero_point.is_empty() { vec![0; self.scale.len()] } else { self.zero_point.clone() }
    }

    /// The same quantization grid: type, scales, zero points, and axis when per channel.
    fn same_grid(&self, other: &Params, rank: Option<usize>) -> bool {
        self.dtype == other.dtype
            && self.scale == other.scale
            && self.zero_points() == other.zero_points()
            && (self.scale.len() == 1 || normalise(self.axis, rank) == normalise(other.axis, rank))
    }
}

/// A node's quantization parameters; `None` when ptq cannot simulate them (scale or zero point
/// computed at run time, a scale that is not f32 or not a scalar / 1-D, a type without a range).
/// `input_dtype` is a DequantizeLinear's integer input type (used when it has no zero point).
fn params(graph: &Graph, node: &Node, input_dtype: Option<DataType>) -> Result<Option<Params>, Error> {
    let input = |i: usize| node.inputs.get(i).filter(|s| !s.is_empty());
    let is_constant = |name: &str| graph.tensor(name).is_some_and(|t| t.is_constant());
    let Some(scale_name) = input(1).filter(|s| is_constant(s)) else { return Ok(None) };
    let scale = graph.constant(scale_name)?;
    if scale.dtype != DataType::Float || scale.shape.len() > 1 || scale.is_empty() {
        return Ok(None);
    }
    let scale_values = scale.to_f32().expect("float32 tensors have values");
    let (zero_point, dtype) = match input(2) {
        Some(zp) if !is_constant(zp) => return Ok(None),
        Some(zp) => {
            let Some(dtype) = graph.tensor(zp).and_then(|t| t.dtype).filter(|&d| range(d).is_some()) else {
                return Ok(None);
            };
            let (_, values) = integers(graph, zp, dtype)?;
            if values.len() != scale_values.len() {
                return Err(node_error(
                    node,
                    format!(
                        "zero point `{zp}` has {} values, scale `{scale_name}` {}",
                        values.len(),
                        scale_values.len()
                    ),
                ));
            }
            (values, dtype)
        }
        None => {
            let declared = graph
                .int_attr(node, "output_dtype")
                .filter(|&c| c != 0)
                .and_then(|c| DataType::from_onnx(c as i32));
            (Vec::new(), input_dtype.or(declared).unwrap_or(DataType::Uint8))
        }
    };
    if range(dtype).is_none() {
        return Ok(None);
    }
    Ok(Some(Params {
        scale: scale_values,
        scale_shape: scale.shape,
        zero_point,
        dtype,
        axis: graph.int_attr(node, "axis").unwrap_or(1),
    }))
}

/// The shape and values of an integer constant of type `dtype` (4-bit types unpacked: low nibble
/// first, int4 sign-extended).
fn integers(graph: &Graph, name: &str, dtype: DataType) -> Result<(Vec<usize>, Vec<i64>), Error> {
    let fail = |reason: String| Error::Tensor { tensor: name.to_owned(), reason };
    if matches!(dtype, DataType::Int4 | DataType::Uint4) {
        let t = constant_proto(graph, name).ok_or_else(|| fail("is not a constant tensor".into()))?;
        if ptq_onnx::is_external(t) {
            return Err(fail(format!("{dtype} values in external data are not supported")));
        }
        let shape = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| fail(format!("negative dimension {d}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let count: usize = shape.iter().product();
        // onnx writes 4-bit values packed two per byte, in raw_data or one byte per int32_data entry.
        let bytes: Vec<u8> = match &t.raw_data {
            Some(raw) => raw.to_vec(),
            None => t.int32_data.iter().map(|&v| v as u8).collect(),
        };
        if bytes.len() != count.div_ceil(2) {
            return Err(fail(format!(
                "holds {} bytes, its shape {shape:?} of {dtype} needs {}",
                bytes.len(),
                count.div_ceil(2)
            )));
        }
        let values = (0..count)
            .map(|i| {
                let nibble = (bytes[i / 2] >> (4 * (i % 2))) & 0x0f;
                if dtype == DataType::Int4 { ((nibble << 4) as i8 >> 4) as i64 } else { nibble as i64 }
            })
            .collect();
        return Ok((shape, values));
    }
    let t = graph.constant(name)?;
    if t.dtype != dtype {
        return Err(fail(format!("holds {} values, expected {dtype}", t.dtype)));
    }
    let d = &t.data[..];
    let values = match dtype {
        DataType::Uint8 => d.iter().map(|&v| v as i64).collect(),
        DataType::Int8 => d.iter().map(|&v| v as i8 as i64).collect(),
        DataType::Uint16 => d.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as i64).collect(),
        DataType::Int16 => d.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]]) as i64).collect(),
        DataType::Int32 => {
            d.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64).collect()
        }
        _ => return Err(fail(format!("{dtype} is not a quantized integer type"))),
    };
    Ok((t.shape, values))
}

/// The `TensorProto` holding a constant (an initializer, or a `Constant` node's `value`).
fn constant_proto<'a>(graph: &'a Graph, name: &str) -> Option<&'a TensorProto> {
    match graph.tensor(name)?.source {
        Source::Initializer(i) => graph.proto().initializer.get(i),
        Source::ConstantNode(i) => {
            graph.proto().node[i].attribute.iter().find(|a| a.name() == "value").and_then(|a| a.t.as_ref())
        }
        _ => None,
    }
}

/// `(q − zero_point) · scale` in f32, per axis when the scale has several values.
fn dequantize(d: &Node, p: &Params, shape: &[usize], q: &[i64]) -> Result<Vec<f32>, Error> {
    let zp = p.zero_points();
    let inner = if p.scale.len() > 1 {
        let axis = normalise(p.axis, Some(shape.len()));
        let Some(&dim) = usize::try_from(axis).ok().and_then(|a| shape.get(a)) else {
            return Err(node_error(
                d,
                format!("axis {} is out of range for `{}` of shape {shape:?}", p.axis, d.inputs[0]),
            ));
        };
        if dim != p.scale.len() {
            return Err(node_error(
                d,
                format!(
                    "its scale has {} values but `{}` (shape {shape:?}) has {dim} along axis {}",
                    p.scale.len(),
                    d.inputs[0],
                    p.axis
                ),
            ));
        }
        Some(shape[axis as usize + 1..].iter().product::<usize>().max(1))
    } else {
        None
    };
    // Element i of a C-order tensor lies in channel (i / inner) % C.
    let channel = |i: usize| inner.map_or(0, |inner| (i / inner) % p.scale.len());
    Ok(q.iter().enumerate().map(|(i, &v)| (v - zp[channel(i)]) as f32 * p.scale[channel(i)]).collect())
}

/// New tensor and node names that collide with nothing in the graph or the rewrite.
struct Names<'g> {
    graph: &'g Graph,
    taken: BTreeSet<String>,
}

impl<'g> Names<'g> {
    fn new(graph: &'g Graph) -> Self {
        let taken = graph.nodes().map(|n| n.name.clone()).collect();
        Names { graph, taken }
    }

    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_owned();
        let mut k = 1;
        while self.graph.tensor(&name).is_some() || self.taken.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.taken.insert(name.clone());
        name
    }
}
