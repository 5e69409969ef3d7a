//! What to do when a node crosses the opset at which its operator changed.
//!
//! Each (operator, version) pair of `history.rs` past an operator's first version is either
//! [`Rule::Same`] — the new version only widened the types, made an input optional, accepted
//! negative axes, or added inputs/attributes whose defaults keep the old behaviour — or a
//! [`Rule::Rewrite`] that edits the node so that it computes what it computed before. A pair that
//! is in neither table is refused by name. Sources: the ONNX operator changelog
//! (docs/Changelog.md), the schema diffs of ONNX 1.23.2, and onnx's own version-converter adapters
//! (onnx/version_converter/adapters), corrected where they lose meaning (Resize 10 → 11).

use super::{
    Cx, Work, attr, attr_i, attr_s, f32_tensor, float_scalar, i64_tensor, int_attr, node, raw_tensor,
    set_attr, set_input, string_attr, take_attr,
};
use crate::DataType;
use ptq_onnx::proto::attribute_proto::AttributeType;

pub(crate) type Rewrite = fn(&mut Cx, &mut Work) -> Result<(), String>;

#[derive(Clone, Copy)]
pub(crate) enum Rule {
    /// No semantic change for a model valid at the older version: only the version moves.
    Same,
    /// The node is edited to keep its meaning.
    Rewrite(Rewrite),
}

/// What ptq does when `op` crosses `version`; `None` when it does not know.
pub(crate) fn rule(op: &str, version: i64) -> Option<Rule> {
    if let Some(&(_, _, f)) = REWRITES.iter().find(|(o, v, _)| *o == op && *v == version) {
        return Some(Rule::Rewrite(f));
    }
    SAME.iter().any(|(o, vs)| *o == op && vs.contains(&version)).then_some(Rule::Same)
}

/// The rule that replaces a deprecated operator by its successor.
pub(crate) fn replacement(op: &str) -> Option<Rewrite> {
    match op {
        "Upsample" => Some(upsample_to_resize),
        "Scatter" => Some(scatter_to_scatter_elements),
        _ => None,
    }
}

/// Versions that need no rewrite: types added (bfloat16 at 13, int8/int16 at 14, float8 at 19,
/// int4 at 21, ...), inputs made optional, negative axes accepted, attributes added with defaults
/// that keep the old behaviour (ArgMax `select_last_index`, MaxPool `ceil_mode`/`dilations`,
/// AveragePool `count_include_pad`, Reshape `allowzero`, Shape `start`/`end`, RNN `layout`,
/// Resize `antialias`/`axes`/`keep_aspect_ratio_policy`, ScatterElements `reduction`, Pad `axes`
/// and `wrap`, QuantizeLinear `saturate`/`block_size`/`output_dtype`, ...).
const SAME: &[(&str, &[i64])] = &[
    ("Abs", &[13]),
    ("Acos", &[22]),
    ("Acosh", &[22]),
    ("Add", &[13, 14]),
    ("ArgMax", &[11, 12, 13]),
    ("ArgMin", &[11, 12, 13]),
    ("Asin", &[22]),
    ("Asinh", &[22]),
    ("Atan", &[22]),
    ("Atanh", &[22]),
    ("AveragePool", &[7, 10, 11, 19, 22]),
    ("BatchNormalization", &[15]),
    ("Bernoulli", &[22]),
    ("BitShift", &[28]),
    ("Cast", &[9, 13, 19, 21, 23, 25, 28]),
    ("CastLike", &[19, 21, 23, 24, 25]),
    ("Ceil", &[13]),
    ("Celu", &[28]),
    ("Clip", &[12, 13]),
    ("Compress", &[11, 28]),
    ("Concat", &[11, 13]),
    ("Constant", &[9, 11, 12, 13, 19, 21, 23, 24, 25]),
    ("ConstantOfShape", &[20, 21, 23, 24, 25]),
    ("Conv", &[11, 22]),
    ("ConvTranspose", &[11, 22]),
    ("Cos", &[22]),
    ("Cosh", &[22]),
    ("CumSum", &[14]),
    ("DeformConv", &[22]),
    ("DepthToSpace", &[11, 13, 28]),
    ("DequantizeLinear", &[13, 19, 21, 23, 24, 25, 28]),
    ("Det", &[22]),
    ("Div", &[13, 14]),
    ("Dropout", &[13, 22]),
    ("Einsum", &[28]),
    ("Elu", &[22]),
    ("Equal", &[11, 13, 19]),
    ("Exp", &[13]),
    ("Expand", &[13]),
    ("EyeLike", &[22]),
    ("Flatten", &[9, 11, 13, 21, 23, 24, 25]),
    ("Floor", &[13]),
    ("GRU", &[14, 22]),
    ("Gather", &[11, 13]),
    ("GatherElements", &[13]),
    ("GatherND", &[12, 13]),
    ("Gemm", &[6, 9, 11, 13]),
    ("GlobalAveragePool", &[22]),
    ("GlobalLpPool", &[22]),
    ("GlobalMaxPool", &[22]),
    ("Greater", &[9, 13]),
    ("GreaterOrEqual", &[16]),
    ("GridSample", &[22]),
    ("HardSigmoid", &[22]),
    ("HardSwish", &[22]),
    ("Hardmax", &[11]),
    ("Identity", &[13, 14, 16, 19, 21, 23, 24, 25]),
    ("If", &[11, 13, 16, 19, 21, 23, 24, 25]),
    ("InstanceNormalization", &[22]),
    ("IsInf", &[20]),
    ("IsNaN", &[13, 20]),
    ("LRN", &[13]),
    ("LSTM", &[14, 22]),
    ("LeakyRelu", &[16]),
    ("Less", &[9, 13]),
    ("LessOrEqual", &[16]),
    ("Log", &[13]),
    ("LogSoftmax", &[11]),
    ("Loop", &[11, 13, 16, 19, 21, 23, 24, 25]),
    ("LpNormalization", &[22]),
    ("LpPool", &[11, 18, 22]),
    ("MatMul", &[9, 13]),
    ("Max", &[8, 12, 13]),
    ("MaxPool", &[8, 10, 11, 12, 22]),
    ("MaxRoiPool", &[22]),
    ("MaxUnpool", &[11, 22]),
    ("Mean", &[8, 13]),
    ("MeanVarianceNormalization", &[13]),
    ("Min", &[8, 12, 13]),
    ("Mish", &[22]),
    ("Mod", &[13, 28]),
    ("Mul", &[13, 14]),
    ("Multinomial", &[22]),
    ("Neg", &[13]),
    ("NegativeLogLikelihoodLoss", &[13, 22]),
    ("NonMaxSuppression", &[11]),
    ("NonZero", &[13]),
    ("OneHot", &[11, 28]),
    ("Optional", &[28]),
    ("OptionalGetElement", &[18, 28]),
    ("OptionalHasElement", &[18, 28]),
    ("PRelu", &[9, 16]),
    ("Pad", &[13, 18, 19, 21, 23, 24, 25]),
    ("Pow", &[12, 13, 15]),
    ("QLinearMatMul", &[21]),
    ("QuantizeLinear", &[13, 19, 21, 23, 24, 25, 28]),
    ("RNN", &[14, 22]),
    ("RandomNormal", &[22]),
    ("RandomNormalLike", &[22]),
    ("RandomUniform", &[22]),
    ("RandomUniformLike", &[22]),
    ("Range", &[27]),
    ("Reciprocal", &[13]),
    ("ReduceL1", &[11, 13]),
    ("ReduceL2", &[11, 13]),
    ("ReduceLogSum", &[11, 13]),
    ("ReduceLogSumExp", &[11, 13]),
    ("ReduceMax", &[11, 12, 13, 20]),
    ("ReduceMean", &[11, 13]),
    ("ReduceMin", &[11, 12, 13, 20]),
    ("ReduceProd", &[11, 13]),
    ("ReduceSum", &[11]),
    ("ReduceSumSquare", &[11, 13]),
    ("Relu", &[13, 14]),
    ("Reshape", &[13, 14, 19, 21, 23, 24, 25]),
    ("Resize", &[18, 19]),
    ("ReverseSequence", &[28]),
    ("RoiAlign", &[22]),
    ("Round", &[22]),
    ("Scan", &[11, 16, 19, 21, 23, 24, 25]),
    ("ScatterElements", &[13, 16, 18]),
    ("ScatterND", &[13, 16, 18]),
    ("Selu", &[22]),
    ("Shape", &[13, 15, 19, 21, 23, 24, 25]),
    ("Sigmoid", &[13]),
    ("Sign", &[13]),
    ("Sin", &[22]),
    ("Sinh", &[22]),
    ("Size", &[13, 19, 21, 23, 24, 25]),
    ("Slice", &[11, 13]),
    ("Softmax", &[11]),
    ("SoftmaxCrossEntropyLoss", &[13]),
    ("Softplus", &[22]),
    ("Softsign", &[22]),
    ("SpaceToDepth", &[13, 28]),
    ("Split", &[11]),
    ("SplitToSequence", &[24]),
    ("Sqrt", &[13]),
    ("Squeeze", &[11, 21, 23, 24, 25]),
    ("Sub", &[13, 14]),
    ("Sum", &[8, 13]),
    ("Tan", &[22]),
    ("Tanh", &[13]),
    ("ThresholdedRelu", &[22]),
    ("Tile", &[13]),
    ("TopK", &[11, 24]),
    ("Transpose", &[13, 21, 23, 24, 25]),
    ("Unique", &[28]),
    ("Unsqueeze", &[11, 21, 23, 24, 25]),
    ("Where", &[16]),
];

/// Versions whose change needs an edit.
const REWRITES: &[(&str, i64, Rewrite)] = &[
    // Opset 6 dropped the legacy `consumed_inputs` attribute (and fixed Selu's defaults).
    ("Abs", 6, drop_consumed_inputs),
    ("Add", 6, drop_consumed_inputs),
    ("BatchNormalization", 6, drop_consumed_inputs),
    ("Ceil", 6, drop_consumed_inputs),
    ("Clip", 6, drop_consumed_inputs),
    ("Div", 6, drop_consumed_inputs),
    ("Dropout", 6, drop_consumed_inputs),
    ("Elu", 6, drop_consumed_inputs),
    ("Exp", 6, drop_consumed_inputs),
    ("Floor", 6, drop_consumed_inputs),
    ("HardSigmoid", 6, drop_consumed_inputs),
    ("InstanceNormalization", 6, drop_consumed_inputs),
    ("LeakyRelu", 6, drop_consumed_inputs),
    ("Log", 6, drop_consumed_inputs),
    ("Max", 6, drop_consumed_inputs),
    ("Mean", 6, drop_consumed_inputs),
    ("Min", 6, drop_consumed_inputs),
    ("Mul", 6, drop_consumed_inputs),
    ("Neg", 6, drop_consumed_inputs),
    ("PRelu", 6, drop_consumed_inputs),
    ("Reciprocal", 6, drop_consumed_inputs),
    ("Relu", 6, drop_consumed_inputs),
    ("Selu", 6, selu_6),
    ("Sigmoid", 6, drop_consumed_inputs),
    ("Sqrt", 6, drop_consumed_inputs),
    ("Sub", 6, drop_consumed_inputs),
    ("Sum", 6, drop_consumed_inputs),
    ("Tanh", 6, drop_consumed_inputs),
    ("Cast", 6, cast_6),
    ("Reshape", 5, reshape_5),
    ("Concat", 4, concat_4),
    ("Pad", 2, pad_2),
    ("GlobalLpPool", 2, lp_pool_2),
    ("LpPool", 2, lp_pool_2),
    // Opset 7: numpy broadcasting replaced `broadcast`/`axis`; `is_test` and `output_sequence` went.
    ("Add", 7, legacy_broadcast),
    ("And", 7, legacy_broadcast),
    ("Div", 7, legacy_broadcast),
    ("Equal", 7, legacy_broadcast),
    ("Greater", 7, legacy_broadcast),
    ("Less", 7, legacy_broadcast),
    ("Mul", 7, legacy_broadcast),
    ("Or", 7, legacy_broadcast),
    ("Pow", 7, legacy_broadcast),
    ("Sub", 7, legacy_broadcast),
    ("Xor", 7, legacy_broadcast),
    ("Gemm", 7, gemm_7),
    ("PRelu", 7, prelu_7),
    ("BatchNormalization", 7, drop_is_test),
    ("Dropout", 7, drop_is_test),
    ("GRU", 7, rnn_7),
    ("LSTM", 7, rnn_7),
    ("RNN", 7, rnn_7),
    ("Upsample", 7, upsample_7),
    ("BatchNormalization", 9, batch_norm_9),
    ("Upsample", 9, upsample_9),
    ("Dropout", 10, dropout_10),
    ("Slice", 10, slice_10),
    ("TopK", 10, top_k_10),
    ("Clip", 11, clip_11),
    ("Pad", 11, pad_11),
    ("Resize", 11, resize_11),
    ("Dropout", 12, dropout_12),
    ("Erf", 13, float_input_only),
    ("Hardmax", 13, softmax_13),
    ("LogSoftmax", 13, softmax_13),
    ("ReduceSum", 13, axes_to_input),
    ("Resize", 13, resize_13),
    ("Softmax", 13, softmax_13),
    ("Split", 13, split_13),
    ("Squeeze", 13, axes_to_input),
    ("Unsqueeze", 13, axes_to_input),
    ("BatchNormalization", 14, batch_norm_14),
    ("RoiAlign", 16, roi_align_16),
    ("ReduceL1", 18, axes_to_input),
    ("ReduceL2", 18, axes_to_input),
    ("ReduceLogSum", 18, axes_to_input),
    ("ReduceLogSumExp", 18, axes_to_input),
    ("ReduceMax", 18, axes_to_input),
    ("ReduceMean", 18, axes_to_input),
    ("ReduceMin", 18, axes_to_input),
    ("ReduceProd", 18, axes_to_input),
    ("ReduceSumSquare", 18, axes_to_input),
    ("Split", 18, split_18),
    ("DFT", 20, dft_20),
    ("GridSample", 20, grid_sample_20),
    ("GroupNormalization", 21, group_norm_21),
    ("Cast", 24, cast_24),
    ("ReduceLogSum", 28, float_input_only),
    ("ReduceLogSumExp", 28, float_input_only),
];

/// The name new tensors of this node are derived from (Decision 8: `<tensor>_ptq_...`).
fn base(w: &Work) -> String {
    w.node.output.first().cloned().unwrap_or_else(|| w.node.name().to_owned())
}

fn input(w: &Work, slot: usize) -> Option<String> {
    w.node.input.get(slot).filter(|s| !s.is_empty()).cloned()
}

fn drop_consumed_inputs(_: &mut Cx, w: &mut Work) -> Result<(), String> {
    take_attr(&mut w.node, "consumed_inputs");
    Ok(())
}

/// Selu-6 changed the defaults of `alpha` and `gamma` (to more digits): keep the old ones.
fn selu_6(cx: &mut Cx, w: &mut Work) -> Result<(), String> {
    drop_consumed_inputs(cx, w)?;
    for (name, old) in [("alpha", 1.6732_f32), ("gamma", 1.0507)] {
        if attr(&w.node, name).is_none() {
            set_attr(
                &mut w.node,
                ptq_onnx::proto::AttributeProto {
                    name: Some(name.into()),
                    r#type: Some(AttributeType::Float as i32),
                    f: Some(old),
                    ..Default::default()
                },
            );
        }
    }
    Ok(())
}

/// Moves the INTS attribute `name` into input `slot` as a 1-D int64 tensor; false if absent.
fn ints_to_input(cx: &mut Cx, w: &mut Work, name: &str, slot: usize) -> bool {
    let Some(a) = take_attr(&mut w.node, name) else { return false };
    let tensor =
        cx.constant(w, &format!("{}_ptq_{name}", base(w)), i64_tensor(vec![a.ints.len() as i64], &a.ints));
    set_input(&mut w.node, slot, &tensor);
    true
}

/// Cast-1 named the target type (`"FLOAT"`); from opset 6 `to` is the type's enum value.
fn cast_6(_: &mut Cx, w: &mut Work) -> Result<(), String> {
    let Some(a) = attr(&w.node, "to").filter(|a| a.r#type == Some(AttributeType::String as i32)) else {
        return Ok(());
    };
    const NAMES: [&str; 16] = [
        "FLOAT",
        "UINT8",
        "INT8",
        "UINT16",
        "INT16",
        "INT32",
        "INT64",
        "STRING",
        "BOOL",
        "FLOAT16",
        "DOUBLE",
        "UINT32",
        "UINT64",
        "COMPLEX64",
        "COMPLEX128",
        "BFLOAT16",
    ];
    let name = String::from_utf8_lossy(a.s()).to_ascii_uppercase();
    let code = NAMES
        .iter()
        .position(|n| *n == name)
        .ok_or_else(|| format!("its target type `{name}` is not an ONNX element type"))?;
    set_attr(&mut w.node, int_attr("to", code as i64 + 1));
    Ok(())
}

fn reshape_5(cx: &mut Cx, w: &mut Work) -> Result<(), String> {
    take_attr(&mut w.node, "consumed_inputs");
    if !ints_to_input(cx, w, "shape", 1) {
        return Err("the Reshape has no `shape` attribute".into());
    }
    Ok(())
}

/// Concat-1's `axis` defaulted to 1; from opset 4 it is required.
fn concat_4(_: &mut Cx, w: &mut Work) -> Result<(), String> {
    if attr(&w.node, "axis").is_none() {
        set_attr(&mut w.node, int_attr("axis", 1));
    }
    Ok(())
}

/// Pad-1's `paddings` became `pads` (same layout).
fn pad_2(_: &mut Cx, w: &mut Work) -> Result<(), String> {
    if let Some(mut a) = take_attr(&mut w.node, "paddings") {
        a.name = Some("pads".into());
        w.node.attribute.push(a);
    }
    Ok(())
}

/// LpPool-1's `p` was a float; from opset 2 it is an int.
fn lp_pool_2(_: &mut Cx, w: &mut Work) -> Result<(), String> {
    if let Some(a) = attr(&w.node, "p").filter(|a| a.r#type == Some(AttributeType::Float as i32)) {
        let p = a.f();
        if p.fract() != 0.0 {
            return Err(format!("its p = {p} is not a whole number, which opset 2 requires"));
        }
        set_attr(&mut w.node, int_attr("p", p as i64));
    }
    Ok(())
}

/// Before opset 7, B was broadcast to A only with `broadcast=1`, aligned at `axis` (suffix
/// matching without it). Suffix matching is what numpy broadcasting does; another alignment is
/// kept by giving a constant B trailing dimensions of 1.
fn legacy_broadcast(cx: &mut Cx, w: &mut Work) -> Result<(), String> {
    let broadcast = take_attr(&mut w.node, "broadcast").map(|a| a.i()).unwrap_or(0);
    let axis = take_attr(&mut w.node, "axis").map(|a| a.i());
    let (Some(axis), true) = (axis, broadcast != 0) else { return Ok(()) };
    let (a, b) = (input(w, 0).unwrap_or_default(), input(w, 1).unwrap_or_default());
    let value = cx.value(&b);
    let rank_b = cx.rank(&b).or(value.as_ref().map(|v| v.shape.len()));
    let (Some(rank_a), Some(rank_b)) = (cx.rank(&a), rank_b) else {
        return Err(format!(
            "its legacy broadcast at axis {axis} needs the ranks of both inputs, which the model does not declare"
        ));
    };
    let axis = if axis < 0 { axis + rank_a as i64 } else { axis };
    if axis + rank_b as i64 == rank_a as i64 {
        return Ok(());
    }
    let Some(value) = value else {
        return Err(format!(
            "its legacy broadcast at axis {axis} aligns a computed B, which ptq does not rewrite"
        ));
    };
    let trailing = rank_a as i64 - axis - rank_b as i64;
    if trailing < 0 {
        return Err(format!("its broadcast axis {axis} does not fit input ranks {rank_a} and {rank_b}"));
    }
    let dims: Vec<i64> =
        value.shape.iter().map(|&d| d as i64).chain(std::iter::repeat_n(1, trailing as usize)).collect();
    let tensor = raw_tensor(value.dtype, dims, value.data.to_vec());
    let name = cx.constant(w, &format!("{b}_ptq_aligned"), tensor);
    set_input(&mut w.node, 1, &name);
    Ok(())
}

/// Gemm-7 broadcasts C numpy-style (unidirectionally), which covers Gemm-6's `broadcast`.
fn gemm_7(_: &mut Cx, w: &mut Work) -> Result<(), String> {
    take_attr(&mut w.node, "broadcast");
    Ok(())
}

/// PRelu before opset 7 applied a slope of shape [C] per channel (axis 1); from opset 7 the slope
/// broadcasts numpy-style, so a constant per-channel slope gets trailing dimensions of 1.
fn prelu_7(cx: &mut Cx, w: &mut Work) -> Result<(), String> {
    let (x, slope) = (input(w, 0).unwrap_or_default(), input(w, 1).unwrap_or_default());
    let Some(value) = cx.value(&slope) else {
        return Err(
            "its slope is computed at run time; ptq cannot tell how it broadcast before opset 7".into()
        );
    };
    if value.len() <= 1 {
        return Ok(());
    }
    let Some(rank) = cx.rank(&x).filter(|&r| r >= 2) else {
        return Err("its input rank is not declared, which the per-channel slope needs".into());
    };
    let mut dims = vec![value.len() as i64];
    dims.resize(rank - 1, 1);
    let name =
        cx.constant(w, &format!("{slope}_ptq_aligned"), raw_tensor(value.dtype, dims, value.data.to_vec()));
    set_input(&mut w.node, 1, &name);
    Ok(())
}

fn drop_is_test(_: &mut Cx, w: &mut Work) -> Result<(), String> {
    take_attr(&mut w.node, "is_test");
    Ok(())
}

/// RNN/GRU/LSTM-7 compute Y whenever it is requested, which covers `output_sequence`.
fn rnn_7(_: &mut Cx, w: &mut Work) -> Result<(), String> {
    take_attr(&mut w.node, "output_sequence");
    Ok(())
}

/// BatchNormalization-9 dropped `spatial` (1, the default, is what remained).
fn batch_norm_9(_: &mut Cx, w: &mut Work) -> Result<(), String> {
    if take_attr(&mut w.node, "spatial").is_some_and(|a| a.i() == 0) {
        return Err("it uses spatial=0 (per-activation statistics), which opset 9 removed".into());
    }
    Ok(())
}

/// BatchNormalization-14 redefined the optional training outputs; an inference node (one
/// output) is unchanged.
fn batch_norm_14(_: &mut Cx, w: &mut Work) -> Result<(), String> {
    if w.node.output.iter().skip(1).any(|o| !o.is_empty()) {
        return Err("it has training outputs (running or saved mean/variance), which opset 14 \
                    redefined; ptq converts inference graphs only"
            .into());
    }
    Ok(())
}

/// Dropout-10 made the `mask` output bool: drop it when nothing reads it, refuse otherwise.
fn dropout_10(cx: &mut Cx, w: &mut Work) -> Result<(), String> {
    if let Some(mask) = w.node.output.get(1).filter(|m| !m.is_empty()).cloned() {
        if cx.is_read(&mask) {
            return Err(format!("its mask output `{mask}` is read, and opset 10 changed its type to bool"));
        }
        w.node.output.truncate(1);
    }
    Ok(())
}

/// Dropout-12 takes `ratio` as an input (in inference it has no effect either way).
fn dropout_12(cx: &mut Cx, w: &mut Work) -> Result<(), String> {
    if let Some(a) = take_attr(&mut w.node, "ratio") {
        let name = cx.constant(w, &format!("{}_ptq_ratio", base(w)), f32_tensor(vec![], &[a.f()]));
        set_input(&mut w.node, 1, &name);
    }
    Ok(())
}

/// Slice-10 takes starts/ends/axes as inputs.
fn slice_10(cx: &mut Cx, w: &mut Work) -> Result<(), String> {
    let has_axes = attr(&w.node, "axes").is_some();
    if !ints_to_input(cx, w, "starts", 1) || !ints_to_input(cx, w, "ends", 2) {
        return Err("the Slice lacks its `starts` or `ends` attribute".into());
    }
    if has_axes {
        ints_to_input(cx, w, "axes", 3);
    }
    Ok(())
}

/// TopK-10 takes `k` as a 1-D input.
fn top_k_10(cx: &mut Cx, w: &mut Work) -> Result<(), String> {
    let Some(k) = take_attr(&mut w.node, "k") else { return Err("the TopK has no `k` attribute".into()) };
    let name = cx.constant(w, &format!("{}_ptq_k", base(w)), i64_tensor(vec![1], &[k.i()]));
    set_input(&mut w.node, 1, &name);
    Ok(())
}

/// The element type of input 0, required for scalars that must share it.
fn input_float_type(cx: &Cx, w: &Work) -> Result<DataType, String> {
    let x = input(w, 0).unwrap_or_default();
    match cx.dtype(&x) {
        Some(d @ (DataType::Float | DataType::Double | DataType::Float16 | DataType::Bfloat16)) => Ok(d),
        Some(d) => Err(format!("its input `{x}` is {d}, not a floating-point type")),
        None => Err(format!(
            "the element type of its input `{x}` is not declared, and the new scalar inputs must have it"
        )),
    }
}

/// Clip-11 takes `min`/`max` as scalar inputs of the data's type.
fn clip_11(cx: &mut Cx, w: &mut Work) -> Result<(), String> {
    let (min, max) = (take_attr(&mut w.node, "min"), take_attr(&mut w.node, "max"));
    if min.is_none() && max.is_none() {
        return Ok(());
    }
    let dtype = input_float_type(cx, w)?;
    for (slot, bound, what) in [(1, min, "min"), (2, max, "max")] {
        if let Some(a) = bound {
            let t = float_scalar(dtype, a.f()).expect("a float type");
            let name = cx.constant(w, &format!("{}_ptq_{what}", base(w)), t);
            set_input(&mut w.node, slot, &name);
        }
    }
    Ok(())
}

/// Pad-11 takes `pads` (int64) and the constant value (a scalar of the data's type) as inputs.
fn pad_11(cx: &mut Cx, w: &mut Work) -> Result<(), String> {
    let value = take_attr(&mut w.node, "value").map(|a| a.f()).unwrap_or(0.0);
    if !ints_to_input(cx, w, "pads", 1) {
        return Err("the Pad has no `pads` attribute".into());
    }
    let constant_mode = attr_s(&w.node, "mode").is_none_or(|m| m == "constant");
    if constant_mode && value != 0.0 {
        let dtype = input_float_type(cx, w)?;
        let t = float_scalar(dtype, value).expect("a float type");
        let name = cx.constant(w, &format!("{}_ptq_value", base(w)), t);
        set_input(&mut w.node, 2, &name);
    }
    Ok(())
}

/// Upsample-7 takes one `scales` list instead of `height_scale`/`width_scale` (of NCHW).
fn upsample_7(_: &mut Cx, w: &mut Work) -> Result<(), String> {
    let (h, wd) = (take_attr(&mut w.node, "height_scale"), take_attr(&mut w.node, "width_scale"));
    if let (Some(h), Some(wd)) = (h, wd) {
        set_attr(
            &mut w.node,
            ptq_onnx::proto::AttributeProto {
                name: Some("scales".into()),
                r#type: Some(AttributeType::Floats as i32),
                floats: vec![1.0, 1.0, h.f(), wd.f()],
                ..Default::default()
            },
        );
    }
    if attr_s(&w.node, "mode").as_deref() == Some("bilinear") {
        set_attr(&mut w.node, string_attr("mode", "linear"));
    }
    Ok(())
}

/// Upsample-9 takes `scales` as an input.
fn upsample_9(cx: &mut Cx, w: &mut Work) -> Result<(), String> {
    if let Some(a) = take_attr(&mut w.node, "scales") {
        let name = cx.constant(
            w,
            &format!("{}_ptq_scales", base(w)),
            f32_tensor(vec![a.floats.len() as i64], &a.floats),
        );
        set_input(&mut w.node, 1, &name);
    }
    Ok(())
}

/// Upsample (deprecated at 10) becomes a Resize-10, which is Upsample under a new name.
fn upsample_to_resize(cx: &mut Cx, w: &mut Work) -> Result<(), String> {
    upsample_7(cx, w)?;
    upsample_9(cx, w)?;
    let mode = attr_s(&w.node, "mode").unwrap_or_else(|| "nearest".into());
    w.node.op_type = Some("Resize".into());
    w.node.attribute = vec![string_attr("mode", &mode)];
    w.node.input.truncate(2);
    w.from_upsample = true;
    Ok(())
}

/// Scatter (deprecated at 11) is ScatterElements-11 under its old name.
fn scatter_to_scatter_elements(_: &mut Cx, w: &mut Work) -> Result<(), String> {
    w.node.op_type = Some("ScatterElements".into());
    Ok(())
}

/// Resize-10 (inputs X, scales) samples at `x_out / scale` (asymmetric) and, for nearest, rounds
/// down when upsampling and up when downsampling (onnxruntime). Resize-11 says so explicitly and
/// takes an `roi` input before `scales`.
fn resize_11(cx: &mut Cx, w: &mut Work) -> Result<(), String> {
    let scales = input(w, 1).ok_or("the Resize has no scales input")?;
    let mode = attr_s(&w.node, "mode").unwrap_or_else(|| "nearest".into());
    if mode == "nearest" {
        let rounding = if w.from_upsample {
            "floor"
        } else {
            let Some(values) = cx.value(&scales).and_then(|t| t.to_f32()) else {
                return Err("its nearest rounding depends on whether it up- or downsamples, and its \
                            scales are computed at run time"
                    .into());
            };
            match (values.iter().all(|&s| s >= 1.0), values.iter().all(|&s| s <= 1.0)) {
                (true, _) => "floor",
                (_, true) => "ceil",
                _ => {
                    return Err("it upsamples some axes and downsamples others, which rounds \
                                 differently per axis; no Resize-11 rounding mode matches"
                        .into());
                }
            }
        };
        set_attr(&mut w.node, string_attr("nearest_mode", rounding));
    }
    set_attr(&mut w.node, string_attr("coordinate_transformation_mode", "asymmetric"));
    let roi = if cx.target >= 13 {
        String::new()
    } else {
        cx.constant(w, &format!("{}_ptq_roi", base(w)), f32_tensor(vec![0], &[]))
    };
    w.node.input.insert(1, roi);
    Ok(())
}

/// Resize-13 removed `tf_half_pixel_for_nn` (`x_in = (x_out + 0.5) / scale`). With half_pixel
/// (`x_in - 0.5`), floor(v) is round_prefer_ceil(v - 0.5) and round_prefer_floor(v) is
/// ceil(v - 0.5).
fn resize_13(_: &mut Cx, w: &mut Work) -> Result<(), String> {
    if attr_s(&w.node, "coordinate_transformation_mode").as_deref() != Some("tf_half_pixel_for_nn") {
        return Ok(());
    }
    let nearest = attr_s(&w.node, "nearest_mode").unwrap_or_else(|| "round_prefer_floor".into());
    let equivalent = match nearest.as_str() {
        "floor" => "round_prefer_ceil",
        "round_prefer_floor" => "ceil",
        other => {
            return Err(format!(
                "it uses tf_half_pixel_for_nn with nearest_mode {other}, which opset 13 cannot express"
            ));
        }
    };
    set_attr(&mut w.node, string_attr("coordinate_transformation_mode", "half_pixel"));
    set_attr(&mut w.node, string_attr("nearest_mode", equivalent));
    Ok(())
}

/// Squeeze/Unsqueeze/ReduceSum at 13 and the other reductions at 18 take `axes` as an input.
/// An absent or empty `axes` keeps meaning "all axes" (reductions) / "all 1-dims" (Squeeze).
fn axes_to_input(cx: &mut Cx, w: &mut Work) -> Result<(), String> {
    let empty = attr(&w.node, "axes").is_some_and(|a| a.ints.is_empty());
    if empty && w.node.op_type() != "Unsqueeze" {
        take_attr(&mut w.node, "axes");
    } else {
        ints_to_input(cx, w, "axes", 1);
    }
    Ok(())
}

/// Split-13 takes `split` as an input.
fn split_13(cx: &mut Cx, w: &mut Work) -> Result<(), String> {
    ints_to_input(cx, w, "split", 1);
    Ok(())
}

/// Split-18 needs `num_outputs` when there is no `split` input.
fn split_18(_: &mut Cx, w: &mut Work) -> Result<(), String> {
    if input(w, 1).is_none() && attr(&w.node, "num_outputs").is_none() {
        let n = w.node.output.len() as i64;
        set_attr(&mut w.node, int_attr("num_outputs", n));
    }
    Ok(())
}

/// Before opset 13, Softmax/LogSoftmax/Hardmax coerced the input to 2-D at `axis` (default 1)
/// and normalised over everything from `axis` on; from 13 they normalise over one axis (default
/// -1). On the last axis both agree; elsewhere Flatten(axis) gives exactly the old 2-D view, and a
/// Reshape to Shape(input) restores the shape.
fn softmax_13(cx: &mut Cx, w: &mut Work) -> Result<(), String> {
    let axis = attr_i(&w.node, "axis").unwrap_or(1);
    let x = input(w, 0).ok_or("the node has no input")?;
    let y = w.node.output.first().cloned().ok_or("the node has no output")?;
    let rank = cx.rank(&x).or_else(|| cx.rank(&y));
    let last = axis == -1 || rank.is_some_and(|r| axis == r as i64 - 1);
    if last {
        set_attr(&mut w.node, int_attr("axis", axis));
        return Ok(());
    }
    let (flat, shape, y2) = (
        cx.fresh(&format!("{y}_ptq_2d_in")),
        cx.fresh(&format!("{y}_ptq_shape")),
        cx.fresh(&format!("{y}_ptq_2d")),
    );
    let (flatten_name, shape_name, reshape_name) = (
        cx.fresh(&format!("{y}_ptq_flatten")),
        cx.fresh(&format!("{y}_ptq_shape_of")),
        cx.fresh(&format!("{y}_ptq_reshape")),
    );
    w.before.push(node("Flatten", flatten_name, &[&x], &flat, vec![int_attr("axis", axis)]));
    w.before.push(node("Shape", shape_name, &[&x], &shape, vec![]));
    w.node.input[0] = flat;
    w.node.output[0] = y2.clone();
    set_attr(&mut w.node, int_attr("axis", 1));
    w.after.push(node("Reshape", reshape_name, &[&y2, &shape], &y, vec![]));
    Ok(())
}

/// RoiAlign-16 defaults to half_pixel; before, it sampled as `output_half_pixel`.
fn roi_align_16(_: &mut Cx, w: &mut Work) -> Result<(), String> {
    if attr(&w.node, "coordinate_transformation_mode").is_none() {
        set_attr(&mut w.node, string_attr("coordinate_transformation_mode", "output_half_pixel"));
    }
    Ok(())
}

/// GridSample-20 renamed the modes bilinear → linear and bicubic → cubic.
fn grid_sample_20(_: &mut Cx, w: &mut Work) -> Result<(), String> {
    match attr_s(&w.node, "mode").as_deref() {
        Some("bilinear") => set_attr(&mut w.node, string_attr("mode", "linear")),
        Some("bicubic") => set_attr(&mut w.node, string_attr("mode", "cubic")),
        _ => {}
    }
    Ok(())
}

/// DFT-20 takes `axis` as its third input, and its default moved from 1 to -2.
fn dft_20(cx: &mut Cx, w: &mut Work) -> Result<(), String> {
    let axis = take_attr(&mut w.node, "axis").map(|a| a.i()).unwrap_or(1);
    let name = cx.constant(w, &format!("{}_ptq_axis", base(w)), i64_tensor(vec![], &[axis]));
    set_input(&mut w.node, 2, &name);
    Ok(())
}

/// GroupNormalization-21 takes scale and bias per channel instead of per group: constant ones are
/// repeated C / num_groups times.
fn group_norm_21(cx: &mut Cx, w: &mut Work) -> Result<(), String> {
    let x = input(w, 0).unwrap_or_default();
    let groups = attr_i(&w.node, "num_groups").ok_or("it has no num_groups")?;
    let channels = cx
        .graph
        .tensor(&x)
        .and_then(|t| t.shape.as_ref()?.get(1)?.fixed())
        .ok_or("its channel count is not declared, which the per-channel scale and bias need")?;
    if groups <= 0 || channels as i64 % groups != 0 {
        return Err(format!("{channels} channels do not split into {groups} groups"));
    }
    let per = channels / groups as usize;
    for slot in [1, 2] {
        let name = input(w, slot).unwrap_or_default();
        let value = cx.value(&name).ok_or("its scale and bias are computed at run time")?;
        if value.len() == channels {
            continue;
        }
        if value.len() != groups as usize {
            return Err(format!("`{name}` has {} values for {groups} groups", value.len()));
        }
        let size = value.data.len() / value.len().max(1);
        let raw: Vec<u8> = value.data.chunks(size).flat_map(|c| c.repeat(per)).collect();
        let t = raw_tensor(value.dtype, vec![channels as i64], raw);
        let new = cx.constant(w, &format!("{name}_ptq_per_channel"), t);
        set_input(&mut w.node, slot, &new);
    }
    Ok(())
}

/// Cast-24 saturates ±Inf to ±max for the float8 FNUZ types instead of producing NaN.
fn cast_24(_: &mut Cx, w: &mut Work) -> Result<(), String> {
    match attr_i(&w.node, "to") {
        Some(18 | 20) => {
            Err("it casts to a float8 FNUZ type, whose handling of ±Inf opset 24 changed".into())
        }
        _ => Ok(()),
    }
}

/// Erf at 13 and ReduceLogSum/ReduceLogSumExp at 28 dropped integer inputs.
fn float_input_only(cx: &mut Cx, w: &mut Work) -> Result<(), String> {
    let x = input(w, 0).unwrap_or_default();
    match cx.dtype(&x) {
        Some(d) if !d.is_float() => Err(format!("its input is {d}, which the new version no longer accepts")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opset::history::{HISTORY, versions};

    /// Every rule names a real (operator, version) change, and no change has two rules.
    #[test]
    fn rules_name_real_changes_once() {
        for (op, vs) in SAME {
            let h = versions(op).unwrap_or_else(|| panic!("{op}"));
            for v in *vs {
                assert!(h.contains(v) && *v != h[0], "{op} {v}");
                assert!(!REWRITES.iter().any(|(o, rv, _)| o == op && rv == v), "{op} {v} twice");
            }
        }
        for (op, v, _) in REWRITES {
            let h = versions(op).unwrap_or_else(|| panic!("{op}"));
            assert!(h.contains(v) && *v != h[0], "{op} {v}");
        }
    }

    /// The changes ptq refuses, listed so that a new one cannot slip in unnoticed.
    #[test]
    fn only_these_changes_are_unknown() {
        let mut unknown = Vec::new();
        for (op, vs) in HISTORY {
            for &v in &vs[1..] {
                if rule(op, v).is_none() && replacement(op).is_none() {
                    unknown.push(format!("{op}-{v}"));
                }
            }
        }
        assert_eq!(
            unknown,
            ["Attention-24", "Attention-25", "GRU-3", "Scan-9", "Split-2", "Tile-6"]
                .map(String::from)
                .to_vec()
        );
    }
}
