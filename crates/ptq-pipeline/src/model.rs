//! Loading a model and binding an input list to it: the start of every command.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use ptq_data::{BoundInput, InputList, InputSpec, ReadOptions, Samples, ShapeBindings};
use ptq_ir::{Dim, Graph};
use ptq_onnx::Loaded;

/// A model as ptq reads it: the ONNX proto, its encoded bytes (what the engine parses) and the
/// graph view.
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

    /// The default domain's opset.
    pub fn opset(&self) -> i64 {
        self.graph.opsets.get("").or(self.graph.opsets.get("ai.onnx")).copied().unwrap_or(1)
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
    pub fn samples(&self, list: &Path, opts: ReadOptions) -> Result<Samples> {
        let specs = self.input_specs(&opts.shapes.dims)?;
        let list = InputList::parse(list)?;
        Ok(Samples::new(list, &specs, opts)?)
    }

    /// The inputs whose shapes `shapes` and the model fix, without data.
    pub fn bound_inputs(&self, shapes: &ShapeBindings) -> Result<Vec<BoundInput>> {
        Ok(shapes.bind(&self.input_specs(&shapes.dims)?)?)
    }
}
