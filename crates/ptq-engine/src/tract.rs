//! The tract backend.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use prost::Message;
use ptq_data::BoundInput;
use ptq_ir::Tensor;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::ops::unimpl::UnimplementedOp;

use crate::convert::{datum_type, from_tract, to_tract};
use crate::error::chain;
use crate::{Engine, Error, Runner};

/// A model optimised by tract for fixed input shapes, returning the observed tensors.
pub struct TractEngine {
    plan: Arc<TypedRunnableModel>,
    observed: Vec<String>,
    /// For each tract source in order: its name and its position in the caller's inputs.
    inputs: Vec<(String, usize)>,
}

fn parse(model: &[u8], model_dir: &Path) -> Result<tract_onnx::model::ParseResult, Error> {
    let load = |reason: String| Error::Load { reason };
    let proto = tract_onnx::pb::ModelProto::decode(model).map_err(|e| load(e.to_string()))?;
    let dir = model_dir.to_str().map(str::to_owned);
    let parsed = crate::fake_quant::onnx().parse(&proto, dir.as_deref()).map_err(|e| load(chain(&e)))?;
    if !parsed.unresolved_inputs.is_empty() {
        return Err(load(format!(
            "these tensors are read but never defined: {}",
            parsed.unresolved_inputs.join(", ")
        )));
    }
    Ok(parsed)
}

/// Every operator type tract cannot run, each with the names of the nodes that use it.
pub fn unsupported_ops(model: &[u8], model_dir: &Path) -> Result<Vec<(String, Vec<String>)>, Error> {
    let parsed = parse(model, model_dir)?;
    Ok(collect_unsupported(&parsed.model))
}

/// The tensors tract's type inference says are float32, without running the model (float
/// fallback has no samples to look at). Best effort: a tensor whose type stays unknown is left out.
pub fn float_tensors(model: &[u8], model_dir: &Path) -> Result<BTreeSet<String>, Error> {
    let parsed = parse(model, model_dir)?;
    let mut m = parsed.model;
    // Analysis may stop early on shapes it cannot resolve; the types found by then stand.
    let _ = m.analyse(false);
    Ok(parsed
        .outlets_by_name
        .iter()
        .filter(|(_, outlet)| {
            m.outlet_fact(**outlet).ok().and_then(|f| f.datum_type.concretize()) == Some(DatumType::F32)
        })
        .map(|(name, _)| name.clone())
        .collect())
}

fn collect_unsupported(model: &InferenceModel) -> Vec<(String, Vec<String>)> {
    let mut ops: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for node in model.nodes() {
        if let Some(op) = node.op_as::<UnimplementedOp>() {
            // tract names it `Unimplemented(<ONNX op type>)`.
            let name = op.name();
            let op_type =
                name.strip_prefix("Unimplemented(").and_then(|s| s.strip_suffix(')')).unwrap_or(&name);
            ops.entry(op_type.to_owned()).or_default().push(node.name.clone());
        }
    }
    ops.into_iter().collect()
}

impl TractEngine {
    /// Prepares `model` (encoded ONNX) for the bound input shapes, observing `observed` (any
    /// tensor names: graph inputs, constants, intermediates, outputs).
    pub fn new(
        model: &[u8],
        model_dir: &Path,
        inputs: &[BoundInput],
        observed: &[String],
    ) -> Result<Self, Error> {
        let parsed = parse(model, model_dir)?;
        let unsupported = collect_unsupported(&parsed.model);
        if !unsupported.is_empty() {
            return Err(Error::Unsupported { ops: unsupported });
        }
        let mut m = parsed.model;
        let sources = m.input_outlets().map_err(|e| Error::Load { reason: chain(&e) })?.to_vec();
        let mut names = Vec::with_capacity(sources.len());
        for (i, outlet) in sources.iter().enumerate() {
            let name = m.node(outlet.node).name.clone();
            let position = inputs.iter().position(|b| b.name == name).ok_or_else(|| Error::Input {
                name: name.clone(),
                reason: "no shape was given for this graph input".into(),
            })?;
            let bound = &inputs[position];
            let dt = datum_type(bound.dtype).ok_or_else(|| Error::Input {
                name: name.clone(),
                reason: format!("{} inputs are not supported", bound.dtype),
            })?;
            m.set_input_fact(i, InferenceFact::dt_shape(dt, bound.shape.clone()))
                .map_err(|e| Error::Input { name: name.clone(), reason: chain(&e) })?;
            names.push((name, position));
        }
        let outlets = observed
            .iter()
            .map(|n| {
                parsed.outlets_by_name.get(n).copied().ok_or_else(|| Error::NoSuchTensor { name: n.clone() })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let prepare = |e: TractError| Error::Prepare { inputs: describe(inputs), reason: chain(&e) };
        m.select_output_outlets(&outlets).map_err(prepare)?;
        let plan = m.into_optimized().and_then(|m| m.into_runnable()).map_err(prepare)?;
        Ok(TractEngine { plan, observed: observed.to_vec(), inputs: names })
    }
}

fn describe(inputs: &[BoundInput]) -> String {
    inputs.iter().map(|b| format!("{} {} {:?}", b.name, b.dtype, b.shape)).collect::<Vec<_>>().join(", ")
}

impl Engine for TractEngine {
    fn observed(&self) -> &[String] {
        &self.observed
    }

    fn runner(&self) -> Result<Box<dyn Runner + '_>, Error> {
        let state = self.plan.spawn().map_err(|e| Error::Run { reason: chain(&e) })?;
        Ok(Box::new(TractRunner { engine: self, state }))
    }
}

struct TractRunner<'a> {
    engine: &'a TractEngine,
    state: TypedSimpleState,
}

impl Runner for TractRunner<'_> {
    fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, Error> {
        let values = self
            .engine
            .inputs
            .iter()
            .map(|(name, position)| {
                let t = inputs.get(*position).ok_or_else(|| Error::Input {
                    name: name.clone(),
                    reason: "no value was given for this graph input".into(),
                })?;
                to_tract(name, t).map(TValue::from)
            })
            .collect::<Result<TVec<_>, _>>()?;
        let outputs = self.state.run(values).map_err(|e| Error::Run { reason: chain(&e) })?;
        self.engine.observed.iter().zip(outputs.iter()).map(|(name, t)| from_tract(name, t)).collect()
    }
}
