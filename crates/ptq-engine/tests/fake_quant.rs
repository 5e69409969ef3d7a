//! ptq's `ai.ptq` FakeQuant operator on the tract engine: per tensor, per channel, in a chain,
//! folded on constants, and refused with a clear error when its scale does not fit.
//!
//! Every expected value is worked out by hand (exact f32 arithmetic) in the comments, not by
//! calling the code under test.

use std::path::Path;

use ptq_data::BoundInput;
use ptq_engine::fake_quant::{DOMAIN, OP_TYPE};
use ptq_engine::{Engine, TractEngine, unsupported_ops};
use ptq_ir::{DataType, Tensor, int_attribute};
use ptq_onnx::build::{self, FLOAT, f32_tensor_float_data, node, opset, tensor_value};
use ptq_onnx::proto::{NodeProto, TensorProto};

/// `FakeQuant(x, <name>.scale, <name>.zp) -> y` in domain ai.ptq.
fn fake_quant(name: &str, x: &str, y: &str, qmin: i64, qmax: i64, axis: Option<i64>) -> NodeProto {
    let mut n = node("FakeQuant", name, &[x, &format!("{name}.scale"), &format!("{name}.zp")], &[y]);
    n.domain = Some("ai.ptq".into());
    n.attribute = vec![int_attribute("qmin", qmin), int_attribute("qmax", qmax)];
    n.attribute.extend(axis.map(|a| int_attribute("axis", a)));
    n
}

/// Scale and zero point initializers of a FakeQuant node; `dims` empty for a scalar.
fn fq_params(name: &str, dims: &[i64], scale: &[f32], zp: &[f32]) -> [TensorProto; 2] {
    [
        f32_tensor_float_data(&format!("{name}.scale"), dims, scale),
        f32_tensor_float_data(&format!("{name}.zp"), dims, zp),
    ]
}

fn model(nodes: Vec<NodeProto>, inits: Vec<TensorProto>, x_shape: &[usize], y: &str) -> Vec<u8> {
    let dims: Vec<i64> = x_shape.iter().map(|&d| d as i64).collect();
    let mut model = build::model(
        13,
        nodes,
        vec![tensor_value("x", FLOAT, &dims)],
        vec![tensor_value(y, FLOAT, &dims)],
        inits,
    );
    model.opset_import.push(opset("ai.ptq", 1));
    ptq_onnx::encode(&model)
}

fn engine(bytes: &[u8], x_shape: &[usize], observed: &[&str]) -> TractEngine {
    let observed: Vec<String> = observed.iter().map(|s| s.to_string()).collect();
    TractEngine::new(bytes, Path::new("."), &inputs(x_shape), &observed).unwrap_or_else(|e| panic!("{e}"))
}

fn inputs(x_shape: &[usize]) -> [BoundInput; 1] {
    [BoundInput { name: "x".into(), dtype: DataType::Float, shape: x_shape.to_vec() }]
}

fn run(engine: &TractEngine, shape: &[usize], x: &[f32]) -> Vec<Vec<f32>> {
    let outputs = engine.runner().unwrap().run(&[Tensor::from_f32(shape.to_vec(), x)]).unwrap();
    outputs
        .iter()
        .map(|t| {
            assert_eq!(t.shape, shape);
            t.to_f32().unwrap()
        })
        .collect()
}

/// Bit-exact comparison (+0 and −0 aside), with the element's index in the message.
fn assert_exact(got: &[f32], expected: &[f32], what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert!(
            g == e,
            "{what}[{i}]: got {g:?} ({:#010x}), expected {e:?} ({:#010x})",
            g.to_bits(),
            e.to_bits()
        );
    }
}

#[test]
fn the_contract_constants() {
    assert_eq!((DOMAIN, OP_TYPE), ("ai.ptq", "FakeQuant"));
}

#[test]
fn per_tensor_rounds_half_to_even_divides_and_saturates() {
    // scale 0.1 (f32 0x3dcccccd), zp 128, q in [0, 255].
    let nodes = vec![fake_quant("fq", "x", "y", 0, 255, None)];
    let bytes = model(nodes, fq_params("fq", &[], &[0.1], &[128.0]).into(), &[2, 3], "y");
    let e = engine(&bytes, &[2, 3], &["y"]);

    // 0.05f32 / 0.1f32 = 0.5 exactly (same mantissa); 0.15f/0.1f = 1.5 and 0.25f/0.1f = 2.5 exactly
    // in f32. Half to even: 0.5 → 0, 1.5 → 2, 2.5 → 2, and the negatives alike (−0.5 → −0).
    // (q − zp) · scale: 0 · 0.1 = 0, 2 · 0.1f = 0.2f (doubling is exact).
    // Half away from zero would give 0.1, 0.2, 0.3: the first and last differ.
    let got = run(&e, &[2, 3], &[0.05, 0.15, 0.25, -0.05, -0.15, -0.25]);
    assert_exact(&got[0], &[0.0, 0.2, 0.2, 0.0, -0.2, -0.2], "ties");

    // 100 / 0.1 = 1000 → 1128 → clamp 255 → 127 · 0.1f = 12.7f (0x414b3333).
    // −100 → −1000 + 128 → clamp 0 → −128 · 0.1f = −12.8f (exact, 0xc14ccccd).
    // 12.74 / 0.1 = 127.39999 → 127 → 255, not saturated but at the top: 12.7f.
    // −12.86 / 0.1 = −128.59999 → −129 + 128 = −1 → clamp 0: −12.8f.
    // 0.35f (0.34999999) / 0.1f = 3.5 exactly → 4 → 0.4f.
    // 1.55f (0x3fc66666) / 0.1f = 15.499999 in f32 → 15 → 1.5; multiplying by the reciprocal
    // instead (1.55f · (1/0.1f) = 15.5 in f32) would round to 16 and give 1.6.
    assert_eq!(1.55f32.to_bits(), 0x3fc6_6666);
    let got = run(&e, &[2, 3], &[100.0, -100.0, 12.74, -12.86, 0.35, 1.55]);
    assert_exact(&got[0], &[12.7, -12.8, 12.7, -12.8, 0.4, 1.5], "saturation");
}

#[test]
fn per_channel_on_axis_1_and_on_axis_minus_1() {
    // scale [0.1, 0.2, 0.5] along the last axis of [2, 3], zp 0, q in [−128, 127].
    // Sample 1: 0.05/0.1 = 0.5 → 0 → 0; 0.3f/0.2f = 1.5 exactly → 2 → 0.4f; 0.75/0.5 = 1.5 → 2 → 1.0;
    //           −20/0.1 = −200 → −128 → −12.8f; 30/0.2 = 150 → 127 → 127 · 0.2f = 25.4f (0x41cb3333);
    //           −0.25/0.5 = −0.5 → −0 → 0.
    // Sample 2: 1.55f/0.1f = 15.499999 → 15 → 1.5; 3.1f/0.2f = 15.499999 → 15 → 3.0;
    //           −0.75/0.5 = −1.5 → −2 → −1.0; 0.25/0.1 = 2.5 → 2 → 0.2f; −0.3f/0.2f = −1.5 → −2 → −0.4f;
    //           100/0.5 = 200 → 127 → 63.5.
    let cases: [(&[f32], &[f32]); 2] = [
        (&[0.05, 0.3, 0.75, -20.0, 30.0, -0.25], &[0.0, 0.4, 1.0, -12.8, 25.4, 0.0]),
        (&[1.55, 3.1, -0.75, 0.25, -0.3, 100.0], &[1.5, 3.0, -1.0, 0.2, -0.4, 63.5]),
    ];
    for axis in [1, -1] {
        let bytes = model(
            vec![fake_quant("fq", "x", "y", -128, 127, Some(axis))],
            fq_params("fq", &[3], &[0.1, 0.2, 0.5], &[0.0, 0.0, 0.0]).into(),
            &[2, 3],
            "y",
        );
        let e = engine(&bytes, &[2, 3], &["y"]);
        for (x, expected) in cases {
            assert_exact(&run(&e, &[2, 3], x)[0], expected, &format!("axis {axis}"));
        }
    }
}

#[test]
fn per_channel_on_axis_0_spans_whole_rows() {
    // scale [0.1, 0.5] along axis 0 of [2, 3], zp [0, 0], q in [−128, 127].
    // Row 0 (0.1): 0.05 → 0.5 → 0; 0.15 → 1.5 → 2 → 0.2f; 100 → 1000 → 127 → 12.7f.
    // Row 1 (0.5): 0.75 → 1.5 → 2 → 1.0; −0.25 → −0.5 → 0; −100 → −200 → −128 → −64.0.
    let bytes = model(
        vec![fake_quant("fq", "x", "y", -128, 127, Some(0))],
        fq_params("fq", &[2], &[0.1, 0.5], &[0.0, 0.0]).into(),
        &[2, 3],
        "y",
    );
    let e = engine(&bytes, &[2, 3], &["y"]);
    let got = run(&e, &[2, 3], &[0.05, 0.15, 100.0, 0.75, -0.25, -100.0]);
    assert_exact(&got[0], &[0.0, 0.2, 12.7, 1.0, 0.0, -64.0], "axis 0");
}

#[test]
fn a_chain_relu_fake_quant_relu_observes_the_fake_quant_output() {
    let nodes = vec![
        node("Relu", "relu1", &["x"], &["a"]),
        fake_quant("fq", "a", "a_sim", 0, 255, None),
        node("Relu", "relu2", &["a_sim"], &["y"]),
    ];
    let bytes = model(nodes, fq_params("fq", &[], &[0.1], &[128.0]).into(), &[2, 3], "y");
    // Relu: [0, 0.15, 0.25, 1.55, 100, 0]; FakeQuant (scale 0.1, zp 128, q in [0, 255]):
    // 0 → 0; 1.5 → 2 → 0.2f; 2.5 → 2 → 0.2f; 15.499999 → 15 → 1.5; 1000 → 255 → 12.7f; 0.
    // The last Relu leaves these as they are.
    let x = [-1.0, 0.15, 0.25, 1.55, 100.0, -0.05];
    let expected = [0.0, 0.2, 0.2, 1.5, 12.7, 0.0];

    let e = engine(&bytes, &[2, 3], &["a", "a_sim", "y"]);
    let got = run(&e, &[2, 3], &x);
    assert_exact(&got[0], &[0.0, 0.15, 0.25, 1.55, 100.0, 0.0], "relu1");
    assert_exact(&got[1], &expected, "a_sim");
    assert_exact(&got[2], &expected, "y");

    // Not pinned, the FakeQuant in the middle still runs as such after optimisation.
    let e = engine(&bytes, &[2, 3], &["y"]);
    assert_exact(&run(&e, &[2, 3], &x)[0], &expected, "y alone");
}

#[test]
fn a_fake_quant_on_a_constant_is_folded_to_the_same_values() {
    // w = [0.05, 0.15, 1.55] → FakeQuant(0.1, 128, [0, 255]) → [0, 0.2f, 1.5]; y = x + w_sim.
    let nodes =
        vec![fake_quant("fq", "w", "w_sim", 0, 255, None), node("Add", "add", &["x", "w_sim"], &["y"])];
    let mut inits = vec![f32_tensor_float_data("w", &[3], &[0.05, 0.15, 1.55])];
    inits.extend(fq_params("fq", &[], &[0.1], &[128.0]));
    let bytes = model(nodes, inits, &[3], "y");
    let e = engine(&bytes, &[3], &["w_sim", "y"]);
    let outputs = e.runner().unwrap().run(&[Tensor::from_f32(vec![3], &[1.0, 2.0, 3.0])]).unwrap();
    assert_exact(&outputs[0].to_f32().unwrap(), &[0.0, 0.2, 1.5], "w_sim");
    assert_exact(&outputs[1].to_f32().unwrap(), &[1.0, 2.0 + 0.2, 4.5], "y");
}

#[test]
fn a_scale_that_does_not_fit_the_axis_is_refused_naming_the_node() {
    // Two scales for the three channels of axis 1.
    let bytes = model(
        vec![fake_quant("conv1.fq", "x", "y", -128, 127, Some(1))],
        fq_params("conv1.fq", &[2], &[0.1, 0.2], &[0.0, 0.0]).into(),
        &[2, 3],
        "y",
    );
    let err =
        TractEngine::new(&bytes, Path::new("."), &inputs(&[2, 3]), &["y".into()]).err().unwrap().to_string();
    assert!(err.contains("FakeQuant node `conv1.fq`"), "{err}");
    assert!(err.contains("its scale has 2 values but its input has 3 along axis 1"), "{err}");

    // A zero point whose length differs from the scale's.
    let mut inits: Vec<TensorProto> = fq_params("fq", &[3], &[0.1, 0.2, 0.5], &[0.0, 0.0, 0.0]).into();
    inits[1] = f32_tensor_float_data("fq.zp", &[1], &[0.0]);
    let bytes = model(vec![fake_quant("fq", "x", "y", -128, 127, Some(1))], inits, &[2, 3], "y");
    let err =
        TractEngine::new(&bytes, Path::new("."), &inputs(&[2, 3]), &["y".into()]).err().unwrap().to_string();
    assert!(err.contains("FakeQuant node `fq`") && err.contains("zero point"), "{err}");
}

#[test]
fn fake_quant_is_not_reported_unsupported_unless_its_domain_is_not_ptq() {
    let ours = model(
        vec![fake_quant("fq", "x", "y", 0, 255, None)],
        fq_params("fq", &[], &[0.1], &[128.0]).into(),
        &[2, 3],
        "y",
    );
    assert!(unsupported_ops(&ours, Path::new(".")).unwrap().is_empty());

    let mut other = fake_quant("fq", "x", "y", 0, 255, None);
    other.domain = Some("com.example".into());
    let theirs = model(vec![other], fq_params("fq", &[], &[0.1], &[128.0]).into(), &[2, 3], "y");
    let ops = unsupported_ops(&theirs, Path::new(".")).unwrap();
    assert_eq!(ops.len(), 1);
    assert_eq!((ops[0].op_type.as_str(), ops[0].domain.as_str()), ("FakeQuant", "com.example"));
    assert_eq!(ops[0].nodes, ["fq"]);
}
