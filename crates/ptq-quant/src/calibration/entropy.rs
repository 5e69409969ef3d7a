//! AIMET's entropy (KL) range search, spec §3.3.

use crate::histogram::Pdf;
use crate::{QuantSpec, Schema};

/// Levels of the quantized distribution in the KL search (8-bit: 255 steps).
const KL_LEVELS: usize = 255;

/// AIMET's `EntropyEncodingAnalyzer` (spec §3.3): shrink a window over the bins, one bin at a
/// time on the side that loses the least mass (both sides for symmetric grids), and keep the
/// window whose 255-level quantization diverges least (KL) from the clipped distribution.
pub(super) fn entropy(pdf: &Pdf, spec: &QuantSpec) -> (f64, f64) {
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
