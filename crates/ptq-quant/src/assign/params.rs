//! Weight and bias encodings: per-channel ranges by the weight method, int32 biases at
//! input scale × weight scale (spec §3.2), and the bias checks around them.

use ptq_ir::Graph;
use rayon::prelude::*;

use super::constant_values;
use crate::{
    Config, Encoding, Encodings, Error, Histogram, Method, MinMax, Origin, QuantSpec, Schema, calibration,
    param_min_width,
};

/// Bias values whose integer lies outside the encoding's grid (they are clamped when baked).
pub(super) fn saturated(values: &[f32], e: &Encoding) -> usize {
    let (lo, hi) = e.grid();
    let channel = |i: usize| if e.scales.len() == values.len() { i } else { 0 };
    values
        .iter()
        .enumerate()
        .filter(|&(i, &v)| {
            let q = (f64::from(v) / f64::from(e.scales[channel(i)])).round();
            q < lo as f64 || q > hi as f64
        })
        .count()
}

/// `--adjust_bias_encoding` (spec §3.2, per-channel weights only): widens weight channel `c`
/// until `|bias_c| ≤ s_in·s_w,c·(2^31 − 1)`, so the derived int32 bias holds it. Returns how
/// many channels changed.
pub(super) fn fit_weight_to_bias(
    bias: &[f32],
    input: &str,
    weight: &str,
    encodings: &mut Encodings,
) -> usize {
    let Some(s_in) = encodings.get(input).filter(|x| x.scales.len() == 1).map(|x| x.scales[0]) else {
        return 0;
    };
    let Some(w) = encodings.tensors.get_mut(weight).map(|t| &mut t.encoding) else { return 0 };
    if !w.is_per_channel() || w.scales.len() != bias.len() {
        return 0;
    }
    let mut changed = 0;
    for (s_w, &b) in w.scales.iter_mut().zip(bias) {
        let needed = f64::from(b.abs()) / (f64::from(s_in) * f64::from(i32::MAX));
        if f64::from(*s_w) < needed {
            // One ulp above the bound, so rounding in the f32 product cannot undo it.
            *s_w = f32::from_bits((needed as f32).to_bits() + 1);
            changed += 1;
        }
    }
    changed
}

/// How many of a constant's `values` (of `shape`) `e` clips: further than half a step past the
/// ends of their channel's grid.
pub fn clipped_values(e: &Encoding, values: &[f32], shape: &[usize]) -> usize {
    let clipped = |c: usize, values: &[f32]| {
        let (lo, hi) = e.clip_limits(c);
        values.iter().filter(|&&v| f64::from(v) < lo || f64::from(v) > hi).count()
    };
    match e.axis.filter(|&a| a < shape.len() && shape[a] == e.scales.len()) {
        Some(axis) => {
            channel_values(values, shape, axis).iter().enumerate().map(|(c, v)| clipped(c, v)).sum()
        }
        None => clipped(0, values),
    }
}

/// The values of each slice along `axis` of a C-order tensor.
pub(super) fn channel_values(values: &[f32], shape: &[usize], axis: usize) -> Vec<Vec<f32>> {
    let channels = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let mut slices = vec![Vec::with_capacity(values.len() / channels.max(1)); channels];
    for (i, chunk) in values.chunks(inner.max(1)).enumerate() {
        slices[i % channels].extend_from_slice(chunk);
    }
    slices
}

/// The range `method` chooses for some weight values (min-max: the observed range).
pub(super) fn weight_range(values: &[f32], method: Method, spec: &QuantSpec) -> (f64, f64) {
    let m = if method == Method::MinMax {
        MinMax::of(values)
    } else {
        calibration::choose(&Histogram::of(values), method, spec)
    };
    if m.is_empty() { (0.0, 0.0) } else { (f64::from(m.min), f64::from(m.max)) }
}

pub(super) fn weight_encoding(
    graph: &Graph,
    name: &str,
    (axis, per_channel): (usize, bool),
    spec: &QuantSpec,
    method: Method,
) -> Result<Encoding, Error> {
    let (values, shape) = constant_values(graph, name)?;
    if per_channel && axis < shape.len() {
        // Per-channel weights are symmetric on every backend (spec §3.2 Granularities).
        let spec = match spec.schema {
            Schema::Asymmetric => QuantSpec { schema: Schema::Symmetric, ..*spec },
            _ => *spec,
        };
        let slices: Vec<(f64, f64)> = channel_values(&values, &shape, axis)
            .par_iter()
            .map(|c| weight_range(c, method, &spec))
            .collect();
        let widest = slices.iter().map(|(lo, hi)| hi.max(0.0) - lo.min(0.0)).fold(0.0, f64::max);
        let min_width = param_min_width(widest);
        return Ok(Encoding::from_ranges_wider_than(&slices, axis, min_width, &spec, Origin::Calibrated));
    }
    let (lo, hi) = weight_range(&values, method, spec);
    let min_width = param_min_width(hi.max(0.0) - lo.min(0.0));
    Ok(Encoding::from_range_wider_than(lo, hi, min_width, spec, Origin::Calibrated))
}

pub(super) fn bias_encoding(
    values: &[f32],
    (input, weight, row_layer): (&str, &str, bool),
    encodings: &Encodings,
    config: &Config,
) -> Encoding {
    let derived = match (config.bias_bitwidth, encodings.get(input), encodings.get(weight)) {
        (32, Some(x), Some(w)) if x.scales.len() == 1 => Some((x.scales[0], w)),
        _ => None,
    };
    let Some((input_scale, w)) = derived else {
        let m = MinMax::of(values);
        let (lo, hi) = if m.is_empty() { (0.0, 0.0) } else { (f64::from(m.min), f64::from(m.max)) };
        let spec = QuantSpec::new(config.bias_bitwidth, Schema::Symmetric);
        let min_width = param_min_width(hi.max(0.0) - lo.min(0.0));
        return Encoding::from_range_wider_than(lo, hi, min_width, &spec, Origin::Calibrated);
    };
    // Integer kernels accumulate input × weight products in int32 at scale s_in·s_w (spec §3.2).
    let per_channel =
        w.is_per_channel() && w.scales.len() == values.len() && (!row_layer || config.per_row_bias);
    let scales: Vec<f32> = if per_channel {
        w.scales.iter().map(|s| input_scale * s).collect()
    } else {
        vec![input_scale * w.scales.iter().copied().fold(0.0f32, f32::max)]
    };
    Encoding::int32_bias(scales, per_channel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kind, TensorEncoding};

    fn encodings(input_scale: f32, weight_scales: &[f32]) -> Encodings {
        let spec = QuantSpec::new(8, Schema::Symmetric);
        let mut e = Encodings::default();
        let x = Encoding {
            scales: vec![input_scale],
            ..Encoding::from_range(0.0, 1.0, &spec, Origin::Calibrated)
        };
        let ranges: Vec<(f64, f64)> = weight_scales.iter().map(|_| (-1.0, 1.0)).collect();
        let w = Encoding {
            scales: weight_scales.to_vec(),
            ..Encoding::from_ranges(&ranges, 0, &spec, Origin::Calibrated)
        };
        e.tensors.insert("x".into(), TensorEncoding { kind: Kind::Activation, encoding: x });
        e.tensors.insert("w".into(), TensorEncoding { kind: Kind::Param, encoding: w });
        e
    }

    /// Per channel, a value clips when it lies more than half a step past its channel's grid:
    /// channel 1's grid of ±1.27 clips 3, channel 0's of ±12.7 none.
    #[test]
    fn clipped_values_counts_per_channel_past_half_a_step() {
        let spec = QuantSpec::new(8, Schema::Symmetric);
        let e = Encoding::from_ranges(&[(-12.8, 12.7), (-1.28, 1.27)], 0, &spec, Origin::Override);
        let values = [5.0, -12.0, 0.0, 1.27, 1.274, 1.3, -1.5, 9.0];
        assert_eq!(clipped_values(&e, &values, &[2, 4]), 3);
        let whole = Encoding::from_range(-1.28, 1.27, &spec, Origin::Override);
        assert_eq!(clipped_values(&whole, &values, &[2, 4]), 5);
    }

    /// A channel whose weights are ~1e-9 gets a scale so small that its bias cannot be an int32
    /// at s_in·s_w; `--adjust_bias_encoding` widens just that channel until it fits.
    #[test]
    fn adjust_bias_widens_only_the_channels_that_overflow() {
        let config = Config { adjust_bias: true, ..Config::default() };
        let bias = [0.5f32, 100.0];
        let mut e = encodings(0.01, &[0.01, 1e-11]);
        let before = bias_encoding(&bias, ("x", "w", false), &e, &config);
        assert_eq!(saturated(&bias, &before), 1);
        assert_eq!(fit_weight_to_bias(&bias, "x", "w", &mut e), 1);
        let w = e.get("w").unwrap();
        assert_eq!(w.scales[0], 0.01);
        assert!(w.scales[1] > 1e-11);
        let after = bias_encoding(&bias, ("x", "w", false), &e, &config);
        assert_eq!(saturated(&bias, &after), 0);
    }
}
