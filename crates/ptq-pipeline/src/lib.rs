//! The quantization pipeline as a library (DESIGN.md Decision 16): every command — `quantize`,
//! `convert`, `evaluate`, later a Python binding — runs the same stages, and none of them
//! knows flags, terminals or exit codes.
//!
//! [`quantize`] runs them all for one [`Job`]. The stages, in the order data flows through them:
//! [`Model::load`] → [`given::gather`] (the model's QDQ nodes and an overrides file) →
//! [`prepare::prepare`] (opset for QDQ, layer folds) → [`given::check`] → [`smooth::smooth`]
//! (opt-in) → the op rules ([`ptq_quant::rules::layout`]) → [`calibrate::calibrate`] (min-max or
//! histograms; or [`prepare::float_tensors`] without data) → [`ptq_quant::patterns`] →
//! [`calibrate::chosen_ranges`] (the range-setting method) → [`ptq_quant::assign`] →
//! [`simulate::measure_sqnr`] → the QDQ model ([`ptq_export::qdq_model`]). [`Events`] carries
//! progress and warnings out to the front end.
//! [`evaluate::evaluate`] compares a quantized model (from disk, or [`quantize`]'s result) with
//! its float model: per output, and per quantized tensor.

pub mod calibrate;
mod config;
pub mod evaluate;
mod events;
pub mod given;
mod model;
mod notices;
pub mod prepare;
mod quantize;
pub mod shares;
pub mod simulate;
pub mod smooth;

pub use config::Config;
pub use events::{Events, Silent};
pub use model::Model;
pub use quantize::{Data, Job, Quantized, quantize};
