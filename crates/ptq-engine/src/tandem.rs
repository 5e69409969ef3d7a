//! Several engines run one after another on each sample, as one [`Engine`]: how two models (a
//! float one and its quantized version) are compared sample by sample in one parallel loop,
//! with each sample read once.

use ptq_ir::Tensor;

use crate::{Engine, Error, Runner};

/// Engines that run in turn on the same inputs. Their observed tensors are returned one engine
/// after the other, and their watched tensors are numbered one engine after the other: the
/// `k`-th watched tensor of the second engine is `first.watched().len() + k`. Within a sample,
/// every watched tensor of an engine is shown before any of the next engine's.
pub struct Tandem<'a> {
    engines: Vec<&'a dyn Engine>,
    observed: Vec<String>,
    watched: Vec<String>,
}

impl<'a> Tandem<'a> {
    pub fn new(engines: Vec<&'a dyn Engine>) -> Tandem<'a> {
        let observed = engines.iter().flat_map(|e| e.observed().iter().cloned()).collect();
        let watched = engines.iter().flat_map(|e| e.watched().iter().cloned()).collect();
        Tandem { engines, observed, watched }
    }
}

impl Engine for Tandem<'_> {
    fn observed(&self) -> &[String] {
        &self.observed
    }

    fn watched(&self) -> &[String] {
        &self.watched
    }

    fn runner(&self) -> Result<Box<dyn Runner + '_>, Error> {
        let runners = self.engines.iter().map(|e| e.runner()).collect::<Result<Vec<_>, _>>()?;
        let offsets = self
            .engines
            .iter()
            .scan(0, |at, e| {
                let start = *at;
                *at += e.watched().len();
                Some(start)
            })
            .collect();
        Ok(Box::new(TandemRunner { runners, offsets }))
    }
}

struct TandemRunner<'a> {
    runners: Vec<Box<dyn Runner + 'a>>,
    /// Where each engine's watched tensors start in the tandem's numbering.
    offsets: Vec<usize>,
}

impl Runner for TandemRunner<'_> {
    fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, Error> {
        let mut outputs = Vec::new();
        for runner in &mut self.runners {
            outputs.extend(runner.run(inputs)?);
        }
        Ok(outputs)
    }

    fn run_watching(
        &mut self,
        inputs: &[Tensor],
        watch: &mut dyn FnMut(usize, &[f32]),
    ) -> Result<Vec<Tensor>, Error> {
        let mut outputs = Vec::new();
        for (runner, &offset) in self.runners.iter_mut().zip(&self.offsets) {
            outputs.extend(runner.run_watching(inputs, &mut |k, values| watch(offset + k, values))?);
        }
        Ok(outputs)
    }
}
