//! The error a candidate encoding makes on a distribution: what every range search minimises.

use crate::Encoding;
use crate::histogram::Pdf;

/// The squared error per value of quantizing the distribution with `e` (its first channel),
/// clipped values weighted by `gamma`; bins count at their centres, exact zeros cost nothing.
///
/// With prefix sums over the bins, each level's bins cost O(1), so a candidate costs
/// O(min(levels, bins)).
pub(super) fn cost(pdf: &Pdf, sums: &Prefix, e: &Encoding, gamma: f64) -> f64 {
    let scale = f64::from(e.scales[0]);
    let zp = e.zero_points[0] as f64;
    let (qmin, qmax) = e.grid();
    let (lo_val, hi_val) = ((qmin as f64 - zp) * scale, (qmax as f64 - zp) * scale);
    let n = pdf.p.len();
    // In bin units, relative to the window's start: centres sit at i + 0.5.
    let w = pdf.width;
    let unit = |x: f64| (x - pdf.start) / w;
    // Bins whose centre lies below `x` (in units): ceil(u − 0.5) within [0, n], by an integer
    // conversion (`f64::ceil` is a library call on baseline x86-64, in the hottest loop here).
    let below = |u: f64| {
        let x = (u - 0.5).clamp(0.0, n as f64);
        let t = x as usize;
        t + usize::from(x > t as f64)
    };
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
pub(super) struct Prefix {
    p: Vec<f64>,
    pu: Vec<f64>,
    puu: Vec<f64>,
    /// The bins that hold values (a weight slice of nine values occupies nine of thousands).
    occupied: Vec<usize>,
}

impl Prefix {
    pub(super) fn new(p: &[f64]) -> Prefix {
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
    use crate::{Histogram, Origin, QuantSpec, Schema};

    fn encode(lo: f64, hi: f64) -> Encoding {
        Encoding::from_range(lo, hi, &QuantSpec::new(8, Schema::Asymmetric), Origin::Calibrated)
    }

    #[test]
    fn cost_of_a_fine_grid_on_uniform_data_is_the_rounding_noise() {
        // Uniform on [0, 1) quantized with 255 steps: noise Δ²/12 (plus the bins' own w²/12).
        let v: Vec<f32> = (0..100_000).map(|i| i as f32 / 100_000.0).collect();
        let pdf = Histogram::of(&v).pdf().unwrap();
        let e = encode(0.0, 1.0);
        let delta = f64::from(e.scales[0]);
        let sums = Prefix::new(&pdf.p);
        let c = cost(&pdf, &sums, &e, 1.0);
        assert!((c / (delta * delta / 12.0) - 1.0).abs() < 0.05, "{c}");
        // Clipping at 0.5 costs what the clipped half loses: ∫_{0.5}^{1} (x − 0.5)² dx = 1/24.
        let clipped = encode(0.0, 0.5);
        assert!((cost(&pdf, &sums, &clipped, 1.0) - 1.0 / 24.0).abs() < 1e-3);
        assert!((cost(&pdf, &sums, &clipped, 3.0) - 3.0 / 24.0).abs() < 3e-3);
    }
}
