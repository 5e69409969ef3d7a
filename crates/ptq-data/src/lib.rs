//! Calibration data for ptq: qnn-net-run input lists, and the samples they name.
//!
//! [`InputList::parse`] reads the list syntax (spec §2.1) and resolves every path;
//! [`Samples::new`] binds it to the model's inputs (each line checked, every shape made concrete
//! from the model, `--input_dimensions` or `.npy` headers); [`Samples::read`] then reads one sample
//! at a time — raw float32, native raw or `.npy` — as tensors of the inputs' own types.

mod dims;
mod error;
mod list;
mod npy_header;
mod read;
mod samples;

pub use dims::{ShapeBindings, parse_input_dimensions};
pub use error::Error;
pub use list::{Entry, HeaderLines, InputList, Line};
pub use samples::{BoundInput, InputSpec, ReadOptions, Sample, Samples};
