//! Normalising a model before calibration: the opset its QDQ form needs, and the layer folds.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use ptq_algos::{Fold, Skipped};
use ptq_data::BoundInput;
use ptq_export::required_opset;
use ptq_onnx::Loaded;
use ptq_onnx::proto::ModelProto;
use ptq_quant::{Given, GivenEncodings, MinMax};

use crate::model::Model;

/// The float model ptq calibrates: converted to the opset its QDQ form needs (DESIGN.md
/// Decision 3), with BatchNormalization and per-channel Add/Sub/Mul folded into the layers
/// before them (Decision 11; qairt's converter squashes them the same way). `own_bits`: the
/// bitwidths ptq itself will give tensors besides the given encodings (the configured ones when
/// calibrating, those patterns choose: `ptq_quant::patterns`). Returns it with the folds made and the
/// BatchNormalizations that could not be folded (they stay in the model, quantized as their own op).
pub fn prepare(
    original: &Model,
    given: &GivenEncodings,
    own_bits: &[u8],
) -> Result<(Model, Vec<Fold>, Vec<Skipped>)> {
    let mut loaded = original.loaded.clone();
    let current = original.opset();
    let given_bits = given.values().filter_map(|g| match &g.given {
        Given::Fixed(e) => Some(e.bitwidth),
        Given::Bitwidth { bitwidth, .. } => Some(*bitwidth),
        Given::Float { .. } => None,
    });
    let target = required_opset(given_bits.chain(own_bits.iter().copied()), current);
    loaded.model = upgraded(&loaded, current, target)?;
    let folded = ptq_algos::fold_layers(&loaded.model, loaded.dir(), &|t| given.contains_key(t))?;
    loaded.model = folded.model;
    Ok((Model::new(loaded)?, folded.folded, folded.skipped))
}

/// `model` at the opset its tensors of `bits` need (itself when it has it already): for tensors
/// calibration gave a wider grid than the model was prepared for. Tensor names stay.
pub fn with_bits(model: Model, bits: &[u8]) -> Result<Model> {
    let (current, target) = (model.opset(), required_opset(bits.iter().copied(), model.opset()));
    if target <= current {
        return Ok(model);
    }
    let mut loaded = model.loaded;
    loaded.model = upgraded(&loaded, current, target)?;
    Model::new(loaded)
}

/// The proto of `loaded` converted from opset `current` to `target` when that is newer.
fn upgraded(loaded: &Loaded, current: i64, target: i64) -> Result<ModelProto> {
    if target <= current {
        return Ok(loaded.model.clone());
    }
    ptq_ir::upgrade_opset(&loaded.model, loaded.dir(), target)
        .with_context(|| format!("converting {} from opset {current} to {target}", loaded.path.display()))
}

/// Every tensor tract's type inference finds float, with an empty range: float fallback's
/// stand-in for calibration, which tells which tensors can carry an encoding.
pub fn float_tensors(model: &Model, inputs: &[BoundInput]) -> Result<BTreeMap<String, MinMax>> {
    let names = ptq_engine::float_tensors(&model.bytes, model.dir(), inputs)?;
    Ok(names.into_iter().map(|n| (n, MinMax::default())).collect())
}
