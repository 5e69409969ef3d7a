//! SmoothQuant-style scale migration (Xiao et al. 2023): an activation `X` whose channels
//! (its last axis) differ wildly in range, read by MatMul/Gemm layers with constant weights,
//! is divided per channel by `s` and the layers' weight rows are multiplied by it, so
//! `X·W = (X/s)·(diag(s)·W)` and the float model computes the same values.
//!
//! `s_k = max|X_k|^α / max|W_k,:|^(1−α)` (the paper's formula, the weight maximum taken over
//! every layer reading `X`), clamped to [`SCALE_RANGE`]; a channel never seen (or all zero)
//! keeps `s = 1`.
//!
//! The division is only ever folded into `X`'s producer, where that is exact and adds no op:
//! a LayerNormalization over the last axis (its γ and β are divided by `s`) or a Mul of `X`'s
//! other input by a constant that is a scalar or varies along the last axis only (the constant
//! becomes `c/s`). Anything else is left alone — in particular no Mul is inserted before the
//! layers: ptq quantizes every activation, so an inserted Mul reads `X`'s own per-tensor grid
//! and cannot undo its error (measured on minilm_l3, see the pipeline's `smooth` module). `X`
//! is also left alone when any reader is not such a layer (its values would change), when it
//! is a graph output, when a weight or the producer's constant is shared or is a graph output,
//! and when `X`, a weight or that constant carries a given encoding (never break one).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use bytes::Bytes;
use ptq_ir::{DataType, Graph, Node, Patch, Source, Tensor, get_int};
use ptq_onnx::proto::{ModelProto, TensorProto};

use crate::Error;

/// The clamp on each channel's migration scale.
pub const SCALE_RANGE: (f64, f64) = (1e-5, 1e5);

/// How scales are chosen, and where.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SmoothOptions {
    /// The migration strength α: 0 leaves activations as they are, 1 moves all of their range
    /// into the weights.
    pub alpha: f64,
    /// `X` is smoothed only when its largest channel maximum is at least this many times the
    /// median channel's: without outliers there is nothing to migrate.
    pub min_ratio: f64,
}

impl Default for SmoothOptions {
    fn default() -> Self {
        SmoothOptions { alpha: 0.5, min_ratio: 8.0 }
    }
}

/// An activation that can be smoothed exactly: its producer can absorb `1/s`, every reader is
/// a layer whose weight can absorb `s`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub tensor: String,
    /// How many channels its last axis has.
    pub channels: usize,
}

/// One activation smoothed.
#[derive(Debug, Clone, PartialEq)]
pub struct Smoothing {
    pub tensor: String,
    /// The node whose constants took `1/s`, and its op type.
    pub producer: String,
    pub producer_op: String,
    /// The weights that took `s`, in node order.
    pub weights: Vec<String>,
    /// Largest channel maximum over the median one.
    pub ratio: f64,
    /// The smallest and largest `s`.
    pub scales: (f64, f64),
}

impl Smoothing {
    /// "`X` (channel max 16.0× the median): s in [0.52, 6.9] migrated into `W1`, `W2`"
    pub fn describe(&self) -> String {
        let weights: Vec<String> = self.weights.iter().map(|w| format!("`{w}`")).collect();
        format!(
            "`{}` (channel max {:.1}× the median): s in [{:.3}, {:.3}] divided out of {} `{}`, \
             migrated into {}",
            self.tensor,
            self.ratio,
            self.scales.0,
            self.scales.1,
            self.producer_op,
            self.producer,
            weights.join(", ")
        )
    }
}

/// The model with its outlier activations smoothed, and what was done.
#[derive(Debug, Clone)]
pub struct Smoothed {
    pub model: ModelProto,
    pub smoothed: Vec<Smoothing>,
}

/// Every activation of `graph` that [`smooth`] could rewrite exactly, in topological order.
/// `keep`: the tensors that carry a given encoding.
pub fn candidates(graph: &Graph, keep: &dyn Fn(&str) -> bool) -> Result<Vec<Candidate>, Error> {
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    for node in graph.nodes() {
        for x in &node.outputs {
            if seen.insert(x.clone())
                && let Some(plan) = Plan::of(graph, x, keep)?
            {
                found.push(Candidate { tensor: x.clone(), channels: plan.channels });
            }
        }
    }
    Ok(found)
}

/// Smooths every candidate in `maxima` (per channel `max|X_k|` over the calibration samples)
/// whose channel ratio reaches `options.min_ratio`. Tensor and node names are kept: the
/// producer's constants and the weights keep their names and take new values.
pub fn smooth(
    model: &ModelProto,
    model_dir: &Path,
    maxima: &BTreeMap<String, Vec<f32>>,
    options: SmoothOptions,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Smoothed, Error> {
    let graph = Graph::new(model, model_dir)?;
    let mut patch = Patch::new();
    let mut smoothed = Vec::new();
    for (x, max) in maxima {
        let Some(plan) = Plan::of(&graph, x, keep)? else { continue };
        if max.len() != plan.channels {
            continue;
        }
        let ratio = outlier_ratio(max);
        if ratio < options.min_ratio {
            continue;
        }
        let weights: Vec<(Tensor, Vec<f64>)> = plan
            .layers
            .iter()
            .map(|l| {
                let w = graph.constant(&l.weight)?;
                let v = f64_values(&w);
                Ok((w, v))
            })
            .collect::<Result<_, Error>>()?;
        // max|W_k,:| over every layer reading X.
        let mut w_max = vec![0.0f64; plan.channels];
        for (layer, (w, v)) in plan.layers.iter().zip(&weights) {
            for (i, value) in v.iter().enumerate() {
                let k = layer.row_of(i, &w.shape);
                w_max[k] = w_max[k].max(value.abs());
            }
        }
        let s: Vec<f64> = max
            .iter()
            .zip(&w_max)
            .map(|(&a, &w)| {
                let a = f64::from(a);
                if !(a.is_finite() && a > 0.0 && w > 0.0) {
                    return 1.0;
                }
                (a.powf(options.alpha) / w.powf(1.0 - options.alpha)).clamp(SCALE_RANGE.0, SCALE_RANGE.1)
            })
            .collect();
        for (layer, (w, v)) in plan.layers.iter().zip(&weights) {
            let scaled: Vec<f64> =
                v.iter().enumerate().map(|(i, x)| x * s[layer.row_of(i, &w.shape)]).collect();
            replace_constant(&graph, &mut patch, &layer.weight, &w.shape, &scaled);
        }
        for c in &plan.divided {
            let t = graph.constant(c)?;
            let v = f64_values(&t);
            let (shape, divided): (Vec<usize>, Vec<f64>) = if v.len() == 1 {
                // A scalar becomes a vector along the last axis, which broadcasts the same way.
                (vec![plan.channels], s.iter().map(|s| v[0] / s).collect())
            } else {
                (t.shape.clone(), v.iter().enumerate().map(|(i, x)| x / s[i % plan.channels]).collect())
            };
            replace_constant(&graph, &mut patch, c, &shape, &divided);
        }
        let producer = graph.node(plan.producer);
        smoothed.push(Smoothing {
            tensor: x.clone(),
            producer: producer.display_name(),
            producer_op: producer.op_type.clone(),
            weights: plan.layers.iter().map(|l| l.weight.clone()).collect(),
            ratio,
            scales: s.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v))),
        });
    }
    // Report in graph order, not name order.
    let order: BTreeMap<&str, usize> =
        graph.nodes().flat_map(|n| n.outputs.iter().map(move |o| (o.as_str(), n.index))).collect();
    smoothed.sort_by_key(|s| order.get(s.tensor.as_str()).copied());
    let model = if smoothed.is_empty() { model.clone() } else { patch.apply(model)? };
    Ok(Smoothed { model, smoothed })
}

/// Largest channel maximum over the median channel's (0 when the median is 0 and nothing is
/// seen, infinite when only a few channels carry anything).
pub fn outlier_ratio(max: &[f32]) -> f64 {
    let mut sorted: Vec<f64> = max.iter().map(|&v| f64::from(v)).filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return 0.0;
    }
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let top = sorted[sorted.len() - 1];
    if top <= 0.0 {
        0.0
    } else if median <= 0.0 {
        f64::INFINITY
    } else {
        top / median
    }
}

/// A layer reading `X` and its weight layout.
struct Reader {
    weight: String,
    /// Gemm with transB = 1: the weight is `[N, K]`, channel k is its column.
    transposed: bool,
}

impl Reader {
    /// The input channel (row of `W` in `X·W`) of the weight's `i`-th element.
    fn row_of(&self, i: usize, shape: &[usize]) -> usize {
        if self.transposed { i % shape[1].max(1) } else { i / shape[1].max(1) }
    }
}

/// The exact rewrite of one activation.
struct Plan {
    producer: usize,
    channels: usize,
    layers: Vec<Reader>,
    /// The producer's constants to divide by `s` (γ and β; the Mul's constant).
    divided: Vec<String>,
}

impl Plan {
    /// The rewrite of `x`, `None` when it cannot be made exactly.
    fn of(graph: &Graph, x: &str, keep: &dyn Fn(&str) -> bool) -> Result<Option<Plan>, Error> {
        let Some(Source::Node(p)) = graph.tensor(x).map(|t| t.source) else { return Ok(None) };
        let producer = graph.node(p);
        // Before IR 4 every initializer must also be a graph input; the rewrite adds none.
        if graph.ir_version < 4
            || keep(x)
            || graph.outputs.iter().any(|o| o == x)
            || producer.outputs.first().map(String::as_str) != Some(x)
            || !is_default_domain(producer)
        {
            return Ok(None);
        }
        let readers: Vec<&Node> = graph.consumers(x).collect();
        if readers.is_empty() {
            return Ok(None);
        }
        let mut layers = Vec::new();
        let mut channels = None;
        for r in &readers {
            let Some((reader, k)) = reader(graph, r, x, keep)? else { return Ok(None) };
            if channels.is_some_and(|c| c != k) {
                return Ok(None);
            }
            channels = Some(k);
            layers.push(reader);
        }
        let Some(channels) = channels else { return Ok(None) };
        // A weight read twice (two readers, or a reader's own other input) would be scaled twice.
        let distinct: BTreeSet<&str> = layers.iter().map(|l| l.weight.as_str()).collect();
        if distinct.len() != layers.len() {
            return Ok(None);
        }
        let Some(divided) = producer_constants(graph, producer, x, channels, keep)? else {
            return Ok(None);
        };
        Ok(Some(Plan { producer: p, channels, layers, divided }))
    }
}

/// `node` reading `x` as a MatMul/Gemm whose constant float weight can take `s`: the reader
/// and the channel count `K`.
fn reader(
    graph: &Graph,
    node: &Node,
    x: &str,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Option<(Reader, usize)>, Error> {
    if !is_default_domain(node) || node.inputs.first().map(String::as_str) != Some(x) {
        return Ok(None);
    }
    let proto = &graph.proto().node[node.index];
    let transposed = match node.op_type.as_str() {
        "MatMul" => false,
        "Gemm" if get_int(proto, "transA").unwrap_or(0) == 0 => get_int(proto, "transB").unwrap_or(0) != 0,
        _ => return Ok(None),
    };
    let Some(w) = node.inputs.get(1).filter(|w| w.as_str() != x) else { return Ok(None) };
    if !owned_constant(graph, w, node.index, keep) {
        return Ok(None);
    }
    let t = graph.constant(w)?;
    if t.dtype != DataType::Float || t.shape.len() != 2 {
        return Ok(None);
    }
    let k = if transposed { t.shape[1] } else { t.shape[0] };
    Ok(Some((Reader { weight: w.clone(), transposed }, k)))
}

/// The constants of `producer` that divide `x` by `s` exactly, `None` when there are none.
fn producer_constants(
    graph: &Graph,
    producer: &Node,
    x: &str,
    channels: usize,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Option<Vec<String>>, Error> {
    let proto = &graph.proto().node[producer.index];
    let per_channel = |name: &str| -> Result<bool, Error> {
        let t = graph.constant(name)?;
        let lead_ones = t.shape.iter().rev().skip(1).all(|&d| d == 1);
        Ok(matches!(t.dtype, DataType::Float)
            && (t.len() == 1 || (t.shape.last() == Some(&channels) && lead_ones)))
    };
    match producer.op_type.as_str() {
        "LayerNormalization" => {
            // Normalised over the last axis only, so γ and β are per channel of it.
            let rank = graph.tensor(x).and_then(|t| t.shape.as_ref()).map(Vec::len);
            let axis = get_int(proto, "axis").unwrap_or(-1);
            if !(axis == -1 || rank.is_some_and(|r| axis == r as i64 - 1)) {
                return Ok(None);
            }
            let mut constants = Vec::new();
            for c in producer.inputs.iter().skip(1).take(2).filter(|c| !c.is_empty()) {
                if !owned_constant(graph, c, producer.index, keep) || !per_channel(c)? {
                    return Ok(None);
                }
                constants.push(c.clone());
            }
            // γ itself must be there to carry 1/s.
            Ok((producer.inputs.get(1).is_some_and(|g| !g.is_empty())).then_some(constants))
        }
        "Mul" => {
            let [a, b] = producer.inputs.as_slice() else { return Ok(None) };
            let constant = |n: &str| graph.tensor(n).is_some_and(|t| t.is_constant());
            let c = match (constant(a), constant(b)) {
                (false, true) => b,
                (true, false) => a,
                // A product of two computed tensors (GELU's `x·0.5 · (1 + erf(·))`): dividing
                // either factor divides it, so a factor only this Mul reads passes `1/s` on to
                // its own producer's constants.
                (false, false) => {
                    for factor in [a, b] {
                        if let Some(divided) = factor_constants(graph, producer, factor, channels, keep)? {
                            return Ok(Some(divided));
                        }
                    }
                    return Ok(None);
                }
                (true, true) => return Ok(None),
            };
            if !owned_constant(graph, c, producer.index, keep) || !per_channel(c)? {
                return Ok(None);
            }
            Ok(Some(vec![c.clone()]))
        }
        _ => Ok(None),
    }
}

/// The constants that divide `factor`, an input of the Mul `product`, by `s` exactly: when
/// `factor` is only that Mul's (once), no graph output, carries no given encoding, and its
/// producer can take `1/s` itself.
fn factor_constants(
    graph: &Graph,
    product: &Node,
    factor: &str,
    channels: usize,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Option<Vec<String>>, Error> {
    let Some(Source::Node(q)) = graph.tensor(factor).map(|t| t.source) else { return Ok(None) };
    let inner = graph.node(q);
    let owned = !keep(factor)
        && !graph.outputs.iter().any(|o| o == factor)
        && inner.outputs.first().map(String::as_str) == Some(factor)
        && is_default_domain(inner)
        && graph.consumers(factor).all(|n| n.index == product.index)
        && product.inputs.iter().filter(|i| i.as_str() == factor).count() == 1;
    if !owned {
        return Ok(None);
    }
    producer_constants(graph, inner, factor, channels, keep)
}

/// A constant that only node `reader` reads (once), that is no graph output and carries no
/// given encoding: changing it changes nothing else.
fn owned_constant(graph: &Graph, name: &str, reader: usize, keep: &dyn Fn(&str) -> bool) -> bool {
    graph.tensor(name).is_some_and(|t| t.is_constant())
        && !keep(name)
        && !graph.outputs.iter().any(|o| o == name)
        && graph.consumers(name).all(|n| n.index == reader)
        && graph.node(reader).inputs.iter().filter(|i| i.as_str() == name).count() == 1
}

fn is_default_domain(n: &Node) -> bool {
    n.domain.is_empty() || n.domain == "ai.onnx"
}

fn f64_values(t: &Tensor) -> Vec<f64> {
    t.to_f32().unwrap_or_default().into_iter().map(f64::from).collect()
}

/// Writes `values` as float32 initializer `name`, replacing its initializer or `Constant` node.
fn replace_constant(graph: &Graph, patch: &mut Patch, name: &str, shape: &[usize], values: &[f64]) {
    patch.remove_constant(graph, name);
    let raw: Vec<u8> = values.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect();
    patch.add_initializer(TensorProto {
        name: Some(name.to_owned()),
        data_type: Some(DataType::Float.to_onnx()),
        dims: shape.iter().map(|&d| d as i64).collect(),
        raw_data: Some(Bytes::from(raw)),
        ..Default::default()
    });
}
