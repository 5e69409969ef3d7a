//! Loading a model and binding an input list to it: the start of every command.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result, bail};
use ptq_data::{
    BoundInput, InputList, InputSpec, ReadOptions, Samples, ShapeBindings, parse_input_dimensions,
};
use ptq_ir::{Dim, Graph};
use ptq_onnx::Loaded;

use crate::cli::{DataArgs, ShapeArgs};

pub struct Model {
    pub loaded: Loaded,
    /// The file's bytes as prost encodes them (identical to the file when untouched).
    pub bytes: Vec<u8>,
    pub graph: Graph,
}

impl Model {
    pub fn load(path: &Path) -> Result<Model> {
        Model::new(ptq_onnx::load(path)?)
    }

    /// A model in memory (e.g. converted to another opset); `loaded.path` still names its file.
    pub fn new(loaded: Loaded) -> Result<Model> {
        let graph = Graph::new(&loaded.model, loaded.dir())
            .with_context(|| format!("reading {}", loaded.path.display()))?;
        let bytes = ptq_onnx::encode(&loaded.model);
        Ok(Model { loaded, bytes, graph })
    }

    pub fn dir(&self) -> &Path {
        self.loaded.dir()
    }

    /// The graph inputs as declared, with the rank of `--input_dimensions` where the model
    /// declares no shape at all.
    fn input_specs(&self, dims: &BTreeMap<String, Vec<usize>>) -> Result<Vec<InputSpec>> {
        self.graph
            .inputs
            .iter()
            .map(|name| {
                let info = self.graph.tensor(name).expect("graph inputs are tensors");
                let dtype = info.dtype.with_context(|| {
                    format!("model input `{name}` declares no element type; ptq cannot read samples for it")
                })?;
                let shape = match (&info.shape, dims.get(name)) {
                    (Some(shape), _) => shape.clone(),
                    (None, Some(d)) => vec![Dim::Unknown; d.len()],
                    (None, None) => bail!(
                        "model input `{name}` declares no shape; pass --input_dimensions {name}=d0,d1,…"
                    ),
                };
                Ok(InputSpec { name: name.clone(), dtype, shape })
            })
            .collect()
    }

    /// Parses the input list and binds it to this model's inputs.
    pub fn samples(&self, list: &Path, args: &DataArgs) -> Result<Samples> {
        let shapes = shape_bindings(&args.shapes)?;
        let specs = self.input_specs(&shapes.dims)?;
        let opts = ReadOptions {
            native: args.use_native_input_files,
            native_names: args.native_input_tensor_names.iter().cloned().collect::<BTreeSet<_>>(),
            allow_nonfinite: args.allow_nonfinite,
            shapes,
        };
        let list = InputList::parse(list)?;
        Ok(Samples::new(list, &specs, opts)?)
    }

    /// The inputs whose shapes the shape flags and the model fix, without data.
    pub fn bound_inputs(&self, args: &ShapeArgs) -> Result<Vec<BoundInput>> {
        let shapes = shape_bindings(args)?;
        Ok(shapes.bind(&self.input_specs(&shapes.dims)?)?)
    }
}

/// The shape flags as one set of bindings.
fn shape_bindings(args: &ShapeArgs) -> Result<ShapeBindings> {
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
