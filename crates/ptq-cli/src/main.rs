//! `ptq`: post-training quantization for ONNX models. The library crates do the work; this binary
//! parses flags, calls them, and turns errors into messages and exit codes (DESIGN.md Decision 13).

mod cli;
mod convert;
mod data_flags;
mod encodings_file;
mod evaluate;
mod evaluate_report;
mod inspect;
mod interrupt;
mod names;
mod output_dir;
mod overwrite;
mod plot;
mod progress;
mod quantize;
mod run;
mod summary;
mod tensor_files;
mod ui;
mod unused_flags;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use ui::Ui;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print and exit 0; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    interrupt::install();
    let ui = Ui { verbose: cli.verbose, quiet: cli.quiet };
    let result = match &cli.command {
        Command::Quantize(args) => quantize::quantize(args, &ui),
        Command::Convert(args) => convert::convert(args, &ui),
        Command::Run(args) => run::run(args, &ui),
        Command::Inspect(args) => inspect::inspect(args),
        Command::Evaluate(args) => evaluate::evaluate(args, &ui),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            interrupt::wait_if_interrupted();
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", chain.join(": "));
            ExitCode::from(if e.downcast_ref::<UsageError>().is_some() { 2 } else { 1 })
        }
    }
}

/// A combination of flags that cannot work together: exit code 2, like clap's own usage errors.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}
