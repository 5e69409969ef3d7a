//! BatchNormalization whose statistics are computed by the model, not stored in it.
//!
//! tract only runs a BatchNormalization whose scale, bias, mean and variance are constants.
//! tf2onnx writes Keras' LayerNormalization as a BatchNormalization over a reshaped input whose
//! mean and variance come from the data, which tract refuses ("Params are not const"). This
//! expansion wires the same arithmetic, in the same order, as graph ops:
//! `slope = scale / sqrt(var + ε)`, `intercept = B − mean · scale / sqrt(var + ε)`,
//! `y = intercept + slope · x`, each parameter laid along axis 1. With constant parameters tract
//! folds the parameter half into the constants it computed before, so those models run as they did.

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::wrap;

pub(crate) fn register(reg: &mut OnnxOpRegister) {
    reg.insert("BatchNormalization", build);
}

fn build(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let epsilon: f32 = node.get_attr_opt("epsilon")?.unwrap_or(1e-5);
    let spatial: i64 = node.get_attr_opt("spatial")?.unwrap_or(1);
    node.expect(spatial == 1, || "spatial=1 (spatial=0 was dropped at opset 9)".to_string())?;
    Ok((expand(BatchNormalization { epsilon }), vec![]))
}

#[derive(Debug, Clone)]
struct BatchNormalization {
    epsilon: f32,
}

impl Expansion for BatchNormalization {
    fn name(&self) -> StaticName {
        "BatchNormalization".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 5)?;
        check_output_arity(outputs, 1)?;
        s.equals_all(wrap!(
            &outputs[0].datum_type,
            &inputs[0].datum_type,
            &inputs[1].datum_type,
            &inputs[2].datum_type,
            &inputs[3].datum_type,
            &inputs[4].datum_type
        ))?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        s.equals_all(wrap!(&inputs[1].shape, &inputs[2].shape, &inputs[3].shape, &inputs[4].shape))?;
        s.equals(&inputs[1].rank, 1)?;
        s.equals(&inputs[1].shape[0], &inputs[0].shape[1])?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        target: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        use tract_onnx::tract_hir::ops::math;
        let x = target.outlet_fact(inputs[0])?.clone();
        let [scale, beta, mean, var] = [inputs[1], inputs[2], inputs[3], inputs[4]];
        let epsilon = tensor0(self.epsilon).cast_to_dt(x.datum_type)?.into_owned();
        let epsilon = target.add_const(format!("{prefix}.epsilon"), epsilon.broadcast_into_rank(1)?)?;
        let mut op = |name: &str, op: Box<dyn TypedOp>, args: &[OutletId]| -> TractResult<OutletId> {
            Ok(target.wire_node(format!("{prefix}.{name}"), op, args)?[0])
        };
        let shifted = op("var_eps", math::add().into(), &[var, epsilon])?;
        let denominator = op("sqrt", Box::new(math::sqrt()), &[shifted])?;
        let slope = op("slope", math::div().into(), &[scale, denominator])?;
        let mean_scale = op("mean_scale", math::mul().into(), &[mean, scale])?;
        let shift = op("shift", math::div().into(), &[mean_scale, denominator])?;
        let intercept = op("intercept", math::sub().into(), &[beta, shift])?;
        // [C] → [1, C, 1, …] against x's rank.
        let mut along_channels = |name: &str, mut wire: OutletId| -> TractResult<OutletId> {
            wire = op(&format!("{name}.batch"), Box::new(AxisOp::Add(0)), &[wire])?;
            for axis in 2..x.rank() {
                wire = op(&format!("{name}.{axis}"), Box::new(AxisOp::Add(axis)), &[wire])?;
            }
            Ok(wire)
        };
        let slope = along_channels("slope", slope)?;
        let intercept = along_channels("intercept", intercept)?;
        let scaled = op("mul", math::mul().into(), &[slope, inputs[0]])?;
        target.wire_node(prefix, math::add(), &[intercept, scaled])
    }
}
