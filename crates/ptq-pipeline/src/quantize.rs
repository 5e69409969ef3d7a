//! The whole quantization run: load → given encodings → prepare → op rules → calibrate (or
//! float fallback) → choose encodings → simulate → the QDQ model. The front end writes the
//! files and prints the summary from what this returns.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use ptq_algos::Fold;
use ptq_data::{ReadOptions, ShapeBindings};
use ptq_export::qdq_model;
use ptq_ir::Graph;
use ptq_onnx::proto::ModelProto;
use ptq_quant::rules::{Layout, layout};
use ptq_quant::{Assignment, Histogram, MinMax, Mode, assign};

use crate::calibrate::{Calibration, calibrate, chosen_ranges};
use crate::prepare::{float_tensors, prepare};
use crate::simulate::{OutputSqnr, measure_sqnr};
use crate::{Config, Events, Model, given};

/// Where the encodings that are not given come from.
pub enum Data<'a> {
    /// Calibrate on an input list; `read` says how to read it, given the (prepared) graph.
    Calibrate { list: &'a Path, read: &'a (dyn Fn(&Graph) -> Result<ReadOptions> + Sync) },
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
    /// Per graph output, on samples spread over the list; empty without samples.
    pub sqnr: Vec<OutputSqnr>,
    pub qdq: ModelProto,
    /// How many encodings were given, and how many of them by the model's own QDQ nodes.
    pub given: usize,
    pub given_by_model: usize,
}

pub fn quantize(config: &Config, job: &Job, events: &dyn Events) -> Result<Quantized> {
    let t = Instant::now();
    let mut given = given::gather(Model::load(job.model)?, job.overrides, job.ignore_given, events)?;
    let (model, folds) = prepare(&given.model, &config.quant, &given.encodings)?;
    given::check(&mut given.encodings, &given.model.graph, &model.graph, job.allow_unknown_names, events)?;
    events.timed("load, convert, fold", t.elapsed());
    let layout = layout(&model.graph, config.rules, &|t| given.encodings.contains_key(t));
    let (assignment, observed, chosen, sqnr) = match &job.data {
        Data::Calibrate { list, read } => {
            let samples = model.samples(list, read(&model.graph)?)?;
            let t = Instant::now();
            let measured = samples.spread(config.sqnr_samples);
            let method = config.quant.act_calibration;
            let (observed, ranges, reference) = if method.needs_histogram() {
                let Calibration { seen, reference } =
                    calibrate::<Histogram>(&model, &samples, &layout, &measured, events)?;
                events.timed("calibrate", t.elapsed());
                let t = Instant::now();
                let ranges = chosen_ranges(&model.graph, &seen, method, &config.quant.act, &given.encodings);
                events.timed(&format!("choose {method} ranges"), t.elapsed());
                (seen.into_iter().map(|(n, h)| (n, h.range)).collect(), ranges, reference)
            } else {
                let Calibration { seen, reference } =
                    calibrate::<MinMax>(&model, &samples, &layout, &measured, events)?;
                events.timed("calibrate", t.elapsed());
                (seen.clone(), seen, reference)
            };
            let assignment =
                assign(&model.graph, &layout, &ranges, &config.quant, &given.encodings, Mode::Calibrate)?;
            let t = Instant::now();
            let sqnr = measure_sqnr(&model, &samples.pick(&measured), &assignment.encodings, &reference)?;
            events.timed("simulate for SQNR", t.elapsed());
            (assignment, observed, ranges, sqnr)
        }
        Data::FloatFallback { shapes } => {
            let observed = float_tensors(&model, &model.bound_inputs(shapes)?)?;
            let assignment = assign(
                &model.graph,
                &layout,
                &observed,
                &config.quant,
                &given.encodings,
                Mode::FloatFallback,
            )?;
            (assignment, observed, BTreeMap::new(), Vec::new())
        }
    };
    let qdq = qdq_model(&model.loaded.model, &model.graph, &assignment.encodings)?;
    for (kept, other) in &assignment.conflicts {
        events.warn(&format!(
            "`{other}` keeps its given encoding, which differs from `{kept}`'s that the tensors around it share"
        ));
    }
    let (given, given_by_model) = (given.encodings.len(), given.from_model);
    Ok(Quantized { model, layout, assignment, observed, chosen, folds, sqnr, qdq, given, given_by_model })
}
