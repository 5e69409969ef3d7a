//! Every flag is honoured or said not to be: each test is named after a case where a flag was
//! accepted and then silently did nothing (or something else), and checks what happens now.

mod common;

use std::path::{Path, PathBuf};

use common::{Work, model, read_f32, stderr, zoo_lines};
use serde_json::{Value, json};

fn calib(work: &mut Work) -> PathBuf {
    work.list("calib.txt", &zoo_lines("digits_cnn", "calib.txt", 16))
}

/// Runs `cmd`, asserts its exit code, returns its stderr.
fn stderr_of(cmd: &mut assert_cmd::Command, code: i32) -> String {
    let out = cmd.output().expect("ptq runs");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn param_entry<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["param_encodings"].as_array().unwrap().iter().find(|e| e["name"] == name).expect("an entry")
}

#[test]
fn bitwidth_override_below_a_restricted_weight_grid_gets_its_own_grid() {
    let mut work = Work::new();
    let list = calib(&mut work);
    let overrides = json!({"activation_encodings": {}, "param_encodings": {"fc1.weight": [{"bitwidth": 8, "dtype": "int"}]}});
    let overrides = work.write("over.json", overrides.to_string());
    let mut cmd = work.quantize(&model("digits_cnn"), "q.onnx");
    cmd.args([
        "--weights_bitwidth",
        "16",
        "--restrict_quantization_steps",
        "-0x8000 0x7F7F",
        "--dump_encoding_json",
    ]);
    cmd.arg("--quantization_overrides").arg(&overrides).arg("--input_list").arg(&list);
    let err = stderr_of(&mut cmd, 0);
    assert!(err.contains("weight `fc1.weight`: its override asks for 8 bits"), "{err}");
    let doc = work.json("q_encoding.json");
    let fc1 = param_entry(&doc, "fc1.weight");
    assert_eq!((fc1["bw"].as_u64(), fc1["offset"][0].as_i64()), (Some(8), Some(-128)));
    // The other weights keep the restricted 16-bit grid.
    assert_eq!(param_entry(&doc, "fc2.weight")["offset"][0].as_i64(), Some(-0x8000));
    // The written model computes what the float one does (wrapped int8 weights gave noise).
    let logits = |m: &Path, out: &str| {
        work.run_into(m, &list, &work.path(out)).assert().success();
        read_f32(&work.path(out).join("Result_0").join("logits.raw"))
    };
    let (q, f) = (logits(&work.path("q.onnx"), "q_out"), logits(&model("digits_cnn"), "f_out"));
    let noise: f32 = q.iter().zip(&f).map(|(a, b)| (a - b) * (a - b)).sum();
    let signal: f32 = f.iter().map(|b| b * b).sum();
    assert!(noise < signal / 100.0, "{q:?} vs {f:?}");
}
