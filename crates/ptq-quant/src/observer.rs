//! Statistics gathered during calibration.

/// A statistic of one tensor, updated as each sample's values arrive. Workers gather their own
/// for parts of the samples; the parts are then merged in sample order (DESIGN.md Decision 5),
/// so an observer's memory is bounded per tensor, not per sample.
pub trait Observer: Clone + Default + Send {
    fn observe(&mut self, values: &[f32]);
    /// Folds in `later`, the statistic of the samples after this one's.
    fn merge(&mut self, later: &Self);
    /// The range of the finite values seen, and how many were not finite.
    fn range(&self) -> MinMax;
}

/// The running range of a tensor's finite values (spec §3.3 min-max). NaN and ±Inf are counted,
/// not ranged: an encoding stretched to infinity would quantize everything to zero, while the
/// finite range lets them saturate at the grid's ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinMax {
    pub min: f32,
    pub max: f32,
    /// How many NaN or ±Inf values were left out.
    pub nonfinite: u64,
}

impl Default for MinMax {
    fn default() -> Self {
        MinMax { min: f32::INFINITY, max: f32::NEG_INFINITY, nonfinite: 0 }
    }
}

impl MinMax {
    pub fn of(values: &[f32]) -> MinMax {
        let mut m = MinMax::default();
        m.observe(values);
        m
    }

    /// No value seen (an empty tensor, or nothing observed).
    pub fn is_empty(&self) -> bool {
        self.min > self.max
    }

    pub fn width(&self) -> f64 {
        f64::from(self.max) - f64::from(self.min)
    }
}

impl Observer for MinMax {
    fn observe(&mut self, values: &[f32]) {
        let (min, max, nan) = lanes::range(values);
        if min == f32::NEG_INFINITY || max == f32::INFINITY {
            // An infinity wins the fast compares: scan again, the slow way, to leave it out.
            for &v in values {
                if v.is_finite() {
                    self.min = self.min.min(v);
                    self.max = self.max.max(v);
                } else {
                    self.nonfinite += 1;
                }
            }
            return;
        }
        self.min = self.min.min(min);
        self.max = self.max.max(max);
        self.nonfinite += nan;
    }

    /// Order-independent, so any split of the samples gives the same range.
    fn merge(&mut self, later: &MinMax) {
        self.min = self.min.min(later.min);
        self.max = self.max.max(later.max);
        self.nonfinite += later.nonfinite;
    }

    fn range(&self) -> MinMax {
        *self
    }
}

/// The min-max hot loop: 16 independent lanes of branch-free compares, which the compiler turns
/// into SIMD min/max, built for the widest vector unit the processor has (checked once).
mod lanes {
    const LANES: usize = 16;

    /// (min, max, NaN count) of `values`; a NaN never wins a compare, an infinity does.
    pub fn range(values: &[f32]) -> (f32, f32, u64) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the processor has AVX-512F (checked just above).
                return unsafe { avx512(values) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the processor has AVX2 (checked just above).
                return unsafe { avx2(values) };
            }
        }
        portable(values)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512(values: &[f32]) -> (f32, f32, u64) {
        portable(values)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn avx2(values: &[f32]) -> (f32, f32, u64) {
        portable(values)
    }

    #[inline(always)]
    fn portable(values: &[f32]) -> (f32, f32, u64) {
        let mut lo = [f32::INFINITY; LANES];
        let mut hi = [f32::NEG_INFINITY; LANES];
        let mut nan = [0u32; LANES];
        let chunks = values.chunks_exact(LANES);
        let rest = chunks.remainder();
        for chunk in chunks {
            for k in 0..LANES {
                let v = chunk[k];
                lo[k] = if v < lo[k] { v } else { lo[k] };
                hi[k] = if v > hi[k] { v } else { hi[k] };
                nan[k] += u32::from(v.is_nan());
            }
        }
        for (k, &v) in rest.iter().enumerate() {
            lo[k] = if v < lo[k] { v } else { lo[k] };
            hi[k] = if v > hi[k] { v } else { hi[k] };
            nan[k] += u32::from(v.is_nan());
        }
        let min = lo.iter().copied().fold(f32::INFINITY, f32::min);
        let max = hi.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        (min, max, nan.iter().map(|&n| u64::from(n)).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_max_over_finite_values_counting_the_rest() {
        // 19 values: two chunks of eight and a remainder, extremes in the remainder.
        let mut v: Vec<f32> = (0..16).map(|i| i as f32 * 0.5 - 3.0).collect();
        v.extend([-7.25, 9.5, 0.0]);
        let m = MinMax::of(&v);
        assert_eq!((m.min, m.max, m.nonfinite), (-7.25, 9.5, 0));
        v[3] = f32::NAN;
        v[17] = f32::NAN;
        let m = MinMax::of(&v);
        assert_eq!((m.min, m.max, m.nonfinite), (-7.25, 4.5, 2));
        v[5] = f32::INFINITY;
        v[11] = f32::NEG_INFINITY;
        let m = MinMax::of(&v);
        assert_eq!((m.min, m.max, m.nonfinite), (-7.25, 4.5, 4));
    }

    #[test]
    fn nothing_finite_is_empty() {
        assert!(MinMax::of(&[]).is_empty());
        let m = MinMax::of(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
        assert!(m.is_empty());
        assert_eq!(m.nonfinite, 3);
    }

    #[test]
    fn merging_parts_equals_observing_all() {
        let v: Vec<f32> = (0..100).map(|i| ((i * 37) % 101) as f32 - 50.0).collect();
        let mut parts = MinMax::of(&v[..30]);
        parts.merge(&MinMax::of(&v[30..]));
        assert_eq!(parts, MinMax::of(&v));
    }
}
