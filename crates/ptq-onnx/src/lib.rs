//! ONNX files in and out, exactly.
//!
//! The protobuf types are generated from the vendored `proto/onnx.proto` (ONNX 1.23.2). A model
//! that is decoded and encoded again without changes comes out byte-identical, which is what
//! lets ptq edit a graph without disturbing anything it did not touch. Tensors stored as
//! external data (`data_location = EXTERNAL`) are read relative to the model's folder and
//! written next to the output; a model is never refused for being over 2 GiB — it is written
//! with its large tensors as external data instead, since other tools cannot read a larger
//! protobuf.
//!
//! ```
//! use ptq_onnx::{decode, encode, proto::ModelProto};
//! let model = ModelProto { ir_version: Some(8), graph: Some(Default::default()), ..Default::default() };
//! let bytes = encode(&model);
//! assert_eq!(decode(bytes.clone().into(), "m.onnx".as_ref()).unwrap(), model);
//! ```

/// Small builders for ONNX protos: the tests of every crate and tools that make models in memory
/// use them.
pub mod build;
mod error;
mod external;
mod io;

pub use error::Error;
pub use external::{is_external, tensor_bytes};
pub use io::{Loaded, decode, encode, from_bytes, load, save, temp_prefix};

/// The generated ONNX protobuf types (package `onnx`).
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}
