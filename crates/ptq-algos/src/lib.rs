//! Model rewrites that run before and around calibration.
//!
//! For now: [`fold_layers`], the graph normalisation qairt's converter does before quantizing
//! (its "squash" passes, DESIGN.md Decision 11). Every per-output-channel affine op after a
//! Conv, ConvTranspose, Gemm or MatMul — a BatchNormalization, or an Add, Sub or Mul of a
//! constant along the channel axis (see [`Follower`]) — is folded into that layer's weight and
//! bias, so the layer's bias is a derived 32-bit bias rather than a separately quantized Add. The
//! folded layer keeps its node name and its weight/bias tensor names, a bias it did not have is
//! named `<node>_bias`, and it writes the follower's output name, so every name downstream — and
//! every override naming one — still applies.
//!
//! And [`smooth`] (opt-in): SmoothQuant's migration of per-channel activation outliers into the
//! weights of the MatMul/Gemm layers that read them, folded into the activation's producer.

mod error;
mod fold;
pub mod smooth;

pub use error::Error;
pub use fold::{Fold, Folded, Follower, Skipped, fold_layers};
pub use smooth::{SmoothOptions, Smoothed, Smoothing, smooth};
