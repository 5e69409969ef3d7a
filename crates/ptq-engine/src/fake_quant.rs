//! ptq's own FakeQuant operator, so that tract can run a simulated (fake-quantized) model.
//!
//! Why it exists: tract lowers ONNX QuantizeLinear/DequantizeLinear to integer kernels with
//! their own rounding (a multiplication by the reciprocal scale, fixed-point requantisation), so
//! a Q→DQ pair on tract does not reproduce onnxruntime bit for bit. ptq therefore never simulates
//! with Q/DQ: it follows every quantized tensor with one node of this op, which computes in f32,
//! per element, exactly what onnxruntime's QuantizeLinear→DequantizeLinear computes (and what
//! `ptq_quant::Encoding::fake_quant` computes):
//!
//! ```text
//! q = clamp(round_half_even(x / scale) + zero_point, qmin, qmax)
//! y = (q − zero_point) · scale
//! ```
//!
//! `x / scale` is an f32 division (not a multiplication by the reciprocal).
//!
//! The ONNX contract (what the tract engine parses):
//!
//! - `domain = "ai.ptq"` ([`DOMAIN`]), `op_type = "FakeQuant"` ([`OP_TYPE`]);
//! - inputs `x` (float32, any shape), `scale` (float32 constant, a scalar or 1-D of length C),
//!   `zero_point` (constant holding integral values, float32 preferably, the shape of `scale`);
//!   output: float32, the shape of `x`;
//! - attributes `qmin`, `qmax` (int, required, `qmin ≤ qmax`) and `axis` (int, default 1 as for
//!   ONNX QuantizeLinear; read only when `scale` has C > 1 values; negative counts from the end
//!   of `x`'s shape).
//!
//! tract keys its ONNX op builders by `op_type` alone; the builder here checks the domain and
//! leaves a `FakeQuant` of any other domain unimplemented, so it is reported as unsupported.

use std::sync::{Arc, LazyLock};

use tract_onnx::model::{Onnx, OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::ops::unimpl::UnimplementedOp;

/// The ONNX domain of ptq's own operators.
pub const DOMAIN: &str = "ai.ptq";
/// The ONNX op type of the fake-quantization node.
pub const OP_TYPE: &str = "FakeQuant";

/// tract's ONNX framework with [`OP_TYPE`] registered next to tract's own operators, and ptq's
/// BatchNormalization in place of tract's (it also takes computed statistics).
pub(crate) fn onnx() -> &'static Onnx {
    static ONNX: LazyLock<Onnx> = LazyLock::new(|| {
        // Declared intermediate shapes are checked against the bound inputs by `shapes`, not
        // unified blindly by tract's parser.
        let mut onnx = tract_onnx::onnx().with_ignore_value_info(true);
        register(&mut onnx.op_register);
        crate::batch_norm::register(&mut onnx.op_register);
        onnx
    });
    &ONNX
}

/// Adds the FakeQuant builder to an ONNX op register.
pub(crate) fn register(reg: &mut OnnxOpRegister) {
    reg.insert(OP_TYPE, build);
}

fn build(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    if node.domain != DOMAIN {
        // Not ours: the same placeholder tract uses for an op it does not know.
        let op = UnimplementedOp::new(node.output.len(), &*node.op_type, format!("{node:?}"));
        return Ok((Box::new(op), vec![]));
    }
    let qmin: i64 = node.get_attr("qmin")?;
    let qmax: i64 = node.get_attr("qmax")?;
    node.expect(qmin <= qmax, || format!("qmin ({qmin}) ≤ qmax ({qmax})"))?;
    let axis: i64 = node.get_attr_opt("axis")?.unwrap_or(1);
    Ok((expand(FakeQuantExpansion { qmin, qmax, axis }), vec![]))
}

/// The parsed node: type inference, then [`FakeQuant`] once scale and zero point are known.
#[derive(Debug, Clone)]
struct FakeQuantExpansion {
    qmin: i64,
    qmax: i64,
    axis: i64,
}

impl Expansion for FakeQuantExpansion {
    fn name(&self) -> StaticName {
        OP_TYPE.into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 3)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, f32::datum_type())?;
        s.equals(&inputs[1].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        Ok(())
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let op = self.resolve(model, inputs).with_context(|| format!("{OP_TYPE} node `{prefix}`"))?;
        model.wire_node(prefix, op, &[inputs[0]])
    }
}

impl FakeQuantExpansion {
    fn resolve(&self, model: &TypedModel, inputs: &[OutletId]) -> TractResult<FakeQuant> {
        let x = model.outlet_fact(inputs[0])?;
        let constant = |ix: usize, what: &str| -> TractResult<(TVec<usize>, Vec<f32>)> {
            let t = model.outlet_fact(inputs[ix])?.konst.clone().with_context(|| {
                format!("its {what} must be a constant (an initializer), it is computed in the graph")
            })?;
            let values = t.cast_to::<f32>()?.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
            Ok((t.shape().into(), values))
        };
        let (scale_shape, scale) = constant(1, "scale")?;
        let (zp_shape, zero_point) = constant(2, "zero point")?;
        ensure!(scale_shape.len() <= 1, "its scale must be a scalar or 1-D, it has shape {scale_shape:?}");
        ensure!(
            zp_shape.len() <= 1 && zero_point.len() == scale.len(),
            "its zero point (shape {zp_shape:?}) must have the shape of its scale ({scale_shape:?})"
        );
        ensure!(!scale.is_empty(), "its scale is empty");
        if let Some(s) = scale.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            bail!("its scale must be finite and positive, it holds {s}");
        }
        if let Some(z) = zero_point.iter().find(|z| z.round() != **z) {
            bail!("its zero point must hold integers, it holds {z}");
        }
        let axis = if scale.len() > 1 {
            let rank = x.rank() as i64;
            let axis = if self.axis < 0 { self.axis + rank } else { self.axis };
            ensure!(
                (0..rank).contains(&axis),
                "axis {} is out of range for an input of rank {rank}",
                self.axis
            );
            let axis = axis as usize;
            if let Ok(dim) = x.shape[axis].to_usize() {
                ensure!(
                    dim == scale.len(),
                    "its scale has {} values but its input has {dim} along axis {} (input shape {:?})",
                    scale.len(),
                    self.axis,
                    x.shape
                );
            }
            Some(axis)
        } else {
            None
        };
        Ok(FakeQuant {
            qmin: self.qmin as f32,
            qmax: self.qmax as f32,
            axis,
            scale: scale.into(),
            zero_point: zero_point.into(),
        })
    }
}

/// Fake quantization of an f32 tensor, per tensor or along one axis (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FakeQuant {
    pub qmin: f32,
    pub qmax: f32,
    /// The channel axis when per channel (then `scale` has one value per channel).
    pub axis: Option<usize>,
    pub scale: Arc<[f32]>,
    /// Integral values, as f32.
    pub zero_point: Arc<[f32]>,
}

impl Eq for FakeQuant {}

impl FakeQuant {
    /// The formula, for one element (identical to `ptq_quant::Encoding::fake_quant`).
    ///
    /// `round_ties_even` is a library call on x86-64 without SSE4.1 (Rust's default target), a
    /// few times slower than the rest of this function; adding and subtracting 1.5·2^23 rounds
    /// half to even in the FPU's default mode instead, exactly, for |v| < 2^22. `v` is clamped
    /// first to one step beyond the grid, which changes no result.
    #[inline(always)]
    fn apply(x: f32, scale: f32, zp: f32, qmin: f32, qmax: f32) -> f32 {
        const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
        let v = (x / scale).clamp(qmin - zp - 1.0, qmax - zp + 1.0);
        let q = ((v + MAGIC) - MAGIC + zp).clamp(qmin, qmax);
        (q - zp) * scale
    }

    fn check_shape(&self, shape: &[usize]) -> TractResult<()> {
        if let Some(axis) = self.axis {
            ensure!(
                shape.get(axis) == Some(&self.scale.len()),
                "{OP_TYPE}: {} channels along axis {axis}, input shape {shape:?}",
                self.scale.len()
            );
        }
        Ok(())
    }
}

/// Fake-quantizes `values` in place with one scale and zero point (an integral value) onto
/// `[qmin, qmax]`: exactly what the FakeQuant operator computes, at the same speed, for callers
/// that quantize tensors outside a model (evaluation's own-error SQNR).
pub fn fake_quant_in_place(values: &mut [f32], scale: f32, zero_point: f32, qmin: f32, qmax: f32) {
    simd::apply_all(values, scale, zero_point, qmin, qmax);
}

/// [`FakeQuant::apply`] over a slice, built for the widest vector unit the processor has
/// (checked at run time): the same arithmetic, so the same results, 16 or 8 lanes at a time.
mod simd {
    use super::FakeQuant;

    pub fn apply_all(values: &mut [f32], scale: f32, zp: f32, qmin: f32, qmax: f32) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the processor has AVX-512F (checked just above).
                return unsafe { avx512(values, scale, zp, qmin, qmax) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the processor has AVX2 (checked just above).
                return unsafe { avx2(values, scale, zp, qmin, qmax) };
            }
        }
        portable(values, scale, zp, qmin, qmax)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512(values: &mut [f32], scale: f32, zp: f32, qmin: f32, qmax: f32) {
        portable(values, scale, zp, qmin, qmax)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn avx2(values: &mut [f32], scale: f32, zp: f32, qmin: f32, qmax: f32) {
        portable(values, scale, zp, qmin, qmax)
    }

    #[inline(always)]
    fn portable(values: &mut [f32], scale: f32, zp: f32, qmin: f32, qmax: f32) {
        values.iter_mut().for_each(|v| *v = FakeQuant::apply(*v, scale, zp, qmin, qmax));
    }
}

impl Op for FakeQuant {
    fn name(&self) -> StaticName {
        OP_TYPE.into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let range = format!("q in [{}, {}]", self.qmin, self.qmax);
        Ok(vec![match self.axis {
            None => format!("scale {} zero point {} {range}", self.scale[0], self.zero_point[0]),
            Some(axis) => format!("per channel on axis {axis} ({} channels), {range}", self.scale.len()),
        }])
    }

    op_as_typed_op!();
}

impl EvalOp for FakeQuant {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        ensure!(x.datum_type() == f32::datum_type(), "{OP_TYPE} expects f32, got {:?}", x.datum_type());
        self.check_shape(x.shape())?;
        let inner: usize = match self.axis {
            Some(axis) => x.shape()[axis + 1..].iter().product(),
            None => 0,
        };
        let mut t = x.into_tensor();
        let mut ram = t.try_as_plain_ram_mut()?;
        let values = ram.as_slice_mut::<f32>()?;
        let (qmin, qmax) = (self.qmin, self.qmax);
        match self.axis {
            None => simd::apply_all(values, self.scale[0], self.zero_point[0], qmin, qmax),
            Some(_) if values.is_empty() || inner == 0 => {}
            Some(_) => {
                let channels = self.scale.len();
                for (k, run) in values.chunks_mut(inner).enumerate() {
                    let c = k % channels;
                    simd::apply_all(run, self.scale[c], self.zero_point[c], qmin, qmax);
                }
            }
        }
        Ok(tvec![t.into_tvalue()])
    }
}

impl TypedOp for FakeQuant {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1, "{OP_TYPE} takes one input once wired, got {}", inputs.len());
        let x = inputs[0];
        ensure!(x.datum_type == f32::datum_type(), "{OP_TYPE} expects f32, got {:?}", x.datum_type);
        if let Some(axis) = self.axis {
            ensure!(axis < x.rank(), "{OP_TYPE}: axis {axis} out of range for input {x:?}");
            if let Ok(dim) = x.shape[axis].to_usize() {
                ensure!(dim == self.scale.len(), "{OP_TYPE}: {} channels, input {x:?}", self.scale.len());
            }
        }
        Ok(tvec![f32::datum_type().fact(x.shape.clone())])
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        Ok(tvec![(Cost::Div(f32::datum_type()), inputs[0].shape.volume())])
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::FakeQuant;

    /// The fast rounding equals `round_ties_even` on ties, near-ties, signs, saturation and
    /// 16-bit grids.
    #[test]
    fn apply_equals_the_plain_formula() {
        let plain =
            |x: f32, s: f32, zp: f32, lo: f32, hi: f32| ((x / s).round_ties_even() + zp).clamp(lo, hi);
        let mut x = -70_000.0f32;
        while x < 70_000.0 {
            for (s, zp, lo, hi) in
                [(1.0, 0.0, -32768.0, 32767.0), (0.5, 128.0, 0.0, 255.0), (0.1, 3.0, -128.0, 127.0)]
            {
                for v in [x, x + 0.5, x - 0.5, f32::from_bits(x.to_bits() + 1)] {
                    let expected = (plain(v, s, zp, lo, hi) - zp) * s;
                    assert_eq!(
                        FakeQuant::apply(v, s, zp, lo, hi).to_bits(),
                        expected.to_bits(),
                        "{v} {s} {zp}"
                    );
                }
            }
            x += 0.25 + x.abs() / 1000.0;
        }
        assert!(FakeQuant::apply(f32::NAN, 1.0, 0.0, 0.0, 255.0).is_nan());
        assert_eq!(FakeQuant::apply(f32::INFINITY, 1.0, 0.0, 0.0, 255.0), 255.0);
    }
}
