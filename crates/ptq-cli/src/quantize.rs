//! `ptq quantize`: calibrate, choose encodings, simulate, write the QDQ model (and JSON).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ptq_algos::Fold;
use ptq_data::{BoundInput, Samples};
use ptq_engine::{Engine, TractEngine, run_samples};
use ptq_export::{Simulation, qdq_model, required_opset, simulation_model};
use ptq_ir::{DataType, Tensor};
use ptq_quant::rules::{Layout, RuleOptions, layout};
use ptq_quant::{Config, Encodings, Given, GivenEncodings, MinMax, Mode, QuantSpec, Schema, assign};

use crate::UsageError;
use crate::cli::{DataArgs, QuantizeArgs, SchemaArg};
use crate::given;
use crate::model::Model;
use crate::progress::Progress;
use crate::summary::{OutputSqnr, Summary};
use crate::ui::Ui;

/// How many samples the closing SQNR is measured on (the first of the list).
const SQNR_SAMPLES: usize = 16;

fn schema(s: SchemaArg) -> Schema {
    match s {
        SchemaArg::Asymmetric => Schema::Asymmetric,
        SchemaArg::Symmetric => Schema::Symmetric,
        SchemaArg::Unsignedsymmetric => Schema::UnsignedSymmetric,
    }
}

/// Flag combinations the spec (§1.1) forbids, as usage errors; returns the calibration list
/// (`None`: float fallback).
fn check_flags(args: &QuantizeArgs) -> Result<Option<PathBuf>> {
    if args.enable_float_fallback && args.given.ignore_quantization_overrides {
        bail!(UsageError(
            "--enable_float_fallback and --ignore_quantization_overrides cannot be used together: float \
             fallback only propagates the encodings that --ignore_quantization_overrides drops"
                .into()
        ));
    }
    if args.given.ignore_quantization_overrides && args.given.quantization_overrides.is_some() {
        bail!(UsageError(
            "--quantization_overrides and --ignore_quantization_overrides cannot be used together (spec §1.1): \
             give the overrides to use them, or drop them"
                .into()
        ));
    }
    if args.enable_per_row_quantized_bias && !args.use_per_row_quantization {
        bail!(UsageError(
            "--enable_per_row_quantized_bias needs --use_per_row_quantization (per-row biases follow \
             per-row weights)"
                .into()
        ));
    }
    match (&args.input_list, args.enable_float_fallback) {
        (Some(_), true) => bail!(UsageError(
            "--input_list and --enable_float_fallback cannot be provided at the same time: calibrate \
             with an input list, or fall back to float from the encodings the model already carries"
                .into()
        )),
        (None, false) => bail!(UsageError(
            "give --input_list with calibration samples (or --enable_float_fallback to use only the \
             encodings the model and --quantization_overrides carry)"
                .into()
        )),
        (list, _) => Ok(list.clone()),
    }
}

/// `--restrict_quantization_steps`, checked against the weight bitwidth; `None` (with qairt's
/// warning) where it does not apply: asymmetric per-tensor weights.
fn restricted_steps(args: &QuantizeArgs, ui: &Ui) -> Result<Option<(i64, i64)>> {
    let Some((lo, hi)) = args.restrict_quantization_steps else { return Ok(None) };
    let half = 1i64 << (args.weights_bitwidth - 1);
    if lo < -half || hi > half - 1 {
        let hex = |v: i64| if v < 0 { format!("-{:#x}", v.unsigned_abs()) } else { format!("{v:#x}") };
        bail!(UsageError(format!(
            "--restrict_quantization_steps \"{} {}\" does not fit {}-bit weights ([{}, {}]); give a range \
             inside it or raise --weights_bitwidth",
            hex(lo),
            hex(hi),
            args.weights_bitwidth,
            hex(-half),
            hex(half - 1)
        )));
    }
    let symmetric = args.param_quantizer_schema != SchemaArg::Asymmetric;
    if !symmetric && !args.use_per_channel_quantization && !args.use_per_row_quantization {
        ui.warn(
            "--restrict_quantization_steps applies to symmetric or per-channel/per-row weights; \
             with --param_quantizer_schema asymmetric it is ignored",
        );
        return Ok(None);
    }
    Ok(Some((lo, hi)))
}

/// The data flags, with `--preserve_io_datatype`'s native reading added: its names must be
/// inputs or outputs of the model (outputs keep their dtype anyway: QDQ models end in float).
fn data_args(args: &QuantizeArgs, model: &Model) -> Result<DataArgs> {
    let mut data = args.data.clone();
    match &args.preserve_io_datatype {
        None => {}
        Some(names) if names.is_empty() => data.use_native_input_files = true,
        Some(names) => {
            let g = &model.graph;
            for name in names {
                if g.inputs.contains(name) {
                    data.native_input_tensor_names.push(name.clone());
                } else if !g.outputs.contains(name) {
                    bail!(UsageError(format!(
                        "--preserve_io_datatype names `{name}`, which is not an input or output of the model; \
                         its inputs: {}; its outputs: {}",
                        g.inputs.join(", "),
                        g.outputs.join(", ")
                    )));
                }
            }
        }
    }
    Ok(data)
}

/// `<input stem>_quantized.onnx` beside the input, unless given; never the input itself.
fn output_path(args: &QuantizeArgs) -> Result<PathBuf> {
    let out = match &args.output_model {
        Some(p) => p.clone(),
        None => {
            let stem =
                args.input_model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            args.input_model.with_file_name(format!("{stem}_quantized.onnx"))
        }
    };
    let same = match (out.canonicalize(), args.input_model.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => out == args.input_model,
    };
    if same {
        bail!(UsageError(format!(
            "--output_model {} is the input model; ptq never overwrites its input: choose another path",
            out.display()
        )));
    }
    Ok(out)
}

/// `<output stem>_report.json` beside the output model: where each encoding came from.
pub fn report_path(output: &Path) -> PathBuf {
    let stem = output.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    output.with_file_name(format!("{stem}_report.json"))
}

/// `<output stem>_encoding.json` beside the output model (qairt's naming).
pub fn encodings_path(output: &Path) -> PathBuf {
    let stem = output.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    output.with_file_name(format!("{stem}_encoding.json"))
}

pub fn quantize(args: &QuantizeArgs, ui: &Ui) -> Result<()> {
    let start = Instant::now();
    let list = check_flags(args)?;
    let output = output_path(args)?;
    let act = QuantSpec::new(args.act_bitwidth, schema(args.act_quantizer_schema));
    let weight = QuantSpec {
        restricted: restricted_steps(args, ui)?,
        ..QuantSpec::new(args.weights_bitwidth, schema(args.param_quantizer_schema))
    };
    let config = Config {
        act,
        weight,
        bias_bitwidth: args.bias_bitwidth,
        per_row_bias: args.enable_per_row_quantized_bias,
        adjust_bias: args.adjust_bias_encoding,
        float_bitwidth: args.float_bitwidth,
        float_bias_bitwidth: args.float_bias_bitwidth,
        keep_weights_quantized: args.keep_weights_quantized,
    };

    let stage =
        |name: &str, since: Instant| ui.detail(&format!("{name}: {:.3} s", since.elapsed().as_secs_f64()));
    let t = Instant::now();
    let g = &args.given;
    let mut given = given::gather(
        Model::load(&args.input_model)?,
        g.quantization_overrides.as_deref(),
        g.ignore_quantization_overrides,
        ui,
    )?;
    let (model, folded) = prepare(&given.model, &config, &given.encodings)?;
    given::check(&mut given.encodings, &given.model.graph, &model.graph, g.allow_unknown_override_names, ui)?;
    if list.is_none() && given.encodings.is_empty() {
        bail!(
            "--enable_float_fallback: {} carries no encodings and --quantization_overrides gave none, so there \
             is nothing to propagate; calibrate with --input_list instead",
            args.input_model.display()
        );
    }
    stage("load, convert, fold", t);
    let rules = RuleOptions {
        per_channel: args.use_per_channel_quantization,
        per_row: args.use_per_row_quantization,
    };
    let layout = layout(&model.graph, rules, &|t| given.encodings.contains_key(t));
    let (assignment, observed, sqnr) = match &list {
        Some(list) => {
            let samples = model.samples(list, &data_args(args, &model)?)?;
            let t = Instant::now();
            let Calibration { ranges, reference } = calibrate(&model, &samples, &layout, SQNR_SAMPLES, ui)?;
            stage("calibrate", t);
            let assignment =
                assign(&model.graph, &layout, &ranges, &config, &given.encodings, Mode::Calibrate)?;
            let t = Instant::now();
            let sqnr = measure_sqnr(&model, &samples.first(SQNR_SAMPLES), &assignment.encodings, &reference)?;
            stage("simulate for SQNR", t);
            (assignment, ranges, sqnr)
        }
        None => {
            let observed = float_tensors(&model, &model.bound_inputs(&args.data.shapes)?)?;
            let assignment =
                assign(&model.graph, &layout, &observed, &config, &given.encodings, Mode::FloatFallback)?;
            (assignment, observed, Vec::new())
        }
    };
    let encodings = &assignment.encodings;
    let qdq = qdq_model(&model.loaded.model, &model.graph, encodings)?;
    for (kept, other) in &assignment.conflicts {
        ui.warn(&format!(
            "`{other}` keeps its given encoding, which differs from `{kept}`'s that the tensors around it share"
        ));
    }

    let json = args.dump_encoding_json.then(|| crate::encodings_file::render(encodings, args)).transpose()?;
    let mut side = vec![(report_path(&output), crate::encodings_file::report(encodings, &folded, &sqnr)?)];
    if let Some(json) = &json {
        side.push((encodings_path(&output), json.clone()));
    }
    crate::encodings_file::write_outputs(&qdq, model.dir(), &output, &side)?;

    let mut summary =
        Summary::new(&model.graph, &layout, observed.keys(), &assignment, sqnr, start.elapsed());
    summary.set_folds(&folded);
    if ui.verbose > 0 {
        for (name, t) in &encodings.tensors {
            ui.detail(&format!("  {name}: int {}-bit, {}", t.encoding.bitwidth, t.encoding.origin));
        }
        for (name, f) in &encodings.floats {
            ui.detail(&format!("  {name}: float {}-bit, {}", f.bitwidth, f.reason.name()));
        }
    }
    let side_paths: Vec<&Path> = side.iter().map(|(p, _)| p.as_path()).collect();
    ui.info(&summary.render(&output, &side_paths));
    Ok(())
}

/// The float model ptq calibrates: converted to the opset its QDQ form needs (DESIGN.md
/// Decision 3), with BatchNormalization and per-channel Add/Sub/Mul folded into the layers
/// before them (Decision 11; qairt's converter squashes them the same way). Returns it with the
/// folds made.
pub fn prepare(original: &Model, config: &Config, given: &GivenEncodings) -> Result<(Model, Vec<Fold>)> {
    let mut loaded = original.loaded.clone();
    let current =
        original.graph.opsets.get("").or(original.graph.opsets.get("ai.onnx")).copied().unwrap_or(1);
    let given_bits = given.values().filter_map(|g| match &g.given {
        Given::Fixed(e) => Some(e.bitwidth),
        Given::Bitwidth { bitwidth, .. } => Some(*bitwidth),
        Given::Float { .. } => None,
    });
    let target =
        required_opset([config.act.bitwidth, config.weight.bitwidth].into_iter().chain(given_bits), current);
    if target > current {
        loaded.model = ptq_ir::upgrade_opset(&loaded.model, loaded.dir(), target).with_context(|| {
            format!("converting {} from opset {current} to {target}", loaded.path.display())
        })?;
    }
    let folded = ptq_algos::fold_layers(&loaded.model, loaded.dir(), &|t| given.contains_key(t))?;
    loaded.model = folded.model;
    Ok((Model::new(loaded)?, folded.folded))
}

/// Every tensor tract's type inference finds float, with an empty range: float fallback's
/// stand-in for calibration, which tells which tensors can carry an encoding.
pub fn float_tensors(model: &Model, inputs: &[BoundInput]) -> Result<BTreeMap<String, MinMax>> {
    let names = ptq_engine::float_tensors(&model.bytes, model.dir(), inputs)?;
    Ok(names.into_iter().map(|n| (n, MinMax::default())).collect())
}

/// What calibration saw: the range of every float tensor the layout calibrates, and the graph
/// outputs of the first samples (the float reference of the closing SQNR).
struct Calibration {
    ranges: BTreeMap<String, MinMax>,
    reference: Vec<Vec<Tensor>>,
}

/// Runs every sample, keeping the graph outputs of the first `keep`.
fn calibrate(model: &Model, samples: &Samples, layout: &Layout, keep: usize, ui: &Ui) -> Result<Calibration> {
    let outputs = &model.graph.outputs;
    let mut observed: Vec<String> = outputs.clone();
    let members = layout.classes.iter().flat_map(|c| &c.members);
    observed.extend(
        members
            .filter(|m| !outputs.contains(m) && model.graph.tensor(m).is_some_and(|t| !t.is_constant()))
            .cloned(),
    );
    let engine = TractEngine::new(&model.bytes, model.dir(), samples.inputs(), &observed)?;
    for ignored in engine.ignored_shapes() {
        ui.warn(&ignored.to_string());
    }
    let ranges = Mutex::new(vec![None::<MinMax>; observed.len()]);
    let reference = Mutex::new(vec![Vec::new(); keep.min(samples.len())]);
    let progress = Progress::new(ui, "calibrating", samples.len());
    run_samples(&engine, samples, |i, sample, mut tensors| -> Result<()> {
        for (file, count) in &sample.nonfinite {
            ui.warn(&format!(
                "{} holds {count} NaN/Inf values (continuing: --allow_nonfinite)",
                file.display()
            ));
        }
        // Reduce this sample at once; only float tensors get encodings (spec §5.1).
        let seen: Vec<Option<MinMax>> = tensors
            .iter()
            .map(|t| (t.dtype == DataType::Float).then(|| MinMax::of(&t.to_f32().unwrap_or_default())))
            .collect();
        if i < keep {
            tensors.truncate(outputs.len());
            reference.lock().expect("no worker panics while holding the lock")[i] = tensors;
        }
        let mut ranges = ranges.lock().expect("no worker panics while holding the lock");
        for (acc, s) in ranges.iter_mut().zip(seen) {
            if let Some(s) = s {
                acc.get_or_insert_with(MinMax::default).merge(&s);
            }
        }
        progress.inc();
        Ok(())
    })?;
    progress.finish();
    let ranges = ranges.into_inner().expect("workers are done");
    let ranges =
        engine.observed().iter().cloned().zip(ranges).filter_map(|(n, r)| r.map(|r| (n, r))).collect();
    Ok(Calibration { ranges, reference: reference.into_inner().expect("workers are done") })
}

/// SQNR of each graph output of the simulated model against the float model's `reference`
/// outputs of the same samples (models/README.md definition).
fn measure_sqnr(
    model: &Model,
    samples: &Samples,
    encodings: &Encodings,
    reference: &[Vec<Tensor>],
) -> Result<Vec<OutputSqnr>> {
    let outputs = &model.graph.outputs;
    let Simulation { model: sim_model, observe_as } =
        simulation_model(&model.loaded.model, &model.graph, encodings)?;
    let sim_names: Vec<String> =
        outputs.iter().map(|o| observe_as.get(o).cloned().unwrap_or_else(|| o.clone())).collect();
    let sim = TractEngine::new(&ptq_onnx::encode(&sim_model), model.dir(), samples.inputs(), &sim_names)
        .context("preparing the simulated model")?;
    // (Σx², Σ(x−x̂)²) per output and sample, summed in sample order for determinism.
    let per_sample = Mutex::new(vec![Vec::new(); samples.len()]);
    run_samples(&sim, samples, |i, _, simulated| -> Result<()> {
        let sums: Vec<Option<(f64, f64)>> = reference[i]
            .iter()
            .zip(&simulated)
            .map(|(x, y)| {
                let (x, y) = (x.to_f32()?, y.to_f32()?);
                Some(x.iter().zip(&y).fold((0.0, 0.0), |(s, n), (&a, &b)| {
                    (s + f64::from(a) * f64::from(a), n + (f64::from(a) - f64::from(b)).powi(2))
                }))
            })
            .collect();
        per_sample.lock().expect("no worker panics while holding the lock")[i] = sums;
        Ok(())
    })?;
    let per_sample = per_sample.into_inner().expect("workers are done");
    Ok(outputs
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let (signal, noise) = per_sample
                .iter()
                .filter_map(|s| s.get(k).copied().flatten())
                .fold((0.0, 0.0), |(a, b), (s, n)| (a + s, b + n));
            let db = if noise == 0.0 { f64::INFINITY } else { 10.0 * (signal / noise).log10() };
            OutputSqnr {
                name: name.clone(),
                db,
                samples: samples.len(),
                quantized: encodings.get(name).is_some(),
            }
        })
        .collect())
}
