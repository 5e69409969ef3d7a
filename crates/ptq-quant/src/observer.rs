//! Statistics gathered during calibration.

/// A statistic of one tensor, updated as each sample's values arrive. Workers gather their own
/// for parts of the samples; the parts are then merged in sample order (DESIGN.md Decision 5),
/// so an observer's memory is bounded per tensor, not per sample.
pub trait Observer: Clone + Default + Send {
    fn observe(&mut self, values: &[f32]);
    /// Folds in `later`, the statistic of the samples after this one's.
    fn merge(&mut self, later: &Self);
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
        for &v in values {
            if v.is_finite() {
                self.min = self.min.min(v);
                self.max = self.max.max(v);
            } else {
                self.nonfinite += 1;
            }
        }
    }

    /// Order-independent, so any split of the samples gives the same range.
    fn merge(&mut self, later: &MinMax) {
        self.min = self.min.min(later.min);
        self.max = self.max.max(later.max);
        self.nonfinite += later.nonfinite;
    }
}
