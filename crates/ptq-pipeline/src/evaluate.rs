//! Evaluation: a quantized model against its float model on an input list — per graph output
//! SQNR, cosine similarity and (with labels) top-1, and per quantized tensor where error enters
//! and where it accumulates.
//!
//! A [`Pair`] says what to compare: [`Pair::from_files`] takes a float model and any QDQ model of
//! it (ptq's, onnxruntime's), [`Pair::simulated`] a model as [`crate::quantize`] calibrated it
//! and the encodings it chose. [`evaluate`] runs both models on every sample, in parallel, with
//! each sample read once ([`ptq_engine::Tandem`]). For each [`Probe`] (a float tensor T the
//! quantized model quantizes) it reports:
//!
//! - the *cumulative* SQNR: the quantized run's value of T after its own quantization (what its
//!   readers see) against the float run's T — all the error accumulated up to T;
//! - the *own* SQNR: the float run's T through only T's own grid against T — the error that
//!   enters at T. A tensor whose own SQNR is far below the others' (an outlier, a −3.4e38 mask) is
//!   flagged as an entry point.
//!
//! Memory is bounded per worker by one sample's probed float tensors: each is kept only until the
//! quantized run has computed its counterpart, and every comparison is reduced at once into f64
//! sums ([`Sqnr`]) that merge in sample order (DESIGN.md Decisions 5, 16).

mod labels;
mod metrics;
mod pair;

use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use ptq_data::Samples;
use ptq_engine::{Engine, Tandem, TractEngine, run_parts};
use ptq_ir::Tensor;

pub use labels::Labels;
pub use metrics::{Cosines, Sqnr, Top1Counts, argmax, cosine};
pub use pair::{Grid, Pair, Probe};

use crate::Events;

/// A tensor whose own SQNR is this far below the median own SQNR of all probed tensors is an
/// entry point of error: its grid is unusually coarse for its values.
pub const ENTRY_POINT_DROP_DB: f64 = 10.0;

/// What [`evaluate`] found.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub samples: usize,
    /// In graph output order; the first is the main output (top-1).
    pub outputs: Vec<OutputReport>,
    /// Worst first: by cumulative SQNR, then by name.
    pub tensors: Vec<TensorReport>,
    /// Tensors or outputs left out, and why.
    pub notes: Vec<String>,
}

/// One graph output over every sample.
#[derive(Debug, Clone)]
pub struct OutputReport {
    pub name: String,
    /// Over all elements of all samples together (models/README.md).
    pub sqnr: Sqnr,
    /// Of each sample's flattened output.
    pub cosines: Cosines,
    /// The main output, with labels.
    pub top1: Option<Top1Counts>,
}

/// One quantized tensor over every sample.
#[derive(Debug, Clone)]
pub struct TensorReport {
    pub name: String,
    pub op_type: String,
    pub grid: Grid,
    /// The quantized run's value (after its own grid) against the float run's.
    pub cumulative_db: f64,
    /// The float run's value through only its own grid; `None` where a per-channel grid's
    /// channels cannot be found.
    pub own_db: Option<f64>,
    /// Own SQNR [`ENTRY_POINT_DROP_DB`] or more below the median own SQNR.
    pub entry_point: bool,
}

/// Runs `pair`'s float and quantized models on every sample (read for the float model) and
/// compares them; `labels` (one per sample) add top-1 on the first output.
pub fn evaluate(
    pair: &Pair,
    samples: &Samples,
    labels: Option<&Labels>,
    events: &dyn Events,
) -> Result<Evaluation> {
    if let Some(l) = labels
        && l.classes.len() != samples.len()
    {
        bail!(
            "--labels {} has {} label(s) but the input list {} has {} sample(s); they must be aligned, one \
             label per sample, in the same order",
            l.path.display(),
            l.classes.len(),
            samples.list().path.display(),
            samples.len()
        );
    }
    let probes = &pair.probes;
    let (float_outputs, quantized_outputs): (Vec<String>, Vec<String>) = pair.outputs.iter().cloned().unzip();
    let tensors: Vec<String> = probes.iter().map(|p| p.tensor.clone()).collect();
    let quantized_as: Vec<String> = probes.iter().map(|p| p.quantized_as.clone()).collect();
    let path = |m: &crate::Model| m.loaded.path.display().to_string();
    let float = TractEngine::watching(
        &pair.float.bytes,
        pair.float.dir(),
        samples.inputs(),
        &float_outputs,
        &tensors,
    )
    .with_context(|| format!("preparing the float model {}", path(&pair.float)))?;
    let quantized = TractEngine::watching(
        &pair.quantized.bytes,
        pair.quantized.dir(),
        samples.inputs(),
        &quantized_outputs,
        &quantized_as,
    )
    .with_context(|| format!("preparing the quantized model {}", path(&pair.quantized)))?;
    for ignored in float.ignored_shapes().iter().chain(quantized.ignored_shapes()) {
        events.warn(&ignored.to_string());
    }
    let shapes: Vec<Option<Vec<usize>>> =
        (0..probes.len()).map(|k| float.watched_shape(k).map(<[usize]>::to_vec)).collect();
    let tandem = Tandem::new(vec![&float as &dyn Engine, &quantized]);

    let per_sample = Mutex::new(vec![Vec::new(); samples.len()]);
    events.started("evaluating", samples.len());
    let parts = run_parts(
        &tandem,
        samples,
        || Part::new(probes.len()),
        |part, k, values| part.watch(k, values, probes, &shapes),
        |i, sample, outputs| -> Result<()> {
            for (file, count) in &sample.nonfinite {
                events.warn(&format!(
                    "{} holds {count} NaN/Inf values (continuing: --allow_nonfinite)",
                    file.display()
                ));
            }
            let (f, q) = outputs.split_at(float_outputs.len());
            if let (Some(l), Some(first)) = (labels, f.first()) {
                l.check(i, &float_outputs[0], first.len())?;
            }
            let compared: Vec<Option<OutputSample>> =
                f.iter().zip(q).map(|(x, y)| OutputSample::of(x, y)).collect();
            per_sample.lock().expect("no worker panics while holding the lock")[i] = compared;
            events.advanced();
            Ok(())
        },
    )?;
    events.finished();

    let mut notes = pair.notes.clone();
    let outputs = merge_outputs(
        &float_outputs,
        &per_sample.into_inner().expect("workers are done"),
        labels,
        &mut notes,
    );
    let tensors = merge_tensors(probes, parts, &mut notes);
    Ok(Evaluation { samples: samples.len(), outputs, tensors, notes })
}

/// What one part of the samples gathered for the probes. A probe's float values live from the
/// float run's computing them to the quantized run's computing their counterpart.
struct Part {
    float: Vec<Vec<f32>>,
    /// A float tensor through its own grid, one at a time.
    scratch: Vec<f32>,
    /// The float values of this sample wait for their counterpart.
    waiting: Vec<bool>,
    own: Vec<Sqnr>,
    own_unknown: Vec<bool>,
    cumulative: Vec<Sqnr>,
    compared: Vec<usize>,
    mismatched: Vec<bool>,
}

impl Part {
    fn new(n: usize) -> Part {
        Part {
            float: vec![Vec::new(); n],
            scratch: Vec::new(),
            waiting: vec![false; n],
            own: vec![Sqnr::default(); n],
            own_unknown: vec![false; n],
            cumulative: vec![Sqnr::default(); n],
            compared: vec![0; n],
            mismatched: vec![false; n],
        }
    }

    /// Watched tensor `k`: the float model's probes first, then the quantized model's.
    fn watch(&mut self, k: usize, values: &[f32], probes: &[Probe], shapes: &[Option<Vec<usize>>]) {
        let n = probes.len();
        if k < n {
            match probes[k].grid.own(values, shapes[k].as_deref(), &mut self.scratch) {
                Some(s) => self.own[k].merge(&s),
                None => self.own_unknown[k] = true,
            }
            self.float[k].clear();
            self.float[k].extend_from_slice(values);
            self.waiting[k] = true;
            return;
        }
        let j = k - n;
        if !std::mem::take(&mut self.waiting[j]) {
            return;
        }
        let float = std::mem::take(&mut self.float[j]);
        if float.len() != values.len() {
            self.mismatched[j] = true;
            return;
        }
        self.cumulative[j].merge(&Sqnr::of(&float, values));
        self.compared[j] += 1;
    }
}

/// One sample's comparison of one graph output.
#[derive(Debug, Clone)]
struct OutputSample {
    sqnr: Sqnr,
    cosine: f64,
    float_top: Option<usize>,
    quantized_top: Option<usize>,
}

impl OutputSample {
    /// `None` when either is not numeric or their sizes differ.
    fn of(float: &Tensor, quantized: &Tensor) -> Option<OutputSample> {
        let (x, y) = (float.to_f32()?, quantized.to_f32()?);
        (x.len() == y.len()).then(|| OutputSample {
            sqnr: Sqnr::of(&x, &y),
            cosine: cosine(&x, &y),
            float_top: argmax(&x),
            quantized_top: argmax(&y),
        })
    }
}

fn merge_outputs(
    names: &[String],
    per_sample: &[Vec<Option<OutputSample>>],
    labels: Option<&Labels>,
    notes: &mut Vec<String>,
) -> Vec<OutputReport> {
    names
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let mut report =
                OutputReport { name: name.clone(), sqnr: Sqnr::default(), cosines: Cosines::default(), top1: None };
            let mut missing = 0;
            for (i, sample) in per_sample.iter().enumerate() {
                let Some(s) = sample.get(k).and_then(Option::as_ref) else {
                    missing += 1;
                    continue;
                };
                report.sqnr.merge(&s.sqnr);
                report.cosines.add(s.cosine);
                if let (0, Some(l)) = (k, labels) {
                    report.top1.get_or_insert_default().add(l.classes[i], s.float_top, s.quantized_top);
                }
            }
            if missing > 0 {
                notes.push(format!(
                    "output `{name}`: {missing} sample(s) could not be compared (not numeric, or the two models \
                     give it different sizes)"
                ));
            }
            report
        })
        .collect()
}

fn merge_tensors(probes: &[Probe], parts: Vec<Part>, notes: &mut Vec<String>) -> Vec<TensorReport> {
    let n = probes.len();
    let mut total = Part::new(n);
    for part in parts {
        for j in 0..n {
            total.own[j].merge(&part.own[j]);
            total.own_unknown[j] |= part.own_unknown[j];
            total.cumulative[j].merge(&part.cumulative[j]);
            total.compared[j] += part.compared[j];
            total.mismatched[j] |= part.mismatched[j];
        }
    }
    let (mut never, mut mismatched) = (Vec::new(), Vec::new());
    let mut tensors: Vec<TensorReport> = Vec::new();
    for (j, p) in probes.iter().enumerate() {
        if total.mismatched[j] {
            mismatched.push(p.tensor.as_str());
        } else if total.compared[j] == 0 {
            never.push(p.tensor.as_str());
        } else {
            tensors.push(TensorReport {
                name: p.tensor.clone(),
                op_type: p.op_type.clone(),
                grid: p.grid.clone(),
                cumulative_db: total.cumulative[j].db(),
                own_db: (!total.own_unknown[j]).then(|| total.own[j].db()),
                entry_point: false,
            });
        }
    }
    let list = |names: &[&str]| names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    if !never.is_empty() {
        notes.push(format!(
            "{} quantized tensor(s) never held float32 values in both runs and are left out: {}",
            never.len(),
            list(&never)
        ));
    }
    if !mismatched.is_empty() {
        notes.push(format!(
            "{} tensor(s) have different sizes in the two models and are left out: {}",
            mismatched.len(),
            list(&mismatched)
        ));
    }
    let unknown: Vec<&str> = tensors.iter().filter(|t| t.own_db.is_none()).map(|t| t.name.as_str()).collect();
    if !unknown.is_empty() {
        notes.push(format!(
            "own SQNR unknown for {} per-channel tensor(s) whose channel axis ptq cannot locate: {}",
            unknown.len(),
            list(&unknown)
        ));
    }
    mark_entry_points(&mut tensors);
    tensors.sort_by(|a, b| {
        worst_first(a.cumulative_db).total_cmp(&worst_first(b.cumulative_db)).then(a.name.cmp(&b.name))
    });
    tensors
}

/// NaN sorts first: a tensor that turned into NaN is worse than any finite error.
fn worst_first(db: f64) -> f64 {
    if db.is_nan() { f64::NEG_INFINITY } else { db }
}

fn mark_entry_points(tensors: &mut [TensorReport]) {
    let mut own: Vec<f64> = tensors.iter().filter_map(|t| t.own_db).filter(|d| d.is_finite()).collect();
    if own.is_empty() {
        return;
    }
    own.sort_by(f64::total_cmp);
    let median = own[own.len() / 2];
    for t in tensors {
        t.entry_point = t.own_db.is_some_and(|d| d.is_nan() || d <= median - ENTRY_POINT_DROP_DB);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ptq_quant::{Encoding, Origin};

    fn uint8(scale: f32, zero_point: i64) -> Encoding {
        Encoding {
            bitwidth: 8,
            signed: false,
            symmetric: false,
            strict: false,
            restricted: None,
            scales: vec![scale],
            zero_points: vec![zero_point],
            axis: None,
            origin: Origin::Qat,
        }
    }

    fn probe(name: &str, grid: Grid) -> Probe {
        Probe { tensor: name.into(), quantized_as: format!("{name}_q"), grid, op_type: "Relu".into() }
    }

    #[test]
    fn a_part_compares_each_float_tensor_with_its_quantized_counterpart() {
        // Scale 0.5: 0.2 → 0.0 and 1.3 → 1.5 by its own grid (error 0.2, 0.2).
        let probes = [probe("a", Grid::Int(uint8(0.5, 0))), probe("b", Grid::Float16)];
        let shapes = vec![None, None];
        let mut part = Part::new(2);
        part.watch(0, &[0.2, 1.3], &probes, &shapes);
        part.watch(1, &[1.0, 2.0], &probes, &shapes);
        part.watch(2, &[0.0, 1.0], &probes, &shapes); // a, quantized run
        part.watch(3, &[1.0, 2.0, 3.0], &probes, &shapes); // b: another size
        assert_eq!(part.own[0], Sqnr::of(&[0.2, 1.3], &[0.0, 1.5]));
        assert_eq!(part.cumulative[0], Sqnr::of(&[0.2, 1.3], &[0.0, 1.0]));
        assert_eq!(part.own[1].db(), f64::INFINITY, "1 and 2 are exact in float16");
        assert!(part.mismatched[1] && part.compared == [1, 0]);
        assert!(part.float[0].is_empty(), "compared float values are freed");
        // A quantized value without this sample's float value is not compared (the last sample's
        // float values are never reused).
        part.watch(2, &[0.0, 1.0], &probes, &shapes);
        assert_eq!(part.compared[0], 1);
    }

    #[test]
    fn per_channel_own_sqnr_uses_each_channels_scale() {
        let mut e = uint8(1.0, 0);
        e.scales = vec![1.0, 0.25];
        e.zero_points = vec![0, 0];
        e.axis = Some(1);
        // Shape [1, 2, 2]: channel 0 holds 0.4, 0.6 (→ 0, 1), channel 1 holds 0.4, 0.6 (→ 0.5, 0.5).
        let values = [0.4, 0.6, 0.4, 0.6];
        let scratch = &mut Vec::new();
        let own = Grid::Int(e.clone()).own(&values, Some(&[1, 2, 2]), scratch).unwrap();
        assert_eq!(own, Sqnr::of(&values, &[0.0, 1.0, 0.5, 0.5]));
        assert_eq!(Grid::Int(e.clone()).own(&values, None, scratch), None, "no shape, no channels");
        assert_eq!(Grid::Int(e).own(&values, Some(&[1, 4]), scratch), None, "axis 1 is not of 2 channels");
    }

    #[test]
    fn tensors_merge_in_order_sort_worst_first_and_flag_entry_points() {
        let probes: Vec<Probe> =
            ["c", "a", "b", "d", "never"].iter().map(|n| probe(n, Grid::Int(uint8(1.0, 0)))).collect();
        let mut parts = vec![Part::new(5), Part::new(5)];
        // (cumulative signal, noise, own noise) per probe: c 30 dB own 40, a 20 dB own 41,
        // b 20 dB own 20 (an entry point), d 50 dB own 42.
        let sums = [(1000.0, 1.0, 0.1), (100.0, 1.0, 0.0079), (100.0, 1.0, 1.0), (1e5, 1.0, 0.063)];
        for (j, &(signal, noise, own_noise)) in sums.iter().enumerate() {
            for part in &mut parts {
                part.cumulative[j] = Sqnr { signal: signal / 2.0, noise: noise / 2.0 };
                part.own[j] = Sqnr { signal: signal / 2.0, noise: own_noise / 2.0 };
                part.compared[j] = 1;
            }
        }
        let mut notes = Vec::new();
        let t = merge_tensors(&probes, parts, &mut notes);
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d"], "worst first, ties by name");
        assert!((t[0].cumulative_db - 20.0).abs() < 1e-9 && (t[2].cumulative_db - 30.0).abs() < 1e-9);
        let entries: Vec<&str> = t.iter().filter(|t| t.entry_point).map(|t| t.name.as_str()).collect();
        assert_eq!(entries, ["b"]);
        assert!(notes.iter().any(|n| n.contains("`never`")), "{notes:?}");
    }
}
