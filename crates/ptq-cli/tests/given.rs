//! Given encodings: overrides files, QDQ models, fill-in-the-gaps, float fallback, `ptq convert`.

mod common;

use std::fs;
use std::path::PathBuf;

use common::{Work, model, zoo_lines};
use predicates::prelude::*;
use predicates::str::contains;
use serde_json::{Value, json};

fn calib(work: &mut Work) -> PathBuf {
    work.list("calib.txt", &zoo_lines("digits_cnn", "calib.txt", 16))
}

fn entry<'a>(doc: &'a Value, name: &str) -> Option<&'a Value> {
    ["activation_encodings", "param_encodings"]
        .iter()
        .flat_map(|s| doc[*s].as_array().unwrap())
        .find(|e| e["name"] == name)
}

fn ops(work: &Work, file: &str) -> Vec<(String, String)> {
    let path = work.path(file);
    let m = ptq_onnx::decode(fs::read(&path).unwrap().into(), &path).unwrap();
    m.graph.unwrap().node.iter().map(|n| (n.op_type().to_owned(), n.name().to_owned())).collect()
}

/// The round trip: dumped encodings → convert → float fallback = the first model, byte
/// for byte.
#[test]
fn dump_convert_fallback_round_trip_is_byte_identical() {
    let mut work = Work::new();
    let list = calib(&mut work);
    work.quantize(&model("digits_cnn"), "q.onnx")
        .args(["--use_per_channel_quantization", "--dump_encoding_json", "--input_list"])
        .arg(&list)
        .assert()
        .success();
    let mut convert = work.ptq();
    convert.arg("convert").arg("--input_network").arg(model("digits_cnn"));
    convert
        .arg("--quantization_overrides")
        .arg(work.path("q_encoding.json"))
        .arg("--output_path")
        .arg(work.path("c.onnx"));
    convert.assert().success();
    work.quantize(&work.path("c.onnx"), "r.onnx").arg("--enable_float_fallback").assert().success();
    assert!(fs::read(work.path("q.onnx")).unwrap() == fs::read(work.path("r.onnx")).unwrap());
    // Without samples an activation method has nothing to work on: said, not silently dropped.
    work.quantize(&work.path("c.onnx"), "s.onnx")
        .args(["--enable_float_fallback", "--act_quantizer_calibration", "mse"])
        .assert()
        .success()
        .stderr(predicates::str::contains(
            "--act_quantizer_calibration has no effect with --enable_float_fallback",
        ));
    assert!(fs::read(work.path("q.onnx")).unwrap() == fs::read(work.path("s.onnx")).unwrap());
}

/// A QDQ model keeps every one of its encodings when it is quantized again (nothing to fill).
#[test]
fn a_qdq_model_keeps_its_encodings() {
    let mut work = Work::new();
    let list = calib(&mut work);
    work.quantize(&model("digits_cnn"), "q.onnx").arg("--input_list").arg(&list).assert().success();
    work.quantize(&work.path("q.onnx"), "again.onnx")
        .arg("--input_list")
        .arg(&list)
        .assert()
        .success()
        .stderr(contains("qat"));
    assert!(fs::read(work.path("q.onnx")).unwrap() == fs::read(work.path("again.onnx")).unwrap());
    // `inspect` lists them, with their origin.
    let out = work
        .ptq()
        .arg("inspect")
        .arg("--json")
        .arg(work.path("q.onnx"))
        .assert()
        .success()
        .get_output()
        .clone();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let logits = &doc["encodings"]["logits"];
    assert_eq!((logits["origin"].as_str(), logits["bitwidth"].as_u64()), (Some("qat"), Some(8)));
    assert_eq!(doc["encodings"]["conv1.bias"]["bitwidth"], 32);
}

/// Partial overrides: the named tensors keep exactly what the file says (bitwidth, scale,
/// offset, float); the others are calibrated as in a run without overrides.
#[test]
fn partial_overrides_are_kept_and_the_rest_calibrated() {
    let mut work = Work::new();
    let list = calib(&mut work);
    work.quantize(&model("digits_cnn"), "plain.onnx")
        .args(["--dump_encoding_json", "--input_list"])
        .arg(&list)
        .assert()
        .success();
    let plain = work.json("plain_encoding.json");
    let overrides = json!({
        "version": "1.0.0",
        "activation_encodings": [
            {"name": "input", "dtype": "INT", "enc_type": "PER_TENSOR", "is_sym": false, "bw": 16,
             "scale": [0.0001], "offset": [-1000]},
            {"name": "relu2_out", "dtype": "FLOAT", "enc_type": "PER_TENSOR", "bw": 16},
        ],
        "param_encodings": [],
    });
    work.write("over.json", overrides.to_string());
    let run = work
        .quantize(&model("digits_cnn"), "q.onnx")
        .args(["--dump_encoding_json", "--input_list"])
        .arg(&list)
        .arg("--quantization_overrides")
        .arg(work.path("over.json"))
        .assert()
        .success()
        .stderr(contains("override"));
    let summary = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    let got = work.json("q_encoding.json");
    let input = entry(&got, "input").unwrap();
    assert_eq!((input["bw"].as_u64(), input["offset"][0].as_i64()), (Some(16), Some(-1000)));
    assert_eq!(input["scale"][0].as_f64().unwrap() as f32, 0.0001f32);
    assert_eq!(entry(&got, "relu2_out").unwrap()["dtype"], "FLOAT");
    // relu2_out is float at 16 bit: a marked Cast pair. It is the output of the depthwise conv
    // (fused with its Relu), so that layer's weight and bias are float too (spec §4.4).
    assert_eq!(entry(&got, "dwconv.weight").unwrap()["dtype"], "FLOAT");
    assert_eq!(entry(&got, "dwconv.bias").unwrap()["dtype"], "FLOAT");
    let nodes = ops(&work, "q.onnx");
    assert!(nodes.iter().any(|(op, name)| op == "Cast" && name == "relu2_out_ptq_fp16_cast"), "{nodes:?}");
    // The report says where each encoding came from.
    let report = work.json("q_report.json");
    assert_eq!(report["tensors"]["input"]["origin"], "override");
    assert_eq!(report["tensors"]["relu2_out"]["origin"], "float");
    assert_eq!(report["tensors"]["dwconv.weight"]["origin"], "float with its layer");
    assert_eq!(report["tensors"]["relu3_out"]["origin"], "calibrated");
    // The summary's float count is the report's float entries: the 16-bit ones are among them,
    // not counted again.
    let floats = report["tensors"].as_object().unwrap().values().filter(|t| t["dtype"] == "float").count();
    assert!(summary.contains(&format!("float      {floats} tensors left float")), "{floats}: {summary}");
    assert!(summary.contains("of them run at 16 bit (Cast pairs)"), "{summary}");
    // A tensor nobody overrode is calibrated exactly as before.
    assert_eq!(entry(&got, "relu3_out"), entry(&plain, "relu3_out"));
}

#[test]
fn float_fallback_without_encodings_is_an_error() {
    let work = Work::new();
    work.quantize(&model("digits_cnn"), "q.onnx")
        .arg("--enable_float_fallback")
        .assert()
        .code(1)
        .stderr(contains("nothing to propagate"));
    assert!(!work.path("q.onnx").exists());
}

#[test]
fn float_fallback_with_ignored_overrides_is_a_usage_error() {
    let work = Work::new();
    work.quantize(&model("digits_cnn"), "q.onnx")
        .args(["--enable_float_fallback", "--ignore_quantization_overrides"])
        .assert()
        .code(2)
        .stderr(contains("--ignore_quantization_overrides"));
}

#[test]
fn malformed_overrides_name_line_and_column() {
    let mut work = Work::new();
    let list = calib(&mut work);
    work.write("bad.json", "{\n  \"version\": \"1.0.0\",\n  \"activation_encodings\": [ oops ]\n}\n");
    work.quantize(&model("digits_cnn"), "q.onnx")
        .arg("--input_list")
        .arg(&list)
        .arg("--quantization_overrides")
        .arg(work.path("bad.json"))
        .assert()
        .code(1)
        .stderr(contains("bad.json:3:"));
    assert!(!work.path("q.onnx").exists());
}

#[test]
fn unknown_override_names_list_the_closest_and_can_be_allowed() {
    let mut work = Work::new();
    let list = calib(&mut work);
    let overrides = json!({"version": "1.0.0", "param_encodings": [], "activation_encodings": [
        {"name": "relu_2_out", "dtype": "FLOAT", "enc_type": "PER_TENSOR", "bw": 16}]});
    work.write("over.json", overrides.to_string());
    let run = |allow: bool| {
        let mut cmd = work.quantize(&model("digits_cnn"), "q.onnx");
        cmd.arg("--input_list").arg(&list).arg("--quantization_overrides").arg(work.path("over.json"));
        if allow {
            cmd.arg("--allow_unknown_override_names");
        }
        cmd
    };
    run(false).assert().code(1).stderr(contains("relu_2_out").and(contains("relu2_out")));
    run(true).assert().success().stderr(contains("warning").and(contains("relu_2_out")));
}

#[test]
fn convert_stripped_gives_a_clean_float_model() {
    let mut work = Work::new();
    let list = calib(&mut work);
    work.quantize(&model("digits_cnn"), "q.onnx").arg("--input_list").arg(&list).assert().success();
    let mut convert = work.ptq();
    convert.arg("convert").arg("--input_network").arg(work.path("q.onnx"));
    convert.args(["--export_format", "DLC_STRIP_QUANT", "--output_path"]).arg(work.path("f.onnx"));
    convert.assert().success();
    let nodes = ops(&work, "f.onnx");
    assert!(nodes.iter().all(|(op, _)| !op.contains("Quantize")), "{nodes:?}");
    // It runs, and like the float model (BatchNormalization folded in the quantized one).
    let out = work.path("out");
    let mut run = work.ptq();
    run.arg("run").arg("--input_model").arg(work.path("f.onnx")).arg("--input_list").arg(&list);
    run.arg("--output_dir").arg(&out).assert().success();
}

/// `--keep_weights_quantized`: in float fallback the weights get encodings from their values
/// even where their layer is float; the biases go float with the layer (spec §1.0).
#[test]
fn keep_weights_quantized_in_float_fallback() {
    let mut work = Work::new();
    let overrides = json!({"version": "1.0.0", "param_encodings": [], "activation_encodings": [
        {"name": "input", "dtype": "INT", "enc_type": "PER_TENSOR", "is_sym": false, "bw": 8,
         "scale": [0.00392156862745098], "offset": [0]}]});
    work.write("over.json", overrides.to_string());
    work.quantize(&model("digits_cnn"), "q.onnx")
        .args(["--enable_float_fallback", "--keep_weights_quantized", "--quantization_overrides"])
        .arg(work.path("over.json"))
        .assert()
        .success();
    let report = work.json("q_report.json");
    assert_eq!(report["tensors"]["input"]["origin"], "override");
    assert_eq!(report["tensors"]["pwconv.weight"]["dtype"], "int");
    assert_eq!(report["tensors"]["pwconv.bias"]["dtype"], "float");
    assert_eq!(report["tensors"]["relu3_out"]["origin"], "float fallback");
}

#[test]
fn overrides_with_ignore_overrides_is_a_usage_error() {
    let mut work = Work::new();
    let list = calib(&mut work);
    work.write(
        "over.json",
        json!({"version": "1.0.0", "activation_encodings": [], "param_encodings": []}).to_string(),
    );
    work.quantize(&model("digits_cnn"), "q.onnx")
        .arg("--input_list")
        .arg(&list)
        .arg("--quantization_overrides")
        .arg(work.path("over.json"))
        .arg("--ignore_quantization_overrides")
        .assert()
        .code(2)
        .stderr(contains("--ignore_quantization_overrides"));
    assert!(!work.path("q.onnx").exists());
}

/// onnxruntime's QDQ model of `x → MatMul → Relu → Add → y` after it removed the Relu: the
/// MatMul writes `h`, whose QuantizeLinear grid starts at 0 (uint8, zero point 0) and clamps.
fn relu_fused_by_onnxruntime() -> Vec<u8> {
    use ptq_onnx::build::{FLOAT, f32_tensor, model, node, raw_tensor, tensor_value};
    const UINT8: i32 = 2;
    let nodes = vec![
        node("MatMul", "mm", &["x", "w"], &["h"]),
        node("QuantizeLinear", "h_q", &["h", "s", "zp"], &["h_quantized"]),
        node("DequantizeLinear", "h_dq", &["h_quantized", "s", "zp"], &["h_dequantized"]),
        node("Add", "add", &["h_dequantized", "b"], &["y"]),
    ];
    let inits = vec![
        f32_tensor("w", &[2, 2], &[1.0, -1.0, -2.0, 0.5]),
        f32_tensor("b", &[2], &[0.25, 0.25]),
        f32_tensor("s", &[], &[0.01]),
        raw_tensor("zp", UINT8, &[], vec![0]),
    ];
    let io = |name| tensor_value(name, FLOAT, &[1, 2]);
    ptq_onnx::encode(&model(13, nodes, vec![io("x")], vec![io("y")], inits))
}

/// Stripping such a model without the clamp gave the float model negatives it never had
/// (digits_cnn's onnxruntime model fell from 28.6 to −7.1 dB): the Relu comes back, is said,
/// and the count of dropped encodings is the model's (it said 0).
#[test]
fn stripping_restores_the_relu_onnxruntime_fused_into_a_quantize_range() {
    let mut work = Work::new();
    let qdq = work.write("ort_qdq.onnx", relu_fused_by_onnxruntime());
    work.ptq()
        .args(["convert", "--export_format", "stripped", "--input_network"])
        .arg(&qdq)
        .arg("--output_path")
        .arg(work.path("float.onnx"))
        .assert()
        .success()
        .stderr(contains("a Relu is put back on `h`").and(contains("(1 encodings dropped)")));
    let nodes = ops(&work, "float.onnx");
    let kinds: Vec<&str> = nodes.iter().map(|(op, _)| op.as_str()).collect();
    assert_eq!(kinds, ["MatMul", "Relu", "Add"], "{nodes:?}");
}

/// `convert` keeps given encodings and leaves the rest float; a weight given alone sits in a
/// layer whose output stays float, so the layer runs float and the weight's encoding goes —
/// now said, naming the weight, the layer and what to give.
#[test]
fn convert_says_when_a_given_weight_encoding_is_dropped_with_its_float_layer() {
    let mut work = Work::new();
    let overrides = json!({
        "version": "1.0.0",
        "activation_encodings": [],
        "param_encodings": [
            {"name": "pwconv.weight", "dtype": "INT", "enc_type": "PER_TENSOR", "is_sym": true, "bw": 8,
             "scale": [0.01], "offset": [-128]},
        ],
    });
    work.write("over.json", overrides.to_string());
    work.ptq()
        .args(["convert", "--input_network"])
        .arg(model("digits_cnn"))
        .arg("--quantization_overrides")
        .arg(work.path("over.json"))
        .arg("--output_path")
        .arg(work.path("c.onnx"))
        .assert()
        .success()
        .stderr(contains("`pwconv.weight`'s given encoding is dropped").and(contains("give `")));
}

/// digits_cnn quantized on the calibration samples with `overrides`.
fn calibrated_with(work: &mut Work, overrides: &Value) -> assert_cmd::assert::Assert {
    let list = calib(work);
    work.write("over.json", overrides.to_string());
    work.quantize(&model("digits_cnn"), "q.onnx")
        .arg("--input_list")
        .arg(&list)
        .arg("--quantization_overrides")
        .arg(work.path("over.json"))
        .assert()
}

/// A given encoding that clips more than 1 % of its tensor's values is named with the share; a
/// weight whose BatchNormalization was folded is told to give the folded weights' encoding (an
/// encoding for the unfolded `conv1.weight` clipped the folded one to −3.8 dB without a word).
#[test]
fn given_encodings_that_clip_are_named_with_the_share() {
    let mut work = Work::new();
    let overrides = json!({
        "version": "1.0.0",
        "activation_encodings": [
            {"name": "relu3_out", "dtype": "INT", "enc_type": "PER_TENSOR", "is_sym": false, "bw": 8,
             "scale": [0.001], "offset": [0]},
        ],
        "param_encodings": [
            {"name": "conv1.weight", "dtype": "INT", "enc_type": "PER_TENSOR", "is_sym": true, "bw": 8,
             "scale": [0.001], "offset": [-128]},
        ],
    });
    calibrated_with(&mut work, &overrides).success().stderr(
        contains("the given encoding of `conv1.weight` clips")
            .and(contains("BatchNormalization `bn1` was folded into `conv1`"))
            .and(contains("the given encoding of `relu3_out` clips")),
    );
}

/// A 2.0.0 per-channel entry names its axis; one that is not the weight's output-channel axis
/// was moved there without a word (`axis: 7` on a 4-d Conv weight was accepted). Now said.
#[test]
fn a_2_0_0_per_channel_axis_other_than_the_output_channels_is_said() {
    let mut work = Work::new();
    let overrides = json!({
        "version": "2.0.0",
        "encodings": [
            {"name": "pwconv.weight", "output_dtype": "int8", "y_scale": vec![0.01; 32], "axis": 7},
        ],
    });
    calibrated_with(&mut work, &overrides).success().stderr(
        contains("`pwconv.weight`: the overrides give per-channel scales along axis 7")
            .and(contains("axis 0")),
    );
}
