//! Writing quantized models.
//!
//! Both writers rewrite the float model with a [`ptq_ir::Patch`] from the same [`Encodings`]:
//! [`qdq_model`] gives the QDQ ONNX model runtimes execute (weights as integer initializers
//! behind DequantizeLinear, QuantizeLinear→DequantizeLinear on every quantized activation), and
//! [`simulation_model`] gives the model ptq's engine runs to measure the result (ptq's own
//! FakeQuant on activations, weights replaced by their dequantized values) — the same numbers.
//! [`lower_qdq`] goes the other way for a QDQ model read from disk: it rewrites its
//! QuantizeLinear→DequantizeLinear pairs into FakeQuant and its dequantized integer constants into
//! float values, so ptq's engine computes what onnxruntime computes on it. [`read_qat`] takes a
//! quantized model apart instead: the float model, and the encodings its QDQ nodes (and ptq's
//! float-16 Cast pairs) carried, as given encodings keyed by the original tensor names.

mod error;
mod lower;
mod qat;
mod qdq;
mod qlinear;
mod simulate;
mod values;

pub use error::Error;
pub use lower::{Lowered, LoweredPair, has_qdq, lower_qdq};
pub use qat::{Qat, read_qat};
pub use qdq::{qdq_model, required_opset};
pub use simulate::{FAKE_QUANT_DOMAIN, Simulation, simulation_model};

use ptq_quant::Encodings;
