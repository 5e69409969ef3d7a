//! Writing quantized models.
//!
//! Both writers rewrite the float model with a [`ptq_ir::Patch`] from the same [`Encodings`]:
//! [`qdq_model`] gives the QDQ ONNX model runtimes execute (weights as integer initializers
//! behind DequantizeLinear, QuantizeLinear→DequantizeLinear on every quantized activation), and
//! [`simulation_model`] gives the model ptq's engine runs to measure the result (ptq's own
//! FakeQuant on activations, weights replaced by their dequantized values) — the same numbers.

mod error;
mod qdq;
mod simulate;
mod values;

pub use error::Error;
pub use qdq::{qdq_model, required_opset};
pub use simulate::{FAKE_QUANT_DOMAIN, Simulation, simulation_model};

use ptq_quant::Encodings;
