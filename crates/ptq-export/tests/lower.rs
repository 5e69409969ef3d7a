//! `lower_qdq` on small hand-built QDQ models: which nodes and initializers the lowered model
//! has, and the values it holds (computed by hand).

use std::path::Path;

use bytes::Bytes;
use ptq_export::{FAKE_QUANT_DOMAIN, Lowered, has_qdq, lower_qdq};
use ptq_ir::{DataType, Graph, int_attribute};
use ptq_onnx::build::{FLOAT, constant_node, f32_tensor, node, raw_tensor, tensor_value, with_attributes};
use ptq_onnx::proto::ModelProto;

mod common;
use common::*;

fn lower(m: &ModelProto) -> (Lowered, Graph) {
    let g = Graph::new(m, Path::new(".")).unwrap();
    assert!(has_qdq(&g));
    let lowered = lower_qdq(m, &g).unwrap();
    let view = Graph::new(&lowered.model, Path::new(".")).unwrap();
    (lowered, view)
}

/// The FakeQuant node writing `output`: (inputs, qmin, qmax, axis, scale, zero point).
struct Fq {
    name: String,
    inputs: Vec<String>,
    qmin: i64,
    qmax: i64,
    axis: i64,
    scale: Vec<f32>,
    zero_point: Vec<f32>,
}

fn fake_quant(m: &ModelProto, g: &Graph, output: &str) -> Fq {
    let n = g.producer(output).unwrap_or_else(|| panic!("nothing writes {output}"));
    assert_eq!((n.op_type.as_str(), n.domain.as_str()), ("FakeQuant", FAKE_QUANT_DOMAIN));
    let proto = &m.graph.as_ref().unwrap().node[n.index];
    let attr = |k: &str| proto.attribute.iter().find(|a| a.name() == k).map(|a| a.i()).unwrap();
    Fq {
        name: n.name.clone(),
        inputs: n.inputs.clone(),
        qmin: attr("qmin"),
        qmax: attr("qmax"),
        axis: attr("axis"),
        scale: floats(g, &n.inputs[1]).1,
        zero_point: floats(g, &n.inputs[2]).1,
    }
}

fn ptq_opset(m: &ModelProto) -> Option<i64> {
    m.opset_import.iter().find(|o| o.domain() == FAKE_QUANT_DOMAIN).map(|o| o.version())
}

// ---- tests -----------------------------------------------------------------------------------

#[test]
fn uint8_pair_on_an_activation_becomes_one_fake_quant() {
    let m = model(
        13,
        vec![
            node("Relu", "relu", &["x"], &["r"]),
            q("r_q", &["r", "r_scale", "r_zp"], "r_quant"),
            dq("r_dq", &["r_quant", "r_scale", "r_zp"], "r_deq", None),
            node("Neg", "neg", &["r_deq"], &["out"]),
        ],
        vec![tensor_value("x", FLOAT, &[1, 4])],
        &["out"],
        vec![f32_tensor("r_scale", &[], &[0.02]), u8s("r_zp", &[], &[3])],
    );
    let (l, g) = lower(&m);
    assert_eq!((l.pairs, l.constants), (1, 0));
    assert_eq!(ops(&g), ["Relu", "FakeQuant", "Neg"]);
    let fq = fake_quant(&l.model, &g, "r_deq");
    assert_eq!(fq.name, "r_dq", "the FakeQuant takes the DequantizeLinear's name");
    assert_eq!(fq.inputs[0], "r");
    assert_eq!((fq.qmin, fq.qmax, fq.axis), (0, 255, 1));
    assert_eq!((fq.scale, fq.zero_point), (vec![0.02], vec![3.0]));
    // The pair is reported: what it reads, what its readers see, its grid.
    let [pair] = &l.fake_quants[..] else { panic!("one pair: {:?}", l.fake_quants) };
    assert_eq!((pair.input.as_str(), pair.output.as_str(), pair.node.as_str()), ("r", "r_deq", "r_q"));
    let e = &pair.encoding;
    assert_eq!((e.bitwidth, e.signed, e.axis), (8, false, None));
    assert_eq!((e.scales.clone(), e.zero_points.clone()), (vec![0.02], vec![3]));
    // The Q/DQ parameters nobody reads any more are gone; the new ones are named after the tensor.
    assert_eq!(initializers(&l.model), ["r_deq_ptq_scale", "r_deq_ptq_zero_point"]);
    assert_eq!(ptq_opset(&l.model), Some(1));
    assert!(!has_qdq(&g));
}

#[test]
fn per_channel_int8_weight_becomes_its_float_values() {
    // W (2×3 int8, per output channel on axis 0) → DequantizeLinear → MatMul's B (transposed use
    // does not matter here: only the constant is checked).
    let m = model(
        13,
        vec![
            dq("w_dq", &["w_q", "w_scale", "w_zp"], "w", Some(0)),
            node("MatMul", "mm", &["x", "w"], &["y"]),
        ],
        vec![tensor_value("x", FLOAT, &[2, 2])],
        &["y"],
        vec![
            i8s("w_q", &[2, 3], &[-128, 0, 127, 5, -3, 1]),
            f32_tensor("w_scale", &[2], &[0.5, 0.25]),
            i8s("w_zp", &[2], &[0, 1]),
        ],
    );
    let (l, g) = lower(&m);
    assert_eq!((l.pairs, l.constants), (0, 1));
    assert_eq!(ops(&g), ["MatMul"]);
    assert_eq!(initializers(&l.model), ["w"]);
    let (shape, values) = floats(&g, "w");
    assert_eq!(shape, [2, 3]);
    assert_eq!(values, [-64.0, 0.0, 63.5, 1.0, -1.0, 0.0]);
    assert_eq!(ptq_opset(&l.model), None, "no FakeQuant, no ai.ptq import");
}

#[test]
fn packed_int4_weight_per_channel_with_a_negative_axis() {
    let m = model(
        21,
        vec![
            dq("w_dq", &["w_q", "w_scale", "w_zp"], "w", Some(-2)),
            node("MatMul", "mm", &["w", "x"], &["y"]),
        ],
        vec![tensor_value("x", FLOAT, &[3, 2])],
        &["y"],
        vec![
            i4s("w_q", &[2, 3], &[-8, 7, -1, 3, 0, -2]),
            f32_tensor("w_scale", &[2], &[0.1, 2.0]),
            i4s("w_zp", &[2], &[0, -1]),
        ],
    );
    let (l, g) = lower(&m);
    assert_eq!((l.pairs, l.constants), (0, 1));
    assert_eq!(initializers(&l.model), ["w"]);
    let (shape, values) = floats(&g, "w");
    assert_eq!(shape, [2, 3]);
    // (q − zp) · scale, in f32: channel 0 has zp 0, scale 0.1; channel 1 zp −1, scale 2.
    let expected = [-8.0 * 0.1f32, 7.0 * 0.1, -0.1, 4.0 * 2.0, 1.0 * 2.0, -2.0];
    assert_eq!(values, expected);
}

#[test]
fn uint4_values_are_not_sign_extended() {
    let packed = raw_tensor("w_q", DataType::Uint4.to_onnx(), &[3], vec![0xf8, 0x01]); // 8, 15, 1
    let m = model(
        21,
        vec![dq("w_dq", &["w_q", "w_scale"], "w", None), node("Add", "add", &["x", "w"], &["y"])],
        vec![tensor_value("x", FLOAT, &[3])],
        &["y"],
        vec![packed, f32_tensor("w_scale", &[], &[0.5])],
    );
    let (l, g) = lower(&m);
    assert_eq!(l.constants, 1);
    assert_eq!(floats(&g, "w").1, [4.0, 7.5, 0.5]);
}

#[test]
fn int32_bias_per_channel_without_zero_point() {
    let m = model(
        13,
        vec![dq("b_dq", &["b_q", "b_scale"], "b", Some(0)), node("Add", "add", &["x", "b"], &["y"])],
        vec![tensor_value("x", FLOAT, &[1, 3])],
        &["y"],
        vec![
            i32s("b_q", &[3], &[1000, -70000, 2_000_000_000]),
            f32_tensor("b_scale", &[3], &[0.001, 0.5, 2.0]),
        ],
    );
    let (l, g) = lower(&m);
    assert_eq!((l.pairs, l.constants), (0, 1));
    assert_eq!(initializers(&l.model), ["b"]);
    let (shape, values) = floats(&g, "b");
    assert_eq!(shape, [3]);
    assert_eq!(values, [1000.0 * 0.001f32, -35000.0, 2_000_000_000f32 * 2.0]);
}

#[test]
fn weight_in_a_constant_node_and_a_shared_integer_constant() {
    // An int8 weight held by a Constant node is read by two DequantizeLinear nodes: both become
    // float initializers, and the Constant node goes.
    let constant = constant_node("wc", "w_q", i8s("", &[2], &[-2, 4]));
    let m = model(
        13,
        vec![
            constant,
            dq("dq1", &["w_q", "s1"], "w1", None),
            dq("dq2", &["w_q", "s2"], "w2", None),
            node("Add", "a", &["x", "w1"], &["t"]),
            node("Mul", "b", &["t", "w2"], &["y"]),
        ],
        vec![tensor_value("x", FLOAT, &[2])],
        &["y"],
        vec![f32_tensor("s1", &[], &[0.5]), f32_tensor("s2", &[], &[0.25])],
    );
    let (l, g) = lower(&m);
    assert_eq!(l.constants, 2);
    assert_eq!(ops(&g), ["Add", "Mul"]);
    assert_eq!(initializers(&l.model), ["w1", "w2"]);
    assert_eq!(floats(&g, "w1").1, [-1.0, 2.0]);
    assert_eq!(floats(&g, "w2").1, [-0.5, 1.0]);
}

#[test]
fn quantize_without_zero_point_is_uint8_and_output_dtype_is_honoured() {
    let m = model(
        21,
        vec![
            q("qa", &["x", "s"], "a_q"),
            dq("dqa", &["a_q", "s"], "a_deq", None),
            with_attributes(
                q("qb", &["x", "s"], "b_q"),
                [int_attribute("output_dtype", DataType::Int16.to_onnx() as i64)],
            ),
            dq("dqb", &["b_q", "s"], "b_deq", None),
        ],
        vec![tensor_value("x", FLOAT, &[1, 4])],
        &["a_deq", "b_deq"],
        vec![f32_tensor("s", &[], &[0.125])],
    );
    let (l, g) = lower(&m);
    assert_eq!(l.pairs, 2);
    assert_eq!(ops(&g), ["FakeQuant", "FakeQuant"]);
    let a = fake_quant(&l.model, &g, "a_deq");
    assert_eq!((a.qmin, a.qmax, a.scale, a.zero_point), (0, 255, vec![0.125], vec![0.0]));
    let b = fake_quant(&l.model, &g, "b_deq");
    assert_eq!((b.qmin, b.qmax), (-32768, 32767));
    assert_eq!(b.inputs[0], "x");
    // The shared scale initializer is no longer read by anything.
    assert!(!initializers(&l.model).contains(&"s".to_owned()));
}

#[test]
fn quantize_feeding_two_dequantize_nodes() {
    let m = model(
        13,
        vec![
            with_attributes(q("q", &["x", "s", "zp"], "xq"), [int_attribute("axis", -2)]),
            dq("dq1", &["xq", "s", "zp"], "d1", Some(1)),
            dq("dq2", &["xq", "s2", "zp2"], "d2", Some(-2)),
            node("Add", "add", &["d1", "d2"], &["y"]),
        ],
        vec![tensor_value("x", FLOAT, &[1, 2, 2])],
        &["y"],
        vec![
            f32_tensor("s", &[2], &[0.5, 0.25]),
            i8s("zp", &[2], &[-1, 2]),
            // Same values under other names: still the same grid.
            f32_tensor("s2", &[2], &[0.5, 0.25]),
            i8s("zp2", &[2], &[-1, 2]),
        ],
    );
    let (l, g) = lower(&m);
    assert_eq!(l.pairs, 2);
    assert_eq!(ops(&g), ["FakeQuant", "FakeQuant", "Add"]);
    for out in ["d1", "d2"] {
        let fq = fake_quant(&l.model, &g, out);
        assert_eq!(fq.inputs[0], "x");
        // -2 normalised against x's declared rank 3.
        assert_eq!((fq.qmin, fq.qmax, fq.axis), (-128, 127, 1));
        assert_eq!((fq.scale, fq.zero_point), (vec![0.5, 0.25], vec![-1.0, 2.0]));
    }
    assert_eq!(
        initializers(&l.model),
        ["d1_ptq_scale", "d1_ptq_zero_point", "d2_ptq_scale", "d2_ptq_zero_point"]
    );
}

#[test]
fn quantize_with_other_readers_is_kept_for_them() {
    // xq is also read by a Cast, and by a DequantizeLinear with another scale: both keep Q.
    let m = model(
        13,
        vec![
            q("q", &["x", "s", "zp"], "xq"),
            dq("dq", &["xq", "s", "zp"], "d", None),
            cast("cast", "xq", "c", DataType::Float),
            dq("dq_other", &["xq", "s_other", "zp"], "e", None),
        ],
        vec![tensor_value("x", FLOAT, &[4])],
        &["d", "c", "e"],
        vec![f32_tensor("s", &[], &[0.1]), u8s("zp", &[], &[128]), f32_tensor("s_other", &[], &[0.2])],
    );
    let (l, g) = lower(&m);
    assert_eq!(l.pairs, 1);
    assert_eq!(ops(&g), ["QuantizeLinear", "FakeQuant", "Cast", "DequantizeLinear"]);
    assert_eq!(g.producer("d").unwrap().name, "dq");
    assert_eq!(g.producer("e").unwrap().op_type, "DequantizeLinear");
    // Q still reads s and zp.
    let names = initializers(&l.model);
    assert!(names.contains(&"s".to_owned()) && names.contains(&"zp".to_owned()), "{names:?}");
}

#[test]
fn runtime_dequantize_and_lone_quantize_are_left_alone() {
    let m = model(
        13,
        vec![
            q("q", &["x", "s", "zp"], "xq"),
            cast("cast", "x", "xi", DataType::Uint8),
            dq("dq", &["xi", "s", "zp"], "y", None),
        ],
        vec![tensor_value("x", FLOAT, &[4])],
        &["xq", "y"],
        vec![f32_tensor("s", &[], &[0.1]), u8s("zp", &[], &[128])],
    );
    let g = Graph::new(&m, Path::new(".")).unwrap();
    let l = lower_qdq(&m, &g).unwrap();
    assert_eq!((l.pairs, l.constants), (0, 0));
    assert_eq!(l.model, m, "nothing to lower: the model is unchanged");
}

#[test]
fn blocked_quantization_is_refused_naming_the_node() {
    let m = blocked_pair("zp");
    let g = Graph::new(&m, Path::new(".")).unwrap();
    let err = lower_qdq(&m, &g).err().expect("block_size > 0 is refused").to_string();
    assert!(err.contains("blocked_q") && err.contains("block_size 2"), "{err}");
}

#[test]
fn lowered_model_survives_encoding_and_decoding() {
    let m = model(
        13,
        vec![q("q", &["x", "s", "zp"], "xq"), dq("dq", &["xq", "s", "zp"], "y", None)],
        vec![tensor_value("x", FLOAT, &[1, 4])],
        &["y"],
        vec![f32_tensor("s", &[], &[0.1]), u8s("zp", &[], &[7])],
    );
    let (l, _) = lower(&m);
    let bytes = ptq_onnx::encode(&l.model);
    let back = ptq_onnx::decode(Bytes::from(bytes), Path::new("lowered.onnx")).unwrap();
    assert_eq!(back, l.model);
    let g = Graph::new(&back, Path::new(".")).unwrap();
    // The graph output keeps its name, now written by the FakeQuant.
    assert_eq!(fake_quant(&back, &g, "y").inputs[0], "x");
}
