//! `read_qat`: ptq's own QDQ models read back into the float model and the encodings they were
//! written from; onnxruntime-style QDQ models; float-16 Cast pairs; what is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ptq_export::{Qat, qdq_model, read_qat};
use ptq_ir::{DataType, Graph, int_attribute};
use ptq_onnx::build::{FLOAT, f32_tensor, node, tensor_value, with_attributes};
use ptq_onnx::proto::{ModelProto, NodeProto};
use ptq_quant::rules::{RuleOptions, layout};
use ptq_quant::{
    Config, Encoding, Encodings, FloatReason, FloatTensor, Given, GivenEncoding, GivenEncodings, Kind,
    MinMax, Mode, Origin, QuantSpec, Schema, Section, TensorEncoding, assign,
};

mod common;
use common::*;

// ---- helpers ---------------------------------------------------------------------------------

fn read(m: &ModelProto) -> (Qat, Graph) {
    let g = Graph::new(m, Path::new(".")).unwrap();
    let qat = read_qat(m, &g).unwrap();
    let view = Graph::new(&qat.model, Path::new(".")).expect("the result is a valid graph");
    assert!(
        view.nodes().all(|n| !n.op_type.contains("QuantizeLinear")),
        "no QuantizeLinear/DequantizeLinear left: {:?}",
        ops(&view)
    );
    (qat, view)
}

fn refusal(m: &ModelProto) -> String {
    let g = Graph::new(m, Path::new(".")).unwrap();
    read_qat(m, &g).expect_err("the model is refused").to_string()
}

/// (name, op, inputs, outputs) of every node, in file order.
fn node_list(m: &ModelProto) -> Vec<(String, String, Vec<String>, Vec<String>)> {
    m.graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .map(|n| (n.name().to_owned(), n.op_type().to_owned(), n.input.clone(), n.output.clone()))
        .collect()
}

fn section(kind: Kind) -> Section {
    match kind {
        Kind::Param => Section::Param,
        Kind::Activation => Section::Activation,
    }
}

/// What `read_qat` should give back for encodings ptq wrote: the same, from QAT, and float 16
/// where ptq wrote a Cast pair.
fn expected(encodings: &Encodings) -> GivenEncodings {
    let fixed = encodings.tensors.iter().map(|(name, t)| {
        let given = Given::Fixed(Encoding { origin: Origin::Qat, ..t.encoding.clone() });
        (name.clone(), GivenEncoding { section: section(t.kind), given })
    });
    let half = encodings.floats.iter().filter(|(_, f)| f.bitwidth == 16).map(|(name, f)| {
        (name.clone(), GivenEncoding { section: section(f.kind), given: Given::Float { bitwidth: 16 } })
    });
    fixed.chain(half).collect()
}

fn float16(kind: Kind) -> FloatTensor {
    FloatTensor { kind, bitwidth: 16, reason: FloatReason::Given }
}

fn fixed(given: &GivenEncodings, name: &str) -> (Section, Encoding) {
    match given.get(name) {
        Some(GivenEncoding { section, given: Given::Fixed(e) }) => (*section, e.clone()),
        other => panic!("{name}: {other:?}"),
    }
}

/// What a runtime dequantizes a constant baked with `e` to (C order, channel on `e.axis`).
fn baked(values: &[f32], shape: &[usize], e: &Encoding) -> Vec<f32> {
    let channel = |i: usize| match e.axis {
        Some(a) if e.scales.len() > 1 => (i / shape[a + 1..].iter().product::<usize>().max(1)) % shape[a],
        _ => 0,
    };
    values.iter().enumerate().map(|(i, &x)| e.dequantize(channel(i), e.quantize(channel(i), x))).collect()
}

/// Checks `read_qat(qdq_model(float, encodings))` against `float` and `encodings`.
fn round_trip(float: &ModelProto, dir: &Path, encodings: &Encodings) -> Qat {
    let g = Graph::new(float, dir).unwrap();
    let qdq = qdq_model(float, &g, encodings).unwrap();
    let qg = Graph::new(&qdq, dir).unwrap();
    let qat = read_qat(&qdq, &qg).unwrap();
    assert_eq!(node_list(&qat.model), node_list(float), "the float model's nodes, names and wiring");
    let want = expected(encodings);
    for (name, e) in &want {
        assert_eq!(qat.given.get(name), Some(e), "{name}");
    }
    assert_eq!(qat.given.len(), want.len(), "{:?}", qat.given.keys().collect::<Vec<_>>());
    let activations = encodings.tensors.values().filter(|t| t.kind == Kind::Activation).count();
    assert_eq!(qat.pairs, activations);
    assert_eq!(initializers(&qat.model), initializers(float), "no scale or zero point left");
    assert_eq!(qat.model.graph.as_ref().unwrap().output, float.graph.as_ref().unwrap().output);
    assert_eq!(qat.model.graph.as_ref().unwrap().input, float.graph.as_ref().unwrap().input);
    // The weights hold what a runtime dequantizes from the integers ptq baked.
    let back = Graph::new(&qat.model, dir).unwrap();
    for (name, t) in encodings.tensors.iter().filter(|(_, t)| t.kind == Kind::Param) {
        let orig = g.constant(name).unwrap();
        let now = back.constant(name).unwrap();
        assert_eq!((now.dtype, &now.shape), (DataType::Float, &orig.shape), "{name}");
        assert_eq!(now.to_f32().unwrap(), baked(&orig.to_f32().unwrap(), &orig.shape, &t.encoding), "{name}");
    }
    qat
}

fn act(name: &str, e: Encoding) -> (String, TensorEncoding) {
    (name.to_owned(), TensorEncoding { kind: Kind::Activation, encoding: e })
}

fn param(name: &str, e: Encoding) -> (String, TensorEncoding) {
    (name.to_owned(), TensorEncoding { kind: Kind::Param, encoding: e })
}

fn asym(bits: u8, min: f64, max: f64) -> Encoding {
    Encoding::from_range(min, max, &QuantSpec::new(bits, Schema::Asymmetric), Origin::Calibrated)
}

fn sym(bits: u8, min: f64, max: f64) -> Encoding {
    Encoding::from_range(min, max, &QuantSpec::new(bits, Schema::Symmetric), Origin::Calibrated)
}

fn per_channel(bits: u8, ranges: &[(f64, f64)], axis: usize) -> Encoding {
    Encoding::from_ranges(ranges, axis, &QuantSpec::new(bits, Schema::Symmetric), Origin::Calibrated)
}

/// An int32 bias at `scales`, per channel on axis 0 (or per tensor), as ptq derives it.
fn bias(scales: &[f32], per_channel: bool) -> Encoding {
    Encoding::int32_bias(scales.to_vec(), per_channel)
}

fn ramp(n: usize, step: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 - n as f32 / 2.0) * step).collect()
}

// ---- ptq's own QDQ models --------------------------------------------------------------------

/// x → conv1 (per-channel weight, int32 bias) → c → relu → r → conv2 (per-tensor weight) → o,
/// with r and o graph outputs.
fn two_convs(opset: i64, c1: usize) -> ModelProto {
    let c1i = c1 as i64;
    model(
        opset,
        vec![
            node("Conv", "conv1", &["x", "w1", "b1"], &["c"]),
            node("Relu", "relu", &["c"], &["r"]),
            node("Conv", "conv2", &["r", "w2"], &["o"]),
        ],
        vec![tensor_value("x", FLOAT, &[1, 2, 4, 4])],
        &["r", "o"],
        vec![
            f32_tensor("w1", &[c1i, 2, 1, 1], &ramp(c1 * 2, 0.13)),
            f32_tensor("b1", &[c1i], &ramp(c1, 0.05)),
            f32_tensor("w2", &[3, c1i, 1, 1], &ramp(3 * c1, 0.07)),
        ],
    )
}

#[test]
fn ptq_qdq_model_reads_back_as_the_float_model_and_its_encodings() {
    let float = two_convs(13, 3);
    let w1 = per_channel(8, &[(-0.39, 0.2), (-0.1, 0.26), (-0.5, 0.5)], 0);
    let x = asym(8, -1.8, 0.5);
    let b1: Vec<f32> = w1.scales.iter().map(|s| s * x.scales[0]).collect();
    let encodings = Encodings {
        tensors: [
            act("x", x),
            act("r", asym(8, 0.0, 3.1)),
            act("o", asym(8, -0.7, 1.3)),
            param("w1", w1),
            param("b1", bias(&b1, true)),
            param("w2", sym(8, -0.35, 0.49)),
        ]
        .into_iter()
        .collect(),
        floats: [("c".to_owned(), float16(Kind::Activation))].into_iter().collect(),
    };
    let qat = round_trip(&float, Path::new("."), &encodings);
    // ptq's own conventions, read back: asymmetric uint8 activations, symmetric int8 weights.
    let (section, o) = fixed(&qat.given, "o");
    assert_eq!((section, o.signed, o.symmetric, o.axis), (Section::Activation, false, false, None));
    let (section, w1) = fixed(&qat.given, "w1");
    assert_eq!((section, w1.signed, w1.symmetric, w1.axis), (Section::Param, true, true, Some(0)));
    let (_, b1) = fixed(&qat.given, "b1");
    assert_eq!((b1.bitwidth, b1.zero_points.clone()), (32, vec![0, 0, 0]));
}

#[test]
fn sixteen_and_four_bit_encodings_and_a_one_channel_weight_read_back() {
    let float = two_convs(21, 1);
    let w1 = per_channel(4, &[(-0.13, 0.05)], 0);
    let x = sym(16, -1.8, 0.5);
    let encodings = Encodings {
        tensors: [
            act("x", x.clone()),
            act("r", asym(16, 0.0, 3.1)),
            param("b1", bias(&[w1.scales[0] * x.scales[0]], true)),
            param("w1", w1),
            param("w2", per_channel(4, &[(-0.1, 0.1), (-0.2, 0.01), (-0.03, 0.3)], 0)),
        ]
        .into_iter()
        .collect(),
        // A float-16 graph output: its Cast pair reads `o_ptq_float`.
        floats: [("o".to_owned(), float16(Kind::Activation))].into_iter().collect(),
    };
    let qat = round_trip(&float, Path::new("."), &encodings);
    let (_, x) = fixed(&qat.given, "x");
    assert_eq!((x.bitwidth, x.signed, x.symmetric), (16, true, true));
    let (_, w1) = fixed(&qat.given, "w1");
    assert_eq!((w1.bitwidth, w1.axis, w1.scales.len()), (4, Some(0), 1), "per channel, one channel");
}

fn shared_model(name: &str) -> PathBuf {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models").join(name).join("model.onnx");
    assert!(path.exists(), "the shared model zoo is expected at {}", path.display());
    path
}

#[test]
fn digits_cnn_qdq_model_reads_back_as_the_float_model_and_its_encodings() {
    let loaded = ptq_onnx::load(&shared_model("digits_cnn")).unwrap();
    let g = Graph::new(&loaded.model, loaded.dir()).unwrap();
    let lay = layout(&g, RuleOptions { per_channel: true, per_row: false }, &|_| false);
    // Made-up ranges for every activation. [-1, 3] gives uint8 zero point 64; a range centred on
    // zero would give 128, which spec §4.5 reads as symmetric (see the test below).
    let observed: BTreeMap<String, MinMax> = lay
        .classes
        .iter()
        .flat_map(|c| &c.members)
        .filter(|m| g.tensor(m).is_some_and(|t| !t.is_constant()))
        .map(|m| (m.clone(), MinMax { min: -1.0, max: 3.0, nonfinite: 0 }))
        .collect();
    let config = Config::default();
    let given = GivenEncodings::new();
    let encodings = assign(&g, &lay, &observed, &config, &given, Mode::Calibrate).unwrap().encodings;
    assert!(encodings.floats.is_empty());
    let params = encodings.tensors.values().filter(|t| t.kind == Kind::Param).count();
    assert!(params >= 6 && encodings.tensors.len() > params, "{:?}", encodings.tensors.keys());
    assert!(encodings.tensors.values().any(|t| t.encoding.axis.is_some()), "per-channel weights");
    assert!(encodings.tensors.keys().any(|k| g.outputs.contains(k)), "an encoded graph output");
    let qat = round_trip(&loaded.model, loaded.dir(), &encodings);
    // Only the QDQ nodes went: the file otherwise decodes to the same model bar the initializers.
    let strip = |m: &ModelProto| {
        let mut m = m.clone();
        m.graph.as_mut().unwrap().initializer.clear();
        m
    };
    let mut back = strip(&qat.model);
    let mut float = strip(&loaded.model);
    assert_eq!(back.graph.as_ref().unwrap().value_info, float.graph.as_ref().unwrap().value_info);
    back.graph.as_mut().unwrap().value_info.clear();
    float.graph.as_mut().unwrap().value_info.clear();
    assert_eq!(back, float);
}

// ---- onnxruntime-style QDQ models ------------------------------------------------------------

#[test]
fn onnxruntime_qdq_conv_reads_back_as_a_float_conv() {
    let m = model(
        13,
        vec![
            q("x_QuantizeLinear", &["x", "x_scale", "x_zero_point"], "x_QuantizeLinear_Output"),
            dq(
                "x_DequantizeLinear",
                &["x_QuantizeLinear_Output", "x_scale", "x_zero_point"],
                "x_DequantizeLinear_Output",
                None,
            ),
            dq(
                "W_DequantizeLinear",
                &["W_quantized", "W_scale", "W_zero_point"],
                "W_DequantizeLinear_Output",
                Some(0),
            ),
            dq(
                "B_quantized_DequantizeLinear",
                &["B_quantized", "B_quantized_scale", "B_quantized_zero_point"],
                "B_quantized_DequantizeLinear_Output",
                Some(0),
            ),
            node(
                "Conv",
                "conv",
                &[
                    "x_DequantizeLinear_Output",
                    "W_DequantizeLinear_Output",
                    "B_quantized_DequantizeLinear_Output",
                ],
                &["y_QuantizeLinear_Input"],
            ),
            q(
                "y_QuantizeLinear",
                &["y_QuantizeLinear_Input", "y_scale", "y_zero_point"],
                "y_QuantizeLinear_Output",
            ),
            dq("y_DequantizeLinear", &["y_QuantizeLinear_Output", "y_scale", "y_zero_point"], "y", None),
        ],
        vec![tensor_value("x", FLOAT, &[1, 2, 3, 3])],
        &["y"],
        vec![
            f32_tensor("x_scale", &[], &[0.02]),
            u8s("x_zero_point", &[], &[131]),
            i8s("W_quantized", &[2, 2, 1, 1], &[-127, 5, 64, 127]),
            f32_tensor("W_scale", &[2], &[0.01, 0.002]),
            i8s("W_zero_point", &[2], &[0, 0]),
            i32s("B_quantized", &[2], &[1000, -7]),
            f32_tensor("B_quantized_scale", &[2], &[0.0002, 0.00004]),
            i32s("B_quantized_zero_point", &[2], &[0, 0]),
            f32_tensor("y_scale", &[], &[0.05]),
            u8s("y_zero_point", &[], &[128]),
        ],
    );
    let (qat, g) = read(&m);
    assert_eq!(qat.pairs, 2);
    assert_eq!(
        node_list(&qat.model),
        [(
            "conv".to_owned(),
            "Conv".to_owned(),
            vec!["x".to_owned(), "W".to_owned(), "B".to_owned()],
            vec!["y".to_owned()]
        )]
    );
    assert_eq!(initializers(&qat.model), ["B", "W"]);
    let w = [-127.0 * 0.01f32, 5.0 * 0.01, 64.0 * 0.002, 127.0 * 0.002];
    assert_eq!(floats(&g, "W"), (vec![2, 2, 1, 1], w.to_vec()));
    assert_eq!(floats(&g, "B"), (vec![2], vec![1000.0 * 0.0002f32, -7.0 * 0.00004f32]));

    assert_eq!(qat.given.keys().collect::<Vec<_>>(), ["B", "W", "x", "y"]);
    let (section, x) = fixed(&qat.given, "x");
    assert_eq!(section, Section::Activation);
    assert_eq!(
        x,
        Encoding {
            bitwidth: 8,
            signed: false,
            symmetric: false,
            strict: false,
            restricted: None,
            scales: vec![0.02],
            zero_points: vec![131],
            axis: None,
            origin: Origin::Qat,
        }
    );
    let (section, w) = fixed(&qat.given, "W");
    assert_eq!(section, Section::Param);
    assert_eq!((w.bitwidth, w.signed, w.symmetric, w.axis), (8, true, true, Some(0)));
    assert_eq!(w.scales, [0.01, 0.002]);
    let (section, b) = fixed(&qat.given, "B");
    assert_eq!(section, Section::Param);
    assert_eq!(
        (b.bitwidth, b.signed, b.symmetric, b.axis, b.zero_points),
        (32, true, true, Some(0), vec![0, 0])
    );
    // uint8 with zero point 128 is the symmetric grid (spec §4.5).
    let (section, y) = fixed(&qat.given, "y");
    assert_eq!(
        (section, y.signed, y.symmetric, y.zero_points),
        (Section::Activation, false, true, vec![128])
    );
}

#[test]
fn zero_point_types_and_axes_follow_spec_4_5() {
    // int8 zero point 3; no zero point (uint8); no zero point with output_dtype int16 (opset 21);
    // an int4 weight per channel on axis −1 of a [2, 3] constant.
    let m = model(
        21,
        vec![
            q("qa", &["x", "sa", "za"], "xa"),
            dq("dqa", &["xa", "sa", "za"], "a", None),
            node("Relu", "relu", &["a"], &["r"]),
            q("qb", &["r", "sb"], "xb"),
            dq("dqb", &["xb", "sb"], "b", None),
            node("Neg", "neg", &["b"], &["n"]),
            with_attributes(
                q("qc", &["n", "sc"], "xc"),
                [int_attribute("output_dtype", DataType::Int16.to_onnx() as i64)],
            ),
            dq("dqc", &["xc", "sc"], "c", None),
            dq("dqw", &["w_q", "sw"], "w", Some(-1)),
            node("Mul", "mul", &["c", "w"], &["out"]),
        ],
        vec![tensor_value("x", FLOAT, &[2, 3])],
        &["out"],
        vec![
            f32_tensor("sa", &[], &[0.1]),
            i8s("za", &[], &[3]),
            f32_tensor("sb", &[1], &[0.2]),
            f32_tensor("sc", &[], &[0.001]),
            i4s("w_q", &[2, 3], &[-8, 7, 1, 2, -3, 0]),
            f32_tensor("sw", &[3], &[0.5, 0.25, 0.125]),
        ],
    );
    let (qat, g) = read(&m);
    assert_eq!(qat.pairs, 3);
    assert_eq!(ops(&g), ["Relu", "Neg", "Mul"]);
    let inputs: Vec<Vec<String>> = g.nodes().map(|n| n.inputs.clone()).collect();
    assert_eq!(inputs, [vec!["x"], vec!["r"], vec!["n", "w"]]);
    assert_eq!(initializers(&qat.model), ["w"]);
    assert_eq!(floats(&g, "w"), (vec![2, 3], vec![-4.0, 1.75, 0.125, 1.0, -0.75, 0.0]));

    let (_, x) = fixed(&qat.given, "x");
    assert_eq!((x.bitwidth, x.signed, x.symmetric, x.zero_points, x.axis), (8, true, false, vec![3], None));
    // A 1-element 1-D scale without an axis is per tensor.
    let (_, r) = fixed(&qat.given, "r");
    assert_eq!((r.bitwidth, r.signed, r.symmetric, r.zero_points, r.axis), (8, false, false, vec![0], None));
    let (_, n) = fixed(&qat.given, "n");
    assert_eq!((n.bitwidth, n.signed, n.symmetric, n.scales), (16, true, true, vec![0.001]));
    let (section, w) = fixed(&qat.given, "w");
    assert_eq!(section, Section::Param);
    assert_eq!((w.bitwidth, w.signed, w.symmetric, w.axis), (4, true, true, Some(1)));
}

#[test]
fn equal_pairs_in_a_row_give_one_encoding_different_ones_are_refused() {
    let chain = |zb: i8| {
        model(
            13,
            vec![
                q("qa", &["x", "sa", "za"], "xa"),
                dq("dqa", &["xa", "sa", "za"], "a", None),
                q("qb", &["a", "sb", "zb"], "xb"),
                dq("dqb", &["xb", "sb", "zb"], "b", None),
                node("Neg", "neg", &["b"], &["y"]),
            ],
            vec![tensor_value("x", FLOAT, &[4])],
            &["y"],
            vec![
                f32_tensor("sa", &[], &[0.1]),
                i8s("za", &[], &[3]),
                f32_tensor("sb", &[], &[0.1]),
                i8s("zb", &[], &[zb]),
            ],
        )
    };
    let (qat, g) = read(&chain(3));
    assert_eq!((qat.pairs, qat.given.len()), (2, 1));
    assert_eq!(g.nodes().next().unwrap().inputs, ["x"]);
    let err = refusal(&chain(4));
    assert!(err.contains("`x`") && err.contains("qa") && err.contains("qb"), "{err}");
}

#[test]
fn graph_outputs_keep_their_names() {
    // One QuantizeLinear read by two DequantizeLinear nodes that both write graph outputs: the
    // Relu writes the first again, an Identity copies it into the second.
    let m = model(
        13,
        vec![
            node("Relu", "relu", &["x"], &["r"]),
            q("q", &["r", "s", "z"], "rq"),
            dq("dq1", &["rq", "s", "z"], "y1", None),
            dq("dq2", &["rq", "s", "z"], "y2", None),
        ],
        vec![tensor_value("x", FLOAT, &[4])],
        &["y1", "y2"],
        vec![f32_tensor("s", &[], &[0.1]), u8s("z", &[], &[0])],
    );
    let (qat, g) = read(&m);
    assert_eq!(qat.pairs, 2);
    let list: Vec<_> =
        node_list(&qat.model).into_iter().map(|(n, o, i, out)| (n, o, i.join(","), out.join(","))).collect();
    assert_eq!(
        list,
        [
            ("relu".into(), "Relu".into(), "x".into(), "y1".into()),
            ("y2_ptq_identity".into(), "Identity".into(), "y1".into(), "y2".into())
        ]
    );
    assert_eq!(qat.given.keys().collect::<Vec<_>>(), ["y1"]);
    assert_eq!(g.outputs, ["y1", "y2"]);
}

// ---- float-16 Cast pairs ---------------------------------------------------------------------

#[test]
fn marked_float16_cast_pairs_become_float16_encodings() {
    let m = model(
        13,
        vec![
            node("Relu", "relu", &["x"], &["r"]),
            cast("r_ptq_fp16_cast", "r", "r_ptq_fp16", DataType::Float16),
            cast("r_ptq_fp16_uncast", "r_ptq_fp16", "r_ptq_fp32", DataType::Float),
            node("Neg", "neg", &["r_ptq_fp32"], &["n"]),
            // A graph output: its producer writes the output name again.
            cast("out_ptq_fp16_cast", "n", "out_ptq_fp16", DataType::Float16),
            cast("out_ptq_fp16_uncast", "out_ptq_fp16", "out", DataType::Float),
            // Unmarked casts are the model's own.
            cast("user_cast", "x", "h", DataType::Float16),
            cast("user_uncast", "h", "z", DataType::Float),
        ],
        vec![tensor_value("x", FLOAT, &[4])],
        &["out", "z"],
        vec![],
    );
    let (qat, g) = read(&m);
    assert_eq!(qat.pairs, 0);
    let list: Vec<_> =
        node_list(&qat.model).into_iter().map(|(n, _, i, o)| (n, i.join(","), o.join(","))).collect();
    assert_eq!(
        list,
        [
            ("relu".into(), "x".into(), "r".into()),
            ("neg".into(), "r".into(), "out".into()),
            ("user_cast".into(), "x".into(), "h".into()),
            ("user_uncast".into(), "h".into(), "z".into()),
        ]
    );
    let f16 = GivenEncoding { section: Section::Activation, given: Given::Float { bitwidth: 16 } };
    assert_eq!(qat.given, [("out".to_owned(), f16.clone()), ("r".to_owned(), f16)].into_iter().collect());
    assert_eq!(g.outputs, ["out", "z"]);
}

// ---- what is refused -------------------------------------------------------------------------

#[test]
fn quantize_without_its_dequantize_is_refused() {
    let base = |nodes: Vec<NodeProto>, outputs: &[&str]| {
        model(
            13,
            nodes,
            vec![tensor_value("x", FLOAT, &[4])],
            outputs,
            vec![f32_tensor("s", &[], &[0.1]), u8s("z", &[], &[9])],
        )
    };
    let err = refusal(&base(vec![q("lone_q", &["x", "s", "z"], "xq")], &["xq"]));
    assert!(err.contains("lone_q") && err.contains("graph output"), "{err}");
    let err = refusal(&base(
        vec![
            q("q", &["x", "s", "z"], "xq"),
            dq("dq", &["xq", "s", "z"], "y", None),
            cast("cast", "xq", "c", DataType::Float),
        ],
        &["y", "c"],
    ));
    assert!(err.contains("`q`") && err.contains("`cast`"), "{err}");
    let err = refusal(&base(
        vec![q("unread_q", &["x", "s", "z"], "xq"), node("Neg", "neg", &["x"], &["y"])],
        &["y"],
    ));
    assert!(err.contains("unread_q") && err.contains("no DequantizeLinear"), "{err}");
}

#[test]
fn dequantize_of_a_runtime_tensor_is_refused() {
    let m = model(
        13,
        vec![cast("cast", "x", "xi", DataType::Uint8), dq("runtime_dq", &["xi", "s", "z"], "y", None)],
        vec![tensor_value("x", FLOAT, &[4])],
        &["y"],
        vec![f32_tensor("s", &[], &[0.1]), u8s("z", &[], &[9])],
    );
    let err = refusal(&m);
    assert!(err.contains("runtime_dq") && err.contains("`xi`") && err.contains("run time"), "{err}");
}

#[test]
fn blocked_and_mismatched_pairs_are_refused() {
    let m = blocked_pair("z");
    let err = refusal(&m);
    assert!(err.contains("blocked_q") && err.contains("not supported yet"), "{err}");

    let m = model(
        13,
        vec![q("q", &["x", "s", "z"], "xq"), dq("other_dq", &["xq", "s2", "z"], "y", None)],
        vec![tensor_value("x", FLOAT, &[4])],
        &["y"],
        vec![f32_tensor("s", &[], &[0.1]), f32_tensor("s2", &[], &[0.2]), u8s("z", &[], &[9])],
    );
    let err = refusal(&m);
    assert!(err.contains("other_dq") && err.contains("another type, scale"), "{err}");

    let m = model(
        13,
        vec![q("q", &["x", "s", "z"], "xq"), dq("dq", &["xq", "s", "z"], "y", None)],
        vec![tensor_value("x", FLOAT, &[4]), tensor_value("s", FLOAT, &[])],
        &["y"],
        vec![u8s("z", &[], &[9])],
    );
    let err = refusal(&m);
    assert!(err.contains("`q`") && err.contains("scale `s` is computed at run time"), "{err}");
}

#[test]
fn a_model_without_quantization_nodes_is_unchanged() {
    let m = two_convs(13, 2);
    let g = Graph::new(&m, Path::new(".")).unwrap();
    let qat = read_qat(&m, &g).unwrap();
    assert_eq!((qat.model, qat.given.len(), qat.pairs), (m, 0, 0));
}

/// ptq writes a range centred on zero as uint8 with zero point 128, which §4.5 reads back as
/// symmetric — the same grid, labelled differently (why the digits test avoids such ranges).
#[test]
fn a_centred_asymmetric_range_reads_back_as_symmetric() {
    let float = model(
        13,
        vec![node("Neg", "neg", &["x"], &["y"])],
        vec![tensor_value("x", FLOAT, &[4])],
        &["y"],
        vec![],
    );
    let e = asym(8, -1.0, 1.0);
    assert_eq!((e.zero_points.clone(), e.symmetric), (vec![128], false));
    let encodings = Encodings { tensors: [act("x", e.clone())].into_iter().collect(), ..Default::default() };
    let g = Graph::new(&float, Path::new(".")).unwrap();
    let qdq = qdq_model(&float, &g, &encodings).unwrap();
    let (qat, _) = read(&qdq);
    let (_, back) = fixed(&qat.given, "x");
    assert_eq!(back, Encoding { symmetric: true, origin: Origin::Qat, ..e });
}

#[test]
fn a_one_value_scale_with_an_axis_is_per_channel_only_along_a_dimension_of_one() {
    let ms = |mut n: NodeProto| {
        n.domain = Some("com.microsoft".into());
        n
    };
    let m = model(
        21,
        vec![
            // onnxruntime's com.microsoft twins read like the ONNX ones.
            ms(with_attributes(q("q", &["x", "s", "z"], "xq"), [int_attribute("axis", 1)])),
            ms(dq("dq", &["xq", "s", "z"], "xd", Some(1))),
            dq("dq_one", &["one_q", "s"], "one", Some(0)),
            dq("dq_four", &["four_q", "s"], "four", Some(1)),
            node("Add", "add", &["xd", "one"], &["a"]),
            node("Mul", "mul", &["a", "four"], &["y"]),
        ],
        vec![tensor_value("x", FLOAT, &[1, 4])],
        &["y"],
        vec![
            f32_tensor("s", &[1], &[0.5]),
            u16s("z", &[1], &[7]),
            i8s("one_q", &[1, 4], &[1, 2, 3, 4]),
            i8s("four_q", &[1, 4], &[1, 2, 3, 4]),
        ],
    );
    let (qat, g) = read(&m);
    assert_eq!(ops(&g), ["Add", "Mul"]);
    let (_, x) = fixed(&qat.given, "x");
    assert_eq!((x.bitwidth, x.signed, x.zero_points, x.axis), (16, false, vec![7], None));
    assert_eq!(fixed(&qat.given, "one").1.axis, Some(0));
    assert_eq!(fixed(&qat.given, "four").1.axis, None);
}

#[test]
fn int32_biases_past_f32_integers_read_back_to_the_same_integers() {
    // A near-dead channel's tiny weight scale puts its bias ~2.1e7 steps out, beyond the 2^24
    // integers f32 holds exactly: read back through an f32 conversion it would requantize 2 off.
    let float = two_convs(13, 3);
    let encodings = Encodings {
        tensors: [param("b1", bias(&[3.5737e-9, 1e-3, 1e-3], true))].into_iter().collect(),
        floats: Default::default(),
    };
    let dir = Path::new(".");
    let qdq = qdq_model(&float, &Graph::new(&float, dir).unwrap(), &encodings).unwrap();
    let qat = read_qat(&qdq, &Graph::new(&qdq, dir).unwrap()).unwrap();
    let again = qdq_model(&qat.model, &Graph::new(&qat.model, dir).unwrap(), &encodings).unwrap();
    let ints = |m: &ModelProto| Graph::new(m, dir).unwrap().constant("b1_ptq_q").unwrap();
    let (first, second) = (ints(&qdq), ints(&again));
    let q0 = i32::from_le_bytes(first.data[..4].try_into().unwrap());
    assert!(q0 < -(1 << 24), "{q0}");
    assert_eq!(first, second);
}
