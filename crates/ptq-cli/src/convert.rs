//! `ptq convert`: the converter stage of qairt (spec §0.1) — attach given encodings to a model,
//! propagate them across data-invariant ops, leave the rest float; or strip them all.

use std::time::Instant;

use anyhow::Result;
use ptq_pipeline::{Config, Data, Job, Model, Quantized, given};

use crate::cli::{ConvertArgs, ExportFormat};
use crate::data_flags::shape_bindings;
use crate::encodings_file::{check_output_model, write_outputs};
use crate::ui::{Terminal, Ui};

pub fn convert(args: &ConvertArgs, ui: &Ui) -> Result<()> {
    let start = Instant::now();
    crate::overwrite::check(
        "--output_path",
        std::slice::from_ref(&args.output_path),
        &[
            ("--input_network", Some(&args.input_network)),
            ("--quantization_overrides", args.quantization_overrides.as_deref()),
        ],
    )?;
    check_output_model("--output_path", &args.output_path)?;
    let events = Terminal::new(ui);
    if args.allow_unknown_override_names && args.quantization_overrides.is_none() {
        ui.ignored(
            "--allow_unknown_override_names",
            "without --quantization_overrides: there are no names to check",
        );
    }
    if args.export_format == ExportFormat::Stripped {
        warn_unused_with_stripped(args, ui);
        let given = given::gather(Model::load(&args.input_network)?, None, true, &events)?;
        // The overrides are read and checked all the same, so a broken file fails here too.
        if let Some(path) = &args.quantization_overrides {
            let mut file = given::read_overrides(path, &events)?;
            let graph = &given.model.graph;
            given::check(&mut file, graph, graph, args.allow_unknown_override_names, &events)?;
        }
        write_outputs(&given.model.loaded.model, given.model.dir(), &args.output_path, &[])?;
        ui.info(&format!(
            "ptq convert: wrote the float model {} ({} encodings dropped) in {:.2} s",
            args.output_path.display(),
            given.dropped,
            start.elapsed().as_secs_f64()
        ));
        return Ok(());
    }
    // Only given encodings are written; the specs shape nothing but the opset the model needs.
    let defaults = ptq_quant::Config::default();
    let config = Config {
        quant: ptq_quant::Config {
            float_bitwidth: args.float_bitwidth.unwrap_or(defaults.float_bitwidth),
            float_bias_bitwidth: args.float_bias_bitwidth,
            ..defaults
        },
        ..Config::default()
    };
    let shapes = shape_bindings(&args.shapes)?;
    let job = Job {
        model: &args.input_network,
        overrides: args.quantization_overrides.as_deref(),
        ignore_given: false,
        allow_unknown_names: args.allow_unknown_override_names,
        data: Data::FloatFallback { shapes: &shapes },
    };
    let Quantized { model, assignment, folds, qdq, given, given_by_model, .. } =
        ptq_pipeline::quantize(&config, &job, &events)?;
    write_outputs(&qdq, model.dir(), &args.output_path, &[])?;
    let encodings = &assignment.encodings;
    let fp16 = encodings.floats.values().filter(|f| f.bitwidth == 16).count();
    ui.info(&format!(
        "ptq convert: wrote {} in {:.2} s: {given} given encodings ({given_by_model} from the model), {} integer \
         tensors, {} float tensors ({} at 16 bit), {} nodes folded into the layers before them",
        args.output_path.display(),
        start.elapsed().as_secs_f64(),
        encodings.tensors.len(),
        encodings.floats.len(),
        fp16,
        folds.len()
    ));
    Ok(())
}

/// What --export_format stripped leaves unused: the model is written float as it is.
fn warn_unused_with_stripped(args: &ConvertArgs, ui: &Ui) {
    if let Some(file) = &args.quantization_overrides {
        ui.ignored(
            &format!("--quantization_overrides {}", file.display()),
            "with --export_format stripped: the file is read and its names checked, but the model is written \
             float with every encoding dropped; leave out --export_format stripped to attach them",
        );
    }
    let float_flags = [
        ("--float_bitwidth", args.float_bitwidth.is_some()),
        ("--float_bias_bitwidth", args.float_bias_bitwidth.is_some()),
    ];
    for (flag, _) in float_flags.iter().filter(|(_, given)| *given) {
        ui.ignored(flag, "with --export_format stripped: every tensor of the stripped model is float32");
    }
}
