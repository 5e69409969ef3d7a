//! The data flags as the pipeline's reading options.

use std::collections::BTreeSet;

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
