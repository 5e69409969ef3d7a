use crate::UnsupportedOp;

/// Why a model cannot be prepared or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the model uses operators that ptq's engine (tract) cannot run (`ptq inspect` lists them):\n{}", list_ops(.ops))]
    Unsupported { ops: Vec<UnsupportedOp> },

    #[error("tract cannot load the model: {reason}")]
    Load { reason: String },

    #[error("the model has no tensor named `{name}`")]
    NoSuchTensor { name: String },

    #[error("tract cannot prepare the model for inputs {inputs}: {reason}")]
    Prepare { inputs: String, reason: String },

    /// `shapes` reads "the bound input shapes … give its inputs … and its outputs …".
    #[error(
        "node `{node}` ({op}) contradicts {shapes} ({reason}). The model fixes a dimension there that these \
         input shapes do not give: bind the input shapes it was exported for (--input_dimensions)"
    )]
    Contradiction { node: String, op: String, shapes: String, reason: String },

    #[error(
        "tract cannot prepare node `{node}` ({op}) for {shapes}: {reason}. tract needs every shape fixed once the \
         inputs are bound; a node whose shapes depend on input values (an If on an input flag, a data-dependent \
         size) needs a model exported for one configuration"
    )]
    Untyped { node: String, op: String, shapes: String, reason: String },

    #[error("running the model failed: {reason}")]
    Run { reason: String },

    #[error("input `{name}`: {reason}")]
    Input { name: String, reason: String },

    #[error(transparent)]
    Data(#[from] ptq_data::Error),
}

fn list_ops(ops: &[UnsupportedOp]) -> String {
    ops.iter().map(|op| format!("  {op}")).collect::<Vec<_>>().join("\n")
}

/// tract's errors carry a chain of contexts; keep all of it, on one line.
pub(crate) fn chain(e: &tract_onnx::prelude::TractError) -> String {
    e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": ")
}
