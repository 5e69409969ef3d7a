//! The closing summary of `ptq quantize` (issue 3: bitwidths, what stayed float and why, SQNR, time).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use ptq_algos::{Fold, Skipped, Smoothing};
use ptq_ir::{DataType, Graph};
use ptq_pipeline::shares::Shares;
use ptq_pipeline::simulate::OutputSqnr;
use ptq_quant::patterns::Finding;
use ptq_quant::rules::{Layout, Role};
use ptq_quant::{Assignment, FloatReason, Kind};

/// A tensor the model holds as float that is written without an encoding, and why.
pub struct LeftFloat {
    /// The report's `origin`.
    pub origin: &'static str,
    /// The summary's phrase for the group.
    pub why: &'static str,
    pub kind: Kind,
}

/// Every float tensor left without an encoding: the summary counts them, the report lists them,
/// so the two always agree.
pub fn left_floats<'a>(
    graph: &Graph,
    layout: &Layout,
    observed_float: impl Iterator<Item = &'a String>,
    a: &Assignment,
) -> BTreeMap<String, LeftFloat> {
    let floats = &a.encodings.floats;
    let mut left = BTreeMap::new();
    for (name, f) in floats {
        let why = match f.reason {
            FloatReason::Given => "kept float by the given encodings",
            FloatReason::Fallback => "float fallback (no encoding given or propagated)",
            FloatReason::Coupled => {
                "float with their layer (Conv/Gemm/MatMul output, weight or bias is float)"
            }
            FloatReason::MaskingValue => "masking values (|x| ≥ 1e30, see patterns)",
        };
        left.insert(name.clone(), LeftFloat { origin: f.reason.name(), why, kind: f.kind });
    }
    let unencoded = |t: &str| a.encodings.get(t).is_none() && !floats.contains_key(t);
    for name in layout.fused.iter().filter(|t| unencoded(t)) {
        let why = "outputs fused into the activation that follows (Conv→Relu, Add→Relu, …)";
        left.insert(name.clone(), LeftFloat { origin: "fused", why, kind: Kind::Activation });
    }
    for t in graph.tensors().filter(|t| t.is_constant() && t.dtype == Some(DataType::Float)) {
        if unencoded(&t.name) {
            let why = "constants that are not data (shapes, bounds, exponents, norm statistics)";
            left.insert(t.name.clone(), LeftFloat { origin: "not data", why, kind: Kind::Param });
        }
    }
    for name in observed_float.filter(|t| unencoded(t)) {
        let why = "tensors without calibration data";
        left.entry(name.clone()).or_insert(LeftFloat { origin: "no data", why, kind: Kind::Activation });
    }
    left
}

pub struct Summary {
    /// Folded follower op type → count.
    folded: BTreeMap<&'static str, usize>,
    /// BatchNormalizations left in the model: (node, why it could not be folded).
    unfolded: Vec<(String, String)>,
    /// (bitwidth, kind) → count.
    by_bitwidth: BTreeMap<(u8, &'static str), usize>,
    by_origin: BTreeMap<&'static str, usize>,
    /// reason → count, for float tensors left without an encoding.
    left_float: BTreeMap<&'static str, usize>,
    /// How many of those run at 16 bit (Cast pairs).
    half_floats: usize,
    split_groups: Vec<(String, f64)>,
    saturated_biases: Vec<(String, usize)>,
    adjusted_weights: Vec<(String, usize)>,
    sqnr: Vec<OutputSqnr>,
    /// How ranges were set: (activation method, weight method, activations clipped).
    ranges: Option<(String, String, usize)>,
    elapsed: Duration,
    /// One line per pattern found: its name and what was done.
    patterns: Vec<(&'static str, String)>,
    shares: Shares,
}

impl Summary {
    pub fn new(
        layout: &Layout,
        left: &BTreeMap<String, LeftFloat>,
        a: &Assignment,
        sqnr: Vec<OutputSqnr>,
        elapsed: Duration,
    ) -> Summary {
        let mut by_bitwidth = BTreeMap::new();
        let mut by_origin = BTreeMap::new();
        for (name, t) in &a.encodings.tensors {
            let kind = match (t.kind, layout.roles.get(name)) {
                (_, Some(Role::Weight { .. })) => "weights",
                (_, Some(Role::Bias { .. })) => "biases",
                (Kind::Param, _) => "other constants",
                (Kind::Activation, _) => "activations",
            };
            *by_bitwidth.entry((t.encoding.bitwidth, kind)).or_insert(0) += 1;
            *by_origin.entry(t.encoding.origin.name()).or_insert(0) += 1;
        }
        let mut left_float = BTreeMap::new();
        for f in left.values() {
            *left_float.entry(f.why).or_insert(0) += 1;
        }
        let half = a.encodings.floats.values().filter(|f| f.bitwidth == 16).count();
        Summary {
            folded: BTreeMap::new(),
            unfolded: Vec::new(),
            by_bitwidth,
            by_origin,
            left_float,
            half_floats: half,
            split_groups: a.split_groups.clone(),
            saturated_biases: a.saturated_biases.clone(),
            adjusted_weights: a.adjusted_weights.clone(),
            sqnr,
            ranges: None,
            elapsed,
            patterns: Vec::new(),
            shares: Shares::default(),
        }
    }

    pub fn set_patterns(&mut self, found: &[Finding], smoothed: &[Smoothing], shares: Shares) {
        self.patterns = found.iter().map(|f| (f.pattern.name(), f.describe())).collect();
        self.patterns
            .extend(smoothed.iter().map(|s| ("activation outliers into MatMul (SmoothQuant)", s.describe())));
        self.shares = shares;
    }

    pub fn set_folds(&mut self, folds: &[Fold]) {
        for f in folds {
            *self.folded.entry(f.kind.op_type()).or_default() += 1;
        }
    }

    pub fn set_unfolded(&mut self, skipped: &[Skipped]) {
        self.unfolded = skipped.iter().map(|s| (s.node.clone(), s.reason.clone())).collect();
    }

    pub fn set_ranges(&mut self, r: &crate::encodings_file::Ranges) {
        let clipped = crate::encodings_file::clipped(r).len();
        self.ranges = Some((r.activations.to_string(), r.weights.to_string(), clipped));
    }

    pub fn render(&self, model: &Path, side: &[&Path]) -> String {
        let mut lines = Vec::new();
        let mut files: Vec<String> = vec![model.display().to_string()];
        files.extend(side.iter().map(|p| p.display().to_string()));
        let written = files.join(", ");
        lines.push(format!("ptq quantize: wrote {written} in {:.2} s", self.elapsed.as_secs_f64()));
        let total: usize = self.by_bitwidth.values().sum();
        let parts: Vec<String> =
            self.by_bitwidth.iter().map(|((bits, kind), n)| format!("{n} {kind} at {bits} bit")).collect();
        lines.push(format!("  quantized  {total} tensors: {}", parts.join(", ")));
        let origins: Vec<String> = self.by_origin.iter().map(|(o, n)| format!("{o} {n}")).collect();
        lines.push(format!("  origin     {}", origins.join(", ")));
        if let Some((act, weights, clipped)) = &self.ranges {
            let act = if act == "auto" {
                "auto (sqnr search without isolated outliers; graph outputs and the scores entering Softmax/Sigmoid keep their observed range)"
            } else {
                act
            };
            lines.push(format!(
                "  ranges     activations {act}, {clipped} narrower than observed; weights {weights} (the report \
                 lists each tensor's observed and chosen range)"
            ));
        }
        if !self.folded.is_empty() {
            let parts: Vec<String> = self.folded.iter().map(|(op, n)| format!("{n} {op}")).collect();
            lines.push(format!(
                "  folded     {} into the Conv/ConvTranspose/Gemm/MatMul layers before them (the report lists each)",
                parts.join(", ")
            ));
        }
        for (node, why) in &self.unfolded {
            lines.push(format!(
                "  not folded BatchNormalization `{node}`: {why}; it stays in the model, quantized as an op of its own"
            ));
        }
        if self.left_float.is_empty() {
            lines.push("  float      none".into());
        } else {
            let n: usize = self.left_float.values().sum();
            let mut parts: Vec<String> =
                self.left_float.iter().map(|(why, n)| format!("{n} {why}")).collect();
            if self.half_floats > 0 {
                parts.push(format!("{} of them run at 16 bit (Cast pairs)", self.half_floats));
            }
            lines.push(format!("  float      {n} tensors left float: {}", parts.join("; ")));
        }
        for (pattern, what) in &self.patterns {
            lines.push(format!("  pattern    {pattern}: {what}"));
        }
        if !self.shares.macs.is_empty() || !self.shares.activations.is_empty() {
            let percent = |share: f64| format!("{:.1} %", 100.0 * share);
            let macs: u64 = self.shares.macs.values().sum();
            let mut parts: Vec<String> = self
                .shares
                .macs
                .keys()
                .map(|&at| format!("{} {}", percent(self.shares.mac_share(at)), at.label()))
                .collect();
            if !self.shares.uncounted.is_empty() {
                parts.push(format!("{} layers with open shapes not counted", self.shares.uncounted.len()));
            }
            let acts: Vec<String> = self
                .shares
                .activations
                .keys()
                .map(|&at| format!("{} {}", percent(self.shares.activation_share(at)), at.label()))
                .collect();
            lines.push(format!(
                "  precision  MACs ({}): {}; activation tensors: {}",
                mac_count(macs),
                if parts.is_empty() { "none".into() } else { parts.join(", ") },
                acts.join(", ")
            ));
        }
        for (node, ratio) in &self.split_groups {
            lines.push(format!(
                "  groups     `{node}`: input ranges differ {ratio:.1}× in width (> {}×), each keeps its own encoding",
                ptq_quant::GROUP_WIDTH_RATIO
            ));
        }
        for (bias, n) in &self.saturated_biases {
            lines.push(format!(
                "  warning    bias `{bias}`: {n} value(s) past its int32 range, clamped; \
                 --adjust_bias_encoding widens per-channel weight scales to fit"
            ));
        }
        for (weight, n) in &self.adjusted_weights {
            lines.push(format!("  adjusted   `{weight}`: {n} channel scale(s) widened to fit their biases"));
        }
        if self.sqnr.is_empty() {
            lines.push("  SQNR       not measured: float fallback has no samples".into());
        }
        for s in &self.sqnr {
            let note = if s.quantized { "" } else { " (float output)" };
            let plural = if s.samples == 1 { "" } else { "s" };
            let over = match (s.eval_list, s.samples < s.of) {
                (true, _) => format!("all {} sample{plural} of --eval_list", s.samples),
                (false, true) => format!(
                    "{} of the {} samples, spread over --input_list (--eval_list measures every sample of a list)",
                    s.samples, s.of
                ),
                (false, false) => format!("all {} sample{plural} of --input_list", s.samples),
            };
            lines.push(format!("  SQNR       {}: {:.2} dB vs float on {over}{note}", s.name, s.db));
        }
        lines.join("\n")
    }
}

/// A MAC count in the unit that reads best: `548.2 k`, `12.3 M`, `1.2 G`.
fn mac_count(n: u64) -> String {
    let n = n as f64;
    match n {
        _ if n >= 1e9 => format!("{:.1} G", n / 1e9),
        _ if n >= 1e6 => format!("{:.1} M", n / 1e6),
        _ if n >= 1e3 => format!("{:.1} k", n / 1e3),
        _ => format!("{n}"),
    }
}
