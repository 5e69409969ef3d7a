//! Calibration: every sample through the float model, the ranges of the tensors the layout
//! calibrates, and the float outputs of the first samples (the closing SQNR's reference).

use std::collections::BTreeMap;
use std::sync::Mutex;

use anyhow::Result;
use ptq_data::Samples;
use ptq_engine::{Engine, TractEngine, run_samples};
use ptq_ir::{DataType, Tensor};
use ptq_quant::MinMax;
use ptq_quant::rules::Layout;

use crate::Events;
use crate::model::Model;

/// What calibration saw: the range of every float tensor the layout calibrates, and the graph
/// outputs of the first samples (the float reference of the closing SQNR).
pub struct Calibration {
    pub ranges: BTreeMap<String, MinMax>,
    pub reference: Vec<Vec<Tensor>>,
}

/// Runs every sample, keeping the graph outputs of the first `keep`.
pub fn calibrate(
    model: &Model,
    samples: &Samples,
    layout: &Layout,
    keep: usize,
    events: &dyn Events,
) -> Result<Calibration> {
    let outputs = &model.graph.outputs;
    let mut observed: Vec<String> = outputs.clone();
    let members = layout.classes.iter().flat_map(|c| &c.members);
    observed.extend(
        members
            .filter(|m| !outputs.contains(m) && model.graph.tensor(m).is_some_and(|t| !t.is_constant()))
            .cloned(),
    );
    let engine = TractEngine::new(&model.bytes, model.dir(), samples.inputs(), &observed)?;
    for ignored in engine.ignored_shapes() {
        events.warn(&ignored.to_string());
    }
    let ranges = Mutex::new(vec![None::<MinMax>; observed.len()]);
    let reference = Mutex::new(vec![Vec::new(); keep.min(samples.len())]);
    events.started("calibrating", samples.len());
    run_samples(&engine, samples, |i, sample, mut tensors| -> Result<()> {
        for (file, count) in &sample.nonfinite {
            events.warn(&format!(
                "{} holds {count} NaN/Inf values (continuing: --allow_nonfinite)",
                file.display()
            ));
        }
        // Reduce this sample at once; only float tensors get encodings (spec §5.1).
        let seen: Vec<Option<MinMax>> = tensors
            .iter()
            .map(|t| (t.dtype == DataType::Float).then(|| MinMax::of(&t.to_f32().unwrap_or_default())))
            .collect();
        if i < keep {
            tensors.truncate(outputs.len());
            reference.lock().expect("no worker panics while holding the lock")[i] = tensors;
        }
        let mut ranges = ranges.lock().expect("no worker panics while holding the lock");
        for (acc, s) in ranges.iter_mut().zip(seen) {
            if let Some(s) = s {
                acc.get_or_insert_with(MinMax::default).merge(&s);
            }
        }
        events.advanced();
        Ok(())
    })?;
    events.finished();
    let ranges = ranges.into_inner().expect("workers are done");
    let ranges =
        engine.observed().iter().cloned().zip(ranges).filter_map(|(n, r)| r.map(|r| (n, r))).collect();
    Ok(Calibration { ranges, reference: reference.into_inner().expect("workers are done") })
}
