//! The comparisons `evaluate` reports, as accumulators: each takes one sample (or one tensor)
//! at a time, in f64, and partial ones merge by addition, so a run split over workers gives the
//! same numbers when the parts are merged in sample order (DESIGN.md Decision 5).

/// Sums of x² and (x − x̂)² over every element seen: SQNR as models/README.md defines it, over
/// all elements of all samples together.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sqnr {
    pub signal: f64,
    pub noise: f64,
}

impl Sqnr {
    /// `reference` against `approximation`, element by element (same length).
    pub fn of(reference: &[f32], approximation: &[f32]) -> Sqnr {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the processor has AVX-512F (checked just above).
                return unsafe { lanes_avx512(reference, approximation) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the processor has AVX2 (checked just above).
                return unsafe { lanes_avx2(reference, approximation) };
            }
        }
        lanes(reference, approximation)
    }

    #[inline]
    pub fn add(&mut self, x: f32, y: f32) {
        let (x, y) = (f64::from(x), f64::from(y));
        self.signal += x * x;
        self.noise += (x - y) * (x - y);
    }

    pub fn merge(&mut self, other: &Sqnr) {
        self.signal += other.signal;
        self.noise += other.noise;
    }

    /// 10·log10(Σx² / Σ(x − x̂)²) in dB: +inf when nothing differs, −inf when the reference is all
    /// zeros and the approximation is not, NaN when a value was NaN.
    pub fn db(&self) -> f64 {
        if self.noise == 0.0 { f64::INFINITY } else { 10.0 * (self.signal / self.noise).log10() }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn lanes_avx512(x: &[f32], y: &[f32]) -> Sqnr {
    lanes(x, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lanes_avx2(x: &[f32], y: &[f32]) -> Sqnr {
    lanes(x, y)
}

/// [`Sqnr::of`] in 8 lanes, added up in a fixed order at the end: each lane sums its elements in
/// order whatever the vector unit, so every processor gives the same result, and it vectorises
/// (evaluation compares every activation of every sample).
#[inline(always)]
fn lanes(x: &[f32], y: &[f32]) -> Sqnr {
    const LANES: usize = 8;
    let (mut signal, mut noise) = ([0.0f64; LANES], [0.0f64; LANES]);
    let (xs, ys) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
    let mut tail = Sqnr::default();
    for (&a, &b) in xs.remainder().iter().zip(ys.remainder()) {
        tail.add(a, b);
    }
    for (x, y) in xs.zip(ys) {
        let a: [f64; LANES] = <[f32; LANES]>::try_from(x).expect("chunks of LANES").map(f64::from);
        let b: [f64; LANES] = <[f32; LANES]>::try_from(y).expect("chunks of LANES").map(f64::from);
        for l in 0..LANES {
            let d = a[l] - b[l];
            signal[l] += a[l] * a[l];
            noise[l] += d * d;
        }
    }
    Sqnr { signal: signal.iter().sum::<f64>() + tail.signal, noise: noise.iter().sum::<f64>() + tail.noise }
}

/// Cosine similarity of two flattened tensors: 1 when both are all zeros (they agree), 0 when
/// only one is.
pub fn cosine(x: &[f32], y: &[f32]) -> f64 {
    let (mut dot, mut xx, mut yy) = (0.0f64, 0.0f64, 0.0f64);
    for (&a, &b) in x.iter().zip(y) {
        let (a, b) = (f64::from(a), f64::from(b));
        dot += a * b;
        xx += a * a;
        yy += b * b;
    }
    match (xx == 0.0, yy == 0.0) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        // sqrt(x²·x²) is exactly x² (IEEE square roots are correctly rounded), so identical
        // tensors give exactly 1.
        _ => (dot / (xx * yy).sqrt()).clamp(-1.0, 1.0),
    }
}

/// Per-sample cosine similarities: their mean and minimum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cosines {
    sum: f64,
    min: f64,
    count: usize,
}

impl Default for Cosines {
    fn default() -> Self {
        Cosines { sum: 0.0, min: f64::INFINITY, count: 0 }
    }
}

impl Cosines {
    pub fn add(&mut self, c: f64) {
        self.sum += c;
        // NaN (a NaN output) is the minimum: it must not hide.
        self.min = if c.is_nan() || self.min.is_nan() { f64::NAN } else { self.min.min(c) };
        self.count += 1;
    }

    pub fn merge(&mut self, other: &Cosines) {
        self.sum += other.sum;
        self.min = if other.min.is_nan() || self.min.is_nan() { f64::NAN } else { self.min.min(other.min) };
        self.count += other.count;
    }

    /// NaN before any sample.
    pub fn mean(&self) -> f64 {
        if self.count == 0 { f64::NAN } else { self.sum / self.count as f64 }
    }

    /// NaN before any sample.
    pub fn min(&self) -> f64 {
        if self.count == 0 { f64::NAN } else { self.min }
    }
}

/// The index of the largest value (the first of equal ones), ignoring NaN; `None` when there is
/// no comparable value.
pub fn argmax(values: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in values.iter().enumerate() {
        if !v.is_nan() && best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// Top-1 counts of the main output: the float and the quantized model against the labels, and
/// the two models against each other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Top1Counts {
    pub float_correct: usize,
    pub quantized_correct: usize,
    pub agree: usize,
    pub count: usize,
}

impl Top1Counts {
    /// One sample: its label and each model's argmax (`None`: no comparable value, never right).
    pub fn add(&mut self, label: usize, float: Option<usize>, quantized: Option<usize>) {
        self.float_correct += usize::from(float == Some(label));
        self.quantized_correct += usize::from(quantized == Some(label));
        self.agree += usize::from(float.is_some() && float == quantized);
        self.count += 1;
    }

    pub fn merge(&mut self, other: &Top1Counts) {
        self.float_correct += other.float_correct;
        self.quantized_correct += other.quantized_correct;
        self.agree += other.agree;
        self.count += other.count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqnr_by_hand() {
        // Σx² = 1 + 4 = 5, Σ(x−x̂)² = 0.01 + 0.04 = 0.05 → 10·log10(100) = 20 dB.
        let s = Sqnr::of(&[1.0, 2.0], &[1.1, 1.8]);
        assert!((s.signal - 5.0).abs() < 1e-6 && (s.noise - 0.05).abs() < 1e-6, "{s:?}");
        assert!((s.db() - 20.0).abs() < 1e-4, "{}", s.db());
        assert_eq!(Sqnr::of(&[1.0, -3.0], &[1.0, -3.0]).db(), f64::INFINITY);
        assert_eq!(Sqnr::of(&[0.0], &[1.0]).db(), f64::NEG_INFINITY);
        assert!(Sqnr::of(&[f32::NAN], &[1.0]).db().is_nan());
    }

    #[test]
    fn sqnr_sums_over_samples_before_the_ratio() {
        // One sample at 20 dB, one identical: the definition sums first (not a mean of dB values).
        let mut total = Sqnr::of(&[1.0, 2.0], &[1.1, 1.8]);
        total.merge(&Sqnr::of(&[10.0], &[10.0]));
        let expected = 10.0 * (105.0f64 / 0.05).log10();
        assert!((total.db() - expected).abs() < 1e-4, "{} vs {expected}", total.db());
        // Merging parts equals adding every element to one accumulator (up to summation order).
        let mut one = Sqnr::default();
        for (x, y) in [(1.0, 1.1), (2.0, 1.8), (10.0, 10.0)] {
            one.add(x, y);
        }
        assert!((one.signal - total.signal).abs() < 1e-9 && (one.noise - total.noise).abs() < 1e-9);
        // The lanes and the tail see every element once.
        let x: Vec<f32> = (0..21).map(|i| i as f32).collect();
        let y: Vec<f32> = x.iter().map(|v| v + 0.5).collect();
        let s = Sqnr::of(&x, &y);
        assert_eq!((s.signal, s.noise), ((0..21).map(|i| f64::from(i * i)).sum(), 21.0 * 0.25));
    }

    #[test]
    fn cosine_by_hand() {
        assert!((cosine(&[1.0, 0.0], &[0.0, 1.0])).abs() < 1e-12);
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-12);
        assert!((cosine(&[1.0, 1.0], &[1.0, 0.0]) - 0.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(cosine(&[0.0, 0.0], &[0.0, 0.0]), 1.0);
        let x: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        assert_eq!(cosine(&x, &x), 1.0, "identical tensors: exactly 1");
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }

    #[test]
    fn cosines_mean_and_min_merge() {
        let mut a = Cosines::default();
        assert!(a.mean().is_nan() && a.min().is_nan());
        a.add(1.0);
        a.add(0.5);
        let mut b = Cosines::default();
        b.add(0.9);
        a.merge(&b);
        assert!((a.mean() - 0.8).abs() < 1e-12, "{}", a.mean());
        assert_eq!(a.min(), 0.5);
        b.add(f64::NAN);
        a.merge(&b);
        assert!(a.min().is_nan(), "a NaN sample shows as the minimum");
    }

    #[test]
    fn argmax_takes_the_first_of_equal_values_and_skips_nan() {
        assert_eq!(argmax(&[0.1, 0.7, 0.7, 0.2]), Some(1));
        assert_eq!(argmax(&[f32::NAN, -1.0, -2.0]), Some(1));
        assert_eq!(argmax(&[f32::NAN]), None);
        assert_eq!(argmax(&[]), None);
    }

    #[test]
    fn top1_counts() {
        let mut t = Top1Counts::default();
        t.add(1, Some(1), Some(1)); // both right
        t.add(0, Some(0), Some(1)); // quantized wrong
        t.add(2, Some(1), Some(1)); // both wrong, agreeing
        let mut u = Top1Counts::default();
        u.add(3, None, None); // no value: wrong, and no agreement
        t.merge(&u);
        assert_eq!(t, Top1Counts { float_correct: 2, quantized_correct: 1, agree: 2, count: 4 });
    }
}
