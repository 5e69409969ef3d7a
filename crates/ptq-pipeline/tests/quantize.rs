//! The pipeline as a library, on the shared zoo: the same bytes whatever the thread count
//! (DESIGN.md Decision 5), with nobody listening to its events.

use std::path::{Path, PathBuf};

use ptq_data::{ReadOptions, ShapeBindings};
use ptq_ir::Graph;
use ptq_pipeline::{Config, Data, Job, Silent, quantize};

fn zoo(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models").join(name);
    assert!(dir.is_dir(), "the shared model zoo is expected at {}", dir.display());
    dir
}

fn quantized_bytes(model: &str, dims: &[(&str, &[usize])], threads: usize) -> Vec<u8> {
    let dir = zoo(model);
    let shapes = ShapeBindings {
        dims: dims.iter().map(|(n, d)| (n.to_string(), d.to_vec())).collect(),
        ..ShapeBindings::default()
    };
    let read = |_: &Graph| Ok(ReadOptions { shapes: shapes.clone(), ..ReadOptions::default() });
    let model_path = dir.join("model.onnx");
    let list = dir.join("calib.txt");
    let job = Job {
        model: &model_path,
        overrides: None,
        ignore_given: false,
        allow_unknown_names: false,
        data: Data::Calibrate { list: &list, read: &read, eval: None },
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let q = pool.install(|| quantize(&Config::default(), &job, &Silent)).unwrap();
    assert!(!q.assignment.encodings.tensors.is_empty());
    ptq_onnx::encode(&q.qdq)
}

#[test]
fn one_thread_and_two_write_the_same_model() {
    for (model, dims) in [("ppocr_cls", &[("x", &[1usize, 3, 48, 192][..])][..]), ("silero_vad_16k", &[])] {
        assert_eq!(quantized_bytes(model, dims, 1), quantized_bytes(model, dims, 2), "{model}");
    }
}
