//! `ptq quantize` end to end on the digits model: outputs, determinism, flags and bad input.

mod common;

use std::fs;
use std::path::PathBuf;

use assert_cmd::Command;
use common::{Work, model, stderr, zoo_lines};
use predicates::prelude::*;
use predicates::str::contains;

/// `ptq quantize` on digits_cnn with 16 calibration samples, writing `<tmp>/q.onnx`.
fn quantize(work: &mut Work) -> (Command, PathBuf) {
    let list = work.list("calib.txt", &zoo_lines("digits_cnn", "calib.txt", 16));
    let mut cmd = work.ptq();
    cmd.arg("quantize").arg("--input_model").arg(model("digits_cnn")).arg("--input_list").arg(&list);
    cmd.arg("--output_model").arg(work.path("q.onnx"));
    (cmd, list)
}

fn encodings(work: &Work) -> serde_json::Value {
    serde_json::from_slice(&fs::read(work.path("q_encoding.json")).unwrap()).unwrap()
}

fn entry<'a>(doc: &'a serde_json::Value, section: &str, name: &str) -> &'a serde_json::Value {
    doc[section].as_array().unwrap().iter().find(|e| e["name"] == name).unwrap_or_else(|| panic!("{name}"))
}

#[test]
fn writes_a_qdq_model_and_the_encodings_json() {
    let mut work = Work::new();
    let (mut cmd, _) = quantize(&mut work);
    let out = cmd.arg("--dump_encoding_json").assert().success().get_output().clone();
    let err = stderr(&out);
    assert!(err.contains("SQNR") && err.contains("logits") && err.contains("dB"), "{err}");
    let bytes = fs::read(work.path("q.onnx")).unwrap();
    let qdq = ptq_onnx::decode(bytes.into(), &work.path("q.onnx")).unwrap();
    let ops: Vec<&str> = qdq.graph.as_ref().unwrap().node.iter().map(|n| n.op_type()).collect();
    assert!(ops.contains(&"QuantizeLinear") && ops.contains(&"DequantizeLinear"));
    // The graph output keeps its name, written by the last DequantizeLinear (Decision 8).
    let last =
        qdq.graph.as_ref().unwrap().node.iter().find(|n| n.output.iter().any(|o| o == "logits")).unwrap();
    assert_eq!(last.op_type(), "DequantizeLinear");

    let doc = encodings(&work);
    assert_eq!(doc["version"], "1.0.0");
    let w = entry(&doc, "param_encodings", "conv1.weight");
    assert_eq!(
        (w["bw"].as_u64(), w["is_sym"].as_bool(), w["offset"][0].as_i64()),
        (Some(8), Some(true), Some(-128))
    );
    let b = entry(&doc, "param_encodings", "conv1.bias");
    assert_eq!((b["bw"].as_u64(), b["offset"][0].as_i64()), (Some(32), Some(0)));
    // Bias scale = input scale × weight scale (f32 product).
    let s_in = entry(&doc, "activation_encodings", "input")["scale"][0].as_f64().unwrap() as f32;
    let s_w = w["scale"][0].as_f64().unwrap() as f32;
    assert_eq!(b["scale"][0].as_f64().unwrap() as f32, s_in * s_w);
    // MaxPool shares its input's encoding (spec §5.2).
    let pool = entry(&doc, "activation_encodings", "pool_out");
    assert_eq!(pool["scale"], entry(&doc, "activation_encodings", "relu3_out")["scale"]);
}

#[test]
fn the_same_command_twice_gives_identical_files() {
    let mut work = Work::new();
    let (mut first, _) = quantize(&mut work);
    first.arg("--dump_encoding_json").arg("--use_per_channel_quantization").assert().success();
    let model_a = fs::read(work.path("q.onnx")).unwrap();
    let json_a = fs::read(work.path("q_encoding.json")).unwrap();
    let (mut second, _) = quantize(&mut work);
    second.arg("--dump_encoding_json").arg("--use_per_channel_quantization").env("RAYON_NUM_THREADS", "1");
    second.assert().success();
    assert!(model_a == fs::read(work.path("q.onnx")).unwrap(), "model bytes differ");
    assert!(json_a == fs::read(work.path("q_encoding.json")).unwrap(), "encodings differ");
}

#[test]
fn per_channel_weights_and_the_legacy_json() {
    let mut work = Work::new();
    let (mut cmd, _) = quantize(&mut work);
    cmd.args(["--use_per_channel_quantization", "--dump_encoding_json", "--encoding_version", "0.6.1"]);
    cmd.assert().success();
    let doc = encodings(&work);
    assert_eq!(doc["version"], "0.6.1");
    let w = doc["param_encodings"]["conv1.weight"].as_array().unwrap();
    assert_eq!(w.len(), 16, "one encoding per output channel");
    assert_eq!(w[0]["is_symmetric"], "True");
    assert_eq!(doc["activation_encodings"]["input"][0]["is_symmetric"], "False");
}

#[test]
fn default_output_name_is_beside_the_input() {
    let mut work = Work::new();
    let copy = work.write("m.onnx", fs::read(model("digits_cnn")).unwrap());
    let list = work.list("calib.txt", &zoo_lines("digits_cnn", "calib.txt", 4));
    work.ptq()
        .arg("quantize")
        .arg("--input_model")
        .arg(&copy)
        .arg("--input_list")
        .arg(&list)
        .assert()
        .success();
    assert!(work.path("m_quantized.onnx").exists());
}

#[test]
fn input_list_and_float_fallback_together_is_a_usage_error() {
    let mut work = Work::new();
    let (mut cmd, _) = quantize(&mut work);
    cmd.arg("--enable_float_fallback").assert().code(2).stderr(contains("--enable_float_fallback"));
    assert!(!work.path("q.onnx").exists());
}

#[test]
fn neither_input_list_nor_float_fallback_is_a_usage_error() {
    let work = Work::new();
    let mut cmd = work.ptq();
    cmd.arg("quantize").arg("--input_model").arg(model("digits_cnn"));
    cmd.assert().code(2).stderr(contains("--input_list"));
}

#[test]
fn bitwidths_outside_the_allowed_sets_are_usage_errors() {
    for (flag, value, allowed) in [
        ("--act_bitwidth", "4", "8, 16"),
        ("--weights_bitwidth", "3", "2, 4, 8, 16"),
        ("--bias_bitwidth", "16", "8, 32"),
    ] {
        let mut work = Work::new();
        let (mut cmd, _) = quantize(&mut work);
        cmd.args([flag, value]).assert().code(2).stderr(contains(flag).and(contains(allowed)));
    }
}

#[test]
fn unknown_schema_is_a_usage_error() {
    let mut work = Work::new();
    let (mut cmd, _) = quantize(&mut work);
    cmd.args(["--param_quantizer_schema", "tf"])
        .assert()
        .code(2)
        .stderr(contains("--param_quantizer_schema"));
}

#[test]
fn per_row_bias_without_per_row_weights_is_a_usage_error() {
    let mut work = Work::new();
    let (mut cmd, _) = quantize(&mut work);
    cmd.arg("--enable_per_row_quantized_bias")
        .assert()
        .code(2)
        .stderr(contains("--use_per_row_quantization"));
}

#[test]
fn the_output_may_not_be_the_input() {
    let mut work = Work::new();
    let copy = work.write("m.onnx", fs::read(model("digits_cnn")).unwrap());
    let before = fs::read(&copy).unwrap();
    let list = work.list("calib.txt", &zoo_lines("digits_cnn", "calib.txt", 4));
    let mut cmd = work.ptq();
    cmd.arg("quantize").arg("--input_model").arg(&copy).arg("--input_list").arg(&list);
    cmd.arg("--output_model").arg(work.path("./m.onnx"));
    cmd.assert().code(2).stderr(contains("never overwrites its input"));
    assert!(fs::read(&copy).unwrap() == before, "the input changed");
}

/// qairt scripts name the output `.dlc`; what ptq writes there is ONNX, so it asks for an ONNX
/// name instead of writing an ONNX file that claims to be a DLC.
#[test]
fn output_dlc_named_dlc_is_a_usage_error() {
    let mut work = Work::new();
    let list = work.list("calib.txt", &zoo_lines("digits_cnn", "calib.txt", 4));
    let mut cmd = work.ptq();
    cmd.arg("quantize").arg("--input_model").arg(model("digits_cnn")).arg("--input_list").arg(&list);
    cmd.arg("--output_dlc").arg(work.path("q.dlc"));
    cmd.assert()
        .code(2)
        .stderr(contains("--output_model").and(contains("not a DLC")).and(contains("q.onnx")));
    work.assert_nothing_written();
    let mut convert = work.ptq();
    convert.arg("convert").arg("--input_network").arg(model("digits_cnn"));
    convert.arg("--output_path").arg(work.path("c.DLC"));
    convert.assert().code(2).stderr(contains("--output_path").and(contains("not a DLC")));
    work.assert_nothing_written();
}

#[test]
fn a_failed_run_writes_nothing() {
    let mut work = Work::new();
    let list = work.list("bad.txt", &["missing.raw"]);
    let mut cmd = work.ptq();
    cmd.arg("quantize").arg("--input_model").arg(model("digits_cnn")).arg("--input_list").arg(&list);
    cmd.arg("--output_model").arg(work.path("q.onnx")).arg("--dump_encoding_json");
    cmd.assert().code(1).stderr(contains("bad.txt:1"));
    assert!(!work.path("q.onnx").exists() && !work.path("q_encoding.json").exists());
    work.assert_nothing_written();
}

#[test]
fn restricted_steps_shape_the_weight_encodings() {
    let mut work = Work::new();
    let (mut cmd, _) = quantize(&mut work);
    cmd.args([
        "--weights_bitwidth",
        "16",
        "--restrict_quantization_steps",
        "-0x8000 0x7F7F",
        "--param_quantizer_calibration",
        "min-max",
        "--dump_encoding_json",
    ]);
    cmd.assert().success();
    let doc = encodings(&work);
    let w = entry(&doc, "param_encodings", "pwconv.weight");
    assert_eq!((w["bw"].as_u64(), w["offset"][0].as_i64()), (Some(16), Some(-32768)));
    // Δ = 2·absmax / 65407 instead of absmax / 32767 (pwconv has no BatchNormalization folded in).
    let scale = w["scale"][0].as_f64().unwrap();
    let bytes = fs::read(model("digits_cnn")).unwrap();
    let m = ptq_onnx::decode(bytes.into(), &model("digits_cnn")).unwrap();
    let t = m.graph.unwrap().initializer.into_iter().find(|t| t.name() == "pwconv.weight").unwrap();
    let raw = t.raw_data.unwrap();
    let absmax =
        raw.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()).abs()).fold(0.0f32, f32::max);
    assert!((scale - 2.0 * f64::from(absmax) / 65407.0).abs() < 1e-6 * scale, "{scale}");
}

#[test]
fn malformed_restricted_steps_are_usage_errors() {
    for value in ["-128 127", "0x80 0x7F", "-0x80", "-0x8000 0x7F7F"] {
        let mut work = Work::new();
        let (mut cmd, _) = quantize(&mut work);
        cmd.args(["--restrict_quantization_steps", value]);
        cmd.assert().code(2).stderr(contains("--restrict_quantization_steps"));
        assert!(!work.path("q.onnx").exists());
    }
}

#[test]
fn restricted_steps_on_asymmetric_weights_are_ignored_with_a_warning() {
    let mut work = Work::new();
    let (mut cmd, _) = quantize(&mut work);
    cmd.args(["--param_quantizer_schema", "asymmetric", "--restrict_quantization_steps", "-0x80 0x7F"]);
    cmd.assert().success().stderr(contains("warning").and(contains("ignored")));
}

#[test]
fn preserve_io_datatype_checks_its_names() {
    let mut work = Work::new();
    let (mut cmd, _) = quantize(&mut work);
    cmd.args(["--preserve_io_datatype", "logits,nope"]).assert().code(2).stderr(contains("`nope`"));
    let (mut cmd, _) = quantize(&mut work);
    cmd.args(["--preserve_io_datatype", "input,logits"]).assert().success();
}

#[test]
fn a_bias_add_after_a_conv_becomes_its_derived_bias_and_the_report_says_so() {
    use ptq_onnx::build::{self, FLOAT};
    // paddle2onnx's way: Conv without bias → Add(Reshape(b, [1, C, 1, 1])).
    let mut work = Work::new();
    let m = build::model(
        13,
        vec![
            build::node("Conv", "conv", &["x", "w"], &["c"]),
            build::node("Reshape", "bias_shape", &["b", "shape"], &["b4"]),
            build::node("Add", "bias_add", &["c", "b4"], &["y"]),
        ],
        vec![build::tensor_value("x", FLOAT, &[1, 1, 2, 2])],
        vec![build::tensor_value("y", FLOAT, &[1, 2, 2, 2])],
        vec![
            build::f32_tensor("w", &[2, 1, 1, 1], &[0.5, -1.0]),
            build::f32_tensor("b", &[2], &[0.25, 3.0]),
            build::i64_tensor("shape", &[4], &[1, 2, 1, 1]),
        ],
    );
    let model = work.write("m.onnx", ptq_onnx::encode(&m));
    work.write("a.raw", common::f32_raw(&[1.0, -2.0, 3.0, 0.5]));
    let list = work.list("l.txt", &["a.raw"]);
    work.quantize(&model, "q.onnx")
        .arg("--input_list")
        .arg(&list)
        .assert()
        .success()
        .stderr(contains("folded     1 Add"));
    let report = work.json("q_report.json");
    assert_eq!(
        report["folded"],
        serde_json::json!([{ "layer": "conv", "folded": "bias_add", "op_type": "Add" }])
    );
    assert_eq!(report["tensors"]["conv_bias"]["origin"], "derived");
    assert_eq!(report["tensors"]["conv_bias"]["bitwidth"], 32);
    let q = ptq_onnx::load(&work.path("q.onnx")).unwrap().model;
    let ops: Vec<&str> = q.graph.as_ref().unwrap().node.iter().map(|n| n.op_type()).collect();
    assert!(!ops.contains(&"Add") && !ops.contains(&"Reshape"), "{ops:?}");
}

#[test]
fn a_tensor_that_is_never_finite_stays_float_with_a_warning_naming_it() {
    // x / 0 is ±Inf for every sample; the Sigmoid after it is finite again.
    let mut work = Work::new();
    let model = work.write("m.onnx", common::never_finite_model());
    work.write("a.raw", common::f32_raw(&[1.0, -2.0, 3.0, 4.0]));
    work.write("b.raw", common::f32_raw(&[5.0, 6.0, -7.0, 8.0]));
    let list = work.list("l.txt", &["a.raw", "b.raw"]);
    work.quantize(&model, "q.onnx")
        .arg("--input_list")
        .arg(&list)
        .assert()
        .success()
        .stderr(contains("warning: `inf` holds 8 NaN or Inf values").and(contains("stays float")));
    let report = work.json("q_report.json");
    assert!(report["tensors"].get("inf").is_none_or(|t| t["dtype"] == "float"), "{}", report["tensors"]);
    assert_eq!(report["tensors"]["s"]["dtype"], "int");
}

/// Issue 16: the summary's SQNR stood for the first 16 samples only (silero_vad_16k: 13.69 dB
/// there, 3.52 over all 128); it is measured on samples spread over the list, and says so.
#[test]
fn summary_sqnr_is_measured_on_samples_spread_over_the_list() {
    let mut work = Work::new();
    let list = work.list("calib.txt", &zoo_lines("digits_cnn", "calib.txt", 40));
    work.quantize(&model("digits_cnn"), "q.onnx")
        .arg("--input_list")
        .arg(&list)
        .assert()
        .success()
        .stderr(contains("vs float on 16 of the 40 samples, spread over --input_list"));
    assert_eq!(work.json("q_report.json")["sqnr_samples"], 16);
    assert_eq!(work.json("q_report.json")["sqnr_list"], "input_list");
}

/// A separate evaluation list: the SQNR is measured on every one of its samples, and said so.
#[test]
fn summary_sqnr_on_an_eval_list_uses_all_of_it() {
    let mut work = Work::new();
    let list = work.list("calib.txt", &zoo_lines("digits_cnn", "calib.txt", 8));
    let eval = work.list("eval.txt", &zoo_lines("digits_cnn", "eval.txt", 24));
    work.quantize(&model("digits_cnn"), "q.onnx")
        .arg("--input_list")
        .arg(&list)
        .arg("--eval_list")
        .arg(&eval)
        .assert()
        .success()
        .stderr(contains("vs float on all 24 samples of --eval_list"));
    let report = work.json("q_report.json");
    assert_eq!(
        (report["sqnr_samples"].as_u64(), report["sqnr_list"].as_str()),
        (Some(24), Some("eval_list"))
    );
    // A bad evaluation list fails before calibration, naming its line.
    work.write("bad.txt", "missing.raw\n");
    work.quantize(&model("digits_cnn"), "q2.onnx")
        .arg("--input_list")
        .arg(&list)
        .arg("--eval_list")
        .arg(work.path("bad.txt"))
        .assert()
        .code(1)
        .stderr(contains("bad.txt:1"));
    assert!(!work.path("q2.onnx").exists());
}
