//! Quantization domain: what a user asks for ([`QuantSpec`]), what ptq decides per tensor
//! ([`Encoding`], collected in [`Encodings`]), the QNN math between them (spec §3.2), and the op
//! rules that say which tensors get an encoding ([`rules`], spec §5).

mod assign;
pub mod calibration;
mod encoding;
mod encodings;
mod error;
mod histogram;
pub mod json;
mod observer;
mod overrides;
pub mod overrides_json;
pub mod patterns;
pub mod rules;
mod spec;

pub use assign::{Assignment, Config, GROUP_WIDTH_RATIO, Mode, assign, clipped_values};
pub use calibration::Method;
pub use error::Error;
pub use histogram::{Histogram, Pdf};
pub use observer::{MinMax, Observer};
pub use overrides::{Given, GivenEncoding, GivenEncodings, Section};

pub use encoding::{Encoding, MIN_RANGE, Origin, param_min_width};
pub use encodings::{Encodings, FloatReason, FloatTensor, Kind, TensorEncoding};
pub use spec::{QuantSpec, Schema};
