/// Why a quantized model cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("tensor `{tensor}`: {reason}")]
    Tensor { tensor: String, reason: String },

    #[error("the model is at opset {have}; its QDQ form needs opset {need} (convert it first)")]
    Opset { have: i64, need: i64 },

    #[error(transparent)]
    Graph(#[from] ptq_ir::Error),
}
