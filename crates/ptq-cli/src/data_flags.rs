//! The data flags as the pipeline's reading options.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Result, bail};
use ptq_data::{ReadOptions, ShapeBindings, parse_input_dimensions};

use crate::UsageError;
use crate::cli::{DataArgs, ShapeArgs};

/// The data flags that exclude each other, as usage errors (before any work is done).
pub fn check(args: &DataArgs) -> Result<()> {
    if args.use_native_input_files && !args.native_input_tensor_names.is_empty() {
        bail!(UsageError(
            "--use_native_input_files reads every input natively and --native_input_tensor_names only \
             the inputs it names: give one of them (qnn-net-run takes only one too)"
                .into()
        ));
    }
    Ok(())
}

/// How the input list's files are read and its shapes bound.
pub fn read_options(args: &DataArgs) -> Result<ReadOptions> {
    Ok(ReadOptions {
        native: args.use_native_input_files,
        native_names: args.native_input_tensor_names.iter().cloned().collect::<BTreeSet<_>>(),
        allow_nonfinite: args.allow_nonfinite,
        shapes: shape_bindings(&args.shapes)?,
    })
}

/// The shape flags as one set of bindings.
pub fn shape_bindings(args: &ShapeArgs) -> Result<ShapeBindings> {
    let mut shapes = ShapeBindings::default();
    let qairt = args.source_model_input_shape.chunks(2).map(|p| format!("{}={}", p[0], p[1]));
    for arg in args.input_dimensions.iter().cloned().chain(qairt) {
        let (name, d) = parse_input_dimensions(&arg)?;
        if shapes.dims.insert(name.clone(), d).is_some() {
            bail!("--input_dimensions (-s) names input `{name}` twice");
        }
    }
    for pair in args.onnx_define_symbol.chunks(2) {
        let (symbol, value) = (&pair[0], &pair[1]);
        let Some(value) = value.parse::<usize>().ok().filter(|&v| v > 0) else {
            bail!("--onnx_define_symbol {symbol} {value}: the value must be a whole number ≥ 1");
        };
        if shapes.symbols.insert(symbol.clone(), value).is_some() {
            bail!("--onnx_define_symbol defines `{symbol}` twice");
        }
    }
    shapes.batch = args.onnx_override_batch.map(|b| b as usize);
    Ok(shapes)
}

/// `--eval_list` is read only after calibration (or quantizing in memory): a path that cannot be
/// the list fails first, naming this flag (the list reader's own message names --input_list).
pub fn check_eval_list(list: Option<&Path>) -> Result<()> {
    let Some(list) = list else { return Ok(()) };
    match std::fs::metadata(list) {
        Err(e) => bail!("cannot read --eval_list {}: {e}; check the path", list.display()),
        Ok(m) if m.is_dir() => bail!("--eval_list {} is a folder; give the input list file", list.display()),
        Ok(_) => Ok(()),
    }
}
