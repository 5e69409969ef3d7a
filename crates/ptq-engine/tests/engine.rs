//! The tract engine on shared models: observed tensors, folded constants, parallel runs.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ptq_data::{InputList, InputSpec, ReadOptions, Samples, ShapeBindings};
use ptq_engine::{Engine, Error, TractEngine, run_samples, unsupported_ops};
use ptq_ir::{Graph, Tensor};
use ptq_onnx::build;

fn zoo(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models").join(name);
    assert!(dir.is_dir(), "the shared model zoo is expected at {}", dir.display());
    dir
}

struct Prepared {
    bytes: Vec<u8>,
    dir: PathBuf,
    graph: Graph,
    samples: Samples,
}

fn prepare(name: &str, dims: &[(&str, &[usize])]) -> Prepared {
    let dir = zoo(name);
    let loaded = ptq_onnx::load(&dir.join("model.onnx")).unwrap();
    let graph = Graph::new(&loaded.model, &dir).unwrap();
    let specs: Vec<InputSpec> = graph
        .inputs
        .iter()
        .map(|n| {
            let t = graph.tensor(n).unwrap();
            InputSpec { name: n.clone(), dtype: t.dtype.unwrap(), shape: t.shape.clone().unwrap() }
        })
        .collect();
    let opts = ReadOptions {
        shapes: ShapeBindings {
            dims: dims.iter().map(|(n, d)| (n.to_string(), d.to_vec())).collect(),
            ..Default::default()
        },
        ..Default::default()
    };
    let samples = Samples::new(InputList::parse(&dir.join("calib.txt")).unwrap(), &specs, opts).unwrap();
    Prepared { bytes: ptq_onnx::encode(&loaded.model), dir, graph, samples }
}

fn run_all(engine: &dyn Engine, samples: &Samples) -> Vec<Vec<Tensor>> {
    let results = Mutex::new(vec![Vec::new(); samples.len()]);
    run_samples::<Error, _>(engine, samples, |i, _, outputs| {
        results.lock().unwrap()[i] = outputs;
        Ok(())
    })
    .map_err(|e| e.to_string())
    .unwrap();
    results.into_inner().unwrap()
}

#[test]
fn every_tensor_can_be_observed_and_pinning_does_not_change_outputs() {
    let p = prepare("ppocr_cls", &[("x", &[1, 3, 48, 192])]);
    let outputs = p.graph.outputs.clone();
    let mut all = outputs.clone();
    all.extend(p.graph.nodes().flat_map(|n| n.outputs.clone()).filter(|o| !outputs.contains(o)));
    let plain = TractEngine::new(&p.bytes, &p.dir, p.samples.inputs(), &outputs).unwrap();
    let pinned = TractEngine::new(&p.bytes, &p.dir, p.samples.inputs(), &all).unwrap();
    assert_eq!(pinned.observed(), &all[..]);

    let sample = p.samples.read(0).unwrap();
    let a = plain.runner().unwrap().run(&sample.tensors).unwrap();
    let b = pinned.runner().unwrap().run(&sample.tensors).unwrap();
    assert_eq!(b.len(), all.len());
    assert_eq!(a[0], b[0], "pinning changed the output");
    // Shape arithmetic (Shape → … → Concat feeding Reshape) is folded into constants by tract;
    // it must still come back, as the int64 tensor ONNX defines.
    let shape_operands: Vec<usize> = p
        .graph
        .nodes()
        .filter(|n| n.op_type == "Reshape")
        .filter_map(|n| all.iter().position(|o| *o == n.inputs[1]))
        .collect();
    assert!(!shape_operands.is_empty(), "ppocr_cls computes Reshape shapes in the graph");
    for i in shape_operands {
        assert_eq!(b[i].dtype, ptq_ir::DataType::Int64, "{}", all[i]);
        assert_eq!(b[i].shape.len(), 1, "{}", all[i]);
    }
    for (name, t) in all.iter().zip(&b) {
        assert!(!t.data.is_empty() || t.is_empty(), "{name} came back empty");
    }
}

#[test]
fn watched_tensors_are_what_pinned_outputs_return() {
    // minilm_l3 has Gathers tract folds into constants; ppocr_cls has shape subgraphs and int
    // tensors, which are not shown (only float32 tensors get encodings).
    for (name, dims) in [("ppocr_cls", &[("x", &[1usize, 3, 48, 192][..])][..]), ("minilm_l3", &[])] {
        let p = prepare(name, dims);
        let outputs = p.graph.outputs.clone();
        let all: Vec<String> =
            p.graph.nodes().flat_map(|n| n.outputs.clone()).filter(|o| !o.is_empty()).collect();
        let pinned = TractEngine::new(&p.bytes, &p.dir, p.samples.inputs(), &all).unwrap();
        let watching = TractEngine::watching(&p.bytes, &p.dir, p.samples.inputs(), &outputs, &all).unwrap();
        assert_eq!(watching.watched(), &all[..]);
        let sample = p.samples.read(0).unwrap();
        let expected = pinned.runner().unwrap().run(&sample.tensors).unwrap();
        let mut seen: Vec<Vec<Vec<f32>>> = vec![Vec::new(); all.len()];
        let returned = watching
            .runner()
            .unwrap()
            .run_watching(&sample.tensors, &mut |k, values| seen[k].push(values.to_vec()))
            .unwrap();
        let first_output = all.iter().position(|t| *t == outputs[0]).unwrap();
        assert_eq!(returned[0], expected[first_output], "{name}: the outputs");
        for ((tensor, want), got) in all.iter().zip(&expected).zip(&seen) {
            match want.to_f32().filter(|_| want.dtype == ptq_ir::DataType::Float) {
                Some(values) => assert_eq!(got, &vec![values], "{name}: `{tensor}` shown once, as computed"),
                None => assert!(got.is_empty(), "{name}: `{tensor}` is {}, not shown", want.dtype),
            }
        }
    }
}

#[test]
fn parallel_runs_equal_one_runner_in_order() {
    let p = prepare("silero_vad_16k", &[]);
    let engine = TractEngine::new(&p.bytes, &p.dir, p.samples.inputs(), &p.graph.outputs).unwrap();
    let parallel = run_all(&engine, &p.samples);
    let mut runner = engine.runner().unwrap();
    for (i, got) in parallel.iter().enumerate() {
        let expected = runner.run(&p.samples.read(i).unwrap().tensors).unwrap();
        assert_eq!(got, &expected, "sample {i}");
    }
}

#[test]
fn an_unknown_tensor_name_is_refused() {
    let p = prepare("digits_cnn", &[]);
    let err = TractEngine::new(&p.bytes, &p.dir, p.samples.inputs(), &["nope".into()]).err().unwrap();
    assert!(err.to_string().contains("`nope`"), "{err}");
}

#[test]
fn unsupported_operators_are_all_listed_with_their_nodes() {
    let value = |n| build::tensor_value(n, build::FLOAT, &[4]);
    let model = build::model(
        13,
        vec![
            build::node("FooBar", "foo1", &["x"], &["a"]),
            build::node("Relu", "r", &["a"], &["b"]),
            build::node("FooBar", "foo2", &["b"], &["c"]),
            build::node("Quux", "q", &["c"], &["y"]),
        ],
        vec![value("x")],
        vec![value("y")],
        vec![],
    );
    let mut model = model;
    // A custom-domain op is told apart from a standard one the engine lacks.
    model.graph.as_mut().unwrap().node[3].domain = Some("com.example".into());
    model.opset_import.push(build::opset("com.example", 1));
    let bytes = ptq_onnx::encode(&model);
    let ops = unsupported_ops(&bytes, Path::new(".")).unwrap();
    let listed: Vec<(&str, &str, Option<i64>, Vec<&str>)> = ops
        .iter()
        .map(|o| {
            (o.op_type.as_str(), o.domain.as_str(), o.opset, o.nodes.iter().map(String::as_str).collect())
        })
        .collect();
    assert_eq!(
        listed,
        [("FooBar", "ai.onnx", Some(13), vec!["foo1", "foo2"]), ("Quux", "com.example", Some(1), vec!["q"])]
    );
    assert!(ops[0].advice().contains("standard operator"), "{}", ops[0].advice());
    assert!(ops[1].advice().contains("custom domain `com.example`"), "{}", ops[1].advice());
    let inputs = [ptq_data::BoundInput { name: "x".into(), dtype: ptq_ir::DataType::Float, shape: vec![4] }];
    let err = TractEngine::new(&bytes, Path::new("."), &inputs, &["y".into()]).err().unwrap().to_string();
    assert!(
        err.contains("FooBar (nodes foo1, foo2; ai.onnx opset 13)")
            && err.contains("Quux (node q; com.example opset 1)"),
        "{err}"
    );
}

#[test]
fn batch_normalization_with_computed_statistics_runs() {
    // tf2onnx writes LayerNormalization as a BatchNormalization whose mean comes from the data.
    let mut bn = build::node("BatchNormalization", "bn", &["x", "scale", "b", "mean", "var"], &["y"]);
    bn.attribute.push(build::float_attribute("epsilon", 0.0));
    let mut mean = build::node("ReduceMean", "mean", &["x"], &["mean"]);
    mean.attribute = vec![build::ints_attribute("axes", &[0]), ptq_ir::int_attribute("keepdims", 0)];
    let model = build::model(
        13,
        vec![mean, bn],
        vec![build::tensor_value("x", build::FLOAT, &[2, 3])],
        vec![build::tensor_value("y", build::FLOAT, &[2, 3])],
        vec![
            build::f32_tensor("scale", &[3], &[1.0, 2.0, 0.5]),
            build::f32_tensor("b", &[3], &[0.0, 1.0, -1.0]),
            build::f32_tensor("var", &[3], &[1.0, 4.0, 9.0]),
        ],
    );
    let inputs =
        [ptq_data::BoundInput { name: "x".into(), dtype: ptq_ir::DataType::Float, shape: vec![2, 3] }];
    let e = TractEngine::new(&ptq_onnx::encode(&model), Path::new("."), &inputs, &["y".to_string()]).unwrap();
    let x = Tensor::from_f32(vec![2, 3], &[1.0, 2.0, 3.0, 3.0, 6.0, 9.0]);
    let y = e.runner().unwrap().run(&[x]).unwrap().remove(0);
    // mean = [2, 4, 6]; y = (x − mean) / sqrt(var) · scale + b.
    assert_eq!(y.to_f32().unwrap(), [-1.0, -1.0, -1.5, 1.0, 3.0, -0.5]);
}

#[test]
fn a_tandem_runs_its_engines_in_turn_and_numbers_their_tensors_on() {
    let p = prepare("digits_cnn", &[]);
    let outputs = p.graph.outputs.clone();
    let a_watched = vec!["relu1_out".to_owned(), "pool_out".to_owned()];
    let b_watched = vec!["relu2_out".to_owned()];
    let a = TractEngine::watching(&p.bytes, &p.dir, p.samples.inputs(), &outputs, &a_watched).unwrap();
    let b = TractEngine::watching(&p.bytes, &p.dir, p.samples.inputs(), &outputs, &b_watched).unwrap();
    let tandem = ptq_engine::Tandem::new(vec![&a as &dyn Engine, &b]);
    assert_eq!(tandem.observed(), ["logits", "logits"]);
    assert_eq!(tandem.watched(), ["relu1_out", "pool_out", "relu2_out"]);
    let sample = p.samples.read(0).unwrap();
    let mut order = Vec::new();
    let mut sizes = Vec::new();
    let returned = tandem
        .runner()
        .unwrap()
        .run_watching(&sample.tensors, &mut |k, values| {
            order.push(k);
            sizes.push(values.len());
        })
        .unwrap();
    assert_eq!(order, [0, 1, 2], "the first engine's tensors, then the second's");
    let alone = a.runner().unwrap().run(&sample.tensors).unwrap();
    assert_eq!(returned, [alone[0].clone(), alone[0].clone()]);
    // Watched shapes are known once the inputs are bound, and match what is shown.
    for (k, &n) in sizes[..2].iter().enumerate() {
        assert_eq!(a.watched_shape(k).map(|s| s.iter().product::<usize>()), Some(n));
    }
}
