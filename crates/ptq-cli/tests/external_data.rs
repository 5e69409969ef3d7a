//! Models whose weights are ONNX external data: quantized end to end, their data files confined
//! to the model's folder, and (ignored, run by hand) a model past protobuf's 2 GiB limit.

mod common;

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use common::{Work, f32_raw, stderr};
use ptq_onnx::build;

/// `x [1, k] → MatMul (weight w1 [k, n]) → MatMul (weight w2 [n, m]) → y [1, m]`, both weights
/// external data in `<folder of model>/<data>` (w1 first, then w2), written in chunks so that a
/// large model never sits in memory whole. Returns the model's path.
fn two_matmul_model(model: &Path, data: &str, k: usize, n: usize, m: usize) -> PathBuf {
    let dir = model.parent().expect("the model has a folder");
    let mut file = BufWriter::new(fs::File::create(dir.join(data)).expect("create the data file"));
    // Small values of both signs and varied magnitudes, the same on every run.
    let mut state = 0x2545_f491u32;
    let mut write_weights = |count: usize| {
        let mut chunk = Vec::with_capacity(1 << 20);
        for _ in 0..count {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            chunk.extend_from_slice(&((state as i32 as f32) / (i32::MAX as f32) * 0.05).to_le_bytes());
            if chunk.len() >= 1 << 20 {
                file.write_all(&chunk).expect("write the data file");
                chunk.clear();
            }
        }
        file.write_all(&chunk).expect("write the data file");
    };
    write_weights(k * n);
    write_weights(n * m);
    file.flush().expect("write the data file");
    let (w1_len, w2_len) = ((k * n * 4) as u64, (n * m * 4) as u64);
    let dims = |a: usize, b: usize| [a as i64, b as i64];
    let onnx = build::model(
        13,
        vec![
            build::node("MatMul", "mm1", &["x", "w1"], &["h"]),
            build::node("MatMul", "mm2", &["h", "w2"], &["y"]),
        ],
        vec![build::tensor_value("x", build::FLOAT, &dims(1, k))],
        vec![build::tensor_value("y", build::FLOAT, &dims(1, m))],
        vec![
            build::f32_external_tensor("w1", &dims(k, n), data, 0, w1_len),
            build::f32_external_tensor("w2", &dims(n, m), data, w1_len, w2_len),
        ],
    );
    fs::write(model, ptq_onnx::encode(&onnx)).expect("write the model");
    model.to_owned()
}

/// An input list of two samples of `k` floats each, in `work`.
fn list(work: &mut Work, k: usize) -> PathBuf {
    for i in 0..2 {
        let values: Vec<f32> = (0..k).map(|j| ((i * 7 + j) % 13) as f32 / 6.0 - 1.0).collect();
        work.write(&format!("data/{i}.raw"), f32_raw(&values));
    }
    work.list("list.txt", &["data/0.raw", "data/1.raw"])
}

#[test]
fn a_model_with_external_data_quantizes_and_its_output_loads() {
    let mut work = Work::new();
    work.mkdir("model");
    let model = two_matmul_model(&work.path("model/m.onnx"), "m.onnx.data", 16, 8, 4);
    let list = list(&mut work, 16);
    work.quantize(&model, "q.onnx").arg("--input_list").arg(&list).assert().success();
    let q = ptq_onnx::load(&work.path("q.onnx")).expect("the output loads");
    let graph = ptq_ir::Graph::new(&q.model, q.dir()).expect("the output's graph builds");
    let ops = graph.op_histogram();
    assert!(ops.get("DequantizeLinear").is_some_and(|&n| n >= 2), "{ops:?}");
    for t in graph.tensors().filter(|t| t.is_constant()) {
        graph.constant(&t.name).unwrap_or_else(|e| panic!("`{}` of the output: {e}", t.name));
    }
}

/// Quantizing a model whose weight `w1` is external data at the location `place` returns (after
/// writing what it points at) fails with exit 1, naming the tensor and the location, and writes
/// nothing.
fn refused(place: impl FnOnce(&mut Work) -> String) {
    let mut work = Work::new();
    work.mkdir("model");
    let location = &place(&mut work);
    let model = two_matmul_model(&work.path("model/m.onnx"), "m.onnx.data", 16, 8, 4);
    let mut onnx = ptq_onnx::load(&model).expect("the model loads before its location is changed");
    let w1 = &mut onnx.model.graph.as_mut().expect("a graph").initializer[0];
    w1.external_data[0].value = Some(location.into());
    fs::write(&model, ptq_onnx::encode(&onnx.model)).expect("rewrite the model");
    let list = list(&mut work, 16);
    let before = common::names_in(&work.path("model"));
    let out =
        work.quantize(&model, "q.onnx").arg("--input_list").arg(&list).assert().code(1).get_output().clone();
    let err = stderr(&out);
    assert!(err.contains("`w1`") && err.contains(&format!("`{location}`")), "{err}");
    assert!(err.contains("leaves the model's folder") && !err.contains("panicked"), "{err}");
    work.assert_nothing_written();
    assert_eq!(common::names_in(&work.path("model")), before, "the model's folder changed");
}

#[test]
fn quantize_refuses_external_data_at_an_absolute_path() {
    refused(|work| work.write("secret.bin", [0u8; 512]).display().to_string());
}

#[test]
fn quantize_refuses_external_data_up_the_tree() {
    refused(|work| {
        work.write("secret.bin", [0u8; 512]);
        "../secret.bin".into()
    });
}

#[cfg(unix)]
#[test]
fn quantize_refuses_external_data_through_a_symlink_out_of_the_folder() {
    refused(|work| {
        let secret = work.write("secret.bin", [0u8; 512]);
        std::os::unix::fs::symlink(&secret, work.path("model/link.bin")).expect("symlink");
        "link.bin".into()
    });
}

/// Run by hand (`cargo test --release -p ptq-cli --test external_data -- --ignored`): needs about
/// 4.5 GB of disk in the system's temporary folder and several GB of memory. `w1` (2.1 GiB)
/// stays float by an override, so the output too is past protobuf's limit and must be written
/// with external data; `w2` is quantized.
#[test]
#[ignore]
fn a_model_over_2_gib_quantizes_and_writes_its_output_with_external_data() {
    let mut work = Work::new();
    work.mkdir("model");
    let (k, n, m) = (16384, 33024, 64);
    let model = two_matmul_model(&work.path("model/big.onnx"), "big.onnx.data", k, n, m);
    assert!(fs::metadata(work.path("model/big.onnx.data")).unwrap().len() > 2 << 30);
    let list = list(&mut work, k);
    let overrides = serde_json::json!({
        "version": "1.0.0",
        "activation_encodings": [],
        "param_encodings": [{"name": "w1", "dtype": "FLOAT", "enc_type": "PER_TENSOR", "bw": 32}],
    });
    let overrides = work.write("overrides.json", overrides.to_string());
    work.quantize(&model, "q.onnx")
        .arg("--input_list")
        .arg(&list)
        .arg("--quantization_overrides")
        .arg(&overrides)
        .assert()
        .success();
    let data = work.path("q.onnx.data");
    assert!(fs::metadata(&data).expect("the output's data file").len() > 2 << 30);
    let q = ptq_onnx::load(&work.path("q.onnx")).expect("the output loads");
    let graph = ptq_ir::Graph::new(&q.model, q.dir()).expect("the output's graph builds");
    let w1 = graph.constant("w1").expect("w1 reads back from the data file");
    assert_eq!(w1.shape, [k, n]);
    assert!(graph.op_histogram().contains_key("DequantizeLinear"), "w2 was quantized");
}
