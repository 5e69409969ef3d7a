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
    /// Whether the output itself carries an encoding.
    pub quantized: bool,
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
                quantized: encodings.get(name).is_some(),
            }
        })
        .collect())
}
