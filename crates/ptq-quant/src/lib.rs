//! Quantization domain: what a user asks for ([`QuantSpec`]), what ptq decides per tensor
//! ([`Encoding`]), and the QNN math between them (spec §3.2).

mod encoding;
mod spec;

pub use encoding::{Encoding, MIN_RANGE, Origin};
pub use spec::{QuantSpec, Schema};
