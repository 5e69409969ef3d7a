//! The simulated model against the float one: SQNR per graph output.

use std::sync::Mutex;

use anyhow::{Context, Result};
use ptq_data::Samples;
use ptq_engine::{TractEngine, run_samples};
use ptq_export::{Simulation, simulation_model};
use ptq_ir::Tensor;
use ptq_quant::Encodings;

use crate::evaluate::Sqnr;
use crate::model::Model;

/// One graph output's SQNR (models/README.md definition) over the samples simulated.
pub struct OutputSqnr {
    pub name: String,
    pub db: f64,
    pub samples: usize,
    /// How many samples the list they were taken from holds.
    pub of: usize,
    /// Measured on every sample of a separate evaluation list (else on samples spread over the
    /// calibration list).
    pub eval_list: bool,
    /// Whether the output itself carries an encoding.
    pub quantized: bool,
}

/// [`measure_sqnr`] on every sample of an evaluation list, whose float outputs are computed
/// first (only the outputs: one sample's per worker at a time besides them).
pub fn measure_sqnr_on_list(
    model: &Model,
    samples: &Samples,
    encodings: &Encodings,
) -> Result<Vec<OutputSqnr>> {
    let float = TractEngine::new(&model.bytes, model.dir(), samples.inputs(), &model.graph.outputs)?;
    let reference = Mutex::new(vec![Vec::new(); samples.len()]);
    run_samples(&float, samples, |i, _, outputs| -> Result<()> {
        reference.lock().expect("no worker panics while holding the lock")[i] = outputs;
        Ok(())
    })?;
    let reference = reference.into_inner().expect("workers are done");
    let mut sqnr = measure_sqnr(model, samples, encodings, &reference)?;
    sqnr.iter_mut().for_each(|s| s.eval_list = true);
    Ok(sqnr)
}

/// SQNR of each graph output of the simulated model against the float model's `reference`
/// outputs of the same samples (models/README.md definition).
pub fn measure_sqnr(
    model: &Model,
    samples: &Samples,
    encodings: &Encodings,
    reference: &[Vec<Tensor>],
) -> Result<Vec<OutputSqnr>> {
    let outputs = &model.graph.outputs;
    let Simulation { model: sim_model, observe_as } =
        simulation_model(&model.loaded.model, &model.graph, encodings)?;
    let sim_names: Vec<String> =
        outputs.iter().map(|o| observe_as.get(o).cloned().unwrap_or_else(|| o.clone())).collect();
    let sim = TractEngine::new(&ptq_onnx::encode(&sim_model), model.dir(), samples.inputs(), &sim_names)
        .context("preparing the simulated model")?;
    // Σx², Σ(x−x̂)² per output and sample, summed in sample order for determinism.
    let per_sample = Mutex::new(vec![Vec::new(); samples.len()]);
    run_samples(&sim, samples, |i, _, simulated| -> Result<()> {
        let sums: Vec<Option<Sqnr>> = reference[i]
            .iter()
            .zip(&simulated)
            .map(|(x, y)| Some(Sqnr::of(&x.to_f32()?, &y.to_f32()?)))
            .collect();
        per_sample.lock().expect("no worker panics while holding the lock")[i] = sums;
        Ok(())
    })?;
    let per_sample = per_sample.into_inner().expect("workers are done");
    Ok(outputs
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let mut sqnr = Sqnr::default();
            per_sample.iter().filter_map(|s| s.get(k).copied().flatten()).for_each(|s| sqnr.merge(&s));
            OutputSqnr {
                name: name.clone(),
                db: sqnr.db(),
                samples: samples.len(),
                of: samples.len(),
                eval_list: false,
                quantized: encodings.get(name).is_some(),
            }
        })
        .collect())
}
