use std::path::PathBuf;

/// Everything that can go wrong reading or writing an ONNX file; each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },

    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },

    #[error("{path} is not an ONNX model ({reason}); pass a .onnx file exported by a framework")]
    NotOnnx { path: PathBuf, reason: String },

    #[error(
        "{path} is truncated or corrupt: the protobuf does not decode ({source}); re-export or re-download the model"
    )]
    Corrupt { path: PathBuf, source: prost::DecodeError },

    #[error("tensor `{tensor}` of {model}: external data {reason}")]
    ExternalData { model: PathBuf, tensor: String, reason: String },
}
