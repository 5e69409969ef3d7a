use ptq_ir::DataType;

/// Why encodings cannot be computed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read constant `{tensor}`: {source}")]
    Constant { tensor: String, source: ptq_ir::Error },

    #[error("constant `{tensor}` holds {dtype} values, which ptq cannot quantize")]
    NotNumeric { tensor: String, dtype: DataType },
}
