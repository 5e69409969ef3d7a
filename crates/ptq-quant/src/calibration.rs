//! Range setting (spec §3.3): from a tensor's distribution to the range its encoding covers.
//!
//! Every search scores a candidate by the encoding it would really get ([`Encoding::from_range`]
//! with the tensor's own spec), on the histogram's bin centres, so what is compared is what is
//! exported.

use std::fmt;

use ptq_ir::Graph;

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

/// Levels of the quantized distribution in the KL search (8-bit: 255 steps).
const KL_LEVELS: usize = 255;

/// AIMET's `EntropyEncodingAnalyzer` (spec §3.3): shrink a window over the bins, one bin at a
/// time on the side that loses the least mass (both sides for symmetric grids), and keep the
/// window whose 255-level quantization diverges least (KL) from the clipped distribution.
fn entropy(pdf: &Pdf, spec: &QuantSpec) -> (f64, f64) {
    let mut h: Vec<f64> = pdf.p.clone();
    if let Some(z) = pdf.zero_bin {
        h[z] += pdf.zeros;
    }
    let n = h.len();
    if n <= KL_LEVELS {
        return (pdf.min, pdf.max);
    }
    let symmetric = spec.schema != Schema::Asymmetric;
    let (mut s, mut e) = (0usize, n - 1);
    let mut best_window = (s, e);
    let mut lowest = f64::INFINITY;
    loop {
        let kl = divergence(&h, s, e);
        if kl < lowest {
            (lowest, best_window) = (kl, (s, e));
        }
        if e - s <= KL_LEVELS {
            break;
        }
        if symmetric {
            // The window shrinks towards 0's bin from both sides at once.
            let z = pdf.zero_bin.unwrap_or(n / 2);
            let (left, right) = (z - s, e - z);
            if left >= right && s < z {
                s += 1;
            }
            if right >= left && e > z {
                e -= 1;
            }
            if left == 0 && right == 0 {
                break;
            }
        } else if h[s] <= h[e] {
            s += 1;
        } else {
            e -= 1;
        }
    }
    let (s, e) = best_window;
    let lo = (pdf.start + s as f64 * pdf.width).max(pdf.min);
    let hi = (pdf.start + (e + 1) as f64 * pdf.width).min(pdf.max);
    (lo.min(0.0), hi.max(0.0))
}

/// KL(P‖Q): P = the window with the mass outside it added to its edge bins; Q = the window
/// merged into [`KL_LEVELS`] levels, each level's mass spread evenly over its non-empty bins.
fn divergence(h: &[f64], s: usize, e: usize) -> f64 {
    let len = e - s + 1;
    let mut p: Vec<f64> = h[s..=e].to_vec();
    p[0] += h[..s].iter().sum::<f64>();
    p[len - 1] += h[e + 1..].iter().sum::<f64>();
    let mut q = vec![0.0; len];
    for level in 0..KL_LEVELS {
        let (a, b) =
            (level * len / KL_LEVELS, ((level + 1) * len / KL_LEVELS).max(level * len / KL_LEVELS + 1));
        let b = b.min(len);
        let mass: f64 = h[s + a..s + b].iter().sum();
        let occupied = h[s + a..s + b].iter().filter(|&&x| x > 0.0).count();
        if occupied > 0 {
            for j in a..b {
                if h[s + j] > 0.0 {
                    q[j] = mass / occupied as f64;
                }
            }
        }
    }
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    if sp <= 0.0 || sq <= 0.0 {
        return f64::INFINITY;
    }
    // Empty bins of Q where P has mass would make KL infinite: smooth both (AIMET conditions
    // zeros to 1e-4 of the mass and takes it back from the rest).
    const EPS: f64 = 1e-4;
    let smooth = |v: &[f64], sum: f64| -> Vec<f64> {
        let zeros = v.iter().filter(|&&x| x <= 0.0).count() as f64;
        let nonzero = v.len() as f64 - zeros;
        let take = EPS * zeros / nonzero.max(1.0);
        v.iter().map(|&x| if x <= 0.0 { EPS } else { (x / sum - take).max(EPS) }).collect()
    };
    let (p, q) = (smooth(&p, sp), smooth(&q, sq));
    p.iter().zip(&q).map(|(&a, &b)| a * (a / b).ln()).sum()
}

/// The squared error per value of quantizing the distribution with `e` (its first channel),
/// clipped values weighted by `gamma`; bins count at their centres, exact zeros cost nothing.
///
/// With prefix sums over the bins, each level's bins cost O(1), so a candidate costs
/// O(min(levels, bins)).
fn cost(pdf: &Pdf, sums: &Prefix, e: &Encoding, gamma: f64) -> f64 {
    let scale = f64::from(e.scales[0]);
    let zp = e.zero_points[0] as f64;
    let (qmin, qmax) = e.grid();
    let (lo_val, hi_val) = ((qmin as f64 - zp) * scale, (qmax as f64 - zp) * scale);
    let n = pdf.p.len();
    // In bin units, relative to the window's start: centres sit at i + 0.5.
    let w = pdf.width;
    let unit = |x: f64| (x - pdf.start) / w;
    // Bins whose centre lies below `x` (in units).
    let below = |u: f64| (u - 0.5).ceil().clamp(0.0, n as f64) as usize;
    let mut total = 0.0;
    let (lo_u, hi_u) = (unit(lo_val), unit(hi_val));
    let (a, b) = (below(lo_u), below(hi_u).max(below(lo_u)));
    total += gamma * sums.squared_error(0, a, lo_u);
    // Bins whose centre is at or above hi_val (clipped); at hi_val itself the error is 0.
    total += gamma * sums.squared_error(b, n, hi_u);
    let levels = (qmax - qmin + 1) as usize;
    let occupied =
        &sums.occupied[sums.occupied.partition_point(|&i| i < a)..sums.occupied.partition_point(|&i| i < b)];
    if scale >= w && levels <= occupied.len() {
        // A level spans whole bins: each bin rounds to one level, as its centre does, and its
        // values spread w²/12 around that centre.
        for k in qmin..=qmax {
            let v = (k as f64 - zp) * scale;
            let cell_lo = if k == qmin { a } else { below(unit(v - 0.5 * scale)).max(a) };
            let cell_hi = if k == qmax { b } else { below(unit(v + 0.5 * scale)).min(b) };
            if cell_hi > cell_lo {
                total += sums.squared_error(cell_lo, cell_hi, unit(v));
            }
        }
        total += sums.mass(a, b) / 12.0;
    } else if scale >= w {
        for &i in occupied {
            let x = pdf.centre(i);
            let q = ((x / scale).round() + zp).clamp(qmin as f64, qmax as f64);
            let d = (x - (q - zp) * scale) / w;
            total += pdf.p[i] * (d * d + 1.0 / 12.0);
        }
    } else {
        // Levels finer than the bins: a bin's values meet many levels, each rounding error
        // uniform over a step (what the bin centres cannot show).
        total += sums.mass(a, b) * (scale / w).powi(2) / 12.0;
    }
    total * w * w
}

/// Prefix sums of p, p·u and p·u² over bins (u = i + 0.5, the centre in bin units), so the
/// squared distance of a run of bins to one point costs O(1) and never subtracts huge numbers.
struct Prefix {
    p: Vec<f64>,
    pu: Vec<f64>,
    puu: Vec<f64>,
    /// The bins that hold values (a weight slice of nine values occupies nine of thousands).
    occupied: Vec<usize>,
}

impl Prefix {
    fn new(p: &[f64]) -> Prefix {
        let occupied = (0..p.len()).filter(|&i| p[i] > 0.0).collect();
        let mut s = Prefix { p: vec![0.0], pu: vec![0.0], puu: vec![0.0], occupied };
        for (i, &x) in p.iter().enumerate() {
            let u = i as f64 + 0.5;
            s.p.push(s.p[i] + x);
            s.pu.push(s.pu[i] + x * u);
            s.puu.push(s.puu[i] + x * u * u);
        }
        s
    }

    fn mass(&self, a: usize, b: usize) -> f64 {
        if b <= a { 0.0 } else { self.p[b] - self.p[a] }
    }

    /// Σ p_i (u_i − t)² over bins `[a, b)`, in bin units.
    fn squared_error(&self, a: usize, b: usize, t: f64) -> f64 {
        if b <= a {
            return 0.0;
        }
        let (p, pu, puu) = (self.p[b] - self.p[a], self.pu[b] - self.pu[a], self.puu[b] - self.puu[a]);
        (puu - 2.0 * t * pu + t * t * p).max(0.0)
    }
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
    fn cost_of_a_fine_grid_on_uniform_data_is_the_rounding_noise() {
        // Uniform on [0, 1) quantized with 255 steps: noise Δ²/12 (plus the bins' own w²/12).
        let v: Vec<f32> = (0..100_000).map(|i| i as f32 / 100_000.0).collect();
        let pdf = Histogram::of(&v).pdf().unwrap();
        let e = encode(0.0, 1.0, &spec(8, Schema::Asymmetric));
        let delta = f64::from(e.scales[0]);
        let sums = Prefix::new(&pdf.p);
        let c = cost(&pdf, &sums, &e, 1.0);
        assert!((c / (delta * delta / 12.0) - 1.0).abs() < 0.05, "{c}");
        // Clipping at 0.5 costs what the clipped half loses: ∫_{0.5}^{1} (x − 0.5)² dx = 1/24.
        let clipped = encode(0.0, 0.5, &spec(8, Schema::Asymmetric));
        assert!((cost(&pdf, &sums, &clipped, 1.0) - 1.0 / 24.0).abs() < 1e-3);
        assert!((cost(&pdf, &sums, &clipped, 3.0) - 3.0 / 24.0).abs() < 3e-3);
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
    /// 49²/4e6 = 6e-4 (1.8e-3 at sqnr's 3× weight). The searches clip it.
    #[test]
    fn searches_clip_a_rare_outlier() {
        let mut v: Vec<f32> = uniform_and(4_000_000, 50.0);
        let n = v.len() - 1;
        v[..n].iter_mut().for_each(|x| *x = x.powi(3));
        for method in [Method::Sqnr, Method::Mse, Method::Entropy] {
            for schema in [Schema::Asymmetric, Schema::Symmetric] {
                let (lo, hi) = range(&v, method, schema);
                assert!(hi < 25.0 && hi > 0.9, "{method} {schema}: {lo} {hi}");
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
