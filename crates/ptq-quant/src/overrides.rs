//! Encodings given to ptq rather than calibrated: from an overrides JSON (spec §4.4) or from
//! QDQ nodes already in the model (QAT, spec §4.5).

use std::collections::BTreeMap;

use crate::{Encoding, QuantSpec, Schema};

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

impl Given {
    /// The spec a "quantize at this bitwidth" entry asks for, from the activation spec `act`
    /// (its schema unless the entry says whether it is symmetric); `None` for the others.
    pub fn bitwidth_spec(&self, act: &QuantSpec) -> Option<QuantSpec> {
        let Given::Bitwidth { bitwidth, symmetric } = self else { return None };
        let schema = match symmetric {
            Some(true) => Schema::Symmetric,
            Some(false) => Schema::Asymmetric,
            None => act.schema,
        };
        Some(QuantSpec { schema, ..act.at_bitwidth(*bitwidth) })
    }
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
