//! `ptq inspect`: what a model holds, as text or JSON.

use std::collections::BTreeMap;

use anyhow::Result;
use ptq_engine::TractEngine;
use ptq_ir::{Graph, Source, format_shape};
use ptq_pipeline::Model;
use ptq_quant::Given;
use serde::Serialize;

use crate::cli::InspectArgs;
use crate::data_flags::shape_bindings;

#[derive(Serialize)]
struct Report {
    model: String,
    ir_version: i64,
    producer: String,
    opsets: BTreeMap<String, i64>,
    inputs: Vec<TensorLine>,
    outputs: Vec<TensorLine>,
    nodes: usize,
    operators: BTreeMap<String, usize>,
    constants: Constants,
    /// Operator types ptq's engine cannot run, with their nodes and what would make them run.
    unsupported: BTreeMap<String, Unsupported>,
    /// Why the engine could not even read the model, when it could not.
    engine_error: Option<String>,
    /// Whether the engine could prepare the model for its bound input shapes.
    prepared: Prepared,
    /// The encodings the model carries (QDQ nodes, float-16 Cast pairs), by tensor.
    encodings: BTreeMap<String, EncodingLine>,
    /// Why they could not be read, when they could not.
    encodings_error: Option<String>,
}

#[derive(Serialize)]
struct Unsupported {
    domain: String,
    opset: Option<i64>,
    nodes: Vec<String>,
    advice: String,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Prepared {
    /// Prepared for these inputs; declared shapes that contradict them were ignored.
    Ready {
        inputs: Vec<String>,
        ignored_shapes: Vec<String>,
    },
    /// These inputs have symbolic dimensions the flags did not bind.
    NotChecked {
        unbound: Vec<String>,
    },
    Failed {
        error: String,
    },
    /// The model cannot be read, or uses operators the engine lacks (listed above).
    Skipped,
}

#[derive(Serialize)]
struct EncodingLine {
    /// `qat` (QDQ nodes) or `float` (a float-16 Cast pair).
    origin: &'static str,
    dtype: &'static str,
    bitwidth: u8,
    /// One per channel for per-channel encodings.
    scales: Vec<f32>,
    zero_points: Vec<i64>,
}

#[derive(Serialize)]
struct TensorLine {
    name: String,
    dtype: Option<String>,
    shape: Option<String>,
}

#[derive(Serialize)]
struct Constants {
    initializers: usize,
    constant_nodes: usize,
    /// Total element count over numeric constants.
    elements: u64,
    bytes: u64,
}

pub fn inspect(args: &InspectArgs) -> Result<()> {
    let model = Model::load(&args.model)?;
    let (unsupported, engine_error): (BTreeMap<String, Unsupported>, _) =
        match ptq_engine::unsupported_ops(&model.bytes, model.dir()) {
            Ok(ops) => (
                ops.into_iter()
                    .map(|op| {
                        let advice = op.advice();
                        let line =
                            Unsupported { domain: op.domain, opset: op.opset, nodes: op.nodes, advice };
                        (op.op_type, line)
                    })
                    .collect(),
                None,
            ),
            Err(e) => (BTreeMap::new(), Some(e.to_string())),
        };
    let prepared = if engine_error.is_some() || !unsupported.is_empty() {
        Prepared::Skipped
    } else {
        prepare(&model, args)?
    };
    let (encodings, encodings_error) = match ptq_export::read_qat(&model.loaded.model, &model.graph) {
        Ok(qat) => (qat.given.into_iter().map(|(name, g)| (name, encoding_line(&g.given))).collect(), None),
        Err(e) => (BTreeMap::new(), Some(e.to_string())),
    };
    let g = &model.graph;
    let producer = &model.loaded.model;
    let report = Report {
        model: args.model.display().to_string(),
        ir_version: g.ir_version,
        producer: format!("{} {}", producer.producer_name(), producer.producer_version()).trim().to_owned(),
        opsets: g.opsets.clone(),
        inputs: g.inputs.iter().map(|n| tensor_line(g, n)).collect(),
        outputs: g.outputs.iter().map(|n| tensor_line(g, n)).collect(),
        nodes: g.nodes().count(),
        operators: g.op_histogram(),
        constants: constants(g),
        unsupported,
        engine_error,
        prepared,
        encodings,
        encodings_error,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

/// Prepares the engine for the inputs as the shape flags bind them, as `run` and `quantize` would.
fn prepare(model: &Model, args: &InspectArgs) -> Result<Prepared> {
    let bound = model.bound_inputs(&shape_bindings(&args.shapes)?)?;
    let unbound: Vec<String> =
        model.graph.inputs.iter().filter(|n| !bound.iter().any(|b| &b.name == *n)).cloned().collect();
    if !unbound.is_empty() {
        return Ok(Prepared::NotChecked { unbound });
    }
    Ok(match TractEngine::new(&model.bytes, model.dir(), &bound, &model.graph.outputs) {
        Ok(engine) => Prepared::Ready {
            inputs: bound.iter().map(|b| format!("{} {} {:?}", b.name, b.dtype, b.shape)).collect(),
            ignored_shapes: engine.ignored_shapes().iter().map(|i| i.to_string()).collect(),
        },
        Err(e) => Prepared::Failed { error: e.to_string() },
    })
}

fn encoding_line(given: &Given) -> EncodingLine {
    match given {
        Given::Fixed(e) => EncodingLine {
            origin: e.origin.name(),
            dtype: "int",
            bitwidth: e.bitwidth,
            scales: e.scales.clone(),
            zero_points: e.zero_points.clone(),
        },
        Given::Float { bitwidth } | Given::Bitwidth { bitwidth, .. } => EncodingLine {
            origin: "float",
            dtype: "float",
            bitwidth: *bitwidth,
            scales: Vec::new(),
            zero_points: Vec::new(),
        },
    }
}

fn tensor_line(g: &Graph, name: &str) -> TensorLine {
    let info = g.tensor(name);
    TensorLine {
        name: name.to_owned(),
        dtype: info.and_then(|i| i.dtype).map(|d| d.to_string()),
        shape: info.and_then(|i| i.shape.as_deref()).map(format_shape),
    }
}

fn constants(g: &Graph) -> Constants {
    let mut c = Constants { initializers: 0, constant_nodes: 0, elements: 0, bytes: 0 };
    for t in g.tensors() {
        match t.source {
            Source::Initializer(_) => c.initializers += 1,
            Source::ConstantNode(_) => c.constant_nodes += 1,
            _ => continue,
        }
        let elements: u64 = t.shape.iter().flatten().map(|d| d.fixed().unwrap_or(0) as u64).product();
        c.elements += elements;
        c.bytes += elements * t.dtype.and_then(|d| d.size_of()).unwrap_or(0) as u64;
    }
    c
}

fn render(r: &Report) -> String {
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(format!("model      {}", r.model));
    line(format!("producer   {}", if r.producer.is_empty() { "(not recorded)" } else { &r.producer }));
    let opsets: Vec<String> =
        r.opsets.iter().map(|(d, v)| format!("{}={v}", if d.is_empty() { "ai.onnx" } else { d })).collect();
    line(format!("IR version {}, opsets {}", r.ir_version, opsets.join(", ")));
    for (title, list) in [("inputs", &r.inputs), ("outputs", &r.outputs)] {
        line(format!("{title}:"));
        for t in list {
            line(format!(
                "  {}  {} {}",
                t.name,
                t.dtype.as_deref().unwrap_or("?"),
                t.shape.as_deref().unwrap_or("(shape not declared)")
            ));
        }
    }
    let ops: Vec<String> = r.operators.iter().map(|(op, n)| format!("{op} {n}")).collect();
    line(format!("nodes      {} ({})", r.nodes, ops.join(", ")));
    let c = &r.constants;
    line(format!(
        "constants  {} initializers, {} Constant nodes, {} elements ({} bytes)",
        c.initializers, c.constant_nodes, c.elements, c.bytes
    ));
    match (&r.encodings_error, r.encodings.is_empty()) {
        (Some(e), _) => line(format!("encodings  cannot be read: {e}")),
        (None, true) => line("encodings  none (a float model)".into()),
        (None, false) => {
            let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
            for e in r.encodings.values() {
                *by_kind.entry(format!("{} {}-bit", e.dtype, e.bitwidth)).or_insert(0) += 1;
            }
            let kinds: Vec<String> = by_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
            line(format!("encodings  {} tensors ({})", r.encodings.len(), kinds.join(", ")));
            for (name, e) in &r.encodings {
                let values = match e.scales.len() {
                    0 => String::new(),
                    1 => format!(" scale {} zero point {}", e.scales[0], e.zero_points[0]),
                    n => format!(" per channel ({n} scales)"),
                };
                line(format!("  {name}: {} {}-bit ({}){values}", e.dtype, e.bitwidth, e.origin));
            }
        }
    }
    match (&r.engine_error, r.unsupported.is_empty()) {
        (Some(e), _) => line(format!("engine     cannot read the model: {e}")),
        (None, true) => line("engine     every operator is supported".into()),
        (None, false) => {
            line("engine     unsupported operators:".into());
            for (op, u) in &r.unsupported {
                let opset = u.opset.map(|v| format!(" opset {v}")).unwrap_or_default();
                line(format!("  {op} ({}{opset}): {}", u.domain, u.nodes.join(", ")));
                line(format!("    {}", u.advice));
            }
        }
    }
    match &r.prepared {
        Prepared::Ready { inputs, ignored_shapes } => {
            line(format!("prepared   for {}", inputs.join(", ")));
            for i in ignored_shapes {
                line(format!("  warning: {i}"));
            }
        }
        Prepared::NotChecked { unbound } => line(format!(
            "prepared   not checked: bind {} (--input_dimensions name=d0,d1,… or --onnx_define_symbol) to \
             check that the engine can prepare the model",
            unbound.join(", ")
        )),
        Prepared::Failed { error } => line(format!("prepared   FAILED: {error}")),
        Prepared::Skipped => {}
    }
    s
}
