/// Why a quantized model cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("tensor `{tensor}`: {reason}")]
    Tensor { tensor: String, reason: String },

    #[error(transparent)]
    Graph(#[from] ptq_ir::Error),
}
