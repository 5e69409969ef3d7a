//! Encodings given to ptq rather than calibrated: from an overrides JSON (spec §4.4) or from
//! QDQ nodes already in the model (QAT, spec §4.5).

use std::collections::BTreeMap;

use crate::Encoding;

/// What a given encoding fixes for one tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Given {
    /// A complete integer encoding, kept bit-exactly.
    Fixed(Encoding),
    /// "Quantize at this bitwidth" without a range (spec §4.4): calibrated, at that bitwidth.
    Bitwidth { bitwidth: u8, symmetric: Option<bool> },
    /// Keep the tensor float at this bitwidth (16 or 32).
    Float { bitwidth: u8 },
}

/// The section of an encodings file an entry came from (a name may sit in the wrong one;
/// the graph decides what the tensor is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Activation,
    Param,
    /// 2.0.0 files have one flat list.
    Any,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GivenEncoding {
    pub section: Section,
    pub given: Given,
}

/// Given encodings by ONNX tensor name.
pub type GivenEncodings = BTreeMap<String, GivenEncoding>;
