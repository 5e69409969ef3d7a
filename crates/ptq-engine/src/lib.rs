//! Float execution of ONNX graphs, with any chosen tensors observed.
//!
//! [`TractEngine`] runs a model on tract. The tensors to observe are pinned as model outputs
//! before tract optimises the graph, so the optimiser keeps them; tensors it folds into
//! constants are still returned. [`run_samples`] feeds an input list through any [`Engine`] in
//! parallel, one runner per worker thread, handing each sample's tensors to the caller at once
//! so no activation outlives its sample. [`Tandem`] runs several engines (a float model and its
//! quantized version) on each sample as one.
//!
//! [`fake_quant`] is ptq's own `ai.ptq` `FakeQuant` operator, which the tract engine always
//! understands: simulated models use it instead of QuantizeLinear/DequantizeLinear.

mod batch_norm;
mod convert;
mod error;
pub mod fake_quant;
mod parallel;
mod shapes;
mod tandem;
mod tract;
mod unsupported;

pub use error::Error;
pub use parallel::{run_parts, run_samples};
pub use shapes::IgnoredShape;
pub use tandem::Tandem;
pub use tract::{TractEngine, float_tensors, tensor_shapes, unsupported_ops};
pub use unsupported::UnsupportedOp;

use ptq_ir::Tensor;

/// A prepared model that runs samples and returns the observed tensors.
pub trait Engine: Sync {
    /// The observed tensor names, in the order each run returns their values.
    fn observed(&self) -> &[String];
    /// The watched tensor names, in the order [`Runner::run_watching`] numbers them.
    fn watched(&self) -> &[String];
    /// A runner with its own state; one per worker thread.
    fn runner(&self) -> Result<Box<dyn Runner + '_>, Error>;
}

/// Runs one sample at a time (inputs in graph-input order).
pub trait Runner {
    fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, Error>;
    /// [`Runner::run`], handing each watched float32 tensor to `watch` (its index in
    /// [`Engine::watched`], its values) the moment it is computed.
    fn run_watching(
        &mut self,
        inputs: &[Tensor],
        watch: &mut dyn FnMut(usize, &[f32]),
    ) -> Result<Vec<Tensor>, Error>;
}
