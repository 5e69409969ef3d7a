//! Encodings given to ptq rather than calibrated: the model's own QDQ nodes (QAT) and an
//! overrides file — read, checked against the model, and merged (overrides win, spec §1.1).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};
use ptq_ir::Graph;
use ptq_quant::overrides_json::{check_names, parse_overrides_with_warnings};
use ptq_quant::{Given as GivenKind, GivenEncodings};

use crate::Events;
use crate::model::Model;

/// The float model (QDQ nodes and float-16 Cast pairs taken out) and every given encoding.
pub struct Given {
    pub model: Model,
    pub encodings: GivenEncodings,
    /// How many came from the model itself.
    pub from_model: usize,
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
        return Ok(Given { model, encodings: GivenEncodings::new(), from_model: 0 });
    }
    let from_model = encodings.len();
    if let Some(path) = overrides {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --quantization_overrides {}", path.display()))?;
        let (file, warnings) = parse_overrides_with_warnings(path, &text)?;
        for warning in warnings {
            events.warn(&warning);
        }
        // Overrides win over the model's own encodings (spec §1.1).
        encodings.extend(file);
    }
    Ok(Given { model, encodings, from_model })
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
            && e.axis.is_some()
        {
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
