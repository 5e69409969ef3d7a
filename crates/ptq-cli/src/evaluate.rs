//! `ptq evaluate`: flags → the pipeline's evaluation → evaluate.json, .md, .png, .svg and a
//! summary on stderr.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ptq_ir::Graph;
use ptq_pipeline::evaluate::{Labels, Pair, evaluate as run_evaluation};
use ptq_pipeline::{Data, Job};
use ptq_quant::json::JsonVersion;

use crate::UsageError;
use crate::cli::EvaluateArgs;
use crate::data_flags::{check_eval_list, read_options};
use crate::evaluate_report::{Report, Source};
use crate::output_dir::StagedDir;
use crate::quantize::{check_given, check_settings, config, data_args};
use crate::ui::{Terminal, Ui};

/// The files written into `--output_dir`.
pub const FILES: [&str; 4] = ["evaluate.json", "evaluate.md", "evaluate.png", "evaluate.svg"];

/// Where the quantized model comes from.
enum Mode<'a> {
    /// `--float_model F --quantized_model Q --input_list L`.
    Files { float: &'a Path, quantized: &'a Path, list: &'a Path },
    /// `--input_model F --input_list C [--eval_list L]` and the quantize flags.
    Quantize { model: &'a Path, calibration: &'a Path, list: &'a Path },
}

/// The flags' mode; combinations clap cannot see are usage errors (exit 2).
fn mode<'a>(args: &'a EvaluateArgs, ui: &Ui) -> Result<Mode<'a>> {
    crate::data_flags::check(&args.data)?;
    match (&args.float_model, &args.quantized_model, &args.input_model) {
        (Some(float), Some(quantized), None) => {
            let Some(list) = &args.input_list else {
                bail!(UsageError("--float_model needs --input_list, the samples to evaluate on".into()));
            };
            Ok(Mode::Files { float, quantized, list })
        }
        (None, None, Some(model)) => {
            check_given(&args.given, ui)?;
            check_settings(&args.settings)?;
            let Some(calibration) = &args.input_list else {
                bail!(UsageError(
                    "--input_model needs --input_list, the calibration samples (evaluated on too, unless \
                     --eval_list is given)"
                        .into()
                ));
            };
            Ok(Mode::Quantize { model, calibration, list: args.eval_list.as_deref().unwrap_or(calibration) })
        }
        _ => bail!(UsageError(
            "give --float_model F --quantized_model Q --input_list L to compare two models, or --input_model F \
             --input_list L (and the quantize flags) to quantize F in memory and evaluate it"
                .into()
        )),
    }
}

pub fn evaluate(args: &EvaluateArgs, ui: &Ui) -> Result<()> {
    let start = Instant::now();
    let mode = mode(args, ui)?;
    // A bad labels file fails before any model runs.
    let labels = args.labels.as_deref().map(Labels::read).transpose()?;
    check_eval_list(args.eval_list.as_deref())?;
    // So is an output folder that cannot be one; the staging folder goes if anything fails.
    let out = StagedDir::new(&args.output_dir)?;
    let events = Terminal::new(ui);
    let (pair, source) = match mode {
        Mode::Files { float, quantized, list } => {
            let source = Source { float, quantized: Some(quantized), calibration: None, list, labels: None };
            (Pair::from_files(float, quantized)?, source)
        }
        Mode::Quantize { model, calibration, list } => {
            let config = config(&args.settings, JsonVersion::V1_0_0, ui)?;
            let read = |graph: &Graph| read_options(&data_args(&args.data, &args.settings, graph)?);
            let job = Job {
                model,
                overrides: args.given.quantization_overrides.as_deref(),
                ignore_given: args.given.ignore(),
                allow_unknown_names: args.given.allow_unknown_override_names,
                data: Data::Calibrate { list: calibration, read: &read, eval: None },
            };
            let quantized = ptq_pipeline::quantize(&config, &job, &events)?;
            let pair = Pair::simulated(quantized.model, &quantized.assignment.encodings)?;
            let source =
                Source { float: model, quantized: None, calibration: Some(calibration), list, labels: None };
            (pair, source)
        }
    };
    let source = Source { labels: args.labels.as_deref(), ..source };
    let read = read_options(&data_args(&args.data, &args.settings, &pair.float.graph)?)?;
    let samples = pair.float.samples(source.list, read)?;
    let evaluation = run_evaluation(&pair, &samples, labels.as_ref(), &events)?;
    let report = Report { source, evaluation: &evaluation, top: args.top as usize };

    let json = report.json()?;
    let [json_file, md_file, png_file, svg_file]: [PathBuf; 4] = FILES.map(|f| out.path().join(f));
    write(&json_file, &json)?;
    write(&md_file, &report.markdown())?;
    report.chart(&png_file, &svg_file)?;
    out.commit()?;
    if args.json {
        print!("{json}");
    }
    ui.info(&report.summary(&args.output_dir, start.elapsed()));
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
