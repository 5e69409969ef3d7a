//! Range setting (spec §3.3): from a tensor's distribution to the range its encoding covers.
//!
//! Every search scores a candidate by the encoding it would really get ([`Encoding::from_range`]
//! with the tensor's own spec), on the histogram's bin centres, so what is compared is what is
//! exported.

use std::fmt;

use ptq_ir::Graph;

mod cost;
mod entropy;

use cost::{Prefix, cost};
use entropy::entropy;

use crate::histogram::Pdf;
use crate::{Encoding, Histogram, MIN_RANGE, MinMax, Origin, QuantSpec, Schema};

/// How a range is chosen from what calibration saw (`--act_quantizer_calibration`,
/// `--param_quantizer_calibration`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// The observed range (qairt's `tf`).
    MinMax,
    /// AIMET's `tf_enhanced`: the candidate with the lowest squared error, clipping weighted 3×.
    Sqnr,
    /// The pair of ends with the lowest mean squared error.
    Mse,
    /// The `p`-th percentile at each end (p in [90, 100]).
    Percentile(f64),
    /// The clipping threshold with the least KL divergence between the distribution and its
    /// 8-bit quantization (min-max at other bitwidths, as AIMET does).
    Entropy,
    /// ptq's default: the sqnr search within the observed range less its isolated outliers
    /// (ends past 8× the 99.99th percentile; up to 8 bits), except on the tensors whose
    /// clipping changes decisions rather than adding noise — graph outputs and the scores
    /// entering Softmax, Sigmoid and the like, which keep their observed range (see
    /// [`Method::for_tensor`]).
    Auto,
}

/// Ops whose input is a score turned into a probability or a decision: clipping a logit moves
/// the decision, where clipping elsewhere only trades noise for saturation.
const DECIDING_OPS: [&str; 6] = ["Softmax", "LogSoftmax", "Sigmoid", "ArgMax", "ArgMin", "TopK"];

impl Method {
    /// Whether it needs a histogram (everything but min-max).
    pub fn needs_histogram(&self) -> bool {
        *self != Method::MinMax
    }

    pub fn name(&self) -> &'static str {
        match self {
            Method::MinMax => "min-max",
            Method::Sqnr => "sqnr",
            Method::Mse => "mse",
            Method::Percentile(_) => "percentile",
            Method::Entropy => "entropy",
            Method::Auto => "auto",
        }
    }

    /// The method for one tensor of `graph`: [`Method::Auto`] resolved by the tensor's role.
    pub fn for_tensor(self, graph: &Graph, tensor: &str) -> Method {
        if self != Method::Auto {
            return self;
        }
        let deciding = graph.consumers(tensor).any(|n| DECIDING_OPS.contains(&n.op_type.as_str()));
        if deciding || graph.outputs.iter().any(|o| o == tensor) { Method::MinMax } else { self }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::Percentile(p) => write!(f, "percentile {p}"),
            m => f.write_str(m.name()),
        }
    }
}

/// AIMET's weight on the squared error of clipped values in the sqnr search.
const SATURATION_WEIGHT: f64 = 3.0;
/// Steps of the mse search's grids of candidate ends.
const MSE_STEPS: usize = 32;

/// The range `method` chooses for a tensor quantized with `spec`; empty when nothing finite
/// was seen. The result always lies within the observed range (extended to 0).
pub fn choose(histogram: &Histogram, method: Method, spec: &QuantSpec) -> MinMax {
    let Some(pdf) = histogram.pdf() else { return histogram.range };
    let (lo, hi) = match method {
        Method::MinMax => (pdf.min, pdf.max),
        Method::Sqnr => sqnr(&pdf, spec),
        // At 16 bits a grid spanning the outliers still leaves the bulk 13 bits: keep them.
        Method::Auto if spec.bitwidth <= 8 => sqnr_within(&pdf, spec, without_outliers(&pdf)),
        Method::Auto => sqnr(&pdf, spec),
        Method::Mse => mse(&pdf, spec),
        Method::Percentile(p) => percentile(&pdf, p),
        Method::Entropy if spec.bitwidth == 8 => entropy(&pdf, spec),
        Method::Entropy => (pdf.min, pdf.max),
    };
    MinMax { min: lo as f32, max: hi as f32, nonfinite: histogram.range.nonfinite }
}

/// The percentile past which values count as outliers in [`Method::Auto`].
const OUTLIER_PERCENTILE: f64 = 99.99;
/// How far past that percentile an end must reach to be an outlier: 8× leaves the bulk an
/// eighth of the grid, 3 bits lost for 0.01 % of the values (the ratio of Decision 10).
const OUTLIER_RATIO: f64 = 8.0;

/// The observed range with each end that lies past [`OUTLIER_RATIO`] × the
/// [`OUTLIER_PERCENTILE`]-th percentile pulled back to it: isolated extremes (a transformer's
/// outlier channel on two tokens) are clipped, a long but continuous tail is kept (a detector
/// calibrated on eight images sees its tails again, larger, on other images).
fn without_outliers(pdf: &Pdf) -> (f64, f64) {
    let (lo, hi) = percentile(pdf, OUTLIER_PERCENTILE);
    let (m, big_m) = observed(pdf);
    (if m < OUTLIER_RATIO * lo { lo } else { m }, if big_m > OUTLIER_RATIO * hi { hi } else { big_m })
}

/// Whether the histogram has isolated outliers: an end past [`OUTLIER_RATIO`] × the
/// [`OUTLIER_PERCENTILE`]-th percentile (what [`Method::Auto`] clips at 8 bits).
pub fn has_outliers(histogram: &Histogram) -> bool {
    histogram.pdf().is_some_and(|pdf| without_outliers(&pdf) != observed(&pdf))
}

/// The observed range extended to 0, as every encoding is.
fn observed(pdf: &Pdf) -> (f64, f64) {
    (pdf.min.min(0.0), pdf.max.max(0.0))
}

/// The candidate with the lowest cost, ties to the first; the observed range when none beats it.
fn best(pdf: &Pdf, spec: &QuantSpec, gamma: f64, candidates: impl Iterator<Item = (f64, f64)>) -> (f64, f64) {
    best_within(pdf, spec, gamma, observed(pdf), candidates)
}

/// [`best`], with `(m, big_m)` in place of the observed range as the range to beat.
fn best_within(
    pdf: &Pdf,
    spec: &QuantSpec,
    gamma: f64,
    (m, big_m): (f64, f64),
    candidates: impl Iterator<Item = (f64, f64)>,
) -> (f64, f64) {
    let sums = Prefix::new(&pdf.p);
    let mut chosen = (m, big_m);
    let mut lowest = cost(pdf, &sums, &encode(m, big_m, spec), gamma);
    for (lo, hi) in candidates {
        if hi - lo < MIN_RANGE.min(big_m - m) {
            continue;
        }
        let c = cost(pdf, &sums, &encode(lo, hi, spec), gamma);
        if c < lowest {
            (chosen, lowest) = ((lo, hi), c);
        }
    }
    chosen
}

/// A symmetric grid is fixed by its larger end: the candidate at `f` of it, on the sides that
/// hold data (one side only lets an unsigned-symmetric grid stay unsigned).
fn symmetric(m: f64, big_m: f64, f: f64) -> (f64, f64) {
    let a = f * m.abs().max(big_m);
    (if m < 0.0 { -a } else { 0.0 }, if big_m > 0.0 { a } else { 0.0 })
}

fn encode(lo: f64, hi: f64, spec: &QuantSpec) -> Encoding {
    Encoding::from_range(lo, hi, spec, Origin::Calibrated)
}

/// AIMET's `TfEnhancedEncodingAnalyzer` candidates (spec §3.3), clipped to the observed range.
fn sqnr(pdf: &Pdf, spec: &QuantSpec) -> (f64, f64) {
    sqnr_within(pdf, spec, observed(pdf))
}

/// AIMET's sqnr candidates over `(m, big_m)` instead of the observed range.
fn sqnr_within(pdf: &Pdf, spec: &QuantSpec, (m, big_m): (f64, f64)) -> (f64, f64) {
    let n = ((1u64 << spec.bitwidth) - 1) as f64;
    let mut candidates = Vec::new();
    if spec.schema == Schema::Asymmetric {
        let delta_obs = (big_m - m) / n;
        for f in 1..=17 {
            let delta = f64::from(f) / 16.0 * delta_obs;
            for i in 0..=20 {
                let offset = (-n + n * f64::from(i) / 20.0).trunc();
                let (lo, hi) = (delta * offset, delta * (offset + n));
                if lo < m && hi > big_m {
                    continue;
                }
                candidates.push((lo.max(m), hi.min(big_m)));
            }
        }
    } else {
        candidates.extend((1..=101).map(|f| symmetric(m, big_m, f64::from(f) / 100.0)));
    }
    best_within(pdf, spec, SATURATION_WEIGHT, (m, big_m), candidates.into_iter())
}

/// AIMET's `MseEncodingAnalyzer`: the pair of ends with the lowest squared error. AIMET tries
/// every pair of its bucket edges (O(n²) candidates); here a grid of [`MSE_STEPS`] steps over
/// each side of the observed range, then two finer grids around the best pair (3 × 33²
/// candidates whatever the histogram).
fn mse(pdf: &Pdf, spec: &QuantSpec) -> (f64, f64) {
    let (m, big_m) = observed(pdf);
    if spec.schema != Schema::Asymmetric {
        // A symmetric grid is fixed by its larger end: one dimension, searched whole.
        let scaled = (1..=4 * MSE_STEPS).map(|j| symmetric(m, big_m, j as f64 / (4 * MSE_STEPS) as f64));
        return best(pdf, spec, 1.0, scaled);
    }
    let grid = |(lo0, lo1): (f64, f64), (hi0, hi1): (f64, f64)| {
        let step = |a: f64, b: f64, j: usize| a + (b - a) * j as f64 / MSE_STEPS as f64;
        (0..=MSE_STEPS)
            .flat_map(move |i| (0..=MSE_STEPS).map(move |j| (step(lo0, lo1, i), step(hi0, hi1, j))))
    };
    let (mut lo_span, mut hi_span) = ((m, 0.0), (0.0, big_m));
    let mut chosen = best(pdf, spec, 1.0, grid(lo_span, hi_span));
    for _ in 0..2 {
        // Around the best pair, one step of the last grid each way, inside the observed range.
        let (dl, dh) =
            ((lo_span.1 - lo_span.0) / MSE_STEPS as f64, (hi_span.1 - hi_span.0) / MSE_STEPS as f64);
        lo_span = ((chosen.0 - dl).max(m), (chosen.0 + dl).min(0.0));
        hi_span = ((chosen.1 - dh).max(0.0), (chosen.1 + dh).min(big_m));
        chosen = best(pdf, spec, 1.0, grid(lo_span, hi_span).chain(std::iter::once(chosen)));
    }
    chosen
}

/// The `p`-th percentile of the values at the top, the `(100 − p)`-th at the bottom, then 0
/// included (AIMET's `PercentileEncodingAnalyzer`, interpolated within the bin where the tail's
/// mass is reached instead of rounded to its edge; p = 100 is the observed range).
fn percentile(pdf: &Pdf, p: f64) -> (f64, f64) {
    if p >= 100.0 {
        return (pdf.min, pdf.max);
    }
    let tail = 1.0 - p / 100.0;
    let mass = |i: usize| pdf.p[i] + if pdf.zero_bin == Some(i) { pdf.zeros } else { 0.0 };
    // Where, in bins from the start, the mass counted from one end in `order` reaches `tail`.
    let reach = |order: &mut dyn Iterator<Item = usize>| {
        let mut before = 0.0;
        for i in order {
            let m = mass(i);
            if before + m > tail {
                return Some((i, (tail - before) / m));
            }
            before += m;
        }
        None
    };
    let lo = reach(&mut (0..pdf.p.len())).map_or(pdf.min, |(i, f)| pdf.start + (i as f64 + f) * pdf.width);
    let hi = reach(&mut (0..pdf.p.len()).rev())
        .map_or(pdf.max, |(i, f)| pdf.start + (i as f64 + 1.0 - f) * pdf.width);
    (lo.max(pdf.min).min(0.0), hi.min(pdf.max).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Observer;

    fn spec(bits: u8, schema: Schema) -> QuantSpec {
        QuantSpec::new(bits, schema)
    }

    fn range(values: &[f32], method: Method, schema: Schema) -> (f32, f32) {
        let r = choose(&Histogram::of(values), method, &spec(8, schema));
        (r.min, r.max)
    }

    /// 10 000 values uniform on [−1, 1] and one outlier at 50.
    fn with_outlier() -> Vec<f32> {
        uniform_and(10_000, 50.0)
    }

    fn uniform_and(n: usize, outlier: f32) -> Vec<f32> {
        let mut v: Vec<f32> = (0..n).map(|i| -1.0 + 2.0 * (i as f32 + 0.5) / n as f32).collect();
        v.push(outlier);
        v
    }

    #[test]
    fn min_max_and_percentile_100_are_the_observed_range() {
        let v = with_outlier();
        assert_eq!(range(&v, Method::MinMax, Schema::Asymmetric), (v[0], 50.0));
        assert_eq!(range(&v, Method::Percentile(100.0), Schema::Asymmetric), (v[0], 50.0));
    }

    /// The outlier holds 1e-4 of the values: the 99.9th percentile leaves it out, the 99.999th
    /// keeps it.
    #[test]
    fn percentile_clips_the_outlier() {
        let v = with_outlier();
        let (lo, hi) = range(&v, Method::Percentile(99.9), Schema::Asymmetric);
        assert!(lo > v[0]);
        assert!((-1.0..-0.99).contains(&lo) && (0.99..1.1).contains(&hi), "{lo} {hi}");
        let (_, hi) = range(&v, Method::Percentile(99.999), Schema::Asymmetric);
        assert_eq!(hi, 50.0);
    }

    /// One value at 50 among 4 million in [−1, 1] (peaked at 0: t³ for t uniform, as KL cannot
    /// tell a coarse from a fine grid on flat data): min-max spends 98 % of the levels on it, a
    /// rounding noise of (51/255)²/12 = 3.3e-3 per value, while clipping it at 1 costs
    /// 49²/4e6 = 6e-4 (1.8e-3 at sqnr's 3× weight). The searches clip it; entropy's window
    /// over AIMET's 512 bins stops at 255 of them, half the observed span.
    #[test]
    fn searches_clip_a_rare_outlier() {
        let mut v: Vec<f32> = uniform_and(4_000_000, 50.0);
        let n = v.len() - 1;
        v[..n].iter_mut().for_each(|x| *x = x.powi(3));
        for method in [Method::Sqnr, Method::Mse, Method::Entropy] {
            let ceiling = if method == Method::Entropy { 35.0 } else { 25.0 };
            for schema in [Schema::Asymmetric, Schema::Symmetric] {
                let (lo, hi) = range(&v, method, schema);
                assert!(hi < ceiling && hi > 0.9, "{method} {schema}: {lo} {hi}");
                assert!(lo < -0.9, "{method} {schema}: {lo} {hi}");
            }
        }
    }

    /// 1 in 10 000 at 50: clipping it costs 0.24 per value, far more than the rounding noise
    /// it causes; the squared-error searches keep it.
    #[test]
    fn squared_error_searches_keep_a_frequent_outlier() {
        let v = with_outlier();
        for method in [Method::Sqnr, Method::Mse] {
            let hi = range(&v, method, Schema::Asymmetric).1;
            assert!(hi > 45.0, "{method}: {hi}");
        }
    }

    /// Without outliers nothing is worth clipping: the searches keep (nearly) the whole range.
    #[test]
    fn uniform_data_keeps_its_range() {
        let v: Vec<f32> = (0..10_000).map(|i| -1.0 + 2.0 * (i as f32 + 0.5) / 10_000.0).collect();
        for method in [Method::Sqnr, Method::Mse, Method::Entropy] {
            let (lo, hi) = range(&v, method, Schema::Asymmetric);
            assert!(lo < -0.9 && hi > 0.9, "{method}: {lo} {hi}");
        }
    }

    /// All-positive data (a ReLU output): the low end stays at 0.
    #[test]
    fn all_positive_data_starts_at_zero() {
        let mut v: Vec<f32> = (0..5000).map(|i| (i as f32 / 5000.0).powi(3) * 4.0).collect();
        v.extend([0.0; 5000]);
        for method in [Method::MinMax, Method::Sqnr, Method::Mse, Method::Percentile(99.99), Method::Entropy]
        {
            let (lo, hi) = range(&v, method, Schema::Asymmetric);
            assert_eq!(lo, 0.0, "{method}");
            assert!(hi > 0.5 && hi <= 4.0, "{method}: {hi}");
        }
    }

    /// All zeros, or one repeated value: every method returns the observed range, which the
    /// encoding then widens to QNN's minimum.
    #[test]
    fn all_zero_and_single_value() {
        for method in [Method::MinMax, Method::Sqnr, Method::Mse, Method::Percentile(99.0), Method::Entropy] {
            assert_eq!(range(&[0.0; 100], method, Schema::Asymmetric), (0.0, 0.0), "{method}");
            let (lo, hi) = range(&[2.5; 100], method, Schema::Asymmetric);
            assert!(lo.min(0.0) == 0.0 && hi == 2.5, "{method}: {lo} {hi}");
        }
        let nothing = choose(&Histogram::of(&[f32::NAN]), Method::Sqnr, &spec(8, Schema::Asymmetric));
        assert!(nothing.is_empty());
    }

    /// One value in 10 000 at 50, 50× the 99.99th percentile: an isolated outlier that sqnr keeps
    /// (its squared error outweighs the rounding it causes) and auto clips; a continuous tail
    /// (t³ reaching 8 from a bulk near 0, under 8× its 99.99th percentile) auto keeps as sqnr does.
    #[test]
    fn auto_clips_isolated_outliers_and_keeps_continuous_tails() {
        let v = with_outlier();
        let (_, hi) = range(&v, Method::Auto, Schema::Asymmetric);
        assert!(hi < 1.1, "{hi}");
        assert_eq!(range(&v, Method::Sqnr, Schema::Asymmetric).1, 50.0);
        // At 16 bits the grid holds the outlier and the bulk both.
        let wide = choose(&Histogram::of(&v), Method::Auto, &spec(16, Schema::Asymmetric));
        assert_eq!(wide.max, 50.0);
        let tail: Vec<f32> = (0..10_000).map(|i| 8.0 * (i as f32 / 10_000.0).powi(3)).collect();
        assert_eq!(
            range(&tail, Method::Auto, Schema::Asymmetric),
            range(&tail, Method::Sqnr, Schema::Asymmetric)
        );
    }

    /// Entropy is an 8-bit method: at 16 bits it is min-max.
    #[test]
    fn entropy_at_16_bits_is_min_max() {
        let v = with_outlier();
        let r = choose(&Histogram::of(&v), Method::Entropy, &spec(16, Schema::Asymmetric));
        assert_eq!((r.min, r.max), (v[0], 50.0));
    }

    /// The searches score what will be exported: at 16 bits rounding noise is tiny, so clipping
    /// the outlier no longer pays for mse.
    #[test]
    fn mse_at_16_bits_keeps_the_outlier() {
        let v = with_outlier();
        let r = choose(&Histogram::of(&v), Method::Mse, &spec(16, Schema::Asymmetric));
        assert!(r.max > 40.0, "{r:?}");
    }

    #[test]
    fn parts_merged_choose_like_the_whole() {
        let v = with_outlier();
        let mut h = Histogram::of(&v[..3000]);
        h.merge(&Histogram::of(&v[3000..]));
        let whole = Histogram::of(&v);
        for method in [Method::Sqnr, Method::Mse, Method::Entropy, Method::Percentile(99.9)] {
            let s = spec(8, Schema::Asymmetric);
            assert_eq!(choose(&h, method, &s), choose(&whole, method, &s), "{method}");
        }
    }
}
