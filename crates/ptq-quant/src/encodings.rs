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

/// A tensor kept float on purpose, and at which float bitwidth (16: a marked Cast pair in the
/// exported model, DESIGN.md Decision 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloatTensor {
    pub kind: Kind,
    pub bitwidth: u8,
    pub reason: FloatReason,
}

/// Why a tensor that could be quantized stays float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FloatReason {
    /// An overrides file or a float-16 Cast pair said so.
    Given,
    /// Float fallback: no encoding was given or could be propagated.
    Fallback,
    /// A Conv/Gemm/MatMul whose output, weight or bias is float is float entirely (spec §4.4).
    Coupled,
    /// It carries a masking value (|x| ≥ 1e30, [`crate::patterns::MASKING_MAGNITUDE`]).
    MaskingValue,
}

impl FloatReason {
    pub fn name(self) -> &'static str {
        match self {
            FloatReason::Given => "float",
            FloatReason::Fallback => "float fallback",
            FloatReason::Coupled => "float with its layer",
            FloatReason::MaskingValue => "masking value",
        }
    }
}

/// Every encoding ptq decided, keyed by the original ONNX tensor name (ordered, so every file
/// written from it is deterministic), and the tensors kept float on purpose.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Encodings {
    pub tensors: BTreeMap<String, TensorEncoding>,
    pub floats: BTreeMap<String, FloatTensor>,
}

impl Encodings {
    pub fn get(&self, tensor: &str) -> Option<&Encoding> {
        self.tensors.get(tensor).map(|t| &t.encoding)
    }
}
