//! The whole quantization run: load → given encodings → prepare → op rules → calibrate (or
//! float fallback) → choose encodings → simulate → the QDQ model. The front end writes the
//! files and prints the summary from what this returns.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use ptq_algos::{Fold, Follower, Skipped, Smoothing};
use ptq_data::{ReadOptions, ShapeBindings};
use ptq_export::qdq_model;
use ptq_ir::Graph;
use ptq_onnx::proto::ModelProto;
use ptq_quant::patterns::{self, Finding};
use ptq_quant::rules::{Layout, layout};
use ptq_quant::{Assignment, Histogram, Method, MinMax, Mode, assign};

use crate::calibrate::{Calibration, calibrate, chosen_ranges};
use crate::notices::{warn_output_lines, warn_unrestricted};
use crate::prepare::{float_tensors, prepare, with_bits};
use crate::shares::{Shares, shares};
use crate::simulate::{OutputSqnr, measure_sqnr, measure_sqnr_on_list};
use crate::{Config, Events, Model, given};

/// Where the encodings that are not given come from.
pub enum Data<'a> {
    /// Calibrate on an input list; `read` says how to read it (and `eval`), given the (prepared)
    /// graph. The closing SQNR is measured on every sample of `eval` when given, else on samples
    /// spread over `list`.
    Calibrate {
        list: &'a Path,
        read: &'a (dyn Fn(&Graph) -> Result<ReadOptions> + Sync),
        eval: Option<&'a Path>,
    },
    /// No samples: propagate the given encodings, leave the rest float (the shapes let type
    /// inference find the float tensors).
    FloatFallback { shapes: &'a ShapeBindings },
}

/// What to quantize.
pub struct Job<'a> {
    pub model: &'a Path,
    /// An AIMET/QAIRT overrides file.
    pub overrides: Option<&'a Path>,
    /// Drop every given encoding (the model's QDQ nodes and the overrides).
    pub ignore_given: bool,
    /// Override names the model lacks are warnings, not errors.
    pub allow_unknown_names: bool,
    pub data: Data<'a>,
}

/// The bitwidths this run gives tensors besides the given encodings, which the opset must allow
/// before calibration converts it. Float fallback quantizes nothing of its own but the weights
/// --keep_weights_quantized keeps: the configured activation bitwidth must not raise the opset.
fn own_bits(config: &Config, job: &Job, given: &given::Given) -> Vec<u8> {
    let (act, weight) = (config.quant.act.bitwidth, config.quant.weight.bitwidth);
    match job.data {
        Data::Calibrate { .. } => {
            // Square sums get 16-bit tensors.
            let square_sums = patterns::square_sums(&given.model.graph, act);
            let wide = square_sums.iter().flat_map(|f| &f.tensors).any(|t| !given.encodings.contains_key(t));
            let mut bits = vec![act, weight];
            bits.extend(wide.then_some(patterns::SQUARE_SUM_BITWIDTH));
            bits
        }
        Data::FloatFallback { .. } if config.quant.keep_weights_quantized => vec![weight],
        Data::FloatFallback { .. } => Vec::new(),
    }
}

/// The result of a run: the QDQ model and everything the summaries report.
pub struct Quantized {
    /// The model as calibrated (opset converted, layers folded).
    pub model: Model,
    pub layout: Layout,
    pub assignment: Assignment,
    /// The tensors calibration (or type inference) saw float, with their ranges.
    pub observed: BTreeMap<String, MinMax>,
    /// The range each calibrated tensor's encoding was computed from (the observed one for
    /// min-max; narrower where a range search clipped); empty in float fallback.
    pub chosen: BTreeMap<String, MinMax>,
    pub folds: Vec<Fold>,
    /// The BatchNormalizations that could not be folded, with the reason.
    pub unfolded: Vec<Skipped>,
    /// The activations whose outlier channels were migrated into weights (SmoothQuant).
    pub smoothed: Vec<Smoothing>,
    /// Per graph output, on samples spread over the list or on the whole evaluation list; empty
    /// without samples.
    pub sqnr: Vec<OutputSqnr>,
    pub qdq: ModelProto,
    /// How many encodings were given, and how many of them by the model's own QDQ nodes.
    pub given: usize,
    pub given_by_model: usize,
    /// The patterns that took tensors off the default precision (none without samples).
    pub patterns: Vec<Finding>,
    /// MACs and activation tensors per precision.
    pub shares: Shares,
}

pub fn quantize(config: &Config, job: &Job, events: &dyn Events) -> Result<Quantized> {
    let t = Instant::now();
    let mut given = given::gather(Model::load(job.model)?, job.overrides, job.ignore_given, events)?;
    let (model, folds, unfolded) = prepare(&given.model, &given.encodings, &own_bits(config, job, &given))?;
    given::check(&mut given.encodings, &given.model.graph, &model.graph, job.allow_unknown_names, events)?;
    events.timed("load, convert, fold", t.elapsed());
    let (mut model, smoothed) = match (&job.data, config.smooth) {
        (Data::Calibrate { list, read, .. }, Some(options)) => {
            let t = Instant::now();
            let samples = model.samples(list, read(&model.graph)?)?;
            let done = crate::smooth::smooth(model, &samples, options, &given.encodings, events)?;
            events.timed("smooth (SmoothQuant)", t.elapsed());
            done
        }
        _ => (model, Vec::new()),
    };
    let mut layout = layout(&model.graph, config.rules, &|t| given.encodings.contains_key(t));
    warn_unrestricted(config, &given.encodings, &layout, events);
    let (assignment, observed, chosen, sqnr, found, inputs) = match &job.data {
        Data::Calibrate { list, read, eval } => {
            let samples = model.samples(list, read(&model.graph)?)?;
            warn_output_lines(samples.list(), &given.model.graph, events)?;
            // An evaluation list is read before calibrating, so that a bad one fails first.
            let eval = eval.map(|eval| model.samples(eval, read(&model.graph)?)).transpose()?;
            let t = Instant::now();
            let measured = if eval.is_some() { Vec::new() } else { samples.spread(config.sqnr_samples) };
            let method = config.quant.act_calibration;
            let (observed, histograms, reference) = if method.needs_histogram() {
                let Calibration { seen, reference } =
                    calibrate::<Histogram>(&model, &samples, &layout, &measured, events)?;
                (seen.iter().map(|(n, h)| (n.clone(), h.range)).collect(), Some(seen), reference)
            } else {
                let Calibration { seen, reference } =
                    calibrate::<MinMax>(&model, &samples, &layout, &measured, events)?;
                (seen, None, reference)
            };
            events.timed("calibrate", t.elapsed());
            let act_bits = config.quant.act.bitwidth;
            let mut found = patterns::find(&model.graph, &layout, &observed, &given.encodings, act_bits)?;
            patterns::apply(&mut layout, &found);
            if let (Method::Auto, Some(seen)) = (method, &histograms) {
                let wide = patterns::sixteen_bit_activations(
                    &model.graph,
                    &layout,
                    seen,
                    &given.encodings,
                    act_bits,
                );
                let opset = model.opset();
                if !wide.is_empty() {
                    // Calibration ran at the opset of 8-bit tensors: the same model at the one its
                    // 16-bit tensors need (names kept, so what was seen still holds).
                    model = with_bits(model, &[patterns::WIDE_BITWIDTH])?;
                }
                if model.opset() != opset {
                    layout = ptq_quant::rules::layout(&model.graph, config.rules, &|t| {
                        given.encodings.contains_key(t)
                    });
                    found = patterns::find(&model.graph, &layout, &observed, &given.encodings, act_bits)?;
                    patterns::apply(&mut layout, &found);
                }
                patterns::apply(&mut layout, &wide);
                found.extend(wide);
            }
            let ranges = match &histograms {
                Some(seen) => {
                    let t = Instant::now();
                    let ranges = chosen_ranges(
                        &model.graph,
                        &layout,
                        seen,
                        method,
                        &config.quant.act,
                        &given.encodings,
                    );
                    events.timed(&format!("choose {method} ranges"), t.elapsed());
                    ranges
                }
                None => observed.clone(),
            };
            let assignment =
                assign(&model.graph, &layout, &ranges, &config.quant, &given.encodings, Mode::Calibrate)?;
            warn_clipping(&model.graph, &assignment, histograms.as_ref(), &folds, events)?;
            let t = Instant::now();
            let sqnr = match &eval {
                Some(eval) => measure_sqnr_on_list(&model, eval, &assignment.encodings)?,
                None => {
                    let mut sqnr =
                        measure_sqnr(&model, &samples.pick(&measured), &assignment.encodings, &reference)?;
                    sqnr.iter_mut().for_each(|s| s.of = samples.len());
                    sqnr
                }
            };
            events.timed("simulate for SQNR", t.elapsed());
            (assignment, observed, ranges, sqnr, found, samples.inputs().to_vec())
        }
        Data::FloatFallback { shapes } => {
            let inputs = model.bound_inputs(shapes)?;
            let observed = float_tensors(&model, &inputs)?;
            let assignment = assign(
                &model.graph,
                &layout,
                &observed,
                &config.quant,
                &given.encodings,
                Mode::FloatFallback,
            )?;
            warn_clipping(&model.graph, &assignment, None, &folds, events)?;
            (assignment, observed, BTreeMap::new(), Vec::new(), Vec::new(), inputs)
        }
    };
    let shapes = ptq_engine::tensor_shapes(&model.bytes, model.dir(), &inputs)?;
    let shares = shares(&model.graph, &shapes, &assignment.encodings, &observed);
    let qdq = qdq_model(&model.loaded.model, &model.graph, &assignment.encodings)?;
    for (tensor, layer, float) in &assignment.dropped_given {
        events.warn(&format!(
            "`{tensor}`'s given encoding is dropped: its layer `{layer}` runs float because `{float}` is float \
             (a Conv/Gemm/MatMul is quantized or float as a whole); give `{float}` an encoding to keep it"
        ));
    }
    for (kept, other) in &assignment.conflicts {
        events.warn(&format!(
            "`{other}` keeps its given encoding, which differs from `{kept}`'s that the tensors around it share"
        ));
    }
    let (given, given_by_model) = (given.encodings.len(), given.from_model);
    Ok(Quantized {
        model,
        layout,
        assignment,
        observed,
        chosen,
        folds,
        unfolded,
        smoothed,
        sqnr,
        qdq,
        given,
        given_by_model,
        patterns: found,
        shares,
    })
}

/// Says which given encodings clip more than 1 % of their tensor's values; for a weight whose
/// layer took a folded BatchNormalization, that the encoding must be for the folded weights.
fn warn_clipping(
    graph: &Graph,
    assignment: &Assignment,
    histograms: Option<&BTreeMap<String, Histogram>>,
    folds: &[Fold],
    events: &dyn Events,
) -> Result<()> {
    for (tensor, share) in given::clipping(graph, &assignment.encodings, histograms)? {
        let layer =
            graph.consumers(&tensor).find(|n| n.inputs.get(1) == Some(&tensor)).map(|n| n.display_name());
        let folded: Vec<&str> = folds
            .iter()
            .filter(|f| Some(&f.layer) == layer.as_ref() && f.kind == Follower::BatchNormalization)
            .map(|f| f.follower.as_str())
            .collect();
        let why = match (folded.first(), &layer) {
            (Some(bn), Some(layer)) => format!(
                " (BatchNormalization `{bn}` was folded into `{layer}`: give the encoding of the folded weights, \
                 or fold the model before computing it)"
            ),
            _ => String::new(),
        };
        events.warn(&format!(
            "the given encoding of `{tensor}` clips {:.1} % of its values{why}",
            100.0 * share
        ));
    }
    Ok(())
}
