//! Converts a model's default ONNX domain to a newer opset: `upgrade_opset IN OUT TARGET`.
//!
//! Used by `tests/interop/check_opset.py`, which checks the result with onnx's checker and
//! compares onnxruntime's outputs before and after.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, target] = args.as_slice() else {
        eprintln!("usage: upgrade_opset IN.onnx OUT.onnx TARGET_OPSET");
        return ExitCode::from(2);
    };
    let Ok(target) = target.parse::<i64>() else {
        eprintln!("error: TARGET_OPSET must be a whole number, not `{target}`");
        return ExitCode::from(2);
    };
    match run(&PathBuf::from(input), &PathBuf::from(output), target) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    input: &std::path::Path,
    output: &std::path::Path,
    target: i64,
) -> Result<(), Box<dyn std::error::Error>> {
    let loaded = ptq_onnx::load(input)?;
    let converted = ptq_ir::upgrade_opset(&loaded.model, loaded.dir(), target)?;
    let before = loaded.model.graph.as_ref().map_or(0, |g| g.node.len());
    let after = converted.graph.as_ref().map_or(0, |g| g.node.len());
    ptq_onnx::save(&converted, loaded.dir(), output)?;
    eprintln!("{}: opset -> {target}, {before} -> {after} nodes", input.display());
    Ok(())
}
