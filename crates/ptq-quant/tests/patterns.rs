//! Patterns on small hand-built graphs: what each detector finds, and the encodings `assign`
//! then chooses.

use std::collections::BTreeMap;
use std::path::Path;

use ptq_ir::Graph;
use ptq_onnx::build::{self, FLOAT};
use ptq_onnx::proto::{NodeProto, TensorProto};
use ptq_quant::patterns::{Finding, Pattern, Precision, find};
use ptq_quant::rules::{RuleOptions, layout};
use ptq_quant::{
    Assignment, Config, Encoding, FloatReason, Given, GivenEncoding, GivenEncodings, MinMax, Mode, Origin,
    QuantSpec, Schema, Section, assign,
};

/// A graph reading float inputs `inputs` ([1, 4] each), with `constants`, ending in `output`.
fn graph(nodes: Vec<NodeProto>, inputs: &[&str], constants: Vec<TensorProto>, output: &str) -> Graph {
    let inputs = inputs.iter().map(|i| build::tensor_value(i, FLOAT, &[1, 4])).collect();
    let m = build::model(17, nodes, inputs, vec![build::untyped_value(output)], constants);
    Graph::new(&m, Path::new(".")).unwrap()
}

fn scalar(name: &str, v: f32) -> TensorProto {
    build::f32_tensor(name, &[], &[v])
}

fn ranges(r: &[(&str, f32, f32)]) -> BTreeMap<String, MinMax> {
    r.iter().map(|&(t, lo, hi)| (t.to_string(), MinMax::of(&[lo, hi]))).collect()
}

/// Finds the patterns, applies them and assigns, as the pipeline does.
fn quantize(
    g: &Graph,
    observed: &BTreeMap<String, MinMax>,
    given: &GivenEncodings,
) -> (Vec<Finding>, Assignment) {
    let mut l = layout(g, RuleOptions::default(), &|t| given.contains_key(t));
    let found = find(g, &l, observed, given, 8).unwrap();
    ptq_quant::patterns::apply(&mut l, &found);
    let a = assign(g, &l, observed, &Config::default(), given, Mode::Calibrate).unwrap();
    (found, a)
}

fn bits(a: &Assignment, t: &str) -> Option<u8> {
    a.encodings.get(t).map(|e| e.bitwidth)
}

/// An additive attention mask: scores + (1 − mask)·(−3.4e38) → Softmax.
fn masked_softmax(fill: f32) -> Graph {
    graph(
        vec![
            build::node("Sub", "sub", &["one", "mask"], &["inverted"]),
            build::node("Mul", "mul", &["inverted", "fill"], &["bias"]),
            build::node("Add", "add", &["scores", "bias"], &["masked"]),
            build::node("Softmax", "softmax", &["masked"], &["probs"]),
        ],
        &["scores", "mask"],
        vec![scalar("one", 1.0), scalar("fill", fill)],
        "probs",
    )
}

fn mask_ranges(fill: f32) -> BTreeMap<String, MinMax> {
    ranges(&[
        ("scores", -9.0, 11.0),
        ("mask", 0.0, 1.0),
        ("inverted", 0.0, 1.0),
        ("bias", fill, 0.0),
        ("masked", fill, 11.0),
        ("probs", 0.0, 1.0),
    ])
}

#[test]
fn a_masking_constant_and_what_it_reaches_stay_float() {
    let g = masked_softmax(f32::MIN);
    let (found, a) = quantize(&g, &mask_ranges(f32::MIN), &GivenEncodings::new());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].pattern, Pattern::MaskingValue);
    assert_eq!(found[0].at, "fill");
    assert_eq!(found[0].tensors, ["fill", "bias", "masked"]);
    for t in ["fill", "bias", "masked"] {
        assert_eq!(a.encodings.floats.get(t).map(|f| f.reason), Some(FloatReason::MaskingValue), "{t}");
        assert_eq!(bits(&a, t), None, "{t}");
    }
    // The real scores, the mask arithmetic in [0, 1] and the probabilities keep their grids.
    for t in ["scores", "inverted", "probs"] {
        assert_eq!(bits(&a, t), Some(8), "{t}");
    }
    assert_eq!(a.encodings.get("scores").unwrap().scales[0], 20.0 / 255.0);
    // Float16 cannot hold the mask: it stays float32 even when other float tensors are 16 bit.
    let config = Config { float_bitwidth: 16, ..Config::default() };
    let mut l = layout(&g, RuleOptions::default(), &|_| false);
    ptq_quant::patterns::apply(&mut l, &found);
    let a = assign(&g, &l, &mask_ranges(f32::MIN), &config, &GivenEncodings::new(), Mode::Calibrate).unwrap();
    assert_eq!(a.encodings.floats.get("fill").map(|f| f.bitwidth), Some(32));
}

#[test]
fn a_mask_of_minus_ten_thousand_is_left_to_calibration() {
    let g = masked_softmax(-1e4);
    let (found, a) = quantize(&g, &mask_ranges(-1e4), &GivenEncodings::new());
    assert!(found.is_empty());
    assert_eq!(bits(&a, "masked"), Some(8));
}

/// The decomposed LayerNorm: (x − mean) / sqrt(mean((x − mean)²) + eps).
fn layer_norm(square: &str) -> Graph {
    let square = match square {
        "pow" => build::node("Pow", "pow", &["centred", "two"], &["squared"]),
        _ => build::node("Mul", "pow", &["centred", "centred"], &["squared"]),
    };
    graph(
        vec![
            build::node("ReduceMean", "mean", &["x"], &["mu"]),
            build::node("Sub", "sub", &["x", "mu"], &["centred"]),
            square,
            build::node("ReduceMean", "var", &["squared"], &["variance"]),
            build::node("Add", "eps", &["variance", "epsilon"], &["shifted"]),
            build::node("Sqrt", "sqrt", &["shifted"], &["std"]),
            build::node("Div", "div", &["centred", "std"], &["y"]),
        ],
        &["x"],
        vec![scalar("two", 2.0), scalar("epsilon", 1e-5)],
        "y",
    )
}

fn layer_norm_ranges() -> BTreeMap<String, MinMax> {
    ranges(&[
        ("x", -30.0, 200.0),
        ("mu", -1.0, 3.0),
        ("centred", -30.0, 197.0),
        ("squared", 0.0, 38809.0),
        ("variance", 0.01, 600.0),
        ("shifted", 0.01, 600.0),
        ("std", 0.1, 24.5),
        ("y", -4.0, 8.0),
    ])
}

#[test]
fn a_variance_path_to_sqrt_is_at_16_bit() {
    for square in ["pow", "mul"] {
        let g = layer_norm(square);
        let (found, a) = quantize(&g, &layer_norm_ranges(), &GivenEncodings::new());
        assert_eq!(found.len(), 1, "{square}");
        assert_eq!(found[0].pattern, Pattern::SquareSum);
        assert_eq!(found[0].at, "sqrt");
        assert_eq!(found[0].precision, Precision::Bits(16));
        assert_eq!(found[0].tensors, ["squared", "variance", "shifted"], "{square}");
        for t in ["squared", "variance", "shifted"] {
            assert_eq!(bits(&a, t), Some(16), "{square} {t}");
        }
        let e = a.encodings.get("variance").unwrap();
        assert_eq!(e.scales[0], 600.0 / 65535.0);
        // The square root's output keeps the default (see `square_sums`).
        for t in ["x", "mu", "centred", "std", "y"] {
            assert_eq!(bits(&a, t), Some(8), "{square} {t}");
        }
    }
}

/// |z| = sqrt(re² + im²), elementwise.
fn magnitude(root: &str) -> Graph {
    let root = match root {
        "sqrt" => build::node("Sqrt", "sqrt", &["power"], &["magnitude"]),
        _ => build::node("Pow", "sqrt", &["power", "half"], &["magnitude"]),
    };
    graph(
        vec![
            build::node("Mul", "re2", &["re", "re"], &["re_squared"]),
            build::node("Mul", "im2", &["im", "im"], &["im_squared"]),
            build::node("Add", "sum", &["re_squared", "im_squared"], &["power"]),
            root,
            build::node("Relu", "relu", &["magnitude"], &["out"]),
        ],
        &["re", "im"],
        vec![scalar("half", 0.5)],
        "out",
    )
}

fn magnitude_ranges() -> BTreeMap<String, MinMax> {
    ranges(&[
        ("re", -4.0, 4.0),
        ("im", -4.0, 4.0),
        ("re_squared", 0.0, 16.0),
        ("im_squared", 0.0, 16.0),
        ("power", 0.0, 32.0),
        ("magnitude", 0.0, 5.66),
        ("out", 0.0, 5.66),
    ])
}

#[test]
fn squares_summed_before_a_square_root_are_at_16_bit() {
    for root in ["sqrt", "pow"] {
        let g = magnitude(root);
        let (found, a) = quantize(&g, &magnitude_ranges(), &GivenEncodings::new());
        assert_eq!(found.len(), 1, "{root}");
        assert_eq!(found[0].tensors, ["re_squared", "im_squared", "power"], "{root}");
        for t in ["re_squared", "im_squared", "power"] {
            assert_eq!(bits(&a, t), Some(16), "{root} {t}");
        }
        // The magnitude is the next layer's input: it keeps the default (see `square_sums`).
        for t in ["re", "im", "magnitude", "out"] {
            assert_eq!(bits(&a, t), Some(8), "{root} {t}");
        }
    }
}

#[test]
fn a_square_root_of_anything_else_is_unchanged() {
    // sqrt(re·im + im²): one term is not a square.
    let g = graph(
        vec![
            build::node("Mul", "reim", &["re", "im"], &["re_squared"]),
            build::node("Mul", "im2", &["im", "im"], &["im_squared"]),
            build::node("Add", "sum", &["re_squared", "im_squared"], &["power"]),
            build::node("Sqrt", "sqrt", &["power"], &["magnitude"]),
            build::node("Sqrt", "sqrt_relu", &["re"], &["root"]),
        ],
        &["re", "im"],
        vec![],
        "magnitude",
    );
    let mut observed = magnitude_ranges();
    observed.insert("root".into(), MinMax::of(&[0.0, 2.0]));
    let (found, a) = quantize(&g, &observed, &GivenEncodings::new());
    assert!(found.is_empty());
    assert!(a.encodings.tensors.values().all(|t| t.encoding.bitwidth == 8));
    // Already at 16 bits: nothing to do.
    let g = magnitude("sqrt");
    let l = layout(&g, RuleOptions::default(), &|_| false);
    assert!(find(&g, &l, &magnitude_ranges(), &GivenEncodings::new(), 16).unwrap().is_empty());
}

#[test]
fn a_given_encoding_wins_over_a_pattern() {
    let fixed = Encoding::from_range(0.0, 40.0, &QuantSpec::new(8, Schema::Asymmetric), Origin::Override);
    let mut given = GivenEncodings::new();
    let entry = |given| GivenEncoding { section: Section::Activation, given };
    given.insert("power".into(), entry(Given::Fixed(fixed.clone())));
    given.insert("im_squared".into(), entry(Given::Float { bitwidth: 32 }));
    let (found, a) = quantize(&magnitude("sqrt"), &magnitude_ranges(), &given);
    assert_eq!(found[0].tensors, ["re_squared"]);
    assert_eq!(bits(&a, "re_squared"), Some(16));
    assert_eq!(a.encodings.get("power"), Some(&fixed));
    assert_eq!(a.encodings.floats.get("im_squared").map(|f| f.reason), Some(FloatReason::Given));

    let mut given = GivenEncodings::new();
    given.insert("masked".into(), entry(Given::Fixed(fixed.clone())));
    let (found, a) = quantize(&masked_softmax(f32::MIN), &mask_ranges(f32::MIN), &given);
    assert_eq!(found[0].tensors, ["fill", "bias"]);
    assert_eq!(a.encodings.get("masked"), Some(&fixed));
    assert_eq!(a.encodings.floats.get("bias").map(|f| f.reason), Some(FloatReason::MaskingValue));
}

/// A residual stream: `h = x + f` read by a LayerNorm-like Add and by nothing that multiplies,
/// and `g = Relu(x)` read by a MatMul. Both hold one value in 100 000 at 200 over a bulk in
/// [−1, 1] (anchors.md pattern 2): the residual goes to 16 bit, the MatMul operand stays at the
/// activation bitwidth (its MACs stay 8-bit), and 16-bit activations need no finding.
#[test]
fn isolated_outliers_outside_mac_operands_go_to_16_bit() {
    use ptq_quant::{Histogram, Observer};
    let g = graph(
        vec![
            build::node("Add", "residual", &["x", "f"], &["h"]),
            build::node("Add", "next", &["h", "f"], &["out"]),
            build::node("Relu", "relu", &["x"], &["r"]),
            build::node("MatMul", "mm", &["r", "w"], &["y"]),
        ],
        &["x", "f"],
        vec![build::f32_tensor("w", &[4, 4], &[0.5; 16])],
        "out",
    );
    let mut bulk: Vec<f32> = (0..100_000).map(|i| -1.0 + 2.0 * i as f32 / 100_000.0).collect();
    bulk.push(200.0);
    let mut histograms = BTreeMap::new();
    for t in ["h", "r"] {
        histograms.insert(t.to_string(), Histogram::of(&bulk));
    }
    histograms.insert("x".to_string(), Histogram::of(&bulk[..100_000]));
    let l = layout(&g, RuleOptions::default(), &|_| false);
    let found = ptq_quant::patterns::sixteen_bit_activations(&g, &l, &histograms, &GivenEncodings::new(), 8);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].pattern, found[0].precision), (Pattern::Outliers, Precision::Bits(16)));
    assert_eq!(found[0].tensors, vec!["h".to_string()]);
    assert!(
        ptq_quant::patterns::sixteen_bit_activations(&g, &l, &histograms, &GivenEncodings::new(), 16)
            .is_empty()
    );
    // Without the outlier nothing is found.
    let mut h = Histogram::default();
    h.observe(&bulk[..100_000]);
    histograms.insert("h".to_string(), h);
    assert!(
        ptq_quant::patterns::sixteen_bit_activations(&g, &l, &histograms, &GivenEncodings::new(), 8)
            .is_empty()
    );
}

/// A post-norm transformer block: `h = x + (m + b)` enters a LayerNormalization whose output a
/// MatMul reads, and a decomposed norm `v − ReduceMean(v)`. What the norms normalise (`h`,
/// `v`) and the branch summed into `h` (`d = m + b`) go to 16 bit, found without any outlier;
/// the MatMul's operands stay at the activation bitwidth.
#[test]
fn the_residual_stream_into_layer_norms_goes_to_16_bit() {
    use ptq_quant::Histogram;
    let g = graph(
        vec![
            build::node("MatMul", "mm", &["x", "w"], &["m"]),
            build::node("Add", "bias", &["m", "b"], &["d"]),
            build::node("Add", "residual", &["x", "d"], &["h"]),
            build::node("LayerNormalization", "ln", &["h", "gamma"], &["n"]),
            build::node("MatMul", "next", &["n", "w2"], &["v"]),
            build::node("ReduceMean", "mean", &["v"], &["mu"]),
            build::node("Sub", "centre", &["v", "mu"], &["out"]),
        ],
        &["x"],
        vec![
            build::f32_tensor("w", &[4, 4], &[0.5; 16]),
            build::f32_tensor("w2", &[4, 4], &[0.25; 16]),
            build::f32_tensor("b", &[4], &[0.1; 4]),
            build::f32_tensor("gamma", &[4], &[1.0; 4]),
        ],
        "out",
    );
    let bulk: Vec<f32> = (0..1000).map(|i| -1.0 + 2.0 * i as f32 / 1000.0).collect();
    let histograms: BTreeMap<String, Histogram> = ["x", "m", "d", "h", "n", "v", "mu", "out"]
        .iter()
        .map(|t| (t.to_string(), Histogram::of(&bulk)))
        .collect();
    let l = layout(&g, RuleOptions::default(), &|_| false);
    let found = ptq_quant::patterns::sixteen_bit_activations(&g, &l, &histograms, &GivenEncodings::new(), 8);
    let wide: Vec<&str> = found.iter().flat_map(|f| f.tensors.iter().map(String::as_str)).collect();
    assert!(found.iter().all(|f| (f.pattern, f.precision) == (Pattern::ResidualStream, Precision::Bits(16))));
    for t in ["d", "h", "v"] {
        assert!(wide.contains(&t), "{t} in {wide:?}");
    }
    for t in ["x", "n", "m"] {
        assert!(!wide.contains(&t), "{t} is read by a MatMul or not in the stream: {wide:?}");
    }
    assert!(
        ptq_quant::patterns::sixteen_bit_activations(&g, &l, &histograms, &GivenEncodings::new(), 16)
            .is_empty()
    );
}
