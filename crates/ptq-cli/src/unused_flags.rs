//! `ptq quantize` flags that were given but change nothing in this run, each said by name with
//! what happens instead: some are known from the flags alone, others only once the encodings are
//! chosen. A flag counts as given when it differs from its default.

use ptq_ir::Graph;
use ptq_quant::rules::{Layout, Role};
use ptq_quant::{Assignment, Origin};

use crate::cli::{MethodArg, QuantizeArgs};
use crate::ui::Ui;

/// The given flags among `flags` (name, whether it differs from its default).
fn given<'a>(flags: &'a [(&'a str, bool)]) -> impl Iterator<Item = &'a str> {
    flags.iter().filter(|(_, on)| *on).map(|(flag, _)| *flag)
}

/// What the flags alone show: --encoding_version without a JSON to write, and under
/// --enable_float_fallback (no sample is read, no activation calibrated) the data and activation
/// flags.
pub fn before_run(args: &QuantizeArgs, ui: &Ui) {
    if args.encoding_version.is_some() && !args.dump_encoding_json {
        ui.ignored(
            "--encoding_version",
            "without --dump_encoding_json: no encodings JSON is written (the report has ptq's own format); \
             add --dump_encoding_json to write one",
        );
    }
    if !args.float_fallback() {
        return;
    }
    let (data, s) = (&args.data, &args.settings);
    let defaults = ptq_quant::Config::default();
    let reading = [
        ("--use_native_input_files", data.use_native_input_files),
        ("--native_input_tensor_names", !data.native_input_tensor_names.is_empty()),
        ("--allow_nonfinite", data.allow_nonfinite),
        ("--preserve_io_datatype", s.preserve_io_datatype.is_some()),
    ];
    for flag in given(&reading) {
        ui.ignored(
            flag,
            "with --enable_float_fallback: no sample is read (the shape flags still bind the inputs)",
        );
    }
    let weights_percentile = s.param_quantizer_calibration == Some(MethodArg::Percentile);
    let activations = [
        ("--act_bitwidth", s.act_bitwidth != defaults.act.bitwidth),
        ("--act_quantizer_schema", s.act_quantizer_schema.is_some()),
        ("--act_quantizer_calibration", s.act_quantizer_calibration.is_some()),
        ("--act_quantizer", s.act_quantizer.is_some()),
        ("--percentile_calibration_value", s.percentile_calibration_value.is_some() && !weights_percentile),
        ("--smoothquant", s.smoothquant),
    ];
    for flag in given(&activations) {
        ui.ignored(
            flag,
            "with --enable_float_fallback: there is no calibration data; activations take only the \
             encodings given or propagated, the others stay float",
        );
    }
}

/// What the chosen encodings show was not used: the weight flags when float fallback quantized
/// no weight from its values, `--float_bitwidth 16` when no tensor was left float, and
/// `--preserve_io_datatype` naming outputs.
pub fn after_run(args: &QuantizeArgs, graph: &Graph, layout: &Layout, a: &Assignment, ui: &Ui) {
    let s = &args.settings;
    let defaults = ptq_quant::Config::default();
    let weight_calibrated = a.encodings.tensors.iter().any(|(name, t)| {
        t.encoding.origin == Origin::Calibrated && matches!(layout.roles.get(name), Some(Role::Weight { .. }))
    });
    if args.float_fallback() && !weight_calibrated {
        let weights = [
            ("--weights_bitwidth", s.weights_bitwidth != defaults.weight.bitwidth),
            ("--param_quantizer_schema", s.param_quantizer_schema.is_some()),
            ("--param_quantizer_calibration", s.param_quantizer_calibration.is_some()),
            ("--param_quantizer", s.param_quantizer.is_some()),
            ("--use_per_channel_quantization", s.use_per_channel_quantization),
            ("--use_per_row_quantization", s.use_per_row_quantization),
            ("--enable_per_row_quantized_bias", s.enable_per_row_quantized_bias),
            ("--restrict_quantization_steps", s.restrict_quantization_steps.is_some()),
            ("--adjust_bias_encoding", s.adjust_bias_encoding),
        ];
        for flag in given(&weights) {
            ui.ignored(
                flag,
                "with --enable_float_fallback here: no weight was quantized from its values (weights take \
                 only the encodings given; --keep_weights_quantized quantizes the others)",
            );
        }
    }
    let half = a.encodings.floats.values().any(|f| f.bitwidth == 16);
    if s.float_bitwidth == 16 && !half {
        ui.ignored(
            "--float_bitwidth 16",
            "in this run: no tensor was left float for it to apply to (what ptq never quantizes — outputs \
             fused into the activation after them, constants that are not data — stays float32)",
        );
    }
    for name in s.preserve_io_datatype.iter().flatten().filter(|n| graph.outputs.contains(n)) {
        ui.ignored(
            &format!("--preserve_io_datatype {name}"),
            "for an output: every model ptq writes keeps its outputs' dtypes (a quantized output ends in \
             DequantizeLinear back to it); only inputs are affected (their sample files are read natively)",
        );
    }
}
