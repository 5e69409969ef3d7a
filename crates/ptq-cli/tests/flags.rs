//! Every flag is honoured or said not to be: each test is named after a case where a flag was
//! accepted and then silently did nothing (or something else), and checks what happens now.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{Work, f32_raw, model, read_f32, stderr, zoo_lines};
use ptq_onnx::build;
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

fn opset(path: &Path) -> i64 {
    let m = ptq_onnx::decode(fs::read(path).unwrap().into(), path).unwrap();
    m.opset_import.iter().find(|o| o.domain().is_empty()).and_then(|o| o.version).unwrap()
}

#[test]
fn output_lines_in_a_quantize_list_are_checked_and_said_to_be_ignored() {
    let mut work = Work::new();
    let samples = zoo_lines("digits_cnn", "calib.txt", 4);
    let mut lines = vec!["%logits relu1_out".to_string()];
    lines.extend(samples.iter().cloned());
    let list = work.list("outs.txt", &lines);
    let err = stderr_of(work.quantize(&model("digits_cnn"), "q.onnx").arg("--input_list").arg(&list), 0);
    assert!(err.contains("outs.txt: the `#`/`%` output lines are ignored for calibration"), "{err}");
    assert!(err.contains("keeps the model's outputs (logits); `relu1_out` is not one of them"), "{err}");
    // A name the model lacks fails, naming the line.
    let mut lines = vec!["#no_such_node".to_string()];
    lines.extend(samples);
    let list = work.list("bad.txt", &lines);
    let err = stderr_of(work.quantize(&model("digits_cnn"), "r.onnx").arg("--input_list").arg(&list), 1);
    assert!(err.contains("bad.txt:1: the `#` line names node `no_such_node`"), "{err}");
    assert!(!work.path("r.onnx").exists());
}

#[test]
fn unfolded_batch_normalization_is_reported() {
    let mut work = Work::new();
    let c = |name: &str, v: f32| build::f32_tensor(name, &[2], &[v, v]);
    let m = build::model(
        13,
        vec![
            build::node("Relu", "relu", &["x"], &["r"]),
            build::node("BatchNormalization", "bn", &["r", "s", "b", "mean", "var"], &["z"]),
        ],
        vec![build::tensor_value("x", build::FLOAT, &[1, 2, 2, 2])],
        vec![build::tensor_value("z", build::FLOAT, &[1, 2, 2, 2])],
        vec![c("s", 2.0), c("b", 0.5), c("mean", 0.1), c("var", 1.0)],
    );
    let m = work.write("bn.onnx", ptq_onnx::encode(&m));
    work.write("x.raw", f32_raw(&[-1.0, 0.5, 1.0, 2.0, 0.0, 3.0, -2.0, 1.5]));
    let list = work.list("list.txt", &["x.raw"]);
    let err = stderr_of(work.quantize(&m, "q.onnx").arg("--input_list").arg(&list), 0);
    assert!(
        err.contains("not folded BatchNormalization `bn`: its input `r` comes from Relu `relu`"),
        "{err}"
    );
}

#[test]
fn float_fallback_keeps_the_opset() {
    let mut work = Work::new();
    let list = calib(&mut work);
    work.quantize(&model("digits_cnn"), "q.onnx").arg("--input_list").arg(&list).assert().success();
    let q = work.path("q.onnx");
    work.quantize(&q, "plain.onnx").arg("--enable_float_fallback").assert().success();
    work.quantize(&q, "f.onnx").args(["--enable_float_fallback", "--act_bitwidth", "16"]).assert().success();
    assert_eq!(opset(&work.path("f.onnx")), 13, "nothing asked for 16-bit tensors");
    assert!(fs::read(work.path("plain.onnx")).unwrap() == fs::read(work.path("f.onnx")).unwrap());
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

#[test]
fn qairt_short_options() {
    let mut work = Work::new();
    let list = calib(&mut work);
    let out = work.path("q.onnx");
    let mut cmd = work.ptq();
    cmd.args(["quantize", "-i"]).arg(model("digits_cnn")).arg("-o").arg(&out).arg("-l").arg(&list);
    cmd.arg("--dump_encoding_json").assert().success();
    // convert: -q is qairt's --quantization_overrides; quiet is -Q.
    let mut cmd = work.ptq();
    cmd.args(["convert", "-Q", "-i"]).arg(model("digits_cnn"));
    cmd.arg("-q").arg(work.path("q_encoding.json")).arg("-o").arg(work.path("c.onnx"));
    let err = stderr_of(&mut cmd, 0);
    assert!(err.is_empty(), "{err}");
    assert!(work.path("c.onnx").exists());
}
