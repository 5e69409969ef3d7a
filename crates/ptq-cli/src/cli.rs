//! Command-line definitions: one place for every flag, its help and its default.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "ptq",
    version,
    about = "Post-training quantization for ONNX models",
    long_about = "ptq calibrates float ONNX models on a list of samples and writes quantized QDQ models \
                  with AIMET/QAIRT encodings. Flag names follow Qualcomm's qairt tools.\n\n\
                  Exit codes: 0 success, 1 failure, 2 usage error."
)]
pub struct Cli {
    /// More detail on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr. Its short form is -Q: -q is qairt's --quantization_overrides.
    #[arg(short = 'Q', long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Calibrate a float model and write a quantized QDQ model (like qairt-quantizer).
    Quantize(QuantizeArgs),
    /// Attach given encodings (overrides, QAT) to a model without calibrating (like qairt-converter).
    Convert(ConvertArgs),
    /// Run the float model on every sample of an input list (like qnn-net-run).
    Run(RunArgs),
    /// Describe a model: inputs, outputs, opsets, operators, constants, what ptq cannot run.
    Inspect(InspectArgs),
    /// Compare a quantized model with its float model: SQNR, cosine and top-1 per output, and
    /// where error enters and accumulates per tensor (--float_model F --quantized_model Q, or
    /// --input_model F with the quantize flags to quantize in memory).
    Evaluate(EvaluateArgs),
}

/// How samples are read from an input list (qnn-net-run's syntax and flags).
#[derive(Debug, Clone, Args)]
#[command(rename_all = "snake_case")]
pub struct DataArgs {
    /// Read .raw files in each input's own dtype (uint8, int64, …) instead of float32.
    #[arg(long)]
    pub use_native_input_files: bool,
    /// Only these inputs are read natively (comma-separated names); implies native reading for them.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub native_input_tensor_names: Vec<String>,
    #[command(flatten)]
    pub shapes: ShapeArgs,
    /// Continue when a sample holds NaN or Inf (a warning with the count is printed).
    #[arg(long)]
    pub allow_nonfinite: bool,
}

/// How the model's symbolic input dimensions are bound (qairt-converter's flags and ptq's own).
/// Binding an input binds its symbols everywhere in the model.
#[derive(Debug, Clone, Default, Args)]
#[command(rename_all = "snake_case")]
pub struct ShapeArgs {
    /// Bind an input's shape, e.g. `x=1,3,256,256` (repeat for several inputs). Needed for
    /// symbolic dimensions: raw files carry no shape.
    #[arg(long, value_name = "NAME=D0,D1,…")]
    pub input_dimensions: Vec<String>,
    /// qairt-converter's spelling of --input_dimensions: `-s x 1,3,256,256` (legacy
    /// `--input_dim`/`-d`).
    #[arg(
        short = 's',
        long,
        num_args = 2,
        value_names = ["NAME", "D0,D1,…"],
        visible_alias = "input_dim",
        visible_short_alias = 'd'
    )]
    pub source_model_input_shape: Vec<String>,
    /// Give a symbolic dimension a value in every input that names it, e.g.
    /// `--onnx_define_symbol batch_size 1` (repeat for several symbols).
    #[arg(long, num_args = 2, value_names = ["SYMBOL", "VALUE"])]
    pub onnx_define_symbol: Vec<String>,
    /// Set the first dimension of every input to N (as qairt-converter does; inputs without a
    /// batch dimension need -s instead).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub onnx_override_batch: Option<u32>,
}

#[derive(Debug, Args)]
#[command(rename_all = "snake_case")]
pub struct RunArgs {
    /// The float ONNX model.
    #[arg(long, value_name = "FILE", visible_alias = "input_network")]
    pub input_model: PathBuf,
    /// Input list: one sample per line, `path` or `name:=path` per input; optional first lines
    /// `#node …` / `%tensor …` choose the outputs.
    #[arg(long, value_name = "FILE")]
    pub input_list: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Where `Result_N/<output>.raw` go (created if missing).
    #[arg(long, value_name = "DIR", default_value = "output")]
    pub output_dir: PathBuf,
    /// Also write each output as `.npy` in its own dtype.
    #[arg(long)]
    pub npy: bool,
    /// Write every intermediate tensor too, not only the outputs.
    #[arg(long)]
    pub debug: bool,
}

/// Encodings given to ptq instead of calibrated: an overrides file and QDQ nodes in the model.
#[derive(Debug, Args)]
#[command(rename_all = "snake_case")]
pub struct GivenArgs {
    /// Encodings to keep (AIMET/QAIRT JSON 0.6.1, 1.0.0 or 2.0.0); they win over the model's own
    /// QDQ nodes. `dtype: float` entries keep a tensor float.
    #[arg(short = 'q', long, value_name = "FILE")]
    pub quantization_overrides: Option<PathBuf>,
    /// Drop every given encoding (overrides and the model's QDQ nodes) and calibrate everything.
    #[arg(long)]
    pub ignore_quantization_overrides: bool,
    /// Deprecated spelling of --ignore_quantization_overrides (qairt's legacy name).
    #[arg(long, hide = true)]
    pub ignore_encodings: bool,
    /// Warn, instead of failing, when the overrides name tensors the model does not have.
    #[arg(long)]
    pub allow_unknown_override_names: bool,
}

/// `--export_format` values (qairt's names are aliases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// The model with every given encoding: integers as QDQ, float16 as Cast pairs.
    #[value(alias = "DLC_DEFAULT")]
    Default,
    /// A clean float model: every QDQ node and override dropped.
    #[value(alias = "DLC_STRIP_QUANT")]
    Stripped,
}

#[derive(Debug, Args)]
#[command(rename_all = "snake_case")]
pub struct ConvertArgs {
    /// The ONNX model (float, or with QDQ nodes from quantization-aware training).
    #[arg(short = 'i', long, value_name = "FILE", visible_alias = "input_model")]
    pub input_network: PathBuf,
    /// Encodings to attach (AIMET/QAIRT JSON 0.6.1, 1.0.0 or 2.0.0); they win over the model's own.
    #[arg(short = 'q', long, value_name = "FILE")]
    pub quantization_overrides: Option<PathBuf>,
    /// Warn, instead of failing, when the overrides name tensors the model does not have.
    #[arg(long)]
    pub allow_unknown_override_names: bool,
    /// Where to write the model.
    #[arg(short = 'o', long, value_name = "FILE", visible_alias = "output_model")]
    pub output_path: PathBuf,
    #[arg(long, value_name = "FORMAT", value_enum, default_value = "default")]
    pub export_format: ExportFormat,
    /// Bitwidth of tensors the overrides keep float without saying which (16 or 32) [default: 32].
    #[arg(long, value_name = "BITS", value_parser = bitwidth(&[16, 32]))]
    pub float_bitwidth: Option<u8>,
    /// Bitwidth of float biases [default: their layer's float bitwidth].
    #[arg(long, value_name = "BITS", value_parser = bitwidth(&[16, 32]))]
    pub float_bias_bitwidth: Option<u8>,
    #[command(flatten)]
    pub shapes: ShapeArgs,
}

#[derive(Debug, Args)]
#[command(rename_all = "snake_case")]
pub struct InspectArgs {
    /// The ONNX model.
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// Print JSON on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub shapes: ShapeArgs,
}

fn bitwidth(allowed: &'static [u8]) -> impl Fn(&str) -> Result<u8, String> + Clone {
    move |s: &str| {
        let list = || allowed.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(", ");
        match s.parse::<u8>() {
            Ok(b) if allowed.contains(&b) => Ok(b),
            _ => Err(format!("`{s}` is not one of {}", list())),
        }
    }
}

/// `--*_quantizer_schema` values (qairt's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemaArg {
    Asymmetric,
    Symmetric,
    Unsignedsymmetric,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EncodingVersion {
    #[value(name = "1.0.0")]
    V1_0_0,
    #[value(name = "0.6.1")]
    V0_6_1,
}

#[derive(Debug, Args)]
#[command(rename_all = "snake_case")]
pub struct QuantizeArgs {
    /// The float ONNX model.
    #[arg(short = 'i', long, value_name = "FILE", visible_alias = "input_dlc")]
    pub input_model: PathBuf,
    /// Where to write the QDQ model [default: <input stem>_quantized.onnx beside the input].
    #[arg(short = 'o', long, value_name = "FILE", visible_alias = "output_dlc")]
    pub output_model: Option<PathBuf>,
    /// Calibration samples, one per line (qnn-net-run syntax).
    #[arg(short = 'l', long, value_name = "FILE")]
    pub input_list: Option<PathBuf>,
    /// Measure the closing SQNR on every sample of this list (same syntax as --input_list)
    /// instead of on 16 samples spread over --input_list.
    #[arg(long, value_name = "FILE", requires = "input_list")]
    pub eval_list: Option<PathBuf>,
    /// No calibration: propagate the encodings the model carries (QDQ nodes, overrides) across
    /// data-invariant ops and leave every other tensor float (not together with --input_list).
    #[arg(short = 'f', long)]
    pub enable_float_fallback: bool,
    /// Deprecated spelling of --enable_float_fallback (qairt's legacy name).
    #[arg(long, hide = true)]
    pub float_fallback: bool,
    #[command(flatten)]
    pub given: GivenArgs,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub settings: QuantSettings,
    /// Also write the encodings JSON as `<output stem>_encoding.json`.
    #[arg(long)]
    pub dump_encoding_json: bool,
    /// Format of the encodings JSON written by --dump_encoding_json [default: 1.0.0].
    #[arg(long, value_name = "VERSION", value_enum)]
    pub encoding_version: Option<EncodingVersion>,
}

impl QuantizeArgs {
    /// --enable_float_fallback under either of its names.
    pub fn float_fallback(&self) -> bool {
        self.enable_float_fallback || self.float_fallback
    }
}

impl GivenArgs {
    /// --ignore_quantization_overrides under either of its names.
    pub fn ignore(&self) -> bool {
        self.ignore_quantization_overrides || self.ignore_encodings
    }
}

/// How tensors are quantized: bitwidths, schemas, granularity (qairt-quantizer's flags). Shared
/// by `quantize` and `evaluate --input_model`.
#[derive(Debug, Args)]
#[command(rename_all = "snake_case")]
pub struct QuantSettings {
    /// Bitwidth of the tensors left float (16: a Cast pair to float16 and back in the model).
    #[arg(long, value_name = "BITS", default_value = "32", value_parser = bitwidth(&[16, 32]))]
    pub float_bitwidth: u8,
    /// Bitwidth of float biases [default: their layer's float bitwidth].
    #[arg(long, value_name = "BITS", value_parser = bitwidth(&[16, 32]))]
    pub float_bias_bitwidth: Option<u8>,
    /// Keep weights quantized where their layer runs in float (its bias goes float).
    #[arg(long)]
    pub keep_weights_quantized: bool,
    /// Activation bitwidth (8 or 16).
    #[arg(long, value_name = "BITS", default_value = "8", value_parser = bitwidth(&[8, 16]))]
    pub act_bitwidth: u8,
    /// Weight bitwidth (2, 4, 8 or 16). 2-bit weights are stored as int8 holding 2-bit values.
    #[arg(long, value_name = "BITS", default_value = "8", value_parser = bitwidth(&[2, 4, 8, 16]))]
    pub weights_bitwidth: u8,
    /// Bias bitwidth (8 or 32). ptq defaults to 32 (scale = input scale × weight scale): every
    /// int8 runtime accumulates in int32, so it costs nothing; qairt's own default is 8.
    #[arg(long, value_name = "BITS", default_value = "32", value_parser = bitwidth(&[8, 32]))]
    pub bias_bitwidth: u8,
    /// Activation schema [default: asymmetric].
    #[arg(long, value_name = "SCHEMA", value_enum)]
    pub act_quantizer_schema: Option<SchemaArg>,
    /// Weight schema [default: symmetric]. ptq defaults to symmetric (int8, zero point 0), what
    /// QNN's HTP backend and onnxruntime expect; qairt's legacy default is asymmetric: pass
    /// `asymmetric` to get it.
    #[arg(long, value_name = "SCHEMA", value_enum)]
    pub param_quantizer_schema: Option<SchemaArg>,
    /// How activation ranges are chosen from the calibration data [default: auto]: auto (the
    /// sqnr search within the observed range less isolated outliers — ends past 8× the 99.99th
    /// percentile — except graph outputs and the scores entering Softmax/Sigmoid/ArgMax, which
    /// keep their observed range: clipping a logit moves decisions), min-max (the observed
    /// range, qairt's default), sqnr (AIMET's tf_enhanced search: lowest squared error, clipping
    /// weighted 3×), mse (lowest squared error), percentile (see --percentile_calibration_value),
    /// entropy (least KL divergence; 8-bit only, min-max otherwise).
    #[arg(long, value_name = "METHOD", value_parser = parse_method)]
    pub act_quantizer_calibration: Option<MethodArg>,
    /// How weight ranges are chosen from their values, per channel where per channel
    /// [default: sqnr; qairt's is min-max]; the same methods as --act_quantizer_calibration.
    #[arg(long, value_name = "METHOD", value_parser = parse_method)]
    pub param_quantizer_calibration: Option<MethodArg>,
    /// The percentile the `percentile` method keeps at each end, in [90, 100] [default: 99.99].
    #[arg(long, value_name = "P", value_parser = parse_percentile)]
    pub percentile_calibration_value: Option<f64>,
    /// Legacy qairt/SNPE activation quantizer: tf (= --act_quantizer_calibration min-max),
    /// enhanced or tf_enhanced (= sqnr), symmetric (= min-max with --act_quantizer_schema
    /// symmetric). Not together with the --act/--param_quantizer_calibration or _schema flags.
    #[arg(long, value_name = "QUANTIZER", value_parser = parse_legacy)]
    pub act_quantizer: Option<Legacy>,
    /// Legacy qairt/SNPE weight quantizer: tf, enhanced/tf_enhanced, symmetric as for
    /// --act_quantizer, and adjusted (legacy QNN's weight-only range adjustment; ptq runs its
    /// mse search, the closest it has).
    #[arg(long, value_name = "QUANTIZER", value_parser = parse_legacy)]
    pub param_quantizer: Option<Legacy>,
    /// One weight encoding per output channel for Conv and ConvTranspose.
    #[arg(long)]
    pub use_per_channel_quantization: bool,
    /// One weight encoding per output row for Gemm and MatMul with constant weights.
    #[arg(long)]
    pub use_per_row_quantization: bool,
    /// Per-row biases for per-row Gemm weights (needs --use_per_row_quantization).
    #[arg(long)]
    pub enable_per_row_quantized_bias: bool,
    /// Limit symmetric weight grids to `"MIN MAX"` (hex, e.g. `"-0x8000 0x7F7F"` for 16-bit
    /// MatMul weights on older HTP): Δ = 2·absmax / (MAX − MIN). Honoured for symmetric or
    /// per-channel/per-row weights; ignored with a warning otherwise (as qairt does).
    #[arg(long, value_name = "\"MIN MAX\"", allow_hyphen_values = true, value_parser = parse_steps)]
    pub restrict_quantization_steps: Option<(i64, i64)>,
    /// Keep the model's own input/output dtypes and read their sample files natively (all inputs,
    /// or only the named ones). ptq's QDQ models always keep float inputs and outputs.
    #[arg(long, value_name = "NAMES", num_args = 0.., value_delimiter = ',')]
    pub preserve_io_datatype: Option<Vec<String>>,
    /// Per-channel weights: when a bias does not fit its int32 encoding (scale = input scale ×
    /// weight scale), enlarge that channel's weight scale until it does.
    #[arg(long)]
    pub adjust_bias_encoding: bool,
    /// SmoothQuant: where an activation's largest channel reaches 8× its median channel before
    /// MatMul/Gemm layers with constant weights, divide it per channel by s and multiply their
    /// weight rows by s, folded into the producer (LayerNormalization γ/β, a Mul's constant) so
    /// the float model computes the same values. Off by default: measured on minilm_l3 it gains
    /// nothing when every activation is quantized (BENCHMARKS.md). Needs --input_list.
    #[arg(long)]
    pub smoothquant: bool,
    /// SmoothQuant's migration strength α in [0, 1]: s = max|X|^α / max|W|^(1−α) [default: 0.5].
    #[arg(long, value_name = "ALPHA", requires = "smoothquant", value_parser = parse_alpha)]
    pub smoothquant_alpha: Option<f64>,
}

/// `ptq evaluate`: two ways to get the quantized model, one comparison.
#[derive(Debug, Args)]
#[command(rename_all = "snake_case")]
pub struct EvaluateArgs {
    /// The float ONNX model to compare against (with --quantized_model).
    #[arg(long, value_name = "FILE", requires = "quantized_model",
          conflicts_with_all = ["input_model", "eval_list", "GivenArgs", "QuantSettings"])]
    pub float_model: Option<PathBuf>,
    /// A QDQ ONNX model of --float_model (ptq's, onnxruntime's quantize_static, a QAT export);
    /// tensors are matched by name.
    #[arg(long, value_name = "FILE", requires = "float_model")]
    pub quantized_model: Option<PathBuf>,
    /// Quantize this float model in memory with the quantize flags below (calibrating on
    /// --input_list) and evaluate the result; nothing is written but the evaluation.
    #[arg(long, value_name = "FILE", visible_alias = "input_dlc")]
    pub input_model: Option<PathBuf>,
    /// The samples: the evaluation list with --float_model, the calibration list with
    /// --input_model.
    #[arg(long, value_name = "FILE")]
    pub input_list: Option<PathBuf>,
    /// With --input_model: the samples to evaluate on [default: --input_list].
    #[arg(long, value_name = "FILE")]
    pub eval_list: Option<PathBuf>,
    /// One class index per line, aligned with the evaluated list: adds top-1 accuracy of both
    /// models on the first output, and their top-1 agreement.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Where evaluate.json, evaluate.md, evaluate.png and evaluate.svg go (created if missing;
    /// files of those names are replaced).
    #[arg(long, value_name = "DIR", default_value = "evaluate")]
    pub output_dir: PathBuf,
    /// Also print evaluate.json on stdout.
    #[arg(long)]
    pub json: bool,
    /// How many of the worst tensors the Markdown table and the chart show (all are in the JSON).
    #[arg(long, value_name = "N", default_value = "30", value_parser = clap::value_parser!(u32).range(1..))]
    pub top: u32,
    #[command(flatten)]
    pub given: GivenArgs,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub settings: QuantSettings,
}

/// A range-setting method (`--*_quantizer_calibration`), before the percentile is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodArg {
    MinMax,
    Sqnr,
    Mse,
    Percentile,
    Entropy,
    Auto,
}

const METHODS: &str = "auto, min-max, sqnr, mse, percentile, entropy";
const LEGACY: &str = "tf, enhanced (tf_enhanced), symmetric, adjusted";

fn parse_method(s: &str) -> Result<MethodArg, String> {
    Ok(match s {
        "min-max" => MethodArg::MinMax,
        "sqnr" => MethodArg::Sqnr,
        "mse" => MethodArg::Mse,
        "percentile" => MethodArg::Percentile,
        "entropy" => MethodArg::Entropy,
        "auto" => MethodArg::Auto,
        _ => {
            return Err(format!(
                "`{s}` is not a calibration method; the methods are {METHODS} (qairt's legacy \
                 --act_quantizer/--param_quantizer take {LEGACY})"
            ));
        }
    })
}

/// The legacy `--act_quantizer` / `--param_quantizer` values (spec §1.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legacy {
    Tf,
    Enhanced,
    Symmetric,
    Adjusted,
}

fn parse_legacy(s: &str) -> Result<Legacy, String> {
    Ok(match s {
        "tf" => Legacy::Tf,
        "enhanced" | "tf_enhanced" => Legacy::Enhanced,
        "symmetric" => Legacy::Symmetric,
        "adjusted" => Legacy::Adjusted,
        _ => {
            return Err(format!(
                "`{s}` is not a legacy quantizer; they are {LEGACY} (the current flags \
                 --act_quantizer_calibration/--param_quantizer_calibration take {METHODS})"
            ));
        }
    })
}

fn parse_percentile(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (90.0..=100.0).contains(&p) => Ok(p),
        Ok(_) => {
            Err(format!("`{s}` is outside [90, 100], the range qairt accepts (e.g. 99.99, the default)"))
        }
        Err(_) => Err(format!("`{s}` is not a number in [90, 100], e.g. 99.99")),
    }
}

fn parse_alpha(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(a) if (0.0..=1.0).contains(&a) => Ok(a),
        _ => Err(format!("`{s}` is not a number in [0, 1], e.g. 0.5")),
    }
}

/// `"MIN MAX"` as qairt writes it: two hex integers with an optional sign (legacy SNPE used a comma).
fn parse_steps(s: &str) -> Result<(i64, i64), String> {
    let parse = |t: &str| {
        let (negative, digits) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let hex = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X"));
        let value = hex
            .and_then(|h| i64::from_str_radix(h, 16).ok())
            .ok_or_else(|| format!("`{t}` is not a hexadecimal integer like -0x80 or 0x7F"))?;
        Ok::<i64, String>(if negative { -value } else { value })
    };
    let parts: Vec<&str> =
        s.split(|c: char| c.is_whitespace() || c == ',').filter(|p| !p.is_empty()).collect();
    match parts[..] {
        [lo, hi] => {
            let (lo, hi) = (parse(lo)?, parse(hi)?);
            if lo < 0 && hi > 0 {
                Ok((lo, hi))
            } else {
                Err(format!("`{s}` must be a negative MIN and a positive MAX, e.g. \"-0x80 0x7F\""))
            }
        }
        _ => Err(format!("`{s}` must be two numbers, \"MIN MAX\", e.g. \"-0x8000 0x7F7F\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_alpha, parse_steps};

    #[test]
    fn smoothquant_alpha_values() {
        assert_eq!(parse_alpha("0.5"), Ok(0.5));
        assert_eq!(parse_alpha("1"), Ok(1.0));
        assert!(parse_alpha("1.5").unwrap_err().contains("[0, 1]"));
        assert!(parse_alpha("half").is_err());
    }

    #[test]
    fn restrict_quantization_steps_values() {
        assert_eq!(parse_steps("-0x8000 0x7F7F"), Ok((-0x8000, 0x7F7F)));
        assert_eq!(parse_steps("-0x80,0x7f"), Ok((-128, 127)));
        assert!(parse_steps("-128 127").unwrap_err().contains("hexadecimal"));
        assert!(parse_steps("0x80 0x7F").unwrap_err().contains("negative MIN"));
        assert!(parse_steps("-0x80").unwrap_err().contains("two numbers"));
    }
}
