//! Model rewrites that run before and around calibration.
//!
//! For now: [`fold_batch_norms`], which folds every BatchNormalization that follows a Conv,
//! ConvTranspose or Gemm into that layer before calibration (DESIGN.md Decision 11). The folded
//! layer keeps its node name and its weight/bias tensor names, a bias it did not have is named
//! `<node>_bias`, and it writes the BN's output name, so every name downstream — and every
//! override naming one — still applies.

mod bn_fold;
mod error;

pub use bn_fold::{Folded, Skipped, fold_batch_norms};
pub use error::Error;
