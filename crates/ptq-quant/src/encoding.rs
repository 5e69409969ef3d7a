//! `Encoding`: scale and zero point of one tensor, and the QNN math that computes them (spec §3.2).
//!
//! Inside ptq an encoding uses the ONNX convention `x̂ = (q − zero_point) · scale`; QNN's offset
//! (`o`, on the unsigned grid) exists only at the JSON boundary ([`Encoding::qnn_offset`]).

use std::fmt;

use ptq_ir::DataType;

use crate::{QuantSpec, Schema};

/// QNN's minimum range width: a tensor's range is widened to at least this (spec §3.2 Step A).
pub const MIN_RANGE: f64 = 0.01;

/// Where an encoding came from (reported per tensor in summaries and JSON reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    Override,
    Qat,
    Calibrated,
    Propagated,
    /// Derived from other encodings (bias: input scale × weight scale).
    Derived,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Origin::Override => "override",
            Origin::Qat => "qat",
            Origin::Calibrated => "calibrated",
            Origin::Propagated => "propagated",
            Origin::Derived => "derived",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fixed-point encoding: one (scale, zero point) per tensor, or per slice along `axis`.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoding {
    pub bitwidth: u8,
    /// Storage signedness: `int<b>` when true, `uint<b>` otherwise.
    pub signed: bool,
    pub symmetric: bool,
    /// The signed grid without its most negative level (`[-127, 127]` at 8 bit).
    pub strict: bool,
    /// A symmetric grid limited to `[min, max]` (`--restrict_quantization_steps`).
    pub restricted: Option<(i64, i64)>,
    pub scales: Vec<f32>,
    /// ONNX zero points, one per scale.
    pub zero_points: Vec<i64>,
    /// The channel axis of a per-channel encoding.
    pub axis: Option<usize>,
    pub origin: Origin,
}

impl Encoding {
    /// Step A + B of spec §3.2 for one observed range, per tensor.
    pub fn from_range(min: f64, max: f64, spec: &QuantSpec, origin: Origin) -> Encoding {
        Encoding::from_range_wider_than(min, max, MIN_RANGE, spec, origin)
    }

    /// As [`Encoding::from_range`], with `min_width` in place of QNN's [`MIN_RANGE`].
    ///
    /// ptq keeps QNN's 0.01 for activations but not for constants: a layer whose weights are
    /// all below 0.005 (a BatchNormalization folded into a convolution with huge inputs does
    /// this) would keep only a handful of levels. Constants use [`param_min_width`] instead.
    pub fn from_range_wider_than(
        min: f64,
        max: f64,
        min_width: f64,
        spec: &QuantSpec,
        origin: Origin,
    ) -> Encoding {
        let (scale, zp, signed, symmetric) = compute(min, max, min_width, spec);
        Encoding {
            bitwidth: spec.bitwidth,
            signed,
            symmetric,
            strict: spec.strict && signed,
            restricted: spec.restricted.filter(|_| signed),
            scales: vec![scale],
            zero_points: vec![zp],
            axis: None,
            origin,
        }
    }

    /// One encoding per slice along `axis` (per channel / per row). The slices share signedness:
    /// an unsigned-symmetric tensor is stored signed when any slice has negatives.
    pub fn from_ranges(ranges: &[(f64, f64)], axis: usize, spec: &QuantSpec, origin: Origin) -> Encoding {
        Encoding::from_ranges_wider_than(ranges, axis, MIN_RANGE, spec, origin)
    }

    /// As [`Encoding::from_ranges`], with `min_width` in place of QNN's [`MIN_RANGE`].
    pub fn from_ranges_wider_than(
        ranges: &[(f64, f64)],
        axis: usize,
        min_width: f64,
        spec: &QuantSpec,
        origin: Origin,
    ) -> Encoding {
        let spec = match spec.schema {
            Schema::UnsignedSymmetric if ranges.iter().any(|&(lo, _)| lo < 0.0) => {
                QuantSpec { schema: Schema::Symmetric, ..*spec }
            }
            _ => *spec,
        };
        let parts: Vec<_> = ranges.iter().map(|&(lo, hi)| compute(lo, hi, min_width, &spec)).collect();
        let (signed, symmetric) = parts.first().map(|p| (p.2, p.3)).unwrap_or((true, true));
        Encoding {
            bitwidth: spec.bitwidth,
            signed,
            symmetric,
            strict: spec.strict && signed,
            restricted: spec.restricted.filter(|_| signed),
            scales: parts.iter().map(|p| p.0).collect(),
            zero_points: parts.iter().map(|p| p.1).collect(),
            axis: Some(axis),
            origin,
        }
    }

    /// A 32-bit bias at `scales` (input scale × weight scale, spec §3.2): signed, zero point 0,
    /// per channel on axis 0 when `per_channel`.
    pub fn int32_bias(scales: Vec<f32>, per_channel: bool) -> Encoding {
        Encoding {
            bitwidth: 32,
            signed: true,
            symmetric: true,
            strict: false,
            restricted: None,
            zero_points: vec![0; scales.len()],
            axis: per_channel.then_some(0),
            scales,
            origin: Origin::Derived,
        }
    }

    pub fn is_per_channel(&self) -> bool {
        self.axis.is_some()
    }

    /// The full integer range of the storage type (what ONNX QuantizeLinear saturates to).
    pub fn storage_range(&self) -> (i64, i64) {
        let b = u32::from(self.bitwidth);
        if self.signed { (-(1i64 << (b - 1)), (1i64 << (b - 1)) - 1) } else { (0, (1i64 << b) - 1) }
    }

    /// The grid the encoding was computed for: the storage range, minus the lowest level when
    /// strict, or the restricted range.
    pub fn grid(&self) -> (i64, i64) {
        let (lo, hi) = self.storage_range();
        match self.restricted {
            Some(r) => r,
            None if self.strict => (lo + 1, hi),
            None => (lo, hi),
        }
    }

    /// The ONNX element type that stores this encoding's integers (2-bit: int8, DESIGN.md Decision 4).
    pub fn storage_type(&self) -> DataType {
        match (self.bitwidth, self.signed) {
            (2, _) => DataType::Int8,
            (4, true) => DataType::Int4,
            (4, false) => DataType::Uint4,
            (8, true) => DataType::Int8,
            (8, false) => DataType::Uint8,
            (16, true) => DataType::Int16,
            (16, false) => DataType::Uint16,
            (32, _) => DataType::Int32,
            (b, true) if b < 8 => DataType::Int8,
            (b, false) if b < 8 => DataType::Uint8,
            (_, true) => DataType::Int32,
            (_, false) => DataType::Uint32,
        }
    }

    /// QNN's offset on the unsigned grid for channel `c` (spec §3.1, §4.3): `−zp` for unsigned
    /// storage, `−zp − 2^(b−1)` for signed, `−zp − (2^(b−1) − 1)` for strict grids.
    pub fn qnn_offset(&self, c: usize) -> i64 {
        let zp = self.zero_points[c];
        if !self.signed {
            return -zp;
        }
        let half = 1i64 << (self.bitwidth - 1);
        match self.restricted {
            // Spec §3.2: the restricted grid's lowest level is its offset.
            Some((lo, _)) => lo - zp,
            None if self.strict => -zp - (half - 1),
            None => -zp - half,
        }
    }

    /// The representable range `[Δ·o, Δ·(o + steps)]` of channel `c`, as QNN reports it.
    pub fn min_max(&self, c: usize) -> (f64, f64) {
        let scale = f64::from(self.scales[c]);
        let (lo, hi) = self.grid();
        let zp = self.zero_points[c] as f64;
        (scale * (lo as f64 - zp), scale * (hi as f64 - zp))
    }

    /// The values channel `c` keeps: its grid's ends widened by half a step (a value past them is
    /// clipped, not rounded).
    pub fn clip_limits(&self, c: usize) -> (f64, f64) {
        let (lo, hi) = self.min_max(c);
        let half = 0.5 * f64::from(self.scales[c]);
        (lo - half, hi + half)
    }

    /// Quantizes one value of channel `c` onto the grid, rounding half away from zero (QNN; how
    /// ptq bakes weights into integers, DESIGN.md Decision 1).
    pub fn quantize(&self, c: usize, x: f32) -> i64 {
        let (lo, hi) = self.grid();
        let q = (f64::from(x) / f64::from(self.scales[c])).round() as i64 + self.zero_points[c];
        q.clamp(lo, hi)
    }

    pub fn dequantize(&self, c: usize, q: i64) -> f32 {
        (q - self.zero_points[c]) as f32 * self.scales[c]
    }

    /// What onnxruntime's QuantizeLinear → DequantizeLinear pair computes for `x` (f32, round
    /// half to even, saturating to the storage range): the simulation of an activation.
    pub fn fake_quant(&self, c: usize, x: f32) -> f32 {
        let (lo, hi) = self.storage_range();
        let scale = self.scales[c];
        let zp = self.zero_points[c] as f32;
        let q = ((x / scale).round_ties_even() + zp).clamp(lo as f32, hi as f32);
        (q - zp) * scale
    }
}

/// The smallest range width for a constant whose values span `[min, max]`: QNN's
/// [`MIN_RANGE`] only when all of them are zero, else 2^-16 of the widest slice of the tensor
/// (`tensor_width`), so near-zero per-channel slices never get a vanishing scale (which would
/// push their int32 bias past its range) while small weights keep all their levels.
pub fn param_min_width(tensor_width: f64) -> f64 {
    if tensor_width > 0.0 { (tensor_width / 65536.0).max(f64::from(f32::MIN_POSITIVE)) } else { MIN_RANGE }
}

/// `scale` as f32, lowered by ulps until `reach` steps of it stay finite: a range reaching
/// ±FLT_MAX (minilm's −3.4e38 attention mask) would otherwise dequantize its end to ±inf, and
/// 0·inf is NaN (anchors.md pattern 1).
fn finite_scale(scale: f64, reach: f64) -> f32 {
    let mut s = scale as f32;
    while s > 0.0 && !(s * reach as f32).is_finite() {
        s = f32::from_bits(s.to_bits() - 1);
    }
    s
}

/// Spec §3.2: (scale, ONNX zero point, signed storage, symmetric) for an observed range.
/// Arithmetic in f64 with C `round` (half away from zero); the scale is stored as f32, as ONNX does.
fn compute(min: f64, max: f64, min_width: f64, spec: &QuantSpec) -> (f32, i64, bool, bool) {
    let finite = |v: f64| v.clamp(f64::from(f32::MIN), f64::from(f32::MAX));
    let lo = finite(min.min(0.0));
    let mut hi = finite(max.max(0.0));
    hi = hi.max(lo + min_width);
    let bits = u32::from(spec.bitwidth);
    let symmetric = match spec.schema {
        Schema::Asymmetric => false,
        Schema::Symmetric => true,
        // All-non-negative data takes the asymmetric branch, which gives offset 0 (spec §3.2).
        Schema::UnsignedSymmetric => lo < 0.0,
    };
    if !symmetric {
        let steps = ((1u64 << bits) - 1) as f64;
        let scale = (hi - lo) / steps;
        let offset = if lo < 0.0 && hi > 0.0 {
            -(-lo / scale).round().clamp(0.0, steps)
        } else {
            (lo / scale).round()
        };
        let reach = (-offset).max(steps + offset);
        return (
            finite_scale(scale, reach),
            -(offset as i64),
            false,
            spec.schema == Schema::UnsignedSymmetric,
        );
    }
    let absmax = lo.abs().max(hi.abs());
    if let Some((qmin, qmax)) = spec.restricted {
        // Spec §3.2 `--restrict_quantization_steps`: Δ = 2·absmax / (MAX − MIN).
        let scale = 2.0 * absmax / (qmax - qmin) as f64;
        return (finite_scale(scale, qmin.unsigned_abs().max(qmax.unsigned_abs()) as f64), 0, true, true);
    }
    let steps = ((1u64 << bits) - 1 - u64::from(spec.strict)) as f64;
    let scale = absmax / (steps / 2.0).floor();
    (finite_scale(scale, (steps / 2.0).ceil()), 0, true, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(min: f64, max: f64, bits: u8, schema: Schema, strict: bool) -> Encoding {
        Encoding::from_range(
            min,
            max,
            &QuantSpec { strict, ..QuantSpec::new(bits, schema) },
            Origin::Calibrated,
        )
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-6 * b.abs().max(1e-9)
    }

    /// Spec §3.2 worked examples 1–12: (range, mode) → scale, QNN offset, enc_min, enc_max.
    #[test]
    fn spec_worked_examples() {
        use Schema::*;
        type Row = (f64, f64, u8, Schema, bool, f64, i64, f64, f64);
        let rows: &[Row] = &[
            (-1.8, 0.5, 8, Asymmetric, false, 0.00901960784, -200, -1.80392157, 0.496078431),
            (-5.1, 5.1, 8, Asymmetric, false, 0.04, -128, -5.12, 5.08),
            (5.0, 10.0, 8, Asymmetric, false, 0.0392156863, 0, 0.0, 10.0),
            (-20.0, -6.0, 8, Asymmetric, false, 0.0784313725, -255, -20.0, 0.0),
            (-1.8, 0.5, 8, Symmetric, false, 0.0141732283, -128, -1.81417323, 1.8),
            (-1.8, 0.5, 8, Symmetric, true, 0.0141732283, -127, -1.8, 1.8),
            (-1.8, 0.5, 16, Asymmetric, false, 3.50957504e-05, -51288, -1.79999084, 0.500009155),
            (-1.8, 0.5, 16, Symmetric, false, 5.49333171e-05, -32768, -1.80005493, 1.8),
            (0.0, 6.0, 8, UnsignedSymmetric, false, 0.0235294118, 0, 0.0, 6.0),
            (-0.5, 6.0, 8, UnsignedSymmetric, false, 0.0472440945, -128, -6.04724409, 6.0),
            (0.0, 0.0, 8, Asymmetric, false, 3.92156863e-05, 0, 0.0, 0.01),
            (0.3, 0.3, 8, Asymmetric, false, 0.00117647059, 0, 0.0, 0.3),
        ];
        for (i, &(min, max, bits, schema, strict, scale, offset, emin, emax)) in rows.iter().enumerate() {
            let e = enc(min, max, bits, schema, strict);
            let n = i + 1;
            assert!(close(f64::from(e.scales[0]), scale), "example {n}: scale {} != {scale}", e.scales[0]);
            assert_eq!(e.qnn_offset(0), offset, "example {n}: offset");
            let (lo, hi) = e.min_max(0);
            assert!(close(lo, emin) || (emin == 0.0 && lo == 0.0), "example {n}: min {lo} != {emin}");
            assert!(close(hi, emax), "example {n}: max {hi} != {emax}");
        }
    }

    #[test]
    fn example_1_quantizes_and_dequantizes_as_the_spec_says() {
        let e = enc(-1.8, 0.5, 8, Schema::Asymmetric, false);
        let q: Vec<i64> = [-1.8f32, -1.0, 0.0, 0.5].iter().map(|&x| e.quantize(0, x)).collect();
        assert_eq!(q, [0, 89, 200, 255]);
        assert!((e.dequantize(0, 89) - -1.001_176_5).abs() < 1e-6);
        assert_eq!(e.storage_type(), DataType::Uint8);
        assert_eq!(e.zero_points, [200]);
    }

    /// Example 13: per-channel 4-bit symmetric, channel absmax 0.7 / 0.35 / 1.4.
    #[test]
    fn per_channel_4_bit_symmetric() {
        let spec = QuantSpec::new(4, Schema::Symmetric);
        let e =
            Encoding::from_ranges(&[(-0.7, 0.7), (-0.35, 0.1), (-1.0, 1.4)], 0, &spec, Origin::Calibrated);
        for (c, want) in [0.1, 0.05, 0.2].iter().enumerate() {
            assert!(close(f64::from(e.scales[c]), *want), "channel {c}: {}", e.scales[c]);
            assert_eq!(e.qnn_offset(c), -8);
        }
        assert_eq!(e.storage_type(), DataType::Int4);
        assert_eq!(e.storage_range(), (-8, 7));
    }

    #[test]
    fn degenerate_per_channel_slices_never_get_a_tiny_scale() {
        let spec = QuantSpec::new(8, Schema::Symmetric);
        let e = Encoding::from_ranges(&[(0.0, 0.0), (-1e-9, 1e-9)], 0, &spec, Origin::Calibrated);
        for s in &e.scales {
            assert!(*s >= (MIN_RANGE / 127.0) as f32 * 0.99, "{s}");
        }
    }

    #[test]
    fn strict_symmetric_is_signed_zero_point_zero_with_a_narrow_grid() {
        let e = enc(-1.8, 0.5, 8, Schema::Symmetric, true);
        assert_eq!((e.zero_points[0], e.grid(), e.storage_range()), (0, (-127, 127), (-128, 127)));
        assert_eq!(e.quantize(0, -5.0), -127);
    }

    #[test]
    fn rounding_baked_weights_half_away_simulation_half_even() {
        // scale 1: 2.5 rounds to 3 when baked (QNN), to 2 in onnxruntime's QuantizeLinear.
        let e = Encoding {
            bitwidth: 8,
            signed: true,
            symmetric: true,
            strict: false,
            restricted: None,
            scales: vec![1.0],
            zero_points: vec![0],
            axis: None,
            origin: Origin::Calibrated,
        };
        assert_eq!(e.quantize(0, 2.5), 3);
        assert_eq!(e.quantize(0, -2.5), -3);
        assert_eq!(e.fake_quant(0, 2.5), 2.0);
        assert_eq!(e.fake_quant(0, 3.5), 4.0);
        assert_eq!(e.fake_quant(0, 300.0), 127.0);
        assert_eq!(e.fake_quant(0, -300.0), -128.0);
    }

    #[test]
    fn infinite_statistics_are_clamped_to_float_max() {
        let e = enc(f64::NEG_INFINITY, 1.0, 8, Schema::Asymmetric, false);
        assert!(e.scales[0].is_finite());
    }

    /// `--restrict_quantization_steps "-0x8000 0x7F7F"` on 16-bit weights: 65407 steps over
    /// [−absmax, absmax], integers clamped to the restricted grid, offset −32768.
    #[test]
    fn restricted_steps_spread_the_range_over_the_given_grid() {
        let spec = QuantSpec { restricted: Some((-0x8000, 0x7F7F)), ..QuantSpec::new(16, Schema::Symmetric) };
        let e = Encoding::from_range(-1.0, 0.5, &spec, Origin::Calibrated);
        assert!(close(f64::from(e.scales[0]), 2.0 / 65407.0));
        assert_eq!((e.grid(), e.qnn_offset(0)), ((-0x8000, 0x7F7F), -32768));
        assert_eq!(e.quantize(0, 1.0), 0x7F7F);
    }

    /// anchors.md pattern 1: a [−FLT_MAX, 0] range at 16 bits must dequantize its end finitely.
    #[test]
    fn the_ends_of_a_float_max_range_stay_finite() {
        for bits in [8, 16] {
            for schema in [Schema::Asymmetric, Schema::Symmetric] {
                let e = enc(-3.4028234663852886e38, 0.0, bits, schema, false);
                let (lo, hi) = e.storage_range();
                assert!(
                    e.dequantize(0, lo).is_finite() && e.dequantize(0, hi).is_finite(),
                    "{bits} {schema}"
                );
                assert!(e.fake_quant(0, f32::MIN).is_finite());
            }
        }
    }
}
