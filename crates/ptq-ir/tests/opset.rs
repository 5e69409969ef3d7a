//! `upgrade_opset` on the shared models and on small hand-built models, one per rewrite.
//! (tests/interop/check_opset.py runs the same conversions through onnxruntime.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ptq_ir::{Error, Graph, upgrade_opset};
use ptq_onnx::build;
use ptq_onnx::proto::attribute_proto::AttributeType;
use ptq_onnx::proto::tensor_shape_proto::{Dimension, dimension};
use ptq_onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto, type_proto,
};

// ---- shared models ----

fn shared_model(name: &str) -> PathBuf {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models").join(name).join("model.onnx");
    assert!(path.exists(), "the shared model zoo is expected at {}", path.display());
    path
}

fn default_opset(m: &ModelProto) -> i64 {
    m.opset_import.iter().find(|o| o.domain().is_empty()).map(|o| o.version()).unwrap()
}

/// Converts a shared model and checks what every conversion must keep: the target opset, the IR
/// version, every original node output (nothing dropped), and a graph that is still complete.
fn convert_shared(name: &str, target: i64) -> (ModelProto, ModelProto) {
    let loaded = ptq_onnx::load(&shared_model(name)).unwrap();
    let out = upgrade_opset(&loaded.model, loaded.dir(), target).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(default_opset(&out), target, "{name}");
    assert!(out.ir_version() >= if target >= 21 { 10 } else { 7 }, "{name}: IR {}", out.ir_version());
    let outputs = |m: &ModelProto| -> BTreeSet<String> {
        m.graph
            .as_ref()
            .unwrap()
            .node
            .iter()
            .flat_map(|n| n.output.clone())
            .filter(|o| !o.is_empty())
            .collect()
    };
    let missing: Vec<_> = outputs(&loaded.model).difference(&outputs(&out)).cloned().collect();
    assert!(missing.is_empty(), "{name}: node outputs lost: {missing:?}");
    let g = Graph::new(&out, loaded.dir()).unwrap();
    assert_eq!(g.outputs, Graph::new(&loaded.model, loaded.dir()).unwrap().outputs, "{name}");
    (loaded.model, out)
}

fn op_count(m: &ModelProto, op: &str) -> usize {
    m.graph.as_ref().unwrap().node.iter().filter(|n| n.op_type() == op).count()
}

fn node_named<'m>(m: &'m ModelProto, name: &str) -> &'m NodeProto {
    m.graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .find(|n| n.name() == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

fn attr<'n>(n: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    n.attribute.iter().find(|a| a.name() == name)
}

fn initializer<'m>(m: &'m ModelProto, name: &str) -> &'m TensorProto {
    m.graph
        .as_ref()
        .unwrap()
        .initializer
        .iter()
        .find(|t| t.name() == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

fn i64_values(t: &TensorProto) -> Vec<i64> {
    ptq_ir::tensor_from_proto(t, Path::new("."))
        .unwrap()
        .data
        .chunks(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn f32_values(t: &TensorProto) -> Vec<f32> {
    ptq_ir::tensor_from_proto(t, Path::new(".")).unwrap().to_f32().unwrap()
}

#[test]
fn ppocr_cls_opset_11_converts_to_13_and_21() {
    for target in [13, 21] {
        let (before, out) = convert_shared("ppocr_cls", target);
        // Its one Softmax normalises the last axis of a rank-2 tensor (the rank is declared on the
        // graph output behind an Identity): only the axis is written out, as the default moved.
        assert_eq!(op_count(&out, "Softmax"), 1);
        assert_eq!(op_count(&out, "Flatten"), op_count(&before, "Flatten"));
        assert_eq!(attr(node_named(&out, "Softmax@0"), "axis").unwrap().i(), 1);
        assert_eq!(out.graph.as_ref().unwrap().node.len(), before.graph.as_ref().unwrap().node.len());
        // Clip already takes min/max as inputs at opset 11: untouched.
        assert_eq!(node_named(&out, "Clip@0"), node_named(&before, "Clip@0"));
    }
}

#[test]
fn ppocr_det_opset_12_converts_to_13_and_21() {
    for target in [13, 21] {
        let (before, out) = convert_shared("ppocr_det", target);
        assert_eq!(
            before.graph.as_ref().unwrap().node,
            out.graph.as_ref().unwrap().node,
            "no node needs a rewrite"
        );
        assert_eq!(op_count(&out, "Resize"), 6);
    }
}

#[test]
fn silero_vad_opset_16_converts_to_21_with_reduce_mean_axes_as_input() {
    let (_, out) = convert_shared("silero_vad_16k", 21);
    assert_eq!(out.ir_version(), 10);
    let mean = node_named(&out, "F0::If_0_then_branch__Inline_0__/ReduceMean");
    assert!(attr(mean, "axes").is_none());
    assert_eq!(attr(mean, "keepdims").unwrap().i(), 0);
    assert_eq!(mean.input[1], "F0::If_0_then_branch__Inline_0__/ReduceMean_output_0_ptq_axes");
    assert_eq!(i64_values(initializer(&out, &mean.input[1])), [1]);
}

#[test]
fn minilm_and_digits_convert_to_21() {
    for name in ["minilm_l3", "digits_cnn"] {
        let (before, out) = convert_shared(name, 21);
        assert_eq!(before.graph.as_ref().unwrap().node, out.graph.as_ref().unwrap().node, "{name}");
        assert_eq!(out.ir_version(), 10, "{name}");
    }
}

#[test]
fn a_model_at_or_above_the_target_comes_back_byte_identical() {
    let bytes = std::fs::read(shared_model("digits_cnn")).unwrap();
    let m = ptq_onnx::decode(bytes.clone().into(), Path::new("m")).unwrap();
    for target in [11, 13] {
        assert!(ptq_onnx::encode(&upgrade_opset(&m, Path::new("."), target).unwrap()) == bytes);
    }
}

// ---- hand-built models ----

fn dims(shape: &[i64]) -> TensorShapeProto {
    TensorShapeProto {
        dim: shape
            .iter()
            .map(|&d| Dimension { value: Some(dimension::Value::DimValue(d)), ..Default::default() })
            .collect(),
    }
}

fn value(name: &str, elem: Option<i32>, shape: Option<&[i64]>) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: elem.map(|e| TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(e),
                shape: shape.map(dims),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn float(name: &str, shape: &[i64]) -> ValueInfoProto {
    value(name, Some(1), Some(shape))
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

fn flt(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}

fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec().into()),
        ..Default::default()
    }
}

fn node(
    name: &str,
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        name: Some(name.into()),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

fn model(opset: i64, nodes: Vec<NodeProto>, inputs: Vec<ValueInfoProto>, outputs: &[&str]) -> ModelProto {
    ModelProto {
        ir_version: Some(6),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(opset) }],
        graph: Some(GraphProto {
            node: nodes,
            input: inputs,
            output: outputs.iter().map(|o| value(o, Some(1), None)).collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn up(m: &ModelProto, target: i64) -> ModelProto {
    upgrade_opset(m, Path::new("."), target).unwrap_or_else(|e| panic!("{e}"))
}

fn up_err(m: &ModelProto, target: i64) -> String {
    match upgrade_opset(m, Path::new("."), target) {
        Ok(_) => panic!("the conversion to {target} was expected to fail"),
        Err(e) => {
            assert!(matches!(e, Error::Opset { .. }), "{e:?}");
            e.to_string()
        }
    }
}

fn nodes(m: &ModelProto) -> &[NodeProto] {
    &m.graph.as_ref().unwrap().node
}

#[test]
fn squeeze_and_unsqueeze_axes_become_an_int64_input_at_13() {
    let m = model(
        11,
        vec![
            node("u", "Unsqueeze", &["x"], &["xu"], vec![build::ints_attribute("axes", &[0, 3])]),
            node("s", "Squeeze", &["xu"], &["y"], vec![build::ints_attribute("axes", &[0])]),
            node("s_all", "Squeeze", &["xu"], &["z"], vec![]),
        ],
        vec![float("x", &[2, 3])],
        &["y", "z"],
    );
    let out = up(&m, 13);
    let [u, s, s_all] = nodes(&out) else { panic!("three nodes expected") };
    assert!(u.attribute.is_empty() && s.attribute.is_empty());
    assert_eq!(u.input, ["x", "xu_ptq_axes"]);
    assert_eq!(s.input, ["xu", "y_ptq_axes"]);
    assert_eq!(i64_values(initializer(&out, "xu_ptq_axes")), [0, 3]);
    assert_eq!(i64_values(initializer(&out, "y_ptq_axes")), [0]);
    assert_eq!(initializer(&out, "y_ptq_axes").dims, [1]);
    assert_eq!(s_all.input, ["xu"], "no axes: squeeze every 1-dim, as before");
    assert_eq!(default_opset(&out), 13);
    assert_eq!(out.ir_version(), 7, "raised to the IR version of opset 13");
}

#[test]
fn reduce_axes_become_an_input_at_13_for_reduce_sum_and_18_for_the_others() {
    let m = model(
        11,
        vec![
            node(
                "sum",
                "ReduceSum",
                &["x"],
                &["a"],
                vec![build::ints_attribute("axes", &[1]), int("keepdims", 0)],
            ),
            node("mean", "ReduceMean", &["x"], &["b"], vec![build::ints_attribute("axes", &[-1])]),
            node("max", "ReduceMax", &["x"], &["c"], vec![]),
        ],
        vec![float("x", &[2, 3, 4])],
        &["a", "b", "c"],
    );
    let at13 = up(&m, 13);
    assert_eq!(nodes(&at13)[0].input, ["x", "a_ptq_axes"]);
    assert_eq!(nodes(&at13)[0].attribute, [int("keepdims", 0)]);
    assert_eq!(nodes(&at13)[1], nodes(&m)[1], "ReduceMean keeps its attribute until 18");
    let at18 = up(&m, 18);
    assert_eq!(nodes(&at18)[1].input, ["x", "b_ptq_axes"]);
    assert!(nodes(&at18)[1].attribute.is_empty());
    assert_eq!(i64_values(initializer(&at18, "b_ptq_axes")), [-1]);
    assert_eq!(nodes(&at18)[2], nodes(&m)[2], "no axes: reduce all, as before");
}

#[test]
fn split_becomes_an_input_at_13_and_gets_num_outputs_at_18() {
    let m = model(
        11,
        vec![
            node(
                "sized",
                "Split",
                &["x"],
                &["a", "b"],
                vec![int("axis", 1), build::ints_attribute("split", &[1, 3])],
            ),
            node("even", "Split", &["x"], &["c", "d"], vec![int("axis", 1)]),
        ],
        vec![float("x", &[2, 4])],
        &["a", "b", "c", "d"],
    );
    let at13 = up(&m, 13);
    assert_eq!(nodes(&at13)[0].input, ["x", "a_ptq_split"]);
    assert_eq!(nodes(&at13)[0].attribute, [int("axis", 1)]);
    assert_eq!(i64_values(initializer(&at13, "a_ptq_split")), [1, 3]);
    assert_eq!(nodes(&at13)[1], nodes(&m)[1]);
    let at21 = up(&m, 21);
    assert_eq!(nodes(&at21)[0].attribute, [int("axis", 1)], "a split input needs no num_outputs");
    assert_eq!(nodes(&at21)[1].attribute, [int("axis", 1), int("num_outputs", 2)]);
}

#[test]
fn softmax_on_a_middle_axis_is_flattened_as_before_13_and_reshaped_back() {
    let m = model(
        11,
        vec![
            node("sm", "Softmax", &["x"], &["y"], vec![int("axis", 1)]),
            node("sm_last", "Softmax", &["x"], &["z"], vec![int("axis", 2)]),
            node("lsm_default", "LogSoftmax", &["v"], &["w"], vec![]),
        ],
        vec![float("x", &[2, 3, 4]), float("v", &[5, 6])],
        &["y", "z", "w"],
    );
    let out = up(&m, 13);
    let ops: Vec<_> = nodes(&out).iter().map(|n| (n.op_type(), n.name())).collect();
    assert_eq!(
        ops,
        [
            ("Flatten", "y_ptq_flatten"),
            ("Shape", "y_ptq_shape_of"),
            ("Softmax", "sm"),
            ("Reshape", "y_ptq_reshape"),
            ("Softmax", "sm_last"),
            ("LogSoftmax", "lsm_default"),
        ]
    );
    let [flatten, shape, sm, reshape, sm_last, lsm] = nodes(&out) else { unreachable!() };
    assert_eq!(
        (flatten.input.as_slice(), flatten.output.as_slice()),
        (&["x".to_string()][..], &["y_ptq_2d_in".to_string()][..])
    );
    assert_eq!(flatten.attribute, [int("axis", 1)]);
    assert_eq!(shape.input, ["x"]);
    assert_eq!(
        (sm.input.as_slice(), sm.output.as_slice()),
        (&["y_ptq_2d_in".to_string()][..], &["y_ptq_2d".to_string()][..])
    );
    assert_eq!(sm.attribute, [int("axis", 1)]);
    assert_eq!(reshape.input, ["y_ptq_2d", "y_ptq_shape"]);
    assert_eq!(reshape.output, ["y"], "the original output name is kept");
    assert_eq!(sm_last.attribute, [int("axis", 2)], "the last axis: only the version changes");
    assert_eq!(
        lsm.attribute,
        [int("axis", 1)],
        "the old default (1) is written out: the default moved to -1"
    );
}

#[test]
fn softmax_of_unknown_rank_is_flattened_unless_its_axis_is_minus_one() {
    let m = model(
        11,
        vec![
            node("sm", "Softmax", &["x"], &["y"], vec![int("axis", 1)]),
            node("sm_neg", "Softmax", &["x"], &["z"], vec![int("axis", -1)]),
        ],
        vec![value("x", Some(1), None)],
        &["y", "z"],
    );
    let out = up(&m, 13);
    assert_eq!(op_count(&out, "Flatten"), 1);
    assert_eq!(nodes(&out).last().unwrap().attribute, [int("axis", -1)]);
}

#[test]
fn clip_and_pad_attributes_become_inputs_of_the_data_type_at_11() {
    let m = model(
        10,
        vec![
            node("c", "Clip", &["x"], &["y"], vec![flt("min", -0.5), flt("max", 0.5)]),
            node("c_max", "Clip", &["h"], &["z"], vec![flt("max", 6.0)]),
            node(
                "p",
                "Pad",
                &["x"],
                &["w"],
                vec![build::ints_attribute("pads", &[0, 1, 1, 0]), flt("value", 1.5)],
            ),
            node(
                "p_reflect",
                "Pad",
                &["x"],
                &["v"],
                vec![build::ints_attribute("pads", &[0, 1, 0, 1]), string("mode", "reflect")],
            ),
        ],
        vec![float("x", &[2, 3]), value("h", Some(10), Some(&[4]))],
        &["y", "z", "w", "v"],
    );
    let out = up(&m, 13);
    let [c, c_max, p, p_reflect] = nodes(&out) else { panic!() };
    assert_eq!(c.input, ["x", "y_ptq_min", "y_ptq_max"]);
    assert!(c.attribute.is_empty());
    let min = initializer(&out, "y_ptq_min");
    assert_eq!((min.data_type(), min.dims.len()), (1, 0), "a float32 scalar");
    assert_eq!(f32_values(min), [-0.5]);
    assert_eq!(c_max.input, ["h", "", "z_ptq_max"]);
    assert_eq!(initializer(&out, "z_ptq_max").data_type(), 10, "float16, the type of its input");
    assert_eq!(f32_values(initializer(&out, "z_ptq_max")), [6.0]);
    assert_eq!(p.input, ["x", "w_ptq_pads", "w_ptq_value"]);
    assert_eq!(i64_values(initializer(&out, "w_ptq_pads")), [0, 1, 1, 0]);
    assert_eq!(f32_values(initializer(&out, "w_ptq_value")), [1.5]);
    assert_eq!(p_reflect.input, ["x", "v_ptq_pads"]);
    assert_eq!(p_reflect.attribute, [string("mode", "reflect")]);
}

#[test]
fn clip_without_a_known_element_type_is_refused_naming_the_tensor() {
    let m = model(
        10,
        vec![node("c", "Clip", &["x"], &["y"], vec![flt("min", 0.0)])],
        vec![value("x", None, None)],
        &["y"],
    );
    let err = up_err(&m, 13);
    assert!(err.contains("node `c` (Clip)") && err.contains("`x`") && err.contains("not declared"), "{err}");
}

#[test]
fn upsample_becomes_resize_with_asymmetric_floor_rounding() {
    let scales = TensorProto {
        name: Some("s".into()),
        data_type: Some(1),
        dims: vec![4],
        float_data: vec![1.0, 1.0, 2.0, 2.0],
        ..Default::default()
    };
    let mut m = model(
        9,
        vec![node("up", "Upsample", &["x", "s"], &["y"], vec![])],
        vec![float("x", &[1, 1, 2, 2])],
        &["y"],
    );
    m.graph.as_mut().unwrap().initializer.push(scales);
    let out = up(&m, 13);
    let [r] = nodes(&out) else { panic!() };
    assert_eq!(r.op_type(), "Resize");
    assert_eq!(r.input, ["x", "", "s"]);
    let mut attrs = r.attribute.clone();
    attrs.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        attrs,
        [
            string("coordinate_transformation_mode", "asymmetric"),
            string("mode", "nearest"),
            string("nearest_mode", "floor")
        ]
    );
    let at11 = up(&m, 11);
    assert_eq!(nodes(&at11)[0].input, ["x", "y_ptq_roi", "s"], "Resize-11 requires an roi input");
}

#[test]
fn resize_10_downsampling_rounds_up_and_run_time_scales_are_refused() {
    let mut m = model(
        10,
        vec![
            node("down", "Resize", &["x", "half"], &["y"], vec![]),
            node("dynamic", "Resize", &["x", "s"], &["z"], vec![]),
            node("dynamic_linear", "Resize", &["x", "s"], &["w"], vec![string("mode", "linear")]),
        ],
        vec![float("x", &[1, 1, 4, 4]), float("s", &[4])],
        &["y", "z", "w"],
    );
    m.graph.as_mut().unwrap().initializer.push(TensorProto {
        name: Some("half".into()),
        data_type: Some(1),
        dims: vec![4],
        float_data: vec![1.0, 1.0, 0.5, 0.5],
        ..Default::default()
    });
    let err = up_err(&m, 13);
    assert!(err.contains("node `dynamic` (Resize)") && err.contains("computed at run time"), "{err}");
    assert!(!err.contains("dynamic_linear"), "linear does not round: {err}");
    // Without its node, `z` is no output either (a graph output nothing computes is refused).
    let g = m.graph.as_mut().unwrap();
    g.node.remove(1);
    g.output.retain(|o| o.name() != "z");
    let out = up(&m, 13);
    assert!(nodes(&out)[0].attribute.contains(&string("nearest_mode", "ceil")));
}

#[test]
fn slice_top_k_and_dropout_attributes_become_inputs() {
    let m = model(
        9,
        vec![
            node(
                "sl",
                "Slice",
                &["x"],
                &["a"],
                vec![
                    build::ints_attribute("starts", &[1]),
                    build::ints_attribute("ends", &[3]),
                    build::ints_attribute("axes", &[1]),
                ],
            ),
            node("tk", "TopK", &["x"], &["b", "bi"], vec![int("k", 2)]),
            node("dr", "Dropout", &["x"], &["c", "mask"], vec![flt("ratio", 0.25)]),
        ],
        vec![float("x", &[4, 5])],
        &["a", "b", "c"],
    );
    let out = up(&m, 13);
    let [sl, tk, dr] = nodes(&out) else { panic!() };
    assert_eq!(sl.input, ["x", "a_ptq_starts", "a_ptq_ends", "a_ptq_axes"]);
    assert!(sl.attribute.is_empty());
    assert_eq!(tk.input, ["x", "b_ptq_k"]);
    assert_eq!(initializer(&out, "b_ptq_k").dims, [1]);
    assert_eq!(dr.input, ["x", "c_ptq_ratio"]);
    assert_eq!(dr.output, ["c"], "the unread mask (bool from opset 10) is dropped");
    assert_eq!(f32_values(initializer(&out, "c_ptq_ratio")), [0.25]);
}

#[test]
fn a_read_dropout_mask_is_refused() {
    let m = model(
        9,
        vec![node("dr", "Dropout", &["x"], &["c", "mask"], vec![])],
        vec![float("x", &[4, 5])],
        &["c", "mask"],
    );
    let err = up_err(&m, 13);
    assert!(err.contains("node `dr` (Dropout)") && err.contains("`mask`"), "{err}");
}

#[test]
fn legacy_broadcast_with_an_axis_aligns_a_constant_operand() {
    let mut m = model(
        6,
        vec![node("add", "Add", &["x", "b"], &["y"], vec![int("broadcast", 1), int("axis", 1)])],
        vec![float("x", &[2, 3, 4, 5])],
        &["y"],
    );
    m.graph.as_mut().unwrap().initializer.push(TensorProto {
        name: Some("b".into()),
        data_type: Some(1),
        dims: vec![3],
        float_data: vec![1.0, 2.0, 3.0],
        ..Default::default()
    });
    let out = up(&m, 13);
    let [add] = nodes(&out) else { panic!() };
    assert!(add.attribute.is_empty());
    assert_eq!(add.input, ["x", "b_ptq_aligned"]);
    assert_eq!(initializer(&out, "b_ptq_aligned").dims, [3, 1, 1]);
}

#[test]
fn an_operator_whose_change_ptq_does_not_know_is_refused_by_name() {
    let m = model(
        5,
        vec![
            node("tile_a", "Tile", &["x", "t", "ax"], &["a"], vec![]),
            node("tile_b", "Tile", &["x", "t", "ax"], &["b"], vec![]),
            node("foo", "Foo", &["x"], &["c"], vec![]),
            node("relu", "Relu", &["x"], &["d"], vec![]),
        ],
        vec![float("x", &[2, 3]), float("t", &[]), float("ax", &[])],
        &["a", "b", "c", "d"],
    );
    let err = up_err(&m, 13);
    assert!(err.starts_with("cannot convert the model from opset 5 to 13: "), "{err}");
    assert!(
        err.contains("nodes `tile_a`, `tile_b` (Tile): ptq does not know how Tile changed at opset 6"),
        "{err}"
    );
    assert!(err.contains("node `foo` (Foo): Foo is not an operator of the default ONNX domain"), "{err}");
    assert!(!err.contains("relu"), "{err}");
}

#[test]
fn other_domains_are_untouched_and_subgraphs_needing_rewrites_are_refused() {
    let mut m = model(
        11,
        vec![node("ms", "Softmax", &["x"], &["y"], vec![int("axis", 0)])],
        vec![float("x", &[2, 3])],
        &["y"],
    );
    m.graph.as_mut().unwrap().node[0].domain = Some("com.example".into());
    m.opset_import.push(OperatorSetIdProto { domain: Some("com.example".into()), version: Some(1) });
    let out = up(&m, 21);
    assert_eq!(nodes(&out), nodes(&m));
    assert_eq!(out.opset_import[1], m.opset_import[1]);
    assert_eq!(out.ir_version(), 10);

    let branch = GraphProto {
        node: vec![node("inner", "Squeeze", &["x"], &["s"], vec![build::ints_attribute("axes", &[0])])],
        output: vec![value("s", Some(1), None)],
        ..Default::default()
    };
    let graph_attr = |name: &str| AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Graph as i32),
        g: Some(branch.clone()),
        ..Default::default()
    };
    let m = model(
        11,
        vec![node("if", "If", &["c"], &["y"], vec![graph_attr("then_branch"), graph_attr("else_branch")])],
        vec![value("c", Some(9), Some(&[])), float("x", &[1, 3])],
        &["y"],
    );
    let err = up_err(&m, 13);
    assert!(err.contains("`inner` (inside node `if`)") && err.contains("inside subgraphs"), "{err}");
}

#[test]
fn targets_past_the_known_history_are_refused() {
    let m = model(11, vec![], vec![], &[]);
    let err = up_err(&m, 29);
    assert!(err.contains("up to opset 28"), "{err}");
}
