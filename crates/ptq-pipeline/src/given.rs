//! Encodings given to ptq rather than calibrated: the model's own QDQ nodes (QAT) and an
//! overrides file — read, checked against the model, and merged (overrides win, spec §1.1).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use ptq_ir::{Graph, Patch};
use ptq_onnx::build::node;
use ptq_quant::overrides_json::{check_names, parse_overrides_with_warnings};
use ptq_quant::{Encodings, Given as GivenKind, GivenEncodings, Histogram, Origin, Section, clipped_values};

use crate::Events;
use crate::model::Model;

/// The float model (QDQ nodes and float-16 Cast pairs taken out) and every given encoding.
pub struct Given {
    pub model: Model,
    pub encodings: GivenEncodings,
    /// How many came from the model itself.
    pub from_model: usize,
    /// With `ignore`: how many the model carried and were dropped.
    pub dropped: usize,
}

/// Reads what `model` carries and what `overrides` adds; with `ignore`, keeps only the float
/// model. The override names are checked by [`check`] once the model is prepared.
pub fn gather(model: Model, overrides: Option<&Path>, ignore: bool, events: &dyn Events) -> Result<Given> {
    let (model, mut encodings) = if ptq_export::has_qdq(&model.graph) || has_fp16_pairs(&model) {
        let qat = ptq_export::read_qat(&model.loaded.model, &model.graph)
            .with_context(|| format!("reading the encodings in {}", model.loaded.path.display()))?;
        let mut loaded = model.loaded.clone();
        loaded.model = qat.model;
        (Model::new(loaded)?, qat.given)
    } else {
        (model, GivenEncodings::new())
    };
    if ignore {
        let (model, restored_relus) = restore_relus(model, &encodings)?;
        let dropped = encodings.len();
        if !restored_relus.is_empty() {
            let names: Vec<String> = restored_relus.iter().map(|t| format!("`{t}`")).collect();
            events.warn(&format!(
                "{} of the {dropped} dropped encodings clamped a layer's output at 0 (onnxruntime removes the \
                 Relu there): a Relu is put back on {}",
                names.len(),
                names.join(", ")
            ));
        }
        return Ok(Given { model, encodings: GivenEncodings::new(), from_model: 0, dropped });
    }
    let from_model = encodings.len();
    if let Some(path) = overrides {
        // Overrides win over the model's own encodings (spec §1.1).
        encodings.extend(read_overrides(path, events)?);
    }
    Ok(Given { model, encodings, from_model, dropped: 0 })
}

/// An overrides file's encodings, its warnings said.
pub fn read_overrides(path: &Path, events: &dyn Events) -> Result<GivenEncodings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --quantization_overrides {}", path.display()))?;
    let (file, warnings) = parse_overrides_with_warnings(path, &text)?;
    for warning in warnings {
        events.warn(&warning);
    }
    Ok(file)
}

/// Ops whose output a Relu commonly follows and can go negative.
const CAN_GO_NEGATIVE: [&str; 9] = [
    "Conv",
    "ConvTranspose",
    "Gemm",
    "MatMul",
    "Add",
    "Sub",
    "BatchNormalization",
    "InstanceNormalization",
    "LayerNormalization",
];

/// onnxruntime's quantizer removes a Relu (or Clip) after a layer and lets the QuantizeLinear on
/// the layer's output do the clamping: its grid starts at exactly 0 (zero point at the lowest
/// integer). Dropping such a pair would let the negatives through, so where a dropped encoding's
/// grid starts at 0 on the output of a layer that can go negative, a Relu comes back: the layer
/// writes `<t>_unclamped` and the Relu writes `t`. (A Clip's upper bound is not recoverable: the
/// grid's top is where calibration saw the values end.)
fn restore_relus(model: Model, dropped: &GivenEncodings) -> Result<(Model, Vec<String>)> {
    let graph = &model.graph;
    let clamps_at_zero = |g: &GivenKind| match g {
        GivenKind::Fixed(e) => e.axis.is_none() && e.zero_points.first() == Some(&e.grid().0),
        _ => false,
    };
    let mut patch = Patch::new();
    let mut restored = Vec::new();
    for (name, g) in dropped {
        let Some(producer) = graph.producer(name) else { continue };
        if !clamps_at_zero(&g.given) || !CAN_GO_NEGATIVE.contains(&producer.op_type.as_str()) {
            continue;
        }
        let slot = producer.outputs.iter().position(|o| o == name).expect("the producer writes it");
        let unclamped = format!("{name}_unclamped");
        patch.set_output(producer.index, slot, &unclamped);
        patch.insert_after(
            Some(producer.index),
            node("Relu", &format!("{name}_relu"), &[&unclamped], &[name]),
        );
        restored.push(name.clone());
    }
    if restored.is_empty() {
        return Ok((model, restored));
    }
    let mut loaded = model.loaded.clone();
    loaded.model = patch.apply(&loaded.model)?;
    Ok((Model::new(loaded)?, restored))
}

/// Checks the given names against the model as the user knows it (`original`) and as ptq
/// calibrates it (`prepared`: BatchNormalization, bias Adds and scale Muls folded, which adds
/// `<layer>_bias` tensors and removes the layers' own outputs), re-targets per-channel encodings to their
/// layer's output-channel axis (the files name none), and drops what the prepared model lacks.
pub fn check(
    given: &mut GivenEncodings,
    original: &Graph,
    prepared: &Graph,
    allow_unknown: bool,
    events: &dyn Events,
) -> Result<()> {
    for (name, g) in given.iter_mut() {
        if let (GivenKind::Fixed(e), Some(axis)) =
            (&mut g.given, ptq_quant::rules::weight_axis(prepared, name))
            && let Some(named) = e.axis
        {
            // 0.6.1 and 1.0.0 name no axis (read as 0); a 2.0.0 entry names its own, and one
            // that is not the weight's output-channel axis cannot be kept as it says.
            if g.section == Section::Any && named != axis {
                events.warn(&format!(
                    "`{name}`: the overrides give per-channel scales along axis {named}, but its output \
                     channels, the only per-channel axis ptq quantizes along, are axis {axis}: the scales are \
                     applied along axis {axis}; give `\"axis\": {axis}` if that is what they are"
                ));
            }
            e.axis = Some(axis);
        }
    }
    let names: BTreeSet<String> =
        original.tensors().chain(prepared.tensors()).map(|t| t.name.clone()).collect();
    let channels = |name: &str, axis: usize| prepared.tensor(name)?.shape.as_ref()?.get(axis)?.fixed();
    for warning in check_names(given, &names, &channels, allow_unknown)? {
        events.warn(&warning);
    }
    given.retain(|name, _| {
        let kept = prepared.tensor(name).is_some();
        if !kept && names.contains(name) {
            events.warn(&format!(
                "`{name}` no longer exists once the nodes after its layer are folded into it (BatchNormalization, \
                 bias Add, scale Mul); its encoding is ignored"
            ));
        }
        kept
    });
    Ok(())
}

/// DESIGN.md Decision 9's float-16 marks: `<T>_ptq_fp16_cast` / `<T>_ptq_fp16_uncast` nodes.
fn has_fp16_pairs(model: &Model) -> bool {
    model.graph.nodes().any(|n| n.op_type == "Cast" && n.name.ends_with("_ptq_fp16_cast"))
}

/// A given encoding that clips more than this share of its tensor's values gets a warning.
const CLIP_WARNING_SHARE: f64 = 0.01;

/// Given encodings that clip more than [`CLIP_WARNING_SHARE`] of their tensor's values, with
/// the share: constants counted value by value (after folding: a weight's encoding must cover
/// the folded values), activations from calibration's histograms when there are some.
pub fn clipping(
    graph: &Graph,
    encodings: &Encodings,
    histograms: Option<&BTreeMap<String, Histogram>>,
) -> Result<Vec<(String, f64)>> {
    let mut found = Vec::new();
    for (name, t) in &encodings.tensors {
        let e = &t.encoding;
        if !matches!(e.origin, Origin::Override | Origin::Qat) {
            continue;
        }
        let share = match graph.tensor(name) {
            Some(info) if info.is_constant() => {
                let tensor = graph.constant(name)?;
                let Some(values) = tensor.to_f32() else { continue };
                clipped_values(e, &values, &tensor.shape) as f64 / values.len().max(1) as f64
            }
            _ => match histograms.and_then(|h| h.get(name)) {
                Some(h) if !e.is_per_channel() => {
                    let (lo, hi) = e.clip_limits(0);
                    h.share_outside(lo, hi)
                }
                _ => continue,
            },
        };
        if share > CLIP_WARNING_SHARE {
            found.push((name.clone(), share));
        }
    }
    Ok(found)
}
