/// Problems found while reading a model into a [`crate::Graph`] or applying a [`crate::Patch`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the graph has a cycle through node(s) {nodes}; ONNX graphs must be acyclic")]
    Cycle { nodes: String },

    #[error(
        "the model imports opset {version} of the default ONNX domain; ptq knows opsets up to {max}: export \
         it at opset {max} or lower"
    )]
    FutureOpset { version: i64, max: i64 },

    #[error("tensor `{tensor}`: {reason}")]
    BadTensor { tensor: String, reason: String },

    #[error("node `{node}` ({op}): {reason}")]
    BadNode { node: String, op: String, reason: String },

    #[error("the model has no tensor named `{0}`")]
    NoSuchTensor(String),

    /// The default ONNX domain cannot be converted to the requested opset; `detail` names every
    /// node in the way and why.
    #[error("cannot convert the model from opset {from} to {to}: {detail}")]
    Opset { from: i64, to: i64, detail: String },

    #[error(transparent)]
    Onnx(#[from] ptq_onnx::Error),
}
