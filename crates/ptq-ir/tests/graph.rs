//! The graph view and `Patch` on the shared models and on small hand-built graphs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ptq_ir::{DataType, Dim, Error, Graph, Patch, Source};
use ptq_onnx::build::{self, f32_tensor_float_data, node, untyped_value};
use ptq_onnx::proto::{ModelProto, NodeProto};

fn shared_model(name: &str) -> PathBuf {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models").join(name).join("model.onnx");
    assert!(path.exists(), "the shared model zoo is expected at {}", path.display());
    path
}

fn load(name: &str) -> (ModelProto, Graph) {
    let loaded = ptq_onnx::load(&shared_model(name)).unwrap();
    let graph = Graph::new(&loaded.model, loaded.dir()).unwrap();
    (loaded.model, graph)
}

/// Every node reads only graph inputs, constants, or outputs of nodes before it.
fn assert_topological(g: &Graph) {
    let mut available: BTreeSet<String> = g
        .tensors()
        .filter(|t| t.source == Source::Input || matches!(t.source, Source::Initializer(_)))
        .map(|t| t.name.clone())
        .collect();
    for n in g.nodes() {
        for i in n.inputs.iter().filter(|i| !i.is_empty()) {
            assert!(available.contains(i), "node {} reads {i} before it is computed", n.display_name());
        }
        available.extend(n.outputs.iter().cloned());
    }
}

#[test]
fn shared_models_give_complete_graphs() {
    for name in ["digits_cnn", "ppocr_cls", "minilm_l3", "silero_vad_16k", "ppocr_det"] {
        let (model, g) = load(name);
        assert_eq!(g.nodes().count(), model.graph.as_ref().unwrap().node.len(), "{name}");
        assert_topological(&g);
        for t in g.tensors().filter(|t| t.is_constant()) {
            let value = g.constant(&t.name).unwrap_or_else(|e| panic!("{name}: {e}"));
            if let Some(shape) = &t.shape {
                let dims: Vec<usize> = shape.iter().map(|d| d.fixed().unwrap()).collect();
                assert_eq!(value.shape, dims, "{name}: {}", t.name);
            }
        }
        for out in &g.outputs {
            assert!(g.producer(out).is_some(), "{name}: output {out} has no producer");
        }
    }
}

#[test]
fn digits_cnn_inputs_outputs_and_consumers() {
    let (_, g) = load("digits_cnn");
    assert_eq!(g.inputs, ["input"]);
    assert_eq!(g.outputs, ["logits"]);
    let input = g.tensor("input").unwrap();
    assert_eq!(input.dtype, Some(DataType::Float));
    assert_eq!(
        input.shape.as_deref(),
        Some(&[Dim::Fixed(1), Dim::Fixed(1), Dim::Fixed(8), Dim::Fixed(8)][..])
    );
    let readers: Vec<_> = g.consumers("input").map(|n| n.op_type.clone()).collect();
    assert_eq!(readers, ["Conv"]);
    assert_eq!(g.op_histogram()["Relu"], 4);
}

#[test]
fn ppocr_cls_constant_nodes_are_constants_and_dims_keep_their_kind() {
    let (_, g) = load("ppocr_cls");
    let consts = g.tensors().filter(|t| matches!(t.source, Source::ConstantNode(_))).count();
    assert_eq!(consts, 308);
    // The Paddle export declares the batch as -1 and H/W as `?`: neither names a shared dim.
    let shape = g.tensor("x").unwrap().shape.clone().unwrap();
    assert_eq!(shape, [Dim::Unknown, Dim::Fixed(3), Dim::Unknown, Dim::Unknown]);
}

#[test]
fn minilm_symbolic_dims_are_named() {
    let (_, g) = load("minilm_l3");
    let shape = g.tensor("input_ids").unwrap().shape.clone().unwrap();
    assert_eq!(shape, [Dim::Symbolic("batch_size".into()), Dim::Symbolic("sequence_length".into())]);
}

/// `x` → `nodes` → `z`, the input and output untyped, without an opset import (so that
/// `Patch::set_opset` adds one).
fn model(nodes: Vec<NodeProto>) -> ModelProto {
    let graph = build::graph(nodes, vec![untyped_value("x")], vec![untyped_value("z")], vec![]);
    ModelProto { ir_version: Some(8), graph: Some(graph), ..Default::default() }
}

#[test]
fn nodes_out_of_file_order_are_sorted_stably() {
    let m = model(vec![
        node("Relu", "b", &["y"], &["z"]),
        node("Relu", "a", &["x"], &["y"]),
        node("Relu", "c", &["x"], &["w"]),
    ]);
    let g = Graph::new(&m, Path::new(".")).unwrap();
    let order: Vec<_> = g.nodes().map(|n| n.name.clone()).collect();
    assert_eq!(order, ["a", "b", "c"]);
}

#[test]
fn a_cycle_is_an_error_naming_its_nodes() {
    let m = model(vec![node("Add", "a", &["x", "z"], &["y"]), node("Relu", "b", &["y"], &["z"])]);
    let err = Graph::new(&m, Path::new(".")).unwrap_err();
    assert!(matches!(err, Error::Cycle { .. }));
    let msg = err.to_string();
    assert!(msg.contains('a') && msg.contains('b'), "{msg}");
}

#[test]
fn an_empty_patch_leaves_the_model_byte_identical() {
    let bytes = std::fs::read(shared_model("silero_vad_16k")).unwrap();
    let m = ptq_onnx::decode(bytes.clone().into(), Path::new("m")).unwrap();
    let patched = Patch::new().apply(&m).unwrap();
    assert!(ptq_onnx::encode(&patched) == bytes);
}

#[test]
fn patch_inserts_rewires_and_removes() {
    let m = model(vec![node("Relu", "a", &["x"], &["y"]), node("Relu", "b", &["y"], &["z"])]);
    let g = Graph::new(&m, Path::new(".")).unwrap();
    let mut p = Patch::new();
    p.insert_after(Some(0), node("Identity", "y_ptq_q", &["y"], &["y2"]))
        .replace_uses(&g, "y", "y2")
        .add_initializer(f32_tensor_float_data("w", &[1], &[2.0]))
        .set_opset("", 21)
        .set_ir_version(10);
    let out = p.apply(&m).unwrap();
    let names: Vec<_> = out.graph.as_ref().unwrap().node.iter().map(|n| n.name().to_owned()).collect();
    assert_eq!(names, ["a", "y_ptq_q", "b"]);
    let g2 = Graph::new(&out, Path::new(".")).unwrap();
    assert_eq!(g2.node(2).inputs, ["y2"]);
    assert_eq!(g2.constant("w").unwrap().to_f32().unwrap(), [2.0]);
    assert_eq!(g2.opsets[""], 21);
    assert_eq!(g2.ir_version, 10);

    let mut p = Patch::new();
    p.remove_node(1).set_input(0, 0, "x");
    let out = p.apply(&m).unwrap();
    assert_eq!(out.graph.unwrap().node.len(), 1);
}

#[test]
fn patch_naming_a_missing_node_or_slot_fails() {
    let m = model(vec![node("Relu", "a", &["x"], &["y"])]);
    assert!(Patch::new().remove_node(3).apply(&m).is_err());
    let err = Patch::new().set_input(0, 4, "q").apply(&m).unwrap_err().to_string();
    assert!(err.contains("slot 4"), "{err}");
}

#[test]
fn patch_replaces_a_node_in_place_and_rewires_the_replacement() {
    let m = model(vec![node("Relu", "a", &["x"], &["y"]), node("Relu", "b", &["y"], &["z"])]);
    let mut p = Patch::new();
    p.replace_node(0, node("Sigmoid", "a2", &["x"], &["y"]))
        .insert_after(Some(0), node("Identity", "c", &["y"], &["y2"]))
        .set_input(1, 0, "y2");
    let out = p.apply(&m).unwrap();
    let g = out.graph.unwrap();
    let names: Vec<_> = g.node.iter().map(|n| (n.name().to_owned(), n.op_type().to_owned())).collect();
    assert_eq!(
        names,
        [("a2".into(), "Sigmoid".into()), ("c".into(), "Identity".into()), ("b".into(), "Relu".into())]
    );
    assert_eq!(g.node[2].input, ["y2"]);

    assert!(Patch::new().replace_node(5, node("Relu", "q", &["x"], &["q"])).apply(&m).is_err());
    let err =
        Patch::new().replace_node(0, node("Relu", "q", &["x"], &["q"])).remove_node(0).apply(&m).unwrap_err();
    assert!(err.to_string().contains("both removed and replaced"), "{err}");
}

/// Found by fuzzing (fuzz target `onnx_graph`): dims whose product overflows a usize made
/// decoding the constant panic on the multiplication. Reading the graph refuses it now.
#[test]
fn fuzz_constant_with_overflowing_dims_is_an_error() {
    let huge = f32_tensor_float_data("w", &[1 << 40, 1 << 40], &[1.0]);
    let model = build::model(13, vec![], vec![], vec![], vec![huge]);
    let err = Graph::new(&model, Path::new(".")).unwrap_err().to_string();
    assert!(err.contains("`w`") && err.contains("more elements than any tensor can hold"), "{err}");
}

/// The same dims without overflow (2^40 floats) and one value in `float_data`: the bytes the
/// shape asks for must not be reserved before the values are counted (4 TiB, an abort).
#[test]
fn fuzz_constant_claiming_more_values_than_it_holds_is_an_error() {
    let claims = f32_tensor_float_data("w", &[1 << 40], &[1.0]);
    let model = build::model(13, vec![], vec![], vec![], vec![claims]);
    let graph = Graph::new(&model, Path::new(".")).unwrap();
    let err = graph.constant("w").unwrap_err().to_string();
    assert!(err.contains("`w`") && err.contains("holds 4 bytes"), "{err}");
}
