//! SmoothQuant (`ptq_algos::smooth`, `ptq_pipeline::smooth`): the float model computes the same
//! values after the rewrite (run by ptq's engine), on small hand-built graphs and on minilm_l3.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ptq_algos::smooth::{Candidate, candidates};
use ptq_algos::{SmoothOptions, smooth};
use ptq_data::{BoundInput, ReadOptions};
use ptq_engine::{Engine, TractEngine};
use ptq_ir::{DataType, Graph, Tensor};
use ptq_onnx::build::{self, f32_tensor, node, tensor_value, untyped_value};
use ptq_onnx::proto::{ModelProto, NodeProto, TensorProto};
use ptq_pipeline::{Model, Silent};

const FLOAT: i32 = 1;
const X: &str = "x_ln";

/// `x` [2, 4] → `nodes` → `outputs`, opset 17 (LayerNormalization).
fn model(nodes: Vec<NodeProto>, outputs: &[&str], inits: Vec<TensorProto>) -> ModelProto {
    let outputs = outputs.iter().map(|o| untyped_value(o)).collect();
    build::model(17, nodes, vec![tensor_value("x", FLOAT, &[2, 4])], outputs, inits)
}

fn ln() -> (NodeProto, Vec<TensorProto>) {
    let n = node("LayerNormalization", "ln", &["x", "gamma", "beta"], &[X]);
    let inits = vec![
        f32_tensor("gamma", &[4], &[30.0, 1.0, 0.5, 2.0]),
        f32_tensor("beta", &[4], &[5.0, -0.1, 0.2, 0.0]),
    ];
    (n, inits)
}

fn matmul(name: &str, w: &str, values: &[f32]) -> (NodeProto, TensorProto) {
    (node("MatMul", name, &[X, w], &[&format!("{name}_y")]), f32_tensor(w, &[4, 3], values))
}

const W1: [f32; 12] = [0.5, -1.0, 0.25, 2.0, 0.1, -0.3, 0.7, 0.7, 0.7, -0.2, 0.4, 1.5];
const W2: [f32; 12] = [1.0, 1.0, 1.0, -4.0, 0.5, 0.5, 0.1, 0.2, 0.3, 0.9, -0.9, 0.0];
const W3: [f32; 12] = [0.05, 0.1, -0.1, 0.3, 0.3, 0.3, 1.0, -1.0, 2.0, 0.6, 0.6, -0.6];

/// Channel 0 is the outlier: 100× the median.
fn maxima() -> BTreeMap<String, Vec<f32>> {
    BTreeMap::from([(X.to_owned(), vec![100.0, 1.0, 0.8, 1.2])])
}

fn run(m: &ModelProto, inputs: &[Tensor]) -> Vec<Vec<f32>> {
    let bytes = ptq_onnx::encode(m);
    let bound: Vec<BoundInput> = Graph::new(m, Path::new("."))
        .unwrap()
        .inputs
        .iter()
        .zip(inputs)
        .map(|(n, t)| BoundInput { name: n.clone(), dtype: t.dtype, shape: t.shape.clone() })
        .collect();
    let outputs = Graph::new(m, Path::new(".")).unwrap().outputs.clone();
    let engine = TractEngine::new(&bytes, Path::new("."), &bound, &outputs).unwrap();
    let mut runner = engine.runner().unwrap();
    runner.run(inputs).unwrap().iter().map(|t| t.to_f32().unwrap()).collect()
}

/// Largest |a − b| over the largest |a|, over every output.
fn max_relative_difference(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    let mut worst = 0.0f64;
    for (a, b) in a.iter().zip(b) {
        assert_eq!(a.len(), b.len());
        let scale = a.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs()))).max(1e-30);
        let diff = a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max(f64::from((x - y).abs())));
        worst = worst.max(diff / scale);
    }
    worst
}

fn input() -> Vec<Tensor> {
    vec![Tensor::from_f32(vec![2, 4], &[3.0, -1.0, 0.5, 2.0, -0.7, 0.2, 4.0, 1.1])]
}

fn values(m: &ModelProto, name: &str) -> Vec<f32> {
    Graph::new(m, Path::new(".")).unwrap().constant(name).unwrap().to_f32().unwrap()
}

fn none(_: &str) -> bool {
    false
}

#[test]
fn layer_norm_into_one_matmul_is_exact_and_scales_gamma_beta_and_rows() {
    let (ln, mut inits) = ln();
    let (mm, w) = matmul("q", "w1", &W1);
    inits.push(w);
    let m = model(vec![ln, mm], &["q_y"], inits);
    let g = Graph::new(&m, Path::new(".")).unwrap();
    assert_eq!(candidates(&g, &none).unwrap(), vec![Candidate { tensor: X.into(), channels: 4 }]);

    let s = smooth(&m, Path::new("."), &maxima(), SmoothOptions::default(), &none).unwrap();
    assert_eq!(s.smoothed.len(), 1);
    assert_eq!(s.smoothed[0].weights, ["w1"]);
    // Channel 0: s = sqrt(100) / sqrt(max(|0.5|, |-1|, |0.25|)) = 10.
    let gamma = values(&s.model, "gamma");
    assert!((gamma[0] - 3.0).abs() < 1e-6, "γ0 = 30 / 10, got {}", gamma[0]);
    assert!((values(&s.model, "beta")[0] - 0.5).abs() < 1e-6);
    assert!((values(&s.model, "w1")[1] - (-10.0)).abs() < 1e-5);
    let d = max_relative_difference(&run(&m, &input()), &run(&s.model, &input()));
    assert!(d <= 1e-5, "relative difference {d}");
}

#[test]
fn layer_norm_into_three_matmuls_shares_one_scale() {
    let (ln, mut inits) = ln();
    let mut nodes = vec![ln];
    for (name, w, v) in [("q", "w1", &W1), ("k", "w2", &W2), ("v", "w3", &W3)] {
        let (mm, t) = matmul(name, w, v);
        nodes.push(mm);
        inits.push(t);
    }
    let m = model(nodes, &["q_y", "k_y", "v_y"], inits);
    let s = smooth(&m, Path::new("."), &maxima(), SmoothOptions::default(), &none).unwrap();
    assert_eq!(s.smoothed.len(), 1);
    assert_eq!(s.smoothed[0].weights, ["w1", "w2", "w3"]);
    // Row 0 of w1, w2, w3: max(0.5, 1, 0.25, 1, 1, 1, 0.05, 0.1, 0.1) = 1, so s0 = sqrt(100) / 1.
    assert!((values(&s.model, "gamma")[0] - 3.0).abs() < 1e-6);
    for w in ["w1", "w2", "w3"] {
        let before = values(&m, w);
        let after = values(&s.model, w);
        assert!((after[0] - 10.0 * before[0]).abs() < 1e-5, "{w} row 0 takes the same s");
    }
    let d = max_relative_difference(&run(&m, &input()), &run(&s.model, &input()));
    assert!(d <= 1e-5, "relative difference {d}");
}

#[test]
fn an_activation_with_another_reader_is_left_alone() {
    let (ln, mut inits) = ln();
    let (mm, w) = matmul("q", "w1", &W1);
    inits.push(w);
    let relu = node("Relu", "relu", &[X], &["r"]);
    let m = model(vec![ln, mm, relu], &["q_y", "r"], inits);
    let g = Graph::new(&m, Path::new(".")).unwrap();
    assert!(candidates(&g, &none).unwrap().is_empty());
    let s = smooth(&m, Path::new("."), &maxima(), SmoothOptions::default(), &none).unwrap();
    assert!(s.smoothed.is_empty());
    assert_eq!(s.model, m);
}

#[test]
fn a_given_encoding_on_the_activation_or_a_weight_is_never_broken() {
    let (ln, mut inits) = ln();
    let (mm, w) = matmul("q", "w1", &W1);
    inits.push(w);
    let m = model(vec![ln, mm], &["q_y"], inits);
    for given in [X, "w1", "gamma"] {
        let keep = |t: &str| t == given;
        let s = smooth(&m, Path::new("."), &maxima(), SmoothOptions::default(), &keep).unwrap();
        assert!(s.smoothed.is_empty(), "{given} carries a given encoding");
    }
}

#[test]
fn no_outlier_no_change() {
    let (ln, mut inits) = ln();
    let (mm, w) = matmul("q", "w1", &W1);
    inits.push(w);
    let m = model(vec![ln, mm], &["q_y"], inits);
    let flat = BTreeMap::from([(X.to_owned(), vec![1.0, 2.0, 3.0, 7.9])]);
    let s = smooth(&m, Path::new("."), &flat, SmoothOptions::default(), &none).unwrap();
    assert!(s.smoothed.is_empty());
    assert_eq!(s.model, m);
}

#[test]
fn a_mul_by_a_scalar_becomes_a_per_channel_mul() {
    // x · 0.5 → MatMul, as a GELU's last Mul.
    let mul = node("Mul", "half", &["x", "c"], &[X]);
    let (mm, w) = matmul("q", "w1", &W1);
    let m = model(vec![mul, mm], &["q_y"], vec![f32_tensor("c", &[], &[0.5]), w]);
    let s = smooth(&m, Path::new("."), &maxima(), SmoothOptions::default(), &none).unwrap();
    assert_eq!(s.smoothed.len(), 1);
    let c = Graph::new(&s.model, Path::new(".")).unwrap().constant("c").unwrap();
    assert_eq!((c.dtype, c.shape.clone()), (DataType::Float, vec![4]));
    let d = max_relative_difference(&run(&m, &input()), &run(&s.model, &input()));
    assert!(d <= 1e-5, "relative difference {d}");
}

/// A GELU as exporters write it, `(x · 0.5) · (1 + erf(x/√2))` → MatMul: the product of two
/// computed tensors takes `1/s` through the factor `x · 0.5`, which only it reads.
#[test]
fn a_gelu_product_passes_the_scale_to_its_half_factor() {
    let nodes = vec![
        node("Mul", "half", &["x", "c"], &["xh"]),
        node("Div", "div", &["x", "sqrt2"], &["xs"]),
        node("Erf", "erf", &["xs"], &["e"]),
        node("Add", "add", &["e", "one"], &["e1"]),
        node("Mul", "gelu", &["xh", "e1"], &[X]),
    ];
    let (mm, w) = matmul("q", "w1", &W1);
    let inits = vec![
        f32_tensor("c", &[], &[0.5]),
        f32_tensor("sqrt2", &[], &[std::f32::consts::SQRT_2]),
        f32_tensor("one", &[], &[1.0]),
        w,
    ];
    let m = model(nodes.into_iter().chain([mm]).collect(), &["q_y"], inits);
    let s = smooth(&m, Path::new("."), &maxima(), SmoothOptions::default(), &none).unwrap();
    assert_eq!(s.smoothed.len(), 1);
    let c = Graph::new(&s.model, Path::new(".")).unwrap().constant("c").unwrap();
    assert_eq!(c.shape, vec![4], "the scalar 0.5 became a per-channel 0.5/s");
    let d = max_relative_difference(&run(&m, &input()), &run(&s.model, &input()));
    assert!(d <= 1e-5, "relative difference {d}");
}

fn zoo(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models").join(name);
    assert!(dir.is_dir(), "the shared model zoo is expected at {}", dir.display());
    dir
}

#[test]
fn minilm_smoothed_computes_what_it_did() {
    let dir = zoo("minilm_l3");
    let original = Model::load(&dir.join("model.onnx")).unwrap();
    let samples = original.samples(&dir.join("calib.txt"), ReadOptions::default()).unwrap();
    let before = ptq_onnx::encode(&original.loaded.model);
    let given = Default::default();
    let (smoothed, done) = ptq_pipeline::smooth::smooth(
        Model::load(&dir.join("model.onnx")).unwrap(),
        &samples,
        SmoothOptions::default(),
        &given,
        &Silent,
    )
    .unwrap();
    // Layer 0's GELU output (16× its median channel) into the FFN-out MatMul; the LayerNorm
    // outputs also feed residual Adds, so they are left alone.
    let tensors: Vec<&str> = done.iter().map(|s| s.tensor.as_str()).collect();
    assert_eq!(
        tensors,
        ["/model/model.0/auto_model/encoder/layer.0/intermediate/intermediate_act_fn/Mul_1_output_0"]
    );
    let outputs = original.graph.outputs.clone();
    let run_all = |bytes: &[u8]| -> Vec<Vec<Vec<f32>>> {
        let engine = TractEngine::new(bytes, &dir, samples.inputs(), &outputs).unwrap();
        let mut runner = engine.runner().unwrap();
        (0..4)
            .map(|i| {
                let sample = samples.read(i).unwrap();
                runner.run(&sample.tensors).unwrap().iter().map(|t| t.to_f32().unwrap()).collect()
            })
            .collect()
    };
    let (a, b) = (run_all(&before), run_all(&smoothed.bytes));
    for (x, y) in a.iter().zip(&b) {
        let d = max_relative_difference(x, y);
        assert!(d <= 1e-5, "relative difference {d}");
    }
}
