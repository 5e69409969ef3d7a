//! Folding BatchNormalization into the Conv, ConvTranspose or Gemm before it (DESIGN.md
//! Decision 11, spec §6.2 step 1).
//!
//! With `s = scale / sqrt(var + epsilon)` per output channel `c` of the layer:
//! `W'[…c…] = W[…c…] · s[c]` and `b'[c] = (b[c] − mean[c]) · s[c] + B[c]`, where `b` is the
//! layer's bias (0 when it has none; for Gemm `beta · C`, after which `beta` is 1). The values are
//! computed in f64 and stored as f32.
//!
//! A BN is folded only when the rewrite cannot change anything else: the layer's output is read
//! by that BN alone and is not a graph output, the BN's parameters and the layer's weight and
//! bias are constants, and the weight and bias are read by that layer alone. Every BN left
//! alone is reported with the reason.

use std::collections::BTreeSet;

use bytes::Bytes;
use ptq_ir::{DataType, Graph, Node, Patch, Source, Tensor, get_int};
use ptq_onnx::proto::{ModelProto, NodeProto, TensorProto};

use crate::Error;

/// The model with its BatchNormalizations folded, and what happened to each BN.
#[derive(Debug, Clone)]
pub struct Folded {
    pub model: ModelProto,
    /// The folded BN nodes' names (`#<index> BatchNormalization` for unnamed ones), in
    /// topological order.
    pub folded: Vec<String>,
    /// The BNs left in the model, with the reason.
    pub skipped: Vec<Skipped>,
}

/// A BatchNormalization that was not folded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub node: String,
    pub reason: String,
}

/// Folds every BatchNormalization that directly follows a Conv, ConvTranspose or Gemm into it.
///
/// The layer keeps its node name and its weight and bias tensor names (their values change; they
/// are written as initializers, replacing the initializer or `Constant` node that held them); a
/// bias the layer did not have is named `<layer node name>_bias` (`<layer output>_bias` for an
/// unnamed node). The layer then writes the BN's output name and the BN node is removed, as are
/// the BN's parameter constants when nothing else reads them. The layer's old output name is
/// gone from the model.
///
/// A BN whose input or parameters satisfy `keep` (they carry a given encoding) is left alone.
/// `graph` must be the view of `model`. Fails only when a constant cannot be decoded or the edit
/// cannot be applied; a BN that cannot be folded is listed in [`Folded::skipped`].
pub fn fold_batch_norms(
    model: &ModelProto,
    graph: &Graph,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Folded, Error> {
    let mut patch = Patch::new();
    let mut folded = Vec::new();
    let mut skipped = Vec::new();
    let mut folded_bns = BTreeSet::new();
    let mut taken_names = BTreeSet::new();

    for bn in graph.nodes().filter(|n| is_default_domain(n) && n.op_type == "BatchNormalization") {
        if graph.ir_version < 4 {
            skipped.push(Skipped {
                node: bn.display_name(),
                reason: format!(
                    "the model is IR version {}, which needs every initializer listed as a graph \
                     input; folding does not add graph inputs",
                    graph.ir_version
                ),
            });
            continue;
        }
        // A model that quantizes the BN's input or parameters (QAT) computes the layer and the BN
        // apart; folding would give its weight encoding weights it was not made for.
        if let Some(t) = bn.inputs.iter().find(|t| keep(t)) {
            let reason = format!("`{t}` carries a given encoding, so the layer and the BN stay apart");
            skipped.push(Skipped { node: bn.display_name(), reason });
            continue;
        }
        match plan(graph, bn, &mut taken_names)? {
            Ok(fold) => {
                fold.record(graph, &mut patch);
                folded_bns.insert(bn.index);
                folded.push(bn.display_name());
            }
            Err(reason) => skipped.push(Skipped { node: bn.display_name(), reason }),
        }
    }

    // BN parameters nothing reads any more.
    let params: BTreeSet<&str> =
        folded_bns.iter().flat_map(|&i| graph.node(i).inputs[1..5].iter().map(String::as_str)).collect();
    for name in params {
        if !graph.outputs.iter().any(|o| o == name)
            && graph.consumers(name).all(|n| folded_bns.contains(&n.index))
        {
            remove_constant(graph, name, &mut patch);
        }
    }

    let model = if patch.is_empty() { model.clone() } else { patch.apply(model)? };
    Ok(Folded { model, folded, skipped })
}

/// The rewrite for one BN: the layer node as it will be, and its new constants.
struct Fold {
    bn: usize,
    layer: usize,
    node: NodeProto,
    /// Constants whose definition is replaced (the layer's weight, and its bias if it had one).
    replaced: Vec<String>,
    initializers: Vec<TensorProto>,
}

impl Fold {
    fn record(self, graph: &Graph, patch: &mut Patch) {
        patch.remove_node(self.bn);
        patch.remove_node(self.layer);
        patch.insert_after(Some(self.layer), self.node);
        for name in &self.replaced {
            remove_constant(graph, name, patch);
        }
        for t in self.initializers {
            patch.add_initializer(t);
        }
    }
}

fn remove_constant(graph: &Graph, name: &str, patch: &mut Patch) {
    match graph.tensor(name).map(|t| t.source) {
        Some(Source::Initializer(_)) => {
            patch.remove_initializer(name);
        }
        Some(Source::ConstantNode(i)) => {
            patch.remove_node(i);
        }
        _ => {}
    }
}

fn is_default_domain(n: &Node) -> bool {
    n.domain.is_empty() || n.domain == "ai.onnx"
}

/// Which layer kind, and how its weight's elements map to output channels.
#[derive(Clone, Copy)]
enum Layer {
    Conv,
    ConvTranspose { group: usize },
    Gemm { trans_b: bool },
}

/// The fold for `bn`, `Ok(Err(reason))` when it is left alone.
fn plan(graph: &Graph, bn: &Node, taken: &mut BTreeSet<String>) -> Result<Result<Fold, String>, Error> {
    let bn_proto = &graph.proto().node[bn.index];
    if bn.inputs.len() != 5 || bn.inputs.iter().any(String::is_empty) {
        return Ok(Err(format!("it has {} inputs, expected X, scale, B, mean, var", bn.inputs.len())));
    }
    let outputs: Vec<&String> = bn.outputs.iter().filter(|o| !o.is_empty()).collect();
    if outputs.len() != 1 || bn.outputs[0].is_empty() || get_int(bn_proto, "training_mode").unwrap_or(0) != 0
    {
        return Ok(Err("it is in training form (running statistics as outputs)".into()));
    }
    if get_int(bn_proto, "spatial").unwrap_or(1) == 0 {
        return Ok(Err("it has spatial=0 (statistics per activation, not per channel)".into()));
    }
    let epsilon = f64::from(float_attr(bn_proto, "epsilon", 1e-5));
    let x = &bn.inputs[0];
    let computed = matches!(graph.tensor(x).map(|t| t.source), Some(Source::Node(_)));
    let Some(layer) = graph.producer(x).filter(|_| computed) else {
        return Ok(Err(format!("its input `{x}` is not computed by a Conv, ConvTranspose or Gemm")));
    };
    let layer_proto = &graph.proto().node[layer.index];
    let kind = match (is_default_domain(layer), layer.op_type.as_str()) {
        (true, "Conv") => Layer::Conv,
        (true, "ConvTranspose") => {
            let group = get_int(layer_proto, "group").unwrap_or(1);
            match usize::try_from(group) {
                Ok(g) if g >= 1 => Layer::ConvTranspose { group: g },
                _ => return Ok(Err(format!("ConvTranspose `{}` has group={group}", layer.display_name()))),
            }
        }
        (true, "Gemm") => Layer::Gemm { trans_b: get_int(layer_proto, "transB").unwrap_or(0) != 0 },
        _ => {
            return Ok(Err(format!(
                "its input `{x}` comes from {} `{}`, not a Conv, ConvTranspose or Gemm",
                layer.op_type,
                layer.display_name()
            )));
        }
    };
    if layer.outputs.first() != Some(x) {
        return Ok(Err(format!("`{x}` is not the main output of `{}`", layer.display_name())));
    }
    if graph.outputs.contains(x) {
        return Ok(Err(format!("`{x}` is also a graph output")));
    }
    let others = other_readers(graph, x, bn.index);
    if !others.is_empty() {
        return Ok(Err(format!("`{x}` is also read by {others}")));
    }

    // The BN's parameters, per output channel.
    let mut params: Vec<Vec<f64>> = Vec::with_capacity(4);
    for name in &bn.inputs[1..5] {
        if !graph.tensor(name).is_some_and(|t| t.is_constant()) {
            return Ok(Err(format!("its parameter `{name}` is not a constant")));
        }
        let t = graph.constant(name)?;
        match float_values(&t) {
            Some(v) => params.push(v),
            None => return Ok(Err(format!("its parameter `{name}` is {}, not floating point", t.dtype))),
        }
    }

    // The layer's weight and bias.
    let weight_name = layer.inputs.get(1).filter(|n| !n.is_empty());
    let bias_name = layer.inputs.get(2).filter(|n| !n.is_empty());
    let Some(weight_name) = weight_name else {
        return Ok(Err(format!("`{}` has no weight input", layer.display_name())));
    };
    if bias_name == Some(weight_name) {
        return Ok(Err(format!("`{}` reads `{weight_name}` as weight and bias", layer.display_name())));
    }
    for name in std::iter::once(weight_name).chain(bias_name) {
        if !graph.tensor(name).is_some_and(|t| t.is_constant()) {
            return Ok(Err(format!("`{}` input `{name}` is not a constant", layer.display_name())));
        }
        if graph.outputs.contains(name) {
            return Ok(Err(format!("`{}` input `{name}` is also a graph output", layer.display_name())));
        }
        let others = other_readers(graph, name, layer.index);
        if !others.is_empty() {
            return Ok(Err(format!(
                "`{}` input `{name}` is shared with {others}; folding would change them too",
                layer.display_name()
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
    let w: Vec<f64> = float_values(&weight).unwrap_or_default();
    let bias = match bias_name {
        Some(name) => {
            let t = graph.constant(name)?;
            if t.dtype != DataType::Float {
                return Ok(Err(format!("bias `{name}` is {}; only float32 layers are folded", t.dtype)));
            }
            Some(t)
        }
        None => None,
    };

    // Output channels of the layer, and the channel of each weight element.
    let shape = &weight.shape;
    let (channels, channel_of): (usize, Box<dyn Fn(usize) -> usize>) = match kind {
        Layer::Conv => {
            if shape.len() < 2 {
                return Ok(Err(format!("weight `{weight_name}` has shape {shape:?}")));
            }
            let inner: usize = shape[1..].iter().product();
            (shape[0], Box::new(move |i| i / inner.max(1)))
        }
        Layer::ConvTranspose { group } => {
            if shape.len() < 2 || shape[0] % group != 0 {
                return Ok(Err(format!("weight `{weight_name}` has shape {shape:?} for group={group}")));
            }
            // [C_in, C_out/group, k…]: input channel ci of group ci / (C_in/group) feeds output
            // channel group·(C_out/group) + j.
            let (per_group_in, per_group_out) = (shape[0] / group, shape[1]);
            let inner: usize = shape[2..].iter().product();
            let row = (per_group_out * inner).max(1);
            let channel = move |i: usize| {
                let (ci, j) = (i / row, (i / inner.max(1)) % per_group_out.max(1));
                (ci / per_group_in.max(1)) * per_group_out + j
            };
            (group * per_group_out, Box::new(channel))
        }
        Layer::Gemm { trans_b } => {
            if shape.len() != 2 {
                return Ok(Err(format!("Gemm weight `{weight_name}` has shape {shape:?}")));
            }
            let (k, n) = if trans_b { (shape[1], shape[0]) } else { (shape[0], shape[1]) };
            let channel: Box<dyn Fn(usize) -> usize> =
                if trans_b { Box::new(move |i| i / k.max(1)) } else { Box::new(move |i| i % n.max(1)) };
            (n, channel)
        }
    };
    if let Some(p) = params.iter().zip(&bn.inputs[1..5]).find(|(p, _)| p.len() != channels) {
        return Ok(Err(format!(
            "its parameter `{}` has {} values for the {channels} output channels of `{}`",
            p.1,
            p.0.len(),
            layer.display_name()
        )));
    }

    // The layer's bias as a vector over channels (Gemm: beta·C), and the shape to write it in.
    let (b, bias_shape): (Vec<f64>, Vec<usize>) = match (&bias, kind) {
        (None, _) => (vec![0.0; channels], vec![channels]),
        (Some(t), Layer::Gemm { .. }) => {
            let beta = f64::from(float_attr(layer_proto, "beta", 1.0));
            let c = float_values(t).unwrap_or_default();
            let name = bias_name.map(String::as_str).unwrap_or_default();
            match c.len() {
                1 if t.shape.iter().all(|&d| d == 1) && t.shape.len() <= 1 => {
                    (vec![beta * c[0]; channels], vec![channels])
                }
                len if len == channels && (t.shape.len() == 1 || t.shape == [1, channels]) => {
                    (c.iter().map(|v| beta * v).collect(), t.shape.clone())
                }
                _ => {
                    return Ok(Err(format!(
                        "Gemm bias `{name}` has shape {:?}; only a scalar or [{channels}] is folded",
                        t.shape
                    )));
                }
            }
        }
        (Some(t), _) => {
            let c = float_values(t).unwrap_or_default();
            if c.len() != channels {
                return Ok(Err(format!(
                    "bias `{}` has {} values for {channels} output channels",
                    bias_name.map(String::as_str).unwrap_or_default(),
                    c.len()
                )));
            }
            (c, t.shape.clone())
        }
    };

    let [scale, beta_bn, mean, var] = [&params[0], &params[1], &params[2], &params[3]];
    let mut s = Vec::with_capacity(channels);
    for c in 0..channels {
        let denom = var[c] + epsilon;
        if denom.is_nan() || denom <= 0.0 {
            return Ok(Err(format!("var + epsilon is {denom} for channel {c}")));
        }
        s.push(scale[c] / denom.sqrt());
    }
    let new_w: Vec<f64> = w.iter().enumerate().map(|(i, v)| v * s[channel_of(i)]).collect();
    let new_b: Vec<f64> = (0..channels).map(|c| (b[c] - mean[c]) * s[c] + beta_bn[c]).collect();

    // The layer as it will be.
    let mut node = layer_proto.clone();
    node.output[0] = bn.outputs[0].clone();
    let bias_out = match bias_name {
        Some(name) => name.clone(),
        None => {
            let stem = if layer.name.is_empty() { x.as_str() } else { layer.name.as_str() };
            let name = fresh_name(graph, taken, &format!("{stem}_bias"));
            node.input.resize(2, String::new());
            node.input.push(name.clone());
            name
        }
    };
    if let Layer::Gemm { .. } = kind {
        for a in node.attribute.iter_mut().filter(|a| a.name() == "beta") {
            a.f = Some(1.0);
        }
    }
    let mut replaced = vec![weight_name.clone()];
    replaced.extend(bias_name.cloned());
    Ok(Ok(Fold {
        bn: bn.index,
        layer: layer.index,
        node,
        replaced,
        initializers: vec![
            float_tensor(weight_name, &weight.shape, &new_w),
            float_tensor(&bias_out, &bias_shape, &new_b),
        ],
    }))
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
