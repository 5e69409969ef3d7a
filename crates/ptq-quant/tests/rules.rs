//! Op rules on the shared digits model, whose graph is small enough to check tensor by tensor.

use std::path::Path;

use ptq_ir::Graph;
use ptq_quant::rules::{Role, RuleOptions, layout};

fn digits() -> Graph {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models/digits_cnn/model.onnx");
    let loaded = ptq_onnx::load(&path).expect("the shared model zoo beside the repository");
    Graph::new(&loaded.model, loaded.dir()).unwrap()
}

#[test]
fn digits_roles() {
    let g = digits();
    let l = layout(&g, RuleOptions { per_channel: true, per_row: false }, &|_| false);
    let role = |t: &str| l.roles.get(t).cloned();
    let class = |t: &str| match role(t) {
        Some(Role::Activation { class }) => class,
        other => panic!("{t}: {other:?}"),
    };
    assert_eq!(role("conv1.weight"), Some(Role::Weight { channel_axis: 0, per_channel: true }));
    assert_eq!(role("fc1.weight"), Some(Role::Weight { channel_axis: 0, per_channel: false }));
    assert_eq!(role("fc2.weight"), Some(Role::Weight { channel_axis: 1, per_channel: false }));
    assert_eq!(
        role("conv1.bias"),
        Some(Role::Bias { input: "input".into(), weight: "conv1.weight".into(), row_layer: false })
    );
    // BatchNormalization statistics are not data; the Conv before a lone Relu needs no encoding.
    assert_eq!(role("bn1.running_mean"), None);
    assert_eq!(role("dwconv_out"), None);
    assert_eq!(role("fc1_out"), None);
    // Data-invariant ops share their input's encoding; a constant added to data is quantized.
    assert_eq!(class("pool_out"), class("relu3_out"));
    assert_eq!(class("flat_out"), class("relu3_out"));
    assert_ne!(class("relu2_out"), class("relu3_out"));
    // MatMul + Add of a constant vector is a fully connected layer: the Add constant is its bias.
    assert_eq!(
        role("fc2.bias"),
        Some(Role::Bias { input: "relu4_out".into(), weight: "fc2.weight".into(), row_layer: true })
    );
    assert_eq!(role("fc2_mm"), None);
    class("logits");
    class("input");
    assert!(l.groups.is_empty());
}

#[test]
fn recurrent_weights_are_weights_per_gate_row() {
    use ptq_onnx::build::{self, FLOAT};
    // X [seq, batch, in] → LSTM(W [1, 4H, in], R [1, 4H, H], B [1, 8H]) → Y.
    let (h, input) = (2, 3);
    let m = build::model(
        14,
        vec![build::node("LSTM", "lstm", &["x", "w", "r", "b"], &["y"])],
        vec![build::tensor_value("x", FLOAT, &[5, 1, input])],
        vec![build::untyped_value("y")],
        vec![
            build::f32_tensor("w", &[1, 4 * h, input], &vec![0.1; (4 * h * input) as usize]),
            build::f32_tensor("r", &[1, 4 * h, h], &vec![0.2; (4 * h * h) as usize]),
            build::f32_tensor("b", &[1, 8 * h], &vec![0.3; (8 * h) as usize]),
        ],
    );
    let g = Graph::new(&m, Path::new(".")).unwrap();
    for per_row in [false, true] {
        let l = layout(&g, RuleOptions { per_channel: false, per_row }, &|_| false);
        for w in ["w", "r"] {
            assert_eq!(l.roles.get(w), Some(&Role::Weight { channel_axis: 1, per_channel: per_row }), "{w}");
        }
        // Input and recurrent biases of two differently scaled products: a constant of its own.
        assert!(matches!(l.roles.get("b"), Some(Role::Activation { .. })));
    }
    assert_eq!(ptq_quant::rules::weight_axis(&g, "r"), Some(1));
    assert_eq!(ptq_quant::rules::weight_axis(&g, "b"), None);
}

#[test]
fn a_sigmoid_output_takes_its_calibrated_range_under_the_zero_one_ceiling() {
    use ptq_onnx::build::{self, FLOAT};
    use ptq_quant::{Config, GivenEncodings, MinMax, Mode, assign};
    use std::collections::BTreeMap;
    let m = build::model(
        13,
        vec![build::node("Sigmoid", "sig", &["x"], &["s"])],
        vec![build::tensor_value("x", FLOAT, &[1, 4])],
        vec![build::tensor_value("s", FLOAT, &[1, 4])],
        vec![],
    );
    let g = Graph::new(&m, Path::new(".")).unwrap();
    let l = layout(&g, RuleOptions::default(), &|_| false);
    let scale = |s: &[f32]| {
        let observed: BTreeMap<String, MinMax> =
            [("x".to_string(), MinMax::of(&[-9.0, -2.0])), ("s".to_string(), MinMax::of(s))].into();
        let a =
            assign(&g, &l, &observed, &Config::default(), &GivenEncodings::new(), Mode::Calibrate).unwrap();
        a.encodings.get("s").map(|e| e.scales[0])
    };
    // Scores that never pass 0.12 keep the whole grid (asymmetric ranges include 0).
    assert_eq!(scale(&[0.0001, 0.12]), Some(0.12 / 255.0));
    // Past the op's range (a rounding artefact) it is clamped to [0, 1].
    assert_eq!(scale(&[0.0, 1.0000001]), Some(1.0 / 255.0));
}
