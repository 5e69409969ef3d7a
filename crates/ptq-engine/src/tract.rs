//! The tract backend.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use prost::Message;
use ptq_data::BoundInput;
use ptq_ir::Tensor;
use tract_onnx::pb::{GraphProto, ModelProto};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_hir::infer::Factoid;

use crate::convert::{datum_type, from_tract, to_tract};
use crate::error::chain;
use crate::shapes::{self, IgnoredShape};
use crate::unsupported::{self, UnsupportedOp};
use crate::{Engine, Error, Runner};

/// A model optimised by tract for fixed input shapes, returning the observed tensors.
pub struct TractEngine {
    plan: Arc<TypedRunnableModel>,
    observed: Vec<String>,
    /// For each tract source in order: its name and its position in the caller's inputs.
    inputs: Vec<(String, usize)>,
    ignored_shapes: Vec<IgnoredShape>,
    watched: Vec<String>,
    /// Per plan node: (output slot, index in `watched`) of the watched tensors it computes.
    watch_by_node: HashMap<usize, Vec<(usize, usize)>>,
    /// Watched tensors tract folded into constants (index in `watched`, value): the plan seeds
    /// them rather than computing them, so each run shows them as they are.
    watched_constants: Vec<(usize, Arc<tract_onnx::prelude::Tensor>)>,
    /// The shape of each watched tensor, where tract knows it once the inputs are bound.
    watched_shapes: Vec<Option<Vec<usize>>>,
}

/// The model as tract reads it, without its declared intermediate shapes (`value_info`): those
/// are checked against the bound inputs later (see `shapes`). Returns the graph proto too.
struct Parsed {
    model: InferenceModel,
    outlets_by_name: HashMap<String, OutletId>,
    proto: ModelProto,
}

impl Parsed {
    fn graph(&self) -> &GraphProto {
        self.proto.graph.as_ref().expect("tract parsed a graph")
    }
}

fn parse(model: &[u8], model_dir: &Path) -> Result<Parsed, Error> {
    let load = |reason: String| Error::Load { reason };
    let proto = ModelProto::decode(model).map_err(|e| load(e.to_string()))?;
    let dir = model_dir.to_str().map(str::to_owned);
    let parsed = crate::fake_quant::onnx().parse(&proto, dir.as_deref()).map_err(|e| load(chain(&e)))?;
    if !parsed.unresolved_inputs.is_empty() {
        return Err(load(format!(
            "these tensors are read but never defined: {}",
            parsed.unresolved_inputs.join(", ")
        )));
    }
    Ok(Parsed { model: parsed.model, outlets_by_name: parsed.outlets_by_name, proto })
}

/// Every operator type tract cannot run, each with the names of the nodes that use it.
pub fn unsupported_ops(model: &[u8], model_dir: &Path) -> Result<Vec<UnsupportedOp>, Error> {
    let parsed = parse(model, model_dir)?;
    Ok(unsupported::collect(&parsed.model, &parsed.proto, parsed.graph()))
}

/// The tensors tract's type inference says are float32, without running the model (float
/// fallback has no samples to look at), for the inputs bound so far (`inputs` may leave some
/// out). Best effort: a tensor whose type stays unknown is left out.
pub fn float_tensors(
    model: &[u8],
    model_dir: &Path,
    inputs: &[BoundInput],
) -> Result<BTreeSet<String>, Error> {
    let mut parsed = parse(model, model_dir)?;
    let m = &mut parsed.model;
    set_inputs(m, inputs, false)?;
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

/// The shape of every tensor whose dims tract's shape inference fixes for the bound `inputs`,
/// without running the model (what MAC counts are computed from). Best effort, like
/// [`float_tensors`]: a tensor with any dim left open is left out.
pub fn tensor_shapes(
    model: &[u8],
    model_dir: &Path,
    inputs: &[BoundInput],
) -> Result<BTreeMap<String, Vec<usize>>, Error> {
    let mut parsed = parse(model, model_dir)?;
    let m = &mut parsed.model;
    set_inputs(m, inputs, false)?;
    let _ = m.analyse(false);
    let dims = |fact: &InferenceFact| -> Option<Vec<usize>> {
        fact.shape
            .concretize()?
            .iter()
            .map(|d| d.to_i64().ok().and_then(|v| usize::try_from(v).ok()))
            .collect()
    };
    Ok(parsed
        .outlets_by_name
        .iter()
        .filter_map(|(name, outlet)| Some((name.clone(), dims(m.outlet_fact(*outlet).ok()?)?)))
        .collect())
}

/// Sets each source's fact to its bound input's type and shape, returning (name, position in
/// `inputs`) per source in order; `all` makes an unbound source an error.
fn set_inputs(
    m: &mut InferenceModel,
    inputs: &[BoundInput],
    all: bool,
) -> Result<Vec<(String, usize)>, Error> {
    let sources = m.input_outlets().map_err(|e| Error::Load { reason: chain(&e) })?.to_vec();
    let mut names = Vec::with_capacity(sources.len());
    for (i, outlet) in sources.iter().enumerate() {
        let name = m.node(outlet.node).name.clone();
        let Some(position) = inputs.iter().position(|b| b.name == name) else {
            if all {
                return Err(Error::Input { name, reason: "no shape was given for this graph input".into() });
            }
            continue;
        };
        let bound = &inputs[position];
        let dt = datum_type(bound.dtype).ok_or_else(|| Error::Input {
            name: name.clone(),
            reason: format!("{} inputs are not supported", bound.dtype),
        })?;
        m.set_input_fact(i, InferenceFact::dt_shape(dt, bound.shape.clone()))
            .map_err(|e| Error::Input { name: name.clone(), reason: chain(&e) })?;
        names.push((name, position));
    }
    Ok(names)
}

impl TractEngine {
    /// Prepares `model` (encoded ONNX) for the bound input shapes, returning `observed` (any
    /// tensor names: graph inputs, constants, intermediates, outputs) from every run.
    pub fn new(
        model: &[u8],
        model_dir: &Path,
        inputs: &[BoundInput],
        observed: &[String],
    ) -> Result<Self, Error> {
        TractEngine::watching(model, model_dir, inputs, observed, &[])
    }

    /// Like [`TractEngine::new`], and [`Runner::run_watching`] shows each of the `watched`
    /// tensors as soon as it is computed, after which it lives only as long as a later node
    /// needs it.
    ///
    /// The watched tensors are pinned as outputs while tract optimises, so none is fused away,
    /// and unpinned before the plan is made, so the plan frees each after its last reader. One
    /// that no output needs (a constant tract folded, a dead end) stays an output.
    pub fn watching(
        model: &[u8],
        model_dir: &Path,
        inputs: &[BoundInput],
        observed: &[String],
        watched: &[String],
    ) -> Result<Self, Error> {
        let mut parsed = parse(model, model_dir)?;
        let unsupported = unsupported::collect(&parsed.model, &parsed.proto, parsed.graph());
        if !unsupported.is_empty() {
            return Err(Error::Unsupported { ops: unsupported });
        }
        let names = set_inputs(&mut parsed.model, inputs, true)?;
        let Parsed { model: mut m, outlets_by_name, proto } = parsed;
        m.analyse(false).map_err(|e| contradiction(&m, inputs, &e))?;
        let graph = proto.graph.as_ref().expect("tract parsed a graph");
        let ignored_shapes = shapes::reconcile(&mut m, &outlets_by_name, graph, inputs)
            .map_err(|e| Error::Prepare { inputs: describe(inputs), reason: chain(&e) })?;
        // tract holds its own copy of the weights: the proto's would double the peak.
        drop(proto);
        let outlets = observed
            .iter()
            .chain(watched)
            .map(|n| outlets_by_name.get(n).copied().ok_or_else(|| Error::NoSuchTensor { name: n.clone() }))
            .collect::<Result<Vec<_>, _>>()?;
        let prepare = |e: TractError| Error::Prepare { inputs: describe(inputs), reason: chain(&e) };
        m.select_output_outlets(&outlets).map_err(prepare)?;
        // Typing analyses again; a failure there names its node as well.
        let typed = m.clone();
        let mut optimized = m.into_optimized().map_err(|e| contradiction(&typed, inputs, &e))?;
        let pinned = optimized.output_outlets().map_err(prepare)?.to_vec();
        let (returned, watched_outlets) = pinned.split_at(observed.len());
        optimized.select_output_outlets(returned).map_err(prepare)?;
        let computed: std::collections::HashSet<usize> =
            optimized.eval_order().map_err(prepare)?.into_iter().collect();
        let mut watch_by_node: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
        let mut watched_constants = Vec::new();
        let mut dead_ends = Vec::new();
        let watched_shapes = watched_outlets
            .iter()
            .map(|o| {
                let fact = optimized.outlet_fact(*o).ok()?;
                fact.shape.as_concrete().map(<[usize]>::to_vec)
            })
            .collect();
        for (k, outlet) in watched_outlets.iter().enumerate() {
            if let Some(konst) = optimized.node(outlet.node).op_as::<Const>() {
                watched_constants.push((k, konst.val().clone()));
                continue;
            }
            if !computed.contains(&outlet.node) {
                dead_ends.push(*outlet);
            }
            watch_by_node.entry(outlet.node).or_default().push((outlet.slot, k));
        }
        if !dead_ends.is_empty() {
            optimized.select_output_outlets(&[returned, &dead_ends].concat()).map_err(prepare)?;
        }
        let plan = optimized.into_runnable().map_err(prepare)?;
        Ok(TractEngine {
            plan,
            observed: observed.to_vec(),
            inputs: names,
            ignored_shapes,
            watched: watched.to_vec(),
            watch_by_node,
            watched_constants,
            watched_shapes,
        })
    }

    /// The shape of the `k`-th watched tensor, where it does not depend on the sample.
    pub fn watched_shape(&self, k: usize) -> Option<&[usize]> {
        self.watched_shapes.get(k)?.as_deref()
    }

    /// The model's declared intermediate shapes that contradict the bound inputs (ignored).
    pub fn ignored_shapes(&self) -> &[IgnoredShape] {
        &self.ignored_shapes
    }
}

/// The node where tract's shape inference found the bound inputs contradicting the model, or
/// where it could not type a node for them, with the shapes it had reached there.
fn contradiction(m: &InferenceModel, inputs: &[BoundInput], e: &TractError) -> Error {
    // tract writes `Failed analyse for node #12 "name" Op` and `Translating node #12 "name" Op`;
    // the number may be of a compacted copy of the model, the name is the ONNX one.
    let found = e.chain().find_map(|c| {
        let text = c.to_string();
        let (stage, rest) = [("analyse", "Failed analyse for node #"), ("translate", "Translating node #")]
            .into_iter()
            .find_map(|(stage, prefix)| Some((stage, text.strip_prefix(prefix)?.to_owned())))?;
        let name = rest.split('"').nth(1)?;
        Some((stage, m.node_by_name(name).ok()?))
    });
    let Some((stage, node)) = found else {
        return Error::Prepare { inputs: describe(inputs), reason: chain(e) };
    };
    let facts = |outlets: &[OutletId]| -> String {
        outlets
            .iter()
            .map(|o| m.outlet_fact(*o).map(|f| shapes::format_fact(&f.shape)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let outputs: Vec<OutletId> = (0..node.outputs.len()).map(|k| OutletId::new(node.id, k)).collect();
    let shapes = format!(
        "the bound input shapes {}: they give its inputs shapes {} and its outputs {}",
        describe(inputs),
        facts(&node.inputs),
        facts(&outputs)
    );
    let (node, op) = (node.name.clone(), node.op.name().to_string());
    let reason = chain(e);
    let reason = reason.rsplit_once(&format!("{op} ToTypedTranslator: ")).map_or(reason.as_str(), |r| r.1);
    if op == "If" {
        // tract unifies the two branches' outputs (when analysing) or asserts them equal (when
        // typing); say so in ONNX terms, with the shapes it compared.
        let detail = match reason.rsplit_once(" (") {
            Some((assertion, facts)) if assertion.contains("then_body") => {
                facts.trim_end_matches(')').replace(" vs ", " against ")
            }
            _ => e.root_cause().to_string().trim_end_matches('.').to_owned(),
        };
        let reason = format!(
            "its then and else branches give outputs of different shapes ({detail}), and tract needs them to agree"
        );
        return Error::Untyped { node, op, shapes, reason };
    }
    if stage == "analyse" {
        Error::Contradiction { node, op, shapes, reason: e.root_cause().to_string() }
    } else {
        Error::Untyped { node, op, shapes, reason: reason.to_owned() }
    }
}

fn describe(inputs: &[BoundInput]) -> String {
    inputs.iter().map(|b| format!("{} {} {:?}", b.name, b.dtype, b.shape)).collect::<Vec<_>>().join(", ")
}

impl Engine for TractEngine {
    fn observed(&self) -> &[String] {
        &self.observed
    }

    fn watched(&self) -> &[String] {
        &self.watched
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

impl TractRunner<'_> {
    fn values(&self, inputs: &[Tensor]) -> Result<TVec<TValue>, Error> {
        self.engine
            .inputs
            .iter()
            .map(|(name, position)| {
                let t = inputs.get(*position).ok_or_else(|| Error::Input {
                    name: name.clone(),
                    reason: "no value was given for this graph input".into(),
                })?;
                to_tract(name, t).map(TValue::from)
            })
            .collect()
    }

    fn outputs(&self, outputs: &[TValue]) -> Result<Vec<Tensor>, Error> {
        self.engine.observed.iter().zip(outputs).map(|(name, t)| from_tract(name, t)).collect()
    }
}

impl Runner for TractRunner<'_> {
    fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, Error> {
        let values = self.values(inputs)?;
        let outputs = self.state.run(values).map_err(|e| Error::Run { reason: chain(&e) })?;
        self.outputs(&outputs)
    }

    fn run_watching(
        &mut self,
        inputs: &[Tensor],
        watch: &mut dyn FnMut(usize, &[f32]),
    ) -> Result<Vec<Tensor>, Error> {
        let values = self.values(inputs)?;
        let by_node = &self.engine.watch_by_node;
        let outputs = self
            .state
            .run_plan_with_eval(values, |ctx, state, node, node_inputs| -> TractResult<TVec<TValue>> {
                let computed = tract_onnx::tract_core::plan::eval(ctx, state, node, node_inputs)?;
                for &(slot, k) in by_node.get(&node.id).into_iter().flatten() {
                    // Only float tensors get encodings (spec §5.1).
                    if computed[slot].datum_type() == DatumType::F32 {
                        watch(k, computed[slot].try_as_plain_ram()?.as_slice::<f32>()?);
                    }
                }
                Ok(computed)
            })
            .map_err(|e| Error::Run { reason: chain(&e) })?;
        for (k, t) in &self.engine.watched_constants {
            if let Ok(values) = t.try_as_plain_ram().and_then(|v| v.as_slice::<f32>()) {
                watch(*k, values);
            }
        }
        self.outputs(&outputs)
    }
}
