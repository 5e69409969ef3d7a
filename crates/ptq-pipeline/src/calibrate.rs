//! Calibration: every sample through the float model, the ranges of the tensors the layout
//! calibrates, and the float outputs of some samples (the closing SQNR's reference).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use anyhow::Result;
use ptq_data::{Sample, Samples};
use ptq_engine::{Engine, TractEngine, run_parts};
use ptq_ir::{Graph, Tensor};
use ptq_quant::patterns::Precision;
use ptq_quant::rules::{Layout, REARRANGING};
use ptq_quant::{GivenEncodings, Histogram, Method, MinMax, Observer, QuantSpec, calibration};
use rayon::prelude::*;

use crate::Events;
use crate::model::Model;

/// What calibration saw: the statistic `O` of every float tensor the layout calibrates, and
/// the graph outputs of the samples it was asked to keep, in that order (the float reference of
/// the closing SQNR).
pub struct Calibration<O> {
    pub seen: BTreeMap<String, O>,
    pub reference: Vec<Vec<Tensor>>,
}

/// Runs every sample, keeping the graph outputs of the samples `keep` (sorted indices). Each calibrated tensor
/// updates its observer the moment the engine computes it and is freed after its last reader,
/// so memory holds one sample's live tensors per worker, not all of them.
pub fn calibrate<O: Observer>(
    model: &Model,
    samples: &Samples,
    layout: &Layout,
    keep: &[usize],
    events: &dyn Events,
) -> Result<Calibration<O>> {
    let outputs = &model.graph.outputs;
    let mut watched: Vec<String> = outputs.clone();
    let members = layout.classes.iter().flat_map(|c| &c.members);
    watched.extend(
        members
            .filter(|m| !outputs.contains(m) && model.graph.tensor(m).is_some_and(|t| !t.is_constant()))
            .cloned(),
    );
    let same = same_values(&model.graph, &watched);
    watched.retain(|t| !same.contains_key(t));
    let engine = TractEngine::watching(&model.bytes, model.dir(), samples.inputs(), outputs, &watched)?;
    for ignored in engine.ignored_shapes() {
        events.warn(&ignored.to_string());
    }
    let reference = Mutex::new(vec![Vec::new(); keep.len()]);
    events.started("calibrating", samples.len());
    let parts = observe::<O>(&engine, samples, |i, sample, tensors| {
        for (file, count) in &sample.nonfinite {
            events.warn(&format!(
                "{} holds {count} NaN/Inf values (continuing: --allow_nonfinite)",
                file.display()
            ));
        }
        if let Ok(k) = keep.binary_search(&i) {
            reference.lock().expect("no worker panics while holding the lock")[k] = tensors;
        }
        events.advanced();
    })?;
    events.finished();
    // No uniform grid holds both finite values and infinities (an attention mask's −Inf would
    // become a finite score): such a tensor stays float, and the user hears why.
    for (name, seen) in engine.watched().iter().zip(&parts) {
        if let Some(r) = seen.as_ref().map(O::range).filter(|r| r.nonfinite > 0) {
            let everywhere = if r.is_empty() { " — all of its values" } else { "" };
            events.warn(&format!(
                "`{name}` holds {} NaN or Inf values over the samples{everywhere}: it stays float",
                r.nonfinite
            ));
        }
    }
    let mut seen: BTreeMap<String, O> = engine
        .watched()
        .iter()
        .cloned()
        .zip(parts)
        .filter_map(|(n, r)| r.filter(|r| r.range().nonfinite == 0).map(|r| (n, r)))
        .collect();
    for (tensor, source) in same {
        if let Some(o) = seen.get(&source) {
            seen.insert(tensor, o.clone());
        }
    }
    Ok(Calibration { seen, reference: reference.into_inner().expect("workers are done") })
}

/// The watched tensors whose values are another watched tensor's, rearranged (up a chain of
/// [`REARRANGING`] ops): every statistic of theirs is that tensor's, so they are not observed
/// again (a transformer's attention reshapes and transposes are a quarter of what it computes).
fn same_values(graph: &Graph, watched: &[String]) -> BTreeMap<String, String> {
    let set: BTreeSet<&String> = watched.iter().collect();
    let source = |t: &String| {
        graph
            .producer(t)
            .filter(|n| {
                matches!(n.domain.as_str(), "" | "ai.onnx") && REARRANGING.contains(&n.op_type.as_str())
            })
            .and_then(|n| n.inputs.first())
    };
    let mut same = BTreeMap::new();
    for t in watched {
        let mut root = t;
        while let Some(input) = source(root).filter(|i| set.contains(i)) {
            root = input;
        }
        if root != t {
            same.insert(t.clone(), root.clone());
        }
    }
    same
}

/// Every sample through `engine` in parallel, each watched float tensor into an observer of
/// its own part of the samples; the parts merge in sample order. `None` for a tensor never seen
/// as float (only float tensors get encodings, spec §5.1). `done` gets each sample's outputs.
fn observe<O: Observer>(
    engine: &TractEngine,
    samples: &Samples,
    done: impl Fn(usize, &Sample, Vec<Tensor>) + Sync,
) -> Result<Vec<Option<O>>> {
    let watched = engine.watched().len();
    let parts = run_parts(
        engine,
        samples,
        || vec![None::<O>; watched],
        |seen, k, values| seen[k].get_or_insert_with(O::default).observe(values),
        |i, sample, outputs| -> Result<()> {
            done(i, sample, outputs);
            Ok(())
        },
    )?;
    let mut merged: Vec<Option<O>> = vec![None; watched];
    for part in parts {
        for (acc, seen) in merged.iter_mut().zip(part) {
            match (acc.as_mut(), seen) {
                (Some(acc), Some(seen)) => acc.merge(&seen),
                (None, seen) => *acc = seen,
                (Some(_), None) => {}
            }
        }
    }
    Ok(merged)
}

/// The range each calibrated tensor's encoding is to cover: what `method` chooses from its
/// histogram for the grid that tensor gets (the activation spec, the bitwidth a pattern gives
/// its class, or the bitwidth an override asks for).
pub fn chosen_ranges(
    graph: &Graph,
    layout: &Layout,
    seen: &BTreeMap<String, Histogram>,
    method: Method,
    act: &QuantSpec,
    given: &GivenEncodings,
) -> BTreeMap<String, MinMax> {
    let mut own_bits: BTreeMap<&str, u8> = BTreeMap::new();
    for (class, precision) in &layout.own_precision {
        if let Precision::Bits(bits) = precision {
            own_bits.extend(layout.classes[*class].members.iter().map(|m| (m.as_str(), *bits)));
        }
    }
    let spec = |name: &str| match given.get(name).and_then(|g| g.given.bitwidth_spec(act)) {
        Some(spec) => spec,
        None => own_bits.get(name).map_or(*act, |&bitwidth| act.at_bitwidth(bitwidth)),
    };
    let chosen: Vec<(String, MinMax)> = seen
        .par_iter()
        .map(|(name, h)| (name.clone(), calibration::choose(h, method.for_tensor(graph, name), &spec(name))))
        .collect();
    chosen.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use ptq_onnx::build::{FLOAT, i64_tensor, model, node, tensor_value};

    use super::*;

    /// `x → Relu → a → Reshape → b → Transpose → c → Relu → d`: b and c hold a's values.
    #[test]
    fn rearranged_tensors_take_their_source_statistics() {
        let nodes = vec![
            node("Relu", "r1", &["x"], &["a"]),
            node("Reshape", "re", &["a", "shape"], &["b"]),
            node("Transpose", "tr", &["b"], &["c"]),
            node("Relu", "r2", &["c"], &["d"]),
        ];
        let io = |name| tensor_value(name, FLOAT, &[1, 4]);
        // The Reshape's target shape is an initializer: a graph reading an undefined tensor is refused.
        let m = model(13, nodes, vec![io("x")], vec![io("d")], vec![i64_tensor("shape", &[2], &[1, 4])]);
        let graph = Graph::new(&m, std::path::Path::new(".")).unwrap();
        let watched: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let same = same_values(&graph, &watched);
        let want: BTreeMap<String, String> =
            [("b", "a"), ("c", "a")].map(|(t, s)| (t.to_owned(), s.to_owned())).into();
        assert_eq!(same, want);
        // Unwatched sources are not stood in for: b is then observed itself.
        let same = same_values(&graph, &watched[1..]);
        assert_eq!(same.get("c").map(String::as_str), Some("b"));
        assert!(!same.contains_key("b"));
    }
}
