//! AIMET's entropy (KL) range search, spec §3.3.

use crate::histogram::Pdf;
use crate::{QuantSpec, Schema};

/// Levels of the quantized distribution in the KL search (8-bit: 255 steps).
const KL_LEVELS: usize = 255;
/// AIMET searches a 512-bin histogram (spec §3.3); the finer one is merged down to at most this
/// many bins (the search costs windows × bins, so 2048 bins would cost 16× as much).
const KL_BINS: usize = 512;

/// AIMET's `EntropyEncodingAnalyzer` (spec §3.3): shrink a window over the bins, one bin at a
/// time on the side that loses the least mass (both sides for symmetric grids), and keep the
/// window whose 255-level quantization diverges least (KL) from the clipped distribution.
pub(super) fn entropy(pdf: &Pdf, spec: &QuantSpec) -> (f64, f64) {
    let bins = Bins::of(pdf);
    let (h, n) = (&bins.mass, bins.mass.len());
    if n <= KL_LEVELS {
        return (pdf.min, pdf.max);
    }
    let sums = Sums::of(h);
    let symmetric = spec.schema != Schema::Asymmetric;
    let (mut s, mut e) = (0usize, n - 1);
    let mut best_window = (s, e);
    let mut lowest = f64::INFINITY;
    loop {
        let kl = divergence(h, &sums, s, e);
        if kl < lowest {
            (lowest, best_window) = (kl, (s, e));
        }
        if e - s <= KL_LEVELS {
            break;
        }
        if symmetric {
            // The window shrinks towards 0's bin from both sides at once.
            let z = bins.zero.unwrap_or(n / 2);
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
    let lo = (bins.start + s as f64 * bins.width).max(pdf.min);
    let hi = (bins.start + (e + 1) as f64 * bins.width).min(pdf.max);
    (lo.min(0.0), hi.max(0.0))
}

/// The histogram the search runs on: the pdf's bins (exact zeros back in 0's bin) merged a
/// power of two at a time along the global grid until at most [`KL_BINS`] remain; 0's bin stays
/// a bin of its own kind (merged bins are unions of grid bins, so 0 still starts one).
struct Bins {
    mass: Vec<f64>,
    start: f64,
    width: f64,
    zero: Option<usize>,
}

impl Bins {
    fn of(pdf: &Pdf) -> Bins {
        // The pdf starts on its grid: `first` is an integer global bin index.
        let first = (pdf.start / pdf.width).round() as i64;
        let last = first + pdf.p.len() as i64 - 1;
        let mut k = 1i64;
        while last.div_euclid(k) - first.div_euclid(k) + 1 > KL_BINS as i64 {
            k *= 2;
        }
        let base = first.div_euclid(k);
        let mut mass = vec![0.0; (last.div_euclid(k) - base + 1) as usize];
        for (i, &p) in pdf.p.iter().enumerate() {
            mass[((first + i as i64).div_euclid(k) - base) as usize] += p;
        }
        let zero = pdf.zero_bin.map(|z| ((first + z as i64).div_euclid(k) - base) as usize);
        if let Some(z) = zero {
            mass[z] += pdf.zeros;
        }
        Bins { mass, start: base as f64 * k as f64 * pdf.width, width: k as f64 * pdf.width, zero }
    }
}

/// Prefix sums of the mass and of the occupied-bin count, so any span's total is O(1).
struct Sums {
    mass: Vec<f64>,
    occupied: Vec<usize>,
}

impl Sums {
    fn of(h: &[f64]) -> Sums {
        let mut mass = vec![0.0; h.len() + 1];
        let mut occupied = vec![0; h.len() + 1];
        for (i, &x) in h.iter().enumerate() {
            mass[i + 1] = mass[i] + x;
            occupied[i + 1] = occupied[i] + usize::from(x > 0.0);
        }
        Sums { mass, occupied }
    }

    fn mass(&self, a: usize, b: usize) -> f64 {
        self.mass[b] - self.mass[a]
    }

    fn occupied(&self, a: usize, b: usize) -> usize {
        self.occupied[b] - self.occupied[a]
    }
}

/// KL(P‖Q) over the window `[s, e]`: P = the window with the mass outside it added to its edge
/// bins; Q = the window merged into [`KL_LEVELS`] levels, each level's mass spread evenly over
/// its non-empty bins. Empty bins of Q where P has mass would make KL infinite: both are
/// smoothed (AIMET conditions zeros to 1e-4 of the mass and takes it back from the rest). A bin
/// empty in both contributes 1e-4·ln 1 = 0, so only occupied bins and the edges are visited.
fn divergence(h: &[f64], sums: &Sums, s: usize, e: usize) -> f64 {
    const EPS: f64 = 1e-4;
    let len = e - s + 1;
    let (left, right) = (sums.mass(0, s), sums.mass(e + 1, h.len()));
    let p_at = |j: usize| h[s + j] + if j == 0 { left } else { 0.0 } + if j == len - 1 { right } else { 0.0 };
    let sq = sums.mass(s, e + 1);
    let sp = sq + left + right;
    if sp <= 0.0 || sq <= 0.0 {
        return f64::INFINITY;
    }
    // Q is non-zero exactly where h is; P also at an edge that gained outside mass.
    let q_zeros = len - sums.occupied(s, e + 1);
    let edge_gains = |j: usize| h[s + j] <= 0.0 && p_at(j) > 0.0;
    let p_zeros = q_zeros - usize::from(edge_gains(0)) - usize::from(len > 1 && edge_gains(len - 1));
    let take = |zeros: usize| EPS * zeros as f64 / (len - zeros).max(1) as f64;
    let (take_p, take_q) = (take(p_zeros), take(q_zeros));
    let smooth = |x: f64, sum: f64, take: f64| if x <= 0.0 { EPS } else { (x / sum - take).max(EPS) };
    let term = |j: usize, q: f64| {
        let (a, b) = (smooth(p_at(j), sp, take_p), smooth(q, sq, take_q));
        a * (a / b).ln()
    };
    let mut kl = 0.0;
    for level in 0..KL_LEVELS {
        let a = level * len / KL_LEVELS;
        let b = ((level + 1) * len / KL_LEVELS).max(a + 1).min(len);
        let occupied = sums.occupied(s + a, s + b);
        if occupied == 0 {
            continue;
        }
        let q = sums.mass(s + a, s + b) / occupied as f64;
        kl += (a..b).filter(|&j| h[s + j] > 0.0).map(|j| term(j, q)).sum::<f64>();
    }
    // Edges that hold only outside mass: P there, Q empty.
    let edges = if len > 1 { vec![0, len - 1] } else { vec![0] };
    for j in edges.into_iter().filter(|&j| edge_gains(j)) {
        kl += term(j, 0.0);
    }
    kl
}
