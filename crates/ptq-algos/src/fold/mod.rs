//! Folding a per-output-channel affine follower into the Conv, ConvTranspose, Gemm or MatMul
//! before it (DESIGN.md Decision 11, spec §5.3 and §6.2 step 1) — qairt's converter "squashes"
//! the same patterns before quantizing.
//!
//! A follower computes `y = s[c]·x + t[c]` on output channel `c` of the layer: a
//! BatchNormalization (`s = scale / sqrt(var + epsilon)`, `t = B − mean·s`), or an Add, Sub or Mul
//! of a constant that varies along the channel axis only (see [`Follower`]). Folding it gives
//! `W'[…c…] = W[…c…] · s[c]` and `b'[c] = b[c] · s[c] + t[c]`, where `b` is the layer's bias (0
//! when it has none; for Gemm `beta · C`, after which `beta` is 1). Values are computed in f64
//! and stored as f32.
//!
//! Why bother for an Add: exporters such as paddle2onnx write every conv bias as a separate Add,
//! and left apart, the pre-bias output and the bias each get an 8-bit encoding where the folded
//! layer has a derived 32-bit bias (issue 13 measured 3 dB on a text recognizer).
//!
//! A follower is folded only when the rewrite cannot change anything else: the layer's output is
//! read by that follower alone and is not a graph output, the layer's weight and bias are
//! constants read by that layer alone, and the follower's other inputs are constants. Folding
//! repeats until nothing more folds, so Conv → Add → BatchNormalization → Mul ends as one Conv.

mod chain;
mod follower;

use std::collections::BTreeSet;
use std::path::Path;

use bytes::Bytes;
use ptq_ir::{DataType, Graph, Node, Patch, Source, Tensor, get_int};
use ptq_onnx::proto::{ModelProto, NodeProto, TensorProto};

pub use follower::Follower;
use follower::{Affine, Geometry};

use crate::Error;

/// The model with its followers folded, what was folded and which BatchNormalizations were not.
#[derive(Debug, Clone)]
pub struct Folded {
    pub model: ModelProto,
    /// Every fold, in the order made: topological within a round, round after round.
    pub folded: Vec<Fold>,
    /// The BatchNormalizations left in the model, with the reason.
    pub skipped: Vec<Skipped>,
}

/// One follower folded into one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fold {
    /// The layer node's name (for an unnamed node `#<index> <op>`, as [`Node::display_name`],
    /// with its index in the model as that round saw it).
    pub layer: String,
    /// The follower node's name, likewise.
    pub follower: String,
    pub kind: Follower,
}

/// A BatchNormalization that was not folded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub node: String,
    pub reason: String,
}

/// Folds every per-output-channel affine follower of a Conv, ConvTranspose, Gemm or MatMul into
/// that layer, until nothing more folds.
///
/// The layer keeps its node name and its weight and bias tensor names (their values change; they
/// are written as initializers, replacing the initializer or `Constant` node that held them); a
/// bias the layer did not have is named `<layer node name>_bias` (`<layer output>_bias` for an
/// unnamed node). The layer then writes the follower's output name and the follower node is
/// removed, as are the constants — and the Reshape/Unsqueeze/… nodes over them — that nothing
/// reads any more. The layer's old output name is gone from the model.
///
/// A follower whose inputs (the layer's output among them) satisfy `keep` is left alone: they
/// carry a given encoding, so the layer and the follower are quantized apart.
///
/// `model_dir` is where its external data is. Fails only when the model's graph is invalid, a
/// constant cannot be decoded or the edit cannot be applied; a BatchNormalization that cannot be
/// folded is listed in [`Folded::skipped`].
pub fn fold_layers(
    model: &ModelProto,
    model_dir: &Path,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Folded, Error> {
    let mut model = model.clone();
    let mut folded = Vec::new();
    // Each round folds one follower per layer; the next sees the layer's new follower.
    loop {
        let graph = Graph::new(&model, model_dir)?;
        let (round, skipped) = fold_round(&model, &graph, keep)?;
        match round {
            Some((next, made)) => {
                model = next;
                folded.extend(made);
            }
            None => return Ok(Folded { model, folded, skipped }),
        }
    }
}

type Round = Option<(ModelProto, Vec<Fold>)>;

/// One pass over the followers of `graph`: the edited model and its folds (`None` when nothing
/// folds), and the BatchNormalizations left alone.
fn fold_round(
    model: &ModelProto,
    graph: &Graph,
    keep: &dyn Fn(&str) -> bool,
) -> Result<(Round, Vec<Skipped>), Error> {
    let mut patch = Patch::new();
    let mut folded = Vec::new();
    let mut skipped = Vec::new();
    let mut removed = BTreeSet::new();
    let mut taken_names = BTreeSet::new();

    for node in graph.nodes() {
        let Some(kind) = Follower::of(node) else { continue };
        match plan(graph, node, kind, keep, &mut taken_names)? {
            Ok(rewrite) => {
                folded.push(Fold {
                    layer: graph.node(rewrite.layer).display_name(),
                    follower: node.display_name(),
                    kind,
                });
                removed.insert(node.index);
                rewrite.record(graph, &mut patch);
            }
            Err(reason) if kind.reports_skips() => {
                skipped.push(Skipped { node: node.display_name(), reason })
            }
            Err(_) => {}
        }
    }
    if folded.is_empty() {
        return Ok((None, skipped));
    }

    // The followers' constants (and shape ops over them) that nothing reads any more.
    let followers: Vec<usize> = removed.iter().copied().collect();
    for &i in &followers {
        for input in &graph.node(i).inputs {
            sweep(graph, input, &mut removed, &mut patch);
        }
    }
    Ok((Some((patch.apply(model)?, folded)), skipped))
}

/// Removes `tensor` when it is a constant, or a shape op's output over constants, that only
/// removed nodes read — and then, for a shape op, its own inputs likewise.
fn sweep(graph: &Graph, tensor: &str, removed: &mut BTreeSet<usize>, patch: &mut Patch) {
    if tensor.is_empty()
        || graph.outputs.iter().any(|o| o == tensor)
        || graph.consumers(tensor).any(|n| !removed.contains(&n.index))
    {
        return;
    }
    match graph.tensor(tensor).map(|t| t.source) {
        Some(Source::Initializer(_)) => {
            patch.remove_initializer(tensor);
        }
        Some(Source::ConstantNode(i)) => {
            removed.insert(i);
            patch.remove_node(i);
        }
        Some(Source::Node(i)) if !removed.contains(&i) && chain::is_shape_op(graph.node(i)) => {
            removed.insert(i);
            patch.remove_node(i);
            for input in &graph.node(i).inputs {
                sweep(graph, input, removed, patch);
            }
        }
        _ => {}
    }
}

/// The rewrite for one fold: the layer node as it will be, and its new constants.
struct Rewrite {
    follower: usize,
    layer: usize,
    node: NodeProto,
    /// Constants whose definition is replaced (the layer's weight, and its bias if it had one).
    replaced: Vec<String>,
    initializers: Vec<TensorProto>,
}

impl Rewrite {
    fn record(self, graph: &Graph, patch: &mut Patch) {
        patch.remove_node(self.follower);
        patch.replace_node(self.layer, self.node);
        for name in &self.replaced {
            patch.remove_constant(graph, name);
        }
        for t in self.initializers {
            patch.add_initializer(t);
        }
    }
}

fn is_default_domain(n: &Node) -> bool {
    n.domain.is_empty() || n.domain == "ai.onnx"
}

/// "a Conv, ConvTranspose or Gemm"
fn one_of(ops: &[&str]) -> String {
    match ops {
        [] => String::new(),
        [one] => format!("a {one}"),
        [rest @ .., last] => format!("a {} or {last}", rest.join(", ")),
    }
}

/// The fold of `follower` (of kind `kind`) into the layer before it, `Ok(Err(reason))` when it
/// is left alone.
fn plan(
    graph: &Graph,
    follower: &Node,
    kind: Follower,
    keep: &dyn Fn(&str) -> bool,
    taken: &mut BTreeSet<String>,
) -> Result<Result<Rewrite, String>, Error> {
    if graph.ir_version < 4 {
        return Ok(Err(format!(
            "the model is IR version {}, which needs every initializer listed as a graph input; \
             folding does not add graph inputs",
            graph.ir_version
        )));
    }
    // A model that quantizes the follower's inputs (QAT) computes the layer and the follower
    // apart; folding would give its weight encoding weights it was not made for.
    if let Some(t) = follower.inputs.iter().find(|t| keep(t)) {
        return Ok(Err(format!("`{t}` carries a given encoding, so the layer and the {kind} stay apart")));
    }
    let slot = match kind.layer_slot(graph, follower) {
        Ok(slot) => slot,
        Err(reason) => return Ok(Err(reason)),
    };
    let layer = match Layer::plan(graph, follower, &follower.inputs[slot], kind.layers())? {
        Ok(layer) => layer,
        Err(reason) => return Ok(Err(reason)),
    };
    let affine = match kind.affine(graph, follower, slot, &layer.geometry)? {
        Ok(affine) => affine,
        Err(reason) => return Ok(Err(reason)),
    };
    Ok(Ok(layer.fold(graph, &affine, &follower.outputs[0], follower.index, taken)))
}

/// How a layer's weight elements map to its output channels.
#[derive(Clone, Copy)]
enum ChannelMap {
    /// `[C_out, …]` (Conv; Gemm with transB = 1): `inner` elements per channel.
    Leading { inner: usize },
    /// `[…, C_out]` (Gemm with transB = 0; MatMul).
    Trailing { channels: usize },
    /// ConvTranspose `[C_in, C_out/group, k…]`: input channel `ci` of group `ci / (C_in/group)`
    /// feeds output channel `group·(C_out/group) + j`.
    Transposed { per_group_in: usize, per_group_out: usize, inner: usize },
}

impl ChannelMap {
    fn channel_of(self, i: usize) -> usize {
        match self {
            ChannelMap::Leading { inner } => i / inner.max(1),
            ChannelMap::Trailing { channels } => i % channels.max(1),
            ChannelMap::Transposed { per_group_in, per_group_out, inner } => {
                let row = (per_group_out * inner).max(1);
                let (ci, j) = (i / row, (i / inner.max(1)) % per_group_out.max(1));
                (ci / per_group_in.max(1)) * per_group_out + j
            }
        }
    }
}

/// A layer that can absorb its follower: its weight and bias and where its channels are.
struct Layer<'g> {
    node: &'g Node,
    is_gemm: bool,
    weight_name: String,
    weight: Tensor,
    bias_name: Option<String>,
    /// The bias over channels (Gemm: `beta · C`; 0 without one), and the shape to write it in.
    bias: Vec<f64>,
    bias_shape: Vec<usize>,
    channels: ChannelMap,
    geometry: Geometry,
}

impl<'g> Layer<'g> {
    /// The layer that computes `x`, read by `follower` alone, when it is one of `ops` and its
    /// weight and bias can change; `Ok(Err(reason))` otherwise.
    fn plan(
        graph: &'g Graph,
        follower: &Node,
        x: &str,
        ops: &[&str],
    ) -> Result<Result<Layer<'g>, String>, Error> {
        let computed = matches!(graph.tensor(x).map(|t| t.source), Some(Source::Node(_)));
        let Some(layer) = graph.producer(x).filter(|_| computed) else {
            return Ok(Err(format!("its input `{x}` is not computed by {}", one_of(ops))));
        };
        let name = layer.display_name();
        if !is_default_domain(layer) || !ops.contains(&layer.op_type.as_str()) {
            return Ok(Err(format!(
                "its input `{x}` comes from {} `{name}`, not {}",
                layer.op_type,
                one_of(ops)
            )));
        }
        let proto = &graph.proto().node[layer.index];
        if layer.outputs.first().map(String::as_str) != Some(x) {
            return Ok(Err(format!("`{x}` is not the main output of `{name}`")));
        }
        if graph.outputs.iter().any(|o| o == x) {
            return Ok(Err(format!("`{x}` is also a graph output")));
        }
        let others = other_readers(graph, x, follower.index);
        if !others.is_empty() {
            return Ok(Err(format!("`{x}` is also read by {others}")));
        }

        let weight_name = layer.inputs.get(1).filter(|n| !n.is_empty());
        let bias_name = layer.inputs.get(2).filter(|n| !n.is_empty());
        let Some(weight_name) = weight_name else {
            return Ok(Err(format!("`{name}` has no weight input")));
        };
        if bias_name == Some(weight_name) {
            return Ok(Err(format!("`{name}` reads `{weight_name}` as weight and bias")));
        }
        for input in std::iter::once(weight_name).chain(bias_name) {
            if !graph.tensor(input).is_some_and(|t| t.is_constant()) {
                return Ok(Err(format!("`{name}` input `{input}` is not a constant")));
            }
            if graph.outputs.iter().any(|o| o == input) {
                return Ok(Err(format!("`{name}` input `{input}` is also a graph output")));
            }
            let others = other_readers(graph, input, layer.index);
            if !others.is_empty() {
                return Ok(Err(format!(
                    "`{name}` input `{input}` is shared with {others}; folding would change them too"
                )));
            }
        }
        let weight = graph.constant(weight_name)?;
        if weight.dtype != DataType::Float {
            return Ok(Err(format!(
                "weight `{weight_name}` is {}; only float32 layers are folded",
                weight.dtype
            )));
        }
        let bias = match bias_name {
            Some(b) => {
                let t = graph.constant(b)?;
                if t.dtype != DataType::Float {
                    return Ok(Err(format!("bias `{b}` is {}; only float32 layers are folded", t.dtype)));
                }
                Some(t)
            }
            None => None,
        };

        let shape = &weight.shape;
        let (count, channels, max_rank, axis_from_end) = match layer.op_type.as_str() {
            "Conv" => {
                if shape.len() < 2 {
                    return Ok(Err(format!("weight `{weight_name}` has shape {shape:?}")));
                }
                let inner = shape[1..].iter().product();
                (shape[0], ChannelMap::Leading { inner }, shape.len(), shape.len() - 2)
            }
            "ConvTranspose" => {
                let group = get_int(proto, "group").unwrap_or(1);
                let Some(group) = usize::try_from(group).ok().filter(|&g| g >= 1) else {
                    return Ok(Err(format!("ConvTranspose `{name}` has group={group}")));
                };
                if shape.len() < 2 || shape[0] % group != 0 {
                    return Ok(Err(format!("weight `{weight_name}` has shape {shape:?} for group={group}")));
                }
                let (per_group_in, per_group_out) = (shape[0] / group, shape[1]);
                let inner = shape[2..].iter().product();
                let map = ChannelMap::Transposed { per_group_in, per_group_out, inner };
                (group * per_group_out, map, shape.len(), shape.len() - 2)
            }
            "Gemm" => {
                if shape.len() != 2 {
                    return Ok(Err(format!("Gemm weight `{weight_name}` has shape {shape:?}")));
                }
                if get_int(proto, "transB").unwrap_or(0) != 0 {
                    (shape[0], ChannelMap::Leading { inner: shape[1] }, 2, 0)
                } else {
                    (shape[1], ChannelMap::Trailing { channels: shape[1] }, 2, 0)
                }
            }
            _ => {
                if shape.len() != 2 {
                    return Ok(Err(format!("MatMul weight `{weight_name}` has shape {shape:?}")));
                }
                // [K] · [K, N] is [N]: a [1, N] constant would add an axis.
                let a_rank = graph.tensor(&layer.inputs[0]).and_then(|t| t.shape.as_ref()).map(Vec::len);
                (shape[1], ChannelMap::Trailing { channels: shape[1] }, a_rank.unwrap_or(2).min(2), 0)
            }
        };

        let (bias_values, bias_shape) = match (&bias, layer.op_type.as_str()) {
            (None, _) => (vec![0.0; count], vec![count]),
            (Some(t), "Gemm") => {
                let beta = f64::from(float_attr(proto, "beta", 1.0));
                let c = float_values(t).unwrap_or_default();
                let b = bias_name.map(String::as_str).unwrap_or_default();
                match c.len() {
                    1 if t.shape.iter().all(|&d| d == 1) && t.shape.len() <= 1 => {
                        (vec![beta * c[0]; count], vec![count])
                    }
                    len if len == count && (t.shape.len() == 1 || t.shape == [1, count]) => {
                        (c.iter().map(|v| beta * v).collect(), t.shape.clone())
                    }
                    _ => {
                        return Ok(Err(format!(
                            "Gemm bias `{b}` has shape {:?}; only a scalar or [{count}] is folded",
                            t.shape
                        )));
                    }
                }
            }
            (Some(t), _) => {
                let c = float_values(t).unwrap_or_default();
                if c.len() != count {
                    return Ok(Err(format!(
                        "bias `{}` has {} values for {count} output channels",
                        bias_name.map(String::as_str).unwrap_or_default(),
                        c.len()
                    )));
                }
                (c, t.shape.clone())
            }
        };

        Ok(Ok(Layer {
            node: layer,
            is_gemm: layer.op_type == "Gemm",
            weight_name: weight_name.clone(),
            weight,
            bias_name: bias_name.cloned(),
            bias: bias_values,
            bias_shape,
            channels,
            geometry: Geometry { name, channels: count, max_rank, axis_from_end },
        }))
    }

    /// The layer with `affine` folded in, writing `output` in place of `follower`.
    fn fold(
        self,
        graph: &Graph,
        affine: &Affine,
        output: &str,
        follower: usize,
        taken: &mut BTreeSet<String>,
    ) -> Rewrite {
        let proto = &graph.proto().node[self.node.index];
        let mut node = proto.clone();
        node.output[0] = output.to_owned();
        let mut replaced = vec![self.weight_name.clone()];
        let mut initializers = Vec::new();

        let w = float_values(&self.weight).unwrap_or_default();
        let new_w: Vec<f64> = match &affine.scale {
            Some(s) => w.iter().enumerate().map(|(i, v)| v * s[self.channels.channel_of(i)]).collect(),
            None => w,
        };
        initializers.push(float_tensor(&self.weight_name, &self.weight.shape, &new_w));

        // Without a shift and without a bias, the bias stays 0: no need to add one.
        if affine.shift.is_some() || self.bias_name.is_some() {
            let new_b: Vec<f64> = self
                .bias
                .iter()
                .enumerate()
                .map(|(c, b)| {
                    let scaled = affine.scale.as_ref().map_or(*b, |s| b * s[c]);
                    scaled + affine.shift.as_ref().map_or(0.0, |t| t[c])
                })
                .collect();
            let bias_name = match &self.bias_name {
                Some(name) => {
                    replaced.push(name.clone());
                    name.clone()
                }
                None => {
                    let stem =
                        if self.node.name.is_empty() { &self.node.outputs[0] } else { &self.node.name };
                    let name = fresh_name(graph, taken, &format!("{stem}_bias"));
                    node.input.resize(2, String::new());
                    node.input.push(name.clone());
                    name
                }
            };
            initializers.push(float_tensor(&bias_name, &self.bias_shape, &new_b));
            if self.is_gemm {
                for a in node.attribute.iter_mut().filter(|a| a.name() == "beta") {
                    a.f = Some(1.0);
                }
            }
        }
        Rewrite { follower, layer: self.node.index, node, replaced, initializers }
    }
}

/// The readers of `tensor` other than node `except`, for a message (empty when there are none).
fn other_readers(graph: &Graph, tensor: &str, except: usize) -> String {
    let names: Vec<String> = graph
        .consumers(tensor)
        .filter(|n| n.index != except)
        .map(|n| format!("`{}`", n.display_name()))
        .collect();
    names.join(", ")
}

/// `wanted`, or `wanted_1`, `wanted_2`, … when the model or an earlier fold already uses it.
fn fresh_name(graph: &Graph, taken: &mut BTreeSet<String>, wanted: &str) -> String {
    let free = |n: &str| {
        graph.tensor(n).is_none()
            && !taken.contains(n)
            && !graph.outputs.iter().any(|o| o == n)
            && !graph.proto().input.iter().any(|v| v.name() == n)
    };
    let name = if free(wanted) {
        wanted.to_owned()
    } else {
        (1..).map(|i| format!("{wanted}_{i}")).find(|n| free(n)).unwrap_or_default()
    };
    taken.insert(name.clone());
    name
}

fn float_attr(node: &NodeProto, name: &str, default: f32) -> f32 {
    node.attribute.iter().find(|a| a.name() == name).map_or(default, |a| a.f())
}

/// A floating-point constant's values in f64 (`None` for other element types).
fn float_values(t: &Tensor) -> Option<Vec<f64>> {
    match t.dtype {
        DataType::Double => {
            Some(t.data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect())
        }
        DataType::Float | DataType::Float16 | DataType::Bfloat16 => {
            Some(t.to_f32()?.into_iter().map(f64::from).collect())
        }
        _ => None,
    }
}

fn float_tensor(name: &str, shape: &[usize], values: &[f64]) -> TensorProto {
    let raw: Vec<u8> = values.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect();
    TensorProto {
        name: Some(name.to_owned()),
        data_type: Some(DataType::Float.to_onnx()),
        dims: shape.iter().map(|&d| d as i64).collect(),
        raw_data: Some(Bytes::from(raw)),
        ..Default::default()
    }
}
