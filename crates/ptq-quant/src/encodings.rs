//! The encodings of a whole model, by tensor name.

use std::collections::BTreeMap;

use crate::Encoding;

/// Whether a tensor is data flowing through the graph or a constant of the model — the two
/// sections of the encodings JSON (`activation_encodings`, `param_encodings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Activation,
    Param,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TensorEncoding {
    pub kind: Kind,
    pub encoding: Encoding,
}

/// Every encoding ptq decided, keyed by the original ONNX tensor name (ordered, so every file
/// written from it is deterministic).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Encodings {
    pub tensors: BTreeMap<String, TensorEncoding>,
}

impl Encodings {
    pub fn get(&self, tensor: &str) -> Option<&Encoding> {
        self.tensors.get(tensor).map(|t| &t.encoding)
    }
}
