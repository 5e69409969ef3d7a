//! Patterns that defeat one uniform activation grid, found in the graph (and, for masks, in the
//! calibrated ranges) and given their own precision before encodings are chosen — anchors.md
//! "Patterns that break the anchors", 1 and 3. Each [`Finding`] names its pattern, the tensors it
//! takes off the default and what was done, for the summary and the report.
//!
//! A finding never touches a tensor whose class holds a given encoding (overrides, QAT): what the
//! user fixed wins. [`apply`] turns findings into [`Layout::own_precision`], the one thing
//! [`crate::assign`] reads from here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ptq_ir::{DataType, Graph, Node};

use crate::rules::{Layout, MAC_OPS, Role};
use crate::{Error, FloatReason, GivenEncodings, Histogram, MinMax, calibration};

/// `|v|` from which a float value is a sentinel ("minus infinity" written as a number), not data.
///
/// Exporters write an attention mask's −∞ as `f32::MIN` (−3.4028e38, what `torch.finfo(float32)
/// .min` gives) or as −1e30..−1e38. Nothing computed from signal comes near: squaring any value
/// above 1.9e19 already overflows f32, so a tensor at 1e30 can only be carried, not computed
/// with; a uint8 grid over it has steps of 1e36 (every real score rounds to 0) and a uint16 one
/// overflows to −∞ in DequantizeLinear (NaN after the next Mul). Smaller sentinels (−1e4, −1e9)
/// are also plausible data magnitudes (a power spectrum of int16-scaled audio reaches 1e9), so
/// they are left to calibration.
pub const MASKING_MAGNITUDE: f64 = 1e30;

/// The bitwidth of tensors on a square-sum path when activations are narrower.
pub const SQUARE_SUM_BITWIDTH: u8 = 16;

/// What a finding does to its tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Left float, for this reason, at this float bitwidth (`None`: `--float_bitwidth`).
    Float { reason: FloatReason, bitwidth: Option<u8> },
    /// Quantized at this bitwidth, from the tensor's own calibrated range.
    Bits(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pattern {
    /// A constant or activation reaching [`MASKING_MAGNITUDE`] (anchors.md pattern 1).
    MaskingValue,
    /// Squares summed or averaged before a square root: a power spectrum, a variance
    /// (anchors.md pattern 3).
    SquareSum,
    /// Activations with isolated outliers that no multiply-accumulate layer reads: a
    /// transformer's residual stream, whose outlier channel on a few tokens reaches 200 where
    /// the rest stays near 1 (anchors.md pattern 2). At 8 bits either the outliers are clipped
    /// or the bulk loses its levels; at 16 both keep theirs, and no MAC leaves 8 bit.
    Outliers,
    /// A transformer's residual stream where no multiply-accumulate layer reads it: what a layer
    /// norm normalises (LayerNormalization's input, or the `x` of a decomposed `x − mean(x)`) and
    /// the branches an Add sums into it. Its outlier channels set the scale that the norm divides
    /// out again, so at 8 bits the other channels keep a few levels; at 16 they keep theirs, and
    /// no MAC leaves 8 bit.
    ResidualStream,
}

impl Pattern {
    pub fn name(self) -> &'static str {
        match self {
            Pattern::MaskingValue => "masking value",
            Pattern::SquareSum => "square sum before a square root",
            Pattern::Outliers => "isolated outliers outside multiply-accumulate inputs",
            Pattern::ResidualStream => "residual stream",
        }
    }
}

/// One occurrence of a pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub pattern: Pattern,
    /// Where it was found: the tensor where the masking value enters, or the square root's node.
    pub at: String,
    /// The tensors given `precision`, in topological order.
    pub tensors: Vec<String>,
    pub precision: Precision,
}

impl Finding {
    /// What was done, in one line: "`/model/Constant_13_output_0` and 4 tensors reaching
    /// |x| ≥ 1e30 stay float".
    pub fn describe(&self) -> String {
        let others = self.tensors.len().saturating_sub(1);
        let and = |what: &str| match others {
            0 => String::new(),
            1 => format!(" and 1 {what}"),
            n => format!(" and {n} {what}s"),
        };
        let first = self.tensors.first().map_or(String::new(), |t| format!("`{t}`"));
        match (self.pattern, self.precision) {
            (Pattern::MaskingValue, Precision::Float { .. }) => {
                format!("{first}{} reaching |x| ≥ {MASKING_MAGNITUDE:.0e} stay float", and("tensor"))
            }
            (_, Precision::Float { .. }) => format!("{first}{} stay float", and("tensor")),
            (Pattern::Outliers, Precision::Bits(bits)) => {
                format!("{first}{} with isolated outliers at {bits} bit", and("tensor"))
            }
            (Pattern::ResidualStream, Precision::Bits(bits)) => {
                format!("{first}{} entering a layer norm at {bits} bit", and("tensor"))
            }
            (_, Precision::Bits(bits)) => {
                format!("{first}{} before `{}` at {bits} bit", and("tensor"), self.at)
            }
        }
    }
}

/// Every finding in a calibrated model: masking values (from `ranges`, the calibrated range of
/// each float activation) and square sums, leaving out tensors whose class holds a `given`
/// encoding and tensors without a class (fused away, or not data).
pub fn find(
    graph: &Graph,
    layout: &Layout,
    ranges: &BTreeMap<String, MinMax>,
    given: &GivenEncodings,
    act_bitwidth: u8,
) -> Result<Vec<Finding>, Error> {
    let mut found = masking_values(graph, layout, ranges)?;
    found.extend(square_sums(graph, act_bitwidth));
    let free = |t: &String| match layout.roles.get(t) {
        Some(Role::Activation { class }) => {
            !layout.classes[*class].members.iter().any(|m| given.contains_key(m))
        }
        _ => false,
    };
    for f in &mut found {
        f.tensors.retain(free);
    }
    found.retain(|f| !f.tensors.is_empty());
    Ok(found)
}

/// Activation classes that no Conv, ConvTranspose, Gemm or MatMul reads as an operand and that
/// 8 bits serve badly, when activations are narrower than 16 bits: the residual stream
/// ([`Pattern::ResidualStream`]) and those with isolated outliers ([`calibration::has_outliers`],
/// [`Pattern::Outliers`]). One finding per class, at 16 bit; classes with a given encoding, a
/// fixed range (Sigmoid, Softmax) or a precision of their own already are left alone.
pub fn sixteen_bit_activations(
    graph: &Graph,
    layout: &Layout,
    histograms: &BTreeMap<String, Histogram>,
    given: &GivenEncodings,
    act_bitwidth: u8,
) -> Vec<Finding> {
    if act_bitwidth >= WIDE_BITWIDTH {
        return Vec::new();
    }
    let operand = |m: &String| {
        graph
            .consumers(m)
            .any(|n| MAC_OPS.contains(&n.op_type.as_str()) && n.inputs.iter().take(2).any(|i| i == m))
    };
    let outliers = |m: &String| histograms.get(m).is_some_and(calibration::has_outliers);
    layout
        .classes
        .iter()
        .enumerate()
        .filter(|(c, class)| {
            !layout.own_precision.contains_key(c)
                && class.fixed_range.is_none()
                && !class.members.iter().any(|m| given.contains_key(m) || operand(m))
        })
        .filter_map(|(_, class)| {
            let pattern = if class.members.iter().any(|m| residual_stream(graph, m)) {
                Pattern::ResidualStream
            } else if class.members.iter().any(outliers) {
                Pattern::Outliers
            } else {
                return None;
            };
            let tensors: Vec<String> =
                class.members.iter().filter(|m| histograms.contains_key(*m)).cloned().collect();
            let at = class.members[0].clone();
            (!tensors.is_empty()).then_some(Finding {
                pattern,
                at,
                tensors,
                precision: Precision::Bits(WIDE_BITWIDTH),
            })
        })
        .collect()
}

/// Whether `x` is normalised by a layer norm, or summed by an Add into what is.
fn residual_stream(graph: &Graph, x: &String) -> bool {
    normalised(graph, x)
        || graph
            .consumers(x)
            .any(|n| n.op_type == "Add" && n.outputs.first().is_some_and(|o| normalised(graph, o)))
}

/// Whether a layer norm normalises `x`: a LayerNormalization's input, or `x − ReduceMean(x)`.
fn normalised(graph: &Graph, x: &String) -> bool {
    graph.consumers(x).any(|n| match n.op_type.as_str() {
        "LayerNormalization" => n.inputs.first() == Some(x),
        "ReduceMean" => n.outputs.first().is_some_and(|mean| {
            graph
                .consumers(mean)
                .any(|s| s.op_type == "Sub" && s.inputs.first() == Some(x) && s.inputs.get(1) == Some(mean))
        }),
        _ => false,
    })
}

/// The bitwidth of [`sixteen_bit_activations`]' classes.
pub const WIDE_BITWIDTH: u8 = 16;

/// Records each finding's precision on the classes of its tensors. A class with two findings
/// takes float over a bitwidth, and the wider bitwidth of two.
pub fn apply(layout: &mut Layout, findings: &[Finding]) {
    for f in findings {
        for t in &f.tensors {
            let Some(Role::Activation { class }) = layout.roles.get(t) else { continue };
            let slot = layout.own_precision.entry(*class).or_insert(f.precision);
            *slot = stronger(*slot, f.precision);
        }
    }
}

/// Of two precisions asked for one encoding, the one that loses less.
pub fn stronger(a: Precision, b: Precision) -> Precision {
    match (a, b) {
        (Precision::Float { .. }, _) => a,
        (_, Precision::Float { .. }) => b,
        (Precision::Bits(x), Precision::Bits(y)) => Precision::Bits(x.max(y)),
    }
}

/// Masking values: float constants of the layout's classes and calibrated activations that
/// reach [`MASKING_MAGNITUDE`]. One finding per place where such values enter the graph (a
/// constant, or an activation none of whose producer's inputs reaches it), holding every
/// reaching tensor downstream of it; all stay float32, so the real values around the mask keep
/// their grid and the sentinel stays exact.
pub fn masking_values(
    graph: &Graph,
    layout: &Layout,
    ranges: &BTreeMap<String, MinMax>,
) -> Result<Vec<Finding>, Error> {
    let huge = |v: f32| f64::from(v.abs()) >= MASKING_MAGNITUDE;
    let mut reaching: BTreeSet<&str> = BTreeSet::new();
    for m in layout.classes.iter().flat_map(|c| &c.members) {
        let range = match ranges.get(m) {
            Some(r) => Some(*r),
            None if is_float_constant(graph, m) => {
                let t = graph.constant(m).map_err(|source| Error::Constant { tensor: m.clone(), source })?;
                t.to_f32().map(|v| MinMax::of(&v))
            }
            None => None,
        };
        if range.is_some_and(|r| !r.is_empty() && (huge(r.min) || huge(r.max))) {
            reaching.insert(m);
        }
    }
    let order = topological_positions(graph);
    let mut sources: Vec<&str> = reaching
        .iter()
        .copied()
        .filter(|t| graph.producer(t).is_none_or(|p| !p.inputs.iter().any(|i| reaching.contains(i.as_str()))))
        .collect();
    sources.sort_by_key(|t| (order.get(t).copied().unwrap_or(0), *t));
    let mut claimed: BTreeSet<&str> = BTreeSet::new();
    let mut found = Vec::new();
    for source in sources {
        if !claimed.insert(source) {
            continue;
        }
        let mut tensors = vec![source.to_owned()];
        let mut frontier = vec![source];
        while let Some(t) = frontier.pop() {
            for out in graph.consumers(t).flat_map(|n| &n.outputs) {
                if reaching.contains(out.as_str()) && claimed.insert(out) {
                    tensors.push(out.clone());
                    frontier.push(out);
                }
            }
        }
        tensors[1..].sort_by_key(|t| (order.get(t.as_str()).copied().unwrap_or(0), t.clone()));
        found.push(Finding {
            pattern: Pattern::MaskingValue,
            at: source.to_owned(),
            tensors,
            // No float16 holds 1e30 (its largest is 65504): under `--float_bitwidth 16` the Cast
            // would make the mask −∞, and 0·(−∞) is NaN at every real token.
            precision: Precision::Float { reason: FloatReason::MaskingValue, bitwidth: Some(32) },
        });
    }
    Ok(found)
}

/// Square sums: walking back from a square root (`Sqrt`, `Pow` with exponent ±0.5) through sums,
/// means, scaling by constants and reshapes to squares (`Pow` with exponent 2, `Mul(x, x)`,
/// `ReduceSumSquare`). Read from the graph alone, so the opset that a 16-bit tensor needs can be
/// chosen before calibration.
///
/// The squares and their sums get [`SQUARE_SUM_BITWIDTH`]: a power spans many decades (silero's
/// STFT power 1e-13..39, median 1e-4: 92 % of it is below half a uint8 step and becomes 0), and
/// the square root turns that loss into a large one on every small magnitude. The square root's
/// own output keeps the default: it spans half the decades, and it is what the next layer reads,
/// so at 16 bits it would take that layer's MACs along. Measured (per-channel weights, eval
/// SQNR of the main output): silero_vad_16k 10.7 dB all at 8 bit, 24.5 with the squares and sum
/// at 16 bit, 24.9 with the Sqrt output too (but then its first encoder conv, 36 % of the MACs,
/// reads 16 bits); minilm_l3 with its LayerNorms decomposed 6.84 dB with the statistics path
/// at 16 bit, 6.86 with the standard deviation too, −7.8 all at 8 bit. Leaving the path float
/// instead, like a fused LayerNorm, measured no better (24.6 and 6.81 dB) and is not integer.
pub fn square_sums(graph: &Graph, act_bitwidth: u8) -> Vec<Finding> {
    if act_bitwidth >= SQUARE_SUM_BITWIDTH {
        return Vec::new();
    }
    let order = topological_positions(graph);
    let mut found = Vec::new();
    for node in graph.nodes() {
        let is_root = match node.op_type.as_str() {
            "Sqrt" => true,
            "Pow" => node.inputs.get(1).is_some_and(|e| constant_is(graph, e, &[0.5, -0.5])),
            _ => false,
        };
        let Some(input) = node.inputs.first().filter(|_| is_root) else { continue };
        let mut tensors = Vec::new();
        if !square_sum(graph, input, &mut tensors) {
            continue;
        }
        tensors.retain(|t| maybe_float(graph, t));
        tensors.sort_by_key(|t| (order.get(t.as_str()).copied().unwrap_or(0), t.clone()));
        tensors.dedup();
        found.push(Finding {
            pattern: Pattern::SquareSum,
            at: node.display_name(),
            tensors,
            precision: Precision::Bits(SQUARE_SUM_BITWIDTH),
        });
    }
    found
}

/// Whether `tensor` is a sum of squares (scaled, reshaped); if so its path, walking back from
/// the square root, joins `path`.
fn square_sum(graph: &Graph, tensor: &str, path: &mut Vec<String>) -> bool {
    let kept = path.len();
    let ok = square_sum_step(graph, tensor, path);
    if ok {
        path.push(tensor.to_owned());
    } else {
        path.truncate(kept);
    }
    ok
}

fn square_sum_step(graph: &Graph, tensor: &str, path: &mut Vec<String>) -> bool {
    let Some(node) = graph.producer(tensor) else { return false };
    let constant = |i: &String| graph.tensor(i).is_some_and(|t| t.is_constant());
    let input = |k: usize| node.inputs.get(k).filter(|i| !i.is_empty());
    match node.op_type.as_str() {
        "Pow" => input(1).is_some_and(|e| constant_is(graph, e, &[2.0])),
        "Mul" if node.inputs.len() == 2 && node.inputs[0] == node.inputs[1] => true,
        "ReduceSumSquare" => true,
        "Mul" => scaled(node, &constant).is_some_and(|x| square_sum(graph, x, path)),
        "Div" => match (input(0), input(1)) {
            (Some(x), Some(c)) if constant(c) => square_sum(graph, x, path),
            _ => false,
        },
        // An epsilon may be added; every other term must be a square sum itself.
        "Add" | "Sum" => {
            let terms: Vec<&String> = node.inputs.iter().filter(|i| !i.is_empty() && !constant(i)).collect();
            !terms.is_empty() && terms.into_iter().all(|t| square_sum(graph, t, path))
        }
        "ReduceSum" | "ReduceMean" | "Reshape" | "Transpose" | "Squeeze" | "Unsqueeze" | "Flatten"
        | "Identity" => input(0).is_some_and(|x| square_sum(graph, x, path)),
        _ => false,
    }
}

/// For a product of one constant and one activation, the activation.
fn scaled<'a>(node: &'a Node, constant: &dyn Fn(&String) -> bool) -> Option<&'a String> {
    match &node.inputs[..] {
        [a, b] if constant(b) && !constant(a) => Some(a),
        [a, b] if constant(a) && !constant(b) => Some(b),
        _ => None,
    }
}

/// Whether constant `name` holds only values from `allowed` (an exponent, as a scalar or not).
fn constant_is(graph: &Graph, name: &str, allowed: &[f32]) -> bool {
    graph.tensor(name).is_some_and(|t| t.is_constant())
        && graph
            .constant(name)
            .ok()
            .and_then(|t| t.to_f32())
            .is_some_and(|v| !v.is_empty() && v.iter().all(|x| allowed.contains(x)))
}

fn is_float_constant(graph: &Graph, name: &str) -> bool {
    graph.tensor(name).is_some_and(|t| t.is_constant() && t.dtype == Some(DataType::Float))
}

fn maybe_float(graph: &Graph, name: &str) -> bool {
    graph.tensor(name).is_some_and(|t| t.dtype.is_none_or(|d| d == DataType::Float))
}

/// Each node output's position in the graph's topological order (inputs and constants: 0).
fn topological_positions(graph: &Graph) -> HashMap<&str, usize> {
    graph.nodes().enumerate().flat_map(|(k, n)| n.outputs.iter().map(move |o| (o.as_str(), k + 1))).collect()
}
