use std::path::PathBuf;

/// Everything that can go wrong reading or writing an ONNX file; each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The I/O error is part of the message, not a `source()`, so a printed chain says it once.
    #[error("cannot read {}: {err}; check the path", path.display())]
    Read { path: PathBuf, err: std::io::Error },

    #[error("cannot write {}: {err}; check that the folder exists and is writable", path.display())]
    Write { path: PathBuf, err: std::io::Error },

    #[error("{path} is not an ONNX model ({reason}); pass a .onnx file exported by a framework")]
    NotOnnx { path: PathBuf, reason: String },

    #[error(
        "{} declares ONNX IR version {version}, which ptq does not read (1 to {max}); save it with an onnx \
         release that writes IR version {max} or lower",
        path.display()
    )]
    IrVersion { path: PathBuf, version: i64, max: i64 },

    #[error(
        "{} is truncated or corrupt: the protobuf does not decode ({err}); re-export or re-download the model",
        path.display()
    )]
    Corrupt { path: PathBuf, err: prost::DecodeError },

    #[error("tensor `{tensor}` of the model in {}: external data {reason}", model.display())]
    ExternalData { model: PathBuf, tensor: String, reason: String },
}
