use rayon::prelude::*;

use ptq_data::{Sample, Samples};
use ptq_ir::Tensor;

use crate::{Engine, Error};

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
    (0..samples.len()).into_par_iter().try_for_each_init(
        || engine.runner(),
        |runner, i| {
            let runner = runner.as_mut().map_err(|e| Error::Run { reason: e.to_string() })?;
            let sample = samples.read(i)?;
            let outputs = runner.run(&sample.tensors).map_err(|e| Error::Run {
                reason: format!("{}:{}: {e}", samples.list().path.display(), samples.line(i).number),
            })?;
            consume(i, &sample, outputs)
        },
    )
}
