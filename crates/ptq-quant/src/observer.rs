//! Statistics gathered during calibration.

/// The running range of a tensor (spec §3.3 min-max). NaN values are ignored; the caller refuses
/// or reports non-finite data before it gets here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinMax {
    pub min: f32,
    pub max: f32,
}

impl Default for MinMax {
    fn default() -> Self {
        MinMax { min: f32::INFINITY, max: f32::NEG_INFINITY }
    }
}

impl MinMax {
    pub fn of(values: &[f32]) -> MinMax {
        let mut m = MinMax::default();
        m.observe(values);
        m
    }

    pub fn observe(&mut self, values: &[f32]) {
        for &v in values {
            // `min`/`max` skip NaN.
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
    }

    /// Order-independent, so merging per-worker partials gives the same result for any thread count.
    pub fn merge(&mut self, other: &MinMax) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// No value seen (an empty tensor, or nothing observed).
    pub fn is_empty(&self) -> bool {
        self.min > self.max
    }

    pub fn width(&self) -> f64 {
        f64::from(self.max) - f64::from(self.min)
    }
}
