//! The graph ptq works on.
//!
//! A [`Graph`] is a read-only view of an ONNX model: nodes in topological order, every tensor
//! under its exact ONNX name, constants (initializers and `Constant` nodes alike), producers and
//! consumers, and declared element types and shapes. Edits go through a [`Patch`], the one way
//! to change a model, which applies to the `ModelProto` and leaves everything else byte-identical.
//! [`upgrade_opset`] converts a model's default ONNX domain to a newer opset, rewriting every node
//! whose operator changed in between.

mod attribute;
mod constant;
mod dtype;
mod error;
mod graph;
mod opset;
mod patch;
mod shape;
mod tensor;

pub use attribute::{get_int, int_attribute};
pub use constant::tensor_from_proto;
pub use dtype::DataType;
pub use error::Error;
pub use graph::{Graph, Node, Source, TensorInfo};
pub use opset::upgrade_opset;
pub use patch::Patch;
pub use shape::{Dim, format_shape};
pub use tensor::Tensor;
