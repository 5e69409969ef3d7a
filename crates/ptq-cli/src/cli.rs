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
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the float model on every sample of an input list (like qnn-net-run).
    Run(RunArgs),
    /// Describe a model: inputs, outputs, opsets, operators, constants, what ptq cannot run.
    Inspect(InspectArgs),
}

/// How samples are read from an input list (qnn-net-run's syntax and flags).
#[derive(Debug, Args)]
#[command(rename_all = "snake_case")]
pub struct DataArgs {
    /// Input list: one sample per line, `path` or `name:=path` per input; optional first lines
    /// `#node …` / `%tensor …` choose the outputs.
    #[arg(long, value_name = "FILE")]
    pub input_list: PathBuf,
    /// Read .raw files in each input's own dtype (uint8, int64, …) instead of float32.
    #[arg(long)]
    pub use_native_input_files: bool,
    /// Only these inputs are read natively (comma-separated names); implies native reading for them.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub native_input_tensor_names: Vec<String>,
    /// Bind an input's shape, e.g. `x=1,3,256,256` (repeat for several inputs). Needed for
    /// symbolic dimensions: raw files carry no shape.
    #[arg(long, value_name = "NAME=D0,D1,…")]
    pub input_dimensions: Vec<String>,
    /// Continue when a sample holds NaN or Inf (a warning with the count is printed).
    #[arg(long)]
    pub allow_nonfinite: bool,
}

#[derive(Debug, Args)]
#[command(rename_all = "snake_case")]
pub struct RunArgs {
    /// The float ONNX model.
    #[arg(long, value_name = "FILE", visible_alias = "input_network")]
    pub input_model: PathBuf,
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

#[derive(Debug, Args)]
#[command(rename_all = "snake_case")]
pub struct InspectArgs {
    /// The ONNX model.
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// Print JSON on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}
