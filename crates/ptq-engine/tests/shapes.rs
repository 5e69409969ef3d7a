//! Symbolic dimensions: bound inputs give every declared shape its values; declarations that
//! contradict them are ignored with a report; a fixed dimension that contradicts them names its
//! node.

use std::path::Path;

use ptq_data::BoundInput;
use ptq_engine::{Engine, Error, IgnoredShape, TractEngine};
use ptq_ir::{DataType, Tensor};
use ptq_onnx::build::{self, FLOAT, symbolic_value};
use ptq_onnx::proto::{ModelProto, ValueInfoProto};

fn maxpool(name: &str, x: &str, y: &str) -> ptq_onnx::proto::NodeProto {
    let mut n = build::node("MaxPool", name, &[x], &[y]);
    n.attribute =
        vec![build::ints_attribute("kernel_shape", &[2, 2]), build::ints_attribute("strides", &[2, 2])];
    n
}

/// x [batch,3,height,width] → Relu → a → MaxPool 2×2/2 → y, with value_info for `a` and `y`.
fn pool_model(a: &[&str], y: &[&str]) -> ModelProto {
    let mut m = build::model(
        13,
        vec![build::node("Relu", "relu", &["x"], &["a"]), maxpool("pool", "a", "y")],
        vec![symbolic_value("x", FLOAT, &["batch", "3", "height", "width"])],
        vec![symbolic_value("y", FLOAT, &["batch", "3", "h2", "w2"])],
        vec![],
    );
    let g = m.graph.as_mut().unwrap();
    g.value_info = vec![symbolic_value("a", FLOAT, a), symbolic_value("y", FLOAT, y)];
    m
}

fn bound(name: &str, shape: &[usize]) -> BoundInput {
    BoundInput { name: name.into(), dtype: DataType::Float, shape: shape.to_vec() }
}

fn engine(m: &ModelProto, inputs: &[BoundInput], observed: &[&str]) -> Result<TractEngine, Error> {
    let observed: Vec<String> = observed.iter().map(|s| s.to_string()).collect();
    TractEngine::new(&ptq_onnx::encode(m), Path::new("."), inputs, &observed)
}

fn run(e: &TractEngine, inputs: &[Tensor]) -> Vec<Tensor> {
    e.runner().unwrap().run(inputs).unwrap()
}

fn ramp(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_f32(shape.to_vec(), &(0..n).map(|i| i as f32 - 10.0).collect::<Vec<_>>())
}

#[test]
fn bound_symbols_and_expressions_substitute_through_value_info() {
    // torch writes output sizes as expressions of the input symbols, paddle2onnx as symbols of
    // its own (`p2o.DynamicDimension.N`) that no input carries, and `?` for "any".
    let m = pool_model(
        &["batch", "3", "height", "width"],
        &["batch", "3", "floor((height - 2)/2) + 1", "p2o.DynamicDimension.7"],
    );
    for shape in [[1, 3, 8, 6], [2, 3, 5, 7]] {
        let e = engine(&m, &[bound("x", &shape)], &["a", "y"]).unwrap();
        assert_eq!(e.ignored_shapes(), &[] as &[IgnoredShape]);
        let out = run(&e, &[ramp(&shape)]);
        assert_eq!(out[0].shape, shape.to_vec());
        assert_eq!(out[1].shape, vec![shape[0], 3, shape[2] / 2, shape[3] / 2]);
    }
}

#[test]
fn unknown_dims_and_unknown_symbols_are_left_to_inference() {
    let m = pool_model(&["", "?", "DynamicDimension.0", "unk__3"], &["N", "", "", ""]);
    let e = engine(&m, &[bound("x", &[1, 3, 4, 4])], &["y"]).unwrap();
    assert!(e.ignored_shapes().is_empty());
    assert_eq!(run(&e, &[ramp(&[1, 3, 4, 4])])[0].shape, vec![1, 3, 2, 2]);
}

#[test]
fn a_contradicting_declaration_is_reported_and_ignored() {
    // Declared for another input size, or simply wrong: 4 channels and a rank-3 output.
    let m = pool_model(&["batch", "4", "height", "width"], &["batch", "3", "height"]);
    let e = engine(&m, &[bound("x", &[1, 3, 8, 8])], &["y"]).unwrap();
    let ignored = e.ignored_shapes();
    assert_eq!(ignored.len(), 2, "{ignored:?}");
    assert_eq!(
        ignored[0],
        IgnoredShape { tensor: "a".into(), declared: "[1,4,8,8]".into(), inferred: "[1,3,8,8]".into() }
    );
    assert_eq!(ignored[1].tensor, "y");
    assert_eq!(ignored[1].declared, "[1,3,8]");
    let text = ignored[0].to_string();
    assert!(text.contains("`a`") && text.contains("[1,4,8,8]") && text.contains("ignored"), "{text}");
    assert_eq!(run(&e, &[ramp(&[1, 3, 8, 8])])[0].shape, vec![1, 3, 4, 4]);
}

#[test]
fn a_symbol_shared_by_two_inputs_binds_both() {
    let value = |n: &str| symbolic_value(n, FLOAT, &["n", "4"]);
    let mut m = build::model(
        13,
        vec![build::node("Add", "add", &["x", "z"], &["s"]), build::node("Relu", "relu", &["s"], &["y"])],
        vec![value("x"), value("z")],
        vec![value("y")],
        vec![],
    );
    m.graph.as_mut().unwrap().value_info = vec![value("s")];
    let inputs = [bound("x", &[2, 4]), bound("z", &[2, 4])];
    let e = engine(&m, &inputs, &["y"]).unwrap();
    assert!(e.ignored_shapes().is_empty());
    assert_eq!(run(&e, &[ramp(&[2, 4]), ramp(&[2, 4])])[0].shape, vec![2, 4]);
}

#[test]
fn a_fixed_dimension_contradicting_the_bound_shapes_names_its_node() {
    // The Reshape was exported for 12 elements; bound to 18 it cannot hold.
    let shape = build::i64_tensor("shape", &[2], &[1, 12]);
    let m = build::model(
        13,
        vec![build::node("Reshape", "flatten_12", &["x", "shape"], &["y"])],
        vec![symbolic_value("x", FLOAT, &["1", "3", "h", "w"])],
        vec![ValueInfoProto { name: Some("y".into()), ..Default::default() }],
        vec![shape],
    );
    let Err(e) = engine(&m, &[bound("x", &[1, 3, 2, 3])], &["y"]) else { panic!("18 elements became 12") };
    let text = e.to_string();
    assert!(matches!(e, Error::Contradiction { .. }), "{text}");
    assert!(text.contains("node `flatten_12` (Reshape)"), "{text}");
    assert!(text.contains("[1,3,2,3]") && text.contains("--input_dimensions"), "{text}");
    // The shapes it was made for work.
    let e = engine(&m, &[bound("x", &[1, 3, 2, 2])], &["y"]).unwrap();
    assert_eq!(run(&e, &[ramp(&[1, 3, 2, 2])])[0].shape, vec![1, 12]);
}

#[test]
fn an_if_whose_branches_differ_in_shape_names_itself_and_the_shapes() {
    use ptq_onnx::proto::{AttributeProto, attribute_proto::AttributeType};
    let branch = |name: &str, op: &str| AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Graph as i32),
        g: Some(build::graph(
            vec![build::node(op, &format!("{name}_op"), &["x"], &[&format!("{name}_out")])],
            vec![],
            vec![ValueInfoProto { name: Some(format!("{name}_out")), ..Default::default() }],
            vec![],
        )),
        ..Default::default()
    };
    let mut select = build::node("If", "select", &["flag"], &["y"]);
    select.attribute = vec![branch("then_branch", "Identity"), branch("else_branch", "Flatten")];
    let m = build::model(
        13,
        vec![select],
        vec![symbolic_value("x", FLOAT, &["1", "2", "2"]), symbolic_value("flag", 9, &[])],
        vec![ValueInfoProto { name: Some("y".into()), ..Default::default() }],
        vec![],
    );
    let inputs =
        [bound("x", &[1, 2, 2]), BoundInput { name: "flag".into(), dtype: DataType::Bool, shape: vec![] }];
    let Err(e) = engine(&m, &inputs, &["y"]) else { panic!("branches of rank 3 and 2 cannot be typed") };
    let text = e.to_string();
    assert!(matches!(e, Error::Untyped { .. }), "{text}");
    assert!(
        text.contains("node `select` (If)") && text.contains("branches give outputs of different shapes"),
        "{text}"
    );
    assert!(text.contains("exported for one configuration"), "{text}");
}
