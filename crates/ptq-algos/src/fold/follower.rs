//! The followers a layer can absorb, each read as `y = s[c]·x + t[c]` per output channel `c`.

use std::fmt;

use ptq_ir::{Graph, Node, Source, get_int};

use super::chain::constant_value;
use super::{float_attr, float_values, is_default_domain};
use crate::Error;

/// The op folded into a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Follower {
    BatchNormalization,
    /// `Add(x, C)` or `Add(C, x)`: the bias grows by C.
    Add,
    /// `Sub(x, C)` (t = −C) or `Sub(C, x)` (s = −1, t = C).
    Sub,
    /// `Mul(x, C)` or `Mul(C, x)`: the weight is scaled by C per output channel.
    Mul,
}

impl Follower {
    /// The follower kind of `node`, when it is one.
    pub(super) fn of(node: &Node) -> Option<Follower> {
        if !is_default_domain(node) {
            return None;
        }
        match node.op_type.as_str() {
            "BatchNormalization" => Some(Follower::BatchNormalization),
            "Add" => Some(Follower::Add),
            "Sub" => Some(Follower::Sub),
            "Mul" => Some(Follower::Mul),
            _ => None,
        }
    }

    pub fn op_type(self) -> &'static str {
        match self {
            Follower::BatchNormalization => "BatchNormalization",
            Follower::Add => "Add",
            Follower::Sub => "Sub",
            Follower::Mul => "Mul",
        }
    }

    /// The layer ops this follower folds into. MatMul has no bias input, so it takes a scale
    /// only; and its channel axis is the last one, where a BatchNormalization normalises axis 1.
    pub(super) fn layers(self) -> &'static [&'static str] {
        match self {
            Follower::Mul => &["Conv", "ConvTranspose", "Gemm", "MatMul"],
            _ => &["Conv", "ConvTranspose", "Gemm"],
        }
    }

    /// Only BatchNormalizations left alone are worth a line: an Add or Mul after a layer is most
    /// often simply not a bias or scale (a residual, an attention mask).
    pub(super) fn reports_skips(self) -> bool {
        self == Follower::BatchNormalization
    }

    /// The input slot of `node` that reads the layer's output.
    pub(super) fn layer_slot(self, graph: &Graph, node: &Node) -> Result<usize, String> {
        if self == Follower::BatchNormalization {
            let proto = &graph.proto().node[node.index];
            if node.inputs.len() != 5 || node.inputs.iter().any(String::is_empty) {
                return Err(format!("it has {} inputs, expected X, scale, B, mean, var", node.inputs.len()));
            }
            let outputs = node.outputs.iter().filter(|o| !o.is_empty()).count();
            if outputs != 1 || node.outputs[0].is_empty() || get_int(proto, "training_mode").unwrap_or(0) != 0
            {
                return Err("it is in training form (running statistics as outputs)".into());
            }
            if get_int(proto, "spatial").unwrap_or(1) == 0 {
                return Err("it has spatial=0 (statistics per activation, not per channel)".into());
            }
            return Ok(0);
        }
        if node.inputs.len() != 2 || node.outputs.len() != 1 || node.outputs[0].is_empty() {
            return Err(format!("it has {} inputs and {} outputs", node.inputs.len(), node.outputs.len()));
        }
        let from_layer = |slot: usize| {
            let input = &node.inputs[slot];
            matches!(graph.tensor(input).map(|t| t.source), Some(Source::Node(_)))
                && graph
                    .producer(input)
                    .is_some_and(|p| is_default_domain(p) && self.layers().contains(&p.op_type.as_str()))
        };
        (0..2).find(|&slot| from_layer(slot)).ok_or_else(|| "neither input comes from a layer".into())
    }

    /// `s` and `t` of the follower over the layer's output channels, `Ok(Err(reason))` when the
    /// follower is not per-channel affine in the layer's output.
    pub(super) fn affine(
        self,
        graph: &Graph,
        node: &Node,
        slot: usize,
        layer: &Geometry,
    ) -> Result<Result<Affine, String>, Error> {
        let channels = layer.channels;
        if self == Follower::BatchNormalization {
            let proto = &graph.proto().node[node.index];
            let epsilon = f64::from(float_attr(proto, "epsilon", 1e-5));
            let mut params: Vec<Vec<f64>> = Vec::with_capacity(4);
            for name in &node.inputs[1..5] {
                if !graph.tensor(name).is_some_and(|t| t.is_constant()) {
                    return Ok(Err(format!("its parameter `{name}` is not a constant")));
                }
                let t = graph.constant(name)?;
                let Some(v) = float_values(&t) else {
                    return Ok(Err(format!("its parameter `{name}` is {}, not floating point", t.dtype)));
                };
                if v.len() != channels {
                    return Ok(Err(format!(
                        "its parameter `{name}` has {} values for the {channels} output channels of `{}`",
                        v.len(),
                        layer.name
                    )));
                }
                params.push(v);
            }
            let [scale, beta, mean, var] = [&params[0], &params[1], &params[2], &params[3]];
            let mut s = Vec::with_capacity(channels);
            for c in 0..channels {
                let denom = var[c] + epsilon;
                if denom.is_nan() || denom <= 0.0 {
                    return Ok(Err(format!("var + epsilon is {denom} for channel {c}")));
                }
                s.push(scale[c] / denom.sqrt());
            }
            let t = (0..channels).map(|c| beta[c] - mean[c] * s[c]).collect();
            return Ok(Ok(Affine { scale: Some(s), shift: Some(t) }));
        }

        let name = &node.inputs[1 - slot];
        let Some(constant) = constant_value(graph, name)? else {
            return Ok(Err(format!("`{name}` is not a constant")));
        };
        let Some(values) = float_values(&constant) else {
            return Ok(Err(format!("`{name}` is {}, not floating point", constant.dtype)));
        };
        let Some(c) = layer.per_channel(&constant.shape, &values) else {
            return Ok(Err(format!(
                "`{name}` of shape {:?} does not broadcast per output channel of `{}`",
                constant.shape, layer.name
            )));
        };
        Ok(Ok(match (self, slot) {
            (Follower::Add, _) => Affine { scale: None, shift: Some(c) },
            (Follower::Sub, 0) => Affine { scale: None, shift: Some(c.iter().map(|v| -v).collect()) },
            (Follower::Sub, _) => Affine { scale: Some(vec![-1.0; channels]), shift: Some(c) },
            _ => Affine { scale: Some(c), shift: None },
        }))
    }
}

impl fmt::Display for Follower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.op_type())
    }
}

/// `y = scale[c]·x + shift[c]`; `None` stands for 1 and 0.
pub(super) struct Affine {
    pub scale: Option<Vec<f64>>,
    pub shift: Option<Vec<f64>>,
}

/// Where a layer's output channels are, for deciding whether a constant broadcasts per channel.
pub(super) struct Geometry {
    /// The layer node's display name, for messages.
    pub name: String,
    pub channels: usize,
    /// The highest rank a constant may have without changing the output's rank.
    pub max_rank: usize,
    /// The channel axis counted from the last one (0: the last axis).
    pub axis_from_end: usize,
}

impl Geometry {
    /// The values of a constant of `shape` broadcast against the layer's output, one per channel,
    /// when it leaves the output's shape alone and varies along the channel axis only. Shapes are
    /// aligned on the right, as ONNX broadcasts: a `[C]` constant after a 4-D Conv lines up
    /// with the width, not the channels.
    fn per_channel(&self, shape: &[usize], values: &[f64]) -> Option<Vec<f64>> {
        if shape.len() > self.max_rank {
            return None;
        }
        let mut along_channels = false;
        for (from_end, &d) in shape.iter().rev().enumerate() {
            if from_end == self.axis_from_end && d == self.channels {
                along_channels = true;
            } else if d != 1 {
                return None;
            }
        }
        match values.len() {
            n if along_channels && n == self.channels => Some(values.to_vec()),
            1 => Some(vec![values[0]; self.channels]),
            _ => None,
        }
    }
}
