//! SmoothQuant before calibration ([`ptq_algos::smooth`]): one short pass over the calibration
//! samples watching only the candidate activations, their per-channel `max|x|`, then the
//! rewrite. The main calibration then runs on the rewritten model.
//!
//! Opt-in (`Config::smooth`): on minilm_l3, whose activations reach 16× their median channel
//! before MatMuls (anchors.md pattern 2), migrating them gained nothing (−0.1 … +0.1 dB at α 0.5
//! and 0.75, worse at 0.25): ptq quantizes every activation, and there the error enters on the
//! residual stream, which no MatMul input smoothing reaches (BENCHMARKS.md, SmoothQuant).

use std::collections::BTreeMap;

use anyhow::Result;
use ptq_algos::smooth::{Candidate, candidates};
use ptq_algos::{SmoothOptions, Smoothing};
use ptq_data::Samples;
use ptq_engine::{TractEngine, run_parts};
use ptq_quant::GivenEncodings;

use crate::Events;
use crate::model::Model;

/// `model` with its outlier activations smoothed, and what was done (nothing when no
/// activation qualifies; then no samples are run either).
pub fn smooth(
    model: Model,
    samples: &Samples,
    options: SmoothOptions,
    given: &GivenEncodings,
    events: &dyn Events,
) -> Result<(Model, Vec<Smoothing>)> {
    let keep = |t: &str| given.contains_key(t);
    let found = candidates(&model.graph, &keep)?;
    if found.is_empty() {
        return Ok((model, Vec::new()));
    }
    let maxima = channel_maxima(&model, samples, &found, events)?;
    let smoothed = ptq_algos::smooth(&model.loaded.model, model.dir(), &maxima, options, &keep)?;
    if smoothed.smoothed.is_empty() {
        return Ok((model, Vec::new()));
    }
    let mut loaded = model.loaded;
    loaded.model = smoothed.model;
    Ok((Model::new(loaded)?, smoothed.smoothed))
}

/// Per candidate, `max|x|` per channel of its last axis over every sample (non-finite values
/// left out). A candidate whose values do not split into its channel count is left out.
fn channel_maxima(
    model: &Model,
    samples: &Samples,
    found: &[Candidate],
    events: &dyn Events,
) -> Result<BTreeMap<String, Vec<f32>>> {
    let watched: Vec<String> = found.iter().map(|c| c.tensor.clone()).collect();
    let outputs = &model.graph.outputs;
    let engine = TractEngine::watching(&model.bytes, model.dir(), samples.inputs(), outputs, &watched)?;
    let channels: Vec<usize> = found.iter().map(|c| c.channels.max(1)).collect();
    events.started("smoothing: per-channel ranges", samples.len());
    // Per part: per watched tensor, its channel maxima (None once a shape does not fit).
    let parts = run_parts(
        &engine,
        samples,
        || vec![Some(Vec::<f32>::new()); watched.len()],
        |seen: &mut Vec<Option<Vec<f32>>>, k, values| {
            let Some(max) = seen[k].as_mut() else { return };
            let c = channels[k];
            if values.len() % c != 0 {
                seen[k] = None;
                return;
            }
            max.resize(c, 0.0);
            for row in values.chunks_exact(c) {
                for (m, v) in max.iter_mut().zip(row) {
                    // NaN and ±Inf never win: `f32::max` skips NaN, the test skips infinities.
                    if v.is_finite() {
                        *m = m.max(v.abs());
                    }
                }
            }
        },
        |_, _, _| -> Result<()> {
            events.advanced();
            Ok(())
        },
    )?;
    events.finished();
    // Maxima are order-independent, so merging in any order gives the same bytes.
    let mut merged: Vec<Option<Vec<f32>>> = vec![Some(Vec::new()); watched.len()];
    for part in parts {
        for (acc, seen) in merged.iter_mut().zip(part) {
            match (acc.as_mut(), seen) {
                (Some(acc), Some(seen)) => {
                    acc.resize(seen.len().max(acc.len()), 0.0);
                    for (a, s) in acc.iter_mut().zip(seen) {
                        *a = a.max(s);
                    }
                }
                _ => *acc = None,
            }
        }
    }
    Ok(watched.into_iter().zip(merged).filter_map(|(n, m)| Some((n, m.filter(|m| !m.is_empty())?))).collect())
}
