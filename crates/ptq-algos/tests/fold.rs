//! Layer folding (BatchNormalization, bias Add/Sub, scale Mul) on small hand-built graphs and on
//! the shared models.
//!
//! Hand-built cases check the folded values against numbers worked out in the comments, and
//! check that the folded model computes what the original did with a tiny reference evaluator
//! (Conv, ConvTranspose, Gemm, MatMul, BatchNormalization, Relu, broadcasting Add/Sub/Mul,
//! Reshape, Unsqueeze in f64) written here, not in the crate.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use ptq_algos::{Folded, Follower, fold_layers};
use ptq_ir::{Graph, Source, int_attribute};
use ptq_onnx::build::{self, constant_node, f32_tensor_float_data, node, untyped_value};
use ptq_onnx::proto::{ModelProto, NodeProto, TensorProto};

// ---------------------------------------------------------------------------------------------
// Building models

fn bn(name: &str, x: &str, prefix: &str, output: &str, epsilon: f32) -> NodeProto {
    let p = |s: &str| format!("{prefix}.{s}");
    let mut n =
        node("BatchNormalization", name, &[x, &p("scale"), &p("B"), &p("mean"), &p("var")], &[output]);
    n.attribute.push(build::float_attribute("epsilon", epsilon));
    n
}

/// Scale, B, mean, var initializers of the BN whose tensors start with `prefix`.
fn bn_params(prefix: &str, scale: &[f32], b: &[f32], mean: &[f32], var: &[f32]) -> Vec<TensorProto> {
    let n = scale.len() as i64;
    [("scale", scale), ("B", b), ("mean", mean), ("var", var)]
        .into_iter()
        .map(|(s, v)| f32_tensor_float_data(&format!("{prefix}.{s}"), &[n], v))
        .collect()
}

/// `input` → `nodes` → `y` at opset 13, the input and output untyped.
fn model(input: &str, nodes: Vec<NodeProto>, initializers: Vec<TensorProto>) -> ModelProto {
    build::model(13, nodes, vec![untyped_value(input)], vec![untyped_value("y")], initializers)
}

fn fold(m: &ModelProto) -> (Folded, Graph) {
    fold_keeping(m, &|_| false)
}

fn fold_keeping(m: &ModelProto, keep: &dyn Fn(&str) -> bool) -> (Folded, Graph) {
    let folded = fold_layers(m, Path::new("."), keep).unwrap();
    let after = Graph::new(&folded.model, Path::new(".")).expect("the folded model is a valid graph");
    (folded, after)
}

/// The folded followers' names, in order.
fn followers(f: &Folded) -> Vec<&str> {
    f.folded.iter().map(|x| x.follower.as_str()).collect()
}

fn values(g: &Graph, name: &str) -> Vec<f32> {
    g.constant(name).unwrap().to_f32().unwrap()
}

fn assert_close(actual: &[f32], expected: &[f64], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!((f64::from(*a) - e).abs() <= 1e-6 * e.abs().max(1.0), "{what}[{i}]: {a} vs {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// A reference evaluator, f64, for the few ops these tests use (stride 1, no padding).

#[derive(Clone, Debug)]
struct Arr {
    shape: Vec<usize>,
    data: Vec<f64>,
}

fn eval(m: &ModelProto, feeds: &[(&str, Arr)]) -> Vec<Arr> {
    let g = Graph::new(m, Path::new(".")).unwrap();
    let mut env: HashMap<String, Arr> = feeds.iter().map(|(n, a)| (n.to_string(), a.clone())).collect();
    for t in g.tensors().filter(|t| t.is_constant()) {
        let c = g.constant(&t.name).unwrap();
        let data = c.to_f32().unwrap().into_iter().map(f64::from).collect();
        env.insert(t.name.clone(), Arr { shape: c.shape.clone(), data });
    }
    for n in g.nodes().filter(|n| n.op_type != "Constant") {
        let p = &g.proto().node[n.index];
        let attr_i = |name: &str, d: i64| p.attribute.iter().find(|a| a.name() == name).map_or(d, |a| a.i());
        let attr_f = |name: &str, d: f32| p.attribute.iter().find(|a| a.name() == name).map_or(d, |a| a.f());
        let input = |i: usize| n.inputs.get(i).filter(|s| !s.is_empty()).map(|s| env[s].clone());
        let out = match n.op_type.as_str() {
            "Conv" => conv(&input(0).unwrap(), &input(1).unwrap(), input(2), attr_i("group", 1) as usize),
            "ConvTranspose" => {
                conv_transpose(&input(0).unwrap(), &input(1).unwrap(), input(2), attr_i("group", 1) as usize)
            }
            "Gemm" => gemm(
                &input(0).unwrap(),
                &input(1).unwrap(),
                input(2),
                f64::from(attr_f("alpha", 1.0)),
                f64::from(attr_f("beta", 1.0)),
                attr_i("transB", 0) != 0,
            ),
            "BatchNormalization" => {
                let x = input(0).unwrap();
                let [s, b, mean, var] = [1, 2, 3, 4].map(|i| input(i).unwrap().data);
                let eps = f64::from(attr_f("epsilon", 1e-5));
                let inner: usize = x.shape[2..].iter().product();
                let c = x.shape[1];
                let data = (0..x.data.len())
                    .map(|i| {
                        let ch = (i / inner) % c;
                        (x.data[i] - mean[ch]) / (var[ch] + eps).sqrt() * s[ch] + b[ch]
                    })
                    .collect();
                Arr { shape: x.shape.clone(), data }
            }
            "Relu" => {
                let x = input(0).unwrap();
                Arr { shape: x.shape.clone(), data: x.data.iter().map(|v| v.max(0.0)).collect() }
            }
            "MatMul" => {
                let (a, b) = (input(0).unwrap(), input(1).unwrap());
                gemm(&a, &b, None, 1.0, 1.0, false)
            }
            "Add" => broadcast(&input(0).unwrap(), &input(1).unwrap(), |a, b| a + b),
            "Sub" => broadcast(&input(0).unwrap(), &input(1).unwrap(), |a, b| a - b),
            "Mul" => broadcast(&input(0).unwrap(), &input(1).unwrap(), |a, b| a * b),
            "Reshape" => {
                let (x, shape) = (input(0).unwrap(), input(1).unwrap());
                let known: f64 = shape.data.iter().filter(|&&d| d >= 0.0).product();
                let len = x.data.len() as f64;
                let shape: Vec<usize> =
                    shape.data.iter().map(|&d| if d < 0.0 { len / known } else { d } as usize).collect();
                assert_eq!(shape.iter().product::<usize>(), x.data.len(), "the test evaluator's Reshape");
                Arr { shape, data: x.data }
            }
            "Unsqueeze" => {
                let (x, axes) = (input(0).unwrap(), input(1).unwrap());
                let mut shape = x.shape.clone();
                let mut axes: Vec<usize> = axes.data.iter().map(|&a| a as usize).collect();
                axes.sort_unstable();
                for a in axes {
                    shape.insert(a, 1);
                }
                Arr { shape, data: x.data }
            }
            op => panic!("the test evaluator has no {op}"),
        };
        env.insert(n.outputs[0].clone(), out);
    }
    g.outputs.iter().map(|o| env[o].clone()).collect()
}

/// `f(a, b)` elementwise with ONNX (numpy) broadcasting.
fn broadcast(a: &Arr, b: &Arr, f: impl Fn(f64, f64) -> f64) -> Arr {
    let rank = a.shape.len().max(b.shape.len());
    let aligned = |s: &[usize]| [vec![1; rank - s.len()], s.to_vec()].concat();
    let (sa, sb) = (aligned(&a.shape), aligned(&b.shape));
    let shape: Vec<usize> = sa
        .iter()
        .zip(&sb)
        .map(|(&x, &y)| {
            assert!(x == y || x == 1 || y == 1, "{:?} and {:?} do not broadcast", a.shape, b.shape);
            x.max(y)
        })
        .collect();
    // The flat index into an operand of shape `s` of the output's flat index `i`.
    let index = |s: &[usize], mut i: usize| {
        let (mut at, mut stride) = (0, 1);
        for k in (0..rank).rev() {
            let coordinate = i % shape[k];
            i /= shape[k];
            if s[k] != 1 {
                at += coordinate * stride;
            }
            stride *= s[k];
        }
        at
    };
    let len = shape.iter().product();
    let data = (0..len).map(|i| f(a.data[index(&sa, i)], b.data[index(&sb, i)])).collect();
    Arr { shape, data }
}

fn conv(x: &Arr, w: &Arr, b: Option<Arr>, group: usize) -> Arr {
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let (o, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    assert_eq!(c, cg * group);
    let (oh, ow) = (h - kh + 1, wd - kw + 1);
    let mut y = vec![0.0; n * o * oh * ow];
    for ni in 0..n {
        for oc in 0..o {
            let gi = oc / (o / group);
            for yh in 0..oh {
                for yw in 0..ow {
                    let mut acc = b.as_ref().map_or(0.0, |b| b.data[oc]);
                    for ic in 0..cg {
                        for a in 0..kh {
                            for bb in 0..kw {
                                let xv = x.data[((ni * c + gi * cg + ic) * h + yh + a) * wd + yw + bb];
                                acc += xv * w.data[((oc * cg + ic) * kh + a) * kw + bb];
                            }
                        }
                    }
                    y[((ni * o + oc) * oh + yh) * ow + yw] = acc;
                }
            }
        }
    }
    Arr { shape: vec![n, o, oh, ow], data: y }
}

fn conv_transpose(x: &Arr, w: &Arr, b: Option<Arr>, group: usize) -> Arr {
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let (ci, og, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    assert_eq!(c, ci);
    let (o, oh, ow) = (og * group, h + kh - 1, wd + kw - 1);
    let mut y = vec![0.0; n * o * oh * ow];
    for ni in 0..n {
        for ic in 0..c {
            let gi = ic / (c / group);
            for j in 0..og {
                let oc = gi * og + j;
                for xh in 0..h {
                    for xw in 0..wd {
                        let xv = x.data[((ni * c + ic) * h + xh) * wd + xw];
                        for a in 0..kh {
                            for bb in 0..kw {
                                y[((ni * o + oc) * oh + xh + a) * ow + xw + bb] +=
                                    xv * w.data[((ic * og + j) * kh + a) * kw + bb];
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some(b) = b {
        for (i, v) in y.iter_mut().enumerate() {
            *v += b.data[(i / (oh * ow)) % o];
        }
    }
    Arr { shape: vec![n, o, oh, ow], data: y }
}

fn gemm(a: &Arr, b: &Arr, c: Option<Arr>, alpha: f64, beta: f64, trans_b: bool) -> Arr {
    let (m, k) = (a.shape[0], a.shape[1]);
    let nn = if trans_b { b.shape[0] } else { b.shape[1] };
    let mut y = vec![0.0; m * nn];
    for i in 0..m {
        for j in 0..nn {
            let mut acc = 0.0;
            for l in 0..k {
                let bv = if trans_b { b.data[j * k + l] } else { b.data[l * nn + j] };
                acc += a.data[i * k + l] * bv;
            }
            let cv = c.as_ref().map_or(0.0, |c| if c.data.len() == 1 { c.data[0] } else { c.data[j] });
            y[i * nn + j] = alpha * acc + beta * cv;
        }
    }
    Arr { shape: vec![m, nn], data: y }
}

/// Deterministic values in [-1, 1).
fn pseudo_random(len: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
        })
        .collect()
}

fn assert_same_outputs(original: &ModelProto, folded: &ModelProto, feeds: &[(&str, Arr)]) {
    let (a, b) = (eval(original, feeds), eval(folded, feeds));
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(a.shape, b.shape);
        let max = a.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let err = a.data.iter().zip(&b.data).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
        assert!(err <= 1e-6 * max.max(1.0), "max |a - b| = {err} (max |a| = {max})");
    }
}

fn initializer_names(m: &ModelProto) -> BTreeSet<String> {
    m.graph.as_ref().unwrap().initializer.iter().map(|t| t.name().to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------
// Conv

/// x[1,2,3,3] → Conv "conv1" (W [2,2,1,1], b) → BN (epsilon 0.25) → Relu → y.
fn conv_bn_model(with_bias: bool) -> ModelProto {
    let mut inits = vec![f32_tensor_float_data("W", &[2, 2, 1, 1], &[1.0, 2.0, 3.0, 4.0])];
    let mut conv_inputs = vec!["x", "W"];
    if with_bias {
        inits.push(f32_tensor_float_data("b", &[2], &[0.5, -1.0]));
        conv_inputs.push("b");
    }
    inits.extend(bn_params("bn", &[2.0, 0.5], &[0.1, 0.2], &[1.0, -2.0], &[3.75, 0.75]));
    model(
        "x",
        vec![
            node("Conv", "conv1", &conv_inputs, &["conv_out"]),
            bn("bn1", "conv_out", "bn", "bn_out", 0.25),
            node("Relu", "relu", &["bn_out"], &["y"]),
        ],
        inits,
    )
}

fn x_feed() -> Arr {
    Arr { shape: vec![1, 2, 3, 3], data: pseudo_random(18, 1) }
}

#[test]
fn conv_bn_folds_to_hand_computed_values() {
    let m = conv_bn_model(true);
    let (f, g) = fold(&m);
    assert_eq!(followers(&f), ["bn1"]);
    assert!(f.skipped.is_empty());

    // s = scale / sqrt(var + eps) = [2 / sqrt(4), 0.5 / sqrt(1)] = [1, 0.5]
    // W' = W · s per output channel = [[1, 2], [3·0.5, 4·0.5]] = [1, 2, 1.5, 2]
    // b' = (b − mean)·s + B = [(0.5 − 1)·1 + 0.1, (−1 + 2)·0.5 + 0.2] = [−0.4, 0.7]
    assert_close(&values(&g, "W"), &[1.0, 2.0, 1.5, 2.0], "W");
    assert_close(&values(&g, "b"), &[-0.4, 0.7], "b");
    assert_eq!(g.constant("W").unwrap().shape, [2, 2, 1, 1]);

    // Names: the conv keeps its node, weight and bias names and writes the BN's output.
    let conv = g.node_by_name("conv1").unwrap();
    assert_eq!(conv.inputs, ["x", "W", "b"]);
    assert_eq!(conv.outputs, ["bn_out"]);
    assert!(g.node_by_name("bn1").is_none());
    assert!(g.tensor("conv_out").is_none(), "the conv's old output name is gone");
    assert_eq!(g.consumers("bn_out").map(|n| n.name.clone()).collect::<Vec<_>>(), ["relu"]);
    assert_eq!(g.nodes().count(), 2);
    // The BN parameters went with the BN.
    assert_eq!(initializer_names(&f.model), BTreeSet::from(["W".to_owned(), "b".to_owned()]));

    assert_same_outputs(&m, &f.model, &[("x", x_feed())]);
}

#[test]
fn conv_without_bias_gets_node_name_bias() {
    let m = conv_bn_model(false);
    let (f, g) = fold(&m);
    assert_eq!(followers(&f), ["bn1"]);
    let conv = g.node_by_name("conv1").unwrap();
    assert_eq!(conv.inputs, ["x", "W", "conv1_bias"]);
    // b' = (0 − mean)·s + B = [−1·1 + 0.1, 2·0.5 + 0.2] = [−0.9, 1.2]
    assert_close(&values(&g, "conv1_bias"), &[-0.9, 1.2], "conv1_bias");
    assert_eq!(g.constant("conv1_bias").unwrap().shape, [2]);
    assert_same_outputs(&m, &f.model, &[("x", x_feed())]);
}

#[test]
fn unnamed_conv_bias_is_named_after_its_output_and_names_do_not_clash() {
    let mut m = conv_bn_model(false);
    let graph = m.graph.as_mut().unwrap();
    graph.node[0].name = None;
    let (f, g) = fold(&m);
    assert_eq!(followers(&f), ["bn1"]);
    assert_eq!(g.nodes().next().unwrap().inputs, ["x", "W", "conv_out_bias"]);

    // A tensor already called conv1_bias: the new bias takes the next free name.
    let mut m = conv_bn_model(false);
    m.graph.as_mut().unwrap().initializer.push(f32_tensor_float_data("conv1_bias", &[1], &[0.0]));
    let (_, g) = fold(&m);
    assert_eq!(g.node_by_name("conv1").unwrap().inputs, ["x", "W", "conv1_bias_1"]);
}

#[test]
fn conv_with_constant_node_weights_folds_into_initializers() {
    // ppocr stores every weight and BN parameter in Constant nodes.
    let mut m = conv_bn_model(true);
    let graph = m.graph.as_mut().unwrap();
    let consts: Vec<NodeProto> = graph
        .initializer
        .drain(..)
        .map(|t| {
            let output = t.name().to_owned();
            constant_node(&format!("{output}_const"), &output, t)
        })
        .collect();
    graph.node.splice(0..0, consts);
    let before = Graph::new(&m, Path::new(".")).unwrap();
    assert!(matches!(before.tensor("W").unwrap().source, Source::ConstantNode(_)));

    let (f, g) = fold(&m);
    assert_eq!(followers(&f), ["bn1"]);
    // The weight and bias Constant nodes are replaced by initializers of the same names; the
    // BN parameter Constant nodes are gone.
    assert!(matches!(g.tensor("W").unwrap().source, Source::Initializer(_)));
    assert!(matches!(g.tensor("b").unwrap().source, Source::Initializer(_)));
    assert_eq!(g.nodes().map(|n| n.name.clone()).collect::<Vec<_>>(), ["conv1", "relu"]);
    assert_close(&values(&g, "W"), &[1.0, 2.0, 1.5, 2.0], "W");
    assert_close(&values(&g, "b"), &[-0.4, 0.7], "b");
    assert_same_outputs(&m, &f.model, &[("x", x_feed())]);
}

#[test]
fn grouped_conv_folds_per_output_channel() {
    // Depthwise 2×2 conv, 4 channels, group 4, then BN with default epsilon.
    let w: Vec<f32> = pseudo_random(16, 3).iter().map(|&v| v as f32).collect();
    let mut inits = vec![f32_tensor_float_data("W", &[4, 1, 2, 2], &w)];
    inits.extend(bn_params(
        "bn",
        &[0.5, 1.5, -2.0, 1.0],
        &[0.0, 0.3, -0.2, 1.0],
        &[0.1, -0.4, 0.0, 2.0],
        &[1.0, 0.2, 3.0, 0.01],
    ));
    let mut conv = node("Conv", "dw", &["x", "W"], &["c"]);
    conv.attribute.push(int_attribute("group", 4));
    let m = model("x", vec![conv, bn("bn1", "c", "bn", "y", 1e-5)], inits);
    let (f, _) = fold(&m);
    assert_eq!(followers(&f), ["bn1"]);
    let x = Arr { shape: vec![1, 4, 3, 3], data: pseudo_random(36, 4) };
    assert_same_outputs(&m, &f.model, &[("x", x)]);
}

// ---------------------------------------------------------------------------------------------
// ConvTranspose

fn conv_transpose_model(group: usize, with_bias: bool) -> ModelProto {
    // x [1, 4, 2, 2]; W [4, 3, 2, 2] → 3·group output channels.
    let out = 3 * group;
    let w: Vec<f32> = pseudo_random(4 * 3 * 4, 5).iter().map(|&v| v as f32).collect();
    let mut inits = vec![f32_tensor_float_data("W", &[4, 3, 2, 2], &w)];
    let mut inputs = vec!["x", "W"];
    if with_bias {
        let b: Vec<f32> = pseudo_random(out, 6).iter().map(|&v| v as f32).collect();
        inits.push(f32_tensor_float_data("b", &[out as i64], &b));
        inputs.push("b");
    }
    let p = |seed: u64, offset: f64| -> Vec<f32> {
        pseudo_random(out, seed).iter().map(|v| (v + offset) as f32).collect()
    };
    inits.extend(bn_params("bn", &p(7, 0.0), &p(8, 0.0), &p(9, 0.0), &p(10, 1.5)));
    let mut ct = node("ConvTranspose", "up", &inputs, &["u"]);
    ct.attribute.push(int_attribute("group", group as i64));
    model("x", vec![ct, bn("bn1", "u", "bn", "y", 1e-5)], inits)
}

#[test]
fn conv_transpose_folds_along_axis_1_per_group() {
    for (group, with_bias) in [(1, true), (1, false), (2, true), (4, false)] {
        let m = conv_transpose_model(group, with_bias);
        let (f, g) = fold(&m);
        assert_eq!(followers(&f), ["bn1"], "group {group}");
        let bias = if with_bias { "b" } else { "up_bias" };
        assert_eq!(g.node_by_name("up").unwrap().inputs, ["x", "W", bias]);
        assert_eq!(g.constant(bias).unwrap().shape, [3 * group]);
        let x = Arr { shape: vec![1, 4, 2, 2], data: pseudo_random(16, 11) };
        assert_same_outputs(&m, &f.model, &[("x", x)]);
    }
}

#[test]
fn conv_transpose_group_2_hand_values() {
    // W [2, 1, 1, 1] = [3, 5], group 2: input channel 0 feeds output 0, input 1 feeds output 1.
    // BN s = scale / sqrt(var + eps) with eps 0: [2 / 2, 3 / 1] = [1, 3] ⇒ W' = [3, 15].
    let mut inits = vec![f32_tensor_float_data("W", &[2, 1, 1, 1], &[3.0, 5.0])];
    inits.extend(bn_params("bn", &[2.0, 3.0], &[0.0, 1.0], &[1.0, 0.0], &[4.0, 1.0]));
    let mut ct = node("ConvTranspose", "up", &["x", "W"], &["u"]);
    ct.attribute.push(int_attribute("group", 2));
    let m = model("x", vec![ct, bn("bn1", "u", "bn", "y", 0.0)], inits);
    let (_, g) = fold(&m);
    assert_close(&values(&g, "W"), &[3.0, 15.0], "W");
    // b' = (0 − mean)·s + B = [−1·1 + 0, 0·3 + 1] = [−1, 1]
    assert_close(&values(&g, "up_bias"), &[-1.0, 1.0], "up_bias");
}

// ---------------------------------------------------------------------------------------------
// Gemm

/// a [2, 3] → Gemm "fc" (alpha 2, beta 0.5) → BN (epsilon 0) → y; N = 2 outputs.
fn gemm_model(trans_b: bool, c: Option<(&[i64], &[f32])>) -> ModelProto {
    // The weight as [K=3, N=2]: columns [1, 2, 3] and [4, 5, 6].
    let w: &[f32] = if trans_b { &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0] } else { &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0] };
    let dims: &[i64] = if trans_b { &[2, 3] } else { &[3, 2] };
    let mut inits = vec![f32_tensor_float_data("fc.W", dims, w)];
    let mut inputs = vec!["a", "fc.W"];
    if let Some((dims, v)) = c {
        inits.push(f32_tensor_float_data("fc.C", dims, v));
        inputs.push("fc.C");
    }
    // s = [3 / sqrt(9), 4 / sqrt(4)] = [1, 2]
    inits.extend(bn_params("bn", &[3.0, 4.0], &[0.5, -0.5], &[1.0, 2.0], &[9.0, 4.0]));
    let mut fc = node("Gemm", "fc", &inputs, &["h"]);
    fc.attribute = vec![
        build::float_attribute("alpha", 2.0),
        build::float_attribute("beta", 0.5),
        int_attribute("transB", trans_b as i64),
    ];
    model("a", vec![fc, bn("bn1", "h", "bn", "y", 0.0)], inits)
}

fn a_feed() -> Arr {
    Arr { shape: vec![2, 3], data: pseudo_random(6, 12) }
}

#[test]
fn gemm_trans_b_1_folds_per_row_of_the_weight() {
    let m = gemm_model(true, Some((&[2], &[4.0, -2.0])));
    let (f, g) = fold(&m);
    assert_eq!(followers(&f), ["bn1"]);
    // Rows are outputs: W' = [[1, 2, 3]·1, [4, 5, 6]·2]
    assert_close(&values(&g, "fc.W"), &[1.0, 2.0, 3.0, 8.0, 10.0, 12.0], "fc.W");
    // C' = (beta·C − mean)·s + B = [(2 − 1)·1 + 0.5, (−1 − 2)·2 − 0.5] = [1.5, −6.5]
    assert_close(&values(&g, "fc.C"), &[1.5, -6.5], "fc.C");
    let fc = g.node_by_name("fc").unwrap();
    assert_eq!(fc.inputs, ["a", "fc.W", "fc.C"]);
    assert_eq!(fc.outputs, ["y"]);
    let p = &g.proto().node[fc.index];
    let beta = p.attribute.iter().find(|a| a.name() == "beta").map_or(1.0, |a| a.f());
    let alpha = p.attribute.iter().find(|a| a.name() == "alpha").unwrap().f();
    assert_eq!((alpha, beta), (2.0, 1.0), "alpha kept, beta set to 1");
    assert_same_outputs(&m, &f.model, &[("a", a_feed())]);
}

#[test]
fn gemm_trans_b_0_folds_per_column_of_the_weight() {
    let m = gemm_model(false, Some((&[2], &[4.0, -2.0])));
    let (f, g) = fold(&m);
    assert_eq!(followers(&f), ["bn1"]);
    // [K, N]: column n scaled by s[n] = [1, 2]: [[1, 8], [2, 10], [3, 12]]
    assert_close(&values(&g, "fc.W"), &[1.0, 8.0, 2.0, 10.0, 3.0, 12.0], "fc.W");
    assert_close(&values(&g, "fc.C"), &[1.5, -6.5], "fc.C");
    assert_same_outputs(&m, &f.model, &[("a", a_feed())]);
}

#[test]
fn gemm_with_scalar_or_no_bias() {
    // Scalar C = 4: beta·C = 2 for both outputs; C' = [(2 − 1)·1 + 0.5, (2 − 2)·2 − 0.5] = [1.5, −0.5]
    let m = gemm_model(true, Some((&[], &[4.0])));
    let (f, g) = fold(&m);
    assert_eq!(followers(&f), ["bn1"]);
    assert_close(&values(&g, "fc.C"), &[1.5, -0.5], "fc.C");
    assert_eq!(g.constant("fc.C").unwrap().shape, [2]);
    assert_same_outputs(&m, &f.model, &[("a", a_feed())]);

    // No C: C' = (−mean)·s + B = [−1 + 0.5, −4 − 0.5] = [−0.5, −4.5], named fc_bias.
    let m = gemm_model(false, None);
    let (f, g) = fold(&m);
    assert_eq!(g.node_by_name("fc").unwrap().inputs, ["a", "fc.W", "fc_bias"]);
    assert_close(&values(&g, "fc_bias"), &[-0.5, -4.5], "fc_bias");
    assert_same_outputs(&m, &f.model, &[("a", a_feed())]);
}

#[test]
fn gemm_with_a_2d_bias_is_left_alone() {
    let m = gemm_model(true, Some((&[2, 2], &[1.0, 2.0, 3.0, 4.0])));
    let (f, g) = fold(&m);
    assert!(f.folded.is_empty());
    assert_eq!(f.skipped.len(), 1);
    assert!(f.skipped[0].reason.contains("fc.C"), "{}", f.skipped[0].reason);
    assert_eq!(f.model, m);
    assert!(g.node_by_name("bn1").is_some());
}

// ---------------------------------------------------------------------------------------------
// Add, Sub and Mul of a per-channel constant

const INT64: i32 = 7;

fn i64_tensor(name: &str, dims: &[i64], values: &[i64]) -> TensorProto {
    build::raw_tensor(name, INT64, dims, values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// x[1,2,3,3] → Conv "conv1" (W [2,2,1,1] = [1, 2, 3, 4], b = [0.5, −1] when `with_bias`) →
/// `conv_out` → `rest` (which writes y).
fn conv_model(with_bias: bool, rest: Vec<NodeProto>, constants: Vec<TensorProto>) -> ModelProto {
    let mut inits = vec![f32_tensor_float_data("W", &[2, 2, 1, 1], &[1.0, 2.0, 3.0, 4.0])];
    let mut conv_inputs = vec!["x", "W"];
    if with_bias {
        inits.push(f32_tensor_float_data("b", &[2], &[0.5, -1.0]));
        conv_inputs.push("b");
    }
    inits.extend(constants);
    let mut nodes = vec![node("Conv", "conv1", &conv_inputs, &["conv_out"])];
    nodes.extend(rest);
    model("x", nodes, inits)
}

/// conv_out → `op`(conv_out, C) → y, C an initializer of `dims`.
fn conv_then(op: &str, with_bias: bool, dims: &[i64], c: &[f32]) -> ModelProto {
    conv_model(
        with_bias,
        vec![node(op, "follower", &["conv_out", "C"], &["y"])],
        vec![f32_tensor_float_data("C", dims, c)],
    )
}

fn node_names(g: &Graph) -> Vec<String> {
    g.nodes().map(|n| n.name.clone()).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn conv_add_of_a_1c11_constant_becomes_the_bias() {
    let m = conv_then("Add", false, &[1, 2, 1, 1], &[0.25, 2.0]);
    let (f, g) = fold(&m);
    assert_eq!(
        f.folded,
        [ptq_algos::Fold { layer: "conv1".into(), follower: "follower".into(), kind: Follower::Add }]
    );
    assert!(f.skipped.is_empty());
    let conv = g.node_by_name("conv1").unwrap();
    assert_eq!(conv.inputs, ["x", "W", "conv1_bias"]);
    assert_eq!(conv.outputs, ["y"]);
    assert_eq!(node_names(&g), ["conv1"]);
    assert_close(&values(&g, "W"), &[1.0, 2.0, 3.0, 4.0], "W");
    assert_close(&values(&g, "conv1_bias"), &[0.25, 2.0], "conv1_bias");
    assert_eq!(g.constant("conv1_bias").unwrap().shape, [2]);
    assert_eq!(initializer_names(&f.model), set(&["W", "conv1_bias"]), "C went with the Add");
    assert_same_outputs(&m, &f.model, &[("x", x_feed())]);
}

#[test]
fn conv_add_with_an_existing_bias_adds_to_it() {
    let m = conv_then("Add", true, &[1, 2, 1, 1], &[0.25, 2.0]);
    let (f, g) = fold(&m);
    assert_eq!(followers(&f), ["follower"]);
    assert_eq!(g.node_by_name("conv1").unwrap().inputs, ["x", "W", "b"]);
    // b' = b + C = [0.5 + 0.25, −1 + 2]
    assert_close(&values(&g, "b"), &[0.75, 1.0], "b");
    assert_same_outputs(&m, &f.model, &[("x", x_feed())]);
}

#[test]
fn conv_add_and_sub_of_a_scalar_fold() {
    for (op, dims) in [("Add", &[][..]), ("Add", &[1][..]), ("Sub", &[1, 1, 1, 1][..])] {
        let m = conv_then(op, true, dims, &[3.0]);
        let (f, g) = fold(&m);
        assert_eq!(followers(&f), ["follower"], "{op} {dims:?}");
        // b' = b ± 3 on every channel
        let expected = if op == "Add" { [3.5, 2.0] } else { [-2.5, -4.0] };
        assert_close(&values(&g, "b"), &expected, "b");
        assert_same_outputs(&m, &f.model, &[("x", x_feed())]);
    }
}

#[test]
fn sub_with_the_layer_as_subtrahend_negates_the_layer() {
    // y = C − conv = −W·x + (C − b): W' = −W, b' = [0.25 − 0.5, 2 + 1]
    let m = conv_model(
        true,
        vec![node("Sub", "follower", &["C", "conv_out"], &["y"])],
        vec![f32_tensor_float_data("C", &[2, 1, 1], &[0.25, 2.0])],
    );
    let (f, g) = fold(&m);
    assert_eq!(f.folded[0].kind, Follower::Sub);
    assert_close(&values(&g, "W"), &[-1.0, -2.0, -3.0, -4.0], "W");
    assert_close(&values(&g, "b"), &[-0.25, 3.0], "b");
    assert_same_outputs(&m, &f.model, &[("x", x_feed())]);
}

#[test]
fn conv_add_through_a_reshape_of_constant_nodes_removes_the_chain() {
    // paddle2onnx: Add(conv, Reshape(Constant [2], Constant [1, 2, 1, 1])).
    let m = conv_model(
        false,
        vec![
            constant_node("c_value", "c", f32_tensor_float_data("c", &[2], &[0.25, 2.0])),
            constant_node("c_shape", "shape", i64_tensor("shape", &[4], &[1, -1, 1, 1])),
            node("Reshape", "c_reshape", &["c", "shape"], &["c_4d"]),
            node("Add", "follower", &["conv_out", "c_4d"], &["y"]),
        ],
        vec![],
    );
    let (f, g) = fold(&m);
    assert_eq!(followers(&f), ["follower"]);
    assert_eq!(node_names(&g), ["conv1"], "the Reshape and its Constant nodes are gone");
    assert_eq!(initializer_names(&f.model), set(&["W", "conv1_bias"]));
    assert_close(&values(&g, "conv1_bias"), &[0.25, 2.0], "conv1_bias");
    assert_same_outputs(&m, &f.model, &[("x", x_feed())]);
}

#[test]
fn conv_add_through_an_unsqueeze_folds() {
    // Add(Unsqueeze(C [2], axes [0, 2, 3]), conv): the constant first, as some exporters write it.
    let m = conv_model(
        true,
        vec![
            node("Unsqueeze", "c_unsqueeze", &["c", "axes"], &["c_4d"]),
            node("Add", "follower", &["c_4d", "conv_out"], &["y"]),
        ],
        vec![f32_tensor_float_data("c", &[2], &[0.25, 2.0]), i64_tensor("axes", &[3], &[0, 2, 3])],
    );
    let (f, g) = fold(&m);
    assert_eq!(followers(&f), ["follower"]);
    assert_eq!(node_names(&g), ["conv1"]);
    assert_eq!(initializer_names(&f.model), set(&["W", "b"]), "c and axes went with the Unsqueeze");
    assert_close(&values(&g, "b"), &[0.75, 1.0], "b");
    assert_same_outputs(&m, &f.model, &[("x", x_feed())]);
}

#[test]
fn conv_add_of_a_c_vector_on_a_4d_output_is_not_folded() {
    // [2] aligns with the width of [1, 2, 3, 3] (and does not even broadcast against 3); a [3]
    // one does, along the width — not per channel either.
    for (dims, c) in [(&[2][..], &[0.25, 2.0][..]), (&[3][..], &[1.0, 2.0, 3.0][..])] {
        let m = conv_then("Add", true, dims, c);
        let (f, _) = fold(&m);
        assert!(f.folded.is_empty(), "{dims:?}");
        assert!(f.skipped.is_empty(), "an Add that is no bias is not reported");
        assert_eq!(f.model, m);
    }
    // [2, 1, 1] lines up with the channels.
    let m = conv_then("Add", true, &[2, 1, 1], &[0.25, 2.0]);
    assert_eq!(followers(&fold(&m).0), ["follower"]);
}

#[test]
fn conv_mul_of_a_1c11_constant_scales_weight_and_bias() {
    let m = conv_then("Mul", true, &[1, 2, 1, 1], &[2.0, -0.5]);
    let (f, g) = fold(&m);
    assert_eq!(f.folded[0].kind, Follower::Mul);
    // W' = [[1, 2]·2, [3, 4]·(−0.5)], b' = [0.5·2, −1·(−0.5)]
    assert_close(&values(&g, "W"), &[2.0, 4.0, -1.5, -2.0], "W");
    assert_close(&values(&g, "b"), &[1.0, 0.5], "b");
    assert_same_outputs(&m, &f.model, &[("x", x_feed())]);

    // Without a bias, a scale leaves the layer without one.
    let m = conv_then("Mul", false, &[1, 2, 1, 1], &[2.0, -0.5]);
    let (f, g) = fold(&m);
    assert_eq!(g.node_by_name("conv1").unwrap().inputs, ["x", "W"]);
    assert_same_outputs(&m, &f.model, &[("x", x_feed())]);
}

#[test]
fn conv_add_bn_mul_chain_folds_into_the_conv() {
    // conv → Add [1,2,1,1] → BN → Mul [1,2,1,1] → Relu: three rounds, one Conv left.
    let mut inits = bn_params("bn", &[2.0, 0.5], &[0.1, 0.2], &[1.0, -2.0], &[3.75, 0.75]);
    inits.push(f32_tensor_float_data("bias", &[1, 2, 1, 1], &[0.5, -1.0]));
    inits.push(f32_tensor_float_data("scale", &[1, 2, 1, 1], &[3.0, -2.0]));
    let m = conv_model(
        false,
        vec![
            node("Add", "add", &["conv_out", "bias"], &["add_out"]),
            bn("bn1", "add_out", "bn", "bn_out", 0.25),
            node("Mul", "mul", &["bn_out", "scale"], &["mul_out"]),
            node("Relu", "relu", &["mul_out"], &["y"]),
        ],
        inits,
    );
    let (f, g) = fold(&m);
    assert_eq!(followers(&f), ["add", "bn1", "mul"]);
    assert!(f.folded.iter().all(|x| x.layer == "conv1"));
    assert!(f.skipped.is_empty(), "the BN folded in the second round: {:?}", f.skipped);
    assert_eq!(node_names(&g), ["conv1", "relu"]);
    assert_eq!(g.node_by_name("conv1").unwrap().outputs, ["mul_out"]);
    assert_eq!(initializer_names(&f.model), set(&["W", "conv1_bias"]));
    // BN s = [1, 0.5] (as in conv_bn_folds_to_hand_computed_values), then ·[3, −2]: [3, −1]
    // W' = [[1, 2]·3, [3, 4]·(−1)]; b' = ((bias − mean)·s + B)·scale
    //    = [((0.5 − 1)·1 + 0.1)·3, ((−1 + 2)·0.5 + 0.2)·(−2)] = [−1.2, −1.4]
    assert_close(&values(&g, "W"), &[3.0, 6.0, -3.0, -4.0], "W");
    assert_close(&values(&g, "conv1_bias"), &[-1.2, -1.4], "conv1_bias");
    assert_same_outputs(&m, &f.model, &[("x", x_feed())]);
}

#[test]
fn conv_transpose_add_folds_along_its_output_channels() {
    for group in [1, 2] {
        let mut m = conv_transpose_model(group, true);
        let graph = m.graph.as_mut().unwrap();
        // Replace the BN by an Add of a [1, 3·group, 1, 1] constant.
        let c: Vec<f32> = pseudo_random(3 * group, 20).iter().map(|&v| v as f32).collect();
        graph.node[1] = node("Add", "follower", &["u", "C"], &["y"]);
        graph.initializer.retain(|t| !t.name().starts_with("bn."));
        graph.initializer.push(f32_tensor_float_data("C", &[1, 3 * group as i64, 1, 1], &c));
        let (f, g) = fold(&m);
        assert_eq!(followers(&f), ["follower"], "group {group}");
        assert_eq!(node_names(&g), ["up"]);
        let x = Arr { shape: vec![1, 4, 2, 2], data: pseudo_random(16, 11) };
        assert_same_outputs(&m, &f.model, &[("x", x)]);
    }
}

#[test]
fn gemm_add_and_mul_of_an_n_vector_fold() {
    for trans_b in [false, true] {
        for op in ["Add", "Mul"] {
            let mut m = gemm_model(trans_b, Some((&[2], &[4.0, -2.0])));
            let graph = m.graph.as_mut().unwrap();
            graph.node[1] = node(op, "follower", &["h", "D"], &["y"]);
            graph.initializer.retain(|t| !t.name().starts_with("bn."));
            graph.initializer.push(f32_tensor_float_data("D", &[2], &[3.0, -0.5]));
            let (f, g) = fold(&m);
            assert_eq!(followers(&f), ["follower"], "{op} transB {trans_b}");
            assert_eq!(g.node_by_name("fc").unwrap().outputs, ["y"]);
            // beta·C = [2, −1]: Add → [5, −1.5]; Mul → [6, 0.5], columns of W scaled by [3, −0.5].
            let c = if op == "Add" { [5.0, -1.5] } else { [6.0, 0.5] };
            assert_close(&values(&g, "fc.C"), &c, "fc.C");
            if op == "Mul" {
                let w = if trans_b {
                    [3.0, 6.0, 9.0, -2.0, -2.5, -3.0]
                } else {
                    [3.0, -2.0, 6.0, -2.5, 9.0, -3.0]
                };
                assert_close(&values(&g, "fc.W"), &w, "fc.W");
            }
            assert_same_outputs(&m, &f.model, &[("a", a_feed())]);
        }
    }
}

/// a [2, 3] → MatMul "mm" (W [3, 2]) → `op`(·, D [2]) → y.
fn matmul_model(op: &str) -> ModelProto {
    let inits = vec![
        f32_tensor_float_data("mm.W", &[3, 2], &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]),
        f32_tensor_float_data("D", &[2], &[3.0, -0.5]),
    ];
    let nodes = vec![node("MatMul", "mm", &["a", "mm.W"], &["h"]), node(op, "follower", &["h", "D"], &["y"])];
    model("a", nodes, inits)
}

#[test]
fn matmul_mul_scales_the_weight_columns() {
    let m = matmul_model("Mul");
    let (f, g) = fold(&m);
    assert_eq!(followers(&f), ["follower"]);
    let mm = g.node_by_name("mm").unwrap();
    assert_eq!(
        (mm.inputs.as_slice(), mm.outputs.as_slice()),
        (&["a".to_owned(), "mm.W".to_owned()][..], &["y".to_owned()][..])
    );
    assert_close(&values(&g, "mm.W"), &[3.0, -2.0, 6.0, -2.5, 9.0, -3.0], "mm.W");
    assert_eq!(initializer_names(&f.model), set(&["mm.W"]));
    assert_same_outputs(&m, &f.model, &[("a", a_feed())]);
}

#[test]
fn matmul_add_is_left_as_a_fully_connected_layer() {
    let m = matmul_model("Add");
    let (f, _) = fold(&m);
    assert!(f.folded.is_empty());
    assert!(f.skipped.is_empty());
    assert_eq!(f.model, m);
}

#[test]
fn an_add_constant_read_elsewhere_is_kept() {
    let mut m = conv_then("Add", true, &[1, 2, 1, 1], &[0.25, 2.0]);
    let graph = m.graph.as_mut().unwrap();
    graph.node.push(node("Mul", "other", &["x", "C"], &["z"]));
    graph.output.push(untyped_value("z"));
    let (f, g) = fold(&m);
    assert_eq!(followers(&f), ["follower"]);
    assert_eq!(initializer_names(&f.model), set(&["W", "b", "C"]));
    assert_eq!(node_names(&g), ["conv1", "other"]);
    assert_same_outputs(&m, &f.model, &[("x", x_feed())]);
}

#[test]
fn an_add_after_a_layer_output_read_twice_is_not_folded() {
    let mut m = conv_then("Add", true, &[1, 2, 1, 1], &[0.25, 2.0]);
    let graph = m.graph.as_mut().unwrap();
    graph.node.push(node("Relu", "side", &["conv_out"], &["z"]));
    graph.output.push(untyped_value("z"));
    let (f, _) = fold(&m);
    assert!(f.folded.is_empty());
    assert_eq!(f.model, m);
}

#[test]
fn an_add_whose_input_carries_a_given_encoding_is_not_folded() {
    let m = conv_then("Add", true, &[1, 2, 1, 1], &[0.25, 2.0]);
    for kept in ["conv_out", "C"] {
        let (f, _) = fold_keeping(&m, &|t| t == kept);
        assert!(f.folded.is_empty(), "{kept}");
        assert_eq!(f.model, m);
    }
    // The follower's output name survives the fold, so its encoding still applies.
    let (f, _) = fold_keeping(&m, &|t| t == "y");
    assert_eq!(followers(&f), ["follower"]);
}

// ---------------------------------------------------------------------------------------------
// Left alone

fn assert_not_folded(m: &ModelProto, reason_part: &str) {
    let (f, _) = fold(m);
    assert!(f.folded.is_empty(), "folded {:?}", f.folded);
    assert_eq!(f.skipped.len(), 1);
    assert_eq!(f.skipped[0].node, "bn1");
    assert!(f.skipped[0].reason.contains(reason_part), "reason: {}", f.skipped[0].reason);
    assert_eq!(&f.model, m, "a model with nothing folded is unchanged");
}

#[test]
fn conv_output_read_by_another_node_is_not_folded() {
    let mut m = conv_bn_model(true);
    let g = m.graph.as_mut().unwrap();
    g.node.push(node("Relu", "side", &["conv_out"], &["z"]));
    g.output.push(untyped_value("z"));
    assert_not_folded(&m, "also read by `side`");
}

#[test]
fn bn_with_a_non_constant_parameter_is_not_folded() {
    let mut m = conv_bn_model(true);
    let g = m.graph.as_mut().unwrap();
    g.initializer.retain(|t| t.name() != "bn.mean");
    g.input.push(untyped_value("bn.mean"));
    assert_not_folded(&m, "`bn.mean` is not a constant");
}

#[test]
fn conv_output_that_is_a_graph_output_is_not_folded() {
    let mut m = conv_bn_model(true);
    m.graph.as_mut().unwrap().output.push(untyped_value("conv_out"));
    assert_not_folded(&m, "graph output");
}

#[test]
fn shared_weight_is_not_folded() {
    let mut m = conv_bn_model(true);
    let g = m.graph.as_mut().unwrap();
    g.node.push(node("Conv", "conv2", &["x", "W"], &["z"]));
    g.output.push(untyped_value("z"));
    assert_not_folded(&m, "shared with `conv2`");
}

#[test]
fn bn_after_another_op_is_not_folded() {
    let mut m = conv_bn_model(true);
    let g = m.graph.as_mut().unwrap();
    g.node[0] = node("Relu", "conv1", &["x"], &["conv_out"]);
    assert_not_folded(&m, "comes from Relu `conv1`");
}

// ---------------------------------------------------------------------------------------------
// Shared models

fn shared_model(name: &str) -> PathBuf {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models").join(name).join("model.onnx");
    assert!(path.exists(), "the shared model zoo is expected at {}", path.display());
    path
}

/// Folds a shared model: (BNs before, folds by kind, nodes before, nodes after).
fn fold_shared(name: &str) -> (usize, BTreeMap<Follower, usize>, usize, usize) {
    let loaded = ptq_onnx::load(&shared_model(name)).unwrap();
    let g = Graph::new(&loaded.model, loaded.dir()).unwrap();
    let bns = g.nodes().filter(|n| n.op_type == "BatchNormalization").count();
    let f = fold_layers(&loaded.model, loaded.dir(), &|_| false).unwrap();
    let after = Graph::new(&f.model, loaded.dir()).unwrap();
    let mut kinds = BTreeMap::new();
    for x in &f.folded {
        *kinds.entry(x.kind).or_insert(0) += 1;
    }
    let bns_folded = kinds.get(&Follower::BatchNormalization).copied().unwrap_or(0);
    assert_eq!(bns_folded + f.skipped.len(), bns, "{name}");
    assert_eq!(
        after.nodes().filter(|n| n.op_type == "BatchNormalization").count(),
        f.skipped.len(),
        "{name}: the BNs left are the skipped ones"
    );
    // Every node reads only inputs, constants and outputs of nodes before it.
    let mut available: BTreeSet<String> = after
        .tensors()
        .filter(|t| t.source == Source::Input || matches!(t.source, Source::Initializer(_)))
        .map(|t| t.name.clone())
        .collect();
    for n in after.nodes() {
        for i in n.inputs.iter().filter(|i| !i.is_empty()) {
            assert!(
                available.contains(i),
                "{name}: node {} reads {i} before it is computed",
                n.display_name()
            );
        }
        available.extend(n.outputs.iter().cloned());
    }
    for out in &after.outputs {
        assert!(after.producer(out).is_some(), "{name}: output {out} has no producer");
    }
    // Every folded layer still has its name and weight name, the followers are gone, and the
    // layer writes the last folded follower's output.
    for x in &f.folded {
        let layer = g.node_by_name(&x.layer).unwrap();
        let now = after.node_by_name(&x.layer).unwrap();
        assert_eq!(now.op_type, layer.op_type);
        assert_eq!(now.inputs[1], layer.inputs[1], "{name}: weight name kept");
        assert!(after.tensor(&layer.outputs[0]).is_none(), "{name}: old output name gone");
        assert!(after.node_by_name(&x.follower).is_none(), "{name}: {} is gone", x.follower);
        let last = f.folded.iter().rev().find(|y| y.layer == x.layer).unwrap();
        let written = &g.node_by_name(&last.follower).unwrap().outputs[0];
        assert_eq!(&now.outputs[0], written, "{name}: {} writes {written}", x.layer);
    }
    (bns, kinds, g.nodes().count(), after.nodes().count())
}

fn kinds(pairs: &[(Follower, usize)]) -> BTreeMap<Follower, usize> {
    pairs.iter().copied().collect()
}

#[test]
fn digits_cnn_folds_its_bn() {
    // Its MatMul → Add(bias) is a fully connected layer as it stands; nothing to fold there.
    let (bns, folded, before, after) = fold_shared("digits_cnn");
    assert_eq!((bns, folded, before, after), (1, kinds(&[(Follower::BatchNormalization, 1)]), 13, 12));
}

#[test]
fn ppocr_cls_folds_every_bn_and_its_reshaped_bias_adds() {
    // 35 Conv → BN; 18 bias-less Convs → Add(Reshape(Constant, [1, C, 1, 1])), as paddle2onnx
    // writes them (counted with onnx in Python).
    let (bns, folded, before, after) = fold_shared("ppocr_cls");
    assert_eq!(bns, 35);
    assert_eq!(folded, kinds(&[(Follower::BatchNormalization, 35), (Follower::Add, 18)]));
    // Each fold removes its follower; BN folds also their 4 parameter Constant nodes, Add folds
    // the Reshape and its two Constant nodes.
    assert!(after <= before - 35 * 5 - 18 * 4, "{before} → {after}");
}

#[test]
fn ppocr_det_folds_bns_scales_and_biases() {
    // Counted with onnx in Python: 2 Conv → BN; 28 Conv → Mul(Constant [1]) → Add(Constant [1])
    // (a learnable scale and bias after the conv); 2 ConvTranspose → Add(Constant [1, C, 1, 1]),
    // one of them then → BN, which folds once the Add has.
    let (bns, folded, _, _) = fold_shared("ppocr_det");
    assert_eq!(bns, 3);
    assert_eq!(folded, kinds(&[(Follower::BatchNormalization, 3), (Follower::Add, 30), (Follower::Mul, 28)]));
}

/// A BatchNormalization whose input carries a given encoding (a QAT model quantizes the layer
/// and the BN apart) is left alone, with the reason.
#[test]
fn a_batch_norm_whose_input_is_kept_is_not_folded() {
    let path = shared_model("digits_cnn");
    let loaded = ptq_onnx::load(&path).unwrap();
    let f = fold_layers(&loaded.model, loaded.dir(), &|t| t == "conv1_out").unwrap();
    assert!(f.folded.is_empty());
    assert!(f.skipped[0].reason.contains("conv1_out"), "{:?}", f.skipped);
}
