//! Plain float inference over an input list, with nothing observed: the floor under calibration.
//!
//! ```sh
//! cargo run --release -p ptq-engine --example infer -- MODEL.onnx LIST.txt [name=d0,d1,… …]
//! ```
//!
//! Loads the model, binds its inputs (the `name=d0,d1,…` arguments bind symbolic shapes, as
//! `--input_dimensions` does), prepares tract's optimised plan for the graph outputs only, and runs
//! every sample of the list through it in parallel (`run_samples`, as calibration does),
//! discarding the outputs. Prints the sample count and the seconds spent preparing and running.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use ptq_data::{InputList, InputSpec, ReadOptions, Samples, ShapeBindings};
use ptq_engine::{Error, TractEngine, run_samples};
use ptq_ir::Graph;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("infer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        return Err("usage: infer MODEL.onnx LIST.txt [name=d0,d1,… …]".into());
    }
    let model = PathBuf::from(&args[0]);
    let dims = args[2..]
        .iter()
        .map(|a| {
            let (name, shape) = a.split_once('=').ok_or_else(|| format!("`{a}`: expected name=d0,d1,…"))?;
            let shape = shape
                .split(',')
                .map(|d| d.trim().parse::<usize>().map_err(|e| format!("`{a}`: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((name.to_string(), shape))
        })
        .collect::<Result<_, String>>()?;

    let start = Instant::now();
    let dir = model.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let loaded = ptq_onnx::load(&model).map_err(|e| e.to_string())?;
    let graph = Graph::new(&loaded.model, &dir).map_err(|e| e.to_string())?;
    let specs = graph
        .inputs
        .iter()
        .map(|n| {
            let t = graph.tensor(n).ok_or_else(|| format!("no input `{n}`"))?;
            let dtype = t.dtype.ok_or_else(|| format!("input `{n}` has no type"))?;
            let shape = t.shape.clone().ok_or_else(|| format!("input `{n}` has no shape"))?;
            Ok(InputSpec { name: n.clone(), dtype, shape })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let opts = ReadOptions { shapes: ShapeBindings { dims, ..Default::default() }, ..Default::default() };
    let list = InputList::parse(Path::new(&args[1])).map_err(|e| e.to_string())?;
    let samples = Samples::new(list, &specs, opts).map_err(|e| e.to_string())?;
    let bytes = ptq_onnx::encode(&loaded.model);
    let loaded_s = start.elapsed().as_secs_f64();

    let t = Instant::now();
    let engine =
        TractEngine::new(&bytes, &dir, samples.inputs(), &graph.outputs).map_err(|e| e.to_string())?;
    drop(bytes);
    let prepare_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    run_samples::<Error, _>(&engine, &samples, |_, _, outputs| {
        drop(outputs);
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    let run_s = t.elapsed().as_secs_f64();
    println!(
        "samples: {}\nload: {loaded_s:.3} s\nprepare: {prepare_s:.3} s\nrun: {run_s:.3} s\ntotal: {:.3} s",
        samples.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
