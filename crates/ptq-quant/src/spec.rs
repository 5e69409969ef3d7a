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

    /// This spec at `bitwidth`. A restricted grid belongs to the bitwidth it was given for: at
    /// another one (an override's) the full grid is used, so integers never leave their storage
    /// type (a 16-bit grid on int8 weights would wrap).
    pub fn at_bitwidth(&self, bitwidth: u8) -> QuantSpec {
        let restricted = self.restricted.filter(|_| bitwidth == self.bitwidth);
        QuantSpec { bitwidth, restricted, ..*self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restricted_grid_stays_with_its_bitwidth() {
        let w16 = QuantSpec { restricted: Some((-0x8000, 0x7F7F)), ..QuantSpec::new(16, Schema::Symmetric) };
        assert_eq!(w16.at_bitwidth(16), w16);
        assert_eq!(w16.at_bitwidth(8), QuantSpec::new(8, Schema::Symmetric));
    }
}
