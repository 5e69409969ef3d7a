//! Reading the encodings a model already carries (spec §0.2 step 2, §4.5; DESIGN.md Decisions
//! 8 and 9): QAT exports, onnxruntime's `quantize_static` output, and ptq's own QDQ models.
//!
//! [`read_qat`] gives back the float model and, keyed by the original tensor names, the encodings
//! its quantization nodes carried:
//!
//! - `x → QuantizeLinear → DequantizeLinear → y` (same type, scale, zero point and axis, compared
//!   by value): both nodes go, `y`'s readers read `x` again, and `x` gets the pair's encoding. When
//!   `y` is a graph output its name stays: `x`'s producer writes `y` again (undoing ptq's
//!   `<T>_ptq_float` indirection), and the encoding belongs to `y`.
//! - `DequantizeLinear(integer constant)`: the node goes, the weight becomes a float initializer
//!   holding the dequantized values — named as the DequantizeLinear's output (ptq writes `W`), or
//!   as the integer constant without onnxruntime's `_quantized` suffix (`W_quantized` → `W`, its
//!   readers rewired from `W_DequantizeLinear_Output`) — and the encoding belongs to it.
//! - ptq's marked float-16 Cast pair `T → <T>_ptq_fp16_cast → <T>_ptq_fp16_uncast`: both nodes
//!   go, and `T` is given float 16.
//!
//! Any other QuantizeLinear/DequantizeLinear (a QuantizeLinear whose integers something else
//! reads, a DequantizeLinear of a tensor computed at run time, blocked quantization, parameters
//! computed at run time) is an error naming the node and the reason: ptq keeps only float tensors
//! and cannot take that encoding.

use std::collections::{BTreeMap, BTreeSet};

use ptq_ir::{DataType, Graph, Node, Patch, Source};
use ptq_onnx::proto::ModelProto;
use ptq_quant::{Given, GivenEncoding, GivenEncodings, Section};

use crate::Error;
use crate::qdq::{node, remove_constant};
use crate::qlinear::{
    Arithmetic, Names, Params, block_size, dequantize, encoding, integers, node_error, normalise, params,
    range,
};
use crate::values::float_tensor;

/// The float model under a quantized one, and the encodings that model carried.
#[derive(Debug, Clone)]
pub struct Qat {
    /// The model without its QuantizeLinear/DequantizeLinear nodes and marked float-16 Cast pairs.
    pub model: ModelProto,
    /// Encodings by tensor name of `model`: [`Section::Activation`] for data, [`Section::Param`]
    /// for constants; integer ones [`Given::Fixed`] with [`Origin::Qat`], float-16 ones
    /// [`Given::Float`].
    pub given: GivenEncodings,
    /// QuantizeLinear→DequantizeLinear pairs removed (a QuantizeLinear read by two
    /// DequantizeLinear nodes counts twice).
    pub pairs: usize,
}

/// `model` (whose view is `graph`) without its quantization nodes, and the encodings they carried
/// (see the module doc). A model without any returns unchanged with no encodings.
pub fn read_qat(model: &ModelProto, graph: &Graph) -> Result<Qat, Error> {
    let mut r = Reader::new(graph);
    for n in graph.nodes() {
        if r.removed.contains(&n.index) {
            continue;
        }
        if is_qdq_op(n, "QuantizeLinear") {
            r.pair(n)?;
        } else if is_qdq_op(n, "DequantizeLinear") {
            r.constant(n)?;
        } else if let Some(uncast) = fp16_uncast(graph, n) {
            r.fp16(n, uncast);
        }
    }
    r.finish(model)
}

/// QuantizeLinear/DequantizeLinear of the ONNX domain, or onnxruntime's `com.microsoft` twins
/// (same semantics; its quantizer writes them for 16-bit types before opset 21).
fn is_qdq_op(n: &Node, op: &str) -> bool {
    n.op_type == op && matches!(n.domain.as_str(), "" | "ai.onnx" | "com.microsoft")
}

const FP16_CAST: &str = "_ptq_fp16_cast";
const FP16_UNCAST: &str = "_ptq_fp16_uncast";

/// For ptq's marked `Cast(to=FLOAT16)` named `<T>_ptq_fp16_cast`, the `Cast(to=FLOAT)` named
/// `<T>_ptq_fp16_uncast` that alone reads it (Decision 9). Unmarked or incomplete pairs are
/// ordinary float ops and stay.
fn fp16_uncast<'g>(graph: &'g Graph, cast: &Node) -> Option<&'g Node> {
    let prefix = cast.name.strip_suffix(FP16_CAST)?;
    let to = |n: &Node| graph.int_attr(n, "to").and_then(|c| DataType::from_onnx(c as i32));
    if cast.op_type != "Cast"
        || !cast.domain.is_empty()
        || cast.inputs.len() != 1
        || to(cast) != Some(DataType::Float16)
    {
        return None;
    }
    let half = cast.outputs.first()?;
    if graph.outputs.contains(half) {
        return None;
    }
    let mut readers = graph.consumers(half);
    let (uncast, None) = (readers.next()?, readers.next()) else { return None };
    let marked = uncast.name.strip_suffix(FP16_UNCAST) == Some(prefix);
    (marked
        && uncast.op_type == "Cast"
        && uncast.domain.is_empty()
        && to(uncast) == Some(DataType::Float)
        && uncast.inputs.len() == 1
        && uncast.inputs[0] == *half)
        .then_some(uncast)
}

/// The normalised channel axis of a per-channel node; `None` per tensor. `shape` is the
/// tensor's, as far as the model declares it. A 1-D scale with several values is per channel; a
/// 1-D scale of one value with an explicit `axis` is per channel (of one channel, as ptq writes
/// it) only where that axis has length 1 — elsewhere runtimes read it per tensor, and so does ptq.
fn channel_axis(
    n: &Node,
    p: &Params,
    tensor: &str,
    shape: Option<&[Option<usize>]>,
) -> Result<Option<usize>, Error> {
    let rank = shape.map(<[_]>::len);
    let axis = normalise(p.axis, rank);
    let dim = usize::try_from(axis).ok().and_then(|a| shape?.get(a).copied().flatten());
    let one_channel = p.scale_shape.len() == 1 && p.explicit_axis && dim == Some(1);
    if p.scale.len() == 1 && !one_channel {
        return Ok(None);
    }
    match rank {
        Some(r) if axis < 0 || axis >= r as i64 => {
            Err(node_error(n, format!("axis {} is out of range for `{tensor}` of rank {r}", p.axis)))
        }
        None if axis < 0 => Err(node_error(
            n,
            format!(
                "axis {} counts from the end of `{tensor}`, whose rank the model does not declare",
                p.axis
            ),
        )),
        _ => match dim {
            Some(d) if d != p.scale.len() => Err(node_error(
                n,
                format!(
                    "its scale has {} values but `{tensor}` has {d} along axis {}",
                    p.scale.len(),
                    p.axis
                ),
            )),
            _ => Ok(Some(axis as usize)),
        },
    }
}

fn refused(n: &Node, why: impl std::fmt::Display) -> Error {
    node_error(n, format!("ptq cannot take its encoding: {why}"))
}

fn refuse_blocks(graph: &Graph, n: &Node) -> Result<(), Error> {
    match block_size(graph, n) {
        b if b > 0 => {
            Err(refused(n, format_args!("blocked quantization (block_size {b}) is not supported yet")))
        }
        _ => Ok(()),
    }
}

/// An encoding found, before the tensor it belongs to has its final name.
struct Found {
    tensor: String,
    given: Given,
    node: String,
}

struct Reader<'g> {
    graph: &'g Graph,
    patch: Patch,
    names: Names<'g>,
    /// Nodes (file indices) the result drops.
    removed: BTreeSet<usize>,
    /// Tensor name → the name that replaces it (follow until it has none).
    alias: BTreeMap<String, String>,
    /// Where a node reading a tensor the rewrite renamed or created can be inserted.
    positions: BTreeMap<String, Option<usize>>,
    /// Float initializers the rewrite adds.
    new_constants: BTreeSet<String>,
    /// Constants that may be unread once the rewrite is done.
    orphans: BTreeSet<String>,
    found: Vec<Found>,
    pairs: usize,
}

impl<'g> Reader<'g> {
    fn new(graph: &'g Graph) -> Self {
        Reader {
            graph,
            patch: Patch::new(),
            names: Names::new(graph),
            removed: BTreeSet::new(),
            alias: BTreeMap::new(),
            positions: BTreeMap::new(),
            new_constants: BTreeSet::new(),
            orphans: BTreeSet::new(),
            found: Vec::new(),
            pairs: 0,
        }
    }

    /// The name `tensor` has in the result.
    fn resolve(&self, tensor: &str) -> String {
        let mut name = tensor;
        while let Some(next) = self.alias.get(name) {
            name = next;
        }
        name.to_owned()
    }

    fn is_output(&self, tensor: &str) -> bool {
        self.graph.outputs.iter().any(|o| o == tensor)
    }

    /// Where a node reading `tensor` (a result name) goes: after its writer, or first.
    fn position(&self, tensor: &str) -> Option<usize> {
        if let Some(&p) = self.positions.get(tensor) {
            return p;
        }
        match self.graph.tensor(tensor).map(|t| t.source) {
            Some(Source::Node(i) | Source::ConstantNode(i)) if !self.removed.contains(&i) => Some(i),
            _ => None,
        }
    }

    /// Makes the readers of `from` (the output of removed nodes) read `to` instead. A graph
    /// output keeps its name: `to`'s writer writes it instead, or, where that cannot be (an input,
    /// a constant, another graph output), an Identity copies `to` into it.
    fn bypass(&mut self, from: &str, to: &str) {
        let base = self.resolve(to);
        if !self.is_output(from) {
            self.alias.insert(from.to_owned(), base);
            return;
        }
        let writer = match self.graph.tensor(&base).map(|t| t.source) {
            Some(Source::Node(i)) if !self.removed.contains(&i) && !self.is_output(&base) => Some(i),
            _ => None,
        };
        if let Some(i) = writer {
            let slot = self.graph.node(i).outputs.iter().position(|o| *o == base).expect("its writer");
            self.patch.set_output(i, slot, from);
            self.alias.insert(base, from.to_owned());
            self.positions.insert(from.to_owned(), Some(i));
        } else {
            let at = self.position(&base);
            let name = self.names.fresh(&format!("{from}_ptq_identity"));
            self.patch.insert_after(at, node(&name, "Identity", &[&base], from, None));
            self.positions.insert(from.to_owned(), at);
        }
    }

    fn remove(&mut self, n: &Node, orphans: impl IntoIterator<Item = String>) {
        self.patch.remove_node(n.index);
        self.removed.insert(n.index);
        self.orphans.extend(orphans);
    }

    /// The declared shape of `tensor` (`None` for a dimension that is not fixed).
    fn shape(&self, tensor: &str) -> Option<Vec<Option<usize>>> {
        let shape = self.graph.tensor(tensor)?.shape.as_ref()?;
        Some(shape.iter().map(|d| d.fixed()).collect())
    }

    /// `x → q → DequantizeLinear(s)`: removed, `x` given their encoding.
    fn pair(&mut self, q: &Node) -> Result<(), Error> {
        refuse_blocks(self.graph, q)?;
        let (Some(x), Some(q_out)) = (q.inputs.first(), q.outputs.first().filter(|o| !o.is_empty())) else {
            return Err(refused(q, "it has no input or no output"));
        };
        if self.is_output(q_out) {
            return Err(refused(q, format_args!("its integer output `{q_out}` is a graph output")));
        }
        let readers: Vec<&Node> = self.graph.consumers(q_out).collect();
        if readers.is_empty() {
            return Err(refused(q, format_args!("no DequantizeLinear reads its output `{q_out}`")));
        }
        if let Some(other) = readers.iter().find(|d| {
            !is_qdq_op(d, "DequantizeLinear") || d.inputs.iter().position(|i| i == q_out) != Some(0)
        }) {
            return Err(refused(
                q,
                format_args!(
                    "its integer output `{q_out}` is read by `{}` ({}), not only by DequantizeLinear",
                    other.display_name(),
                    other.op_type
                ),
            ));
        }
        let qp = params(self.graph, q, None)?.map_err(|why| refused(q, why))?;
        let shape = self.shape(x);
        let rank = shape.as_ref().map(Vec::len);
        let axis = channel_axis(q, &qp, x, shape.as_deref())?;
        for d in readers {
            refuse_blocks(self.graph, d)?;
            let dp = params(self.graph, d, Some(qp.dtype))?.map_err(|why| refused(d, why))?;
            if !qp.same_grid(&dp, rank) {
                return Err(refused(
                    d,
                    format_args!(
                        "it dequantizes `{q_out}` of `{}` with another type, scale, zero point or axis",
                        q.display_name()
                    ),
                ));
            }
            self.remove(d, d.inputs.iter().skip(1).cloned());
            if let Some(y) = d.outputs.first().filter(|o| !o.is_empty()) {
                self.bypass(y, x);
            }
            self.pairs += 1;
        }
        self.remove(q, q.inputs.iter().skip(1).cloned());
        self.found.push(Found {
            tensor: x.clone(),
            given: Given::Fixed(encoding(&qp, axis)),
            node: q.display_name(),
        });
        Ok(())
    }

    /// `DequantizeLinear(integer constant)`: a float constant with its encoding.
    fn constant(&mut self, d: &Node) -> Result<(), Error> {
        refuse_blocks(self.graph, d)?;
        let (Some(x), Some(y)) = (d.inputs.first(), d.outputs.first().filter(|o| !o.is_empty())) else {
            return Err(refused(d, "it has no input or no output"));
        };
        let info = self.graph.tensor(x);
        if !info.is_some_and(|t| t.is_constant()) {
            return Err(refused(
                d,
                format_args!(
                    "it dequantizes `{x}`, which is computed at run time and not by a QuantizeLinear"
                ),
            ));
        }
        let Some(dtype) = info.and_then(|t| t.dtype).filter(|&t| range(t).is_some()) else {
            let dtype = info.and_then(|t| t.dtype).map_or("an unknown type".to_owned(), |t| t.to_string());
            return Err(refused(d, format_args!("it dequantizes `{x}` of {dtype}, not an integer type")));
        };
        let p = params(self.graph, d, Some(dtype))?.map_err(|why| refused(d, why))?;
        let (shape, q) = integers(self.graph, x, dtype)?;
        // Read back as the value the encoding came from, so that quantizing again gives `q`.
        let values = dequantize(d, &p, &shape, &q, Arithmetic::Nearest)?;
        let dims: Vec<Option<usize>> = shape.iter().copied().map(Some).collect();
        let axis = channel_axis(d, &p, x, Some(&dims))?;
        let name = self.weight_name(x, y);
        self.names.take(&name);
        self.patch.add_initializer(float_tensor(&name, &shape, &values));
        self.new_constants.insert(name.clone());
        self.remove(d, d.inputs.iter().cloned());
        if name != *y {
            self.alias.insert(y.clone(), name.clone());
        }
        self.found.push(Found {
            tensor: name,
            given: Given::Fixed(encoding(&p, axis)),
            node: d.display_name(),
        });
        Ok(())
    }

    /// The original name of the weight that `DequantizeLinear(x) → y` restores: onnxruntime's
    /// `W_quantized` → `W` when that name is free, else `y` (ptq writes `W_ptq_q → W`).
    fn weight_name(&self, x: &str, y: &str) -> String {
        match x.strip_suffix("_quantized") {
            Some(w) if !w.is_empty() && !self.is_output(y) && self.names.is_free(w) => w.to_owned(),
            _ => y.to_owned(),
        }
    }

    /// A marked float-16 Cast pair: removed, its input given float 16.
    fn fp16(&mut self, cast: &Node, uncast: &Node) {
        let t = &cast.inputs[0];
        self.remove(cast, []);
        self.remove(uncast, []);
        self.bypass(&uncast.outputs[0], t);
        self.found.push(Found {
            tensor: t.clone(),
            given: Given::Float { bitwidth: 16 },
            node: cast.display_name(),
        });
    }

    fn finish(mut self, model: &ModelProto) -> Result<Qat, Error> {
        let graph = self.graph;
        let mut given = GivenEncodings::new();
        let mut from: BTreeMap<String, String> = BTreeMap::new();
        for f in std::mem::take(&mut self.found) {
            let tensor = self.resolve(&f.tensor);
            let constant = self.new_constants.contains(&tensor)
                || graph.tensor(&tensor).is_some_and(|t| t.is_constant());
            let section = if constant { Section::Param } else { Section::Activation };
            let entry = GivenEncoding { section, given: f.given };
            match given.get(&tensor) {
                Some(e) if *e != entry => {
                    let first = &from[&tensor];
                    let reason = format!("`{first}` and `{}` give it different encodings", f.node);
                    return Err(Error::Tensor { tensor, reason });
                }
                _ => {
                    from.entry(tensor.clone()).or_insert(f.node);
                    given.insert(tensor, entry);
                }
            }
        }

        // Readers of removed and renamed tensors read their replacements.
        for n in graph.nodes().filter(|n| !self.removed.contains(&n.index)) {
            for (slot, input) in n.inputs.iter().enumerate() {
                let to = self.resolve(input);
                if to != *input {
                    self.patch.set_input(n.index, slot, &to);
                }
            }
        }
        for old in self.alias.keys() {
            if let Some(n) =
                graph.consumers(old).find(|n| !self.removed.contains(&n.index) && !n.inputs.contains(old))
            {
                return Err(node_error(
                    n,
                    format!("a subgraph reads `{old}`, which ptq would rename to `{}`", self.resolve(old)),
                ));
            }
        }

        let mut gone: BTreeSet<String> = self.alias.keys().cloned().collect();
        gone.extend(self.removed.iter().flat_map(|&i| graph.node(i).outputs.iter().cloned()));
        for name in self.orphans.iter().filter(|n| !n.is_empty()) {
            let constant = graph.tensor(name).is_some_and(|t| t.is_constant());
            let read =
                graph.consumers(name).any(|n| !self.removed.contains(&n.index)) || self.is_output(name);
            if constant && !read {
                remove_constant(graph, &mut self.patch, name);
                gone.insert(name.clone());
            }
        }

        let mut out = self.patch.apply(model)?;
        // Shapes declared for tensors that no longer exist would describe nothing.
        if let Some(g) = out.graph.as_mut() {
            let mut defined: BTreeSet<String> =
                g.node.iter().flat_map(|n| n.output.iter().cloned()).collect();
            defined.extend(g.initializer.iter().map(|t| t.name().to_owned()));
            defined.extend(g.input.iter().map(|v| v.name().to_owned()));
            g.value_info.retain(|v| !gone.contains(v.name()) || defined.contains(v.name()));
        }
        Ok(Qat { model: out, given, pairs: self.pairs })
    }
}
