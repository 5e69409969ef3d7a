//! `ptq convert`: the converter stage of qairt (spec §0.1) — attach given encodings to a model,
//! propagate them across data-invariant ops, leave the rest float; or strip them all.

use std::time::Instant;

use anyhow::{Result, bail};
use ptq_export::qdq_model;
use ptq_pipeline::prepare::{float_tensors, prepare};
use ptq_pipeline::{Model, given};
use ptq_quant::rules::{RuleOptions, layout};
use ptq_quant::{Config, Mode, assign};

use crate::UsageError;
use crate::cli::{ConvertArgs, ExportFormat};
use crate::data_flags::shape_bindings;
use crate::encodings_file::write_outputs;
use crate::ui::{Terminal, Ui};

pub fn convert(args: &ConvertArgs, ui: &Ui) -> Result<()> {
    let start = Instant::now();
    let same = match (args.output_path.canonicalize(), args.input_network.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => args.output_path == args.input_network,
    };
    if same {
        bail!(UsageError(format!(
            "--output_path {} is the input model; ptq never overwrites its input: choose another path",
            args.output_path.display()
        )));
    }
    let stripped = args.export_format == ExportFormat::Stripped;
    let events = Terminal::new(ui);
    let mut given = given::gather(
        Model::load(&args.input_network)?,
        args.quantization_overrides.as_deref(),
        stripped,
        &events,
    )?;
    if stripped {
        write_outputs(&given.model.loaded.model, given.model.dir(), &args.output_path, &[])?;
        ui.info(&format!(
            "ptq convert: wrote the float model {} ({} encodings dropped) in {:.2} s",
            args.output_path.display(),
            given.from_model,
            start.elapsed().as_secs_f64()
        ));
        return Ok(());
    }
    // Only given encodings are written; the specs shape nothing but the opset the model needs.
    let config = Config {
        float_bitwidth: args.float_bitwidth,
        float_bias_bitwidth: args.float_bias_bitwidth,
        ..Config::default()
    };
    let (model, folded) = prepare(&given.model, &config, &given.encodings)?;
    given::check(
        &mut given.encodings,
        &given.model.graph,
        &model.graph,
        args.allow_unknown_override_names,
        &events,
    )?;
    let layout = layout(&model.graph, RuleOptions::default(), &|t| given.encodings.contains_key(t));
    let assignment = assign(
        &model.graph,
        &layout,
        &float_tensors(&model, &model.bound_inputs(&shape_bindings(&args.shapes)?)?)?,
        &config,
        &given.encodings,
        Mode::FloatFallback,
    )?;
    for (kept, other) in &assignment.conflicts {
        ui.warn(&format!(
            "`{other}` keeps its given encoding, which differs from `{kept}`'s that the tensors around it share"
        ));
    }
    let encodings = &assignment.encodings;
    let qdq = qdq_model(&model.loaded.model, &model.graph, encodings)?;
    write_outputs(&qdq, model.dir(), &args.output_path, &[])?;
    let fp16 = encodings.floats.values().filter(|f| f.bitwidth == 16).count();
    ui.info(&format!(
        "ptq convert: wrote {} in {:.2} s: {} given encodings ({} from the model), {} integer tensors, \
         {} float tensors ({} at 16 bit), {} nodes folded into the layers before them",
        args.output_path.display(),
        start.elapsed().as_secs_f64(),
        given.encodings.len(),
        given.from_model,
        encodings.tensors.len(),
        encodings.floats.len(),
        fp16,
        folded.len()
    ));
    Ok(())
}
