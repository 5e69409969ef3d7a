//! Reading QuantizeLinear/DequantizeLinear nodes of a model: their scale, zero point, integer
//! type and axis, the integer constants they dequantize, and the values a runtime computes from
//! them. Shared by [`crate::lower_qdq`] and [`crate::read_qat`].

use std::collections::BTreeSet;

use ptq_ir::{DataType, Graph, Node, Source};
use ptq_onnx::proto::TensorProto;
use ptq_quant::{Encoding, Origin};

use crate::Error;

/// `n` is the operator `op` of the default ONNX domain.
pub(crate) fn is_op(n: &Node, op: &str) -> bool {
    n.op_type == op && (n.domain.is_empty() || n.domain == "ai.onnx")
}

/// The node's `block_size` attribute (0: not blocked).
pub(crate) fn block_size(graph: &Graph, node: &Node) -> i64 {
    graph.int_attr(node, "block_size").unwrap_or(0)
}

pub(crate) fn node_error(node: &Node, reason: String) -> Error {
    Error::Graph(ptq_ir::Error::BadNode { node: node.display_name(), op: node.op_type.clone(), reason })
}

/// A negative axis counted from the end when the rank is known; otherwise as given.
pub(crate) fn normalise(axis: i64, rank: Option<usize>) -> i64 {
    match rank {
        Some(r) if axis < 0 => axis + r as i64,
        _ => axis,
    }
}

/// The full range of an integer type that QuantizeLinear/DequantizeLinear use.
pub(crate) fn range(dtype: DataType) -> Option<(i64, i64)> {
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
pub(crate) struct Params {
    pub scale: Vec<f32>,
    pub scale_shape: Vec<usize>,
    /// Empty when the node has no zero-point input.
    pub zero_point: Vec<i64>,
    pub dtype: DataType,
    /// As written (default 1).
    pub axis: i64,
    /// Whether the node has an `axis` attribute.
    pub explicit_axis: bool,
}

impl Params {
    /// The zero points, zeros when the node has none.
    pub fn zero_points(&self) -> Vec<i64> {
        if self.zero_point.is_empty() { vec![0; self.scale.len()] } else { self.zero_point.clone() }
    }

    /// The same quantization grid: type, scales, zero points, and axis when per channel.
    pub fn same_grid(&self, other: &Params, rank: Option<usize>) -> bool {
        self.dtype == other.dtype
            && self.scale == other.scale
            && self.zero_points() == other.zero_points()
            && (self.scale.len() == 1 || normalise(self.axis, rank) == normalise(other.axis, rank))
    }
}

/// A node's quantization parameters, or why ptq cannot use them (scale or zero point computed at
/// run time, a scale that is not f32 or not a scalar / 1-D, a type without a range).
/// `input_dtype` is a DequantizeLinear's integer input type (used when it has no zero point).
/// Fails only on parameters that contradict each other.
pub(crate) fn params(
    graph: &Graph,
    node: &Node,
    input_dtype: Option<DataType>,
) -> Result<Result<Params, String>, Error> {
    let input = |i: usize| node.inputs.get(i).filter(|s| !s.is_empty());
    let is_constant = |name: &str| graph.tensor(name).is_some_and(|t| t.is_constant());
    let Some(scale_name) = input(1) else { return Ok(Err("it has no scale input".into())) };
    if !is_constant(scale_name) {
        return Ok(Err(format!("its scale `{scale_name}` is computed at run time")));
    }
    let scale = graph.constant(scale_name)?;
    if scale.dtype != DataType::Float || scale.shape.len() > 1 || scale.is_empty() {
        return Ok(Err(format!(
            "its scale `{scale_name}` is {} of shape {:?}; ptq reads float32 scalar or 1-D scales",
            scale.dtype, scale.shape
        )));
    }
    let scale_values = scale.to_f32().expect("float32 tensors have values");
    let (zero_point, dtype) = match input(2) {
        Some(zp) if !is_constant(zp) => {
            return Ok(Err(format!("its zero point `{zp}` is computed at run time")));
        }
        Some(zp) => {
            let declared = graph.tensor(zp).and_then(|t| t.dtype);
            let Some(dtype) = declared.filter(|&d| range(d).is_some()) else {
                let name = declared.map_or("an unknown type".to_owned(), |d| d.to_string());
                return Ok(Err(format!(
                    "its zero point `{zp}` is {name}, not an integer type ptq quantizes to"
                )));
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
        return Ok(Err(format!("it quantizes to {dtype}, which ptq does not support")));
    }
    let attr = graph.int_attr(node, "axis");
    Ok(Ok(Params {
        scale: scale_values,
        scale_shape: scale.shape,
        zero_point,
        dtype,
        axis: attr.unwrap_or(1),
        explicit_axis: attr.is_some(),
    }))
}

/// The shape and values of an integer constant of type `dtype` (4-bit types unpacked: low nibble
/// first, int4 sign-extended).
pub(crate) fn integers(graph: &Graph, name: &str, dtype: DataType) -> Result<(Vec<usize>, Vec<i64>), Error> {
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

/// `(q − zero_point) · scale`, per axis when the scale has several values, for the integer
/// constant read by `d`. `Arithmetic::Runtime` computes it as onnxruntime's DequantizeLinear does
/// (the integer converted to f32 first); `Arithmetic::Nearest` gives the f32 nearest the exact
/// product, from which the same encoding quantizes back to `q` — int32 biases beyond 2^24 steps
/// lose their last bits in an f32 conversion.
pub(crate) fn dequantize(
    d: &Node,
    p: &Params,
    shape: &[usize],
    q: &[i64],
    arithmetic: Arithmetic,
) -> Result<Vec<f32>, Error> {
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
    let value = |i: usize, v: i64| {
        let (q, scale) = (v - zp[channel(i)], p.scale[channel(i)]);
        match arithmetic {
            Arithmetic::Runtime => q as f32 * scale,
            Arithmetic::Nearest => (q as f64 * f64::from(scale)) as f32,
        }
    };
    Ok(q.iter().enumerate().map(|(i, &v)| value(i, v)).collect())
}

/// How [`dequantize`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arithmetic {
    Runtime,
    Nearest,
}

/// New tensor and node names that collide with nothing in the graph or the rewrite.
pub(crate) struct Names<'g> {
    graph: &'g Graph,
    taken: BTreeSet<String>,
}

impl<'g> Names<'g> {
    pub fn new(graph: &'g Graph) -> Self {
        let taken = graph.nodes().map(|n| n.name.clone()).collect();
        Names { graph, taken }
    }

    pub fn is_free(&self, name: &str) -> bool {
        self.graph.tensor(name).is_none() && !self.taken.contains(name)
    }

    /// `base`, or `base_1`, `base_2`, … — the first free one, now taken.
    pub fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_owned();
        let mut k = 1;
        while !self.is_free(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.taken.insert(name.clone());
        name
    }

    /// Marks `name` as used (a name the rewrite writes that is not in the graph yet).
    pub fn take(&mut self, name: &str) {
        self.taken.insert(name.to_owned());
    }
}

/// Bitwidth and signedness of a QuantizeLinear/DequantizeLinear integer type.
fn bits(dtype: DataType) -> (u8, bool) {
    use DataType::*;
    match dtype {
        Uint4 => (4, false),
        Int4 => (4, true),
        Uint8 => (8, false),
        Int8 => (8, true),
        Uint16 => (16, false),
        Int16 => (16, true),
        _ => (32, true),
    }
}

/// The encoding a node's parameters describe (spec §4.5): symmetric when signed with every zero
/// point 0, or unsigned with every zero point 2^(b−1) (the same grid); strictness cannot be seen.
pub(crate) fn encoding(p: &Params, axis: Option<usize>) -> Encoding {
    let (bitwidth, signed) = bits(p.dtype);
    let zero_points = p.zero_points();
    let centre = if signed { 0 } else { 1i64 << (bitwidth - 1) };
    Encoding {
        bitwidth,
        signed,
        symmetric: zero_points.iter().all(|&z| z == centre),
        strict: false,
        restricted: None,
        scales: p.scale.clone(),
        zero_points,
        axis,
        origin: Origin::Qat,
    }
}
