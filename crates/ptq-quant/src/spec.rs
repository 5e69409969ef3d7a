//! What the user asks for: bitwidth and schema per kind of tensor.

use std::fmt;

/// How the integer grid sits around zero (qairt's `--*_quantizer_schema`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Schema {
    /// Zero point free; unsigned storage.
    Asymmetric,
    /// Zero point 0; signed storage.
    Symmetric,
    /// Symmetric, but data without negatives uses the whole unsigned grid `[0, max]`.
    UnsignedSymmetric,
}

impl Schema {
    pub fn name(self) -> &'static str {
        match self {
            Schema::Asymmetric => "asymmetric",
            Schema::Symmetric => "symmetric",
            Schema::UnsignedSymmetric => "unsignedsymmetric",
        }
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How one tensor is to be quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuantSpec {
    pub bitwidth: u8,
    pub schema: Schema,
    /// Symmetric grids drop their most negative level (`[-127, 127]` at 8 bit), spec §3.1.
    pub strict: bool,
    /// Symmetric grids limited to `[min, max]` (`--restrict_quantization_steps`, spec §3.2):
    /// the scale spreads the range over `max − min` steps.
    pub restricted: Option<(i64, i64)>,
}

impl QuantSpec {
    pub fn new(bitwidth: u8, schema: Schema) -> Self {
        QuantSpec { bitwidth, schema, strict: false, restricted: None }
    }
}
