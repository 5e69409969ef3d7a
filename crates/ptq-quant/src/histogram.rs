//! The distribution of a tensor's values, for the range searches of spec §3.3.
//!
//! AIMET fixes its histogram's range on the first batch (3× around it) and drops whatever falls
//! outside it later, so the first calibration sample decides what the others may contribute.
//! Here bins sit on a global power-of-two grid: bin `k` at exponent `e` holds the values with
//! `floor(v / 2^e) = k`. When a batch (or another worker's part) reaches past the window, the
//! exponent grows and neighbouring bins merge exactly — no value is dropped, and no count is
//! split or rounded. The window always covers 0 (every encoding does), and exact zeros (ReLU
//! outputs, padding) are counted apart: every grid holds 0 exactly, so they cost no error.

use crate::{MinMax, Observer};

/// Bins in the window. After a growth the data spans at least half of them, so a range of
/// 256 levels sees ≥ 4 bins per level over the observed range.
pub const BINS: usize = 2048;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    /// The exact range of the finite values, and how many NaN/Inf were left out.
    pub range: MinMax,
    /// Values exactly ±0.
    pub zeros: u64,
    /// Bin width `2^exp`.
    exp: i32,
    /// The global index of `bins[0]`.
    base: i64,
    /// Empty until a finite value is seen, then [`BINS`] long.
    bins: Vec<u64>,
}

/// The global bin index of `v` at exponent `exp` (a power-of-two product is exact in f64), kept
/// in f64: at a fine exponent a huge value's index is past i64.
fn index(v: f64, exp: i32) -> f64 {
    (v * (-f64::from(exp)).exp2()).floor()
}

/// The span of global indices `[lo, hi]` that covers `range` and 0 at `exp`.
fn span(range: &MinMax, exp: i32) -> (f64, f64) {
    (index(f64::from(range.min.min(0.0)), exp), index(f64::from(range.max.max(0.0)), exp))
}

impl Histogram {
    pub fn of(values: &[f32]) -> Histogram {
        let mut h = Histogram::default();
        h.observe(values);
        h
    }

    /// How many finite values it holds.
    pub fn count(&self) -> u64 {
        self.zeros + self.bins.iter().sum::<u64>()
    }

    /// The share of the values that lie in bins wholly outside `[lo, hi]` (a lower bound of
    /// what that range clips: a bin straddling an end counts as kept).
    pub fn share_outside(&self, lo: f64, hi: f64) -> f64 {
        let Some(pdf) = self.pdf() else { return 0.0 };
        let edge = |i: usize| pdf.start + i as f64 * pdf.width;
        pdf.p.iter().enumerate().filter(|&(i, _)| edge(i + 1) <= lo || edge(i) > hi).map(|(_, p)| p).sum()
    }

    /// The probability view the range searches work on; `None` when no finite value was seen.
    pub fn pdf(&self) -> Option<Pdf> {
        if self.range.is_empty() {
            return None;
        }
        let total = self.count() as f64;
        let width = f64::from(self.exp).exp2();
        let first = self.bins.iter().position(|&c| c > 0);
        let last = self.bins.iter().rposition(|&c| c > 0);
        // The window of occupied bins, widened to the bin of 0 (where the zeros go).
        let zero = usize::try_from(-self.base).ok().filter(|&z| z < self.bins.len());
        let lo = [first, zero].into_iter().flatten().min().unwrap_or(0);
        let hi = [last, zero].into_iter().flatten().max().unwrap_or(0);
        Some(Pdf {
            start: (self.base + lo as i64) as f64 * width,
            width,
            p: self.bins[lo..=hi].iter().map(|&c| c as f64 / total).collect(),
            zeros: self.zeros as f64 / total,
            zero_bin: zero.map(|z| z - lo),
            min: f64::from(self.range.min),
            max: f64::from(self.range.max),
        })
    }

    /// Counts finite `values` (fewer than 2^32) into the window, which covers them; zeros are
    /// binned like the rest (0 is in the window), then moved apart.
    fn count_finite(&mut self, values: &[f32], scale: f64) {
        let mut tables = [[0u32; BINS]; counting::TABLES];
        // SAFETY: `observe` checked the batch finite and `cover` widened the window to its range.
        let zeros = unsafe { counting::count(values, scale, self.base, &mut tables) };
        for (i, bin) in self.bins.iter_mut().enumerate() {
            *bin += tables.iter().map(|t| u64::from(t[i])).sum::<u64>();
        }
        self.bins[(-self.base) as usize] -= zeros;
        self.zeros += zeros;
    }

    /// Grows the exponent to at least `at_least` and on until the window covers `self.range`
    /// (and 0), moving the counts along.
    fn cover(&mut self, at_least: i32) {
        let mut exp = if self.bins.is_empty() { first_exponent(&self.range) } else { self.exp.max(at_least) };
        let (mut lo, mut hi) = span(&self.range, exp);
        while hi - lo >= BINS as f64 {
            exp += 1;
            (lo, hi) = span(&self.range, exp);
        }
        // The span holds 0, so both ends now lie within BINS of it.
        let (lo, hi) = (lo as i64, hi as i64);
        if self.bins.is_empty() {
            (self.exp, self.base, self.bins) = (exp, lo, vec![0; BINS]);
            return;
        }
        if exp == self.exp && lo >= self.base && hi < self.base + BINS as i64 {
            return;
        }
        let shift = exp - self.exp;
        let mut bins = vec![0; BINS];
        for (i, &c) in self.bins.iter().enumerate().filter(|(_, c)| **c > 0) {
            bins[(coarsen(self.base + i as i64, shift) - lo) as usize] += c;
        }
        (self.exp, self.base, self.bins) = (exp, lo, bins);
    }
}

/// `floor(x)` for `|x| < 2^63`: a truncation corrected below zero, where `f64::floor` is a
/// library call on baseline x86-64.
fn floor_index(x: f64) -> i64 {
    let t = x as i64;
    t - i64::from(t as f64 > x)
}

/// The histogram's hot loop, built for the widest vector unit the processor has (checked each
/// call, a cached flag): bin indices are computed a block at a time (vectorised), then counted
/// into interleaved tables so that a run of values in one bin does not wait on each increment.
mod counting {
    use super::BINS;

    pub const TABLES: usize = 4;
    const BLOCK: usize = 64;

    /// Counts `values` (fewer than 2^32) into `tables` by bin; returns how many were exactly 0.
    ///
    /// # Safety
    /// Every value is finite and inside the window that starts at global bin `base` with bin
    /// width `1 / scale` (as the histogram's `cover` makes it).
    pub unsafe fn count(values: &[f32], scale: f64, base: i64, tables: &mut [[u32; BINS]; TABLES]) -> u64 {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the processor has AVX-512F (checked just above); the values as `count`'s.
                return unsafe { avx512(values, scale, base, tables) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the processor has AVX2 (checked just above); the values as `count`'s.
                return unsafe { avx2(values, scale, base, tables) };
            }
        }
        // SAFETY: the values as `count`'s.
        unsafe { portable(values, scale, base, tables) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512(values: &[f32], scale: f64, base: i64, tables: &mut [[u32; BINS]; TABLES]) -> u64 {
        // SAFETY: the values as `count`'s.
        unsafe { portable(values, scale, base, tables) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn avx2(values: &[f32], scale: f64, base: i64, tables: &mut [[u32; BINS]; TABLES]) -> u64 {
        // SAFETY: the values as `count`'s.
        unsafe { portable(values, scale, base, tables) }
    }

    /// # Safety
    /// As [`count`].
    #[inline(always)]
    unsafe fn portable(values: &[f32], scale: f64, base: i64, tables: &mut [[u32; BINS]; TABLES]) -> u64 {
        // The window holds 0, so its base lies within BINS of it.
        let base = base as i32;
        let mut slots = [0i32; BLOCK];
        let mut zeros = 0u64;
        for block in values.chunks(BLOCK) {
            for (slot, &v) in slots.iter_mut().zip(block) {
                // SAFETY: the window covers every value (the caller's promise) and 0, so
                // `floor(v / 2^exp)` is finite and within BINS of 0 (an i32); the product is
                // exact (a power of two).
                *slot = unsafe { (f64::from(v) * scale).floor().to_int_unchecked::<i32>() } - base;
            }
            let mut quads = slots[..block.len()].chunks_exact(TABLES);
            for q in &mut quads {
                tables[0][q[0] as usize] += 1;
                tables[1][q[1] as usize] += 1;
                tables[2][q[2] as usize] += 1;
                tables[3][q[3] as usize] += 1;
            }
            for &slot in quads.remainder() {
                tables[0][slot as usize] += 1;
            }
            zeros += block.iter().map(|&v| u64::from(v == 0.0)).sum::<u64>();
        }
        zeros
    }
}

/// Bin `k`'s index `shift` exponents coarser: floor(k / 2^shift), exact, which merges bins.
/// (An arithmetic shift is that floor division; past 63 bits it would wrap.)
fn coarsen(k: i64, shift: i32) -> i64 {
    if shift >= 63 { if k < 0 { -1 } else { 0 } } else { k >> shift }
}

/// The exponent for a first batch: the finest whose window holds it (the window holds 0 too,
/// so only an all-zero batch has no width: it starts at f32's finest).
fn first_exponent(range: &MinMax) -> i32 {
    let width = f64::from(range.max.max(0.0)) - f64::from(range.min.min(0.0));
    let exp = if width > 0.0 { (width / (BINS - 2) as f64).log2().floor() as i32 } else { -160 };
    // Below f32's smallest subnormal no two values differ.
    exp.max(-160)
}

impl Observer for Histogram {
    fn observe(&mut self, values: &[f32]) {
        let batch = MinMax::of(values);
        self.range.nonfinite += batch.nonfinite;
        if batch.is_empty() {
            return;
        }
        self.range.min = self.range.min.min(batch.min);
        self.range.max = self.range.max.max(batch.max);
        self.cover(self.exp);
        let scale = (-f64::from(self.exp)).exp2();
        // The counting tables cost their size to clear and fold back: worth it for big batches.
        if batch.nonfinite == 0 && values.len() >= 4 * BINS {
            for part in values.chunks(u32::MAX as usize) {
                self.count_finite(part, scale);
            }
            return;
        }
        for &v in values {
            if v == 0.0 {
                self.zeros += 1;
            } else if v.is_finite() {
                self.bins[(floor_index(f64::from(v) * scale) - self.base) as usize] += 1;
            }
        }
    }

    /// Exact: both sides move to the coarser grid, whose bins are unions of the finer ones.
    fn merge(&mut self, later: &Histogram) {
        self.range.nonfinite += later.range.nonfinite;
        if later.range.is_empty() {
            return;
        }
        if self.range.is_empty() {
            let nonfinite = self.range.nonfinite;
            *self = later.clone();
            self.range.nonfinite = nonfinite;
            return;
        }
        self.range.min = self.range.min.min(later.range.min);
        self.range.max = self.range.max.max(later.range.max);
        self.cover(later.exp);
        self.zeros += later.zeros;
        for (i, &c) in later.bins.iter().enumerate().filter(|(_, c)| **c > 0) {
            let k = coarsen(later.base + i as i64, self.exp - later.exp);
            self.bins[(k - self.base) as usize] += c;
        }
    }

    fn range(&self) -> MinMax {
        self.range
    }
}

/// A histogram as probabilities over consecutive bins `[start + i·width, start + (i+1)·width)`,
/// from the lowest occupied bin (or 0's) to the highest, plus the probability of exact zeros.
#[derive(Debug, Clone, PartialEq)]
pub struct Pdf {
    pub start: f64,
    pub width: f64,
    /// Probability of each bin, exact zeros excluded.
    pub p: Vec<f64>,
    /// Probability of exactly 0.
    pub zeros: f64,
    /// The bin that holds 0, when the window reaches it.
    pub zero_bin: Option<usize>,
    /// The exact observed range.
    pub min: f64,
    pub max: f64,
}

impl Pdf {
    /// The centre of bin `i`.
    pub fn centre(&self, i: usize) -> f64 {
        self.start + (i as f64 + 0.5) * self.width
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, f: impl Fn(usize) -> f32) -> Vec<f32> {
        (0..n).map(f).collect()
    }

    #[test]
    fn counts_every_finite_value_and_keeps_zeros_apart() {
        let mut v = values(1000, |i| (i as f32 - 300.0) * 0.01);
        v.push(f32::NAN);
        let h = Histogram::of(&v);
        assert_eq!(h.count(), 1000);
        assert_eq!(h.zeros, 1);
        assert_eq!(h.range.nonfinite, 1);
        assert_eq!((h.range.min, h.range.max), (-3.0, 6.99));
    }

    /// The counting tables of a big batch give the bins that `floor(v / 2^exp)` names, value
    /// by value: tiny negatives in bin −1, both zeros apart, the ends in the window's edge bins.
    #[test]
    fn a_big_batch_counts_each_value_in_its_own_bin() {
        let mut v = values(9 * BINS + 3, |i| ((i * 7919) % 20011) as f32 * 0.37 - 3000.0);
        v.extend([-1e-30, 1e-30, -0.0, 0.0, -f32::MIN_POSITIVE, 4000.5]);
        let mut h = Histogram::of(&v[..10]);
        h.observe(&v);
        let scale = (-f64::from(h.exp)).exp2();
        let mut want = vec![0u64; BINS];
        for &x in v[..10].iter().chain(&v) {
            if x != 0.0 {
                want[((f64::from(x) * scale).floor() as i64 - h.base) as usize] += 1;
            }
        }
        assert!(v.len() >= 4 * BINS, "takes the tables' path");
        assert_eq!(h.bins, want);
        assert_eq!(h.zeros, 2);
        assert_eq!(h.count(), (10 + v.len()) as u64);
    }

    /// A later batch 1000× wider than the first is not dropped (AIMET's 3× window would lose
    /// it): the grid coarsens and every value is still counted, in the bin that holds it.
    #[test]
    fn later_values_past_the_first_window_are_kept() {
        let mut h = Histogram::of(&values(500, |i| i as f32 * 0.001));
        h.observe(&values(500, |i| -250.0 + i as f32));
        assert_eq!(h.count(), 1000);
        let pdf = h.pdf().unwrap();
        assert!(pdf.start <= -250.0 && pdf.start + pdf.width * pdf.p.len() as f64 > 249.0);
        assert!((pdf.p.iter().sum::<f64>() + pdf.zeros - 1.0).abs() < 1e-12);
        // −250 sits in the first bin of the window.
        assert!(pdf.p[0] > 0.0);
    }

    #[test]
    fn merging_parts_equals_the_bins_of_the_whole() {
        let v = values(4000, |i| (((i * 7919) % 4001) as f32 - 2000.0) * 0.37);
        let whole = Histogram::of(&v);
        let mut parts = Histogram::of(&v[..100]);
        for chunk in v[100..].chunks(700) {
            parts.merge(&Histogram::of(chunk));
        }
        assert_eq!(parts.count(), whole.count());
        // Both end on the same exponent here (the whole range decides it), so bins are equal.
        assert_eq!(parts.pdf(), whole.pdf());
    }

    #[test]
    fn a_single_value_and_all_zeros() {
        let h = Histogram::of(&[3.5; 10]);
        let pdf = h.pdf().unwrap();
        assert_eq!(pdf.p.iter().filter(|&&p| p > 0.0).count(), 1);
        assert_eq!((pdf.min, pdf.max), (3.5, 3.5));
        let z = Histogram::of(&[0.0; 10]);
        let pdf = z.pdf().unwrap();
        assert_eq!(pdf.zeros, 1.0);
        assert!(Histogram::of(&[f32::NAN]).pdf().is_none());
    }

    #[test]
    fn huge_magnitudes_stay_in_range() {
        let h = Histogram::of(&[-3.4028235e38, 0.5, 11.0]);
        assert_eq!(h.count(), 3);
        let pdf = h.pdf().unwrap();
        assert!(pdf.start <= -3.4028235e38);
    }

    /// Regression: onnxruntime's QDQ model of ppocr_cls without pre-processing overflows to
    /// 3.4e38 after a first batch near 1; bin indices overflowed i64 (and shifts past 63 bits
    /// wrapped) and calibration panicked. The grid now coarsens by 2^120 exactly.
    #[test]
    fn a_range_reaching_f32_max_after_a_fine_first_batch_does_not_overflow() {
        let mut h = Histogram::of(&[-2.25, 7.0]);
        h.observe(&[3.4e38, 1.1e8, 7.0e31]);
        h.merge(&Histogram::of(&[-3.4e38, 1.0]));
        assert_eq!(h.count(), 7);
        let mut fine = Histogram::of(&[1e-30, 2e-30]);
        fine.merge(&Histogram::of(&[3.4e38]));
        assert_eq!(fine.count(), 3);
    }
}
