//! The two models `evaluate` compares, and which tensor of one answers to which of the other.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, bail};
use ptq_engine::fake_quant::fake_quant_in_place;
use ptq_export::{Simulation, lower_qdq, simulation_model};
use ptq_ir::{Graph, Source};
use ptq_quant::{Encoding, Encodings};

use super::metrics::Sqnr;
use crate::model::Model;

/// How a tensor is quantized where the quantized model reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Grid {
    /// An integer encoding (what a QuantizeLinear→DequantizeLinear pair computes).
    Int(Encoding),
    /// Rounded to float16 and back (DESIGN.md Decision 9).
    Float16,
}

impl Grid {
    /// The SQNR of `values` (of `shape`, where known) against their own quantized values: the
    /// error this grid alone adds. `scratch` holds the quantized copy. `None` for a per-channel
    /// grid whose channels cannot be found (shape unknown, or its axis not of the grid's length).
    pub fn own(&self, values: &[f32], shape: Option<&[usize]>, scratch: &mut Vec<f32>) -> Option<Sqnr> {
        scratch.clear();
        scratch.extend_from_slice(values);
        match self {
            Grid::Float16 => scratch.iter_mut().for_each(|x| *x = half::f16::from_f32(*x).to_f32()),
            Grid::Int(e) => {
                let (lo, hi) = e.storage_range();
                let apply = |run: &mut [f32], c: usize| {
                    let (scale, zp) = (e.scales[c], e.zero_points[c] as f32);
                    fake_quant_in_place(run, scale, zp, lo as f32, hi as f32);
                };
                if e.scales.len() == 1 {
                    apply(scratch, 0);
                } else {
                    let (axis, shape) = (e.axis?, shape?);
                    if shape.get(axis) != Some(&e.scales.len())
                        || shape.iter().product::<usize>() != values.len()
                    {
                        return None;
                    }
                    // Channel c of axis `axis` is every run of `inner` elements at c (mod channels).
                    let inner: usize = shape[axis + 1..].iter().product();
                    for (i, run) in scratch.chunks_mut(inner.max(1)).enumerate() {
                        apply(run, i % e.scales.len());
                    }
                }
            }
        }
        Some(Sqnr::of(values, scratch))
    }
}

/// A tensor of the float model that the quantized model quantizes.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Its name in the float model.
    pub tensor: String,
    /// The tensor of the quantized model that holds its quantized value: what the quantized
    /// model's readers of it see.
    pub quantized_as: String,
    pub grid: Grid,
    /// The operator type that computes it in the float model (`input` for a graph input).
    pub op_type: String,
}

/// A float model and a model that computes its quantized version on ptq's engine.
pub struct Pair {
    pub float: Model,
    /// A QDQ model with its pairs lowered to FakeQuant, or a simulation model.
    pub quantized: Model,
    /// Each graph output of the float model and the tensor of `quantized` that holds it.
    pub outputs: Vec<(String, String)>,
    /// In the quantized model's node order (mode A) or by name (mode B).
    pub probes: Vec<Probe>,
    /// What the comparison leaves out, and why.
    pub notes: Vec<String>,
}

impl Pair {
    /// A float model and a quantized QDQ model read from disk (ptq's, onnxruntime's
    /// `quantize_static`, a QAT export). Tensors are matched by name: each QuantizeLinear →
    /// DequantizeLinear pair of the quantized model quantizes the float model's tensor of the
    /// QuantizeLinear's input name or, failing that, of the DequantizeLinear's output name (a
    /// graph output keeps its name after its pair).
    pub fn from_files(float: &Path, quantized: &Path) -> Result<Pair> {
        let f = Model::load(float)?;
        let q = Model::load(quantized)?;
        check_interface(&f, &q)?;
        let mut notes = Vec::new();
        // Notes name files, not paths: reports hold no absolute paths (DESIGN.md Decision 5).
        let name =
            |p: &Path| p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into());
        let (lowered, pairs) = if ptq_export::has_qdq(&q.graph) {
            let l = lower_qdq(&q.loaded.model, &q.graph)
                .with_context(|| format!("simulating the QDQ model {}", quantized.display()))?;
            let loaded = ptq_onnx::Loaded { model: l.model, path: q.loaded.path.clone() };
            (Model::new(loaded)?, l.fake_quants)
        } else {
            (q, Vec::new())
        };
        if pairs.is_empty() {
            notes.push(format!(
                "{} has no QuantizeLinear→DequantizeLinear pair on a tensor computed at run time: no \
                 activation is quantized, so the per-tensor table is empty",
                name(quantized)
            ));
        }
        let mut probes = Vec::new();
        let mut taken = BTreeSet::new();
        let mut unmatched = Vec::new();
        let activation = |name: &str| f.graph.tensor(name).is_some_and(|t| !t.is_constant());
        for pair in pairs {
            let tensor = [&pair.input, &pair.output].into_iter().find(|n| activation(n));
            let Some(tensor) = tensor else {
                unmatched.push(pair.input);
                continue;
            };
            if taken.insert(tensor.clone()) {
                probes.push(Probe {
                    op_type: op_type(&f.graph, tensor),
                    tensor: tensor.clone(),
                    quantized_as: pair.output,
                    grid: Grid::Int(pair.encoding),
                });
            }
        }
        if !unmatched.is_empty() {
            let shown: Vec<String> = unmatched.iter().take(5).map(|n| format!("`{n}`")).collect();
            notes.push(format!(
                "{} quantized tensor(s) of {} have no tensor of the same name in {} and are left out of the \
                 per-tensor table: {}{}",
                unmatched.len(),
                name(quantized),
                name(float),
                shown.join(", "),
                if unmatched.len() > shown.len() { ", …" } else { "" }
            ));
        }
        let outputs = f.graph.outputs.iter().map(|o| (o.clone(), o.clone())).collect();
        Ok(Pair { float: f, quantized: lowered, outputs, probes, notes })
    }

    /// `model` (as ptq calibrated it) against its simulation with `encodings`: what
    /// `ptq quantize` would write, without writing it.
    pub fn simulated(model: Model, encodings: &Encodings) -> Result<Pair> {
        let Simulation { model: sim, observe_as } =
            simulation_model(&model.loaded.model, &model.graph, encodings)?;
        let quantized = Model::new(ptq_onnx::Loaded { model: sim, path: model.loaded.path.clone() })?;
        let probes = observe_as
            .iter()
            .map(|(tensor, quantized_as)| {
                let grid = match encodings.get(tensor) {
                    Some(e) => Grid::Int(e.clone()),
                    None => Grid::Float16,
                };
                Probe {
                    op_type: op_type(&model.graph, tensor),
                    tensor: tensor.clone(),
                    quantized_as: quantized_as.clone(),
                    grid,
                }
            })
            .collect();
        let outputs = model
            .graph
            .outputs
            .iter()
            .map(|o| (o.clone(), observe_as.get(o).cloned().unwrap_or_else(|| o.clone())))
            .collect();
        let mut notes = Vec::new();
        if observe_as.is_empty() {
            notes.push("no activation is quantized, so the per-tensor table is empty".to_owned());
        }
        Ok(Pair { float: model, quantized, outputs, probes, notes })
    }
}

/// The operator type computing `tensor` (`input` for a graph input).
fn op_type(graph: &Graph, tensor: &str) -> String {
    match graph.tensor(tensor).map(|t| t.source) {
        Some(Source::Node(i)) => graph.node(i).op_type.clone(),
        Some(Source::Input) => "input".to_owned(),
        _ => "constant".to_owned(),
    }
}

/// Both models take the same inputs (names and element types), and the quantized model has
/// every output of the float one: samples are read for the float model and fed to both.
fn check_interface(f: &Model, q: &Model) -> Result<()> {
    let (fp, qp) = (f.loaded.path.display(), q.loaded.path.display());
    let list = |names: &[String]| names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    for name in &q.graph.inputs {
        if !f.graph.inputs.contains(name) {
            bail!(
                "the quantized model {qp} has an input `{name}` that the float model {fp} does not have (its \
                 inputs: {}); both models must take the same inputs",
                list(&f.graph.inputs)
            );
        }
    }
    for name in &f.graph.inputs {
        if !q.graph.inputs.contains(name) {
            bail!(
                "the quantized model {qp} has no input `{name}`, an input of the float model {fp} (its inputs: \
                 {}); both models must take the same inputs",
                list(&q.graph.inputs)
            );
        }
        let dtype = |m: &Model| m.graph.tensor(name).and_then(|t| t.dtype);
        if let (Some(a), Some(b)) = (dtype(f), dtype(q))
            && a != b
        {
            bail!(
                "input `{name}` is {a} in the float model {fp} but {b} in the quantized model {qp}; both \
                 models must take the same inputs"
            );
        }
    }
    for name in &f.graph.outputs {
        if !q.graph.outputs.contains(name) {
            bail!(
                "the quantized model {qp} has no output `{name}`, an output of the float model {fp} (its \
                 outputs: {}); outputs are compared by name",
                list(&q.graph.outputs)
            );
        }
    }
    Ok(())
}
