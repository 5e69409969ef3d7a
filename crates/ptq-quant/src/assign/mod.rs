//! From a [`Layout`] and calibration ranges to one [`Encoding`] per tensor.

use std::collections::BTreeMap;

use ptq_ir::{DataType, Graph};

use crate::patterns::{Precision, stronger};
mod params;

pub use params::clipped_values;
use params::{bias_encoding, fit_weight_to_bias, saturated, weight_encoding};

use crate::rules::{Layout, Role};
use crate::{
    Encoding, Encodings, Error, FloatReason, FloatTensor, Given, GivenEncodings, Kind, MIN_RANGE, Method,
    MinMax, Observer, Origin, QuantSpec, Schema, TensorEncoding, param_min_width,
};

/// Concat-like groups whose widths differ by more than this keep separate encodings (Decision 10).
pub const GROUP_WIDTH_RATIO: f64 = 8.0;

/// The choices that shape every encoding.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub act: QuantSpec,
    pub weight: QuantSpec,
    /// 32: `scale = input scale × weight scale`; 8: the bias's own range (spec §3.2).
    pub bias_bitwidth: u8,
    /// Per-row Gemm/MatMul weights give per-row biases (`--enable_per_row_quantized_bias`).
    pub per_row_bias: bool,
    /// Enlarge a per-channel weight scale until its int32 bias fits (`--adjust_bias_encoding`).
    pub adjust_bias: bool,
    /// The bitwidth of tensors left float (`--float_bitwidth`, 32 or 16).
    pub float_bitwidth: u8,
    /// The bitwidth of float biases (`--float_bias_bitwidth`); `None`: their layer's.
    pub float_bias_bitwidth: Option<u8>,
    /// Weights stay quantized when their layer is float (`--keep_weights_quantized`, spec §1.0):
    /// in float fallback they are computed from their values; the bias goes float with the layer.
    pub keep_weights_quantized: bool,
    /// How activation ranges are chosen from calibration (`--act_quantizer_calibration`); the
    /// pipeline applies it before [`assign`].
    pub act_calibration: Method,
    /// How weight ranges are chosen from their values, per channel where per channel
    /// (`--param_quantizer_calibration`).
    pub param_calibration: Method,
}

/// ptq's defaults, DESIGN.md Decision 1: 8-bit asymmetric activations, 8-bit symmetric weights,
/// 32-bit biases, float tensors at 32 bits, and none of the options; ranges by [`Method::Auto`]
/// for activations and the sqnr search for weights (BENCHMARKS.md, "Range setting", measured
/// against min-max and every other method).
impl Default for Config {
    fn default() -> Self {
        Config {
            act: QuantSpec::new(8, Schema::Asymmetric),
            weight: QuantSpec::new(8, Schema::Symmetric),
            bias_bitwidth: 32,
            per_row_bias: false,
            adjust_bias: false,
            float_bitwidth: 32,
            float_bias_bitwidth: None,
            keep_weights_quantized: false,
            act_calibration: Method::Auto,
            param_calibration: Method::Sqnr,
        }
    }
}

/// Where the encodings of tensors without a given one come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Calibrated from data ("fill in the gaps", spec §0.1 step 2).
    Calibrate,
    /// Only propagated from given encodings; everything else float (`--enable_float_fallback`).
    FloatFallback,
}

/// The encodings and what the summary should say about them.
#[derive(Debug, Clone, Default)]
pub struct Assignment {
    pub encodings: Encodings,
    /// Groups left unmerged (node, width ratio between its widest and narrowest range).
    pub split_groups: Vec<(String, f64)>,
    /// int32 biases with values past their range (bias, how many), clamped when baked.
    pub saturated_biases: Vec<(String, usize)>,
    /// Weights whose channel scales `--adjust_bias_encoding` enlarged (weight, how many channels).
    pub adjusted_weights: Vec<(String, usize)>,
    /// Given encodings that disagree where one encoding is shared: (the tensor whose encoding
    /// the others take, a tensor keeping a different given one).
    pub conflicts: Vec<(String, String)>,
    /// Given encodings dropped because their layer runs float (the tensor, its layer's node,
    /// the float member that decided it).
    pub dropped_given: Vec<(String, String, String)>,
}

/// Computes every encoding: given ones are kept bit-exactly and propagated to the float tensors
/// that share them (data-invariant ops, Concat-like groups); the rest are calibrated from
/// `observed` (the range of every float tensor the engine saw; in float fallback, every tensor
/// known to be float, with an empty range) or, in float fallback, left float.
pub fn assign(
    graph: &Graph,
    layout: &Layout,
    observed: &BTreeMap<String, MinMax>,
    config: &Config,
    given: &GivenEncodings,
    mode: Mode,
) -> Result<Assignment, Error> {
    let mut out = Assignment::default();
    let fixed = |m: &str| match given.get(m).map(|g| &g.given) {
        Some(Given::Fixed(e)) => Some(e),
        _ => None,
    };
    let class_fixed: Vec<Option<(&String, &Encoding)>> =
        layout.classes.iter().map(|c| c.members.iter().find_map(|m| fixed(m).map(|e| (m, e)))).collect();
    let ranges = class_ranges(graph, layout, observed)?;
    let merged = merge_groups(layout, &ranges, &class_fixed, &mut out.split_groups);

    for (class, members) in layout.classes.iter().enumerate().map(|(i, c)| (i, &c.members)) {
        let root = merged.find(class);
        // A given encoding anywhere in the merged classes is shared by all of them, first first.
        let shared = merged.classes(root).find_map(|c| class_fixed[c]);
        let own = own_precision(layout, &merged, root);
        let spec = match own {
            Some(Precision::Bits(bitwidth)) => config.act.at_bitwidth(bitwidth),
            _ => config.act,
        };
        let calibrated = match (shared, mode) {
            (None, Mode::Calibrate) => merged.range(root, &ranges).map(|range| {
                let (lo, hi) = (f64::from(range.min), f64::from(range.max));
                let all_constant = merged.members(root, layout).all(|m| is_constant(graph, m));
                let min_width =
                    if all_constant { param_min_width(hi.max(0.0) - lo.min(0.0)) } else { MIN_RANGE };
                Encoding::from_range_wider_than(lo, hi, min_width, &spec, Origin::Calibrated)
            }),
            _ => None,
        };
        for (k, m) in members.iter().enumerate() {
            let kind = if is_constant(graph, m) { Kind::Param } else { Kind::Activation };
            // A pattern keeps the class float (a masking value); given encodings still win.
            if let (Some(Precision::Float { reason, bitwidth }), None, None) = (own, shared, given.get(m))
                && mode == Mode::Calibrate
                && (observed.contains_key(m) || is_float_constant(graph, m))
            {
                let bitwidth = bitwidth.unwrap_or(config.float_bitwidth);
                out.encodings.floats.insert(m.clone(), float(kind, bitwidth, reason));
                continue;
            }
            let encoding = match given.get(m).map(|g| &g.given) {
                Some(Given::Fixed(e)) => {
                    if let Some((owner, _)) = shared.filter(|(_, first)| *first != e) {
                        out.conflicts.push((owner.clone(), m.clone()));
                    }
                    e.clone()
                }
                Some(Given::Float { bitwidth }) => {
                    out.encodings.floats.insert(m.clone(), float(kind, *bitwidth, FloatReason::Given));
                    continue;
                }
                // "Quantize at this bitwidth" (spec §4.4): this tensor's own range, at that width.
                Some(g @ Given::Bitwidth { .. }) => {
                    let range = observed.get(m).copied().filter(|r| !r.is_empty() && mode == Mode::Calibrate);
                    let range = match range {
                        Some(r) => Some(r),
                        None if is_float_constant(graph, m) => {
                            Some(MinMax::of(&constant_values(graph, m)?.0))
                        }
                        None => None,
                    };
                    let Some(r) = range else {
                        if mode == Mode::FloatFallback {
                            let f = float(kind, config.float_bitwidth, FloatReason::Fallback);
                            out.encodings.floats.insert(m.clone(), f);
                        }
                        continue;
                    };
                    let spec = g.bitwidth_spec(&config.act).expect("a bitwidth entry");
                    let (lo, hi) = (f64::from(r.min), f64::from(r.max));
                    let min_width = if kind == Kind::Param {
                        param_min_width(hi.max(0.0) - lo.min(0.0))
                    } else {
                        MIN_RANGE
                    };
                    Encoding::from_range_wider_than(lo, hi, min_width, &spec, Origin::Calibrated)
                }
                // Only float tensors take a propagated encoding (in float fallback, `observed` holds
                // the tensors type inference found float, without ranges).
                _ if !(observed.contains_key(m) || is_float_constant(graph, m)) => continue,
                _ => match (shared, &calibrated) {
                    (Some((_, e)), _) => Encoding { origin: Origin::Propagated, ..e.clone() },
                    (None, Some(e)) if has_data(graph, observed, m) => {
                        let origin = if k == 0 { Origin::Calibrated } else { Origin::Propagated };
                        Encoding { origin, ..e.clone() }
                    }
                    (None, _) if mode == Mode::FloatFallback => {
                        let f = float(kind, config.float_bitwidth, FloatReason::Fallback);
                        out.encodings.floats.insert(m.clone(), f);
                        continue;
                    }
                    (None, _) => continue,
                },
            };
            out.encodings.tensors.insert(m.clone(), TensorEncoding { kind, encoding });
        }
    }

    for (name, role) in &layout.roles {
        if let Role::Weight { channel_axis, per_channel } = role {
            let encoding = match given.get(name).map(|g| &g.given) {
                Some(Given::Fixed(e)) => e.clone(),
                Some(Given::Float { bitwidth }) => {
                    out.encodings
                        .floats
                        .insert(name.clone(), float(Kind::Param, *bitwidth, FloatReason::Given));
                    continue;
                }
                Some(Given::Bitwidth { bitwidth, .. }) => {
                    let spec = config.weight.at_bitwidth(*bitwidth);
                    weight_encoding(
                        graph,
                        name,
                        (*channel_axis, *per_channel),
                        &spec,
                        config.param_calibration,
                    )?
                }
                None if mode == Mode::FloatFallback && !config.keep_weights_quantized => {
                    let f = float(Kind::Param, config.float_bitwidth, FloatReason::Fallback);
                    out.encodings.floats.insert(name.clone(), f);
                    continue;
                }
                None => weight_encoding(
                    graph,
                    name,
                    (*channel_axis, *per_channel),
                    &config.weight,
                    config.param_calibration,
                )?,
            };
            out.encodings.tensors.insert(name.clone(), TensorEncoding { kind: Kind::Param, encoding });
        }
    }
    for (name, role) in &layout.roles {
        if let Role::Bias { input, weight, row_layer } = role {
            let float_bias = |bits: u8| config.float_bias_bitwidth.unwrap_or(bits);
            let encoding = match given.get(name).map(|g| &g.given) {
                Some(Given::Fixed(e)) => e.clone(),
                Some(Given::Float { bitwidth }) => {
                    let f = float(Kind::Param, float_bias(*bitwidth), FloatReason::Given);
                    out.encodings.floats.insert(name.clone(), f);
                    continue;
                }
                _ => {
                    let (values, _) = constant_values(graph, name)?;
                    let derivable = out.encodings.get(input).is_some() && out.encodings.get(weight).is_some();
                    if mode == Mode::FloatFallback && !(derivable && config.bias_bitwidth == 32) {
                        let f = float(Kind::Param, float_bias(config.float_bitwidth), FloatReason::Fallback);
                        out.encodings.floats.insert(name.clone(), f);
                        continue;
                    }
                    if config.adjust_bias && fixed(weight).is_none() {
                        let widened = fit_weight_to_bias(&values, input, weight, &mut out.encodings);
                        if widened > 0 {
                            out.adjusted_weights.push((weight.clone(), widened));
                        }
                    }
                    let encoding =
                        bias_encoding(&values, (input, weight, *row_layer), &out.encodings, config);
                    let over = saturated(&values, &encoding);
                    if over > 0 {
                        out.saturated_biases.push((name.clone(), over));
                    }
                    encoding
                }
            };
            out.encodings.tensors.insert(name.clone(), TensorEncoding { kind: Kind::Param, encoding });
        }
    }
    // Given encodings on tensors the op rules leave alone (a QAT model's BatchNormalization
    // parameters, say) are kept too: every given encoding is kept.
    for (name, g) in given {
        if out.encodings.tensors.contains_key(name) || out.encodings.floats.contains_key(name) {
            continue;
        }
        let kind = if is_constant(graph, name) { Kind::Param } else { Kind::Activation };
        match &g.given {
            Given::Fixed(e) => {
                out.encodings.tensors.insert(name.clone(), TensorEncoding { kind, encoding: e.clone() });
            }
            Given::Float { bitwidth } => {
                out.encodings.floats.insert(name.clone(), float(kind, *bitwidth, FloatReason::Given));
            }
            Given::Bitwidth { .. } => {}
        }
    }
    couple_layers(graph, layout, config, &mut out);
    Ok(out)
}

/// The precision patterns ask for the classes merged into `root` (the stronger of two).
fn own_precision(layout: &Layout, merged: &Merged, root: usize) -> Option<Precision> {
    let asked = layout.own_precision.iter().filter(|(c, _)| merged.find(**c) == root);
    asked.map(|(_, p)| *p).reduce(stronger)
}

fn float(kind: Kind, bitwidth: u8, reason: FloatReason) -> FloatTensor {
    FloatTensor { kind, bitwidth, reason }
}

/// Spec §4.4: a Conv, ConvTranspose, Gemm or MatMul whose output, weight or bias is float is
/// float entirely (an op is either fixed-point or float). The float bitwidth is that of the
/// float member; the bias takes `--float_bias_bitwidth` when set.
fn couple_layers(graph: &Graph, layout: &Layout, config: &Config, out: &mut Assignment) {
    let encodings = &mut out.encodings;
    for node in graph.nodes() {
        let Some(weight) =
            node.inputs.get(1).filter(|w| matches!(layout.roles.get(*w), Some(Role::Weight { .. })))
        else {
            continue;
        };
        let bias = node.inputs.get(2).filter(|b| matches!(layout.roles.get(*b), Some(Role::Bias { .. })));
        let Some(first) = node.outputs.first() else { continue };
        // A fused output carries no encoding: its activation's output speaks for the layer.
        let next = graph.consumers(first).next().and_then(|n| n.outputs.first());
        let output = match next {
            Some(next) if layout.fused.contains(first) => next.clone(),
            _ => first.clone(),
        };
        let members: Vec<&String> = [Some(&output), Some(weight), bias].into_iter().flatten().collect();
        let Some((float_member, bits)) =
            members.iter().find_map(|m| encodings.floats.get(*m).map(|f| (*m, f.bitwidth)))
        else {
            continue;
        };
        for m in members {
            if config.keep_weights_quantized && m == weight {
                continue;
            }
            if let Some(t) = encodings.tensors.remove(m) {
                if matches!(t.encoding.origin, Origin::Override | Origin::Qat) {
                    out.dropped_given.push((m.clone(), node.display_name(), float_member.clone()));
                }
                let is_bias = Some(m) == bias;
                let bitwidth = if is_bias { config.float_bias_bitwidth.unwrap_or(bits) } else { bits };
                encodings.floats.insert(m.clone(), float(t.kind, bitwidth, FloatReason::Coupled));
            }
        }
    }
}

fn is_constant(graph: &Graph, name: &str) -> bool {
    graph.tensor(name).is_some_and(|t| t.is_constant())
}

fn has_data(graph: &Graph, observed: &BTreeMap<String, MinMax>, name: &str) -> bool {
    observed.get(name).is_some_and(|m| !m.is_empty()) || is_float_constant(graph, name)
}

fn is_float_constant(graph: &Graph, name: &str) -> bool {
    graph.tensor(name).is_some_and(|t| t.is_constant() && t.dtype == Some(DataType::Float))
}

fn constant_values(graph: &Graph, name: &str) -> Result<(Vec<f32>, Vec<usize>), Error> {
    let t = graph.constant(name).map_err(|source| Error::Constant { tensor: name.to_owned(), source })?;
    let values = t.to_f32().ok_or_else(|| Error::NotNumeric { tensor: name.to_owned(), dtype: t.dtype })?;
    Ok((values, t.shape))
}

/// Each class's range: the union of its members' (observed data, constant values, or the range
/// the op fixes).
fn class_ranges(
    graph: &Graph,
    layout: &Layout,
    observed: &BTreeMap<String, MinMax>,
) -> Result<Vec<Option<MinMax>>, Error> {
    layout
        .classes
        .iter()
        .map(|class| {
            let mut range = MinMax::default();
            if let Some((lo, hi)) = class.fixed_range {
                // The op's range is a ceiling, not the encoding: class scores that never pass 0.1
                // would keep a tenth of the grid's levels under [0, 1].
                for seen in class.members.iter().filter_map(|m| observed.get(m)) {
                    range.merge(seen);
                }
                let (lo, hi) = (lo as f32, hi as f32);
                return Ok(Some(if range.is_empty() {
                    MinMax { min: lo, max: hi, nonfinite: 0 }
                } else {
                    MinMax { min: range.min.max(lo), max: range.max.min(hi), nonfinite: 0 }
                }));
            }
            for m in &class.members {
                if let Some(seen) = observed.get(m) {
                    range.merge(seen);
                } else if is_float_constant(graph, m) {
                    // A constant holding NaN or Inf (a −Inf mask) fits no grid: it stays float.
                    let values = MinMax::of(&constant_values(graph, m)?.0);
                    if values.nonfinite == 0 {
                        range.merge(&values);
                    }
                }
            }
            Ok((!range.is_empty()).then_some(range))
        })
        .collect()
}

/// Union-find over classes, joined by the groups whose ranges are close enough.
struct Merged {
    parent: Vec<usize>,
}

impl Merged {
    fn find(&self, mut c: usize) -> usize {
        while self.parent[c] != c {
            c = self.parent[c];
        }
        c
    }

    /// The classes merged into `root`, in class order.
    fn classes(&self, root: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.parent.len()).filter(move |&c| self.find(c) == root)
    }

    /// Every tensor of the classes merged into `root`.
    fn members<'a>(&'a self, root: usize, layout: &'a Layout) -> impl Iterator<Item = &'a String> + 'a {
        layout
            .classes
            .iter()
            .enumerate()
            .filter(move |(c, _)| self.find(*c) == root)
            .flat_map(|(_, c)| &c.members)
    }

    fn range(&self, root: usize, ranges: &[Option<MinMax>]) -> Option<MinMax> {
        let mut r = MinMax::default();
        for (c, range) in ranges.iter().enumerate() {
            if let (true, Some(range)) = (self.find(c) == root, range) {
                r.merge(range);
            }
        }
        (!r.is_empty()).then_some(r)
    }
}

/// Joins each group's classes (Decision 10): always when one of them carries a given encoding
/// (the group takes the first one, propagation), else when their widths are within
/// [`GROUP_WIDTH_RATIO`].
fn merge_groups(
    layout: &Layout,
    ranges: &[Option<MinMax>],
    fixed: &[Option<(&String, &Encoding)>],
    split: &mut Vec<(String, f64)>,
) -> Merged {
    let mut merged = Merged { parent: (0..layout.classes.len()).collect() };
    for group in &layout.groups {
        let roots: Vec<usize> = group.classes.iter().map(|&c| merged.find(c)).collect();
        if group.classes.iter().any(|&c| fixed[c].is_some()) {
            for &r in &roots[1..] {
                let (a, b) = (merged.find(roots[0]), merged.find(r));
                merged.parent[b] = a;
            }
            continue;
        }
        let widths: Vec<f64> = roots
            .iter()
            .filter_map(|&r| merged.range(r, ranges))
            .map(|m| (f64::from(m.max.max(0.0)) - f64::from(m.min.min(0.0))).max(crate::MIN_RANGE))
            .collect();
        let (lo, hi) = widths.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &w| (lo.min(w), hi.max(w)));
        if widths.len() > 1 && hi / lo > GROUP_WIDTH_RATIO {
            split.push((group.node.clone(), hi / lo));
            continue;
        }
        for &r in &roots[1..] {
            let (a, b) = (merged.find(roots[0]), merged.find(r));
            merged.parent[b] = a;
        }
    }
    merged
}
