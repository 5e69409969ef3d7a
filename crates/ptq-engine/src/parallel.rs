use rayon::prelude::*;

use ptq_data::{Sample, Samples};
use ptq_ir::Tensor;

use crate::{Engine, Error};

/// How many parts the samples are split into: fixed, so anything gathered per part merges in the
/// same order whatever the thread count (DESIGN.md Decision 5).
const PARTS: usize = 32;

/// Runs every sample of `samples` through `engine`, in parallel over rayon's workers, and hands
/// each sample's index, its inputs and the observed tensors to `consume` as soon as they exist.
///
/// `E` is the caller's error type: it must take both reading and engine errors. The first error
/// stops the run.
pub fn run_samples<E, F>(engine: &dyn Engine, samples: &Samples, consume: F) -> Result<(), E>
where
    E: From<Error> + From<ptq_data::Error> + Send,
    F: Fn(usize, &Sample, Vec<Tensor>) -> Result<(), E> + Sync,
{
    run_parts(engine, samples, || (), |_, _, _| {}, consume).map(|_| ())
}

/// [`run_samples`], with the samples split into consecutive parts that each gather a state of
/// their own (from `new`): `watch` shows it every watched float32 tensor (index in
/// [`Engine::watched`], values) the moment the engine computes it. Returns the parts' states
/// in sample order.
pub fn run_parts<S, E, F>(
    engine: &dyn Engine,
    samples: &Samples,
    new: impl Fn() -> S + Sync,
    watch: impl Fn(&mut S, usize, &[f32]) + Sync,
    consume: F,
) -> Result<Vec<S>, E>
where
    S: Send,
    E: From<Error> + From<ptq_data::Error> + Send,
    F: Fn(usize, &Sample, Vec<Tensor>) -> Result<(), E> + Sync,
{
    let n = samples.len();
    let size = n.div_ceil(PARTS).max(1);
    (0..n.div_ceil(size))
        .into_par_iter()
        .map(|part| -> Result<S, E> {
            let mut runner = engine.runner()?;
            let mut state = new();
            for i in part * size..((part + 1) * size).min(n) {
                let sample = samples.read(i)?;
                let outputs = if engine.watched().is_empty() {
                    runner.run(&sample.tensors)
                } else {
                    runner.run_watching(&sample.tensors, &mut |k, values| watch(&mut state, k, values))
                };
                let outputs = outputs.map_err(|e| Error::Run {
                    reason: format!("{}:{}: {e}", samples.list().path.display(), samples.line(i).number),
                })?;
                consume(i, &sample, outputs)?;
            }
            Ok(state)
        })
        .collect()
}
