//! `ptq quantize`: calibrate, choose encodings, simulate, write the QDQ model (and JSON).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, bail};
use ptq_ir::Graph;
use ptq_pipeline::{Config, Data, Job, Quantized};
use ptq_quant::json::JsonVersion;
use ptq_quant::rules::RuleOptions;
use ptq_quant::{Method, QuantSpec, Schema};

use crate::UsageError;
use crate::cli::{
    DataArgs, EncodingVersion, GivenArgs, Legacy, MethodArg, QuantSettings, QuantizeArgs, SchemaArg,
};
use crate::data_flags::{check_eval_list, read_options, shape_bindings};
use crate::encodings_file::check_output_model;
use crate::summary::{Summary, left_floats};
use crate::ui::{Terminal, Ui};

fn schema(s: SchemaArg) -> Schema {
    match s {
        SchemaArg::Asymmetric => Schema::Asymmetric,
        SchemaArg::Symmetric => Schema::Symmetric,
        SchemaArg::Unsignedsymmetric => Schema::UnsignedSymmetric,
    }
}

/// qairt's percentile when --percentile_calibration_value is not given (spec §1.0).
const DEFAULT_PERCENTILE: f64 = 99.99;

/// Schema and range-setting method of one kind of tensor.
struct RangeSetting {
    schema: Schema,
    method: Method,
}

/// Activation and weight schemas and methods, from the current flags or qairt's legacy
/// `--act_quantizer`/`--param_quantizer` (spec §1.0), never both (spec §1.1).
fn range_settings(args: &QuantSettings) -> Result<(RangeSetting, RangeSetting)> {
    let current = [
        ("--act_quantizer_calibration", args.act_quantizer_calibration.is_some()),
        ("--param_quantizer_calibration", args.param_quantizer_calibration.is_some()),
        ("--act_quantizer_schema", args.act_quantizer_schema.is_some()),
        ("--param_quantizer_schema", args.param_quantizer_schema.is_some()),
    ];
    let legacy = [
        ("--act_quantizer", args.act_quantizer.is_some()),
        ("--param_quantizer", args.param_quantizer.is_some()),
    ];
    let given = |flags: &[(&'static str, bool)]| -> Vec<&'static str> {
        flags.iter().filter(|(_, on)| *on).map(|(f, _)| *f).collect()
    };
    let (current, legacy) = (given(&current), given(&legacy));
    if !current.is_empty() && !legacy.is_empty() {
        bail!(UsageError(format!(
            "{} cannot be combined with {}: the legacy quantizer flags set both the schema and the \
             calibration; use only the current flags",
            legacy.join(" and "),
            current.join(", ")
        )));
    }
    let percentile = args.percentile_calibration_value;
    let uses_percentile = [args.act_quantizer_calibration, args.param_quantizer_calibration]
        .contains(&Some(MethodArg::Percentile));
    if percentile.is_some() && !uses_percentile {
        bail!(UsageError(
            "--percentile_calibration_value needs --act_quantizer_calibration percentile or \
             --param_quantizer_calibration percentile"
                .into()
        ));
    }
    if args.act_quantizer == Some(Legacy::Adjusted) {
        bail!(UsageError(
            "--act_quantizer adjusted does not exist: `adjusted` is legacy QNN's weight quantizer \
             (--param_quantizer adjusted); for activations use tf, enhanced or symmetric"
                .into()
        ));
    }
    let method = |m: Option<MethodArg>, default: MethodArg| match m.unwrap_or(default) {
        MethodArg::MinMax => Method::MinMax,
        MethodArg::Sqnr => Method::Sqnr,
        MethodArg::Mse => Method::Mse,
        MethodArg::Percentile => Method::Percentile(percentile.unwrap_or(DEFAULT_PERCENTILE)),
        MethodArg::Entropy => Method::Entropy,
        MethodArg::Auto => Method::Auto,
    };
    let setting = |legacy: Option<Legacy>,
                   schema_arg: Option<SchemaArg>,
                   m: Option<MethodArg>,
                   defaults: (Schema, MethodArg)| {
        let (default, default_method) = defaults;
        let default = schema_arg.map_or(default, schema);
        match legacy {
            None => RangeSetting { schema: default, method: method(m, default_method) },
            Some(Legacy::Tf) => RangeSetting { schema: default, method: Method::MinMax },
            Some(Legacy::Enhanced) => RangeSetting { schema: default, method: Method::Sqnr },
            Some(Legacy::Symmetric) => RangeSetting { schema: Schema::Symmetric, method: Method::MinMax },
            Some(Legacy::Adjusted) => RangeSetting { schema: default, method: Method::Mse },
        }
    };
    Ok((
        setting(
            args.act_quantizer,
            args.act_quantizer_schema,
            args.act_quantizer_calibration,
            (Schema::Asymmetric, MethodArg::Auto),
        ),
        setting(
            args.param_quantizer,
            args.param_quantizer_schema,
            args.param_quantizer_calibration,
            (Schema::Symmetric, MethodArg::Sqnr),
        ),
    ))
}

/// Flag combinations the spec (§1.1) forbids, as usage errors; returns the calibration list
/// (`None`: float fallback).
fn check_flags(args: &QuantizeArgs, ui: &Ui) -> Result<Option<PathBuf>> {
    if args.float_fallback {
        warn_deprecated("--float_fallback", "--enable_float_fallback", ui);
    }
    check_given(&args.given, ui)?;
    check_settings(&args.settings)?;
    crate::data_flags::check(&args.data)?;
    if args.float_fallback() && args.given.ignore() {
        bail!(UsageError(
            "--enable_float_fallback and --ignore_quantization_overrides cannot be used together: float \
             fallback only propagates the encodings that --ignore_quantization_overrides drops"
                .into()
        ));
    }
    match (&args.input_list, args.float_fallback()) {
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

/// qairt's deprecated spellings work as the current ones, with the warning qairt prints.
fn warn_deprecated(old: &str, new: &str, ui: &Ui) {
    ui.warn(&format!("{old} is deprecated and will be removed; use {new}, which does the same"));
}

/// The given-encodings flags that exclude each other (spec §1.1), as usage errors; those that
/// change nothing, as warnings.
pub fn check_given(given: &GivenArgs, ui: &Ui) -> Result<()> {
    if given.ignore_encodings {
        warn_deprecated("--ignore_encodings", "--ignore_quantization_overrides", ui);
    }
    if given.allow_unknown_override_names && given.quantization_overrides.is_none() {
        ui.ignored(
            "--allow_unknown_override_names",
            "without --quantization_overrides: there are no names to check",
        );
    }
    if given.ignore() && given.quantization_overrides.is_some() {
        bail!(UsageError(
            "--quantization_overrides and --ignore_quantization_overrides cannot be used together: \
             give the overrides to use them, or drop them"
                .into()
        ));
    }
    Ok(())
}

/// The quantization settings that need each other, as usage errors.
pub fn check_settings(settings: &QuantSettings) -> Result<()> {
    if settings.enable_per_row_quantized_bias && !settings.use_per_row_quantization {
        bail!(UsageError(
            "--enable_per_row_quantized_bias needs --use_per_row_quantization (per-row biases follow \
             per-row weights)"
                .into()
        ));
    }
    Ok(())
}

/// `--restrict_quantization_steps`, checked against the weight bitwidth; `None` (with qairt's
/// warning) where it does not apply: asymmetric per-tensor weights.
fn restricted_steps(args: &QuantSettings, param_schema: Schema, ui: &Ui) -> Result<Option<(i64, i64)>> {
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
    let symmetric = param_schema != Schema::Asymmetric;
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
pub fn data_args(data: &DataArgs, settings: &QuantSettings, g: &Graph) -> Result<DataArgs> {
    let mut data = data.clone();
    match &settings.preserve_io_datatype {
        None => {}
        // Every input native: a name list would narrow that to the named inputs.
        Some(names) if names.is_empty() => {
            data.use_native_input_files = true;
            data.native_input_tensor_names.clear();
        }
        Some(names) => {
            for name in names {
                if g.inputs.contains(name) {
                    // Already native when --use_native_input_files reads every input natively.
                    if !data.use_native_input_files {
                        data.native_input_tensor_names.push(name.clone());
                    }
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

/// `<input stem>_quantized.onnx` beside the input, unless given.
fn output_path(args: &QuantizeArgs) -> Result<PathBuf> {
    let out = match &args.output_model {
        Some(p) => p.clone(),
        None => {
            let stem =
                args.input_model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            args.input_model.with_file_name(format!("{stem}_quantized.onnx"))
        }
    };
    check_output_model("--output_model", &out)?;
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

/// The weight flags whose effect depends on per-channel/per-row weights, when it is not what
/// their name suggests: said, never silent.
fn warn_weight_granularity(args: &QuantSettings, param_schema: Schema, ui: &Ui) {
    let by_slice = args.use_per_channel_quantization || args.use_per_row_quantization;
    if param_schema == Schema::Asymmetric && by_slice {
        ui.warn(
            "--param_quantizer_schema asymmetric: per-channel and per-row weights are always symmetric (QNN \
             requires it), so those weights are written symmetric (is_sym true in the encodings JSON); only \
             per-tensor weights are asymmetric",
        );
    }
    if args.adjust_bias_encoding && !by_slice {
        ui.ignored(
            "--adjust_bias_encoding",
            "without --use_per_channel_quantization or --use_per_row_quantization: it widens the scales of \
             per-channel weights, and every weight is per tensor; add one of them to use it",
        );
    } else if args.adjust_bias_encoding && args.bias_bitwidth != 32 {
        ui.ignored(
            "--adjust_bias_encoding",
            "with --bias_bitwidth 8: it fits 32-bit biases derived from the weight scales, while 8-bit biases \
             get their own range; use --bias_bitwidth 32 to use it",
        );
    }
}

/// The one configuration of this run, from the flags.
pub fn config(args: &QuantSettings, json_version: JsonVersion, ui: &Ui) -> Result<Config> {
    let (act, param) = range_settings(args)?;
    warn_weight_granularity(args, param.schema, ui);
    let act_calibration = act.method;
    let act = QuantSpec::new(args.act_bitwidth, act.schema);
    let weight = QuantSpec {
        restricted: restricted_steps(args, param.schema, ui)?,
        ..QuantSpec::new(args.weights_bitwidth, param.schema)
    };
    Ok(Config {
        quant: ptq_quant::Config {
            act,
            weight,
            bias_bitwidth: args.bias_bitwidth,
            per_row_bias: args.enable_per_row_quantized_bias,
            adjust_bias: args.adjust_bias_encoding,
            float_bitwidth: args.float_bitwidth,
            float_bias_bitwidth: args.float_bias_bitwidth,
            keep_weights_quantized: args.keep_weights_quantized,
            act_calibration,
            param_calibration: param.method,
        },
        rules: RuleOptions {
            per_channel: args.use_per_channel_quantization,
            per_row: args.use_per_row_quantization,
        },
        json_version,
        smooth: args.smoothquant.then(|| ptq_algos::SmoothOptions {
            alpha: args.smoothquant_alpha.unwrap_or(ptq_algos::SmoothOptions::default().alpha),
            ..ptq_algos::SmoothOptions::default()
        }),
        ..Config::default()
    })
}

pub fn quantize(args: &QuantizeArgs, ui: &Ui) -> Result<()> {
    let start = Instant::now();
    let list = check_flags(args, ui)?;
    crate::unused_flags::before_run(args, ui);
    let output = output_path(args)?;
    let mut written = vec![output.clone(), report_path(&output)];
    if args.dump_encoding_json {
        written.push(encodings_path(&output));
    }
    crate::overwrite::check(
        "--output_model",
        &written,
        &[
            ("--input_model", Some(&args.input_model)),
            ("--input_list", args.input_list.as_deref()),
            ("--eval_list", args.eval_list.as_deref()),
            ("--quantization_overrides", args.given.quantization_overrides.as_deref()),
        ],
    )?;
    check_eval_list(args.eval_list.as_deref())?;
    let json_version = match args.encoding_version.unwrap_or(EncodingVersion::V1_0_0) {
        EncodingVersion::V1_0_0 => JsonVersion::V1_0_0,
        EncodingVersion::V0_6_1 => JsonVersion::V0_6_1,
    };
    let config = config(&args.settings, json_version, ui)?;
    let events = Terminal::new(ui);
    let shapes = shape_bindings(&args.data.shapes)?;
    let read = |graph: &Graph| read_options(&data_args(&args.data, &args.settings, graph)?);
    let job = Job {
        model: &args.input_model,
        overrides: args.given.quantization_overrides.as_deref(),
        ignore_given: args.given.ignore(),
        allow_unknown_names: args.given.allow_unknown_override_names,
        data: match &list {
            Some(list) => Data::Calibrate { list, read: &read, eval: args.eval_list.as_deref() },
            None => Data::FloatFallback { shapes: &shapes },
        },
    };
    let Quantized {
        model,
        layout,
        assignment,
        observed,
        chosen,
        folds,
        unfolded,
        smoothed,
        sqnr,
        qdq,
        given,
        patterns,
        shares,
        ..
    } = ptq_pipeline::quantize(&config, &job, &events)?;
    if list.is_none() && given == 0 {
        bail!(
            "--enable_float_fallback: {} carries no encodings and --quantization_overrides gave none, so there \
             is nothing to propagate; calibrate with --input_list instead",
            args.input_model.display()
        );
    }
    crate::unused_flags::after_run(args, &model.graph, &layout, &assignment, ui);

    let encodings = &assignment.encodings;
    let json = args
        .dump_encoding_json
        .then(|| crate::encodings_file::render(encodings, &config, &layout))
        .transpose()?;
    let ranges = crate::encodings_file::Ranges {
        activations: config.quant.act_calibration,
        weights: config.quant.param_calibration,
        observed: &observed,
        chosen: &chosen,
    };
    let left = left_floats(&model.graph, &layout, observed.keys(), &assignment);
    let findings = crate::encodings_file::Findings {
        left_float: &left,
        folds: &folds,
        patterns: &patterns,
        smoothed: &smoothed,
        shares: &shares,
    };
    let report = crate::encodings_file::report(encodings, &sqnr, &ranges, &findings)?;
    let mut side = vec![(report_path(&output), report)];
    if let Some(json) = &json {
        side.push((encodings_path(&output), json.clone()));
    }
    crate::encodings_file::write_outputs(&qdq, model.dir(), &output, &side)?;

    let mut summary = Summary::new(&layout, &left, &assignment, sqnr, start.elapsed());
    summary.set_folds(&folds);
    summary.set_unfolded(&unfolded);
    if list.is_some() {
        summary.set_ranges(&ranges);
    }
    summary.set_patterns(&patterns, &smoothed, shares);
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
