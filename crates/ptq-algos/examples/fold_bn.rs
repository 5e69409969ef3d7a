//! Folds the BatchNormalizations, bias Adds and scale Muls of an ONNX model into the layers
//! before them: `fold_bn IN OUT`.
//!
//! Prints `folded N`, one `fold LAYER <- KIND FOLLOWER` line per fold, and one
//! `skipped NODE: reason` line per BatchNormalization left alone; tests/interop/check_fold.py runs
//! it and compares the two models with onnxruntime.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: fold_bn IN.onnx OUT.onnx");
        return ExitCode::from(2);
    };
    match run(input, output) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(input: &Path, output: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let loaded = ptq_onnx::load(input)?;
    let folded = ptq_algos::fold_layers(&loaded.model, loaded.dir(), &|_| false)?;
    ptq_onnx::save(&folded.model, loaded.dir(), output)?;
    println!("folded {}", folded.folded.len());
    for f in &folded.folded {
        println!("fold {} <- {} {}", f.layer, f.kind, f.follower);
    }
    for s in &folded.skipped {
        println!("skipped {}: {}", s.node, s.reason);
    }
    Ok(())
}
