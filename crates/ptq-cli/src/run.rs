//! `ptq run`: the float model over an input list, qnn-net-run's output layout.

use std::collections::BTreeSet;
use std::fs;
use std::time::Instant;

use anyhow::{Context, Result};
use ptq_engine::{Engine, TractEngine, run_samples};
use ptq_ir::Graph;
use ptq_pipeline::Model;

use crate::cli::RunArgs;
use crate::data_flags::read_options;
use crate::names::file_stems;
use crate::output_dir::StagedDir;
use crate::progress::Progress;
use crate::tensor_files::{write_npy, write_raw_f32};
use crate::ui::Ui;

pub fn run(args: &RunArgs, ui: &Ui) -> Result<()> {
    let start = Instant::now();
    crate::data_flags::check(&args.data)?;
    let model = lowered(Model::load(&args.input_model)?, ui)?;
    let samples = model.samples(&args.input_list, read_options(&args.data)?)?;
    for b in samples.inputs() {
        ui.detail(&format!("input {} {} {:?}", b.name, b.dtype, b.shape));
    }
    let observed = outputs_to_write(&model.graph, args, &samples)?;
    let prepare_start = Instant::now();
    let engine = TractEngine::new(&model.bytes, model.dir(), samples.inputs(), &observed)?;
    for ignored in engine.ignored_shapes() {
        ui.warn(&ignored.to_string());
    }
    ui.detail(&format!(
        "engine ready in {:.3} s, writing {} tensor(s): {}",
        prepare_start.elapsed().as_secs_f64(),
        observed.len(),
        observed.join(", ")
    ));
    let stems = file_stems(engine.observed());
    let mapping: serde_json::Map<String, serde_json::Value> = stems
        .iter()
        .zip(engine.observed())
        .map(|(stem, name)| (format!("{stem}.raw"), serde_json::Value::String(name.clone())))
        .collect();
    let mapping = serde_json::to_string_pretty(&mapping)?;

    let out = StagedDir::new(&args.output_dir)?;
    let progress = Progress::new(ui, "running", samples.len());
    let run_start = Instant::now();
    run_samples(&engine, &samples, |i, sample, tensors| -> Result<()> {
        for (file, count) in &sample.nonfinite {
            ui.warn(&format!(
                "{} holds {count} NaN/Inf values (continuing: --allow_nonfinite)",
                file.display()
            ));
        }
        let dir = out.path().join(format!("Result_{i}"));
        fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for ((stem, name), t) in stems.iter().zip(engine.observed()).zip(&tensors) {
            write_raw_f32(&dir.join(format!("{stem}.raw")), t).with_context(|| format!("output `{name}`"))?;
            if args.npy {
                write_npy(&dir.join(format!("{stem}.npy")), t).with_context(|| format!("output `{name}`"))?;
            }
        }
        fs::write(dir.join("outputs.json"), &mapping)
            .with_context(|| format!("cannot write {}", dir.display()))?;
        progress.inc();
        Ok(())
    })?;
    let run_time = run_start.elapsed();
    progress.finish();
    out.commit()?;
    let n = samples.len();
    ui.info(&format!(
        "ptq run: {n} sample{} × {} tensor{} written to {} in {:.2} s ({:.3} ms per sample on {} thread{})",
        if n == 1 { "" } else { "s" },
        stems.len(),
        if stems.len() == 1 { "" } else { "s" },
        args.output_dir.display(),
        start.elapsed().as_secs_f64(),
        run_time.as_secs_f64() * 1e3 / n as f64,
        rayon::current_num_threads(),
        if rayon::current_num_threads() == 1 { "" } else { "s" },
    ));
    Ok(())
}

/// A QDQ model with its QuantizeLinear→DequantizeLinear pairs as ptq's FakeQuant and its
/// dequantized integer constants as floats, so the run computes what onnxruntime computes
/// (tract's own Q/DQ kernels round differently, DESIGN.md "Engine"); other models as they are.
fn lowered(model: Model, ui: &Ui) -> Result<Model> {
    if !ptq_export::has_qdq(&model.graph) {
        return Ok(model);
    }
    let lowered = ptq_export::lower_qdq(&model.loaded.model, &model.graph)
        .with_context(|| format!("simulating the QDQ model {}", model.loaded.path.display()))?;
    ui.detail(&format!(
        "QDQ model: {} QuantizeLinear→DequantizeLinear pair(s) run as FakeQuant, {} dequantized \
         constant(s) as float values (onnxruntime's arithmetic)",
        lowered.pairs, lowered.constants
    ));
    Model::new(ptq_onnx::Loaded { model: lowered.model, path: model.loaded.path.clone() })
}

/// The tensors to write: the list's `#node` / `%tensor` choices, else the graph outputs (and with
/// `--debug` every tensor a node computes, in topological order).
fn outputs_to_write(graph: &Graph, args: &RunArgs, samples: &ptq_data::Samples) -> Result<Vec<String>> {
    let mut names = samples.list().requested_outputs(graph)?;
    if names.is_empty() {
        names = graph.outputs.clone();
    }
    if args.debug {
        names.extend(graph.nodes().flat_map(|n| n.outputs.iter().filter(|o| !o.is_empty()).cloned()));
    }
    let mut seen = BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    Ok(names)
}
